//! Archive search (R16) on PostgreSQL: the same filters, order and keyset cursor as SQLite's
//! (`store/archive.rs`), with the customer's text matched through the `search` tsvector (GIN)
//! and the phone through `phone_digits` by prefix.
//!
//! PostgreSQL plans each statement with its arguments, so there is one statement shape and no
//! broad/narrow choice made here.

use postgres::types::ToSql;
use unicode_normalization::UnicodeNormalization;

use super::super::archive::{archive_row, phone_like, ArchivePage, ArchiveQuery, Scope, COLUMNS, MAX_PAGE};
use super::super::codec::{nanos, Stored};
use super::super::writer::phone_digits;
use super::super::{StoreError, WsKey};
use super::row::PgRow;
use super::PgReads;
use crate::core::chat::ChatState;

/// The words of `text` as the search index holds them: runs of letters and digits, lower case,
/// Latin letters without their diacritics. FTS5's `unicode61 remove_diacritics 2` tokenizer
/// splits and folds the same way, so `ana@x.io` is `ana x io`, and `Zoë Müller` is
/// `zoe muller`: a customer is found with or without the marks, on either backend. The text
/// is folded before it is split, so that a mark typed apart from its letter (`u` then U+0308)
/// neither splits the word nor is left as a word of its own.
pub(super) fn search_words(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What the archive search finds a customer by: the words of their name and email, as the
/// `search` column's text (`to_tsvector('simple', …)` of it).
pub(super) fn search_text(name: Option<&str>, email: Option<&str>) -> String {
    [name, email]
        .into_iter()
        .flatten()
        .flat_map(search_words)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` in lower case, with the diacritics of Latin letters dropped: after canonical
/// decomposition (`é` is `e` and U+0301), a mark of the Combining Diacritical Marks
/// (U+0300–U+036F) that follows a Latin letter goes, and the rest is composed again. As with
/// FTS5, only Latin script is folded: Cyrillic `й` stays apart from `и`, Greek keeps its
/// accents, letters with no decomposition (`ß`, `ø`) stay, and so do the marks other scripts
/// spell with.
fn fold(text: &str) -> String {
    let mut after_latin = false;
    text.to_lowercase()
        .nfd()
        .filter(|&c| {
            if ('\u{300}'..='\u{36f}').contains(&c) {
                !after_latin
            } else {
                after_latin = c.is_ascii_alphabetic();
                true
            }
        })
        .nfc()
        .collect()
}

/// What a person typed, as a customer filter.
enum Match {
    /// Phone digits, by prefix: the `LIKE` pattern.
    Phone(String),
    /// Name and email words: the `tsquery` text. Every typed word is a phrase of its words,
    /// the last by prefix, and every phrase must match; the words hold only letters and digits,
    /// so nothing typed is read as query syntax.
    Words(String),
}

fn match_of(text: &str) -> Option<Match> {
    let text = text.trim();
    if phone_like(text) {
        return Some(Match::Phone(format!("{}%", phone_digits(text))));
    }
    let phrases: Vec<String> = text
        .split_whitespace()
        .filter_map(|typed| {
            let words = search_words(typed);
            (!words.is_empty()).then(|| format!("({}:*)", words.join(" <-> ")))
        })
        .collect();
    (!phrases.is_empty()).then(|| Match::Words(phrases.join(" & ")))
}

impl PgReads {
    /// [`WorkspaceStore::search_archive`](super::super::WorkspaceStore::search_archive).
    pub(crate) fn search_archive(&self, ws: WsKey, q: &ArchiveQuery) -> Result<ArchivePage, StoreError> {
        let limit = q.limit.min(MAX_PAGE);
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(ws.get())];
        let mut filter = String::new();
        let arg = |value: Box<dyn ToSql + Sync + Send>, args: &mut Vec<_>| {
            args.push(value);
            format!("${}", args.len())
        };
        if q.scope == Scope::Mine {
            filter += &format!(
                " AND ch.owner = {}",
                arg(Box::new(q.agent.as_str().to_owned()), &mut args)
            );
        }
        if let Some(state) = q.state {
            filter += &format!(" AND ch.state = {}", arg(Box::new(state_name(state)), &mut args));
        }
        if let Some(cursor) = &q.before {
            let at = arg(Box::new(nanos(&cursor.newest_at)?), &mut args);
            let id = arg(Box::new(cursor.chat.as_str().to_owned()), &mut args);
            filter += &format!(" AND (ch.newest_at, ch.id) < ({at}, {id})");
        }
        match q.text.as_deref().map(match_of) {
            None => {}
            // Nothing searchable in the text (only punctuation): nothing matches.
            Some(None) => return Ok(ArchivePage::default()),
            Some(Some(Match::Phone(pattern))) => {
                filter += &format!(
                    " AND ch.customer IN (SELECT id FROM customers WHERE ws = $1 AND phone_digits LIKE {})",
                    arg(Box::new(pattern), &mut args)
                );
            }
            Some(Some(Match::Words(query))) => {
                filter += &format!(
                    " AND ch.customer IN (SELECT id FROM customers WHERE ws = $1
                                            AND search @@ to_tsquery('simple', {}))",
                    arg(Box::new(query), &mut args)
                );
            }
        }
        // One more than asked tells whether there is a next page.
        let page = arg(Box::new(i64::from(limit) + 1), &mut args);
        let sql = format!(
            "SELECT {COLUMNS} FROM chats ch LEFT JOIN customers cu ON cu.ws = ch.ws AND cu.id = ch.customer
             WHERE ch.ws = $1{filter} ORDER BY ch.newest_at DESC, ch.id DESC LIMIT {page}"
        );
        let mut rows = self.with(|client, db| {
            let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect();
            let rows = client.query(&sql, &params).map_err(|e| db.error(e))?;
            PgRow::decode_all(&rows, db, archive_row)
        })?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|row| row.cursor())
        } else {
            None
        };
        Ok(ArchivePage { rows, next })
    }
}

fn state_name(state: ChatState) -> String {
    state.stored().to_owned()
}
