//! Store throughput (issue #6): the one-row-commit ceiling and `place_order` rates,
//! on SQLite (WAL, synchronous=NORMAL) and, when `WEIR_TEST_PG_URL` is set, PostgreSQL
//! (durable commits: the server's fsync and synchronous_commit, both on here).
//!
//! ```sh
//! WEIR_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p weir-runtime --bench store
//! ```
//!
//! `WEIR_BENCH_ORDERS` (default 40,000) sets orders per run, `WEIR_BENCH_CLIENTS`
//! (default 64) the concurrent clients, `WEIR_BENCH_WRITERS` the order writer tasks
//! (default: the backend's), `WEIR_BENCH_ONLY=sqlite|postgres` one backend.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::Connection;
use weir_runtime::store::{
    self, Capabilities, Location, LocationKind, NewLine, NewOrder, NewReservation, Receipt, Store,
    StoreConfig, WriterStats,
};

const TENANT: &str = "bench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn order(id: usize, sku: &str) -> NewOrder {
    let mut o = NewOrder::new(TENANT, &format!("o{id}"), &format!("c{}", id % 5000), "CNY");
    o.channel = "tmall".into();
    o.subtotal_minor = 9_900;
    o.total_minor = 9_900;
    o.lines.push(NewLine {
        line_no: 1,
        sku: sku.into(),
        qty: 1,
        unit_price_minor: 9_900,
        discount_minor: 0,
    });
    o.reservations.push(NewReservation {
        sku: sku.into(),
        location_id: "wh".into(),
        qty: 1,
        presale_session_id: None,
        not_expiring_before: None,
    });
    o
}

async fn prepare(store: &dyn Store, skus: usize, units: i64) {
    store
        .upsert_location(
            TENANT,
            &Location {
                id: "wh".into(),
                kind: LocationKind::Warehouse,
                name: "wh".into(),
                lat: 0.0,
                lon: 0.0,
                capabilities: Capabilities {
                    ships: true,
                    ..Capabilities::default()
                },
            },
        )
        .await
        .unwrap();
    for i in 0..skus {
        store
            .receive(
                TENANT,
                &Receipt {
                    sku: format!("sku{i}"),
                    location_id: "wh".into(),
                    qty: units,
                    lot: None,
                    reference: "bench".into(),
                },
            )
            .await
            .unwrap();
    }
}

/// Places `orders` orders from `clients` tasks; returns (accepted, orders/s).
async fn place(
    store: Arc<dyn Store>,
    orders: usize,
    clients: usize,
    offset: usize,
    sku_of: fn(usize) -> String,
) -> (usize, f64) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in (c..orders).step_by(clients) {
                let n = offset + i;
                if store.place_order(order(n, &sku_of(n))).await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap();
    }
    (accepted, orders as f64 / start.elapsed().as_secs_f64())
}

fn mean_batch(before: WriterStats, after: WriterStats) -> f64 {
    (after.orders - before.orders) as f64 / (after.batches - before.batches).max(1) as f64
}

fn spread_sku(n: usize) -> String {
    // A multiplicative hash spreads consecutive orders over 1,000 SKUs.
    format!("sku{}", n.wrapping_mul(2_654_435_761) % 1000)
}

fn hot_sku(_: usize) -> String {
    "sku0".into()
}

struct Row {
    backend: &'static str,
    what: String,
    rate: f64,
    note: String,
}

/// Keeps a result and shows it at once (stderr), so a later failure loses nothing.
fn push(rows: &mut Vec<Row>, row: Row) {
    eprintln!(
        "{}: {}: {:.0}/s {}",
        row.backend, row.what, row.rate, row.note
    );
    rows.push(row);
}

impl Row {
    fn print(&self) {
        println!(
            "| {} | {} | {:.0} | {} |",
            self.backend, self.what, self.rate, self.note
        );
    }
}

async fn bench_store(
    backend: &'static str,
    open: impl Fn(StoreConfig) -> std::pin::Pin<Box<dyn std::future::Future<Output = Arc<dyn Store>>>>,
    rows: &mut Vec<Row>,
) {
    let orders = env_usize("WEIR_BENCH_ORDERS", 40_000);
    let clients = env_usize("WEIR_BENCH_CLIENTS", 64);

    // Spread: 1,000 SKUs with plenty of stock.
    let store = open(StoreConfig {
        writers: env_usize("WEIR_BENCH_WRITERS", 0),
        ..StoreConfig::default()
    })
    .await;
    prepare(store.as_ref(), 1000, 1_000_000).await;
    // Warm up connections and caches.
    place(store.clone(), 2_000, clients, 10_000_000, spread_sku).await;
    let before = store.writer_stats();
    let (ok, rate) = place(store.clone(), orders, clients, 0, spread_sku).await;
    let batch = mean_batch(before, store.writer_stats());
    push(
        rows,
        Row {
            backend,
            what: format!("place_order, 1,000 SKUs, {clients} clients"),
            rate,
            note: format!("{ok} of {orders} accepted, {batch:.1} orders/commit"),
        },
    );

    // Hot SKU: every order on sku0 (enough units that all are accepted).
    let before = store.writer_stats();
    let (ok, rate) = place(store.clone(), orders, clients, 20_000_000, hot_sku).await;
    let batch = mean_batch(before, store.writer_stats());
    push(
        rows,
        Row {
            backend,
            what: format!("place_order, one hot SKU, {clients} clients"),
            rate,
            note: format!("{ok} of {orders} accepted, {batch:.1} orders/commit"),
        },
    );
    let level = store.stock(TENANT, "sku0", "wh").await.unwrap().unwrap();
    assert!(level.reserved <= level.on_hand);

    // Batching off (one order per transaction) for comparison.
    let single = open(StoreConfig {
        max_batch: 1,
        writers: 16,
        ..StoreConfig::default()
    })
    .await;
    prepare(single.as_ref(), 1, 1_000_000).await;
    let n = (orders / 4).max(1000);
    let (ok, rate) = place(single.clone(), n, clients, 30_000_000, hot_sku).await;
    push(
        rows,
        Row {
            backend,
            what: format!("place_order, one hot SKU, no batching (1 order/tx), {clients} clients"),
            rate,
            note: format!("{ok} of {n} accepted"),
        },
    );
}

async fn raw_inserts_sqlite(path: &std::path::Path, n: usize) -> f64 {
    let store = store::sqlite::open(path, StoreConfig::default())
        .await
        .unwrap();
    let pool = store.write_pool().clone();
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, payload TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    let start = Instant::now();
    for i in 0..n {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO bench_raw (id, payload) VALUES ($1, $2)")
            .bind(i as i64)
            .bind("x")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn raw_inserts_pg(opts: PgConnectOptions, n: usize, clients: usize, first_id: usize) -> f64 {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(clients as u32)
        .connect_with(opts)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id BIGINT PRIMARY KEY, payload TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in (c..n).step_by(clients) {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("INSERT INTO bench_raw (id, payload) VALUES ($1, $2)")
                    .bind((first_id + i) as i64)
                    .bind("x")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    pool.close().await;
    rate
}

async fn run() {
    let mut rows = Vec::new();
    let clients = env_usize("WEIR_BENCH_CLIENTS", 64);
    let dir = std::env::temp_dir().join(format!("weir-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let only = std::env::var("WEIR_BENCH_ONLY").unwrap_or_default();
    if only != "postgres" {
        sqlite_rows(&dir, &mut rows).await;
    }
    if only != "sqlite" {
        postgres_rows(clients, &mut rows).await;
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!("| backend | measurement | rate (/s) | note |");
    println!("| --- | --- | --- | --- |");
    for r in rows {
        r.print();
    }
}

async fn sqlite_rows(dir: &std::path::Path, rows: &mut Vec<Row>) {
    let raw = raw_inserts_sqlite(&dir.join("raw.db"), 20_000).await;
    push(
        rows,
        Row {
            backend: "SQLite",
            what: "one-row INSERT transactions (the ceiling), 1 writer".into(),
            rate: raw,
            note: String::new(),
        },
    );
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sqlite_dir = dir.to_path_buf();
    bench_store(
        "SQLite",
        move |config| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = sqlite_dir.join(format!("store{n}.db"));
            Box::pin(async move {
                Arc::new(store::sqlite::open(&path, config).await.unwrap()) as Arc<dyn Store>
            })
        },
        rows,
    )
    .await;
}

async fn postgres_rows(clients: usize, rows: &mut Vec<Row>) {
    if let Ok(url) = std::env::var("WEIR_TEST_PG_URL") {
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        let fsync: String = sqlx::query_scalar("SHOW fsync")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        println!("PostgreSQL: fsync={fsync} synchronous_commit={sync}");
        // Schemas of an earlier run that failed half-way.
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'weir\\_bench\\_%'",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        for s in stale {
            sqlx::query(&format!("DROP SCHEMA {s} CASCADE"))
                .execute(&mut admin)
                .await
                .unwrap();
        }
        let base = format!("weir_bench_{}", std::process::id());
        let schemas: Vec<String> = (0..3).map(|i| format!("{base}_{i}")).collect();
        for s in &schemas {
            sqlx::query(&format!("CREATE SCHEMA {s}"))
                .execute(&mut admin)
                .await
                .unwrap();
        }
        let opts = |schema: &str| {
            PgConnectOptions::from_str(&url)
                .unwrap()
                .options([("search_path", schema)])
        };
        let raw = raw_inserts_pg(opts(&schemas[0]), 20_000, clients, 0).await;
        push(
            rows,
            Row {
                backend: "PostgreSQL",
                what: format!("one-row INSERT transactions (the ceiling), {clients} clients"),
                rate: raw,
                note: String::new(),
            },
        );
        let raw1 = raw_inserts_pg(opts(&schemas[0]), 3_000, 1, 1_000_000).await;
        push(
            rows,
            Row {
                backend: "PostgreSQL",
                what: "one-row INSERT transactions, 1 client (commit latency bound)".into(),
                rate: raw1,
                note: String::new(),
            },
        );
        let counter = Arc::new(std::sync::atomic::AtomicUsize::new(1));
        let url2 = url.clone();
        let schemas2 = schemas.clone();
        bench_store(
            "PostgreSQL",
            move |config| {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let schema = schemas2[n.min(schemas2.len() - 1)].clone();
                let o = PgConnectOptions::from_str(&url2)
                    .unwrap()
                    .options([("search_path", schema.as_str())]);
                Box::pin(async move {
                    let config = StoreConfig {
                        max_connections: 20,
                        ..config
                    };
                    Arc::new(store::postgres::open_with(o, config).await.unwrap()) as Arc<dyn Store>
                })
            },
            rows,
        )
        .await;
        for s in &schemas {
            sqlx::query(&format!("DROP SCHEMA {s} CASCADE"))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    } else {
        println!("WEIR_TEST_PG_URL not set: PostgreSQL skipped");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a test harness run (`cargo test --benches`)
    // passes nothing useful either, so the benchmark runs only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("store benchmark: run with `cargo bench -p weir-runtime --bench store`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
    std::thread::sleep(Duration::from_millis(10));
}
