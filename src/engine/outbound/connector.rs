//! Where outbox items go: a webhook of the embedding product, the platforms' own APIs, or the
//! log. Each answers with a [`SendOutcome`]: taken, try again (and when), or failed for good.

use std::time::Duration;

use super::OutboxItem;
use crate::channels::{retry_after, SendOutcome};
use crate::clock::Timestamp;

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
    },
}

impl Connector {
    /// A webhook connector for `url`.
    pub fn webhook(url: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default();
        Connector::Webhook { url, client }
    }

    /// One attempt at sending `item`.
    pub async fn send(&self, item: &OutboxItem, now: Timestamp) -> SendOutcome {
        match self {
            Connector::Log => {
                let m = &item.message;
                tracing::info!(channel = %m.channel, to = %m.to, chat = %m.chat_id, kind = ?m.kind, text = %m.text, key = %item.key, "outbound message");
                SendOutcome::Sent {
                    provider_id: item.key.clone(),
                }
            }
            Connector::Webhook { url, client } => {
                let answer = client
                    .post(url)
                    .header("Idempotency-Key", &item.key)
                    .json(&item.message)
                    .send()
                    .await;
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
