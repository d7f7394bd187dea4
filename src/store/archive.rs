//! Archive search (R16): mine or all, by state, by customer name, phone or email, newest first,
//! paged by a keyset cursor.
//!
//! Every filter maps onto an index that ends in `(newest_at, id)`, so a page is a backward
//! range scan from the cursor that stops after `limit + 1` rows, however deep the page: no
//! OFFSET, and no gaps or repeats when chats are added between pages.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection};

use super::codec::{
    column_closed, column_id_opt, column_profile, column_stored, column_time, column_time_opt, nanos, Cells,
    Stored,
};
use super::writer::phone_digits;
use super::{StoreError, WsKey};
use crate::clock::Timestamp;
use crate::core::channel::Channel;
use crate::core::chat::{ChatState, CloseReason};
use crate::core::customer::Profile;
use crate::ids::{AgentId, ChatId, CustomerId};

/// The most rows one page returns, whatever the caller asks.
pub const MAX_PAGE: u32 = 200;

/// Whose chats a search lists.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scope {
    /// The asking agent's own (its current or last owner).
    Mine,
    /// Everyone's.
    All,
}

/// Where a page ends: the next page starts strictly after (older than) it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ArchiveCursor {
    /// The last row's `newest_at`.
    pub newest_at: Timestamp,
    /// The last row's chat, which breaks ties between chats of the same instant.
    pub chat: ChatId,
}

/// An archive search.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ArchiveQuery {
    /// Who asks; "mine" means chats it owns or owned last.
    pub agent: AgentId,
    /// Mine or all.
    pub scope: Scope,
    /// Only chats in this state.
    pub state: Option<ChatState>,
    /// Name, email or phone: every word must match the start of a word of the customer's
    /// name or email (`ana` finds "Ana Lima" and "ana@x.io"); text that looks like a phone
    /// number matches the start of the phone's digits (`+49 15` finds "+4915112345").
    pub text: Option<String>,
    /// The previous page's [`ArchivePage::next`], or `None` for the first page.
    pub before: Option<ArchiveCursor>,
    /// Rows per page (at most [`MAX_PAGE`]).
    pub limit: u32,
}

/// One archive entry. The window (`window_expires_at`) and whether it can be reopened now
/// depend on the channel policy and the live state, which the engine holds: it derives them
/// from `channel` and `last_customer_message_at`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ArchiveRow {
    /// The chat.
    pub chat: ChatId,
    /// Its customer.
    pub customer: CustomerId,
    /// The customer's name, email and phone (empty if the customer is unknown).
    pub profile: Profile,
    /// The chat's channel.
    pub channel: Channel,
    /// Its state.
    pub state: ChatState,
    /// Its (last) owner.
    pub owner: Option<AgentId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// The customer's last message.
    pub last_customer_message_at: Option<Timestamp>,
    /// When and why it was closed last.
    pub closed: Option<(Timestamp, CloseReason)>,
    /// What the archive is ordered by: `closed_at`, else `created_at`.
    pub newest_at: Timestamp,
}

impl ArchiveRow {
    /// The cursor that continues after this row.
    pub fn cursor(&self) -> ArchiveCursor {
        ArchiveCursor {
            newest_at: self.newest_at,
            chat: self.chat.clone(),
        }
    }
}

/// One page of results, newest first.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ArchivePage {
    /// The rows.
    pub rows: Vec<ArchiveRow>,
    /// Where the next page starts, or `None` if this was the last.
    pub next: Option<ArchiveCursor>,
}

/// Above this many matching customers a text search is "broad": walking the archive newest
/// first meets a match every few hundred chats, which beats collecting and sorting every chat
/// of every match. At or below it, collecting the matches' chats is cheaper. On the
/// 1,000,000-chat bench (`benches/archive_search.rs`) collecting costs about 4 µs per matching
/// customer and the walk 10–30 ms whatever the count, so they cross near 5,000.
const BROAD_MATCHES: i64 = 5_000;

/// The columns of an [`ArchiveRow`], in the order [`archive_row`] reads them.
pub(super) const COLUMNS: &str =
    "ch.id, ch.customer, cu.name, cu.email, cu.phone, ch.channel, ch.state, ch.owner,
    ch.created_at, ch.last_customer_message_at, ch.closed_at, ch.close_reason, ch.newest_at";

/// The customers that the full-text expression (the first `?`, scoped to the workspace by
/// [`WsKey::search_filter`]) matches, by `customers.key`.
const MATCHING: &str = "(SELECT rowid FROM customer_search WHERE customer_search MATCH ?)";

/// Runs `q` over workspace `ws`'s archive on a read connection.
pub(crate) fn search(
    conn: &Connection,
    path: &Path,
    ws: WsKey,
    q: &ArchiveQuery,
) -> Result<ArchivePage, StoreError> {
    search_planned(conn, path, ws, q, BROAD_MATCHES)
}

/// [`search`], with text matching more than `broad_matches` customers taken as broad (tests
/// lower it to run both plans on a small archive).
pub(crate) fn search_planned(
    conn: &Connection,
    path: &Path,
    ws: WsKey,
    q: &ArchiveQuery,
    broad_matches: i64,
) -> Result<ArchivePage, StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let limit = q.limit.min(MAX_PAGE);

    // The text's expression comes first in every query that has one, the page size last.
    let mut args: Vec<Value> = Vec::new();
    let expr = match &q.text {
        None => None,
        // Only this workspace's customers match, in the count that plans the search too.
        Some(text) => match match_expression(text) {
            Some(expr) => Some(format!("{} AND ({expr})", ws.search_filter())),
            // Nothing searchable in the text (only punctuation): nothing matches.
            None => return Ok(ArchivePage::default()),
        },
    };
    if let Some(expr) = &expr {
        args.push(Value::Text(expr.clone()));
    }
    // Every statement below has `ch.ws = ?` (or `cu.ws = ?`) right after the match, if any.
    args.push(Value::Integer(ws.get()));
    let mut filter = String::new();
    if q.scope == Scope::Mine {
        filter.push_str(" AND ch.owner = ?");
        args.push(Value::Text(q.agent.as_str().to_owned()));
    }
    if let Some(state) = q.state {
        filter.push_str(" AND ch.state = ?");
        args.push(Value::Text(state.stored().to_owned()));
    }
    if let Some(cursor) = &q.before {
        filter.push_str(" AND (ch.newest_at, ch.id) < (?, ?)");
        args.push(Value::Integer(nanos(&cursor.newest_at)?));
        args.push(Value::Text(cursor.chat.as_str().to_owned()));
    }
    // One more than asked tells whether there is a next page.
    args.push(Value::Integer(i64::from(limit) + 1));

    // SQLite plans a statement once, whatever the text will match, so the shape is chosen
    // here from how many customers match (counted up to the threshold only).
    let sql = match &expr {
        // The index that serves the filters (by newest, owner or state) is walked newest
        // first from the cursor and stops at the end of the page.
        None => format!(
            "SELECT {COLUMNS} FROM chats ch LEFT JOIN customers cu ON cu.ws = ch.ws AND cu.id = ch.customer
             WHERE ch.ws = ?{filter} ORDER BY ch.newest_at DESC, ch.id DESC LIMIT ?"
        ),
        Some(expr) => {
            let matches: i64 = conn
                .prepare_cached("SELECT count(*) FROM (SELECT rowid FROM customer_search WHERE customer_search MATCH ?1 LIMIT ?2)")
                .and_then(|mut st| st.query_row(params![expr, broad_matches.saturating_add(1)], |r| r.get(0)))
                .map_err(err)?;
            if matches == 0 {
                return Ok(ArchivePage::default());
            }
            if matches > broad_matches {
                // Broad: the walk above, keeping the chats of matching customers. The match
                // is a correlated subquery on purpose: as a join, SQLite would build a Bloom
                // filter over every customer first.
                format!(
                    "SELECT {COLUMNS} FROM chats ch LEFT JOIN customers cu ON cu.ws = ch.ws AND cu.id = ch.customer
                     WHERE (SELECT k.key FROM customers k WHERE k.ws = ch.ws AND k.id = ch.customer) IN {MATCHING}
                       AND ch.ws = ?{filter}
                     ORDER BY ch.newest_at DESC, ch.id DESC LIMIT ?"
                )
            } else {
                // Narrow: every chat of every matching customer, filtered and sorted inside
                // the covering index `chats_by_customer`; only the page's rows are then read.
                // The match already keeps to the workspace; `+` keeps its check from luring the
                // planner into walking the workspace's customers instead of the matches' keys.
                format!(
                    "WITH page AS (
                        SELECT ch.rowid AS row, ch.newest_at AS newest_at, ch.id AS id
                        FROM customers cu CROSS JOIN chats ch INDEXED BY chats_by_customer
                            ON ch.ws = cu.ws AND ch.customer = cu.id
                        WHERE cu.key IN {MATCHING} AND +cu.ws = ?{filter}
                        ORDER BY ch.newest_at DESC, ch.id DESC LIMIT ?)
                     SELECT {COLUMNS}
                     FROM page CROSS JOIN chats ch ON ch.rowid = page.row
                        LEFT JOIN customers cu ON cu.ws = ch.ws AND cu.id = ch.customer
                     ORDER BY page.newest_at DESC, page.id DESC"
                )
            }
        }
    };

    let mut rows = conn
        .prepare_cached(&sql)
        .and_then(|mut st| {
            st.query_map(params_from_iter(args), |r| archive_row(r))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(err)?;
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(ArchiveRow::cursor)
    } else {
        None
    };
    Ok(ArchivePage { rows, next })
}

pub(super) fn archive_row(r: &impl Cells) -> rusqlite::Result<ArchiveRow> {
    Ok(ArchiveRow {
        chat: ChatId::from(r.cell::<String>(0)?),
        customer: CustomerId::from(r.cell::<String>(1)?),
        profile: column_profile(r, 2)?,
        channel: column_stored(r, 5)?,
        state: column_stored(r, 6)?,
        owner: column_id_opt(r, 7)?,
        created_at: column_time(r, 8)?,
        last_customer_message_at: column_time_opt(r, 9)?,
        closed: column_closed(r, 10)?,
        newest_at: column_time(r, 12)?,
    })
}

/// Whether `text` (trimmed) is searched as a phone number: digits, and only phone punctuation
/// besides.
pub(super) fn phone_like(text: &str) -> bool {
    text.chars().any(|c| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_digit() || " +-()./".contains(c))
}

/// The FTS5 expression for what a person typed, or `None` if it holds nothing to search for.
///
/// Each word becomes a quoted prefix phrase (so FTS5 syntax in the text is never interpreted,
/// and `ana@x.io` is the phrase `ana x io*` over the email's tokens); all words must match.
/// Text made only of digits and phone punctuation searches the phone's digits by prefix.
pub(crate) fn match_expression(text: &str) -> Option<String> {
    let text = text.trim();
    if phone_like(text) {
        return Some(format!("phone : \"{}\"*", phone_digits(text)));
    }
    let phrases: Vec<String> = text
        .split_whitespace()
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .map(|word| format!("\"{}\"*", word.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| format!("{{name email}} : ({})", phrases.join(" ")))
}
