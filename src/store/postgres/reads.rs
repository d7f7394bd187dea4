//! Reads on PostgreSQL: the restore, history, single chats and the workspace rows, each the
//! same query as on SQLite (`snapshot.rs`, `history.rs`, `scoped.rs`, `workspace_rows.rs`),
//! decoded by the same functions.

use postgres::{Client, IsolationLevel};

use super::super::codec::{
    agent_record, chat_record, column_json, column_time, customer_record, Cells, AGENT_COLUMNS, CHAT_COLUMNS,
    CUSTOMER_COLUMNS,
};
use super::super::history::{history_entry, in_order, HistoryPage, MAX_HISTORY_PAGE};
use super::super::records::{ChatRecord, CustomerRecord, Snapshot};
use super::super::snapshot::{event_record, outbox_record, ChatsByCustomer, EVENT_COLUMNS, OUTBOX_COLUMNS};
use super::super::workspace_rows::{WorkspaceColumns, WorkspaceRow};
use super::super::{StoreError, WsKey};
use super::row::PgRow;
use super::writer::PURGES;
use super::{Database, PgReads};
use crate::core::channel::Channel;
use crate::core::chat::Message;
use crate::core::queue::Skills;
use crate::ids::{AgentId, ChatId, CustomerId};

use super::super::codec::Stored;

impl PgReads {
    /// [`WorkspaceStore::load`](super::super::WorkspaceStore::load): one repeatable-read
    /// transaction, so every table is of the same commit.
    pub(crate) fn load(&self, ws: WsKey) -> Result<Snapshot, StoreError> {
        self.with(|client, db| load(client, db, ws.get()))
    }

    /// [`WorkspaceStore::history`](super::super::WorkspaceStore::history).
    pub(crate) fn history(
        &self,
        ws: WsKey,
        chat: &ChatId,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<HistoryPage, StoreError> {
        let limit = limit.min(MAX_HISTORY_PAGE);
        let before = before_seq.map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX));
        let messages = self.with(|client, db| {
            let rows = client
                .query(
                    "SELECT seq, at, author, agent, kind, text, payload, provider_id, delivery, delivery_reason
                     FROM messages WHERE ws = $1 AND chat = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4",
                    &[&ws.get(), &chat.as_str(), &before, &(i64::from(limit) + 1)],
                )
                .map_err(|e| db.error(e))?;
            PgRow::decode_all(&rows, db, history_entry)
        })?;
        Ok(HistoryPage::of(messages, limit))
    }

    /// [`WorkspaceStore::messages`](super::super::WorkspaceStore::messages): a gap in the
    /// numbers is damage.
    pub(crate) fn messages(&self, ws: WsKey, chat: &ChatId) -> Result<Vec<Message>, StoreError> {
        self.with(|client, db| {
            let rows = client
                .query(
                    "SELECT seq, at, author, agent, kind, text, payload, provider_id, delivery, delivery_reason
                     FROM messages WHERE ws = $1 AND chat = $2 ORDER BY seq",
                    &[&ws.get(), &chat.as_str()],
                )
                .map_err(|e| db.error(e))?;
            in_order(chat, PgRow::decode_all(&rows, db, history_entry)?, || db.name())
        })
    }

    /// [`WorkspaceStore::newest_chat_on`](super::super::WorkspaceStore::newest_chat_on).
    pub(crate) fn newest_chat_on(
        &self,
        ws: WsKey,
        customer: &CustomerId,
        channel: Channel,
    ) -> Result<Option<ChatId>, StoreError> {
        self.with(|client, db| {
            let row = client
                .query_opt(
                    "SELECT id FROM chats WHERE ws = $1 AND customer = $2 AND channel = $3
                     ORDER BY created_at DESC, id DESC LIMIT 1",
                    &[&ws.get(), &customer.as_str(), &channel.stored()],
                )
                .map_err(|e| db.error(e))?;
            Ok(row.map(|r| ChatId::from(r.get::<_, String>(0))))
        })
    }

    /// [`WorkspaceStore::chat`](super::super::WorkspaceStore::chat), in one transaction.
    pub(crate) fn chat(
        &self,
        ws: WsKey,
        id: &ChatId,
    ) -> Result<Option<(ChatRecord, Option<CustomerRecord>)>, StoreError> {
        self.with(|client, db| {
            let err = |e| db.error(e);
            let mut tx = read_transaction(client).map_err(err)?;
            let chat = tx
                .query(
                    &format!("SELECT {CHAT_COLUMNS} FROM chats WHERE ws = $1 AND id = $2"),
                    &[&ws.get(), &id.as_str()],
                )
                .map_err(err)?;
            let Some(chat) = PgRow::decode_all(&chat, db, chat_record)?.pop() else {
                return Ok(None);
            };
            let customer = tx
                .query(
                    &format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE ws = $1 AND id = $2"),
                    &[&ws.get(), &chat.customer.as_str()],
                )
                .map_err(err)?;
            let customer = PgRow::decode_all(&customer, db, customer_record)?.pop();
            tx.commit().map_err(err)?;
            Ok(Some((chat, customer)))
        })
    }

    /// [`Store::workspace_rows`](super::super::Store::workspace_rows).
    pub(crate) fn workspace_rows(&self) -> Result<Vec<WorkspaceRow>, StoreError> {
        self.with(|client, db| {
            let rows = client
                .query(
                    "SELECT key, id, name, state, created_at, admin_key_sha256, settings, limits
                     FROM workspaces ORDER BY key",
                    &[],
                )
                .map_err(|e| db.error(e))?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let row = PgRow::of(row, db)?;
                let columns = (|| {
                    rusqlite::Result::Ok(WorkspaceColumns {
                        key: row.cell::<i64>(0)?,
                        id: row.cell::<String>(1)?,
                        name: row.cell::<Option<String>>(2)?,
                        state: row.cell::<String>(3)?,
                        created_at: column_time(&row, 4)?,
                        admin_key: row.cell::<Option<Vec<u8>>>(5)?,
                        settings: row.cell::<String>(6)?,
                        limits: row.cell::<String>(7)?,
                    })
                })()
                .map_err(|e| db.corrupt(e))?;
                out.push(columns.decode(|what| StoreError::Corrupt {
                    path: db.name(),
                    what,
                })?);
            }
            Ok(out)
        })
    }

    /// [`Store::workspace_row_exists`](super::super::Store::workspace_row_exists).
    pub(crate) fn workspace_row_exists(&self, ws: WsKey) -> Result<bool, StoreError> {
        self.with(|client, db| {
            let rows = client
                .query("SELECT 1 FROM workspaces WHERE key = $1", &[&ws.get()])
                .map_err(|e| db.error(e))?;
            Ok(!rows.is_empty())
        })
    }

    /// [`Store::stored_bytes_on_disk`](super::super::Store::stored_bytes_on_disk).
    pub(crate) fn stored_bytes(&self, ws: WsKey) -> Result<u64, StoreError> {
        self.with(|client, db| {
            let row = client
                .query_one("SELECT stored_bytes FROM workspaces WHERE key = $1", &[&ws.get()])
                .map_err(|e| db.error(e))?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }

    /// [`WorkspaceStore::ids_made`](super::super::WorkspaceStore::ids_made).
    pub(crate) fn ids_made(&self, ws: WsKey) -> Result<Vec<String>, StoreError> {
        self.with(|client, db| {
            let rows = client
                .query(
                    "SELECT id FROM chats WHERE ws = $1 UNION ALL SELECT id FROM customers WHERE ws = $1",
                    &[&ws.get()],
                )
                .map_err(|e| db.error(e))?;
            Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })
    }

    /// [`Store::holds_rows_of`](super::super::Store::holds_rows_of).
    pub(crate) fn holds_rows_of(&self, ws: WsKey) -> Result<bool, StoreError> {
        self.with(|client, db| {
            for (table, _) in PURGES {
                let found = client
                    .query_opt(
                        &format!("SELECT 1 FROM {table} WHERE ws = $1 LIMIT 1"),
                        &[&ws.get()],
                    )
                    .map_err(|e| db.error(e))?;
                if found.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }
}

/// A read-only transaction that sees one commit throughout.
fn read_transaction(client: &mut Client) -> Result<postgres::Transaction<'_>, postgres::Error> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
}

/// Everything of workspace `ws`, as `snapshot::load` reads it from SQLite.
fn load(client: &mut Client, db: &Database, ws: i64) -> Result<Snapshot, StoreError> {
    let err = |e| db.error(e);
    let mut tx = read_transaction(client).map_err(err)?;
    let mut read = |sql: String| tx.query(&sql, &[&ws]).map_err(err);

    let customers = read(format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE ws = $1 ORDER BY key"
    ))?;
    let customers = PgRow::decode_all(&customers, db, customer_record)?;
    let chats = read(format!(
        "SELECT {CHAT_COLUMNS} FROM chats WHERE ws = $1 ORDER BY customer, created_at, id"
    ))?;
    let mut by_customer = ChatsByCustomer::default();
    for chat in PgRow::decode_all(&chats, db, chat_record)? {
        by_customer.add(chat);
    }
    let customers = by_customer.files(customers, || db.name())?;
    let events = read(format!(
        "SELECT {EVENT_COLUMNS} FROM analytics_events WHERE ws = $1 ORDER BY id"
    ))?;
    let agents = read(format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE ws = $1 ORDER BY agent"
    ))?;
    let limits = read("SELECT agent, max_active FROM agent_limits WHERE ws = $1 ORDER BY agent".into())?;
    let skills = read("SELECT agent, skills FROM agent_skills WHERE ws = $1 ORDER BY agent".into())?;
    let outbox = read(format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE ws = $1 ORDER BY id"
    ))?;
    let snapshot = Snapshot {
        customers,
        events: PgRow::decode_all(&events, db, event_record)?,
        agents: PgRow::decode_all(&agents, db, agent_record)?,
        agent_limits: PgRow::decode_all(&limits, db, |r| {
            Ok((AgentId::from(r.cell::<String>(0)?), r.cell::<u32>(1)?))
        })?,
        agent_skills: PgRow::decode_all(&skills, db, |r| {
            Ok((AgentId::from(r.cell::<String>(0)?), column_json::<Skills>(r, 1)?))
        })?,
        outbox: PgRow::decode_all(&outbox, db, outbox_record)?,
    };
    tx.commit().map_err(err)?;
    Ok(snapshot)
}
