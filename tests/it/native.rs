//! The platforms' own webhooks and APIs (R23–R26), end to end: documented payloads posted to
//! the real server, signed as each platform signs them, checked through a real agent's
//! WebSocket and the chat's history; and outbound messages sent to fake platforms on 127.0.0.1
//! that record every request and answer as scripted. One module per platform; what they share
//! is in `support`.

pub(crate) mod support;

mod email;
mod meta;
mod telegram;
mod twilio;
mod workspaces;
