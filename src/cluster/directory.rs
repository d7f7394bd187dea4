//! The [`Directory`] a node's placement loop keeps current: where each workspace is served,
//! answered from memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;

use super::{Directory, Location};
use crate::ids::WorkspaceId;

/// Where each active workspace is served, as of the last placement round (and the changes
/// this node made since). A workspace absent from the map (unknown, suspended, deleted) is
/// answered [`Location::Here`], so this node answers it as R27's no-probing rule says. Until
/// the first round has filled it, every workspace is [`Location::Nowhere`]: a node that just
/// started does not know yet whether another one serves a workspace, and must not answer
/// for it (a restarted node would answer `not_found` for the workspaces it is about to take).
#[derive(Debug)]
pub struct Placed {
    node: String,
    known: AtomicBool,
    /// Held only to clone a location out or to swap the map (see `lock_order.rs`).
    map: RwLock<HashMap<WorkspaceId, Location>>,
}

impl Placed {
    /// A directory of `node` that knows nothing yet.
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            known: AtomicBool::new(false),
            map: RwLock::default(),
        }
    }

    /// Replaces what it knows.
    pub(crate) fn replace(&self, map: HashMap<WorkspaceId, Location>) {
        *self.map.write() = map;
        self.known.store(true, Ordering::Release);
    }

    /// Records one workspace's new location (a lease lost or let go of: [`Location::Nowhere`]
    /// until a round learns who took it; one taken here: [`Location::Here`]).
    pub(crate) fn set(&self, id: &WorkspaceId, location: Location) {
        self.map.write().insert(id.clone(), location);
    }
}

impl Directory for Placed {
    fn locate(&self, ws: &WorkspaceId) -> Location {
        if !self.known.load(Ordering::Acquire) {
            return Location::Nowhere;
        }
        self.map.read().get(ws).cloned().unwrap_or(Location::Here)
    }

    fn node(&self) -> &str {
        &self.node
    }
}
