//! What a request gets back when it cannot be served: a status and a JSON
//! body saying what is wrong and how to fix it. Every refusal of bad input
//! is a 4xx; a 5xx only ever means a bug in twinsim.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::limits::MAX_HEADERS;

/// A refused or failed request: `{"error": ..., "hint": ...}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub hint: String,
}

impl ApiError {
    /// `status` with `message` and `hint`; the named constructors below
    /// cover the usual statuses.
    pub fn new(status: StatusCode, message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// 400: the request is malformed or misses something.
    pub fn bad_request(message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message, hint)
    }

    /// 413: the body, or an image's declared size, is over a limit.
    pub fn too_large(message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message, hint)
    }

    /// 415: a file in a format the server does not take.
    pub fn unsupported(message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message, hint)
    }

    /// 422: a file of an accepted format that cannot be decoded.
    pub fn unprocessable(message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message, hint)
    }

    /// 409: the request needs something this server was not started with.
    pub fn conflict(message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message, hint)
    }

    /// 404: no such endpoint or item.
    pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message, hint)
    }

    /// 413 for a body over `max_bytes`, whether announced or streamed.
    pub fn body_too_large(max_bytes: usize) -> ApiError {
        ApiError::too_large(
            format!("the request body is over {max_bytes} bytes"),
            "send smaller or fewer images (the server's --max-body-bytes sets the limit)",
        )
    }

    /// 408: the body did not arrive within `limit`.
    pub fn body_timeout(limit: Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {} s", limit.as_secs_f64()),
            "send the whole body at once, or fewer or smaller images over a slow link",
        )
    }

    /// 414: a request target (path and query) over `max_bytes`.
    pub fn uri_too_long(max_bytes: usize) -> ApiError {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("the request's path and query are over {max_bytes} bytes"),
            "send parameters as multipart/form-data fields, not in the URL (see GET /openapi.json)",
        )
    }

    /// 431: a request head over `max_bytes` or [`MAX_HEADERS`] headers.
    pub fn headers_too_large(max_bytes: usize) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request line and headers are over {max_bytes} bytes, or over {MAX_HEADERS} headers"),
            "send fewer and shorter headers (large cookies are the usual cause)",
        )
    }

    /// 400 for a request head that is not HTTP/1.1 (hyper refuses it before
    /// any handler runs, without saying which of these it was).
    pub fn malformed_head() -> ApiError {
        ApiError::bad_request(
            "the request is not valid HTTP/1.1: a malformed request line or header, \
             or an invalid or conflicting Content-Length or Transfer-Encoding",
            "send one Content-Length with the body's size in bytes (or Transfer-Encoding: chunked), \
             and headers as 'Name: value' lines of visible ASCII",
        )
    }

    /// 405: a known endpoint asked with another method.
    pub fn method_not_allowed(method: &Method) -> ApiError {
        let method: String = method.as_str().chars().take(32).collect();
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("this endpoint does not take {method}"),
            "the /v1/compare, /v1/embed, /v1/search and /v1/identify endpoints take POST; \
             the others GET (see GET /openapi.json)",
        )
    }

    /// The JSON body: `{"error": message, "hint": hint}`.
    pub fn body(&self) -> Value {
        serde_json::json!({ "error": self.message, "hint": self.hint })
    }

    /// 500: twinsim failed where it should not have; logged.
    pub fn internal(message: impl Into<String>) -> ApiError {
        let message = message.into();
        tracing::error!("internal error: {message}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            message,
            "this is a bug in twinsim; please report it with the request that caused it",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
