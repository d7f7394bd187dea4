//! R27/R28: creating workspaces when several nodes share one database (issue 19). Each `Store`
//! on one private PostgreSQL is a node; they create workspaces at once from several threads,
//! started together at a barrier. Keys come from the database, a taken id answers `Exists`, and
//! no race fails a group commit: both writers still write afterwards.

use std::collections::BTreeSet;
use std::sync::Barrier;

use super::*;
use crate::ids::WorkspaceId;

/// Creating threads per node.
const THREADS: usize = 4;

/// Workspaces each thread creates.
const EACH: usize = 8;

/// Ids created on both nodes at once, one after the other.
const CONTESTED: usize = 20;

fn id(text: &str) -> WorkspaceId {
    WorkspaceId::parse(text).expect("an id")
}

/// Submits a change to `ws` on `store` and waits for it: the writer still writes, and never
/// stopped.
fn writes(store: &Store, ws: WsKey) {
    store
        .submit_as(
            ws,
            vec![Change::SetAgentLimit {
                agent: AgentId::from("ana"),
                limit: 3,
            }],
        )
        .wait()
        .expect("the writer still writes");
    let stats = store.stats();
    assert!(!stats.stopped, "the writer stopped: {stats:?}");
    assert_eq!(stats.groups_failed, 0, "a group failed: {stats:?}");
}

/// A taken id, in any state, answers `Exists` and writes nothing; a new one is created beside
/// it; the writer carries on either way.
fn r27_a_taken_id_answers_exists_and_the_writer_carries_on(db: &Db) {
    let store = db.store(StoreOptions::default());
    let (acme, created) = store
        .create_workspace(NewWorkspace::bare(id("acme"), t(0)))
        .expect("a new id");
    created.wait().expect("committed");
    for taken in ["acme", "default"] {
        match store.create_workspace(NewWorkspace::bare(id(taken), t(1))) {
            Err(CreateError::Exists(found)) => assert_eq!(found, id(taken)),
            other => panic!("{taken} is taken, yet: {other:?}"),
        }
    }
    store
        .set_workspace_state(acme, WorkspaceState::Deleting)
        .wait()
        .expect("committed");
    assert!(
        matches!(
            store.create_workspace(NewWorkspace::bare(id("acme"), t(2))),
            Err(CreateError::Exists(_))
        ),
        "a workspace being deleted holds its id until its row is gone"
    );
    let (globex, created) = store
        .create_workspace(NewWorkspace::bare(id("globex"), t(3)))
        .expect("a new id");
    created.wait().expect("committed");
    assert_ne!(globex, acme);
    writes(&store, acme);
    writes(&store, globex);
    let ids: Vec<String> = store
        .workspace_rows()
        .expect("reads")
        .into_iter()
        .map(|r| r.id.as_str().to_owned())
        .collect();
    assert_eq!(ids, ["default", "acme", "globex"]);
}

on_both_backends!(r27_a_taken_id_answers_exists_and_the_writer_carries_on);

/// Two nodes, each creating workspaces of distinct ids from several threads at once: every
/// create succeeds, no two workspaces share a key, and both writers still write.
#[test]
fn r28_nodes_creating_workspaces_at_once_get_distinct_keys_and_keep_writing() {
    let db = Db::postgres();
    let nodes = [
        db.store(StoreOptions::default()),
        db.store(StoreOptions::default()),
    ];
    let start = Barrier::new(nodes.len() * THREADS);
    let created: Vec<(WorkspaceId, WsKey, usize)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..nodes.len())
            .flat_map(|node| (0..THREADS).map(move |thread| (node, thread)))
            .map(|(node, thread)| {
                let (store, start) = (&nodes[node], &start);
                s.spawn(move || {
                    start.wait();
                    (0..EACH)
                        .map(|n| {
                            let ws = id(&format!("n{node}-t{thread}-{n}"));
                            let (key, receipt) = store
                                .create_workspace(NewWorkspace::bare(ws.clone(), t(0)))
                                .expect("a distinct id is created");
                            receipt.wait().expect("committed");
                            (ws, key, node)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("a creating thread"))
            .collect()
    });
    assert_eq!(created.len(), nodes.len() * THREADS * EACH);
    let keys: BTreeSet<i64> = created.iter().map(|(_, key, _)| key.get()).collect();
    assert_eq!(keys.len(), created.len(), "a key was handed out twice");
    assert!(!keys.contains(&WsKey::DEFAULT.get()));
    // Every node reads every row, under the key its creator was told.
    for store in &nodes {
        let rows: BTreeSet<(String, i64)> = store
            .workspace_rows()
            .expect("reads")
            .into_iter()
            .filter(|r| !r.id.is_default())
            .map(|r| (r.id.as_str().to_owned(), r.key.get()))
            .collect();
        let told: BTreeSet<(String, i64)> = created
            .iter()
            .map(|(ws, key, _)| (ws.as_str().to_owned(), key.get()))
            .collect();
        assert_eq!(rows, told);
    }
    for (_, key, node) in created.iter().filter(|(ws, ..)| ws.as_str().ends_with("-0")) {
        writes(&nodes[*node], *key);
    }
}

/// Two nodes creating one id at the same moment, many times over: each time exactly one
/// creates it and the other is told it exists; neither writer stops.
#[test]
fn r28_of_two_nodes_creating_one_id_at_once_exactly_one_creates_it_and_both_keep_writing() {
    let db = Db::postgres();
    let nodes = [
        db.store(StoreOptions::default()),
        db.store(StoreOptions::default()),
    ];
    let mut winners = Vec::new();
    for round in 0..CONTESTED {
        let ws = id(&format!("contested-{round}"));
        let start = Barrier::new(nodes.len());
        let answers: Vec<Result<(WsKey, Receipt), CreateError>> = std::thread::scope(|s| {
            let threads: Vec<_> = nodes
                .iter()
                .map(|store| {
                    let (ws, start) = (ws.clone(), &start);
                    s.spawn(move || {
                        start.wait();
                        store.create_workspace(NewWorkspace::bare(ws, t(0)))
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a creating thread"))
                .collect()
        });
        let mut won = Vec::new();
        for (node, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok((key, receipt)) => {
                    receipt.wait().expect("committed");
                    won.push((node, key));
                }
                Err(CreateError::Exists(found)) => assert_eq!(found, ws),
                Err(e) => panic!("round {round}: node {node} failed: {e}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: exactly one node creates {ws}");
        winners.extend(won);
    }
    // Both nodes won some rounds or not: each still writes, to a workspace of its own if it
    // has one, else to `default`.
    for (node, store) in nodes.iter().enumerate() {
        let own = winners.iter().find(|(n, _)| *n == node).map(|(_, key)| *key);
        writes(store, own.unwrap_or(WsKey::DEFAULT));
    }
    let rows = nodes[0].workspace_rows().expect("reads");
    assert_eq!(rows.len(), 1 + CONTESTED, "default and each contested id once");
}

/// A database of version 8 (keys counted by each node in memory) gets its sequence at version
/// 9 starting after the largest key it holds: the next workspace's key is one more.
#[test]
fn r27_a_version_8_database_hands_out_keys_after_its_largest() {
    let db = Db::postgres();
    drop(db.store(StoreOptions::default()));
    let Db::Postgres(server) = &db else {
        unreachable!("a PostgreSQL database")
    };
    let url = server.url();
    super::super::postgres::on_plain_thread(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connects");
        client
            .batch_execute(
                "DROP SEQUENCE workspace_keys;
                 UPDATE schema_version SET version = 8;
                 INSERT INTO workspaces (key, id, state, created_at) VALUES (7, 'acme', 'active', 0);",
            )
            .expect("back to version 8, with a workspace under key 7");
    });
    let store = db.store(StoreOptions::default());
    let (globex, created) = store
        .create_workspace(NewWorkspace::bare(id("globex"), t(0)))
        .expect("a new id");
    created.wait().expect("committed");
    assert_eq!(globex, WsKey::new(8));
    assert_eq!(
        db.count_in("SELECT version FROM schema_version"),
        Store::schema_version()
    );
}
