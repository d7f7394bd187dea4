//! The cluster's nodes and who holds what (R28, issue 19): what a node's placement loop reads
//! and writes besides its leases (`leases.rs`).
//!
//! Every node records itself in `nodes` each round ([`Store::heartbeat`]); a node is live while
//! it was seen within the lease time, by PostgreSQL's clock, like the leases. The loop reads
//! [`Store::cluster_view`] to know how many live nodes share the workspaces, which leases have
//! lapsed, and where the holder of each unexpired one is reached. On SQLite both answer
//! `StoreError::NeedsPostgres`.

use std::time::Duration;

use super::{Epoch, Store, StoreError, WsKey};

/// A node seen within the time asked for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NodeRow {
    /// Its name, unique in the cluster.
    pub name: String,
    /// The base URL other nodes reach it at (`http://host:port`).
    pub address: String,
    /// It is leaving: it takes nothing and hands everything over.
    pub leaving: bool,
}

/// A workspace's lease row as the view found it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LeaseRow {
    /// The workspace.
    pub ws: WsKey,
    /// The node that holds it, or held it last.
    pub node: String,
    /// Its epoch.
    pub epoch: Epoch,
    /// Not lapsed yet (by the database's clock).
    pub unexpired: bool,
    /// Let go of by its holder (a hand-over) rather than lapsed.
    pub released: bool,
    /// Where its node is reached, if that node ever recorded itself.
    pub address: Option<String>,
}

/// The nodes and leases of the cluster, read in one transaction.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ClusterView {
    /// Nodes seen within the time asked for, by name.
    pub nodes: Vec<NodeRow>,
    /// Every lease row there is, lapsed or not.
    pub leases: Vec<LeaseRow>,
}

impl Store {
    /// Records that `node`, reached at `address`, is alive now (the database's now), and
    /// whether it is `leaving`.
    pub fn heartbeat(&self, node: &str, address: &str, leaving: bool) -> Result<(), StoreError> {
        self.leases("recording a node")?.heartbeat(node, address, leaving)
    }

    /// The nodes seen within `live_within` and every lease row.
    pub fn cluster_view(&self, live_within: Duration) -> Result<ClusterView, StoreError> {
        self.leases("reading the cluster")?.view(live_within)
    }
}
