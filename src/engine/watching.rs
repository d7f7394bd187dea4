//! Which connections show which archive entries (R04: an entry on screen follows its chat).
//!
//! A component with its own maps and no lock of the engine's order: its shard guards are never
//! held while anything else is taken, and what it returns is cloned out.

use dashmap::DashMap;

use super::fanout::ConnId;
use crate::ids::{AgentId, ChatId};

/// The archive entries each connection shows, both ways round.
#[derive(Debug, Default)]
pub(super) struct ArchiveWatchers {
    /// Who shows a chat's entry: the agent, to push to; the connection, to unwatch.
    by_chat: DashMap<ChatId, Vec<(AgentId, ConnId)>>,
    /// What a connection shows, so that its close is not a scan.
    by_conn: DashMap<ConnId, Vec<ChatId>>,
}

impl ArchiveWatchers {
    /// `conn` of `agent` now shows exactly `chats` (what it showed before is forgotten).
    pub(super) fn watch(&self, agent: &AgentId, conn: ConnId, chats: Vec<ChatId>) {
        self.unwatch_all(conn);
        for chat in &chats {
            self.by_chat
                .entry(chat.clone())
                .or_default()
                .push((agent.clone(), conn));
        }
        if !chats.is_empty() {
            self.by_conn.insert(conn, chats);
        }
    }

    /// `conn` shows nothing any more (it closed, or watches another list).
    pub(super) fn unwatch_all(&self, conn: ConnId) {
        let Some((_, chats)) = self.by_conn.remove(&conn) else {
            return;
        };
        for chat in chats {
            if let Some(mut w) = self.by_chat.get_mut(&chat) {
                w.retain(|(_, c)| *c != conn);
            }
            self.by_chat.remove_if(&chat, |_, w| w.is_empty());
        }
    }

    /// The agents showing `chat`'s entry, each once, sorted.
    pub(super) fn agents_watching(&self, chat: &ChatId) -> Vec<AgentId> {
        let Some(watchers) = self.by_chat.get(chat).map(|w| w.clone()) else {
            return Vec::new();
        };
        let mut agents: Vec<AgentId> = watchers.into_iter().map(|(a, _)| a).collect();
        agents.sort();
        agents.dedup();
        agents
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r04_an_entry_is_pushed_to_each_agent_once_and_forgotten_when_its_connection_closes() {
        let w = ArchiveWatchers::default();
        let (ana, ben) = (AgentId::from("ana"), AgentId::from("ben"));
        let chat = ChatId::from("c1");
        w.watch(&ana, ConnId(1), vec![chat.clone()]);
        w.watch(&ana, ConnId(2), vec![chat.clone()]);
        w.watch(&ben, ConnId(3), vec![chat.clone()]);
        assert_eq!(w.agents_watching(&chat), vec![ana.clone(), ben.clone()]);
        w.unwatch_all(ConnId(3));
        assert_eq!(w.agents_watching(&chat), vec![ana.clone()]);
        w.watch(&ana, ConnId(1), Vec::new());
        w.unwatch_all(ConnId(2));
        assert!(w.agents_watching(&chat).is_empty());
        assert!(
            w.by_chat.is_empty() && w.by_conn.is_empty(),
            "nothing is left behind"
        );
    }
}
