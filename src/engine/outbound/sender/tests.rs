//! The sender's stop (a workspace let go of): what the platform took on the way is recorded,
//! nothing more is attempted. And in a cluster: nothing is attempted while this node does not
//! hold the workspace.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use chrono::{TimeZone, Utc};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};

use super::{run_outbox_until, Ownership};
use crate::clock::{ManualClock, Timestamp};
use crate::core::Channel;
use crate::engine::outbound::connector::Connector;
use crate::engine::outbound::{Dispatch, Outbound, OutboxItem, Retry};
use crate::engine::{Engine, EngineConfig};
use crate::ids::{ChatId, CustomerId};
use crate::protocol::{MessageKind, OutboundMessage};

/// Bounds the waits of these tests (none is expected to take more than a moment).
const WITHIN: Duration = Duration::from_secs(10);

/// A platform that counts the POSTs it gets, tells when one arrived, and answers each only
/// once released.
#[derive(Default)]
struct Platform {
    posts: AtomicUsize,
    arrived: Notify,
    release: Notify,
}

async fn answer(State(platform): State<Arc<Platform>>) -> axum::Json<serde_json::Value> {
    let released = platform.release.notified();
    platform.posts.fetch_add(1, Ordering::SeqCst);
    platform.arrived.notify_one();
    released.await;
    axum::Json(serde_json::json!({ "id": "p-1" }))
}

async fn start_platform() -> (Arc<Platform>, String) {
    let platform = Arc::new(Platform::default());
    let app = axum::Router::new().fallback(answer).with_state(platform.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (platform, format!("http://{addr}/outbound"))
}

fn start() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("valid date")
}

fn item(next_at: Option<Timestamp>) -> OutboxItem {
    OutboxItem {
        id: 1,
        customer: CustomerId::from("cu-1"),
        seq: None,
        message: OutboundMessage {
            channel: Channel::Webchat.into(),
            to: "visitor-1".into(),
            customer_id: CustomerId::from("cu-1"),
            chat_id: ChatId::from("ch-1"),
            kind: MessageKind::Text,
            text: "hello".into(),
            params: Vec::new(),
            human_agent_tag: false,
            agent: None,
            reply_to: None,
            workspace: None,
        },
        key: "sb-1-1".into(),
        attempts: 0,
        next_at,
    }
}

/// A sender running for a fresh engine, posting to a platform, with one item handed over.
struct Running {
    task: tokio::task::JoinHandle<()>,
    engine: Arc<Engine>,
    stop: watch::Sender<bool>,
    /// The engine's end of the sender, held open as an engine holds it: the sender ends on its
    /// stop signal, not because the engine went.
    _dispatch: mpsc::UnboundedSender<Dispatch>,
}

fn sender(url: &str, item: OutboxItem, owner: Option<Arc<dyn Ownership>>) -> Running {
    let clock = ManualClock::new(start());
    let (outbound, _unused) = Outbound::channel();
    let engine = Engine::new(EngineConfig::default(), Arc::new(clock), outbound);
    let (dispatch, dispatches) = mpsc::unbounded_channel();
    dispatch
        .send(Dispatch {
            items: vec![item],
            committed: None,
        })
        .expect("the sender's end is open");
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run_outbox_until(
        engine.clone(),
        dispatches,
        Connector::webhook(url.to_owned()),
        Retry::default(),
        None,
        owner,
        stopped,
    ));
    Running {
        task,
        engine,
        stop,
        _dispatch: dispatch,
    }
}

#[tokio::test]
async fn r24_a_stopped_sender_records_what_the_platform_takes_on_the_way() {
    let (platform, url) = start_platform().await;
    let Running {
        task,
        engine,
        stop,
        _dispatch,
    } = sender(&url, item(None), None);
    tokio::time::timeout(WITHIN, platform.arrived.notified())
        .await
        .expect("the attempt reaches the platform");

    // Let go of (a hand-over) while the platform holds its answer; then it takes the message.
    stop.send_replace(true);
    platform.release.notify_one();
    tokio::time::timeout(WITHIN, task)
        .await
        .expect("the sender stops")
        .expect("the sender did not panic");

    // Recorded as taken: the next engine does not send it again (R24's key would let the
    // platform drop the repeat, but a hand-over need not make one).
    assert_eq!(engine.outbox_counters().sent.load(Ordering::Relaxed), 1);
    assert_eq!(platform.posts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn r24_a_stopped_sender_makes_no_attempt_that_waits_out_a_backoff() {
    let (platform, url) = start_platform().await;
    let later = start() + chrono::Duration::hours(1);
    let Running {
        task,
        engine,
        stop,
        _dispatch,
    } = sender(&url, item(Some(later)), None);

    stop.send_replace(true);
    tokio::time::timeout(WITHIN, task)
        .await
        .expect("the sender stops without waiting out the backoff")
        .expect("the sender did not panic");

    // Left in the store's outbox for the next engine: neither sent nor settled here.
    assert_eq!(platform.posts.load(Ordering::SeqCst), 0);
    let counters = engine.outbox_counters();
    assert_eq!(counters.sent.load(Ordering::Relaxed), 0);
    assert_eq!(counters.retried.load(Ordering::Relaxed), 0);
}

/// A lease as the sender sees it: held or not, as the test says; tells when it was asked.
#[derive(Debug, Default)]
struct Lease {
    held: AtomicBool,
    asked: Notify,
}

impl Ownership for Lease {
    fn holds(&self) -> bool {
        self.asked.notify_one();
        self.held.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn r28_a_node_that_does_not_hold_the_workspace_sends_nothing_until_it_does() {
    let (platform, url) = start_platform().await;
    let lease = Arc::new(Lease::default());
    let Running {
        task,
        engine,
        stop,
        _dispatch,
    } = sender(&url, item(None), Some(lease.clone() as Arc<dyn Ownership>));

    // Asked before the attempt, and not held (its time ran out while the node was stopped):
    // nothing goes out, whatever the item's readiness.
    tokio::time::timeout(WITHIN, lease.asked.notified())
        .await
        .expect("the sender asks whether the node holds the workspace");
    assert_eq!(platform.posts.load(Ordering::SeqCst), 0);

    // Renewed in time after all: it goes.
    lease.held.store(true, Ordering::SeqCst);
    tokio::time::timeout(WITHIN, platform.arrived.notified())
        .await
        .expect("the attempt reaches the platform once the lease is held");
    platform.release.notify_one();
    stop.send_replace(true);
    tokio::time::timeout(WITHIN, task)
        .await
        .expect("the sender stops")
        .expect("the sender did not panic");
    assert_eq!(engine.outbox_counters().sent.load(Ordering::Relaxed), 1);
    assert_eq!(platform.posts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn r28_a_node_that_lost_the_workspace_stops_without_sending_it() {
    let (platform, url) = start_platform().await;
    let lease = Arc::new(Lease::default());
    let Running {
        task,
        engine,
        stop,
        _dispatch,
    } = sender(&url, item(None), Some(lease.clone() as Arc<dyn Ownership>));
    tokio::time::timeout(WITHIN, lease.asked.notified())
        .await
        .expect("the sender asks whether the node holds the workspace");

    // The watchdog lets go: the workspace is unloaded, its sender stopped.
    stop.send_replace(true);
    tokio::time::timeout(WITHIN, task)
        .await
        .expect("the sender stops")
        .expect("the sender did not panic");
    assert_eq!(platform.posts.load(Ordering::SeqCst), 0);
    assert_eq!(engine.outbox_counters().sent.load(Ordering::Relaxed), 0);
}
