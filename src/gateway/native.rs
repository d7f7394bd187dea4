//! The platforms' own webhooks (R23, R25): each verified as its platform signs it, read by
//! the channel's adapter (`src/channels/*`), handed to the engine, and answered once what it
//! delivered is durable — so a platform that gets its 200 never has to deliver again, and one
//! that does not retries, with the same provider ids, which the engine records once.
//!
//! - `GET /v1/native/meta`: the `hub.challenge` handshake, against the `verify_token` of any
//!   configured Meta channel (WhatsApp, Messenger, Instagram).
//! - `POST /v1/native/meta`: `X-Hub-Signature-256` against the `app_secret` of the Meta
//!   channels configured; the items must be of a channel whose secret signed them.
//! - `POST /v1/native/telegram`: `X-Telegram-Bot-Api-Secret-Token` against `secret_token`.
//! - `POST /v1/native/twilio`: `X-Twilio-Signature` over the configured `webhook_url` and the
//!   form's parameters; answered with an empty TwiML `<Response></Response>`.
//! - `POST /v1/native/email`: the mail server's `token`; the raw RFC 5322 message as body.
//!   Automatic mail (vacation notices, bulk) is answered 200 and not recorded.
//!
//! Each is verified with the workspace's own platforms (R27): `default`'s are the
//! configuration's `[platforms.*]`, every other workspace's those of its settings, so a
//! webhook signed for one workspace is refused at another's URL.
//!
//! A missing or wrong signature is 401, a body the platform would not send is 400 naming the
//! field, and a channel without a `[platforms.<channel>]` table is 404. See SECURITY.md.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::{until_durable, ApiError};
use super::ingress;
use super::tenant::Tenant;
use super::AppState;
use crate::channels::{email, meta, telegram, twilio, Delivered, PlatformConfig, WebhookError};
use crate::core::{Channel, ErrorCode};
use crate::workspaces::Credentials;

/// The largest raw email accepted: messages with attachments are far larger than the JSON
/// webhooks' limit, and 10 MiB is what common relays accept by default.
pub const MAX_EMAIL_BYTES: usize = 10 * 1024 * 1024;

/// The channels Meta's one webhook serves.
const META_CHANNELS: [Channel; 3] = [Channel::Whatsapp, Channel::Messenger, Channel::Instagram];

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Unsigned(_) | WebhookError::BadSignature(_) => {
                ApiError::new(ErrorCode::Unauthorized, e.to_string())
            }
            WebhookError::Malformed(_) => ApiError::bad_request(e.to_string()),
        }
    }
}

/// The body, or why it could not be read (too large, broken off).
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| ApiError::bad_request(format!("the body could not be read: {}", e.body_text())))
}

/// The platform of `channel` in `credentials` (the workspace's), or 404 naming the missing
/// table.
fn platform(credentials: &Credentials, channel: Channel) -> Result<&PlatformConfig, ApiError> {
    credentials.platforms.get(&channel).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("{channel} is not connected to its platform here: no [platforms.{channel}] in the configuration or the workspace's settings"),
        )
    })
}

/// The workspace's Meta channels.
fn meta_platforms(credentials: &Credentials) -> Result<Vec<(Channel, &PlatformConfig)>, ApiError> {
    let found: Vec<_> = META_CHANNELS
        .iter()
        .filter_map(|c| credentials.platforms.get(c).map(|p| (*c, p)))
        .collect();
    if found.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no Meta channel is connected here: no [platforms.whatsapp], [platforms.messenger] or [platforms.instagram]",
        ));
    }
    Ok(found)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Hands `items` to the engine and waits until they are durable: only then may the platform
/// be told it need not deliver them again.
async fn record(tenant: &Tenant, items: Vec<Delivered>) -> Result<usize, ApiError> {
    // Unreachable: a workspace not served here has only empty secrets, which every adapter
    // refuses (`Tenant::credentials`); kept so that nothing is ever recorded in one.
    tenant.served_or(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "the webhook is not signed for this workspace",
        )
    })?;
    // The workspace's limits (R27) before any engine work: refused, the platform delivers
    // the whole call again later.
    ingress::admit_call(tenant)?;
    if items.iter().any(|item| matches!(item, Delivered::Message(_))) {
        ingress::room_to_store(tenant)?;
    }
    let n = items.len();
    tenant.engine().native(items);
    until_durable(tenant.engine()).await?;
    Ok(n)
}

/// `GET /v1/native/meta`: Meta's verification handshake; the challenge echoed as plain text.
pub async fn meta_handshake(
    State(state): State<AppState>,
    tenant: Tenant,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let credentials = tenant.credentials(&state);
    let platforms = meta_platforms(&credentials)?;
    let mut refusal = WebhookError::BadSignature("hub.verify_token");
    // Any of the Meta channels' tokens will do: the one webhook URL serves them all.
    for (_, platform) in platforms {
        let token = platform.settings.get("verify_token").map_or("", String::as_str);
        match meta::verify_handshake(&query, token) {
            Ok(challenge) => return Ok(([(header::CONTENT_TYPE, "text/plain")], challenge).into_response()),
            // A malformed request is malformed whatever the token: say so.
            Err(e @ WebhookError::Malformed(_)) => return Err(e.into()),
            Err(e) => refusal = e,
        }
    }
    Err(refusal.into())
}

/// `POST /v1/native/meta`: WhatsApp, Messenger and Instagram webhooks.
pub async fn meta_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let raw = body(raw)?;
    let signature = header_str(&headers, meta::SIGNATURE_HEADER);
    let mut signed_for = BTreeSet::new();
    let mut refusal = WebhookError::Unsigned(meta::SIGNATURE_HEADER);
    let credentials = tenant.credentials(&state);
    for (channel, platform) in meta_platforms(&credentials)? {
        let secret = platform.settings.get("app_secret").map_or("", String::as_str);
        match meta::verify_signature(signature, &raw, secret) {
            Ok(()) => {
                signed_for.insert(channel);
            }
            Err(e) => refusal = e,
        }
    }
    if signed_for.is_empty() {
        return Err(refusal.into());
    }
    let items = meta::parse(&raw)?;
    // A signature proves the app, not the channel: items of a channel that is not connected
    // (or whose app secret did not sign them) are refused whole, so none is half-recorded.
    if let Some(channel) = items.iter().map(channel_of).find(|c| !signed_for.contains(c)) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("the webhook carries {channel} items, but {channel} is not connected here with the app secret that signed it ([platforms.{channel}])"),
        ));
    }
    let n = record(&tenant, items).await?;
    Ok(Json(json!({ "received": n })))
}

fn channel_of(item: &Delivered) -> Channel {
    match item {
        Delivered::Message(m) => m.channel,
        Delivered::Status(s) => s.channel,
        Delivered::Watermark(w) => w.channel,
    }
}

/// `POST /v1/native/telegram`: a Bot API update.
pub async fn telegram_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let credentials = tenant.credentials(&state);
    let platform = platform(&credentials, Channel::Telegram)?;
    let secret = platform.settings.get("secret_token").map_or("", String::as_str);
    telegram::verify_secret(header_str(&headers, telegram::SECRET_HEADER), secret)?;
    let raw = body(raw)?;
    let items = telegram::parse(&raw)?;
    let n = record(&tenant, items).await?;
    Ok(Json(json!({ "received": n })))
}

/// `POST /v1/native/twilio`: an SMS or MMS, or a status callback of ours.
pub async fn twilio_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let credentials = tenant.credentials(&state);
    let platform = platform(&credentials, Channel::Sms)?;
    let raw = body(raw)?;
    // Twilio signs the decoded parameters, not the raw body: read the form first.
    let form = twilio::parse_form(&raw)?;
    // The URL Twilio called, as configured there: the one behind a proxy may differ.
    let url = platform.settings.get("webhook_url").map_or("", String::as_str);
    let token = platform.settings.get("auth_token").map_or("", String::as_str);
    twilio::verify_signature(header_str(&headers, twilio::SIGNATURE_HEADER), url, &form, token)?;
    let items = twilio::parse(&form)?;
    record(&tenant, items).await?;
    // An empty TwiML answer: Twilio sends nothing back to the customer.
    Ok(([(header::CONTENT_TYPE, "text/xml")], "<Response></Response>").into_response())
}

/// `POST /v1/native/email`: a raw RFC 5322 message from the mail server.
pub async fn email_webhook(
    State(state): State<AppState>,
    tenant: Tenant,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let credentials = tenant.credentials(&state);
    let platform = platform(&credentials, Channel::Email)?;
    let token = platform.settings.get("token").map_or("", String::as_str);
    let presented = header_str(&headers, email::TOKEN_HEADER)
        .or_else(|| header_str(&headers, header::AUTHORIZATION.as_str()));
    email::verify_token(presented, token)?;
    let raw = body(raw)?;
    if email::is_auto_reply(&raw) {
        // Answering a vacation notice would start a loop of them; the relay must not retry.
        tracing::info!(
            bytes = raw.len(),
            "an automatic email (auto-reply or bulk) was not recorded"
        );
        return Ok(Json(json!({ "received": 0, "skipped": "auto_reply" })));
    }
    let items = email::parse(&raw)?;
    let n = record(&tenant, items).await?;
    Ok(Json(json!({ "received": n })))
}
