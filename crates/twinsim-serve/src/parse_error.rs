//! The JSON error body for the refusals hyper writes itself.
//!
//! hyper answers a request head it cannot parse before any service sees
//! it: 400 (a malformed request line or header, an invalid or conflicting
//! Content-Length, a bad Transfer-Encoding), 431 (a head over
//! [`Limits::max_header_bytes`] or [`MAX_HEADERS`](crate::limits::MAX_HEADERS)
//! headers) and 414 (a URI over 64 KiB), each with an empty body, then
//! closes the connection. hyper 1 has no hook to change that answer
//! (hyperium/hyper#3844), so [`JsonParseErrors`] wraps the connection and
//! adds the body on its way out.
//!
//! The answer is recognized by its exact form, `Server::on_error` in
//! hyper's `proto/h1/role.rs`: a status line of 400, 414 or 431 followed by
//! no headers other than `content-length: 0`, `connection` and `date`,
//! ending the bytes hyper writes. No answer of the service has that form
//! (each of its refusals carries a Content-Type and a JSON body), and the
//! server tells hyper to write one flat buffer (`writev(false)`), so the
//! head is never split across two writes. The tests send each malformed
//! request and check the body, so a hyper that changes the form fails them.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::ApiError;
use crate::limits::Limits;

/// hyper's automatic answer is under 150 bytes; only this many bytes at the
/// end of a write are looked at.
const MAX_AUTOMATIC_HEAD: usize = 256;

/// A connection whose hyper-written refusals get the JSON error body.
#[derive(Debug)]
pub struct JsonParseErrors<T> {
    io: T,
    /// The URI and head limits, for the messages.
    max_uri_bytes: usize,
    max_header_bytes: usize,
    /// A rewritten answer, and how much of it is sent.
    pending: Vec<u8>,
    sent: usize,
}

impl<T> JsonParseErrors<T> {
    /// Wraps `io`; messages name `limits`' URI and header sizes.
    pub fn new(io: T, limits: &Limits) -> JsonParseErrors<T> {
        JsonParseErrors {
            io,
            max_uri_bytes: limits.max_uri_bytes,
            max_header_bytes: limits.max_header_bytes,
            pending: Vec::new(),
            sent: 0,
        }
    }

    /// The refusal hyper's automatic `status` stands for.
    fn refusal(&self, status: StatusCode) -> Option<ApiError> {
        match status {
            StatusCode::BAD_REQUEST => Some(ApiError::malformed_head()),
            StatusCode::URI_TOO_LONG => Some(ApiError::uri_too_long(self.max_uri_bytes)),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                Some(ApiError::headers_too_large(self.max_header_bytes))
            }
            _ => None,
        }
    }

    /// `written` with a JSON body given to the automatic answer it ends
    /// with; `None` when it does not end with one.
    fn with_json_body(&self, written: &[u8]) -> Option<Vec<u8>> {
        let tail = &written[written.len().saturating_sub(MAX_AUTOMATIC_HEAD)..];
        let at = tail.windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
        let start = written.len() - tail.len() + at;
        let head = std::str::from_utf8(&written[start..])
            .ok()?
            .strip_suffix("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        let status = StatusCode::from_bytes(status_line.get(9..12)?.as_bytes()).ok()?;
        let refusal = self.refusal(status)?;
        let (mut empty, mut date) = (false, None);
        for line in lines {
            let (name, value) = line.split_once(':')?;
            match name.to_ascii_lowercase().as_str() {
                "content-length" if value.trim() == "0" => empty = true,
                "connection" => {}
                "date" => date = Some(line),
                _ => return None,
            }
        }
        if !empty {
            return None;
        }
        let body = refusal.body().to_string();
        let mut out = written[..start].to_vec();
        out.extend_from_slice(status_line.as_bytes());
        out.extend_from_slice(b"\r\ncontent-type: application/json\r\nconnection: close\r\n");
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        if let Some(date) = date {
            out.extend_from_slice(date.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body.as_bytes());
        Some(out)
    }
}

impl<T: AsyncWrite + Unpin> JsonParseErrors<T> {
    /// Sends what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonParseErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        match this.with_json_body(buf) {
            Some(answer) => {
                // Taken whole, so a partial write never splits the head
                // from its body; sent by the flush and shutdown that follow.
                this.pending = answer;
                Poll::Ready(Ok(buf.len()))
            }
            None => Pin::new(&mut this.io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapper() -> JsonParseErrors<()> {
        JsonParseErrors::new((), &Limits::default())
    }

    #[test]
    fn hyper_s_automatic_answer_gets_the_json_body_after_what_came_before() {
        let written = b"earlier bytesHTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 22:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(wrapper().with_json_body(written).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("earlier bytesHTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("content-type: application/json") && head.contains("date: Sun"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("32768 bytes"));
    }

    #[test]
    fn answers_of_the_service_pass_unchanged() {
        let w = wrapper();
        for written in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n",
            b"no head at all\r\n\r\n",
        ] {
            assert_eq!(
                w.with_json_body(written),
                None,
                "{}",
                String::from_utf8_lossy(written)
            );
        }
    }
}
