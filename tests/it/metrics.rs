//! The engine's own metrics (`GET /metrics`, Prometheus text format) and its health and
//! readiness checks: every count is checked against what the test itself did on the wire.

use reqwest::StatusCode;

use super::platform;
use super::support::TestServer;

/// `GET path` on the server: the status and the body.
async fn get(server: &TestServer, path: &str) -> (StatusCode, String) {
    let url = format!("http://{}{path}", server.addr);
    let response = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let body = response.text().await.expect("a text body");
    (status, body)
}

/// The metrics as scraped: checks the content type of the text format.
pub(super) async fn scrape(server: &TestServer) -> Metrics {
    let url = format!("http://{}/metrics", server.addr);
    let response = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Metrics(response.text().await.expect("a text body"))
}

/// A scrape, read one sample at a time.
pub(super) struct Metrics(pub(super) String);

impl Metrics {
    /// The value of the sample `series` (`name{label="value",…}`, labels in the order the
    /// server writes them).
    #[track_caller]
    pub(super) fn value(&self, series: &str) -> f64 {
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no sample {series} in:\n{}", self.0))
            .parse()
            .unwrap_or_else(|e| panic!("the sample {series} is not a number: {e}"))
    }

    /// The counter of requests of `kind` on the agent socket that ended in `outcome`.
    #[track_caller]
    fn requests(&self, kind: &str, outcome: &str) -> f64 {
        self.value(&format!(
            r#"switchboard_requests_total{{workspace="default",socket="agent",type="{kind}",outcome="{outcome}"}}"#
        ))
    }

    /// Whether `line` is in the scrape as it is.
    fn has_line(&self, line: &str) -> bool {
        self.0.lines().any(|l| l == line)
    }
}

#[tokio::test]
async fn metrics_count_every_request_by_type_and_outcome_and_read_the_engine_at_scrape_time() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000901")).await;
    ana.closes(&chat).await;
    ana.serves(&server.customer("sms", "+4915100000904")).await;
    let mut bob = server.agent("bob").connect().await;

    ana.reopen(&chat).await.expect_ok();
    bob.reopen(&chat).await.expect_error("active_elsewhere");
    let bad = bob
        .send_raw_text(r#"{"id": "x", "type": "teleport"}"#.to_owned())
        .await;
    assert_eq!(bad["code"], "bad_request", "{bad:#}");
    bob.ack(bob.last_seq() + 1000).await.expect_error("bad_request");
    ana.set_presence("away").await.expect_ok();
    bob.set_presence("away").await.expect_ok();
    for address in ["+4915100000902", "+4915100000903"] {
        let receipt = server.customer("sms", address).says("Hello").await;
        assert_eq!(receipt["state"], "queued");
    }
    // Barriers (pings): every push caused so far has reached its agent.
    ana.ping().await.expect_ok();
    bob.ping().await.expect_ok();

    let metrics = scrape(&server).await;
    assert!(metrics.has_line("# TYPE switchboard_requests_total counter"));
    assert_eq!(metrics.requests("reopen", "ok"), 1.0);
    assert_eq!(metrics.requests("reopen", "active_elsewhere"), 1.0);
    assert_eq!(metrics.requests("invalid", "bad_request"), 1.0);
    assert_eq!(metrics.requests("ack", "bad_request"), 1.0);
    assert_eq!(metrics.requests("accept", "ok"), 2.0);
    assert_eq!(metrics.requests("close", "ok"), 1.0);
    assert_eq!(metrics.requests("set_presence", "ok"), 2.0);
    // One when each connected (the harness waits for its pong), one barrier each.
    assert_eq!(metrics.requests("ping", "ok"), 4.0);
    assert_eq!(
        metrics.value(
            r#"switchboard_request_duration_seconds_count{workspace="default",socket="agent",type="reopen"}"#
        ),
        2.0,
        "a rejected request is timed too"
    );

    // Each push takes the next number of its agent's sequence, so the sequences add up to them.
    assert!(ana.last_seq() > 0);
    let pushed = ana.last_seq() + bob.last_seq();
    assert_eq!(
        metrics.value(r#"switchboard_pushes_total{workspace="default"}"#),
        pushed as f64
    );
    assert_eq!(
        metrics.value(r#"switchboard_outbox_drops_total{workspace="default"}"#),
        0.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_connections{workspace="default",role="agent"}"#),
        2.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_connections{workspace="default",role="supervisor"}"#),
        0.0
    );
    assert_eq!(server.waiting_in("sms").await.len(), 2);
    assert_eq!(
        metrics.value(r#"switchboard_queue_depth{workspace="default",queue="sms"}"#),
        2.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_queue_depth{workspace="default",queue="whatsapp"}"#),
        0.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_agents{workspace="default",presence="away"}"#),
        2.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_agents{workspace="default",presence="online"}"#),
        0.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_agents{workspace="default",presence="offline"}"#),
        0.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_agent_chats{workspace="default"}"#),
        1.0,
        "ana's active chat (a reopened one counts once the customer answers)"
    );
    assert_eq!(
        metrics.value(r#"switchboard_offers_pending{workspace="default"}"#),
        0.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_limit_overrides_total{workspace="default"}"#),
        0.0
    );

    ana.disconnect().await;
    let metrics = scrape(&server).await;
    assert_eq!(
        metrics.value(r#"switchboard_connections{workspace="default",role="agent"}"#),
        1.0
    );
    server.check_invariants();
}

#[tokio::test]
async fn healthz_and_readyz_answer_while_the_server_is_serving() {
    let server = TestServer::start().await;

    assert_eq!(get(&server, "/healthz").await, (StatusCode::OK, "ok".to_owned()));
    assert_eq!(
        get(&server, "/readyz").await,
        (StatusCode::OK, "ready".to_owned())
    );
}

/// A store that stopped writing (here a full disk) refuses every change: `/readyz` says so,
/// so that an orchestrator restarts the engine (a cluster node resumes by itself).
#[tokio::test]
async fn issue19_readyz_answers_503_while_the_store_has_stopped_writing() {
    let options = switchboard::store::StoreOptions {
        max_size_bytes: Some(192 * 1024),
        ..Default::default()
    };
    let server = TestServer::start_durable_with(Default::default(), options).await;
    assert_eq!(
        get(&server, "/readyz").await,
        (StatusCode::OK, "ready".to_owned())
    );
    let long = "x".repeat(1000);
    let mut refused = false;
    for i in 0..2_000 {
        let body = serde_json::json!({ "from": format!("+49151{i:07}"), "text": long }).to_string();
        let (status, _) = server.post_raw("/v1/channels/whatsapp/messages", &body).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refused = true;
            break;
        }
    }
    assert!(refused, "192 KiB fill up well before 2,000 messages of 1 KB");
    assert_eq!(
        get(&server, "/readyz").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store has stopped writing".to_owned()
        )
    );
    assert_eq!(scrape(&server).await.value("switchboard_store_stopped"), 1.0);
    assert_eq!(
        get(&server, "/healthz").await.0,
        StatusCode::OK,
        "alive all the same"
    );
}

#[tokio::test]
async fn metrics_count_supervisor_sockets_their_requests_the_board_and_overrides() {
    let server = TestServer::start().await;
    let mut ana = server
        .agent_with("ana", switchboard::core::Role::Agent, 1)
        .connect()
        .await;
    ana.serves(&server.customer("whatsapp", "+4915100000960")).await;
    let mut bob = server.agent("bob").connect().await;
    let customer = server.customer("whatsapp", "+4915100000961");
    let chat = bob.serves(&customer).await;
    bob.closes(&chat).await;
    let mut sup = server.supervisor("sam").connect().await;
    sup.subscribe_all().await;
    sup.request(serde_json::json!({ "type": "subscribe", "queues": ["nowhere"] }))
        .await
        .expect_error("not_found");

    // R05: the reply takes ana over her limit; counted once.
    ana.reopen(&chat).await.expect_ok();
    customer.says("yes").await;
    ana.expect_push("chat_activated").await;

    let board_before = server.engine.supervision().seq() as f64;
    let metrics = scrape(&server).await;
    let board_after = server.engine.supervision().seq() as f64;
    let supervisor = |kind: &str, outcome: &str| {
        metrics.value(&format!(
            r#"switchboard_requests_total{{workspace="default",socket="supervisor",type="{kind}",outcome="{outcome}"}}"#
        ))
    };
    assert_eq!(supervisor("subscribe", "ok"), 1.0);
    assert_eq!(supervisor("subscribe", "not_found"), 1.0);
    assert_eq!(
        metrics.value(r#"switchboard_connections{workspace="default",role="supervisor"}"#),
        1.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_limit_overrides_total{workspace="default"}"#),
        1.0
    );
    // The KPIs are appended by the board's task, so the count may move during the scrape.
    let board = metrics.value(r#"switchboard_board_events_total{workspace="default"}"#);
    assert!(
        board_before <= board && board <= board_after && board > 0.0,
        "{board_before} <= {board} <= {board_after}"
    );
    sup.disconnect().await;
    let metrics = scrape(&server).await;
    assert_eq!(
        metrics.value(r#"switchboard_connections{workspace="default",role="supervisor"}"#),
        0.0
    );
}

#[tokio::test]
async fn issue14_store_metrics_time_every_group_commit_and_count_what_waits_for_one() {
    let server = TestServer::start_durable(Default::default()).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000970")).await;
    ana.send_message(&chat, "On it").await.expect_ok();
    ana.closes(&chat).await;
    // Every reply above waited until its changes were committed.
    let metrics = scrape(&server).await;
    let commits = metrics.value("switchboard_store_commit_duration_seconds_count");
    assert!(commits > 0.0, "{}", metrics.0);
    assert!(metrics.value("switchboard_store_commit_duration_seconds_sum") > 0.0);
    assert_eq!(
        metrics.value(r#"switchboard_store_commit_duration_seconds_bucket{le="+Inf"}"#),
        commits
    );
    assert_eq!(
        metrics.value("switchboard_store_group_size_count"),
        commits,
        "one size per commit"
    );
    assert!(metrics.value("switchboard_store_group_size_sum") >= commits);
    assert!(metrics.value("switchboard_store_changes_written_total") >= commits);
    assert_eq!(metrics.value("switchboard_store_pending_submissions"), 0.0);
    assert_eq!(metrics.value("switchboard_store_failed_commits_total"), 0.0);
    assert_eq!(metrics.value("switchboard_store_stopped"), 0.0);
    assert_eq!(metrics.value("switchboard_store_resumes_total"), 0.0);
    assert_eq!(metrics.value("switchboard_store_log_waits_total"), 0.0);
}

#[tokio::test]
async fn issue14_an_engine_without_a_store_exports_no_store_metrics() {
    let server = TestServer::start().await;
    let metrics = scrape(&server).await;
    assert!(!metrics.0.contains("switchboard_store_"), "{}", metrics.0);
}

#[tokio::test]
async fn issue14_metrics_count_this_run_s_reopen_outcomes_and_queue_waits() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000980");
    let chat = customer.says("Hello").await.chat_id();
    server.advance(chrono::Duration::seconds(5));
    ana.takes(&chat).await;
    ana.closes(&chat).await;
    let mut bob = server.agent("bob").connect().await;
    ana.reopen(&chat).await.expect_ok();
    bob.reopen(&chat).await.expect_error("active_elsewhere");
    customer.says("Thanks").await;
    ana.expect_push("chat_activated").await;

    let metrics = scrape(&server).await;
    let outcome = |outcome: &str| {
        metrics.value(&format!(
            r#"switchboard_reopen_outcomes_total{{workspace="default",outcome="{outcome}"}}"#
        ))
    };
    assert_eq!(outcome("reopened"), 1.0);
    assert_eq!(outcome("replied"), 1.0);
    assert_eq!(outcome("active_elsewhere"), 1.0);
    assert_eq!(outcome("declined"), 0.0);
    assert_eq!(
        metrics.value(r#"switchboard_queue_wait_seconds_count{workspace="default"}"#),
        1.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_queue_wait_seconds_sum{workspace="default"}"#),
        5.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_queue_wait_seconds_bucket{workspace="default",le="2.5"}"#),
        0.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_queue_wait_seconds_bucket{workspace="default",le="5"}"#),
        1.0
    );
    assert_eq!(
        metrics.value(r#"switchboard_time_to_accept_seconds_count{workspace="default"}"#),
        1.0
    );
}

#[tokio::test]
async fn r27_metrics_carry_the_workspace_label_up_to_the_cap_then_other() {
    let server = TestServer::start_platform_labelling(platform::security(), 2).await;
    // Loaded after `default` in this order: acme takes the second label, the others share one.
    for (ws, waiting, agents) in [("acme", 1, 1), ("globex", 2, 1), ("initech", 3, 2)] {
        platform::create(&server, ws).await;
        for i in 0..waiting {
            let customer = server.customer("whatsapp", &format!("+49151000031{i}"));
            customer.in_workspace(ws).says("Hello").await;
        }
        for i in 0..agents {
            platform::create_agent(&server, ws, &format!("agent{i}"), 2).await;
        }
    }

    let metrics = scrape(&server).await;
    let depth = |ws: &str| format!(r#"switchboard_queue_depth{{workspace="{ws}",queue="whatsapp"}}"#);
    let offline = |ws: &str| format!(r#"switchboard_agents{{workspace="{ws}",presence="offline"}}"#);
    assert_eq!(metrics.value(&depth("default")), 0.0);
    assert_eq!(metrics.value(&depth("acme")), 1.0);
    assert_eq!(metrics.value(&depth("_other")), 5.0, "globex's and initech's");
    assert_eq!(metrics.value(&offline("acme")), 1.0);
    assert_eq!(metrics.value(&offline("_other")), 3.0);
    for past_the_cap in ["globex", "initech"] {
        assert!(
            !metrics.0.contains(&format!(r#"workspace="{past_the_cap}""#)),
            "{past_the_cap} has no label of its own:\n{}",
            metrics.0
        );
    }
    assert_eq!(metrics.value(r#"switchboard_workspaces{state="active"}"#), 4.0);
    assert_eq!(metrics.value(r#"switchboard_workspaces{state="suspended"}"#), 0.0);
    // One file behind them all: its writer's series once, without a workspace.
    let described = |name: &str| {
        metrics
            .0
            .lines()
            .filter(|l| *l == format!("# TYPE {name} histogram"))
            .count()
    };
    assert_eq!(described("switchboard_store_commit_duration_seconds"), 1);
    assert!(metrics.value("switchboard_store_changes_written_total") > 0.0);

    // Labels follow the load order of what is served: acme's goes to the next one, globex.
    let (status, body) = server.post_raw("/v1/platform/workspaces/acme/suspend", "").await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    let metrics = scrape(&server).await;
    assert_eq!(metrics.value(&depth("globex")), 2.0);
    assert_eq!(metrics.value(&depth("_other")), 3.0, "initech's");
    assert!(!metrics.0.contains(r#"workspace="acme""#), "{}", metrics.0);
    assert_eq!(metrics.value(r#"switchboard_workspaces{state="active"}"#), 3.0);
    assert_eq!(metrics.value(r#"switchboard_workspaces{state="suspended"}"#), 1.0);

    // Requests count under the label their workspace had when the socket opened (the harness
    // pings once on connecting).
    for ws in ["globex", "initech"] {
        let token = platform::token(&server, ws, "agent0");
        let _agent = server
            .with_token("agent0", &token)
            .in_workspace(ws)
            .connect()
            .await;
    }
    let metrics = scrape(&server).await;
    let pings = |ws: &str| {
        format!(r#"switchboard_requests_total{{workspace="{ws}",socket="agent",type="ping",outcome="ok"}}"#)
    };
    assert_eq!(metrics.value(&pings("globex")), 1.0);
    assert_eq!(metrics.value(&pings("_other")), 1.0);
}
