//! A fake platform behind the engine's `[outbound] webhook_url` (R24): an HTTP server on
//! 127.0.0.1 that lives for the whole test, across the engine's kills and restarts, and
//! records every POST with its `Idempotency-Key`, its JSON body, the answer it chose and the
//! engine's incarnation (its "epoch": 1 for the first start, one more for each restart; in the
//! cluster's chaos test, one more for each node hit). Each node of a cluster posts to a path of
//! its own ([`Platform::url_of_node`]), so that the platform knows which node sent what.
//!
//! It is slow and unreliable on purpose, so that messages are pending (queued behind a slow
//! answer, or waiting out a backoff) when the engine is killed: each answer comes after a
//! random delay, and a share of them are 503s. A request answered 2xx counts as delivered
//! from the moment the platform decides so, whether or not the engine lives to read the answer
//! — as for a real platform, which has sent the message by then.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::workload::Rng;

/// The platform's answers take this long (milliseconds, uniformly), and this share of them
/// (percent) are 503s.
const DELAY_MS: (u64, u64) = (20, 120);
const UNAVAILABLE_PERCENT: usize = 25;

/// The wall clock, for reporting how long before a kill a request arrived.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// One POST the platform got.
#[derive(Clone, Debug)]
pub(crate) struct Post {
    pub(crate) key: String,
    pub(crate) chat: String,
    pub(crate) text: String,
    pub(crate) kind: String,
    /// The workspace it is from (the body's `workspace`; `default` has none).
    pub(crate) workspace: String,
    /// The node that sent it: the last segment of [`Platform::url_of_node`]'s path; empty
    /// when the engine posts to [`Platform::url`].
    pub(crate) node: String,
    /// The engine's incarnation that sent it.
    pub(crate) epoch: usize,
    /// Answered 2xx: delivered.
    pub(crate) delivered: bool,
    pub(crate) at: Instant,
    /// How long the platform took to answer it.
    pub(crate) answer_after: Duration,
}

struct Inner {
    posts: Vec<Post>,
    epoch: usize,
    rng: Rng,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    /// How many POSTs so far: changes on every one.
    count: watch::Sender<usize>,
}

/// The fake platform; stops with the test's runtime.
pub(crate) struct Platform {
    pub(crate) addr: SocketAddr,
    shared: Shared,
}

impl Platform {
    pub(crate) async fn start(rng: Rng) -> Self {
        let shared = Shared {
            inner: Arc::new(Mutex::new(Inner {
                posts: Vec::new(),
                epoch: 1,
                rng,
            })),
            count: watch::channel(0).0,
        };
        let app = axum::Router::new().fallback(answer).with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake platform");
        let addr = listener.local_addr().expect("the fake platform's address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, shared }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/outbound", self.addr)
    }

    /// The URL for the cluster node `node`: what it posts is recorded as its.
    #[allow(dead_code)] // The cluster's chaos test has nodes; the crash test has one engine.
    pub(crate) fn url_of_node(&self, node: &str) -> String {
        format!("http://{}/outbound/node/{node}", self.addr)
    }

    /// The engine was restarted (in a cluster: a node was hit): what arrives from now on is the
    /// next incarnation's.
    pub(crate) fn next_epoch(&self) {
        self.shared.inner.lock().expect("platform lock").epoch += 1;
    }

    pub(crate) fn posts(&self) -> Vec<Post> {
        self.shared.inner.lock().expect("platform lock").posts.clone()
    }

    /// Waits until every message of `texts` (workspace, text) was delivered, or `within`
    /// passes; the ones still missing then. Woken by each POST, not by a timer.
    pub(crate) async fn wait_delivered(
        &self,
        texts: &BTreeSet<(String, String)>,
        within: Duration,
    ) -> BTreeSet<(String, String)> {
        let mut count = self.shared.count.subscribe();
        let missing = |posts: &[Post]| -> BTreeSet<(String, String)> {
            let delivered: BTreeSet<(&str, &str)> = posts
                .iter()
                .filter(|p| p.delivered)
                .map(|p| (p.workspace.as_str(), p.text.as_str()))
                .collect();
            texts
                .iter()
                .filter(|(ws, text)| !delivered.contains(&(ws.as_str(), text.as_str())))
                .cloned()
                .collect()
        };
        let waited = tokio::time::timeout(within, async {
            loop {
                count.borrow_and_update();
                if missing(&self.posts()).is_empty() {
                    return;
                }
                if count.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        let _ = waited;
        missing(&self.posts())
    }
}

/// The `[outbound]` section of an engine's config that posts to `webhook_url`. Many attempts
/// with short backoffs: the platform's 503s delay a message but never make it fail.
pub(crate) fn outbound_config(webhook_url: &str) -> String {
    format!(
        "[outbound]\n\
         webhook_url = \"{webhook_url}\"\n\
         attempts = 1000\n\
         first_backoff_ms = 20\n\
         max_backoff_ms = 200\n"
    )
}

async fn answer(State(shared): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
    let node = uri
        .path()
        .strip_prefix("/outbound/node/")
        .unwrap_or_default()
        .to_owned();
    let workspace = body["workspace"].as_str().unwrap_or("default").to_owned();
    let (delay, delivered, n) = {
        let mut inner = shared.inner.lock().expect("platform lock");
        let delay = inner.rng.between(DELAY_MS.0, DELAY_MS.1);
        let delivered = !inner.rng.percent(UNAVAILABLE_PERCENT);
        let epoch = inner.epoch;
        inner.posts.push(Post {
            key: headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            chat: field("chat_id"),
            text: field("text"),
            kind: field("kind"),
            workspace,
            node,
            epoch,
            delivered,
            at: now(),
            answer_after: Duration::from_millis(delay),
        });
        (delay, delivered, inner.posts.len())
    };
    shared.count.send_replace(n);
    // The platform's simulated slowness: what keeps messages pending when the engine dies.
    tokio::time::sleep(Duration::from_millis(delay)).await;
    if delivered {
        (StatusCode::OK, axum::Json(json!({ "id": format!("wh-{n}") }))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response()
    }
}

/// What the platform saw, summed up for the test's output and checks.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    /// Keys delivered (2xx) more than once, with the epochs of their deliveries and, for each
    /// delivery that another followed, how many milliseconds before the kill of its engine
    /// the platform answered it (negative: the answer was due after the kill, so the engine
    /// never read it; none: its engine was not killed).
    pub(crate) duplicated: BTreeMap<String, (Vec<usize>, Vec<Option<i128>>)>,
    /// Deliveries beyond the first of each key.
    pub(crate) extra: usize,
    pub(crate) posts: usize,
    pub(crate) delivered_keys: usize,
    pub(crate) unavailable: usize,
}

/// Sums up `posts`; `kills[e - 1]` is when epoch `e`'s engine was killed.
pub(crate) fn deliveries(posts: &[Post], kills: &[Instant]) -> Deliveries {
    let mut by_key: BTreeMap<&str, Vec<&Post>> = BTreeMap::new();
    for post in posts.iter().filter(|p| p.delivered) {
        by_key.entry(&post.key).or_default().push(post);
    }
    let mut d = Deliveries {
        posts: posts.len(),
        delivered_keys: by_key.len(),
        unavailable: posts.iter().filter(|p| !p.delivered).count(),
        ..Deliveries::default()
    };
    for (key, delivered) in by_key {
        if delivered.len() > 1 {
            d.extra += delivered.len() - 1;
            let before_kill = delivered[..delivered.len() - 1]
                .iter()
                .map(|p| {
                    kills.get(p.epoch - 1).map(|kill| {
                        let arrived = kill.saturating_duration_since(p.at).as_millis() as i128;
                        arrived - p.answer_after.as_millis() as i128
                    })
                })
                .collect();
            d.duplicated.insert(
                key.to_owned(),
                (delivered.iter().map(|p| p.epoch).collect(), before_kill),
            );
        }
    }
    d
}
