//! Test harness for the store suites: one fresh database per test, on SQLite (a temp
//! file) and, when `WEIR_TEST_PG_URL` is set, on PostgreSQL (a schema of its own, so
//! tests run in parallel and re-run on a dirty database).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgConnectOptions;
use sqlx::Connection;
use weir_runtime::store::{self, ManualClock, Store, StoreConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

pub fn pg_url() -> Option<String> {
    std::env::var("WEIR_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A start instant for manual clocks: 2026-11-29T00:00:00Z.
pub const T0: i64 = 1_795_910_400_000;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}_{secs}_{}_{n}", std::process::id())
}

/// Where a harness's data lives, so it can be reopened (a restart) and removed.
#[derive(Debug, Clone)]
enum Place {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

pub struct Harness {
    pub kind: Kind,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    place: Place,
}

impl Harness {
    pub async fn open(kind: Kind) -> Harness {
        Self::open_with(kind, StoreConfig::default()).await
    }

    /// `config.clock` is replaced by a manual clock at [`T0`].
    pub async fn open_with(kind: Kind, mut config: StoreConfig) -> Harness {
        let clock = Arc::new(ManualClock::new(T0));
        config.clock = clock.clone();
        config.max_connections = config.max_connections.min(8);
        let place = match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join("weir-store-tests");
                std::fs::create_dir_all(&dir).unwrap();
                Place::Sqlite(dir.join(format!("{}.db", unique("t"))))
            }
            Kind::Postgres => {
                let url = pg_url().expect("WEIR_TEST_PG_URL");
                let schema = unique("weir_t");
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                drop_stale_schemas(&mut conn).await;
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                Place::Postgres { url, schema }
            }
        };
        let store = open_place(&place, config).await;
        Harness {
            kind,
            store,
            clock,
            place,
        }
    }

    /// A second store over the same data (a restarted process), on the same clock.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        let config = StoreConfig {
            clock: self.clock.clone(),
            max_connections: 4,
            ..StoreConfig::default()
        };
        open_place(&self.place, config).await
    }

    /// Another store over the same data with its own configuration.
    pub async fn reopen_with(&self, mut config: StoreConfig) -> Arc<dyn Store> {
        config.clock = self.clock.clone();
        config.max_connections = config.max_connections.min(8);
        open_place(&self.place, config).await
    }

    /// Runs raw SQL against the harness's database (checks that bypass the API).
    pub async fn scalar(&self, sql: &str) -> i64 {
        match &self.place {
            Place::Sqlite(path) => {
                let mut c = sqlx::SqliteConnection::connect_with(
                    &sqlx::sqlite::SqliteConnectOptions::new().filename(path),
                )
                .await
                .unwrap();
                let v: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
                c.close().await.unwrap();
                v
            }
            Place::Postgres { url, schema } => {
                let opts = PgConnectOptions::from_str(url)
                    .unwrap()
                    .options([("search_path", schema.as_str())]);
                let mut c = sqlx::PgConnection::connect_with(&opts).await.unwrap();
                let v: i64 = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
                c.close().await.unwrap();
                v
            }
        }
    }

    pub async fn cleanup(self) {
        drop(self.store);
        match self.place {
            Place::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
            }
            Place::Postgres { url, schema } => {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&url).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            }
        }
    }
}

async fn open_place(place: &Place, config: StoreConfig) -> Arc<dyn Store> {
    match place {
        Place::Sqlite(path) => Arc::new(store::sqlite::open(path, config).await.unwrap()),
        Place::Postgres { url, schema } => {
            let opts = PgConnectOptions::from_str(url)
                .unwrap()
                .options([("search_path", schema.as_str())]);
            Arc::new(store::postgres::open_with(opts, config).await.unwrap())
        }
    }
}

/// Schemas left by test runs that panicked more than an hour ago.
async fn drop_stale_schemas(conn: &mut sqlx::PgConnection) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'weir\\_t\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for name in names {
        let secs = name
            .split('_')
            .nth(2)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(now);
        if secs + 3600 < now {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&mut *conn)
                .await;
        }
    }
}

/// Instantiates each `async fn NAME(kind: Kind)` once per backend: `sqlite::NAME` and
/// `postgres::NAME` (the latter passes without running when `WEIR_TEST_PG_URL` is
/// unset; CI always sets it).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Kind::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::common::pg_url().is_none() {
                        eprintln!("WEIR_TEST_PG_URL is not set: PostgreSQL run skipped");
                        return;
                    }
                    super::$name($crate::common::Kind::Postgres).await;
                }
            )*
        }
    };
}

// ---- fixtures ------------------------------------------------------------------------

use weir_runtime::store::{
    Capabilities, Location, LocationKind, NewLine, NewOrder, NewReservation, Receipt,
};

pub fn location(id: &str, kind: LocationKind) -> Location {
    Location {
        id: id.into(),
        kind,
        name: format!("{id} name"),
        lat: 31.23,
        lon: 121.47,
        capabilities: Capabilities {
            ships: kind != LocationKind::Store,
            pickup: kind == LocationKind::Store,
            cold_chain: false,
            hazmat_certified: false,
        },
    }
}

/// A location with `qty` units of `sku`.
pub async fn stocked(store: &dyn Store, tenant: &str, loc: &str, sku: &str, qty: i64) {
    store
        .upsert_location(tenant, &location(loc, LocationKind::Warehouse))
        .await
        .unwrap();
    store
        .receive(
            tenant,
            &Receipt {
                sku: sku.into(),
                location_id: loc.into(),
                qty,
                lot: None,
                reference: "asn-1".into(),
            },
        )
        .await
        .unwrap();
}

/// One line, one reservation of `qty` units.
pub fn simple_order(tenant: &str, id: &str, sku: &str, loc: &str, qty: i64) -> NewOrder {
    let mut o = NewOrder::new(tenant, id, "cust-1", "CNY");
    o.channel = "tmall".into();
    o.subtotal_minor = 100 * qty;
    o.total_minor = 100 * qty;
    o.lines.push(NewLine {
        line_no: 1,
        sku: sku.into(),
        qty,
        unit_price_minor: 100,
        discount_minor: 0,
    });
    o.reservations.push(NewReservation {
        sku: sku.into(),
        location_id: loc.into(),
        qty,
        presale_session_id: None,
        not_expiring_before: None,
    });
    o
}
