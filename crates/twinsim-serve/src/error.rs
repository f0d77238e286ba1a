//! What a request gets back when it cannot be served: a status and a JSON
//! body saying what is wrong and how to fix it. Every refusal of bad input
//! is a 4xx; a 5xx only ever means a bug in twinsim.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A refused or failed request: `{"error": ..., "hint": ...}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub hint: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>, hint: impl Into<String>) -> ApiError {
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
        let body = serde_json::json!({ "error": self.message, "hint": self.hint });
        (self.status, Json(body)).into_response()
    }
}
