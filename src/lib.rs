//! Switchboard: a real-time routing engine for customer-support chat.
//!
//! - [`core`]: the product rules, pure.
//! - [`engine`]: the runtime that holds state in concurrent maps, owns timers and fans out pushes.
//! - [`protocol`]: every frame on the wire; generates `protocol/`.
//! - [`gateway`]: the axum adapter from HTTP and WebSocket to engine calls.
//! - [`store`]: the embedded SQLite database: durable changes, restore, archive search, history.
//! - [`workspaces`]: the contact centres one process serves (R27), each an engine with its tasks.

pub mod budget;
pub mod channels;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod core;
pub mod engine;
pub mod gateway;
pub mod ids;
pub mod lock_order;
pub mod metrics;
pub mod protocol;
pub mod refusal;
pub mod runtime_thread;
pub mod security;
pub mod store;
pub mod workspaces;
