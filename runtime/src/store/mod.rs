//! Persistence for orders, inventory, risk state, SOP work orders, the outbox and
//! ruleset versions (issue #6), on SQLite (embedded, the default) and PostgreSQL.
//!
//! [`Store`] is the one interface; [`sqlite::open`] and [`postgres::open`] (or [`open`]
//! with a URL) give an implementation. Both run the same SQL (`shared.rs`, compiled once
//! per backend) over the same schema (`runtime/migrations/{sqlite,postgres}`, applied on
//! open), and the same test suite (`runtime/tests/store.rs`) runs on both.
//!
//! Every table has a `tenant` column (the merchant id) and every tenant-facing query is
//! filtered by it. The only reads across tenants are the background jobs that serve all
//! tenants at once (expiry sweeps, presale waves, SOP escalation, the outbox relay);
//! they key every change they make by the tenant of the row they found.
//!
//! Orders are written by [`Store::place_order`] as one unit each: all of its rows and
//! stock changes commit together or none do. Orders are grouped into batches (one
//! transaction for many orders, each order's checks made against stock rows locked for
//! the batch) so a hot SKU is not capped by one commit per order; `docs/inventory.md`
//! has the design and the figures, `docs/storage.md` the schema and backend settings.

mod error;
mod migrations;
mod placement;
pub mod postgres;
mod reference;
pub mod sqlite;
mod types;

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

pub use error::{PlaceError, StoreError};
pub use reference::REFERENCE_CHANNEL;
pub use types::*;

/// Every location's merchant-maintained facts, by location id.
pub type LocationAttributes =
    std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>>;

/// The PostgreSQL channel on which an activation or rollback is announced (payload
/// `tenant\nname`), so every server process swaps to the new version.
pub const RULESET_CHANNEL: &str = "weir_rulesets";

/// The scopes an API key may carry: `orders` (orders, shipments, returns, inventory,
/// work orders), `rules` (rulesets and runtime lists), `admin` (everything, and keys).
pub const API_SCOPES: &[&str] = &["orders", "rules", "admin"];

/// Most units one receipt, adjustment, hold, presale, order line or safety stock may
/// name (a billion: far beyond any real stock, far from overflow).
pub const MAX_UNITS: i64 = 1_000_000_000;

/// Where "now" comes from. Tests and simulations use [`ManualClock`] so expiry,
/// deadlines and windows are deterministic.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_millis(&self) -> Millis;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now: Millis) -> Self {
        ManualClock(AtomicI64::new(now))
    }
    pub fn set(&self, now: Millis) {
        self.0.store(now, Ordering::SeqCst);
    }
    pub fn advance(&self, by: Millis) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// The points of the order write path where a fault can be injected. The crash tests
/// fail the path at each one and check that nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteStep {
    Begin,
    Loaded,
    Stock,
    Lots,
    Presale,
    Budgets,
    Limits,
    Orders,
    Lines,
    Reservations,
    Shipments,
    Decision,
    Velocity,
    WorkOrders,
    Outbox,
    Commit,
}

impl WriteStep {
    pub const ALL: &'static [WriteStep] = &[
        WriteStep::Begin,
        WriteStep::Loaded,
        WriteStep::Stock,
        WriteStep::Lots,
        WriteStep::Presale,
        WriteStep::Budgets,
        WriteStep::Limits,
        WriteStep::Orders,
        WriteStep::Lines,
        WriteStep::Reservations,
        WriteStep::Shipments,
        WriteStep::Decision,
        WriteStep::Velocity,
        WriteStep::WorkOrders,
        WriteStep::Outbox,
        WriteStep::Commit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WriteStep::Begin => "begin",
            WriteStep::Loaded => "loaded",
            WriteStep::Stock => "stock",
            WriteStep::Lots => "lots",
            WriteStep::Presale => "presale",
            WriteStep::Budgets => "budgets",
            WriteStep::Limits => "limits",
            WriteStep::Orders => "orders",
            WriteStep::Lines => "lines",
            WriteStep::Reservations => "reservations",
            WriteStep::Shipments => "shipments",
            WriteStep::Decision => "decision",
            WriteStep::Velocity => "velocity",
            WriteStep::WorkOrders => "work_orders",
            WriteStep::Outbox => "outbox",
            WriteStep::Commit => "commit",
        }
    }
}

/// Decides whether the order write path fails at a step (after the step's statements ran,
/// before the next). Production stores have none.
pub trait FaultInjector: Send + Sync + fmt::Debug {
    fn fail_at(&self, step: WriteStep) -> bool;
}

/// Counters of the order writer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed by the order writer.
    pub batches: u64,
    /// Orders decided in them (accepted, refused or replayed).
    pub orders: u64,
    /// Batches tried again after a conflict.
    pub retries: u64,
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend's name as the API reports it (`GET /readyz`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How a store behaves beyond its connection.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub clock: Arc<dyn Clock>,
    pub faults: Option<Arc<dyn FaultInjector>>,
    /// Most orders committed in one transaction.
    pub max_batch: usize,
    /// Order writer tasks (transactions in flight at once); 0 picks the backend's
    /// default: 1 for SQLite (one writer anyway), 2 for PostgreSQL.
    pub writers: usize,
    /// Connections (PostgreSQL; SQLite's readers).
    pub max_connections: u32,
    /// How long locations, location attributes and runtime lists read from the database
    /// are reused (milliseconds; 0 reads them every time). Changes through this store
    /// and, on PostgreSQL, through any store are seen at once; this bounds staleness
    /// only for changes nobody announced (`docs/storage.md`, "Reference data cache").
    pub reference_max_age_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            clock: Arc::new(SystemClock),
            faults: None,
            max_batch: 256,
            writers: 0,
            max_connections: 16,
            reference_max_age_ms: 1_000,
        }
    }
}

/// Opens a store from a URL: `sqlite://PATH` (created if missing) or
/// `postgres://…` / `postgresql://…`. Migrations run before it returns.
pub async fn open(url: &str, config: StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = sqlite::open(std::path::Path::new(path), config).await?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::open(url, config).await?;
        Ok(Arc::new(store))
    } else {
        Err(StoreError::Invalid(format!(
            "unsupported store URL `{url}` (sqlite://PATH or postgres://…)"
        )))
    }
}

/// The storage interface of the order, inventory and fulfillment services.
///
/// Every method but the background jobs (marked *all tenants*) takes the tenant and
/// never reads or changes another tenant's rows.
#[async_trait]
pub trait Store: Send + Sync {
    fn backend(&self) -> Backend;

    /// The store's clock ("now" for stamps, expiry, deadlines and windows).
    fn now(&self) -> Millis;

    /// What the order writer has done since the store was opened (for monitoring: the
    /// mean batch size shows how much group commit a load gets).
    fn writer_stats(&self) -> WriterStats;

    // ---- locations and stock -------------------------------------------------------

    /// Creates or replaces a location.
    async fn upsert_location(&self, tenant: &str, location: &Location) -> Result<(), StoreError>;
    async fn location(&self, tenant: &str, id: &str) -> Result<Option<Location>, StoreError>;
    async fn locations(&self, tenant: &str) -> Result<Vec<Location>, StoreError>;
    /// Replaces a location's merchant-maintained facts (a JSON object: `margin_pct`,
    /// `cost_coefficient`, `stock_turnover`, ruleset attributes). The location must exist.
    async fn set_location_attributes(
        &self,
        tenant: &str,
        location_id: &str,
        attributes: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), StoreError>;
    /// Every location's facts that were set, by location id.
    async fn location_attributes(&self, tenant: &str) -> Result<LocationAttributes, StoreError>;

    /// Goods in: `on_hand` (and the lot's) grows; a ledger row is written.
    async fn receive(&self, tenant: &str, receipt: &Receipt) -> Result<StockLevel, StoreError>;
    /// A count correction; it cannot take `on_hand` below `reserved`.
    async fn adjust(&self, tenant: &str, adjustment: &Adjustment)
        -> Result<StockLevel, StoreError>;
    async fn set_safety_stock(
        &self,
        tenant: &str,
        sku: &str,
        location_id: &str,
        safety_stock: i64,
    ) -> Result<StockLevel, StoreError>;
    async fn stock(
        &self,
        tenant: &str,
        sku: &str,
        location_id: &str,
    ) -> Result<Option<StockLevel>, StoreError>;
    /// A SKU's stock at every location (what routing chooses from).
    async fn stock_by_sku(&self, tenant: &str, sku: &str) -> Result<Vec<StockLevel>, StoreError>;
    /// Lots in FEFO order.
    async fn lots(
        &self,
        tenant: &str,
        sku: &str,
        location_id: &str,
    ) -> Result<Vec<Lot>, StoreError>;
    /// The movement ledger of a SKU at a location, oldest first.
    async fn movements(
        &self,
        tenant: &str,
        sku: &str,
        location_id: &str,
    ) -> Result<Vec<Movement>, StoreError>;

    // ---- reservations and presale --------------------------------------------------

    /// A standalone hold (same checks as an order's reservation).
    async fn hold(&self, tenant: &str, hold: &NewHold) -> Result<Reservation, PlaceError>;
    /// Releases a held reservation (compensation after a failure). Idempotent: `false`
    /// when it was not held any more.
    async fn release_hold(&self, tenant: &str, reservation_id: &str) -> Result<bool, StoreError>;
    async fn reservation(&self, tenant: &str, id: &str) -> Result<Option<Reservation>, StoreError>;
    /// *All tenants.* Releases held reservations whose expiry has passed: standalone
    /// holds are released, orders still `placed` are cancelled (reason
    /// `reservation_expired`), each with an outbox event.
    async fn sweep_expired_reservations(&self, limit: u32) -> Result<ExpirySweep, StoreError>;

    /// Locks units for a live-stream presale session (from free stock).
    async fn lock_presale(
        &self,
        tenant: &str,
        presale: &NewPresale,
    ) -> Result<PresaleSession, StoreError>;
    async fn presale_session(
        &self,
        tenant: &str,
        session_id: &str,
    ) -> Result<Option<PresaleSession>, StoreError>;
    /// Closes a session now: unsold locked units go back to free stock. Idempotent.
    async fn end_presale(
        &self,
        tenant: &str,
        session_id: &str,
    ) -> Result<PresaleSession, StoreError>;
    /// *All tenants.* Releases waves whose time has come and ends sessions past their end.
    async fn presale_tick(&self) -> Result<PresaleTick, StoreError>;

    // ---- orders --------------------------------------------------------------------

    /// Writes the whole order in one unit of work, or nothing (the error says why).
    async fn place_order(&self, order: NewOrder) -> Result<PlacedOrder, PlaceError>;
    async fn order(&self, tenant: &str, order_id: &str) -> Result<Option<OrderRecord>, StoreError>;
    /// The order placed under an idempotency key: `(order id, request hash)`.
    async fn order_by_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<(String, String)>, StoreError>;
    async fn list_orders(
        &self,
        tenant: &str,
        filter: &OrderFilter,
    ) -> Result<Vec<OrderSummary>, StoreError>;
    /// Cancels an order not yet shipped: held reservations and presale units are
    /// released, budgets and customer limits given back, an `order.cancelled` event
    /// written, and `work_orders` (the SOPs on `order.cancelled` that hold) opened.
    /// Cancelling a cancelled order changes nothing and opens nothing.
    async fn cancel_order(
        &self,
        tenant: &str,
        order_id: &str,
        reason: &str,
        work_orders: &[NewWorkOrder],
    ) -> Result<CancelOutcome, StoreError>;
    /// One step of placed → allocated → picking → shipped → delivered (moving to the
    /// state the order is already in is a no-op: nothing written, `work_orders` not
    /// opened). `allocated` clears the reservations' expiry; `shipped` confirms them
    /// (on_hand and reserved both drop, once). Writes an `order.<state>` event and
    /// opens `work_orders` (the SOPs on the step's event that hold), all in one unit.
    async fn advance_order(
        &self,
        tenant: &str,
        order_id: &str,
        to: OrderState,
        work_orders: &[NewWorkOrder],
    ) -> Result<Advanced, StoreError>;

    /// Orders whose SOPs on an event are still to be opened (the sweep cancelled them,
    /// without the rules), least recently changed first, across tenants.
    async fn pending_sops(&self, limit: usize) -> Result<Vec<PendingSops>, StoreError>;
    /// Opens `work_orders` for the pending `event` of `order_id` and clears it, in one
    /// unit of work. False, and nothing written, when that event is no longer pending
    /// (another process opened it first).
    async fn open_pending_sops(
        &self,
        tenant: &str,
        order_id: &str,
        event: &str,
        work_orders: &[NewWorkOrder],
    ) -> Result<bool, StoreError>;

    /// Releases an order held for review (`hold_reason`), so that it can be fulfilled;
    /// writes an `order.released` event naming `by`. Releasing an order that is not on
    /// hold changes nothing (`released: false`). Rejecting it is cancelling it.
    async fn release_order(
        &self,
        tenant: &str,
        order_id: &str,
        by: &str,
    ) -> Result<Released, StoreError>;

    /// Records goods handed back at any location of the tenant, and opens
    /// `work_orders` (the SOPs on `return.received` that hold) with it.
    async fn create_return(
        &self,
        tenant: &str,
        ret: &NewReturn,
        work_orders: &[NewWorkOrder],
    ) -> Result<ReturnRecord, StoreError>;
    /// Quality check: passed restocks the receiving location (`lot` needed where it is
    /// lot-tracked); failed restocks nothing.
    async fn record_return_qc(
        &self,
        tenant: &str,
        return_id: &str,
        passed: bool,
        lot: Option<&LotRef>,
    ) -> Result<ReturnRecord, StoreError>;
    async fn return_record(
        &self,
        tenant: &str,
        return_id: &str,
    ) -> Result<Option<ReturnRecord>, StoreError>;

    // ---- risk state ----------------------------------------------------------------

    /// Orders counted per key in the last `window_ms` (up to now), in the keys' order.
    async fn velocity_counts(
        &self,
        tenant: &str,
        keys: &[VelocityKey],
        window_ms: i64,
    ) -> Result<Vec<i64>, StoreError>;
    /// Distinct customers per key in the last `window_ms` (accounts sharing a device,
    /// a phone, an address), in the keys' order.
    async fn velocity_customers(
        &self,
        tenant: &str,
        keys: &[VelocityKey],
        window_ms: i64,
    ) -> Result<Vec<i64>, StoreError>;
    /// Counts an event for each key now (outside an order), for a customer if known.
    async fn record_velocity(
        &self,
        tenant: &str,
        keys: &[VelocityKey],
        customer_id: Option<&str>,
    ) -> Result<(), StoreError>;
    /// A promotion budget: (used, cap), if it was ever used.
    async fn budget_usage(&self, tenant: &str, key: &str)
        -> Result<Option<(i64, i64)>, StoreError>;
    /// A customer's use of a limit: (used, max), if it was ever used.
    async fn limit_usage(
        &self,
        tenant: &str,
        key: &str,
        customer_id: &str,
    ) -> Result<Option<(i64, i64)>, StoreError>;
    /// Stock of the order's SKUs at every location, its velocity counts and its budget
    /// and limit usage (keys never used are absent), read in one round on one
    /// connection: the order pipeline's per-order reads. SQLite answers concurrent
    /// callers together (`read_batch.rs`); each gets what it would get alone.
    async fn order_reads(
        &self,
        tenant: &str,
        reads: &OrderReads,
    ) -> Result<OrderReadings, StoreError>;
    /// *All tenants.* Drops velocity events older than `before`.
    async fn prune_velocity(&self, before: Millis) -> Result<u64, StoreError>;

    /// Replaces a list's members. With `expected_version`, fails if the list moved on.
    async fn replace_list(
        &self,
        tenant: &str,
        name: &str,
        members: &[String],
        expected_version: Option<i64>,
    ) -> Result<RuntimeList, StoreError>;
    /// Adds and removes members.
    async fn patch_list(
        &self,
        tenant: &str,
        name: &str,
        add: &[String],
        remove: &[String],
        expected_version: Option<i64>,
    ) -> Result<RuntimeList, StoreError>;
    /// A list as last changed; shared, since every order reads it (from the reference
    /// cache, see `store/reference.rs`).
    async fn list(&self, tenant: &str, name: &str) -> Result<Option<Arc<RuntimeList>>, StoreError>;
    async fn list_names(&self, tenant: &str) -> Result<Vec<String>, StoreError>;

    // ---- SOP work orders -----------------------------------------------------------

    async fn create_work_order(
        &self,
        tenant: &str,
        work_order: &NewWorkOrder,
    ) -> Result<WorkOrder, StoreError>;
    async fn work_order(&self, tenant: &str, id: &str) -> Result<Option<WorkOrder>, StoreError>;
    /// Work orders of one order, or else in one state (default open), by id.
    async fn list_work_orders(
        &self,
        tenant: &str,
        filter: &WorkOrderFilter,
    ) -> Result<Vec<WorkOrder>, StoreError>;
    /// Completes a step; evidence is required when the step names a kind. The last step
    /// closes the work order (`sop.completed` event).
    async fn complete_step(
        &self,
        tenant: &str,
        work_order_id: &str,
        step_no: i64,
        completion: &StepCompletion,
    ) -> Result<WorkOrder, StoreError>;
    /// *All tenants.* Marks pending steps past their deadline escalated, each with an
    /// `sop.step_escalated` event.
    async fn escalate_overdue_steps(&self, limit: u32) -> Result<Vec<EscalatedStep>, StoreError>;

    // ---- outbox --------------------------------------------------------------------

    /// *All tenants* (the relay). Unpublished events in insertion order.
    async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError>;
    /// *All tenants* (the relay). Marks events published (after the broker's ack).
    async fn mark_published(&self, event_ids: &[String]) -> Result<u64, StoreError>;
    /// A tenant's events, optionally of one aggregate, oldest first.
    async fn outbox_events(
        &self,
        tenant: &str,
        aggregate: Option<(&str, &str)>,
    ) -> Result<Vec<OutboxEvent>, StoreError>;

    // ---- tenants and API keys ------------------------------------------------------

    /// Creates a merchant; `AlreadyExists` if the id is taken.
    async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError>;
    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError>;
    /// Keeps a key of an existing tenant.
    async fn create_api_key(&self, tenant: &str, key: &NewApiKey) -> Result<ApiKey, StoreError>;
    /// *All tenants* (authentication): the key with this hash, revoked or not.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;
    /// A tenant's keys, oldest first.
    async fn api_keys(&self, tenant: &str) -> Result<Vec<ApiKey>, StoreError>;
    /// Revokes a key; `false` when it was revoked already.
    async fn revoke_api_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;

    // ---- ruleset versions ----------------------------------------------------------

    /// Keeps a version (saving the same content hash again changes nothing).
    async fn save_ruleset_version(
        &self,
        tenant: &str,
        version: &NewRulesetVersion,
    ) -> Result<RulesetVersion, StoreError>;
    /// Makes a saved version the active one of its ruleset.
    async fn activate_ruleset(
        &self,
        tenant: &str,
        name: &str,
        content_hash: &str,
    ) -> Result<RulesetVersion, StoreError>;
    /// Re-activates the version that was active before the current one.
    async fn rollback_ruleset(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<RulesetVersion, StoreError>;
    async fn active_ruleset(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<RulesetVersion>, StoreError>;
    /// *All tenants* (start-up): every active ruleset version, by tenant.
    async fn all_active_rulesets(&self) -> Result<Vec<(String, RulesetVersion)>, StoreError>;
    /// Names of a tenant's rulesets that have an active version.
    async fn ruleset_names(&self, tenant: &str) -> Result<Vec<String>, StoreError>;
    /// Versions of a ruleset, oldest first.
    async fn ruleset_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<RulesetVersion>, StoreError>;
}
