//! Durable workspaces (R27): the registry as the platform API drives it. [`Workspaces::open`]
//! loads every `active` workspace the store holds; [`Workspaces::create`], `suspend`, `resume`
//! and `delete` change the `workspaces` table first and answer once that is on disk, then load
//! or unload the engine.
//!
//! `default` keeps the configuration's engine settings, credentials and agents; every other
//! workspace gets [`Provisioning::others`] with its own settings (`workspaces.settings`, see
//! `settings.rs`) and credentials from them. Platform operations take one async lock, one at a
//! time: they are rare, and so two of them never race on one id on one node. Across the nodes of
//! a cluster the store answers for ids: a create of an id another node took meanwhile is
//! refused there ([`PlatformError::Exists`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

mod admin_keys;

use super::claims::LeaseHeld;
use super::Claims;
use super::{Background, Credentials, Limits, OutboxSending, UnloadError, Workspace, Workspaces};
use crate::clock::SharedClock;
use crate::config::WorkspaceSettings;
use crate::core::AgentProfile;
use crate::engine::id_source::IdSource;
use crate::engine::outbound::connector::Connector;
use crate::engine::outbound::sender::Ownership;
use crate::engine::outbound::{Outbound, Retry};
use crate::engine::{Engine, EngineConfig};
use crate::ids::WorkspaceId;
use crate::security::TokenHash;
use crate::store::{
    CreateError, Lease, NewWorkspace, Store, StoreError, WorkspaceRow, WorkspaceState, WsKey,
};

/// How long the sockets and requests inside a workspace being suspended or deleted get to
/// finish.
const UNLOAD_GRACE: Duration = Duration::from_secs(5);

/// How long a create in a cluster waits for a placement round to place the new workspace
/// (a round is a few statements; the bound is for a slow or unreachable database).
const PLACED_WITHIN: Duration = Duration::from_secs(3);

/// What the registry builds each workspace from.
pub struct Provisioning {
    /// The shared store; `None`: nothing survives a restart (`durability = "memory"`).
    pub store: Option<Arc<Store>>,
    /// The clock every engine reads.
    pub clock: SharedClock,
    /// `default`'s engine settings (the configuration's).
    pub default_config: EngineConfig,
    /// `default`'s settings as `GET /v1/admin/settings` shows them: the configuration's.
    pub default_settings: WorkspaceSettings,
    /// The configuration's channel credentials: `default`'s, and what tells every other
    /// workspace whether an ingress without a key of its own is open ([`Credentials::own`]).
    pub configured: Arc<Credentials>,
    /// `default`'s configured agents, with their static tokens; the store's override them.
    pub default_agents: Vec<(AgentProfile, Option<String>)>,
    /// The engine settings every other workspace's own settings apply to (the process's
    /// bounds: `Config::engine_base`).
    pub others: EngineConfig,
    /// The limits a workspace created over the platform API starts with (`[workspace_defaults]`);
    /// `default`'s are its own, none unless set.
    pub new_limits: Limits,
    /// Where supervisors' board tasks run.
    pub boards: Handle,
    /// Whether timers are driven by the real clock (off in tests that fire them by hand).
    pub ticker: bool,
    /// How each workspace sends its outbox: where items of channels without a platform go,
    /// each workspace's own platforms put in front of it (`default`'s: the configuration's);
    /// `None`: nobody sends (tests).
    pub sending: Option<(Connector, Retry)>,
    /// Where every workspace's sends run: one low-priority thread for the process
    /// (`engine::outbound::send_thread`), not one per workspace; `None`: each sender starts
    /// its own.
    pub sends: Option<Handle>,
}

/// The registry's durable half: how to build a workspace, and every row of the table.
pub(super) struct Catalog {
    pub(super) provisioning: Provisioning,
    pub(super) rows: tokio::sync::Mutex<BTreeMap<WorkspaceId, WorkspaceRow>>,
    /// Keys handed out without a store (nothing is stored, but engines are told apart).
    next_memory_key: std::sync::atomic::AtomicI64,
    /// The one counter every workspace's engine makes its customer and chat ids from.
    ids: IdSource,
    /// In a cluster, the leases this node holds: the placement loop loads and unloads the
    /// workspaces (`cluster/node.rs`), each on its lease's fenced handle; the platform API
    /// changes rows and lets placement load what became active. `None`: every active
    /// workspace is loaded here.
    pub(super) cluster: Option<Arc<Claims>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("durable", &self.provisioning.store.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a platform operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The id is taken (by a workspace in any state).
    #[error("workspace {0} exists already")]
    Exists(WorkspaceId),
    /// No workspace has that id.
    #[error("no such workspace: {0}")]
    NotFound(WorkspaceId),
    /// `default` is what the unprefixed paths serve: it is always there.
    #[error("workspace default cannot be {0}: the unprefixed paths serve it")]
    Default(&'static str),
    /// `default`'s admin key is the configuration's, not one the platform API generates.
    #[error("workspace default's admin key is `[security] admin_key`: change it in the configuration")]
    DefaultAdminKey,
    /// This registry was not opened with [`Workspaces::open`] (a test's fixed set).
    #[error("this server's workspaces are fixed: no platform API")]
    Fixed,
    /// Settings that cannot be used; the text names the field.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// The store failed: the change is not durable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The workspace was let go of, but its last changes did not reach the disk.
    #[error(transparent)]
    Unload(#[from] UnloadError),
    /// In a cluster: the change is recorded, but the node serving the workspace has not let go
    /// of it (or the purge is not done) within the wait; it is carried out all the same, and
    /// the call may be repeated to wait for it.
    #[error("workspace {id} is recorded as {what}, but another node still has it: it is {what} once that node lets go of it")]
    Pending {
        /// Which workspace.
        id: WorkspaceId,
        /// What it is being: "suspended" or "deleted".
        what: &'static str,
    },
}

impl From<CreateError> for PlatformError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::Exists(id) => PlatformError::Exists(id),
            CreateError::Store(e) => PlatformError::Store(e),
        }
    }
}

impl Workspaces {
    /// Every `active` workspace of the store, each restored and started, with `default`
    /// always among them; a workspace a crash left half-deleted is purged first.
    pub async fn open(provisioning: Provisioning) -> Result<Self, StoreError> {
        Self::open_on(provisioning, None).await
    }

    /// [`Workspaces::open`], or in a cluster (`cluster`: what this node holds) the rows only,
    /// loading nothing: placement does.
    pub(super) async fn open_on(
        provisioning: Provisioning,
        cluster: Option<Arc<Claims>>,
    ) -> Result<Self, StoreError> {
        let stored = match &provisioning.store {
            Some(store) => store.workspace_rows()?,
            None => Vec::new(),
        };
        let catalog = Catalog {
            ids: IdSource::starting_at(provisioning.clock.now()),
            provisioning,
            rows: tokio::sync::Mutex::new(BTreeMap::new()),
            next_memory_key: std::sync::atomic::AtomicI64::new(2),
            cluster,
        };
        let workspaces = Self::default();
        let mut rows = BTreeMap::new();
        for row in stored {
            match (row.state, &catalog.provisioning.store) {
                // In a cluster only under the workspace's lease, by placement (`cluster/purge.rs`):
                // its owner may still be draining it.
                (WorkspaceState::Deleting, Some(store))
                    if !row.id.is_default() && catalog.cluster.is_none() =>
                {
                    tracing::info!(workspace = %row.id, "finishing the delete a stop interrupted");
                    store.delete_workspace(row.key).await?;
                }
                _ => {
                    rows.insert(row.id.clone(), row);
                }
            }
        }
        // `default` is in every table since schema version 5; without a store, made up here.
        let default = rows
            .entry(WorkspaceId::default_workspace())
            .or_insert_with(|| WorkspaceRow {
                key: WsKey::DEFAULT,
                id: WorkspaceId::default_workspace(),
                name: None,
                state: WorkspaceState::Active,
                created_at: catalog.provisioning.clock.now(),
                admin_key_sha256: None,
                settings: "{}".into(),
                limits: Limits::UNLIMITED.to_stored(),
            });
        // Served whatever its row says: the API never suspends it.
        default.state = WorkspaceState::Active;
        for row in rows.values() {
            if row.state == WorkspaceState::Active {
                if catalog.cluster.is_some() {
                    continue;
                }
                let workspace = catalog.build(row)?;
                // Ids are the map's keys: each once.
                let _ = workspaces.insert(workspace);
            } else if let Some(store) = &catalog.provisioning.store {
                // Not loaded, so not restored: its ids must not be made for another meanwhile.
                for id in store.workspace(row.key).ids_made()? {
                    catalog.ids.past(crate::engine::id_source::number(&id));
                }
            }
        }
        tracing::info!(loaded = ?workspaces.ids(), stored = rows.len(), "workspaces loaded");
        *catalog.rows.lock().await = rows;
        Ok(Self {
            catalog: Some(catalog),
            ..workspaces
        })
    }

    pub(super) fn catalog(&self) -> Result<&Catalog, PlatformError> {
        self.catalog.as_ref().ok_or(PlatformError::Fixed)
    }

    /// Every workspace there is, served or not, by id.
    pub async fn rows(&self) -> Result<Vec<WorkspaceRow>, PlatformError> {
        Ok(self.catalog()?.rows.lock().await.values().cloned().collect())
    }

    /// How many workspaces there are in each state, for `/metrics`: the catalog's rows, or
    /// those served of a fixed set (all active). `None` while a platform operation holds the
    /// rows (a scrape does not wait for it).
    pub fn state_counts(&self) -> Option<Vec<(WorkspaceState, usize)>> {
        let states = [
            WorkspaceState::Active,
            WorkspaceState::Suspended,
            WorkspaceState::Deleting,
        ];
        let Some(catalog) = &self.catalog else {
            return Some(vec![
                (WorkspaceState::Active, self.ids().len()),
                (WorkspaceState::Suspended, 0),
                (WorkspaceState::Deleting, 0),
            ]);
        };
        let rows = catalog.rows.try_lock().ok()?;
        Some(
            states
                .into_iter()
                .map(|state| (state, rows.values().filter(|r| r.state == state).count()))
                .collect(),
        )
    }

    /// Workspace `id`, served or not.
    pub async fn row(&self, id: &WorkspaceId) -> Result<WorkspaceRow, PlatformError> {
        let rows = self.catalog()?.rows.lock().await;
        rows.get(id)
            .cloned()
            .ok_or_else(|| PlatformError::NotFound(id.clone()))
    }

    /// Creates workspace `id` with the admin key whose digest is `admin_key` and with
    /// `settings` (stored, then loaded: empty, and served at once).
    pub async fn create(
        &self,
        id: WorkspaceId,
        name: Option<String>,
        admin_key: TokenHash,
        settings: WorkspaceSettings,
    ) -> Result<WorkspaceRow, PlatformError> {
        let catalog = self.catalog()?;
        let mut rows = catalog.rows.lock().await;
        if rows.contains_key(&id) {
            return Err(PlatformError::Exists(id));
        }
        catalog.check(&settings)?;
        let settings = settings.to_json();
        let created_at = catalog.provisioning.clock.now();
        let limits = catalog.provisioning.new_limits.to_stored();
        let key = match &catalog.provisioning.store {
            Some(store) => {
                // Checked again there: in a cluster another node may have taken the id since
                // this one last read the table (PostgreSQL answers for every node).
                let (key, created) = store.create_workspace(NewWorkspace {
                    id: id.clone(),
                    name: name.clone(),
                    created_at,
                    admin_key_sha256: Some(admin_key),
                    settings: settings.clone(),
                    limits: limits.clone(),
                })?;
                created.await?;
                key
            }
            None => WsKey::new(
                catalog
                    .next_memory_key
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ),
        };
        let row = WorkspaceRow {
            key,
            id: id.clone(),
            name,
            state: WorkspaceState::Active,
            created_at,
            admin_key_sha256: Some(admin_key),
            settings,
            limits,
        };
        // In a cluster, placement loads it on the node that takes its lease.
        if catalog.cluster.is_none() {
            let workspace = catalog.build(&row)?;
            // Not loaded: its row was not there, and loads happen under this lock.
            let _ = self.insert(workspace);
        }
        rows.insert(id, row.clone());
        drop(rows);
        tracing::info!(workspace = %row.id, key = row.key.get(), "workspace created");
        if let Some(claims) = &catalog.cluster {
            // Answered once a round has placed it (here or on another node), so that what the
            // caller does next with it is served, not `not_found`. A round reads the rows
            // under their lock, hence dropped above. Not in time: placement still follows.
            if !claims.rounds().fresh(PLACED_WITHIN).await {
                tracing::warn!(workspace = %row.id, "created, not placed yet");
            }
        }
        Ok(row)
    }

    /// Sets workspace `id`'s limits (checked by the caller): stored, then enforced at once if it
    /// is served (or when it is resumed).
    pub async fn set_limits(&self, id: &WorkspaceId, limits: Limits) -> Result<WorkspaceRow, PlatformError> {
        let catalog = self.catalog()?;
        let mut rows = catalog.rows.lock().await;
        let row = rows
            .get_mut(id)
            .ok_or_else(|| PlatformError::NotFound(id.clone()))?;
        let stored = limits.to_stored();
        if let Some(store) = &catalog.provisioning.store {
            store.set_workspace_limits(row.key, stored.clone()).await?;
        }
        row.limits = stored;
        if let Some(workspace) = self.get(id) {
            workspace.fairness().set(limits);
        }
        tracing::info!(workspace = %id, ?limits, "workspace limits set");
        Ok(row.clone())
    }

    /// Stops serving workspace `id` and records that it stays so: its paths answer as an
    /// unknown workspace's until [`Workspaces::resume`]. Suspending a suspended one changes
    /// nothing.
    pub async fn suspend(&self, id: &WorkspaceId) -> Result<WorkspaceRow, PlatformError> {
        if id.is_default() {
            return Err(PlatformError::Default("suspended"));
        }
        let catalog = self.catalog()?;
        let mut rows = catalog.rows.lock().await;
        let row = rows
            .get_mut(id)
            .filter(|row| row.state != WorkspaceState::Deleting)
            .ok_or_else(|| PlatformError::NotFound(id.clone()))?;
        if row.state != WorkspaceState::Suspended {
            catalog.record(row.key, WorkspaceState::Suspended).await?;
            row.state = WorkspaceState::Suspended;
        }
        let row = row.clone();
        self.unload_if_loaded(id).await?;
        if let Some(claims) = &catalog.cluster {
            // Another node may be serving it: answered once no node does (a repeat waits too).
            drop(rows);
            self.until_no_node_holds(claims, &row).await?;
        }
        Ok(row)
    }

    /// Serves a suspended workspace again, as it was (restored from the store).
    pub async fn resume(&self, id: &WorkspaceId) -> Result<WorkspaceRow, PlatformError> {
        let catalog = self.catalog()?;
        let mut rows = catalog.rows.lock().await;
        let row = rows
            .get_mut(id)
            .filter(|row| row.state != WorkspaceState::Deleting)
            .ok_or_else(|| PlatformError::NotFound(id.clone()))?;
        if row.state == WorkspaceState::Active {
            return Ok(row.clone());
        }
        catalog.record(row.key, WorkspaceState::Active).await?;
        row.state = WorkspaceState::Active;
        // In a cluster, placement loads it on the node that takes its lease.
        if catalog.cluster.is_none() {
            let workspace = catalog.build(row)?;
            let _ = self.insert(workspace);
        }
        Ok(row.clone())
    }

    /// Stops serving workspace `id` and deletes everything of it from the store, its row
    /// last; answers once the file holds nothing of it.
    ///
    /// In a cluster the purge is not this call's: the workspace's owner (maybe another node)
    /// must let go first, and the purge runs under the workspace's lease, by whichever node's
    /// round finds it free (`cluster/purge.rs` says why). This call marks it, unloads it if it
    /// is loaded here, and waits until its row is gone, or answers
    /// [`PlatformError::Pending`]: the delete finishes later all the same. A second delete
    /// meanwhile waits the same way, or finds nothing ([`PlatformError::NotFound`]).
    pub async fn delete(&self, id: &WorkspaceId) -> Result<(), PlatformError> {
        if id.is_default() {
            return Err(PlatformError::Default("deleted"));
        }
        let catalog = self.catalog()?;
        let mut rows = catalog.rows.lock().await;
        let row = rows
            .get_mut(id)
            .ok_or_else(|| PlatformError::NotFound(id.clone()))?;
        let key = row.key;
        // Marked first: a stop half-way through leaves a row that the next start purges,
        // never a workspace loaded with half its rows.
        catalog.record(key, WorkspaceState::Deleting).await?;
        row.state = WorkspaceState::Deleting;
        let row = row.clone();
        self.unload_if_loaded(id).await?;
        if let Some(claims) = &catalog.cluster {
            // Not held across the wait: this node's own round mirrors the rows, and lets go.
            drop(rows);
            return self.until_purged(claims, &row).await;
        }
        if let Some(store) = &catalog.provisioning.store {
            store.delete_workspace(key).await?;
        }
        rows.remove(id);
        tracing::info!(workspace = %id, "workspace deleted");
        Ok(())
    }

    pub(super) async fn unload_if_loaded(&self, id: &WorkspaceId) -> Result<(), UnloadError> {
        match self.unload(id, UNLOAD_GRACE).await {
            Ok(()) | Err(UnloadError::NotLoaded(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Catalog {
    /// Checks settings given over the API, naming the field that is wrong.
    pub(super) fn check(&self, settings: &WorkspaceSettings) -> Result<(), PlatformError> {
        settings
            .check(&self.provisioning.others)
            .map_err(|e| PlatformError::Settings(e.reason()))
    }

    /// The settings of `row`, as stored (checked when they were). `default`'s are the
    /// configuration's.
    pub(super) fn settings_of(&self, row: &WorkspaceRow) -> Result<WorkspaceSettings, StoreError> {
        if row.id.is_default() {
            return Ok(self.provisioning.default_settings.clone());
        }
        WorkspaceSettings::from_json(&row.settings, &self.provisioning.others)
            .map_err(|e| self.unusable_settings(row, e))
    }

    /// Stored settings that this version cannot use (they were checked when stored).
    fn unusable_settings(&self, row: &WorkspaceRow, e: crate::config::ConfigError) -> StoreError {
        StoreError::Corrupt {
            path: (self.provisioning.store.as_ref())
                .map(|s| s.path().to_path_buf())
                .unwrap_or_default(),
            what: format!("the settings of workspace {}: {e}", row.id),
        }
    }

    /// The engine settings and own credentials of a workspace with `settings`; `default`
    /// has the configuration's (no credentials of its own).
    pub(super) fn engine_and_credentials(
        &self,
        row: &WorkspaceRow,
        settings: &WorkspaceSettings,
    ) -> Result<(EngineConfig, Option<Arc<Credentials>>), crate::config::ConfigError> {
        let p = &self.provisioning;
        if row.id.is_default() {
            return Ok((p.default_config.clone(), None));
        }
        let config = settings.engine(p.others.clone())?;
        let credentials = settings.credentials(&p.configured)?;
        Ok((config, Some(Arc::new(credentials))))
    }

    /// Stores `state` for workspace `key`, and waits until it is on disk.
    async fn record(&self, key: WsKey, state: WorkspaceState) -> Result<(), StoreError> {
        match &self.provisioning.store {
            Some(store) => store.set_workspace_state(key, state).await,
            None => Ok(()),
        }
    }

    /// The engine of `row`, restored from its rows of the store, started with its tasks.
    pub(super) fn build(&self, row: &WorkspaceRow) -> Result<Arc<Workspace>, StoreError> {
        self.build_on(row, None)
    }

    /// [`Catalog::build`], under `lease` if the cluster placed it here: its every write then
    /// carries the lease's epoch and is refused once another node took the workspace (R28).
    pub(super) fn build_on(
        &self,
        row: &WorkspaceRow,
        lease: Option<&Lease>,
    ) -> Result<Arc<Workspace>, StoreError> {
        let p = &self.provisioning;
        let limits = Limits::from_stored(&row.limits).map_err(|what| StoreError::Corrupt {
            path: p
                .store
                .as_ref()
                .map(|s| s.path().to_path_buf())
                .unwrap_or_default(),
            what: format!("workspace {}: {what}", row.id),
        })?;
        let store = match (&p.store, lease) {
            (Some(s), Some(lease)) => Some(s.fenced_workspace(lease)?),
            (Some(s), None) => Some(s.workspace(row.key)),
            (None, _) => None,
        };
        let settings = self.settings_of(row)?;
        let (config, credentials) = self
            .engine_and_credentials(row, &settings)
            .map_err(|e| self.unusable_settings(row, e))?;
        let (outbound, dispatches) = Outbound::channel();
        let engine = Engine::sharing_ids(config, p.clock.clone(), outbound, store.clone(), self.ids.clone());
        if row.id.is_default() {
            // The configured agents first: the restore then brings back the agents recorded
            // over the admin API, replacing a configured one of the same id.
            for (profile, token) in &p.default_agents {
                engine.upsert_agent(profile.clone(), token.clone());
            }
        }
        if let Some(store) = &store {
            let restored = engine.restore(store)?;
            tracing::info!(workspace = %row.id, ?restored, "workspace restored from the store");
        }
        // The outbox's sender starts after the restore: what it put back waits in the channel.
        // Its own platforms send its messages; `default`'s are the configuration's.
        let platforms = credentials.as_deref().unwrap_or(&p.configured).platforms.clone();
        // Channels without a platform go to its own webhook, else the configuration's,
        // whose bodies then name the workspace.
        let outbox = p.sending.as_ref().map(|(connector, retry)| OutboxSending {
            dispatches,
            connector: Connector::platforms(
                platforms,
                match &settings.outbound_webhook_url {
                    Some(url) if !row.id.is_default() => Connector::webhook(url.clone()),
                    _ => connector.clone(),
                },
            )
            .for_workspace(&row.id),
            retry: *retry,
            sends: p.sends.clone(),
            owner: self.cluster.as_ref().zip(lease).map(|(claims, lease)| {
                Arc::new(LeaseHeld::new(claims.clone(), row.id.clone(), lease)) as Arc<dyn Ownership>
            }),
        });
        let background = Background {
            boards: p.boards.clone(),
            ticker: p.ticker,
            outbox,
        };
        let workspace = Workspace::start(row.id.clone(), engine, background);
        workspace.set_admin_key(row.admin_key_sha256);
        if let Some(credentials) = credentials {
            workspace.set_credentials(credentials);
        }
        workspace.fairness().set(limits);
        Ok(workspace)
    }
}
