//! The schema on PostgreSQL and its migrations, recorded in `schema_version`.
//!
//! The same versions as SQLite's (`store/schema.rs`): a database of version N holds the same
//! tables, columns and meanings on both backends. No PostgreSQL database predates version 6
//! (the backend came after it), so its list starts with one step that creates version 6 whole;
//! from there on every new version appends a step to both lists.
//!
//! Translated, not copied:
//! - Integers are BIGINT; timestamps stay BIGINT nanoseconds since the epoch (the engine's
//!   clock round-trips exactly; `timestamptz` keeps only microseconds).
//! - What SQLite keeps as JSON text is JSONB.
//! - The archive's full-text index is a `tsvector` column of `customers` (`search`) under a
//!   GIN index, instead of FTS5's `customer_search` table; the writer fills it from the name and
//!   email, split into words the way FTS5's tokenizer splits them (`postgres/writer.rs`).
//!   Phone numbers are matched by prefix on their digits (`phone_digits`), through a
//!   `text_pattern_ops` index.
//! - `customers.key` is an identity column: the order customers were created in, which the
//!   restore reads them in.
//! - Ids that rows are ordered by compare byte by byte (`COLLATE "C"`), as SQLite's do: an
//!   archive page and its cursor order ties the same on both, whatever the database's locale.
//! - There is no `WITHOUT ROWID`: PostgreSQL's tables are heaps, and every read goes through the
//!   `ws`-first primary keys and indexes as on SQLite.

use postgres::{Client, Transaction};

use super::super::schema::LATEST;
use super::super::StoreError;
use super::archive::search_text;
use super::Database;

/// Every migration, oldest first, each with the version it brings the schema to. An empty
/// database is version 0.
const MIGRATIONS: &[(i64, &str)] = &[(6, V6), (7, V7), (8, V8), (9, V9), (10, V10)];

/// Version 6 of `store/schema.rs`, in one step.
const V6: &str = r#"
CREATE TABLE workspaces (
    key              BIGINT PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    name             TEXT,
    state            TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    admin_key_sha256 BYTEA,
    settings         JSONB NOT NULL DEFAULT '{}',
    limits           JSONB NOT NULL DEFAULT '{}',
    stored_bytes     BIGINT NOT NULL DEFAULT 0
);
INSERT INTO workspaces (key, id, state, created_at)
    VALUES (1, 'default', 'active', CAST(extract(epoch FROM now()) AS BIGINT) * 1000000000);

CREATE TABLE customers (
    ws             BIGINT NOT NULL,
    key            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             TEXT COLLATE "C" NOT NULL,
    name           TEXT,
    email          TEXT,
    phone          TEXT,
    identities     JSONB NOT NULL,
    opted_out      JSONB NOT NULL,
    pushed         JSONB NOT NULL,
    assigned_agent TEXT,
    search         TSVECTOR NOT NULL,
    phone_digits   TEXT,
    UNIQUE (ws, id)
);
CREATE INDEX customers_by_ws_key ON customers (ws, key);
CREATE INDEX customers_search ON customers USING GIN (search);
CREATE INDEX customers_by_phone ON customers (ws, phone_digits text_pattern_ops);

CREATE TABLE chats (
    ws                       BIGINT NOT NULL,
    id                       TEXT COLLATE "C" NOT NULL,
    customer                 TEXT COLLATE "C" NOT NULL,
    channel                  TEXT NOT NULL,
    state                    TEXT NOT NULL,
    owner                    TEXT,
    reopened_by              TEXT,
    reopened_at              BIGINT,
    snooze                   JSONB,
    created_at               BIGINT NOT NULL,
    queued_at                BIGINT,
    last_customer_message_at BIGINT,
    closed_at                BIGINT,
    close_reason             TEXT,
    newest_at                BIGINT NOT NULL,
    routing                  JSONB,
    PRIMARY KEY (ws, id)
);
CREATE INDEX chats_by_newest   ON chats (ws, newest_at, id);
CREATE INDEX chats_by_owner    ON chats (ws, owner, newest_at, id);
CREATE INDEX chats_by_state    ON chats (ws, state, newest_at, id);
CREATE INDEX chats_by_customer ON chats (ws, customer, newest_at, id) INCLUDE (owner, state);

CREATE TABLE messages (
    ws              BIGINT NOT NULL,
    chat            TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    at              BIGINT NOT NULL,
    author          TEXT NOT NULL,
    agent           TEXT,
    kind            TEXT NOT NULL,
    text            TEXT NOT NULL,
    payload         JSONB,
    provider_id     TEXT,
    delivery        TEXT,
    delivery_reason TEXT,
    PRIMARY KEY (ws, chat, seq)
);
CREATE INDEX messages_by_provider_id ON messages (ws, provider_id) WHERE provider_id IS NOT NULL;

CREATE TABLE analytics_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ws           BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    agent        TEXT NOT NULL,
    channel      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    reason       TEXT,
    waited_ms    BIGINT,
    to_accept_ms BIGINT,
    queue        TEXT,
    within_sla   BOOLEAN
);
CREATE INDEX analytics_events_by_ws ON analytics_events (ws, id);

CREATE TABLE agent_limits (
    ws         BIGINT NOT NULL,
    agent      TEXT COLLATE "C" NOT NULL,
    max_active BIGINT NOT NULL,
    PRIMARY KEY (ws, agent)
);

CREATE TABLE agent_skills (
    ws     BIGINT NOT NULL,
    agent  TEXT COLLATE "C" NOT NULL,
    skills JSONB NOT NULL,
    PRIMARY KEY (ws, agent)
);

CREATE TABLE agents (
    ws             BIGINT NOT NULL,
    agent          TEXT COLLATE "C" NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    max_active     BIGINT NOT NULL,
    queues         JSONB NOT NULL,
    skills         JSONB NOT NULL,
    channel_limits JSONB NOT NULL,
    token_sha256   BYTEA,
    PRIMARY KEY (ws, agent)
);

CREATE TABLE outbox (
    ws              BIGINT NOT NULL,
    id              BIGINT NOT NULL,
    customer        TEXT NOT NULL,
    chat            TEXT NOT NULL,
    seq             BIGINT,
    message         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_at         BIGINT,
    last_error      TEXT,
    failed          TEXT,
    PRIMARY KEY (ws, id)
);
"#;

/// Version 7: leases with fencing epochs (R28, `store/leases.rs`), one row per workspace: the
/// node that decides for it, the epoch every take raises by one, and when it lapses by
/// PostgreSQL's clock (`timestamptz`: compared with `clock_timestamp()`, never a node's clock).
/// A row is deleted only with its workspace (whose key is never handed out again), so an epoch
/// is never handed out twice.
const V7: &str = r#"
CREATE TABLE leases (
    ws         BIGINT PRIMARY KEY,
    node       TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
"#;

/// Version 8 of `store/schema.rs`: the nodes of the cluster, each seen by PostgreSQL's clock,
/// and whether a lease was released (a hand-over) or lapsed (a failover).
const V8: &str = r#"
CREATE TABLE nodes (
    name    TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL,
    leaving BOOLEAN NOT NULL DEFAULT false
);
ALTER TABLE leases ADD COLUMN released BOOLEAN NOT NULL DEFAULT false;
"#;

/// Version 9 of `store/schema.rs`: the sequence new workspaces' keys come from
/// (`postgres/workspace_create.rs`), so that nodes sharing the database never hand out one key
/// twice, nor a deleted workspace's key again. It starts after the largest key there is.
const V9: &str = r#"
CREATE SEQUENCE workspace_keys OWNED BY workspaces.key;
SELECT setval('workspace_keys', (SELECT COALESCE(MAX(key), 1) FROM workspaces));
"#;

/// Version 10 of `store/schema.rs`: the archive's search words fold diacritics, as SQLite's
/// FTS5 does (`Zoë Müller` is found by `zoe muller`). The folding is the writer's, in Rust
/// (`postgres/archive.rs`), so the step that recomputes every customer's `search` runs there
/// too ([`refold_search`]), after this SQL.
const V10: &str = "-- Every customer's search words are recomputed by refold_search.";

/// Recomputes the search words of every customer whose name or email is not plain ASCII, as
/// the writer now writes them (version 10); folding leaves ASCII text as it was.
fn refold_search(tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
    let update =
        tx.prepare("UPDATE customers SET search = to_tsvector('simple', $3) WHERE ws = $1 AND id = $2")?;
    let folded = "SELECT ws, id, name, email FROM customers
                  WHERE octet_length(name) <> char_length(name)
                     OR octet_length(email) <> char_length(email)";
    for row in tx.query(folded, &[])? {
        let (ws, id): (i64, String) = (row.get(0), row.get(1));
        let (name, email): (Option<String>, Option<String>) = (row.get(2), row.get(3));
        let text = search_text(name.as_deref(), email.as_deref());
        tx.execute(&update, &[&ws, &id, &text])?;
    }
    Ok(())
}

/// Brings the database up to [`LATEST`] in one transaction, or refuses one from a newer build.
/// Two engines starting at once on an empty database take turns (an advisory lock held by the
/// transaction), so the steps run once.
pub(super) fn migrate(client: &mut Client, db: &Database) -> Result<(), StoreError> {
    const _: () = assert!(
        MIGRATIONS[MIGRATIONS.len() - 1].0 == LATEST,
        "a new version of store/schema.rs needs its step here too"
    );
    let err = |e| db.error(e);
    let mut tx = client.transaction().map_err(err)?;
    // Any constant: every engine's migration takes the same lock.
    tx.execute("SELECT pg_advisory_xact_lock(1936223331)", &[])
        .map_err(err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .map_err(err)?;
    let found: Option<i64> = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .map_err(err)?
        .map(|row| row.get(0));
    if found.is_none() {
        tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])
            .map_err(err)?;
    }
    let found = found.unwrap_or(0);
    if found > LATEST {
        return Err(StoreError::NewerSchema {
            path: db.name(),
            found,
            supported: LATEST,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
        tx.batch_execute(sql).map_err(err)?;
        if *version == 10 {
            refold_search(&mut tx).map_err(err)?;
        }
        tx.execute("UPDATE schema_version SET version = $1", &[version])
            .map_err(err)?;
    }
    tx.commit().map_err(err)
}
