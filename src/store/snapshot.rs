//! Reading everything back on start.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::codec::{
    agent_record, chat_record, column_event_kind, column_json, column_stored, column_time, column_time_opt,
    customer_record, Cells, AGENT_COLUMNS, CHAT_COLUMNS, CUSTOMER_COLUMNS,
};
use super::records::{ChatRecord, CustomerRecord, OutboxRecord, Snapshot};
use super::{StoreError, WsKey};
use crate::core::analytics::Event;
use crate::core::chat::Chat;
use crate::core::customer::CustomerFile;
use crate::ids::{AgentId, ChatId, CustomerId, QueueId};

/// The read of one workspace's (`?1`) customers, in `key` order.
pub(super) fn customers_in_key_order() -> String {
    format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE ws = ?1 ORDER BY key")
}

/// A workspace's chats as they are read, in order, by customer, to be joined to the customers.
#[derive(Default)]
pub(crate) struct ChatsByCustomer(HashMap<CustomerId, Vec<Chat>>);

impl ChatsByCustomer {
    /// The next chat read.
    pub(crate) fn add(&mut self, chat: ChatRecord) {
        self.0
            .entry(chat.customer.clone())
            .or_default()
            .push(chat.into_chat());
    }

    /// Each of `customers` with its chats; corrupt if a chat names a customer not among them
    /// (`file` names where it was read, on either backend).
    pub(crate) fn files(
        mut self,
        customers: Vec<CustomerRecord>,
        file: impl Fn() -> std::path::PathBuf,
    ) -> Result<Vec<CustomerFile>, StoreError> {
        let files = customers
            .into_iter()
            .map(|c| {
                let chats = self.0.remove(&c.id).unwrap_or_default();
                c.into_file(chats)
            })
            .collect();
        if let Some((customer, chats)) = self.0.into_iter().next() {
            // The engine writes a customer no later than its chats, and groups are atomic, so
            // this is damage, not a crash: refuse rather than drop the chats.
            return Err(StoreError::Corrupt {
                path: file(),
                what: format!("{} chat(s) of unknown customer {customer}", chats.len()),
            });
        }
        Ok(files)
    }
}

/// Reads all of workspace `ws` in one read transaction, so customers, chats and events are of
/// the same commit. Each read is a range of a `ws`-prefixed key, so it costs the workspace's
/// size, not the file's.
pub(crate) fn load(conn: &mut Connection, path: &Path, ws: WsKey) -> Result<Snapshot, StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(err)?;

    // In key order, through `customers_by_ws_key` (schema version 6): the workspace's range,
    // already in order. Through the `(ws, id)` key the planner would fetch every row out of
    // order and then sort them all (a hundred times slower on 500,000 customers); a scan of
    // the table would read every workspace's customers.
    let customers: Vec<CustomerRecord> = tx
        .prepare(&customers_in_key_order())
        .and_then(|mut st| st.query_map([ws], |r| customer_record(r))?.collect())
        .map_err(err)?;

    let mut chats = ChatsByCustomer::default();
    tx.prepare(&format!(
        "SELECT {CHAT_COLUMNS} FROM chats WHERE ws = ?1 ORDER BY customer, created_at, id"
    ))
    .and_then(|mut st| {
        for chat in st.query_map([ws], |r| chat_record(r))? {
            chats.add(chat?);
        }
        Ok(())
    })
    .map_err(err)?;
    let customers = chats.files(customers, || path.to_path_buf())?;

    let events = tx
        .prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM analytics_events WHERE ws = ?1 ORDER BY id"
        ))
        .and_then(|mut st| {
            st.query_map([ws], |r| event_record(r))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(err)?;

    let agents = tx
        .prepare(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE ws = ?1 ORDER BY agent"
        ))
        .and_then(|mut st| {
            st.query_map([ws], |r| agent_record(r))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(err)?;

    let agent_limits = tx
        .prepare("SELECT agent, max_active FROM agent_limits WHERE ws = ?1 ORDER BY agent")
        .and_then(|mut st| {
            st.query_map([ws], |r| Ok((AgentId::from(r.get::<_, String>(0)?), r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(err)?;

    let agent_skills = tx
        .prepare("SELECT agent, skills FROM agent_skills WHERE ws = ?1 ORDER BY agent")
        .and_then(|mut st| {
            st.query_map([ws], |r| {
                Ok((AgentId::from(r.get::<_, String>(0)?), column_json(r, 1)?))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(err)?;

    let outbox = tx
        .prepare(&format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE ws = ?1 ORDER BY id"
        ))
        .and_then(|mut st| {
            st.query_map([ws], |r| outbox_record(r))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(err)?;

    Ok(Snapshot {
        customers,
        events,
        outbox,
        agents,
        agent_limits,
        agent_skills,
    })
}

/// The columns of a KPI event, in the order [`event_record`] reads them.
pub(super) const EVENT_COLUMNS: &str =
    "at, agent, channel, kind, reason, waited_ms, to_accept_ms, within_sla, queue";

/// A row of [`EVENT_COLUMNS`].
pub(super) fn event_record(r: &impl Cells) -> rusqlite::Result<Event> {
    Ok(Event {
        at: column_time(r, 0)?,
        agent: AgentId::from(r.cell::<String>(1)?),
        channel: column_stored(r, 2)?,
        queue: r.cell::<Option<String>>(8)?.map(QueueId::from),
        kind: column_event_kind(r, 3)?,
    })
}

/// The columns of an outbox entry, in the order [`outbox_record`] reads them.
pub(super) const OUTBOX_COLUMNS: &str =
    "id, customer, chat, seq, message, idempotency_key, attempts, next_at, last_error, failed";

/// A row of [`OUTBOX_COLUMNS`].
pub(super) fn outbox_record(r: &impl Cells) -> rusqlite::Result<OutboxRecord> {
    Ok(OutboxRecord {
        id: r.cell::<i64>(0)? as u64,
        customer: CustomerId::from(r.cell::<String>(1)?),
        chat: ChatId::from(r.cell::<String>(2)?),
        seq: r.cell::<Option<i64>>(3)?.map(|s| s as u64),
        message: r.cell(4)?,
        idempotency_key: r.cell(5)?,
        attempts: r.cell(6)?,
        next_at: column_time_opt(r, 7)?,
        last_error: r.cell(8)?,
        failed: r.cell(9)?,
    })
}
