//! Tests of the store: opening, durability of acknowledged groups, restore, search, history.

mod agents;
mod creates;
mod leases;
mod resume;
mod workspaces;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use rusqlite::Connection;

use super::archive::match_expression;
use super::codec::Stored;
use super::postgres::test_server::PgServer;
use super::*;
use crate::clock::Timestamp;
use crate::core::analytics::{Event, EventKind};
use crate::core::channel::Channel;
use crate::core::chat::{Author, ChatState, CloseReason, Message, MessageKind, SnoozeUntil, Stage};
use crate::core::customer::Profile;
use crate::core::rejection::ErrorCode;
use crate::core::RoutingAsk;
use crate::ids::{AgentId, ChatId, CustomerId};

/// A directory of its own for one test, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("switchboard-store-{test}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir is creatable");
        Self(dir)
    }

    /// A database path whose directory does not exist yet.
    fn db(&self) -> PathBuf {
        self.0.join("data").join("switchboard.sqlite")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One test's database on one backend, removed afterwards: the store's tests that do not
/// reach into SQLite's file run on both backends ([`on_both_backends!`]).
enum Db {
    Sqlite(TempDir),
    Postgres(PgServer),
}

impl Db {
    fn sqlite(test: &str) -> Db {
        Db::Sqlite(TempDir::new(test))
    }

    fn postgres() -> Db {
        Db::Postgres(PgServer::start())
    }

    /// The store on it, opened (again) with `options`.
    fn store(&self, options: StoreOptions) -> Arc<Store> {
        Arc::new(match self {
            Db::Sqlite(dir) => Store::open(&dir.db(), options).expect("store opens"),
            Db::Postgres(server) => Store::open_postgres(&server.url(), options).expect("store opens"),
        })
    }

    /// The `default` workspace's handle on the store, opened (again) with the defaults.
    fn open(&self) -> WorkspaceStore {
        self.store(StoreOptions::default()).workspace(WsKey::DEFAULT)
    }

    /// The rows of `table` as last committed, read beside the store.
    fn count(&self, table: &str) -> i64 {
        self.count_in(&format!("SELECT count(*) FROM {table}"))
    }

    /// The count a `SELECT count(*)` in SQL both backends speak returns.
    fn count_in(&self, sql: &str) -> i64 {
        match self {
            Db::Sqlite(dir) => Connection::open(dir.db())
                .expect("raw connection opens")
                .query_row(sql, [], |r| r.get(0))
                .expect("count runs"),
            Db::Postgres(server) => {
                let (url, sql) = (server.url(), sql.to_owned());
                super::postgres::on_plain_thread(move || {
                    let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connects");
                    client.query_one(&sql, &[]).expect("count runs").get(0)
                })
            }
        }
    }

    /// Where the archive's text index keeps a row per customer: FTS5's table on SQLite, a
    /// column of `customers` on PostgreSQL.
    fn search_index(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "customer_search",
            Db::Postgres(_) => "customers",
        }
    }
}

/// A `#[test]` on each backend, in modules `sqlite` and `postgres`, for each function given
/// (each takes the test's [`Db`]).
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Db::sqlite(stringify!($test)));
                }
            )*
        }

        mod postgres {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Db::postgres());
                }
            )*
        }
    };
}
use on_both_backends;

/// The `default` workspace's handle on a store opened at `path`.
fn open(path: &Path) -> WorkspaceStore {
    Arc::new(Store::open(path, StoreOptions::default()).expect("store opens")).workspace(WsKey::DEFAULT)
}

fn t(secs: i64) -> Timestamp {
    Utc.timestamp_opt(1_780_000_000 + secs, 0)
        .single()
        .expect("valid time")
}

fn customer(id: &str, name: &str, email: &str, phone: &str) -> CustomerRecord {
    CustomerRecord {
        id: CustomerId::from(id),
        profile: Profile {
            name: Some(name.into()),
            email: Some(email.into()),
            phone: Some(phone.into()),
        },
        identities: vec![(Channel::Whatsapp, phone.into())],
        opted_out: Vec::new(),
        pushed: Vec::new(),
        assigned_agent: None,
    }
}

fn chat(
    id: &str,
    customer: &str,
    owner: &str,
    state: ChatState,
    created: i64,
    closed: Option<i64>,
) -> ChatRecord {
    let owner = AgentId::from(owner);
    let stage = match (state, closed) {
        (ChatState::Closed, Some(at)) => Stage::Closed {
            at: t(at),
            why: CloseReason::Agent,
            owner: Some(owner),
        },
        (ChatState::Bot, None) => Stage::Bot,
        (ChatState::Queued, None) => Stage::Queued { since: t(created) },
        (ChatState::Active, None) => Stage::Active { owner },
        (ChatState::Reopened, None) => Stage::Reopened {
            owner,
            since: t(created),
        },
        (ChatState::Snoozed, None) => Stage::Snoozed {
            owner,
            until: SnoozeUntil::Reply,
        },
        other => panic!("a test chat {other:?}: closed exactly when its state is closed"),
    };
    ChatRecord {
        id: ChatId::from(id),
        customer: CustomerId::from(customer),
        channel: Channel::Whatsapp,
        stage,
        reopened_by: None,
        created_at: t(created),
        last_customer_message_at: Some(t(created)),
        routing: RoutingAsk::default(),
    }
}

fn message(at: i64, text: &str) -> Message {
    Message {
        at: t(at),
        author: Author::Customer,
        kind: MessageKind::Text,
        text: text.into(),
        payload: None,
        provider_id: None,
        delivery: None,
    }
}

fn count(path: &Path, table: &str) -> i64 {
    Connection::open(path)
        .expect("raw connection opens")
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count runs")
}

/// Holds a lock from another connection that the writer's first group blocks on, so that
/// everything submitted meanwhile queues up behind it: SQLite's write lock, or on PostgreSQL
/// the `agent_limits` table (the first submission of the tests that take it writes there).
enum WriteLock {
    Sqlite(Connection),
    Postgres(::postgres::Client),
}

impl WriteLock {
    fn take(db: &Db) -> Self {
        match db {
            Db::Sqlite(dir) => {
                let conn = Connection::open(dir.db()).expect("raw connection opens");
                conn.execute_batch("BEGIN IMMEDIATE").expect("write lock taken");
                WriteLock::Sqlite(conn)
            }
            Db::Postgres(server) => {
                let mut client =
                    ::postgres::Client::connect(&server.url(), ::postgres::NoTls).expect("connects");
                client
                    .batch_execute("BEGIN; LOCK TABLE agent_limits IN EXCLUSIVE MODE")
                    .expect("table locked");
                WriteLock::Postgres(client)
            }
        }
    }

    /// Waits until the writer has formed its first group (which then waits for this lock).
    fn wait_for_writer(&self, store: &WorkspaceStore) {
        while store.store.counters.started.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
    }

    fn release(self) {
        match self {
            WriteLock::Sqlite(conn) => conn.execute_batch("ROLLBACK").expect("write lock released"),
            WriteLock::Postgres(mut client) => client.batch_execute("ROLLBACK").expect("table lock released"),
        }
    }
}

// --- Opening -------------------------------------------------------------------------------

#[test]
fn fresh_open_creates_the_directory_and_the_latest_schema() {
    let dir = TempDir::new("fresh");
    let path = dir.db();
    let store = open(&path);
    assert!(path.exists());
    let raw = Connection::open(&path).expect("raw connection opens");
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("reads version");
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("reads mode");
    assert_eq!((version, mode.as_str()), (Store::schema_version(), "wal"));
    assert_eq!(store.load().expect("loads").customers.len(), 0);
}

fn reopen_keeps_everything_acknowledged(db: &Db) {
    let mut file_chat = chat("c1", "u1", "ana", ChatState::Snoozed, 10, None);
    file_chat.stage = Stage::Snoozed {
        owner: AgentId::from("ana"),
        until: SnoozeUntil::Time {
            at: t(100) + Duration::nanoseconds(123_456_789),
        },
    };
    file_chat.reopened_by = Some(AgentId::from("ana"));
    let mut cust = customer("u1", "Ana Lima", "ana@x.io", "+49 151 1111");
    cust.opted_out = vec![Channel::Sms];
    cust.pushed = vec![Channel::Whatsapp];
    cust.assigned_agent = Some(AgentId::from("ana"));
    let events = vec![
        Event {
            at: t(1),
            agent: AgentId::from("ana"),
            channel: Channel::Whatsapp,
            queue: None,
            kind: EventKind::Reopened,
        },
        Event {
            at: t(2),
            agent: AgentId::from("ana"),
            channel: Channel::Sms,
            queue: None,
            kind: EventKind::ReopenRejected(ErrorCode::OptedOut),
        },
        Event {
            at: t(3),
            agent: AgentId::from("bo"),
            channel: Channel::Email,
            queue: None,
            kind: EventKind::Accepted {
                waited_ms: 1500,
                to_accept_ms: 700,
                within_sla: None,
            },
        },
    ];
    {
        let store = db.open();
        let mut changes = vec![
            Change::UpsertCustomer(cust.clone()),
            Change::UpsertChat(file_chat.clone()),
            Change::AppendMessage {
                chat: ChatId::from("c1"),
                seq: 0,
                message: message(10, "hi"),
            },
            Change::SetAgentLimit {
                agent: AgentId::from("ana"),
                limit: 3,
            },
            Change::SetAgentLimit {
                agent: AgentId::from("ana"),
                limit: 5,
            },
        ];
        changes.extend(events.iter().cloned().map(Change::Analytics));
        store.submit(changes).wait().expect("committed");
    }
    let store = db.open();
    let snapshot = store.load().expect("loads");
    assert_eq!(snapshot.customers.len(), 1);
    let file = &snapshot.customers[0];
    assert_eq!(CustomerRecord::of(file), cust);
    assert_eq!(file.chats.len(), 1);
    assert_eq!(ChatRecord::of(&file.chats[0]), file_chat);
    assert!(
        file.chats[0].messages.is_empty(),
        "history is read by page, not loaded"
    );
    assert_eq!(snapshot.events, events);
    assert_eq!(snapshot.agent_limits, vec![(AgentId::from("ana"), 5)]);
    let history = store
        .history(&ChatId::from("c1"), None, 10)
        .expect("reads history");
    assert_eq!(history.messages.len(), 1);
    assert_eq!(history.messages[0].message, message(10, "hi"));
}

fn issue13_every_stage_of_a_chat_comes_back_as_it_was_written(db: &Db) {
    let ana = AgentId::from("ana");
    let exact = t(11) + Duration::nanoseconds(123_456_789);
    let stages = [
        Stage::Bot,
        Stage::Queued { since: exact },
        Stage::Active { owner: ana.clone() },
        Stage::Reopened {
            owner: ana.clone(),
            since: exact,
        },
        Stage::Snoozed {
            owner: ana.clone(),
            until: SnoozeUntil::Time { at: exact },
        },
        Stage::Snoozed {
            owner: ana.clone(),
            until: SnoozeUntil::Reply,
        },
        Stage::Closed {
            at: exact,
            why: CloseReason::Timeout,
            owner: Some(ana.clone()),
        },
        Stage::Closed {
            at: exact,
            why: CloseReason::Stop,
            owner: None,
        },
    ];
    let mut written = Vec::new();
    let mut changes = Vec::new();
    for (i, stage) in stages.into_iter().enumerate() {
        // One customer each: a customer has one live chat at most (R01).
        let customer_id = format!("u{i}");
        changes.push(Change::UpsertCustomer(customer(
            &customer_id,
            "N",
            "n@x.io",
            "+1",
        )));
        let mut record = chat(&format!("c{i}"), &customer_id, "ana", ChatState::Bot, 1, None);
        record.stage = stage;
        changes.push(Change::UpsertChat(record.clone()));
        written.push(record);
    }
    db.open().submit(changes).wait().expect("committed");
    let mut read: Vec<ChatRecord> = db
        .open()
        .load()
        .expect("loads")
        .customers
        .iter()
        .flat_map(|c| c.chats.iter().map(ChatRecord::of))
        .collect();
    read.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    assert_eq!(read, written);
}

#[test]
fn issue13_a_row_whose_columns_make_no_stage_is_refused_naming_the_column() {
    let dir = TempDir::new("stageless");
    let path = dir.db();
    let store = open(&path);
    with_chat(
        &store,
        customer("u1", "N", "n@x.io", "+1"),
        chat("c1", "u1", "ana", ChatState::Active, 1, None),
    );
    drop(store);
    Connection::open(&path)
        .expect("raw connection opens")
        .execute("UPDATE chats SET owner = NULL WHERE id = 'c1'", [])
        .expect("damaged");
    let err = open(&path)
        .load()
        .expect_err("an active chat without an owner is damage");
    assert!(
        err.to_string().contains("chat c1 is active without an owner"),
        "{err}"
    );
}

#[test]
fn issue13_every_stored_name_reads_back_as_its_variant_and_names_are_unique() {
    fn round_trip<T: Stored + PartialEq + std::fmt::Debug>() {
        let names: Vec<&str> = T::ALL.iter().map(|v| v.stored()).collect();
        for v in T::ALL {
            assert_eq!(T::from_stored(v.stored()), Some(*v));
        }
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }
    round_trip::<ChatState>();
    round_trip::<CloseReason>();
    round_trip::<MessageKind>();
    round_trip::<ErrorCode>();
    round_trip::<crate::core::Role>();
    round_trip::<Channel>();
    // Chats and KPI events store a channel by its wire name; an agent's limits per channel by
    // its stored one: the same names.
    for channel in Channel::ALL {
        assert_eq!(channel.stored(), channel.as_str());
    }
}

#[test]
fn issue13_channels_and_reasons_are_stored_under_the_names_databases_already_hold() {
    // What databases written before the core lost its serde hold: these names must not change.
    let channels = [
        (Channel::Whatsapp, "whatsapp"),
        (Channel::Messenger, "messenger"),
        (Channel::Instagram, "instagram"),
        (Channel::Wechat, "wechat"),
        (Channel::Telegram, "telegram"),
        (Channel::Line, "line"),
        (Channel::Webchat, "webchat"),
        (Channel::Sms, "sms"),
        (Channel::Email, "email"),
    ];
    assert_eq!(channels.len(), Channel::ALL.len());
    for (channel, name) in channels {
        assert_eq!(channel.stored(), name);
    }
    let reasons = [
        (ErrorCode::ActiveElsewhere, "active_elsewhere"),
        (ErrorCode::WindowClosed, "window_closed"),
        (ErrorCode::OptedOut, "opted_out"),
        (ErrorCode::PushAlreadySent, "push_already_sent"),
        (ErrorCode::NotOwner, "not_owner"),
        (ErrorCode::NotFound, "not_found"),
        (ErrorCode::AgentUnavailable, "agent_unavailable"),
        (ErrorCode::OverLimit, "over_limit"),
        (ErrorCode::MessageTooLong, "message_too_long"),
        (ErrorCode::BadRequest, "bad_request"),
        (ErrorCode::Unauthorized, "unauthorized"),
        (ErrorCode::Forbidden, "forbidden"),
        (ErrorCode::RateLimited, "rate_limited"),
        (ErrorCode::StorageUnavailable, "storage_unavailable"),
        (ErrorCode::QuotaExceeded, "quota_exceeded"),
    ];
    assert_eq!(reasons.len(), ErrorCode::ALL.len());
    for (code, name) in reasons {
        assert_eq!(code.stored(), name);
    }
    // Both lists above are written by hand; the wire's codes come from the type itself (its
    // schema), and map one to one onto the core's: every one must be readable back, or a
    // database holding a new code would not restore.
    for (names, which) in [
        (
            crate::protocol::tests::schema_names::<crate::protocol::ErrorCode>(),
            "error code",
        ),
        (
            crate::protocol::tests::schema_names::<crate::protocol::Role>(),
            "role",
        ),
    ] {
        assert!(!names.is_empty(), "the schema lists the {which}s");
        for name in names {
            let readable = match which {
                "role" => {
                    let wire: crate::protocol::Role =
                        serde_json::from_value(serde_json::json!(name)).expect("a role");
                    crate::core::Role::ALL.contains(&crate::core::Role::from(wire))
                }
                _ => {
                    let wire: crate::protocol::ErrorCode =
                        serde_json::from_value(serde_json::json!(name)).expect("an error code");
                    ErrorCode::ALL.contains(&ErrorCode::from(wire))
                }
            };
            assert!(
                readable,
                "the {which} `{name}` is not in Stored::ALL: a database holding it would not restore"
            );
        }
    }

    let dir = TempDir::new("names");
    let path = dir.db();
    let mut cust = customer("u1", "Ana Lima", "ana@x.io", "+49 151 1111");
    cust.identities.push((Channel::Email, "ana@x.io".into()));
    cust.opted_out = vec![Channel::Sms, Channel::Webchat];
    cust.pushed = vec![Channel::Whatsapp];
    let mut sms_chat = chat("c1", "u1", "ana", ChatState::Active, 10, None);
    sms_chat.channel = Channel::Sms;
    let event = Event {
        at: t(1),
        agent: AgentId::from("ana"),
        channel: Channel::Telegram,
        queue: None,
        kind: EventKind::ReopenRejected(ErrorCode::WindowClosed),
    };
    {
        let store = open(&path);
        store
            .submit(vec![
                Change::UpsertCustomer(cust.clone()),
                Change::UpsertChat(sms_chat.clone()),
                Change::Analytics(event.clone()),
            ])
            .wait()
            .expect("committed");
    }
    let raw = Connection::open(&path).expect("raw connection opens");
    let text = |sql: &str| -> String { raw.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        text("SELECT identities FROM customers"),
        r#"[["whatsapp","+49 151 1111"],["email","ana@x.io"]]"#
    );
    assert_eq!(text("SELECT opted_out FROM customers"), r#"["sms","webchat"]"#);
    assert_eq!(text("SELECT pushed FROM customers"), r#"["whatsapp"]"#);
    assert_eq!(text("SELECT channel FROM chats"), "sms");
    assert_eq!(text("SELECT channel FROM analytics_events"), "telegram");
    assert_eq!(text("SELECT reason FROM analytics_events"), "window_closed");
    drop(raw);

    let snapshot = open(&path).load().expect("loads");
    assert_eq!(CustomerRecord::of(&snapshot.customers[0]), cust);
    assert_eq!(ChatRecord::of(&snapshot.customers[0].chats[0]), sms_chat);
    assert_eq!(snapshot.events, [event]);
}

#[test]
fn issue13_a_channel_this_build_does_not_know_is_refused_naming_it() {
    let dir = TempDir::new("unknown-channel");
    let path = dir.db();
    {
        let store = open(&path);
        store
            .submit(vec![Change::UpsertCustomer(customer("u1", "Ana", "a@x.io", "1"))])
            .wait()
            .expect("committed");
    }
    Connection::open(&path)
        .expect("raw connection opens")
        .execute("UPDATE customers SET opted_out = '[\"fax\"]'", [])
        .expect("updates");
    let err = open(&path).load().expect_err("an unknown channel is refused");
    assert!(err.to_string().contains("fax"), "{err}");
}

#[test]
fn a_schema_newer_than_this_build_is_refused() {
    let dir = TempDir::new("newer");
    let path = dir.db();
    drop(open(&path));
    Connection::open(&path)
        .expect("raw connection opens")
        .pragma_update(None, "user_version", Store::schema_version() + 1)
        .expect("version set");
    let err = Store::open(&path, StoreOptions::default()).expect_err("a newer schema is refused");
    assert!(
        matches!(&err, StoreError::NewerSchema { path: p, found, supported }
            if p == &path && *found == Store::schema_version() + 1 && *supported == Store::schema_version()),
        "{err:?}"
    );
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn a_postgres_schema_newer_than_this_build_is_refused() {
    let db = Db::postgres();
    let name = db.store(StoreOptions::default()).path().to_path_buf();
    let Db::Postgres(server) = &db else {
        unreachable!("a PostgreSQL database")
    };
    let url = server.url();
    let newer = Store::schema_version() + 1;
    super::postgres::on_plain_thread(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connects");
        client
            .execute("UPDATE schema_version SET version = $1", &[&newer])
            .expect("version set");
    });
    let err =
        Store::open_postgres(&server.url(), StoreOptions::default()).expect_err("a newer schema is refused");
    assert!(
        matches!(&err, StoreError::NewerSchema { path, found, supported }
            if path == &name && *found == newer && *supported == Store::schema_version()),
        "{err:?}"
    );
    assert!(err.to_string().contains(&name.display().to_string()), "{err}");
    assert_eq!(
        db.count_in("SELECT version FROM schema_version"),
        newer,
        "nothing was migrated down"
    );
}

#[test]
fn a_data_directory_under_a_regular_file_is_refused_with_its_path() {
    let dir = TempDir::new("underfile");
    let file = dir.0.join("not-a-dir");
    fs::write(&file, b"x").expect("file written");
    // Fails for root too, unlike a chmod.
    let err = Store::open(&file.join("data").join("db.sqlite"), StoreOptions::default())
        .expect_err("a directory cannot be made under a file");
    assert!(
        matches!(&err, StoreError::CreateDir { path, .. } if path.starts_with(&file)),
        "{err:?}"
    );
    assert!(err.to_string().contains(&file.display().to_string()), "{err}");
}

#[test]
fn a_directory_where_the_database_file_should_be_is_not_writable() {
    let dir = TempDir::new("dirasfile");
    let path = dir.0.join("db.sqlite");
    fs::create_dir_all(&path).expect("dir created");
    let err = Store::open(&path, StoreOptions::default()).expect_err("a directory is no database");
    assert!(
        matches!(&err, StoreError::NotWritable { path: p, .. } if p == &path),
        "{err:?}"
    );
}

#[test]
fn a_full_disk_fails_the_whole_group_with_disk_full() {
    let dir = TempDir::new("full");
    let path = dir.db();
    let options = StoreOptions {
        max_size_bytes: Some(256 * 1024),
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open(&path, options).expect("store opens")).workspace(WsKey::DEFAULT);
    store
        .submit(vec![Change::UpsertCustomer(customer(
            "u1", "Ana", "a@x.io", "+491",
        ))])
        .wait()
        .expect("a small write fits");
    let big = "x".repeat(64 * 1024);
    let changes = (0..16)
        .map(|seq| Change::AppendMessage {
            chat: ChatId::from("c1"),
            seq,
            message: message(1, &big),
        })
        .collect();
    let err = store
        .submit(changes)
        .wait()
        .expect_err("1 MiB does not fit in 256 KiB");
    assert!(
        matches!(&err, StoreError::DiskFull { path: p } if p == &path),
        "{err:?}"
    );
    assert_eq!(
        count(&path, "messages"),
        0,
        "nothing of the failed group was kept"
    );
    assert_eq!(count(&path, "customers"), 1, "what was acknowledged before stays");
    let stats = store.shared().stats();
    assert_eq!((stats.groups_failed, stats.stopped), (1, true), "{stats:?}");
    assert_eq!(
        store.shared().commit_durations().count(),
        1,
        "only committed groups are timed"
    );

    // After a failure nothing more is written, however small: the file stays a prefix of
    // what happened, and a write point past the failure is not reached.
    let later = store.submit(vec![Change::UpsertCustomer(customer(
        "u2", "Ben", "b@x.io", "+492",
    ))]);
    assert!(matches!(later.wait(), Err(StoreError::DiskFull { .. })));
    assert_eq!(count(&path, "customers"), 1);
    let point = store.write_point();
    assert!(!point.is_reached());
    let reached = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(point.reached());
    assert!(matches!(reached, Err(StoreError::DiskFull { .. })), "{reached:?}");
}

// --- Writing -------------------------------------------------------------------------------

fn a_receipt_completes_only_once_a_fresh_connection_can_read_the_change(db: &Db) {
    let store = db.open();
    for i in 0..20 {
        let id = format!("u{i}");
        store
            .submit(vec![Change::UpsertCustomer(customer(&id, "N", "n@x.io", "+1"))])
            .wait()
            .expect("committed");
        let seen = db.count_in(&format!("SELECT count(*) FROM customers WHERE id = '{id}'"));
        assert_eq!(seen, 1, "{id} was acknowledged before it was readable");
    }
}

#[tokio::test]
async fn a_receipt_can_be_awaited_on_sqlite() {
    a_receipt_can_be_awaited(Db::sqlite("await")).await;
}

/// Also proves that the synchronous PostgreSQL client is never run on the async test's
/// thread (tokio would panic): opening, reading and the server's start all move off it.
#[tokio::test]
async fn a_receipt_can_be_awaited_on_postgres() {
    a_receipt_can_be_awaited(Db::postgres()).await;
}

async fn a_receipt_can_be_awaited(db: Db) {
    let store = db.open();
    store
        .submit(vec![Change::SetAgentLimit {
            agent: AgentId::from("ana"),
            limit: 2,
        }])
        .await
        .expect("committed");
    assert_eq!(
        store.load().expect("loads").agent_limits,
        vec![(AgentId::from("ana"), 2)]
    );
}

fn submissions_queued_behind_a_commit_share_one_group(db: &Db) {
    let store = db.open();
    let lock = WriteLock::take(db);
    let first = store.submit(vec![Change::SetAgentLimit {
        agent: AgentId::from("first"),
        limit: 1,
    }]);
    lock.wait_for_writer(&store);
    let receipts: Vec<_> = (1..100)
        .map(|i| {
            store.submit(vec![Change::SetAgentLimit {
                agent: AgentId::from(format!("a{i}")),
                limit: i,
            }])
        })
        .collect();
    assert_eq!(
        store.shared().stats().pending_submissions,
        100,
        "the first is being written, the rest queue"
    );
    lock.release();
    first.wait().expect("committed");
    for receipt in receipts {
        receipt.wait().expect("committed");
    }
    let stats = store.shared().stats();
    // The first submission's group waited for the lock; the other 99 queued meanwhile.
    assert_eq!(
        (stats.groups_committed, stats.changes_written),
        (2, 100),
        "{stats:?}"
    );
    assert_eq!((stats.pending_submissions, stats.stopped), (0, false));
    let sizes = store.shared().group_sizes();
    assert_eq!((sizes.count(), sizes.sum()), (2, 100.0), "groups of 1 and 99");
    let durations = store.shared().commit_durations();
    assert_eq!(durations.count(), 2, "each commit timed");
    assert!(durations.sum() > 0.0);
    assert_eq!(db.count("agent_limits"), 100);
}

fn a_failed_group_fails_every_receipt_in_it_and_keeps_nothing(db: &Db) {
    let store = db.open();
    let lock = WriteLock::take(db);
    let first = store.submit(vec![Change::SetAgentLimit {
        agent: AgentId::from("x"),
        limit: 1,
    }]);
    lock.wait_for_writer(&store);
    let good = store.submit(vec![Change::SetAgentLimit {
        agent: AgentId::from("ana"),
        limit: 1,
    }]);
    let year_2300 = Utc
        .with_ymd_and_hms(2300, 1, 1, 0, 0, 0)
        .single()
        .expect("valid time");
    let bad = store.submit(vec![Change::AppendMessage {
        chat: ChatId::from("c1"),
        seq: 0,
        message: Message {
            at: year_2300,
            ..message(0, "from the future")
        },
    }]);
    lock.release();
    first.wait().expect("the first group is committed alone");
    let bad_err = bad.wait().expect_err("a timestamp past 2262 cannot be stored");
    assert!(
        matches!(bad_err, StoreError::Unrepresentable { .. }),
        "{bad_err:?}"
    );
    let good_err = good.wait().expect_err("its group failed");
    assert_eq!(good_err.to_string(), bad_err.to_string());
    assert_eq!(db.count("agent_limits"), 1, "only the first group is on disk");
}

fn writing_the_same_changes_twice_leaves_one_row_each(db: &Db) {
    let store = db.open();
    let changes = vec![
        Change::UpsertCustomer(customer("u1", "Ana Lima", "ana@x.io", "+49 151 1111")),
        Change::UpsertChat(chat("c1", "u1", "ana", ChatState::Active, 1, None)),
        Change::AppendMessage {
            chat: ChatId::from("c1"),
            seq: 0,
            message: message(1, "hi"),
        },
        Change::SetAgentLimit {
            agent: AgentId::from("ana"),
            limit: 3,
        },
    ];
    store.submit(changes.clone()).wait().expect("committed");
    store.submit(changes).wait().expect("committed again");
    for table in [
        "customers",
        db.search_index(),
        "chats",
        "messages",
        "agent_limits",
    ] {
        assert_eq!(db.count(table), 1, "{table}");
    }
}

fn dropping_the_store_writes_what_is_queued(db: &Db) {
    {
        let store = db.open();
        for i in 0..50 {
            // Nobody waits: the store's drop must still write it.
            drop(store.submit(vec![Change::SetAgentLimit {
                agent: AgentId::from(format!("a{i}")),
                limit: i,
            }]));
        }
    }
    assert_eq!(db.open().load().expect("loads").agent_limits.len(), 50);
}

// --- Archive search ------------------------------------------------------------------------

/// Three customers, seven chats with distinct `newest_at` but for a tie between c6 and c7.
fn archive(db: &Db) -> WorkspaceStore {
    let store = db.open();
    let closed = ChatState::Closed;
    store
        .submit(vec![
            Change::UpsertCustomer(customer(
                "u1",
                "Ana Lima",
                "ana.lima@mail.com",
                "+49 151 2345 678",
            )),
            Change::UpsertCustomer(customer("u2", "Bruno Souza", "ana@x.io", "+44 20 7946 0958")),
            Change::UpsertCustomer(customer("u3", "Carla Mendes", "carla@y.org", "+4916 0000")),
            Change::UpsertChat(chat("c1", "u1", "ana", closed, 0, Some(10))),
            Change::UpsertChat(chat("c2", "u2", "bo", closed, 1, Some(20))),
            Change::UpsertChat(chat("c3", "u3", "ana", closed, 2, Some(30))),
            Change::UpsertChat(chat("c4", "u1", "bo", ChatState::Active, 40, None)),
            Change::UpsertChat(chat("c5", "u3", "ana", ChatState::Reopened, 50, None)),
            Change::UpsertChat(chat("c6", "u2", "ana", closed, 4, Some(60))),
            Change::UpsertChat(chat("c7", "u3", "bo", closed, 5, Some(60))),
        ])
        .wait()
        .expect("committed");
    store
}

fn query(scope: Scope, limit: u32) -> ArchiveQuery {
    ArchiveQuery {
        agent: AgentId::from("ana"),
        scope,
        state: None,
        text: None,
        before: None,
        limit,
    }
}

fn ids(page: &ArchivePage) -> Vec<&str> {
    page.rows.iter().map(|r| r.chat.as_str()).collect()
}

fn search_text(store: &WorkspaceStore, text: &str) -> Vec<String> {
    let q = ArchiveQuery {
        text: Some(text.into()),
        ..query(Scope::All, 50)
    };
    ids(&store.search_archive(&q).expect("searches"))
        .into_iter()
        .map(String::from)
        .collect()
}

fn r16_all_lists_everyone_s_chats_newest_first_ties_by_id(db: &Db) {
    let store = archive(db);
    let page = store.search_archive(&query(Scope::All, 50)).expect("searches");
    assert_eq!(ids(&page), ["c7", "c6", "c5", "c4", "c3", "c2", "c1"]);
    assert_eq!(page.next, None);
    let first = &page.rows[0];
    assert_eq!(first.profile.name.as_deref(), Some("Carla Mendes"));
    assert_eq!(first.newest_at, t(60));
    assert_eq!(first.closed, Some((t(60), CloseReason::Agent)));
}

fn r16_pages_follow_the_keyset_cursor_without_gaps_or_repeats(db: &Db) {
    let store = archive(db);
    let mut q = query(Scope::All, 2);
    let mut pages = Vec::new();
    loop {
        let page = store.search_archive(&q).expect("searches");
        pages.push(ids(&page).into_iter().map(String::from).collect::<Vec<_>>());
        match page.next {
            Some(next) => q.before = Some(next),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [vec!["c7", "c6"], vec!["c5", "c4"], vec!["c3", "c2"], vec!["c1"]]
    );
    // A chat closed after the first page was read does not shift the later pages.
    store
        .submit(vec![Change::UpsertChat(chat(
            "c8",
            "u1",
            "ana",
            ChatState::Closed,
            6,
            Some(70),
        ))])
        .wait()
        .expect("committed");
    let second = ArchiveQuery {
        before: Some(ArchiveCursor {
            newest_at: t(60),
            chat: ChatId::from("c6"),
        }),
        ..query(Scope::All, 2)
    };
    assert_eq!(
        ids(&store.search_archive(&second).expect("searches")),
        ["c5", "c4"]
    );
}

fn r16_mine_lists_only_the_agent_s_chats(db: &Db) {
    let store = archive(db);
    let page = store.search_archive(&query(Scope::Mine, 50)).expect("searches");
    assert_eq!(ids(&page), ["c6", "c5", "c3", "c1"]);
    let mine_page_2 = ArchiveQuery {
        before: Some(page.rows[1].cursor()),
        ..query(Scope::Mine, 1)
    };
    let page = store.search_archive(&mine_page_2).expect("searches");
    assert_eq!(ids(&page), ["c3"]);
    assert_eq!(
        page.next,
        Some(ArchiveCursor {
            newest_at: t(30),
            chat: ChatId::from("c3")
        })
    );
}

fn r16_a_state_filter_lists_only_that_state(db: &Db) {
    let store = archive(db);
    let q = |scope, state| ArchiveQuery {
        state: Some(state),
        ..query(scope, 50)
    };
    let ids_of = |q: ArchiveQuery| -> Vec<String> {
        ids(&store.search_archive(&q).expect("searches"))
            .into_iter()
            .map(String::from)
            .collect()
    };
    assert_eq!(
        ids_of(q(Scope::All, ChatState::Closed)),
        ["c7", "c6", "c3", "c2", "c1"]
    );
    assert_eq!(ids_of(q(Scope::All, ChatState::Active)), ["c4"]);
    assert_eq!(ids_of(q(Scope::Mine, ChatState::Reopened)), ["c5"]);
    assert_eq!(ids_of(q(Scope::Mine, ChatState::Active)), Vec::<String>::new());
}

fn r16_name_and_email_match_by_word_prefix(db: &Db) {
    let store = archive(db);
    // "Ana Lima" by name, and "ana@x.io" (Bruno) by email.
    assert_eq!(search_text(&store, "ana"), ["c6", "c4", "c2", "c1"]);
    assert_eq!(search_text(&store, "AN"), ["c6", "c4", "c2", "c1"]);
    assert_eq!(search_text(&store, "carl"), ["c7", "c5", "c3"]);
    assert_eq!(search_text(&store, "ana lim"), ["c4", "c1"]);
    assert_eq!(search_text(&store, "nobody"), Vec::<String>::new());
}

fn r16_full_words_and_whole_emails_match(db: &Db) {
    let store = archive(db);
    assert_eq!(search_text(&store, "Souza"), ["c6", "c2"]);
    assert_eq!(search_text(&store, "ana@x.io"), ["c6", "c2"]);
    assert_eq!(search_text(&store, "carla@y.org"), ["c7", "c5", "c3"]);
    assert_eq!(search_text(&store, "mendes carla"), ["c7", "c5", "c3"]);
}

fn r16_phone_matches_by_digit_prefix_whatever_the_spacing(db: &Db) {
    let store = archive(db);
    assert_eq!(search_text(&store, "+4915"), ["c4", "c1"]);
    assert_eq!(search_text(&store, "+49 1"), ["c7", "c5", "c4", "c3", "c1"]);
    assert_eq!(search_text(&store, "+44 20 7946-0958"), ["c6", "c2"]);
    assert_eq!(search_text(&store, "4916"), ["c7", "c5", "c3"]);
}

fn r16_search_text_is_never_read_as_query_syntax(db: &Db) {
    let store = archive(db);
    assert_eq!(search_text(&store, "@@ --"), Vec::<String>::new());
    assert_eq!(search_text(&store, "ana OR"), Vec::<String>::new());
    assert_eq!(search_text(&store, "\"ana\" NEAR("), Vec::<String>::new());
    assert_eq!(search_text(&store, "souza*"), ["c6", "c2"]);
}

fn r16_search_follows_a_changed_profile(db: &Db) {
    let store = archive(db);
    store
        .submit(vec![Change::UpsertCustomer(customer(
            "u2",
            "Bruna Souza",
            "bruna@x.io",
            "+44 20 7946 0958",
        ))])
        .wait()
        .expect("committed");
    assert_eq!(search_text(&store, "bruna"), ["c6", "c2"]);
    assert_eq!(search_text(&store, "ana@x.io"), Vec::<String>::new());
    assert_eq!(search_text(&store, "ana"), ["c4", "c1"]);
}

/// Adds a customer with her one chat.
fn with_chat(store: &WorkspaceStore, customer: CustomerRecord, chat: ChatRecord) {
    store
        .submit(vec![Change::UpsertCustomer(customer), Change::UpsertChat(chat)])
        .wait()
        .expect("committed");
}

/// Adds Zoë Müller and her one chat, `c8`, to [`archive`]'s.
fn with_diacritics(store: &WorkspaceStore) {
    with_chat(
        store,
        customer("u4", "Zoë Müller", "zoë@exämple.de", "+33 1 0000"),
        chat("c8", "u4", "ana", ChatState::Closed, 6, Some(70)),
    );
}

fn r16_names_match_with_or_without_their_diacritics(db: &Db) {
    let store = archive(db);
    with_diacritics(&store);
    for text in [
        "muller",
        "Müller",
        "MÜLL",
        // The mark typed apart from its letter.
        "Mu\u{308}ller",
        "zoe",
        "Zoë",
        "zoe muller",
        "zoë@exämple.de",
        "zoe@example.de",
    ] {
        assert_eq!(search_text(&store, text), ["c8"], "searching {text:?}");
    }
    // Folding drops marks; it does not spell a letter otherwise.
    assert_eq!(search_text(&store, "mueller"), Vec::<String>::new());
    // Only Latin letters are folded: in Cyrillic, й is a letter of its own.
    with_chat(
        &store,
        customer("u5", "Андрей", "andrei@x.io", "+7 1"),
        chat("c9", "u5", "ana", ChatState::Closed, 7, Some(80)),
    );
    assert_eq!(search_text(&store, "андрей"), ["c9"]);
    assert_eq!(search_text(&store, "андреи"), Vec::<String>::new());
    // A lone mark that counts as a letter is searched for, not read as query syntax.
    assert_eq!(search_text(&store, "\u{345}"), Vec::<String>::new());
}

/// A PostgreSQL database written before version 10 holds its search words with their
/// diacritics; the step to 10 folds them, so its customers are found as new ones are.
#[test]
fn r16_a_version_9_database_finds_names_without_their_diacritics() {
    let db = Db::postgres();
    with_diacritics(&archive(&db));
    let Db::Postgres(server) = &db else {
        unreachable!("a PostgreSQL database")
    };
    let url = server.url();
    super::postgres::on_plain_thread(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connects");
        client
            .batch_execute(
                "UPDATE customers SET search = to_tsvector('simple', 'zoë müller zoë exämple de')
                 WHERE id = 'u4';
                 UPDATE schema_version SET version = 9;",
            )
            .expect("back to version 9, with the words as it wrote them");
    });
    let store = db.open();
    assert_eq!(search_text(&store, "muller"), ["c8"]);
    assert_eq!(search_text(&store, "zoe@example"), ["c8"]);
    assert_eq!(
        search_text(&store, "ana"),
        ["c6", "c4", "c2", "c1"],
        "the others as before"
    );
    assert_eq!(
        db.count_in("SELECT version FROM schema_version"),
        Store::schema_version()
    );
}

#[test]
fn r16_broad_and_narrow_text_plans_give_the_same_pages() {
    let db = Db::sqlite("plans");
    let store = archive(&db);
    let texts = [
        "ana", "carl", "ana lim", "Souza", "ana@x.io", "+4915", "+49 1", "4916", "nobody",
    ];
    for text in texts {
        for scope in [Scope::All, Scope::Mine] {
            for state in [None, Some(ChatState::Closed), Some(ChatState::Reopened)] {
                for limit in [1, 2, 50] {
                    let mut q = ArchiveQuery {
                        text: Some(text.into()),
                        state,
                        ..query(scope, limit)
                    };
                    loop {
                        let run = |broad| {
                            store
                                .store
                                .sqlite_readers()
                                .with(|conn, path| {
                                    archive::search_planned(conn, path, WsKey::DEFAULT, &q, broad)
                                })
                                .expect("searches")
                        };
                        let (narrow, broad) = (run(i64::MAX), run(0));
                        assert_eq!(narrow, broad, "{q:?}");
                        match narrow.next {
                            Some(next) => q.before = Some(next),
                            None => break,
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn match_expressions_quote_every_word() {
    assert_eq!(match_expression("  "), None);
    assert_eq!(match_expression("@@"), None);
    assert_eq!(
        match_expression("+49 (151) 23-4"),
        Some("phone : \"49151234\"*".into())
    );
    assert_eq!(
        match_expression("ana say\"s"),
        Some("{name email} : (\"ana\"* \"say\"\"s\"*)".into())
    );
}

// --- History -------------------------------------------------------------------------------

fn history_pages_run_newest_first_to_the_oldest(db: &Db) {
    let store = db.open();
    let chat_id = ChatId::from("c1");
    let mut changes: Vec<_> = (0..5)
        .map(|seq| Change::AppendMessage {
            chat: chat_id.clone(),
            seq,
            message: message(seq as i64, &format!("m{seq}")),
        })
        .collect();
    changes.push(Change::AppendMessage {
        chat: ChatId::from("other"),
        seq: 0,
        message: Message {
            author: Author::Agent {
                agent: AgentId::from("ana"),
            },
            kind: MessageKind::Template,
            ..message(9, "other chat")
        },
    });
    store.submit(changes).wait().expect("committed");
    let texts = |page: &HistoryPage| {
        page.messages
            .iter()
            .map(|m| m.message.text.clone())
            .collect::<Vec<_>>()
    };
    let first = store.history(&chat_id, None, 2).expect("reads");
    assert_eq!(
        (texts(&first), first.next_before),
        (vec!["m4".into(), "m3".into()], Some(3))
    );
    let second = store.history(&chat_id, first.next_before, 2).expect("reads");
    assert_eq!(
        (texts(&second), second.next_before),
        (vec!["m2".into(), "m1".into()], Some(1))
    );
    let last = store.history(&chat_id, second.next_before, 2).expect("reads");
    assert_eq!((texts(&last), last.next_before), (vec!["m0".into()], None));
    let other = store.history(&ChatId::from("other"), None, 10).expect("reads");
    assert_eq!(
        other.messages[0].message.author,
        Author::Agent {
            agent: AgentId::from("ana")
        }
    );
    assert_eq!(other.messages[0].message.kind, MessageKind::Template);
}

fn a_replayed_message_keeps_its_first_text(db: &Db) {
    let store = db.open();
    let append = |text: &str| Change::AppendMessage {
        chat: ChatId::from("c1"),
        seq: 0,
        message: message(1, text),
    };
    store.submit(vec![append("first")]).wait().expect("committed");
    store.submit(vec![append("second")]).wait().expect("committed");
    let page = store.history(&ChatId::from("c1"), None, 10).expect("reads");
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].message.text, "first");
}

fn load_groups_chats_under_their_customer_oldest_first(db: &Db) {
    let store = archive(db);
    let snapshot = store.load().expect("loads");
    let chats_of: Vec<(String, Vec<String>)> = snapshot
        .customers
        .iter()
        .map(|c| {
            (
                c.id.to_string(),
                c.chats.iter().map(|ch| ch.id.to_string()).collect(),
            )
        })
        .collect();
    let owned = |id: &str, chats: &[&str]| {
        (
            id.to_owned(),
            chats.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        chats_of,
        [
            owned("u1", &["c1", "c4"]),
            owned("u2", &["c2", "c6"]),
            owned("u3", &["c3", "c7", "c5"])
        ]
    );
}

fn load_refuses_chats_of_an_unknown_customer(db: &Db) {
    let store = db.open();
    store
        .submit(vec![Change::UpsertChat(chat(
            "c1",
            "ghost",
            "ana",
            ChatState::Closed,
            1,
            Some(2),
        ))])
        .wait()
        .expect("committed");
    let err = store.load().expect_err("an orphan chat is damage");
    assert!(
        matches!(&err, StoreError::Corrupt { what, .. } if what.contains("ghost")),
        "{err:?}"
    );
}

/// Frames the write-ahead log at `path` has room for: its file's size (a 32-byte header, then
/// frames of a 24-byte header and a page of 4 KiB) shows the most it ever held.
fn log_frames_high_water(path: &Path) -> u64 {
    let wal = path.with_extension("sqlite-wal");
    fs::metadata(wal).map_or(0, |m| m.len().saturating_sub(32) / (24 + 4096))
}

/// A store at `path` with small groups and a short log: many commits, each past the log's
/// limit soon.
fn short_log_store(path: &Path) -> Arc<Store> {
    let options = StoreOptions {
        durability: Durability::Normal,
        group_cap: 8,
        log_frames: 64,
        ..StoreOptions::default()
    };
    Arc::new(Store::open(path, options).expect("store opens"))
}

/// 4,000 customer writes, submitted without waiting, so that the writer always has the next
/// group queued: the case in which a checkpoint alone never lets the log start over.
fn submit_many(store: &WorkspaceStore) -> Vec<Receipt> {
    (0..4_000)
        .map(|i| {
            store.submit(vec![Change::UpsertCustomer(customer(
                &format!("cu{}", i % 700),
                &format!("Customer {i}"),
                &format!("c{i}@example.com"),
                "+49 151 0000",
            ))])
        })
        .collect()
}

#[test]
fn issue13_the_log_starts_over_while_the_writer_commits_without_pause() {
    let dir = TempDir::new("log-rewind");
    let path = dir.db();
    let store = short_log_store(&path).workspace(WsKey::DEFAULT);
    for receipt in submit_many(&store) {
        receipt.wait().expect("stored");
    }
    let frames = log_frames_high_water(&path);
    assert!(
        frames < 1_000,
        "the log grew to {frames} frames; rewound past 64, it should stay near that"
    );
}

#[test]
fn issue13_the_writer_waits_for_a_slow_checkpoint_rather_than_let_the_log_grow() {
    let dir = TempDir::new("log-wait");
    let path = dir.db();
    let store = short_log_store(&path);
    let turn = store
        .checkpointer
        .as_ref()
        .expect("SQLite checkpoints")
        .turn
        .clone();
    let scoped = Arc::clone(&store).workspace(WsKey::DEFAULT);
    // A checkpoint that takes long (the database file's sync on a busy disk) holds the turn
    // while the writer goes on committing.
    let slow_checkpoint = turn.hold();
    // Submitted from a thread of their own: a checkpoint holds no other lock.
    let receipts = std::thread::spawn(move || submit_many(&scoped))
        .join()
        .expect("submitted");
    let waiting = crate::clock::Stopwatch::start();
    while turn.waits() == 0 {
        assert!(
            waiting.elapsed() < std::time::Duration::from_secs(20),
            "the writer never waited; the log holds {} frames",
            log_frames_high_water(&path)
        );
        std::thread::yield_now();
    }
    let frames = log_frames_high_water(&path);
    assert!(
        frames < 1_000,
        "the log grew to {frames} frames before the writer waited"
    );
    assert_eq!(store.stats().log_waits, 1, "counted for /metrics");
    drop(slow_checkpoint);
    for receipt in receipts {
        receipt.wait().expect("stored");
    }
    let frames = log_frames_high_water(&path);
    assert!(frames < 1_000, "the log grew to {frames} frames");
}

/// The write-ahead log at `path` now, read beside `store`: how many times it has started over
/// (its header's checkpoint sequence number) and the frames it holds. Read in the store's
/// checkpoint turn: while its checkpointer copies, SQLite answers a checkpoint "busy" and no
/// count.
fn log_now(store: &Store, path: &Path) -> (u32, i64) {
    let checkpointer = store.checkpointer.as_ref().expect("SQLite checkpoints");
    let _turn = checkpointer.turn.hold();
    let header = fs::read(path.with_extension("sqlite-wal")).expect("the log is read");
    let restarts = u32::from_be_bytes(header[12..16].try_into().expect("a 32-byte header"));
    let (busy, frames): (i64, i64) = Connection::open(path)
        .expect("raw connection opens")
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("the log is read");
    assert_eq!(busy, 0, "no other checkpoint runs in the turn");
    (restarts, frames)
}

#[test]
fn issue13_a_chat_update_that_moves_no_index_writes_only_the_chat_s_page() {
    let dir = TempDir::new("narrow-update");
    let path = dir.db();
    let whole = Arc::new(Store::open(&path, StoreOptions::default()).expect("store opens"));
    let store = Arc::clone(&whole).workspace(WsKey::DEFAULT);
    // Enough chats, owners and customers that each index spans many pages.
    let changes: Vec<Change> = (0..3_000)
        .flat_map(|i| {
            [
                Change::UpsertCustomer(customer(&format!("u{i}"), "Ana", "a@x.io", "+49 1")),
                Change::UpsertChat(chat(
                    &format!("c{i}"),
                    &format!("u{i}"),
                    &format!("agent{}", i % 300),
                    ChatState::Active,
                    i,
                    None,
                )),
            ]
        })
        .collect();
    store.submit(changes).wait().expect("committed");
    // The frames one commit of `change` writes: the log may start over at the commit (the
    // checkpoints copied it all back), and then holds only that commit's frames.
    let frames_of = |change: Change| {
        let (restarts, before) = log_now(&whole, &path);
        store.submit(vec![change]).wait().expect("committed");
        let (restarted, after) = log_now(&whole, &path);
        if restarted == restarts {
            after - before
        } else {
            after
        }
    };

    // A customer's message: only `last_customer_message_at` changes.
    let mut replied = chat("c1500", "u1500", "agent0", ChatState::Active, 1500, None);
    replied.last_customer_message_at = Some(t(1_600));
    let frames = frames_of(Change::UpsertChat(replied));
    assert!(
        frames <= 2,
        "{frames} frames: the chat's own page (and at most one more), not an entry in each index"
    );
    // Closing moves it in every index.
    let closed = chat("c1500", "u1500", "agent0", ChatState::Closed, 1500, Some(1_700));
    let frames = frames_of(Change::UpsertChat(closed));
    assert!(frames >= 4, "{frames} frames: each index's page is written");
    let page = store
        .search_archive(&ArchiveQuery {
            state: Some(ChatState::Closed),
            ..query(Scope::All, 50)
        })
        .expect("searches");
    assert_eq!(ids(&page), ["c1500"], "the state index follows the close");
}

on_both_backends!(
    a_receipt_completes_only_once_a_fresh_connection_can_read_the_change,
    submissions_queued_behind_a_commit_share_one_group,
    a_failed_group_fails_every_receipt_in_it_and_keeps_nothing,
    reopen_keeps_everything_acknowledged,
    issue13_every_stage_of_a_chat_comes_back_as_it_was_written,
    writing_the_same_changes_twice_leaves_one_row_each,
    dropping_the_store_writes_what_is_queued,
    r16_all_lists_everyone_s_chats_newest_first_ties_by_id,
    r16_pages_follow_the_keyset_cursor_without_gaps_or_repeats,
    r16_mine_lists_only_the_agent_s_chats,
    r16_a_state_filter_lists_only_that_state,
    r16_name_and_email_match_by_word_prefix,
    r16_full_words_and_whole_emails_match,
    r16_phone_matches_by_digit_prefix_whatever_the_spacing,
    r16_search_text_is_never_read_as_query_syntax,
    r16_search_follows_a_changed_profile,
    r16_names_match_with_or_without_their_diacritics,
    history_pages_run_newest_first_to_the_oldest,
    a_replayed_message_keeps_its_first_text,
    load_groups_chats_under_their_customer_oldest_first,
    load_refuses_chats_of_an_unknown_customer,
);
