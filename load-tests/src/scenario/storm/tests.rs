//! A tiny storm against a real engine (the debug `switchboard` beside this test's target
//! directory, started as `--spawn` starts one), to prove that the harness's paths work.

use std::path::PathBuf;

use clap::Parser;
use serde_json::Value;

use crate::cli::{Cli, Scenario};
use crate::{http, scenario};

/// The engine binary cargo built into this test's target directory (`…/debug/switchboard`,
/// beside `…/debug/deps/` where this test runs).
fn debug_engine() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs in …/debug/deps");
    let engine = debug.join("switchboard");
    assert!(
        engine.is_file(),
        "no engine at {}: run `cargo build -p switchboard` first (`cargo test --workspace` builds it)",
        engine.display()
    );
    engine
}

async fn get(client: &reqwest::Client, url: String) -> Value {
    let response = client.get(&url).send().await.expect("GET");
    assert!(response.status().is_success(), "GET {url}: {}", response.status());
    response.json().await.expect("a JSON answer")
}

/// The agent ids the admin API below `api` lists.
async fn agent_ids(client: &reqwest::Client, base: &str, api: &str) -> Vec<String> {
    let agents = get(client, format!("{base}{api}/admin/agents")).await;
    let mut ids: Vec<String> = agents
        .as_array()
        .expect("a list of agents")
        .iter()
        .map(|a| a["id"].as_str().expect("an id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r27_a_storm_over_three_workspaces_keeps_each_agent_and_customer_in_its_own() {
    let engine = debug_engine();
    let cli = Cli::try_parse_from([
        "switchboard-load",
        "reopen-storm",
        "--spawn",
        "--engine-bin",
        engine.to_str().expect("a UTF-8 path"),
        "--durability",
        "memory",
        "--agents",
        "6",
        "--workspaces",
        "3",
        "--concurrency",
        "6",
        "--supervisors",
        "3",
        "--warmup",
        "0.2",
        "--duration",
        "1",
    ])
    .expect("the command line parses");
    let Scenario::ReopenStorm { storm, watch, .. } = &cli.scenario else {
        panic!("parsed as {:?}", cli.scenario);
    };
    let client = http::client(4).expect("an HTTP client");
    let target = scenario::engine(&cli.common, &client)
        .await
        .expect("the engine starts");
    let report = scenario::storm::run(&target, &cli.common, storm, watch.supervisors)
        .await
        .expect("the storm runs");

    // A reopen of another workspace's chat, or a reply into the wrong one, would be an error.
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    assert!(report.done > 0, "no cycle completed: {report:?}");
    assert_eq!(report.extra["workspaces"], 3);
    let supervisors = report.supervisors.as_ref().expect("supervisor figures");
    assert_eq!((supervisors.subscribed, supervisors.closed_early), (3, 0));
    // Created over the platform API, agent i and supervisor i in workspace i % 3, none in
    // `default`.
    let workspaces = get(&client, format!("{}/v1/platform/workspaces", target.base)).await;
    let mut ids: Vec<&str> = workspaces
        .as_array()
        .expect("a list of workspaces")
        .iter()
        .map(|w| w["id"].as_str().expect("an id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["default", "lt-w0", "lt-w1", "lt-w2"]);
    for (api, want) in [
        ("/v1/w/lt-w0", ["lt-a0", "lt-a3", "lt-s0"]),
        ("/v1/w/lt-w1", ["lt-a1", "lt-a4", "lt-s1"]),
        ("/v1/w/lt-w2", ["lt-a2", "lt-a5", "lt-s2"]),
    ] {
        assert_eq!(agent_ids(&client, &target.base, api).await, want, "{api}");
    }
    assert_eq!(
        agent_ids(&client, &target.base, "/v1").await,
        Vec::<String>::new()
    );
}
