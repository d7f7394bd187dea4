//! `race`: K agents reopen the same customer at the same moment, over many customers.
//! Exactly one reopen per customer may win (R03); every other gets `active_elsewhere`, and
//! only the winner's connections get the `chat_reopened` push (R04). The harness checks both
//! and fails the run otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::cli::{Common, RaceArgs};
use crate::clock;
use crate::fleet::{self, Behaviour, ConnectPlan, Out};
use crate::http;
use crate::report::{self, Report, Window};
use crate::scenario::{closed_chats, run_prefix, Setup, Spread};
use crate::stats::{Path, Stats};
use crate::target::Target;
use crate::wire::{self, Incoming};
use crate::workspaces::Workspaces;

/// Tallies of one race run, per customer.
pub(crate) struct Tally {
    chats: Vec<Box<str>>,
    index: HashMap<Box<str>, u32>,
    winners: Vec<AtomicU32>,
    pushes: Vec<AtomicU32>,
    lost: AtomicU64,
    replies: AtomicU64,
    expected: AtomicU64,
    wave_done: Notify,
}

/// Reopen these customers now.
pub(crate) struct Wave(Arc<[u32]>);

/// One racing agent.
pub(crate) struct RaceAgent {
    tally: Option<Arc<Tally>>,
    stats: Arc<Stats>,
    setup: Setup,
    sent: Instant,
}

/// What the driver tells an agent.
pub(crate) enum Command {
    /// The customers' chats, once the setup made them.
    Tally(Arc<Tally>),
    /// Race for these.
    Wave(Wave),
}

impl Behaviour for RaceAgent {
    type Command = Command;

    fn command(&mut self, command: Command, out: &mut Out) {
        match command {
            Command::Tally(tally) => self.tally = Some(tally),
            Command::Wave(Wave(customers)) => {
                let Some(tally) = &self.tally else { return };
                self.sent = clock::now();
                for &c in customers.iter() {
                    out.send(
                        0,
                        wire::request(format_args!("r:{c}"), "reopen", &tally.chats[c as usize]),
                    );
                }
            }
        }
    }

    fn frame(&mut self, conn: usize, frame: Incoming<'_>, out: &mut Out) {
        if self.setup.frame(conn, &frame, out) {
            return;
        }
        let Some(tally) = &self.tally else { return };
        match &*frame.kind {
            "ok" | "error" => {
                let Some(c) = frame
                    .id
                    .as_deref()
                    .and_then(|id| id.strip_prefix("r:"))
                    .and_then(|c| c.parse::<usize>().ok())
                    .filter(|&c| c < tally.winners.len())
                else {
                    return;
                };
                self.stats
                    .record(Path::ReopenReply, clock::micros_since(self.sent));
                Stats::bump(&self.stats.done);
                if frame.kind == "ok" {
                    tally.winners[c].fetch_add(1, Ordering::Relaxed);
                } else if frame.code.as_deref() == Some("active_elsewhere") {
                    tally.lost.fetch_add(1, Ordering::Relaxed);
                }
                let replies = tally.replies.fetch_add(1, Ordering::AcqRel) + 1;
                if replies == tally.expected.load(Ordering::Acquire) {
                    tally.wave_done.notify_one();
                }
            }
            "push" => {
                let Some(event) = &frame.event else { return };
                if event.kind == "chat_reopened" {
                    if let Some(&c) = event.chat().and_then(|chat| tally.index.get(chat)) {
                        tally.pushes[c as usize].fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Runs the race and checks its outcome; the report's `extra` holds the verdict.
pub(crate) async fn run(target: &Target, common: &Common, args: &RaceArgs) -> anyhow::Result<(Report, bool)> {
    let stats = Arc::new(Stats::new());
    let workers = http::workers_for(64, common.http_workers);
    let client = http::client(workers)?;
    let k = args.agents as usize;
    let customers = args.customers as usize;
    // Generous limits: during the setup any agent may hold many chats between accept and close.
    let specs = http::agents(k, 100_000);
    http::create_agents(&client, &target.base, &specs).await?;
    crate::cluster::settle(target, &Workspaces::unprefixed(), &specs).await?;
    let setup = Setup {
        closed: Arc::new(AtomicU64::new(0)),
    };
    let plan = ConnectPlan {
        ws_bases: target.ws_bases(),
        dialect: target.dialect(),
        tokens: specs.iter().map(|s| s.token.clone()).collect(),
        workspaces: Workspaces::unprefixed(),
        conns_per_agent: 1,
        concurrency: common.connect_concurrency,
    };
    let bar = report::bar(k as u64, "connecting");
    let fleet = fleet::launch(plan, stats.clone(), &bar, |_| RaceAgent {
        tally: None,
        stats: stats.clone(),
        setup: setup.clone(),
        sent: clock::now(),
    })
    .await;
    bar.finish_and_clear();
    anyhow::ensure!(
        fleet.connected == k,
        "only {} of {k} agents connected: {:?}",
        fleet.connected,
        stats.errors()
    );

    let prefix = run_prefix();
    let from: Vec<String> = (0..customers).map(|i| format!("{prefix}{i}")).collect();
    let spread = Spread {
        workspaces: &Workspaces::unprefixed(),
        of: vec![0; from.len()],
    };
    let chats = closed_chats(target, &client, workers, from, spread, &setup, stats.clone()).await?;
    let tally = Arc::new(Tally {
        index: chats
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone().into_boxed_str(), i as u32))
            .collect(),
        chats: chats.into_iter().map(String::into_boxed_str).collect(),
        winners: (0..customers).map(|_| AtomicU32::new(0)).collect(),
        pushes: (0..customers).map(|_| AtomicU32::new(0)).collect(),
        lost: AtomicU64::new(0),
        replies: AtomicU64::new(0),
        expected: AtomicU64::new(0),
        wave_done: Notify::new(),
    });
    for tx in &fleet.commands {
        tx.send(Command::Tally(tally.clone())).await?;
    }

    eprintln!(
        "race: {customers} customers x {k} agents, {} customers per wave",
        args.wave
    );
    let window = Window::open(target, &stats);
    let bar = report::bar(customers as u64, "raced");
    let wave = args.wave.max(1) as usize;
    let mut timed_out = false;
    for (n, start) in (0..customers).step_by(wave).enumerate() {
        if window.elapsed().as_secs_f64() > common.duration.max(120.0) {
            timed_out = true;
            break;
        }
        let these: Arc<[u32]> = (start..(start + wave).min(customers)).map(|c| c as u32).collect();
        let expected = tally.expected.load(Ordering::Acquire) + (these.len() * k) as u64;
        tally.expected.store(expected, Ordering::Release);
        let notified = tally.wave_done.notified();
        for tx in &fleet.commands {
            tx.send(Command::Wave(Wave(these.clone()))).await?;
        }
        if tally.replies.load(Ordering::Acquire) < expected
            && tokio::time::timeout(Duration::from_secs(10), notified)
                .await
                .is_err()
            && tally.replies.load(Ordering::Acquire) < expected
        {
            stats.error("race: wave unanswered after 10 s");
            timed_out = true;
            break;
        }
        if n % 64 == 0 {
            bar.set_position(start as u64);
        }
    }
    bar.finish_and_clear();
    // Pushes trail the replies a little.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut report = window.close("race", target, &stats).finish(&stats);
    let winners: Vec<u32> = tally.winners.iter().map(|w| w.load(Ordering::Relaxed)).collect();
    let exactly_one = winners.iter().filter(|&&w| w == 1).count();
    let none = winners.iter().filter(|&&w| w == 0).count();
    let several = winners.iter().filter(|&&w| w > 1).count();
    let wrong_pushes = tally
        .pushes
        .iter()
        .zip(&winners)
        .filter(|(p, &w)| p.load(Ordering::Relaxed) != w)
        .count();
    let other_errors: u64 = report
        .errors
        .iter()
        .filter(|(code, _)| code.as_str() != "active_elsewhere")
        .map(|(_, n)| n)
        .sum();
    let lost = tally.lost.load(Ordering::Relaxed);
    let pass = !timed_out
        && exactly_one == customers
        && wrong_pushes == 0
        && other_errors == 0
        && lost == (customers * (k - 1)) as u64;
    report.driver = format!("waves of {wave} customers, each reopened by all {k} agents at once");
    report.agents = k;
    report.unit = "reopens";
    for (key, value) in [
        ("customers", customers as u64),
        ("winners", winners.iter().map(|&w| u64::from(w)).sum()),
        ("customers_with_one_winner", exactly_one as u64),
        ("customers_with_no_winner", none as u64),
        ("customers_with_several_winners", several as u64),
        ("active_elsewhere", lost),
        ("customers_whose_push_count_differs", wrong_pushes as u64),
        ("other_errors", other_errors),
    ] {
        report.extra.insert(key, value.into());
    }
    report
        .extra
        .insert("verdict", (if pass { "pass" } else { "FAIL" }).into());
    fleet.shutdown().await;
    Ok((report, pass))
}
