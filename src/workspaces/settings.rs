//! A workspace's settings as the admin API reads and changes them (R27): checked, stored and
//! waited for on disk, then applied. What only verifies calls (the ingress key, the webhook
//! secrets) is swapped in live; anything else reloads the workspace (`unload`, then a load
//! from the store with the new settings), as docs/design/workspaces.md §4 plans, so that its
//! clients resume exactly as after a failover (R17).

use serde::Serialize;

use super::catalog::Catalog;
use super::{PlatformError, Workspaces};
use crate::config::WorkspaceSettings;
use crate::ids::WorkspaceId;
use crate::store::{WorkspaceRow, WorkspaceState};

/// How new settings took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingsApplied {
    /// In force from the next call, without a reload: only what verifies calls changed.
    Live,
    /// The workspace was reloaded with them: its sockets were closed, to resume (R17).
    Reloaded,
    /// Stored: the workspace is suspended and takes them when it is resumed.
    OnResume,
}

impl Workspaces {
    /// Workspace `id`'s settings, served or not; `default`'s are the configuration's.
    pub async fn settings(&self, id: &WorkspaceId) -> Result<WorkspaceSettings, PlatformError> {
        let catalog = self.catalog()?;
        let rows = catalog.rows.lock().await;
        let row = rows.get(id).ok_or_else(|| PlatformError::NotFound(id.clone()))?;
        Ok(catalog.settings_of(row)?)
    }

    /// Replaces workspace `id`'s settings with `settings`: checked, stored, on disk, then
    /// applied. `default`'s are the configuration file's and are not changed here.
    pub async fn set_settings(
        &self,
        id: &WorkspaceId,
        settings: WorkspaceSettings,
    ) -> Result<SettingsApplied, PlatformError> {
        let catalog = self.catalog()?;
        let mut rows = catalog.rows.lock().await;
        let row = rows
            .get_mut(id)
            .ok_or_else(|| PlatformError::NotFound(id.clone()))?;
        if id.is_default() {
            return Err(PlatformError::Settings(
                "workspace default takes its settings from the configuration file: change them there".into(),
            ));
        }
        catalog.check(&settings)?;
        let before = catalog.settings_of(row)?;
        let stored = settings.to_json();
        if let Some(store) = &catalog.provisioning.store {
            store.set_workspace_settings(row.key, stored.clone()).await?;
        }
        row.settings = stored;
        if row.state != WorkspaceState::Active {
            return Ok(SettingsApplied::OnResume);
        }
        if !before.needs_reload(&settings) {
            if let Some(workspace) = self.get(id) {
                let (_, credentials) = catalog
                    .engine_and_credentials(row, &settings)
                    .map_err(|e| PlatformError::Settings(e.reason()))?;
                if let Some(credentials) = credentials {
                    workspace.set_credentials(credentials);
                    tracing::info!(workspace = %id, "workspace credentials changed live");
                    return Ok(SettingsApplied::Live);
                }
            }
        }
        self.reload(catalog, row).await?;
        Ok(SettingsApplied::Reloaded)
    }

    /// Lets go of `row`'s workspace and loads it again from the store, with what `row` says.
    pub(super) async fn reload(&self, catalog: &Catalog, row: &WorkspaceRow) -> Result<(), PlatformError> {
        self.unload_if_loaded(&row.id).await?;
        // In a cluster, only the node holding its lease loads it (on that lease).
        let lease = match &catalog.cluster {
            None => None,
            Some(claims) => match claims.lease(&row.id) {
                Some(lease) => Some(lease),
                None => return Ok(()),
            },
        };
        let workspace = catalog.build_on(row, lease.as_ref())?;
        // Not loaded: it was just unloaded, and loads happen under the rows' lock.
        let _ = self.insert(workspace);
        tracing::info!(workspace = %row.id, "workspace reloaded with new settings");
        Ok(())
    }
}
