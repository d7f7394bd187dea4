//! One node's placement loop (R28, R29), a tokio task of its own, and its graceful leave.
//!
//! Three tasks. The renewer renews every lease held each `Settings::round` (one lost: that
//! workspace is unloaded at once), apart from placement, so that a long restore or drain
//! never delays a renewal. Each placement round (same period) the node records itself as
//! alive and reads the nodes, the leases and the `workspaces` table (on a blocking thread:
//! the store's calls are synchronous); then `share.rs` decides, and the node lets go of what is no longer active, hands over what is
//! above its fair share (unloaded with its drain, then released, so the taker need not wait
//! for it to lapse) and takes lapsed or never-held leases up to its share, loading each
//! workspace from the store on its fenced handle.
//!
//! The node never decides on a lease longer than its own clock allows: a watchdog task drops
//! every workspace whose lease was not renewed within the lease time counted from before the
//! last successful take or renewal was sent (the database's `expires_at` is never earlier), so
//! a node whose database calls hang stops deciding before another node can take over. A write
//! refused as fenced (another node took the workspace) drops it too, at the next round.
//!
//! A node whose store stopped writing (its first failed group: the writer's session ended
//! while the node was stopped, or the database restarted) hands everything over and takes
//! nothing; once it holds no lease and has no workspace loaded it resumes the store on a
//! fresh connection (`Store::resume_writing`, whose precondition that is) and takes its
//! share again from the next round.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::purge::Purges;
use super::share::{self, Candidate};
use super::{Claims, ClusterStats, Held, Location, Placed, Settings};
use crate::ids::WorkspaceId;
use crate::store::{ClusterView, Lease, StoreError, WorkspaceRow};
use crate::workspaces::{monotonic_now, MIN_ROUND_GAP};
use crate::workspaces::{UnloadError, Workspaces};

/// How long requests and sockets inside a workspace being handed over (or suspended
/// elsewhere) get to finish, at most: its sockets are closed first, and reconnect to its new
/// node; a request in flight needs far less.
const HAND_OVER_GRACE: Duration = Duration::from_secs(2);

/// A node of the cluster: its placement loop and its watchdog, running until it leaves
/// ([`Node::leave`]) or is dropped (which stops both without letting go of anything: the
/// leases lapse, as when a node dies).
pub struct Node {
    inner: Arc<Inner>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    renewer: Option<JoinHandle<()>>,
    watchdog: Option<JoinHandle<()>>,
}

struct Inner {
    settings: Settings,
    workspaces: Arc<Workspaces>,
    claims: Arc<Claims>,
    directory: Arc<Placed>,
    /// While true, a round waits before it touches the database (tests: a hung connection).
    paused: watch::Sender<bool>,
    /// What this node handed over, and when: not taken back by it for a lease time, so that
    /// the node it was handed over for gets it. Touched by the loop only.
    handed: parking_lot::Mutex<HashMap<WorkspaceId, Instant>>,
    /// Deletes this node finishes, each under a lease taken for it (`purge.rs`).
    purges: Purges,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node", &self.inner.settings.node)
            .finish_non_exhaustive()
    }
}

/// A registry that was not opened for a cluster ([`Workspaces::open_cluster`]).
#[derive(Debug, thiserror::Error)]
#[error("the workspaces were not opened for a cluster: nothing to place")]
pub struct NotClustered;

impl Node {
    /// Starts placing `workspaces` (opened with [`Workspaces::open_cluster`]) as `settings`
    /// say, on the current tokio runtime.
    pub fn start(settings: Settings, workspaces: Arc<Workspaces>) -> Result<Node, NotClustered> {
        let claims = workspaces.cluster().cloned().ok_or(NotClustered)?;
        let inner = Arc::new(Inner {
            directory: Arc::new(Placed::new(settings.node.clone())),
            settings,
            workspaces,
            claims,
            paused: watch::channel(false).0,
            handed: Default::default(),
            purges: Purges::default(),
        });
        inner
            .claims
            .set_lease_time(inner.settings.lease, inner.settings.round);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(inner.clone().run(stopped));
        let renewer = tokio::spawn(inner.clone().renew_every_round());
        let watchdog = tokio::spawn(inner.clone().watch_clock());
        tracing::info!(node = %inner.settings.node, advertise = %inner.settings.advertise,
            lease_ms = inner.settings.lease.as_millis() as u64, "cluster node started");
        Ok(Node {
            inner,
            stop,
            task: Some(task),
            renewer: Some(renewer),
            watchdog: Some(watchdog),
        })
    }

    /// Where each workspace is served, as this node knows it (for the gateway's forwarding).
    pub fn directory(&self) -> Arc<Placed> {
        self.inner.directory.clone()
    }

    /// What this node holds.
    pub fn claims(&self) -> &Arc<Claims> {
        &self.inner.claims
    }

    /// Leaves the cluster gracefully: placement stops, the node marks itself leaving, and
    /// every workspace it holds is unloaded with its drain (every acknowledged change
    /// committed) and its lease released, so that the other nodes take it at once. Its leases
    /// are renewed until each is released.
    pub async fn leave(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.inner.round(true).await;
        // Whatever that round could not hand over (the database failed): the same, one by one.
        for (id, _) in self.inner.claims.all() {
            self.inner.let_go(&id, self.inner.grace(), true).await;
        }
        for task in [self.renewer.take(), self.watchdog.take()].into_iter().flatten() {
            task.abort();
        }
        tracing::info!(node = %self.inner.settings.node, "left the cluster");
    }

    /// Tests: makes every round wait before it touches the database while `paused` (as a
    /// node whose connection hangs), or lets them go on.
    #[cfg(test)]
    pub(crate) fn pause(&self, paused: bool) {
        self.inner.paused.send_replace(paused);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for task in [self.task.take(), self.renewer.take(), self.watchdog.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}

impl Inner {
    async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(self.settings.round);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let rounds = self.claims.rounds();
        let mut last = monotonic_now();
        loop {
            tokio::select! {
                biased;
                changed = stopped.changed() => if changed.is_err() || *stopped.borrow() {
                    return;
                },
                _ = ticks.tick() => {}
                // Asked for (a create, a request for a workspace unknown here): spaced, so
                // that asks cannot keep the database busy with rounds.
                _ = rounds.asked() => tokio::time::sleep_until(last + MIN_ROUND_GAP).await,
            }
            last = monotonic_now();
            self.round(false).await;
            self.claims.set_ready();
        }
    }

    /// Renews every lease held, each round, on a blocking thread.
    async fn renew_every_round(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.settings.round);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let _ = self.paused.subscribe().wait_for(|paused| !paused).await;
            let this = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || this.renew_all()).await {
                tracing::error!(node = %self.settings.node, error = %e, "renewing leases panicked");
            }
        }
    }

    /// The time requests and sockets of a workspace handed over get: [`HAND_OVER_GRACE`], or
    /// a round if that is shorter.
    fn grace(&self) -> Duration {
        HAND_OVER_GRACE.min(self.settings.round)
    }

    /// Drops every workspace whose lease time by this node's clock is over, the moment it
    /// is over, whatever the loop is doing (it may be stuck on the database).
    async fn watch_clock(self: Arc<Self>) {
        loop {
            let now = monotonic_now();
            let next = (self.claims.all().iter().map(|(_, h)| h.valid_until).min())
                .unwrap_or(now + self.settings.round)
                .min(now + self.settings.round);
            tokio::time::sleep_until(next).await;
            for (id, lease) in self.claims.expire(monotonic_now()) {
                tracing::warn!(node = %self.settings.node, workspace = %id, epoch = %lease.epoch,
                    "lease not renewed in time by this node's clock: no longer deciding for the workspace");
                self.lost(&id);
            }
        }
    }

    /// The lease of `id` is gone (its claim dropped already): its workspace is unloaded now,
    /// without waiting for anything inside it.
    fn lost(&self, id: &WorkspaceId) {
        ClusterStats::count(&self.claims.stats().leases_lost);
        self.directory.set(id, Location::Nowhere);
        let workspaces = self.workspaces.clone();
        let id = id.clone();
        tokio::spawn(async move {
            match workspaces.unload(&id, Duration::ZERO).await {
                Ok(()) | Err(UnloadError::NotLoaded(_)) => {}
                // Refused as fenced, most likely: the new owner has what was acknowledged.
                Err(e) => tracing::info!(error = %e, "workspace unloaded after its lease was lost"),
            }
        });
    }

    /// One placement round; `leaving`: hands everything over and takes nothing.
    async fn round(self: &Arc<Self>, leaving: bool) {
        let _ = self.paused.subscribe().wait_for(|paused| !paused).await;
        let rounds = self.claims.rounds();
        rounds.begin();
        self.run_round(leaving).await;
        rounds.end();
    }

    /// The work of [`round`](Self::round), which counts it.
    async fn run_round(self: &Arc<Self>, leaving: bool) {
        // A store that stopped writing (its first failed group, `store/writer.rs`) refuses
        // every change: such a node serves no workspace and takes none, as if it were
        // leaving, so that the others load what it committed and serve it. Once it let go of
        // everything, it resumes writing (below) and takes its share again.
        let stopped = self.claims.store().stats().stopped;
        if stopped && !leaving {
            self.resume_once_empty().await;
        }
        let leaving = leaving || self.claims.store().stats().stopped;
        for (id, held) in self.claims.all() {
            if self.claims.store().was_fenced(&held.lease) && self.claims.drop_claim(&id).is_some() {
                tracing::warn!(node = %self.settings.node, workspace = %id,
                    "a write was refused as fenced: another node took the workspace");
                self.lost(&id);
            }
        }
        let this = self.clone();
        let read = tokio::task::spawn_blocking(move || this.exchange(leaving)).await;
        let (view, rows) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                tracing::warn!(node = %self.settings.node, error = %e, "placement round failed");
                return;
            }
            Err(e) => {
                tracing::error!(node = %self.settings.node, error = %e, "placement round panicked");
                return;
            }
        };
        self.workspaces.refresh_rows(rows.clone()).await;
        let held: Vec<WorkspaceId> = self.claims.all().into_iter().map(|(id, _)| id).collect();
        let skip: HashSet<WorkspaceId> = {
            let mut handed = self.handed.lock();
            let now = monotonic_now();
            handed.retain(|_, at| now.duration_since(*at) < self.settings.lease);
            handed.keys().cloned().collect()
        };
        let plan = share::plan(&self.settings.node, leaving, &view, &rows, &held, &skip);
        self.directory.replace(plan.directory);
        let let_go = plan.let_go.iter().map(|id| self.let_go(id, self.grace(), false));
        futures_util::future::join_all(let_go).await;
        let hand_over = plan
            .hand_over
            .iter()
            .map(|id| self.let_go(id, self.grace(), true));
        futures_util::future::join_all(hand_over).await;
        let store = self.claims.store();
        self.purges
            .start(plan.purge, store, &self.settings.node, self.settings.lease);
        let mut taken = 0;
        for candidate in plan.candidates {
            if taken >= plan.want {
                break;
            }
            if self.take(candidate).await {
                taken += 1;
            }
        }
    }

    /// Lets the stopped store write again once nothing that ran ahead of the database is in
    /// memory: no lease held, no workspace loaded (`Store::resume_writing`'s precondition),
    /// so that whatever this node loads next is restored from what was committed. Until then,
    /// and while the database cannot be reached, a later round tries again.
    async fn resume_once_empty(self: &Arc<Self>) {
        let (held, loaded) = (self.claims.count(), self.workspaces.ids().len());
        if held > 0 || loaded > 0 {
            tracing::info!(node = %self.settings.node, held, loaded,
                "the store has stopped writing: letting go of every workspace before it resumes");
            return;
        }
        let store = self.claims.store().clone();
        match tokio::task::spawn_blocking(move || store.resume_writing()).await {
            Ok(Ok(())) => tracing::warn!(node = %self.settings.node,
                "the store writes again after it stopped; taking a share of the workspaces again"),
            Ok(Err(e)) => tracing::warn!(node = %self.settings.node, error = %e,
                "the store cannot resume writing yet; trying again next round"),
            Err(e) => tracing::error!(node = %self.settings.node, error = %e, "resuming the store panicked"),
        }
    }

    /// Renews every lease held (blocking): each renewed one is good for the lease time from
    /// before its renewal was sent; one taken by another node is dropped and its workspace
    /// unloaded.
    fn renew_all(self: &Arc<Self>) {
        let store = self.claims.store();
        let ttl = self.settings.lease;
        for (id, held) in self.claims.all() {
            let sent = monotonic_now();
            match store.renew_lease(&held.lease, ttl) {
                Ok(Some(lease)) => {
                    let renewed = Held {
                        lease: lease.clone(),
                        valid_until: sent + ttl,
                    };
                    // Dropped meanwhile by the watchdog: nobody decides for it here, so let
                    // another node have it now.
                    if !self.claims.renewed(&id, renewed) {
                        let _ = store.release_lease(&lease);
                    }
                }
                Ok(None) => {
                    if self.claims.drop_claim(&id).is_some() {
                        tracing::warn!(node = %self.settings.node, workspace = %id,
                            "lease taken by another node: no longer deciding for the workspace");
                        self.lost(&id);
                    }
                }
                Err(e) => tracing::warn!(node = %self.settings.node, workspace = %id, error = %e,
                    "renewing a lease failed; the workspace is dropped if no renewal succeeds in time"),
            }
        }
    }

    /// The round's database work, on a blocking thread: record this node, and read the
    /// cluster and the workspaces' rows.
    fn exchange(&self, leaving: bool) -> Result<(ClusterView, Vec<WorkspaceRow>), StoreError> {
        let store = self.claims.store();
        let ttl = self.settings.lease;
        store.heartbeat(&self.settings.node, &self.settings.advertise, leaving)?;
        let view = store.cluster_view(ttl)?;
        let rows = store.workspace_rows()?;
        Ok((view, rows))
    }

    /// Takes `candidate`'s lease and loads it; false if another node was quicker or the load
    /// failed (then the lease is released again).
    async fn take(self: &Arc<Self>, candidate: Candidate) -> bool {
        let store = self.claims.store().clone();
        let (node, ttl) = (self.settings.node.clone(), self.settings.lease);
        let key = candidate.row.key;
        let sent = monotonic_now();
        let lease = match tokio::task::spawn_blocking(move || store.take_lease(key, &node, ttl)).await {
            Ok(Ok(Some(lease))) => lease,
            Ok(Ok(None)) => return false,
            Ok(Err(e)) => {
                tracing::warn!(node = %self.settings.node, workspace = %candidate.row.id, error = %e, "taking a lease");
                return false;
            }
            Err(e) => {
                tracing::error!(error = %e, "taking a lease panicked");
                return false;
            }
        };
        let id = candidate.row.id.clone();
        self.claims.hold(
            id.clone(),
            Held {
                lease: lease.clone(),
                valid_until: sent + ttl,
            },
        );
        let loaded = self.workspaces.load_placed(candidate.row, lease.clone()).await;
        let still_held = self.claims.lease(&id).is_some_and(|l| l.epoch == lease.epoch);
        match loaded {
            Ok(true) if still_held => {
                self.directory.set(&id, Location::Here);
                if candidate.failover {
                    ClusterStats::count(&self.claims.stats().failovers);
                }
                tracing::info!(node = %self.settings.node, workspace = %id, epoch = %lease.epoch,
                    failover = candidate.failover, "workspace placed here");
                true
            }
            Ok(true) => {
                // Its lease time ran out while it loaded: the watchdog counted it lost.
                let _ = self.workspaces.unload(&id, Duration::ZERO).await;
                false
            }
            outcome => {
                if let Err(e) = outcome {
                    tracing::error!(node = %self.settings.node, workspace = %id, error = %e, "loading a placed workspace");
                }
                if self.claims.drop_claim(&id).is_some() {
                    self.release(lease).await;
                }
                false
            }
        }
    }

    /// Lets go of `id`: stops admitting, unloads it with its drain (what it acknowledged is
    /// committed), then releases its lease so another node takes it at once. `hand_over`:
    /// counted as a hand-over (a share rebalanced or a node leaving).
    async fn let_go(self: &Arc<Self>, id: &WorkspaceId, grace: Duration, hand_over: bool) {
        self.directory.set(id, Location::Nowhere);
        match self.workspaces.unload(id, grace).await {
            Ok(()) | Err(UnloadError::NotLoaded(_)) => {}
            Err(e) => tracing::error!(node = %self.settings.node, error = %e, "handing a workspace over"),
        }
        // Renewed until now, so nobody took it while it drained.
        if let Some(lease) = self.claims.drop_claim(id) {
            self.release(lease).await;
            if hand_over {
                ClusterStats::count(&self.claims.stats().hand_overs);
                self.handed.lock().insert(id.clone(), monotonic_now());
            }
            tracing::info!(node = %self.settings.node, workspace = %id, "workspace let go of");
        }
    }

    async fn release(&self, lease: Lease) {
        let store = self.claims.store().clone();
        let released = tokio::task::spawn_blocking(move || store.release_lease(&lease)).await;
        if let Ok(Err(e)) = released {
            tracing::warn!(node = %self.settings.node, error = %e, "releasing a lease (it lapses by itself)");
        }
    }
}
