//! `idle`: hold N agent connections and report what each costs the server in memory, and how
//! long connecting them all took.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Common, IdleArgs};
use crate::fleet::{self, ConnectPlan, Idle};
use crate::http;
use crate::procstat;
use crate::report::{self, Report, Window};
use crate::stats::Stats;
use crate::supervisors::Watchers;
use crate::target::{Kind, Target};
use crate::workspaces::Workspaces;

/// Runs the idle scenario; `supervisors` (the engine only) subscribe before the window opens,
/// so their memory is in the "before" reading.
pub(crate) async fn run(
    target: &Target,
    common: &Common,
    args: &IdleArgs,
    supervisors: u64,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        supervisors == 0 || target.kind == Kind::Engine,
        "only the engine has a supervisor socket"
    );
    let stats = Arc::new(Stats::new());
    let client = http::client(8)?;
    let per_agent = args.conns_per_agent as usize;
    let agents = (args.conns as usize).div_ceil(per_agent);
    let specs = http::agents(agents, 3);
    if target.kind == Kind::Engine {
        let start = crate::clock::now();
        http::create_agents(&client, &target.base, &specs).await?;
        crate::cluster::settle(target, &Workspaces::unprefixed(), &specs).await?;
        eprintln!(
            "created {agents} agents in {:.2} s",
            start.elapsed().as_secs_f64()
        );
    }
    let watchers = Watchers::start(
        &client,
        &target.base,
        &target.ws_base(),
        &Workspaces::unprefixed(),
        supervisors as usize,
        common.connect_concurrency,
    )
    .await?;
    // Let the allocator settle before the "before" reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let window = Window::open(target, &stats);
    let watched = watchers.mark();
    let rss_before = procstat::rss_kib_all(&target.pids());
    eprintln!(
        "connecting {} connections ({agents} agents × {per_agent}) to the {:?}",
        agents * per_agent,
        target.kind
    );
    let plan = ConnectPlan {
        ws_bases: target.ws_bases(),
        dialect: target.dialect(),
        tokens: specs.iter().map(|s| s.token.clone()).collect(),
        workspaces: Workspaces::unprefixed(),
        conns_per_agent: per_agent,
        concurrency: common.connect_concurrency,
    };
    let bar = report::bar(agents as u64, "connecting");
    let fleet = fleet::launch(plan, stats.clone(), &bar, |_| Idle).await;
    bar.finish_and_clear();
    let connect_secs = fleet.connect_time.as_secs_f64();
    eprintln!(
        "connected {} agents in {connect_secs:.2} s; holding {} s",
        fleet.connected, common.duration
    );
    let bar = report::bar(common.duration.ceil() as u64, "holding (s)");
    let live = report::live(bar.clone(), stats.clone());
    tokio::time::sleep(Duration::from_secs_f64(common.duration)).await;
    bar.finish_and_clear();
    let _ = live.await;
    let mut report = window.close("idle", target, &stats).finish(&stats);
    if target.kind == Kind::Engine {
        report.supervisors = Some(watchers.figures(&watched));
        report.errors.extend(watchers.errors());
    }
    let conns = report.connections;
    report.driver = format!(
        "{} connections opened at most {} at a time, then held",
        agents * per_agent,
        common.connect_concurrency
    );
    report.agents = agents;
    report.unit = "connections";
    report.done = conns.max(0) as u64;
    report
        .extra
        .insert("connect_all_s", ((connect_secs * 100.0).round() / 100.0).into());
    if let (Some(before), Some(after)) = (rss_before, report.server.rss_after_kib) {
        let per_conn = (after as f64 - before as f64) / (conns.max(1) as f64);
        report
            .extra
            .insert("rss_per_conn_kib", ((per_conn * 100.0).round() / 100.0).into());
    }
    watchers.shutdown().await;
    fleet.shutdown().await;
    Ok(report)
}
