//! The archive: listing and searching it (R16), which connections show which entries, and
//! telling them when an entry changes (R04).
//!
//! With a store the archive is answered from its index, page by page; a chat still in memory
//! is shown as it is now (the store may be a group commit behind), one that is not is shown
//! from its row. Without a store every customer in memory is scanned.

use chrono::{DateTime, SecondsFormat};

use super::{views, Engine};
use crate::clock::Timestamp;
use crate::core::{Chat, ChatState, CustomerFile};
use crate::ids::{AgentId, ChatId};
use crate::protocol::{ArchiveEntry, Push, Scope};
use crate::refusal::Refusal;
use crate::store::{ArchiveCursor, ArchiveQuery, ArchiveRow, StoreError};

/// Entries per page when the request does not say.
const DEFAULT_PAGE: u32 = 50;

/// One archive listing, as asked on the wire.
pub(super) struct ArchiveAsk<'a> {
    pub(super) scope: Scope,
    pub(super) state: Option<ChatState>,
    pub(super) query: Option<&'a str>,
    pub(super) before: Option<&'a str>,
    pub(super) limit: Option<u32>,
}

impl<'a> ArchiveAsk<'a> {
    /// Whether `chat`, as memory holds it, belongs in this listing for `me`: its scope (mine:
    /// owned now or last) and its state. The store's query applies the same to its rows.
    fn admits(&self, chat: &Chat, me: &AgentId) -> bool {
        (self.scope == Scope::All || chat.stage.owner() == Some(me))
            && self.state.is_none_or(|s| s == chat.state())
    }

    /// A listing as either socket's `list_archive` asks for it.
    pub(super) fn new(
        scope: Scope,
        state: Option<ChatState>,
        query: &'a Option<String>,
        before: &'a Option<String>,
        limit: Option<u32>,
    ) -> Self {
        Self {
            scope,
            state,
            query: query.as_deref(),
            before: before.as_deref(),
            limit,
        }
    }
}

impl Engine {
    /// One page of archive entries, newest first, and the cursor of the next page (R16).
    pub(super) fn archive(
        &self,
        me: &AgentId,
        ask: ArchiveAsk<'_>,
        now: Timestamp,
    ) -> Result<(Vec<ArchiveEntry>, Option<String>), Refusal> {
        let before = ask.before.map(decode_cursor).transpose()?;
        let limit = ask.limit.unwrap_or(DEFAULT_PAGE).min(crate::store::MAX_PAGE);
        // Blank text searches for nothing in particular: every entry.
        let query = ask.query.map(str::trim).filter(|q| !q.is_empty());
        let (entries, next) = match &self.store {
            Some(store) => {
                let page = store
                    .search_archive(&ArchiveQuery {
                        agent: me.clone(),
                        scope: match ask.scope {
                            Scope::Mine => crate::store::Scope::Mine,
                            Scope::All => crate::store::Scope::All,
                        },
                        state: ask.state,
                        text: query.map(str::to_owned),
                        before,
                        limit,
                    })
                    .map_err(unreadable)?;
                let entries = page
                    .rows
                    .iter()
                    .filter_map(|row| self.entry_of_row(me, &ask, row, now))
                    .collect();
                (entries, page.next)
            }
            None => self.archive_in_memory(me, &ask, query, before.as_ref(), limit, now),
        };
        Ok((entries, next.as_ref().map(encode_cursor)))
    }

    /// The entry of a row the store found: from the live chat if it is in memory (where a
    /// change may not have reached the store yet, so it is checked against the filters again),
    /// else from the row. A chat not in memory is closed and outside its window: the engine
    /// keeps every other chat in memory, so it cannot be reopened now. Listing does not read
    /// chats back into memory (a page of the archive would stay there): so a template push
    /// such a chat still allows shows as not allowed until the chat is opened (R07).
    fn entry_of_row(
        &self,
        me: &AgentId,
        ask: &ArchiveAsk<'_>,
        row: &ArchiveRow,
        now: Timestamp,
    ) -> Option<ArchiveEntry> {
        if let Some(file) = self.file_in_memory(&row.chat) {
            let file = file.lock();
            if let Some(chat) = file.chat(&row.chat) {
                if !ask.admits(chat, me) {
                    return None;
                }
                let policy = self.config.policies.of(chat.channel);
                return Some(views::archive_entry(&file, chat, policy, now));
            }
        }
        Some(views::stored_archive_entry(
            row,
            self.config.policies.of(row.channel),
        ))
    }

    /// [`Engine::archive`] without a store: scans every customer.
    fn archive_in_memory(
        &self,
        me: &AgentId,
        ask: &ArchiveAsk<'_>,
        query: Option<&str>,
        before: Option<&ArchiveCursor>,
        limit: u32,
        now: Timestamp,
    ) -> (Vec<ArchiveEntry>, Option<ArchiveCursor>) {
        let files = self.customers.files();
        let mut entries: Vec<(Timestamp, ArchiveEntry)> = Vec::new();
        for file in files {
            let file = file.lock();
            if query.is_some_and(|q| !views::matches_query(&file, q)) {
                continue;
            }
            for chat in &file.chats {
                if !ask.admits(chat, me) {
                    continue;
                }
                let newest = chat.stage.closed().map_or(chat.created_at, |(at, _)| at);
                // The store's order and cursor: (newest, id) descending, strictly after it.
                if before.is_some_and(|c| (newest, &chat.id) >= (c.newest_at, &c.chat)) {
                    continue;
                }
                let policy = self.config.policies.of(chat.channel);
                entries.push((newest, views::archive_entry(&file, chat, policy, now)));
            }
        }
        entries.sort_by(|a, b| (b.0, &b.1.chat_id).cmp(&(a.0, &a.1.chat_id)));
        let more = entries.len() > limit as usize;
        entries.truncate(limit as usize);
        let next = more
            .then(|| entries.last())
            .flatten()
            .map(|(newest, e)| ArchiveCursor {
                newest_at: *newest,
                chat: e.chat_id.clone(),
            });
        (entries.into_iter().map(|(_, e)| e).collect(), next)
    }

    /// Tells every agent watching one of this customer's entries how it looks now (R04).
    pub(super) fn archive_changed(&self, file: &CustomerFile, now: Timestamp) {
        for chat in &file.chats {
            let agents = self.watchers.agents_watching(&chat.id);
            if agents.is_empty() {
                continue;
            }
            let entry = views::archive_entry(file, chat, self.config.policies.of(chat.channel), now);
            for agent in agents {
                self.fanout
                    .push(&agent, Push::ArchiveEntryChanged { entry: entry.clone() });
            }
        }
    }
}

/// The wire form of a cursor: `<newest_at, RFC 3339 to the nanosecond>/<chat id>`.
fn encode_cursor(cursor: &ArchiveCursor) -> String {
    format!(
        "{}/{}",
        cursor.newest_at.to_rfc3339_opts(SecondsFormat::Nanos, true),
        cursor.chat
    )
}

/// Reads a cursor made by [`encode_cursor`]; a malformed one is a bad request naming why.
fn decode_cursor(text: &str) -> Result<ArchiveCursor, Refusal> {
    let bad = |why: &str| {
        Refusal::BadRequest(format!(
            "archive cursor `{text}` is not one this engine made: {why}"
        ))
    };
    let (at, chat) = text
        .split_once('/')
        .ok_or_else(|| bad("expected `<time>/<chat id>`"))?;
    let newest_at = DateTime::parse_from_rfc3339(at)
        .map_err(|e| bad(&format!("its time does not read: {e}")))?
        .with_timezone(&chrono::Utc);
    if chat.is_empty() {
        return Err(bad("it names no chat"));
    }
    Ok(ArchiveCursor {
        newest_at,
        chat: ChatId::from(chat.to_owned()),
    })
}

/// A store read that failed: the request is refused, and nothing changed.
pub(super) fn unreadable(e: StoreError) -> Refusal {
    tracing::error!(error = %e, "a read of the store failed");
    Refusal::StorageUnavailable(format!(
        "could not be read from the database: {}",
        e.client_detail()
    ))
}

#[cfg(test)]
mod cursor_tests {
    use super::*;

    #[test]
    fn r16_a_cursor_reads_back_as_itself() {
        let cursor = ArchiveCursor {
            newest_at: DateTime::from_timestamp_nanos(1_741_000_000_123_456_789),
            chat: ChatId::from("ch1f/x".to_owned()),
        };
        assert_eq!(decode_cursor(&encode_cursor(&cursor)), Ok(cursor));
    }

    #[test]
    fn r16_a_malformed_cursor_is_a_bad_request_naming_why() {
        for (text, why) in [
            ("nonsense", "expected `<time>/<chat id>`"),
            ("yesterday/ch1", "its time does not read"),
            ("2025-03-03T09:00:00Z/", "it names no chat"),
        ] {
            let Err(Refusal::BadRequest(message)) = decode_cursor(text) else {
                panic!("{text} was read as a cursor");
            };
            assert!(message.contains(why), "{text}: {message}");
        }
    }
}
