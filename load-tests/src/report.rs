//! The report: a table for people, then one JSON object as the last line of stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::procstat::{self, CpuMark, MachineMark};
use crate::stats::{Stats, Summary};
use crate::supervisors::SupervisorFigures;
use crate::target::{Kind, Node, Target};

/// What `/proc` says about a process over the measured window.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct ProcFigures {
    pub(crate) pid: Option<u32>,
    pub(crate) rss_before_kib: Option<u64>,
    pub(crate) rss_after_kib: Option<u64>,
    pub(crate) cpu_pct_of_one_core: Option<f64>,
}

/// One node of a cluster over the measured window (`--cluster`).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct NodeFigures {
    /// Its `[cluster] node` name.
    pub(crate) node: String,
    #[serde(flatten)]
    pub(crate) process: ProcFigures,
}

/// A cluster's PostgreSQL over the measured window: the postmaster and its child processes
/// (backends, writers, checkpointer), found by parent pid.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct DatabaseFigures {
    pub(crate) postmaster_pid: u32,
    /// Its child processes when the window closed.
    pub(crate) processes: usize,
    /// Whether its commits are fsynced (`--durability full`).
    pub(crate) fsync: bool,
    pub(crate) cpu_pct_of_one_core: Option<f64>,
}

/// One scenario run against one target.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) scenario: &'static str,
    pub(crate) target: Kind,
    /// How load was offered: open loop at a rate, or closed loop with a concurrency.
    pub(crate) driver: String,
    pub(crate) agents: usize,
    pub(crate) connections: i64,
    /// The measured window.
    pub(crate) duration_s: f64,
    /// Requests sent (WebSocket requests and HTTP posts).
    pub(crate) ops: u64,
    pub(crate) ops_per_s: f64,
    /// Units of work completed (cycles, chats, reopens), named by `unit`.
    pub(crate) done: u64,
    pub(crate) done_per_s: f64,
    pub(crate) unit: &'static str,
    pub(crate) pushes_per_s: f64,
    /// WebSocket text frames received per second, and their mean size.
    pub(crate) frames_in_per_s: f64,
    pub(crate) bytes_per_frame_in: f64,
    /// Starts the open-loop driver could not make (no idle customer, or in-flight cap).
    pub(crate) skipped: u64,
    pub(crate) latency_us: BTreeMap<&'static str, Summary>,
    pub(crate) errors: BTreeMap<String, u64>,
    /// The server's process, or a cluster's nodes summed (RSS and CPU; the pid only when
    /// there is one node).
    pub(crate) server: ProcFigures,
    /// The server's CPU time per request of the window, in µs, over all of a cluster's nodes:
    /// what `--workspaces N` runs are compared by (R27's target: N × M agents within 10 % of
    /// 1 × N·M), and a cluster with one engine (issue 19).
    pub(crate) server_cpu_us_per_op: Option<f64>,
    /// A cluster's nodes one by one (`--cluster`); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) nodes: Vec<NodeFigures>,
    /// A cluster's PostgreSQL (`--cluster`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) database: Option<DatabaseFigures>,
    /// The database's CPU time per request of the window, in µs (`--cluster`; null without:
    /// SQLite runs inside the engine, in `server_cpu_us_per_op`).
    pub(crate) database_cpu_us_per_op: Option<f64>,
    pub(crate) harness: ProcFigures,
    /// The whole machine's busy CPU over the window, in % of one core (of 200 % on 2 cores).
    pub(crate) machine_cpu_pct_of_one_core: Option<f64>,
    /// What of it neither the server, the database nor the harness used: other processes.
    pub(crate) others_cpu_pct_of_one_core: Option<f64>,
    /// Scenario-specific figures.
    pub(crate) extra: BTreeMap<&'static str, serde_json::Value>,
    /// Supervisors watching the board (`--supervisors`), on scenarios that have them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) supervisors: Option<SupervisorFigures>,
}

/// Marks taken when the measured window opens.
pub(crate) struct Window {
    start: std::time::Instant,
    server_cpu: Option<CpuMark>,
    harness_cpu: Option<CpuMark>,
    machine_cpu: Option<MachineMark>,
    server_rss: Option<u64>,
    harness_rss: Option<u64>,
    pids: Vec<u32>,
    /// A cluster's nodes, each with its CPU and RSS when the window opened.
    nodes: Vec<(Node, Option<CpuMark>, Option<u64>)>,
    /// A cluster's database: its postmaster, its tree's CPU, and whether it fsyncs.
    database: Option<(u32, Option<CpuMark>, bool)>,
}

impl Window {
    /// Resets `stats` and opens the window.
    pub(crate) fn open(target: &Target, stats: &Stats) -> Self {
        stats.reset();
        let me = std::process::id();
        let pids = target.pids();
        Self {
            start: crate::clock::now(),
            server_cpu: CpuMark::take_all(&pids),
            harness_cpu: CpuMark::take(me),
            machine_cpu: MachineMark::take(),
            server_rss: procstat::rss_kib_all(&pids),
            harness_rss: procstat::rss_kib(me),
            pids,
            nodes: target
                .nodes
                .iter()
                .map(|n| (n.clone(), CpuMark::take(n.pid), procstat::rss_kib(n.pid)))
                .collect(),
            database: target.database.as_ref().map(|d| {
                let postmaster = d.postmaster();
                (postmaster, CpuMark::take_tree(postmaster), d.fsync)
            }),
        }
    }

    /// How long it has been open.
    pub(crate) fn elapsed(&self) -> Duration {
        crate::clock::now().duration_since(self.start)
    }

    /// Closes the window: reads the counters and `/proc`. Latencies recorded after this (a
    /// drain of in-flight work) still land in the histograms, which the caller reads later.
    pub(crate) fn close(&self, scenario: &'static str, target: &Target, stats: &Stats) -> Report {
        let secs = self.elapsed().as_secs_f64().max(1e-9);
        let ops = Stats::get(&stats.ops);
        let done = Stats::get(&stats.done);
        let pushes = Stats::get(&stats.pushes);
        let frames_in = Stats::get(&stats.frames_in);
        let bytes_in = Stats::get(&stats.bytes_in);
        let round = |x: f64| (x * 10.0).round() / 10.0;
        let server_cpu = self.server_cpu.as_ref().and_then(CpuMark::percent_since);
        let harness_cpu = self.harness_cpu.as_ref().and_then(CpuMark::percent_since);
        let machine_cpu = self.machine_cpu.and_then(|m| m.percent_since());
        let database_cpu = self
            .database
            .as_ref()
            .and_then(|(_, mark, _)| mark.as_ref()?.percent_since());
        let others = machine_cpu.map(|m| {
            (m - server_cpu.unwrap_or(0.0) - harness_cpu.unwrap_or(0.0) - database_cpu.unwrap_or(0.0))
                .max(0.0)
        });
        let per_op = |pct: Option<f64>| {
            pct.filter(|_| ops > 0)
                .map(|pct| round(pct / 100.0 * secs * 1e6 / ops as f64))
        };
        Report {
            scenario,
            target: target.kind,
            driver: String::new(),
            agents: 0,
            connections: stats.conns.load(std::sync::atomic::Ordering::Relaxed),
            duration_s: round(secs),
            ops,
            ops_per_s: round(ops as f64 / secs),
            done,
            done_per_s: round(done as f64 / secs),
            unit: "",
            pushes_per_s: round(pushes as f64 / secs),
            frames_in_per_s: round(frames_in as f64 / secs),
            bytes_per_frame_in: round(bytes_in as f64 / frames_in.max(1) as f64),
            skipped: Stats::get(&stats.skipped),
            latency_us: BTreeMap::new(),
            errors: BTreeMap::new(),
            server: ProcFigures {
                pid: match self.pids[..] {
                    [pid] => Some(pid),
                    _ => None,
                },
                rss_before_kib: self.server_rss,
                rss_after_kib: procstat::rss_kib_all(&self.pids),
                cpu_pct_of_one_core: server_cpu.map(round),
            },
            server_cpu_us_per_op: per_op(server_cpu),
            nodes: self
                .nodes
                .iter()
                .map(|(node, cpu, rss)| NodeFigures {
                    node: node.name.clone(),
                    process: ProcFigures {
                        pid: Some(node.pid),
                        rss_before_kib: *rss,
                        rss_after_kib: procstat::rss_kib(node.pid),
                        cpu_pct_of_one_core: cpu.as_ref().and_then(CpuMark::percent_since).map(round),
                    },
                })
                .collect(),
            database: self
                .database
                .as_ref()
                .map(|&(postmaster, _, fsync)| DatabaseFigures {
                    postmaster_pid: postmaster,
                    processes: procstat::children_of(postmaster).len(),
                    fsync,
                    cpu_pct_of_one_core: database_cpu.map(round),
                }),
            database_cpu_us_per_op: per_op(database_cpu),
            harness: ProcFigures {
                pid: Some(std::process::id()),
                rss_before_kib: self.harness_rss,
                rss_after_kib: procstat::rss_kib(std::process::id()),
                cpu_pct_of_one_core: harness_cpu.map(round),
            },
            machine_cpu_pct_of_one_core: machine_cpu.map(round),
            others_cpu_pct_of_one_core: others.map(round),
            extra: BTreeMap::new(),
            supervisors: None,
        }
    }
}

impl Report {
    /// Fills in the latencies and errors (after any drain).
    pub(crate) fn finish(mut self, stats: &Stats) -> Self {
        self.latency_us = stats.summaries();
        self.errors = stats.errors();
        self
    }

    /// The table.
    pub(crate) fn table(&self) -> String {
        let mut t = String::new();
        let kib = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} KiB"));
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} %"));
        let _ = writeln!(t, "== {} against the {:?} ==", self.scenario, self.target);
        let _ = writeln!(t, "driver        {}", self.driver);
        let _ = writeln!(
            t,
            "agents        {}   connections held {}",
            self.agents, self.connections
        );
        let _ = writeln!(
            t,
            "window        {:.1} s   ops {} ({:.0}/s)   {} {} ({:.0}/s)   pushes {:.0}/s   skipped {}",
            self.duration_s,
            self.ops,
            self.ops_per_s,
            self.unit,
            self.done,
            self.done_per_s,
            self.pushes_per_s,
            self.skipped
        );
        let _ = writeln!(
            t,
            "frames in     {:.0}/s, {:.0} bytes each on average",
            self.frames_in_per_s, self.bytes_per_frame_in
        );
        let _ = writeln!(
            t,
            "server        pid {}   RSS {} -> {}   CPU {} of one core, {} per op",
            self.server.pid.map_or("-".to_owned(), |p| p.to_string()),
            kib(self.server.rss_before_kib),
            kib(self.server.rss_after_kib),
            pct(self.server.cpu_pct_of_one_core),
            self.server_cpu_us_per_op
                .map_or("-".to_owned(), |us| format!("{us:.1} µs"))
        );
        for n in &self.nodes {
            let _ = writeln!(
                t,
                "  node {:<8} pid {}   RSS {} -> {}   CPU {} of one core",
                n.node,
                n.process.pid.map_or("-".to_owned(), |p| p.to_string()),
                kib(n.process.rss_before_kib),
                kib(n.process.rss_after_kib),
                pct(n.process.cpu_pct_of_one_core)
            );
        }
        if let Some(d) = &self.database {
            let _ = writeln!(
                t,
                "database      PostgreSQL, postmaster pid {} + {} processes, fsync {}   CPU {} of one core, {} per op",
                d.postmaster_pid,
                d.processes,
                if d.fsync { "on" } else { "off" },
                pct(d.cpu_pct_of_one_core),
                self.database_cpu_us_per_op
                    .map_or("-".to_owned(), |us| format!("{us:.1} µs"))
            );
        }
        let _ = writeln!(
            t,
            "harness       RSS {}   CPU {} of one core",
            kib(self.harness.rss_after_kib),
            pct(self.harness.cpu_pct_of_one_core)
        );
        let _ = writeln!(
            t,
            "machine       CPU {} of one core busy ({} of it other processes)",
            pct(self.machine_cpu_pct_of_one_core),
            pct(self.others_cpu_pct_of_one_core)
        );
        for (k, v) in &self.extra {
            let _ = writeln!(t, "{k:<13} {v}");
        }
        match &self.supervisors {
            Some(s) if s.requested > 0 => {
                let _ = writeln!(
                    t,
                    "supervisors   {} subscribed to every queue ({:.2} s; boards of {} bytes), {} still connected, {} closed early",
                    s.subscribed, s.subscribe_all_s, s.board_bytes, s.connected, s.closed_early
                );
                let _ = writeln!(
                    t,
                    "  each        {:.1} frames/s, {:.1} events/s, {:.0} bytes per frame ({:.2} MiB/s for all)",
                    s.frames_per_s_each, s.events_per_s_each, s.bytes_per_frame, s.mib_per_s_all
                );
            }
            Some(_) => {
                let _ = writeln!(t, "supervisors   none");
            }
            None => {}
        }
        let _ = writeln!(
            t,
            "{:<24} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
            "latency (µs)", "count", "p50", "p90", "p99", "p99.9", "max", "mean"
        );
        for (path, s) in &self.latency_us {
            let _ = writeln!(
                t,
                "{path:<24} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8.1}",
                s.count, s.p50, s.p90, s.p99, s.p999, s.max, s.mean
            );
        }
        if self.errors.is_empty() {
            let _ = writeln!(t, "errors        none");
        } else {
            for (code, n) in &self.errors {
                let _ = writeln!(t, "error         {code}: {n}");
            }
        }
        t
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar
}

/// Shows the live rates on `bar` every 250 ms until it is finished: position is seconds.
pub(crate) fn live(bar: ProgressBar, stats: Arc<Stats>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = crate::clock::now();
        let (mut last_ops, mut last_done, mut last_at) = (0, 0, start);
        while !bar.is_finished() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = crate::clock::now();
            let dt = now.duration_since(last_at).as_secs_f64().max(1e-9);
            let (ops, done) = (Stats::get(&stats.ops), Stats::get(&stats.done));
            bar.set_position(now.duration_since(start).as_secs());
            bar.set_message(format!(
                "{:.0} ops/s  {:.0} done/s  in flight {}  errors {}  conns {}",
                ops.saturating_sub(last_ops) as f64 / dt,
                done.saturating_sub(last_done) as f64 / dt,
                stats.in_flight.load(std::sync::atomic::Ordering::Relaxed),
                stats.error_count(),
                stats.conns.load(std::sync::atomic::Ordering::Relaxed),
            ));
            (last_ops, last_done, last_at) = (ops, done, now);
        }
    })
}
