//! The [`Directory`] a node's placement loop keeps current: where each workspace is served,
//! answered from memory.

use std::collections::HashMap;

use parking_lot::RwLock;

use super::{Directory, Location};
use crate::ids::WorkspaceId;

/// Where each active workspace is served, as of the last placement round (and the changes
/// this node made since). A workspace absent from the map (unknown, suspended, deleted) is
/// answered [`Location::Here`], so this node answers it as R27's no-probing rule says.
#[derive(Debug)]
pub struct Placed {
    node: String,
    /// Held only to clone a location out or to swap the map (see `lock_order.rs`).
    map: RwLock<HashMap<WorkspaceId, Location>>,
}

impl Placed {
    /// A directory of `node` that knows nothing yet.
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            map: RwLock::default(),
        }
    }

    /// Replaces what it knows.
    pub(crate) fn replace(&self, map: HashMap<WorkspaceId, Location>) {
        *self.map.write() = map;
    }

    /// Records one workspace's new location (a lease lost or let go of: [`Location::Nowhere`]
    /// until a round learns who took it; one taken here: [`Location::Here`]).
    pub(crate) fn set(&self, id: &WorkspaceId, location: Location) {
        self.map.write().insert(id.clone(), location);
    }
}

impl Directory for Placed {
    fn locate(&self, ws: &WorkspaceId) -> Location {
        self.map.read().get(ws).cloned().unwrap_or(Location::Here)
    }

    fn node(&self) -> &str {
        &self.node
    }
}
