//! The agents a chat can go to now, kept in the order the router prefers them.

use std::collections::{BTreeSet, HashMap};

use crate::clock::Timestamp;
use crate::ids::AgentId;

/// Where a free agent stands among equally good matches (R06): the least loaded (active
/// chats plus pending offers) first, then the longest idle. (The set orders by this, then by
/// the agent's id, so that the order is total.)
pub(super) type Standing = (u32, Timestamp);

/// Online agents below their overall limit, in offer order.
///
/// Kept ordered so that a chat arriving finds its agent by walking from the front and
/// stopping at the first that may take it, instead of weighing every free agent: with
/// thousands online that walk was most of a decision's cost.
#[derive(Debug, Default)]
pub(super) struct FreeSeats {
    order: BTreeSet<(Standing, AgentId)>,
    standing: HashMap<AgentId, Standing>,
}

impl FreeSeats {
    /// Puts `agent` at `standing`, or takes it out with `None`.
    pub(super) fn set(&mut self, agent: &AgentId, standing: Option<Standing>) {
        if self.standing.get(agent).copied() == standing {
            return;
        }
        if let Some(old) = self.standing.remove(agent) {
            self.order.remove(&(old, agent.clone()));
        }
        if let Some(new) = standing {
            self.standing.insert(agent.clone(), new);
            self.order.insert((new, agent.clone()));
        }
    }

    /// Free agents, the preferred first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &AgentId> {
        self.order.iter().map(|(_, agent)| agent)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Where `agent` stands, if it is free.
    pub(super) fn standing(&self, agent: &AgentId) -> Option<Standing> {
        self.standing.get(agent).copied()
    }
}
