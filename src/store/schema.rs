//! The schema and its migrations, recorded in `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`. Versions are only ever
//! appended: a released migration is never edited, so every database walks the same steps.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Every migration, oldest first.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10];

/// The newest schema version this build knows.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Version 1.
///
/// - Timestamps are INTEGER nanoseconds since the epoch: exact round trips of the engine's
///   clock, and cheap to compare and index.
/// - Ids are the engine's text ids. There are no foreign keys: the engine is the authority on
///   consistency and may write a chat in the same group as (or before) its customer.
/// - `customers.key` is the rowid that the full-text index `customer_search` shares, so a match
///   leads straight to a customer; the engine's text id stays the lookup key.
/// - Lists that are only ever read back whole (identities, opt-outs, pushes) are JSON text.
/// - `chats.newest_at` (closed_at, else created_at) orders the archive; each index ends in
///   `(newest_at, id)` so a newest-first page is a backward index range that starts at the
///   keyset cursor, for "all", "mine" (owner) and a state filter alike. `chats_by_customer`
///   also covers owner and state, so a search for a few customers filters and sorts their
///   chats without reading them (see `archive.rs`).
/// - `messages` is clustered by (chat, seq) (WITHOUT ROWID): a history page is one range read,
///   and a replayed append hits the primary key instead of adding a duplicate.
/// - `analytics_events` is append-only, by time.
const V1: &str = r#"
CREATE TABLE customers (
    key            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    name           TEXT,
    email          TEXT,
    phone          TEXT,
    identities     TEXT NOT NULL,
    opted_out      TEXT NOT NULL,
    pushed         TEXT NOT NULL,
    assigned_agent TEXT
);

-- Name, email and phone (digits only, so "+49 151" and "+49151" are the same number), with
-- prefix indexes so that the short prefixes people type stay cheap.
CREATE VIRTUAL TABLE customer_search USING fts5(
    name, email, phone,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3 4'
);

CREATE TABLE chats (
    id                       TEXT PRIMARY KEY,
    customer                 TEXT NOT NULL,
    channel                  TEXT NOT NULL,
    state                    TEXT NOT NULL,
    owner                    TEXT,
    reopened_by              TEXT,
    reopened_at              INTEGER,
    snooze                   TEXT,
    created_at               INTEGER NOT NULL,
    queued_at                INTEGER,
    last_customer_message_at INTEGER,
    closed_at                INTEGER,
    close_reason             TEXT,
    newest_at                INTEGER NOT NULL
);
CREATE INDEX chats_by_newest   ON chats (newest_at, id);
CREATE INDEX chats_by_owner    ON chats (owner, newest_at, id);
CREATE INDEX chats_by_state    ON chats (state, newest_at, id);
CREATE INDEX chats_by_customer ON chats (customer, newest_at, id, owner, state);

CREATE TABLE messages (
    chat   TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    author TEXT NOT NULL,
    agent  TEXT,
    kind   TEXT NOT NULL,
    text   TEXT NOT NULL,
    PRIMARY KEY (chat, seq)
) WITHOUT ROWID;

CREATE TABLE analytics_events (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    agent        TEXT NOT NULL,
    channel      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    reason       TEXT,
    waited_ms    INTEGER,
    to_accept_ms INTEGER
);
CREATE INDEX analytics_events_by_at ON analytics_events (at);

CREATE TABLE agent_limits (
    agent      TEXT PRIMARY KEY,
    max_active INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// Version 2: routing (R19, R20).
///
/// - `chats.routing` is what the chat asked of routing at ingress (queue, language, skills,
///   attributes) as JSON, null when it asked nothing: a waiting chat waits for the same agents
///   after a restart.
/// - `analytics_events.queue` and `within_sla` count SLA attainment per queue (R20); rows of
///   version 1 have neither and are counted as before.
/// - `agent_skills` holds skills changed live (admin API, supervisor socket), like
///   `agent_limits` holds limits: the configuration is the record of the rest.
const V2: &str = r#"
ALTER TABLE chats ADD COLUMN routing TEXT;
ALTER TABLE analytics_events ADD COLUMN queue TEXT;
ALTER TABLE analytics_events ADD COLUMN within_sla INTEGER;
CREATE TABLE agent_skills (
    agent  TEXT PRIMARY KEY,
    skills TEXT NOT NULL
) WITHOUT ROWID;
"#;

/// Version 3: channels for real (R23–R25).
///
/// - `messages.payload` is what a customer's message carries besides text (media, a
///   location, a reply, an unsupported type) as JSON; `provider_id` the platform's id of it
///   (a customer's, to record a retried delivery once, or ours, to match status webhooks,
///   found through `messages_by_provider_id`); `delivery` and `delivery_reason` where a
///   message to the customer is. Rows of earlier versions have none of them.
/// - `outbox` holds every message to a customer from the commit of the change that caused
///   it until the platform took it or it finally failed: a restart sends what is left, in
///   `id` order (the order the engine made them, so the order per chat), with the attempts
///   made and when the next is due. A message that finally failed stays, with `failed` saying
///   why, until its agent sends it again (which makes a new entry) — so a retry sends exactly
///   what failed.
const V3: &str = r#"
ALTER TABLE messages ADD COLUMN payload TEXT;
ALTER TABLE messages ADD COLUMN provider_id TEXT;
ALTER TABLE messages ADD COLUMN delivery TEXT;
ALTER TABLE messages ADD COLUMN delivery_reason TEXT;
CREATE INDEX messages_by_provider_id ON messages (provider_id) WHERE provider_id IS NOT NULL;
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    customer        TEXT NOT NULL,
    chat            TEXT NOT NULL,
    seq             INTEGER,
    message         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_at         INTEGER,
    last_error      TEXT,
    failed          TEXT
);
"#;

/// Version 4: agents created over the admin API are durable (R27).
///
/// - `agents` holds each agent the admin API created or changed, whole: name, role, limit,
///   queues (a JSON list), skills and limits per channel (JSON objects, channels by their
///   stored names). Configured agents that the API never touched have no row: the
///   configuration is their record. On start a row replaces the configured profile of the
///   same id, then `agent_limits` and `agent_skills` apply on top (an upsert deletes those two
///   rows of its agent, as it replaces limit and skills in memory).
/// - `token_sha256` is the SHA-256 of the agent's static token (32 bytes), never the token:
///   the engine looks a presented token up by its digest. Null when the API gave none.
const V4: &str = r#"
CREATE TABLE agents (
    agent          TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    max_active     INTEGER NOT NULL,
    queues         TEXT NOT NULL,
    skills         TEXT NOT NULL,
    channel_limits TEXT NOT NULL,
    token_sha256   BLOB
) WITHOUT ROWID;
"#;

/// Version 5: workspaces (R27). One file holds every workspace, with one writer, so one
/// group commit (one fsync) carries the changes of many.
///
/// - `workspaces` names each workspace by an integer `key` that every other table carries as
///   `ws`, first in every primary key, unique key and index: a workspace's rows are one range
///   of each index, so reading one workspace costs its own size, not the file's. `settings`
///   and `limits` are JSON objects (empty: the defaults); `stored_bytes` is what the workspace
///   holds, for its quota. `default` (key 1) is the workspace that every row stored before
///   this version belonged to.
/// - Each table is rebuilt as SQLite documents for schema changes that `ALTER TABLE` cannot
///   make (create the new table, copy with `ws` = 1, drop the old, rename), keeping every
///   rowid: `customers.key` stays the `customer_search` rowid, and the archive's page query
///   reads chats by rowid.
/// - `customer_search` gains a column `ws` holding the token `w<key>`; a search ANDs
///   `ws : "w<key>"` into its MATCH, so the full-text index itself keeps other workspaces'
///   customers out of the count that plans the search (`archive.rs`).
/// - The outbox's `id` comes from a counter per workspace, so only `(ws, id)` is unique.
/// - `analytics_events` is read only whole, per workspace, in `id` order (on start): its index
///   is `(ws)`, whose entries end in the rowid `id`, so that read is one range in order. The
///   index by `at` that version 1 made was never read, and a `(ws, at)` one would cost the
///   start a sort of every event.
const V5: &str = r#"
CREATE TABLE workspaces (
    key              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    name             TEXT,
    state            TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    admin_key_sha256 BLOB,
    settings         TEXT NOT NULL DEFAULT '{}',
    limits           TEXT NOT NULL DEFAULT '{}',
    stored_bytes     INTEGER NOT NULL DEFAULT 0
);
-- Nanoseconds since the epoch, like every timestamp here (whole seconds are all SQL has).
INSERT INTO workspaces (key, id, state, created_at)
    VALUES (1, 'default', 'active', CAST(strftime('%s', 'now') AS INTEGER) * 1000000000);

CREATE TABLE customers_v5 (
    ws             INTEGER NOT NULL,
    key            INTEGER PRIMARY KEY,
    id             TEXT NOT NULL,
    name           TEXT,
    email          TEXT,
    phone          TEXT,
    identities     TEXT NOT NULL,
    opted_out      TEXT NOT NULL,
    pushed         TEXT NOT NULL,
    assigned_agent TEXT,
    UNIQUE (ws, id)
);
INSERT INTO customers_v5 (ws, key, id, name, email, phone, identities, opted_out, pushed, assigned_agent)
    SELECT 1, key, id, name, email, phone, identities, opted_out, pushed, assigned_agent FROM customers;
DROP TABLE customers;
ALTER TABLE customers_v5 RENAME TO customers;

CREATE VIRTUAL TABLE customer_search_v5 USING fts5(
    ws, name, email, phone,
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3 4'
);
INSERT INTO customer_search_v5 (rowid, ws, name, email, phone)
    SELECT rowid, 'w1', name, email, phone FROM customer_search;
DROP TABLE customer_search;
ALTER TABLE customer_search_v5 RENAME TO customer_search;

CREATE TABLE chats_v5 (
    ws                       INTEGER NOT NULL,
    id                       TEXT NOT NULL,
    customer                 TEXT NOT NULL,
    channel                  TEXT NOT NULL,
    state                    TEXT NOT NULL,
    owner                    TEXT,
    reopened_by              TEXT,
    reopened_at              INTEGER,
    snooze                   TEXT,
    created_at               INTEGER NOT NULL,
    queued_at                INTEGER,
    last_customer_message_at INTEGER,
    closed_at                INTEGER,
    close_reason             TEXT,
    newest_at                INTEGER NOT NULL,
    routing                  TEXT,
    PRIMARY KEY (ws, id)
);
INSERT INTO chats_v5 (rowid, ws, id, customer, channel, state, owner, reopened_by, reopened_at, snooze,
                      created_at, queued_at, last_customer_message_at, closed_at, close_reason,
                      newest_at, routing)
    SELECT rowid, 1, id, customer, channel, state, owner, reopened_by, reopened_at, snooze,
           created_at, queued_at, last_customer_message_at, closed_at, close_reason, newest_at, routing
    FROM chats;
DROP TABLE chats;
ALTER TABLE chats_v5 RENAME TO chats;
CREATE INDEX chats_by_newest   ON chats (ws, newest_at, id);
CREATE INDEX chats_by_owner    ON chats (ws, owner, newest_at, id);
CREATE INDEX chats_by_state    ON chats (ws, state, newest_at, id);
CREATE INDEX chats_by_customer ON chats (ws, customer, newest_at, id, owner, state);

CREATE TABLE messages_v5 (
    ws              INTEGER NOT NULL,
    chat            TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    author          TEXT NOT NULL,
    agent           TEXT,
    kind            TEXT NOT NULL,
    text            TEXT NOT NULL,
    payload         TEXT,
    provider_id     TEXT,
    delivery        TEXT,
    delivery_reason TEXT,
    PRIMARY KEY (ws, chat, seq)
) WITHOUT ROWID;
INSERT INTO messages_v5 (ws, chat, seq, at, author, agent, kind, text, payload, provider_id, delivery,
                         delivery_reason)
    SELECT 1, chat, seq, at, author, agent, kind, text, payload, provider_id, delivery, delivery_reason
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v5 RENAME TO messages;
CREATE INDEX messages_by_provider_id ON messages (ws, provider_id) WHERE provider_id IS NOT NULL;

CREATE TABLE analytics_events_v5 (
    id           INTEGER PRIMARY KEY,
    ws           INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    agent        TEXT NOT NULL,
    channel      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    reason       TEXT,
    waited_ms    INTEGER,
    to_accept_ms INTEGER,
    queue        TEXT,
    within_sla   INTEGER
);
INSERT INTO analytics_events_v5 (id, ws, at, agent, channel, kind, reason, waited_ms, to_accept_ms,
                                 queue, within_sla)
    SELECT id, 1, at, agent, channel, kind, reason, waited_ms, to_accept_ms, queue, within_sla
    FROM analytics_events;
DROP TABLE analytics_events;
ALTER TABLE analytics_events_v5 RENAME TO analytics_events;
CREATE INDEX analytics_events_by_ws ON analytics_events (ws);

CREATE TABLE agent_limits_v5 (
    ws         INTEGER NOT NULL,
    agent      TEXT NOT NULL,
    max_active INTEGER NOT NULL,
    PRIMARY KEY (ws, agent)
) WITHOUT ROWID;
INSERT INTO agent_limits_v5 (ws, agent, max_active) SELECT 1, agent, max_active FROM agent_limits;
DROP TABLE agent_limits;
ALTER TABLE agent_limits_v5 RENAME TO agent_limits;

CREATE TABLE agent_skills_v5 (
    ws     INTEGER NOT NULL,
    agent  TEXT NOT NULL,
    skills TEXT NOT NULL,
    PRIMARY KEY (ws, agent)
) WITHOUT ROWID;
INSERT INTO agent_skills_v5 (ws, agent, skills) SELECT 1, agent, skills FROM agent_skills;
DROP TABLE agent_skills;
ALTER TABLE agent_skills_v5 RENAME TO agent_skills;

CREATE TABLE agents_v5 (
    ws             INTEGER NOT NULL,
    agent          TEXT NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    max_active     INTEGER NOT NULL,
    queues         TEXT NOT NULL,
    skills         TEXT NOT NULL,
    channel_limits TEXT NOT NULL,
    token_sha256   BLOB,
    PRIMARY KEY (ws, agent)
) WITHOUT ROWID;
INSERT INTO agents_v5 (ws, agent, name, role, max_active, queues, skills, channel_limits, token_sha256)
    SELECT 1, agent, name, role, max_active, queues, skills, channel_limits, token_sha256 FROM agents;
DROP TABLE agents;
ALTER TABLE agents_v5 RENAME TO agents;

CREATE TABLE outbox_v5 (
    ws              INTEGER NOT NULL,
    id              INTEGER NOT NULL,
    customer        TEXT NOT NULL,
    chat            TEXT NOT NULL,
    seq             INTEGER,
    message         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_at         INTEGER,
    last_error      TEXT,
    failed          TEXT,
    PRIMARY KEY (ws, id)
);
INSERT INTO outbox_v5 (ws, id, customer, chat, seq, message, idempotency_key, attempts, next_at,
                       last_error, failed)
    SELECT 1, id, customer, chat, seq, message, idempotency_key, attempts, next_at, last_error, failed
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v5 RENAME TO outbox;
"#;

/// Version 6: one workspace's customers, in `key` order, without reading the others' (R27).
///
/// A workspace's engine restores its customers in `key` order (their order of creation, which
/// the engine's maps are filled in). Through `UNIQUE (ws, id)` SQLite would fetch the
/// workspace's rows in `id` order and sort them all; a scan of the table in `key` order reads
/// every workspace's customers. This index is the workspace's range in `key` order: the
/// restore reads its own rows, in order, and nothing else.
const V6: &str = r#"
CREATE INDEX customers_by_ws_key ON customers (ws, key);
"#;

/// Version 7: leases with fencing epochs (R28, issue 19), one row per workspace: which node
/// decides for it, under which epoch, until when. Only a cluster on PostgreSQL takes leases
/// (`store/leases.rs`); on SQLite the table stays empty, there so that both backends hold the
/// same tables at the same version.
const V7: &str = r#"
CREATE TABLE leases (
    ws         INTEGER PRIMARY KEY,
    node       TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
"#;

/// Version 8: the cluster's nodes (R28, issue 19), and whether a lease was let go of. A node
/// records itself in `nodes` every placement round (`seen_at`, by PostgreSQL's clock) with the
/// address other nodes reach it at, and marks itself `leaving` when it stops; a lease's
/// `released` tells a hand-over (released) from a failover (lapsed) to the node that takes it
/// next. As with `leases`, the tables stay empty on SQLite.
const V8: &str = r#"
CREATE TABLE nodes (
    name    TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    seen_at INTEGER NOT NULL,
    leaving INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE leases ADD COLUMN released INTEGER NOT NULL DEFAULT 0;
"#;

/// Version 9: on PostgreSQL, the sequence that new workspaces' keys come from, shared by the
/// nodes of a cluster (`postgres/schema.rs`). Nothing here: one process writes a SQLite file,
/// and its store counts keys in memory (`workspace_rows.rs`). The step keeps the versions of
/// both backends the same.
const V9: &str = "-- Nothing on SQLite: see above.";

/// Version 10: on PostgreSQL, the archive's search words without their diacritics
/// (`postgres/schema.rs`), as FTS5 has always matched them here (`remove_diacritics 2`).
/// Nothing to do on SQLite; the step keeps the versions of both backends the same.
const V10: &str = "-- Nothing on SQLite: see above.";

/// Brings the database at `path` up to [`LATEST`] in one transaction, or refuses a database
/// from a newer build.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(err)?;
    if found > LATEST {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: LATEST,
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)
            .map_err(err)?;
    }
    tx.commit().map_err(err)
}
