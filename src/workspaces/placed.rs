//! The registry in a cluster (R28): placement decides which workspaces this node serves
//! (`cluster/node.rs`), and these are its ways in. Nothing is loaded when the registry opens;
//! the loop loads a workspace once it holds its lease, on that lease's fenced handle, and
//! mirrors the `workspaces` table each round, since the platform API may run on any node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::Claims;
use super::Workspaces;
use crate::ids::WorkspaceId;
use crate::store::{Lease, Store, StoreError, WorkspaceRow, WorkspaceState};
use crate::workspaces::{monotonic_now, Limits, PlatformError, Provisioning};

/// How often a suspend or delete looks whether the cluster carried it out: another node's
/// doing, seen only in the database.
const PLATFORM_POLL: Duration = Duration::from_millis(50);

impl Workspaces {
    /// The registry of a cluster node holding `claims`: every row of the store, nothing
    /// loaded (placement loads what this node takes).
    pub async fn open_cluster(provisioning: Provisioning, claims: Arc<Claims>) -> Result<Self, StoreError> {
        Self::open_on(provisioning, Some(claims)).await
    }

    /// What this node holds in the cluster; `None` outside one.
    pub fn cluster(&self) -> Option<&Arc<Claims>> {
        self.catalog.as_ref()?.cluster.as_ref()
    }

    /// Loads workspace `row` under `lease` (just taken): built and restored from the store on a
    /// blocking thread, under the rows' lock like every load. False if it is not to be loaded
    /// (no longer active by the rows, or loaded already); the caller releases the lease then.
    pub async fn load_placed(self: &Arc<Self>, row: WorkspaceRow, lease: Lease) -> Result<bool, StoreError> {
        let Some(catalog) = &self.catalog else {
            return Ok(false);
        };
        let rows = catalog.rows.lock().await;
        let active = rows
            .get(&row.id)
            .is_some_and(|r| r.state == WorkspaceState::Active);
        if !active || self.get(&row.id).is_some() {
            return Ok(false);
        }
        let row = rows.get(&row.id).cloned().unwrap_or(row);
        let this = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            let catalog = this.catalog.as_ref().expect("checked above");
            catalog.build_on(&row, Some(&lease))
        })
        .await
        .map_err(|e| StoreError::Corrupt {
            path: Default::default(),
            what: format!("building a placed workspace panicked: {e}"),
        })??;
        drop(rows);
        Ok(self.insert(built).is_ok())
    }

    /// Mirrors the `workspaces` table as another node may have changed it: rows created,
    /// suspended, resumed or deleted elsewhere (placement loads and unloads accordingly), and
    /// for a workspace loaded here, its admin key and limits in force at once and new settings
    /// by a reload. A platform operation in progress here is waited for.
    pub async fn refresh_rows(&self, stored: Vec<WorkspaceRow>) {
        let Some(catalog) = &self.catalog else {
            return;
        };
        let mut rows = catalog.rows.lock().await;
        let mut fresh: BTreeMap<WorkspaceId, WorkspaceRow> = BTreeMap::new();
        let mut reload = Vec::new();
        for mut row in stored {
            if row.id.is_default() {
                row.state = WorkspaceState::Active;
            }
            if let (Some(before), Some(workspace)) = (rows.get(&row.id), self.get(&row.id)) {
                if before.admin_key_sha256 != row.admin_key_sha256 {
                    workspace.set_admin_key(row.admin_key_sha256);
                }
                if before.limits != row.limits {
                    if let Ok(limits) = Limits::from_stored(&row.limits) {
                        workspace.fairness().set(limits);
                    }
                }
                if before.settings != row.settings && row.state == WorkspaceState::Active {
                    reload.push(row.clone());
                }
            }
            fresh.insert(row.id.clone(), row);
        }
        *rows = fresh;
        for row in reload {
            tracing::info!(workspace = %row.id, "settings changed on another node: reloading");
            if let Err(e) = self.reload(catalog, &row).await {
                tracing::error!(workspace = %row.id, error = %e, "reloading with new settings");
            }
        }
    }

    /// Waits until workspace `row`, marked `deleting`, is gone from the database (purged under
    /// its lease by some node: `cluster/purge.rs`), then forgets it here.
    pub(super) async fn until_purged(
        &self,
        claims: &Claims,
        row: &WorkspaceRow,
    ) -> Result<(), PlatformError> {
        let key = row.key;
        poll_store(claims, "deleted", &row.id, move |store| {
            Ok(!store.workspace_row_exists(key)?)
        })
        .await?;
        if let Some(catalog) = &self.catalog {
            let mut rows = catalog.rows.lock().await;
            if rows.get(&row.id).is_some_and(|r| r.key == key) {
                rows.remove(&row.id);
            }
        }
        tracing::info!(workspace = %row.id, "workspace deleted");
        Ok(())
    }

    /// Waits until no node holds workspace `row`'s lease (its owner drained it and let go, or
    /// its lease lapsed): then no node serves it, and none takes it while it is not active.
    pub(super) async fn until_no_node_holds(
        &self,
        claims: &Claims,
        row: &WorkspaceRow,
    ) -> Result<(), PlatformError> {
        let key = row.key;
        poll_store(claims, "suspended", &row.id, move |store| {
            Ok(store.lease_holder(key)?.is_none())
        })
        .await
    }
}

/// Asks `done` of the store (on a blocking thread) until it answers true, for at most the
/// claims' platform wait; then [`PlatformError::Pending`] (`id` is being `what`).
async fn poll_store(
    claims: &Claims,
    what: &'static str,
    id: &WorkspaceId,
    done: impl Fn(&Store) -> Result<bool, StoreError> + Clone + Send + 'static,
) -> Result<(), PlatformError> {
    let deadline = monotonic_now() + claims.platform_wait();
    loop {
        let store = claims.store().clone();
        let ask = done.clone();
        let answer = tokio::task::spawn_blocking(move || ask(&store))
            .await
            .map_err(|e| StoreError::Corrupt {
                path: Default::default(),
                what: format!("reading the cluster's progress panicked: {e}"),
            })??;
        if answer {
            return Ok(());
        }
        if monotonic_now() >= deadline {
            return Err(PlatformError::Pending { id: id.clone(), what });
        }
        tokio::time::sleep(PLATFORM_POLL).await;
    }
}
