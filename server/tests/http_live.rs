//! Live rulesets under load, over real HTTP: an activation in the middle of a stream of
//! orders fails none of them, and (PostgreSQL) two `weir serve` processes on one
//! database see one activation and never oversell a hot SKU between them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use weir_runtime::engine::{Engine, EngineConfig};
use weir_runtime::store::{self, Store, StoreConfig};
use weir_server::serve::{self, auth, AppState, Options};

fn ruleset(discount: u32) -> Json {
    json!({
        "files": {
            "rules.weir": format!(
                "ruleset live currency CNY\n\npromotion spend_100_save {{\n  when order.subtotal >= ¥100\n  then discount order ¥{discount}\n}}\n"
            )
        },
        "activate": true,
    })
}

fn order(customer: usize) -> Json {
    json!({
        "currency": "CNY",
        "delivery": {"lat": 31.2, "lon": 121.5},
        "order": {"channel": "app", "items": [{"sku": "HOT-1", "qty": 1, "price": "¥120.00"}]},
        "customer": {"id": format!("c-{customer}")},
    })
}

/// A tiny API client bound to one server and key.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Json>) -> (u16, Json) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Json::Null))
    }

    async fn post(&self, path: &str, body: &Json) -> (u16, Json) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: &Json) -> (u16, Json) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (u16, Json) {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// A location with `units` of HOT-1.
    async fn stock(&self, units: i64) {
        let (status, _) = self
            .put(
                "/v1/locations/wh-1",
                &json!({"kind": "warehouse", "name": "Shanghai DC", "lat": 31.23, "lon": 121.47,
                        "capabilities": {"ships": true}}),
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = self
            .post(
                "/v1/inventory/receipts",
                &json!({"sku": "HOT-1", "location_id": "wh-1", "qty": units}),
            )
            .await;
        assert_eq!(status, 201);
    }

    async fn upload(&self, discount: u32) -> String {
        let (status, body) = self.post("/v1/rulesets", &ruleset(discount)).await;
        assert_eq!(status, 201, "{body}");
        body["version"].as_str().unwrap().to_owned()
    }

    async fn active_version(&self) -> Option<String> {
        let (_, body) = self.get("/v1/rulesets").await;
        body["rulesets"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == "live")
            .and_then(|r| r["active_version"].as_str())
            .map(str::to_owned)
    }
}

async fn in_process(store: Arc<dyn Store>) -> (serve::Running, Api) {
    let engine = Engine::new(&EngineConfig {
        max_instances: 64,
        ..EngineConfig::default()
    })
    .unwrap();
    let state = AppState::new(store.clone(), engine);
    store.create_tenant("acme", "Acme").await.unwrap();
    let (_, key) = auth::issue_key(store.as_ref(), "acme", "test", &["admin".into()])
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = serve::start(state, listener, Options::default())
        .await
        .unwrap();
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{}", running.addr),
        key,
    };
    (running, api)
}

/// Orders keep flowing while a new version is activated: none fails, every decision
/// names the version it ran on, and orders sent after the activation answered run on
/// the new one.
async fn activation_mid_load(store: Arc<dyn Store>) {
    let (running, api) = in_process(store).await;
    api.stock(1_000_000).await;
    let v1 = api.upload(10).await;
    let started = Instant::now();
    let activated_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (api, next, activated_at) = (api.clone(), next.clone(), activated_at.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while started.elapsed() < Duration::from_millis(2_500) {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let sent = Instant::now();
                let after_activation = activated_at.lock().unwrap().is_some_and(|at| sent > at);
                let (status, body) = api.post("/v1/orders", &order(n)).await;
                assert_eq!(status, 201, "order {n} failed: {body}");
                let version = body["decisions"]["version"].as_str().unwrap().to_owned();
                seen.push((after_activation, version));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let v2 = api.upload(20).await;
    *activated_at.lock().unwrap() = Some(Instant::now());
    assert_ne!(v1, v2);
    let mut on = std::collections::HashMap::<String, usize>::new();
    for client in clients {
        for (after_activation, version) in client.await.unwrap() {
            if after_activation {
                assert_eq!(
                    version, v2,
                    "an order sent after the activation ran on the old version"
                );
            }
            *on.entry(version).or_default() += 1;
        }
    }
    assert!(
        on.get(&v1).copied().unwrap_or(0) > 0,
        "no order ran on v1: {on:?}"
    );
    assert!(
        on.get(&v2).copied().unwrap_or(0) > 0,
        "no order ran on v2: {on:?}"
    );
    assert_eq!(on.keys().len(), 2);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn activation_mid_load_fails_no_order_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::sqlite::open(&dir.path().join("weir.db"), StoreConfig::default())
        .await
        .unwrap();
    activation_mid_load(Arc::new(store)).await;
}

fn pg_url() -> Option<String> {
    std::env::var("WEIR_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A fresh schema on the test server, as a URL every process can open.
async fn pg_schema(url: &str) -> (String, String) {
    use sqlx::Connection;
    let schema = format!(
        "weir_http_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    (format!("{url}{sep}options[search_path]={schema}"), schema)
}

async fn drop_schema(url: &str, schema: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(url).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn activation_mid_load_fails_no_order_postgres() {
    let Some(url) = pg_url() else { return };
    let (schema_url, schema) = pg_schema(&url).await;
    let store = store::open(&schema_url, StoreConfig::default())
        .await
        .unwrap();
    activation_mid_load(store).await;
    drop_schema(&url, &schema).await;
}

/// A `weir serve` process, killed when dropped.
struct Process {
    child: Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

fn spawn_server(db: &str) -> Process {
    let mut child = weir()
        .args(["serve", "--no-demo", "--listen", "127.0.0.1:0", "--db", db])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    Process { child, base }
}

/// Two processes, one PostgreSQL database: an activation made through one reaches the
/// other (LISTEN/NOTIFY), and 200 orders for 50 units spread over both place exactly 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_activations_and_never_oversell() {
    let Some(url) = pg_url() else { return };
    let (db, schema) = pg_schema(&url).await;
    let out = weir()
        .args(["tenant", "acme", "--db", &db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("weir_"))
        .unwrap()
        .to_owned();
    let (a, b) = (spawn_server(&db), spawn_server(&db));
    let http = reqwest::Client::new();
    let api_a = Api {
        http: http.clone(),
        base: a.base.clone(),
        key: key.clone(),
    };
    let api_b = Api {
        http,
        base: b.base.clone(),
        key,
    };

    api_a.stock(50).await;
    for discount in [10, 20] {
        let version = api_a.upload(discount).await;
        // B never loaded anything itself: it hears of the activation.
        let deadline = Instant::now() + Duration::from_secs(10);
        while api_b.active_version().await.as_deref() != Some(version.as_str()) {
            assert!(
                Instant::now() < deadline,
                "process B never saw version {version}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (status, body) = api_b
            .post("/v1/rulesets/live/dry-run", &json!({"order": order(0)}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["version"], json!(version));
    }

    let mut tasks = Vec::new();
    for worker in 0..16 {
        let api = if worker % 2 == 0 {
            api_a.clone()
        } else {
            api_b.clone()
        };
        tasks.push(tokio::spawn(async move {
            let (mut placed, mut refused) = (0, 0);
            for i in 0..13 {
                let (status, body) = api.post("/v1/orders", &order(worker * 100 + i)).await;
                match status {
                    201 => placed += 1,
                    409 => refused += 1,
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            (placed, refused)
        }));
    }
    let (mut placed, mut refused) = (0, 0);
    for task in tasks {
        let (p, r) = task.await.unwrap();
        placed += p;
        refused += r;
    }
    assert_eq!(placed, 50, "exactly the stock is sold ({refused} refused)");
    assert_eq!(placed + refused, 16 * 13);
    for api in [&api_a, &api_b] {
        let (status, body) = api.get("/v1/inventory/HOT-1").await;
        assert_eq!(status, 200);
        let at = &body["locations"][0];
        assert_eq!(at["on_hand"], json!(50));
        assert_eq!(at["reserved"], json!(50));
        assert_eq!(at["available_to_promise"], json!(0));
    }
    let (_, listed) = api_b.get("/v1/orders?limit=1000").await;
    assert_eq!(listed["orders"].as_array().unwrap().len(), 50);
    drop((a, b));
    drop_schema(&url, &schema).await;
}
