//! `--cluster N` (issue 19): a private PostgreSQL for the run, which the spawned engine nodes
//! share, and the wait until a cluster serves every workspace the scenario made.
//!
//! The database is the engine's own test server (`src/store/postgres/test_server.rs`, by path:
//! initdb into a temp dir, on 127.0.0.1, as an unprivileged user when run as root), so the
//! harness and the engine's tests start PostgreSQL the same way.

use std::time::Duration;

use anyhow::Context;

use crate::clock;
use crate::fleet::{self, Dialect};
use crate::http::AgentSpec;
use crate::procstat;
use crate::target::Target;
use crate::workspaces::Workspaces;

// Its `start` (the engine's tests' entry point) is not used here.
#[allow(dead_code)]
#[path = "../../src/store/postgres/test_server.rs"]
mod test_server;

/// How long a cluster may take, once every node is ready, to serve the first agent of each
/// workspace (placement: a node may answer 503 or refuse the socket until then).
const SETTLE: Duration = Duration::from_secs(60);

/// The private PostgreSQL of a run; stopped and removed on drop.
pub(crate) struct Database {
    server: test_server::PgServer,
    /// The postmaster: its backends are its children.
    postmaster: u32,
    /// Whether its commits reach the disk (`fsync`).
    pub(crate) fsync: bool,
}

impl Database {
    /// Starts a fresh server. With `durability` full its commits are fsynced, as SQLite's
    /// are at full: the test server turns fsync off (its data is thrown away), which would
    /// make PostgreSQL look cheaper than it is.
    pub(crate) async fn start(durability: &str) -> anyhow::Result<Database> {
        let fsync = durability == "full";
        let database = tokio::task::spawn_blocking(move || -> anyhow::Result<Database> {
            // The test server allows 50 connections; N nodes each hold a writer, a read pool
            // that grows under load, and their placement's connections.
            let settings: &[&str] = if fsync {
                &["max_connections=200", "fsync=on", "full_page_writes=on"]
            } else {
                &["max_connections=200"]
            };
            // The test server panics saying what is missing (no binaries) or what PostgreSQL said.
            let server = std::panic::catch_unwind(|| test_server::PgServer::start_with(settings))
                .map_err(|panic| anyhow::anyhow!("cannot start PostgreSQL: {}", panic_text(&panic)))?;
            let mut client = postgres::Client::connect(&server.url(), postgres::NoTls)
                .context("connecting to the private PostgreSQL")?;
            let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.get(0);
            let postmaster = procstat::parent_of(backend as u32)
                .context("the postmaster: no parent of the backend in /proc")?;
            let on: String = client.query_one("SHOW fsync", &[])?.get(0);
            anyhow::ensure!((on == "on") == fsync, "PostgreSQL's fsync is {on}");
            Ok(Database {
                server,
                postmaster,
                fsync,
            })
        })
        .await
        .context("starting PostgreSQL")??;
        eprintln!(
            "PostgreSQL (postmaster pid {}) for the cluster, fsync {}",
            database.postmaster,
            if database.fsync { "on" } else { "off" }
        );
        Ok(database)
    }

    /// The engines' `--cluster` URL.
    pub(crate) fn url(&self) -> String {
        self.server.url()
    }

    /// The postmaster's pid: with its children, the database's processes.
    pub(crate) fn postmaster(&self) -> u32 {
        self.postmaster
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "it panicked".to_owned())
}

/// The node agent `i` of `nodes` connects to (and HTTP worker `i` posts to): round robin.
pub(crate) fn node_of(i: usize, nodes: usize) -> usize {
    i % nodes.max(1)
}

/// On a cluster, waits (at most [`SETTLE`]) until the first agent of each workspace gets its
/// `welcome` on its own node: the workspace is placed, and that node serves it or forwards
/// to its owner. A single engine serves at once: nothing to wait for.
pub(crate) async fn settle(
    target: &Target,
    workspaces: &Workspaces,
    agents: &[AgentSpec],
) -> anyhow::Result<()> {
    if target.database.is_none() {
        return Ok(());
    }
    let start = clock::now();
    let ws_bases = target.ws_bases();
    for k in 0..workspaces.len() {
        let Some(i) = workspaces.members(k, agents.len()).next() else {
            continue;
        };
        let base = &ws_bases[node_of(i, ws_bases.len())];
        loop {
            let tried = tokio::time::timeout(
                fleet::CONNECT_TIMEOUT,
                fleet::connect_agent(base, workspaces.api(k), &agents[i].token, Dialect::Json),
            )
            .await;
            match tried {
                Ok(Ok((mut ws, _))) => {
                    let _ = ws.close(None).await;
                    break;
                }
                Ok(Err(e)) if start.elapsed() >= SETTLE => {
                    anyhow::bail!(
                        "{} not served at {base} after {SETTLE:?}: {e:#}",
                        workspaces.api(k)
                    )
                }
                Err(_) if start.elapsed() >= SETTLE => {
                    anyhow::bail!("{} not served at {base} after {SETTLE:?}", workspaces.api(k))
                }
                // Not placed yet: 503 or a refused socket; try again shortly.
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    eprintln!(
        "cluster: every workspace served ({:.2} s)",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procstat::CpuMark;

    #[test]
    fn issue19_agents_and_workers_spread_round_robin_over_the_nodes() {
        let of: Vec<usize> = (0..7).map(|i| node_of(i, 3)).collect();
        assert_eq!(of, [0, 1, 2, 0, 1, 2, 0]);
        assert!((0..7).all(|i| node_of(i, 1) == 0));
    }

    /// The database's CPU is the postmaster's and its backends', found by parent pid; a
    /// backend's CPU still counts after it exits (the postmaster reaped it).
    #[tokio::test]
    async fn issue19_database_cpu_counts_the_postmaster_and_its_backends() -> anyhow::Result<()> {
        let database = Database::start("normal").await?;
        let postmaster = database.postmaster();
        let url = database.url();
        let mark = CpuMark::take_tree(postmaster).context("the tree's counter")?;
        let backend = tokio::task::spawn_blocking(move || -> anyhow::Result<u32> {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
            let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.get(0);
            assert!(
                procstat::children_of(postmaster).contains(&(pid as u32)),
                "the backend {pid} is a child of the postmaster {postmaster}"
            );
            // Work that takes a backend a measurable share of a second.
            client.query_one("SELECT count(*) FROM generate_series(1, 3000000)", &[])?;
            Ok(pid as u32)
        })
        .await??;
        // The client is gone: wait (bounded) until its backend has exited and been reaped.
        let deadline = clock::now() + Duration::from_secs(10);
        while procstat::children_of(postmaster).contains(&backend) {
            anyhow::ensure!(clock::now() < deadline, "backend {backend} still runs");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ticks = mark.ticks_since().context("the tree's counter")?;
        assert!(
            ticks >= 5,
            "the exited backend's query shows in the tree's CPU ({ticks} ticks)"
        );
        Ok(())
    }

    #[tokio::test]
    async fn issue19_durability_full_turns_the_test_servers_fsync_on() -> anyhow::Result<()> {
        let database = Database::start("full").await?;
        assert!(database.fsync);
        let url = database.url();
        let fsync = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
            Ok(client.query_one("SHOW fsync", &[])?.get(0))
        })
        .await??;
        assert_eq!(fsync, "on");
        Ok(())
    }
}
