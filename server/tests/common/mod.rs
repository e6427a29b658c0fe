//! Test harness for the order API: a real `weir serve` router on a loopback port, over a
//! fresh store per test — SQLite in a temp file or, when `WEIR_TEST_PG_URL` is set,
//! PostgreSQL in a schema of its own (as `runtime/tests/common` does, so tests run in
//! parallel and re-run on a dirty database) — with two tenants and their keys, and an
//! HTTP client whose every answer is checked for a request id and, on errors, for a
//! well-formed `application/problem+json` body.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value as Json};
use sqlx::postgres::PgConnectOptions;
use sqlx::Connection;
use tokio::net::TcpListener;
use weir_runtime::engine::{Engine, EngineConfig};
use weir_runtime::store::{self, Store, StoreConfig};
use weir_server::serve::{self, auth::issue_key, AppState, Options, Running};

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

/// The order pipeline's test ruleset (`ruleset shop currency CNY`).
pub const SHOP: &str = include_str!("../../../runtime/tests/fixtures/shop.weir");

/// The first tenant and the second one.
pub const A: &str = "acme";
pub const B: &str = "globex";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}_{secs}_{}_{n}", std::process::id())
}

/// Now, in Unix milliseconds (the server runs on the system clock).
pub fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Where a server's data lives, so it can be removed.
#[derive(Debug, Clone)]
enum Place {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

/// A tenant's keys: `admin` (everything), `orders` only, `rules` only.
#[derive(Debug, Clone)]
pub struct Keys {
    pub tenant: String,
    pub admin: String,
    pub orders: String,
    pub rules: String,
}

/// One answer, as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    /// The body as JSON (`Null` when it is not JSON, e.g. `/metrics`).
    pub json: Json,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem's `type` without the `urn:weir:problem:` prefix.
    pub fn slug(&self) -> &str {
        self.json["type"]
            .as_str()
            .and_then(|t| t.strip_prefix("urn:weir:problem:"))
            .unwrap_or("")
    }
}

pub struct TestServer {
    pub kind: Kind,
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub a: Keys,
    pub b: Keys,
    running: Option<Running>,
    /// Removed by [`TestServer::stop`], or on drop when a test panicked.
    place: Option<Place>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that panicked never reached `stop`: remove its data anyway (best
        // effort, without waiting; stale PostgreSQL schemas are also swept at start).
        match self.place.take() {
            None => {}
            Some(Place::Sqlite(path)) => remove_sqlite(&path),
            Some(Place::Postgres { url, schema }) => {
                std::thread::spawn(move || {
                    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        rt.block_on(drop_schema(&url, &schema));
                    }
                });
            }
        }
    }
}

fn remove_sqlite(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.to_path_buf().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

impl TestServer {
    pub async fn start(kind: Kind) -> TestServer {
        Self::start_with(kind, Options::default()).await
    }

    pub async fn start_with(kind: Kind, options: Options) -> TestServer {
        Self::start_with_clock(kind, options, Arc::new(store::SystemClock)).await
    }

    /// A server whose store reads time from `clock` (reservations expire when the test
    /// moves it).
    pub async fn start_with_clock(
        kind: Kind,
        options: Options,
        clock: Arc<dyn store::Clock>,
    ) -> TestServer {
        let config = StoreConfig {
            max_connections: 4,
            clock,
            ..StoreConfig::default()
        };
        let (store, place): (Arc<dyn Store>, Place) = match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join("weir-http-tests");
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join(format!("{}.db", unique("t")));
                let store = store::sqlite::open(&path, config).await.unwrap();
                (Arc::new(store), Place::Sqlite(path))
            }
            Kind::Postgres => {
                let url = pg_url().expect("WEIR_TEST_PG_URL");
                let schema = unique("weir_h");
                drop_stale_schemas(&url).await;
                pg_execute(&url, &format!("CREATE SCHEMA {schema}")).await;
                let options = PgConnectOptions::from_str(&url)
                    .unwrap()
                    .options([("search_path", schema.as_str())]);
                let store = store::postgres::open_with(options, config).await.unwrap();
                (Arc::new(store), Place::Postgres { url, schema })
            }
        };
        let engine = Engine::new(&EngineConfig {
            max_instances: 64,
            ..EngineConfig::default()
        })
        .unwrap();
        let state = AppState::new(store.clone(), engine);
        let mut tenants = Vec::new();
        for tenant in [A, B] {
            store
                .create_tenant(tenant, &format!("{tenant} Inc."))
                .await
                .unwrap();
            let key = |scope: &str| {
                let store = store.clone();
                let scope = scope.to_owned();
                async move {
                    issue_key(store.as_ref(), tenant, &format!("test {scope}"), &[scope])
                        .await
                        .unwrap()
                        .1
                }
            };
            tenants.push(Keys {
                tenant: tenant.to_owned(),
                admin: key("admin").await,
                orders: key("orders").await,
                rules: key("rules").await,
            });
        }
        let b = tenants.pop().unwrap();
        let a = tenants.pop().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = serve::start(state.clone(), listener, options)
            .await
            .unwrap();
        TestServer {
            kind,
            base: format!("http://{}", running.addr),
            client: reqwest::Client::new(),
            state,
            a,
            b,
            running: Some(running),
            place: Some(place),
        }
    }

    /// Stops the server and removes its data.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
        let place = self.place.take();
        drop(self);
        match place {
            None => {}
            Some(Place::Sqlite(path)) => remove_sqlite(&path),
            Some(Place::Postgres { url, schema }) => drop_schema(&url, &schema).await,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; `body` is sent as JSON. Every answer must carry a request id,
    /// and every error must be a well-formed problem document.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Json>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method.clone(), self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        finish(&method, path, response).await
    }

    /// Sends raw bytes with an optional content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut request = self.client.request(method.clone(), self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let response = request.body(body).send().await.unwrap();
        finish(&method, path, response).await
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, HeaderMap, Json) {
        let r = self.send(Method::GET, path, Some(key), None, &[]).await;
        (r.status, r.headers, r.json)
    }

    pub async fn post(&self, path: &str, key: &str, body: Json) -> (u16, HeaderMap, Json) {
        let r = self
            .send(Method::POST, path, Some(key), Some(&body), &[])
            .await;
        (r.status, r.headers, r.json)
    }

    pub async fn put(&self, path: &str, key: &str, body: Json) -> (u16, HeaderMap, Json) {
        let r = self
            .send(Method::PUT, path, Some(key), Some(&body), &[])
            .await;
        (r.status, r.headers, r.json)
    }

    pub async fn patch(&self, path: &str, key: &str, body: Json) -> (u16, HeaderMap, Json) {
        let r = self
            .send(Method::PATCH, path, Some(key), Some(&body), &[])
            .await;
        (r.status, r.headers, r.json)
    }

    pub async fn delete(&self, path: &str, key: &str) -> (u16, HeaderMap, Json) {
        let r = self.send(Method::DELETE, path, Some(key), None, &[]).await;
        (r.status, r.headers, r.json)
    }

    /// GET that must answer 200; the body.
    pub async fn ok(&self, path: &str, key: &str) -> Json {
        let (status, _, body) = self.get(path, key).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    // ---- seeding through the API ---------------------------------------------------

    /// Uploads `files` as a ruleset; the 201 body.
    pub async fn upload(&self, key: &str, files: Json, activate: bool) -> Json {
        let (status, _, body) = self
            .post(
                "/v1/rulesets",
                key,
                json!({"files": files, "activate": activate}),
            )
            .await;
        assert_eq!(status, 201, "upload: {body}");
        body
    }

    /// Uploads and activates the shop ruleset; its version.
    pub async fn upload_shop(&self, key: &str) -> String {
        let body = self.upload(key, json!({ "shop.weir": SHOP }), true).await;
        body["version"].as_str().unwrap().to_owned()
    }

    pub async fn put_location(&self, key: &str, id: &str, body: Json) {
        let (status, _, reply) = self.put(&format!("/v1/locations/{id}"), key, body).await;
        assert_eq!(status, 200, "PUT location {id}: {reply}");
    }

    /// A receipt that must be accepted; the stock afterwards.
    pub async fn receive(&self, key: &str, sku: &str, location: &str, qty: i64) -> Json {
        let (status, _, body) = self
            .post(
                "/v1/inventory/receipts",
                key,
                json!({"sku": sku, "location_id": location, "qty": qty, "reference": "asn-1"}),
            )
            .await;
        assert_eq!(status, 201, "receipt {sku}@{location}: {body}");
        body
    }

    /// The shop ruleset active, a store 2 km from the buyer (`SH-STORE`, 20 units of
    /// SERUM-30) and a hazmat-certified warehouse 30 km out (`SH-WH`, 100 units); the
    /// active version.
    pub async fn seed_shop(&self, key: &str) -> String {
        let version = self.upload_shop(key).await;
        self.put_location(
            key,
            "SH-STORE",
            json!({"kind": "store", "name": "Shanghai store", "lat": 31.2304, "lon": 121.4937,
                   "capabilities": {"ships": true, "pickup": true}}),
        )
        .await;
        self.put_location(
            key,
            "SH-WH",
            json!({"kind": "warehouse", "name": "Shanghai warehouse", "lat": 31.05, "lon": 121.25,
                   "capabilities": {"ships": true, "hazmat_certified": true}}),
        )
        .await;
        self.receive(key, "SERUM-30", "SH-STORE", 20).await;
        self.receive(key, "SERUM-30", "SH-WH", 100).await;
        version
    }

    /// Stock of `sku` at `location` (must exist).
    pub async fn stock(&self, key: &str, sku: &str, location: &str) -> Json {
        self.ok(&format!("/v1/inventory/{sku}/{location}"), key)
            .await
    }

    /// Places an order that must be accepted; the 201 body.
    pub async fn place(&self, key: &str, body: Json) -> Json {
        let (status, headers, reply) = self.post("/v1/orders", key, body).await;
        assert_eq!(status, 201, "order: {reply}");
        assert!(headers.get("location").is_some());
        reply
    }
}

/// Checks the answer's invariants and reads it.
async fn finish(method: &Method, path: &str, response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap().to_vec();
    let json: Json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
    let what = format!("{method} {path} → {status}");
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(!request_id.is_empty(), "{what}: no x-request-id");
    if status >= 400 {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(
            content_type,
            "application/problem+json",
            "{what}: {}",
            String::from_utf8_lossy(&bytes)
        );
        let kind = json["type"].as_str().unwrap_or("");
        assert!(
            kind.starts_with("urn:weir:problem:") && kind.len() > "urn:weir:problem:".len(),
            "{what}: type {json}"
        );
        assert!(
            json["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{what}: title {json}"
        );
        assert_eq!(json["status"], json!(status), "{what}: status {json}");
        assert!(json["detail"].is_string(), "{what}: detail {json}");
    }
    Reply {
        status,
        headers,
        bytes,
        json,
    }
}

/// `id` as one path segment (percent-encoded): work order ids are `{order_id}/wo{n}`.
pub fn seg(id: &str) -> String {
    let mut out = String::new();
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ---- request bodies ------------------------------------------------------------------

/// `qty` units of the serum (¥160 each: under the ¥299 promotion threshold per unit).
pub fn serum(qty: i64) -> Json {
    json!({"sku": "SERUM-30", "category": "skincare", "qty": qty, "price": "¥160.00", "liquid_ml": "30 ml"})
}

/// An order in CNY delivered near the Shanghai store, from `customer` on a device of
/// their own.
pub fn order(customer: &str, items: Json) -> Json {
    json!({
        "currency": "CNY",
        "delivery": {"lat": 31.24, "lon": 121.48},
        "order": {"channel": "tmall", "items": items},
        "customer": {"id": customer, "device": format!("dev-{customer}")},
    })
}

// ---- PostgreSQL schemas ----------------------------------------------------------------

/// Runs one statement on a connection of its own.
async fn pg_execute(url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

/// Drops a test's schema; errors are ignored (cleanup is best effort).
async fn drop_schema(url: &str, schema: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(url).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

/// Schemas left by test runs that crashed more than an hour ago.
async fn drop_stale_schemas(url: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'weir\\_h\\_%'",
    )
    .fetch_all(&mut conn)
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
                .execute(&mut conn)
                .await;
        }
    }
    let _ = conn.close().await;
}

/// Instantiates each `async fn NAME(kind: Kind)` once per backend: `sqlite::NAME` and
/// `postgres::NAME` (the latter passes without running when `WEIR_TEST_PG_URL` is
/// unset).
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
