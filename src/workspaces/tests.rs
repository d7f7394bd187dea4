//! R27: a workspace is loaded, served and let go of as a whole. With an injected clock and no
//! sleeping: every wait is for an event, with a timeout.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, TimeZone, Utc};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::*;
use crate::clock::ManualClock;
use crate::core::{AgentProfile, Channel, Role};
use crate::engine::fanout::Frame;
use crate::engine::outbound::connector::Connector;
use crate::engine::outbound::{Outbound, Retry};
use crate::engine::EngineConfig;
use crate::protocol::InboundMessage;

/// How long any wait for an event lasts before the test fails.
const WAIT: StdDuration = StdDuration::from_secs(5);

fn clock() -> ManualClock {
    ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .single()
            .expect("a valid start"),
    )
}

fn profile(id: &str, role: Role, limit: u32) -> AgentProfile {
    AgentProfile {
        id: id.into(),
        name: id.to_uppercase(),
        role,
        limit,
        queues: Vec::new(),
        skills: Default::default(),
        channel_limits: Default::default(),
    }
}

/// Reads `outbox` until a push of `kind` comes; fails after [`WAIT`].
/// What a start on `store` is given in these tests: no agents, no settings, no ticker, and
/// sends nowhere.
fn provisioning(store: Arc<crate::store::Store>) -> Provisioning {
    Provisioning {
        store: Some(store),
        clock: Arc::new(clock()),
        default_config: EngineConfig::default(),
        default_settings: Default::default(),
        configured: Default::default(),
        default_agents: Vec::new(),
        others: EngineConfig::default(),
        new_limits: super::Limits::UNLIMITED,
        boards: Handle::current(),
        ticker: false,
        sending: None,
        sends: None,
    }
}

async fn push_of(outbox: &mut mpsc::Receiver<Frame>, kind: &str) -> Value {
    let found = tokio::time::timeout(WAIT, async {
        while let Some(frame) = outbox.recv().await {
            let frame: Value = serde_json::from_slice(&frame).expect("frames are JSON");
            if frame["event"]["kind"] == kind {
                return Some(frame);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(frame)) => frame,
        Ok(None) => panic!("the outbox closed before a {kind} push"),
        Err(_) => panic!("no {kind} push within {WAIT:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r27_an_unloaded_workspace_closes_its_sockets_and_stops_its_timers() {
    let clock = clock();
    let config = EngineConfig::default();
    let accept_timeout = config.accept_timeout;
    let (outbound, dispatches) = Outbound::channel();
    let engine = Engine::new(config, Arc::new(clock.clone()), outbound);
    engine.upsert_agent(profile("ana", Role::Agent, 2), None);
    engine.upsert_agent(profile("sam", Role::Supervisor, 0), None);
    let gone = Arc::downgrade(&engine);
    // Everything a served workspace runs: the ticker, the outbox's sender and the board.
    let workspaces = Workspaces::single(
        engine,
        Background {
            boards: Handle::current(),
            ticker: true,
            outbox: Some(OutboxSending {
                owner: None,
                dispatches,
                connector: Connector::Log,
                retry: Retry::default(),
                sends: None,
            }),
        },
    );
    let id = WorkspaceId::default_workspace();
    let workspace = workspaces.get(&id).expect("default is loaded");
    let engine = workspace.engine().clone();
    let (mut ana, _) = engine.connect(&"ana".into());
    let (sam, _) = engine.connect_supervisor(&"sam".into());

    // A customer writes: Ana is offered the chat, with a timer for the offer.
    engine
        .customer_message(
            Channel::Whatsapp,
            InboundMessage {
                from: "+4915100000001".into(),
                text: "hello".into(),
                ..Default::default()
            },
        )
        .expect("the engine takes the message");
    push_of(&mut ana.outbox, "chat_offered").await;
    // The workspace's ticker fires its timers on the injected clock: the offer expires (R06).
    clock.advance(accept_timeout + Duration::seconds(1));
    engine.timers().changed.notify_one();
    push_of(&mut ana.outbox, "offer_withdrawn").await;
    drop((engine, workspace));

    workspaces.unload(&id, WAIT).await.expect("the workspace unloads");

    // Every socket is told why, with the code that says "reconnect and resume".
    for (who, kick) in [("ana", &ana.kicked), ("sam", &sam.kicked)] {
        let why = tokio::time::timeout(WAIT, kick.kicked())
            .await
            .unwrap_or_else(|_| panic!("{who}'s connection was not closed"));
        assert_eq!(why, CutOff::WorkspaceClosed, "{who}");
        assert_eq!(why.close().code(), 4503);
    }
    // Its tasks have stopped and let go of the engine, so none of its timers can fire again:
    // the ticker, the outbox's sender and the board each held it.
    assert!(
        gone.upgrade().is_none(),
        "something still holds the unloaded workspace's engine"
    );
    // Its paths find nothing now, and it cannot be unloaded twice.
    assert!(workspaces.get(&id).is_none());
    assert!(workspaces.ids().is_empty());
    assert!(matches!(
        workspaces.unload(&id, WAIT).await,
        Err(UnloadError::NotLoaded(_))
    ));
}

#[tokio::test]
async fn r27_a_socket_that_connects_while_its_workspace_closes_is_cut_off_at_once() {
    let (outbound, _) = Outbound::channel();
    let engine = Engine::new(EngineConfig::default(), Arc::new(clock()), outbound);
    engine.upsert_agent(profile("ana", Role::Agent, 2), None);
    engine.upsert_agent(profile("sam", Role::Supervisor, 0), None);
    engine.close_connections(CutOff::WorkspaceClosed);
    // Admitted before the door closed, connected after the sockets were closed: it must not
    // stay open, or unloading would wait for it.
    let (ana, _) = engine.connect(&"ana".into());
    let (sam, _) = engine.connect_supervisor(&"sam".into());
    for kick in [&ana.kicked, &sam.kicked] {
        let why = tokio::time::timeout(WAIT, kick.kicked())
            .await
            .expect("cut off at once");
        assert_eq!(why, CutOff::WorkspaceClosed);
    }
    assert_eq!(engine.fanout().total_connections(), 0);
    assert_eq!(engine.supervision().connections(), 0);
}

#[tokio::test]
async fn r27_a_workspace_being_unloaded_admits_no_one_and_waits_for_those_inside() {
    let (outbound, _) = Outbound::channel();
    let engine = Engine::new(EngineConfig::default(), Arc::new(clock()), outbound);
    let workspaces = Arc::new(Workspaces::single(
        engine,
        Background::board_only(Handle::current()),
    ));
    let id = WorkspaceId::default_workspace();
    let workspace = workspaces.get(&id).expect("default is loaded");
    let inside = workspace.admit().expect("a served workspace admits");
    let unloading = tokio::spawn({
        let (workspaces, id) = (workspaces.clone(), id.clone());
        async move { workspaces.unload(&id, WAIT).await }
    });
    // Its door closes at once; a request that found it just before is not let in.
    let refused = tokio::time::timeout(WAIT, async {
        while workspace.admissions.is_open() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the door was not closed");
    // Still registered while it shuts, so that no second engine is loaded under its id while
    // this one may still write; but it admits no one (its paths answer as an unknown one's).
    assert!(workspaces.get(&id).is_some_and(|w| w.admit().is_none()));
    assert!(workspace.admit().is_none());
    assert!(
        !unloading.is_finished(),
        "unloading did not wait for the request inside"
    );
    drop(inside);
    tokio::time::timeout(WAIT, unloading)
        .await
        .expect("unloading ends once the request has left")
        .expect("no panic")
        .expect("unloaded");
    assert!(workspaces.get(&id).is_none(), "out of the registry once shut");
}

#[tokio::test]
async fn r27_a_workspace_id_is_loaded_once() {
    let engine = || {
        let (outbound, _) = Outbound::channel();
        Engine::new(EngineConfig::default(), Arc::new(clock()), outbound)
    };
    let board = || Background::board_only(Handle::current());
    let workspaces = Workspaces::single(engine(), board());
    let again = Workspace::start(WorkspaceId::default_workspace(), engine(), board());
    assert!(workspaces.insert(again).is_err());
    let acme = WorkspaceId::parse("acme").expect("valid");
    let other = Workspace::start(acme.clone(), engine(), board());
    workspaces.insert(other).expect("a new id is loaded");
    assert_eq!(workspaces.ids(), vec![acme, WorkspaceId::default_workspace()]);
    workspaces.unload_all(WAIT).await.expect("both unload");
    assert!(workspaces.ids().is_empty());
}

/// A database in a directory of its own, removed when dropped.
struct TempDatabase(std::path::PathBuf);

impl TempDatabase {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("switchboard-ws-{name}-{}", std::process::id()));
        // Left by an earlier run with the same process id: nothing of ours.
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.join("switchboard.sqlite")
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r27_unloading_waits_until_what_the_workspace_submitted_is_on_disk() {
    let database = TempDatabase::new("unload");
    let store =
        Arc::new(crate::store::Store::open(&database.path(), Default::default()).expect("the store opens"));
    let (outbound, _) = Outbound::channel();
    let engine = Engine::with_store(
        EngineConfig::default(),
        Arc::new(clock()),
        outbound,
        Some(store.workspace(crate::store::WsKey::DEFAULT)),
    );
    let workspaces = Workspaces::single(engine.clone(), Background::board_only(Handle::current()));
    // Customers write, and nobody waits for their commits.
    for n in 0..50 {
        engine
            .customer_message(
                Channel::Whatsapp,
                InboundMessage {
                    from: format!("+49151000{n:05}"),
                    text: "hello".into(),
                    ..Default::default()
                },
            )
            .expect("the engine takes the message");
    }
    let submitted = store.write_point();
    drop(engine);
    workspaces
        .unload(&WorkspaceId::default_workspace(), WAIT)
        .await
        .expect("the workspace unloads, its changes durable");
    assert!(
        submitted.is_reached(),
        "unload returned before the workspace's last changes were on disk"
    );
}

/// A start after a stop in the middle of a delete finishes it: the workspace marked
/// `deleting` is never loaded, and nothing of it is left.
#[tokio::test]
async fn r27_a_delete_that_a_stop_interrupted_is_finished_on_the_next_start() {
    use crate::clock::Clock;
    use crate::store::{Change, Store, StoreOptions, WorkspaceState, WsKey};
    let dir = std::env::temp_dir().join(format!("switchboard-ws-deleting-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("switchboard.sqlite");
    let acme = WorkspaceId::parse("acme").expect("an id");
    {
        let store = Arc::new(Store::open(&path, StoreOptions::default()).expect("the store opens"));
        let (key, created) = store
            .create_workspace(crate::store::NewWorkspace::bare(acme.clone(), clock().now()))
            .expect("a new id");
        created.await.expect("committed");
        let agent = crate::store::AgentRecord::of(&profile("ana", Role::Agent, 2), None);
        store
            .workspace(key)
            .submit(vec![Change::UpsertAgent(agent)])
            .await
            .expect("committed");
        // Stopped right after it was marked: nothing purged yet.
        store
            .set_workspace_state(key, WorkspaceState::Deleting)
            .await
            .expect("committed");
        assert!(store.holds_rows_of(key).expect("reads"));
    }

    let store = Arc::new(Store::open(&path, StoreOptions::default()).expect("the store opens"));
    let workspaces = Workspaces::open(provisioning(store.clone()))
        .await
        .expect("opens");
    assert_eq!(workspaces.ids(), [WorkspaceId::default_workspace()]);
    let rows = workspaces.rows().await.expect("a registry of the store");
    assert_eq!(rows.iter().map(|r| r.key).collect::<Vec<_>>(), [WsKey::DEFAULT]);
    assert!(!store.holds_rows_of(WsKey::new(2)).expect("reads"));
    workspaces.unload_all(StdDuration::ZERO).await.expect("unloads");
    drop((workspaces, store));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The chat and customer ids a workspace's engine made when a customer of `from` wrote.
fn ids_of(engine: &Engine, from: &str) -> [String; 2] {
    let receipt = engine
        .customer_message(
            Channel::Whatsapp,
            InboundMessage {
                from: from.into(),
                text: "hello".into(),
                ..Default::default()
            },
        )
        .expect("the engine takes the message");
    let chat = receipt.chat_id.expect("a chat");
    [receipt.customer_id.as_str().to_owned(), chat.as_str().to_owned()]
}

/// A suspended workspace is not loaded, so not restored; its ids are read all the same, and
/// no other workspace makes them again, even when the clock starts where the last run's did.
#[tokio::test]
async fn r27_a_suspended_workspace_s_ids_are_not_made_again_for_another() {
    use crate::store::{Store, StoreOptions};
    let dir = std::env::temp_dir().join(format!("switchboard-ws-suspended-ids-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("switchboard.sqlite");
    let acme = WorkspaceId::parse("acme").expect("an id");
    let acme_ids = {
        let store = Arc::new(Store::open(&path, StoreOptions::default()).expect("the store opens"));
        let workspaces = Workspaces::open(provisioning(store.clone()))
            .await
            .expect("opens");
        let key = crate::security::TokenHash::of("acme-admin-key");
        workspaces
            .create(acme.clone(), None, key, Default::default())
            .await
            .expect("created");
        let engine = workspaces.get(&acme).expect("served").engine().clone();
        let ids = ids_of(&engine, "+4915100009001");
        drop(engine);
        // Suspending waits until what acme acknowledged is on disk.
        workspaces.suspend(&acme).await.expect("suspended");
        workspaces.unload_all(StdDuration::ZERO).await.expect("unloads");
        ids
    };

    let store = Arc::new(Store::open(&path, StoreOptions::default()).expect("the store opens"));
    let workspaces = Workspaces::open(provisioning(store.clone()))
        .await
        .expect("opens");
    assert_eq!(workspaces.ids(), [WorkspaceId::default_workspace()]);
    let default = workspaces
        .get(&WorkspaceId::default_workspace())
        .expect("served")
        .engine()
        .clone();
    let made = ids_of(&default, "+4915100009002");
    for id in &made {
        assert!(
            !acme_ids.contains(id),
            "default made {id}, one of suspended acme's {acme_ids:?}"
        );
    }
    drop(default);
    workspaces.unload_all(StdDuration::ZERO).await.expect("unloads");
    drop((workspaces, store));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two registries over one PostgreSQL database (two nodes' platform APIs), each creating the
/// same id at once: neither has the other's row in memory, so the database decides: one
/// creates it, the other answers `Exists` (409), and both stores still write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_two_nodes_creating_one_workspace_at_once_answer_one_created_and_one_exists() {
    use crate::store::postgres::test_server::PgServer;
    use crate::store::{Change, Store, StoreOptions, WorkspaceRow, WsKey};
    let server = PgServer::start();
    let open = || async {
        let store =
            Arc::new(Store::open_postgres(&server.url(), StoreOptions::default()).expect("the store opens"));
        let workspaces = Workspaces::open(provisioning(store.clone()))
            .await
            .expect("opens");
        (store, Arc::new(workspaces))
    };
    let ((a_store, a), (b_store, b)) = (open().await, open().await);
    let acme = WorkspaceId::parse("acme").expect("an id");
    // Each on a task of its own, so that the two creates run on both worker threads at once.
    let create = |workspaces: &Arc<Workspaces>| {
        let (workspaces, acme) = (workspaces.clone(), acme.clone());
        tokio::spawn(async move {
            let key = crate::security::TokenHash::of("acme's admin key");
            workspaces.create(acme, None, key, Default::default()).await
        })
    };
    let (on_a, on_b) = (create(&a), create(&b));
    let (on_a, on_b) = (on_a.await.expect("a task"), on_b.await.expect("a task"));
    let exists =
        |r: &Result<WorkspaceRow, PlatformError>| matches!(r, Err(PlatformError::Exists(id)) if *id == acme);
    assert!(
        (on_a.is_ok() && exists(&on_b)) || (exists(&on_a) && on_b.is_ok()),
        "one created, one exists: {on_a:?}, {on_b:?}"
    );
    for store in [&a_store, &b_store] {
        store
            .workspace(WsKey::DEFAULT)
            .submit(vec![Change::SetAgentLimit {
                agent: "ana".into(),
                limit: 2,
            }])
            .await
            .expect("the writer still writes");
        assert!(!store.stats().stopped);
    }
    a.unload_all(StdDuration::ZERO).await.expect("unloads");
    b.unload_all(StdDuration::ZERO).await.expect("unloads");
}
