//! The thread the outbox's sends run on, apart from the agents' workers and below their OS
//! priority.
//!
//! Sending is background work: a customer's platform gets a message a millisecond later and
//! nobody notices, while an agent waiting for a push does. On the agents' workers 2,000 sends
//! a second (HTTP requests, TLS, JSON) queued between the pushes and raised their p99 by a
//! third (load-tests/README.md, "Issue 17"). Here they run on a thread of their own that the
//! kernel preempts whenever an agents' worker has work.
//!
//! Only the sends run here: what a send's outcome changes in the engine (delivery status,
//! retries, failures) is applied back on the agents' runtime by the scheduler
//! ([`super::sender`]), so this thread never holds an engine lock — a low-priority thread
//! preempted while holding one would stall every agent waiting for it.

use crate::runtime_thread::RuntimeThread;

/// How much lower than the engine's the sending thread's priority is (a nice value: the
/// kernel's scheduler gives it about a tenth of a busy core's time against a worker's).
const NICE: i32 = 10;

/// Starts the sending thread.
pub fn start() -> std::io::Result<RuntimeThread> {
    RuntimeThread::start("switchboard-send", lower_priority)
}

/// Lowers the calling thread's priority (on Linux a nice value is per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, NICE) {
        tracing::warn!(error = %e, "the sending thread keeps the engine's priority");
    }
}
