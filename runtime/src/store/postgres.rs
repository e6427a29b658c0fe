//! The server backend: PostgreSQL with durable commits (the server's `fsync` and
//! `synchronous_commit` settings apply; the store changes neither).
//!
//! Read-committed transactions; every row a write reads in order to decide is locked
//! (`FOR UPDATE`), always in the same order (presale sessions, stock, lots, budgets,
//! limits; an order row before its reservations), so concurrent writers queue instead
//! of deadlocking. A deadlock or a race on a new unique key is retried by the order
//! writer.

use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Pool, Postgres};

use super::reference::{ReferenceCache, REFERENCE_CHANNEL};
use super::{Backend, StoreConfig, StoreError};

type Db = Postgres;
const BACKEND: Backend = Backend::Postgres;

macro_rules! for_update {
    () => {
        " FOR UPDATE"
    };
}

#[allow(clippy::duplicate_mod)] // the same SQL, compiled for this backend (see shared.rs)
#[path = "shared.rs"]
mod shared;

pub use shared::SqlStore as PgStore;

async fn begin_write(pool: &Pool<Db>) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
    pool.begin().await
}

/// The placeholder for the `i`-th bind of a generated statement.
fn ph(i: usize) -> String {
    format!("${i}")
}

/// `column` in a set of texts bound as one `text[]` parameter by [`bind_text_set`]:
/// one statement text whatever the set's size, so it is prepared once per connection.
fn in_text_set(column: &str, i: usize) -> String {
    format!("{column} = ANY({}::text[])", ph(i))
}

fn bind_text_set<'q>(
    query: shared::Query<'q>,
    values: &std::collections::BTreeSet<&str>,
) -> shared::Query<'q> {
    query.bind(
        values
            .iter()
            .map(|v| (*v).to_owned())
            .collect::<Vec<String>>(),
    )
}

/// One column of a batch of rows, bound as one array.
enum Column {
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
}

impl Column {
    fn cast(&self) -> &'static str {
        match self {
            Column::Text(_) => "text[]",
            Column::Int(_) => "int8[]",
            Column::Bool(_) => "bool[]",
        }
    }
}

/// Rows to columns; the first row's values give the column types.
fn columns(rows: Vec<Vec<shared::V>>) -> Vec<Column> {
    use shared::V;
    let n = rows.len();
    let mut cols: Vec<Column> = match rows.first() {
        Some(first) => first
            .iter()
            .map(|v| match v {
                V::S(_) | V::OS(_) => Column::Text(Vec::with_capacity(n)),
                V::I(_) | V::OI(_) => Column::Int(Vec::with_capacity(n)),
                V::B(_) => Column::Bool(Vec::with_capacity(n)),
            })
            .collect(),
        None => return Vec::new(),
    };
    for row in rows {
        for (col, v) in cols.iter_mut().zip(row) {
            match (col, v) {
                (Column::Text(c), V::S(x)) => c.push(Some(x)),
                (Column::Text(c), V::OS(x)) => c.push(x),
                (Column::Int(c), V::I(x)) => c.push(Some(x)),
                (Column::Int(c), V::OI(x)) => c.push(x),
                (Column::Bool(c), V::B(x)) => c.push(Some(x)),
                (Column::Text(c), _) => c.push(None),
                (Column::Int(c), _) => c.push(None),
                (Column::Bool(c), _) => c.push(None),
            }
        }
    }
    cols
}

/// `UNNEST($first::text[], …)` for the columns.
fn unnest(cols: &[Column], first: usize) -> String {
    let args: Vec<String> = (first..)
        .zip(cols)
        .map(|(i, c)| format!("${i}::{}", c.cast()))
        .collect();
    format!("UNNEST({})", args.join(", "))
}

fn bind_columns(mut q: shared::Query<'_>, cols: Vec<Column>) -> shared::Query<'_> {
    for c in cols {
        q = match c {
            Column::Text(v) => q.bind(v),
            Column::Int(v) => q.bind(v),
            Column::Bool(v) => q.bind(v),
        };
    }
    q
}

/// Many rows as one `INSERT … SELECT * FROM UNNEST(arrays)`: a statement of constant text
/// with one parameter per column, prepared once per connection. A multi-row `VALUES`
/// list would be a new statement for every batch size with a parameter per value,
/// which costs PostgreSQL and the client far more per row.
/// Work the store runs beside its readers: none on PostgreSQL (the server checkpoints).
fn background_task(_pool: &Pool<Db>) -> Option<std::future::Ready<()>> {
    None
}

async fn insert_rows(
    c: &mut shared::Conn,
    head: &str,
    tail: &str,
    rows: Vec<Vec<shared::V>>,
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let cols = columns(rows);
    let sql = format!("{head} SELECT * FROM {} {tail}", unnest(&cols, 1));
    let done = bind_columns(sqlx::query(&sql), cols)
        .execute(&mut *c)
        .await?;
    Ok(done.rows_affected())
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
    if rows.is_empty() {
        return Ok(0);
    }
    let cols = columns(rows);
    let sql = format!(
        "UPDATE {table} SET {set} FROM {} AS v({}) WHERE {filter}",
        unnest(&cols, lead.len() + 1),
        names.join(", ")
    );
    let q = shared::bind_all(sqlx::query(&sql), lead);
    let done = bind_columns(q, cols).execute(&mut *c).await?;
    Ok(done.rows_affected())
}

/// Serialization failure, deadlock, or a unique key inserted by a concurrent writer.
fn retryable(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| {
        d.code()
            .is_some_and(|c| matches!(c.as_ref(), "40001" | "40P01" | "23505"))
    })
}

/// Connects to `url` and applies the migrations.
pub async fn open(url: &str, config: StoreConfig) -> Result<PgStore, StoreError> {
    open_with(PgConnectOptions::from_str(url)?, config).await
}

/// Connects with explicit options (a schema through `search_path`, say) and applies the
/// migrations there.
pub async fn open_with(
    options: PgConnectOptions,
    config: StoreConfig,
) -> Result<PgStore, StoreError> {
    // The order writer's multi-row statements come in many sizes.
    let options = options.statement_cache_capacity(512);
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections.max(2))
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(options.clone())
        .await?;
    super::migrations::migrator(super::migrations::POSTGRES)
        .await?
        .run(&pool)
        .await?;
    let store = PgStore::start(pool.clone(), pool, config)?;
    // Its own connection (not one of the pool's), opened when the task first runs.
    let listen = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options);
    let cache = store.reference_cache();
    tokio::spawn(listen_for_reference_changes(
        listen,
        Arc::downgrade(&cache),
        cache.dropped(),
    ));
    Ok(store)
}

/// Empties the store's reference data cache for every tenant whose locations or lists
/// another process changed (`NOTIFY` on [`REFERENCE_CHANNEL`]), until the store is
/// dropped. While it cannot listen, the cache still ages out (`reference.rs`).
async fn listen_for_reference_changes(
    pool: Pool<Db>,
    cache: Weak<ReferenceCache>,
    mut dropped: tokio::sync::oneshot::Receiver<()>,
) {
    // Pause between attempts to (re)connect.
    const RETRY: Duration = Duration::from_secs(5);
    let clear = || {
        if let Some(cache) = cache.upgrade() {
            cache.clear();
        }
    };
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for reference data changes");
                tokio::select! {
                    _ = &mut dropped => return,
                    _ = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        if let Err(e) = listener.listen(REFERENCE_CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for reference data changes");
            tokio::select! {
                _ = &mut dropped => return,
                _ = tokio::time::sleep(RETRY) => continue,
            }
        }
        // Changes made before the listener started were not heard.
        clear();
        loop {
            tokio::select! {
                _ = &mut dropped => return,
                heard = listener.try_recv() => match heard {
                    Ok(Some(notification)) => {
                        if let Some(cache) = cache.upgrade() {
                            cache.invalidate(notification.payload());
                        }
                    }
                    // sqlx reconnected: announcements in between were missed.
                    Ok(None) => clear(),
                    Err(e) => {
                        tracing::warn!(error = %e, "reference data listener failed; reconnecting");
                        clear();
                        break;
                    }
                },
            }
        }
    }
}

/// Announcements of ruleset activations and rollbacks made by any process on the same
/// database (`NOTIFY` on [`super::RULESET_CHANNEL`], sent when the activation commits).
pub struct RulesetListener(sqlx::postgres::PgListener);

/// What the listener heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RulesetAnnouncement {
    /// This tenant's ruleset has a new active version.
    Activated { tenant: String, name: String },
    /// The connection dropped and was re-established: announcements may have been
    /// missed, so reload every active version.
    Reconnected,
}

impl RulesetListener {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(super::RULESET_CHANNEL).await?;
        Ok(RulesetListener(listener))
    }

    /// Waits for the next announcement.
    pub async fn recv(&mut self) -> Result<RulesetAnnouncement, StoreError> {
        loop {
            match self.0.try_recv().await? {
                None => return Ok(RulesetAnnouncement::Reconnected),
                Some(notification) => {
                    if let Some((tenant, name)) = notification.payload().split_once('\n') {
                        return Ok(RulesetAnnouncement::Activated {
                            tenant: tenant.to_owned(),
                            name: name.to_owned(),
                        });
                    }
                    // Not ours (someone else NOTIFYing on the channel): ignore it.
                }
            }
        }
    }
}
