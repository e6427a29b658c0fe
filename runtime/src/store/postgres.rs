//! The server backend: PostgreSQL with durable commits (the server's `fsync` and
//! `synchronous_commit` settings apply; the store changes neither).
//!
//! Read-committed transactions; every row a write reads in order to decide is locked
//! (`FOR UPDATE`), always in the same order (presale sessions, stock, lots, budgets,
//! limits; an order row before its reservations), so concurrent writers queue instead
//! of deadlocking. A deadlock or a race on a new unique key is retried by the order
//! writer.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};

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
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(PgStore::start(pool.clone(), pool, config))
}
