//! What a node's placement did, for `/metrics` (`switchboard_cluster_*`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one node's placement. Workspaces and leases held are read from [`Claims`]
/// and the registry at scrape; fenced refusals from the store.
///
/// [`Claims`]: super::Claims
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Leases this node held and lost: taken by another node, not renewed in time by its own
    /// clock, or a write refused as fenced.
    pub leases_lost: AtomicU64,
    /// Workspaces taken whose previous lease lapsed without being released (a node died or
    /// stalled).
    pub failovers: AtomicU64,
    /// Workspaces handed over: unloaded with their drain, then their lease released.
    pub hand_overs: AtomicU64,
    /// Placement rounds finished.
    pub rounds: AtomicU64,
}

impl ClusterStats {
    /// Adds one to `counter`.
    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
