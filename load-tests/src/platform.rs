//! The fake platform (`--fake-platform`, issue 17): an HTTP server on 127.0.0.1 inside the
//! harness that takes the engine's outbound messages as the `[outbound] webhook_url` would,
//! answers each `200 {"id":"fp-N"}` over keep-alive (axum, as the floor), counts them, and
//! checks each chat's order by the `Idempotency-Key` (`sb-{id:x}-{boot:x}` from the `default`
//! workspace, `sb-w{ws:x}-{id:x}-{boot:x}` from another: the id grows in the order the
//! workspace's engine made the messages, which is each chat's order) and duplicates.
//!
//! When an agent's `send_message` text carries the harness's send stamp (`lt@{stamp}`, see
//! `reopen-storm --outbound-rate`), the platform also records send_message sent → received
//! here: the whole outbound path (request, commit, outbox, webhook POST).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Deserialize;

use crate::clock;

/// The prefix of a stamped `send_message` text: `lt@{stamp}`.
pub(crate) const STAMP_PREFIX: &str = "lt@";

/// The one fake platform of this process, once started.
static CURRENT: OnceLock<Arc<Platform>> = OnceLock::new();

/// What the platform has seen.
pub(crate) struct Platform {
    /// `http://127.0.0.1:port/outbound`.
    pub(crate) url: String,
    received: AtomicU64,
    out_of_order: AtomicU64,
    duplicates: AtomicU64,
    unreadable: AtomicU64,
    order: Mutex<Order>,
    /// send_message sent by an agent → received here, in µs.
    lag: Mutex<Histogram<u64>>,
}

#[derive(Default)]
struct Order {
    /// The last outbox id seen per chat, by workspace key and chat id.
    last: HashMap<(u64, String), u64>,
    /// Every outbox id seen, by workspace key.
    seen: HashSet<(u64, u64)>,
}

/// The workspace key and outbox id that an `Idempotency-Key` names: `sb-{id:x}-{boot:x}`
/// (the `default` workspace, key 1) or `sb-w{ws:x}-{id:x}-{boot:x}`. Outbox ids are counted
/// per workspace, so only the pair is unique.
fn outbox_id(key: &str) -> Option<(u64, u64)> {
    let key = key.strip_prefix("sb-")?;
    let (ws, rest) = match key.strip_prefix('w') {
        Some(rest) => {
            let (ws, rest) = rest.split_once('-')?;
            (u64::from_str_radix(ws, 16).ok()?, rest)
        }
        None => (1, key),
    };
    let id = rest.split('-').next()?;
    Some((ws, u64::from_str_radix(id, 16).ok()?))
}

/// The part of an outbound message the platform reads.
#[derive(Deserialize)]
struct Outbound {
    chat_id: String,
    #[serde(default)]
    text: String,
}

/// The counters at one moment, to take differences over a window.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mark {
    pub(crate) received: u64,
    pub(crate) out_of_order: u64,
    pub(crate) duplicates: u64,
    pub(crate) unreadable: u64,
}

impl Platform {
    /// The counters now.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            received: self.received.load(Ordering::Relaxed),
            out_of_order: self.out_of_order.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            unreadable: self.unreadable.load(Ordering::Relaxed),
        }
    }

    /// Chats that received at least one message.
    pub(crate) fn chats(&self) -> usize {
        self.order.lock().last.len()
    }

    /// Forgets the lag recorded so far (the window opens).
    pub(crate) fn reset_lag(&self) {
        self.lag.lock().reset();
    }

    /// p50, p99, max and count of send_message → received, in µs.
    pub(crate) fn lag(&self) -> (u64, u64, u64, u64) {
        let h = self.lag.lock();
        (
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max(),
            h.len(),
        )
    }

    fn take(&self, headers: &HeaderMap, body: &[u8]) {
        self.received.fetch_add(1, Ordering::Relaxed);
        let id = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .and_then(outbox_id);
        let message = serde_json::from_slice::<Outbound>(body).ok();
        let (Some(id), Some(message)) = (id, message) else {
            self.unreadable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut order = self.order.lock();
        if !order.seen.insert(id) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(stamp) = message
            .text
            .strip_prefix(STAMP_PREFIX)
            .and_then(|s| s.parse::<u64>().ok())
        {
            let us = clock::since_stamp(stamp).as_micros() as u64;
            let _ = self.lag.lock().record(us.max(1));
        }
        let last = order.last.entry((id.0, message.chat_id)).or_insert(0);
        if id.1 < *last {
            self.out_of_order.fetch_add(1, Ordering::Relaxed);
        } else {
            *last = id.1;
        }
    }
}

async fn outbound(
    State(platform): State<Arc<Platform>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    platform.take(&headers, &body);
    let n = platform.received.load(Ordering::Relaxed);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"id\":\"fp-{n}\"}}"),
    )
}

/// Starts the fake platform on a free port of 127.0.0.1 (once per process) and returns it.
pub(crate) async fn start() -> anyhow::Result<Arc<Platform>> {
    if let Some(p) = CURRENT.get() {
        return Ok(p.clone());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let platform = Arc::new(Platform {
        url: format!("http://{addr}/outbound"),
        received: AtomicU64::new(0),
        out_of_order: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        unreadable: AtomicU64::new(0),
        order: Mutex::new(Order::default()),
        lag: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
    });
    let router = Router::new()
        .route("/outbound", post(outbound))
        .with_state(platform.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("fake platform stopped: {e}");
        }
    });
    let _ = CURRENT.set(platform.clone());
    eprintln!("fake platform on {}", platform.url);
    Ok(CURRENT.get().cloned().unwrap_or(platform))
}

/// The fake platform, if this process started one.
pub(crate) fn current() -> Option<Arc<Platform>> {
    CURRENT.get().cloned()
}

/// The `[outbound]` table that points a spawned engine at `platform`.
pub(crate) fn engine_config(platform: &Platform) -> String {
    format!("\n[outbound]\nwebhook_url = \"{}\"\n", platform.url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r27_idempotency_keys_name_the_outbox_id_within_its_workspace() {
        assert_eq!(outbox_id("sb-2a-5f00"), Some((1, 0x2a)));
        assert_eq!(outbox_id("sb-w1f-2a-5f00"), Some((0x1f, 0x2a)));
        assert_eq!(outbox_id("sb-wx-2a-5f00"), None);
        assert_eq!(outbox_id("other"), None);
    }

    #[tokio::test]
    async fn counts_and_checks_order() -> anyhow::Result<()> {
        let platform = start().await?;
        let client = reqwest::Client::new();
        let post = |key: &str, chat: &str, text: &str| {
            client
                .post(&platform.url)
                .header("Idempotency-Key", key)
                .json(&serde_json::json!({"chat_id": chat, "text": text}))
                .send()
        };
        let stamp = format!("{STAMP_PREFIX}{}", clock::stamp());
        for (key, chat) in [
            ("sb-1-a", "c1"),
            ("sb-2-a", "c2"),
            ("sb-3-a", "c1"),
            ("sb-3-a", "c1"),
            ("sb-a-a", "c2"),
            ("sb-4-a", "c2"),
            // Another workspace: the same outbox ids and chat ids are its own.
            ("sb-w2-1-a", "c1"),
            ("sb-w2-3-a", "c1"),
        ] {
            let answer = post(key, chat, &stamp).await?;
            assert_eq!(answer.status(), 200);
            let body: serde_json::Value = answer.json().await?;
            assert!(body["id"].as_str().is_some_and(|id| id.starts_with("fp-")));
        }
        let mark = platform.mark();
        assert_eq!(mark.received, 8);
        assert_eq!(mark.duplicates, 1);
        assert_eq!(mark.out_of_order, 1);
        assert_eq!(platform.chats(), 3);
        assert_eq!(platform.lag().3, 7);
        Ok(())
    }
}
