//! The order API under load: `POST /v1/orders` through `weir serve`'s whole stack (axum,
//! request id, tracing span, metrics, timeout and concurrency limit, API key lookup,
//! JSON in and out, idempotency check) against the same order placed straight through
//! `services::orders::place_order` — orders per second and latency percentiles with N
//! concurrent clients, on SQLite and, when `WEIR_TEST_PG_URL` is set, PostgreSQL.
//!
//! ```sh
//! WEIR_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p weir-server --bench http_orders
//! ```
//!
//! The server runs in this process on 127.0.0.1:0 with the demo merchant
//! (`demo::prepare`: tenant `demo`, the four rulesets under `rulesets/`, their demo stock)
//! plus 10,000,000 more units of every beauty stock row, so no run can sell out. Every
//! request is `rulesets/beauty/examples/api-order.json` (four lines, one of them a
//! hazmat perfume, so two shipments and an SOP work order) with its own
//! `Idempotency-Key` and its own customer id, device and phone, so per-customer limits
//! and velocity counters never turn orders into refusals; any non-201 answer is counted
//! and shown by status.
//!
//! Each measurement starts on a fresh database, warms up for `WEIR_BENCH_WARMUP_S`
//! (default 2) seconds and then counts `WEIR_BENCH_SECONDS` (default 10) seconds.
//! `WEIR_BENCH_CLIENTS` (default `16,64`) lists the concurrency levels;
//! `WEIR_BENCH_ORDER` names another order body for the beauty merchant (its customer's
//! `id`, `device` and `phone` are replaced per request). Each HTTP client
//! has its own keep-alive HTTP/1.1 connection. The services rows run the same requests
//! with the same concurrency without HTTP, once without an idempotency key (as the
//! pipeline bench does) and once with one (as the API does: the key is looked up with
//! the order's other reads).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

// The allocator `weir serve` runs with (server/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use sqlx::Connection;
use weir_runtime::engine::{Engine, EngineConfig};
use weir_runtime::services::orders::{self as order_service, OrderRequest};
use weir_runtime::store::{self, Receipt, Store, StoreConfig};
use weir_server::serve::problem::Problem;
use weir_server::serve::routes::orders::CreateOrder;
use weir_server::serve::{demo, start, AppState, Options};

const RULESETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rulesets");
const ORDER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../rulesets/beauty/examples/api-order.json"
);
const STOCK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../rulesets/beauty/demo.json");
/// Replaced by a per-request number in the body template.
const MARK: &str = "BENCHSEQ";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn concurrency_levels() -> Vec<usize> {
    std::env::var("WEIR_BENCH_CLIENTS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![16, 64])
}

/// The demo order with `MARK` in the customer's id, device and phone.
fn body_template() -> String {
    let path = std::env::var("WEIR_BENCH_ORDER").unwrap_or_else(|_| ORDER.to_owned());
    let mut order: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let customer = order["customer"].as_object_mut().unwrap();
    customer.insert("id".into(), Json::String(format!("bench-c-{MARK}")));
    customer.insert("device".into(), Json::String(format!("bench-d-{MARK}")));
    customer.insert("phone".into(), Json::String(format!("bench-p-{MARK}")));
    serde_json::to_string(&order).unwrap()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// Where a measurement's database lives (dropped afterwards).
enum Place {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);

async fn open(backend: Backend) -> (Arc<dyn Store>, Place) {
    let n = DB_COUNTER.fetch_add(1, Ordering::SeqCst);
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join("weir-http-bench");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("h{}-{n}.db", std::process::id()));
            let url = format!("sqlite://{}", path.display());
            let store = store::open(&url, StoreConfig::default()).await.unwrap();
            (store, Place::Sqlite(path))
        }
        Backend::Postgres => {
            let url = std::env::var("WEIR_TEST_PG_URL").unwrap();
            let schema = format!("weir_bench_http_{}_{n}", std::process::id());
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
            let sep = if url.contains('?') { '&' } else { '?' };
            let scoped = format!("{url}{sep}options[search_path]={schema}");
            let store = store::open(&scoped, StoreConfig::default()).await.unwrap();
            (store, Place::Postgres { url, schema })
        }
    }
}

async fn remove(place: Place) {
    match place {
        Place::Sqlite(path) => {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
        Place::Postgres { url, schema } => {
            if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut c)
                    .await;
                let _ = c.close().await;
            }
        }
    }
}

/// The demo merchant on a fresh database, with stock no run can use up.
async fn prepare(backend: Backend) -> (AppState, String, Place) {
    let (store, place) = open(backend).await;
    let engine = Engine::new(&EngineConfig {
        max_instances: 512,
        ..EngineConfig::default()
    })
    .unwrap();
    let state = AppState::new(store.clone(), engine);
    let demo = demo::prepare(&state, Path::new(RULESETS)).await.unwrap();
    let seed: Json = serde_json::from_str(&std::fs::read_to_string(STOCK).unwrap()).unwrap();
    for row in seed["stock"].as_array().unwrap() {
        store
            .receive(
                demo::TENANT,
                &Receipt {
                    sku: row["sku"].as_str().unwrap().into(),
                    location_id: row["location_id"].as_str().unwrap().into(),
                    qty: 10_000_000,
                    lot: None,
                    reference: "http bench".into(),
                },
            )
            .await
            .unwrap();
    }
    (state, demo.key, place)
}

/// One client's tally over the measured window.
#[derive(Default)]
struct Tally {
    /// Latency of every measured request (ms × 1000, i.e. µs).
    latencies_us: Vec<u64>,
    placed: u64,
    /// Answers other than 201 by status (0: the request failed without an answer).
    others: BTreeMap<u16, u64>,
    /// The first body of each non-201 status.
    samples: BTreeMap<u16, String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.placed += other.placed;
        for (status, n) in other.others {
            *self.others.entry(status).or_default() += n;
        }
        for (status, body) in other.samples {
            self.samples.entry(status).or_insert(body);
        }
    }

    fn record(&mut self, started: Instant, status: u16, body: impl FnOnce() -> String) {
        self.latencies_us
            .push(started.elapsed().as_micros().min(u64::MAX as u128) as u64);
        if status == 201 {
            self.placed += 1;
        } else {
            *self.others.entry(status).or_default() += 1;
            self.samples.entry(status).or_insert_with(body);
        }
    }
}

struct Window {
    warm_until: Instant,
    end: Instant,
    measured: Duration,
}

impl Window {
    fn new() -> Window {
        let warmup = Duration::from_secs(env_u64("WEIR_BENCH_WARMUP_S", 2));
        let measured = Duration::from_secs(env_u64("WEIR_BENCH_SECONDS", 10));
        let now = Instant::now();
        Window {
            warm_until: now + warmup,
            end: now + warmup + measured,
            measured,
        }
    }
}

/// CPU seconds this process has used (user + system), from /proc/self/stat.
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (indices 11 and 12 after the name).
    (ticks(11) + ticks(12)) / 100.0
}

/// (busy, total) jiffies of the whole machine, from /proc/stat.
fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

/// CPU use over the measured window.
#[derive(Clone, Copy, Default)]
struct Cpu {
    /// This process's CPU seconds per wall second (2.0 = both cores).
    process: f64,
    /// The machine's busy fraction of all cores (this process, the database, the rest).
    machine: f64,
}

/// Waits for the window and samples CPU use across it.
async fn sample_cpu(window: &Window) -> Cpu {
    tokio::time::sleep_until(window.warm_until.into()).await;
    let (p0, (b0, t0)) = (process_cpu_s(), machine_jiffies());
    let wall = Instant::now();
    tokio::time::sleep_until(window.end.into()).await;
    let (p1, (b1, t1)) = (process_cpu_s(), machine_jiffies());
    Cpu {
        process: (p1 - p0) / wall.elapsed().as_secs_f64(),
        machine: if t1 > t0 { (b1 - b0) / (t1 - t0) } else { 0.0 },
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn next_body(template: &str) -> (String, String) {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let key = format!("bench-{}-{n}", std::process::id());
    (key, template.replace(MARK, &n.to_string()))
}

async fn run_http(
    base: &str,
    api_key: &str,
    clients: usize,
    template: Arc<String>,
) -> (Tally, Window, Cpu) {
    let window = Window::new();
    let url = format!("{base}/v1/orders");
    let auth = format!("Bearer {api_key}");
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, auth, template) = (url.clone(), auth.clone(), template.clone());
        let (warm_until, end) = (window.warm_until, window.end);
        tasks.push(tokio::spawn(async move {
            // One client per task: its own keep-alive connection.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .build()
                .unwrap();
            let mut tally = Tally::default();
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let (key, body) = next_body(&template);
                let result = client
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .header("idempotency-key", key)
                    .body(body)
                    .send()
                    .await;
                let (status, text) = match result {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        // Read the whole body, as a client would (and so the connection
                        // can be reused).
                        let text = response.text().await.unwrap_or_default();
                        (status, text)
                    }
                    Err(error) => (0, error.to_string()),
                };
                if started >= warm_until {
                    tally.record(started, status, || text.chars().take(400).collect());
                }
            }
            tally
        }));
    }
    let cpu = sample_cpu(&window).await;
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await.unwrap());
    }
    (total, window, cpu)
}

async fn run_services(
    state: &AppState,
    clients: usize,
    template: Arc<String>,
    with_key: bool,
) -> (Tally, Window, Cpu) {
    let version = state
        .rules
        .active(demo::TENANT, "beauty_flagship")
        .expect("beauty_flagship is active");
    let window = Window::new();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (store, version, template) = (state.store.clone(), version.clone(), template.clone());
        let (warm_until, end) = (window.warm_until, window.end);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let (key, body) = next_body(&template);
                // The same parsing the handler does (CreateOrder, then its request).
                let body: CreateOrder = serde_json::from_str(&body).unwrap();
                let request: OrderRequest = body.request();
                let result = order_service::place_order(
                    store.as_ref(),
                    &version.rules,
                    demo::TENANT,
                    &request,
                    with_key.then_some(key.as_str()),
                )
                .await;
                // The status the API would answer (its own mapping of the error).
                let (status, detail) = match result {
                    Ok(_) => (201, String::new()),
                    Err(error) => {
                        let problem = Problem::from(error);
                        (problem.status.as_u16(), problem.detail)
                    }
                };
                if started >= warm_until {
                    tally.record(started, status, || detail);
                }
            }
            tally
        }));
    }
    let cpu = sample_cpu(&window).await;
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await.unwrap());
    }
    (total, window, cpu)
}

struct Row {
    backend: &'static str,
    path: &'static str,
    clients: usize,
    per_second: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    others: String,
    cpu: Cpu,
}

fn summarise(
    backend: Backend,
    path: &'static str,
    clients: usize,
    mut tally: Tally,
    window: &Window,
    cpu: Cpu,
) -> Row {
    tally.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if tally.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((tally.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        tally.latencies_us[i] as f64 / 1000.0
    };
    let others = if tally.others.is_empty() {
        "none".to_owned()
    } else {
        tally
            .others
            .iter()
            .map(|(s, n)| format!("{n}× {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let row = Row {
        backend: backend.label(),
        path,
        clients,
        per_second: tally.placed as f64 / window.measured.as_secs_f64(),
        p50: pct(0.50),
        p90: pct(0.90),
        p99: pct(0.99),
        max: pct(1.0),
        others,
        cpu,
    };
    println!(
        "{} {} c={}: {} placed in {:.0} s = {:.0} orders/s; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; not placed: {}; CPU: this process {:.0}% of one core ({:.2} ms per placed order), machine {:.0}% busy",
        row.backend,
        row.path,
        row.clients,
        tally.placed,
        window.measured.as_secs_f64(),
        row.per_second,
        row.p50,
        row.p90,
        row.p99,
        row.max,
        row.others,
        row.cpu.process * 100.0,
        if row.per_second > 0.0 { row.cpu.process / row.per_second * 1000.0 } else { 0.0 },
        row.cpu.machine * 100.0,
    );
    for (status, body) in &tally.samples {
        println!("    first {status} answer: {body}");
    }
    row
}

async fn measure(backend: Backend, clients: usize, template: Arc<String>) -> Vec<Row> {
    let mut rows = Vec::new();

    // HTTP: the whole server, in this process.
    let (state, key, place) = prepare(backend).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = start(state, listener, Options::default()).await.unwrap();
    let base = format!("http://{}", running.addr);
    let (tally, window, cpu) = run_http(&base, &key, clients, template.clone()).await;
    rows.push(summarise(backend, "HTTP", clients, tally, &window, cpu));
    running.stop().await.unwrap();
    remove(place).await;

    // The services layer, no HTTP: without and with an idempotency key.
    for (with_key, label) in [(false, "services"), (true, "services + key")] {
        let (state, _, place) = prepare(backend).await;
        let (tally, window, cpu) = run_services(&state, clients, template.clone(), with_key).await;
        rows.push(summarise(backend, label, clients, tally, &window, cpu));
        drop(state);
        remove(place).await;
    }
    rows
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let template = Arc::new(body_template());
        let mut backends = vec![Backend::Sqlite];
        if std::env::var("WEIR_TEST_PG_URL").is_ok_and(|u| !u.is_empty()) {
            backends.push(Backend::Postgres);
        } else {
            println!("WEIR_TEST_PG_URL is not set: PostgreSQL skipped");
        }
        let mut rows = Vec::new();
        for backend in backends {
            for clients in concurrency_levels() {
                rows.extend(measure(backend, clients, template.clone()).await);
            }
        }
        println!();
        println!(
            "| backend | path | clients | orders/s placed | p50 | p90 | p99 | max | not placed | CPU per order (this process) | machine busy |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for r in &rows {
            println!(
                "| {} | {} | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.2} ms | {:.0}% |",
                r.backend,
                r.path,
                r.clients,
                r.per_second,
                r.p50,
                r.p90,
                r.p99,
                r.max,
                r.others,
                if r.per_second > 0.0 { r.cpu.process / r.per_second * 1000.0 } else { 0.0 },
                r.cpu.machine * 100.0
            );
        }
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join("weir-http-bench"));
    });
}
