//! One workspace's view of the shared store (R27).
//!
//! Every workspace's engine writes through the one [`Store`] (one writer thread, one group
//! commit and one fsync for everyone's changes) but holds only a [`WorkspaceStore`]: what it
//! submits is written under its workspace's key, and what it reads is that workspace's rows
//! only. No method here takes a workspace, so an engine cannot reach another's rows by passing
//! the wrong one.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{params, OptionalExtension};

use super::codec::Stored;
use super::{
    archive, history, snapshot, ArchivePage, ArchiveQuery, Change, ChatRecord, CustomerRecord, Epoch,
    HistoryPage, Reads, Receipt, Snapshot, Store, StoreError, WritePoint, WsKey,
};
use crate::core::channel::Channel;
use crate::core::chat::Message;
use crate::ids::{ChatId, CustomerId};

/// The store as one workspace sees it. Cheap to clone: the store is shared.
#[derive(Clone, Debug)]
pub struct WorkspaceStore {
    pub(super) store: Arc<Store>,
    pub(super) ws: WsKey,
    /// The lease epoch its submissions are made under (R28), if it was made under a lease
    /// ([`Store::fenced_workspace`]); `None`: never fenced.
    pub(super) epoch: Option<Epoch>,
}

impl Store {
    /// The handle through which workspace `ws` writes and reads its rows.
    pub fn workspace(self: &Arc<Self>, ws: WsKey) -> WorkspaceStore {
        WorkspaceStore {
            store: self.clone(),
            ws,
            epoch: None,
        }
    }
}

impl WorkspaceStore {
    /// The workspace whose rows this handle reads and writes.
    pub fn ws(&self) -> WsKey {
        self.ws
    }

    /// The lease epoch this handle writes under, if it was made under a lease.
    pub fn epoch(&self) -> Option<Epoch> {
        self.epoch
    }

    /// The store shared by every workspace: its writer's counters and histograms are the
    /// file's, not one workspace's.
    pub fn shared(&self) -> &Store {
        &self.store
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Queues `changes`, all of this workspace, for the next group commit, which may also hold
    /// other workspaces' changes; the receipt completes once they are committed. Under a lease,
    /// once another node took the workspace the receipt answers [`StoreError::Fenced`] and
    /// nothing of the changes is written.
    pub fn submit(&self, changes: Vec<Change>) -> Receipt {
        self.store.submit_under(self.ws, self.epoch, changes)
    }

    /// Everything submitted so far, by any workspace: submissions are numbered across the
    /// store, so waiting for this one's may also wait for others' earlier ones in the same
    /// group, which commit with them anyway. Under a lease, the point fails with
    /// [`StoreError::Fenced`] if a submission of this handle up to it was refused.
    pub fn write_point(&self) -> WritePoint {
        self.store
            .write_point_under(self.epoch.map(|epoch| (self.ws, epoch)))
    }

    /// This workspace's customers with their chats (without messages), KPI events, agents,
    /// limits, skills and outbox, as of the last commit: what its engine restores on start.
    pub fn load(&self) -> Result<Snapshot, StoreError> {
        match &self.store.reads {
            Reads::Sqlite(readers) => readers.with(|conn, path| snapshot::load(conn, path, self.ws)),
            Reads::Postgres(pg) => pg.load(self.ws),
        }
    }

    /// One page of this workspace's archive (R16), newest first.
    pub fn search_archive(&self, q: &ArchiveQuery) -> Result<ArchivePage, StoreError> {
        match &self.store.reads {
            Reads::Sqlite(readers) => readers.with(|conn, path| archive::search(conn, path, self.ws, q)),
            Reads::Postgres(pg) => pg.search_archive(self.ws, q),
        }
    }

    /// Up to `limit` messages of this workspace's `chat`, newest first, older than
    /// `before_seq` if given.
    pub fn history(
        &self,
        chat: &ChatId,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<HistoryPage, StoreError> {
        match &self.store.reads {
            Reads::Sqlite(readers) => {
                readers.with(|conn, path| history::page(conn, path, self.ws, chat, before_seq, limit))
            }
            Reads::Postgres(pg) => pg.history(self.ws, chat, before_seq, limit),
        }
    }

    /// Every message of this workspace's `chat`, oldest first (for the chats kept in memory
    /// on start).
    pub fn messages(&self, chat: &ChatId) -> Result<Vec<Message>, StoreError> {
        match &self.store.reads {
            Reads::Sqlite(readers) => readers.with(|conn, path| history::all(conn, path, self.ws, chat)),
            Reads::Postgres(pg) => pg.messages(self.ws, chat),
        }
    }

    /// The newest chat of `customer` on `channel` (the one a customer's reply or a reopen
    /// there is about), as last committed.
    pub fn newest_chat_on(
        &self,
        customer: &CustomerId,
        channel: Channel,
    ) -> Result<Option<ChatId>, StoreError> {
        let readers = match &self.store.reads {
            Reads::Sqlite(readers) => readers,
            Reads::Postgres(pg) => return pg.newest_chat_on(self.ws, customer, channel),
        };
        readers.with(|conn, path| {
            conn.prepare_cached(
                "SELECT id FROM chats WHERE ws = ?1 AND customer = ?2 AND channel = ?3
                 ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![self.ws, customer.as_str(), channel.stored()], |r| {
                    r.get::<_, String>(0).map(ChatId::from)
                })
                .optional()
            })
            .map_err(|e| StoreError::sqlite(path, e))
        })
    }

    /// The id of every chat and customer of this workspace, in no order: what the engine made
    /// for it, so that a process that does not load it makes none of them again (R27).
    pub fn ids_made(&self) -> Result<Vec<String>, StoreError> {
        let readers = match &self.store.reads {
            Reads::Sqlite(readers) => readers,
            Reads::Postgres(pg) => return pg.ids_made(self.ws),
        };
        readers.with(|conn, path| {
            conn.prepare_cached(
                "SELECT id FROM chats WHERE ws = ?1 UNION ALL SELECT id FROM customers WHERE ws = ?1",
            )
            .and_then(|mut st| {
                st.query_map(params![self.ws], |r| r.get::<_, String>(0))?
                    .collect()
            })
            .map_err(|e| StoreError::sqlite(path, e))
        })
    }

    /// One chat of this workspace as last committed, with its customer (`None` if the
    /// customer is missing, which the engine never writes); `None` if there is no such chat.
    pub fn chat(&self, id: &ChatId) -> Result<Option<(ChatRecord, Option<CustomerRecord>)>, StoreError> {
        match &self.store.reads {
            Reads::Sqlite(readers) => readers.with(|conn, path| history::chat(conn, path, self.ws, id)),
            Reads::Postgres(pg) => pg.chat(self.ws, id),
        }
    }
}
