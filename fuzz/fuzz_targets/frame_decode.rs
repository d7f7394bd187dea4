//! Any text an agent or a supervisor may send over its WebSocket goes through `decode` (R18):
//! it either decodes or becomes a well-formed `bad_request` error frame; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchboard::gateway::connection::decode;
use switchboard::protocol::supervisor::SupervisorFrame;
use switchboard::protocol::{ClientFrame, RequestFrame};

fn check<T: DeserializeOwned + RequestFrame>(text: &str) {
    let Err(frame) = decode::<T>(text) else { return };
    let error: Value = serde_json::from_slice(&frame).expect("an error frame is JSON");
    assert_eq!(error["type"], "error", "not an error frame: {error}");
    assert_eq!(error["code"], "bad_request", "not a bad_request: {error}");
    assert!(error["message"].is_string(), "no message: {error}");
    assert!(
        matches!(error.get("id"), None | Some(Value::Null) | Some(Value::String(_))),
        "`id` is neither a string nor null: {error}"
    );
}

fuzz_target!(|data: &[u8]| {
    // The socket hands `decode` text frames only: tungstenite checks their UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check::<ClientFrame>(text);
    check::<SupervisorFrame>(text);
});
