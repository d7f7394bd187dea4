//! PostgreSQL for durable test servers (issue 19): one private server for the whole test
//! binary, started on first use, and a fresh database on it for each durable test server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The private PostgreSQL the library's tests start, shared by path.
#[path = "../../../src/store/postgres/test_server.rs"]
mod pg;

use pg::PgServer;

/// The binary's one server. A static is never dropped: the server's watchdog stops and
/// removes it once this process is gone, however it ends (`test_server.rs`).
fn server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(PgServer::start)
}

/// A database of its own on the binary's server, dropped when this is.
#[derive(Debug)]
pub(crate) struct PgDatabase {
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates an empty database (starting the server first if nobody has yet).
    pub(crate) async fn create() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("it_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        // Blocking: the server's start, and the synchronous client's statement.
        tokio::task::spawn_blocking(move || {
            let server = server();
            server.admin(&format!("CREATE DATABASE {name}"));
            let url = server.url_of(&name);
            Self { name, url }
        })
        .await
        .expect("the test server makes a database")
    }

    /// Its connection string.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let drop_it = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // On a thread of its own, not to block the async test dropping it; one that has not
        // run when the binary ends leaves the database to the server's removal.
        std::thread::spawn(move || server().admin(&drop_it));
    }
}
