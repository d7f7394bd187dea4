//! `switchboard-load`: drives a local Switchboard engine through real WebSocket and HTTP
//! clients and reports what it measured; see `load-tests/README.md`.
//!
//! - [`cli`]: the command line.
//! - [`target`]: starting the engine (or the floor relay, or the peer) or attaching to one.
//! - [`fleet`]: simulated agents, one task per agent over its connections.
//! - [`http`]: admin API and channel ingress.
//! - [`scenario`]: idle, reopen-storm, race, routing.
//! - [`supervisors`]: supervisors watching the board while a scenario runs.
//! - [`workspaces`]: the load spread over several workspaces (`--workspaces`).
//! - [`cluster`]: a private PostgreSQL and several engine nodes on it (`--cluster`).
//! - [`relay`]: the floor, a bare relay with the engine's shape.
//! - [`socketio`]: the client side of Socket.IO, to drive the peer (`load-tests/peer`).
//! - [`stats`], [`report`], [`compare`], [`procstat`]: what is measured and how it is printed.

mod cli;
mod clock;
mod cluster;
mod compare;
mod fleet;
mod http;
mod platform;
mod procstat;
mod relay;
mod report;
mod scenario;
mod socketio;
mod stats;
mod supervisors;
mod target;
mod wire;
mod workspaces;

use clap::Parser;

use cli::{BesideArgs, Cli, Common, IdleArgs, Scenario, Shape, ShapeArgs, StormArgs};
use compare::Compared;
use report::Report;
use target::{Kind, Target};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(why) = cli::cluster_refusal(&cli) {
        eprintln!("error: {why}");
        std::process::exit(2);
    }
    // Connections count against the open-file limit: go as high as the hard limit allows.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.common.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build()?;
    if let Scenario::Relay {
        listen,
        axum_defaults,
    } = cli.scenario
    {
        return runtime.block_on(relay::serve(listen, axum_defaults));
    }
    let ok = runtime.block_on(run(&cli.scenario, &cli.common))?;
    // Connections still closing must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}

/// Prints a single report: the table, then the JSON line.
fn print(report: &Report) {
    println!("{}", report.table());
    println!("{}", serde_json::to_string(report).expect("reports serialize"));
}

fn print_compared(compared: &Compared) {
    println!("{}", compared.table());
    println!("{}", serde_json::to_string(compared).expect("reports serialize"));
}

/// Waits for a quiet machine if asked to, saying how busy it was.
async fn quiet(common: &Common) {
    if common.wait_quiet > 0.0 {
        if let Some(busy) = procstat::wait_quiet(common.wait_quiet).await {
            eprintln!("machine busy {busy:.0} % of one core before the run");
        }
    }
}

/// A traffic shape with its options.
#[derive(Clone, Copy)]
enum Load<'a> {
    Idle(&'a IdleArgs),
    Storm(&'a StormArgs),
}

impl<'a> Load<'a> {
    fn of(args: &'a ShapeArgs) -> Self {
        match args.shape {
            Shape::ReopenStorm => Load::Storm(&args.storm),
            Shape::Idle => Load::Idle(&args.idle),
        }
    }

    async fn run(self, target: &Target, common: &Common, supervisors: u64) -> anyhow::Result<Report> {
        match self {
            Load::Idle(args) => scenario::idle::run(target, common, args, supervisors).await,
            Load::Storm(args) => scenario::storm::run(target, common, args, supervisors).await,
        }
    }
}

/// Starts the floor or the peer, runs `load` against it (without supervisors: neither has
/// their socket), and stops it.
async fn baseline(
    kind: Kind,
    load: Load<'_>,
    common: &Common,
    client: &reqwest::Client,
) -> anyhow::Result<Report> {
    let target = match kind {
        Kind::Floor => target::spawn_floor(client, common.floor_axum_defaults).await?,
        Kind::Peer => target::spawn_peer(client).await?,
        Kind::Engine => anyhow::bail!("the engine is not a baseline"),
    };
    let report = load.run(&target, common, 0).await?;
    drop(target);
    Ok(report)
}

/// The floor, then the peer (each if asked for), then the engine, with the same options;
/// prints the engine's report alone or beside the others.
async fn side_by_side(
    load: Load<'_>,
    supervisors: u64,
    beside: BesideArgs,
    common: &Common,
    client: &reqwest::Client,
) -> anyhow::Result<()> {
    if beside.with_peer {
        // Before the floor's run, not after it.
        target::peer_ready()?;
    }
    let mut floor = None;
    if beside.with_floor {
        floor = Some(baseline(Kind::Floor, load, common, client).await?);
        quiet(common).await;
    }
    let mut peer = None;
    if beside.with_peer {
        peer = Some(baseline(Kind::Peer, load, common, client).await?);
        quiet(common).await;
    }
    let target = scenario::engine(common, client).await?;
    let engine = load.run(&target, common, supervisors).await?;
    if floor.is_none() && peer.is_none() {
        print(&engine);
    } else {
        print_compared(&Compared::new(engine, floor, peer));
    }
    Ok(())
}

/// Runs one scenario; false when its checks failed.
async fn run(scenario: &Scenario, common: &Common) -> anyhow::Result<bool> {
    let client = http::client(16)?;
    quiet(common).await;
    match scenario {
        Scenario::Idle { idle, watch, beside } => {
            side_by_side(Load::Idle(idle), watch.supervisors, *beside, common, &client).await?;
        }
        Scenario::ReopenStorm { storm, watch, beside } => {
            side_by_side(Load::Storm(storm), watch.supervisors, *beside, common, &client).await?;
        }
        Scenario::Race(args) => {
            let target = scenario::engine(common, &client).await?;
            let (report, pass) = scenario::race::run(&target, common, args).await?;
            print(&report);
            return Ok(pass);
        }
        Scenario::Routing(args) => {
            let mix = scenario::routing::Mix::of(args);
            let target = scenario::engine_with(common, &client, mix.engine_config()).await?;
            print(&scenario::routing::run(&target, common, args).await?);
        }
        Scenario::Floor(args) => {
            print(&baseline(Kind::Floor, Load::of(args), common, &client).await?);
        }
        Scenario::Peer(args) => {
            print(&baseline(Kind::Peer, Load::of(args), common, &client).await?);
        }
        Scenario::Relay { .. } => unreachable!("served before the runtime runs scenarios"),
    }
    Ok(true)
}
