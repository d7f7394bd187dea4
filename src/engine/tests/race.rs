//! "Exactly one reopen wins" (R03), on real threads, many times.

use std::sync::{Arc, Barrier};

use super::desk::Desk;
use crate::core::{Channel, ErrorCode};
use crate::protocol::{Push, Request};

#[test]
fn r03_of_32_agents_racing_to_reopen_one_customer_exactly_one_wins_every_time() {
    const AGENTS: usize = 32;
    const ROUNDS: usize = 200;
    let mut desk = Desk::new();
    let host = desk.agent("host", ROUNDS as u32);
    let agents: Vec<_> = (0..AGENTS).map(|i| desk.agent(&format!("a{i}"), 0)).collect();
    for round in 0..ROUNDS {
        let chat = desk.closed_chat(&host, Channel::Whatsapp, &format!("+49{round}"));
        let barrier = Arc::new(Barrier::new(AGENTS));
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = agents
                .iter()
                .enumerate()
                .map(|(i, agent)| {
                    let (desk, barrier, chat) = (&desk, barrier.clone(), chat.clone());
                    s.spawn(move || {
                        barrier.wait();
                        (i, desk.request(agent, Request::Reopen { chat_id: chat }))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("no panic")).collect()
        });
        let winners: Vec<usize> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        for (_, r) in &results {
            if let Err(e) = r {
                assert_eq!(e.code(), ErrorCode::ActiveElsewhere);
            }
        }
        for (i, agent) in agents.iter().enumerate() {
            let reopened = desk
                .pushes(agent)
                .iter()
                .filter(|p| matches!(p, Push::ChatReopened { .. }))
                .count();
            assert_eq!(reopened, usize::from(i == winners[0]), "round {round}, agent {i}");
        }
        // Let the customer go so the winner's history stays small.
        desk.say(Channel::Whatsapp, &format!("+49{round}"), "#STOP");
        for agent in &agents {
            desk.pushes(agent);
        }
    }
    desk.check();
}
