//! The accept loop: each connection served by hyper's HTTP/1 with the
//! header read timeout, head size limit and JSON parse-error bodies that
//! [`Limits`] sets, at most [`Limits::max_connections`] at once, until a
//! shutdown signal; then the requests in flight finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::limits::{Limits, MAX_HEADERS};
use crate::parse_error::JsonParseErrors;

/// hyper's read buffer: at least the largest head, and room for body reads.
const MIN_READ_BUFFER: usize = 64 << 10;

/// Serves `app` on `listener` within `limits` until `shutdown` resolves,
/// then stops accepting and waits for the connections open to finish their
/// requests (idle ones close at once).
pub async fn serve_until(
    listener: TcpListener,
    app: axum::Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) {
    let http = http1_builder(limits);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &slots) => accepted,
            () = &mut shutdown => break,
        };
        let (stream, slot) = accepted;
        let io = TokioIo::new(JsonParseErrors::new(stream, limits));
        let connection = graceful.watch(http.serve_connection(io, TowerToHyperService::new(app.clone())));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // A client's mistake or departure, answered or not: no
                // server fault.
                tracing::debug!("connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// HTTP/1 as `limits` asks.
fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(MAX_HEADERS)
        .max_buf_size(limits.max_header_bytes.max(MIN_READ_BUFFER))
        // One flat buffer per write: JsonParseErrors must see hyper's
        // automatic answer whole.
        .writev(false);
    http
}

/// The next connection, once a slot is free; accept errors are logged and
/// retried (after a pause when the process is out of file descriptors).
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, tokio::sync::OwnedSemaphorePermit) {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return (stream, slot),
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                tracing::error!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// An accept error about one connection (it went away before it was
/// accepted), not about the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}
