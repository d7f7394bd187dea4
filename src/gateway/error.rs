//! An HTTP error answer: the wire code, the status `refusal.rs` gives it, and a JSON body
//! `{"code": …, "message": …}` naming what was wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::core::{ErrorCode, Rejection};
use crate::protocol;
use crate::refusal::Refusal;
use crate::store::WritePoint;

/// An HTTP error answer.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    code: protocol::ErrorCode,
    message: String,
    /// Seconds for a `Retry-After` header, when trying again later will do.
    #[serde(skip)]
    retry_after: Option<u32>,
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
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same answer, telling the client to try again in `seconds` (`Retry-After`).
    pub fn retry_after(self, seconds: u32) -> Self {
        Self {
            retry_after: Some(seconds),
            ..self
        }
    }
}

/// The HTTP status of each wire code (the table: `refusal.rs`).
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(crate::refusal::http_status(code)).expect("the table holds valid statuses")
}

/// How long an acknowledgement waits for the store before giving up on it.
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits until `point` is reached: the moment a change may be acknowledged. Otherwise the
/// sentence saying why it is not, for an error frame or body (`storage_unavailable`).
pub async fn durable(point: WritePoint) -> Result<(), String> {
    if point.is_reached() {
        return Ok(());
    }
    let why = match tokio::time::timeout(STORE_WAIT, point.reached()).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => {
            // The writer has logged the failure with its path; the client gets its kind.
            e.client_detail().to_owned()
        }
        Err(_) => format!("not saved within {} s", STORE_WAIT.as_secs()),
    };
    Err(format!(
        "not saved, so not acknowledged (it may be lost on restart): {why}"
    ))
}

/// [`durable`] for an HTTP answer: everything `engine` submitted to its store so far.
pub async fn until_durable(engine: &crate::engine::Engine) -> Result<(), ApiError> {
    durable(engine.write_point())
        .await
        .map_err(|why| ApiError::new(ErrorCode::StorageUnavailable, why))
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        Self::from(Refusal::from(r))
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
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
        let retry_after = self.retry_after;
        let mut response = (self.status, Json(self)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
