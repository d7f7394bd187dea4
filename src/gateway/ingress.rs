//! Channel ingress: customer messages and bot journeys arrive over HTTP. A channel with a
//! webhook secret must sign every body (and not replay it); the others need the ingress key
//! when one is configured. See SECURITY.md.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, MissingJsonContentType};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;

use super::error::{until_durable, ApiError};
use super::tenant::Tenant;
use super::webhook::{self, Signature};
use super::{auth, AppState};
use crate::channels::{Delivered, DeliveryStatus, NativeStatus};
use crate::clock::Timestamp;
use crate::core::Channel;
use crate::protocol::{BotRequest, DeliveryReport, InboundMessage, IngressReceipt, ReportedStatus};
use crate::workspaces::{Credentials, IngressKey};

/// The channel a path names: `…/channels/{channel}/…` (a struct, by name, since the path may
/// name a workspace too).
#[derive(Debug, serde::Deserialize)]
pub struct ChannelPath {
    channel: String,
}

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

/// Checks who sent a channel call, with the workspace's own credentials (R27): the signature
/// of the raw body when the channel has a webhook secret, else the ingress key when there is
/// one, else no one (development). Answers the signature of a signed call, to be admitted once
/// its body is read.
fn authenticate(
    credentials: &Credentials,
    channel: Channel,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<Signature>, ApiError> {
    if let Some(secret) = credentials.webhook_secrets.get(&channel) {
        return Ok(Some(webhook::verify(channel, secret.as_bytes(), headers, body)?));
    }
    match &credentials.ingress_key {
        IngressKey::Open => {}
        IngressKey::Required(key) => auth::require_key(Some(key), headers, "ingress")?,
        // No key opens it; answered as a missing or wrong key is, so that the answer says
        // nothing of the workspace's setup.
        IngressKey::Unset => return Err(auth::wrong_key(headers, "ingress")),
    }
    Ok(None)
}

/// Whether the body is declared JSON, as axum's `Json` extractor requires.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

/// Reads a body as `T`, refusing it as the `Json` extractor would. The body is taken raw,
/// not through that extractor, so that its signature is checked over the exact bytes sent.
fn decode<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    if !is_json(headers) {
        return Err(JsonRejection::from(MissingJsonContentType::default()).into());
    }
    let Json(value) = Json::<T>::from_bytes(body)?;
    Ok(value)
}

/// `POST /v1/channels/{channel}/messages`: a customer wrote.
pub async fn message(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(ChannelPath { channel: name }): Path<ChannelPath>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngressReceipt>, ApiError> {
    let (channel, message) = channel_call::<InboundMessage>(&state, &tenant, &name, &headers, body)?;
    room_to_store(&tenant)?;
    let receipt = tenant.engine().customer_message(channel, message)?;
    until_durable(tenant.engine()).await?;
    Ok(Json(receipt))
}

/// Takes one of the workspace's channel calls per second (R27), on the engine's clock. A
/// workspace not served here has no limits: its calls are refused as unsigned anyway.
pub(super) fn admit_call(tenant: &Tenant) -> Result<(), ApiError> {
    match tenant.workspace() {
        Some(workspace) => Ok(workspace.fairness().admit_ingress(tenant.engine().now())?),
        None => Ok(()),
    }
}

/// Refuses a new customer message while the workspace stores as many bytes of messages as it
/// may (R27): checked before the engine submits anything, so that a full quota never becomes
/// a failed commit (which would stop the store for every workspace).
pub(super) fn room_to_store(tenant: &Tenant) -> Result<(), ApiError> {
    let Some(workspace) = tenant.workspace() else {
        return Ok(());
    };
    let stored = tenant.engine().store().map_or(0, |store| store.stored_bytes());
    Ok(workspace.fairness().admit_message(stored)?)
}

/// A body a channel POSTs.
trait ChannelCall: DeserializeOwned {
    /// Checks its own fields (an address, a text).
    fn check(&self) -> Result<(), ApiError>;
    /// When the channel says it sent it: a signed call must be inside the replay window.
    fn sent_at(&self) -> Option<Timestamp>;
}

impl ChannelCall for InboundMessage {
    fn check(&self) -> Result<(), ApiError> {
        non_empty("from", &self.from)?;
        non_empty("text", &self.text)
    }

    fn sent_at(&self) -> Option<Timestamp> {
        self.sent_at
    }
}

impl ChannelCall for DeliveryReport {
    fn check(&self) -> Result<(), ApiError> {
        non_empty("provider_id", &self.provider_id)
    }

    fn sent_at(&self) -> Option<Timestamp> {
        self.sent_at
    }
}

impl ChannelCall for BotRequest {
    fn check(&self) -> Result<(), ApiError> {
        non_empty("from", &self.from)
    }

    fn sent_at(&self) -> Option<Timestamp> {
        self.sent_at
    }
}

/// What every channel call checks: a known channel, the caller, a readable body with sound
/// fields, and on a signed channel a `sent_at` inside the window that was not seen before.
fn channel_call<T: ChannelCall>(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Channel, T), ApiError> {
    let channel = channel(name)?;
    let body = body.map_err(JsonRejection::from)?;
    let credentials = tenant.credentials(state);
    let signature = authenticate(&credentials, channel, headers, &body)?;
    // A workspace not served here has no keys (R27), but its empty webhook secrets are ones
    // anyone can sign with: refused as a wrong signature is.
    tenant.served_or(|| {
        if credentials.webhook_secrets.contains_key(&channel) {
            webhook::WebhookError::Forged.into()
        } else {
            auth::wrong_key(headers, "ingress")
        }
    })?;
    // After the caller is known (a stranger cannot spend a workspace's rate), before the body
    // is read.
    admit_call(tenant)?;
    let call: T = decode(headers, &body)?;
    call.check()?;
    if let Some(signature) = signature {
        state.webhooks.admit_message(
            signature,
            call.sent_at(),
            tenant.engine().now(),
            state.security.replay_window,
        )?;
    }
    Ok((channel, call))
}

/// `POST /v1/channels/{channel}/bot/start`: the customer entered a bot journey (R09).
pub async fn bot_start(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(ChannelPath { channel: name }): Path<ChannelPath>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngressReceipt>, ApiError> {
    let (channel, request) = channel_call::<BotRequest>(&state, &tenant, &name, &headers, body)?;
    room_to_store(&tenant)?;
    let receipt = tenant.engine().start_bot(channel, request)?;
    until_durable(tenant.engine()).await?;
    Ok(Json(receipt))
}

/// `POST /v1/channels/{channel}/bot/handover`: the bot hands the customer to a human.
pub async fn bot_handover(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(ChannelPath { channel: name }): Path<ChannelPath>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngressReceipt>, ApiError> {
    let (channel, request) = channel_call::<BotRequest>(&state, &tenant, &name, &headers, body)?;
    let receipt = tenant.engine().hand_over(channel, request)?;
    until_durable(tenant.engine()).await?;
    Ok(Json(receipt))
}

/// `POST /v1/channels/{channel}/statuses`: the channel's adapter reports how far a message
/// the engine sent got (R25), taken as a native platform's status webhook is (`Engine::native`:
/// a status of a message not known yet is kept a minute for it). 204 once what it changed is
/// durable.
pub async fn status(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(ChannelPath { channel: name }): Path<ChannelPath>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let (channel, report) = channel_call::<DeliveryReport>(&state, &tenant, &name, &headers, body)?;
    tenant
        .engine()
        .native(vec![Delivered::Status(native_status(channel, report))]);
    until_durable(tenant.engine()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A report of our own JSON as the status a platform's webhook would have delivered.
fn native_status(channel: Channel, report: DeliveryReport) -> NativeStatus {
    NativeStatus {
        channel,
        provider_id: report.provider_id,
        status: match report.status {
            ReportedStatus::Sent => DeliveryStatus::Sent,
            ReportedStatus::Delivered => DeliveryStatus::Delivered,
            ReportedStatus::Read => DeliveryStatus::Read,
            ReportedStatus::Failed => DeliveryStatus::Failed,
        },
        reason: report.reason,
        at: report.sent_at,
    }
}
