//! R27: every row belongs to a workspace. A database of version 4 becomes the `default`
//! workspace's, and rows of another workspace in the same file stay out of every read and
//! write of this one.

use super::agents::agent;
use super::*;
use crate::core::queue::Skills;

/// The tables of a version 4 database, the full-text index last (its rowids are
/// `customers.key`, so it is copied with them).
const V4_TABLES: [&str; 9] = [
    "customers",
    "chats",
    "messages",
    "analytics_events",
    "agent_limits",
    "agent_skills",
    "outbox",
    "agents",
    "customer_search",
];

/// A snapshot in a form that compares: customers with their chats, then the rest as loaded.
type Contents = (
    Vec<(CustomerRecord, Vec<ChatRecord>)>,
    Vec<Event>,
    Vec<OutboxRecord>,
    Vec<AgentRecord>,
    Vec<(AgentId, u32)>,
    Vec<(AgentId, Skills)>,
);

fn contents(s: Snapshot) -> Contents {
    let customers = s
        .customers
        .iter()
        .map(|file| {
            (
                CustomerRecord::of(file),
                file.chats.iter().map(ChatRecord::of).collect(),
            )
        })
        .collect();
    (
        customers,
        s.events,
        s.outbox,
        s.agents,
        s.agent_limits,
        s.agent_skills,
    )
}

fn outbox_entry(id: u64, chat: &str, seq: u64) -> OutboxRecord {
    OutboxRecord {
        id,
        customer: CustomerId::from("u1"),
        chat: ChatId::from(chat),
        seq: Some(seq),
        message: format!("{{\"text\":\"reply {id}\"}}"),
        idempotency_key: format!("sb-{id}-boot"),
        attempts: 2,
        next_at: Some(t(90)),
        last_error: Some("timeout".into()),
        failed: None,
    }
}

/// The archive of `archive()` plus a row in every other table: history, KPI events, an
/// agent with a live limit and skills, and the outbox.
fn everything(db: &Db) -> WorkspaceStore {
    let store = archive(db);
    let mut changes: Vec<Change> = (0..3)
        .map(|seq| Change::AppendMessage {
            chat: ChatId::from("c4"),
            seq,
            message: message(40 + seq as i64, &format!("m{seq}")),
        })
        .collect();
    changes.extend([
        Change::Analytics(Event {
            at: t(41),
            agent: AgentId::from("bo"),
            channel: Channel::Whatsapp,
            queue: None,
            kind: EventKind::Accepted {
                waited_ms: 900,
                to_accept_ms: 300,
                within_sla: Some(true),
            },
        }),
        Change::UpsertAgent(agent("cy", 4, Some("cy-token"))),
        Change::SetAgentLimit {
            agent: AgentId::from("ana"),
            limit: 7,
        },
        Change::SetAgentSkills {
            agent: AgentId::from("ana"),
            skills: [("billing".to_owned(), 3)].into_iter().collect(),
        },
        Change::Outbox(outbox_entry(1, "c4", 2)),
        Change::Outbox(outbox_entry(2, "c4", 1)),
    ]);
    store.submit(changes).wait().expect("committed");
    store
}

/// Every read the store answers for its workspace, gathered to compare before and after.
#[derive(PartialEq, Debug)]
struct Reads {
    contents: Contents,
    searches: Vec<Vec<String>>,
    pages: Vec<Vec<String>>,
    history: HistoryPage,
    messages: Vec<Message>,
    chat: Option<(ChatRecord, Option<CustomerRecord>)>,
    newest_chat: Option<ChatId>,
}

fn reads(store: &WorkspaceStore) -> Reads {
    // Each text by both plans (every match is "broad" with a threshold of 0).
    let searches = ["ana", "lima", "zed", "+49 151", "carla@y.org"]
        .into_iter()
        .flat_map(|text| [(text, 0), (text, i64::MAX)])
        .map(|(text, broad)| {
            let q = ArchiveQuery {
                text: Some(text.into()),
                ..query(Scope::All, 50)
            };
            // PostgreSQL plans with the arguments: it has one plan to run.
            let page = if store.store.is_postgres() {
                store.search_archive(&q)
            } else {
                store
                    .store
                    .sqlite_readers()
                    .with(|conn, path| archive::search_planned(conn, path, WsKey::DEFAULT, &q, broad))
            }
            .expect("searches");
            ids(&page).into_iter().map(String::from).collect()
        })
        .collect();
    let pages = [
        query(Scope::All, 50),
        query(Scope::Mine, 50),
        ArchiveQuery {
            state: Some(ChatState::Closed),
            ..query(Scope::All, 50)
        },
    ]
    .iter()
    .map(|q| {
        let page = store.search_archive(q).expect("searches");
        ids(&page).into_iter().map(String::from).collect()
    })
    .collect();
    Reads {
        contents: contents(store.load().expect("loads")),
        searches,
        pages,
        history: store.history(&ChatId::from("c4"), None, 10).expect("reads"),
        messages: store.messages(&ChatId::from("c4")).expect("reads"),
        chat: store.chat(&ChatId::from("c4")).expect("reads"),
        newest_chat: store
            .newest_chat_on(&CustomerId::from("u1"), Channel::Whatsapp)
            .expect("reads"),
    }
}

#[test]
fn r27_a_version_4_database_migrates_into_the_default_workspace() {
    // Rows as this build writes them: version 5 changed no column's meaning, so they are
    // what the build of version 4 wrote too.
    let written = Db::sqlite("ws-written");
    let Db::Sqlite(written_dir) = &written else {
        unreachable!("a SQLite database")
    };
    let expected = {
        let store = everything(&written);
        let expected = reads(&store);
        drop(store);
        expected
    };

    let dir = TempDir::new("ws-v4");
    let path = dir.db();
    fs::create_dir_all(path.parent().expect("a data directory")).expect("created");
    {
        let conn = Connection::open(&path).expect("raw connection opens");
        for sql in &schema::MIGRATIONS[..4] {
            conn.execute_batch(sql).expect("an old migration runs");
        }
        conn.pragma_update(None, "user_version", 4).expect("version set");
        conn.execute(
            "ATTACH DATABASE ?1 AS written",
            [written_dir.db().to_string_lossy()],
        )
        .expect("attached");
        let tables: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_schema
                 WHERE type = 'table' AND name NOT LIKE 'customer\\_search\\_%' ESCAPE '\\'
                 ORDER BY name",
            )
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("lists the tables");
        let mut listed: Vec<String> = V4_TABLES.iter().map(|t| t.to_string()).collect();
        listed.sort();
        assert_eq!(tables, listed, "every table of version 4 gets rows");
        for table in V4_TABLES {
            let columns: Vec<String> = conn
                .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
                .expect("lists the columns");
            // The rowids of the tables without an integer key of their own: the index's
            // rowids are `customers.key`, and the archive reads chats by rowid.
            let columns = match table {
                "chats" | "customer_search" => format!("rowid, {}", columns.join(", ")),
                _ => columns.join(", "),
            };
            conn.execute_batch(&format!(
                "INSERT INTO main.{table} ({columns}) SELECT {columns} FROM written.{table}"
            ))
            .expect("rows of version 4 written");
            assert!(count(&path, table) > 0, "{table} has rows");
        }
    }

    let store = open(&path);
    let raw = Connection::open(&path).expect("raw connection opens");
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("reads the version");
    assert_eq!(version, Store::schema_version());
    let default: (i64, String, String) = raw
        .query_row("SELECT key, id, state FROM workspaces", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("one workspace");
    assert_eq!(default, (WsKey::DEFAULT.get(), "default".into(), "active".into()));
    for table in V4_TABLES.iter().filter(|t| **t != "customer_search") {
        let elsewhere: i64 = raw
            .query_row(&format!("SELECT count(*) FROM {table} WHERE ws <> 1"), [], |r| {
                r.get(0)
            })
            .expect("counts");
        assert_eq!(elsewhere, 0, "every row of {table} is the default workspace's");
    }
    assert_eq!(reads(&store), expected);
    assert_eq!(reads(&store).history.messages.len(), 3, "the history reads back");
    assert_eq!(reads(&store).contents.2.len(), 2, "the outbox reads back");

    // And the migrated tables take new rows, by their new keys.
    store
        .submit(vec![
            Change::UpsertCustomer(customer("u1", "Zed Lima", "zed@x.io", "+1 555")),
            Change::OutboxDone { id: 1 },
        ])
        .wait()
        .expect("committed");
    assert_eq!(search_text(&store, "zed"), ["c4", "c1"]);
    assert_eq!(store.load().expect("loads").outbox, [outbox_entry(2, "c4", 1)]);
}

/// A copy of every default row for workspace 2, with the same ids and keys (but new
/// customer keys, which are the file's rowids), names starting "Zed" and other texts.
const COPY_TO_WORKSPACE_2: &str = r#"
INSERT INTO workspaces (key, id, state, created_at) VALUES (2, 'other', 'active', 0);
INSERT INTO customers (ws, id, name, email, phone, identities, opted_out, pushed, assigned_agent)
    SELECT 2, id, 'Zed ' || name, email, phone, identities, opted_out, pushed, 'w2-agent'
    FROM customers WHERE ws = 1;
INSERT INTO customers (ws, id, name, email, phone, identities, opted_out, pushed)
    VALUES (2, 'w2-only', 'Ana Outsider', 'ana@outside.io', '+49 151 9999', '[]', '[]', '[]');
INSERT INTO customer_search (rowid, ws, name, email, phone)
    SELECT key, 'w2', name, email, phone FROM customers WHERE ws = 2;
INSERT INTO chats (ws, id, customer, channel, state, owner, reopened_by, reopened_at, snooze,
                   created_at, queued_at, last_customer_message_at, closed_at, close_reason,
                   newest_at, routing)
    SELECT 2, id, customer, channel, state, owner, reopened_by, reopened_at, snooze,
           created_at + 1000000000000, queued_at, last_customer_message_at, closed_at,
           close_reason, newest_at + 1000000000000, routing
    FROM chats WHERE ws = 1;
INSERT INTO chats (ws, id, customer, channel, state, owner, created_at, newest_at)
    VALUES (2, 'w2-chat', 'u1', 'whatsapp', 'bot', NULL, 9000000000000000000, 9000000000000000000);
INSERT INTO messages (ws, chat, seq, at, author, agent, kind, text)
    SELECT 2, chat, seq, at, author, agent, kind, 'w2 ' || text FROM messages WHERE ws = 1;
INSERT INTO messages (ws, chat, seq, at, author, agent, kind, text)
    SELECT 2, 'c4', 3, at, author, agent, kind, 'w2 only' FROM messages WHERE ws = 1 AND seq = 0;
INSERT INTO analytics_events (ws, at, agent, channel, kind, reason, waited_ms, to_accept_ms, within_sla, queue)
    SELECT 2, at, agent, channel, kind, reason, waited_ms, to_accept_ms, within_sla, queue
    FROM analytics_events WHERE ws = 1;
INSERT INTO agents (ws, agent, name, role, max_active, queues, skills, channel_limits, token_sha256)
    SELECT 2, agent, 'w2 ' || name, role, max_active, queues, skills, channel_limits, NULL
    FROM agents WHERE ws = 1;
INSERT INTO agent_limits (ws, agent, max_active) SELECT 2, agent, 1 FROM agent_limits WHERE ws = 1;
INSERT INTO agent_skills (ws, agent, skills) SELECT 2, agent, '{}' FROM agent_skills WHERE ws = 1;
INSERT INTO outbox (ws, id, customer, chat, seq, message, idempotency_key, attempts, next_at,
                    last_error, failed)
    SELECT 2, id, customer, chat, seq, 'w2', idempotency_key, attempts, next_at, last_error, failed
    FROM outbox WHERE ws = 1;
"#;

/// Rows of workspace 2, as a fingerprint of every table to see that nothing touched them.
fn workspace_2_rows(path: &Path) -> Vec<String> {
    let raw = Connection::open(path).expect("raw connection opens");
    [
        "SELECT group_concat(id || name || coalesce(assigned_agent, ''), '|') FROM (SELECT * FROM customers WHERE ws = 2 ORDER BY key)",
        "SELECT group_concat(ws || name || phone, '|') FROM (SELECT * FROM customer_search WHERE customer_search MATCH 'ws : w2' ORDER BY rowid)",
        "SELECT group_concat(id || state || newest_at, '|') FROM (SELECT * FROM chats WHERE ws = 2 ORDER BY id)",
        "SELECT group_concat(chat || seq || text || coalesce(delivery, ''), '|') FROM (SELECT * FROM messages WHERE ws = 2 ORDER BY chat, seq)",
        "SELECT group_concat(agent || kind, '|') FROM (SELECT * FROM analytics_events WHERE ws = 2 ORDER BY id)",
        "SELECT group_concat(agent || name, '|') FROM (SELECT * FROM agents WHERE ws = 2 ORDER BY agent)",
        "SELECT group_concat(agent || max_active, '|') FROM (SELECT * FROM agent_limits WHERE ws = 2 ORDER BY agent)",
        "SELECT group_concat(agent || skills, '|') FROM (SELECT * FROM agent_skills WHERE ws = 2 ORDER BY agent)",
        "SELECT group_concat(id || message || attempts, '|') FROM (SELECT * FROM outbox WHERE ws = 2 ORDER BY id)",
    ]
    .iter()
    .map(|sql| {
        raw.query_row(sql, [], |r| r.get::<_, Option<String>>(0))
            .expect("reads")
            .unwrap_or_default()
    })
    .collect()
}

#[test]
fn r27_rows_of_another_workspace_stay_out_of_every_read_and_write_of_the_default_one() {
    let db = Db::sqlite("ws-two");
    let Db::Sqlite(dir) = &db else {
        unreachable!("a SQLite database")
    };
    let store = everything(&db);
    let before = reads(&store);
    Connection::open(dir.db())
        .expect("raw connection opens")
        .execute_batch(COPY_TO_WORKSPACE_2)
        .expect("rows of workspace 2 written");
    let theirs = workspace_2_rows(&dir.db());
    assert!(theirs.iter().all(|rows| !rows.is_empty()), "{theirs:?}");

    assert_eq!(reads(&store), before);
    assert_eq!(
        store
            .history(&ChatId::from("w2-chat"), None, 10)
            .expect("reads")
            .messages,
        []
    );
    assert_eq!(store.chat(&ChatId::from("w2-chat")).expect("reads"), None);
    assert_eq!(
        store
            .newest_chat_on(&CustomerId::from("w2-only"), Channel::Whatsapp)
            .expect("reads"),
        None
    );

    // Writes of the default workspace by the same ids change its rows only.
    store
        .submit(vec![
            Change::UpsertCustomer(customer("u1", "Ana Lima", "new@mail.com", "+49 151 0")),
            Change::UpsertChat(chat("c4", "u1", "bo", ChatState::Closed, 40, Some(70))),
            Change::AppendMessage {
                chat: ChatId::from("c4"),
                seq: 3,
                message: message(43, "m3"),
            },
            Change::SetDelivery {
                chat: ChatId::from("c4"),
                seq: 0,
                delivery: crate::core::chat::Delivery::Read,
                provider_id: Some("wamid.1".into()),
            },
            Change::OutboxAttempt {
                id: 2,
                attempts: 3,
                next_at: t(95),
                error: "again".into(),
            },
            Change::OutboxFailed {
                id: 2,
                reason: "gone".into(),
            },
            Change::OutboxDone { id: 1 },
            Change::UpsertAgent(agent("cy", 9, None)),
            Change::SetAgentLimit {
                agent: AgentId::from("ana"),
                limit: 2,
            },
            Change::SetAgentSkills {
                agent: AgentId::from("ana"),
                skills: Skills::default(),
            },
            Change::RemoveAgent {
                agent: AgentId::from("cy"),
            },
        ])
        .wait()
        .expect("committed");
    assert_eq!(workspace_2_rows(&dir.db()), theirs);
    let after = store.load().expect("loads");
    assert_eq!(after.outbox.len(), 1);
    assert_eq!(after.outbox[0].failed.as_deref(), Some("gone"));
    assert_eq!(after.agent_limits, [(AgentId::from("ana"), 2)]);
    assert_eq!(search_text(&store, "new@mail.com"), ["c4", "c1"]);
    let texts: Vec<String> = store
        .messages(&ChatId::from("c4"))
        .expect("reads")
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["m0", "m1", "m2", "m3"]);
}

/// The same ids in workspace `ws` as in every other: customer `u1` with chat `c1`, its
/// messages, a KPI event, agent `ana` and outbox item 1, with texts that name `ws`.
fn same_ids_in(ws: i64) -> Vec<Change> {
    let tag = format!("w{ws}");
    vec![
        Change::UpsertCustomer(customer(
            "u1",
            &format!("Ana {tag}"),
            &format!("ana@{tag}.io"),
            "+49 151",
        )),
        Change::UpsertChat(chat("c1", "u1", "ana", ChatState::Closed, 0, Some(10))),
        Change::AppendMessage {
            chat: ChatId::from("c1"),
            seq: 0,
            message: message(1, &format!("hello from {tag}")),
        },
        Change::Analytics(Event {
            at: t(2),
            agent: AgentId::from("ana"),
            channel: Channel::Whatsapp,
            queue: None,
            kind: EventKind::ReopenDeclined,
        }),
        Change::UpsertAgent(agent("ana", u32::try_from(ws).expect("a small key"), None)),
        Change::Outbox(OutboxRecord {
            message: tag.clone(),
            ..outbox_entry(1, "c1", 0)
        }),
    ]
}

fn r27_two_workspaces_in_one_store_read_back_only_their_own(db: &Db) {
    let store = db.open();
    let other = store.store.workspace(WsKey::new(2));
    store.submit(same_ids_in(1)).wait().expect("committed");
    other.submit(same_ids_in(2)).wait().expect("committed");

    for (handle, tag, limit) in [(&store, "w1", 1), (&other, "w2", 2)] {
        let snapshot = handle.load().expect("loads");
        assert_eq!(snapshot.customers.len(), 1, "{tag}");
        assert_eq!(snapshot.customers[0].profile.name, Some(format!("Ana {tag}")));
        assert_eq!(snapshot.customers[0].chats.len(), 1, "{tag}");
        assert_eq!(snapshot.events.len(), 1, "{tag}");
        assert_eq!(
            snapshot.agents.iter().map(|a| a.limit).collect::<Vec<_>>(),
            [limit]
        );
        assert_eq!(
            snapshot
                .outbox
                .iter()
                .map(|o| o.message.as_str())
                .collect::<Vec<_>>(),
            [tag]
        );
        // Both workspaces' customers are named Ana: each search finds its own only.
        assert_eq!(search_text(handle, "ana"), ["c1"], "{tag}");
        let q = ArchiveQuery {
            text: Some("ana".into()),
            ..query(Scope::All, 50)
        };
        let names: Vec<_> = handle
            .search_archive(&q)
            .expect("searches")
            .rows
            .into_iter()
            .map(|r| r.profile.name)
            .collect();
        assert_eq!(names, [Some(format!("Ana {tag}"))]);
        let texts: Vec<_> = handle
            .history(&ChatId::from("c1"), None, 10)
            .expect("reads")
            .messages
            .into_iter()
            .map(|e| e.message.text)
            .collect();
        assert_eq!(texts, [format!("hello from {tag}")]);
        let (_, customer) = handle.chat(&ChatId::from("c1")).expect("reads").expect("a chat");
        assert_eq!(
            customer.expect("its customer").profile.name,
            Some(format!("Ana {tag}"))
        );
    }
    // A workspace with nothing stored reads nothing, whatever the others hold.
    let empty = store.store.workspace(WsKey::new(3));
    assert_eq!(contents(empty.load().expect("loads")), Contents::default());
    assert_eq!(search_text(&empty, "ana"), Vec::<String>::new());
    assert_eq!(empty.chat(&ChatId::from("c1")).expect("reads"), None);
    assert_eq!(
        empty
            .newest_chat_on(&CustomerId::from("u1"), Channel::Whatsapp)
            .expect("reads"),
        None
    );
}

fn r27_one_group_commits_many_workspaces_changes_with_one_fsync(db: &Db) {
    let store = db.open();
    let handles: Vec<WorkspaceStore> = (1..=3).map(|ws| store.store.workspace(WsKey::new(ws))).collect();
    // The writer takes a first group and waits for the lock; the three workspaces' changes
    // queue meanwhile and make the next group.
    let lock = WriteLock::take(db);
    let first = store.submit(vec![Change::SetAgentLimit {
        agent: AgentId::from("first"),
        limit: 1,
    }]);
    lock.wait_for_writer(&store);
    let receipts: Vec<_> = handles
        .iter()
        .zip(1..)
        .map(|(handle, ws)| handle.submit(same_ids_in(ws)))
        .collect();
    lock.release();
    first.wait().expect("committed");
    for receipt in receipts {
        receipt.wait().expect("committed");
    }
    let stats = store.shared().stats();
    assert_eq!(
        (stats.groups_committed, stats.changes_written),
        (2, 1 + 3 * 6),
        "one commit (one fsync) for the first, one for all three workspaces: {stats:?}"
    );
    let sizes = store.shared().group_sizes();
    assert_eq!((sizes.count(), sizes.sum()), (2, 4.0), "groups of 1 and 3");
    // Each change was bound to its own submission's workspace.
    for (handle, ws) in handles.iter().zip(1..) {
        let snapshot = handle.load().expect("loads");
        assert_eq!(snapshot.outbox.len(), 1);
        assert_eq!(snapshot.outbox[0].message, format!("w{ws}"));
    }
}

#[test]
fn r27_a_workspace_s_customers_are_read_from_its_own_range_in_key_order() {
    let dir = TempDir::new("ws-plan");
    let store = open(&dir.db());
    for ws in 1..=3 {
        store
            .store
            .workspace(WsKey::new(ws))
            .submit(same_ids_in(ws))
            .wait()
            .expect("committed");
    }
    let plan: Vec<String> = Connection::open(dir.db())
        .expect("raw connection opens")
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            snapshot::customers_in_key_order()
        ))
        .and_then(|mut st| st.query_map([2], |r| r.get::<_, String>(3))?.collect())
        .expect("plans");
    // A range of `(ws, key)`: neither a scan of every workspace's customers nor a sort.
    assert_eq!(plan, ["SEARCH customers USING INDEX customers_by_ws_key (ws=?)"]);
}

fn r27_a_deleted_workspace_s_rows_go_in_batches_and_the_others_stay(db: &Db) {
    let default = everything(db);
    let before = reads(&default);
    let store = default.store.clone();
    let acme_id = crate::ids::WorkspaceId::parse("acme").expect("an id");
    let (acme, created) = store
        .create_workspace(NewWorkspace {
            name: Some("Acme".into()),
            ..NewWorkspace::bare(acme_id, t(0))
        })
        .expect("a new id");
    created.wait().expect("committed");
    assert_eq!(acme, WsKey::new(2), "one more than default's key");
    let closed = ChatState::Closed;
    let mut changes = vec![
        Change::UpsertCustomer(customer(
            "u1",
            "Ana Lima",
            "ana.lima@mail.com",
            "+49 151 2345 678",
        )),
        Change::UpsertCustomer(customer("u2", "Bruno Souza", "ana@x.io", "+44 20 7946 0958")),
        Change::UpsertCustomer(customer("u3", "Carla Mendes", "carla@y.org", "+4916 0000")),
        Change::UpsertChat(chat("c1", "u1", "ana", closed, 0, Some(10))),
        Change::UpsertChat(chat("c4", "u1", "bo", ChatState::Active, 40, None)),
        Change::UpsertAgent(agent("cy", 4, Some("cy-token"))),
        Change::SetAgentLimit {
            agent: AgentId::from("cy"),
            limit: 7,
        },
        Change::SetAgentSkills {
            agent: AgentId::from("cy"),
            skills: [("billing".to_owned(), 3)].into_iter().collect(),
        },
        Change::Outbox(outbox_entry(1, "c4", 2)),
    ];
    changes.extend((0..3).map(|seq| Change::AppendMessage {
        chat: ChatId::from("c4"),
        seq,
        message: message(40 + seq as i64, &format!("m{seq}")),
    }));
    store.workspace(acme).submit(changes).wait().expect("committed");
    let fts_rows = || db.count(db.search_index());
    assert_eq!(fts_rows(), 6, "three customers in each workspace");

    // One batch of two: two of acme's three customers (and their index rows) go, and so on.
    store
        .submit_as(acme, vec![Change::PurgeWorkspace { batch: 2 }])
        .wait()
        .expect("committed");
    assert_eq!(db.count_in("SELECT count(*) FROM customers WHERE ws = 2"), 1);
    assert_eq!(db.count_in("SELECT count(*) FROM messages WHERE ws = 2"), 1);
    assert_eq!(fts_rows(), 4);
    assert!(store.holds_rows_of(acme).expect("reads"));
    assert!(
        store.workspace_row_exists(acme).expect("reads"),
        "its row stays until the end"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(store.delete_workspace(acme)).expect("deleted");
    assert!(!store.holds_rows_of(acme).expect("reads"));
    assert!(
        !store.workspace_row_exists(acme).expect("reads"),
        "its row went last"
    );
    assert!(store.workspace_row_exists(WsKey::DEFAULT).expect("reads"));
    assert_eq!(
        store
            .workspace_rows()
            .expect("reads")
            .iter()
            .map(|r| r.key)
            .collect::<Vec<_>>(),
        [WsKey::DEFAULT]
    );
    assert_eq!(fts_rows(), 3);
    assert_eq!(reads(&default), before, "default's rows are untouched");
    // A key is not handed out twice by one store.
    let (globex, _) = store
        .create_workspace(NewWorkspace::bare(
            crate::ids::WorkspaceId::parse("globex").expect("an id"),
            t(1),
        ))
        .expect("a new id");
    assert_eq!(globex, WsKey::new(3));
}

fn r27_a_workspace_s_admin_key_digest_is_stored_with_its_row_and_replaced_by_a_rotation(db: &Db) {
    use crate::security::TokenHash;
    let store = db.open().store.clone();
    let digests = |store: &Store| -> Vec<(String, Option<TokenHash>)> {
        store
            .workspace_rows()
            .expect("reads")
            .into_iter()
            .map(|r| (r.id.as_str().to_owned(), r.admin_key_sha256))
            .collect()
    };
    let acme = crate::ids::WorkspaceId::parse("acme").expect("an id");
    let (key, created) = store
        .create_workspace(NewWorkspace {
            admin_key_sha256: Some(TokenHash::of("first")),
            ..NewWorkspace::bare(acme, t(0))
        })
        .expect("a new id");
    created.wait().expect("committed");
    assert_eq!(
        digests(&store),
        [
            ("default".to_owned(), None),
            ("acme".to_owned(), Some(TokenHash::of("first")))
        ],
        "default's key is the configuration's: no digest"
    );
    store
        .set_workspace_admin_key(key, TokenHash::of("second"))
        .wait()
        .expect("committed");
    drop(store);
    let store = db.open().store.clone();
    assert_eq!(
        digests(&store),
        [
            ("default".to_owned(), None),
            ("acme".to_owned(), Some(TokenHash::of("second")))
        ]
    );
}

/// Settings and the ids a workspace made come back as written, on each backend (PostgreSQL
/// keeps settings as JSONB, so they compare as JSON, not as text).
fn r27_a_workspace_s_settings_and_the_ids_it_made_read_back(db: &Db) {
    let store = db.open().store.clone();
    let acme = crate::ids::WorkspaceId::parse("acme").expect("an id");
    let (key, created) = store
        .create_workspace(NewWorkspace {
            settings: r#"{"queues": {"vip": {}}}"#.into(),
            ..NewWorkspace::bare(acme, t(0))
        })
        .expect("a new id");
    created.wait().expect("committed");
    store
        .workspace(key)
        .submit(same_ids_in(2))
        .wait()
        .expect("committed");
    store
        .set_workspace_settings(key, r#"{"timeouts": {"reopen_window_hours": 12}}"#.into())
        .wait()
        .expect("committed");
    let settings = |store: &Store| -> Vec<serde_json::Value> {
        store
            .workspace_rows()
            .expect("reads")
            .iter()
            .map(|r| serde_json::from_str(&r.settings).expect("settings are JSON"))
            .collect()
    };
    let expected = vec![
        serde_json::json!({}),
        serde_json::json!({"timeouts": {"reopen_window_hours": 12}}),
    ];
    assert_eq!(settings(&store), expected);
    let mut ids = store.workspace(key).ids_made().expect("reads");
    ids.sort();
    assert_eq!(ids, ["c1", "u1"]);
    assert_eq!(
        store.workspace(WsKey::new(3)).ids_made().expect("reads"),
        Vec::<String>::new()
    );
    drop(store);
    assert_eq!(settings(&db.open().store), expected, "after a reopen");
}

on_both_backends!(
    r27_a_workspace_s_settings_and_the_ids_it_made_read_back,
    r27_one_group_commits_many_workspaces_changes_with_one_fsync,
    r27_two_workspaces_in_one_store_read_back_only_their_own,
    r27_a_deleted_workspace_s_rows_go_in_batches_and_the_others_stay,
    r27_a_workspace_s_admin_key_digest_is_stored_with_its_row_and_replaced_by_a_rotation,
    r27_a_workspace_s_limits_read_back_with_its_row,
    r27_the_writer_counts_each_workspace_s_message_bytes_once_and_keeps_the_count,
);

/// Limits come back with the workspace's row, `{}` until set (compared as JSON: PostgreSQL
/// keeps them as JSONB).
fn r27_a_workspace_s_limits_read_back_with_its_row(db: &Db) {
    let store = db.open().store.clone();
    let acme = crate::ids::WorkspaceId::parse("acme").expect("an id");
    let (key, created) = store
        .create_workspace(NewWorkspace::bare(acme, t(0)))
        .expect("a new id");
    created.wait().expect("committed");
    let limits = |store: &Store| -> Vec<serde_json::Value> {
        store
            .workspace_rows()
            .expect("reads")
            .iter()
            .map(|r| serde_json::from_str(&r.limits).expect("limits are JSON"))
            .collect()
    };
    assert_eq!(limits(&store), vec![serde_json::json!({}), serde_json::json!({})]);
    store
        .set_workspace_limits(key, r#"{"max_agents":3,"max_stored_bytes":1000}"#.into())
        .wait()
        .expect("committed");
    let expected = vec![
        serde_json::json!({}),
        serde_json::json!({"max_agents": 3, "max_stored_bytes": 1000}),
    ];
    assert_eq!(limits(&store), expected);
    drop(store);
    assert_eq!(limits(&db.open().store), expected, "after a reopen");
}

fn r27_the_writer_counts_each_workspace_s_message_bytes_once_and_keeps_the_count(db: &Db) {
    let store = db.open();
    let acme_id = crate::ids::WorkspaceId::parse("acme").expect("an id");
    let (acme, created) = store
        .store
        .create_workspace(NewWorkspace::bare(acme_id, t(0)))
        .expect("a new id");
    created.wait().expect("created");
    let acme = store.store.workspace(acme);
    let text_bytes = "hello from w1".len() as u64;
    store.submit(same_ids_in(1)).wait().expect("committed");
    acme.submit(same_ids_in(2)).wait().expect("committed");
    // The same message again (a replay): stored once, so counted once.
    acme.submit(same_ids_in(2)).wait().expect("committed");
    let location = crate::core::chat::Payload::Location {
        latitude: "52.52".into(),
        longitude: "13.40".into(),
        name: None,
        address: None,
    };
    acme.submit(vec![Change::AppendMessage {
        chat: ChatId::from("c1"),
        seq: 1,
        message: Message {
            payload: Some(Box::new(location.clone())),
            ..message(3, "here")
        },
    }])
    .wait()
    .expect("committed");

    assert_eq!(store.stored_bytes(), text_bytes);
    let acme_bytes = acme.stored_bytes();
    assert!(
        acme_bytes > text_bytes + "here".len() as u64,
        "the payload counts too: {acme_bytes}"
    );
    // The payload's JSON as the writer writes it, whatever the column makes of it (JSONB on
    // PostgreSQL): the same count on each backend.
    let payload_bytes = crate::store::codec::payload_json(&location)
        .expect("encodes")
        .len() as u64;
    assert_eq!(acme_bytes, text_bytes + "here".len() as u64 + payload_bytes);
    for (handle, bytes) in [(&store, text_bytes), (&acme, acme_bytes)] {
        assert_eq!(
            store.store.stored_bytes_on_disk(handle.ws()).expect("reads"),
            bytes
        );
    }
    drop((store, acme));
    let store = db.open();
    assert_eq!(store.stored_bytes(), text_bytes, "read back on open");
    assert_eq!(store.store.workspace(acme_key(&store)).stored_bytes(), acme_bytes);
}

fn acme_key(store: &WorkspaceStore) -> WsKey {
    store
        .store
        .workspace_rows()
        .expect("reads")
        .into_iter()
        .find(|row| row.id.as_str() == "acme")
        .expect("acme's row")
        .key
}
