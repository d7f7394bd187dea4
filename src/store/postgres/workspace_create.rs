//! A new workspace's row on PostgreSQL (issue 19): inserted by the create itself, on a read
//! pool connection, before anything else of the workspace is written.
//!
//! Through the writer, as on SQLite, the row would be one change of a group commit; in a
//! cluster, two nodes creating workspaces at once could pick the same key, or the same id,
//! and the loser's whole group would fail, and with it its node's writer (it stops at the
//! first failure, `store/writer.rs`). Here a lost race is this statement's answer only.

use super::super::codec::nanos;
use super::super::workspace_rows::{NewWorkspace, WorkspaceState};
use super::super::{StoreError, WsKey};
use super::PgReads;

/// Inserts the row under the next key of `workspace_keys` (schema version 9) and answers that
/// key, or no row if the id is taken.
///
/// Race-free in one statement: a sequence never hands one value to two callers, whichever
/// node's connection asks, and never hands it out again (a rolled-back or conflicting insert
/// leaves a gap, which is fine: keys only need to differ). The unique key on `id` sends every
/// concurrent insert of one id through the same index entry: an insert that finds another's
/// uncommitted entry waits for its commit, then does nothing (no row back), or inserts if the
/// other rolled back. A row in any state (`deleting` too) takes the id until it is deleted.
/// Autocommitted: committed, by the store's durability, when the answer comes back.
const CREATE: &str = "
    INSERT INTO workspaces (key, id, name, state, created_at, admin_key_sha256, settings, limits)
    VALUES (nextval('workspace_keys'), $1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb)
    ON CONFLICT (id) DO NOTHING
    RETURNING key";

impl PgReads {
    /// [`Store::create_workspace`](super::super::Store::create_workspace): the new key, or
    /// `None` if the id is taken.
    pub(crate) fn create_workspace(&self, new: &NewWorkspace) -> Result<Option<WsKey>, StoreError> {
        let created_at = nanos(&new.created_at)?;
        let admin_key = new.admin_key_sha256.as_ref().map(|h| h.as_bytes().to_vec());
        // Once: run again after a commit whose answer was lost, it would find the id taken.
        self.with_once(|client, db| {
            let row = client
                .query_opt(
                    CREATE,
                    &[
                        &new.id.as_str(),
                        &new.name,
                        &WorkspaceState::Active.stored(),
                        &created_at,
                        &admin_key,
                        &new.settings,
                        &new.limits,
                    ],
                )
                .map_err(|e| db.error(e))?;
            Ok(row.map(|r| WsKey::new(r.get(0))))
        })
    }
}
