//! What one placement round decides, from what it read: pure, no I/O, no clock.
//!
//! Each node takes a fair share, `ceil(active workspaces / live nodes)`: below it, it takes
//! lapsed or never-held leases; above it (a node joined), it hands the extra ones over, so
//! that the joining node takes them. Shares of `ceil` alone can leave a node empty (4
//! workspaces on 3 nodes: 2, 2, 0), so a node at `ceil` also hands one over while another
//! live node is below `floor` and more nodes are at `ceil` than the remainder allows; which
//! ones do is decided by name, the same way on every node. Every node decides alone, from
//! the same database; the lease's take is atomic, so two nodes after the same workspace get
//! it once. A node does not take back what it handed over itself (`skip`), so the hand-over
//! reaches the node it was meant for.
//!
//! A workspace marked `deleting` is never a candidate: it is purged under a lease of its own
//! (`purge.rs`) by a node that finds it free, after its owner let go of it.

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
    /// Marked `deleting`, and free to purge (`purge.rs`): no lease, a lapsed one, or one under
    /// this node's name (let go of this round); none while leaving.
    pub(crate) purge: Vec<WorkspaceRow>,
}

/// The fair share of each of `live` nodes among `active` workspaces.
pub(crate) fn fair_share(active: usize, live: usize) -> usize {
    active.div_ceil(live.max(1))
}

/// What node `me` (`leaving` or not) does this round, holding `held`, given `view` and every
/// workspace row; it takes nothing in `skip` (what it handed over lately).
pub(crate) fn plan(
    me: &str,
    leaving: bool,
    view: &ClusterView,
    rows: &[WorkspaceRow],
    held: &[WorkspaceId],
    skip: &HashSet<WorkspaceId>,
) -> Plan {
    let active: Vec<&WorkspaceRow> = rows
        .iter()
        .filter(|r| r.state == WorkspaceState::Active)
        .collect();
    let active_ids: HashSet<&WorkspaceId> = active.iter().map(|r| &r.id).collect();
    let held_set: HashSet<&WorkspaceId> = held.iter().collect();
    let mut live = view.nodes.iter().filter(|n| !n.leaving).count();
    if !leaving && !view.nodes.iter().any(|n| n.name == me && !n.leaving) {
        // Its own heartbeat is this round's; counted even if the view missed it.
        live += 1;
    }
    let share = if leaving {
        0
    } else {
        fair_share(active.len(), live)
    };
    let leases: HashMap<i64, &LeaseRow> = view.leases.iter().map(|l| (l.ws.get(), l)).collect();

    let let_go: Vec<WorkspaceId> = held
        .iter()
        .filter(|id| !active_ids.contains(id))
        .cloned()
        .collect();
    let mut keeping: Vec<WorkspaceId> = held
        .iter()
        .filter(|id| active_ids.contains(id))
        .cloned()
        .collect();
    keeping.sort();
    let mut keep = share;
    if !leaving && keeping.len() == share && share > 0 {
        // Live nodes' counts as the view has them, this node's as it holds them.
        let mut counts: HashMap<&str, usize> = view
            .nodes
            .iter()
            .filter(|n| !n.leaving)
            .map(|n| (n.name.as_str(), 0))
            .collect();
        for lease in view.leases.iter().filter(|l| l.unexpired) {
            if let Some(count) = counts.get_mut(lease.node.as_str()) {
                *count += 1;
            }
        }
        counts.insert(me, keeping.len());
        let floor = active.len() / live.max(1);
        let remainder = active.len() % live.max(1);
        let someone_short = counts.values().any(|&c| c < floor);
        let mut at_share: Vec<&str> = counts
            .iter()
            .filter(|(_, &c)| c >= share)
            .map(|(n, _)| *n)
            .collect();
        at_share.sort_unstable();
        let rank = at_share.iter().position(|n| *n == me).unwrap_or(0);
        if remainder > 0 && someone_short && rank >= remainder {
            keep = floor;
        }
    }
    let hand_over = if keeping.len() > keep {
        keeping.split_off(keep)
    } else {
        Vec::new()
    };
    let want = if hand_over.is_empty() {
        share.saturating_sub(keeping.len())
    } else {
        0
    };

    let mut candidates: Vec<Candidate> = active
        .iter()
        .filter(|row| !held_set.contains(&row.id) && !skip.contains(&row.id))
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
    let purge = rows
        .iter()
        .filter(|row| row.state == WorkspaceState::Deleting && !row.id.is_default() && !leaving)
        .filter(|row| match leases.get(&row.key.get()) {
            None => true,
            Some(lease) => !lease.unexpired || lease.node == me,
        })
        .cloned()
        .collect();
    Plan {
        let_go,
        hand_over,
        candidates,
        want,
        directory,
        purge,
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

    fn none() -> HashSet<WorkspaceId> {
        HashSet::new()
    }

    fn ids(names: &[&str]) -> Vec<WorkspaceId> {
        names
            .iter()
            .map(|n| WorkspaceId::parse(n).expect("an id"))
            .collect()
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
        let n1 = plan("n1", false, &view, &rows, &all, &none());
        assert_eq!(n1.hand_over, ids(&["c", "d", "e", "f"]));
        assert_eq!(n1.want, 0);
        let n2 = plan("n2", false, &view, &rows, &[], &none());
        assert_eq!((n2.want, n2.candidates.len()), (2, 0), "nothing free yet");
        assert_eq!(n2.directory[&all[0]], Location::At("http://n1".into()));

        // Once released, n2 may take them, as hand-overs, not failovers.
        let view = ClusterView {
            leases: (1..=6).map(|ws| lease(ws, "n1", ws <= 2, ws > 2)).collect(),
            ..view
        };
        let n2 = plan("n2", false, &view, &rows, &[], &none());
        assert_eq!(n2.candidates.len(), 4);
        assert!(n2.candidates.iter().all(|c| !c.failover));
        assert_eq!(n2.directory[&all[3]], Location::Nowhere);
    }

    #[test]
    fn r28_no_node_stays_empty_while_others_hold_more_than_the_floor() {
        // 4 workspaces on 3 nodes: n1 and n2 hold 2 each, n3 joined with none.
        let rows: Vec<_> = (1..=4)
            .map(|k| row(k, &format!("w{k}"), WorkspaceState::Active))
            .collect();
        let view = ClusterView {
            nodes: vec![node("n1", false), node("n2", false), node("n3", false)],
            leases: (1..=4)
                .map(|ws| lease(ws, if ws <= 2 { "n1" } else { "n2" }, true, false))
                .collect(),
        };
        let n1 = plan("n1", false, &view, &rows, &ids(&["w1", "w2"]), &none());
        assert!(n1.hand_over.is_empty(), "the first by name keeps its two");
        let n2 = plan("n2", false, &view, &rows, &ids(&["w3", "w4"]), &none());
        assert_eq!((n2.hand_over, n2.want), (ids(&["w4"]), 0), "the second gives one");
        // And does not take it back itself.
        let view = ClusterView {
            leases: (1..=4)
                .map(|ws| lease(ws, if ws <= 2 { "n1" } else { "n2" }, ws != 4, ws == 4))
                .collect(),
            ..view
        };
        let skip: HashSet<WorkspaceId> = ids(&["w4"]).into_iter().collect();
        let n2 = plan("n2", false, &view, &rows, &ids(&["w3"]), &skip);
        assert!(n2.hand_over.is_empty() && n2.candidates.is_empty());
        let n3 = plan("n3", false, &view, &rows, &[], &none());
        assert_eq!(n3.candidates.len(), 1);
        // 2, 1, 1 is even: nobody moves.
        let view = ClusterView {
            leases: (1..=4)
                .map(|ws| lease(ws, ["n1", "n1", "n2", "n3"][ws as usize - 1], true, false))
                .collect(),
            ..view
        };
        for (me, held) in [("n1", vec!["w1", "w2"]), ("n2", vec!["w3"]), ("n3", vec!["w4"])] {
            let p = plan(me, false, &view, &rows, &ids(&held), &none());
            assert!(p.hand_over.is_empty(), "{me} hands over {:?}", p.hand_over);
        }
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
        let p = plan("n1", false, &view, &rows, &ids(&["b"]), &none());
        assert_eq!(p.let_go, ids(&["b"]));
        assert_eq!(p.want, 2);
        let failover: HashMap<_, _> = p
            .candidates
            .iter()
            .map(|c| (c.row.id.as_str(), c.failover))
            .collect();
        assert_eq!(failover, HashMap::from([("a", true), ("c", false)]));
        assert!(
            !p.directory.contains_key(&ids(&["b"])[0]),
            "suspended: answered here"
        );

        // Leaving: everything is handed over.
        let p = plan("n1", true, &view, &rows, &ids(&["a", "c"]), &none());
        assert_eq!((p.hand_over, p.want), (ids(&["a", "c"]), 0));
    }

    #[test]
    fn r27_r28_a_workspace_being_deleted_is_never_taken_and_is_purged_once_free() {
        let rows = vec![
            row(1, "default", WorkspaceState::Active),
            row(2, "owned", WorkspaceState::Deleting),
            row(3, "lapsed", WorkspaceState::Deleting),
            row(4, "never", WorkspaceState::Deleting),
            row(5, "mine", WorkspaceState::Deleting),
        ];
        let view = ClusterView {
            nodes: vec![node("n1", false), node("n2", false)],
            leases: vec![
                lease(2, "n2", true, false),
                lease(3, "n2", false, false),
                lease(5, "n1", true, false),
            ],
        };
        let p = plan("n1", false, &view, &rows, &ids(&["mine"]), &none());
        assert_eq!(p.let_go, ids(&["mine"]), "its owner lets go first");
        let purge: Vec<&str> = p.purge.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(purge, ["lapsed", "never", "mine"], "not the one n2 still holds");
        assert!(
            p.candidates.iter().all(|c| c.row.id.as_str() == "default"),
            "a workspace being deleted is never taken to be served"
        );
        assert!(!p.directory.keys().any(|id| id.as_str() != "default"));
        let leaving = plan("n1", true, &view, &rows, &ids(&["mine"]), &none());
        assert!(leaving.purge.is_empty(), "a leaving node purges nothing");
    }
}
