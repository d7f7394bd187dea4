//! A store that stopped writing (its first failed group) writes again on a fresh connection
//! when asked, on PostgreSQL only (issue 19): a cluster node's writer session ends while the
//! node is stopped, or the database restarts. What failed stays failed.

use super::*;

fn limit(agent: &str, limit: u32) -> Vec<Change> {
    vec![Change::SetAgentLimit {
        agent: AgentId::from(agent),
        limit,
    }]
}

/// Ends, from another connection, every session of the test's database that `which` (SQL on
/// `pg_stat_activity`) picks, and waits until each is gone; answers how many it ended.
fn end_sessions(db: &Db, which: &str) -> i64 {
    db.count_in(&format!(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND {which}"
    ))
}

/// The outcome of a write point taken earlier, asked now.
fn outcome(point: WritePoint) -> Result<(), StoreError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(point.reached())
}

#[test]
fn issue19_a_writer_whose_session_ended_resumes_on_a_fresh_connection_and_what_failed_stays_failed() {
    let db = Db::postgres();
    let store = db.store(StoreOptions::default());
    let ws = store.workspace(WsKey::DEFAULT);
    ws.submit(limit("before", 1)).wait().expect("committed");

    let writer = format!("application_name = '{}'", store.writer_session());
    assert_eq!(end_sessions(&db, &writer), 1, "the writer's session, by its name");
    let failed = ws
        .submit(limit("lost", 1))
        .wait()
        .expect_err("its session is gone");
    assert!(matches!(failed, StoreError::Postgres { .. }), "{failed:?}");
    assert!(store.stats().stopped);
    let while_stopped = ws.submit(limit("refused", 1));
    let failed_point = ws.write_point();
    assert_eq!(
        while_stopped
            .wait()
            .expect_err("refused while stopped")
            .to_string(),
        failed.to_string()
    );

    store.resume_writing().expect("a fresh connection");
    assert!(
        outcome(ws.write_point()).is_ok(),
        "a point taken after the resume, before anything else is submitted: what a workspace \
         loaded now waits for"
    );
    let stats = store.stats();
    assert!(!stats.stopped);
    assert_eq!(stats.resumes, 1);
    ws.submit(limit("after", 1)).wait().expect("written again");
    assert_eq!(
        ws.load().expect("loads").agent_limits.len(),
        2,
        "before and after, read back; nothing of what failed"
    );
    assert_eq!(db.count("agent_limits"), 2);
    assert_eq!(
        outcome(failed_point)
            .expect_err("failed before the resume stays failed")
            .to_string(),
        failed.to_string()
    );
    assert!(outcome(ws.write_point()).is_ok(), "a point after the resume");
    store.resume_writing().expect("nothing to resume from: at once");
    assert_eq!(store.stats().resumes, 1, "only a stopped writer resumes");
}

#[test]
fn issue19_reads_survive_their_connections_being_ended() {
    let db = Db::postgres();
    let store = db.store(StoreOptions::default());
    let ws = store.workspace(WsKey::DEFAULT);
    ws.submit(limit("ana", 2)).wait().expect("committed");
    ws.load().expect("a read leaves its connection in the pool");

    let readers = format!("application_name <> '{}'", store.writer_session());
    assert!(end_sessions(&db, &readers) >= 1, "the pooled read connection");
    let snapshot = ws.load().expect("read again on a new connection");
    assert_eq!(snapshot.agent_limits.len(), 1);
    assert!(
        store
            .lease_holder(WsKey::DEFAULT)
            .expect("a lease read")
            .is_none(),
        "and the lease statements too"
    );
    assert!(!store.stats().stopped, "the writer's session was not touched");
}

#[test]
fn issue19_sqlite_refuses_to_resume_a_stopped_store() {
    let db = Db::sqlite("sqlite_refuses_to_resume");
    let store = db.store(StoreOptions::default());
    let ws = store.workspace(WsKey::DEFAULT);
    let year_2300 = Utc
        .with_ymd_and_hms(2300, 1, 1, 0, 0, 0)
        .single()
        .expect("valid time");
    let failed = ws
        .submit(vec![Change::AppendMessage {
            chat: ChatId::from("c1"),
            seq: 0,
            message: Message {
                at: year_2300,
                ..message(0, "from the future")
            },
        }])
        .wait()
        .expect_err("a timestamp past 2262 cannot be stored");
    assert!(store.stats().stopped);
    let refused = store.resume_writing().expect_err("one engine restarts instead");
    assert!(matches!(refused, StoreError::NeedsPostgres { .. }), "{refused:?}");
    assert!(store.stats().stopped);
    assert_eq!(store.stats().resumes, 0);
    let later = ws.submit(limit("ana", 1)).wait().expect_err("still stopped");
    assert_eq!(later.to_string(), failed.to_string());
}
