//! Where outbox items go: a webhook of the embedding product, the platforms' own APIs, or the
//! log. Each answers with a [`SendOutcome`]: taken, try again (and when), or failed for good.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::OutboxItem;
use crate::channels::{
    email, meta, retry_after, telegram, twilio, EmailThread, Outgoing, OutgoingBody, PlatformConfig,
    PlatformRequest, SendOutcome,
};
use crate::clock::Timestamp;
use crate::core::Channel;
use crate::ids::WorkspaceId;
use crate::protocol::{MessageKind, OutboundMessage};

/// The language of templates when the channel's platform does not set `template_language`.
const DEFAULT_TEMPLATE_LANGUAGE: &str = "en_US";

/// The subject of email replies when the platform does not set `subject`.
const DEFAULT_SUBJECT: &str = "Re: your message";

/// The platforms' settings per channel. Its `Debug` names the channels only: the settings
/// hold credentials, which must not reach a log.
#[derive(Clone, Default)]
pub struct Platforms(pub Arc<BTreeMap<Channel, PlatformConfig>>);

impl std::fmt::Debug for Platforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// How long one attempt may take before it counts as a failure to retry.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where outbox items go.
#[derive(Clone, Debug)]
pub enum Connector {
    /// The log: the development default. Every item counts as taken.
    Log,
    /// `POST` of the outbound message as JSON to the embedding product, with an
    /// `Idempotency-Key` header that is the same on every attempt of one message.
    Webhook {
        /// Where.
        url: String,
        /// The HTTP client (its connection pool).
        client: reqwest::Client,
        /// The workspace whose messages these are, named in each body (R27); `None` for
        /// `default`, whose bodies stay as they were before workspaces.
        workspace: Option<WorkspaceId>,
    },
    /// The platforms' own APIs (R24) for the channels that have one configured; every other
    /// channel's items go to `otherwise`.
    Platforms {
        /// The settings of each connected channel.
        platforms: Platforms,
        /// The HTTP client (its connection pool).
        client: reqwest::Client,
        /// Where items of channels without a platform go.
        otherwise: Box<Connector>,
    },
}

impl Connector {
    /// A webhook connector for `url`.
    pub fn webhook(url: String) -> Self {
        Self::webhook_with_timeout(url, ATTEMPT_TIMEOUT)
    }

    /// A webhook connector for `url` whose attempts count as failed (and are retried) after
    /// `timeout` without an answer; [`Connector::webhook`] waits 10 s. For tests of a
    /// platform that never answers.
    pub fn webhook_with_timeout(url: String, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Connector::Webhook {
            url,
            client,
            workspace: None,
        }
    }

    /// This connector for workspace `id`'s messages: a webhook names the workspace in each
    /// body (R27), so that one webhook can serve many workspaces and tell them apart.
    pub fn for_workspace(self, id: &WorkspaceId) -> Self {
        match self {
            Connector::Webhook { url, client, .. } => Connector::Webhook {
                url,
                client,
                workspace: (!id.is_default()).then(|| id.clone()),
            },
            Connector::Platforms {
                platforms,
                client,
                otherwise,
            } => Connector::Platforms {
                platforms,
                client,
                otherwise: Box::new(otherwise.for_workspace(id)),
            },
            Connector::Log => Connector::Log,
        }
    }

    /// A connector that sends through the platforms of `platforms` and everything else
    /// through `otherwise`; just `otherwise` when no platform is configured.
    pub fn platforms(platforms: BTreeMap<Channel, PlatformConfig>, otherwise: Connector) -> Self {
        if platforms.is_empty() {
            return otherwise;
        }
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default();
        Connector::Platforms {
            platforms: Platforms(Arc::new(platforms)),
            client,
            otherwise: Box::new(otherwise),
        }
    }

    /// Whether sending `item` leaves the process (a platform's API, a webhook), rather than
    /// being written to the log.
    pub fn goes_out(&self, item: &OutboxItem) -> bool {
        match self {
            Connector::Platforms {
                platforms, otherwise, ..
            } => platforms.0.contains_key(&item.channel()) || otherwise.goes_out(item),
            Connector::Log => false,
            Connector::Webhook { .. } => true,
        }
    }

    /// One attempt at sending `item`.
    pub async fn send(&self, item: &OutboxItem, now: Timestamp) -> SendOutcome {
        match self {
            Connector::Platforms {
                platforms,
                client,
                otherwise,
            } => match platforms.0.get(&item.channel()) {
                Some(config) => send_native(client, config, item, now).await,
                None => Box::pin(otherwise.send(item, now)).await,
            },
            Connector::Log => {
                let m = &item.message;
                tracing::info!(channel = %item.channel(), to = %m.to, chat = %m.chat_id, kind = ?m.kind, text = %m.text, key = %item.key, "outbound message");
                SendOutcome::Sent {
                    provider_id: item.key.clone(),
                }
            }
            Connector::Webhook {
                url,
                client,
                workspace,
            } => {
                let request = client.post(url).header("Idempotency-Key", &item.key);
                let request = match workspace {
                    Some(id) => request.json(&OutboundMessage {
                        workspace: Some(id.to_string()),
                        ..item.message.clone()
                    }),
                    None => request.json(&item.message),
                };
                let answer = request.send().await;
                match answer {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let retry = response
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| retry_after(v, now));
                        let body = response.bytes().await.unwrap_or_default();
                        webhook_outcome(status, retry, &body, &item.key)
                    }
                    Err(e) => SendOutcome::Retry {
                        after: None,
                        reason: format!("webhook unreachable: {e}"),
                    },
                }
            }
        }
    }
}

/// `item` as the platform's adapter sees it.
fn outgoing(item: &OutboxItem, config: &PlatformConfig) -> Outgoing {
    let m = &item.message;
    let body = match m.kind {
        MessageKind::Template => OutgoingBody::Template {
            name: m.text.clone(),
            language: config
                .settings
                .get("template_language")
                .cloned()
                .unwrap_or_else(|| DEFAULT_TEMPLATE_LANGUAGE.to_owned()),
            params: m.params.clone(),
        },
        MessageKind::Text | MessageKind::Notice | MessageKind::AfterHours => {
            OutgoingBody::Text(m.text.clone())
        }
    };
    let email = (item.channel() == Channel::Email).then(|| EmailThread {
        subject: config
            .settings
            .get("subject")
            .cloned()
            .unwrap_or_else(|| DEFAULT_SUBJECT.to_owned()),
        in_reply_to: m.reply_to.as_deref().map(email_parent),
        references: Vec::new(),
        // Derived from the idempotency key, so every attempt carries the same Message-ID.
        message_id: format!("{}@{}", item.key, mail_domain(config)),
    });
    Outgoing {
        channel: item.channel(),
        to: m.to.clone(),
        body,
        human_agent_tag: m.human_agent_tag,
        idempotency_key: item.key.clone(),
        email,
    }
}

/// The `Message-ID` of the email a part came from: an attachment's provider id is
/// `{message-id}#{n}` (see `channels::email::parse`).
fn email_parent(provider_id: &str) -> String {
    match provider_id.rsplit_once('#') {
        Some((id, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => id.to_owned(),
        _ => provider_id.to_owned(),
    }
}

/// The domain of our `from` address, for our replies' `Message-ID`s.
fn mail_domain(config: &PlatformConfig) -> String {
    config
        .settings
        .get("from")
        .and_then(|from| from.parse::<lettre::message::Mailbox>().ok())
        .map_or_else(
            || "switchboard.invalid".to_owned(),
            |m| m.email.domain().to_owned(),
        )
}

/// One attempt through the platform's own API (or SMTP, for email).
async fn send_native(
    client: &reqwest::Client,
    config: &PlatformConfig,
    item: &OutboxItem,
    now: Timestamp,
) -> SendOutcome {
    let out = outgoing(item, config);
    let request = match out.channel {
        Channel::Email => {
            let message = match email::build_message(&out, config, now) {
                Ok(message) => message,
                Err(reason) => return SendOutcome::Failed { reason },
            };
            let envelope_from = match mail_sender(config) {
                Ok(from) => from,
                Err(reason) => return SendOutcome::Failed { reason },
            };
            return email::send_smtp(message, &envelope_from, &out.to, config).await;
        }
        Channel::Whatsapp | Channel::Messenger | Channel::Instagram => meta::build_send(&out, config),
        Channel::Telegram => telegram::build_send(&out, config),
        Channel::Sms => twilio::build_send(&out, config),
        other => Err(format!("{other} has no platform adapter to send through")),
    };
    let request = match request {
        Ok(request) => request,
        // Retrying cannot fix a message the adapter refuses (a template on SMS, a setting
        // missing): shown to the agent at once.
        Err(reason) => return SendOutcome::Failed { reason },
    };
    let (status, headers, body) = match exchange(client, request).await {
        Ok(answer) => answer,
        Err(reason) => return SendOutcome::Retry { after: None, reason },
    };
    match out.channel {
        Channel::Telegram => telegram::read_answer(status, &headers, &body, now),
        Channel::Sms => twilio::read_answer(status, &headers, &body, now),
        _ => meta::read_answer(status, &headers, &body, now),
    }
}

/// The bare address of the `from` setting, for SMTP's `MAIL FROM`.
fn mail_sender(config: &PlatformConfig) -> Result<String, String> {
    let from = config.get("from")?;
    from.parse::<lettre::message::Mailbox>()
        .map(|m| m.email.to_string())
        .map_err(|e| format!("the `from` setting `{from}` is not a mailbox: {e}"))
}

/// Makes `request` exactly as the adapter built it; the answer's status, headers and body,
/// or why there was none (a transport error or timeout: worth another attempt).
async fn exchange(
    client: &reqwest::Client,
    request: PlatformRequest,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), String> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|e| format!("bad method {}: {e}", request.method))?;
    let mut builder = client.request(method, &request.url).body(request.body);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    // The URL may carry a credential (Telegram's bot token): errors are logged without it.
    let response = builder
        .send()
        .await
        .map_err(|e| format!("the platform is unreachable: {}", e.without_url()))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("the platform's answer broke off: {}", e.without_url()))?;
    Ok((status, headers, body.to_vec()))
}

/// What the webhook's answer means: 2xx taken (its `id`, if it names one, else our key),
/// 429 and 5xx (and 408) try again, any other refusal fails with what it said.
fn webhook_outcome(status: u16, retry: Option<Duration>, body: &[u8], key: &str) -> SendOutcome {
    match status {
        200..=299 => {
            let id = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("id").and_then(|id| id.as_str().map(str::to_owned)));
            SendOutcome::Sent {
                provider_id: id.unwrap_or_else(|| key.to_owned()),
            }
        }
        408 | 429 | 500..=599 => SendOutcome::Retry {
            after: retry,
            reason: format!("webhook answered {status}"),
        },
        _ => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            SendOutcome::Failed {
                reason: format!("webhook answered {status}: {text}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ChatId, CustomerId};

    fn item(channel: Channel, kind: MessageKind, reply_to: Option<&str>) -> OutboxItem {
        OutboxItem {
            id: 1,
            customer: CustomerId::from("cu-1"),
            seq: Some(2),
            message: OutboundMessage {
                channel: channel.into(),
                to: "ana@example.com".into(),
                customer_id: CustomerId::from("cu-1"),
                chat_id: ChatId::from("ch-1"),
                kind,
                text: "order_update".into(),
                params: vec!["1234".into()],
                human_agent_tag: true,
                agent: None,
                reply_to: reply_to.map(str::to_owned),
                workspace: None,
            },
            key: "sb-1-2".into(),
            attempts: 0,
            next_at: None,
        }
    }

    fn config(settings: &[(&str, &str)]) -> PlatformConfig {
        PlatformConfig {
            base_url: String::new(),
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn r24_a_template_goes_in_the_configured_language_or_en_us() {
        let template = item(Channel::Whatsapp, MessageKind::Template, None);
        let out = outgoing(&template, &config(&[]));
        assert_eq!(
            out.body,
            OutgoingBody::Template {
                name: "order_update".into(),
                language: "en_US".into(),
                params: vec!["1234".into()],
            }
        );
        assert!(out.human_agent_tag);
        assert_eq!(out.idempotency_key, "sb-1-2");
        assert_eq!(out.email, None);
        let out = outgoing(&template, &config(&[("template_language", "es")]));
        assert!(matches!(out.body, OutgoingBody::Template { language, .. } if language == "es"));
    }

    #[test]
    fn r24_an_email_reply_threads_under_the_customers_message_with_a_stable_id() {
        let reply = item(
            Channel::Email,
            MessageKind::Text,
            Some("CAF1.0001@mail.example.com#2"),
        );
        let settings = config(&[
            ("from", "Support <support@example.com>"),
            ("subject", "Re: order 1234"),
        ]);
        let thread = outgoing(&reply, &settings).email.expect("an email thread");
        assert_eq!(thread.subject, "Re: order 1234");
        assert_eq!(thread.in_reply_to.as_deref(), Some("CAF1.0001@mail.example.com"));
        assert_eq!(thread.message_id, "sb-1-2@example.com");
        let thread = outgoing(&reply, &config(&[])).email.expect("an email thread");
        assert_eq!(thread.subject, "Re: your message");
        assert_eq!(thread.message_id, "sb-1-2@switchboard.invalid");
    }

    #[tokio::test]
    async fn r24_an_unreachable_platform_is_retried_and_a_refused_message_fails_naming_why() {
        let connector = Connector::platforms(
            [
                (
                    Channel::Telegram,
                    PlatformConfig {
                        // Nothing listens on port 9 (discard) of the loopback.
                        base_url: "http://127.0.0.1:9".into(),
                        settings: [("bot_token".to_owned(), "1:x".to_owned())].into(),
                    },
                ),
                (Channel::Sms, config(&[])),
            ]
            .into(),
            Connector::Log,
        );
        let now = chrono::DateTime::from_timestamp(1_765_098_000, 0).expect("a time");
        let text = item(Channel::Telegram, MessageKind::Text, None);
        assert!(matches!(
            connector.send(&text, now).await,
            SendOutcome::Retry { .. }
        ));
        let template = item(Channel::Telegram, MessageKind::Template, None);
        assert!(matches!(
            connector.send(&template, now).await,
            SendOutcome::Failed { reason } if reason.contains("template `order_update`")
        ));
        let unconfigured = item(Channel::Sms, MessageKind::Text, None);
        assert!(matches!(
            connector.send(&unconfigured, now).await,
            SendOutcome::Failed { reason } if reason.contains("account_sid")
        ));
        let elsewhere = item(Channel::Webchat, MessageKind::Text, None);
        assert!(matches!(
            connector.send(&elsewhere, now).await,
            SendOutcome::Sent { .. }
        ));
    }

    #[test]
    fn r24_a_webhook_answer_is_taken_retried_or_failed() {
        assert_eq!(
            webhook_outcome(200, None, br#"{"id":"m-1"}"#, "k"),
            SendOutcome::Sent {
                provider_id: "m-1".into()
            }
        );
        assert_eq!(
            webhook_outcome(204, None, b"", "k"),
            SendOutcome::Sent {
                provider_id: "k".into()
            }
        );
        assert!(matches!(
            webhook_outcome(429, Some(Duration::from_secs(3)), b"", "k"),
            SendOutcome::Retry { after: Some(d), .. } if d == Duration::from_secs(3)
        ));
        assert!(matches!(
            webhook_outcome(503, None, b"", "k"),
            SendOutcome::Retry { after: None, .. }
        ));
        assert_eq!(
            webhook_outcome(400, None, b"no such number", "k"),
            SendOutcome::Failed {
                reason: "webhook answered 400: no such number".into()
            }
        );
    }
}
