//! A one-thread tokio runtime of its own, for work kept apart from the agents' workers: the
//! supervisors' board ([`crate::gateway::board_runtime`]) and the outbox's sends
//! ([`crate::engine::outbound::send_thread`]), each of which says why.

use tokio::runtime::{Builder, Handle, Runtime};

/// The runtime, shut down without blocking when dropped (it is dropped inside the agents'
/// runtime, where blocking is not allowed).
#[derive(Debug)]
pub struct RuntimeThread(Option<Runtime>);

impl RuntimeThread {
    /// Starts its thread, named `name`, running `on_start` first.
    pub fn start(name: &str, on_start: impl Fn() + Send + Sync + 'static) -> std::io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .on_thread_start(on_start)
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

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
