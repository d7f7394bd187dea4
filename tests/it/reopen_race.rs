//! R03's race: many agents reopen the same chat at the same instant, over real sockets, on a
//! multi-thread runtime; exactly one wins, every time.

use std::collections::HashSet;
use std::sync::Arc;

use switchboard::core::Role;
use switchboard::protocol::MessageKind;
use tokio::sync::Barrier;

use super::support::{AgentClient, Reply, TestServer};

const RACERS: usize = 32;
const ROUNDS: usize = 200;

/// What one racer saw in one round.
struct Outcome {
    racer: AgentClient,
    reply: Reply,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r03_of_32_agents_racing_to_reopen_a_chat_exactly_one_wins_every_round() {
    let server = TestServer::start().await;
    // Olga takes and closes every chat; the racers (limit 0) are never offered one, and
    // reopening needs no free slot.
    let mut olga = server.agent_with("olga", Role::Agent, 1).connect().await;
    let mut racers = Vec::with_capacity(RACERS);
    for i in 0..RACERS {
        let racer = server.agent_with(&format!("racer{i:02}"), Role::Agent, 0);
        racers.push(racer.connect().await);
    }

    for round in 0..ROUNDS {
        let customer = server.customer("whatsapp", &format!("+49170{round:07}"));
        let chat = olga.serves(&customer).await;
        olga.closes(&chat).await;

        let start = Arc::new(Barrier::new(RACERS));
        let races: Vec<_> = racers
            .drain(..)
            .map(|mut racer| {
                let (chat, start) = (chat.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let reply = racer.reopen(&chat).await;
                    if reply.is_ok() {
                        let pushed = racer.expect_push("chat_reopened").await;
                        assert_eq!(pushed["chat"]["id"], chat.as_str());
                    } else {
                        // A loser's reply came after the winner's push was delivered, so a
                        // stray push to the loser would already be here.
                        racer.expect_no_push("chat_reopened").await;
                    }
                    Outcome { racer, reply }
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for race in races {
            let Outcome { racer, reply } = race.await.expect("a racer panicked");
            if reply.is_ok() {
                winners.push(racer.id().to_owned());
            } else {
                losers.push(reply.expect_error("active_elsewhere"));
            }
            racers.push(racer);
        }

        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert_eq!(losers.len(), RACERS - 1);
        for error in &losers {
            assert_eq!(error["live"]["chat_id"], chat.as_str(), "round {round}");
            assert_eq!(error["live"]["owner"], winners[0].as_str(), "round {round}");
        }
        assert_eq!(
            server.engine.chat_state(&chat.as_str().into()),
            Some(switchboard::core::ChatState::Reopened)
        );
    }

    let notices: Vec<String> = server
        .sent_to_customers()
        .into_iter()
        .filter(|m| m.kind == MessageKind::Notice)
        .map(|m| m.chat_id.to_string())
        .collect();
    let chats: HashSet<&String> = notices.iter().collect();
    assert_eq!(
        (notices.len(), chats.len()),
        (ROUNDS, ROUNDS),
        "one reopen notice per chat"
    );
    server.check_invariants();
}
