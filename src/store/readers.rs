//! A small pool of read-only connections. In WAL mode a reader sees the last commit and never
//! waits for the writer's open transaction, so searches and history pages run beside writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lock_order::{Level, Ordered};
use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// How many idle connections are kept; more are opened under load and closed after.
const KEEP_IDLE: usize = 4;

/// Read connections to one database.
pub(crate) struct Readers {
    path: PathBuf,
    idle: Ordered<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Ordered::new(Level::StoreReaders, Vec::new()),
        }
    }

    /// Runs `read` on an idle connection (or a new one), then returns it to the pool.
    pub(crate) fn with<T>(
        &self,
        read: impl FnOnce(&mut Connection, &Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = read(&mut conn, &self.path);
        let mut idle = self.idle.lock();
        if idle.len() < KEEP_IDLE {
            idle.push(conn);
        }
        result
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let err = |e| StoreError::sqlite(&self.path, e);
        let flags =
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(err)?;
        // A checkpoint can hold a lock for a moment; wait for it rather than fail.
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        // Reads through a memory map instead of a copy per page: the archive's indexes are
        // walked a lot, and the pages are the OS's file cache, not this process's heap.
        conn.pragma_update(None, "mmap_size", 1_i64 << 30).map_err(err)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }
}
