//! `weir serve`: the order API (issue #4).
//!
//! One axum router over the runtime's services: every `/v1` handler authenticates the
//! caller's API key (tenant and scopes, `auth.rs`), decides with the tenant's active
//! ruleset version (`registry.rs`, swapped atomically on activation) and answers JSON or
//! `application/problem+json` (`problem.rs`). Around it: a request id on every request
//! and response, a tracing span per request, Prometheus metrics, a body size limit, a
//! timeout and a concurrency limit. Background tasks expire reservations, release
//! presale waves, escalate overdue SOP steps and, on PostgreSQL, reload rulesets that
//! another process activated. `docs/api.md` describes the API.

pub mod auth;
pub mod demo;
pub mod explain;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod registry;
pub mod routes;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use weir_runtime::engine::{Engine, EngineConfig, EngineError};
use weir_runtime::services::inventory::InventoryService;
use weir_runtime::store::{Backend, Store, StoreError};

use auth::KeyCache;
use metrics::Metrics;
use problem::Problem;
use registry::{Registry, Version};
use routes::{admin, inventory, orders, rules, sop, system};

/// Limits every request runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body (bytes); larger ones get 413.
    pub body_bytes: usize,
    /// Longest a request may take, waiting for a slot included; then 503.
    pub timeout: Duration,
    /// Requests answered at once; more wait for a slot (within the timeout).
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 2 * 1024 * 1024,
            timeout: Duration::from_secs(10),
            concurrency: 512,
        }
    }
}

/// Everything a running API shares.
pub struct Inner {
    pub store: Arc<dyn Store>,
    pub rules: Registry,
    pub metrics: Metrics,
    pub keys: KeyCache,
}

/// The handlers' state (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, engine: Engine) -> Self {
        AppState(Arc::new(Inner {
            rules: Registry::new(engine, store.clone()),
            store,
            metrics: Metrics::new(),
            keys: KeyCache::default(),
        }))
    }
}

impl Inner {
    /// The active version that decides an order: the named ruleset, or the tenant's only
    /// one.
    pub fn pick_ruleset(&self, tenant: &str, name: Option<&str>) -> Result<Arc<Version>, Problem> {
        match name {
            Some(name) => self.rules.active(tenant, name).ok_or_else(|| {
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown-ruleset",
                    "No such active ruleset",
                    format!("no active ruleset `{name}` (GET /v1/rulesets lists them)"),
                )
            }),
            None => {
                let names = self.rules.active_names(tenant);
                match names.as_slice() {
                    [(only, _)] => self.rules.active(tenant, only).ok_or_else(|| {
                        Problem::unavailable("the ruleset was just replaced; retry")
                    }),
                    [] => Err(Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "no-active-ruleset",
                        "No active ruleset",
                        "upload and activate a ruleset first (POST /v1/rulesets)",
                    )),
                    many => Err(Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "ruleset-required",
                        "Name the ruleset",
                        format!(
                            "this merchant has {} active rulesets: set `ruleset` to one of {}",
                            many.len(),
                            many.iter()
                                .map(|(n, _)| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )),
                }
            }
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Build(#[from] registry::BuildError),
    #[error("demo setup: {0}")]
    Demo(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The API's routes and middleware.
pub fn router(state: AppState, limits: &Limits) -> Router {
    let v1 = Router::new()
        .route("/orders", post(orders::create).get(orders::list))
        .route("/orders/{id}", get(orders::get))
        .route("/orders/{id}/explain", get(orders::explain))
        .route("/orders/{id}/cancel", post(orders::cancel))
        .route("/orders/{id}/release", post(orders::release))
        .route("/orders/{id}/shipment-events", post(orders::shipment_event))
        .route("/returns", post(orders::create_return))
        .route("/returns/{id}", get(orders::get_return))
        .route("/returns/{id}/qc", post(orders::return_qc))
        .route("/locations", get(inventory::list_locations))
        .route("/locations/{id}", put(inventory::put_location))
        .route("/inventory/receipts", post(inventory::receipt))
        .route("/inventory/adjustments", post(inventory::adjustment))
        .route("/inventory/{sku}", get(inventory::sku_stock))
        .route(
            "/inventory/{sku}/{location_id}",
            get(inventory::location_stock),
        )
        .route(
            "/inventory/{sku}/{location_id}/safety-stock",
            put(inventory::safety_stock),
        )
        .route("/presales", post(inventory::lock_presale))
        .route("/presales/{id}", get(inventory::get_presale))
        .route("/presales/{id}/end", post(inventory::end_presale))
        .route("/rulesets", post(rules::upload).get(rules::list))
        .route("/rulesets/{name}", get(rules::get))
        .route(
            "/rulesets/{name}/versions/{version}",
            get(rules::get_version),
        )
        .route("/rulesets/{name}/activate", post(rules::activate))
        .route("/rulesets/{name}/rollback", post(rules::rollback))
        .route("/rulesets/{name}/dry-run", post(rules::dry_run))
        .route("/lists", get(rules::lists))
        .route(
            "/lists/{name}",
            get(rules::get_list)
                .put(rules::replace_list)
                .patch(rules::patch_list),
        )
        .route("/work-orders", get(sop::list))
        .route("/work-orders/{id}", get(sop::get))
        .route(
            "/work-orders/{id}/steps/{step_no}/complete",
            post(sop::complete_step),
        )
        .route("/api-keys", post(admin::create).get(admin::list))
        .route("/api-keys/{id}", axum::routing::delete(admin::revoke));
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(system::openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request| {
                        let id = request
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = id)
                    }),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(CatchPanicLayer::custom(|_| {
                    Problem::internal("the request failed unexpectedly").into_response()
                }))
                .layer(axum::middleware::from_fn_with_state(state.clone(), track))
                .layer(HandleErrorLayer::new(overloaded))
                .timeout(limits.timeout)
                // One semaphore for the whole server: `Router::layer` clones a layer into
                // every route, and `ConcurrencyLimitLayer` would make one per clone.
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    limits.concurrency.max(1),
                )),
        )
        .with_state(state)
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no-such-route",
        "No such route",
        "see /openapi.json for the API",
    )
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "see /openapi.json for the methods of this route",
    )
}

async fn overloaded(error: tower::BoxError) -> Problem {
    if error.is::<tower::timeout::error::Elapsed>() {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "The request took too long",
            "the server is busy or the request is slow; retry with the same Idempotency-Key",
        )
    } else {
        Problem::unavailable(error.to_string())
    }
}

/// Request counts and latency per route template.
async fn track(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    app.metrics.in_flight.inc();
    let response = next.run(request).await;
    app.metrics.in_flight.dec();
    app.metrics.observe(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops taking connections, lets requests in flight finish, stops the background
    /// tasks.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.server
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    /// Waits until the server stops (Ctrl-C in `weir serve`).
    pub async fn wait(self) -> std::io::Result<()> {
        self.server
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }

    pub fn shutdown_handle(&self) -> tokio::sync::watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// How background work runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub limits: Limits,
    /// How often reservations expire, presale waves release and SOP steps escalate.
    pub tick: Duration,
    /// The PostgreSQL URL to LISTEN on for other processes' activations.
    pub listen_url: Option<String>,
    /// NATS server to relay the outbox to (JetStream), if any.
    pub nats_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            tick: Duration::from_secs(1),
            listen_url: None,
            nats_url: None,
        }
    }
}

/// Builds the engine the server runs rulesets on.
pub fn engine(config: &EngineConfig) -> Result<Engine, EngineError> {
    Engine::new(config)
}

/// Loads every active ruleset and serves on `listener` until stopped.
pub async fn start(
    state: AppState,
    listener: TcpListener,
    options: Options,
) -> Result<Running, ServeError> {
    state.rules.reload_all().await?;
    let addr = listener.local_addr()?;
    let (shutdown, mut stop) = tokio::sync::watch::channel(false);
    spawn_background(&state, &options, shutdown.subscribe());
    let app = router(state.clone(), &options.limits);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            })
            .await
    });
    Ok(Running {
        addr,
        state,
        shutdown,
        server,
    })
}

fn spawn_background(state: &AppState, options: &Options, stop: tokio::sync::watch::Receiver<bool>) {
    let store = state.store.clone();
    let app = state.clone();
    let tick = options.tick;
    let mut stop_jobs = stop.clone();
    tokio::spawn(async move {
        let inventory = InventoryService::new(store.clone());
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop_jobs.changed() => return,
            }
            if let Err(error) = inventory.sweep_once().await {
                tracing::warn!(%error, "reservation expiry / presale waves failed; retrying");
            }
            // The sweep cancels unpaid orders without the rules: their `order.cancelled`
            // SOPs are evaluated and opened here.
            if let Err(problem) = orders::open_pending_sops(&app, 100).await {
                tracing::warn!(error = %problem.detail, "opening pending SOPs failed; retrying");
            }
            if let Err(error) = store.escalate_overdue_steps(1_000).await {
                tracing::warn!(%error, "SOP escalation failed; retrying");
            }
        }
    });
    if let Some(url) = options.nats_url.clone() {
        let store = state.store.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            use weir_runtime::events::{OutboxPublisher, PublisherConfig};
            loop {
                match OutboxPublisher::connect(store.clone(), &url, PublisherConfig::default())
                    .await
                {
                    Ok(publisher) => {
                        publisher
                            .run(async {
                                let _ = stop.changed().await;
                            })
                            .await;
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot reach NATS; the outbox waits, retrying in 1 s");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stop.changed() => return,
                        }
                    }
                }
            }
        });
    }
    if let (Backend::Postgres, Some(url)) = (state.store.backend(), options.listen_url.clone()) {
        let state = state.clone();
        let mut stop = stop;
        tokio::spawn(async move {
            tokio::select! {
                _ = listen_for_activations(state, url) => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// Reloads rulesets other processes activated (PostgreSQL `LISTEN`), reconnecting with
/// a full reload whenever the connection was lost.
async fn listen_for_activations(state: AppState, url: String) {
    use weir_runtime::store::postgres::{RulesetAnnouncement, RulesetListener};
    loop {
        let mut listener = match RulesetListener::connect(&url).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for ruleset activations; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Anything activated while we were not listening.
        if let Err(error) = state.rules.reload_all().await {
            tracing::warn!(%error, "reloading rulesets failed");
        }
        loop {
            match listener.recv().await {
                Ok(RulesetAnnouncement::Activated { tenant, name }) => {
                    match state.rules.reload(&tenant, &name).await {
                        Ok(()) => state.metrics.activated(&tenant, &name),
                        Err(error) => {
                            tracing::error!(tenant, ruleset = name, %error, "reload failed")
                        }
                    }
                }
                Ok(RulesetAnnouncement::Reconnected) => {
                    if let Err(error) = state.rules.reload_all().await {
                        tracing::warn!(%error, "reloading rulesets failed");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "the LISTEN connection failed; reconnecting");
                    break;
                }
            }
        }
    }
}
