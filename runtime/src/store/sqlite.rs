//! The embedded backend: one SQLite file in WAL mode with `synchronous=NORMAL`.
//!
//! A commit is durable against a crash of the process; after a power loss the last
//! transactions before the most recent checkpoint can be lost (WAL with NORMAL syncs the
//! log at checkpoints, not at every commit). SQLite has one writer at a time, so writes
//! go through a pool of one connection that begins every transaction with
//! `BEGIN IMMEDIATE` (taking the write lock first, so a transaction that reads then
//! writes never fails to upgrade), and reads through a separate pool that WAL lets run
//! beside the writer.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};

use super::{Backend, StoreConfig, StoreError};

type Db = Sqlite;
const STATEMENT_CACHE: usize = 512;
const BACKEND: Backend = Backend::Sqlite;

/// Row locks are PostgreSQL's; SQLite's single writer already excludes everyone else.
macro_rules! for_update {
    () => {
        ""
    };
}

#[allow(clippy::duplicate_mod)] // the same SQL, compiled for this backend (see shared.rs)
#[path = "shared.rs"]
mod shared;

pub use shared::SqlStore as SqliteStore;

async fn begin_write(pool: &Pool<Db>) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// The placeholder for the `i`-th bind of a generated statement: anonymous `?`. SQLite
/// resolves every named parameter (`$n`) by a linear search of the statement's names,
/// which made binding a 64-order batch's statements quadratic (a third of the CPU);
/// generated statements bind in textual order, so anonymous placeholders are exact.
fn ph(_i: usize) -> String {
    "?".to_owned()
}

/// `column` in a set of texts bound as one parameter by [`bind_text_set`] (a JSON
/// array read by `json_each`): one statement text whatever the set's size, so it is
/// prepared once per connection.
fn in_text_set(column: &str, _i: usize) -> String {
    format!("{column} IN (SELECT value FROM json_each(?))")
}

fn bind_text_set<'q>(
    query: shared::Query<'q>,
    values: &std::collections::BTreeSet<&str>,
) -> shared::Query<'q> {
    // A list of strings always serializes; were it not to, `json_each('')` fails the
    // statement and the caller falls back to reading order by order.
    query.bind(serde_json::to_string(values).unwrap_or_default())
}

/// Pause between checkpoints while the WAL grows, and the longest pause when idle.
const CHECKPOINT_BUSY: Duration = Duration::from_millis(50);
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

/// Work the store runs beside its readers: on SQLite, checkpointing the WAL.
fn background_task(pool: &Pool<Db>) -> Option<impl std::future::Future<Output = ()> + Send> {
    Some(checkpoint_loop(pool.connect_options()))
}

/// Checkpoints the WAL (`PASSIVE`: never waits for readers or the writer) on a
/// connection of its own. With SQLite's automatic checkpoint the writer's commit copied
/// the WAL into the database every 4 MiB — about 3% of the order pipeline's CPU on the
/// one thread everything waits for, and a pause of several milliseconds for the batch
/// that crossed the mark (a 64 MiB mark made it 100 ms). Here the copy runs beside the
/// writer; the writer still checkpoints itself should this fall 64 MiB behind.
async fn checkpoint_loop(options: std::sync::Arc<SqliteConnectOptions>) {
    use sqlx::Connection;
    let mut connection: Option<sqlx::SqliteConnection> = None;
    let mut pause = CHECKPOINT_BUSY;
    let mut last_log = -1_i64;
    loop {
        tokio::time::sleep(pause).await;
        if connection.is_none() {
            connection = sqlx::SqliteConnection::connect_with(&options).await.ok();
        }
        let Some(c) = connection.as_mut() else {
            pause = CHECKPOINT_IDLE;
            continue;
        };
        // (busy, frames in the WAL, frames checkpointed)
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut *c)
            .await
        {
            Ok((_, log, _)) => {
                pause = if log == last_log {
                    (pause * 2).min(CHECKPOINT_IDLE)
                } else {
                    CHECKPOINT_BUSY
                };
                last_log = log;
            }
            Err(error) => {
                tracing::warn!(%error, "WAL checkpoint failed; reconnecting");
                connection = None;
                pause = CHECKPOINT_IDLE;
            }
        }
    }
}

/// Many rows as one multi-row `VALUES` statement (statements are parsed in-process, so
/// their size costs little).
async fn insert_rows(
    c: &mut shared::Conn,
    head: &str,
    tail: &str,
    rows: Vec<Vec<shared::V>>,
) -> Result<u64, sqlx::Error> {
    shared::insert_values(c, head, tail, rows).await
}

async fn update_rows(
    c: &mut shared::Conn,
    table: &str,
    names: &[&str],
    set: &str,
    filter: &str,
    lead: Vec<shared::V>,
    rows: Vec<Vec<shared::V>>,
) -> Result<u64, sqlx::Error> {
    shared::update_values(c, table, names, set, filter, lead, rows).await
}

/// Lock contention with another process (busy, locked, busy snapshot) or a race on a
/// new key: the batch is tried again.
fn retryable(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| {
        d.is_unique_violation()
            || d.code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| matches!(c & 0xff, 5 | 6))
    })
}

/// Opens (creating if missing) the database file and applies the migrations.
pub async fn open(path: &Path, config: StoreConfig) -> Result<SqliteStore, StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // The order writer's multi-row statements come in many sizes.
        .statement_cache_capacity(STATEMENT_CACHE)
        // 64 MiB of page cache per connection instead of 2 MiB, and the file mapped
        // for reads: the order writer touches index pages all over a growing file,
        // and each page missed was a `pread` into its cache.
        .pragma("cache_size", "-65536")
        .pragma("mmap_size", "268435456")
        // A backstop only: the WAL is checkpointed off the writer's path
        // ([`checkpoint_loop`]); the writer's commit checkpoints itself only if that
        // falls 64 MiB behind.
        .pragma("wal_autocheckpoint", "16384");
    // No ping before each acquire (sqlx's default): a connection to a local file cannot
    // go stale, and on SQLite the ping is a round trip to the connection's worker thread
    // (about 4% of the order pipeline's CPU).
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(options.clone())
        .await?;
    super::migrations::migrator(super::migrations::SQLITE)
        .await?
        .run(&write)
        .await?;
    // Each SQLite connection is a thread of its own doing CPU-bound work in-process:
    // more readers than about two per core only add context switches (the order
    // pipeline bench ran 8–16% faster with 4 readers than with 8 on two cores).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let readers = u32::try_from(2 * cores).unwrap_or(8).clamp(2, 8);
    let read = SqlitePoolOptions::new()
        .max_connections(config.max_connections.clamp(1, readers))
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    SqliteStore::start(read, write, config)
}
