//! Archive search answered from the database, and history read page by page (R16, issue 5).
//!
//! Every server here is durable: replies wait until their changes are on disk, so after an
//! `ok` the database holds them. A chat closed and outside its window when the engine
//! restarts is no longer in memory; it is found and read from the database alone.

use std::collections::HashSet;

use chrono::Duration;
use serde_json::{json, Value};
use switchboard::engine::EngineConfig;

use super::support::{ts, AgentClient, Backend, Customer, TestServer};

/// The chat ids of archive entries, in order.
fn ids(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["chat_id"].as_str().expect("an entry names its chat").to_owned())
        .collect()
}

/// Every page of a listing, following `next` until it is null.
async fn every_page(agent: &mut AgentClient, query: Value) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut ask = query.clone();
        if let Some(cursor) = &before {
            ask["before"] = json!(cursor);
        }
        let (entries, next) = agent.list_archive_page(ask).await;
        pages.push(entries);
        assert!(pages.len() < 50, "paging does not end: {pages:#?}");
        match next {
            Some(cursor) => before = Some(cursor),
            None => return pages,
        }
    }
}

/// The ids found by a search for `text` among everyone's chats.
async fn found(agent: &mut AgentClient, text: &str) -> HashSet<String> {
    let (entries, next) = agent
        .list_archive_page(json!({ "scope": "all", "query": text }))
        .await;
    assert_eq!(next, None, "one page holds every match of {text:?}");
    ids(&entries).into_iter().collect()
}

/// The `seq`s of a history page's messages.
fn seqs(result: &Value) -> Vec<u64> {
    result["messages"]
        .as_array()
        .expect("a history carries messages")
        .iter()
        .map(|m| m["seq"].as_u64().expect("every message carries its seq"))
        .collect()
}

/// The texts of a history page's messages.
fn texts(result: &Value) -> Vec<String> {
    result["messages"]
        .as_array()
        .expect("a history carries messages")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Reads `chat` page by page as `agent` and checks the pages chain: each lists its messages
/// oldest first, ends just before the page after it began, and the last reaches seq 0.
/// Returns every message's text, oldest first.
async fn read_back(agent: &mut AgentClient, chat: &str, limit: u32) -> Vec<String> {
    let mut pages: Vec<Value> = Vec::new();
    let mut before = None;
    loop {
        let page = agent.get_chat_page(chat, before, limit).await.expect_ok();
        let seqs = seqs(&page);
        assert!(!seqs.is_empty() && seqs.len() <= limit as usize, "page {page:#}");
        let end = before.unwrap_or(seqs[seqs.len() - 1] + 1);
        let expected: Vec<u64> = (end - seqs.len() as u64..end).collect();
        assert_eq!(
            seqs, expected,
            "a page is the `limit` messages just before `before_seq`"
        );
        let next = page["next_before_seq"].as_u64();
        assert_eq!(
            next,
            (seqs[0] > 0).then_some(seqs[0]),
            "next_before_seq: {page:#}"
        );
        pages.push(page);
        match next {
            Some(seq) => before = Some(seq),
            None => break,
        }
    }
    pages.iter().rev().flat_map(texts).collect()
}

/// `agent` serves `customer`, writes `replies` in the chat and closes it; the chat.
async fn conversation(agent: &mut AgentClient, customer: &Customer, replies: &[&str]) -> String {
    let chat = agent.serves(customer).await;
    for reply in replies {
        agent.send_message(&chat, reply).await.expect_ok();
    }
    agent.closes(&chat).await;
    chat
}

#[tokio::test]
async fn r16_archive_pages_from_the_store_run_newest_first_without_gaps_or_repeats() {
    let server = TestServer::start_durable(EngineConfig::default()).await;
    let mut ana = server.agent("ana").connect().await;
    let mut closed = Vec::new();
    for i in 0..7 {
        let customer = server.customer("whatsapp", &format!("+49151000016{i:02}"));
        let chat = ana.serves(&customer).await;
        ana.closes(&chat).await;
        closed.push(chat);
        // Two chats close at the same instant: their ids order them.
        if i != 3 {
            server.advance(Duration::minutes(1));
        }
    }

    let (first, next) = ana.list_archive_page(json!({ "scope": "all", "limit": 3 })).await;
    let cursor = next.expect("more than one page");
    // A chat that arrives between pages is newer than every listed one: the pages that follow
    // neither repeat an entry nor skip one for it.
    let newcomer = server
        .customer("whatsapp", "+4915100001699")
        .says("Hello")
        .await
        .chat_id();
    let mut pages = vec![first];
    pages.extend(every_page(&mut ana, json!({ "scope": "all", "limit": 3, "before": cursor })).await);

    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 1],
        "pages of 3 until the last"
    );
    let listed: Vec<Value> = pages.concat();
    let mut expected = closed.clone();
    expected.reverse();
    // Closed at the same instant, the higher id comes first.
    let tied = [closed[3].clone(), closed[4].clone()];
    let (hi, lo) = if tied[0] > tied[1] {
        (&tied[0], &tied[1])
    } else {
        (&tied[1], &tied[0])
    };
    let at = expected.iter().position(|c| c == &closed[4]).expect("listed");
    expected[at] = hi.clone();
    expected[at + 1] = lo.clone();
    assert_eq!(ids(&listed), expected, "newest first, every chat once");
    assert!(!ids(&listed).contains(&newcomer));
    let closed_at: Vec<_> = listed.iter().map(|e| ts(&e["closed_at"])).collect();
    assert!(closed_at.windows(2).all(|w| w[0] >= w[1]), "{closed_at:?}");

    // A fresh first page starts with the newcomer.
    let (fresh, _) = ana.list_archive_page(json!({ "scope": "all", "limit": 3 })).await;
    assert_eq!(ids(&fresh)[0], newcomer);
}

#[tokio::test]
async fn r16_search_by_name_prefix_email_or_phone_finds_the_right_customers() {
    let server = TestServer::start_durable(EngineConfig::default()).await;
    let mut ana = server.agent("ana").connect().await;
    let maria = server
        .customer("whatsapp", "+4915112345678")
        .named("Maria Lopez")
        .with_email("maria.lopez@example.com")
        .with_phone("+49 151 12345678");
    let mario = server
        .customer("telegram", "tg-mario")
        .named("Mario Rossi")
        .with_email("rossi@example.it")
        .with_phone("+39 333 1234567");
    let tom = server
        .customer("webchat", "web-tom")
        .named("Tom Berg")
        .with_email("tom@berg.io");
    let maria_chat = conversation(&mut ana, &maria, &[]).await;
    let mario_chat = conversation(&mut ana, &mario, &[]).await;
    let tom_chat = conversation(&mut ana, &tom, &[]).await;
    let set = |chats: &[&String]| chats.iter().map(|c| c.to_string()).collect::<HashSet<_>>();

    assert_eq!(
        found(&mut ana, "mar").await,
        set(&[&maria_chat, &mario_chat]),
        "a name prefix"
    );
    assert_eq!(found(&mut ana, "LOP").await, set(&[&maria_chat]), "any case");
    assert_eq!(
        found(&mut ana, "maria lop").await,
        set(&[&maria_chat]),
        "every word"
    );
    assert_eq!(
        found(&mut ana, "maria rossi").await,
        set(&[]),
        "every word, of one customer"
    );
    assert_eq!(
        found(&mut ana, "rossi@example").await,
        set(&[&mario_chat]),
        "an email"
    );
    assert_eq!(
        found(&mut ana, "berg.io").await,
        set(&[&tom_chat]),
        "an email's domain"
    );
    assert_eq!(
        found(&mut ana, "+49 151").await,
        set(&[&maria_chat]),
        "a phone, spaced"
    );
    assert_eq!(
        found(&mut ana, "3933312").await,
        set(&[&mario_chat]),
        "a phone's digits"
    );
    // The database matches the start of words, not any substring.
    assert_eq!(found(&mut ana, "opez").await, set(&[]), "not inside a word");
    assert_eq!(found(&mut ana, "12345678").await, set(&[]), "not inside a number");
    assert_eq!(
        found(&mut ana, "   ").await.len(),
        3,
        "blank text searches for nothing"
    );
}

#[tokio::test]
async fn r16_mine_lists_own_chats_all_lists_everyones_and_state_filters() {
    let server = TestServer::start_durable(EngineConfig::default()).await;
    let mut ana = server.agent("ana").connect().await;
    let anas = conversation(&mut ana, &server.customer("whatsapp", "+4915100001601"), &[]).await;
    let another = conversation(&mut ana, &server.customer("sms", "+4915100001602"), &[]).await;
    // Ben gets every chat from here on.
    ana.set_presence("away").await.expect_ok();
    let mut ben = server.agent("ben").connect().await;
    let bens_closed = conversation(&mut ben, &server.customer("whatsapp", "+4915100001603"), &[]).await;
    let bens_active = ben.serves(&server.customer("email", "kim@example.com")).await;

    let listed = |entries: Vec<Value>| ids(&entries).into_iter().collect::<HashSet<_>>();
    let set = |chats: &[&String]| chats.iter().map(|c| c.to_string()).collect::<HashSet<_>>();
    let (mine, _) = ana.list_archive_page(json!({ "scope": "mine" })).await;
    assert_eq!(listed(mine), set(&[&anas, &another]));
    let (mine, _) = ben.list_archive_page(json!({})).await;
    assert_eq!(
        listed(mine),
        set(&[&bens_closed, &bens_active]),
        "mine is the default"
    );
    let (all, _) = ana.list_archive_page(json!({ "scope": "all" })).await;
    assert_eq!(listed(all), set(&[&anas, &another, &bens_closed, &bens_active]));
    let (closed, _) = ana
        .list_archive_page(json!({ "scope": "all", "state": "closed" }))
        .await;
    assert_eq!(listed(closed), set(&[&anas, &another, &bens_closed]));
    let (active, _) = ana
        .list_archive_page(json!({ "scope": "all", "state": "active" }))
        .await;
    assert_eq!(listed(active.clone()), set(&[&bens_active]));
    assert_eq!(active[0]["owner"], "ben");
    let (none, next) = ana
        .list_archive_page(json!({ "scope": "mine", "state": "active" }))
        .await;
    assert!(none.is_empty() && next.is_none());
}

#[tokio::test]
async fn r16_a_chat_only_in_the_database_is_listed_and_its_history_read_after_a_restart() {
    a_chat_only_in_the_database_is_listed_and_its_history_read_after_a_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn r16_a_chat_only_in_the_database_is_listed_and_its_history_read_after_a_restart_on_postgres() {
    a_chat_only_in_the_database_is_listed_and_its_history_read_after_a_restart(Backend::Postgres).await;
}

async fn a_chat_only_in_the_database_is_listed_and_its_history_read_after_a_restart(backend: Backend) {
    let server = TestServer::start_durable_on(backend, EngineConfig::default()).await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100001610").named("Ida Weiss");
    let chat = ana.serves(&customer).await;
    customer.says("It arrived broken").await;
    let wrote_at = server.now();
    ana.send_message(&chat, "Sorry to hear that").await.expect_ok();
    ana.send_message(&chat, "A new one is on its way")
        .await
        .expect_ok();
    ana.closes(&chat).await;
    let before_restart = ana.archive_entry(&chat).await;
    let full_history = read_back(&mut ana, &chat, 50).await;
    assert_eq!(
        full_history,
        [
            "Hello",
            "It arrived broken",
            "Sorry to hear that",
            "A new one is on its way"
        ]
    );
    ana.disconnect().await;
    // Outside its window, the chat does not come back into memory.
    server.advance(Duration::hours(25));

    let server = server.restart().await;
    assert_eq!(
        server.engine.chat_state(&chat.as_str().into()),
        None,
        "the restarted engine keeps the chat in its database only"
    );
    let mut ana = server.agent("ana").connect().await;
    let mut ben = server.agent("ben").connect().await;

    let (mine, _) = ana.list_archive_page(json!({ "state": "closed" })).await;
    assert_eq!(ids(&mine), std::slice::from_ref(&chat));
    let entry = &mine[0];
    assert_eq!(entry["customer"]["name"], "Ida Weiss");
    assert_eq!(
        (entry["owner"].clone(), entry["state"].clone()),
        (json!("ana"), json!("closed"))
    );
    assert_eq!(entry["closed_at"], before_restart["closed_at"]);
    assert_eq!(entry["close_reason"], "agent");
    assert_eq!(ts(&entry["last_customer_message_at"]), wrote_at);
    assert_eq!(ts(&entry["window_expires_at"]), wrote_at + Duration::hours(24));
    // Listing does not read the chat back into memory, so its flags are the cautious ones.
    assert_eq!(
        (entry["reopenable"].clone(), entry["template_allowed"].clone()),
        (json!(false), json!(false))
    );
    assert_eq!(found(&mut ben, "ida").await, HashSet::from([chat.clone()]));

    let newest = ana.get_chat(&chat).await.expect_ok();
    assert_eq!(newest["chat"]["state"], "closed");
    assert_eq!(newest["chat"]["customer"]["name"], "Ida Weiss");
    assert_eq!(newest["chat"]["last_message"]["text"], "A new one is on its way");
    assert_eq!(seqs(&newest), [0, 1, 2, 3]);
    assert_eq!(read_back(&mut ana, &chat, 3).await, full_history, "pages of 3");
    assert_eq!(read_back(&mut ana, &chat, 1).await, full_history, "pages of 1");
    let older = ana.get_chat_page(&chat, Some(2), 50).await.expect_ok();
    assert_eq!(
        older["chat"]["last_message"]["text"], "A new one is on its way",
        "an older page still shows the chat's last message"
    );

    // Ownership holds for a chat read from the database: its stored owner reads it.
    let refused = ben.get_chat(&chat).await.expect_error("not_owner");
    assert!(
        refused["message"].as_str().unwrap_or_default().contains("ana"),
        "{refused:#}"
    );
    let mut sam = server.supervisor("sam").connect().await;
    let read = sam
        .request(json!({ "type": "get_chat", "chat_id": chat, "limit": 2 }))
        .await
        .expect_ok();
    assert_eq!(read["kind"], "history");
    assert_eq!(texts(&read), ["Sorry to hear that", "A new one is on its way"]);
    assert_eq!(read["next_before_seq"], 2);
    let read = sam
        .request(json!({ "type": "get_chat", "chat_id": chat, "before_seq": 2 }))
        .await
        .expect_ok();
    assert_eq!(texts(&read), ["Hello", "It arrived broken"]);
    assert_eq!(read["next_before_seq"], Value::Null);

    ana.get_chat("ch-none").await.expect_error("not_found");
}

#[tokio::test]
async fn r16_history_of_a_live_chat_pages_newest_to_oldest_for_owner_and_supervisor() {
    let server = TestServer::start_durable(EngineConfig::default()).await;
    let mut ana = server.agent("ana").connect().await;
    let mut ben = server.agent("ben").connect().await;
    let customer = server.customer("webchat", "web-1620");
    let chat = ana.serves(&customer).await;
    let mut said = vec!["Hello".to_owned()];
    for i in 0..6 {
        let text = format!("message {i}");
        if i % 2 == 0 {
            customer.says(&text).await;
        } else {
            ana.send_message(&chat, &text).await.expect_ok();
        }
        said.push(text);
    }

    let newest = ana.get_chat_page(&chat, None, 3).await.expect_ok();
    assert_eq!(seqs(&newest), [4, 5, 6]);
    assert_eq!(texts(&newest), said[4..]);
    assert_eq!(newest["next_before_seq"], 4);
    assert_eq!(newest["chat"]["state"], "active");
    assert_eq!(read_back(&mut ana, &chat, 3).await, said);
    assert_eq!(read_back(&mut ana, &chat, 7).await, said, "one page exactly");
    let beyond = ana.get_chat_page(&chat, Some(100), 2).await.expect_ok();
    assert_eq!(
        seqs(&beyond),
        [5, 6],
        "before_seq past the end is the newest page"
    );

    ben.get_chat(&chat).await.expect_error("not_owner");
    let mut sam = server.supervisor("sam").connect().await;
    let read = sam
        .request(json!({ "type": "get_chat", "chat_id": chat, "before_seq": 4, "limit": 3 }))
        .await
        .expect_ok();
    assert_eq!(seqs(&read), [1, 2, 3]);
    assert_eq!(read["next_before_seq"], 1);

    let refused = ana
        .request(json!({ "type": "get_chat", "chat_id": chat, "limit": 0 }))
        .await
        .expect_error("bad_request");
    assert!(refused["message"]
        .as_str()
        .unwrap_or_default()
        .contains("at least 1"));
}

#[tokio::test]
async fn r16_a_malformed_archive_cursor_is_a_bad_request_naming_it() {
    let server = TestServer::start_durable(EngineConfig::default()).await;
    let mut ana = server.agent("ana").connect().await;
    for cursor in ["garbage", "yesterday/ch1", "2025-03-03T09:00:00Z/"] {
        let refused = ana
            .request(json!({ "type": "list_archive", "before": cursor }))
            .await
            .expect_error("bad_request");
        assert!(
            refused["message"].as_str().unwrap_or_default().contains(cursor),
            "{refused:#}"
        );
    }
    ana.ping().await.expect_ok();
}

#[tokio::test]
async fn r16_without_a_database_the_archive_pages_the_same_way() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let mut closed = Vec::new();
    for i in 0..5 {
        let chat = conversation(
            &mut ana,
            &server.customer("sms", &format!("+49151000016{}", 30 + i)),
            &[],
        )
        .await;
        closed.push(chat);
        server.advance(Duration::minutes(1));
    }
    let pages = every_page(&mut ana, json!({ "limit": 2 })).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    closed.reverse();
    assert_eq!(ids(&pages.concat()), closed);
    assert_eq!(read_back(&mut ana, &closed[0], 1).await, ["Hello"]);
}
