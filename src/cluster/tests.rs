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
use crate::engine::EngineConfig;
use crate::ids::ChatId;
use crate::protocol::InboundMessage;
use crate::store::postgres::test_server::PgServer;
use crate::store::{NewWorkspace, Store, StoreError, StoreOptions};
use crate::workspaces::{Limits, Provisioning, Workspaces};

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
    let rounds = ClusterStats::read(&nodes[0].stats().rounds);
    until("three more rounds", || {
        ClusterStats::read(&nodes[0].stats().rounds) >= rounds + 3
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
    let engine = node.workspaces.get(&ws).expect("loaded").engine().clone();

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
    // Unloaded at once (its next round may take it again: the lease is under its own name).
    until("the fenced workspace is unloaded", || node.loaded().is_empty()).await;
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
