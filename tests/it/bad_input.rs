//! Bad input (R18): every broken frame gets an error naming what was wrong, and nothing else
//! changes: not the connection, not the engine, not anyone else.

use serde_json::{json, Value};

use super::support::TestServer;

/// Checks that `reply` is a `bad_request` error for request `id` whose message names `what`.
#[track_caller]
fn assert_bad_request(reply: &Value, id: Option<&str>, what: &str) {
    assert_eq!(reply["type"], "error", "{reply:#}");
    assert_eq!(reply["code"], "bad_request", "{reply:#}");
    assert_eq!(reply["id"].as_str(), id, "{reply:#}");
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(what),
        "the message should name `{what}`: {message}"
    );
}

#[tokio::test]
async fn r18_broken_frames_get_a_bad_request_naming_the_problem_and_change_nothing() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let mut bob = server.agent("bob").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000701")).await;
    ana.closes(&chat).await;
    let archive = ana.list_archive("all").await;
    let seq = ana.last_seq();

    let cases: [(&str, Option<&str>, &str); 7] = [
        (r#"{"id": "a", "type": "ping""#, None, "malformed JSON"),
        (r#"["ping"]"#, None, "JSON object"),
        (r#"{"type": "ping"}"#, None, "`id`"),
        (r#"{"id": "b"}"#, Some("b"), "`type`"),
        (r#"{"id": "c", "type": "teleport"}"#, Some("c"), "teleport"),
        (r#"{"id": "d", "type": "reopen"}"#, Some("d"), "chat_id"),
        (
            r#"{"id": "e", "type": "reopen", "chat_id": 42}"#,
            Some("e"),
            "reopen",
        ),
    ];
    for (frame, id, what) in cases {
        let reply = ana.send_raw_text(frame.to_owned()).await;
        assert_bad_request(&reply, id, what);
    }
    let huge = format!(
        r#"{{"id": "f", "type": "ping", "pad": "{}"}}"#,
        "x".repeat(100 * 1024)
    );
    assert_bad_request(&ana.send_raw_text(huge).await, None, "65536");
    let binary = ana
        .send_raw_binary(br#"{"id": "g", "type": "ping"}"#.to_vec())
        .await;
    assert_bad_request(&binary, None, "binary");
    let ack = ana.ack(seq + 1000).await.expect_error("bad_request");
    assert!(
        ack["message"]
            .as_str()
            .is_some_and(|m| m.contains(&(seq + 1000).to_string())),
        "{ack:#}"
    );

    assert_eq!(
        ana.ping().await.expect_ok()["kind"],
        "pong",
        "the connection carries on"
    );
    assert_eq!(ana.last_seq(), seq, "nothing was pushed");
    ana.expect_silence().await;
    assert_eq!(ana.list_archive("all").await, archive, "nothing changed");
    assert_eq!(bob.ping().await.expect_ok()["kind"], "pong", "others carry on");
    bob.expect_silence().await;
    ana.reopen(&chat).await.expect_ok();
    server.check_invariants();
}

/// One rule for the WebSocket and the admin API: a field the engine does not know is refused
/// with `bad_request` naming it, and nothing runs (a misspelt optional field would otherwise
/// be ignored without a word; a newer client checks `welcome.protocol` before using a newer
/// field). The connection and everyone else carry on.
#[tokio::test]
async fn r18_a_request_with_a_field_the_engine_does_not_know_is_refused_naming_it() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("whatsapp", "+4915100000702")).await;
    server.sent_to_customers();
    let seq = ana.last_seq();

    let cases = [
        (
            r#"{"id": "u1", "type": "snapshot", "evil": true}"#.to_owned(),
            "u1",
            "`evil`",
        ),
        (
            r#"{"id": "u2", "type": "ping", "b": 1, "a": 2}"#.to_owned(),
            "u2",
            "`a`, `b`",
        ),
        (
            format!(
                r#"{{"id": "u3", "type": "send_message", "chat_id": "{chat}", "text": "hi", "human_agent_tags": true}}"#
            ),
            "u3",
            "`human_agent_tags`",
        ),
    ];
    for (frame, id, what) in cases {
        let reply = ana.send_raw_text(frame).await;
        assert_bad_request(&reply, Some(id), what);
    }
    assert!(
        server.sent_to_customers().is_empty(),
        "the misspelt message was not sent"
    );
    assert_eq!(ana.last_seq(), seq, "nothing was pushed");
    assert_eq!(
        ana.ping().await.expect_ok()["kind"],
        "pong",
        "the connection carries on"
    );

    let mut sam = server.supervisor("sam").connect().await;
    let reply = sam
        .request_as(
            "s1",
            json!({ "type": "set_limit", "agent": "ana", "limit": 5, "force": true }),
        )
        .await;
    assert_bad_request(&reply.0, Some("s1"), "`force`");
    let reply = sam.request_as("s2", json!({ "type": "ping", "evil": 1 })).await;
    assert_bad_request(&reply.0, Some("s2"), "`evil`");

    let (status, body) = server
        .put_raw("/v1/admin/agents/ana/limit", r#"{"limit": 5, "force": true}"#)
        .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body:#}");
    assert!(body.to_string().contains("force"), "names the field: {body:#}");
    server.check_invariants();
}

#[tokio::test]
async fn r18_broken_channel_calls_get_a_bad_request_and_change_nothing() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;

    let cases = [
        (
            "/v1/channels/whatsapp/messages",
            r#"{"from": "+49151", "text": "#,
            400,
            "bad_request",
        ),
        (
            "/v1/channels/whatsapp/messages",
            r#"{"from": "+49151"}"#,
            400,
            "bad_request",
        ),
        (
            "/v1/channels/whatsapp/messages",
            r#"{"from": "+49151", "text": "  "}"#,
            400,
            "bad_request",
        ),
        (
            "/v1/channels/pigeon/messages",
            r#"{"from": "+49151", "text": "hi"}"#,
            404,
            "not_found",
        ),
        (
            "/v1/channels/whatsapp/bot/handover",
            r#"{"from": "+49999"}"#,
            404,
            "not_found",
        ),
    ];
    let too_long = format!(r#"{{"from": "+49151", "text": "{}"}}"#, "x".repeat(1025));
    let (got, answer) = server.post_raw("/v1/channels/whatsapp/messages", &too_long).await;
    assert_eq!(
        (got.as_u16(), answer["code"].as_str()),
        (413, Some("message_too_long")),
        "{answer:#}"
    );
    for (path, body, status, code) in cases {
        let (got, answer) = server.post_raw(path, body).await;
        assert_eq!(
            (got.as_u16(), answer["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {answer:#}"
        );
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer:#}"
        );
    }

    ana.expect_silence().await;
    assert!(server.waiting_in("whatsapp").await.is_empty());
    assert!(ana.list_archive("all").await.is_empty(), "no customer, no chat");
    server.check_invariants();
}

#[tokio::test]
async fn r18_a_connection_without_a_known_token_is_refused_with_unauthorized() {
    let server = TestServer::start().await;
    server.agent("ana");

    for url in [
        format!("ws://{}/v1/agent/ws", server.addr),
        format!("ws://{}/v1/agent/ws?token=guess", server.addr),
    ] {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{url}");
            }
            Err(other) => panic!("{url}: expected 401, got {other}"),
            Ok(_) => panic!("{url}: the connection was accepted"),
        }
    }
    assert_eq!(server.engine.fanout().total_connections(), 0);
    server.check_invariants();
}
