//! A fleet of simulated agents. Each agent is one task that owns its one or two WebSocket
//! connections and a [`Behaviour`]: the scenario's logic, a plain state machine that turns
//! frames, commands and timers into frames to send. The task reads both connections, feeds
//! what the behaviour wants sent and flushes once per wake-up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use indicatif::ProgressBar;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::clock;
use crate::socketio::{self, Packet};
use crate::stats::{Path, Stats};
use crate::wire::{self, Incoming};
use crate::workspaces::Workspaces;

/// One client WebSocket.
pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one connection may take to open and say `welcome`.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Frames queued to send, by connection index.
#[derive(Debug, Default)]
pub(crate) struct Out {
    sends: Vec<(usize, String)>,
}

impl Out {
    /// Queues `text` on connection `conn` (0 or 1).
    pub(crate) fn send(&mut self, conn: usize, text: String) {
        self.sends.push((conn, text));
    }
}

/// A scenario's per-agent logic.
pub(crate) trait Behaviour: Send + 'static {
    /// What the driver tells an agent.
    type Command: Send + 'static;
    /// The driver said something.
    fn command(&mut self, command: Self::Command, out: &mut Out);
    /// A frame arrived on connection `conn`.
    fn frame(&mut self, conn: usize, frame: Incoming<'_>, out: &mut Out);
    /// When [`Behaviour::timer`] wants to run next, if ever.
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// The deadline passed.
    fn timer(&mut self, _out: &mut Out) {}
}

/// A behaviour for agents that only hold their connections.
pub(crate) struct Idle;

impl Behaviour for Idle {
    type Command = ();
    fn command(&mut self, _: (), _: &mut Out) {}
    fn frame(&mut self, _: usize, _: Incoming<'_>, _: &mut Out) {}
}

/// The running agents.
pub(crate) struct Fleet<C> {
    /// One command channel per agent, in agent order.
    pub(crate) commands: Vec<mpsc::Sender<C>>,
    /// How long connecting every agent took.
    pub(crate) connect_time: Duration,
    /// Agents whose connections all opened.
    pub(crate) connected: usize,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// How an agent's frames travel on its socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Bare JSON text frames on `/v1/agent/ws` (the engine, the floor).
    Json,
    /// The same JSON frames as Socket.IO `frame` events on `/socket.io/` (the peer).
    SocketIo,
}

impl Dialect {
    /// Reads one text frame as this dialect's packet.
    fn packet(self, text: &str) -> Packet<'_> {
        match self {
            Dialect::Json => Packet::Frame(text),
            Dialect::SocketIo => socketio::packet(text),
        }
    }
}

/// How to reach the engine and how to connect.
#[derive(Clone, Debug)]
pub(crate) struct ConnectPlan {
    /// Every node's `ws://127.0.0.1:port` (one unless a cluster): agent `i` connects to
    /// node `i % n`.
    pub(crate) ws_bases: Vec<String>,
    /// How frames travel on the agents' sockets.
    pub(crate) dialect: Dialect,
    /// One token per agent.
    pub(crate) tokens: Vec<String>,
    /// Agent `i` connects below workspace `workspaces.of(i)`'s API root (the floor and the
    /// peer: [`Workspaces::unprefixed`]).
    pub(crate) workspaces: Workspaces,
    /// Connections per agent (1 or 2).
    pub(crate) conns_per_agent: usize,
    /// Connections opening at the same time.
    pub(crate) concurrency: usize,
}

fn ws_config() -> WebSocketConfig {
    // tungstenite's default 128 KiB read buffer per connection would make the harness the
    // memory hog of an idle run; frames here are a few hundred bytes.
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
}

/// The agents' WebSocket, below a workspace's API root (`/v1` or `/v1/w/{id}`).
pub(crate) const AGENT_WS: &str = "/agent/ws";

/// Opens one agent connection (below `api`, in the JSON dialect) and waits for `welcome`;
/// returns it and the welcome's `seq`.
pub(crate) async fn connect_agent(
    ws_base: &str,
    api: &str,
    token: &str,
    dialect: Dialect,
) -> anyhow::Result<(Ws, u64)> {
    match dialect {
        Dialect::Json => connect_to(ws_base, &format!("{api}{AGENT_WS}"), token).await,
        Dialect::SocketIo => {
            let url = format!("{ws_base}{}&token={token}", socketio::PATH);
            let (mut ws, _) =
                tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await?;
            socketio::handshake(&mut ws).await?;
            let seq = welcome(&mut ws, dialect).await?;
            Ok((ws, seq))
        }
    }
}

/// Opens one connection to the socket at `path` (the agents' or the supervisors') and waits
/// for `welcome`; returns it and the welcome's `seq`.
pub(crate) async fn connect_to(ws_base: &str, path: &str, token: &str) -> anyhow::Result<(Ws, u64)> {
    let url = format!("{ws_base}{path}?token={token}");
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await?;
    let seq = welcome(&mut ws, Dialect::Json).await?;
    Ok((ws, seq))
}

/// Waits for the `welcome` frame; returns its `seq`.
async fn welcome(ws: &mut Ws, dialect: Dialect) -> anyhow::Result<u64> {
    loop {
        match ws.next().await.context("closed before welcome")?? {
            Message::Text(text) => match dialect.packet(&text) {
                Packet::Frame(text) => {
                    let frame = wire::parse(text)?;
                    anyhow::ensure!(
                        frame.kind == "welcome",
                        "first frame is {}, not welcome",
                        frame.kind
                    );
                    return Ok(frame.seq.unwrap_or(0));
                }
                Packet::Ping => ws.send(Message::text(socketio::PONG)).await?,
                Packet::Closed => anyhow::bail!("closed before welcome"),
                Packet::Other(text) => anyhow::bail!("unexpected before welcome: {text:?}"),
            },
            Message::Close(close) => anyhow::bail!("closed before welcome: {close:?}"),
            _ => continue,
        }
    }
}

/// Connects every agent of `plan` (at most `concurrency` handshakes at once), starts its
/// task with the behaviour `make(i)` returns, and waits until all are connected or failed.
pub(crate) async fn launch<B: Behaviour>(
    plan: ConnectPlan,
    stats: Arc<Stats>,
    progress: &ProgressBar,
    mut make: impl FnMut(usize) -> B,
) -> Fleet<B::Command> {
    let total = plan.tokens.len();
    let (stop, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(plan.concurrency.max(1)));
    let settled = Arc::new(AtomicUsize::new(0));
    let connected = Arc::new(AtomicUsize::new(0));
    let (settled_tx, mut settled_rx) = watch::channel(());
    let settled_tx = Arc::new(settled_tx);
    let start = clock::now();
    let mut commands = Vec::with_capacity(total);
    let mut tasks = Vec::with_capacity(total);
    for (i, token) in plan.tokens.iter().enumerate() {
        let (tx, rx) = mpsc::channel(256);
        commands.push(tx);
        let behaviour = make(i);
        let (gate, settled, connected, settled_tx) = (
            gate.clone(),
            settled.clone(),
            connected.clone(),
            settled_tx.clone(),
        );
        let (stats, stop_rx, ws_base, token) = (
            stats.clone(),
            stop_rx.clone(),
            plan.ws_bases[crate::cluster::node_of(i, plan.ws_bases.len())].clone(),
            token.clone(),
        );
        let api = plan.workspaces.api(plan.workspaces.of(i)).to_owned();
        let (per_agent, dialect) = (plan.conns_per_agent, plan.dialect);
        tasks.push(tokio::spawn(async move {
            let mut conns = Vec::with_capacity(per_agent);
            {
                let _permit = gate.acquire().await;
                for _ in 0..per_agent {
                    let t0 = clock::now();
                    match tokio::time::timeout(
                        CONNECT_TIMEOUT,
                        connect_agent(&ws_base, &api, &token, dialect),
                    )
                    .await
                    {
                        Ok(Ok(conn)) => {
                            stats.record(Path::Connect, clock::micros_since(t0));
                            stats.conns.fetch_add(1, Ordering::Relaxed);
                            conns.push(conn);
                        }
                        Ok(Err(e)) => stats.error(&format!("connect: {}", short(&e))),
                        Err(_) => stats.error("connect: timed out"),
                    }
                }
            }
            let ok = conns.len() == per_agent;
            if ok {
                connected.fetch_add(1, Ordering::Relaxed);
            }
            settled.fetch_add(1, Ordering::Relaxed);
            let _ = settled_tx.send(());
            if ok {
                run(conns, dialect, behaviour, rx, stop_rx, stats).await;
            }
        }));
    }
    drop(settled_tx);
    progress.set_length(total as u64);
    while settled.load(Ordering::Relaxed) < total {
        let _ = tokio::time::timeout(Duration::from_millis(100), settled_rx.changed()).await;
        progress.set_position(settled.load(Ordering::Relaxed) as u64);
    }
    progress.set_position(total as u64);
    Fleet {
        commands,
        connect_time: start.elapsed(),
        connected: connected.load(Ordering::Relaxed),
        stop,
        tasks,
    }
}

/// The first line of an error chain, for grouping errors by kind.
pub(crate) fn short(e: &anyhow::Error) -> String {
    let text = e.to_string();
    // io errors carry an OS number that is the same for the same kind; keep the words only.
    text.split(" (os error").next().unwrap_or(&text).to_owned()
}

impl<C> Fleet<C> {
    /// Closes every connection and waits (briefly) for the tasks to end.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

async fn next_of(
    conn: &mut Option<(Ws, u64)>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match conn {
        Some((ws, _)) => ws.next().await,
        None => std::future::pending().await,
    }
}

/// One agent's loop: read both connections, run the behaviour, send what it queued.
async fn run<B: Behaviour>(
    conns: Vec<(Ws, u64)>,
    dialect: Dialect,
    mut behaviour: B,
    mut commands: mpsc::Receiver<B::Command>,
    mut stop: watch::Receiver<bool>,
    stats: Arc<Stats>,
) {
    let mut conns = conns.into_iter();
    let mut first = conns.next();
    let mut second = conns.next();
    let mut out = Out::default();
    let mut commands_open = true;
    let alive = loop {
        let deadline = behaviour.deadline();
        let wake = tokio::time::Instant::from_std(deadline.unwrap_or_else(clock::now));
        let (conn, message) = tokio::select! {
            _ = stop.changed() => break true,
            command = commands.recv(), if commands_open => {
                match command {
                    Some(command) => behaviour.command(command, &mut out),
                    None => commands_open = false,
                }
                (None, None)
            }
            m = next_of(&mut first) => (Some(0), m),
            m = next_of(&mut second) => (Some(1), m),
            _ = tokio::time::sleep_until(wake), if deadline.is_some() => {
                behaviour.timer(&mut out);
                (None, None)
            }
        };
        if let Some(conn) = conn {
            let slot = if conn == 0 { &mut first } else { &mut second };
            match message {
                Some(Ok(Message::Text(text))) => match dialect.packet(&text) {
                    Packet::Frame(body) => {
                        Stats::bump(&stats.frames_in);
                        // The whole WebSocket payload, the Socket.IO wrapping included.
                        stats.bytes_in.fetch_add(text.len() as u64, Ordering::Relaxed);
                        let last_seq = slot.as_mut().map(|(_, seq)| seq);
                        match wire::parse(body) {
                            Ok(frame) => {
                                observe(&frame, last_seq, &stats);
                                behaviour.frame(conn, frame, &mut out);
                            }
                            Err(_) => stats.error("unparsable frame"),
                        }
                    }
                    Packet::Ping => {
                        if let Some((ws, _)) = slot {
                            if ws.send(Message::text(socketio::PONG)).await.is_err() {
                                stats.error("send failed");
                                break false;
                            }
                        }
                    }
                    Packet::Closed => {
                        stats.error("closed by server");
                        break false;
                    }
                    Packet::Other(_) => stats.error("unexpected socket.io packet"),
                },
                Some(Ok(Message::Close(_))) | None => {
                    stats.error("closed by server");
                    break false;
                }
                Some(Err(e)) => {
                    stats.error(&format!("ws: {e}"));
                    break false;
                }
                Some(Ok(_)) => {}
            }
        }
        if !out.sends.is_empty()
            && send(&mut out, dialect, &mut first, &mut second, &stats)
                .await
                .is_err()
        {
            stats.error("send failed");
            break false;
        }
    };
    for (mut ws, _) in [first, second].into_iter().flatten() {
        if alive {
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        }
        stats.conns.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts pushes, checks that their sequence numbers have no gaps (R17), counts error codes.
fn observe(frame: &Incoming<'_>, last_seq: Option<&mut u64>, stats: &Stats) {
    match &*frame.kind {
        "push" => {
            Stats::bump(&stats.pushes);
            if let (Some(seq), Some(last)) = (frame.seq, last_seq) {
                if seq != *last + 1 {
                    stats.error("seq_gap");
                }
                *last = seq;
            }
        }
        "error" => stats.error(frame.code.as_deref().unwrap_or("error without code")),
        _ => {}
    }
}

async fn send(
    out: &mut Out,
    dialect: Dialect,
    first: &mut Option<(Ws, u64)>,
    second: &mut Option<(Ws, u64)>,
    stats: &Stats,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut touched = [false; 2];
    for (conn, text) in out.sends.drain(..) {
        let target = if conn == 0 { &mut *first } else { &mut *second };
        if let Some((ws, _)) = target {
            let text = match dialect {
                Dialect::Json => text,
                Dialect::SocketIo => socketio::event(&text),
            };
            ws.feed(Message::text(text)).await?;
            touched[conn.min(1)] = true;
            Stats::bump(&stats.ops);
        }
    }
    for (conn, ws) in [first, second].into_iter().enumerate() {
        if let (true, Some((ws, _))) = (touched[conn], ws) {
            ws.flush().await?;
        }
    }
    Ok(())
}
