//! The runtime the supervisors' sockets and the board task run on, apart from the agents'.
//!
//! Every batch interval the board task hands two hundred supervisors a frame each, and their
//! writes (megabytes a second) used to run on the agents' workers, between the agents' pushes:
//! the pushes' p99 grew four to ten times (load-tests/README.md, "Supervisors watching"). On a
//! thread of their own, at a lower priority, those writes take the CPU the agents leave over.

use thread_priority::{set_current_thread_priority, ThreadPriority, ThreadPriorityValue};
use tokio::runtime::{Builder, Handle, Runtime};

/// Niceness 10 on Linux: under a full CPU the agents' threads get about nine times its share,
/// yet supervisors are not starved off their sockets as at 19 (`ThreadPriorityValue` maps
/// 0..=99 onto nice 19..=-20).
const PRIORITY: u8 = 22;

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
            .on_thread_start(lower_priority)
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

fn lower_priority() {
    let lowered = ThreadPriorityValue::try_from(PRIORITY)
        .map_err(|e| format!("{e:?}"))
        .and_then(|value| {
            set_current_thread_priority(ThreadPriority::Crossplatform(value)).map_err(|e| format!("{e:?}"))
        });
    if let Err(error) = lowered {
        tracing::warn!(%error, "cannot lower the supervisors' thread priority; it runs at the agents'");
    }
}
