//! A workspace's background tasks: its engine's ticker, its outbox sender and its supervisors'
//! board. They belong to the workspace, not to the process, and stop on its own signal, so
//! that one workspace can be let go of (unloaded) while the others run on.

use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::engine::outbound::connector::Connector;
use crate::engine::outbound::sender::{run_outbox_until, Ownership};
use crate::engine::outbound::{Dispatch, Retry};
use crate::engine::ticker::run_ticker;
use crate::engine::Engine;

/// What a workspace runs beside its engine.
#[derive(Debug)]
pub struct Background {
    /// Where its supervisors' board task runs (the gateway's board runtime: see
    /// `gateway/board_runtime.rs`).
    pub boards: Handle,
    /// Whether its timers are driven by the real clock. Off where a test moves a manual clock
    /// and fires the timers itself.
    pub ticker: bool,
    /// Whether it sends its outbox, and how; none where someone else takes what the engine
    /// hands over (a test reading it, or a sender it started itself).
    pub outbox: Option<OutboxSending>,
}

impl Background {
    /// Only the supervisors' board: what a server in front of an engine it did not set up
    /// runs (`gateway::serve_with`).
    pub fn board_only(boards: Handle) -> Self {
        Self {
            boards,
            ticker: false,
            outbox: None,
        }
    }
}

/// How a workspace sends its outbox (R24).
#[derive(Debug)]
pub struct OutboxSending {
    /// What its engine hands over (the other end of its `Outbound`).
    pub dispatches: mpsc::UnboundedReceiver<Dispatch>,
    /// Where messages go.
    pub connector: Connector,
    /// How failed attempts are retried.
    pub retry: Retry,
    /// Where its sends run: the process's one low-priority sending thread
    /// (`engine::outbound::send_thread`); `None`: a thread of the sender's own.
    pub sends: Option<Handle>,
    /// In a cluster, whether this node still holds the workspace (asked before each attempt);
    /// `None`: always.
    pub owner: Option<Arc<dyn Ownership>>,
}

/// The running tasks, and the signal that stops them.
#[derive(Debug)]
pub struct Tasks {
    stop: watch::Sender<bool>,
    /// Taken once, by [`Tasks::stop`]; held only to push or take handles, never across an
    /// `.await`.
    running: Mutex<Vec<JoinHandle<()>>>,
}

impl Tasks {
    /// Starts what `background` asks for around `engine`: the ticker and the outbox on the
    /// current runtime, the board on its own.
    pub fn start(engine: &Arc<Engine>, background: Background) -> Self {
        let tasks = Self {
            stop: watch::channel(false).0,
            running: Mutex::new(Vec::new()),
        };
        let here = Handle::current();
        if background.ticker {
            let engine = engine.clone();
            tasks.spawn_on(&here, |stop| run_ticker(engine, stop));
        }
        if let Some(outbox) = background.outbox {
            let engine = engine.clone();
            // Started after the restore: what it put back in the outbox waits in the channel.
            tasks.spawn_on(&here, |stop| {
                run_outbox_until(
                    engine,
                    outbox.dispatches,
                    outbox.connector,
                    outbox.retry,
                    outbox.sends,
                    outbox.owner,
                    stop,
                )
            });
        }
        let engine = engine.clone();
        tasks.spawn_on(&background.boards, |stop| engine.run_supervision(stop));
        tasks
    }

    /// Spawns `task` on `runtime` with the stop signal.
    fn spawn_on<F>(&self, runtime: &Handle, task: impl FnOnce(watch::Receiver<bool>) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = runtime.spawn(task(self.stop.subscribe()));
        self.running.lock().push(handle);
    }

    /// Signals every task to stop and waits until each has returned (and let go of its
    /// engine).
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let running = std::mem::take(&mut *self.running.lock());
        for task in running {
            if let Err(e) = task.await {
                // A panic was logged where it happened; a cancelled task (its runtime shut
                // down first) has stopped too.
                tracing::debug!(error = %e, "a workspace task ended abnormally");
            }
        }
    }
}
