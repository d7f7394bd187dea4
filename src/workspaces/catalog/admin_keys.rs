//! Workspaces' admin keys (R27), as the platform API rotates them: the registry keeps only
//! their digests, stored first, then put in the loaded workspace's place, so that the key
//! before stops opening anything as soon as the new one is answered.

use super::{PlatformError, Workspaces};
use crate::ids::WorkspaceId;
use crate::security::TokenHash;
use crate::store::WorkspaceRow;

impl Workspaces {
    /// Gives workspace `id` the admin key whose digest is `digest`, served or suspended;
    /// answers once it is on disk. Refused for `default`, whose key is the configuration's.
    pub async fn set_admin_key(
        &self,
        id: &WorkspaceId,
        digest: TokenHash,
    ) -> Result<WorkspaceRow, PlatformError> {
        if id.is_default() {
            return Err(PlatformError::DefaultAdminKey);
        }
        let catalog = self.catalog()?;
        let mut rows = catalog.rows.lock().await;
        let row = rows
            .get_mut(id)
            .ok_or_else(|| PlatformError::NotFound(id.clone()))?;
        if let Some(store) = &catalog.provisioning.store {
            store.set_workspace_admin_key(row.key, digest).await?;
        }
        row.admin_key_sha256 = Some(digest);
        // A suspended workspace gets it from its row when it is resumed.
        if let Some(workspace) = self.get(id) {
            workspace.set_admin_key(Some(digest));
        }
        Ok(row.clone())
    }
}
