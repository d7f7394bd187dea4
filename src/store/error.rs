//! What can go wrong with the store, each error naming the database file and what was wrong.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::ErrorCode;

use super::{Epoch, WsKey};

/// A store failure. Cloneable (sources are shared) because one failed group commit fails the
/// receipt of every caller in that group with the same error.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created (a parent is a file, no permission, …).
    #[error("cannot create the data directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<io::Error>,
    },
    /// The database file could not be opened or written (permissions, read-only file system,
    /// a directory where the file should be).
    #[error("cannot open {} for writing: {source}", path.display())]
    NotWritable {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// The file was written by a newer build; running an older one on it could lose data.
    #[error("the database {} has schema version {found}, but this build supports only up to {supported}: upgrade Switchboard", path.display())]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The disk (or the configured size limit) is full (`SQLITE_FULL`); nothing of the failed
    /// write was kept.
    #[error("the database {} is full (disk full or size limit reached)", path.display())]
    DiskFull {
        /// The database file.
        path: PathBuf,
    },
    /// Any other SQLite failure.
    #[error("database {} failed: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// Any PostgreSQL failure: connecting, a statement, a commit (issue 19).
    #[error("database {database} failed: {source}")]
    Postgres {
        /// The database, without its password.
        database: String,
        /// What PostgreSQL (or its client) said.
        #[source]
        source: Arc<postgres::Error>,
    },
    /// A stored value could not be read back (a corrupt or hand-edited row).
    #[error("database {} holds a bad value: {what}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which value and why.
        what: String,
    },
    /// A value could not be stored (a timestamp outside 1677–2262, a number out of range).
    #[error("cannot store {what}")]
    Unrepresentable {
        /// Which value and why.
        what: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the store's writer thread: {source}")]
    WriterStart {
        /// Why.
        #[source]
        source: Arc<io::Error>,
    },
    /// The writer thread is gone (it panicked, or the store is shutting down).
    #[error("the store's writer has stopped")]
    WriterStopped,
    /// The submission's workspace was written under a lease whose epoch has moved on: another
    /// node took the workspace over (R28), so nothing of the submission was written, nor will
    /// anything later submitted under that epoch be.
    #[error(
        "workspace {} is fenced: this node writes under lease epoch {held}, the lease is at {}",
        .ws.get(),
        .current.map_or_else(|| "none".to_owned(), |e| e.to_string())
    )]
    Fenced {
        /// The workspace.
        ws: WsKey,
        /// The epoch the submission was made under.
        held: Epoch,
        /// The lease's epoch in the database (`None`: the workspace has no lease row).
        current: Option<Epoch>,
    },
    /// A lease was asked of a store that has none: leases live in PostgreSQL (a cluster), and
    /// a store on SQLite is one node's alone.
    #[error("{what} needs the store on PostgreSQL; {} is SQLite, which one node owns alone", path.display())]
    NeedsPostgres {
        /// What was asked.
        what: &'static str,
        /// The database file.
        path: PathBuf,
    },
}

impl StoreError {
    /// What a client may be told: the kind of failure, in words an agent's screen can show.
    /// Never the file's path nor SQLite's own message; the log has those (issue 13).
    pub fn client_detail(&self) -> &'static str {
        match self {
            StoreError::CreateDir { .. } | StoreError::NotWritable { .. } => "the database cannot be written",
            StoreError::NewerSchema { .. } => "the database was written by a newer build",
            StoreError::DiskFull { .. } => "the database is full (disk full or size limit reached)",
            StoreError::Sqlite { .. } | StoreError::Postgres { .. } => "the database failed",
            StoreError::Corrupt { .. } => "the database holds a value it cannot read",
            StoreError::Unrepresentable { .. } => "a value cannot be stored",
            StoreError::WriterStart { .. } | StoreError::WriterStopped => "the store's writer has stopped",
            StoreError::Fenced { .. } => "this workspace is now served by another node",
            StoreError::NeedsPostgres { .. } => "the database does not support this",
        }
    }

    /// Sorts a SQLite error on `path` into the kinds an operator can act on.
    pub(crate) fn sqlite(path: &Path, err: rusqlite::Error) -> Self {
        let path = path.to_path_buf();
        if let rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::IntegralValueOutOfRange(..) =
            err
        {
            return StoreError::Corrupt {
                path,
                what: err.to_string(),
            };
        }
        match err.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path },
            Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
                StoreError::NotWritable {
                    path,
                    source: Arc::new(err),
                }
            }
            _ => StoreError::Sqlite {
                path,
                source: Arc::new(err),
            },
        }
    }
}
