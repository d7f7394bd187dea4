//! Issue 19: three real `switchboard` processes on one private PostgreSQL (`--cluster`).
//!
//! - R03 across nodes: agents of one workspace, each connected to a different node, race to
//!   reopen the same chat, 200 times: exactly one winner each time, every loser told
//!   `active_elsewhere` with the winner's name, and no other error. Only the owner of the
//!   workspace decides; the other nodes forward (R28).
//! - R29 failover: the owner of the workspace is killed (SIGKILL) or stopped (SIGSTOP) again and
//!   again; another node serves the workspace within seconds with every acknowledged message,
//!   and a stopped node that comes back cannot write (R28's fencing): the lease's epoch has
//!   moved on, and whatever it tries is refused. The failover times are printed.
//!
//! The engines run as child processes of the test and PostgreSQL as the test's private
//! server (initdb into a temp dir, on 127.0.0.1, as an unprivileged user); all are stopped
//! when the test ends, whichever way it ends.

#[allow(dead_code)]
mod crash {
    pub(crate) mod desk;
    pub(crate) mod process;
}

/// The private PostgreSQL the library's tests start, shared by path.
#[path = "../src/store/postgres/test_server.rs"]
mod pg;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crash::desk::{Desk, DeskError};
use crash::process::{Data, EngineProcess, Scratch};
use pg::PgServer;

/// Nodes in each test's cluster.
const NODES: usize = 3;
/// How long a workspace may take to be served after its owner died: the issue's goal (10 s)
/// at the default lease settings, plus room for a loaded 2-core machine.
const FAILOVER_BOUND: Duration = Duration::from_secs(30);
/// How long a node may take to start and the cluster to place `default`.
const SETTLE: Duration = Duration::from_secs(30);
/// `default`'s key in every store (schema version 5).
const DEFAULT_KEY: i64 = 1;

/// The wall clock, for deadlines and for reporting how long a failover took (the engines'
/// own clocks are not involved).
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// A node: its name, its configuration file, and its process while it runs.
struct Node {
    name: String,
    config: PathBuf,
    process: Option<EngineProcess>,
}

/// Three engines on one database. Dropped in field order: the engines are killed before the
/// database stops and the directory goes.
struct Cluster {
    nodes: Vec<Node>,
    database: PgServer,
    _scratch: Scratch,
}

impl Cluster {
    /// Starts the database and `NODES` engines with `cluster_keys` in their `[cluster]`
    /// sections and `agents` as `[[agents]]` tables (development security: static tokens
    /// `<id>-token`).
    async fn start(test: &str, cluster_keys: &str, agents: &str) -> Cluster {
        let scratch = Scratch::new(test);
        let database = tokio::task::spawn_blocking(PgServer::start)
            .await
            .expect("the private PostgreSQL starts");
        let nodes = (1..=NODES)
            .map(|i| {
                let name = format!("n{i}");
                let config = scratch.path().join(format!("{name}.toml"));
                let text = format!("[cluster]\nnode = \"{name}\"\n{cluster_keys}\n{agents}");
                std::fs::write(&config, text).expect("write a node's config");
                Node {
                    name,
                    config,
                    process: None,
                }
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            database,
            _scratch: scratch,
        };
        for i in 0..NODES {
            cluster.start_node(i);
        }
        cluster
    }

    fn start_node(&mut self, i: usize) {
        let data = Data::Postgres(self.database.url());
        let node = &mut self.nodes[i];
        node.process = Some(EngineProcess::start(&node.config, &data));
    }

    fn process(&self, i: usize) -> &EngineProcess {
        self.nodes[i].process.as_ref().expect("the node runs")
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.process(i).addr
    }

    fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The node holding `default`'s unexpired lease, by the database, and its epoch.
    async fn owner_of_default(&self) -> Option<(String, i64)> {
        let url = self.database.url();
        tokio::task::spawn_blocking(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
            client
                .query_opt(
                    "SELECT node, epoch FROM leases WHERE ws = $1 AND expires_at > clock_timestamp()",
                    &[&DEFAULT_KEY],
                )
                .expect("reads the leases")
                .map(|row| (row.get(0), row.get(1)))
        })
        .await
        .expect("the lease query ran")
    }

    /// Waits until `default` has an owner, and answers it.
    async fn wait_owner(&self, other_than: Option<&str>) -> (String, i64) {
        let deadline = now() + SETTLE;
        loop {
            if let Some((node, epoch)) = self.owner_of_default().await {
                if Some(node.as_str()) != other_than {
                    return (node, epoch);
                }
            }
            assert!(now() < deadline, "no node took default within {SETTLE:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The engine's last log lines of every running node, for a failure message.
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|n| {
                let p = n.process.as_ref()?;
                Some(format!("--- {}:\n{}", n.name, p.log_tail(25)))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Connects `agent` to the node at `addr`, retrying while the workspace is not served yet
/// (placement or failover in progress: the upgrade is answered 503, or the socket closed).
async fn connect(addr: SocketAddr, agent: &str, within: Duration) -> Desk {
    let deadline = now() + within;
    loop {
        match Desk::connect(addr, agent).await {
            Ok(mut desk) => {
                // Served for real: a request round trip through the owner.
                match desk.request(json!({ "type": "snapshot" })).await {
                    Ok((reply, _)) if reply["type"] == "ok" => return desk,
                    Ok((reply, _)) => panic!("{agent}: snapshot answered {reply}"),
                    Err(_) if now() < deadline => {}
                    Err(e) => panic!("{agent} at {addr}: {e}"),
                }
            }
            Err(_) if now() < deadline => {}
            Err(e) => panic!("{agent} could not connect to {addr} within {within:?}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A customer's message over HTTP to the node at `addr`; the chat it went to, once the
/// engine acknowledged it (retried while the workspace moves: 503).
async fn customer_writes(http: &reqwest::Client, addr: SocketAddr, from: &str, text: &str) -> String {
    let url = format!("http://{addr}/v1/channels/webchat/messages");
    let deadline = now() + FAILOVER_BOUND;
    loop {
        let response = http
            .post(&url)
            .json(&json!({ "from": from, "text": text, "name": from }))
            .send()
            .await;
        match response {
            Ok(r) if r.status() == StatusCode::OK => {
                let receipt: Value = r.json().await.expect("a JSON receipt");
                return receipt["chat_id"].as_str().expect("a chat id").to_owned();
            }
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE && now() < deadline => {}
            Ok(r) => panic!("{from}'s message answered {}: {:?}", r.status(), r.text().await),
            Err(e) if now() < deadline => eprintln!("{from}'s message: {e}; again"),
            Err(e) => panic!("{from}'s message: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads `desk`'s frames until a push of `kind` about `chat`.
async fn push_about(desk: &mut Desk, kind: &str, chat: &str) -> Result<Value, DeskError> {
    loop {
        let frame = desk.read().await?;
        let event = &frame["event"];
        let about = event["chat"]["id"].as_str().or(event["chat_id"].as_str());
        if frame["type"] == "push" && event["kind"] == kind && about == Some(chat) {
            return Ok(frame);
        }
    }
}

const RACE_AGENTS: &str = r#"
[[agents]]
id = "olga"
role = "agent"
limit = 1
token = "olga-token"

[[agents]]
id = "r1"
role = "agent"
limit = 0
token = "r1-token"

[[agents]]
id = "r2"
role = "agent"
limit = 0
token = "r2-token"

[[agents]]
id = "r3"
role = "agent"
limit = 0
token = "r3-token"
"#;

const RACE_ROUNDS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r03_across_three_nodes_each_of_200_reopen_races_has_exactly_one_winner() {
    let cluster = Cluster::start("cluster-r03", "", RACE_AGENTS).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let (owner, _) = cluster.wait_owner(None).await;
    println!("default is served by {owner}");
    // Olga takes and closes every chat, on the first node; the racers (limit 0: never
    // offered a chat, and reopening needs no free slot) each on a node of their own, so two of
    // them always go through a node that forwards to the owner.
    let mut olga = connect(cluster.addr(0), "olga", SETTLE).await;
    let mut racers = Vec::new();
    for (i, racer) in ["r1", "r2", "r3"].into_iter().enumerate() {
        racers.push(connect(cluster.addr(i), racer, SETTLE).await);
    }
    olga.request(json!({ "type": "set_presence", "presence": "online" }))
        .await
        .expect("olga goes online");

    for round in 0..RACE_ROUNDS {
        // The customer writes to each node in turn.
        let chat = customer_writes(
            &http,
            cluster.addr(round % NODES),
            &format!("visitor-{round}"),
            "hello",
        )
        .await;
        push_about(&mut olga, "chat_offered", &chat)
            .await
            .unwrap_or_else(|e| panic!("round {round}: olga's offer: {e}\n{}", cluster.logs()));
        for request in ["accept", "close"] {
            let (reply, _) = olga
                .request(json!({ "type": request, "chat_id": chat }))
                .await
                .unwrap_or_else(|e| panic!("round {round}: olga's {request}: {e}"));
            assert_eq!(reply["type"], "ok", "round {round}: olga's {request}: {reply}");
        }

        let start = Arc::new(Barrier::new(racers.len()));
        let races: Vec<_> = racers
            .drain(..)
            .map(|mut racer| {
                let (chat, start) = (chat.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let reply = racer.request(json!({ "type": "reopen", "chat_id": chat })).await;
                    (racer, reply)
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for (i, race) in races.into_iter().enumerate() {
            let (racer, reply) = race.await.expect("a racer panicked");
            let (reply, _) = reply.unwrap_or_else(|e| panic!("round {round}: racer r{}: {e}", i + 1));
            match reply["type"].as_str() {
                Some("ok") => winners.push(format!("r{}", i + 1)),
                _ => losers.push(reply),
            }
            racers.push(racer);
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: winners {winners:?}, losers {losers:?}"
        );
        for loser in &losers {
            assert_eq!(loser["code"], "active_elsewhere", "round {round}: {loser}");
            assert_eq!(
                loser["live"]["owner"],
                winners[0].as_str(),
                "round {round}: {loser}"
            );
        }
    }
    println!("{RACE_ROUNDS} races over {NODES} nodes: one winner each");
}

const FAILOVER_AGENTS: &str = r#"
[[agents]]
id = "sue"
role = "supervisor"
limit = 0
token = "sue-token"
"#;

/// Rounds of the failover test: SIGKILL and SIGSTOP of the owner, alternately.
const FAILOVER_ROUNDS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r29_the_owner_killed_or_stopped_another_node_serves_with_what_was_acknowledged_and_r28_fences_it() {
    // The default lease settings: the failover times printed are the ones the README quotes.
    let mut cluster = Cluster::start("cluster-r29", "", FAILOVER_AGENTS).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let mut times = Vec::new();
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for round in 0..FAILOVER_ROUNDS {
        let (owner, epoch) = cluster.wait_owner(None).await;
        let victim = cluster.index_of(&owner);
        let witness = (victim + 1) % NODES;
        // Acknowledged through another node (forwarded to the owner) just before it goes.
        let text = format!("round {round}: before the owner goes");
        let chat = customer_writes(&http, cluster.addr(witness), &format!("visitor-{round}"), &text).await;
        acknowledged.push((chat, text));

        let stop = round % 2 == 1;
        let gone = now();
        if stop {
            cluster.process(victim).signal("STOP");
        } else if let Some(mut process) = cluster.nodes[victim].process.take() {
            process.kill();
        }
        // Taken over: another node holds the lease, by the database...
        let (new_owner, new_epoch) = cluster.wait_owner(Some(&owner)).await;
        let taken = gone.elapsed();
        assert!(
            new_epoch > epoch,
            "round {round}: the epoch went from {epoch} to {new_epoch}"
        );
        // ...and served again: a supervisor's request round trip through a surviving node.
        let mut sue = connect(cluster.addr(witness), "sue", FAILOVER_BOUND).await;
        let served = gone.elapsed();
        println!(
            "round {round}: {} {owner}; {new_owner} took the lease after {} ms (epoch {epoch} -> {new_epoch}), \
             a client through {} is served after {} ms",
            if stop { "stopped" } else { "killed" },
            taken.as_millis(),
            cluster.nodes[witness].name,
            served.as_millis()
        );
        times.push((taken, served));

        // Every acknowledged message so far is there, once.
        for (chat, text) in &acknowledged {
            let (reply, _) = sue
                .request(json!({ "type": "get_chat", "chat_id": chat, "limit": 50 }))
                .await
                .unwrap_or_else(|e| panic!("round {round}: get_chat {chat}: {e}"));
            let found = reply["result"]["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["text"] == text.as_str())
                .count();
            assert_eq!(
                found,
                1,
                "round {round}: {text:?} in {chat}: {reply}\n{}",
                cluster.logs()
            );
        }

        if stop {
            // R28: the stopped node comes back believing it still owns `default` until its own
            // clock tells it otherwise. Whatever it tries to write is refused, and the lease
            // stays with the node that took it.
            cluster.process(victim).signal("CONT");
            let probe = format!("round {round}: sent to the node that was stopped");
            let chat = customer_writes(&http, cluster.addr(victim), &format!("late-{round}"), &probe).await;
            let (after, after_epoch) = cluster.wait_owner(None).await;
            assert_eq!(
                (after.as_str(), after_epoch),
                (new_owner.as_str(), new_epoch),
                "round {round}: the lease moved back"
            );
            // It knows it lost the lease, and serves nothing of `default` any more (its own
            // clock, a renewal answered None, or a write refused as fenced: each counts).
            let lost = metric(
                &http,
                cluster.addr(victim),
                "switchboard_cluster_leases_lost_total",
            )
            .await;
            assert!(
                lost >= 1.0,
                "round {round}: the stopped node counted {lost} lost leases"
            );
            let fenced = metric(
                &http,
                cluster.addr(victim),
                "switchboard_cluster_fenced_submissions_total",
            )
            .await;
            println!("round {round}: the stopped node came back: {lost} lease(s) lost, {fenced} submission(s) refused as fenced");
            // Acknowledged, so written once: by the new owner, which the old one forwarded to.
            acknowledged.push((chat, probe));
        } else {
            cluster.start_node(victim);
        }
    }
    let summary = |what: &str, mut ms: Vec<u128>| {
        ms.sort_unstable();
        println!(
            "failover over {FAILOVER_ROUNDS} rounds, {what}: p50 {} ms, max {} ms",
            ms[ms.len() / 2],
            ms[ms.len() - 1]
        );
    };
    summary("lease taken", times.iter().map(|t| t.0.as_millis()).collect());
    summary("served again", times.iter().map(|t| t.1.as_millis()).collect());
    for (_, served) in &times {
        assert!(*served < FAILOVER_BOUND, "a failover took {served:?}");
    }
}

/// The value of the unlabelled series `name` on the node at `addr`'s `/metrics`.
async fn metric(http: &reqwest::Client, addr: SocketAddr, name: &str) -> f64 {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics is text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}
