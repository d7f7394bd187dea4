//! The writing connection on PostgreSQL: one transaction per group the writer thread drained
//! (`store/writer.rs` drives it as it drives SQLite's), each change the same upsert, append or
//! delete as SQLite's, translated.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, IsolationLevel, Statement, Transaction};

use super::super::codec::{
    agent_json, channels_json, delivery_columns, event_columns, identities_json, json, nanos, nanos_opt,
    ChatColumns, MessageColumns, Stored,
};
use super::super::leases::{Epoch, Epochs};
use super::super::records::{AgentRecord, Change, ChatRecord, CustomerRecord, OutboxRecord};
use super::super::stored_bytes::Added;
use super::super::workspace_rows::WorkspaceState;
use super::super::writer::{phone_digits, Committed, GroupCommit, Job};
use super::super::{StoreError, WsKey};
use super::archive::search_text;
use super::leases::EPOCHS_FOR_SHARE;
use super::{on_plain_thread, Database};
use crate::core::chat::Message;
use crate::ids::ChatId;

/// The tables that hold a workspace's rows, each with the delete of one batch of them (`$1` the
/// workspace, `$2` the batch); `workspaces` is not one of them.
pub(super) const PURGES: [(&str, &str); 8] = [
    (
        "customers",
        "DELETE FROM customers WHERE key IN (SELECT key FROM customers WHERE ws = $1 ORDER BY key LIMIT $2)",
    ),
    (
        "chats",
        "DELETE FROM chats WHERE ws = $1 AND id IN (SELECT id FROM chats WHERE ws = $1 LIMIT $2)",
    ),
    (
        "messages",
        "DELETE FROM messages WHERE ws = $1 AND (chat, seq) IN
             (SELECT chat, seq FROM messages WHERE ws = $1 LIMIT $2)",
    ),
    (
        "analytics_events",
        "DELETE FROM analytics_events WHERE id IN (SELECT id FROM analytics_events WHERE ws = $1 LIMIT $2)",
    ),
    (
        "agent_limits",
        "DELETE FROM agent_limits WHERE ws = $1 AND agent IN
             (SELECT agent FROM agent_limits WHERE ws = $1 LIMIT $2)",
    ),
    (
        "agent_skills",
        "DELETE FROM agent_skills WHERE ws = $1 AND agent IN
             (SELECT agent FROM agent_skills WHERE ws = $1 LIMIT $2)",
    ),
    (
        "agents",
        "DELETE FROM agents WHERE ws = $1 AND agent IN (SELECT agent FROM agents WHERE ws = $1 LIMIT $2)",
    ),
    (
        "outbox",
        "DELETE FROM outbox WHERE ws = $1 AND id IN (SELECT id FROM outbox WHERE ws = $1 LIMIT $2)",
    ),
];

/// The writer thread's connection to PostgreSQL, with its statements prepared once.
pub(crate) struct PgWriter {
    client: Client,
    db: Database,
    statements: HashMap<&'static str, Statement>,
}

impl PgWriter {
    pub(super) fn new(client: Client, db: Database) -> Self {
        Self {
            client,
            db,
            statements: HashMap::new(),
        }
    }
}

impl GroupCommit for PgWriter {
    fn commit(&mut self, group: &[Job]) -> Result<Committed, StoreError> {
        // The writer is a plain thread; a test may drive a store from async code, though.
        let Self {
            client,
            db,
            statements,
        } = self;
        on_plain_thread(|| {
            let err = |e| db.error(e);
            // READ COMMITTED whatever the database's default: the fencing check below must
            // see the newest committed epoch, not a snapshot's.
            let mut batch = Batch {
                tx: client
                    .build_transaction()
                    .isolation_level(IsolationLevel::ReadCommitted)
                    .start()
                    .map_err(err)?,
                statements,
            };
            let into_store = |failure| match failure {
                Failure::Value(e) => e,
                Failure::Sql(e) => db.error(e),
            };
            let epochs = batch.epochs(group).map_err(into_store)?;
            let mut added = Added::new();
            for job in group.iter().filter(|job| epochs.refusal(job).is_none()) {
                for change in &job.changes {
                    let bytes = apply(&mut batch, job.ws, change).map_err(into_store)?;
                    if bytes > 0 {
                        *added.entry(job.ws).or_default() += bytes;
                    }
                }
            }
            // The count and the messages are committed together or not at all, as on SQLite
            // (`stored_bytes::record`).
            for (ws, bytes) in &added {
                batch
                    .execute(
                        "UPDATE workspaces SET stored_bytes = stored_bytes + $2 WHERE key = $1",
                        &[&ws.get(), &i64::try_from(*bytes).unwrap_or(i64::MAX)],
                    )
                    .map_err(into_store)?;
            }
            // Dropping the transaction on an error above rolls the whole group back.
            batch.tx.commit().map_err(err)?;
            Ok(Committed { added, epochs })
        })
    }

    fn reconnect(&mut self) -> Result<(), StoreError> {
        let db = &self.db;
        let fresh = on_plain_thread(|| db.connect_writer())?;
        let old = std::mem::replace(&mut self.client, fresh);
        // Prepared on the old session: gone with it.
        self.statements.clear();
        // Closing a client runs its runtime: not on an async worker either.
        on_plain_thread(move || drop(old));
        Ok(())
    }
}

/// Why one change could not be applied: its value cannot be stored, or PostgreSQL refused it.
enum Failure {
    Value(StoreError),
    Sql(postgres::Error),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Value(e)
    }
}

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Self {
        Failure::Sql(e)
    }
}

/// One group's transaction, and the writer's prepared statements.
struct Batch<'a> {
    tx: Transaction<'a>,
    statements: &'a mut HashMap<&'static str, Statement>,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl Batch<'_> {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64, Failure> {
        let statement = self.statement(sql)?;
        Ok(self.tx.execute(&statement, params)?)
    }

    /// The lease epochs of the group's fenced workspaces (R28), read first thing in its
    /// transaction and locked `FOR SHARE` until its commit; nothing is read for a group
    /// without fenced submissions.
    ///
    /// Why that fences: a take of the lease (`postgres/leases.rs`) updates the row, which
    /// needs a lock that conflicts with `FOR SHARE`. If this group locks the row first, the
    /// take waits until the group is committed, so everything written under the old epoch is
    /// in the database before the new owner holds the lease (and then loads the workspace). If
    /// the take updated the row first, this read waits for the take's commit, if it has not
    /// committed yet, and then reads the row as the take left it (READ COMMITTED follows a
    /// locked row to its newest version): the new epoch, so the old owner's submissions are
    /// refused. There is no moment at which both the old owner's group and the new owner's
    /// take go ahead.
    fn epochs(&mut self, group: &[Job]) -> Result<Epochs, Failure> {
        let wss = Epochs::fenced_in(group);
        if wss.is_empty() {
            return Ok(Epochs::default());
        }
        let keys: Vec<i64> = wss.iter().map(|ws| ws.get()).collect();
        let statement = self.statement(EPOCHS_FOR_SHARE)?;
        let rows = self.tx.query(&statement, &[&keys])?;
        Ok(Epochs::read(
            &wss,
            rows.iter()
                .map(|row| (WsKey::new(row.get(0)), Epoch::new(row.get(1)))),
        ))
    }
}

/// Applies one change; answers the bytes of message it stored (a new message's text and
/// payload, as `writer::append_message` counts them on SQLite), 0 for every other change.
fn apply(b: &mut Batch<'_>, ws: WsKey, change: &Change) -> Result<u64, Failure> {
    let ws = ws.get();
    if let Change::AppendMessage { chat, seq, message } = change {
        return append_message(b, ws, chat, *seq, message);
    }
    apply_other(b, ws, change).map(|()| 0)
}

/// Inserts a message; answers the bytes of its text and payload, 0 if it was stored already (a
/// replay), so that each message is counted once.
fn append_message(
    b: &mut Batch<'_>,
    ws: i64,
    chat: &ChatId,
    seq: u64,
    message: &Message,
) -> Result<u64, Failure> {
    let m = MessageColumns::of(seq, message)?;
    let inserted = b.execute(
        "INSERT INTO messages (ws, chat, seq, at, author, agent, kind, text, payload, provider_id,
                               delivery, delivery_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11, $12)
         ON CONFLICT (ws, chat, seq) DO NOTHING",
        &[
            &ws,
            &chat.as_str(),
            &m.seq,
            &m.at,
            &m.author,
            &m.agent,
            &m.kind,
            &m.text,
            &m.payload,
            &m.provider_id,
            &m.delivery,
            &m.delivery_reason,
        ],
    )?;
    // The JSON as written (SQLite's length), not as the jsonb column prints it back.
    Ok(if inserted == 0 { 0 } else { m.stored_bytes() })
}

fn apply_other(b: &mut Batch<'_>, ws: i64, change: &Change) -> Result<(), Failure> {
    match change {
        Change::UpsertCustomer(customer) => upsert_customer(b, ws, customer),
        Change::UpsertChat(chat) => upsert_chat(b, ws, chat),
        // Applied by `append_message` above.
        Change::AppendMessage { .. } => Ok(()),
        Change::Analytics(e) => {
            let (kind, reason, waited_ms, to_accept_ms, within_sla) = event_columns(&e.kind)?;
            b.execute(
                "INSERT INTO analytics_events (ws, at, agent, channel, kind, reason, waited_ms, to_accept_ms,
                                               within_sla, queue)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &ws,
                    &nanos(&e.at)?,
                    &e.agent.as_str(),
                    &e.channel.stored(),
                    &kind,
                    &reason,
                    &waited_ms,
                    &to_accept_ms,
                    &within_sla,
                    &e.queue.as_ref().map(|q| q.as_str()),
                ],
            )?;
            Ok(())
        }
        Change::SetAgentLimit { agent, limit } => {
            b.execute(
                "INSERT INTO agent_limits (ws, agent, max_active) VALUES ($1, $2, $3)
                 ON CONFLICT (ws, agent) DO UPDATE SET max_active = excluded.max_active",
                &[&ws, &agent.as_str(), &i64::from(*limit)],
            )?;
            Ok(())
        }
        Change::SetAgentSkills { agent, skills } => {
            b.execute(
                "INSERT INTO agent_skills (ws, agent, skills) VALUES ($1, $2, $3::text::jsonb)
                 ON CONFLICT (ws, agent) DO UPDATE SET skills = excluded.skills",
                &[&ws, &agent.as_str(), &json(skills)?],
            )?;
            Ok(())
        }
        Change::SetDelivery {
            chat,
            seq,
            delivery,
            provider_id,
        } => {
            let (name, reason) = delivery_columns(Some(delivery));
            b.execute(
                "UPDATE messages SET delivery = $4, delivery_reason = $5,
                                     provider_id = COALESCE($6, provider_id)
                 WHERE ws = $1 AND chat = $2 AND seq = $3",
                &[&ws, &chat.as_str(), &(*seq as i64), &name, &reason, provider_id],
            )?;
            Ok(())
        }
        Change::Outbox(r) => outbox_insert(b, ws, r),
        Change::OutboxAttempt {
            id,
            attempts,
            next_at,
            error,
        } => {
            b.execute(
                "UPDATE outbox SET attempts = $3, next_at = $4, last_error = $5 WHERE ws = $1 AND id = $2",
                &[&ws, &(*id as i64), &i64::from(*attempts), &nanos(next_at)?, error],
            )?;
            Ok(())
        }
        Change::OutboxFailed { id, reason } => {
            b.execute(
                "UPDATE outbox SET failed = $3, next_at = NULL WHERE ws = $1 AND id = $2",
                &[&ws, &(*id as i64), reason],
            )?;
            Ok(())
        }
        Change::OutboxDone { id } => {
            b.execute(
                "DELETE FROM outbox WHERE ws = $1 AND id = $2",
                &[&ws, &(*id as i64)],
            )?;
            Ok(())
        }
        Change::UpsertAgent(agent) => upsert_agent(b, ws, agent),
        Change::RemoveAgent { agent } => {
            b.execute(
                "DELETE FROM agents WHERE ws = $1 AND agent = $2",
                &[&ws, &agent.as_str()],
            )?;
            delete_live_settings(b, ws, agent.as_str())
        }
        Change::CreateWorkspace { id, name, created_at } => {
            // Not submitted on PostgreSQL: `Store::create_workspace` inserts the row itself,
            // under a key from the database (`postgres/workspace_create.rs`), since a key or id
            // another node took would fail this group and stop the writer. Kept so that the
            // writer applies every change on both backends; a replay changes nothing.
            b.execute(
                "INSERT INTO workspaces (key, id, name, state, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (key) DO NOTHING",
                &[
                    &ws,
                    &id.as_str(),
                    name,
                    &WorkspaceState::Active.stored(),
                    &nanos(created_at)?,
                ],
            )?;
            Ok(())
        }
        Change::SetWorkspaceState(state) => {
            // Never out of `deleting` (`workspace_rows::set_state` says why).
            b.execute(
                "UPDATE workspaces SET state = $2 WHERE key = $1 AND state <> 'deleting'",
                &[&ws, &state.stored()],
            )?;
            Ok(())
        }
        Change::SetWorkspaceAdminKey(digest) => {
            b.execute(
                "UPDATE workspaces SET admin_key_sha256 = $2 WHERE key = $1",
                &[&ws, &digest.as_bytes().as_slice()],
            )?;
            Ok(())
        }
        Change::SetWorkspaceSettings(settings) => {
            b.execute(
                "UPDATE workspaces SET settings = $2::text::jsonb WHERE key = $1",
                &[&ws, settings],
            )?;
            Ok(())
        }
        Change::SetWorkspaceLimits(limits) => {
            b.execute(
                "UPDATE workspaces SET limits = $2::text::jsonb WHERE key = $1",
                &[&ws, limits],
            )?;
            Ok(())
        }
        Change::PurgeWorkspace { batch } => {
            for (_, sql) in PURGES {
                b.execute(sql, &[&ws, &i64::from(*batch)])?;
            }
            Ok(())
        }
        Change::DeleteWorkspace => {
            // Not its lease row: that takes a lock another node's group may hold `FOR SHARE`
            // while it waits on a row this group holds; `Store::drop_lease` deletes it on its own.
            b.execute("DELETE FROM workspaces WHERE key = $1", &[&ws])?;
            Ok(())
        }
    }
}

fn upsert_customer(b: &mut Batch<'_>, ws: i64, c: &CustomerRecord) -> Result<(), Failure> {
    let p = &c.profile;
    // What the archive search finds the customer by (`archive.rs`).
    let words = search_text(p.name.as_deref(), p.email.as_deref());
    b.execute(
        "INSERT INTO customers (ws, id, name, email, phone, identities, opted_out, pushed, assigned_agent,
                                search, phone_digits)
         VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8::text::jsonb, $9,
                 to_tsvector('simple', $10), $11)
         ON CONFLICT (ws, id) DO UPDATE SET
            name = excluded.name, email = excluded.email, phone = excluded.phone,
            identities = excluded.identities, opted_out = excluded.opted_out,
            pushed = excluded.pushed, assigned_agent = excluded.assigned_agent,
            search = excluded.search, phone_digits = excluded.phone_digits",
        &[
            &ws,
            &c.id.as_str(),
            &p.name,
            &p.email,
            &p.phone,
            &identities_json(&c.identities)?,
            &channels_json(&c.opted_out)?,
            &channels_json(&c.pushed)?,
            &c.assigned_agent.as_ref().map(|a| a.as_str()),
            &words,
            &p.phone.as_deref().map(phone_digits),
        ],
    )?;
    Ok(())
}

fn upsert_chat(b: &mut Batch<'_>, ws: i64, c: &ChatRecord) -> Result<(), Failure> {
    let c = ChatColumns::of(c)?;
    b.execute(
        "INSERT INTO chats (ws, id, customer, channel, state, owner, reopened_by, reopened_at, snooze,
                            created_at, queued_at, last_customer_message_at, closed_at, close_reason,
                            newest_at, routing)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11, $12, $13, $14, $15,
                 $16::text::jsonb)
         ON CONFLICT (ws, id) DO UPDATE SET
            customer = excluded.customer, channel = excluded.channel, state = excluded.state,
            owner = excluded.owner, reopened_by = excluded.reopened_by,
            reopened_at = excluded.reopened_at, snooze = excluded.snooze,
            created_at = excluded.created_at, queued_at = excluded.queued_at,
            last_customer_message_at = excluded.last_customer_message_at,
            closed_at = excluded.closed_at, close_reason = excluded.close_reason,
            newest_at = excluded.newest_at, routing = excluded.routing",
        &[
            &ws,
            &c.id,
            &c.customer,
            &c.channel,
            &c.state,
            &c.owner,
            &c.reopened_by,
            &c.reopened_at,
            &c.snooze,
            &c.created_at,
            &c.queued_at,
            &c.last_customer_message_at,
            &c.closed_at,
            &c.close_reason,
            &c.newest_at,
            &c.routing,
        ],
    )?;
    Ok(())
}

fn outbox_insert(b: &mut Batch<'_>, ws: i64, r: &OutboxRecord) -> Result<(), Failure> {
    b.execute(
        "INSERT INTO outbox (ws, id, customer, chat, seq, message, idempotency_key, attempts, next_at,
                             last_error, failed)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (ws, id) DO NOTHING",
        &[
            &ws,
            &(r.id as i64),
            &r.customer.as_str(),
            &r.chat.as_str(),
            &r.seq.map(|s| s as i64),
            &r.message,
            &r.idempotency_key,
            &i64::from(r.attempts),
            &nanos_opt(r.next_at.as_ref())?,
            &r.last_error,
            &r.failed,
        ],
    )?;
    Ok(())
}

fn upsert_agent(b: &mut Batch<'_>, ws: i64, a: &AgentRecord) -> Result<(), Failure> {
    let (queues, skills, channel_limits) = agent_json(a)?;
    // No token in the record: the agent keeps the one stored, as it keeps its token in memory.
    b.execute(
        "INSERT INTO agents (ws, agent, name, role, max_active, queues, skills, channel_limits, token_sha256)
         VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8::text::jsonb, $9)
         ON CONFLICT (ws, agent) DO UPDATE SET
            name = excluded.name, role = excluded.role, max_active = excluded.max_active,
            queues = excluded.queues, skills = excluded.skills,
            channel_limits = excluded.channel_limits,
            token_sha256 = COALESCE(excluded.token_sha256, agents.token_sha256)",
        &[
            &ws,
            &a.id.as_str(),
            &a.name,
            &a.role.stored(),
            &i64::from(a.limit),
            &queues,
            &skills,
            &channel_limits,
            &a.token_sha256.as_ref().map(|h| h.as_bytes().as_slice()),
        ],
    )?;
    // The profile replaced limit and skills in memory: live changes made before it would
    // otherwise come back over it on the next start.
    delete_live_settings(b, ws, a.id.as_str())
}

/// Forgets the limit and skills set live for `agent`.
fn delete_live_settings(b: &mut Batch<'_>, ws: i64, agent: &str) -> Result<(), Failure> {
    b.execute(
        "DELETE FROM agent_limits WHERE ws = $1 AND agent = $2",
        &[&ws, &agent],
    )?;
    b.execute(
        "DELETE FROM agent_skills WHERE ws = $1 AND agent = $2",
        &[&ws, &agent],
    )?;
    Ok(())
}
