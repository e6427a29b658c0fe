//! Typed errors: every refusal says what and where, so the order API can answer
//! "which SKU at which location", "which budget" without parsing text.

use super::types::{Millis, OrderState};

/// A failure of a store operation other than placing an order.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{kind} `{id}` not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} `{id}` already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("order `{order_id}` cannot go from {from} to {to}")]
    IllegalTransition {
        order_id: String,
        from: OrderState,
        to: OrderState,
    },
    #[error("order `{order_id}` is on hold ({reason}): release it before it moves to `{to}`")]
    OnHold {
        order_id: String,
        reason: String,
        to: OrderState,
    },
    #[error("only {available} of {requested} units of `{sku}` are free at `{location_id}`")]
    InsufficientStock {
        sku: String,
        location_id: String,
        requested: i64,
        available: i64,
    },
    #[error("`{sku}` at `{location_id}` is lot-tracked: a lot is required")]
    LotRequired { sku: String, location_id: String },
    #[error("`{sku}` at `{location_id}` has stock outside lots: it cannot start lot tracking")]
    NotLotTracked { sku: String, location_id: String },
    #[error("return of line {line_no} of order `{order_id}`: {requested} asked, {returnable} returnable")]
    ReturnExceedsShipped {
        order_id: String,
        line_no: i64,
        requested: i64,
        returnable: i64,
    },
    #[error("order `{order_id}` is {state}: returns need a shipped or delivered order")]
    NotReturnable { order_id: String, state: OrderState },
    #[error("return `{return_id}` already passed quality check ({state})")]
    QcAlreadyRecorded { return_id: String, state: String },
    #[error("step {step_no} of work order `{work_order_id}` needs evidence ({evidence})")]
    EvidenceRequired {
        work_order_id: String,
        step_no: i64,
        evidence: String,
    },
    #[error("step {step_no} of work order `{work_order_id}` is already done")]
    StepAlreadyDone { work_order_id: String, step_no: i64 },
    #[error("list `{name}` is at version {actual}, not {expected}")]
    VersionConflict {
        name: String,
        expected: i64,
        actual: i64,
    },
    #[error("ruleset `{name}` has no earlier activation to roll back to")]
    NothingToRollBack { name: String },
    #[error("presale session `{session_id}` is closed")]
    PresaleClosed { session_id: String },
    #[error("injected fault at {0}")]
    Injected(&'static str),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error("the store's order writer has stopped")]
    Closed,
    #[error("the store's read runtime stopped before answering")]
    ReadAborted,
    #[error("could not start the store's {what} thread: {source}")]
    Thread {
        what: &'static str,
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn not_found(kind: &'static str, id: &str) -> Self {
        StoreError::NotFound {
            kind,
            id: id.to_owned(),
        }
    }
}

/// Why an order was not placed. Whatever the reason, nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(
        "out of stock: {requested} of `{sku}` asked at `{location_id}`, {available} available"
    )]
    OutOfStock {
        sku: String,
        location_id: String,
        requested: i64,
        available: i64,
    },
    #[error("no lots of `{sku}` at `{location_id}` expiring at or after {not_before}: {requested} asked, {available} available")]
    LotsUnavailable {
        sku: String,
        location_id: String,
        not_before: Millis,
        requested: i64,
        available: i64,
    },
    #[error("presale session `{session_id}`: {requested} asked, {available} released and unsold")]
    PresaleUnavailable {
        session_id: String,
        requested: i64,
        available: i64,
    },
    #[error("presale session `{session_id}` {reason}")]
    PresaleMismatch { session_id: String, reason: String },
    #[error("budget `{key}` exhausted: {used} used, {amount} asked, cap {cap}")]
    BudgetExhausted {
        key: String,
        used: i64,
        amount: i64,
        cap: i64,
    },
    #[error(
        "limit `{key}` reached for customer `{customer_id}`: {used} used, {count} asked, max {max}"
    )]
    LimitReached {
        key: String,
        customer_id: String,
        used: i64,
        count: i64,
        max: i64,
    },
    #[error("idempotency key `{key}` was used for another request (order `{order_id}`)")]
    IdempotencyConflict { key: String, order_id: String },
    #[error("order `{order_id}` already exists")]
    DuplicateOrder { order_id: String },
    #[error("invalid order: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PlaceError {
    fn from(e: sqlx::Error) -> Self {
        PlaceError::Store(StoreError::Db(e))
    }
}
