//! The store on PostgreSQL (issue 19): the cluster's system of record, behind the same
//! [`Store`](super::Store) and [`WorkspaceStore`](super::WorkspaceStore) as SQLite.
//!
//! - One writing connection, owned by the store's writer thread (`writer.rs` drives it as it
//!   drives SQLite's): every drained batch of submissions is one transaction, committed once,
//!   and only then are its receipts completed (`postgres/writer.rs`).
//! - Reads run on a small pool of other connections (`PgReads`), each a read-only transaction
//!   where it reads more than one statement, so a restore sees one commit.
//! - Leases (`leases.rs`, R28) are single statements on the read pool's connections, timed by
//!   PostgreSQL's clock; the writer checks a fenced workspace's epoch in each group's
//!   transaction.
//! - A new workspace's row is one statement on a read pool connection too
//!   (`workspace_create.rs`), not a change for the writer: nodes race on it, and a group
//!   commit that lost such a race would stop the writer.
//! - Rows come back as SQLite values (`row.rs`), so the store's one decoder (`codec.rs`) reads
//!   both backends.
//!
//! The client is `postgres`, the synchronous wrapper of tokio-postgres: the writer is a plain
//! thread. Each client runs a small runtime of its own, which tokio refuses to start on a
//! thread that runs async code, so a call from there moves to a plain thread
//! ([`on_plain_thread`]).

mod archive;
mod leases;
mod nodes;
mod reads;
mod row;
mod schema;
mod workspace_create;
mod writer;

#[cfg(test)]
pub(crate) mod test_server;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use postgres::{Client, NoTls};

use super::stored_bytes::StoredBytes;
use super::{Durability, StoreError, StoreOptions, WsKey};
use crate::lock_order::{Level, Ordered};

pub(crate) use writer::PgWriter;

/// A PostgreSQL database: how to reach it, and its name without a password for messages.
#[derive(Clone, Debug)]
pub(crate) struct Database {
    config: postgres::Config,
    name: String,
    durability: Durability,
    /// The writer's `application_name`, unique to this store in the cluster's database
    /// (`pg_stat_activity` tells an operator, and the tests, which session writes for whom).
    writer_session: String,
}

impl Database {
    /// The database at `url` (`postgres://user@host:port/db?…`, or the key=value form).
    pub(crate) fn parse(url: &str, options: &StoreOptions) -> Result<Database, StoreError> {
        let config: postgres::Config = url.parse().map_err(|e| StoreError::Postgres {
            database: "(unreadable connection string)".into(),
            source: Arc::new(e),
        })?;
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
            .map(|(host, port)| match host {
                postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                postgres::config::Host::Unix(dir) => format!("{}:{port}", dir.display()),
            })
            .collect();
        let name = format!(
            "postgres://{}@{}/{}",
            config.get_user().unwrap_or(""),
            hosts.join(","),
            config.get_dbname().unwrap_or("")
        );
        static STORES: AtomicUsize = AtomicUsize::new(0);
        let writer_session = format!(
            "switchboard-writer-{}-{}",
            std::process::id(),
            STORES.fetch_add(1, Ordering::Relaxed)
        );
        Ok(Database {
            config,
            name,
            durability: options.durability,
            writer_session,
        })
    }

    /// What errors and logs call it: the URL without its password.
    pub(crate) fn name(&self) -> PathBuf {
        PathBuf::from(&self.name)
    }

    /// A new connection, set up for the store's durability.
    pub(crate) fn connect(&self) -> Result<Client, StoreError> {
        self.connect_as(&self.config)
    }

    /// [`Self::connect`] with `config`.
    fn connect_as(&self, config: &postgres::Config) -> Result<Client, StoreError> {
        let mut client = config.connect(NoTls).map_err(|e| self.error(e))?;
        // `on` waits for the commit's WAL flush (and a synchronous standby, if configured);
        // `off` acknowledges before the flush, as SQLite's NORMAL survives a process crash
        // but not a power loss (here: not a crash of PostgreSQL's machine).
        let synchronous = match self.durability {
            Durability::Full => "on",
            Durability::Normal => "off",
        };
        client
            .batch_execute(&format!("SET synchronous_commit = {synchronous}"))
            .map_err(|e| self.error(e))?;
        Ok(client)
    }

    /// The writer's connection: [`Self::connect`], and PostgreSQL ends its session if it sits
    /// in an open transaction for [`WRITER_IDLE_IN_TRANSACTION`]. A group's transaction locks
    /// its workspaces' lease rows `FOR SHARE` (`postgres/writer.rs`, R28's fencing); a node
    /// stopped (SIGSTOP, a stalled VM) inside one would hold those locks for as long as it is
    /// stopped, and every other node's take of those leases would wait on them: no failover
    /// (tests/cluster.rs's chaos test found it). Ended, the session's transaction rolls back
    /// (nothing of it was acknowledged) and its locks go; when the node comes back, its group
    /// fails, its store stops writing (`store/writer.rs`) and it hands its workspaces over
    /// (`cluster/node.rs`); once it holds nothing, it resumes on a new writer's connection
    /// (`Store::resume_writing`).
    pub(crate) fn connect_writer(&self) -> Result<Client, StoreError> {
        let mut config = self.config.clone();
        config.application_name(&self.writer_session);
        let mut client = self.connect_as(&config)?;
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {}",
                WRITER_IDLE_IN_TRANSACTION.as_millis()
            ))
            .map_err(|e| self.error(e))?;
        Ok(client)
    }

    /// Sorts a PostgreSQL error into the kinds an operator can act on.
    pub(crate) fn error(&self, e: postgres::Error) -> StoreError {
        if e.code() == Some(&postgres::error::SqlState::DISK_FULL) {
            return StoreError::DiskFull { path: self.name() };
        }
        StoreError::Postgres {
            database: self.name.clone(),
            source: Arc::new(e),
        }
    }

    /// A stored value the decoder could not read.
    pub(crate) fn corrupt(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Corrupt {
            path: self.name(),
            what: e.to_string(),
        }
    }
}

/// How long the writer's session may sit idle inside a transaction before PostgreSQL ends it
/// ([`Database::connect_writer`]). A running writer goes from one statement of a group to the
/// next in microseconds; this is well below the default lease (5 s), so that a stopped node's
/// locks are gone before its leases lapse and the failover does not wait on them.
const WRITER_IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the database, brings its schema up to date, and returns the writer's connection,
/// the read pool and the bytes of messages each workspace stores.
pub(super) fn open(db: Database) -> Result<(PgWriter, PgReads, StoredBytes), StoreError> {
    on_plain_thread(move || {
        let mut client = db.connect_writer()?;
        schema::migrate(&mut client, &db)?;
        let stored_bytes = StoredBytes::of_counts(
            client
                .query("SELECT key, stored_bytes FROM workspaces", &[])
                .map_err(|e| db.error(e))?
                .iter()
                .map(|r| (WsKey::new(r.get(0)), r.get::<_, i64>(1))),
        );
        Ok((PgWriter::new(client, db.clone()), PgReads::new(db), stored_bytes))
    })
}

/// Runs `f` here, or on a plain thread of its own when this one runs async code (where the
/// synchronous client's own runtime would panic).
pub(crate) fn on_plain_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// How many idle read connections are kept; more are opened under load and closed after.
const KEEP_IDLE: usize = 4;

/// Read connections to one database.
pub(crate) struct PgReads {
    db: Database,
    idle: Ordered<Vec<Client>>,
}

impl PgReads {
    fn new(db: Database) -> Self {
        Self {
            db,
            idle: Ordered::new(Level::StoreReaders, Vec::new()),
        }
    }

    /// The writer's `application_name` (see [`Database::connect_writer`]).
    #[cfg(test)]
    pub(crate) fn writer_session(&self) -> &str {
        &self.db.writer_session
    }

    /// Runs `read` on an idle connection (or a new one), then returns it to the pool unless
    /// it broke. A connection let go of is dropped on the plain thread too: closing it runs
    /// the client's runtime.
    ///
    /// An idle connection may have been ended while it sat in the pool (the database
    /// restarted or failed over, an operator ended the session): its client learns that only
    /// when it is used. If `read` fails on a pooled connection that turns out closed, it runs
    /// once more on a fresh one, so a lost connection costs no caller its answer. Each of
    /// these reads, lease statements included, may run twice; a statement that must not (it
    /// answers differently the second time) uses [`Self::with_once`].
    pub(crate) fn with<T: Send>(
        &self,
        read: impl Fn(&mut Client, &Database) -> Result<T, StoreError> + Send + Sync,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().pop();
        on_plain_thread(|| {
            let pooled = idle.is_some();
            let (result, closed) = self.run(idle, &read)?;
            if pooled && closed && result.is_err() {
                tracing::info!(database = %self.db.name, "a pooled read connection was closed; read again on a new one");
                return self.run(None, &read).map(|(result, _)| result)?;
            }
            result
        })
    }

    /// [`Self::with`], never run twice: for a statement whose second run would answer
    /// differently if the first was committed but its answer lost with the connection (an
    /// insert that answers whether it inserted).
    pub(crate) fn with_once<T: Send>(
        &self,
        read: impl FnOnce(&mut Client, &Database) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().pop();
        on_plain_thread(|| self.run(idle, read).and_then(|(result, _)| result))
    }

    /// Runs `read` on `client` (a new connection if none), and keeps the connection unless it
    /// closed: the read's outcome, and whether it closed (on the plain thread already). The
    /// outer error: no new connection.
    #[allow(clippy::type_complexity)]
    fn run<T>(
        &self,
        client: Option<Client>,
        read: impl FnOnce(&mut Client, &Database) -> Result<T, StoreError>,
    ) -> Result<(Result<T, StoreError>, bool), StoreError> {
        let mut client = match client {
            Some(client) => client,
            None => self.db.connect()?,
        };
        let result = read(&mut client, &self.db);
        let closed = client.is_closed();
        if !closed {
            let mut idle = self.idle.lock();
            if idle.len() < KEEP_IDLE {
                idle.push(client);
            }
        }
        Ok((result, closed))
    }
}

impl Drop for PgReads {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut *self.idle.lock());
        on_plain_thread(move || drop(idle));
    }
}
