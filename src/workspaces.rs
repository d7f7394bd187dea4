//! Workspaces (R27): the contact centres one process serves, each an [`Engine`] of its own with
//! its own background tasks, held by id in one registry.
//!
//! A workspace is the unit that is loaded, served and let go of as a whole (and, with the
//! cluster, placed on a node): [`Workspace::start`] puts an engine and its tasks together,
//! [`Workspaces::unload`] stops admitting to it, closes its sockets, waits until everything it
//! acknowledged is durable, stops its tasks and drops it. Isolation comes from the structure:
//! each engine has its own maps, so an id of another workspace is simply not found.
//!
//! The registry's lock is held only to clone an `Arc<Workspace>` out or to put one in or take
//! one out, never across an `.await` and never while another lock is taken (see
//! `lock_order.rs`); a request or socket keeps its workspace's `Arc` for its whole life.

mod admissions;
mod catalog;
mod claims;
mod limits;
mod placed;
mod rounds;
mod settings;
mod tasks;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::clock::SharedClock;
pub use crate::config::Limits;
use crate::engine::fanout::CutOff;
use crate::engine::Engine;
use crate::ids::WorkspaceId;
use crate::security::TokenHash;
pub use crate::security::{Credentials, IngressKey};
use crate::store::StoreError;
pub use admissions::{Admission, Admissions};
pub use catalog::{PlatformError, Provisioning};
pub(crate) use claims::monotonic_now;
pub use claims::{Claims, ClusterStats, Held};
pub use limits::Fairness;
pub use rounds::Rounds;
pub(crate) use rounds::MIN_GAP as MIN_ROUND_GAP;
pub use settings::SettingsApplied;
pub use tasks::{Background, OutboxSending, Tasks};

/// One contact centre: its engine, the tasks that run beside it, who is inside, and the
/// digest of its admin key.
pub struct Workspace {
    id: WorkspaceId,
    engine: Arc<Engine>,
    tasks: Tasks,
    admissions: Admissions,
    /// Held only to copy the digest in or out (see `lock_order.rs`).
    admin_key: RwLock<Option<TokenHash>>,
    /// Its channel credentials; `None`: the configuration's (`default`, and the workspaces
    /// of a fixed set). Swapped whole when its settings change what verifies calls; held only
    /// to clone the `Arc` out or to put one in, like the registry's map (`lock_order.rs`).
    credentials: RwLock<Option<Arc<Credentials>>>,
    fairness: Fairness,
    /// When it was put in its registry, as the registry counts (see [`Workspaces::in_load_order`]).
    loaded: AtomicU64,
}

impl Workspace {
    /// Puts `engine` (restored already, if it has a store) to work as workspace `id`: starts
    /// what `background` asks for, on the current tokio runtime (and the board's). Dropping
    /// the workspace without [`Workspaces::unload`] stops its tasks too, but waits for nothing.
    pub fn start(id: WorkspaceId, engine: Arc<Engine>, background: Background) -> Arc<Self> {
        let tasks = Tasks::start(&engine, background);
        Arc::new(Self {
            id,
            engine,
            tasks,
            admissions: Admissions::default(),
            admin_key: RwLock::new(None),
            credentials: RwLock::new(None),
            fairness: Fairness::default(),
            loaded: AtomicU64::new(0),
        })
    }

    /// The digest of its admin key (R27); none for `default`, whose key is the configuration's
    /// (`[security] admin_key`), and for a workspace of a fixed set.
    pub fn admin_key(&self) -> Option<TokenHash> {
        *self.admin_key.read()
    }

    /// Replaces its admin key: from now on the one before opens nothing. The caller stores
    /// the digest first ([`Workspaces::set_admin_key`] does).
    pub fn set_admin_key(&self, digest: Option<TokenHash>) {
        *self.admin_key.write() = digest;
    }

    /// Its own channel credentials, from its settings; `None`: the configuration's. The
    /// gateway reads them through `Tenant::credentials` only.
    pub fn credentials(&self) -> Option<Arc<Credentials>> {
        self.credentials.read().clone()
    }

    /// Gives it its own channel credentials, in force from the next call that reads them.
    pub fn set_credentials(&self, credentials: Arc<Credentials>) {
        *self.credentials.write() = Some(credentials);
    }

    /// Its id.
    pub fn id(&self) -> &WorkspaceId {
        &self.id
    }

    /// Its engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Its limits (R27), as they are enforced; none until set.
    pub fn fairness(&self) -> &Fairness {
        &self.fairness
    }

    /// Lets a request or socket in, unless the workspace is being unloaded.
    pub fn admit(&self) -> Option<Admission> {
        self.admissions.admit()
    }

    /// Lets go of it, in the order that loses nothing: no one new gets in; every socket is
    /// closed ([`CutOff::WorkspaceClosed`]); requests and sockets already in get `grace` to
    /// finish; its tasks stop (no timer fires after this); then everything its engine submitted
    /// to the store is waited for. The engine goes when the last `Arc` does.
    async fn shut(&self, grace: Duration) -> Result<(), StoreError> {
        self.engine.close_connections(CutOff::WorkspaceClosed);
        if tokio::time::timeout(grace, self.admissions.all_left())
            .await
            .is_err()
        {
            tracing::warn!(workspace = %self.id, grace_secs = grace.as_secs_f64(),
                "requests or sockets still inside the unloaded workspace after the grace period");
        }
        self.tasks.stop().await;
        // Last, once nothing can submit any more (a socket that outlived the grace period
        // aside): what was acknowledged is on disk when this returns.
        self.engine.write_point().reached().await
    }
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("id", &self.id)
            .field("admitting", &self.admissions.is_open())
            .finish_non_exhaustive()
    }
}

/// Why a workspace could not be unloaded cleanly.
#[derive(Debug, thiserror::Error)]
pub enum UnloadError {
    /// No workspace of that id is loaded here.
    #[error("workspace {0} is not loaded here")]
    NotLoaded(WorkspaceId),
    /// It was let go of, but what it submitted last did not reach the disk.
    #[error("workspace {workspace} was unloaded, but its last changes are not durable: {source}")]
    NotDurable {
        /// Which workspace.
        workspace: WorkspaceId,
        /// The store's failure.
        source: StoreError,
    },
}

/// A second workspace under an id that is loaded already.
#[derive(Debug, thiserror::Error)]
#[error("workspace {0} is loaded already")]
pub struct AlreadyLoaded(pub WorkspaceId);

/// Every workspace this process serves, by id.
#[derive(Debug)]
pub struct Workspaces {
    by_id: RwLock<HashMap<WorkspaceId, Arc<Workspace>>>,
    /// Workspaces put in so far: each one's place in the load order.
    loads: AtomicU64,
    /// How many workspaces `/metrics` labels with their id (see [`Workspaces::in_load_order`]).
    metric_labels: AtomicUsize,
    /// How workspaces are built and which exist, when this registry was opened on them
    /// ([`Workspaces::open`]); `None` for a fixed set ([`Workspaces::single`]).
    catalog: Option<catalog::Catalog>,
}

impl Default for Workspaces {
    fn default() -> Self {
        Self {
            by_id: RwLock::default(),
            loads: AtomicU64::new(0),
            metric_labels: AtomicUsize::new(crate::config::WORKSPACE_LABELS),
            catalog: None,
        }
    }
}

impl Workspaces {
    /// A registry with no workspace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Labels the metrics of the first `n` workspaces in load order with their id, and sums
    /// the rest under `_other` (`[metrics] workspace_labels`).
    pub fn label_metrics_of(&self, n: usize) {
        self.metric_labels.store(n, Ordering::Relaxed);
    }

    /// How many workspaces `/metrics` labels with their id.
    pub fn metric_labels(&self) -> usize {
        self.metric_labels.load(Ordering::Relaxed)
    }

    /// Every workspace served, `default` first, then in the order they were loaded: the order
    /// `/metrics` hands out its `workspace` labels in.
    pub fn in_load_order(&self) -> Vec<Arc<Workspace>> {
        let mut all: Vec<Arc<Workspace>> = self.by_id.read().values().cloned().collect();
        all.sort_by_key(|w| (!w.id.is_default(), w.loaded.load(Ordering::Relaxed)));
        all
    }

    /// A registry of one workspace, `default`, around `engine`: what a process without
    /// workspaces configured serves (and the unprefixed paths reach).
    pub fn single(engine: Arc<Engine>, background: Background) -> Self {
        let workspaces = Self::new();
        let default = Workspace::start(WorkspaceId::default_workspace(), engine, background);
        // Empty, so it goes in.
        let _ = workspaces.insert(default);
        workspaces
    }

    /// Serves `workspace` from now on.
    pub fn insert(&self, workspace: Arc<Workspace>) -> Result<(), AlreadyLoaded> {
        let mut by_id = self.by_id.write();
        if by_id.contains_key(&workspace.id) {
            return Err(AlreadyLoaded(workspace.id.clone()));
        }
        let place = self.loads.fetch_add(1, Ordering::Relaxed);
        workspace.loaded.store(place, Ordering::Relaxed);
        by_id.insert(workspace.id.clone(), workspace);
        Ok(())
    }

    /// The workspace `id`, if it is served here.
    pub fn get(&self, id: &WorkspaceId) -> Option<Arc<Workspace>> {
        self.by_id.read().get(id).cloned()
    }

    /// The clock the workspaces' engines read: the registry's, or `default`'s for a fixed set.
    pub fn clock(&self) -> Option<SharedClock> {
        if let Some(catalog) = &self.catalog {
            return Some(catalog.provisioning.clock.clone());
        }
        let any = self
            .get(&WorkspaceId::default_workspace())
            .or_else(|| self.by_id.read().values().next().cloned())?;
        Some(any.engine().clock().clone())
    }

    /// Whether the store these workspaces write to has stopped writing: a commit failed, so
    /// every change is refused (`store/writer.rs`) until a restart, or until it resumes (a
    /// cluster node's does, `cluster/node.rs`). False without a store.
    pub fn store_stopped(&self) -> bool {
        let registry = self.catalog.as_ref().and_then(|c| c.provisioning.store.as_ref());
        if let Some(store) = registry {
            return store.stats().stopped;
        }
        // A fixed set: each engine's handle, on one store.
        self.by_id
            .read()
            .values()
            .filter_map(|w| w.engine.store())
            .any(|store| store.shared().stats().stopped)
    }

    /// The ids of every workspace served here, sorted.
    pub fn ids(&self) -> Vec<WorkspaceId> {
        let mut ids: Vec<WorkspaceId> = self.by_id.read().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Stops serving workspace `id` and lets go of it (see [`Workspace::shut`]); requests
    /// and sockets inside get `grace` to finish. From the moment this is called, its paths
    /// answer as an unknown workspace's (see `gateway::tenant`).
    pub async fn unload(&self, id: &WorkspaceId, grace: Duration) -> Result<(), UnloadError> {
        let not_loaded = || UnloadError::NotLoaded(id.clone());
        let workspace = self.get(id).ok_or_else(not_loaded)?;
        // Its door closes first (a new request finds it closed, as if it were unknown), and only once;
        // it stays in the map until it is shut, so that no second engine can be loaded under
        // its id while this one still writes.
        if !workspace.admissions.close() {
            return Err(not_loaded());
        }
        let shut = workspace.shut(grace).await;
        {
            let mut by_id = self.by_id.write();
            if by_id.get(id).is_some_and(|w| Arc::ptr_eq(w, &workspace)) {
                by_id.remove(id);
            }
        }
        tracing::info!(workspace = %id, durable = shut.is_ok(), "workspace unloaded");
        shut.map_err(|source| UnloadError::NotDurable {
            workspace: id.clone(),
            source,
        })
    }

    /// Unloads every workspace, one after another (when the process stops). The first
    /// failure is answered; the others are unloaded all the same.
    pub async fn unload_all(&self, grace: Duration) -> Result<(), UnloadError> {
        let mut outcome = Ok(());
        for id in self.ids() {
            if let Err(e) = self.unload(&id, grace).await {
                tracing::error!(error = %e, "unloading a workspace");
                if outcome.is_ok() {
                    outcome = Err(e);
                }
            }
        }
        outcome
    }
}
