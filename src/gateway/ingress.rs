//! Channel ingress: customer messages and bot journeys arrive over HTTP.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;

use super::error::ApiError;
use crate::core::Channel;
use crate::engine::Engine;
use crate::protocol::{BotRequest, InboundMessage, IngressReceipt};

fn channel(name: &str) -> Result<Channel, ApiError> {
    name.parse().map_err(|e: crate::core::channel::UnknownChannel| {
        ApiError::new(crate::core::ErrorCode::NotFound, e.to_string())
    })
}

fn non_empty(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::bad_request(format!("`{field}` must not be empty")));
    }
    Ok(())
}

/// `POST /v1/channels/{channel}/messages`: a customer wrote.
pub async fn message(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Result<Json<InboundMessage>, JsonRejection>,
) -> Result<Json<IngressReceipt>, ApiError> {
    let channel = channel(&name)?;
    let Json(message) = body?;
    non_empty("from", &message.from)?;
    non_empty("text", &message.text)?;
    Ok(Json(engine.customer_message(channel, message)?))
}

/// What both bot calls check: a known channel, a readable body, an address.
fn bot_call(
    name: &str,
    body: Result<Json<BotRequest>, JsonRejection>,
) -> Result<(Channel, BotRequest), ApiError> {
    let channel = channel(name)?;
    let Json(request) = body?;
    non_empty("from", &request.from)?;
    Ok((channel, request))
}

/// `POST /v1/channels/{channel}/bot/start`: the customer entered a bot journey (R09).
pub async fn bot_start(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Result<Json<BotRequest>, JsonRejection>,
) -> Result<Json<IngressReceipt>, ApiError> {
    let (channel, request) = bot_call(&name, body)?;
    Ok(Json(engine.start_bot(channel, request)?))
}

/// `POST /v1/channels/{channel}/bot/handover`: the bot hands the customer to a human.
pub async fn bot_handover(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Result<Json<BotRequest>, JsonRejection>,
) -> Result<Json<IngressReceipt>, ApiError> {
    let (channel, request) = bot_call(&name, body)?;
    Ok(Json(engine.hand_over(channel, request)?))
}
