//! Every HTTP rejection, declared in one place: the wire code, its status, and a JSON body
//! `{"code": …, "message": …}` naming what was wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::core::{ErrorCode, Rejection};

/// An HTTP error answer.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// A `bad_request` naming the problem.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// The sentence naming what was wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An error with `code`, answered with the status that code always has.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: status_of(code),
            code,
            message: message.into(),
        }
    }
}

/// The HTTP status of each wire code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::ActiveElsewhere
        | ErrorCode::WindowClosed
        | ErrorCode::OptedOut
        | ErrorCode::PushAlreadySent
        | ErrorCode::AgentUnavailable
        | ErrorCode::OverLimit => StatusCode::CONFLICT,
        ErrorCode::NotOwner | ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::MessageTooLong => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        Self::new(r.code(), r.to_string())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        Self::bad_request(format!("invalid JSON body: {}", r.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}
