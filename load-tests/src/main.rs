//! `switchboard-load`: drives a local Switchboard engine through real WebSocket and HTTP
//! clients and reports what it measured; see `load-tests/README.md`.
//!
//! - [`cli`]: the command line.
//! - [`target`]: starting the engine (or the floor relay) or attaching to one.
//! - [`fleet`]: simulated agents, one task per agent over its connections.
//! - [`http`]: admin API and channel ingress.
//! - [`scenario`]: idle, reopen-storm, race, routing.
//! - [`supervisors`]: supervisors watching the board while a scenario runs.
//! - [`relay`]: the floor, a bare relay with the engine's shape.
//! - [`stats`], [`report`], [`procstat`]: what is measured and how it is printed.

mod cli;
mod clock;
mod fleet;
mod http;
mod procstat;
mod relay;
mod report;
mod scenario;
mod stats;
mod supervisors;
mod target;
mod wire;

use clap::Parser;

use cli::{Cli, Common, Scenario, Shape};
use report::{Compared, Report};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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

/// Runs one scenario; false when its checks failed.
async fn run(scenario: &Scenario, common: &Common) -> anyhow::Result<bool> {
    let client = http::client(16)?;
    quiet(common).await;
    match scenario {
        Scenario::Idle {
            idle,
            watch,
            with_floor,
        } => {
            let floor = if *with_floor {
                let target = target::spawn_floor(&client, common.floor_axum_defaults).await?;
                let report = scenario::idle::run(&target, common, idle, 0).await?;
                drop(target);
                quiet(common).await;
                Some(report)
            } else {
                None
            };
            let target = scenario::engine(common, &client).await?;
            let engine = scenario::idle::run(&target, common, idle, watch.supervisors).await?;
            match floor {
                Some(floor) => print_compared(&Compared::new(engine, floor)),
                None => print(&engine),
            }
        }
        Scenario::ReopenStorm {
            storm,
            watch,
            with_floor,
        } => {
            let floor = if *with_floor {
                let target = target::spawn_floor(&client, common.floor_axum_defaults).await?;
                // The relay has no supervisor socket: the floor runs without them.
                let report = scenario::storm::run(&target, common, storm, 0).await?;
                drop(target);
                quiet(common).await;
                Some(report)
            } else {
                None
            };
            let target = scenario::engine(common, &client).await?;
            let engine = scenario::storm::run(&target, common, storm, watch.supervisors).await?;
            match floor {
                Some(floor) => print_compared(&Compared::new(engine, floor)),
                None => print(&engine),
            }
        }
        Scenario::Race(args) => {
            let target = scenario::engine(common, &client).await?;
            let (report, pass) = scenario::race::run(&target, common, args).await?;
            print(&report);
            return Ok(pass);
        }
        Scenario::Routing(args) => {
            let target = scenario::engine(common, &client).await?;
            print(&scenario::routing::run(&target, common, args).await?);
        }
        Scenario::Floor { shape, storm, idle } => {
            let target = target::spawn_floor(&client, common.floor_axum_defaults).await?;
            let report = match shape {
                Shape::ReopenStorm => scenario::storm::run(&target, common, storm, 0).await?,
                Shape::Idle => scenario::idle::run(&target, common, idle, 0).await?,
            };
            print(&report);
        }
        Scenario::Relay { .. } => unreachable!("served before the runtime runs scenarios"),
    }
    Ok(true)
}
