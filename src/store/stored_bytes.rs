//! How many bytes of messages each workspace stores (R27, its `max_stored_bytes`): the text
//! and the payload of every message the writer inserts, summed per workspace over a group and
//! added to `workspaces.stored_bytes` in that group's transaction, then to a copy in memory
//! once it is committed, which the gateway reads before it takes a new customer message.
//!
//! The count only grows: messages are deleted only with their workspace.

use std::collections::HashMap;

use dashmap::DashMap;
use rusqlite::{params, Connection};

use super::{Reads, Store, StoreError, WorkspaceStore, WsKey};

/// Bytes added per workspace by one group, before its commit.
pub(super) type Added = HashMap<WsKey, u64>;

/// The committed count of every workspace, as `workspaces.stored_bytes` holds it.
#[derive(Debug, Default)]
pub(super) struct StoredBytes {
    // Its shard guards are held only to read or add a number (see `lock_order.rs`).
    by_ws: DashMap<WsKey, u64>,
}

impl StoredBytes {
    /// The counts in `workspaces` (the writer's connection, before the writer starts).
    pub(super) fn read(conn: &Connection) -> rusqlite::Result<Self> {
        let by_ws = DashMap::new();
        let mut st = conn.prepare("SELECT key, stored_bytes FROM workspaces")?;
        let rows = st.query_map([], |r| Ok((WsKey::new(r.get(0)?), r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (ws, bytes) = row?;
            by_ws.insert(ws, u64::try_from(bytes).unwrap_or(0));
        }
        Ok(Self { by_ws })
    }

    /// The counts read from PostgreSQL's `workspaces` (`postgres::open`).
    pub(super) fn of_counts(counts: impl IntoIterator<Item = (WsKey, i64)>) -> Self {
        let by_ws = DashMap::new();
        for (ws, bytes) in counts {
            by_ws.insert(ws, u64::try_from(bytes).unwrap_or(0));
        }
        Self { by_ws }
    }

    /// Workspace `ws`'s count.
    pub(super) fn of(&self, ws: WsKey) -> u64 {
        self.by_ws.get(&ws).map_or(0, |bytes| *bytes)
    }

    /// Counts what a committed group added.
    pub(super) fn committed(&self, added: &Added) {
        for (ws, bytes) in added {
            *self.by_ws.entry(*ws).or_default() += bytes;
        }
    }
}

/// Adds a group's bytes to `workspaces.stored_bytes`, inside its transaction: the column and
/// the messages are committed together or not at all.
pub(super) fn record(conn: &Connection, added: &Added) -> rusqlite::Result<()> {
    for (ws, bytes) in added {
        conn.prepare_cached("UPDATE workspaces SET stored_bytes = stored_bytes + ?2 WHERE key = ?1")?
            .execute(params![ws, i64::try_from(*bytes).unwrap_or(i64::MAX)])?;
    }
    Ok(())
}

impl Store {
    /// Bytes of messages workspace `ws` stores, as last committed.
    pub fn stored_bytes(&self, ws: WsKey) -> u64 {
        self.stored_bytes.of(ws)
    }

    /// Workspace `ws`'s count as the database holds it (`workspaces.stored_bytes`), for checks.
    pub fn stored_bytes_on_disk(&self, ws: WsKey) -> Result<u64, StoreError> {
        let readers = match &self.reads {
            Reads::Sqlite(readers) => readers,
            Reads::Postgres(pg) => return pg.stored_bytes(ws),
        };
        readers.with(|conn, path| {
            conn.query_row(
                "SELECT stored_bytes FROM workspaces WHERE key = ?1",
                params![ws],
                |r| r.get::<_, i64>(0),
            )
            .map(|bytes| u64::try_from(bytes).unwrap_or(0))
            .map_err(|e| StoreError::sqlite(path, e))
        })
    }
}

impl WorkspaceStore {
    /// Bytes of messages this workspace stores, as last committed.
    pub fn stored_bytes(&self) -> u64 {
        self.store.stored_bytes(self.ws)
    }
}
