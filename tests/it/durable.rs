//! Issue 5 over the wire: what an engine restarted on its database still knows.

use reqwest::StatusCode;
use serde_json::json;

use switchboard::core::Role;

use crate::it::support::TestServer;

#[tokio::test]
async fn issue5_r06_limits_changed_live_over_the_admin_api_survive_a_restart() {
    let server = TestServer::start_durable(Default::default()).await;
    let mut ana = server.agent_with("ana", Role::Agent, 3).connect().await;
    let customer = server.customer("whatsapp", "+4915100000001");
    let chat = ana.serves(&customer).await;

    server.set_limit("ana", 5).await;
    let (status, body) = server
        .post_raw(
            "/v1/admin/agents",
            &json!({ "id": "ben", "limit": 4, "token": "ben-token" }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    ana.disconnect().await;

    // Configured as before the changes: ana 3, ben 2.
    let server = server
        .restart_with(&[("ana", Role::Agent, 3), ("ben", Role::Agent, 2)])
        .await;
    let ana_status = server.agent_status("ana").await;
    assert_eq!(ana_status["limit"], 5, "{ana_status:#}");
    assert_eq!(
        ana_status["load"], 1,
        "ana's active chat counts again: {ana_status:#}"
    );
    assert_eq!(server.agent_status("ben").await["limit"], 4);
    assert_eq!(
        server.engine.chat_state(&chat.as_str().into()),
        Some(switchboard::core::ChatState::Active)
    );
    server.check_invariants();
}
