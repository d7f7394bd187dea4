//! A customer-message body (`POST /v1/channels/{channel}/messages`), parsed and checked as the
//! gateway does, then handed to a fresh engine: no panic, and the engine's books balance.
//! The first byte picks the channel; the rest is the body.
#![no_main]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use switchboard::clock::ManualClock;
use switchboard::core::Channel;
use switchboard::engine::outbound::Outbound;
use switchboard::engine::{Engine, EngineConfig};
use switchboard::protocol::InboundMessage;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let channel = Channel::ALL[usize::from(first) % Channel::ALL.len()];
    // axum's `Json` extractor: serde_json over the whole body, trailing whitespace only.
    let Ok(message) = serde_json::from_slice::<InboundMessage>(body) else {
        return;
    };
    // What `gateway::ingress::message` refuses before the engine sees it.
    if message.from.trim().is_empty() || message.text.trim().is_empty() {
        return;
    }
    let start = Utc
        .with_ymd_and_hms(2025, 3, 3, 9, 0, 0)
        .single()
        .expect("a valid time");
    let engine = Engine::new(
        EngineConfig::default(),
        Arc::new(ManualClock::new(start)),
        Outbound::channel().0,
    );
    let _ = engine.customer_message(channel, message);
    engine.check_invariants();
});
