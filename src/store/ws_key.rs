//! Which workspace's rows a statement reads or writes (R27).
//!
//! Every table carries `ws`, the workspace's `workspaces.key`: an integer rather than the
//! workspace's text id, so that every index key (all of them start with `ws`) stays small.

use rusqlite::types::{ToSql, ToSqlOutput};

/// A workspace's key in the store (`workspaces.key`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct WsKey(i64);

impl WsKey {
    /// The `default` workspace, which schema version 5 created with key 1 and gave every row
    /// stored before workspaces existed.
    pub const DEFAULT: WsKey = WsKey(1);

    /// The workspace whose `workspaces.key` is `key`.
    pub const fn new(key: i64) -> WsKey {
        WsKey(key)
    }

    /// The key as stored.
    pub fn get(self) -> i64 {
        self.0
    }

    /// The full-text expression that restricts a `customer_search` MATCH to this workspace's
    /// customers: its `ws` column holds the token `w<key>` (the writer stores `'w' || ws`).
    pub(crate) fn search_filter(self) -> String {
        format!("ws : \"w{}\"", self.0)
    }
}

impl ToSql for WsKey {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}
