//! Supervisors watching (`--supervisors N`): N supervisors registered through the admin API,
//! each with one connection to `/v1/supervisor/ws` subscribed to every queue, read for the
//! whole run while the scenario's agents work. With `--workspaces`, supervisor `i` watches
//! workspace `i % N` (below `/v1/w/{id}`), as agent `i` works in it. They only read: each one's task counts the
//! `pushes` frames, their events (scanned, not parsed: [`wire::scan_pushes`]) and bytes, and
//! any close the harness did not ask for.
//!
//! They run beside a scenario, not inside it: the agents' figures are measured exactly as
//! without them, so two runs (with and without) compare. Their tasks run on a runtime of their
//! own (one thread, `supervisors`): every 50 ms the engine sends each of them a frame of tens
//! of KiB at the same moment, and on the agents' runtime reading those would queue the
//! agents' tasks behind them, which the agents' latencies would then show as the engine's.
//! They still share the machine's cores with the engine and the agents.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::clock;
use crate::fleet::{self, Ws, CONNECT_TIMEOUT};
use crate::http::{self, AgentSpec};
use crate::report;
use crate::wire;
use crate::workspaces::Workspaces;

/// The supervisors' WebSocket, below a workspace's API root (`/v1` or `/v1/w/{id}`).
pub(crate) const SUPERVISOR_WS: &str = "/supervisor/ws";

/// The one request a watching supervisor sends: every queue, from a fresh board.
const SUBSCRIBE: &str = r#"{"id":"s1","type":"subscribe"}"#;

/// `n` supervisors `lt-s0…` with tokens `lt-s0-tok…` (apart from the agents' `lt-a…`).
pub(crate) fn specs(n: usize) -> Vec<AgentSpec> {
    (0..n)
        .map(|i| AgentSpec {
            id: format!("lt-s{i}"),
            name: format!("Load supervisor {i}"),
            role: "supervisor",
            limit: 0,
            token: format!("lt-s{i}-tok"),
            skills: std::collections::BTreeMap::new(),
        })
        .collect()
}

/// What the supervisors' tasks count, over the whole run.
#[derive(Debug, Default)]
struct Counters {
    /// Frames received after the subscription's reply, their events and bytes.
    frames: AtomicU64,
    events: AtomicU64,
    bytes: AtomicU64,
    /// Connections subscribed and not closed.
    open: AtomicUsize,
    /// Connections the engine closed (or lost) before the harness stopped them.
    closed_early: AtomicU64,
    /// Errors by kind: early closes with their close code, refused subscriptions, frames out
    /// of order or unreadable. Kept from the subscription on, not only in the window.
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn error(&self, what: String) {
        *self.errors.lock().entry(what).or_insert(0) += 1;
    }
}

/// The counters when the measured window opened.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    at: Instant,
    frames: u64,
    events: u64,
    bytes: u64,
}

/// What the supervisors received over the measured window, for the report.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct SupervisorFigures {
    /// `--supervisors`.
    pub(crate) requested: usize,
    /// Subscribed before the window opened.
    pub(crate) subscribed: usize,
    /// Still connected when the window closed.
    pub(crate) connected: usize,
    /// How long registering, connecting and subscribing them all took.
    pub(crate) subscribe_all_s: f64,
    /// Mean size of the board in the subscription's reply.
    pub(crate) board_bytes: u64,
    /// `pushes` frames per second, per subscribed supervisor.
    pub(crate) frames_per_s_each: f64,
    /// Board events per second, per subscribed supervisor.
    pub(crate) events_per_s_each: f64,
    /// Mean size of a frame.
    pub(crate) bytes_per_frame: f64,
    /// What all of them received together, MiB per second.
    pub(crate) mib_per_s_all: f64,
    /// Connections that ended before the harness closed them (since they subscribed); their
    /// close codes are in the report's errors.
    pub(crate) closed_early: u64,
}

/// The watching supervisors.
pub(crate) struct Watchers {
    requested: usize,
    subscribed: usize,
    subscribe_time: Duration,
    board_bytes: u64,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    _runtime: Own,
}

/// The supervisors' runtime; shut down without waiting when dropped (a runtime may not be
/// dropped in async code otherwise).
struct Own(Option<Runtime>);

impl Drop for Own {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Opens one supervisor connection below `api`, subscribes to every queue and waits for the
/// board; returns the connection and the board reply's size.
async fn subscribe(ws_base: &str, api: &str, token: &str) -> anyhow::Result<(Ws, usize)> {
    let (mut ws, _) = fleet::connect_to(ws_base, &format!("{api}{SUPERVISOR_WS}"), token).await?;
    ws.send(Message::text(SUBSCRIBE)).await?;
    loop {
        match ws.next().await.context("closed before the board")?? {
            Message::Text(text) => {
                let frame = wire::parse_supervisor(&text)?;
                match (&*frame.kind, frame.id.as_deref()) {
                    ("ok", Some("s1")) => {
                        let kind = frame.result.map(|r| r.kind.into_owned()).unwrap_or_default();
                        anyhow::ensure!(kind == "board", "subscribe answered {kind}, not board");
                        return Ok((ws, text.len()));
                    }
                    ("error", _) => anyhow::bail!(
                        "subscribe refused: {}",
                        frame.code.as_deref().unwrap_or("error without code")
                    ),
                    // Nothing is pushed before the board; anything else is not counted.
                    _ => {}
                }
            }
            Message::Close(close) => anyhow::bail!(
                "closed before the board: {}",
                close.map_or("no code".to_owned(), |c| u16::from(c.code).to_string())
            ),
            _ => {}
        }
    }
}

impl Watchers {
    /// No supervisors.
    pub(crate) fn none() -> Self {
        Self {
            requested: 0,
            subscribed: 0,
            subscribe_time: Duration::ZERO,
            board_bytes: 0,
            counters: Arc::default(),
            stop: watch::channel(false).0,
            tasks: Vec::new(),
            _runtime: Own(None),
        }
    }

    /// Registers `n` supervisors on the engine at `base`, spread over `workspaces`, connects
    /// them (`concurrency` handshakes and subscriptions at a time), subscribes each to every
    /// queue of its workspace, and starts reading. Fails unless all of them got their board.
    pub(crate) async fn start(
        client: &reqwest::Client,
        base: &str,
        ws_base: &str,
        workspaces: &Workspaces,
        n: usize,
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        if n == 0 {
            return Ok(Self::none());
        }
        let start = clock::now();
        http::create_spread(client, base, workspaces, &specs(n)).await?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("supervisors")
            .enable_all()
            .build()?;
        eprintln!("supervisors: {n} registered; connecting and subscribing to every queue");
        let counters = Arc::new(Counters::default());
        let (stop, stop_rx) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(concurrency.max(1)));
        let (settled_tx, mut settled_rx) = tokio::sync::mpsc::channel::<Option<usize>>(n);
        let mut tasks = Vec::with_capacity(n);
        for (i, spec) in specs(n).into_iter().enumerate() {
            let (gate, counters, settled_tx, mut stop_rx, ws_base) = (
                gate.clone(),
                counters.clone(),
                settled_tx.clone(),
                stop_rx.clone(),
                ws_base.to_owned(),
            );
            let api = workspaces.api(workspaces.of(i)).to_owned();
            tasks.push(runtime.spawn(async move {
                let opened = {
                    let _permit = gate.acquire().await;
                    tokio::time::timeout(CONNECT_TIMEOUT, subscribe(&ws_base, &api, &spec.token)).await
                };
                let ws = match opened {
                    Ok(Ok((ws, board))) => {
                        counters.open.fetch_add(1, Ordering::Relaxed);
                        let _ = settled_tx.send(Some(board)).await;
                        ws
                    }
                    Ok(Err(e)) => {
                        counters.error(format!("supervisor subscribe: {}", fleet::short(&e)));
                        let _ = settled_tx.send(None).await;
                        return;
                    }
                    Err(_) => {
                        counters.error("supervisor subscribe: timed out".to_owned());
                        let _ = settled_tx.send(None).await;
                        return;
                    }
                };
                drop(settled_tx);
                read(ws, &counters, &mut stop_rx).await;
                counters.open.fetch_sub(1, Ordering::Relaxed);
            }));
        }
        drop(settled_tx);
        let progress = report::bar(n as u64, "supervisors");
        let (mut settled, mut subscribed, mut board_bytes) = (0, 0, 0u64);
        while let Some(board) = settled_rx.recv().await {
            settled += 1;
            if let Some(bytes) = board {
                subscribed += 1;
                board_bytes += bytes as u64;
            }
            progress.set_position(settled);
            if settled == n as u64 {
                break;
            }
        }
        progress.finish_and_clear();
        let watchers = Self {
            requested: n,
            subscribed,
            subscribe_time: start.elapsed(),
            board_bytes: board_bytes / subscribed.max(1) as u64,
            counters,
            stop,
            tasks,
            _runtime: Own(Some(runtime)),
        };
        if subscribed < n {
            let errors = watchers.counters.errors.lock().clone();
            watchers.shutdown().await;
            anyhow::bail!("only {subscribed} of {n} supervisors subscribed: {errors:?}");
        }
        eprintln!(
            "supervisors: {n} subscribed in {:.2} s (boards of {} bytes)",
            watchers.subscribe_time.as_secs_f64(),
            watchers.board_bytes
        );
        Ok(watchers)
    }

    /// Marks the counters: the measured window opens.
    pub(crate) fn mark(&self) -> Mark {
        let c = &self.counters;
        Mark {
            at: clock::now(),
            frames: c.frames.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }

    /// What came since `mark`: the window closes.
    pub(crate) fn figures(&self, mark: &Mark) -> SupervisorFigures {
        let c = &self.counters;
        let secs = mark.at.elapsed().as_secs_f64().max(1e-9);
        let frames = c.frames.load(Ordering::Relaxed) - mark.frames;
        let events = c.events.load(Ordering::Relaxed) - mark.events;
        let bytes = c.bytes.load(Ordering::Relaxed) - mark.bytes;
        let each = self.subscribed.max(1) as f64;
        let round = |x: f64| (x * 10.0).round() / 10.0;
        SupervisorFigures {
            requested: self.requested,
            subscribed: self.subscribed,
            connected: c.open.load(Ordering::Relaxed),
            subscribe_all_s: (self.subscribe_time.as_secs_f64() * 100.0).round() / 100.0,
            board_bytes: self.board_bytes,
            frames_per_s_each: round(frames as f64 / secs / each),
            events_per_s_each: round(events as f64 / secs / each),
            bytes_per_frame: round(bytes as f64 / frames.max(1) as f64),
            mib_per_s_all: (bytes as f64 / secs / 1_048_576.0 * 100.0).round() / 100.0,
            closed_early: c.closed_early.load(Ordering::Relaxed),
        }
    }

    /// The supervisors' errors since they subscribed, to add to a report's.
    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        self.counters.errors.lock().clone()
    }

    /// Closes every supervisor connection and waits (briefly) for the tasks to end.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// Reads one supervisor connection until the harness stops it or it ends.
async fn read(mut ws: Ws, counters: &Counters, stop: &mut watch::Receiver<bool>) {
    let mut last_seq = 0u64;
    loop {
        let message = tokio::select! {
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return;
            }
            message = ws.next() => message,
        };
        let ended = match message {
            Some(Ok(Message::Text(text))) => {
                counters.frames.fetch_add(1, Ordering::Relaxed);
                counters.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                // `pushes` frames are only scanned; anything else is parsed.
                let events = match wire::scan_pushes(&text) {
                    Some(events) => Some(events),
                    None => match wire::parse_supervisor(&text) {
                        Ok(frame) => {
                            if frame.kind == "error" {
                                counters.error(format!(
                                    "supervisor error: {}",
                                    frame.code.as_deref().unwrap_or("error without code")
                                ));
                            }
                            frame.events
                        }
                        Err(_) => {
                            counters.error("supervisor unparsable frame".to_owned());
                            None
                        }
                    },
                };
                if let Some(events) = events {
                    counters.events.fetch_add(events.count, Ordering::Relaxed);
                    if !events.increasing || events.first.is_some_and(|first| first <= last_seq) {
                        counters.error("supervisor seq out of order".to_owned());
                    }
                    last_seq = events.last.unwrap_or(last_seq);
                }
                None
            }
            Some(Ok(Message::Close(close))) => Some(match close {
                Some(c) => format!("{} {}", u16::from(c.code), c.reason),
                None => "no code".to_owned(),
            }),
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(format!("ws: {e}")),
            None => Some("no close frame".to_owned()),
        };
        if let Some(why) = ended {
            counters.closed_early.fetch_add(1, Ordering::Relaxed);
            counters.error(format!("supervisor closed early: {why}"));
            return;
        }
    }
}
