//! The whole order create pipeline (issue #6): validate, read stock/counters/lists/usage,
//! evaluate the ruleset in WebAssembly, plan and check shipments, and commit the order —
//! orders per second and latency percentiles with many concurrent clients, on SQLite
//! (WAL, synchronous=NORMAL) and, when `WEIR_TEST_PG_URL` is set, PostgreSQL (fsync and
//! synchronous_commit on). Spread stock (many SKUs) and one hot SKU.
//!
//! ```sh
//! WEIR_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p weir-runtime --bench pipeline
//! ```
//!
//! `WEIR_BENCH_ORDERS` (default 20,000) orders per run, `WEIR_BENCH_CLIENTS` (default 64)
//! concurrent clients, `WEIR_BENCH_CONNECTIONS` the store's connections (default: the
//! store's own default), `WEIR_BENCH_LIST_MEMBERS` (default 0) devices in the
//! `blocked_devices` list (none of them a device that orders). The ruleset is
//! `runtime/tests/fixtures/shop.weir` (a threshold promotion with a budget and a daily
//! limit, a route over every location, three constraints, three risk rules with a
//! velocity counter and two runtime lists, a `decide` block and an SOP on every order).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

// The allocator `weir serve` runs with (server/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::Connection;
use weir_runtime::engine::{Engine, EngineConfig};
use weir_runtime::services::orders::{self, GeoPoint, OrderError, OrderRequest, Rules};
use weir_runtime::store::{
    self, Capabilities, Location, LocationKind, PlaceError, Receipt, Store, StoreConfig,
};

const TENANT: &str = "bench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The store's settings: the defaults, or `WEIR_BENCH_CONNECTIONS` connections.
fn config() -> StoreConfig {
    let defaults = StoreConfig::default();
    StoreConfig {
        max_connections: env_usize("WEIR_BENCH_CONNECTIONS", defaults.max_connections as usize)
            as u32,
        ..defaults
    }
}

fn rules() -> Rules {
    let out = weir_dsl::check(&[weir_dsl::SourceText {
        name: "shop.weir".into(),
        text: include_str!("../tests/fixtures/shop.weir").into(),
    }]);
    let ruleset = out.ruleset.expect("shop.weir checks");
    let (compiled, wasm) = weir_compiler::build(&ruleset).unwrap();
    let engine = Engine::new(&EngineConfig::default()).unwrap();
    orders::rules(&engine, "shop", "bench", ruleset, compiled, &wasm).unwrap()
}

async fn prepare(store: &dyn Store, skus: usize, units: i64) {
    for (id, kind, lat, lon) in [
        ("SH-STORE", LocationKind::Store, 31.2304, 121.4937),
        ("SH-WH", LocationKind::Warehouse, 31.05, 121.25),
    ] {
        store
            .upsert_location(
                TENANT,
                &Location {
                    id: id.into(),
                    kind,
                    name: id.into(),
                    lat,
                    lon,
                    capabilities: Capabilities {
                        ships: true,
                        pickup: kind == LocationKind::Store,
                        cold_chain: false,
                        hazmat_certified: kind == LocationKind::Warehouse,
                    },
                },
            )
            .await
            .unwrap();
    }
    for n in 0..skus {
        store
            .receive(
                TENANT,
                &Receipt {
                    sku: format!("SKU-{n}"),
                    location_id: "SH-STORE".into(),
                    qty: units,
                    lot: None,
                    reference: "bench".into(),
                },
            )
            .await
            .unwrap();
    }
}

/// `WEIR_BENCH_LIST_MEMBERS` devices in the ruleset's `blocked_devices` list.
async fn block_devices(store: &dyn Store) {
    let members = env_usize("WEIR_BENCH_LIST_MEMBERS", 0);
    if members == 0 {
        return;
    }
    let devices: Vec<String> = (0..members).map(|i| format!("blocked-{i}")).collect();
    store
        .replace_list(TENANT, "blocked_devices", &devices, None)
        .await
        .unwrap();
}

fn request(n: usize, sku: String) -> OrderRequest {
    OrderRequest {
        ruleset: None,
        order_id: Some(format!("o-{n}")),
        currency: "CNY".into(),
        delivery: Some(GeoPoint {
            lat: 31.24,
            lon: 121.48,
        }),
        mode: None,
        order: json!({
            "channel": "tmall",
            "items": [{ "sku": sku, "category": "skincare", "qty": 1, "price": "¥99.00" }]
        })
        .as_object()
        .unwrap()
        .clone(),
        customer: json!({ "id": format!("c-{}", n % 5000), "device": format!("d-{}", n % 5000) })
            .as_object()
            .unwrap()
            .clone(),
    }
}

struct Run {
    accepted: usize,
    refused: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn run(
    store: Arc<dyn Store>,
    rules: Arc<Rules>,
    orders_total: usize,
    clients: usize,
    sku_of: fn(usize) -> String,
) -> Run {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let store = store.clone();
        let rules = rules.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut accepted, mut refused) = (0, 0);
            let mut n = client;
            while n < orders_total {
                let req = request(n, sku_of(n));
                let t = Instant::now();
                match orders::place_order(store.as_ref(), &rules, TENANT, &req, None).await {
                    Ok(_) => accepted += 1,
                    Err(OrderError::Unfulfillable { .. })
                    | Err(OrderError::Place(PlaceError::OutOfStock { .. })) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
                latencies.push(t.elapsed());
                n += clients;
            }
            (accepted, refused, latencies)
        }));
    }
    let mut out = Run {
        accepted: 0,
        refused: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (a, r, l) = task.await.unwrap();
        out.accepted += a;
        out.refused += r;
        out.latencies.extend(l);
    }
    out.elapsed = started.elapsed();
    out.latencies.sort();
    out
}

fn report(label: &str, run: &Run, writer: store::WriterStats) {
    let pct = |p: f64| {
        let i = ((run.latencies.len() as f64 - 1.0) * p).round() as usize;
        run.latencies.get(i).copied().unwrap_or_default()
    };
    println!(
        "{label}: {} orders in {:.2} s = {:.0} orders/s accepted ({} refused); p50 {:.2} ms, p99 {:.2} ms; {:.1} orders per commit",
        run.accepted,
        run.elapsed.as_secs_f64(),
        run.accepted as f64 / run.elapsed.as_secs_f64(),
        run.refused,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        writer.orders as f64 / writer.batches.max(1) as f64,
    );
}

fn spread_sku(n: usize) -> String {
    format!("SKU-{}", n % 1000)
}

fn hot_sku(_: usize) -> String {
    "SKU-0".into()
}

async fn bench(
    label: &str,
    open: impl Fn() -> futures_open::Open,
    orders_total: usize,
    clients: usize,
) {
    let rules = Arc::new(rules());
    // Spread: 1,000 SKUs with plenty of stock.
    let store = open().await;
    prepare(store.as_ref(), 1000, 1_000_000).await;
    block_devices(store.as_ref()).await;
    let spread = run(
        store.clone(),
        rules.clone(),
        orders_total,
        clients,
        spread_sku,
    )
    .await;
    report(
        &format!("{label} pipeline, 1,000 SKUs"),
        &spread,
        store.writer_stats(),
    );
    drop(store);
    // Hot: one SKU, stock for 90% of the orders; the rest must be refused.
    let store = open().await;
    prepare(store.as_ref(), 1, (orders_total * 9 / 10) as i64).await;
    block_devices(store.as_ref()).await;
    let hot = run(store.clone(), rules, orders_total, clients, hot_sku).await;
    report(
        &format!("{label} pipeline, one hot SKU"),
        &hot,
        store.writer_stats(),
    );
    let level = store
        .stock(TENANT, "SKU-0", "SH-STORE")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(level.reserved as usize, hot.accepted, "oversold");
    assert!(level.available_to_promise() >= 0, "oversold");
}

mod futures_open {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use weir_runtime::store::Store;
    pub type Open = Pin<Box<dyn Future<Output = Arc<dyn Store>>>>;
}

fn main() {
    let orders_total = env_usize("WEIR_BENCH_ORDERS", 20_000);
    let clients = env_usize("WEIR_BENCH_CLIENTS", 64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = std::env::temp_dir().join("weir-pipeline-bench");
        std::fs::create_dir_all(&dir).unwrap();
        let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let open_sqlite = {
            let dir = dir.clone();
            let counter = counter.clone();
            move || -> futures_open::Open {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let path = dir.join(format!("p{}-{n}.db", std::process::id()));
                Box::pin(async move {
                    let s: Arc<dyn Store> =
                        Arc::new(store::sqlite::open(&path, config()).await.unwrap());
                    s
                })
            }
        };
        bench("SQLite", open_sqlite, orders_total, clients).await;

        if let Ok(url) = std::env::var("WEIR_TEST_PG_URL") {
            let open_pg = move || -> futures_open::Open {
                let url = url.clone();
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Box::pin(async move {
                    let schema = format!("weir_bench_pipeline_{}_{n}", std::process::id());
                    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(&mut c)
                        .await
                        .unwrap();
                    sqlx::query(&format!("CREATE SCHEMA {schema}"))
                        .execute(&mut c)
                        .await
                        .unwrap();
                    c.close().await.unwrap();
                    let opts = PgConnectOptions::from_str(&url)
                        .unwrap()
                        .options([("search_path", schema.as_str())]);
                    let s: Arc<dyn Store> =
                        Arc::new(store::postgres::open_with(opts, config()).await.unwrap());
                    s
                })
            };
            bench("PostgreSQL", open_pg, orders_total, clients).await;
        } else {
            println!("WEIR_TEST_PG_URL is not set: PostgreSQL skipped");
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
