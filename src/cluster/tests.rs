//! R28 and R29 inside the engine: nodes in one process, each a registry and a placement loop
//! on its own `Store` on one private PostgreSQL, with short leases. Every wait is for a
//! condition, polled with a deadline; time passes on the database's clock and the nodes' own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use super::*;
use crate::clock::{Clock, Stopwatch, SystemClock};
use crate::core::Channel;
use crate::core::ChatState;
use crate::engine::fanout::CutOff;
use crate::engine::EngineConfig;
use crate::ids::ChatId;
use crate::protocol::InboundMessage;
use crate::store::postgres::test_server::PgServer;
use crate::store::{NewWorkspace, Store, StoreError, StoreOptions, WorkspaceState};
use crate::workspaces::{Limits, PlatformError, Provisioning, Workspaces};

/// The tests' lease: short, so that failovers happen within the test.
const LEASE: Duration = Duration::from_millis(600);

/// The tests' placement round.
const ROUND: Duration = Duration::from_millis(200);

/// How long any condition may take to come true before the test fails.
const WAIT: Duration = Duration::from_secs(20);

/// How often a condition is looked at.
const POLL: Duration = Duration::from_millis(10);

fn settings(name: &str, lease: Duration, round: Duration) -> Settings {
    Settings {
        node: name.into(),
        advertise: format!("http://{name}.test:8080"),
        lease,
        round,
    }
}

fn provisioning(store: Arc<Store>) -> Provisioning {
    Provisioning {
        store: Some(store),
        clock: Arc::new(SystemClock),
        default_config: EngineConfig::default(),
        default_settings: Default::default(),
        configured: Default::default(),
        default_agents: Vec::new(),
        others: EngineConfig::default(),
        new_limits: Limits::UNLIMITED,
        boards: Handle::current(),
        ticker: false,
        sending: None,
        sends: None,
    }
}

/// One node: its own store on the cluster's database, its registry and its loop.
struct TestNode {
    name: String,
    node: Option<Node>,
    workspaces: Arc<Workspaces>,
    store: Arc<Store>,
}

impl TestNode {
    async fn start(server: &PgServer, name: &str, lease: Duration, round: Duration) -> TestNode {
        let store =
            Arc::new(Store::open_postgres(&server.url(), StoreOptions::default()).expect("the store opens"));
        let claims = Claims::new(name, store.clone());
        let workspaces = Arc::new(
            Workspaces::open_cluster(provisioning(store.clone()), claims)
                .await
                .expect("the registry opens"),
        );
        assert!(
            workspaces.ids().is_empty(),
            "a cluster node loads nothing by itself"
        );
        let node = Node::start(settings(name, lease, round), workspaces.clone()).expect("a cluster registry");
        TestNode {
            name: name.into(),
            node: Some(node),
            workspaces,
            store,
        }
    }

    fn loaded(&self) -> Vec<String> {
        self.workspaces
            .ids()
            .iter()
            .map(|id| id.as_str().to_owned())
            .collect()
    }

    fn node(&self) -> &Node {
        self.node.as_ref().expect("running")
    }

    fn stats(&self) -> &ClusterStats {
        self.node().claims().stats()
    }

    /// Lets go of everything it still has, without the cluster (after its loop stopped).
    async fn stop(self) {
        if let Some(node) = self.node {
            node.leave().await;
        }
        let _ = self.workspaces.unload_all(Duration::ZERO).await;
    }
}

/// Creates `n` workspaces besides `default` (so `n + 1` active ones), before any node runs.
async fn create_workspaces(server: &PgServer, n: usize) -> Vec<WorkspaceId> {
    let store = Store::open_postgres(&server.url(), StoreOptions::default()).expect("the store opens");
    let mut ids = vec![WorkspaceId::default_workspace()];
    for i in 0..n {
        let id = WorkspaceId::parse(&format!("ws{i}")).expect("an id");
        let (_, created) = store
            .create_workspace(NewWorkspace::bare(id.clone(), SystemClock.now()))
            .expect("a new id");
        created.await.expect("created");
        ids.push(id);
    }
    drop(store);
    ids
}

/// Which nodes have each workspace loaded, by workspace.
fn owners(nodes: &[&TestNode]) -> BTreeMap<String, Vec<String>> {
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in nodes {
        for id in node.loaded() {
            owners.entry(id).or_default().push(node.name.clone());
        }
    }
    owners
}

/// Polls `condition` until it holds; fails naming `what` after [`WAIT`]. Answers how long it
/// took.
async fn until(what: &str, mut condition: impl FnMut() -> bool) -> Duration {
    let start = Stopwatch::start();
    loop {
        if condition() {
            return start.elapsed();
        }
        assert!(start.elapsed() < WAIT, "not within {WAIT:?}: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// A customer writes to `ws` on `node`; answers the chat once it is acknowledged (durable).
async fn acknowledged_chat(node: &TestNode, ws: &WorkspaceId, from: &str) -> ChatId {
    let workspace = node.workspaces.get(ws).expect("served there");
    let engine = workspace.engine().clone();
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
    engine.write_point().reached().await.expect("acknowledged");
    receipt.chat_id.expect("a chat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_placement_spreads_workspaces_and_each_has_one_owner() {
    let server = PgServer::start();
    let all = create_workspaces(&server, 5).await;
    let nodes = [
        TestNode::start(&server, "n1", LEASE, ROUND).await,
        TestNode::start(&server, "n2", LEASE, ROUND).await,
        TestNode::start(&server, "n3", LEASE, ROUND).await,
    ];
    let refs: Vec<&TestNode> = nodes.iter().collect();
    until("6 workspaces, 2 on each of 3 nodes, each loaded once", || {
        let owners = owners(&refs);
        owners.len() == all.len()
            && owners.values().all(|o| o.len() == 1)
            && nodes.iter().all(|n| n.loaded().len() == 2)
    })
    .await;
    // And it stays so: a few rounds later nobody has moved.
    let settled = owners(&refs);
    let rounds = nodes[0].node().claims().rounds().finished();
    until("three more rounds", || {
        nodes[0].node().claims().rounds().finished() >= rounds + 3
    })
    .await;
    assert_eq!(owners(&refs), settled, "placement kept moving workspaces");

    // Every node's directory knows where each workspace is served.
    until("every directory agrees with the placement", || {
        nodes.iter().all(|n| {
            let directory = n.node().directory();
            settled.iter().all(|(ws, owner)| {
                let ws = WorkspaceId::parse(ws).expect("an id");
                let expected = if owner[0] == n.name {
                    Location::Here
                } else {
                    Location::At(format!("http://{}.test:8080", owner[0]))
                };
                directory.locate(&ws) == expected
            })
        })
    })
    .await;
    let unknown = WorkspaceId::parse("nobody").expect("an id");
    assert_eq!(
        nodes[0].node().directory().locate(&unknown),
        Location::Here,
        "no probing"
    );
    assert_eq!(nodes[0].node().directory().node(), "n1");

    // Ready, and the metrics say what the node holds.
    assert!(nodes[0].node().claims().is_ready());
    let metrics = crate::metrics::Metrics::for_workspaces(&nodes[0].workspaces);
    let text = metrics.render().expect("renders");
    for line in [
        "switchboard_cluster_workspaces 2",
        "switchboard_cluster_leases 2",
        "switchboard_cluster_failovers_total 0",
    ] {
        assert!(text.contains(line), "no `{line}` in\n{text}");
    }
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r29_a_dead_node_s_workspaces_are_taken_over_with_what_it_acknowledged() {
    let server = PgServer::start();
    let all = create_workspaces(&server, 3).await;
    let mut nodes = vec![
        TestNode::start(&server, "n1", LEASE, ROUND).await,
        TestNode::start(&server, "n2", LEASE, ROUND).await,
    ];
    until("2 workspaces on each node", || {
        nodes.iter().all(|n| n.loaded().len() == 2)
    })
    .await;
    let dead = nodes.remove(0);
    let survivor = &nodes[0];
    let ws = dead.workspaces.ids()[0].clone();
    let chat = acknowledged_chat(&dead, &ws, "+4915100000001").await;
    let stale = dead.workspaces.get(&ws).expect("loaded").engine().clone();

    // It dies: its loop and watchdog stop, nothing is released, nothing unloaded.
    let died = Stopwatch::start();
    let TestNode {
        node,
        workspaces: dead_workspaces,
        store: dead_store,
        ..
    } = dead;
    drop(node);
    until("the survivor serves every workspace", || {
        survivor.loaded().len() == all.len()
    })
    .await;
    let took = died.elapsed();
    assert!(
        took < LEASE + 2 * ROUND + Duration::from_secs(2),
        "failover took {took:?} (lease {LEASE:?}, round {ROUND:?})"
    );
    assert_eq!(ClusterStats::read(&survivor.stats().failovers), 2);
    let engine = survivor.workspaces.get(&ws).expect("taken over").engine().clone();
    assert_eq!(
        engine.chat_state(&chat),
        Some(ChatState::Queued),
        "the chat the dead node acknowledged is there, queued"
    );
    drop(engine);

    // Fencing: the dead node's engine, were it to wake up, writes nothing.
    stale
        .customer_message(
            Channel::Whatsapp,
            InboundMessage {
                from: "+4915100000002".into(),
                text: "late".into(),
                ..Default::default()
            },
        )
        .expect("the stale engine still takes it in memory");
    match stale.write_point().reached().await {
        Err(StoreError::Fenced { .. }) => {}
        other => panic!("a write of the dead node's engine: {other:?}"),
    }
    assert!(dead_store.stats().fenced_submissions >= 1);
    drop(stale);
    let _ = dead_workspaces.unload_all(Duration::ZERO).await;
    drop((dead_workspaces, dead_store));
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_a_node_that_cannot_renew_stops_deciding() {
    let server = PgServer::start();
    create_workspaces(&server, 1).await;
    let nodes = [
        TestNode::start(&server, "n1", LEASE, ROUND).await,
        TestNode::start(&server, "n2", LEASE, ROUND).await,
    ];
    until("one workspace on each node", || {
        nodes.iter().all(|n| n.loaded().len() == 1)
    })
    .await;
    let (stalled, other) = (&nodes[0], &nodes[1]);
    let ws = stalled.workspaces.ids()[0].clone();

    // Its database calls hang: it can neither renew nor learn that it lost anything.
    stalled.node().pause(true);
    let paused = Stopwatch::start();
    // Never two deciders: whenever the other node has it, the stalled one has let go already.
    let mut both = false;
    until("the other node takes the stalled node's workspace", || {
        let taken = other.workspaces.get(&ws).is_some();
        both |= taken && stalled.workspaces.get(&ws).is_some();
        taken
    })
    .await;
    assert!(!both, "two nodes served {ws} at once");
    let unloaded_after = until("the stalled node let go of it", || stalled.loaded().is_empty()).await;
    assert!(
        paused.elapsed() < LEASE + Duration::from_secs(2),
        "took {:?} ({unloaded_after:?} after the take)",
        paused.elapsed()
    );
    assert_eq!(ClusterStats::read(&stalled.stats().leases_lost), 1);

    // Back: it takes its share again.
    stalled.node().pause(false);
    until("one workspace on each node again", || {
        nodes.iter().all(|n| n.loaded().len() == 1)
    })
    .await;
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_a_graceful_leave_hands_over_at_once() {
    // A long lease: a take-over that waited for it to lapse would be seen.
    let lease = Duration::from_secs(10);
    let round = Duration::from_millis(100);
    let server = PgServer::start();
    let all = create_workspaces(&server, 3).await;
    let mut nodes = vec![
        TestNode::start(&server, "n1", lease, round).await,
        TestNode::start(&server, "n2", lease, round).await,
    ];
    until("2 workspaces on each node", || {
        nodes.iter().all(|n| n.loaded().len() == 2)
    })
    .await;
    let leaving = nodes.remove(0);
    let staying = &nodes[0];
    let ws = leaving.workspaces.ids()[0].clone();
    let chat = acknowledged_chat(&leaving, &ws, "+4915100000003").await;

    // Counted from here: the two nodes may have rebalanced on their start already.
    let claims = leaving.node().claims().clone();
    let before = ClusterStats::read(&claims.stats().hand_overs);
    let left = Stopwatch::start();
    let TestNode { node, workspaces, .. } = leaving;
    node.expect("running").leave().await;
    assert!(workspaces.ids().is_empty(), "it unloaded everything");
    assert_eq!(ClusterStats::read(&claims.stats().hand_overs) - before, 2);
    assert_eq!(claims.count(), 0, "it released every lease");
    until("the staying node serves everything", || {
        staying.loaded().len() == all.len()
    })
    .await;
    let took = left.elapsed();
    assert!(took < lease / 4, "the hand-over took {took:?}, lease {lease:?}");
    assert_eq!(
        ClusterStats::read(&staying.stats().failovers),
        0,
        "released, not lapsed"
    );
    let engine = staying.workspaces.get(&ws).expect("handed over").engine().clone();
    assert_eq!(engine.chat_state(&chat), Some(ChatState::Queued));
    drop(engine);
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_a_joining_node_takes_its_share() {
    let server = PgServer::start();
    let all = create_workspaces(&server, 3).await;
    let first = TestNode::start(&server, "n1", LEASE, ROUND).await;
    until("the first node serves everything", || {
        first.loaded().len() == all.len()
    })
    .await;
    let second = TestNode::start(&server, "n2", LEASE, ROUND).await;
    let mut twice = Vec::new();
    until("2 workspaces on each node", || {
        let owners = owners(&[&first, &second]);
        twice.extend(owners.into_iter().filter(|(_, o)| o.len() > 1));
        first.loaded().len() == 2 && second.loaded().len() == 2
    })
    .await;
    assert!(twice.is_empty(), "loaded on two nodes at once: {twice:?}");
    assert_eq!(ClusterStats::read(&first.stats().hand_overs), 2);
    assert_eq!(ClusterStats::read(&second.stats().failovers), 0);
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_a_node_is_ready_once_it_placed_and_serves_without_default() {
    let server = PgServer::start();
    create_workspaces(&server, 0).await;
    let store =
        Arc::new(Store::open_postgres(&server.url(), StoreOptions::default()).expect("the store opens"));
    let claims = Claims::new("n1", store.clone());
    let workspaces = Arc::new(
        Workspaces::open_cluster(provisioning(store.clone()), claims)
            .await
            .expect("the registry opens"),
    );
    // Served before anything is placed here: no `default` on this node.
    let listener = crate::gateway::bind("127.0.0.1:0".parse().expect("an address")).expect("binds");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(crate::gateway::serve_workspaces(
        listener,
        workspaces.clone(),
        Handle::current(),
        crate::security::Security::default(),
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    let client = reqwest::Client::new();
    let readyz = || async {
        let response = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("answers");
        (response.status().as_u16(), response.text().await.expect("a body"))
    };
    assert_eq!(readyz().await, (503, "placing workspaces".to_owned()));

    let node = Node::start(settings("n1", LEASE, ROUND), workspaces.clone()).expect("a cluster registry");
    let start = Stopwatch::start();
    loop {
        if readyz().await.0 == 200 {
            break;
        }
        assert!(start.elapsed() < WAIT, "not ready within {WAIT:?}");
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        workspaces.ids(),
        [WorkspaceId::default_workspace()],
        "placed in its first round"
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("answers");
    let text = metrics.text().await.expect("a body");
    assert!(text.contains("switchboard_cluster_leases 1"), "{text}");

    let _ = stop.send(());
    serving.await.expect("joins").expect("served");
    node.leave().await;
    let _ = workspaces.unload_all(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_a_write_refused_as_fenced_unloads_the_workspace() {
    // A long lease: only the fencing can make the node let go within the test.
    let lease = Duration::from_secs(10);
    let server = PgServer::start();
    create_workspaces(&server, 0).await;
    let node = TestNode::start(&server, "n1", lease, Duration::from_millis(100)).await;
    let ws = WorkspaceId::default_workspace();
    until("default placed", || node.loaded().len() == 1).await;
    let loaded = node.workspaces.get(&ws).expect("loaded");
    let engine = loaded.engine().clone();
    let first_load = Arc::downgrade(&loaded);
    drop(loaded);

    // A second run under the same name takes the lease again (a restarted node does that),
    // which raises the epoch while the first still has the workspace loaded.
    node.node().pause(true);
    let rogue = Store::open_postgres(&server.url(), StoreOptions::default()).expect("the store opens");
    let taken = rogue
        .take_lease(crate::store::WsKey::DEFAULT, "n1", lease)
        .expect("the take runs")
        .expect("taken");
    engine
        .customer_message(
            Channel::Whatsapp,
            InboundMessage {
                from: "+4915100000004".into(),
                text: "hello".into(),
                ..Default::default()
            },
        )
        .expect("taken in memory");
    match engine.write_point().reached().await {
        Err(StoreError::Fenced { current, .. }) => assert_eq!(current, Some(taken.epoch)),
        other => panic!("a write under the old epoch: {other:?}"),
    }
    drop(engine);
    node.node().pause(false);
    // Unloaded at once. Its next round may take it again (the lease is under its own name)
    // and load it anew, a moment later: what must be gone is the load that was fenced.
    until("the fenced load of the workspace is unloaded", || {
        let current = node.workspaces.get(&ws);
        !current.is_some_and(|w| std::ptr::eq(Arc::as_ptr(&w), first_load.as_ptr()))
    })
    .await;
    assert_eq!(ClusterStats::read(&node.stats().leases_lost), 1);
    let text = crate::metrics::Metrics::for_workspaces(&node.workspaces)
        .render()
        .expect("renders");
    assert!(
        text.contains("switchboard_cluster_fenced_submissions_total 1"),
        "{text}"
    );
    drop(rogue);
    node.stop().await;
}

/// Rounds this slow never come by themselves within a test: whatever is placed was placed by
/// a round asked for.
const SLOW_ROUND: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r28_a_create_answers_once_placed_and_another_node_learns_of_it_when_asked() {
    let server = PgServer::start();
    create_workspaces(&server, 0).await;
    let first = TestNode::start(&server, "n1", SLOW_ROUND * 2, SLOW_ROUND).await;
    until("n1 serves default (its first round)", || {
        first.loaded() == ["default"]
    })
    .await;
    // One node only: its share is every workspace, so the round the create asks for places
    // the new one here. (With more nodes, that round may leave it to another node, which
    // takes it in its next round: meanwhile the workspace answers "moving", 503.)
    let acme = WorkspaceId::parse("acme").expect("an id");
    let key = crate::security::TokenHash::of("acme-admin-key");
    let created = Stopwatch::start();
    first
        .workspaces
        .create(acme.clone(), None, key, Default::default())
        .await
        .expect("created");
    assert!(
        first.workspaces.get(&acme).is_some(),
        "served by the time the create answers ({:?}), not a round ({SLOW_ROUND:?}) later",
        created.elapsed()
    );
    assert_eq!(first.node().directory().locate(&acme), Location::Here);

    // A node that started before the create knows nothing of it until a round reads the table:
    // the gateway asks for one before it answers a request for an unknown id.
    let second = TestNode::start(&server, "n2", SLOW_ROUND * 2, SLOW_ROUND).await;
    let beta = WorkspaceId::parse("beta").expect("an id");
    first
        .workspaces
        .create(beta.clone(), None, key, Default::default())
        .await
        .expect("created");
    let directory = second.node().directory();
    until("n2's first round is done", || second.node().claims().is_ready()).await;
    assert!(
        second.node().claims().rounds().fresh(WAIT).await,
        "a round ran when asked"
    );
    let location = directory.locate(&beta);
    let served_there = second.workspaces.get(&beta).is_some();
    assert!(
        served_there
            || location == Location::At("http://n1.test:8080".into())
            || location == Location::Nowhere,
        "n2 relays beta, serves it, or says it is moving (never not_found); it answered {location:?}"
    );
    second.stop().await;
    first.stop().await;
}

/// Two nodes with `n` workspaces besides `default`, each placed on one of them and both nodes
/// serving some (the placement settled).
async fn two_nodes_serving(
    server: &PgServer,
    n: usize,
    lease: Duration,
) -> (Vec<WorkspaceId>, TestNode, TestNode) {
    let all = create_workspaces(server, n).await;
    let n1 = TestNode::start(server, "n1", lease, ROUND).await;
    let n2 = TestNode::start(server, "n2", lease, ROUND).await;
    until("every workspace placed once, on both nodes", || {
        let owners = owners(&[&n1, &n2]);
        owners.len() == all.len()
            && owners.values().all(|o| o.len() == 1)
            && !n1.loaded().is_empty()
            && !n2.loaded().is_empty()
    })
    .await;
    (all, n1, n2)
}

/// Which of `nodes` has `ws` loaded, and one that has not.
fn owner_and_other<'a>(ws: &WorkspaceId, a: &'a TestNode, b: &'a TestNode) -> (&'a TestNode, &'a TestNode) {
    if a.workspaces.get(ws).is_some() {
        (a, b)
    } else {
        (b, a)
    }
}

/// The store's key of `ws`, as `node` knows it.
async fn key_of(node: &TestNode, ws: &WorkspaceId) -> crate::store::WsKey {
    node.workspaces.row(ws).await.expect("a workspace").key
}

/// Whether the database still has a `workspaces` row under `key`, read through `store`.
fn has_row(store: &Store, key: crate::store::WsKey) -> bool {
    store
        .workspace_rows()
        .expect("reads")
        .iter()
        .any(|r| r.key == key)
}

/// Waits until `node`'s registry answers `not_found` for `ws` (it mirrors the table each
/// round) and has nothing of it loaded.
async fn until_not_found(node: &TestNode, ws: &WorkspaceId) {
    let start = Stopwatch::start();
    loop {
        let gone = matches!(node.workspaces.row(ws).await, Err(PlatformError::NotFound(_)));
        if gone && node.workspaces.get(ws).is_none() {
            return;
        }
        assert!(start.elapsed() < WAIT, "{} still knows {ws}", node.name);
        tokio::time::sleep(POLL).await;
    }
}

/// Why `socket` was cut off, once it is (fails after [`WAIT`]).
async fn closed(socket: &crate::engine::fanout::ConnHandle) -> CutOff {
    tokio::time::timeout(WAIT, socket.kicked.kicked())
        .await
        .expect("the socket is closed")
}

/// A customer writes to `engine` over and over until `stop`; answers how many of those
/// writes were acknowledged (reached the database) and how many were refused.
fn keep_writing(
    engine: Arc<crate::engine::Engine>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(usize, usize)> {
    tokio::spawn(async move {
        let (mut acknowledged, mut refused) = (0, 0);
        let mut n = 0u32;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            n += 1;
            let message = InboundMessage {
                from: format!("+49151{n:08}"),
                text: "still here".into(),
                ..Default::default()
            };
            if engine.customer_message(Channel::Whatsapp, message).is_err() {
                refused += 1;
                continue;
            }
            match engine.write_point().reached().await {
                Ok(()) => acknowledged += 1,
                Err(_) => refused += 1,
            }
        }
        (acknowledged, refused)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r27_r28_a_delete_on_a_node_that_does_not_own_the_workspace_purges_it_under_its_lease() {
    let server = PgServer::start();
    let (all, n1, n2) = two_nodes_serving(&server, 2, LEASE).await;
    let doomed = all[1].clone();
    let (owner, other) = owner_and_other(&doomed, &n1, &n2);
    let key = key_of(other, &doomed).await;
    let engine = owner.workspaces.get(&doomed).expect("loaded").engine().clone();
    let (socket, _) = engine.connect(&"ana".into());
    acknowledged_chat(owner, &doomed, "+4915100000001").await;

    // The owner keeps writing while another node deletes the workspace.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = keep_writing(engine, stop.clone());
    other
        .workspaces
        .delete(&doomed)
        .await
        .expect("deleted through a node that does not own it");
    assert!(
        !has_row(&other.store, key),
        "its row is gone when the delete answers"
    );
    assert!(
        !other.store.holds_rows_of(key).expect("reads"),
        "and every row of it"
    );

    // The owner's socket of it was closed; its engine went on submitting after the answer,
    // and none of that lands.
    assert_eq!(closed(&socket).await, CutOff::WorkspaceClosed);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acknowledged, refused) = writer.await.expect("the writer ran");
    assert!(
        refused > 0,
        "writes after the owner let go are refused ({acknowledged} acknowledged)"
    );
    assert!(
        !owner.store.holds_rows_of(key).expect("reads"),
        "no write of the old owner landed"
    );
    assert!(!has_row(&owner.store, key));
    let view = owner.store.cluster_view(LEASE).expect("reads");
    assert!(
        view.leases.iter().all(|l| l.ws != key),
        "its lease row went with it"
    );

    // Nobody's store stopped, and the other workspaces carry on, on both nodes.
    for node in [&n1, &n2] {
        assert!(!node.store.stats().stopped, "{}'s store stopped", node.name);
        until_not_found(node, &doomed).await;
        for ws in node.workspaces.ids() {
            acknowledged_chat(node, &ws, "+4915100000002").await;
        }
    }
    assert_eq!(owners(&[&n1, &n2]).len(), all.len() - 1);
    assert_eq!(
        owner.node().directory().locate(&doomed),
        Location::Here,
        "answered as unknown"
    );
    match owner.workspaces.delete(&doomed).await {
        Err(PlatformError::NotFound(_)) => {}
        other => panic!("a second delete: {other:?}"),
    }
    n1.stop().await;
    n2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r27_r28_two_deletes_at_once_on_two_nodes_each_succeed_or_find_nothing() {
    let server = PgServer::start();
    let (all, n1, n2) = two_nodes_serving(&server, 2, LEASE).await;
    let doomed = all[2].clone();
    let key = key_of(&n1, &doomed).await;
    let (first, second) = tokio::join!(n1.workspaces.delete(&doomed), n2.workspaces.delete(&doomed));
    let mut done = 0;
    for outcome in [first, second] {
        match outcome {
            Ok(()) => done += 1,
            Err(PlatformError::NotFound(_)) => {}
            Err(e) => panic!("a concurrent delete failed: {e:?}"),
        }
    }
    assert!(done >= 1, "one of them deleted it");
    assert!(!has_row(&n1.store, key) && !n1.store.holds_rows_of(key).expect("reads"));
    for node in [&n1, &n2] {
        assert!(!node.store.stats().stopped);
        until_not_found(node, &doomed).await;
    }
    n1.stop().await;
    n2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r27_r28_a_delete_whose_owner_does_not_let_go_answers_pending_and_finishes_later() {
    // A long lease: the stalled owner keeps it for the whole wait.
    let lease = Duration::from_secs(30);
    let server = PgServer::start();
    let (all, n1, n2) = two_nodes_serving(&server, 1, lease).await;
    let doomed = all[1].clone();
    let (owner, other) = owner_and_other(&doomed, &n1, &n2);
    let key = key_of(other, &doomed).await;
    owner.node().pause(true);
    other
        .node()
        .claims()
        .set_platform_wait(Duration::from_millis(500));
    match other.workspaces.delete(&doomed).await {
        Err(PlatformError::Pending { id, what: "deleted" }) => assert_eq!(id, doomed),
        outcome => panic!("the owner has not let go: {outcome:?}"),
    }
    assert!(
        has_row(&other.store, key),
        "marked, not purged, while the owner holds it"
    );
    let row = other.workspaces.row(&doomed).await.expect("still there");
    assert_eq!(row.state, WorkspaceState::Deleting);
    assert!(
        owner.workspaces.get(&doomed).is_some(),
        "the stalled owner still has it"
    );

    // Once the owner's rounds run again it lets go, and the delete finishes.
    owner.node().pause(false);
    until("the marked workspace is purged", || !has_row(&other.store, key)).await;
    assert!(!other.store.holds_rows_of(key).expect("reads"));
    for node in [&n1, &n2] {
        until_not_found(node, &doomed).await;
        assert!(!node.store.stats().stopped);
    }
    n1.stop().await;
    n2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r27_r28_a_suspend_on_a_node_that_does_not_own_the_workspace_answers_once_no_node_serves_it() {
    let server = PgServer::start();
    let (all, n1, n2) = two_nodes_serving(&server, 2, LEASE).await;
    let paused = all[1].clone();
    let (owner, other) = owner_and_other(&paused, &n1, &n2);
    let key = key_of(other, &paused).await;
    let engine = owner.workspaces.get(&paused).expect("loaded").engine().clone();
    let (socket, _) = engine.connect(&"ana".into());
    drop(engine);
    let chat = acknowledged_chat(owner, &paused, "+4915100000003").await;

    let row = other.workspaces.suspend(&paused).await.expect("suspended");
    assert_eq!(row.state, WorkspaceState::Suspended);
    // Answered once no node serves it.
    assert!(
        owner.workspaces.get(&paused).is_none(),
        "the owner let go before the answer"
    );
    assert_eq!(closed(&socket).await, CutOff::WorkspaceClosed);
    assert_eq!(other.store.lease_holder(key).expect("reads"), None);
    // And nobody takes it again while it is suspended.
    let rounds = n1.node().claims().rounds().finished();
    until("three more rounds", || {
        n1.node().claims().rounds().finished() >= rounds + 3
    })
    .await;
    assert!(
        !owners(&[&n1, &n2]).contains_key(paused.as_str()),
        "loaded while suspended"
    );

    // Resumed: served again, as it was.
    other.workspaces.resume(&paused).await.expect("resumed");
    until("the resumed workspace is served", || {
        owners(&[&n1, &n2])
            .get(paused.as_str())
            .is_some_and(|o| o.len() == 1)
    })
    .await;
    let (server_of, _) = owner_and_other(&paused, &n1, &n2);
    let engine = server_of
        .workspaces
        .get(&paused)
        .expect("loaded")
        .engine()
        .clone();
    assert!(
        engine.chat_state(&chat).is_some(),
        "what it acknowledged before is back"
    );
    n1.stop().await;
    n2.stop().await;
}

/// Ends the writer's session of `node`'s store from another connection (as PostgreSQL does
/// to a session idle in a transaction for too long, or a restart does to every session), and
/// waits until it is gone.
fn end_writer_session(server: &PgServer, node: &TestNode) {
    let (url, name) = (server.url(), node.store.writer_session().to_owned());
    crate::store::postgres::on_plain_thread(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connects");
        let ended: i64 = client
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
                 WHERE application_name = $1",
                &[&name],
            )
            .expect("the sessions are ended")
            .get(0);
        assert_eq!(ended, 1, "one writer session named {name}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r29_a_node_whose_store_stopped_lets_go_resumes_and_takes_its_share_again() {
    let server = PgServer::start();
    let all = create_workspaces(&server, 1).await;
    let nodes = [
        TestNode::start(&server, "n1", LEASE, ROUND).await,
        TestNode::start(&server, "n2", LEASE, ROUND).await,
    ];
    let refs: Vec<&TestNode> = nodes.iter().collect();
    until("one workspace on each node", || {
        nodes.iter().all(|n| n.loaded().len() == 1) && owners(&refs).len() == all.len()
    })
    .await;
    let n1 = &nodes[0];
    let ws = WorkspaceId::parse(&n1.loaded()[0]).expect("an id");
    let kept = acknowledged_chat(n1, &ws, "+4915100000005").await;

    // Its writer's session ends: the next write fails and the store stops writing.
    end_writer_session(&server, n1);
    let engine = n1.workspaces.get(&ws).expect("still served").engine().clone();
    engine
        .customer_message(
            Channel::Whatsapp,
            InboundMessage {
                from: "+4915100000006".into(),
                text: "lost".into(),
                ..Default::default()
            },
        )
        .expect("taken in memory");
    let failed = engine.write_point();
    drop(engine);
    assert!(failed.reached().await.is_err(), "its session is gone");
    assert!(n1.store.stats().stopped);

    // It lets go of its workspace, resumes, and takes a share again; no restart.
    until("n1's store resumed", || n1.store.stats().resumes == 1).await;
    until("n1 serves a workspace again, each loaded once", || {
        let owners = owners(&refs);
        !n1.loaded().is_empty() && owners.len() == all.len() && owners.values().all(|o| o.len() == 1)
    })
    .await;
    assert!(!n1.store.stats().stopped);
    assert_eq!(n1.store.stats().resumes, 1, "resumed once");
    // Whoever serves the workspace now has what was acknowledged before the failure.
    let owner = nodes
        .iter()
        .find(|n| n.loaded().contains(&ws.as_str().to_owned()))
        .expect("served somewhere");
    let served = owner.workspaces.get(&ws).expect("loaded").engine().clone();
    assert_eq!(
        served.chat_state(&kept),
        Some(ChatState::Queued),
        "the chat acknowledged before the failure"
    );
    drop(served);
    // And it writes: a new chat on n1 is acknowledged.
    let now_on_n1 = WorkspaceId::parse(&n1.loaded()[0]).expect("an id");
    acknowledged_chat(n1, &now_on_n1, "+4915100000007").await;
    for node in nodes {
        node.stop().await;
    }
}
