//! What one placement round decides, from what it read: pure, no I/O, no clock.
//!
//! Each node takes a fair share, `ceil(active workspaces / live nodes)`: below it, it takes
//! lapsed or never-held leases; above it (a node joined), it hands the extra ones over, so
//! that the joining node takes them. Every node decides alone, from the same database; the
//! lease's take is atomic, so two nodes after the same workspace get it once.

use std::collections::{HashMap, HashSet};

use super::Location;
use crate::ids::WorkspaceId;
use crate::store::{ClusterView, LeaseRow, WorkspaceRow, WorkspaceState};

/// A workspace this node may take, with whether taking it is a failover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) row: WorkspaceRow,
    /// Its last lease lapsed without being released: its node died or stalled.
    pub(crate) failover: bool,
}

/// What a round does.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Held here, but no longer active (suspended, being deleted, gone): unload, release.
    pub(crate) let_go: Vec<WorkspaceId>,
    /// Held here above the fair share: unload with the drain, then release.
    pub(crate) hand_over: Vec<WorkspaceId>,
    /// What may be taken, best first; take until `want` are taken.
    pub(crate) candidates: Vec<Candidate>,
    /// How many to take.
    pub(crate) want: usize,
    /// Where every active workspace is served, for the directory.
    pub(crate) directory: HashMap<WorkspaceId, Location>,
}

/// The fair share of each of `live` nodes among `active` workspaces.
pub(crate) fn fair_share(active: usize, live: usize) -> usize {
    active.div_ceil(live.max(1))
}

/// What node `me` (`leaving` or not) does this round, holding `held`, given `view` and every
/// workspace row.
pub(crate) fn plan(me: &str, leaving: bool, view: &ClusterView, rows: &[WorkspaceRow], held: &[WorkspaceId]) -> Plan {
    let active: Vec<&WorkspaceRow> = rows.iter().filter(|r| r.state == WorkspaceState::Active).collect();
    let active_ids: HashSet<&WorkspaceId> = active.iter().map(|r| &r.id).collect();
    let held_set: HashSet<&WorkspaceId> = held.iter().collect();
    let mut live = view.nodes.iter().filter(|n| !n.leaving).count();
    if !leaving && !view.nodes.iter().any(|n| n.name == me && !n.leaving) {
        // Its own heartbeat is this round's; counted even if the view missed it.
        live += 1;
    }
    let share = if leaving { 0 } else { fair_share(active.len(), live) };

    let let_go: Vec<WorkspaceId> = held.iter().filter(|id| !active_ids.contains(id)).cloned().collect();
    let mut keeping: Vec<WorkspaceId> = held.iter().filter(|id| active_ids.contains(id)).cloned().collect();
    keeping.sort();
    let hand_over = if keeping.len() > share {
        keeping.split_off(share)
    } else {
        Vec::new()
    };
    let want = share.saturating_sub(keeping.len());

    let leases: HashMap<i64, &LeaseRow> = view.leases.iter().map(|l| (l.ws.get(), l)).collect();
    let mut candidates: Vec<Candidate> = active
        .iter()
        .filter(|row| !held_set.contains(&row.id))
        .filter_map(|row| match leases.get(&row.key.get()) {
            None => Some(Candidate {
                row: (*row).clone(),
                failover: false,
            }),
            // Lapsed, or held under this node's name by an earlier run of it.
            Some(lease) if !lease.unexpired || lease.node == me => Some(Candidate {
                row: (*row).clone(),
                failover: !lease.released,
            }),
            Some(_) => None,
        })
        .collect();
    // Nodes after the same free workspaces start at different ones, so that fewer takes fail.
    candidates.sort_by_key(|c| (spread(me, &c.row.id), c.row.id.clone()));

    let directory = active
        .iter()
        .map(|row| {
            let location = if held_set.contains(&row.id) {
                Location::Here
            } else {
                match leases.get(&row.key.get()) {
                    Some(lease) if lease.unexpired && lease.node != me => match &lease.address {
                        Some(address) => Location::At(address.clone()),
                        None => Location::Nowhere,
                    },
                    _ => Location::Nowhere,
                }
            };
            (row.id.clone(), location)
        })
        .collect();
    Plan {
        let_go,
        hand_over,
        candidates,
        want,
        directory,
    }
}

/// A number that orders workspaces differently for each node (FNV-1a of both names).
fn spread(me: &str, id: &WorkspaceId) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in me.bytes().chain([0]).chain(id.as_str().bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Epoch, NodeRow, WsKey};

    fn row(key: i64, id: &str, state: WorkspaceState) -> WorkspaceRow {
        WorkspaceRow {
            key: WsKey::new(key),
            id: WorkspaceId::parse(id).expect("an id"),
            name: None,
            state,
            created_at: chrono::DateTime::UNIX_EPOCH,
            admin_key_sha256: None,
            settings: "{}".into(),
            limits: "{}".into(),
        }
    }

    fn node(name: &str, leaving: bool) -> NodeRow {
        NodeRow {
            name: name.into(),
            address: format!("http://{name}"),
            leaving,
        }
    }

    fn lease(ws: i64, node: &str, unexpired: bool, released: bool) -> LeaseRow {
        LeaseRow {
            ws: WsKey::new(ws),
            node: node.into(),
            epoch: Epoch::new(1),
            unexpired,
            released,
            address: Some(format!("http://{node}")),
        }
    }

    fn ids(names: &[&str]) -> Vec<WorkspaceId> {
        names.iter().map(|n| WorkspaceId::parse(n).expect("an id")).collect()
    }

    #[test]
    fn r28_each_node_takes_its_fair_share_and_hands_over_what_is_above_it() {
        assert_eq!(fair_share(6, 3), 2);
        assert_eq!(fair_share(7, 3), 3);
        assert_eq!(fair_share(3, 0), 3);
        let rows: Vec<_> = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .enumerate()
            .map(|(i, id)| row(i as i64 + 1, id, WorkspaceState::Active))
            .collect();
        // n1 holds all six; n2 and n3 joined.
        let view = ClusterView {
            nodes: vec![node("n1", false), node("n2", false), node("n3", false)],
            leases: (1..=6).map(|ws| lease(ws, "n1", true, false)).collect(),
        };
        let all = ids(&["a", "b", "c", "d", "e", "f"]);
        let n1 = plan("n1", false, &view, &rows, &all);
        assert_eq!(n1.hand_over, ids(&["c", "d", "e", "f"]));
        assert_eq!(n1.want, 0);
        let n2 = plan("n2", false, &view, &rows, &[]);
        assert_eq!((n2.want, n2.candidates.len()), (2, 0), "nothing free yet");
        assert_eq!(n2.directory[&all[0]], Location::At("http://n1".into()));

        // Once released, n2 may take them, as hand-overs, not failovers.
        let view = ClusterView {
            leases: (1..=6).map(|ws| lease(ws, "n1", ws <= 2, ws > 2)).collect(),
            ..view
        };
        let n2 = plan("n2", false, &view, &rows, &[]);
        assert_eq!(n2.candidates.len(), 4);
        assert!(n2.candidates.iter().all(|c| !c.failover));
        assert_eq!(n2.directory[&all[3]], Location::Nowhere);
    }

    #[test]
    fn r29_a_lapsed_unreleased_lease_is_a_failover_and_inactive_ones_are_let_go_of() {
        let rows = vec![
            row(1, "a", WorkspaceState::Active),
            row(2, "b", WorkspaceState::Suspended),
            row(3, "c", WorkspaceState::Active),
        ];
        let view = ClusterView {
            nodes: vec![node("n1", false)],
            leases: vec![lease(1, "dead", false, false), lease(2, "n1", true, false)],
        };
        let p = plan("n1", false, &view, &rows, &ids(&["b"]));
        assert_eq!(p.let_go, ids(&["b"]));
        assert_eq!(p.want, 2);
        let failover: HashMap<_, _> = p.candidates.iter().map(|c| (c.row.id.as_str(), c.failover)).collect();
        assert_eq!(failover, HashMap::from([("a", true), ("c", false)]));
        assert!(!p.directory.contains_key(&ids(&["b"])[0]), "suspended: answered here");

        // Leaving: everything is handed over.
        let p = plan("n1", true, &view, &rows, &ids(&["a", "c"]));
        assert_eq!((p.hand_over, p.want), (ids(&["a", "c"]), 0));
    }
}
