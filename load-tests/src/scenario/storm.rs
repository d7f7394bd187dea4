//! `reopen-storm`: agents reopen closed chats, customers answer over HTTP, agents close
//! again, around and around. Each agent has two connections: it sends on the first, and the
//! second only receives, so "reopen → push" is measured where another tab would see it.
//!
//! One cycle, per customer: `reopen` → (`ok` on the first connection and `chat_reopened` on
//! the second) → the customer writes over HTTP → `chat_activated` + `customer_message` on the
//! second → `close` → (`ok` and `chat_closed` on the second). Three requests per cycle.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{Common, StormArgs};
use crate::clock;
use crate::fleet::{self, Behaviour, ConnectPlan, Out};
use crate::http::{self, Job, Message, Pool};
use crate::platform;
use crate::procstat;
use crate::report::{self, Report, Window};
use crate::scenario::{closed_chats, run_prefix, Pacer, Setup, Spread};
use crate::stats::{Path, Stats};
use crate::supervisors::Watchers;
use crate::target::{Kind, Target};
use crate::wire::{self, Incoming};
use crate::workspaces::Workspaces;

const REOPEN_OK: u8 = 1;
const REOPEN_PUSH: u8 = 2;
const REPLY_SENT: u8 = 4;
const ACTIVATED: u8 = 8;
const CLOSE_SENT: u8 = 16;
const CLOSE_OK: u8 = 32;
const CLOSE_PUSH: u8 = 64;

/// Requests per cycle.
const OPS_PER_CYCLE: u64 = 3;

/// What the driver tells an agent.
pub(crate) enum Command {
    /// These customers (address, closed chat) are yours to reopen.
    Assign(Vec<(Arc<str>, Box<str>)>),
    /// Open loop: start one cycle now.
    Start,
    /// Closed loop: keep this many cycles in flight.
    Run(u64),
    /// `--outbound-rate`: reopen these chats and keep them, for `send_message`.
    Outbound(Vec<Box<str>>),
    /// `--outbound-rate`: send one message in the next of those chats.
    Send,
}

/// What every agent of a storm shares.
struct Shared {
    pool: Pool,
    stopping: AtomicBool,
    started: AtomicU64,
    max_cycles: AtomicU64,
    /// Outbound chats reopened (ready for `send_message`), and those that could not be.
    out_ready: AtomicU64,
    out_refused: AtomicU64,
    /// `send_message` answered ok.
    out_ok: AtomicU64,
}

struct Slot {
    from: Arc<str>,
    chat: Box<str>,
    flags: u8,
    busy: bool,
    /// When the customer's message left, as a [`clock::stamp`]; set by the HTTP worker.
    stamp: Arc<AtomicU64>,
    reopen_sent: Instant,
    close_sent: Instant,
}

/// One agent of the storm.
pub(crate) struct StormAgent {
    /// Its workspace's number, where its customers write.
    workspace: usize,
    slots: Vec<Slot>,
    idle: Vec<usize>,
    want: u64,
    running: u64,
    shared: Arc<Shared>,
    stats: Arc<Stats>,
    setup: Setup,
    /// `--outbound-rate`: this agent's own chats for `send_message`, when each was sent, and
    /// the next to write in.
    out_chats: Vec<Box<str>>,
    out_sent: Vec<Instant>,
    out_next: usize,
    /// Requests sent: part of each id, which must be new for every request (a repeated id
    /// is a retry, answered with the first reply).
    sent: u64,
}

/// The slot a reply's id (`{prefix}{slot}:{n}`) names.
fn slot_of(id: &str, prefix: &str) -> Option<usize> {
    id.strip_prefix(prefix)?.split(':').next()?.parse().ok()
}

impl StormAgent {
    fn find(&self, chat: &str) -> Option<usize> {
        self.slots.iter().position(|s| &*s.chat == chat && s.busy)
    }

    /// Starts a cycle on an idle customer, if the budget allows; false when it does not.
    fn try_start(&mut self, out: &mut Out) -> bool {
        if self.shared.stopping.load(Ordering::Relaxed) {
            return false;
        }
        let Some(i) = self.idle.pop() else {
            Stats::bump(&self.stats.skipped);
            return false;
        };
        if self.shared.started.fetch_add(1, Ordering::Relaxed)
            >= self.shared.max_cycles.load(Ordering::Relaxed)
        {
            self.idle.push(i);
            return false;
        }
        let slot = &mut self.slots[i];
        slot.flags = 0;
        slot.busy = true;
        slot.stamp.store(0, Ordering::Relaxed);
        slot.reopen_sent = clock::now();
        self.sent += 1;
        out.send(
            0,
            wire::request(format_args!("r:{i}:{}", self.sent), "reopen", &slot.chat),
        );
        self.running += 1;
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// A cycle ended (completed or failed): free the customer, start the next if wanted.
    fn end(&mut self, i: usize, completed: bool, out: &mut Out) {
        let slot = &mut self.slots[i];
        if !slot.busy {
            return;
        }
        slot.busy = false;
        if completed {
            self.stats
                .record(Path::Cycle, clock::micros_since(slot.reopen_sent));
            Stats::bump(&self.stats.done);
        }
        self.idle.push(i);
        self.running -= 1;
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        while self.running < self.want && self.try_start(out) {}
    }

    fn flag(&mut self, i: usize, flag: u8, out: &mut Out) {
        let slot = &mut self.slots[i];
        slot.flags |= flag;
        let f = slot.flags;
        if f & (REOPEN_OK | REOPEN_PUSH | REPLY_SENT) == REOPEN_OK | REOPEN_PUSH {
            slot.flags |= REPLY_SENT;
            self.shared.pool.submit(Job::new(Message::Reply {
                from: slot.from.clone(),
                workspace: self.workspace,
                stamp: slot.stamp.clone(),
            }));
        }
        if f & (CLOSE_SENT | CLOSE_OK | CLOSE_PUSH) == CLOSE_SENT | CLOSE_OK | CLOSE_PUSH {
            self.end(i, true, out);
        }
    }

    /// One `send_message` in the next outbound chat; its text carries the send stamp, for
    /// the fake platform.
    fn send_one(&mut self, out: &mut Out) {
        if self.out_chats.is_empty() || self.shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        let k = self.out_next % self.out_chats.len();
        self.out_next += 1;
        self.sent += 1;
        self.out_sent[k] = clock::now();
        out.send(
            0,
            format!(
                r#"{{"id":"m:{k}:{}","type":"send_message","chat_id":"{}","text":"{}{}"}}"#,
                self.sent,
                self.out_chats[k],
                platform::STAMP_PREFIX,
                clock::stamp()
            ),
        );
    }

    fn reply(&mut self, id: &str, ok: bool, out: &mut Out) {
        if let Some(k) = slot_of(id, "m:").filter(|&k| k < self.out_sent.len()) {
            self.stats
                .record(Path::SendReply, clock::micros_since(self.out_sent[k]));
            if ok {
                Stats::bump(&self.shared.out_ok);
            }
        } else if id.starts_with("or:") {
            let counter = if ok {
                &self.shared.out_ready
            } else {
                &self.shared.out_refused
            };
            Stats::bump(counter);
        } else if let Some(i) = slot_of(id, "r:").filter(|&i| i < self.slots.len()) {
            self.stats
                .record(Path::ReopenReply, clock::micros_since(self.slots[i].reopen_sent));
            if ok {
                self.flag(i, REOPEN_OK, out);
            } else {
                self.end(i, false, out);
            }
        } else if let Some(i) = slot_of(id, "c:").filter(|&i| i < self.slots.len()) {
            self.stats
                .record(Path::CloseReply, clock::micros_since(self.slots[i].close_sent));
            if ok {
                self.flag(i, CLOSE_OK, out);
            } else {
                self.end(i, false, out);
            }
        }
    }

    fn push(&mut self, kind: &str, chat: &str, out: &mut Out) {
        let Some(i) = self.find(chat) else { return };
        let slot = &mut self.slots[i];
        match kind {
            "chat_reopened" if slot.flags & REOPEN_PUSH == 0 => {
                self.stats
                    .record(Path::ReopenPush, clock::micros_since(slot.reopen_sent));
                self.flag(i, REOPEN_PUSH, out);
            }
            "chat_activated" if slot.flags & REPLY_SENT != 0 => {
                let stamp = slot.stamp.load(Ordering::Acquire);
                if stamp != 0 {
                    self.stats
                        .record(Path::IngressPush, clock::since_stamp(stamp).as_micros() as u64);
                }
                slot.flags |= ACTIVATED;
            }
            "customer_message" if slot.flags & (ACTIVATED | CLOSE_SENT) == ACTIVATED => {
                slot.flags |= CLOSE_SENT;
                slot.close_sent = clock::now();
                self.sent += 1;
                out.send(
                    0,
                    wire::request(format_args!("c:{i}:{}", self.sent), "close", &slot.chat),
                );
            }
            "chat_closed" if slot.flags & CLOSE_SENT != 0 => {
                self.stats
                    .record(Path::ClosePush, clock::micros_since(slot.close_sent));
                self.flag(i, CLOSE_PUSH, out);
            }
            _ => {}
        }
    }
}

impl Behaviour for StormAgent {
    type Command = Command;

    fn command(&mut self, command: Command, out: &mut Out) {
        match command {
            Command::Assign(customers) => {
                let now = clock::now();
                self.slots = customers
                    .into_iter()
                    .map(|(from, chat)| Slot {
                        from,
                        chat,
                        flags: 0,
                        busy: false,
                        stamp: Arc::new(AtomicU64::new(0)),
                        reopen_sent: now,
                        close_sent: now,
                    })
                    .collect();
                self.idle = (0..self.slots.len()).rev().collect();
            }
            Command::Start => {
                self.try_start(out);
            }
            Command::Run(n) => {
                self.want = n;
                while self.running < self.want && self.try_start(out) {}
            }
            Command::Outbound(chats) => {
                for (k, chat) in chats.iter().enumerate() {
                    self.sent += 1;
                    out.send(
                        0,
                        wire::request(format_args!("or:{k}:{}", self.sent), "reopen", chat),
                    );
                }
                self.out_sent = vec![clock::now(); chats.len()];
                self.out_chats = chats;
            }
            Command::Send => self.send_one(out),
        }
    }

    fn frame(&mut self, conn: usize, frame: Incoming<'_>, out: &mut Out) {
        if self.setup.frame(conn, &frame, out) {
            return;
        }
        match (&*frame.kind, conn) {
            ("ok", _) | ("error", _) => {
                if let Some(id) = frame.id.as_deref() {
                    self.reply(id, frame.kind == "ok", out);
                }
            }
            ("push", 1) => {
                if let Some(event) = &frame.event {
                    if let Some(chat) = event.chat() {
                        self.push(&event.kind, chat, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Runs the storm against `target` and reports the measured window; `supervisors` watch the
/// board meanwhile (the engine only).
pub(crate) async fn run(
    target: &Target,
    common: &Common,
    args: &StormArgs,
    supervisors: u64,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        supervisors == 0 || target.kind == Kind::Engine,
        "only the engine has a supervisor socket"
    );
    anyhow::ensure!(
        args.outbound_rate.is_none() || target.kind == Kind::Engine,
        "--outbound-rate: only the engine sends outbound messages"
    );
    let stats = Arc::new(Stats::new());
    let workers = http::workers_for(args.concurrency, common.http_workers);
    let client = http::client(workers)?;
    let agents = args.agents as usize;
    let per_agent = args.customers_per_agent as usize;
    let specs = http::agents(agents, 10_000);
    let workspaces = match target.kind {
        Kind::Engine => {
            anyhow::ensure!(
                args.workspaces <= args.agents,
                "--workspaces {} needs at least as many --agents (got {agents})",
                args.workspaces
            );
            Workspaces::create(&client, &target.base, args.workspaces as usize).await?
        }
        // Neither has workspaces: the same load on its one set of paths.
        Kind::Floor | Kind::Peer => Workspaces::unprefixed(),
    };
    if target.kind == Kind::Engine {
        http::create_spread(&client, &target.base, &workspaces, &specs).await?;
        crate::cluster::settle(target, &workspaces, &specs).await?;
    }
    let pool = Pool::start(
        client.clone(),
        &target.bases(),
        &workspaces,
        workers,
        stats.clone(),
    )?;
    let shared = Arc::new(Shared {
        pool: pool.clone(),
        stopping: AtomicBool::new(false),
        started: AtomicU64::new(0),
        max_cycles: AtomicU64::new(u64::MAX),
        out_ready: AtomicU64::new(0),
        out_refused: AtomicU64::new(0),
        out_ok: AtomicU64::new(0),
    });
    let setup = Setup {
        closed: Arc::new(AtomicU64::new(0)),
    };
    eprintln!("connecting {agents} agents x 2 connections ({:?})", target.kind);
    let plan = ConnectPlan {
        ws_bases: target.ws_bases(),
        dialect: target.dialect(),
        tokens: specs.iter().map(|s| s.token.clone()).collect(),
        workspaces: workspaces.clone(),
        conns_per_agent: 2,
        concurrency: common.connect_concurrency,
    };
    let bar = report::bar(agents as u64, "connecting");
    let fleet = fleet::launch(plan, stats.clone(), &bar, |i| StormAgent {
        workspace: workspaces.of(i),
        slots: Vec::new(),
        idle: Vec::new(),
        want: 0,
        running: 0,
        shared: shared.clone(),
        stats: stats.clone(),
        setup: setup.clone(),
        out_chats: Vec::new(),
        out_sent: Vec::new(),
        out_next: 0,
        sent: 0,
    })
    .await;
    bar.finish_and_clear();
    let connect_secs = fleet.connect_time.as_secs_f64();
    eprintln!("connected {} agents in {connect_secs:.2} s", fleet.connected);
    anyhow::ensure!(
        fleet.connected == agents,
        "only {} of {agents} agents connected: {:?}",
        fleet.connected,
        stats.errors()
    );

    let prefix = run_prefix();
    // With --outbound-rate, one more customer per agent, whose chat the agent keeps for
    // `send_message` (the last `agents` of `from`).
    let outbound_chats = if args.outbound_rate.is_some() { agents } else { 0 };
    let from: Vec<String> = (0..agents * per_agent + outbound_chats)
        .map(|i| format!("{prefix}{i}"))
        .collect();
    // Each customer writes in the workspace of the agent it is assigned to below.
    let agent_of = |c: usize| {
        if c < agents * per_agent {
            c / per_agent
        } else {
            c - agents * per_agent
        }
    };
    let spread = Spread {
        workspaces: &workspaces,
        of: (0..from.len()).map(|c| workspaces.of(agent_of(c))).collect(),
    };
    let chats = match target.kind {
        Kind::Engine => {
            closed_chats(
                target,
                &client,
                workers,
                from.clone(),
                spread,
                &setup,
                stats.clone(),
            )
            .await?
        }
        // The floor and the peer have no chats: the customer's address names its chat.
        Kind::Floor | Kind::Peer => from.clone(),
    };
    for (j, tx) in fleet.commands.iter().enumerate() {
        let mine = (j * per_agent..(j + 1) * per_agent)
            .map(|i| {
                (
                    Arc::<str>::from(from[i].as_str()),
                    chats[i].clone().into_boxed_str(),
                )
            })
            .collect();
        tx.send(Command::Assign(mine)).await?;
    }
    if outbound_chats > 0 {
        for (j, tx) in fleet.commands.iter().enumerate() {
            let chat = chats[agents * per_agent + j].clone().into_boxed_str();
            tx.send(Command::Outbound(vec![chat])).await?;
        }
        let start = clock::now();
        while shared.out_ready.load(Ordering::Relaxed) + shared.out_refused.load(Ordering::Relaxed)
            < agents as u64
        {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "setup: only {} of {agents} outbound chats reopened after 60 s",
                shared.out_ready.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::ensure!(
            shared.out_refused.load(Ordering::Relaxed) == 0,
            "setup: {} outbound chats could not be reopened: {:?}",
            shared.out_refused.load(Ordering::Relaxed),
            stats.errors()
        );
        eprintln!("setup: {agents} outbound chats reopened, one per agent");
    }
    // Subscribed before the load starts, read until the end: the warm-up and the window
    // both see them.
    let watchers = Watchers::start(
        &client,
        &target.base,
        &target.ws_base(),
        &workspaces,
        supervisors as usize,
        common.connect_concurrency,
    )
    .await?;

    let out_skipped = Arc::new(AtomicU64::new(0));
    let driver = match args.rate {
        Some(rate) => format!(
            "open loop: {rate:.0} requests/s offered ({:.0} cycles/s), at most {} cycles in flight",
            rate / OPS_PER_CYCLE as f64,
            args.concurrency
        ),
        None => format!("closed loop: {} cycles in flight", args.concurrency),
    };
    let driver = match args.outbound_rate {
        Some(rate) => format!("{driver}; plus {rate:.0} send_message/s (open loop)"),
        None => driver,
    };
    let driver = match workspaces.len() {
        1 => driver,
        n => format!("{driver}; {agents} agents over {n} workspaces"),
    };
    eprintln!(
        "storm: {driver}; warm-up {} s, window {} s",
        common.warmup, common.duration
    );
    let pacing = {
        let (commands, shared, stats) = (fleet.commands.clone(), shared.clone(), stats.clone());
        let (rate, cap) = (args.rate, args.concurrency as i64);
        tokio::spawn(async move {
            match rate {
                Some(rate) => {
                    let mut pacer = Pacer::new(rate / OPS_PER_CYCLE as f64);
                    let mut next = 0;
                    while !shared.stopping.load(Ordering::Relaxed) {
                        for _ in 0..pacer.due().await {
                            if stats.in_flight.load(Ordering::Relaxed) >= cap {
                                Stats::bump(&stats.skipped);
                                continue;
                            }
                            if commands[next].try_send(Command::Start).is_err() {
                                Stats::bump(&stats.skipped);
                            }
                            next = (next + 1) % commands.len();
                        }
                    }
                }
                None => {
                    let n = commands.len() as u64;
                    for (j, tx) in commands.iter().enumerate() {
                        let want = cap as u64 / n + u64::from((j as u64) < cap as u64 % n);
                        if want > 0 {
                            let _ = tx.send(Command::Run(want)).await;
                        }
                    }
                }
            }
        })
    };

    let sending = args.outbound_rate.map(|rate| {
        let (commands, shared, skipped) = (fleet.commands.clone(), shared.clone(), out_skipped.clone());
        tokio::spawn(async move {
            let mut pacer = Pacer::new(rate);
            let mut next = 0;
            while !shared.stopping.load(Ordering::Relaxed) {
                for _ in 0..pacer.due().await {
                    if commands[next].try_send(Command::Send).is_err() {
                        Stats::bump(&skipped);
                    }
                    next = (next + 1) % commands.len();
                }
            }
        })
    });

    tokio::time::sleep(Duration::from_secs_f64(common.warmup)).await;
    let window = Window::open(target, &stats);
    let out_ok_before = shared.out_ok.load(Ordering::Relaxed);
    let out_skipped_before = out_skipped.load(Ordering::Relaxed);
    let platform = platform::current().map(|p| {
        p.reset_lag();
        let mark = p.mark();
        (p, mark)
    });
    let mut received_each_second: Vec<u64> = Vec::new();
    let mut received_last = platform.as_ref().map_or(0, |(_, m)| m.received);
    let watched = watchers.mark();
    shared.started.store(0, Ordering::Relaxed);
    shared
        .max_cycles
        .store(common.ops / OPS_PER_CYCLE, Ordering::Relaxed);
    let bar = report::bar(common.duration.ceil() as u64, "storm (s)");
    let live = report::live(bar.clone(), stats.clone());
    let max_cycles = common.ops / OPS_PER_CYCLE;
    let mut rss: Vec<u64> = Vec::new();
    while window.elapsed().as_secs_f64() < common.duration
        && shared.started.load(Ordering::Relaxed) < max_cycles
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The server's RSS once a second, to tell bounded growth (buffers, logs that fill
        // up) from growth that goes on with the traffic.
        if window.elapsed().as_secs() as usize >= rss.len() {
            if let Some(kib) = procstat::rss_kib_all(&target.pids()) {
                rss.push(kib);
            }
            if let Some((p, _)) = &platform {
                let now = p.mark().received;
                if window.elapsed().as_secs() > 0 {
                    received_each_second.push(now - received_last);
                }
                received_last = now;
            }
        }
    }
    let mut report = window.close("reopen-storm", target, &stats);
    let secs = window.elapsed().as_secs_f64().max(1e-9);
    let out_ok = shared.out_ok.load(Ordering::Relaxed) - out_ok_before;
    let platform_window = platform.as_ref().map(|(p, before)| (p.mark(), *before));
    let mut watching = watchers.figures(&watched);
    shared.stopping.store(true, Ordering::Relaxed);
    bar.finish_and_clear();
    let _ = live.await;
    let _ = pacing.await;
    if let Some(sending) = sending {
        let _ = sending.await;
    }
    let drain = clock::now();
    while stats.in_flight.load(Ordering::Relaxed) > 0 && drain.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stuck = stats.in_flight.load(Ordering::Relaxed);
    report = report.finish(&stats);
    if target.kind == Kind::Engine {
        // Closes during the drain count too.
        watching.closed_early = watchers.figures(&watched).closed_early;
        report.errors.extend(watchers.errors());
        report.supervisors = Some(watching);
    }
    report.driver = driver;
    report.agents = agents;
    report.unit = "cycles";
    report.extra.insert("customers", (agents * per_agent).into());
    if workspaces.len() > 1 {
        report.extra.insert("workspaces", workspaces.len().into());
    }
    report
        .extra
        .insert("connect_all_s", ((connect_secs * 100.0).round() / 100.0).into());
    if !rss.is_empty() {
        report.extra.insert("server_rss_kib_each_second", rss.into());
    }
    if stuck > 0 {
        report.extra.insert("cycles_unfinished_after_drain", stuck.into());
    }
    let round = |x: f64| (x * 10.0).round() / 10.0;
    if args.outbound_rate.is_some() {
        report
            .extra
            .insert("send_message_ok_per_s", round(out_ok as f64 / secs).into());
        report.extra.insert(
            "send_message_skipped",
            (out_skipped.load(Ordering::Relaxed) - out_skipped_before).into(),
        );
    }
    if let (Some((p, start)), Some((end, _))) = (&platform, platform_window) {
        // Let the outbox drain what the window made, then take the run's totals.
        let settle = clock::now();
        let mut last = p.mark().received;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = p.mark().received;
            if now == last || settle.elapsed() > Duration::from_secs(10) {
                break;
            }
            last = now;
        }
        let total = p.mark();
        let (p50, p99, max, count) = p.lag();
        report.extra.insert(
            "platform_received_per_s",
            round((end.received - start.received) as f64 / secs).into(),
        );
        report
            .extra
            .insert("platform_received_each_second", received_each_second.into());
        report.extra.insert(
            "platform_checks",
            serde_json::json!({
                "received_in_run": total.received,
                "chats": p.chats(),
                "out_of_order": total.out_of_order,
                "duplicates": total.duplicates,
                "unreadable": total.unreadable,
            }),
        );
        report.extra.insert(
            "platform_send_message_to_received_us",
            serde_json::json!({"count": count, "p50": p50, "p99": p99, "max": max}),
        );
    }
    pool.close();
    watchers.shutdown().await;
    fleet.shutdown().await;
    Ok(report)
}

#[cfg(test)]
mod tests;
