//! The runtime the supervisors' sockets and the board task run on, apart from the agents'.
//!
//! Every batch interval the board task hands two hundred supervisors a frame each, and their
//! writes (megabytes a second) used to run on the agents' workers, between the agents' pushes:
//! the pushes' p99 grew four to ten times (load-tests/README.md, "Supervisors watching"). On a
//! thread of their own they no longer queue behind the agents' tasks or hold them up.
//!
//! The thread keeps the agents' OS priority: supervisor requests take the router's and the
//! customers' locks (a board, a transfer), and a lower-priority holder preempted under a full
//! CPU would stall every agent waiting for the lock.

use crate::runtime_thread::RuntimeThread;

/// Starts the board's thread, at the agents' priority.
pub fn start() -> std::io::Result<RuntimeThread> {
    RuntimeThread::start("switchboard-board", || {})
}
