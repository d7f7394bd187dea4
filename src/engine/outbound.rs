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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::Json;

    use super::*;
    use crate::core::Channel;
    use crate::protocol::MessageKind;

    fn message(text: &str) -> OutboundMessage {
        OutboundMessage {
            channel: Channel::Whatsapp,
            to: "+491".into(),
            customer_id: "cu1".into(),
            chat_id: "ch1".into(),
            kind: MessageKind::Text,
            text: text.into(),
            params: Vec::new(),
            human_agent_tag: false,
            agent: None,
        }
    }

    /// A receiver on 127.0.0.1 that refuses the first `failures` POSTs with 503.
    async fn receiver(failures: usize) -> (String, mpsc::UnboundedReceiver<(usize, OutboundMessage)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let seen = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/out",
            post(move |Json(m): Json<OutboundMessage>| {
                let (tx, seen) = (tx.clone(), seen.clone());
                async move {
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send((n, m));
                    if n < failures {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/out", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, rx)
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<(usize, OutboundMessage)>) -> (usize, OutboundMessage) {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a POST arrives in time")
            .expect("receiver alive")
    }

    #[tokio::test]
    async fn webhook_retries_a_refused_message_until_it_is_taken_and_keeps_order() {
        let (url, mut posts) = receiver(2).await;
        let (outbound, rx) = Outbound::channel();
        let retry = Retry {
            attempts: 5,
            first_backoff: Duration::from_millis(1),
        };
        tokio::spawn(run_webhook_connector(url, retry, rx));
        outbound.send(message("first"));
        outbound.send(message("second"));
        let texts: Vec<(usize, String)> = [
            next(&mut posts).await,
            next(&mut posts).await,
            next(&mut posts).await,
            next(&mut posts).await,
        ]
        .into_iter()
        .map(|(n, m)| (n, m.text))
        .collect();
        assert_eq!(
            texts,
            [
                (0, "first".into()),
                (1, "first".into()),
                (2, "first".into()),
                (3, "second".into())
            ]
        );
    }

    #[tokio::test]
    async fn webhook_gives_up_after_the_configured_attempts_and_moves_on() {
        let (url, mut posts) = receiver(3).await;
        let (outbound, rx) = Outbound::channel();
        let retry = Retry {
            attempts: 3,
            first_backoff: Duration::from_millis(1),
        };
        tokio::spawn(run_webhook_connector(url, retry, rx));
        outbound.send(message("lost"));
        outbound.send(message("next"));
        for expected in ["lost", "lost", "lost", "next"] {
            assert_eq!(next(&mut posts).await.1.text, expected);
        }
    }
}
