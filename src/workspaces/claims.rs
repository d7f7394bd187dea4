//! The leases one node holds, and until when it may decide under each by its own clock.
//!
//! Shared by the placement loop (which takes, renews and lets go of them), the registry (a
//! workspace placed here is built on its lease's fenced handle: `workspaces/placed.rs`) and
//! `/metrics`. The map's lock is held only to copy a lease in or out, never across an
//! `.await` nor while another lock is taken (see `lock_order.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::Rounds;
use crate::engine::outbound::sender::Ownership;
use crate::ids::WorkspaceId;
use crate::store::{Epoch, Lease, Store};

/// Now, on this node's monotonic clock (tokio's), which a lease's time is counted on. Not the
/// engine's clock: that one is domain time, which tests hold still; a lease must run out in
/// real time, whatever the engine's clock says.
#[allow(clippy::disallowed_methods)]
pub(crate) fn monotonic_now() -> Instant {
    Instant::now()
}

/// One lease held.
#[derive(Clone, Debug)]
pub struct Held {
    /// As the database granted or last renewed it.
    pub lease: Lease,
    /// When this node stops deciding for the workspace unless renewed again: the lease time
    /// counted from before the take or renewal was sent, on this node's monotonic clock, so
    /// never later than the database's `expires_at`.
    pub valid_until: Instant,
}

/// The least a platform call waits for the cluster to carry out a suspend or a delete (the
/// owner to let go, the purge): the bound on a failover.
const PLATFORM_WAIT: Duration = Duration::from_secs(10);

/// What this node holds in the cluster.
#[derive(Debug)]
pub struct Claims {
    node: String,
    store: Arc<Store>,
    held: Mutex<HashMap<WorkspaceId, Held>>,
    stats: ClusterStats,
    rounds: Rounds,
    ready: AtomicBool,
    /// How long a suspend or delete waits for the cluster, in milliseconds.
    platform_wait_ms: AtomicU64,
}

impl Claims {
    /// Nothing held yet by `node`, on `store` (the cluster's database).
    pub fn new(node: impl Into<String>, store: Arc<Store>) -> Arc<Self> {
        Arc::new(Self {
            node: node.into(),
            store,
            held: Mutex::default(),
            stats: ClusterStats::default(),
            rounds: Rounds::default(),
            ready: AtomicBool::new(false),
            platform_wait_ms: AtomicU64::new(PLATFORM_WAIT.as_millis() as u64),
        })
    }

    /// The node's lease and round: a suspend or delete waits for the owner's next round and
    /// its drain, or for a dead owner's lease to lapse and a round to take it, and at least
    /// [`PLATFORM_WAIT`].
    pub(crate) fn set_lease_time(&self, lease: Duration, round: Duration) {
        self.set_platform_wait(PLATFORM_WAIT.max(lease + 3 * round));
    }

    /// Sets how long a suspend or delete waits for the cluster before it answers that the
    /// change is recorded but not carried out yet (`PlatformError::Pending`).
    pub(crate) fn set_platform_wait(&self, wait: Duration) {
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.platform_wait_ms.store(ms, Ordering::Relaxed);
    }

    /// How long a suspend or delete waits for the cluster.
    pub fn platform_wait(&self) -> Duration {
        Duration::from_millis(self.platform_wait_ms.load(Ordering::Relaxed))
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The cluster's database.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The lease held for `id`, if any.
    pub fn lease(&self, id: &WorkspaceId) -> Option<Lease> {
        self.held.lock().get(id).map(|h| h.lease.clone())
    }

    /// Every lease held, by workspace.
    pub fn all(&self) -> Vec<(WorkspaceId, Held)> {
        let mut all: Vec<_> = self
            .held
            .lock()
            .iter()
            .map(|(id, h)| (id.clone(), h.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// How many leases are held.
    pub fn count(&self) -> usize {
        self.held.lock().len()
    }

    /// Holds `held` for `id` from now on.
    pub(crate) fn hold(&self, id: WorkspaceId, held: Held) {
        self.held.lock().insert(id, held);
    }

    /// A renewal of `id`'s lease came back: kept, if that lease (same epoch) is still held.
    /// False if it was let go of meanwhile (then the caller releases the renewed lease).
    pub(crate) fn renewed(&self, id: &WorkspaceId, held: Held) -> bool {
        match self.held.lock().get_mut(id) {
            Some(h) if h.lease.epoch == held.lease.epoch => {
                *h = held;
                true
            }
            _ => false,
        }
    }

    /// Lets go of `id`'s lease in memory: the lease it was, if held.
    pub(crate) fn drop_claim(&self, id: &WorkspaceId) -> Option<Lease> {
        self.held.lock().remove(id).map(|h| h.lease)
    }

    /// Lets go, in memory, of every lease whose time by this node's clock is over at `now`.
    pub(crate) fn expire(&self, now: Instant) -> Vec<(WorkspaceId, Lease)> {
        let mut held = self.held.lock();
        let over: Vec<WorkspaceId> = held
            .iter()
            .filter(|(_, h)| h.valid_until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        over.into_iter()
            .filter_map(|id| held.remove(&id).map(|h| (id, h.lease)))
            .collect()
    }

    /// What placement did so far.
    pub fn stats(&self) -> &ClusterStats {
        &self.stats
    }

    /// The placement loop's rounds: ask for one now, wait for it.
    pub fn rounds(&self) -> &Rounds {
        &self.rounds
    }

    /// Whether the first placement round is done (`/readyz` answers 503 before).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }
}

/// One lease of a workspace loaded here, as the workspace's outbox asks about it: held while
/// this node holds that lease (the same epoch) and its time by this node's clock is not over.
/// Checked on the claims themselves, not left to the watchdog: a node resumed after a stop
/// longer than its lease runs its outbox and its watchdog at once, and must not send before
/// the watchdog lets go.
#[derive(Debug)]
pub(crate) struct LeaseHeld {
    claims: Arc<Claims>,
    id: WorkspaceId,
    epoch: Epoch,
}

impl LeaseHeld {
    pub(crate) fn new(claims: Arc<Claims>, id: WorkspaceId, lease: &Lease) -> Self {
        Self {
            claims,
            id,
            epoch: lease.epoch,
        }
    }
}

impl Ownership for LeaseHeld {
    fn holds(&self) -> bool {
        let now = monotonic_now();
        (self.claims.held.lock().get(&self.id))
            .is_some_and(|h| h.lease.epoch == self.epoch && h.valid_until > now)
    }
}

/// Counters of one node's placement. Workspaces and leases held are read from [`Claims`]
/// and the registry at scrape, rounds from [`Rounds`], fenced refusals from the store.
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
