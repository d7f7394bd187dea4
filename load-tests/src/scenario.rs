//! What the scenarios share: reaching a target, turning offers into closed chats, and the
//! drivers that pace the load.

pub(crate) mod idle;
pub(crate) mod race;
pub(crate) mod routing;
pub(crate) mod storm;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::Common;
use crate::clock;
use crate::fleet::Out;
use crate::http;
use crate::platform;
use crate::report;
use crate::stats::Stats;
use crate::target::{self, SpawnOptions, Target};
use crate::wire::{self, Incoming};
use crate::workspaces::Workspaces;

/// The engine to drive: a fresh one (`--spawn`) or the one at `--url`.
pub(crate) async fn engine(common: &Common, client: &reqwest::Client) -> anyhow::Result<Target> {
    engine_with(common, client, String::new()).await
}

/// As [`engine`], with `scenario_config` (TOML) in a spawned engine's configuration; an engine
/// at `--url` is taken as it was configured.
pub(crate) async fn engine_with(
    common: &Common,
    client: &reqwest::Client,
    mut scenario_config: String,
) -> anyhow::Result<Target> {
    anyhow::ensure!(
        !common.fake_platform || common.spawn,
        "--fake-platform needs --spawn (point your own engine's [outbound] webhook_url elsewhere)"
    );
    if common.spawn {
        if common.fake_platform {
            let platform = platform::start().await?;
            scenario_config.push_str(&platform::engine_config(&platform));
        }
        let options = SpawnOptions {
            engine_bin: common.engine_bin.clone(),
            engine_log: common.engine_log.clone(),
            engine_config: common.engine_config.clone(),
            durability: common.durability.clone(),
            scenario_config,
        };
        match common.cluster {
            Some(nodes) => target::spawn_cluster(&options, nodes as usize, client).await,
            None => target::spawn_engine(&options, client).await,
        }
    } else {
        let mut target = target::attach(&common.url, common.pid)?;
        target::wait_healthy(&mut target, client).await?;
        Ok(target)
    }
}

/// A prefix for customer addresses that no earlier run against the same engine used.
pub(crate) fn run_prefix() -> String {
    format!("lt{}t{}-", std::process::id(), clock::stamp() % 1_000_000_000)
}

/// Turns every offer an agent gets into a closed chat: accept on the first connection, then
/// close. This is how the setup makes customers whose chats an agent can reopen.
#[derive(Clone)]
pub(crate) struct Setup {
    /// Chats closed so far.
    pub(crate) closed: Arc<AtomicU64>,
}

impl Setup {
    /// Handles `frame` if it belongs to the setup; says whether it did.
    pub(crate) fn frame(&self, conn: usize, frame: &Incoming<'_>, out: &mut Out) -> bool {
        match (&*frame.kind, frame.id.as_deref()) {
            ("push", _) => {
                let Some(event) = &frame.event else { return false };
                if event.kind != "chat_offered" {
                    return false;
                }
                if let (0, Some(chat)) = (conn, event.chat()) {
                    out.send(0, wire::request(format_args!("sa:{chat}"), "accept", chat));
                }
                true
            }
            ("ok", Some(id)) => {
                if let Some(chat) = id.strip_prefix("sa:") {
                    out.send(0, wire::request(format_args!("sc:{chat}"), "close", chat));
                    true
                } else if id.starts_with("sc:") {
                    self.closed.fetch_add(1, Ordering::Relaxed);
                    true
                } else {
                    false
                }
            }
            _ => false,
        }
    }
}

/// Where the customers of a setup write: customer `i` in workspace number `of[i]`.
pub(crate) struct Spread<'a> {
    pub(crate) workspaces: &'a Workspaces,
    pub(crate) of: Vec<usize>,
}

/// Has each customer in `from` write once (in its workspace, as `spread` says), lets the
/// connected agents accept and close every chat, and returns the chat ids in `from`'s order.
pub(crate) async fn closed_chats(
    target: &Target,
    client: &reqwest::Client,
    workers: usize,
    from: Vec<String>,
    spread: Spread<'_>,
    setup: &Setup,
    stats: Arc<Stats>,
) -> anyhow::Result<Vec<String>> {
    let n = from.len() as u64;
    eprintln!("setup: {n} customers write, agents accept and close");
    let progress = report::bar(n, "closed chats");
    let start = clock::now();
    let watcher = {
        let (progress, closed) = (progress.clone(), setup.closed.clone());
        tokio::spawn(async move {
            while !progress.is_finished() {
                progress.set_position(closed.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let chats = http::first_contacts(
        client,
        &target.bases(),
        spread.workspaces,
        Arc::new(from),
        Arc::new(spread.of),
        workers,
        stats.clone(),
    )
    .await;
    let missing = chats.iter().filter(|c| c.is_none()).count();
    anyhow::ensure!(
        missing == 0,
        "setup: {missing} customer messages failed: {:?}",
        stats.errors()
    );
    while setup.closed.load(Ordering::Relaxed) < n {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(180),
            "setup: only {} of {n} chats closed after 180 s: {:?}",
            setup.closed.load(Ordering::Relaxed),
            stats.errors()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.finish_and_clear();
    let _ = watcher.await;
    eprintln!(
        "setup: {n} closed chats in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(chats.into_iter().flatten().collect())
}

/// Paces an open-loop driver: how many starts are due at each 1 ms tick so that `rate` per
/// second is kept on average, whatever the target answers.
pub(crate) struct Pacer {
    rate: f64,
    start: std::time::Instant,
    issued: u64,
    interval: tokio::time::Interval,
}

impl Pacer {
    /// Starts pacing `rate` per second.
    pub(crate) fn new(rate: f64) -> Self {
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Self {
            rate,
            start: clock::now(),
            issued: 0,
            interval,
        }
    }

    /// Waits for the next tick; returns how many starts are due.
    pub(crate) async fn due(&mut self) -> u64 {
        self.interval.tick().await;
        let target = (clock::now().duration_since(self.start).as_secs_f64() * self.rate) as u64;
        let due = target.saturating_sub(self.issued);
        self.issued = target;
        due
    }
}
