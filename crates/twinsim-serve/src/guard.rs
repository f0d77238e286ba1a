//! Limits checked around every request before a handler reads its body:
//! a too-long URI (414) and an announced over-limit Content-Length (413)
//! are refused from the head alone, and the body must arrive within
//! [`Limits::body_timeout`] (408), so a client that announces a body and
//! stalls holds neither a handler nor a connection for long.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Sleep;

use crate::api::AppState;
use crate::error::ApiError;
use crate::limits::Limits;

/// The middleware: refuses what the head shows to be over a limit, then
/// runs the handler with a body that fails past the body timeout, and
/// answers 408 when it did.
pub async fn limit(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Err(refusal) = check_head(&req, &state.limits) {
        return refusal.into_response();
    }
    let timed_out = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| Body::new(Deadline::new(body, state.limits.body_timeout, timed_out.clone())));
    let response = next.run(req).await;
    if timed_out.load(Ordering::Acquire) {
        // The handler saw a broken body and answered 400; the cause was
        // the client's pace.
        return ApiError::body_timeout(state.limits.body_timeout).into_response();
    }
    response
}

/// Refuses a request target over `max_uri_bytes` (414) or an announced body
/// over `max_body_bytes` (413), before any body byte is read.
fn check_head(req: &Request, limits: &Limits) -> Result<(), ApiError> {
    let uri_bytes = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_bytes > limits.max_uri_bytes {
        return Err(ApiError::uri_too_long(limits.max_uri_bytes));
    }
    // hyper has already refused an unparsable or conflicting Content-Length
    // (400), so a value that does not parse here cannot reach a client.
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match announced {
        Some(n) if n > limits.max_body_bytes as u64 => Err(ApiError::body_too_large(limits.max_body_bytes)),
        _ => Ok(()),
    }
}

/// A request body that fails once its deadline passes, and records that it
/// did in `timed_out`.
struct Deadline {
    body: Body,
    deadline: Pin<Box<Sleep>>,
    timed_out: Arc<AtomicBool>,
}

impl Deadline {
    fn new(body: Body, limit: Duration, timed_out: Arc<AtomicBool>) -> Deadline {
        Deadline {
            body,
            deadline: Box::pin(tokio::time::sleep(limit)),
            timed_out,
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        ready!(self.deadline.as_mut().poll(cx));
        self.timed_out.store(true, Ordering::Release);
        let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "the request body timed out");
        Poll::Ready(Some(Err(axum::Error::new(late))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
