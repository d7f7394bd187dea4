//! Integration tests: the real server on `127.0.0.1:0`, driven by real WebSocket and HTTP
//! clients. Each test is named after the rule of `SPEC.md` it proves.
//!
//! Time moves only through `TestServer::advance` (a manual clock) and every wait is a timeout
//! on an event, so nothing here sleeps.
//!
//! The modules sit in an inline `it` module so that they live in `tests/it/` (a crate root's
//! own `mod x;` would look for `tests/x.rs`) without a `mod.rs`.

mod it {
    mod support;

    mod after_window;
    mod archive_store;
    mod auth;
    mod bad_input;
    mod bot;
    mod dashboard;
    mod durable;
    mod forwarding;
    mod ingress;
    mod isolation;
    mod limits;
    mod metrics;
    mod native;
    mod outbox;
    mod ownership;
    mod platform;
    mod reconnect;
    mod reopen;
    mod reopen_race;
    mod routing;
    mod routing_rules;
    mod supervisor;
    mod webhooks;
    mod workspace_keys;
    mod workspace_settings;
    mod workspace_tokens;
    mod workspaces;
}
