//! A chat's message history, newest first, page by page; and the chat itself, for a history
//! read of a chat the engine no longer keeps in memory.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::codec::{
    chat_record, column_author, column_delivery, column_payload, column_stored, column_time, customer_record,
    Cells, CHAT_COLUMNS, CUSTOMER_COLUMNS,
};
use super::records::{ChatRecord, CustomerRecord};
use super::{StoreError, WsKey};
use crate::core::chat::Message;
use crate::ids::ChatId;

/// The most messages one page returns, whatever the caller asks.
pub const MAX_HISTORY_PAGE: u32 = 500;

/// A message with its position in the chat.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HistoryEntry {
    /// Its position (0-based) in the chat's history.
    pub seq: u64,
    /// The message.
    pub message: Message,
}

/// One page of a chat's history.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct HistoryPage {
    /// Messages, newest first.
    pub messages: Vec<HistoryEntry>,
    /// Pass as `before_seq` for the next (older) page; `None` if this was the oldest.
    pub next_before: Option<u64>,
}

impl HistoryPage {
    /// The page of `read`, the newest messages up to `limit` and one more if there is one
    /// (each backend reads `limit + 1`), which only says that an older page exists.
    pub(crate) fn of(mut read: Vec<HistoryEntry>, limit: u32) -> Self {
        let next_before = if read.len() > limit as usize {
            read.truncate(limit as usize);
            read.last().map(|m| m.seq)
        } else {
            None
        };
        Self {
            messages: read,
            next_before,
        }
    }
}

/// Up to `limit` messages of `chat` older than `before_seq` (or the newest), newest first.
pub(crate) fn page(
    conn: &Connection,
    path: &Path,
    ws: WsKey,
    chat: &ChatId,
    before_seq: Option<u64>,
    limit: u32,
) -> Result<HistoryPage, StoreError> {
    let limit = limit.min(MAX_HISTORY_PAGE);
    let before = before_seq.map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX));
    let messages = conn
        .prepare_cached(
            "SELECT seq, at, author, agent, kind, text, payload, provider_id, delivery, delivery_reason FROM messages
             WHERE ws = ?1 AND chat = ?2 AND seq < ?3 ORDER BY seq DESC LIMIT ?4",
        )
        .and_then(|mut st| {
            st.query_map(
                params![ws, chat.as_str(), before, i64::from(limit) + 1],
                |r| history_entry(r),
            )?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| StoreError::sqlite(path, e))?;
    Ok(HistoryPage::of(messages, limit))
}

/// Every message of `chat`, oldest first: what a chat still in memory after a restart needs,
/// since new messages are numbered after it. A gap in the numbers is damage.
pub(crate) fn all(
    conn: &Connection,
    path: &Path,
    ws: WsKey,
    chat: &ChatId,
) -> Result<Vec<Message>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT seq, at, author, agent, kind, text, payload, provider_id, delivery, delivery_reason FROM messages WHERE ws = ?1 AND chat = ?2 ORDER BY seq",
        )
        .and_then(|mut st| {
            st.query_map(params![ws, chat.as_str()], |r| history_entry(r))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| StoreError::sqlite(path, e))?;
    in_order(chat, rows, || path.to_path_buf())
}

/// The messages of `chat`'s history `rows`, read in `seq` order from 0: corrupt if one is
/// missing or out of place (`file` names where it was read, on either backend).
pub(crate) fn in_order(
    chat: &ChatId,
    rows: Vec<HistoryEntry>,
    file: impl Fn() -> std::path::PathBuf,
) -> Result<Vec<Message>, StoreError> {
    rows.into_iter()
        .enumerate()
        .map(|(i, HistoryEntry { seq, message })| {
            if seq == i as u64 {
                Ok(message)
            } else {
                Err(StoreError::Corrupt {
                    path: file(),
                    what: format!("chat {chat} has message {seq} where {i} should be"),
                })
            }
        })
        .collect()
}

/// [`WorkspaceStore::chat`](super::WorkspaceStore::chat), in one read transaction so the chat and its customer are of one commit.
pub(crate) fn chat(
    conn: &mut Connection,
    path: &Path,
    ws: WsKey,
    id: &ChatId,
) -> Result<Option<(ChatRecord, Option<CustomerRecord>)>, StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let tx = conn.transaction().map_err(err)?;
    let chat = tx
        .prepare_cached(&format!(
            "SELECT {CHAT_COLUMNS} FROM chats WHERE ws = ?1 AND id = ?2"
        ))
        .and_then(|mut st| {
            st.query_row(params![ws, id.as_str()], |r| chat_record(r))
                .optional()
        })
        .map_err(err)?;
    let Some(chat) = chat else {
        return Ok(None);
    };
    let customer = tx
        .prepare_cached(&format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE ws = ?1 AND id = ?2"
        ))
        .and_then(|mut st| {
            st.query_row(params![ws, chat.customer.as_str()], |r| customer_record(r))
                .optional()
        })
        .map_err(err)?;
    Ok(Some((chat, customer)))
}

/// A row of `SELECT seq, at, author, agent, kind, text, payload, provider_id, delivery,
/// delivery_reason FROM messages`.
pub(super) fn history_entry(r: &impl Cells) -> rusqlite::Result<HistoryEntry> {
    Ok(HistoryEntry {
        seq: r.cell(0)?,
        message: Message {
            at: column_time(r, 1)?,
            author: column_author(r, 2)?,
            kind: column_stored(r, 4)?,
            text: r.cell(5)?,
            payload: column_payload(r, 6)?.map(Box::new),
            provider_id: r.cell(7)?,
            delivery: column_delivery(r, 8)?,
        },
    })
}
