//! R27: agents created over the admin API are stored whole, with a digest of their token
//! only, and a database of version 3 migrates to hold them.

use std::collections::BTreeMap;

use super::*;
use crate::core::Role;
use crate::ids::QueueId;
use crate::security::TokenHash;

pub(super) fn agent(id: &str, limit: u32, token: Option<&str>) -> AgentRecord {
    AgentRecord {
        id: AgentId::from(id),
        name: format!("{id} Lima"),
        role: Role::Supervisor,
        limit,
        queues: vec![QueueId::from("billing"), QueueId::from("vip")],
        skills: [("language:es".to_owned(), 5), ("billing".to_owned(), 2)]
            .into_iter()
            .collect(),
        channel_limits: [(Channel::Whatsapp, 2), (Channel::Email, 7)]
            .into_iter()
            .collect(),
        token_sha256: token.map(TokenHash::of),
    }
}

/// Every byte of every file in `dir` (the database, its log), to look for a secret in them.
fn bytes_under(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in fs::read_dir(dir).expect("the directory reads") {
        let path = entry.expect("an entry").path();
        if path.is_file() {
            all.extend(fs::read(&path).expect("the file reads"));
        }
    }
    all
}

#[test]
fn r27_an_agent_reads_back_as_written_with_only_its_token_s_digest() {
    let dir = TempDir::new("agent");
    let path = dir.db();
    let ana = agent("ana", 4, Some("ana-very-secret-token"));
    {
        let store = open(&path);
        store
            .submit(vec![Change::UpsertAgent(ana.clone())])
            .wait()
            .expect("committed");
        let data = path.parent().expect("a data directory");
        let bytes = bytes_under(data);
        assert!(
            !bytes
                .windows(b"ana-very-secret-token".len())
                .any(|w| w == b"ana-very-secret-token"),
            "the token is nowhere on disk in clear"
        );
    }
    let store = open(&path);
    assert_eq!(store.load().expect("loads").agents, vec![ana.clone()]);

    // Changed without a token: the stored digest stays, as the token does in memory.
    let changed = AgentRecord {
        limit: 6,
        queues: Vec::new(),
        channel_limits: BTreeMap::new(),
        token_sha256: None,
        ..ana.clone()
    };
    store
        .submit(vec![Change::UpsertAgent(changed.clone())])
        .wait()
        .expect("committed");
    let agents = store.load().expect("loads").agents;
    assert_eq!(
        agents,
        vec![AgentRecord {
            token_sha256: ana.token_sha256,
            ..changed
        }]
    );
}

fn r27_an_upsert_supersedes_live_settings_and_a_removal_deletes_all_of_an_agent_s_rows(db: &Db) {
    let store = db.open();
    let skills: crate::core::Skills = [("vip".to_owned(), 3)].into_iter().collect();
    store
        .submit(vec![
            Change::SetAgentLimit {
                agent: AgentId::from("ana"),
                limit: 9,
            },
            Change::UpsertAgent(agent("ana", 4, Some("a"))),
            Change::SetAgentSkills {
                agent: AgentId::from("ana"),
                skills: skills.clone(),
            },
            Change::UpsertAgent(agent("ben", 2, None)),
            Change::SetAgentLimit {
                agent: AgentId::from("ben"),
                limit: 1,
            },
        ])
        .wait()
        .expect("committed");
    let snapshot = store.load().expect("loads");
    assert_eq!(
        snapshot.agent_limits,
        vec![(AgentId::from("ben"), 1)],
        "ana's limit of 9 was set before her profile replaced it"
    );
    assert_eq!(snapshot.agent_skills, vec![(AgentId::from("ana"), skills)]);
    assert_eq!(snapshot.agents.len(), 2);

    store
        .submit(vec![
            Change::RemoveAgent {
                agent: AgentId::from("ana"),
            },
            Change::RemoveAgent {
                agent: AgentId::from("ben"),
            },
        ])
        .wait()
        .expect("committed");
    for table in ["agents", "agent_limits", "agent_skills"] {
        assert_eq!(db.count(table), 0, "{table}");
    }
}

#[test]
fn r27_a_version_3_database_migrates_and_keeps_its_rows() {
    let dir = TempDir::new("v3");
    let path = dir.db();
    fs::create_dir_all(path.parent().expect("a data directory")).expect("created");
    {
        // A database as the build before agents were stored left it.
        let conn = Connection::open(&path).expect("raw connection opens");
        for sql in &schema::MIGRATIONS[..3] {
            conn.execute_batch(sql).expect("an old migration runs");
        }
        conn.pragma_update(None, "user_version", 3).expect("version set");
        conn.execute_batch(
            "INSERT INTO customers (id, name, identities, opted_out, pushed)
                 VALUES ('u1', 'Ana', '[[\"whatsapp\",\"+1\"]]', '[]', '[]');
             INSERT INTO agent_limits (agent, max_active) VALUES ('ana', 5);
             INSERT INTO agent_skills (agent, skills) VALUES ('ana', '{\"vip\":3}');",
        )
        .expect("rows of version 3 written");
    }

    let store = open(&path);
    let version: i64 = Connection::open(&path)
        .expect("raw connection opens")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("reads version");
    assert_eq!(version, Store::schema_version());
    assert!(
        Store::schema_version() >= 4,
        "agents are stored from version 4 on"
    );
    let snapshot = store.load().expect("loads");
    assert_eq!(snapshot.customers.len(), 1);
    assert_eq!(snapshot.agent_limits, vec![(AgentId::from("ana"), 5)]);
    assert_eq!(snapshot.agent_skills.len(), 1);
    assert!(snapshot.agents.is_empty(), "no agent was stored before");

    // And the new table takes agents.
    let ben = agent("ben", 2, Some("ben-token"));
    store
        .submit(vec![Change::UpsertAgent(ben.clone())])
        .wait()
        .expect("committed");
    assert_eq!(store.load().expect("loads").agents, vec![ben]);
}

#[test]
fn r27_a_token_digest_of_the_wrong_length_is_refused_naming_it() {
    let dir = TempDir::new("agent-digest");
    let path = dir.db();
    let store = open(&path);
    store
        .submit(vec![Change::UpsertAgent(agent("ana", 4, Some("a")))])
        .wait()
        .expect("committed");
    Connection::open(&path)
        .expect("raw connection opens")
        .execute("UPDATE agents SET token_sha256 = x'0102'", [])
        .expect("damaged");
    let err = store.load().expect_err("a damaged digest is refused");
    assert!(err.to_string().contains("2 bytes, not 32"), "{err}");
}

on_both_backends!(r27_an_upsert_supersedes_live_settings_and_a_removal_deletes_all_of_an_agent_s_rows);
