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

use tokio::runtime::{Builder, Handle, Runtime};

/// A one-thread runtime, shut down without blocking when dropped (it is dropped inside the
/// agents' runtime, where blocking is not allowed).
#[derive(Debug)]
pub struct BoardRuntime(Option<Runtime>);

impl BoardRuntime {
    /// Starts its thread.
    pub fn start() -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("switchboard-board")
            .enable_all()
            .build()?;
        Ok(Self(Some(runtime)))
    }

    /// Where to spawn onto it.
    pub fn handle(&self) -> Handle {
        match &self.0 {
            Some(runtime) => runtime.handle().clone(),
            None => unreachable!("the runtime is only taken when dropped"),
        }
    }
}

impl Drop for BoardRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
