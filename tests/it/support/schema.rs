//! Every frame and body the tests send or receive is checked against the published schemas
//! (`protocol/schema/`, generated in memory by `switchboard::protocol::schema::files`), so a
//! test fails the moment the wire and the contract part ways.

use std::collections::HashMap;
use std::sync::OnceLock;

use jsonschema::Validator;
use serde_json::Value;

/// What an agent's client sends.
pub(crate) const CLIENT_FRAME: &str = "protocol/schema/client-frame.json";
/// What the engine sends on the agent WebSocket.
pub(crate) const SERVER_FRAME: &str = "protocol/schema/server-frame.json";
/// What a supervisor's client sends.
pub(crate) const SUPERVISOR_FRAME: &str = "protocol/schema/supervisor-frame.json";
/// What the engine sends on the supervisor WebSocket.
pub(crate) const SUPERVISOR_SERVER_FRAME: &str = "protocol/schema/supervisor-server-frame.json";
/// `GET /v1/analytics`.
pub(crate) const ANALYTICS_REPORT: &str = "protocol/schema/http/analytics-report.json";
/// `POST /v1/channels/{channel}/messages`.
pub(crate) const INBOUND_MESSAGE: &str = "protocol/schema/http/inbound-message.json";
/// `POST /v1/channels/{channel}/bot/{start,handover}`.
pub(crate) const BOT_REQUEST: &str = "protocol/schema/http/bot-request.json";
/// The answer to the channel calls.
pub(crate) const INGRESS_RECEIPT: &str = "protocol/schema/http/ingress-receipt.json";
/// What goes out to customers.
pub(crate) const OUTBOUND_MESSAGE: &str = "protocol/schema/http/outbound-message.json";

fn validators() -> &'static HashMap<String, Validator> {
    static VALIDATORS: OnceLock<HashMap<String, Validator>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        switchboard::protocol::schema::files()
            .into_iter()
            .filter(|(path, _)| path.starts_with("protocol/schema/"))
            .map(|(path, text)| {
                let schema: Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"));
                let validator = jsonschema::validator_for(&schema)
                    .unwrap_or_else(|e| panic!("{path} is not a valid schema: {e}"));
                (path, validator)
            })
            .collect()
    })
}

/// Panics, naming every violation, unless `instance` matches the schema at `path`.
pub(crate) fn check(path: &str, instance: &Value) {
    let validator = validators()
        .get(path)
        .unwrap_or_else(|| panic!("no generated schema {path}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} (at `{}`)", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "does not match {path}:\n  {}\n{instance:#}",
        errors.join("\n  ")
    );
}

/// The harness's own check: a frame that breaks the contract must not pass.
#[test]
fn schemas_reject_frames_that_break_the_contract() {
    let valid = serde_json::json!({ "id": "1", "type": "reopen", "chat_id": "ch1" });
    let cases = [
        serde_json::json!({ "id": "1", "type": "reopen" }),
        serde_json::json!({ "id": "1", "type": "teleport" }),
        serde_json::json!({ "id": 1, "type": "ping" }),
    ];
    assert!(validators()[CLIENT_FRAME].is_valid(&valid));
    for frame in cases {
        assert!(!validators()[CLIENT_FRAME].is_valid(&frame), "{frame} passed");
    }
    let push = serde_json::json!({ "type": "push", "seq": 1, "event": { "kind": "chat_closed", "chat_id": "ch1", "reason": "bored" } });
    assert!(!validators()[SERVER_FRAME].is_valid(&push), "{push} passed");
}
