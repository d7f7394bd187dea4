//! The one way out to customers: every reopen notice, agent message and template push goes
//! through an [`Outbound`] queue to a connector — a webhook, or the log when none is set.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::protocol::OutboundMessage;

/// The engine's end of the outbound queue. Unbounded so that the engine never blocks on a
/// slow connector; the connector drains it in order.
#[derive(Clone, Debug)]
pub struct Outbound(mpsc::UnboundedSender<OutboundMessage>);

impl Outbound {
    /// A queue and its receiving end, for a connector to drain.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<OutboundMessage>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// Hands a message to the connector.
    pub fn send(&self, message: OutboundMessage) {
        if self.0.send(message).is_err() {
            tracing::error!("outbound connector is gone; message dropped");
        }
    }
}

/// How the webhook connector retries.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time after.
    pub first_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_backoff: Duration::from_millis(200),
        }
    }
}

/// Drains the queue by logging each message: the default with no webhook configured.
pub async fn run_logging_connector(mut rx: mpsc::UnboundedReceiver<OutboundMessage>) {
    while let Some(m) = rx.recv().await {
        tracing::info!(channel = %m.channel, to = %m.to, chat = %m.chat_id, kind = ?m.kind, text = %m.text, "outbound message");
    }
}

/// Drains the queue by POSTing each message as JSON to `url`, in order, retrying failures
/// (connection errors and non-2xx answers) with exponential backoff.
pub async fn run_webhook_connector(
    url: String,
    retry: Retry,
    mut rx: mpsc::UnboundedReceiver<OutboundMessage>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    while let Some(message) = rx.recv().await {
        let mut backoff = retry.first_backoff;
        for attempt in 1..=retry.attempts {
            let outcome = client.post(&url).json(&message).send().await;
            match outcome {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => {
                    tracing::warn!(status = %r.status(), attempt, chat = %message.chat_id, "webhook refused outbound message")
                }
                Err(e) => tracing::warn!(error = %e, attempt, chat = %message.chat_id, "webhook unreachable"),
            }
            if attempt == retry.attempts {
                tracing::error!(chat = %message.chat_id, "outbound message dropped after {attempt} attempts");
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
}
