//! The `workspaces` table (R27): which workspaces exist, under which key, in which state.
//!
//! The store allocates a new workspace's key ([`Store::create_workspace`]). On SQLite (one
//! process) it is one more than the largest key in the file when it was opened, or handed out
//! since: a key is never handed out twice by one store, and after a restart a key can come back
//! only if its workspace's row, which goes last ([`Store::delete_workspace`]), is gone, and with
//! it every row that carried it. On PostgreSQL, where several nodes share the table (issue 19),
//! the row is inserted first, by the create itself, under a key from the database's sequence
//! (`postgres/workspace_create.rs`): no two nodes get one key, a key never comes back, and an
//! id taken by any node answers [`CreateError::Exists`] instead of failing a group commit.
//!
//! A workspace's rows are deleted in batches ([`Change::PurgeWorkspace`], [`PURGE_BATCH`] rows
//! per table per transaction), each its own submission, so that the writer commits other
//! workspaces' changes between them instead of waiting for one long delete.

use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{column_time, nanos};
use super::{Change, Epoch, Reads, Receipt, Store, StoreError, WsKey};
use crate::clock::Timestamp;
use crate::ids::WorkspaceId;
use crate::security::TokenHash;

/// Rows deleted per table in one [`Change::PurgeWorkspace`].
pub const PURGE_BATCH: u32 = 5_000;

/// Where a workspace stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceState {
    /// Served: loaded on start.
    Active,
    /// Kept, but not served: its paths answer `not_found` until it is resumed.
    Suspended,
    /// Being deleted: never loaded again; a start finishes the purge.
    Deleting,
}

impl WorkspaceState {
    /// As stored in `workspaces.state`.
    pub fn stored(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleting => "deleting",
        }
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
        [Self::Active, Self::Suspended, Self::Deleting]
            .into_iter()
            .find(|s| s.stored() == text)
    }
}

/// One row of `workspaces`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WorkspaceRow {
    /// Its key in every table.
    pub key: WsKey,
    /// Its id.
    pub id: WorkspaceId,
    /// Its display name, if it has one.
    pub name: Option<String>,
    /// Where it stands.
    pub state: WorkspaceState,
    /// When it was created.
    pub created_at: Timestamp,
    /// The digest of its admin key; none for `default`, whose key is `[security] admin_key`.
    pub admin_key_sha256: Option<TokenHash>,
    /// Its settings as JSON (`config::WorkspaceSettings`; `{}`: none), secrets included.
    pub settings: String,
    /// Its limits, as stored (JSON; `{}`: none). `config::Limits::from_stored` reads them.
    pub limits: String,
}

/// A workspace to create, active: its row as [`Store::create_workspace`] writes it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewWorkspace {
    /// Its id; not taken by any workspace, in any state.
    pub id: WorkspaceId,
    /// Its display name, if it has one.
    pub name: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// The digest of its admin key, if it has one.
    pub admin_key_sha256: Option<TokenHash>,
    /// Its settings as JSON (`{}`: none).
    pub settings: String,
    /// Its limits as JSON (`{}`: none).
    pub limits: String,
}

impl NewWorkspace {
    /// Workspace `id` with no name, no admin key, no settings and no limits.
    pub fn bare(id: WorkspaceId, created_at: Timestamp) -> Self {
        Self {
            id,
            name: None,
            created_at,
            admin_key_sha256: None,
            settings: "{}".into(),
            limits: "{}".into(),
        }
    }
}

/// Why [`Store::create_workspace`] created nothing.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CreateError {
    /// The id is taken, by a workspace in any state, created by any node.
    #[error("workspace {0} exists already")]
    Exists(WorkspaceId),
    /// The store failed: nothing was created.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The tables that hold a workspace's rows, with the delete of one batch of them (`?1` the
/// workspace, `?2` the batch). The search index goes before `customers`: its rows are found by
/// the customers' keys (the same first keys, in `key` order, as the customers' delete takes).
const PURGES: [(&str, &str); 9] = [
    (
        "customer_search",
        "DELETE FROM customer_search WHERE rowid IN
             (SELECT key FROM customers WHERE ws = ?1 ORDER BY key LIMIT ?2)",
    ),
    (
        "customers",
        "DELETE FROM customers WHERE key IN
             (SELECT key FROM customers WHERE ws = ?1 ORDER BY key LIMIT ?2)",
    ),
    (
        "chats",
        "DELETE FROM chats WHERE rowid IN (SELECT rowid FROM chats WHERE ws = ?1 LIMIT ?2)",
    ),
    (
        "messages",
        "DELETE FROM messages WHERE ws = ?1 AND (chat, seq) IN
             (SELECT chat, seq FROM messages WHERE ws = ?1 LIMIT ?2)",
    ),
    (
        "analytics_events",
        "DELETE FROM analytics_events WHERE id IN
             (SELECT id FROM analytics_events WHERE ws = ?1 LIMIT ?2)",
    ),
    (
        "agent_limits",
        "DELETE FROM agent_limits WHERE ws = ?1 AND agent IN
             (SELECT agent FROM agent_limits WHERE ws = ?1 LIMIT ?2)",
    ),
    (
        "agent_skills",
        "DELETE FROM agent_skills WHERE ws = ?1 AND agent IN
             (SELECT agent FROM agent_skills WHERE ws = ?1 LIMIT ?2)",
    ),
    (
        "agents",
        "DELETE FROM agents WHERE ws = ?1 AND agent IN
             (SELECT agent FROM agents WHERE ws = ?1 LIMIT ?2)",
    ),
    (
        "outbox",
        "DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox WHERE ws = ?1 LIMIT ?2)",
    ),
];

/// The largest key in `workspaces` (SQLite's writing connection, before the writer starts).
pub(super) fn largest_key(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(key), 1) FROM workspaces", [], |r| r.get(0))
}

/// Writes a new workspace's row (the writer's side of [`Change::CreateWorkspace`]).
pub(super) fn insert<E>(
    conn: &Connection,
    ws: WsKey,
    id: &WorkspaceId,
    name: Option<&str>,
    created_at: &Timestamp,
) -> Result<(), E>
where
    E: From<rusqlite::Error> + From<StoreError>,
{
    // The key is new; a replay of the same row changes nothing.
    conn.prepare_cached(
        "INSERT INTO workspaces (key, id, name, state, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (key) DO NOTHING",
    )?
    .execute(params![
        ws,
        id.as_str(),
        name,
        WorkspaceState::Active.stored(),
        nanos(created_at)?
    ])?;
    Ok(())
}

/// [`Change::SetWorkspaceState`]. A workspace being deleted stays so until its row goes: a
/// suspend or resume decided on a stale view (another node's, in a cluster) must not bring a
/// half-purged workspace back, nor hide it from the nodes that finish the purge.
pub(super) fn set_state(conn: &Connection, ws: WsKey, state: WorkspaceState) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE workspaces SET state = ?2 WHERE key = ?1 AND state <> 'deleting'")?
        .execute(params![ws, state.stored()])?;
    Ok(())
}

/// [`Change::SetWorkspaceAdminKey`].
pub(super) fn set_admin_key(conn: &Connection, ws: WsKey, digest: &TokenHash) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE workspaces SET admin_key_sha256 = ?2 WHERE key = ?1")?
        .execute(params![ws, digest.as_bytes().as_slice()])?;
    Ok(())
}

/// [`Change::SetWorkspaceSettings`].
pub(super) fn set_settings(conn: &Connection, ws: WsKey, settings: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE workspaces SET settings = ?2 WHERE key = ?1")?
        .execute(params![ws, settings])?;
    Ok(())
}

/// [`Change::SetWorkspaceLimits`].
pub(super) fn set_limits(conn: &Connection, ws: WsKey, limits: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE workspaces SET limits = ?2 WHERE key = ?1")?
        .execute(params![ws, limits])?;
    Ok(())
}

/// [`Change::PurgeWorkspace`]: up to `batch` rows of each table.
pub(super) fn purge(conn: &Connection, ws: WsKey, batch: u32) -> rusqlite::Result<()> {
    for (_, sql) in PURGES {
        conn.prepare_cached(sql)?.execute(params![ws, batch])?;
    }
    Ok(())
}

/// [`Change::DeleteWorkspace`].
pub(super) fn delete(conn: &Connection, ws: WsKey) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM workspaces WHERE key = ?1")?
        .execute(params![ws])?;
    Ok(())
}

/// The next key to hand out, on SQLite: one process writes the file, so a counter in it is
/// enough.
#[derive(Debug)]
pub(super) struct NextKey(AtomicI64);

impl NextKey {
    pub(super) fn after(largest: i64) -> Self {
        Self(AtomicI64::new(largest + 1))
    }

    fn take(&self) -> WsKey {
        WsKey::new(self.0.fetch_add(1, Ordering::Relaxed))
    }
}

impl Store {
    /// Every row of `workspaces`, in key order: what the registry loads on start.
    pub fn workspace_rows(&self) -> Result<Vec<WorkspaceRow>, StoreError> {
        let readers = match &self.reads {
            Reads::Sqlite(readers) => readers,
            Reads::Postgres(pg) => return pg.workspace_rows(),
        };
        readers.with(|conn, path| {
            let err = |e| StoreError::sqlite(path, e);
            let mut st = conn
                .prepare_cached(
                    "SELECT key, id, name, state, created_at, admin_key_sha256, settings, limits
                     FROM workspaces ORDER BY key",
                )
                .map_err(err)?;
            let rows = st
                .query_map([], |r| {
                    let (key, id, state): (i64, String, String) = (r.get(0)?, r.get(1)?, r.get(3)?);
                    let name: Option<String> = r.get(2)?;
                    let admin_key: Option<Vec<u8>> = r.get(5)?;
                    let settings: String = r.get(6)?;
                    let limits: String = r.get(7)?;
                    Ok(WorkspaceColumns {
                        key,
                        id,
                        name,
                        state,
                        created_at: column_time(r, 4)?,
                        admin_key,
                        settings,
                        limits,
                    })
                })
                .map_err(err)?;
            let mut out = Vec::new();
            for row in rows {
                let columns = row.map_err(err)?;
                out.push(columns.decode(|what| StoreError::Corrupt {
                    path: path.to_path_buf(),
                    what,
                })?);
            }
            Ok(out)
        })
    }

    /// Whether workspace `key` still has its row (a deleted one is gone once purged): one
    /// row's read, for a caller that waits on one workspace.
    pub fn workspace_row_exists(&self, key: WsKey) -> Result<bool, StoreError> {
        let readers = match &self.reads {
            Reads::Sqlite(readers) => readers,
            Reads::Postgres(pg) => return pg.workspace_row_exists(key),
        };
        readers.with(|conn, path| {
            conn.prepare_cached("SELECT 1 FROM workspaces WHERE key = ?1")
                .and_then(|mut st| st.exists([key.get()]))
                .map_err(|e| StoreError::sqlite(path, e))
        })
    }

    /// Records a new, active workspace, with its admin key's digest, settings and limits, under
    /// a key allocated here; the receipt completes once its row is on disk. A taken id answers
    /// [`CreateError::Exists`] and creates nothing.
    ///
    /// On PostgreSQL the row is inserted before this returns, on a connection of its own, in
    /// one statement that takes the key from the database and sees every node's rows
    /// (`postgres/workspace_create.rs`); the receipt is complete already. On SQLite the row is
    /// queued for the writer under the next key of the store's counter; a taken id is looked
    /// up as last committed, which is enough for the one process's registry (it creates one
    /// workspace at a time, and waits for each).
    pub fn create_workspace(&self, new: NewWorkspace) -> Result<(WsKey, Receipt), CreateError> {
        let (readers, next_key) = match (&self.reads, &self.next_ws_key) {
            (Reads::Postgres(pg), _) => {
                return match pg.create_workspace(&new)? {
                    Some(key) => Ok((key, Receipt::committed())),
                    None => Err(CreateError::Exists(new.id)),
                };
            }
            (Reads::Sqlite(readers), Some(next_key)) => (readers, next_key),
            // Not a store `Store::open` opened: it always counts.
            (Reads::Sqlite(_), None) => {
                return Err(CreateError::Store(StoreError::NeedsPostgres {
                    what: "a workspace without a key counter",
                    path: self.path.clone(),
                }))
            }
        };
        let taken = readers.with(|conn, path| {
            conn.prepare_cached("SELECT 1 FROM workspaces WHERE id = ?1")
                .and_then(|mut st| st.query_row(params![new.id.as_str()], |_| Ok(())).optional())
                .map_err(|e| StoreError::sqlite(path, e))
        })?;
        if taken.is_some() {
            return Err(CreateError::Exists(new.id));
        }
        let key = next_key.take();
        let NewWorkspace {
            id,
            name,
            created_at,
            admin_key_sha256,
            settings,
            limits,
        } = new;
        let mut changes = vec![Change::CreateWorkspace { id, name, created_at }];
        changes.extend(admin_key_sha256.map(Change::SetWorkspaceAdminKey));
        changes.push(Change::SetWorkspaceSettings(settings));
        changes.push(Change::SetWorkspaceLimits(limits));
        Ok((key, self.submit_as(key, changes)))
    }

    /// Records workspace `ws`'s new admin key (its digest): the one before stops opening
    /// anything once the receipt completes.
    pub fn set_workspace_admin_key(&self, ws: WsKey, digest: TokenHash) -> Receipt {
        self.submit_as(ws, vec![Change::SetWorkspaceAdminKey(digest)])
    }

    /// Records workspace `ws`'s new settings (JSON).
    pub fn set_workspace_settings(&self, ws: WsKey, settings: String) -> Receipt {
        self.submit_as(ws, vec![Change::SetWorkspaceSettings(settings)])
    }

    /// Records workspace `ws`'s limits (their JSON).
    pub fn set_workspace_limits(&self, ws: WsKey, limits: String) -> Receipt {
        self.submit_as(ws, vec![Change::SetWorkspaceLimits(limits)])
    }

    /// Records workspace `ws`'s new state.
    pub fn set_workspace_state(&self, ws: WsKey, state: WorkspaceState) -> Receipt {
        self.submit_as(ws, vec![Change::SetWorkspaceState(state)])
    }

    /// Deletes every row of workspace `ws`, batch after batch, then its own row: when this
    /// returns `Ok`, the file holds nothing of it. Mark it [`WorkspaceState::Deleting`] first,
    /// so that a start after a crash half-way finishes the job instead of loading the rest.
    pub async fn delete_workspace(&self, ws: WsKey) -> Result<(), StoreError> {
        while self.holds_rows_of(ws)? {
            self.purge_batch(ws, None).await?;
        }
        self.delete_workspace_row(ws, None).await
    }

    /// Deletes up to [`PURGE_BATCH`] rows of workspace `ws` from each table; under lease
    /// `epoch` if given (a cluster purges only under the workspace's lease: refused
    /// [`StoreError::Fenced`], nothing deleted, once another node took it).
    pub fn purge_batch(&self, ws: WsKey, epoch: Option<Epoch>) -> Receipt {
        self.submit_under(ws, epoch, vec![Change::PurgeWorkspace { batch: PURGE_BATCH }])
    }

    /// Deletes workspace `ws`'s own row, once nothing else holds a row of it; under lease
    /// `epoch` if given, as [`Store::purge_batch`] (then [`Store::drop_lease`] goes last).
    pub fn delete_workspace_row(&self, ws: WsKey, epoch: Option<Epoch>) -> Receipt {
        self.submit_under(ws, epoch, vec![Change::DeleteWorkspace])
    }

    /// Whether any table but `workspaces` still holds a row of `ws` (as last committed).
    pub fn holds_rows_of(&self, ws: WsKey) -> Result<bool, StoreError> {
        let readers = match &self.reads {
            Reads::Sqlite(readers) => readers,
            Reads::Postgres(pg) => return pg.holds_rows_of(ws),
        };
        readers.with(|conn, path| {
            // Not the search index: its `ws` is a text token, and its rows go with `customers`.
            for (table, _) in PURGES.iter().filter(|(t, _)| *t != "customer_search") {
                let sql = format!("SELECT 1 FROM {table} WHERE ws = ?1 LIMIT 1");
                let found = conn
                    .prepare_cached(&sql)
                    .and_then(|mut st| st.query_row(params![ws], |_| Ok(())).optional())
                    .map_err(|e| StoreError::sqlite(path, e))?;
                if found.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }
}

/// A `workspaces` row's columns as either backend reads them, before they are checked.
pub(super) struct WorkspaceColumns {
    pub(super) key: i64,
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) state: String,
    pub(super) created_at: Timestamp,
    pub(super) admin_key: Option<Vec<u8>>,
    pub(super) settings: String,
    pub(super) limits: String,
}

impl WorkspaceColumns {
    /// The row, or what is wrong with it, told through `corrupt` (which names the file or
    /// the database).
    pub(super) fn decode(self, corrupt: impl Fn(String) -> StoreError) -> Result<WorkspaceRow, StoreError> {
        let Self {
            key,
            id,
            name,
            state,
            created_at,
            admin_key,
            settings,
            limits,
        } = self;
        let id = WorkspaceId::parse(&id).map_err(|e| corrupt(format!("workspace {key}: {e}")))?;
        let state = WorkspaceState::parse(&state)
            .ok_or_else(|| corrupt(format!("workspace {id}: unknown state {state:?}")))?;
        let admin_key_sha256 = admin_key
            .map(|bytes| {
                TokenHash::from_bytes(&bytes).ok_or_else(|| {
                    corrupt(format!(
                        "workspace {id}: an admin key digest of {} bytes",
                        bytes.len()
                    ))
                })
            })
            .transpose()?;
        Ok(WorkspaceRow {
            key: WsKey::new(key),
            id,
            name,
            state,
            created_at,
            admin_key_sha256,
            settings,
            limits,
        })
    }
}
