//! The store over SQL, written once and compiled once per backend.
//!
//! `sqlite.rs` and `postgres.rs` each include this file as their `shared` module after
//! defining `Db` (the sqlx database), `BACKEND`, `begin_write`, `retryable` and the
//! `for_update!` macro. Generic sqlx code would need a trait bound per column type per
//! function; the SQL itself is the same on both (both accept `$n` placeholders,
//! `ON CONFLICT`, `RETURNING`, row values and partial indexes), so the one difference —
//! row locks, which SQLite does not need because its one writer connection begins every
//! write transaction with `BEGIN IMMEDIATE` — is a macro spliced into the SQL text.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{Pool, Row as _};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{begin_write, ph, retryable, Db, BACKEND};
use crate::store::placement::{
    Accepted, BudgetRow, KnownOrder, LimitRow, LotRow, Outcome, PlannedReservation, PresaleRow,
    State, StockKey, StockRow,
};
use crate::store::reference::{ReferenceCache, REFERENCE_CHANNEL};
use crate::store::{
    Adjustment, Advanced, ApiKey, Backend, BudgetConsumption, CancelOutcome, Capabilities,
    DecisionRecord, EscalatedStep, ExpirySweep, Location, LocationKind, Lot, LotPick, LotRef,
    Millis, Movement, MovementKind, NewApiKey, NewEvent, NewHold, NewOrder, NewPresale,
    NewReservation, NewReturn, NewRulesetVersion, NewWorkOrder, OrderFilter, OrderLine,
    OrderReadings, OrderReads, OrderRecord, OrderState, OrderSummary, OutboxEvent, PendingSops,
    PlaceError, PlacedOrder, PresaleSession, PresaleState, PresaleTick, Receipt, Released,
    Reservation, ReservationStatus, ReturnRecord, ReturnState, RulesetVersion, RuntimeList,
    Shipment, ShipmentLine, StepCompletion, StepState, StockLevel, Store, StoreConfig, StoreError,
    Tenant, Usages, VelocityKey, Wave, WorkOrder, WorkOrderFilter, WorkOrderState, WorkOrderStep,
    WriteStep, WriterStats, API_SCOPES,
};

#[allow(clippy::duplicate_mod)] // compiled once per backend, as this file is
#[path = "read_batch.rs"]
mod read_batch;

pub(super) type Conn = <Db as sqlx::Database>::Connection;
type Row = <Db as sqlx::Database>::Row;
type Tx = sqlx::Transaction<'static, Db>;
pub(super) type Query<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

/// Largest number of bind parameters in one statement (both backends allow more).
pub(super) const MAX_BINDS: usize = 16_000;
/// Statements with up to this many rows (or keys) are prepared once per connection and
/// cached; larger ones, whose text varies with every batch size, are not.
pub(super) const PERSISTENT_ROWS: usize = 16;
/// Scheduler turns a writer waits for more orders after the first (no timer: an idle
/// store answers a lone order without delay).
const GATHER_YIELDS: usize = 4;
/// Attempts of a batch that met a lock conflict, deadlock or race on a new key.
const BATCH_ATTEMPTS: usize = 5;

/// One bind value of a dynamically built statement.
#[derive(Debug, Clone)]
pub(super) enum V {
    I(i64),
    OI(Option<i64>),
    S(String),
    OS(Option<String>),
    B(bool),
}

fn s(v: &str) -> V {
    V::S(v.to_owned())
}

pub(super) fn bind_all(mut q: Query<'_>, args: Vec<V>) -> Query<'_> {
    for a in args {
        q = match a {
            V::I(x) => q.bind(x),
            V::OI(x) => q.bind(x),
            V::S(x) => q.bind(x),
            V::OS(x) => q.bind(x),
            V::B(x) => q.bind(x),
        };
    }
    q
}

/// `n` placeholders from the `first`-th, comma-separated (an `IN (…)` list).
fn in_list(first: usize, n: usize) -> String {
    (first..first + n).map(ph).collect::<Vec<_>>().join(", ")
}

/// `($first, …, $first+n-1)` in the backend's placeholder style (see `ph`).
pub(super) fn group(first: usize, n: usize) -> String {
    let inner: Vec<String> = (first..first + n).map(ph).collect();
    format!("({})", inner.join(", "))
}

/// `head` (`INSERT INTO t (cols)`) for many rows, then `tail` (`ON CONFLICT …`), in the
/// backend's way (`super::insert_rows`). Returns the rows inserted or updated.
async fn insert_rows(
    c: &mut Conn,
    head: &str,
    tail: &str,
    rows: Vec<Vec<V>>,
) -> Result<u64, sqlx::Error> {
    super::insert_rows(c, head, tail, rows).await
}

/// A guarded update of many rows in one statement, in the backend's way
/// (`super::update_rows`): `UPDATE table SET set FROM (the rows) AS v WHERE filter`,
/// with the rows' columns named by `names` (`v.<name>`) and bound after `lead` (which
/// `set` may use as `$1…`). Returns the rows changed, so the caller can tell a guard
/// that refused.
async fn update_from_values(
    c: &mut Conn,
    table: &str,
    names: &[&str],
    set: &str,
    filter: &str,
    lead: Vec<V>,
    rows: Vec<Vec<V>>,
) -> Result<u64, sqlx::Error> {
    super::update_rows(c, table, names, set, filter, lead, rows).await
}

/// `head VALUES (…), (…) tail` statements for `rows` (anonymous placeholders), each
/// under the bind limit: (text, binds, rows in it). `head` is everything before
/// `VALUES`. (SQLite's way; PostgreSQL binds arrays.)
fn values_statements(head: &str, tail: &str, rows: Vec<Vec<V>>) -> Vec<(String, Vec<V>, usize)> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Vec::new();
    };
    let per = (MAX_BINDS / width.max(1)).max(1);
    let mut out = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<V>> = rows.by_ref().take(per).collect();
        let n = chunk.len();
        let groups: Vec<String> = (0..n).map(|i| group(i * width + 1, width)).collect();
        let sql = format!("{head} VALUES {} {tail}", groups.join(", "));
        out.push((sql, chunk.into_iter().flatten().collect(), n));
    }
    out
}

/// `INSERT INTO t (cols) VALUES (…), (…) [tail]`, in chunks that stay under the bind
/// limit ([`values_statements`]).
#[allow(dead_code)] // compiled for both backends, called by one
pub(super) async fn insert_values(
    c: &mut Conn,
    head: &str,
    tail: &str,
    rows: Vec<Vec<V>>,
) -> Result<u64, sqlx::Error> {
    let mut affected = 0;
    for (sql, args, n) in values_statements(head, tail, rows) {
        affected += bind_all(sqlx::query(&sql), args)
            .persistent(n <= PERSISTENT_ROWS)
            .execute(&mut *c)
            .await?
            .rows_affected();
    }
    Ok(affected)
}

/// [`update_from_values`] with the rows as a `VALUES` list (SQLite's way).
#[allow(dead_code)] // compiled for both backends, called by one
pub(super) async fn update_values(
    c: &mut Conn,
    table: &str,
    names: &[&str],
    set: &str,
    filter: &str,
    lead: Vec<V>,
    rows: Vec<Vec<V>>,
) -> Result<u64, sqlx::Error> {
    let width = names.len().max(1);
    let first = lead.len() + 1;
    let per = ((MAX_BINDS - lead.len()) / width).max(1);
    // VALUES names its columns column1, column2 … on both backends.
    let columns: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("column{} AS {n}", i + 1))
        .collect();
    let mut affected = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<V>> = rows.by_ref().take(per).collect();
        let n = chunk.len();
        let groups: Vec<String> = (0..n).map(|i| group(first + i * width, width)).collect();
        // `set` names the lead values `$1…`; they come first in the text as in the binds.
        let mut set = set.to_owned();
        for i in 1..first {
            set = set.replace(&format!("${i}"), &ph(i));
        }
        let sql = format!(
            "UPDATE {table} SET {set} FROM (SELECT {} FROM (VALUES {}) AS x) AS v WHERE {filter}",
            columns.join(", "),
            groups.join(", "),
        );
        let args: Vec<V> = lead
            .iter()
            .cloned()
            .chain(chunk.into_iter().flatten())
            .collect();
        affected += bind_all(sqlx::query(&sql), args)
            .persistent(n <= PERSISTENT_ROWS)
            .execute(&mut *c)
            .await?
            .rows_affected();
    }
    Ok(affected)
}

fn parse<E>(text: &str, what: &str, f: fn(&str) -> Option<E>) -> Result<E, StoreError> {
    f(text).ok_or_else(|| StoreError::Corrupt(format!("unknown {what} `{text}`")))
}

fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

fn json_value(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

fn event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Writes one outbox row in the caller's transaction and returns its id.
async fn add_event(
    c: &mut Conn,
    tenant: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    event_type: &str,
    payload: &serde_json::Value,
    now: Millis,
) -> Result<String, sqlx::Error> {
    let id = event_id();
    sqlx::query(
        "INSERT INTO outbox (id, tenant, aggregate_type, aggregate_id, type, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(tenant)
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(event_type)
    .bind(json_text(payload))
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(id)
}

// ---- row decoding ----------------------------------------------------------------------

fn location_row(row: &Row) -> Result<Location, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(Location {
        id: row.try_get("id")?,
        kind: parse(&kind, "location kind", LocationKind::parse)?,
        name: row.try_get("name")?,
        lat: row.try_get("lat")?,
        lon: row.try_get("lon")?,
        capabilities: Capabilities {
            ships: row.try_get("ships")?,
            pickup: row.try_get("pickup")?,
            cold_chain: row.try_get("cold_chain")?,
            hazmat_certified: row.try_get("hazmat_certified")?,
        },
    })
}

const STOCK_COLS: &str = "sku, location_id, on_hand, reserved, safety_stock, lot_tracked";

fn stock_row(row: &Row) -> Result<StockLevel, StoreError> {
    Ok(StockLevel {
        sku: row.try_get("sku")?,
        location_id: row.try_get("location_id")?,
        on_hand: row.try_get("on_hand")?,
        reserved: row.try_get("reserved")?,
        safety_stock: row.try_get("safety_stock")?,
        lot_tracked: row.try_get("lot_tracked")?,
    })
}

const RESERVATION_COLS: &str =
    "id, order_id, sku, location_id, qty, status, presale_session_id, expires_at, created_at";

fn reservation_row(row: &Row) -> Result<Reservation, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(Reservation {
        id: row.try_get("id")?,
        order_id: row.try_get("order_id")?,
        sku: row.try_get("sku")?,
        location_id: row.try_get("location_id")?,
        qty: row.try_get("qty")?,
        status: parse(&status, "reservation status", ReservationStatus::parse)?,
        presale_session_id: row.try_get("presale_session_id")?,
        expires_at: row.try_get("expires_at")?,
        lots: Vec::new(),
        created_at: row.try_get("created_at")?,
    })
}

const ORDER_COLS: &str = "id, customer_id, channel, currency, subtotal_minor, discount_minor, \
     total_minor, state, cancel_reason, hold_reason, idempotency_key, created_at, updated_at";

fn order_row(row: &Row) -> Result<OrderSummary, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(OrderSummary {
        order_id: row.try_get("id")?,
        customer_id: row.try_get("customer_id")?,
        channel: row.try_get("channel")?,
        currency: row.try_get("currency")?,
        subtotal_minor: row.try_get("subtotal_minor")?,
        discount_minor: row.try_get("discount_minor")?,
        total_minor: row.try_get("total_minor")?,
        state: parse(&state, "order state", OrderState::parse)?,
        cancel_reason: row.try_get("cancel_reason")?,
        hold_reason: row.try_get("hold_reason")?,
        idempotency_key: row.try_get("idempotency_key")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const OUTBOX_COLS: &str =
    "seq, id, tenant, aggregate_type, aggregate_id, type, payload, created_at, published_at";

fn outbox_row(row: &Row) -> Result<OutboxEvent, StoreError> {
    Ok(OutboxEvent {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        event_type: row.try_get("type")?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
        published_at: row.try_get("published_at")?,
    })
}

fn ruleset_row(row: &Row) -> Result<RulesetVersion, StoreError> {
    let files: String = row.try_get("files")?;
    Ok(RulesetVersion {
        name: row.try_get("name")?,
        content_hash: row.try_get("content_hash")?,
        files: json_value(&files)?,
        created_at: row.try_get("created_at")?,
        active: row.try_get("active")?,
    })
}

// ---- reads shared by several operations --------------------------------------------------

async fn fetch_stock(
    c: &mut Conn,
    tenant: &str,
    sku: &str,
    location_id: &str,
) -> Result<Option<StockLevel>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT sku, location_id, on_hand, reserved, safety_stock, lot_tracked FROM stock ",
        "WHERE tenant = $1 AND sku = $2 AND location_id = $3",
        for_update!()
    ))
    .bind(tenant)
    .bind(sku)
    .bind(location_id)
    .fetch_optional(&mut *c)
    .await?;
    row.as_ref().map(stock_row).transpose()
}

async fn location_exists(c: &mut Conn, tenant: &str, id: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT 1 FROM locations WHERE tenant = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(row.is_some())
}

/// Reservations matching `filter` (a condition on `r`, binds from `$2`), with their lots.
async fn fetch_reservations(
    c: &mut Conn,
    tenant: &str,
    filter: &str,
    args: Vec<V>,
) -> Result<Vec<Reservation>, StoreError> {
    let sql = format!(
        "SELECT {RESERVATION_COLS} FROM reservations r WHERE r.tenant = $1 AND {filter} \
         ORDER BY r.id"
    );
    let rows = bind_all(sqlx::query(&sql).bind(tenant), args.clone())
        .fetch_all(&mut *c)
        .await?;
    let mut out = rows
        .iter()
        .map(reservation_row)
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT rl.reservation_id, rl.lot_id, rl.expires_at, rl.qty FROM reservation_lots rl \
         JOIN reservations r ON r.tenant = rl.tenant AND r.id = rl.reservation_id \
         WHERE r.tenant = $1 AND {filter} ORDER BY rl.expires_at, rl.lot_id"
    );
    let rows = bind_all(sqlx::query(&sql).bind(tenant), args)
        .fetch_all(&mut *c)
        .await?;
    let mut picks: BTreeMap<String, Vec<LotPick>> = BTreeMap::new();
    for row in &rows {
        let rid: String = row.try_get("reservation_id")?;
        picks.entry(rid).or_default().push(LotPick {
            lot_id: row.try_get("lot_id")?,
            expires_at: row.try_get("expires_at")?,
            qty: row.try_get("qty")?,
        });
    }
    for r in &mut out {
        if let Some(p) = picks.remove(&r.id) {
            r.lots = p;
        }
    }
    Ok(out)
}

async fn fetch_work_orders(
    c: &mut Conn,
    tenant: &str,
    filter: &str,
    arg: &str,
) -> Result<Vec<WorkOrder>, StoreError> {
    let sql = format!(
        "SELECT id, order_id, location_id, sop_name, state, created_at FROM work_orders \
         WHERE tenant = $1 AND {filter} = $2 ORDER BY id"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(arg)
        .fetch_all(&mut *c)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let state: String = row.try_get("state")?;
        out.push(WorkOrder {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            location_id: row.try_get("location_id")?,
            sop_name: row.try_get("sop_name")?,
            state: parse(&state, "work order state", WorkOrderState::parse)?,
            steps: Vec::new(),
            created_at: row.try_get("created_at")?,
        });
    }
    if out.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT s.work_order_id, s.step_no, s.name, s.role, s.evidence_kind, s.deadline_at, \
         s.state, s.completed_at, s.completed_by, s.evidence_ref, s.escalated_at \
         FROM work_order_steps s JOIN work_orders w \
         ON w.tenant = s.tenant AND w.id = s.work_order_id \
         WHERE w.tenant = $1 AND w.{filter} = $2 ORDER BY s.work_order_id, s.step_no"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(arg)
        .fetch_all(&mut *c)
        .await?;
    let mut steps: BTreeMap<String, Vec<WorkOrderStep>> = BTreeMap::new();
    for row in &rows {
        let state: String = row.try_get("state")?;
        let wid: String = row.try_get("work_order_id")?;
        steps.entry(wid).or_default().push(WorkOrderStep {
            step_no: row.try_get("step_no")?,
            name: row.try_get("name")?,
            role: row.try_get("role")?,
            evidence: row.try_get("evidence_kind")?,
            deadline_at: row.try_get("deadline_at")?,
            state: parse(&state, "step state", StepState::parse)?,
            completed_at: row.try_get("completed_at")?,
            completed_by: row.try_get("completed_by")?,
            evidence_ref: row.try_get("evidence_ref")?,
            escalated_at: row.try_get("escalated_at")?,
        });
    }
    for w in &mut out {
        if let Some(s) = steps.remove(&w.id) {
            w.steps = s;
        }
    }
    Ok(out)
}

async fn fetch_presale(
    c: &mut Conn,
    tenant: &str,
    session_id: &str,
) -> Result<Option<PresaleSession>, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT id, sku, location_id, locked, released, sold, ends_at, state \
         FROM presale_sessions WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(session_id)
    .fetch_optional(&mut *c)
    .await?
    else {
        return Ok(None);
    };
    let state: String = row.try_get("state")?;
    let waves = sqlx::query(
        "SELECT wave_no, release_at, qty, released FROM presale_waves \
         WHERE tenant = $1 AND session_id = $2 ORDER BY wave_no",
    )
    .bind(tenant)
    .bind(session_id)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|w| {
        Ok(Wave {
            wave_no: w.try_get("wave_no")?,
            release_at: w.try_get("release_at")?,
            qty: w.try_get("qty")?,
            released: w.try_get("released")?,
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(PresaleSession {
        session_id: row.try_get("id")?,
        sku: row.try_get("sku")?,
        location_id: row.try_get("location_id")?,
        locked: row.try_get("locked")?,
        released: row.try_get("released")?,
        sold: row.try_get("sold")?,
        ends_at: row.try_get("ends_at")?,
        state: parse(&state, "presale state", PresaleState::parse)?,
        waves,
    }))
}

async fn fetch_return(
    c: &mut Conn,
    tenant: &str,
    return_id: &str,
) -> Result<Option<ReturnRecord>, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT id, order_id, receiving_location_id, state, created_at, qc_at FROM returns \
         WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(return_id)
    .fetch_optional(&mut *c)
    .await?
    else {
        return Ok(None);
    };
    let lines = sqlx::query(
        "SELECT line_no, sku, qty FROM return_lines WHERE tenant = $1 AND return_id = $2 \
         ORDER BY line_no",
    )
    .bind(tenant)
    .bind(return_id)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|l| Ok((l.try_get("line_no")?, l.try_get("sku")?, l.try_get("qty")?)))
    .collect::<Result<Vec<_>, StoreError>>()?;
    let state: String = row.try_get("state")?;
    Ok(Some(ReturnRecord {
        return_id: row.try_get("id")?,
        order_id: row.try_get("order_id")?,
        receiving_location_id: row.try_get("receiving_location_id")?,
        state: parse(&state, "return state", ReturnState::parse)?,
        lines,
        created_at: row.try_get("created_at")?,
        qc_at: row.try_get("qc_at")?,
    }))
}

/// The version is read before the members, and the order matters to the reference cache's
/// renewal by version (`Store::list`): a change landing between the two reads yields the
/// older version with the newer members, which the next renewal sees as outdated and reads
/// again; the other order would label older members with the newer version for good.
async fn fetch_list(
    c: &mut Conn,
    tenant: &str,
    name: &str,
) -> Result<Option<RuntimeList>, StoreError> {
    let Some(row) =
        sqlx::query("SELECT version FROM runtime_lists WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .fetch_optional(&mut *c)
            .await?
    else {
        return Ok(None);
    };
    let members = sqlx::query(
        "SELECT member FROM runtime_list_members WHERE tenant = $1 AND name = $2 ORDER BY member",
    )
    .bind(tenant)
    .bind(name)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|r| r.try_get("member"))
    .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(RuntimeList {
        name: name.to_owned(),
        version: row.try_get("version")?,
        members,
    }))
}

// ---- stock changes shared by several operations ----------------------------------------

/// Adds units to a location's stock (a receipt or a restock) with its ledger row.
#[allow(clippy::too_many_arguments)]
async fn add_stock(
    c: &mut Conn,
    tenant: &str,
    sku: &str,
    location_id: &str,
    qty: i64,
    lot: Option<&LotRef>,
    kind: MovementKind,
    reference: &str,
    now: Millis,
) -> Result<StockLevel, StoreError> {
    if !location_exists(c, tenant, location_id).await? {
        return Err(StoreError::not_found("location", location_id));
    }
    let current = fetch_stock(c, tenant, sku, location_id).await?;
    match (&current, lot) {
        (Some(s), None) if s.lot_tracked => {
            return Err(StoreError::LotRequired {
                sku: sku.to_owned(),
                location_id: location_id.to_owned(),
            })
        }
        (Some(s), Some(_)) if !s.lot_tracked && s.on_hand > 0 => {
            return Err(StoreError::NotLotTracked {
                sku: sku.to_owned(),
                location_id: location_id.to_owned(),
            })
        }
        _ => {}
    }
    sqlx::query(
        "INSERT INTO stock (tenant, sku, location_id, on_hand, reserved, safety_stock, \
         lot_tracked, updated_at) VALUES ($1, $2, $3, $4, 0, 0, $5, $6) \
         ON CONFLICT (tenant, sku, location_id) DO UPDATE SET \
         on_hand = stock.on_hand + excluded.on_hand, \
         lot_tracked = stock.lot_tracked OR excluded.lot_tracked, updated_at = excluded.updated_at",
    )
    .bind(tenant)
    .bind(sku)
    .bind(location_id)
    .bind(qty)
    .bind(lot.is_some())
    .bind(now)
    .execute(&mut *c)
    .await?;
    if let Some(lot) = lot {
        // An existing lot keeps the expiry it was first received with.
        sqlx::query(
            "INSERT INTO lots (tenant, sku, location_id, lot_id, expires_at, on_hand, reserved) \
             VALUES ($1, $2, $3, $4, $5, $6, 0) \
             ON CONFLICT (tenant, sku, location_id, lot_id) DO UPDATE SET \
             on_hand = lots.on_hand + excluded.on_hand",
        )
        .bind(tenant)
        .bind(sku)
        .bind(location_id)
        .bind(&lot.lot_id)
        .bind(lot.expires_at)
        .bind(qty)
        .execute(&mut *c)
        .await?;
    }
    add_movement(
        c,
        tenant,
        sku,
        location_id,
        lot.map(|l| l.lot_id.as_str()),
        kind,
        qty,
        reference,
        "",
        now,
    )
    .await?;
    fetch_stock(c, tenant, sku, location_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt("stock row vanished".into()))
}

#[allow(clippy::too_many_arguments)]
async fn add_movement(
    c: &mut Conn,
    tenant: &str,
    sku: &str,
    location_id: &str,
    lot_id: Option<&str>,
    kind: MovementKind,
    delta: i64,
    reference: &str,
    reason: &str,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO stock_movements (tenant, sku, location_id, lot_id, kind, on_hand_delta, \
         reference, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant)
    .bind(sku)
    .bind(location_id)
    .bind(lot_id)
    .bind(kind.as_str())
    .bind(delta)
    .bind(reference)
    .bind(reason)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Releases held reservations: their units go back to free stock (or to their presale
/// session while it is open). A reservation no longer held is skipped, so releasing
/// twice releases once.
async fn release_reservations(
    c: &mut Conn,
    tenant: &str,
    reservations: &[Reservation],
    to: ReservationStatus,
    now: Millis,
) -> Result<Vec<String>, StoreError> {
    let mut released = Vec::new();
    let mut sorted: Vec<&Reservation> = reservations.iter().collect();
    // Presale rows before stock rows before lots, as every writer locks them.
    sorted.sort_by(|a, b| {
        (
            a.presale_session_id.is_none(),
            &a.sku,
            &a.location_id,
            &a.id,
        )
            .cmp(&(
                b.presale_session_id.is_none(),
                &b.sku,
                &b.location_id,
                &b.id,
            ))
    });
    for r in sorted {
        let done = sqlx::query(
            "UPDATE reservations SET status = $3, updated_at = $4 \
             WHERE tenant = $1 AND id = $2 AND status = 'held'",
        )
        .bind(tenant)
        .bind(&r.id)
        .bind(to.as_str())
        .bind(now)
        .execute(&mut *c)
        .await?;
        if done.rows_affected() != 1 {
            continue;
        }
        released.push(r.id.clone());
        if let Some(session) = &r.presale_session_id {
            let back = sqlx::query(
                "UPDATE presale_sessions SET sold = sold - $3, updated_at = $4 \
                 WHERE tenant = $1 AND id = $2 AND state = 'open'",
            )
            .bind(tenant)
            .bind(session)
            .bind(r.qty)
            .bind(now)
            .execute(&mut *c)
            .await?;
            if back.rows_affected() == 1 {
                continue;
            }
            // The session has ended: its unsold units already went back to stock, so
            // this one follows them.
            sqlx::query(
                "UPDATE presale_sessions SET sold = sold - $3, released = released - $3, \
                 locked = locked - $3, updated_at = $4 WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(session)
            .bind(r.qty)
            .bind(now)
            .execute(&mut *c)
            .await?;
        }
        sqlx::query(
            "UPDATE stock SET reserved = reserved - $4, updated_at = $5 \
             WHERE tenant = $1 AND sku = $2 AND location_id = $3",
        )
        .bind(tenant)
        .bind(&r.sku)
        .bind(&r.location_id)
        .bind(r.qty)
        .bind(now)
        .execute(&mut *c)
        .await?;
        for pick in &r.lots {
            sqlx::query(
                "UPDATE lots SET reserved = reserved - $5 \
                 WHERE tenant = $1 AND sku = $2 AND location_id = $3 AND lot_id = $4",
            )
            .bind(tenant)
            .bind(&r.sku)
            .bind(&r.location_id)
            .bind(&pick.lot_id)
            .bind(pick.qty)
            .execute(&mut *c)
            .await?;
        }
    }
    Ok(released)
}

/// Cancels an order known to be cancellable (its row is locked by the caller).
async fn cancel_in_tx(
    c: &mut Conn,
    tenant: &str,
    order_id: &str,
    reason: &str,
    status: ReservationStatus,
    now: Millis,
) -> Result<CancelOutcome, StoreError> {
    sqlx::query(
        "UPDATE orders SET state = 'cancelled', cancel_reason = $3, updated_at = $4 \
         WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(order_id)
    .bind(reason)
    .bind(now)
    .execute(&mut *c)
    .await?;
    let held = fetch_reservations(
        c,
        tenant,
        "r.order_id = $2 AND r.status = 'held'",
        vec![s(order_id)],
    )
    .await?;
    let released = release_reservations(c, tenant, &held, status, now).await?;

    // The promotion was not used after all: its budget and the customer's limit come
    // back. Velocity counts stay: an attempt is a risk signal whatever became of it.
    let uses = sqlx::query(
        "SELECT key, amount FROM order_budget_uses \
         WHERE tenant = $1 AND order_id = $2 AND NOT compensated ORDER BY key",
    )
    .bind(tenant)
    .bind(order_id)
    .fetch_all(&mut *c)
    .await?;
    for u in &uses {
        let key: String = u.try_get("key")?;
        let amount: i64 = u.try_get("amount")?;
        sqlx::query(
            "UPDATE budgets SET used = used - $3, updated_at = $4 WHERE tenant = $1 AND key = $2",
        )
        .bind(tenant)
        .bind(&key)
        .bind(amount)
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    sqlx::query(
        "UPDATE order_budget_uses SET compensated = TRUE WHERE tenant = $1 AND order_id = $2",
    )
    .bind(tenant)
    .bind(order_id)
    .execute(&mut *c)
    .await?;
    let uses = sqlx::query(
        "SELECT key, customer_id, count FROM order_limit_uses \
         WHERE tenant = $1 AND order_id = $2 AND NOT compensated ORDER BY key, customer_id",
    )
    .bind(tenant)
    .bind(order_id)
    .fetch_all(&mut *c)
    .await?;
    for u in &uses {
        let key: String = u.try_get("key")?;
        let customer: String = u.try_get("customer_id")?;
        let count: i64 = u.try_get("count")?;
        sqlx::query(
            "UPDATE customer_limits SET used = used - $4, updated_at = $5 \
             WHERE tenant = $1 AND key = $2 AND customer_id = $3",
        )
        .bind(tenant)
        .bind(&key)
        .bind(&customer)
        .bind(count)
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    sqlx::query(
        "UPDATE order_limit_uses SET compensated = TRUE WHERE tenant = $1 AND order_id = $2",
    )
    .bind(tenant)
    .bind(order_id)
    .execute(&mut *c)
    .await?;
    let event_id = add_event(
        c,
        tenant,
        "order",
        order_id,
        "order.cancelled",
        &serde_json::json!({
            "order_id": order_id,
            "reason": reason,
            "released_reservations": released,
        }),
        now,
    )
    .await?;
    Ok(CancelOutcome {
        order_id: order_id.to_owned(),
        already_cancelled: false,
        released_reservations: released,
        event_id: Some(event_id),
        work_order_ids: Vec::new(),
    })
}

/// Opens `work_orders` for `order_id` in the caller's unit of work: what an order's
/// later events (cancelled, shipped, delivered, a return received) trigger.
async fn open_work_orders(
    c: &mut Conn,
    tenant: &str,
    order_id: &str,
    work_orders: &[NewWorkOrder],
    now: Millis,
) -> Result<Vec<String>, StoreError> {
    insert_work_orders(c, tenant, Some(order_id), work_orders, now).await?;
    Ok(work_orders.iter().map(|w| w.id.clone()).collect())
}

/// Writes `work_orders` (with their own ids) and their steps, for `order_id` or none.
async fn insert_work_orders(
    c: &mut Conn,
    tenant: &str,
    order_id: Option<&str>,
    work_orders: &[NewWorkOrder],
    now: Millis,
) -> Result<(), StoreError> {
    if let Some(w) = work_orders
        .iter()
        .find(|w| w.id.is_empty() || w.steps.is_empty())
    {
        return Err(StoreError::Invalid(format!(
            "work order `{}` of SOP `{}` needs an id and steps",
            w.id, w.sop_name
        )));
    }
    if work_orders.is_empty() {
        return Ok(());
    }
    insert_rows(
        c,
        WORK_ORDER_INSERT,
        "",
        work_orders
            .iter()
            .map(|w| work_order_values(tenant, &w.id, order_id, w, now))
            .collect(),
    )
    .await?;
    insert_rows(
        c,
        STEP_INSERT,
        "",
        work_orders
            .iter()
            .flat_map(|w| step_values(tenant, &w.id, w))
            .collect(),
    )
    .await?;
    Ok(())
}

async fn order_state_locked(
    c: &mut Conn,
    tenant: &str,
    order_id: &str,
) -> Result<OrderState, StoreError> {
    Ok(order_locked(c, tenant, order_id).await?.0)
}

/// An order's state and why it is held (`None`: not held), its row locked.
async fn order_locked(
    c: &mut Conn,
    tenant: &str,
    order_id: &str,
) -> Result<(OrderState, Option<String>), StoreError> {
    let row = sqlx::query(concat!(
        "SELECT state, hold_reason FROM orders WHERE tenant = $1 AND id = $2",
        for_update!()
    ))
    .bind(tenant)
    .bind(order_id)
    .fetch_optional(&mut *c)
    .await?
    .ok_or_else(|| StoreError::not_found("order", order_id))?;
    let state: String = row.try_get("state")?;
    Ok((
        parse(&state, "order state", OrderState::parse)?,
        row.try_get("hold_reason")?,
    ))
}

// ---- the order writer ------------------------------------------------------------------

struct Job {
    order: NewOrder,
    reply: oneshot::Sender<Result<PlacedOrder, PlaceError>>,
}

enum BatchError {
    Db(sqlx::Error),
    Store(StoreError),
    /// A guarded update found the row changed under it: retry the batch.
    Conflict(&'static str),
}

impl From<sqlx::Error> for BatchError {
    fn from(e: sqlx::Error) -> Self {
        BatchError::Db(e)
    }
}

impl From<StoreError> for BatchError {
    fn from(e: StoreError) -> Self {
        BatchError::Store(e)
    }
}

impl BatchError {
    fn retry(&self) -> bool {
        match self {
            BatchError::Db(e) => retryable(e),
            BatchError::Conflict(_) => true,
            BatchError::Store(_) => false,
        }
    }

    fn into_place_error(self) -> PlaceError {
        match self {
            BatchError::Db(e) => PlaceError::Store(StoreError::Db(e)),
            BatchError::Store(e) => PlaceError::Store(e),
            BatchError::Conflict(what) => PlaceError::Store(StoreError::Corrupt(format!(
                "{what} kept changing under the order writer"
            ))),
        }
    }

    /// A copy for each order of a failed batch (sqlx errors cannot be cloned).
    fn describe(&self) -> PlaceError {
        match self {
            BatchError::Store(StoreError::Injected(step)) => {
                PlaceError::Store(StoreError::Injected(step))
            }
            BatchError::Store(StoreError::Closed) => PlaceError::Store(StoreError::Closed),
            BatchError::Db(e) => PlaceError::Store(StoreError::Db(sqlx::Error::Protocol(format!(
                "order batch failed: {e}"
            )))),
            BatchError::Store(e) => {
                PlaceError::Store(StoreError::Corrupt(format!("order batch failed: {e}")))
            }
            BatchError::Conflict(what) => PlaceError::Store(StoreError::Corrupt(format!(
                "{what} kept changing under the order writer"
            ))),
        }
    }
}

struct Inner {
    read: Pool<Db>,
    write: Pool<Db>,
    config: StoreConfig,
    reference: Arc<ReferenceCache>,
    batches: AtomicU64,
    batched_orders: AtomicU64,
    retries: AtomicU64,
}

/// The store on this backend.
pub struct SqlStore {
    inner: Arc<Inner>,
    queue: mpsc::Sender<Job>,
    /// Per-order reads, answered in batches on a thread of their own on SQLite
    /// (`read_batch.rs`); `None` on PostgreSQL, where each order reads on its own
    /// connection.
    reads: Option<read_batch::ReadBatcher>,
}

impl SqlStore {
    /// Starts the order writers; `read` may be the same pool as `write`.
    pub(crate) fn start(
        read: Pool<Db>,
        write: Pool<Db>,
        config: StoreConfig,
    ) -> Result<Self, StoreError> {
        let writers = if config.writers == 0 {
            match BACKEND {
                Backend::Sqlite => 1,
                Backend::Postgres => 2,
            }
        } else {
            config.writers
        };
        let reference = Arc::new(ReferenceCache::new(std::time::Duration::from_millis(
            config.reference_max_age_ms,
        )));
        let inner = Arc::new(Inner {
            read,
            write,
            config,
            reference,
            batches: AtomicU64::new(0),
            batched_orders: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        });
        let (queue, rx) = mpsc::channel::<Job>(inner.config.max_batch.max(1) * 8);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..writers {
            let inner = Arc::clone(&inner);
            let rx = Arc::clone(&rx);
            spawn_writer(n, async move { writer_loop(inner, rx).await })?;
        }
        let reads = match BACKEND {
            Backend::Sqlite => {
                let reads = read_batch::ReadBatcher::start(&inner.read, &inner.config.clock)?;
                if let Some(task) = super::background_task(&inner.read) {
                    reads.spawn(task);
                }
                Some(reads)
            }
            Backend::Postgres => None,
        };
        Ok(SqlStore {
            inner,
            queue,
            reads,
        })
    }

    /// The reference data cache (the PostgreSQL listener empties it on announcements).
    #[allow(dead_code)] // compiled for both backends, called by one
    pub(crate) fn reference_cache(&self) -> Arc<ReferenceCache> {
        Arc::clone(&self.inner.reference)
    }

    /// The pool writes go through (tests and benchmarks use it for raw statements).
    pub fn write_pool(&self) -> &Pool<Db> {
        &self.inner.write
    }

    /// Closes the pools; queued orders fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        self.inner.write.close().await;
        self.inner.read.close().await;
    }
}

/// Starts an order writer. On SQLite it gets a thread and runtime of its own: its
/// statements are hand-offs to the connection's worker thread, and on the shared
/// runtime every hand-off's wake-up queued behind the order pipelines' CPU-bound work
/// (evaluation, planning), so the one writer — the pipeline's bottleneck — spent most
/// of its time waiting for a turn. PostgreSQL writers stay on the caller's runtime,
/// where their connections' sockets are registered.
fn spawn_writer<F>(n: usize, writer: F) -> Result<(), StoreError>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    if BACKEND == Backend::Postgres {
        tokio::spawn(writer);
        return Ok(());
    }
    let thread_error = |source| StoreError::Thread {
        what: "order writer",
        source,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(thread_error)?;
    std::thread::Builder::new()
        .name(format!("weir-writer-{n}"))
        .spawn(move || runtime.block_on(writer))
        .map_err(thread_error)?;
    Ok(())
}

/// Takes whatever orders are waiting (up to the batch size) and writes them as one
/// transaction; under load, orders arriving during a commit form the next batch.
async fn writer_loop(inner: Arc<Inner>, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let max = inner.config.max_batch.max(1);
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(job) => jobs.push(job),
                None => return,
            }
            // Let the clients that are ready submit before the batch closes: those
            // answered by the last commit resubmit within a few scheduler turns, and
            // without this a busy writer would commit batches of one or two.
            for _ in 0..GATHER_YIELDS {
                tokio::task::yield_now().await;
            }
            while jobs.len() < max {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let (orders, replies): (Vec<NewOrder>, Vec<_>) =
            jobs.into_iter().map(|j| (j.order, j.reply)).unzip();
        let results = inner.place_batch(&orders).await;
        for (reply, result) in replies.into_iter().zip(results) {
            // The caller may have gone away; its order stands (idempotency covers
            // its retry).
            let _ = reply.send(result);
        }
    }
}

impl Inner {
    fn now(&self) -> Millis {
        self.config.clock.now_millis()
    }

    fn fault(&self, step: WriteStep) -> Result<(), BatchError> {
        match &self.config.faults {
            Some(f) if f.fail_at(step) => Err(BatchError::Store(StoreError::Injected(step.name()))),
            _ => Ok(()),
        }
    }

    async fn place_batch(&self, orders: &[NewOrder]) -> Vec<Result<PlacedOrder, PlaceError>> {
        match self.place_with_retry(orders).await {
            Ok(results) => results,
            Err(BatchError::Db(_)) if orders.len() > 1 => {
                // One order may be what the database refuses: place each alone so the
                // others are not failed with it.
                let mut results = Vec::with_capacity(orders.len());
                for order in orders {
                    match self.place_with_retry(std::slice::from_ref(order)).await {
                        Ok(one) => results.extend(one),
                        Err(e) => results.push(Err(e.into_place_error())),
                    }
                }
                results
            }
            Err(e) => {
                let mut results = Vec::with_capacity(orders.len());
                for _ in 1..orders.len() {
                    results.push(Err(e.describe()));
                }
                results.push(Err(e.into_place_error()));
                results
            }
        }
    }

    async fn place_with_retry(
        &self,
        orders: &[NewOrder],
    ) -> Result<Vec<Result<PlacedOrder, PlaceError>>, BatchError> {
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            match self.try_place_batch(orders).await {
                Err(e) if e.retry() && attempt < BATCH_ATTEMPTS as u64 => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    // Back off a little so the writer holding the rows can commit.
                    tokio::time::sleep(std::time::Duration::from_millis(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn try_place_batch(
        &self,
        orders: &[NewOrder],
    ) -> Result<Vec<Result<PlacedOrder, PlaceError>>, BatchError> {
        let now = self.now();
        let mut tx: Tx = begin_write(&self.write).await?;
        self.fault(WriteStep::Begin)?;
        let mut state = State::default();
        load_for_orders(&mut tx, orders, &mut state).await?;
        self.fault(WriteStep::Loaded)?;

        let outcomes = state.decide_batch(orders, now);

        write_stock_deltas(&mut tx, &state, now).await?;
        self.fault(WriteStep::Stock)?;
        write_lot_deltas(&mut tx, &state).await?;
        self.fault(WriteStep::Lots)?;
        write_presale_deltas(&mut tx, &state, now).await?;
        self.fault(WriteStep::Presale)?;

        let accepted: Vec<&Accepted<'_>> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Accepted(a) => Some(a.as_ref()),
                _ => None,
            })
            .collect();

        let mut script = Script::default();
        write_budget_deltas(&mut tx, &state, now).await?;
        insert_later(
            &mut tx,
            &mut script,
            "INSERT INTO order_budget_uses (tenant, order_id, key, amount, compensated)",
            "",
            accepted
                .iter()
                .flat_map(|a| {
                    a.budgets.iter().map(|(key, amount, _)| {
                        vec![
                            s(&a.order.tenant),
                            s(&a.order.order_id),
                            s(key),
                            V::I(*amount),
                            V::B(false),
                        ]
                    })
                })
                .collect(),
        )
        .await?;
        self.fault(WriteStep::Budgets)?;
        write_limit_deltas(&mut tx, &state, now).await?;
        insert_later(
            &mut tx,
            &mut script,
            "INSERT INTO order_limit_uses (tenant, order_id, key, customer_id, count, compensated)",
            "",
            accepted
                .iter()
                .flat_map(|a| {
                    a.limits.iter().map(|(key, customer, count)| {
                        vec![
                            s(&a.order.tenant),
                            s(&a.order.order_id),
                            s(key),
                            s(customer),
                            V::I(*count),
                            V::B(false),
                        ]
                    })
                })
                .collect(),
        )
        .await?;
        self.fault(WriteStep::Limits)?;

        insert_order_rows(&mut tx, &mut script, &accepted, now, |step| {
            self.fault(step)
        })
        .await?;
        script.run(&mut tx).await?;

        // Replays answer with what the earlier request committed.
        let mut results: Vec<Result<PlacedOrder, PlaceError>> = Vec::with_capacity(orders.len());
        for (outcome, order) in outcomes.into_iter().zip(orders) {
            let result = match outcome {
                Outcome::Accepted(a) => Ok(placed_from(&a, now)),
                Outcome::Rejected(e) => Err(e),
                Outcome::Replay { order_id } => load_placed(&mut tx, &order.tenant, &order_id)
                    .await
                    .map_err(PlaceError::from),
                Outcome::ReplayOf(i) => match results.get(i) {
                    Some(Ok(p)) => Ok(PlacedOrder {
                        replayed: true,
                        ..p.clone()
                    }),
                    _ => Err(PlaceError::Store(StoreError::Corrupt(
                        "replay of an order not placed in this batch".into(),
                    ))),
                },
            };
            results.push(result);
        }
        self.fault(WriteStep::Commit)?;
        tx.commit().await?;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_orders
            .fetch_add(orders.len() as u64, Ordering::Relaxed);
        Ok(results)
    }
}

fn placed_from(a: &Accepted<'_>, now: Millis) -> PlacedOrder {
    PlacedOrder {
        order_id: a.order.order_id.clone(),
        state: OrderState::Placed,
        hold_reason: a.order.hold_reason.clone(),
        created_at: now,
        replayed: false,
        reservations: a
            .reservations
            .iter()
            .map(|r| Reservation {
                id: r.id.clone(),
                order_id: Some(a.order.order_id.clone()),
                sku: r.sku.clone(),
                location_id: r.location_id.clone(),
                qty: r.qty,
                status: ReservationStatus::Held,
                presale_session_id: r.presale_session_id.clone(),
                expires_at: a.order.reservation_expires_at,
                lots: r.lots.clone(),
                created_at: now,
            })
            .collect(),
        work_order_ids: a.work_order_ids.clone(),
    }
}

async fn load_placed(
    c: &mut Conn,
    tenant: &str,
    order_id: &str,
) -> Result<PlacedOrder, StoreError> {
    let row = sqlx::query(
        "SELECT state, hold_reason, created_at FROM orders WHERE tenant = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(order_id)
    .fetch_optional(&mut *c)
    .await?
    .ok_or_else(|| StoreError::not_found("order", order_id))?;
    let state: String = row.try_get("state")?;
    let reservations = fetch_reservations(c, tenant, "r.order_id = $2", vec![s(order_id)]).await?;
    let work_order_ids =
        sqlx::query("SELECT id FROM work_orders WHERE tenant = $1 AND order_id = $2 ORDER BY id")
            .bind(tenant)
            .bind(order_id)
            .fetch_all(&mut *c)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<Vec<String>, _>>()?;
    Ok(PlacedOrder {
        order_id: order_id.to_owned(),
        state: parse(&state, "order state", OrderState::parse)?,
        hold_reason: row.try_get("hold_reason")?,
        created_at: row.try_get("created_at")?,
        replayed: true,
        reservations,
        work_order_ids,
    })
}

/// Keys per tenant, for `tenant = $1 AND (…) IN (VALUES …)` lookups.
fn by_tenant<K: Ord + Clone>(
    keys: impl IntoIterator<Item = (String, K)>,
) -> BTreeMap<String, BTreeSet<K>> {
    let mut out: BTreeMap<String, BTreeSet<K>> = BTreeMap::new();
    for (tenant, k) in keys {
        out.entry(tenant).or_default().insert(k);
    }
    out
}

/// `SELECT cols FROM table WHERE tenant = $1 AND (key cols) IN (VALUES …) ORDER BY … [lock]`
/// for every tenant and chunk of keys.
async fn select_by_keys(
    c: &mut Conn,
    select: &str,
    key_cols: &str,
    order_by: &str,
    keys: &BTreeMap<String, BTreeSet<Vec<String>>>,
) -> Result<Vec<(String, Row)>, sqlx::Error> {
    let mut out = Vec::new();
    for (tenant, set) in keys {
        let keys: Vec<&Vec<String>> = set.iter().collect();
        let width = keys.first().map_or(1, |k| k.len().max(1));
        for chunk in keys.chunks((MAX_BINDS / width).max(1)) {
            let groups: Vec<String> = (0..chunk.len())
                .map(|i| group(2 + i * width, width))
                .collect();
            let sql = format!(
                "{select} WHERE tenant = {} AND ({key_cols}) IN (VALUES {}) ORDER BY {order_by}{}",
                ph(1),
                groups.join(", "),
                for_update!()
            );
            let args: Vec<V> = chunk.iter().flat_map(|k| k.iter().map(|x| s(x))).collect();
            let rows = bind_all(sqlx::query(&sql).bind(tenant.as_str()), args)
                .persistent(chunk.len() <= PERSISTENT_ROWS)
                .fetch_all(&mut *c)
                .await?;
            out.extend(rows.into_iter().map(|r| (tenant.clone(), r)));
        }
    }
    Ok(out)
}

/// Loads (and, on PostgreSQL, locks) what the batch's decisions read, in the lock order
/// every writer uses: presale sessions, stock, lots, budgets, limits.
async fn load_for_orders(
    c: &mut Conn,
    orders: &[NewOrder],
    state: &mut State,
) -> Result<(), BatchError> {
    // Orders already stored, by id or idempotency key (not locked: a racing insert of
    // the same key fails on the unique index and the batch is retried).
    let mut ids: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for o in orders {
        let entry = ids.entry(o.tenant.clone()).or_default();
        entry.0.insert(o.order_id.clone());
        if let Some(i) = &o.idempotency {
            entry.1.insert(i.key.clone());
        }
    }
    for (tenant, (order_ids, keys)) in &ids {
        // Two lookups, each on its own unique index (an OR of the two would scan).
        for (column, values) in [("id", order_ids), ("idempotency_key", keys)] {
            let values: Vec<&String> = values.iter().collect();
            for chunk in values.chunks(MAX_BINDS) {
                let sql = format!(
                    "SELECT id, idempotency_key, request_hash FROM orders \
                     WHERE tenant = {} AND {column} IN {}",
                    ph(1),
                    group(2, chunk.len())
                );
                let rows = bind_all(
                    sqlx::query(&sql).bind(tenant.as_str()),
                    chunk.iter().map(|x| s(x)).collect(),
                )
                .persistent(chunk.len() <= PERSISTENT_ROWS)
                .fetch_all(&mut *c)
                .await?;
                for row in &rows {
                    let id: String = row.try_get("id")?;
                    let key: Option<String> = row.try_get("idempotency_key")?;
                    let hash: Option<String> = row.try_get("request_hash")?;
                    if let Some(key) = key {
                        state.idempotency.insert(
                            (tenant.clone(), key),
                            KnownOrder {
                                order_id: id.clone(),
                                request_hash: hash,
                                batch_index: None,
                            },
                        );
                    }
                    state.order_ids.insert((tenant.clone(), id));
                }
            }
        }
    }

    let presale_keys = by_tenant(orders.iter().flat_map(|o| {
        o.reservations.iter().filter_map(|r| {
            r.presale_session_id
                .as_ref()
                .map(|sid| (o.tenant.clone(), vec![sid.clone()]))
        })
    }));
    let rows = select_by_keys(
        c,
        "SELECT id, sku, location_id, released, sold, state FROM presale_sessions",
        "id",
        "id",
        &presale_keys,
    )
    .await?;
    for (tenant, row) in rows {
        let st: String = row.try_get("state")?;
        state.presale.insert(
            (tenant, row.try_get("id")?),
            PresaleRow {
                sku: row.try_get("sku")?,
                location_id: row.try_get("location_id")?,
                released: row.try_get("released")?,
                sold: row.try_get("sold")?,
                open: st == PresaleState::Open.as_str(),
                sold_delta: 0,
            },
        );
    }

    let stock_keys = by_tenant(orders.iter().flat_map(|o| {
        o.reservations
            .iter()
            .filter(|r| r.presale_session_id.is_none())
            .map(|r| (o.tenant.clone(), vec![r.sku.clone(), r.location_id.clone()]))
    }));
    load_stock_and_lots(c, &stock_keys, state).await?;

    let budget_keys = by_tenant(orders.iter().flat_map(|o| {
        o.budgets
            .iter()
            .map(|b| (o.tenant.clone(), vec![b.key.clone()]))
    }));
    let rows = select_by_keys(
        c,
        "SELECT key, used, cap FROM budgets",
        "key",
        "key",
        &budget_keys,
    )
    .await?;
    for (tenant, row) in rows {
        state.budgets.insert(
            (tenant, row.try_get("key")?),
            BudgetRow {
                used: row.try_get("used")?,
                cap: row.try_get("cap")?,
                delta: 0,
            },
        );
    }

    let limit_keys = by_tenant(orders.iter().flat_map(|o| {
        o.limits
            .iter()
            .map(|l| (o.tenant.clone(), vec![l.key.clone(), l.customer_id.clone()]))
    }));
    let rows = select_by_keys(
        c,
        "SELECT key, customer_id, used, max_uses FROM customer_limits",
        "key, customer_id",
        "key, customer_id",
        &limit_keys,
    )
    .await?;
    for (tenant, row) in rows {
        state.limits.insert(
            (tenant, row.try_get("key")?, row.try_get("customer_id")?),
            LimitRow {
                used: row.try_get("used")?,
                max: row.try_get("max_uses")?,
                delta: 0,
            },
        );
    }
    Ok(())
}

async fn load_stock_and_lots(
    c: &mut Conn,
    stock_keys: &BTreeMap<String, BTreeSet<Vec<String>>>,
    state: &mut State,
) -> Result<(), BatchError> {
    let rows = select_by_keys(
        c,
        "SELECT sku, location_id, on_hand, reserved, safety_stock, lot_tracked FROM stock",
        "sku, location_id",
        "sku, location_id",
        stock_keys,
    )
    .await?;
    let mut tracked: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (tenant, row) in rows {
        let key = StockKey {
            tenant: tenant.clone(),
            sku: row.try_get("sku")?,
            location_id: row.try_get("location_id")?,
        };
        let lot_tracked: bool = row.try_get("lot_tracked")?;
        if lot_tracked {
            tracked
                .entry(tenant)
                .or_default()
                .insert(vec![key.sku.clone(), key.location_id.clone()]);
        }
        state.stock.insert(
            key,
            StockRow {
                on_hand: row.try_get("on_hand")?,
                reserved: row.try_get("reserved")?,
                safety_stock: row.try_get("safety_stock")?,
                lot_tracked,
                reserved_delta: 0,
            },
        );
    }
    let rows = select_by_keys(
        c,
        "SELECT sku, location_id, lot_id, expires_at, on_hand, reserved FROM lots",
        "sku, location_id",
        "sku, location_id, expires_at, lot_id",
        &tracked,
    )
    .await?;
    for (tenant, row) in rows {
        let key = StockKey {
            tenant,
            sku: row.try_get("sku")?,
            location_id: row.try_get("location_id")?,
        };
        state.lots.entry(key).or_default().push(LotRow {
            lot_id: row.try_get("lot_id")?,
            expires_at: row.try_get("expires_at")?,
            on_hand: row.try_get("on_hand")?,
            reserved: row.try_get("reserved")?,
            reserved_delta: 0,
        });
    }
    Ok(())
}

/// One conditional statement for all the batch's stock rows: each row's reservations
/// are added only while `on_hand − reserved − safety_stock` still covers them, so no
/// interleaving (another process, a missed lock) can oversell; if a row refuses, the
/// batch is retried from fresh rows.
async fn write_stock_deltas(c: &mut Conn, state: &State, now: Millis) -> Result<(), BatchError> {
    let rows: Vec<Vec<V>> = state
        .stock
        .iter()
        .filter(|(_, r)| r.reserved_delta != 0)
        .map(|(k, r)| {
            vec![
                s(&k.tenant),
                s(&k.sku),
                s(&k.location_id),
                V::I(r.reserved_delta),
            ]
        })
        .collect();
    let expected = rows.len() as u64;
    let done = update_from_values(
        c,
        "stock",
        &["tenant", "sku", "location_id", "d"],
        "reserved = stock.reserved + v.d, updated_at = $1",
        "stock.tenant = v.tenant AND stock.sku = v.sku AND stock.location_id = v.location_id \
         AND stock.on_hand - stock.reserved - stock.safety_stock >= v.d",
        vec![V::I(now)],
        rows,
    )
    .await?;
    if done != expected {
        return Err(BatchError::Conflict("stock"));
    }
    Ok(())
}

async fn write_lot_deltas(c: &mut Conn, state: &State) -> Result<(), BatchError> {
    let rows: Vec<Vec<V>> = state
        .lots
        .iter()
        .flat_map(|(k, lots)| {
            lots.iter().filter(|l| l.reserved_delta != 0).map(move |l| {
                vec![
                    s(&k.tenant),
                    s(&k.sku),
                    s(&k.location_id),
                    s(&l.lot_id),
                    V::I(l.reserved_delta),
                ]
            })
        })
        .collect();
    let expected = rows.len() as u64;
    let done = update_from_values(
        c,
        "lots",
        &["tenant", "sku", "location_id", "lot_id", "d"],
        "reserved = lots.reserved + v.d",
        "lots.tenant = v.tenant AND lots.sku = v.sku AND lots.location_id = v.location_id \
         AND lots.lot_id = v.lot_id AND lots.on_hand - lots.reserved >= v.d",
        Vec::new(),
        rows,
    )
    .await?;
    if done != expected {
        return Err(BatchError::Conflict("lot"));
    }
    Ok(())
}

async fn write_presale_deltas(c: &mut Conn, state: &State, now: Millis) -> Result<(), BatchError> {
    for ((tenant, id), row) in state.presale.iter().filter(|(_, r)| r.sold_delta != 0) {
        let done = sqlx::query(
            "UPDATE presale_sessions SET sold = sold + $3, updated_at = $4 \
             WHERE tenant = $1 AND id = $2 AND state = 'open' AND released - sold >= $3",
        )
        .bind(tenant)
        .bind(id)
        .bind(row.sold_delta)
        .bind(now)
        .execute(&mut *c)
        .await?;
        if done.rows_affected() != 1 {
            return Err(BatchError::Conflict("presale session"));
        }
    }
    Ok(())
}

async fn write_budget_deltas(c: &mut Conn, state: &State, now: Millis) -> Result<(), BatchError> {
    let rows: Vec<Vec<V>> = state
        .budgets
        .iter()
        .filter(|(_, r)| r.delta != 0)
        .map(|((tenant, key), r)| vec![s(tenant), s(key), V::I(r.delta), V::I(r.cap), V::I(now)])
        .collect();
    let expected = rows.len() as u64;
    // A budget first used by a concurrent batch is not in this batch's snapshot; the
    // guard then refuses and the batch is retried with the row.
    let done = insert_rows(
        c,
        "INSERT INTO budgets (tenant, key, used, cap, updated_at)",
        "ON CONFLICT (tenant, key) DO UPDATE SET used = budgets.used + excluded.used, \
         cap = excluded.cap, updated_at = excluded.updated_at \
         WHERE budgets.used + excluded.used <= excluded.cap",
        rows,
    )
    .await?;
    if done != expected {
        return Err(BatchError::Conflict("budget"));
    }
    Ok(())
}

async fn write_limit_deltas(c: &mut Conn, state: &State, now: Millis) -> Result<(), BatchError> {
    let rows: Vec<Vec<V>> = state
        .limits
        .iter()
        .filter(|(_, r)| r.delta != 0)
        .map(|((tenant, key, customer), r)| {
            vec![
                s(tenant),
                s(key),
                s(customer),
                V::I(r.delta),
                V::I(r.max),
                V::I(now),
            ]
        })
        .collect();
    let expected = rows.len() as u64;
    let done = insert_rows(
        c,
        "INSERT INTO customer_limits (tenant, key, customer_id, used, max_uses, updated_at)",
        "ON CONFLICT (tenant, key, customer_id) DO UPDATE SET \
         used = customer_limits.used + excluded.used, max_uses = excluded.max_uses, \
         updated_at = excluded.updated_at \
         WHERE customer_limits.used + excluded.used <= excluded.max_uses",
        rows,
    )
    .await?;
    if done != expected {
        return Err(BatchError::Conflict("customer limit"));
    }
    Ok(())
}

/// Inserts that can only fail with an error (no guard, no row count wanted), gathered
/// so that SQLite runs a batch's inserts as one multi-statement query: one hand-off to
/// the connection's worker thread instead of one per table, each of which waited for
/// a core while the order pipelines kept both busy. sqlx binds a multi-statement
/// query's parameters across its statements in order. PostgreSQL takes one statement
/// per query with parameters, so there they run at once ([`insert_later`]).
#[derive(Default)]
struct Script {
    sql: String,
    args: Vec<V>,
}

impl Script {
    fn push(&mut self, head: &str, tail: &str, rows: Vec<Vec<V>>) {
        for (sql, args, _) in values_statements(head, tail, rows) {
            self.sql.push_str(&sql);
            self.sql.push_str(";\n");
            self.args.extend(args);
        }
    }

    /// Runs what was gathered (nothing on PostgreSQL, where nothing is).
    async fn run(self, c: &mut Conn) -> Result<(), sqlx::Error> {
        if self.sql.is_empty() {
            return Ok(());
        }
        bind_all(sqlx::query(&self.sql), self.args)
            .persistent(false)
            .execute(&mut *c)
            .await?;
        Ok(())
    }
}

/// `insert_rows`, on SQLite gathered into `script` to run with the batch's other
/// inserts.
async fn insert_later(
    c: &mut Conn,
    script: &mut Script,
    head: &str,
    tail: &str,
    rows: Vec<Vec<V>>,
) -> Result<(), sqlx::Error> {
    if BACKEND == Backend::Sqlite {
        script.push(head, tail, rows);
        return Ok(());
    }
    insert_rows(c, head, tail, rows).await?;
    Ok(())
}

/// The accepted orders' own rows, one multi-row statement per table (on SQLite
/// gathered into `script`, see [`Script`]).
async fn insert_order_rows(
    c: &mut Conn,
    script: &mut Script,
    accepted: &[&Accepted<'_>],
    now: Millis,
    fault: impl Fn(WriteStep) -> Result<(), BatchError>,
) -> Result<(), BatchError> {
    insert_later(
        c,
        script,
        "INSERT INTO orders (tenant, id, idempotency_key, request_hash, customer_id, channel, \
         currency, subtotal_minor, discount_minor, total_minor, state, cancel_reason, \
         hold_reason, created_at, updated_at)",
        "",
        accepted
            .iter()
            .map(|a| {
                let o = &a.order;
                vec![
                    s(&o.tenant),
                    s(&o.order_id),
                    V::OS(o.idempotency.as_ref().map(|i| i.key.clone())),
                    V::OS(o.idempotency.as_ref().map(|i| i.request_hash.clone())),
                    s(&o.customer_id),
                    s(&o.channel),
                    s(&o.currency),
                    V::I(o.subtotal_minor),
                    V::I(o.discount_minor),
                    V::I(o.total_minor),
                    s(OrderState::Placed.as_str()),
                    V::OS(None),
                    V::OS(o.hold_reason.clone()),
                    V::I(now),
                    V::I(now),
                ]
            })
            .collect(),
    )
    .await?;
    fault(WriteStep::Orders)?;

    insert_later(
        c,
        script,
        "INSERT INTO order_lines (tenant, order_id, line_no, sku, qty, unit_price_minor, \
         discount_minor)",
        "",
        accepted
            .iter()
            .flat_map(|a| {
                a.order.lines.iter().map(|l| {
                    vec![
                        s(&a.order.tenant),
                        s(&a.order.order_id),
                        V::I(l.line_no),
                        s(&l.sku),
                        V::I(l.qty),
                        V::I(l.unit_price_minor),
                        V::I(l.discount_minor),
                    ]
                })
            })
            .collect(),
    )
    .await?;
    fault(WriteStep::Lines)?;

    insert_later(
        c,
        script,
        "INSERT INTO reservations (tenant, id, order_id, sku, location_id, qty, status, \
         presale_session_id, expires_at, created_at, updated_at)",
        "",
        accepted
            .iter()
            .flat_map(|a| {
                a.reservations.iter().map(|r| {
                    vec![
                        s(&a.order.tenant),
                        s(&r.id),
                        s(&a.order.order_id),
                        s(&r.sku),
                        s(&r.location_id),
                        V::I(r.qty),
                        s(ReservationStatus::Held.as_str()),
                        V::OS(r.presale_session_id.clone()),
                        V::OI(a.order.reservation_expires_at),
                        V::I(now),
                        V::I(now),
                    ]
                })
            })
            .collect(),
    )
    .await?;
    insert_later(
        c,
        script,
        "INSERT INTO reservation_lots (tenant, reservation_id, lot_id, expires_at, qty)",
        "",
        accepted
            .iter()
            .flat_map(|a| {
                a.reservations.iter().flat_map(|r| {
                    r.lots.iter().map(|p| {
                        vec![
                            s(&a.order.tenant),
                            s(&r.id),
                            s(&p.lot_id),
                            V::I(p.expires_at),
                            V::I(p.qty),
                        ]
                    })
                })
            })
            .collect(),
    )
    .await?;
    fault(WriteStep::Reservations)?;

    let mut shipments = Vec::new();
    let mut shipment_lines = Vec::new();
    for a in accepted {
        for (n, sh) in (1i64..).zip(&a.order.shipments) {
            shipments.push(vec![
                s(&a.order.tenant),
                s(&a.order.order_id),
                V::I(n),
                s(&sh.location_id),
                s(&sh.carrier_mode),
                V::S(json_text(&serde_json::json!(sh.packaging))),
            ]);
            for l in &sh.lines {
                shipment_lines.push(vec![
                    s(&a.order.tenant),
                    s(&a.order.order_id),
                    V::I(n),
                    V::I(l.line_no),
                    V::I(l.qty),
                ]);
            }
        }
    }
    insert_later(
        c,
        script,
        "INSERT INTO shipments (tenant, order_id, shipment_no, location_id, carrier_mode, \
         packaging)",
        "",
        shipments,
    )
    .await?;
    insert_later(
        c,
        script,
        "INSERT INTO shipment_lines (tenant, order_id, shipment_no, line_no, qty)",
        "",
        shipment_lines,
    )
    .await?;
    fault(WriteStep::Shipments)?;

    insert_later(
        c,
        script,
        "INSERT INTO decision_records (tenant, order_id, ruleset_hash, hooks, fired_rules, \
         facts_digest, facts, created_at)",
        "",
        accepted
            .iter()
            .filter_map(|a| {
                a.order.decision.as_ref().map(|d| {
                    vec![
                        s(&a.order.tenant),
                        s(&a.order.order_id),
                        s(d.ruleset_hash()),
                        s(d.hooks()),
                        s(d.fired_rules()),
                        s(d.facts_digest()),
                        V::OS(d.facts().map(str::to_owned)),
                        V::I(now),
                    ]
                })
            })
            .collect(),
    )
    .await?;
    fault(WriteStep::Decision)?;

    insert_later(
        c,
        script,
        "INSERT INTO velocity_events (tenant, kind, key, at, order_id, customer_id)",
        "",
        accepted
            .iter()
            .flat_map(|a| {
                a.order.velocity.iter().map(|v| {
                    vec![
                        s(&a.order.tenant),
                        s(&v.kind),
                        s(&v.key),
                        V::I(now),
                        V::OS(Some(a.order.order_id.clone())),
                        V::OS(Some(a.order.customer_id.clone())),
                    ]
                })
            })
            .collect(),
    )
    .await?;
    fault(WriteStep::Velocity)?;

    let mut work_orders = Vec::new();
    let mut steps = Vec::new();
    for a in accepted {
        for (w, id) in a.order.work_orders.iter().zip(&a.work_order_ids) {
            work_orders.push(work_order_values(
                &a.order.tenant,
                id,
                Some(&a.order.order_id),
                w,
                now,
            ));
            steps.extend(step_values(&a.order.tenant, id, w));
        }
    }
    insert_later(c, script, WORK_ORDER_INSERT, "", work_orders).await?;
    insert_later(c, script, STEP_INSERT, "", steps).await?;
    fault(WriteStep::WorkOrders)?;

    insert_later(
        c,
        script,
        "INSERT INTO outbox (id, tenant, aggregate_type, aggregate_id, type, payload, created_at)",
        "",
        accepted
            .iter()
            .flat_map(|a| {
                a.order
                    .events
                    .iter()
                    .map(|e| event_values(&a.order.tenant, e, now))
            })
            .collect(),
    )
    .await?;
    fault(WriteStep::Outbox)?;
    Ok(())
}

fn event_values(tenant: &str, e: &NewEvent, now: Millis) -> Vec<V> {
    vec![
        V::S(event_id()),
        s(tenant),
        s(&e.aggregate_type),
        s(&e.aggregate_id),
        s(&e.event_type),
        V::S(json_text(&e.payload)),
        V::I(now),
    ]
}

const WORK_ORDER_INSERT: &str = "INSERT INTO work_orders (tenant, id, order_id, location_id, \
     sop_name, state, created_at, updated_at)";

const STEP_INSERT: &str = "INSERT INTO work_order_steps (tenant, work_order_id, step_no, name, \
     role, evidence_kind, deadline_at, state)";

fn work_order_values(
    tenant: &str,
    id: &str,
    order_id: Option<&str>,
    w: &NewWorkOrder,
    now: Millis,
) -> Vec<V> {
    vec![
        s(tenant),
        s(id),
        V::OS(order_id.map(str::to_owned)),
        V::OS(w.location_id.clone()),
        s(&w.sop_name),
        s(WorkOrderState::Open.as_str()),
        V::I(now),
        V::I(now),
    ]
}

fn step_values(tenant: &str, id: &str, w: &NewWorkOrder) -> Vec<Vec<V>> {
    (1i64..)
        .zip(&w.steps)
        .map(|(n, st)| {
            vec![
                s(tenant),
                s(id),
                V::I(n),
                s(&st.name),
                s(&st.role),
                V::OS(st.evidence.clone()),
                V::OI(st.deadline_at),
                s(StepState::Pending.as_str()),
            ]
        })
        .collect()
}

// ---- the Store implementation ------------------------------------------------------------

impl SqlStore {
    fn now_ms(&self) -> Millis {
        self.inner.now()
    }

    /// `count` (an aggregate over velocity events) per key in the window.
    async fn count_velocity(
        &self,
        tenant: &str,
        keys: &[VelocityKey],
        window_ms: i64,
        distinct_customers: bool,
    ) -> Result<Vec<i64>, StoreError> {
        let since = self.now_ms() - window_ms;
        let mut c = self.read().await?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(count_velocity(&mut c, tenant, k, since, distinct_customers).await?);
        }
        Ok(out)
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(begin_write(&self.inner.write).await?)
    }

    async fn read(&self) -> Result<sqlx::pool::PoolConnection<Db>, StoreError> {
        Ok(self.inner.read.acquire().await?)
    }

    /// After a committed change to `tenant`'s locations, their attributes or a runtime
    /// list: this process forgets its cached copy and, on PostgreSQL, every other store
    /// is told to (`reference.rs`). The change itself is already durable, so a failed
    /// announcement is logged, not returned: other processes then see the change when
    /// their copy ages out.
    async fn reference_changed(&self, tenant: &str) {
        self.inner.reference.invalidate(tenant);
        if BACKEND == Backend::Postgres {
            let announced = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REFERENCE_CHANNEL)
                .bind(tenant)
                .execute(&self.inner.write)
                .await;
            if let Err(e) = announced {
                tracing::warn!(tenant, error = %e, "could not announce a reference data change");
            }
        }
    }
}

/// Events counted under `key` since `since` (or the distinct customers behind them).
async fn count_velocity(
    c: &mut Conn,
    tenant: &str,
    key: &VelocityKey,
    since: Millis,
    distinct_customers: bool,
) -> Result<i64, StoreError> {
    let sql = if distinct_customers {
        "SELECT COUNT(DISTINCT customer_id) AS n FROM velocity_events \
         WHERE tenant = $1 AND kind = $2 AND key = $3 AND at > $4"
    } else {
        "SELECT COUNT(*) AS n FROM velocity_events \
         WHERE tenant = $1 AND kind = $2 AND key = $3 AND at > $4"
    };
    Ok(sqlx::query(sql)
        .bind(tenant)
        .bind(&key.kind)
        .bind(&key.key)
        .bind(since)
        .fetch_one(&mut *c)
        .await?
        .try_get("n")?)
}

/// The reads one order's evaluation needs, in one round on one connection (`now` is
/// the store's clock when they were asked for), with `IN (…)` lists of placeholders:
/// PostgreSQL answered the array-bound statements of `read_batch.rs` five times slower
/// (366 against 1,883 orders/s in the pipeline bench), so a lone order, every order on
/// PostgreSQL and the orders of a failed batch read this way.
async fn order_reads_one(
    pool: &Pool<Db>,
    now: Millis,
    tenant: &str,
    reads: &OrderReads,
) -> Result<OrderReadings, StoreError> {
    let mut c = pool.acquire().await?;
    let stock = stock_of_skus(&mut c, tenant, &reads.skus).await?;
    let mut velocity = Vec::with_capacity(reads.velocity.len());
    for read in &reads.velocity {
        let since = now - read.window_ms;
        velocity
            .push(count_velocity(&mut c, tenant, &read.key, since, read.distinct_customers).await?);
    }
    let usages = usages(
        &mut c,
        tenant,
        &reads.budget_keys,
        &reads.limit_keys,
        &reads.customer_id,
    )
    .await?;
    let earlier = match &reads.idempotency_key {
        Some(key) => order_by_key(&mut c, tenant, key).await?,
        None => None,
    };
    Ok(OrderReadings {
        stock,
        velocity,
        usages,
        earlier,
    })
}

/// The id and request hash of `tenant`'s order placed with idempotency key `key`.
async fn order_by_key(
    c: &mut Conn,
    tenant: &str,
    key: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let row = sqlx::query(
        "SELECT id, request_hash FROM orders WHERE tenant = $1 AND idempotency_key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_optional(&mut *c)
    .await?;
    row.map(|row| {
        let hash: Option<String> = row.try_get("request_hash")?;
        Ok((row.try_get("id")?, hash.unwrap_or_default()))
    })
    .transpose()
}

/// Stock rows of `skus` at every location, by SKU then location.
async fn stock_of_skus(
    c: &mut Conn,
    tenant: &str,
    skus: &[String],
) -> Result<Vec<StockLevel>, StoreError> {
    let mut out = Vec::new();
    for chunk in skus.chunks(MAX_BINDS - 1) {
        let sql = format!(
            "SELECT {STOCK_COLS} FROM stock WHERE tenant = {} AND sku IN ({}) \
             ORDER BY sku, location_id",
            ph(1),
            in_list(2, chunk.len())
        );
        let args = chunk.iter().map(|k| s(k)).collect();
        let rows = bind_all(sqlx::query(&sql).bind(tenant), args)
            .persistent(chunk.len() <= PERSISTENT_ROWS)
            .fetch_all(&mut *c)
            .await?;
        for row in &rows {
            out.push(stock_row(row)?);
        }
    }
    Ok(out)
}

/// Budget use by key and one customer's limit uses by key; one statement for both
/// when the keys fit in one.
async fn usages(
    c: &mut Conn,
    tenant: &str,
    budget_keys: &[String],
    limit_keys: &[String],
    customer_id: &str,
) -> Result<Usages, StoreError> {
    let mut usages = Usages::default();
    let mut keep = |rows: Vec<Row>| -> Result<(), StoreError> {
        for row in &rows {
            let key: String = row.try_get("key")?;
            let used: i64 = row.try_get("used")?;
            if row.try_get::<i64, _>("budget")? == 1 {
                usages.budgets.insert(key, used);
            } else {
                usages.limits.insert(key, used);
            }
        }
        Ok(())
    };
    let budgets = |first: usize, n: usize| {
        format!(
            "SELECT CAST(1 AS BIGINT) AS budget, key, used FROM budgets WHERE tenant = {} AND key IN ({})",
            ph(first),
            in_list(first + 1, n)
        )
    };
    let limits = |first: usize, n: usize| {
        format!(
            "SELECT CAST(0 AS BIGINT) AS budget, key, used FROM customer_limits WHERE tenant = {} \
             AND customer_id = {} AND key IN ({})",
            ph(first),
            ph(first + 1),
            in_list(first + 2, n)
        )
    };
    let (nb, nl) = (budget_keys.len(), limit_keys.len());
    if nb > 0 && nl > 0 && nb + nl + 3 <= MAX_BINDS {
        let sql = format!("{} UNION ALL {}", budgets(1, nb), limits(nb + 2, nl));
        let mut args: Vec<V> = budget_keys.iter().map(|k| s(k)).collect();
        args.push(s(tenant));
        args.push(s(customer_id));
        args.extend(limit_keys.iter().map(|k| s(k)));
        let rows = bind_all(sqlx::query(&sql).bind(tenant), args)
            .persistent(nb + nl <= PERSISTENT_ROWS)
            .fetch_all(&mut *c)
            .await?;
        keep(rows)?;
        return Ok(usages);
    }
    for chunk in budget_keys.chunks(MAX_BINDS - 1) {
        let sql = budgets(1, chunk.len());
        let args = chunk.iter().map(|k| s(k)).collect();
        let rows = bind_all(sqlx::query(&sql).bind(tenant), args)
            .persistent(chunk.len() <= PERSISTENT_ROWS)
            .fetch_all(&mut *c)
            .await?;
        keep(rows)?;
    }
    for chunk in limit_keys.chunks(MAX_BINDS - 2) {
        let sql = limits(1, chunk.len());
        let args = chunk.iter().map(|k| s(k)).collect();
        let rows = bind_all(sqlx::query(&sql).bind(tenant).bind(customer_id), args)
            .persistent(chunk.len() <= PERSISTENT_ROWS)
            .fetch_all(&mut *c)
            .await?;
        keep(rows)?;
    }
    Ok(usages)
}

fn check_positive(what: &str, qty: i64) -> Result<(), StoreError> {
    if qty <= 0 {
        return Err(StoreError::Invalid(format!("{what} must be positive")));
    }
    check_units(what, qty)
}

/// Quantities stay far from `i64` overflow: SQLite turns an overflowing integer sum
/// into a float, which would leave a stock row unreadable.
fn check_units(what: &str, qty: i64) -> Result<(), StoreError> {
    if qty.unsigned_abs() > crate::store::MAX_UNITS as u64 {
        return Err(StoreError::Invalid(format!(
            "{what} is beyond {} units",
            crate::store::MAX_UNITS
        )));
    }
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        BACKEND
    }

    fn now(&self) -> Millis {
        self.now_ms()
    }

    fn writer_stats(&self) -> WriterStats {
        WriterStats {
            batches: self.inner.batches.load(Ordering::Relaxed),
            orders: self.inner.batched_orders.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
        }
    }

    async fn upsert_location(&self, tenant: &str, l: &Location) -> Result<(), StoreError> {
        if l.id.is_empty() {
            return Err(StoreError::Invalid("location id must not be empty".into()));
        }
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO locations (tenant, id, kind, name, lat, lon, ships, pickup, cold_chain, \
             hazmat_certified, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (tenant, id) DO UPDATE SET kind = excluded.kind, name = excluded.name, \
             lat = excluded.lat, lon = excluded.lon, ships = excluded.ships, \
             pickup = excluded.pickup, cold_chain = excluded.cold_chain, \
             hazmat_certified = excluded.hazmat_certified, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(&l.id)
        .bind(l.kind.as_str())
        .bind(&l.name)
        .bind(l.lat)
        .bind(l.lon)
        .bind(l.capabilities.ships)
        .bind(l.capabilities.pickup)
        .bind(l.capabilities.cold_chain)
        .bind(l.capabilities.hazmat_certified)
        .bind(now)
        .execute(&self.inner.write)
        .await?;
        self.reference_changed(tenant).await;
        Ok(())
    }

    async fn location(&self, tenant: &str, id: &str) -> Result<Option<Location>, StoreError> {
        let row = sqlx::query("SELECT * FROM locations WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.inner.read)
            .await?;
        row.as_ref().map(location_row).transpose()
    }

    async fn locations(&self, tenant: &str) -> Result<Vec<Location>, StoreError> {
        let cache = &self.inner.reference.locations;
        let ticket = match cache.get(tenant, "") {
            Ok(hit) => return Ok(hit.as_ref().clone()),
            Err(ticket) => ticket,
        };
        let locations = sqlx::query("SELECT * FROM locations WHERE tenant = $1 ORDER BY id")
            .bind(tenant)
            .fetch_all(&self.inner.read)
            .await?
            .iter()
            .map(location_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(cache.put(tenant, "", ticket, locations).as_ref().clone())
    }

    async fn set_location_attributes(
        &self,
        tenant: &str,
        location_id: &str,
        attributes: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), StoreError> {
        if self.location(tenant, location_id).await?.is_none() {
            return Err(StoreError::Invalid(format!(
                "unknown location `{location_id}`"
            )));
        }
        let now = self.now_ms();
        let text = json_text(&serde_json::Value::Object(attributes.clone()));
        sqlx::query(
            "INSERT INTO location_attributes (tenant, location_id, attributes, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant, location_id) DO UPDATE SET attributes = excluded.attributes, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(location_id)
        .bind(text)
        .bind(now)
        .execute(&self.inner.write)
        .await?;
        self.reference_changed(tenant).await;
        Ok(())
    }

    async fn location_attributes(
        &self,
        tenant: &str,
    ) -> Result<crate::store::LocationAttributes, StoreError> {
        let cache = &self.inner.reference.attributes;
        let ticket = match cache.get(tenant, "") {
            Ok(hit) => return Ok(hit.as_ref().clone()),
            Err(ticket) => ticket,
        };
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT location_id, attributes FROM location_attributes WHERE tenant = $1",
        )
        .bind(tenant)
        .fetch_all(&self.inner.read)
        .await?;
        let mut out = std::collections::HashMap::new();
        for (id, text) in rows {
            if let serde_json::Value::Object(map) = json_value(&text)? {
                out.insert(id, map);
            }
        }
        Ok(cache.put(tenant, "", ticket, out).as_ref().clone())
    }

    async fn receive(&self, tenant: &str, r: &Receipt) -> Result<StockLevel, StoreError> {
        check_positive("received quantity", r.qty)?;
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let level = add_stock(
            &mut tx,
            tenant,
            &r.sku,
            &r.location_id,
            r.qty,
            r.lot.as_ref(),
            MovementKind::Receipt,
            &r.reference,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(level)
    }

    async fn adjust(&self, tenant: &str, a: &Adjustment) -> Result<StockLevel, StoreError> {
        if a.delta == 0 {
            return Err(StoreError::Invalid(
                "an adjustment must change something".into(),
            ));
        }
        check_units("an adjustment", a.delta)?;
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let stock = fetch_stock(&mut tx, tenant, &a.sku, &a.location_id)
            .await?
            .ok_or_else(|| {
                StoreError::not_found("stock", &format!("{}@{}", a.sku, a.location_id))
            })?;
        let short = |available: i64| StoreError::InsufficientStock {
            sku: a.sku.clone(),
            location_id: a.location_id.clone(),
            requested: -a.delta,
            available,
        };
        if stock.on_hand + a.delta < stock.reserved {
            return Err(short(stock.on_hand - stock.reserved));
        }
        match (&a.lot_id, stock.lot_tracked) {
            (None, true) => {
                return Err(StoreError::LotRequired {
                    sku: a.sku.clone(),
                    location_id: a.location_id.clone(),
                })
            }
            (Some(lot), true) => {
                let done = sqlx::query(
                    "UPDATE lots SET on_hand = on_hand + $5 WHERE tenant = $1 AND sku = $2 \
                     AND location_id = $3 AND lot_id = $4 AND on_hand + $5 >= reserved",
                )
                .bind(tenant)
                .bind(&a.sku)
                .bind(&a.location_id)
                .bind(lot)
                .bind(a.delta)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(short(0));
                }
            }
            (Some(_), false) => {
                return Err(StoreError::NotLotTracked {
                    sku: a.sku.clone(),
                    location_id: a.location_id.clone(),
                })
            }
            (None, false) => {}
        }
        sqlx::query(
            "UPDATE stock SET on_hand = on_hand + $4, updated_at = $5 \
             WHERE tenant = $1 AND sku = $2 AND location_id = $3 AND on_hand + $4 >= reserved",
        )
        .bind(tenant)
        .bind(&a.sku)
        .bind(&a.location_id)
        .bind(a.delta)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        add_movement(
            &mut tx,
            tenant,
            &a.sku,
            &a.location_id,
            a.lot_id.as_deref(),
            MovementKind::Adjustment,
            a.delta,
            "",
            &a.reason,
            now,
        )
        .await?;
        let level = fetch_stock(&mut tx, tenant, &a.sku, &a.location_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("stock row vanished".into()))?;
        tx.commit().await?;
        Ok(level)
    }

    async fn set_safety_stock(
        &self,
        tenant: &str,
        sku: &str,
        location_id: &str,
        safety_stock: i64,
    ) -> Result<StockLevel, StoreError> {
        check_units("safety stock", safety_stock)?;
        if safety_stock < 0 {
            return Err(StoreError::Invalid(
                "safety stock must not be negative".into(),
            ));
        }
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        if !location_exists(&mut tx, tenant, location_id).await? {
            return Err(StoreError::not_found("location", location_id));
        }
        sqlx::query(
            "INSERT INTO stock (tenant, sku, location_id, on_hand, reserved, safety_stock, \
             lot_tracked, updated_at) VALUES ($1, $2, $3, 0, 0, $4, FALSE, $5) \
             ON CONFLICT (tenant, sku, location_id) DO UPDATE SET \
             safety_stock = excluded.safety_stock, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(sku)
        .bind(location_id)
        .bind(safety_stock)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let level = fetch_stock(&mut tx, tenant, sku, location_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("stock row vanished".into()))?;
        tx.commit().await?;
        Ok(level)
    }

    async fn stock(
        &self,
        tenant: &str,
        sku: &str,
        location_id: &str,
    ) -> Result<Option<StockLevel>, StoreError> {
        let row = sqlx::query(
            "SELECT sku, location_id, on_hand, reserved, safety_stock, lot_tracked FROM stock \
             WHERE tenant = $1 AND sku = $2 AND location_id = $3",
        )
        .bind(tenant)
        .bind(sku)
        .bind(location_id)
        .fetch_optional(&self.inner.read)
        .await?;
        row.as_ref().map(stock_row).transpose()
    }

    async fn stock_by_sku(&self, tenant: &str, sku: &str) -> Result<Vec<StockLevel>, StoreError> {
        let sql = format!(
            "SELECT {STOCK_COLS} FROM stock WHERE tenant = $1 AND sku = $2 ORDER BY location_id"
        );
        sqlx::query(&sql)
            .bind(tenant)
            .bind(sku)
            .fetch_all(&self.inner.read)
            .await?
            .iter()
            .map(stock_row)
            .collect()
    }

    async fn lots(
        &self,
        tenant: &str,
        sku: &str,
        location_id: &str,
    ) -> Result<Vec<Lot>, StoreError> {
        sqlx::query(
            "SELECT lot_id, expires_at, on_hand, reserved FROM lots \
             WHERE tenant = $1 AND sku = $2 AND location_id = $3 ORDER BY expires_at, lot_id",
        )
        .bind(tenant)
        .bind(sku)
        .bind(location_id)
        .fetch_all(&self.inner.read)
        .await?
        .iter()
        .map(|r| {
            Ok(Lot {
                lot_id: r.try_get("lot_id")?,
                expires_at: r.try_get("expires_at")?,
                on_hand: r.try_get("on_hand")?,
                reserved: r.try_get("reserved")?,
            })
        })
        .collect()
    }

    async fn movements(
        &self,
        tenant: &str,
        sku: &str,
        location_id: &str,
    ) -> Result<Vec<Movement>, StoreError> {
        sqlx::query(
            "SELECT seq, sku, location_id, lot_id, kind, on_hand_delta, reference, reason, \
             created_at FROM stock_movements WHERE tenant = $1 AND sku = $2 AND location_id = $3 \
             ORDER BY seq",
        )
        .bind(tenant)
        .bind(sku)
        .bind(location_id)
        .fetch_all(&self.inner.read)
        .await?
        .iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            Ok(Movement {
                seq: r.try_get("seq")?,
                sku: r.try_get("sku")?,
                location_id: r.try_get("location_id")?,
                lot_id: r.try_get("lot_id")?,
                kind: parse(&kind, "movement kind", MovementKind::parse)?,
                on_hand_delta: r.try_get("on_hand_delta")?,
                reference: r.try_get("reference")?,
                reason: r.try_get("reason")?,
                at: r.try_get("created_at")?,
            })
        })
        .collect()
    }

    async fn hold(&self, tenant: &str, h: &NewHold) -> Result<Reservation, PlaceError> {
        if h.id.is_empty() {
            return Err(PlaceError::Invalid("hold id must not be empty".into()));
        }
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM reservations WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(&h.id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(PlaceError::Store(StoreError::AlreadyExists {
                kind: "reservation",
                id: h.id.clone(),
            }));
        }
        let mut state = State::default();
        let keys = by_tenant([(
            tenant.to_owned(),
            vec![h.sku.clone(), h.location_id.clone()],
        )]);
        load_stock_and_lots(&mut tx, &keys, &mut state)
            .await
            .map_err(BatchError::into_place_error)?;
        let request = NewReservation {
            sku: h.sku.clone(),
            location_id: h.location_id.clone(),
            qty: h.qty,
            presale_session_id: None,
            not_expiring_before: h.not_expiring_before,
        };
        let planned: PlannedReservation = state.decide_hold(tenant, &h.id, &request, now)?;
        write_stock_deltas(&mut tx, &state, now)
            .await
            .map_err(BatchError::into_place_error)?;
        write_lot_deltas(&mut tx, &state)
            .await
            .map_err(BatchError::into_place_error)?;
        sqlx::query(
            "INSERT INTO reservations (tenant, id, order_id, sku, location_id, qty, status, \
             presale_session_id, expires_at, created_at, updated_at) \
             VALUES ($1, $2, NULL, $3, $4, $5, 'held', NULL, $6, $7, $7)",
        )
        .bind(tenant)
        .bind(&h.id)
        .bind(&h.sku)
        .bind(&h.location_id)
        .bind(h.qty)
        .bind(h.expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_rows(
            &mut tx,
            "INSERT INTO reservation_lots (tenant, reservation_id, lot_id, expires_at, qty)",
            "",
            planned
                .lots
                .iter()
                .map(|p| {
                    vec![
                        s(tenant),
                        s(&h.id),
                        s(&p.lot_id),
                        V::I(p.expires_at),
                        V::I(p.qty),
                    ]
                })
                .collect(),
        )
        .await?;
        tx.commit().await?;
        Ok(Reservation {
            id: h.id.clone(),
            order_id: None,
            sku: h.sku.clone(),
            location_id: h.location_id.clone(),
            qty: h.qty,
            status: ReservationStatus::Held,
            presale_session_id: None,
            expires_at: h.expires_at,
            lots: planned.lots,
            created_at: now,
        })
    }

    async fn release_hold(&self, tenant: &str, reservation_id: &str) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let found =
            fetch_reservations(&mut tx, tenant, "r.id = $2", vec![s(reservation_id)]).await?;
        if found.is_empty() {
            return Err(StoreError::not_found("reservation", reservation_id));
        }
        let released =
            release_reservations(&mut tx, tenant, &found, ReservationStatus::Released, now).await?;
        if !released.is_empty() {
            add_event(
                &mut tx,
                tenant,
                "reservation",
                reservation_id,
                "reservation.released",
                &serde_json::json!({ "reservation_id": reservation_id }),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(!released.is_empty())
    }

    async fn reservation(&self, tenant: &str, id: &str) -> Result<Option<Reservation>, StoreError> {
        let mut c = self.read().await?;
        let mut found = fetch_reservations(&mut c, tenant, "r.id = $2", vec![s(id)]).await?;
        Ok(found.pop())
    }

    async fn sweep_expired_reservations(&self, limit: u32) -> Result<ExpirySweep, StoreError> {
        let now = self.now_ms();
        let due = sqlx::query(
            "SELECT tenant, id, order_id FROM reservations \
             WHERE status = 'held' AND expires_at IS NOT NULL AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.inner.write)
        .await?;
        let mut sweep = ExpirySweep::default();
        let mut orders_done = BTreeSet::new();
        for row in &due {
            let tenant: String = row.try_get("tenant")?;
            let id: String = row.try_get("id")?;
            let order_id: Option<String> = row.try_get("order_id")?;
            let mut tx = self.begin().await?;
            match order_id {
                None => {
                    let found =
                        fetch_reservations(&mut tx, &tenant, "r.id = $2", vec![s(&id)]).await?;
                    let released = release_reservations(
                        &mut tx,
                        &tenant,
                        &found,
                        ReservationStatus::Expired,
                        now,
                    )
                    .await?;
                    if !released.is_empty() {
                        add_event(
                            &mut tx,
                            &tenant,
                            "reservation",
                            &id,
                            "reservation.expired",
                            &serde_json::json!({ "reservation_id": id }),
                            now,
                        )
                        .await?;
                        sweep.released_holds.push((tenant.clone(), id.clone()));
                    }
                }
                Some(order_id) => {
                    if !orders_done.insert((tenant.clone(), order_id.clone())) {
                        continue;
                    }
                    let state = order_state_locked(&mut tx, &tenant, &order_id).await?;
                    if state == OrderState::Placed {
                        cancel_in_tx(
                            &mut tx,
                            &tenant,
                            &order_id,
                            "reservation_expired",
                            ReservationStatus::Expired,
                            now,
                        )
                        .await?;
                        // The sweep has no rules: the `order.cancelled` SOPs are opened
                        // by the order API's background job (`pending_sops`).
                        sqlx::query(
                            "UPDATE orders SET sops_pending = 'order.cancelled' \
                             WHERE tenant = $1 AND id = $2",
                        )
                        .bind(&tenant)
                        .bind(&order_id)
                        .execute(&mut *tx)
                        .await?;
                        sweep.cancelled_orders.push((tenant.clone(), order_id));
                    } else {
                        // Paid (allocated) before the sweep got here: keep the units.
                        sqlx::query(
                            "UPDATE reservations SET expires_at = NULL \
                             WHERE tenant = $1 AND order_id = $2 AND status = 'held'",
                        )
                        .bind(&tenant)
                        .bind(&order_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            tx.commit().await?;
        }
        Ok(sweep)
    }

    async fn lock_presale(
        &self,
        tenant: &str,
        p: &NewPresale,
    ) -> Result<PresaleSession, StoreError> {
        check_positive("presale quantity", p.qty)?;
        if p.session_id.is_empty() || p.waves.is_empty() {
            return Err(StoreError::Invalid(
                "a presale needs an id and waves".into(),
            ));
        }
        if p.waves.iter().any(|w| w.qty <= 0) || p.waves.iter().map(|w| w.qty).sum::<i64>() != p.qty
        {
            return Err(StoreError::Invalid(
                "presale waves must be positive and add up to the locked quantity".into(),
            ));
        }
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        if fetch_presale(&mut tx, tenant, &p.session_id)
            .await?
            .is_some()
        {
            return Err(StoreError::AlreadyExists {
                kind: "presale session",
                id: p.session_id.clone(),
            });
        }
        let stock = fetch_stock(&mut tx, tenant, &p.sku, &p.location_id).await?;
        let available = stock
            .as_ref()
            .map_or(0, |s| s.on_hand - s.reserved - s.safety_stock);
        if stock.as_ref().is_some_and(|s| s.lot_tracked) {
            return Err(StoreError::Invalid(
                "presale of lot-tracked SKUs is not supported".into(),
            ));
        }
        if available < p.qty {
            return Err(StoreError::InsufficientStock {
                sku: p.sku.clone(),
                location_id: p.location_id.clone(),
                requested: p.qty,
                available: available.max(0),
            });
        }
        let done = sqlx::query(
            "UPDATE stock SET reserved = reserved + $4, updated_at = $5 \
             WHERE tenant = $1 AND sku = $2 AND location_id = $3 \
             AND on_hand - reserved - safety_stock >= $4",
        )
        .bind(tenant)
        .bind(&p.sku)
        .bind(&p.location_id)
        .bind(p.qty)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::InsufficientStock {
                sku: p.sku.clone(),
                location_id: p.location_id.clone(),
                requested: p.qty,
                available: 0,
            });
        }
        // Waves already due are released at once.
        let released_now: i64 = p
            .waves
            .iter()
            .filter(|w| w.release_at <= now)
            .map(|w| w.qty)
            .sum();
        sqlx::query(
            "INSERT INTO presale_sessions (tenant, id, sku, location_id, locked, released, sold, \
             ends_at, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, 'open', $8, $8)",
        )
        .bind(tenant)
        .bind(&p.session_id)
        .bind(&p.sku)
        .bind(&p.location_id)
        .bind(p.qty)
        .bind(released_now)
        .bind(p.ends_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_rows(
            &mut tx,
            "INSERT INTO presale_waves (tenant, session_id, wave_no, release_at, qty, released)",
            "",
            (1i64..)
                .zip(&p.waves)
                .map(|(n, w)| {
                    vec![
                        s(tenant),
                        s(&p.session_id),
                        V::I(n),
                        V::I(w.release_at),
                        V::I(w.qty),
                        V::B(w.release_at <= now),
                    ]
                })
                .collect(),
        )
        .await?;
        add_event(
            &mut tx,
            tenant,
            "presale",
            &p.session_id,
            "presale.locked",
            &serde_json::json!({ "session_id": p.session_id, "sku": p.sku,
                "location_id": p.location_id, "qty": p.qty }),
            now,
        )
        .await?;
        let session = fetch_presale(&mut tx, tenant, &p.session_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("presale session vanished".into()))?;
        tx.commit().await?;
        Ok(session)
    }

    async fn presale_session(
        &self,
        tenant: &str,
        session_id: &str,
    ) -> Result<Option<PresaleSession>, StoreError> {
        let mut c = self.read().await?;
        fetch_presale(&mut c, tenant, session_id).await
    }

    async fn end_presale(
        &self,
        tenant: &str,
        session_id: &str,
    ) -> Result<PresaleSession, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT sku, location_id, locked, sold, state FROM presale_sessions ",
            "WHERE tenant = $1 AND id = $2",
            for_update!()
        ))
        .bind(tenant)
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("presale session", session_id))?;
        let st: String = row.try_get("state")?;
        if st == PresaleState::Open.as_str() {
            let sku: String = row.try_get("sku")?;
            let location_id: String = row.try_get("location_id")?;
            let locked: i64 = row.try_get("locked")?;
            let sold: i64 = row.try_get("sold")?;
            let unsold = locked - sold;
            sqlx::query(
                "UPDATE stock SET reserved = reserved - $4, updated_at = $5 \
                 WHERE tenant = $1 AND sku = $2 AND location_id = $3",
            )
            .bind(tenant)
            .bind(&sku)
            .bind(&location_id)
            .bind(unsold)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // What stays locked is what was sold (until shipped or cancelled).
            sqlx::query(
                "UPDATE presale_sessions SET state = 'closed', locked = sold, released = sold, \
                 updated_at = $3 WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(session_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            add_event(
                &mut tx,
                tenant,
                "presale",
                session_id,
                "presale.ended",
                &serde_json::json!({ "session_id": session_id, "sold": sold,
                    "returned_to_stock": unsold }),
                now,
            )
            .await?;
        }
        let session = fetch_presale(&mut tx, tenant, session_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("presale session vanished".into()))?;
        tx.commit().await?;
        Ok(session)
    }

    async fn presale_tick(&self) -> Result<PresaleTick, StoreError> {
        let now = self.now_ms();
        let mut tick = PresaleTick::default();
        let due = sqlx::query(
            "SELECT tenant, session_id, wave_no, qty FROM presale_waves \
             WHERE NOT released AND release_at <= $1 ORDER BY release_at, wave_no LIMIT 1000",
        )
        .bind(now)
        .fetch_all(&self.inner.write)
        .await?;
        for row in &due {
            let tenant: String = row.try_get("tenant")?;
            let session: String = row.try_get("session_id")?;
            let wave_no: i64 = row.try_get("wave_no")?;
            let qty: i64 = row.try_get("qty")?;
            let mut tx = self.begin().await?;
            let done = sqlx::query(
                "UPDATE presale_waves SET released = TRUE \
                 WHERE tenant = $1 AND session_id = $2 AND wave_no = $3 AND NOT released",
            )
            .bind(&tenant)
            .bind(&session)
            .bind(wave_no)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                let opened = sqlx::query(
                    "UPDATE presale_sessions SET released = released + $3, updated_at = $4 \
                     WHERE tenant = $1 AND id = $2 AND state = 'open'",
                )
                .bind(&tenant)
                .bind(&session)
                .bind(qty)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if opened.rows_affected() == 1 {
                    add_event(
                        &mut tx,
                        &tenant,
                        "presale",
                        &session,
                        "presale.wave_released",
                        &serde_json::json!({ "session_id": session, "wave_no": wave_no,
                            "qty": qty }),
                        now,
                    )
                    .await?;
                    tick.released_waves
                        .push((tenant.clone(), session.clone(), wave_no, qty));
                }
            }
            tx.commit().await?;
        }
        let ending = sqlx::query(
            "SELECT tenant, id, locked, sold FROM presale_sessions \
             WHERE state = 'open' AND ends_at <= $1 ORDER BY ends_at LIMIT 1000",
        )
        .bind(now)
        .fetch_all(&self.inner.write)
        .await?;
        for row in &ending {
            let tenant: String = row.try_get("tenant")?;
            let id: String = row.try_get("id")?;
            let before: i64 = row.try_get::<i64, _>("locked")? - row.try_get::<i64, _>("sold")?;
            let after = self.end_presale(&tenant, &id).await?;
            let _ = after;
            tick.ended_sessions.push((tenant, id, before));
        }
        Ok(tick)
    }

    async fn place_order(&self, order: NewOrder) -> Result<PlacedOrder, PlaceError> {
        crate::store::placement::validate(&order)?;
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { order, reply })
            .await
            .map_err(|_| PlaceError::Store(StoreError::Closed))?;
        answer
            .await
            .map_err(|_| PlaceError::Store(StoreError::Closed))?
    }

    async fn order_by_idempotency_key(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let mut c = self.read().await?;
        order_by_key(&mut c, tenant, key).await
    }

    async fn order(&self, tenant: &str, order_id: &str) -> Result<Option<OrderRecord>, StoreError> {
        let mut c = self.read().await?;
        let sql = format!("SELECT {ORDER_COLS} FROM orders WHERE tenant = $1 AND id = $2");
        let Some(row) = sqlx::query(&sql)
            .bind(tenant)
            .bind(order_id)
            .fetch_optional(&mut *c)
            .await?
        else {
            return Ok(None);
        };
        let summary = order_row(&row)?;
        let lines = sqlx::query(
            "SELECT line_no, sku, qty, unit_price_minor, discount_minor FROM order_lines \
             WHERE tenant = $1 AND order_id = $2 ORDER BY line_no",
        )
        .bind(tenant)
        .bind(order_id)
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| {
            Ok(OrderLine {
                line_no: r.try_get("line_no")?,
                sku: r.try_get("sku")?,
                qty: r.try_get("qty")?,
                unit_price_minor: r.try_get("unit_price_minor")?,
                discount_minor: r.try_get("discount_minor")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let reservations =
            fetch_reservations(&mut c, tenant, "r.order_id = $2", vec![s(order_id)]).await?;
        let mut shipments = sqlx::query(
            "SELECT shipment_no, location_id, carrier_mode, packaging FROM shipments \
             WHERE tenant = $1 AND order_id = $2 ORDER BY shipment_no",
        )
        .bind(tenant)
        .bind(order_id)
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| {
            let packaging: String = r.try_get("packaging")?;
            Ok(Shipment {
                shipment_no: r.try_get("shipment_no")?,
                location_id: r.try_get("location_id")?,
                carrier_mode: r.try_get("carrier_mode")?,
                packaging: serde_json::from_str(&packaging)
                    .map_err(|e| StoreError::Corrupt(format!("packaging: {e}")))?,
                lines: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        for row in sqlx::query(
            "SELECT shipment_no, line_no, qty FROM shipment_lines \
             WHERE tenant = $1 AND order_id = $2 ORDER BY shipment_no, line_no",
        )
        .bind(tenant)
        .bind(order_id)
        .fetch_all(&mut *c)
        .await?
        .iter()
        {
            let no: i64 = row.try_get("shipment_no")?;
            if let Some(sh) = shipments.iter_mut().find(|s| s.shipment_no == no) {
                sh.lines.push(ShipmentLine {
                    line_no: row.try_get("line_no")?,
                    qty: row.try_get("qty")?,
                });
            }
        }
        let decision = match sqlx::query(
            "SELECT ruleset_hash, hooks, fired_rules, facts_digest, facts FROM decision_records \
             WHERE tenant = $1 AND order_id = $2",
        )
        .bind(tenant)
        .bind(order_id)
        .fetch_optional(&mut *c)
        .await?
        {
            None => None,
            Some(r) => {
                let hooks: String = r.try_get("hooks")?;
                let fired: String = r.try_get("fired_rules")?;
                let facts: Option<String> = r.try_get("facts")?;
                Some(DecisionRecord {
                    ruleset_hash: r.try_get("ruleset_hash")?,
                    hooks: json_value(&hooks)?,
                    fired_rules: serde_json::from_str(&fired)
                        .map_err(|e| StoreError::Corrupt(format!("fired rules: {e}")))?,
                    facts_digest: r.try_get("facts_digest")?,
                    facts: facts.as_deref().map(json_value).transpose()?,
                })
            }
        };
        let budgets = sqlx::query(
            "SELECT key, amount, compensated FROM order_budget_uses \
             WHERE tenant = $1 AND order_id = $2 ORDER BY key",
        )
        .bind(tenant)
        .bind(order_id)
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| {
            Ok(BudgetConsumption {
                key: r.try_get("key")?,
                amount: r.try_get("amount")?,
                compensated: r.try_get("compensated")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let work_orders = fetch_work_orders(&mut c, tenant, "order_id", order_id).await?;
        Ok(Some(OrderRecord {
            summary,
            lines,
            reservations,
            shipments,
            decision,
            budgets,
            work_orders,
        }))
    }

    async fn list_orders(
        &self,
        tenant: &str,
        f: &OrderFilter,
    ) -> Result<Vec<OrderSummary>, StoreError> {
        let mut sql = format!("SELECT {ORDER_COLS} FROM orders WHERE tenant = $1");
        let mut args: Vec<V> = Vec::new();
        let mut push = |sql: &mut String, cond: &str, v: V| {
            args.push(v);
            sql.push_str(&cond.replace('?', &format!("${}", args.len() + 1)));
        };
        if let Some(st) = f.state {
            push(&mut sql, " AND state = ?", s(st.as_str()));
        }
        match f.on_hold {
            Some(true) => sql.push_str(" AND hold_reason IS NOT NULL"),
            Some(false) => sql.push_str(" AND hold_reason IS NULL"),
            None => {}
        }
        if let Some(c) = &f.customer_id {
            push(&mut sql, " AND customer_id = ?", s(c));
        }
        if let Some(c) = &f.channel {
            push(&mut sql, " AND channel = ?", s(c));
        }
        if let Some(t) = f.created_from {
            push(&mut sql, " AND created_at >= ?", V::I(t));
        }
        if let Some(t) = f.created_before {
            push(&mut sql, " AND created_at < ?", V::I(t));
        }
        if let Some((t, id)) = &f.after {
            push(&mut sql, " AND (created_at > ?", V::I(*t));
            push(&mut sql, " OR (created_at = ?", V::I(*t));
            push(&mut sql, " AND id > ?))", s(id));
        }
        let limit = match f.limit {
            0 => 100,
            n => n.min(1000),
        };
        push(
            &mut sql,
            " ORDER BY created_at, id LIMIT ?",
            V::I(i64::from(limit)),
        );
        bind_all(sqlx::query(&sql).bind(tenant), args)
            .fetch_all(&self.inner.read)
            .await?
            .iter()
            .map(order_row)
            .collect()
    }

    async fn cancel_order(
        &self,
        tenant: &str,
        order_id: &str,
        reason: &str,
        work_orders: &[NewWorkOrder],
    ) -> Result<CancelOutcome, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let state = order_state_locked(&mut tx, tenant, order_id).await?;
        if state == OrderState::Cancelled {
            return Ok(CancelOutcome {
                order_id: order_id.to_owned(),
                already_cancelled: true,
                released_reservations: Vec::new(),
                event_id: None,
                work_order_ids: Vec::new(),
            });
        }
        if !state.cancellable() {
            return Err(StoreError::IllegalTransition {
                order_id: order_id.to_owned(),
                from: state,
                to: OrderState::Cancelled,
            });
        }
        let mut outcome = cancel_in_tx(
            &mut tx,
            tenant,
            order_id,
            reason,
            ReservationStatus::Released,
            now,
        )
        .await?;
        outcome.work_order_ids =
            open_work_orders(&mut tx, tenant, order_id, work_orders, now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn advance_order(
        &self,
        tenant: &str,
        order_id: &str,
        to: OrderState,
        work_orders: &[NewWorkOrder],
    ) -> Result<Advanced, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let (from, hold) = order_locked(&mut tx, tenant, order_id).await?;
        if from == to && to != OrderState::Cancelled {
            return Ok(Advanced {
                state: to,
                changed: false,
                work_order_ids: Vec::new(),
            });
        }
        if !from.can_advance_to(to) {
            return Err(StoreError::IllegalTransition {
                order_id: order_id.to_owned(),
                from,
                to,
            });
        }
        // A held order may be paid for (allocated), not fulfilled.
        if let (Some(reason), true) = (hold, to != OrderState::Allocated) {
            return Err(StoreError::OnHold {
                order_id: order_id.to_owned(),
                reason,
                to,
            });
        }
        sqlx::query("UPDATE orders SET state = $3, updated_at = $4 WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(order_id)
            .bind(to.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        match to {
            OrderState::Allocated => {
                sqlx::query(
                    "UPDATE reservations SET expires_at = NULL, updated_at = $3 \
                     WHERE tenant = $1 AND order_id = $2 AND status = 'held'",
                )
                .bind(tenant)
                .bind(order_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            OrderState::Shipped => {
                let held = fetch_reservations(
                    &mut tx,
                    tenant,
                    "r.order_id = $2 AND r.status = 'held'",
                    vec![s(order_id)],
                )
                .await?;
                confirm_reservations(&mut tx, tenant, order_id, &held, now).await?;
            }
            _ => {}
        }
        add_event(
            &mut tx,
            tenant,
            "order",
            order_id,
            &format!("order.{}", to.as_str()),
            &serde_json::json!({ "order_id": order_id, "from": from.as_str(), "to": to.as_str() }),
            now,
        )
        .await?;
        let work_order_ids = open_work_orders(&mut tx, tenant, order_id, work_orders, now).await?;
        tx.commit().await?;
        Ok(Advanced {
            state: to,
            changed: true,
            work_order_ids,
        })
    }

    async fn pending_sops(&self, limit: usize) -> Result<Vec<PendingSops>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, id, sops_pending FROM orders WHERE sops_pending IS NOT NULL \
             ORDER BY updated_at, tenant, id LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingSops {
                    tenant: row.try_get("tenant")?,
                    order_id: row.try_get("id")?,
                    event: row.try_get("sops_pending")?,
                })
            })
            .collect()
    }

    async fn open_pending_sops(
        &self,
        tenant: &str,
        order_id: &str,
        event: &str,
        work_orders: &[NewWorkOrder],
    ) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        order_state_locked(&mut tx, tenant, order_id).await?;
        let cleared = sqlx::query(
            "UPDATE orders SET sops_pending = NULL \
             WHERE tenant = $1 AND id = $2 AND sops_pending = $3",
        )
        .bind(tenant)
        .bind(order_id)
        .bind(event)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if cleared == 0 {
            return Ok(false);
        }
        open_work_orders(&mut tx, tenant, order_id, work_orders, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn release_order(
        &self,
        tenant: &str,
        order_id: &str,
        by: &str,
    ) -> Result<Released, StoreError> {
        if by.is_empty() {
            return Err(StoreError::Invalid(
                "a release names who released the order".into(),
            ));
        }
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let (state, hold) = order_locked(&mut tx, tenant, order_id).await?;
        let Some(reason) = hold else {
            return Ok(Released {
                order_id: order_id.to_owned(),
                released: false,
                hold_reason: None,
                state,
            });
        };
        sqlx::query(
            "UPDATE orders SET hold_reason = NULL, updated_at = $3 WHERE tenant = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(order_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        add_event(
            &mut tx,
            tenant,
            "order",
            order_id,
            "order.released",
            &serde_json::json!({ "order_id": order_id, "hold_reason": reason, "by": by }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Released {
            order_id: order_id.to_owned(),
            released: true,
            hold_reason: Some(reason),
            state,
        })
    }

    async fn create_return(
        &self,
        tenant: &str,
        ret: &NewReturn,
        work_orders: &[NewWorkOrder],
    ) -> Result<ReturnRecord, StoreError> {
        if ret.return_id.is_empty() || ret.lines.is_empty() {
            return Err(StoreError::Invalid("a return needs an id and lines".into()));
        }
        let mut seen = BTreeSet::new();
        for l in &ret.lines {
            check_positive("returned quantity", l.qty)?;
            if !seen.insert(l.line_no) {
                return Err(StoreError::Invalid(format!(
                    "line {} appears twice",
                    l.line_no
                )));
            }
        }
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let state = order_state_locked(&mut tx, tenant, &ret.order_id).await?;
        if !matches!(state, OrderState::Shipped | OrderState::Delivered) {
            return Err(StoreError::NotReturnable {
                order_id: ret.order_id.clone(),
                state,
            });
        }
        if fetch_return(&mut tx, tenant, &ret.return_id)
            .await?
            .is_some()
        {
            return Err(StoreError::AlreadyExists {
                kind: "return",
                id: ret.return_id.clone(),
            });
        }
        if !location_exists(&mut tx, tenant, &ret.receiving_location_id).await? {
            return Err(StoreError::not_found(
                "location",
                &ret.receiving_location_id,
            ));
        }
        let mut rows = Vec::new();
        for l in &ret.lines {
            let line = sqlx::query(
                "SELECT sku, qty FROM order_lines WHERE tenant = $1 AND order_id = $2 AND line_no = $3",
            )
            .bind(tenant)
            .bind(&ret.order_id)
            .bind(l.line_no)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| {
                StoreError::not_found("order line", &format!("{}#{}", ret.order_id, l.line_no))
            })?;
            let sku: String = line.try_get("sku")?;
            let ordered: i64 = line.try_get("qty")?;
            let returned: i64 = sqlx::query(
                "SELECT CAST(COALESCE(SUM(rl.qty), 0) AS BIGINT) AS n FROM return_lines rl \
                 JOIN returns r ON r.tenant = rl.tenant AND r.id = rl.return_id \
                 WHERE r.tenant = $1 AND r.order_id = $2 AND rl.line_no = $3",
            )
            .bind(tenant)
            .bind(&ret.order_id)
            .bind(l.line_no)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            let asked = l.qty;
            if asked > ordered - returned {
                return Err(StoreError::ReturnExceedsShipped {
                    order_id: ret.order_id.clone(),
                    line_no: l.line_no,
                    requested: asked,
                    returnable: ordered - returned,
                });
            }
            rows.push(vec![
                s(tenant),
                s(&ret.return_id),
                V::I(l.line_no),
                V::S(sku),
                V::I(l.qty),
            ]);
        }
        sqlx::query(
            "INSERT INTO returns (tenant, id, order_id, receiving_location_id, state, created_at) \
             VALUES ($1, $2, $3, $4, 'received', $5)",
        )
        .bind(tenant)
        .bind(&ret.return_id)
        .bind(&ret.order_id)
        .bind(&ret.receiving_location_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_rows(
            &mut tx,
            "INSERT INTO return_lines (tenant, return_id, line_no, sku, qty)",
            "",
            rows,
        )
        .await?;
        add_event(
            &mut tx,
            tenant,
            "return",
            &ret.return_id,
            "return.received",
            &serde_json::json!({ "return_id": ret.return_id, "order_id": ret.order_id,
                "receiving_location_id": ret.receiving_location_id }),
            now,
        )
        .await?;
        open_work_orders(&mut tx, tenant, &ret.order_id, work_orders, now).await?;
        let record = fetch_return(&mut tx, tenant, &ret.return_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("return vanished".into()))?;
        tx.commit().await?;
        Ok(record)
    }

    async fn record_return_qc(
        &self,
        tenant: &str,
        return_id: &str,
        passed: bool,
        lot: Option<&LotRef>,
    ) -> Result<ReturnRecord, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT state FROM returns WHERE tenant = $1 AND id = $2",
            for_update!()
        ))
        .bind(tenant)
        .bind(return_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("return", return_id))?;
        let state: String = row.try_get("state")?;
        if state != ReturnState::Received.as_str() {
            return Err(StoreError::QcAlreadyRecorded {
                return_id: return_id.to_owned(),
                state,
            });
        }
        let record = fetch_return(&mut tx, tenant, return_id)
            .await?
            .ok_or_else(|| StoreError::not_found("return", return_id))?;
        if passed {
            // Restock where the goods physically are: the receiving location, whichever
            // location shipped them.
            for (_, sku, qty) in &record.lines {
                add_stock(
                    &mut tx,
                    tenant,
                    sku,
                    &record.receiving_location_id,
                    *qty,
                    lot,
                    MovementKind::ReturnRestock,
                    return_id,
                    now,
                )
                .await?;
            }
        }
        let new_state = if passed {
            ReturnState::QcPassed
        } else {
            ReturnState::QcFailed
        };
        sqlx::query("UPDATE returns SET state = $3, qc_at = $4 WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(return_id)
            .bind(new_state.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        add_event(
            &mut tx,
            tenant,
            "return",
            return_id,
            &format!("return.{}", new_state.as_str()),
            &serde_json::json!({ "return_id": return_id, "restocked": passed,
                "location_id": record.receiving_location_id }),
            now,
        )
        .await?;
        let record = fetch_return(&mut tx, tenant, return_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("return vanished".into()))?;
        tx.commit().await?;
        Ok(record)
    }

    async fn return_record(
        &self,
        tenant: &str,
        return_id: &str,
    ) -> Result<Option<ReturnRecord>, StoreError> {
        let mut c = self.read().await?;
        fetch_return(&mut c, tenant, return_id).await
    }

    async fn velocity_counts(
        &self,
        tenant: &str,
        keys: &[VelocityKey],
        window_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        self.count_velocity(tenant, keys, window_ms, false).await
    }

    async fn velocity_customers(
        &self,
        tenant: &str,
        keys: &[VelocityKey],
        window_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        self.count_velocity(tenant, keys, window_ms, true).await
    }

    async fn record_velocity(
        &self,
        tenant: &str,
        keys: &[VelocityKey],
        customer_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let mut c = self.inner.write.acquire().await?;
        insert_rows(
            &mut c,
            "INSERT INTO velocity_events (tenant, kind, key, at, order_id, customer_id)",
            "",
            keys.iter()
                .map(|k| {
                    vec![
                        s(tenant),
                        s(&k.kind),
                        s(&k.key),
                        V::I(now),
                        V::OS(None),
                        V::OS(customer_id.map(str::to_owned)),
                    ]
                })
                .collect(),
        )
        .await?;
        Ok(())
    }

    async fn order_reads(
        &self,
        tenant: &str,
        reads: &OrderReads,
    ) -> Result<OrderReadings, StoreError> {
        match &self.reads {
            Some(batcher) => batcher.read(tenant, reads).await,
            None => order_reads_one(&self.inner.read, self.now_ms(), tenant, reads).await,
        }
    }

    async fn budget_usage(
        &self,
        tenant: &str,
        key: &str,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let row = sqlx::query("SELECT used, cap FROM budgets WHERE tenant = $1 AND key = $2")
            .bind(tenant)
            .bind(key)
            .fetch_optional(&self.inner.read)
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("used")?, r.try_get("cap")?)),
            None => None,
        })
    }

    async fn limit_usage(
        &self,
        tenant: &str,
        key: &str,
        customer_id: &str,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT used, max_uses FROM customer_limits \
             WHERE tenant = $1 AND key = $2 AND customer_id = $3",
        )
        .bind(tenant)
        .bind(key)
        .bind(customer_id)
        .fetch_optional(&self.inner.read)
        .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("used")?, r.try_get("max_uses")?)),
            None => None,
        })
    }

    async fn prune_velocity(&self, before: Millis) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM velocity_events WHERE at < $1")
            .bind(before)
            .execute(&self.inner.write)
            .await?;
        Ok(done.rows_affected())
    }

    async fn replace_list(
        &self,
        tenant: &str,
        name: &str,
        members: &[String],
        expected_version: Option<i64>,
    ) -> Result<RuntimeList, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        lock_list(&mut tx, tenant, name, expected_version, now).await?;
        sqlx::query("DELETE FROM runtime_list_members WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let unique: BTreeSet<&String> = members.iter().collect();
        insert_rows(
            &mut tx,
            "INSERT INTO runtime_list_members (tenant, name, member)",
            "",
            unique
                .into_iter()
                .map(|m| vec![s(tenant), s(name), s(m)])
                .collect(),
        )
        .await?;
        let list = fetch_list(&mut tx, tenant, name)
            .await?
            .ok_or_else(|| StoreError::Corrupt("list vanished".into()))?;
        tx.commit().await?;
        self.reference_changed(tenant).await;
        Ok(list)
    }

    async fn patch_list(
        &self,
        tenant: &str,
        name: &str,
        add: &[String],
        remove: &[String],
        expected_version: Option<i64>,
    ) -> Result<RuntimeList, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        lock_list(&mut tx, tenant, name, expected_version, now).await?;
        for m in remove.iter().collect::<BTreeSet<_>>() {
            sqlx::query(
                "DELETE FROM runtime_list_members WHERE tenant = $1 AND name = $2 AND member = $3",
            )
            .bind(tenant)
            .bind(name)
            .bind(m)
            .execute(&mut *tx)
            .await?;
        }
        let unique: BTreeSet<&String> = add.iter().collect();
        insert_rows(
            &mut tx,
            "INSERT INTO runtime_list_members (tenant, name, member)",
            "ON CONFLICT (tenant, name, member) DO NOTHING",
            unique
                .into_iter()
                .map(|m| vec![s(tenant), s(name), s(m)])
                .collect(),
        )
        .await?;
        let list = fetch_list(&mut tx, tenant, name)
            .await?
            .ok_or_else(|| StoreError::Corrupt("list vanished".into()))?;
        tx.commit().await?;
        self.reference_changed(tenant).await;
        Ok(list)
    }

    async fn list(&self, tenant: &str, name: &str) -> Result<Option<Arc<RuntimeList>>, StoreError> {
        let cache = &self.inner.reference.lists;
        if let Ok(hit) = cache.get(tenant, name) {
            return Ok(hit.as_ref().clone());
        }
        let _reading = self.inner.reference.list_reads.lock().await;
        // Another order may have read it while this one waited.
        let ticket = match cache.get(tenant, name) {
            Ok(hit) => return Ok(hit.as_ref().clone()),
            Err(ticket) => ticket,
        };
        let mut c = self.read().await?;
        // An expired copy of the current version is kept, only renewed: one small query
        // instead of every member again (a list's version grows with every change).
        if let Some(Some(cached)) = cache.stale(tenant, name).as_deref() {
            let version: Option<i64> = sqlx::query_scalar(
                "SELECT version FROM runtime_lists WHERE tenant = $1 AND name = $2",
            )
            .bind(tenant)
            .bind(name)
            .fetch_optional(&mut *c)
            .await?;
            if version == Some(cached.version) {
                let renewed = Some(Arc::clone(cached));
                return Ok(cache.put(tenant, name, ticket, renewed).as_ref().clone());
            }
        }
        let list = fetch_list(&mut c, tenant, name).await?.map(Arc::new);
        Ok(cache.put(tenant, name, ticket, list).as_ref().clone())
    }

    async fn list_names(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query("SELECT name FROM runtime_lists WHERE tenant = $1 ORDER BY name")
                .bind(tenant)
                .fetch_all(&self.inner.read)
                .await?
                .iter()
                .map(|r| r.try_get("name"))
                .collect::<Result<Vec<String>, _>>()?,
        )
    }

    async fn create_work_order(
        &self,
        tenant: &str,
        w: &NewWorkOrder,
    ) -> Result<WorkOrder, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM work_orders WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(&w.id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists {
                kind: "work order",
                id: w.id.clone(),
            });
        }
        insert_work_orders(
            &mut tx,
            tenant,
            w.order_id.as_deref(),
            std::slice::from_ref(w),
            now,
        )
        .await?;
        let mut found = fetch_work_orders(&mut tx, tenant, "id", &w.id).await?;
        tx.commit().await?;
        found
            .pop()
            .ok_or_else(|| StoreError::Corrupt("work order vanished".into()))
    }

    async fn list_work_orders(
        &self,
        tenant: &str,
        filter: &WorkOrderFilter,
    ) -> Result<Vec<WorkOrder>, StoreError> {
        let mut c = self.read().await?;
        // Without an order, the open ones unless a state is given.
        let state = match &filter.order_id {
            Some(_) => filter.state,
            None => Some(filter.state.unwrap_or(WorkOrderState::Open)),
        };
        let (column, value) = match (&filter.order_id, &filter.location_id, state) {
            (Some(order_id), _, _) => ("order_id", order_id.as_str()),
            (None, Some(location), _) => ("location_id", location.as_str()),
            (None, None, state) => ("state", state.unwrap_or(WorkOrderState::Open).as_str()),
        };
        let mut found = fetch_work_orders(&mut c, tenant, column, value).await?;
        found.retain(|w| {
            state.is_none_or(|state| w.state == state)
                && filter
                    .location_id
                    .as_ref()
                    .is_none_or(|location| w.location_id.as_ref() == Some(location))
        });
        Ok(found)
    }

    async fn work_order(&self, tenant: &str, id: &str) -> Result<Option<WorkOrder>, StoreError> {
        let mut c = self.read().await?;
        Ok(fetch_work_orders(&mut c, tenant, "id", id).await?.pop())
    }

    async fn complete_step(
        &self,
        tenant: &str,
        work_order_id: &str,
        step_no: i64,
        completion: &StepCompletion,
    ) -> Result<WorkOrder, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT evidence_kind, state FROM work_order_steps ",
            "WHERE tenant = $1 AND work_order_id = $2 AND step_no = $3",
            for_update!()
        ))
        .bind(tenant)
        .bind(work_order_id)
        .bind(step_no)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            StoreError::not_found("work order step", &format!("{work_order_id}#{step_no}"))
        })?;
        let state: String = row.try_get("state")?;
        if state == StepState::Done.as_str() {
            return Err(StoreError::StepAlreadyDone {
                work_order_id: work_order_id.to_owned(),
                step_no,
            });
        }
        let evidence: Option<String> = row.try_get("evidence_kind")?;
        let given = completion
            .evidence_ref
            .as_deref()
            .filter(|e| !e.trim().is_empty());
        if let (Some(kind), None) = (&evidence, given) {
            return Err(StoreError::EvidenceRequired {
                work_order_id: work_order_id.to_owned(),
                step_no,
                evidence: kind.clone(),
            });
        }
        sqlx::query(
            "UPDATE work_order_steps SET state = 'done', completed_at = $4, completed_by = $5, \
             evidence_ref = $6 WHERE tenant = $1 AND work_order_id = $2 AND step_no = $3",
        )
        .bind(tenant)
        .bind(work_order_id)
        .bind(step_no)
        .bind(now)
        .bind(&completion.by)
        .bind(given)
        .execute(&mut *tx)
        .await?;
        let open: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM work_order_steps \
             WHERE tenant = $1 AND work_order_id = $2 AND state <> 'done'",
        )
        .bind(tenant)
        .bind(work_order_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if open == 0 {
            sqlx::query(
                "UPDATE work_orders SET state = 'done', updated_at = $3 \
                 WHERE tenant = $1 AND id = $2",
            )
            .bind(tenant)
            .bind(work_order_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            add_event(
                &mut tx,
                tenant,
                "work_order",
                work_order_id,
                "sop.completed",
                &serde_json::json!({ "work_order_id": work_order_id }),
                now,
            )
            .await?;
        }
        let mut found = fetch_work_orders(&mut tx, tenant, "id", work_order_id).await?;
        tx.commit().await?;
        found
            .pop()
            .ok_or_else(|| StoreError::Corrupt("work order vanished".into()))
    }

    async fn escalate_overdue_steps(&self, limit: u32) -> Result<Vec<EscalatedStep>, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let due = sqlx::query(concat!(
            "SELECT tenant, work_order_id, step_no, role, deadline_at FROM work_order_steps ",
            "WHERE state = 'pending' AND deadline_at IS NOT NULL AND deadline_at <= $1 ",
            "ORDER BY deadline_at, tenant, work_order_id, step_no LIMIT $2",
            for_update!()
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(due.len());
        for row in &due {
            let tenant: String = row.try_get("tenant")?;
            let work_order_id: String = row.try_get("work_order_id")?;
            let step_no: i64 = row.try_get("step_no")?;
            let role: String = row.try_get("role")?;
            let deadline_at: i64 = row.try_get("deadline_at")?;
            sqlx::query(
                "UPDATE work_order_steps SET state = 'escalated', escalated_at = $4 \
                 WHERE tenant = $1 AND work_order_id = $2 AND step_no = $3",
            )
            .bind(&tenant)
            .bind(&work_order_id)
            .bind(step_no)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let event_id = add_event(
                &mut tx,
                &tenant,
                "work_order",
                &work_order_id,
                "sop.step_escalated",
                &serde_json::json!({ "work_order_id": work_order_id, "step_no": step_no,
                    "role": role, "deadline_at": deadline_at }),
                now,
            )
            .await?;
            out.push(EscalatedStep {
                tenant,
                work_order_id,
                step_no,
                role,
                deadline_at,
                event_id,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn outbox_pending(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLS} FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1"
        );
        sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.inner.write)
            .await?
            .iter()
            .map(outbox_row)
            .collect()
    }

    async fn mark_published(&self, event_ids: &[String]) -> Result<u64, StoreError> {
        let now = self.now_ms();
        let mut total = 0;
        for chunk in event_ids.chunks(1000) {
            let sql = format!(
                "UPDATE outbox SET published_at = {} WHERE published_at IS NULL AND id IN {}",
                ph(1),
                group(2, chunk.len())
            );
            let done = bind_all(
                sqlx::query(&sql).bind(now),
                chunk.iter().map(|x| s(x)).collect(),
            )
            .persistent(false)
            .execute(&self.inner.write)
            .await?;
            total += done.rows_affected();
        }
        Ok(total)
    }

    async fn outbox_events(
        &self,
        tenant: &str,
        aggregate: Option<(&str, &str)>,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let rows = match aggregate {
            None => {
                let sql =
                    format!("SELECT {OUTBOX_COLS} FROM outbox WHERE tenant = $1 ORDER BY seq");
                sqlx::query(&sql)
                    .bind(tenant)
                    .fetch_all(&self.inner.read)
                    .await?
            }
            Some((kind, id)) => {
                let sql = format!(
                    "SELECT {OUTBOX_COLS} FROM outbox WHERE tenant = $1 AND aggregate_type = $2 \
                     AND aggregate_id = $3 ORDER BY seq"
                );
                sqlx::query(&sql)
                    .bind(tenant)
                    .bind(kind)
                    .bind(id)
                    .fetch_all(&self.inner.read)
                    .await?
            }
        };
        rows.iter().map(outbox_row).collect()
    }

    async fn save_ruleset_version(
        &self,
        tenant: &str,
        v: &NewRulesetVersion,
    ) -> Result<RulesetVersion, StoreError> {
        if v.name.is_empty() || v.content_hash.is_empty() {
            return Err(StoreError::Invalid(
                "a ruleset version needs a name and hash".into(),
            ));
        }
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO ruleset_versions (tenant, name, content_hash, files, created_at, active) \
             VALUES ($1, $2, $3, $4, $5, FALSE) \
             ON CONFLICT (tenant, name, content_hash) DO NOTHING",
        )
        .bind(tenant)
        .bind(&v.name)
        .bind(&v.content_hash)
        .bind(json_text(&v.files))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let version = fetch_ruleset(&mut tx, tenant, &v.name, &v.content_hash)
            .await?
            .ok_or_else(|| StoreError::Corrupt("ruleset version vanished".into()))?;
        tx.commit().await?;
        Ok(version)
    }

    async fn activate_ruleset(
        &self,
        tenant: &str,
        name: &str,
        content_hash: &str,
    ) -> Result<RulesetVersion, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        lock_ruleset(&mut tx, tenant, name).await?;
        if fetch_ruleset(&mut tx, tenant, name, content_hash)
            .await?
            .is_none()
        {
            return Err(StoreError::not_found(
                "ruleset version",
                &format!("{name}@{content_hash}"),
            ));
        }
        sqlx::query(
            "INSERT INTO ruleset_activations (tenant, name, content_hash, activated_at, \
             rolled_back) VALUES ($1, $2, $3, $4, FALSE)",
        )
        .bind(tenant)
        .bind(name)
        .bind(content_hash)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let version = set_active_ruleset(&mut tx, tenant, name, content_hash, now).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn rollback_ruleset(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<RulesetVersion, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        lock_ruleset(&mut tx, tenant, name).await?;
        let rows = sqlx::query(
            "SELECT seq, content_hash FROM ruleset_activations \
             WHERE tenant = $1 AND name = $2 AND NOT rolled_back ORDER BY seq DESC LIMIT 2",
        )
        .bind(tenant)
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        let (Some(current), Some(previous)) = (rows.first(), rows.get(1)) else {
            return Err(StoreError::NothingToRollBack {
                name: name.to_owned(),
            });
        };
        let seq: i64 = current.try_get("seq")?;
        let hash: String = previous.try_get("content_hash")?;
        sqlx::query(
            "UPDATE ruleset_activations SET rolled_back = TRUE \
             WHERE tenant = $1 AND name = $2 AND seq = $3",
        )
        .bind(tenant)
        .bind(name)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        let version = set_active_ruleset(&mut tx, tenant, name, &hash, now).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn active_ruleset(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<RulesetVersion>, StoreError> {
        let row = sqlx::query(
            "SELECT name, content_hash, files, created_at, active FROM ruleset_versions \
             WHERE tenant = $1 AND name = $2 AND active",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.inner.read)
        .await?;
        row.as_ref().map(ruleset_row).transpose()
    }

    async fn ruleset_versions(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<RulesetVersion>, StoreError> {
        sqlx::query(
            "SELECT name, content_hash, files, created_at, active FROM ruleset_versions \
             WHERE tenant = $1 AND name = $2 ORDER BY created_at, content_hash",
        )
        .bind(tenant)
        .bind(name)
        .fetch_all(&self.inner.read)
        .await?
        .iter()
        .map(ruleset_row)
        .collect()
    }

    async fn all_active_rulesets(&self) -> Result<Vec<(String, RulesetVersion)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, name, content_hash, files, created_at, active FROM ruleset_versions \
             WHERE active ORDER BY tenant, name",
        )
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("tenant")?, ruleset_row(row)?)))
            .collect()
    }

    async fn ruleset_names(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT name FROM ruleset_versions WHERE tenant = $1 AND active ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter()
            .map(|row| row.try_get("name").map_err(StoreError::from))
            .collect()
    }

    async fn create_tenant(&self, id: &str, name: &str) -> Result<Tenant, StoreError> {
        if id.is_empty() || id.len() > 64 {
            return Err(StoreError::Invalid(
                "a tenant id has 1 to 64 characters".into(),
            ));
        }
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                kind: "tenant",
                id: id.to_owned(),
            });
        }
        tx.commit().await?;
        Ok(Tenant {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at: now,
        })
    }

    async fn tenant(&self, id: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM tenants WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.inner.read)
            .await?;
        row.map(|row| {
            Ok(Tenant {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn create_api_key(&self, tenant: &str, key: &NewApiKey) -> Result<ApiKey, StoreError> {
        for scope in &key.scopes {
            if !API_SCOPES.contains(&scope.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "unknown scope `{scope}` (orders, rules, admin)"
                )));
            }
        }
        if key.scopes.is_empty() || key.id.is_empty() || key.key_hash.is_empty() {
            return Err(StoreError::Invalid(
                "an API key needs an id, a hash and at least one scope".into(),
            ));
        }
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT id FROM tenants WHERE id = $1")
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::not_found("tenant", tenant));
        }
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, tenant, key_hash, label, scopes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&key.id)
        .bind(tenant)
        .bind(&key.key_hash)
        .bind(&key.label)
        .bind(key.scopes.join(" "))
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                kind: "API key",
                id: key.id.clone(),
            });
        }
        tx.commit().await?;
        Ok(ApiKey {
            id: key.id.clone(),
            tenant: tenant.to_owned(),
            label: key.label.clone(),
            scopes: key.scopes.clone(),
            created_at: now,
            revoked_at: None,
        })
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant, label, scopes, created_at, revoked_at FROM api_keys \
             WHERE key_hash = $1",
        )
        .bind(key_hash)
        .fetch_optional(&self.inner.read)
        .await?;
        row.as_ref().map(api_key_row).transpose()
    }

    async fn api_keys(&self, tenant: &str) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant, label, scopes, created_at, revoked_at FROM api_keys \
             WHERE tenant = $1 ORDER BY created_at, id",
        )
        .bind(tenant)
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter().map(api_key_row).collect()
    }

    async fn revoke_api_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let mut tx = self.begin().await?;
        let found = sqlx::query("SELECT revoked_at FROM api_keys WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(found) = found else {
            return Err(StoreError::not_found("API key", id));
        };
        let revoked_at: Option<i64> = found.try_get("revoked_at")?;
        if revoked_at.is_some() {
            return Ok(false);
        }
        sqlx::query("UPDATE api_keys SET revoked_at = $3 WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

fn api_key_row(row: &Row) -> Result<ApiKey, StoreError> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        label: row.try_get("label")?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Confirms held reservations at shipment: the units leave (`on_hand` and `reserved`
/// both drop, lots too) and the ledger says so. The status guard makes it happen once.
async fn confirm_reservations(
    c: &mut Conn,
    tenant: &str,
    order_id: &str,
    held: &[Reservation],
    now: Millis,
) -> Result<(), StoreError> {
    for r in held {
        let done = sqlx::query(
            "UPDATE reservations SET status = 'confirmed', updated_at = $3 \
             WHERE tenant = $1 AND id = $2 AND status = 'held'",
        )
        .bind(tenant)
        .bind(&r.id)
        .bind(now)
        .execute(&mut *c)
        .await?;
        if done.rows_affected() != 1 {
            continue;
        }
        sqlx::query(
            "UPDATE stock SET on_hand = on_hand - $4, reserved = reserved - $4, updated_at = $5 \
             WHERE tenant = $1 AND sku = $2 AND location_id = $3",
        )
        .bind(tenant)
        .bind(&r.sku)
        .bind(&r.location_id)
        .bind(r.qty)
        .bind(now)
        .execute(&mut *c)
        .await?;
        for pick in &r.lots {
            sqlx::query(
                "UPDATE lots SET on_hand = on_hand - $5, reserved = reserved - $5 \
                 WHERE tenant = $1 AND sku = $2 AND location_id = $3 AND lot_id = $4",
            )
            .bind(tenant)
            .bind(&r.sku)
            .bind(&r.location_id)
            .bind(&pick.lot_id)
            .bind(pick.qty)
            .execute(&mut *c)
            .await?;
            add_movement(
                c,
                tenant,
                &r.sku,
                &r.location_id,
                Some(&pick.lot_id),
                MovementKind::Shipment,
                -pick.qty,
                order_id,
                "",
                now,
            )
            .await?;
        }
        if r.lots.is_empty() {
            add_movement(
                c,
                tenant,
                &r.sku,
                &r.location_id,
                None,
                MovementKind::Shipment,
                -r.qty,
                order_id,
                "",
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// Creates the list row if missing and locks it; checks the expected version and bumps it.
async fn lock_list(
    c: &mut Conn,
    tenant: &str,
    name: &str,
    expected: Option<i64>,
    now: Millis,
) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(StoreError::Invalid("a list needs a name".into()));
    }
    sqlx::query(
        "INSERT INTO runtime_lists (tenant, name, version, updated_at) VALUES ($1, $2, 0, $3) \
         ON CONFLICT (tenant, name) DO NOTHING",
    )
    .bind(tenant)
    .bind(name)
    .bind(now)
    .execute(&mut *c)
    .await?;
    let version: i64 = sqlx::query(concat!(
        "SELECT version FROM runtime_lists WHERE tenant = $1 AND name = $2",
        for_update!()
    ))
    .bind(tenant)
    .bind(name)
    .fetch_one(&mut *c)
    .await?
    .try_get("version")?;
    if let Some(expected) = expected {
        if expected != version {
            return Err(StoreError::VersionConflict {
                name: name.to_owned(),
                expected,
                actual: version,
            });
        }
    }
    sqlx::query(
        "UPDATE runtime_lists SET version = version + 1, updated_at = $3 \
         WHERE tenant = $1 AND name = $2",
    )
    .bind(tenant)
    .bind(name)
    .bind(now)
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn fetch_ruleset(
    c: &mut Conn,
    tenant: &str,
    name: &str,
    hash: &str,
) -> Result<Option<RulesetVersion>, StoreError> {
    let row = sqlx::query(
        "SELECT name, content_hash, files, created_at, active FROM ruleset_versions \
         WHERE tenant = $1 AND name = $2 AND content_hash = $3",
    )
    .bind(tenant)
    .bind(name)
    .bind(hash)
    .fetch_optional(&mut *c)
    .await?;
    row.as_ref().map(ruleset_row).transpose()
}

/// Serializes activations of one ruleset (its version rows are the lock).
async fn lock_ruleset(c: &mut Conn, tenant: &str, name: &str) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "SELECT content_hash FROM ruleset_versions WHERE tenant = $1 AND name = $2 ",
        "ORDER BY content_hash",
        for_update!()
    ))
    .bind(tenant)
    .bind(name)
    .fetch_all(&mut *c)
    .await?;
    Ok(())
}

async fn set_active_ruleset(
    c: &mut Conn,
    tenant: &str,
    name: &str,
    hash: &str,
    now: Millis,
) -> Result<RulesetVersion, StoreError> {
    sqlx::query(
        "UPDATE ruleset_versions SET active = (content_hash = $3) WHERE tenant = $1 AND name = $2",
    )
    .bind(tenant)
    .bind(name)
    .bind(hash)
    .execute(&mut *c)
    .await?;
    add_event(
        c,
        tenant,
        "ruleset",
        name,
        "ruleset.activated",
        &serde_json::json!({ "name": name, "content_hash": hash }),
        now,
    )
    .await?;
    if BACKEND == Backend::Postgres {
        // Delivered to every listening server when the transaction commits (never if it
        // rolls back), so other processes swap to the new version (`RULESET_CHANNEL`).
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::store::RULESET_CHANNEL)
            .bind(format!("{tenant}\n{name}"))
            .execute(&mut *c)
            .await?;
    }
    fetch_ruleset(c, tenant, name, hash)
        .await?
        .ok_or_else(|| StoreError::Corrupt("ruleset version vanished".into()))
}
