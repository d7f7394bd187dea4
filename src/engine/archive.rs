//! The archive: listing and searching it (R16), which connections show which entries, and
//! telling them when an entry changes (R04).

use super::*;

impl Engine {
    /// Archive entries, newest first (R16). Scans every customer: fine in memory, and the
    /// durable archive answers this from its index instead.
    pub(super) fn archive(
        &self,
        me: &AgentId,
        scope: Scope,
        state: Option<ChatState>,
        query: Option<&str>,
        limit: u32,
        now: Timestamp,
    ) -> Vec<ArchiveEntry> {
        let files: Vec<Arc<Mutex<CustomerFile>>> = self.customers.iter().map(|f| f.clone()).collect();
        let mut entries: Vec<(Timestamp, ArchiveEntry)> = Vec::new();
        for file in files {
            let file = file.lock();
            if query.is_some_and(|q| !views::matches_query(&file, q)) {
                continue;
            }
            for chat in &file.chats {
                let mine = chat.owner.as_ref() == Some(me);
                if (scope == Scope::Mine && !mine) || state.is_some_and(|s| s != chat.state) {
                    continue;
                }
                let newest = chat.closed.map_or(chat.created_at, |(at, _)| at);
                let policy = self.config.policies.of(chat.channel);
                entries.push((newest, views::archive_entry(&file, chat, policy, now)));
            }
        }
        entries.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.chat_id.cmp(&b.1.chat_id)));
        entries.into_iter().take(limit as usize).map(|(_, e)| e).collect()
    }

    pub(super) fn watch(&self, me: &AgentId, conn: ConnId, chat_ids: Vec<ChatId>) {
        self.unwatch_all(conn);
        for chat in &chat_ids {
            self.watchers
                .entry(chat.clone())
                .or_default()
                .push((me.clone(), conn));
        }
        self.watching.insert(conn, chat_ids);
    }

    pub(super) fn unwatch_all(&self, conn: ConnId) {
        let Some((_, chats)) = self.watching.remove(&conn) else {
            return;
        };
        for chat in chats {
            if let Some(mut w) = self.watchers.get_mut(&chat) {
                w.retain(|(_, c)| *c != conn);
            }
            self.watchers.remove_if(&chat, |_, w| w.is_empty());
        }
    }

    /// Tells every agent watching one of this customer's entries how it looks now (R04).
    pub(super) fn archive_changed(&self, file: &CustomerFile, now: Timestamp) {
        for chat in &file.chats {
            let Some(watchers) = self.watchers.get(&chat.id).map(|w| w.clone()) else {
                continue;
            };
            let mut agents: Vec<AgentId> = watchers.into_iter().map(|(a, _)| a).collect();
            agents.sort();
            agents.dedup();
            let entry = views::archive_entry(file, chat, self.config.policies.of(chat.channel), now);
            for agent in agents {
                self.fanout
                    .push(&agent, Push::ArchiveEntryChanged { entry: entry.clone() });
            }
        }
    }
}
