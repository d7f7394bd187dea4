//! Reading everything back on start.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::codec::{
    column_closed, column_enum, column_event_kind, column_id_opt, column_json, column_profile, column_time,
    column_time_opt,
};
use super::records::{ChatRecord, CustomerRecord, Snapshot};
use super::StoreError;
use crate::core::analytics::Event;
use crate::ids::{AgentId, ChatId, CustomerId};

/// Reads the whole store in one read transaction, so customers, chats and events are of the
/// same commit.
pub(crate) fn load(conn: &mut Connection, path: &Path) -> Result<Snapshot, StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(err)?;

    let customers: Vec<CustomerRecord> = tx
        .prepare(
            "SELECT id, name, email, phone, identities, opted_out, pushed, assigned_agent
             FROM customers ORDER BY key",
        )
        .and_then(|mut st| {
            st.query_map([], |r| {
                Ok(CustomerRecord {
                    id: CustomerId::from(r.get::<_, String>(0)?),
                    profile: column_profile(r, 1)?,
                    identities: column_json(r, 4)?,
                    opted_out: column_json(r, 5)?,
                    pushed: column_json(r, 6)?,
                    assigned_agent: column_id_opt(r, 7)?,
                })
            })?
            .collect()
        })
        .map_err(err)?;

    let mut chats_of: HashMap<CustomerId, Vec<crate::core::chat::Chat>> = HashMap::new();
    tx.prepare(
        "SELECT id, customer, channel, state, owner, reopened_by, reopened_at, snooze, created_at,
                queued_at, last_customer_message_at, closed_at, close_reason
         FROM chats ORDER BY customer, created_at, id",
    )
    .and_then(|mut st| {
        for chat in st.query_map([], |r| {
            Ok(ChatRecord {
                id: ChatId::from(r.get::<_, String>(0)?),
                customer: CustomerId::from(r.get::<_, String>(1)?),
                channel: column_enum(r, 2)?,
                state: column_enum(r, 3)?,
                owner: column_id_opt(r, 4)?,
                reopened_by: column_id_opt(r, 5)?,
                reopened_at: column_time_opt(r, 6)?,
                snooze: column_json(r, 7)?,
                created_at: column_time(r, 8)?,
                queued_at: column_time_opt(r, 9)?,
                last_customer_message_at: column_time_opt(r, 10)?,
                closed: column_closed(r, 11)?,
            })
        })? {
            let chat = chat?;
            chats_of
                .entry(chat.customer.clone())
                .or_default()
                .push(chat.into_chat());
        }
        Ok(())
    })
    .map_err(err)?;

    let customers: Vec<_> = customers
        .into_iter()
        .map(|c| {
            let chats = chats_of.remove(&c.id).unwrap_or_default();
            c.into_file(chats)
        })
        .collect();
    if let Some((customer, chats)) = chats_of.into_iter().next() {
        // The engine writes a customer no later than its chats, and groups are atomic, so
        // this is damage, not a crash: refuse rather than drop the chats.
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            what: format!("{} chat(s) of unknown customer {customer}", chats.len()),
        });
    }

    let events = tx
        .prepare(
            "SELECT at, agent, channel, kind, reason, waited_ms, to_accept_ms
             FROM analytics_events ORDER BY id",
        )
        .and_then(|mut st| {
            st.query_map([], |r| {
                Ok(Event {
                    at: column_time(r, 0)?,
                    agent: AgentId::from(r.get::<_, String>(1)?),
                    channel: column_enum(r, 2)?,
                    kind: column_event_kind(r, 3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(err)?;

    let agent_limits = tx
        .prepare("SELECT agent, max_active FROM agent_limits ORDER BY agent")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((AgentId::from(r.get::<_, String>(0)?), r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(err)?;

    Ok(Snapshot {
        customers,
        events,
        agent_limits,
    })
}
