//! What a node relayed to the owners of workspaces it does not serve, for `/metrics`
//! (`switchboard_cluster_forwarded_*`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counts of what a node relayed to the owners of workspaces it does not serve
/// (`gateway/forward.rs`), for `/metrics` (`switchboard_cluster_forwarded_*`).
#[derive(Debug, Default)]
pub struct ForwardStats {
    pub(crate) requests: AtomicU64,
    pub(crate) sockets_opened: AtomicU64,
    pub(crate) sockets_live: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) unserved: AtomicU64,
}

impl ForwardStats {
    /// Plain HTTP requests relayed to another node (answered by it or not).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// WebSockets relayed to another node since start.
    pub fn sockets_opened(&self) -> u64 {
        self.sockets_opened.load(Ordering::Relaxed)
    }

    /// WebSockets being relayed now.
    pub fn sockets_live(&self) -> u64 {
        self.sockets_live.load(Ordering::Relaxed)
    }

    /// Relays that failed: the owner could not be reached, did not answer in time, or its
    /// socket ended without a close frame.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Requests answered `503 storage_unavailable` because no node served their workspace (or
    /// one that had been relayed already was not for this node).
    pub fn unserved(&self) -> u64 {
        self.unserved.load(Ordering::Relaxed)
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
