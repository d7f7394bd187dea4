//! A chat's message history, newest first, page by page.

use std::path::Path;

use rusqlite::{params, Connection};

use super::codec::{column_author, column_enum, column_time};
use super::StoreError;
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

/// Up to `limit` messages of `chat` older than `before_seq` (or the newest), newest first.
pub(crate) fn page(
    conn: &Connection,
    path: &Path,
    chat: &ChatId,
    before_seq: Option<u64>,
    limit: u32,
) -> Result<HistoryPage, StoreError> {
    let limit = limit.min(MAX_HISTORY_PAGE);
    let before = before_seq.map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX));
    let mut messages = conn
        .prepare_cached(
            "SELECT seq, at, author, agent, kind, text FROM messages
             WHERE chat = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        )
        .and_then(|mut st| {
            st.query_map(params![chat.as_str(), before, i64::from(limit) + 1], |r| {
                Ok(HistoryEntry {
                    seq: r.get(0)?,
                    message: Message {
                        at: column_time(r, 1)?,
                        author: column_author(r, 2)?,
                        kind: column_enum(r, 4)?,
                        text: r.get(5)?,
                    },
                })
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| StoreError::sqlite(path, e))?;
    let next_before = if messages.len() > limit as usize {
        messages.truncate(limit as usize);
        messages.last().map(|m| m.seq)
    } else {
        None
    };
    Ok(HistoryPage {
        messages,
        next_before,
    })
}
