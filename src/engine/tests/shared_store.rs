//! R27: the engines of two workspaces write through one store (one file, one writer), and
//! each restores, searches and reads back only its own rows, even where both use the same ids.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Duration;

use super::desk::Desk;
use crate::core::Channel;
use crate::ids::{AgentId, ChatId};
use crate::protocol::{ChatState, ReplyResult, Request, Scope};
use crate::store::{Store, StoreOptions, WsKey};

/// The workspace beside `default` in the tests' file.
const OTHER: WsKey = WsKey::new(2);

/// Two desks, `default` and [`OTHER`], whose engines share one store in a file of their own.
struct TwoWorkspaces {
    default: Desk,
    other: Desk,
    path: PathBuf,
}

impl TwoWorkspaces {
    fn open(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("switchboard-two-ws-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("switchboard.sqlite");
        let store = Arc::new(Store::open(&path, StoreOptions::default()).expect("the store opens"));
        Self {
            default: Desk::on(store.workspace(WsKey::DEFAULT)),
            other: Desk::on(store.workspace(OTHER)),
            path,
        }
    }

    /// Stops both engines once what they acknowledged is on disk (which closes the store
    /// with the last handle), opens the file again and restores each engine from it.
    fn restart(&mut self) -> (crate::engine::Restored, crate::engine::Restored) {
        self.default.stop();
        self.other.stop();
        let store = Arc::new(Store::open(&self.path, StoreOptions::default()).expect("the store opens"));
        (
            self.default.resume_on(store.workspace(WsKey::DEFAULT)),
            self.other.resume_on(store.workspace(OTHER)),
        )
    }
}

impl Drop for TwoWorkspaces {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Every message text of `chat` that `who` reads with `get_chat`.
fn history(desk: &Desk, who: &crate::protocol::Caller, chat: &ChatId) -> Vec<String> {
    match desk.request(
        who,
        Request::GetChat {
            chat_id: chat.clone(),
            before_seq: None,
            limit: None,
        },
    ) {
        Ok(ReplyResult::History { messages, .. }) => messages.into_iter().map(|m| m.message.text).collect(),
        other => panic!("get_chat answers a history: {other:?}"),
    }
}

/// The chats of everyone's archive that `who` finds with `query`.
fn search(desk: &Desk, who: &crate::protocol::Caller, query: &str) -> Vec<(ChatId, Option<String>)> {
    match desk.request(
        who,
        Request::ListArchive {
            scope: Scope::All,
            state: None,
            query: Some(query.into()),
            limit: None,
            before: None,
        },
    ) {
        Ok(ReplyResult::Archive { entries, .. }) => entries
            .into_iter()
            .map(|e| (e.chat_id, e.customer.name))
            .collect(),
        other => panic!("list_archive answers entries: {other:?}"),
    }
}

#[test]
fn r27_two_workspaces_on_one_store_each_restore_only_their_own() {
    let mut ws = TwoWorkspaces::open("restore");
    // Agents created over the admin API (stored), of the same id in both, and one more in
    // the other workspace.
    let ana = ws.default.api_agent("ana", 2);
    let other_ana = ws.other.api_agent("ana", 3);
    ws.other.api_agent("bo", 1);
    // The default workspace: one chat, and a reply to it still in the outbox.
    let chat = ws.default.served(&ana, Channel::Whatsapp, "+1");
    ws.default
        .request(
            &ana,
            Request::SendMessage {
                chat_id: chat.clone(),
                text: "on its way".into(),
                human_agent_tag: false,
            },
        )
        .expect("sent");
    // The other: the same steps on the same clock make the same ids, then a second customer.
    let same = ws.other.served(&other_ana, Channel::Whatsapp, "+1");
    assert_eq!(same, chat, "both workspaces use the same chat id");
    ws.other.say(Channel::Whatsapp, "+2", "hi");

    let (default, other) = ws.restart();
    assert_eq!(
        (
            default.agents,
            default.customers,
            default.chats_in_memory,
            default.outbox
        ),
        (1, 1, 1, 1),
        "{default:?}"
    );
    assert_eq!(
        (other.agents, other.customers, other.chats_in_memory, other.outbox),
        (2, 2, 2, 0),
        "{other:?}"
    );
    let seat = |desk: &Desk, agent: &str| {
        desk.engine
            .seat(&AgentId::from(agent))
            .map(|(_, load, limit, _)| (load, limit))
    };
    assert_eq!(seat(&ws.default, "ana"), Some((1, 2)));
    assert_eq!(
        seat(&ws.default, "bo"),
        None,
        "the other workspace's agent stays there"
    );
    assert_eq!(seat(&ws.other, "ana"), Some((1, 3)));
    assert_eq!(seat(&ws.other, "bo"), Some((0, 1)));
    // Each engine's copy of the chat has its own messages: the reply only in the default's.
    let texts = |desk: &Desk| -> Vec<String> {
        let file = desk.engine.file_of_chat(&chat).expect("the chat is in memory");
        let file = file.lock();
        file.chat(&chat)
            .expect("its chat")
            .messages
            .iter()
            .map(|m| m.text.clone())
            .collect()
    };
    assert!(texts(&ws.default).contains(&"on its way".to_owned()));
    assert!(!texts(&ws.other).contains(&"on its way".to_owned()));
    ws.default.check();
    ws.other.check();
}

#[test]
fn r27_an_archive_search_and_a_history_read_of_one_workspace_never_return_the_other_s_rows() {
    let mut ws = TwoWorkspaces::open("reads");
    let ana = ws.default.agent("ana", 2);
    let other_ana = ws.other.agent("ana", 2);
    // The same customer, chat and agent ids in both, with other names, numbers and words.
    let chat = ws.default.served(&ana, Channel::Whatsapp, "+1");
    ws.default.say(Channel::Whatsapp, "+1", "alpha");
    ws.default.close(&ana, &chat);
    let same = ws.other.served(&other_ana, Channel::Whatsapp, "+2");
    assert_eq!(same, chat, "both workspaces use the same chat id");
    ws.other.say(Channel::Whatsapp, "+2", "bravo");
    ws.other.close(&other_ana, &chat);
    // Long enough that neither restore keeps the chat in memory: both reads go to the store.
    for desk in [&ws.default, &ws.other] {
        desk.clock.advance(Duration::hours(25));
    }
    let (default, other) = ws.restart();
    assert_eq!((default.chats_archived, other.chats_archived), (1, 1));
    ws.default.connect(&ana);
    ws.other.connect(&other_ana);

    let name = |n: &str| Some(format!("Customer {n}"));
    assert_eq!(
        search(&ws.default, &ana, "customer"),
        [(chat.clone(), name("+1"))]
    );
    assert_eq!(
        search(&ws.other, &other_ana, "customer"),
        [(chat.clone(), name("+2"))]
    );
    assert_eq!(search(&ws.default, &ana, "+2"), []);
    assert_eq!(search(&ws.other, &other_ana, "+1"), []);
    assert_eq!(history(&ws.default, &ana, &chat), ["hello", "alpha"]);
    assert_eq!(history(&ws.other, &other_ana, &chat), ["hello", "bravo"]);
    match ws.default.request(
        &ana,
        Request::ListArchive {
            scope: Scope::All,
            state: Some(ChatState::Closed),
            query: None,
            limit: None,
            before: None,
        },
    ) {
        Ok(ReplyResult::Archive { entries, .. }) => assert_eq!(entries.len(), 1, "{entries:?}"),
        other => panic!("list_archive answers entries: {other:?}"),
    }
}
