//! R28: at most one node decides for a workspace, and a node that has lost that claim can no
//! longer write. Leases on a private PostgreSQL (one server per test), each `Store` on it a
//! node; times are the database's, and a lease is waited out on the database's clock, never
//! with a fixed sleep. On SQLite, leases are refused and writes are as always.

use std::sync::Barrier;
use std::time::Duration as Ttl;

use super::*;

/// A lease nobody else can take while a test runs.
const LONG: Ttl = Ttl::from_secs(60);

/// A lease short enough to lapse while a test waits, long enough that it does not lapse
/// between a take and the next statement.
const SHORT: Ttl = Ttl::from_secs(1);

/// How often a node tries to take a lease that has not lapsed yet before the test fails.
const TAKE_TRIES: u32 = 50;

fn limit(agent: &str, limit: u32) -> Vec<Change> {
    vec![Change::SetAgentLimit {
        agent: AgentId::from(agent),
        limit,
    }]
}

/// Whether the database holds a live limit for `agent` in workspace `ws`: 1 or 0, read on a
/// fresh connection.
fn limits_of(db: &Db, ws: WsKey, agent: &str) -> i64 {
    db.count_in(&format!(
        "SELECT count(*) FROM agent_limits WHERE ws = {} AND agent = '{agent}'",
        ws.get()
    ))
}

/// The epoch `leases` holds for `ws`, read on a fresh connection.
fn stored_epoch(db: &Db, ws: WsKey) -> i64 {
    db.count_in(&format!("SELECT epoch FROM leases WHERE ws = {}", ws.get()))
}

/// The database's clock now, in microseconds since 1970.
fn database_now(db: &Db) -> i64 {
    db.count_in("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
}

/// Blocks until `ws`'s lease has lapsed by the database's clock (a wait on the database,
/// as long as the lease has left, not a fixed sleep).
fn wait_out_lease(db: &Db, ws: WsKey) {
    db.count_in(&format!(
        "SELECT count(pg_sleep(GREATEST(0, extract(epoch FROM expires_at - clock_timestamp()))))
         FROM leases WHERE ws = {}",
        ws.get()
    ));
}

/// `node` takes `ws`'s lease on `store` as soon as it lapses: tried, and between tries the
/// lease waited out, a bounded number of times.
fn take_once_lapsed(db: &Db, store: &Store, ws: WsKey, node: &str) -> Lease {
    for _ in 0..TAKE_TRIES {
        if let Some(lease) = store.take_lease(ws, node, LONG).expect("the take runs") {
            return lease;
        }
        wait_out_lease(db, ws);
    }
    panic!(
        "{node} could not take workspace {} in {TAKE_TRIES} tries",
        ws.get()
    );
}

#[test]
fn r28_a_node_whose_lease_was_taken_cannot_write() {
    let db = Db::postgres();
    let (a, b) = (
        db.store(StoreOptions::default()),
        db.store(StoreOptions::default()),
    );
    let ws = WsKey::DEFAULT;

    let lease_a = a
        .take_lease(ws, "a", SHORT)
        .expect("runs")
        .expect("nobody holds it");
    assert_eq!((lease_a.node.as_str(), lease_a.epoch), ("a", Epoch::new(1)));
    let on_a = a.fenced_workspace(&lease_a).expect("a store on PostgreSQL");
    assert_eq!(on_a.epoch(), Some(Epoch::new(1)));
    on_a.submit(limit("ana", 1)).wait().expect("A holds the lease");
    assert!(
        b.take_lease(ws, "b", LONG).expect("runs").is_none(),
        "A's lease has not lapsed yet"
    );

    let lease_b = take_once_lapsed(&db, &b, ws, "b");
    assert_eq!((lease_b.node.as_str(), lease_b.epoch), ("b", Epoch::new(2)));

    // A does not know yet: its next change is refused, and nothing of it is written.
    let refused = on_a
        .submit(limit("bob", 2))
        .wait()
        .expect_err("A's lease was taken");
    assert!(
        matches!(
            refused,
            StoreError::Fenced { ws: w, held, current: Some(current) }
                if w == ws && held == Epoch::new(1) && current == Epoch::new(2)
        ),
        "{refused:?}"
    );
    assert_eq!(
        refused.to_string(),
        "workspace 1 is fenced: this node writes under lease epoch 1, the lease is at 2"
    );
    assert_eq!(
        refused.client_detail(),
        "this workspace is now served by another node"
    );
    let point = on_a.write_point();
    assert!(!point.is_reached());
    let reached = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(point.reached());
    assert!(matches!(reached, Err(StoreError::Fenced { .. })), "{reached:?}");
    assert!(
        matches!(
            on_a.submit(limit("cid", 3)).wait(),
            Err(StoreError::Fenced { .. })
        ),
        "every later change under the lost lease is refused too"
    );

    let on_b = b.fenced_workspace(&lease_b).expect("a store on PostgreSQL");
    on_b.submit(limit("dan", 4)).wait().expect("B holds the lease");
    for (agent, rows) in [("ana", 1), ("bob", 0), ("cid", 0), ("dan", 1)] {
        assert_eq!(limits_of(&db, ws, agent), rows, "{agent}");
    }

    // A's store did not stop: its other workspaces (and unfenced writes) carry on.
    a.workspace(WsKey::new(2))
        .submit(limit("eve", 5))
        .wait()
        .expect("another workspace of A's");
    assert_eq!(limits_of(&db, WsKey::new(2), "eve"), 1);
    let stats = a.stats();
    assert_eq!(
        (stats.fenced_submissions, stats.stopped, stats.groups_failed),
        (2, false, 0),
        "{stats:?}"
    );
}

#[test]
fn r28_a_fenced_submission_is_refused_and_the_rest_of_its_group_commits() {
    let db = Db::postgres();
    let (a, b) = (
        db.store(StoreOptions::default()),
        db.store(StoreOptions::default()),
    );
    let (lost, other) = (WsKey::DEFAULT, WsKey::new(2));
    // A zero TTL lapses at once: B takes the workspace over without a wait.
    let lease_a = a.take_lease(lost, "a", Ttl::ZERO).expect("runs").expect("free");
    let on_a = a.fenced_workspace(&lease_a).expect("a store on PostgreSQL");
    let lease_b = b.take_lease(lost, "b", LONG).expect("runs").expect("lapsed");
    assert_eq!(lease_b.epoch, Epoch::new(2));

    // The writer takes a first group and waits for the lock; both workspaces' changes queue
    // meanwhile and make the next group.
    let lock = WriteLock::take(&db);
    let first = a.workspace(WsKey::new(3)).submit(limit("first", 1));
    lock.wait_for_writer(&on_a);
    let fenced = on_a.submit(limit("lost", 2));
    let kept = a.workspace(other).submit(limit("kept", 3));
    lock.release();
    first.wait().expect("committed");
    assert!(matches!(fenced.wait(), Err(StoreError::Fenced { .. })));
    kept.wait()
        .expect("the other workspace's change commits in the same group");

    let stats = a.stats();
    assert_eq!(
        (
            stats.groups_committed,
            stats.changes_written,
            stats.fenced_submissions,
            stats.stopped
        ),
        (2, 2, 1, false),
        "{stats:?}"
    );
    let sizes = a.group_sizes();
    assert_eq!((sizes.count(), sizes.sum()), (2, 3.0), "groups of 1 and 2");
    assert_eq!(
        limits_of(&db, lost, "lost"),
        0,
        "nothing of the fenced submission"
    );
    assert_eq!(limits_of(&db, other, "kept"), 1);
    assert!(matches!(
        on_a.submit(limit("later", 4)).wait(),
        Err(StoreError::Fenced { .. })
    ));
    a.workspace(other)
        .submit(limit("later", 5))
        .wait()
        .expect("the other workspace carries on");
}

#[test]
fn r28_of_concurrent_takes_of_a_lapsed_lease_exactly_one_wins() {
    const NODES: usize = 3;
    const THREADS_PER_NODE: usize = 2;
    const ROUNDS: i64 = 10;
    let db = Db::postgres();
    let nodes: Vec<Arc<Store>> = (0..NODES).map(|_| db.store(StoreOptions::default())).collect();
    let ws = WsKey::DEFAULT;
    nodes[0]
        .take_lease(ws, "first", Ttl::ZERO)
        .expect("runs")
        .expect("free");
    for round in 1..=ROUNDS {
        let start = Barrier::new(NODES * THREADS_PER_NODE);
        let won: Vec<Lease> = std::thread::scope(|s| {
            let takers: Vec<_> = (0..NODES * THREADS_PER_NODE)
                .map(|taker| {
                    let (store, start) = (&nodes[taker % NODES], &start);
                    s.spawn(move || {
                        start.wait();
                        store
                            .take_lease(ws, &format!("n{taker}"), LONG)
                            .expect("the take runs")
                    })
                })
                .collect();
            takers
                .into_iter()
                .filter_map(|t| t.join().expect("the taker returns"))
                .collect()
        });
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        assert_eq!(won[0].epoch, Epoch::new(1 + round), "raised by exactly one");
        assert_eq!(stored_epoch(&db, ws), 1 + round);
        // Lapses now, for the next round to race for.
        let holder = &nodes[0];
        assert!(holder.release_lease(&won[0]).expect("runs"));
    }
}

#[test]
fn r28_renew_extends_the_holder_s_lease_and_answers_none_once_it_was_taken() {
    let db = Db::postgres();
    let (a, b) = (
        db.store(StoreOptions::default()),
        db.store(StoreOptions::default()),
    );
    let ws = WsKey::DEFAULT;

    // Lapsed, but nobody took it: its epoch is still the newest, so it can be renewed.
    let lapsed = a.take_lease(ws, "a", Ttl::ZERO).expect("runs").expect("free");
    assert_eq!(a.lease_holder(ws).expect("runs"), None, "lapsed at once");
    let before = database_now(&db);
    let held = a
        .renew_lease(&lapsed, LONG)
        .expect("runs")
        .expect("nobody took it");
    assert_eq!((held.node.as_str(), held.epoch), ("a", Epoch::new(1)));
    assert!(
        held.expires_at.timestamp_micros() >= before + LONG.as_micros() as i64,
        "extended from the database's now: {} < {before} + {LONG:?}",
        held.expires_at.timestamp_micros()
    );
    assert!(held.expires_at > lapsed.expires_at);
    assert_eq!(b.lease_holder(ws).expect("runs"), Some(held.clone()));
    assert_eq!(b.take_lease(ws, "b", LONG).expect("runs"), None, "A holds it");

    // A hands it over; B takes it under a new epoch; A's renewal is refused.
    assert!(a.release_lease(&held).expect("runs"), "A still held it");
    assert_eq!(b.lease_holder(ws).expect("runs"), None);
    let taken = b.take_lease(ws, "b", LONG).expect("runs").expect("released");
    assert_eq!((taken.node.as_str(), taken.epoch), ("b", Epoch::new(2)));
    assert_eq!(a.renew_lease(&held, LONG).expect("runs"), None, "lost");
    assert!(!a.release_lease(&held).expect("runs"), "lost already");
    assert_eq!(a.lease_holder(ws).expect("runs"), Some(taken.clone()));

    // The holder's renewal moves its expiry on, by the database's clock.
    let before = database_now(&db);
    let renewed = b
        .renew_lease(&taken, 2 * LONG)
        .expect("runs")
        .expect("B holds it");
    assert_eq!(renewed.epoch, taken.epoch, "a renewal keeps the epoch");
    assert!(renewed.expires_at > taken.expires_at);
    assert!(renewed.expires_at.timestamp_micros() >= before + (2 * LONG).as_micros() as i64);

    // A take by the holder itself raises the epoch too (a restarted node under its name).
    let again = b.take_lease(ws, "b", LONG).expect("runs").expect("B's own");
    assert_eq!(again.epoch, Epoch::new(3));
    assert_eq!(
        b.renew_lease(&renewed, LONG).expect("runs"),
        None,
        "the old epoch is gone"
    );
}

#[test]
fn r28_leases_need_postgres_and_sqlite_writes_unfenced() {
    let db = Db::sqlite("leases");
    let store = db.store(StoreOptions::default());
    let ws = WsKey::DEFAULT;
    let lease = Lease {
        ws,
        node: "a".into(),
        epoch: Epoch::new(1),
        expires_at: t(0),
    };
    let refusals = [
        store.take_lease(ws, "a", LONG).map(|_| ()),
        store.renew_lease(&lease, LONG).map(|_| ()),
        store.release_lease(&lease).map(|_| ()),
        store.lease_holder(ws).map(|_| ()),
        store.fenced_workspace(&lease).map(|_| ()),
    ];
    for refusal in refusals {
        let err = refusal.expect_err("no leases on SQLite");
        assert!(matches!(err, StoreError::NeedsPostgres { .. }), "{err:?}");
        assert!(err.to_string().contains("needs the store on PostgreSQL"), "{err}");
    }
    let unfenced = store.workspace(ws);
    assert_eq!(unfenced.epoch(), None);
    unfenced
        .submit(limit("ana", 1))
        .wait()
        .expect("written as always");
    assert_eq!(db.count("agent_limits"), 1);
    assert_eq!(db.count("leases"), 0, "the table is there, and empty");
}

/// A workspace marked `deleting` is never taken to be served again (nor renewed once lapsed,
/// nor brought back by a state change from a stale view); it is taken only to purge, under a
/// new epoch that fences its old owner, and its lease row goes with its own row, after which
/// nothing written under any of its epochs lands and no take makes a new one.
#[test]
fn r27_r28_a_workspace_being_deleted_is_taken_only_to_purge_and_its_lease_goes_with_it() {
    let db = Db::postgres();
    let (a, b) = (
        db.store(StoreOptions::default()),
        db.store(StoreOptions::default()),
    );
    let acme = crate::ids::WorkspaceId::parse("acme").expect("an id");
    let (ws, created) = a
        .create_workspace(NewWorkspace::bare(acme, t(0)))
        .expect("a new id");
    created.wait().expect("created");
    let leases_of = |ws: WsKey| db.count_in(&format!("SELECT count(*) FROM leases WHERE ws = {}", ws.get()));
    assert_eq!(
        a.take_lease_to_purge(ws, "a", LONG).expect("runs"),
        None,
        "an active workspace is not purged"
    );
    let served = a
        .take_lease(ws, "a", LONG)
        .expect("runs")
        .expect("active and free");
    let on_a = a.fenced_workspace(&served).expect("a store on PostgreSQL");
    on_a.submit(limit("ana", 1)).wait().expect("A holds the lease");

    b.set_workspace_state(ws, WorkspaceState::Deleting)
        .wait()
        .expect("marked");
    assert_eq!(
        b.take_lease_to_purge(ws, "b", LONG).expect("runs"),
        None,
        "A still holds it"
    );
    assert!(a.release_lease(&served).expect("runs"), "A lets go");
    assert_eq!(
        b.take_lease(ws, "b", LONG).expect("runs"),
        None,
        "never served again"
    );
    assert_eq!(
        a.renew_lease(&served, LONG).expect("runs"),
        None,
        "a lapsed lease of a workspace being deleted is not renewed"
    );
    a.set_workspace_state(ws, WorkspaceState::Active)
        .wait()
        .expect("runs");
    let state = |s: &Store| {
        s.workspace_rows()
            .expect("reads")
            .into_iter()
            .find(|r| r.key == ws)
            .map(|r| r.state)
    };
    assert_eq!(state(&b), Some(WorkspaceState::Deleting), "never out of deleting");

    let purging = b
        .take_lease_to_purge(ws, "b", LONG)
        .expect("runs")
        .expect("free to purge");
    assert_eq!(purging.epoch, Epoch::new(2));
    assert!(
        matches!(
            on_a.submit(limit("bob", 2)).wait(),
            Err(StoreError::Fenced { .. })
        ),
        "the old owner is fenced from the take on"
    );
    while b.holds_rows_of(ws).expect("reads") {
        b.purge_batch(ws, Some(purging.epoch))
            .wait()
            .expect("purged under the lease");
    }
    assert!(
        !b.drop_lease(&purging).expect("runs"),
        "not while the workspace is there"
    );
    b.delete_workspace_row(ws, Some(purging.epoch))
        .wait()
        .expect("deleted under the lease");
    assert_eq!(state(&a), None);
    assert!(b.drop_lease(&purging).expect("runs"));
    assert_eq!(leases_of(ws), 0, "the lease row goes after the workspace");

    let refused = on_a.submit(limit("cyd", 3)).wait();
    assert!(
        matches!(refused, Err(StoreError::Fenced { current: None, .. })),
        "{refused:?}"
    );
    assert!(!a.holds_rows_of(ws).expect("reads"), "nothing of it landed");
    assert_eq!(b.take_lease(ws, "b", LONG).expect("runs"), None);
    assert_eq!(b.take_lease_to_purge(ws, "b", LONG).expect("runs"), None);
    assert_eq!(
        leases_of(ws),
        0,
        "no take makes a lease for a workspace that is gone"
    );
    assert!(!a.stats().stopped && !b.stats().stopped, "no group failed");
}

#[test]
fn r28_nothing_is_written_under_a_lease_its_holder_released() {
    let db = Db::postgres();
    let a = db.store(StoreOptions::default());
    let ws = WsKey::DEFAULT;
    let lease = a
        .take_lease(ws, "a", LONG)
        .expect("runs")
        .expect("nobody holds it");
    let on_a = a.fenced_workspace(&lease).expect("a store on PostgreSQL");
    on_a.submit(limit("ana", 1)).wait().expect("A holds the lease");

    // Drained and let go of; nobody has taken it since, so its epoch is still the row's.
    assert!(a.release_lease(&lease).expect("runs"));
    assert_eq!(stored_epoch(&db, ws), lease.epoch.get());
    let late = on_a.submit(limit("bob", 2)).wait();
    assert!(
        matches!(late, Err(StoreError::Fenced { current: None, .. })),
        "a write after the release: {late:?}"
    );
    assert_eq!(limits_of(&db, ws, "bob"), 0, "nothing of it landed");
    assert!(!a.stats().stopped, "a refusal, not a failure");

    // Taken again (by anyone): written under the new lease only.
    let again = a.take_lease(ws, "a", LONG).expect("runs").expect("released");
    a.fenced_workspace(&again)
        .expect("a store on PostgreSQL")
        .submit(limit("cyd", 3))
        .wait()
        .expect("under the new lease");
    assert_eq!(limits_of(&db, ws, "cyd"), 1);
}
