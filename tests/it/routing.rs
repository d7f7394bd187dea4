//! Routing new chats (R06) and returning customers (R10).

use chrono::Duration;
use switchboard::core::Role;

use super::support::TestServer;

#[tokio::test]
async fn r06_a_new_chat_is_offered_to_the_least_loaded_online_agent() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    ana.serves(&server.customer("whatsapp", "+4915100000201")).await;
    // Bob has been idle for less time, but he has less to do.
    server.advance(Duration::minutes(1));
    let mut bob = server.agent("bob").connect().await;

    let chat = server
        .customer("whatsapp", "+4915100000202")
        .says("Hello")
        .await
        .chat_id();

    let offer = bob.expect_push("chat_offered").await;
    assert_eq!(offer["chat"]["id"], chat.as_str());
    assert_eq!(offer["queue"], "whatsapp");
    ana.expect_no_push("chat_offered").await;
    server.check_invariants();
}

#[tokio::test]
async fn r06_on_equal_load_the_longest_idle_agent_gets_the_offer_and_a_decline_moves_it_on() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    server.advance(Duration::minutes(1));
    let mut bob = server.agent("bob").connect().await;

    let chat = server
        .customer("whatsapp", "+4915100000203")
        .says("Hello")
        .await
        .chat_id();
    let offer = ana.expect_push("chat_offered").await;
    assert_eq!(offer["chat"]["id"], chat.as_str());
    bob.expect_no_push("chat_offered").await;

    ana.decline(&chat).await.expect_ok();

    bob.takes(&chat).await;
    ana.expect_no_push("chat_offered").await;
    server.check_invariants();
}

#[tokio::test]
async fn r06_an_offer_not_accepted_in_time_goes_to_the_next_agent_and_the_silent_one_is_set_away() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    server.advance(Duration::seconds(1));
    let mut bob = server.agent("bob").connect().await;
    let chat = server
        .customer("whatsapp", "+4915100000204")
        .says("Hello")
        .await
        .chat_id();
    ana.expect_push("chat_offered").await;

    server.advance(Duration::seconds(29));
    bob.expect_no_push("chat_offered").await;
    server.advance(Duration::seconds(2));

    let withdrawn = ana.expect_push("offer_withdrawn").await;
    assert_eq!(withdrawn["chat_id"], chat.as_str());
    assert_eq!(withdrawn["reason"], "timeout");
    assert_eq!(ana.expect_push("presence_changed").await["presence"], "away");
    bob.takes(&chat).await;
    assert_eq!(server.agent_status("ana").await["presence"], "away");
    ana.accept(&chat).await.expect_error("not_found");
    server.check_invariants();
}

#[tokio::test]
async fn r06_when_nobody_has_room_chats_wait_oldest_first_with_known_positions() {
    let server = TestServer::start().await;
    let mut ana = server.agent_with("ana", Role::Agent, 1).connect().await;
    let first = ana.serves(&server.customer("whatsapp", "+4915100000205")).await;

    let mut waiting = Vec::new();
    for (i, phone) in ["+4915100000206", "+4915100000207", "+4915100000208"]
        .into_iter()
        .enumerate()
    {
        server.advance(Duration::seconds(10));
        let receipt = server.customer("whatsapp", phone).says("Hello").await;
        assert_eq!(receipt["state"], "queued");
        assert_eq!(receipt["queue_position"], i + 1);
        waiting.push(receipt.chat_id());
    }
    let queue = server.waiting_in("whatsapp").await;
    let listed: Vec<(&str, u64)> = queue
        .iter()
        .map(|w| {
            (
                w["chat_id"].as_str().unwrap_or_default(),
                w["position"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (waiting[0].as_str(), 1),
            (waiting[1].as_str(), 2),
            (waiting[2].as_str(), 3)
        ]
    );
    ana.expect_no_push("chat_offered").await;

    ana.closes(&first).await;

    ana.takes(&waiting[0]).await;
    let queue = server.waiting_in("whatsapp").await;
    assert_eq!(queue.len(), 2);
    assert_eq!(queue[0]["chat_id"], waiting[1].as_str());
    assert_eq!(queue[0]["position"], 1);
    server.check_invariants();
}

#[tokio::test]
async fn r06_a_limit_changes_live_lowering_it_drops_nothing_and_raising_it_routes_the_queue() {
    let server = TestServer::start().await;
    let mut ana = server.agent_with("ana", Role::Agent, 2).connect().await;
    let one = ana.serves(&server.customer("whatsapp", "+4915100000209")).await;
    let two = ana.serves(&server.customer("whatsapp", "+4915100000210")).await;

    server.set_limit("ana", 1).await;

    let changed = ana.expect_push("limit_changed").await;
    assert_eq!(
        (changed["limit"].as_u64(), changed["load"].as_u64()),
        (Some(1), Some(2))
    );
    for chat in [&one, &two] {
        assert_eq!(ana.get_chat(chat).await.expect_ok()["chat"]["state"], "active");
    }
    let waiting = server.customer("whatsapp", "+4915100000211").says("Hello").await;
    assert_eq!(waiting["queue_position"], 1);
    ana.expect_no_push("chat_offered").await;

    server.set_limit("ana", 3).await;

    ana.takes(&waiting.chat_id()).await;
    let changed = ana.expect_push("limit_changed").await;
    assert_eq!(changed["limit"], 3);
    let status = server.agent_status("ana").await;
    assert_eq!(
        (status["load"].as_u64(), status["limit"].as_u64()),
        (Some(3), Some(3))
    );
    server.check_invariants();
}

#[tokio::test]
async fn r10_a_returning_customer_goes_to_the_originally_assigned_agent_when_online() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000212");
    let old = ana.serves(&customer).await;
    ana.closes(&old).await;
    // Ana is busier than Bob, so only the assignment can send the customer to her.
    ana.serves(&server.customer("whatsapp", "+4915100000213")).await;
    let mut bob = server.agent("bob").connect().await;

    server.advance(Duration::hours(30));
    let new = customer.says("Back again").await.chat_id();

    assert_ne!(new, old);
    ana.takes(&new).await;
    bob.expect_no_push("chat_offered").await;
    server.check_invariants();
}

#[tokio::test]
async fn r10_a_returning_customer_waits_in_the_queue_when_the_assigned_agent_is_offline() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000214");
    let chat = ana.serves(&customer).await;
    ana.closes(&chat).await;
    ana.disconnect().await;
    server.advance(Duration::seconds(61));
    assert_eq!(server.agent_status("ana").await["presence"], "offline");

    let receipt = customer.says("Back again").await;

    assert_eq!(receipt["state"], "queued");
    assert_eq!(receipt["queue_position"], 1);
    let mut bob = server.agent("bob").connect().await;
    bob.takes(&receipt.chat_id()).await;
    server.check_invariants();
}

#[tokio::test]
async fn r10_a_transfer_moves_ownership_but_not_the_originally_assigned_mark() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100000215");
    let chat = ana.serves(&customer).await;
    let mut bob = server.agent("bob").connect().await;
    ana.transfer(&chat, "bob", false).await.expect_ok();
    assert_eq!(ana.expect_push("chat_transferred").await["to"], "bob");
    bob.expect_push("chat_activated").await;
    bob.closes(&chat).await;
    // Ana is busier than Bob, so only the assignment can send the customer to her.
    ana.serves(&server.customer("whatsapp", "+4915100000216")).await;

    let back = customer.says("Me again").await.chat_id();

    ana.takes(&back).await;
    bob.expect_no_push("chat_offered").await;
    server.check_invariants();
}

/// The reference's case (002, last FAQ), over the wire: Ana accepts, transfers to Bob, who
/// closes; Cleo reopens and closes again. The customer then writes on their own: the chat is
/// offered to Ana, their originally assigned agent, and not to Cleo, the last reopener.
#[tokio::test]
async fn r10_a_returning_customer_goes_to_the_originally_assigned_agent_not_the_last_reopener() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let mut bob = server.agent("bob").connect().await;
    let mut cleo = server.agent("cleo").connect().await;
    let customer = server.customer("whatsapp", "+4915100000230");
    let chat = ana.serves(&customer).await;
    ana.transfer(&chat, "bob", false).await.expect_ok();
    bob.expect_push("chat_activated").await;
    bob.closes(&chat).await;
    cleo.reopen(&chat).await.expect_ok();
    cleo.closes(&chat).await;
    // Ana is the busiest of the three: only the assignment can send the customer to her.
    ana.serves(&server.customer("whatsapp", "+4915100000231")).await;
    ana.drain_pushes().await;
    cleo.drain_pushes().await;

    let back = customer.says("Me again").await.chat_id();

    ana.takes(&back).await;
    cleo.expect_no_push("chat_offered").await;
    bob.expect_no_push("chat_offered").await;
    server.check_invariants();
}

#[tokio::test]
async fn r06_a_chat_whose_offer_lapsed_is_offered_again_once_its_only_agent_is_back_online() {
    let server = TestServer::start().await;
    let mut ana = server.agent("ana").connect().await;
    let chat = server
        .customer("whatsapp", "+4915100000217")
        .says("Hello")
        .await
        .chat_id();
    ana.expect_push("chat_offered").await;
    server.advance(Duration::seconds(31));
    assert_eq!(ana.expect_push("presence_changed").await["presence"], "away");
    assert_eq!(server.waiting_in("whatsapp").await.len(), 1, "the chat waits");

    ana.set_presence("online").await.expect_ok();

    // An online agent below its limit is there, so the waiting chat must go to her (R06)
    // rather than wait for an agent who never let an offer of it lapse.
    ana.takes(&chat).await;
    server.check_invariants();
}
