//! The order create pipeline (issue #6): validate → risk → promotions → route →
//! constraints per shipment → SOP work orders → one store transaction.
//!
//! Everything the rules need is read first (locations, stock, velocity counters, runtime
//! lists, budget and limit usage), the ruleset is evaluated in one sandboxed instance,
//! shipments are planned from the route's ranking and checked with the `constraints`
//! hook, and the whole order — lines, reservations, shipments, the decision record,
//! budget and limit consumption, velocity counts, work orders and the `order.placed`
//! event — is handed to [`Store::place_order`], which commits all of it or nothing.
//! Stock is checked again inside that transaction (the conditional decrement), so a
//! plan made on a stale read can fail with `OutOfStock` but can never oversell.
//!
//! Semantics and the facts the service derives are written down in `docs/orders.md`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use weir_compiler::evaluate::{evaluate_hooks, Context, Decisions, SopEvents};
use weir_compiler::facts;
use weir_compiler::interp::Hook;
use weir_compiler::lists::{FoundMember, ListMembers};
use weir_compiler::outcome::{mode_name, Skip};
use weir_compiler::testing::fired_rules;
use weir_compiler::Compiled;
use weir_dsl::checked::{CounterKind, Decision, Ruleset};
use weir_dsl::types::Type;

use super::gifts::{self, PlannedGift};
use crate::engine::{EngineError, LoadedModule};
use crate::evaluator::WasmEngine;
use crate::store::{
    BudgetUse, Idempotency, LimitUse, Location, LocationKind, NewDecision, NewEvent, NewLine,
    NewOrder, NewReservation, NewShipment, NewStep, NewWorkOrder, OrderReads, PlaceError,
    PlacedOrder, RuntimeList, ShipmentLine, StockLevel, Store, StoreError, Usages, VelocityKey,
    VelocityRead,
};

/// Most lines one order may have.
pub const MAX_LINES: usize = 1_000;
/// The SOP events placing an order evaluates: the order's, then each shipment's.
pub const ORDER_PLACED: &str = "order.placed";
pub const SHIPMENT_ASSIGNED: &str = "shipment.assigned";
/// The hold of an order the risk rules sent to review.
pub const RISK_REVIEW: &str = "risk_review";
/// Reservations of a placed order hold for this long unless the order is allocated.
pub const RESERVATION_HOLD_MS: i64 = 30 * 60 * 1000;

/// A compiled ruleset ready to decide orders: the checked ruleset (for the fact schema),
/// its IR and manifest, and the loaded WebAssembly module.
pub struct Rules {
    pub name: String,
    /// Content hash of the ruleset's sources: the version every decision names.
    pub version: String,
    pub ruleset: Ruleset,
    pub compiled: Compiled,
    pub module: LoadedModule,
    /// The members of each tenant's runtime lists, by tenant and list name, with the
    /// list version they were built from: built once per version, shared by every
    /// order (typing members needs the ruleset's declarations, hence per ruleset).
    list_members: Mutex<ListCache>,
}

/// Runtime-list members by tenant and list name, with the list version they were built
/// from.
type ListCache = HashMap<String, HashMap<String, (i64, Arc<ListMembers>)>>;

impl Rules {
    /// The members of `stored` (the ruleset's list number `index`), typed against the
    /// list's declaration: from the cache when this version was built before.
    fn list_members(
        &self,
        tenant: &str,
        index: usize,
        stored: &RuntimeList,
    ) -> Result<Arc<ListMembers>, OrderError> {
        // The lock is held while a new version is built, so that the orders arriving
        // meanwhile wait for one build instead of each making its own (64 concurrent
        // builds of a 100,000-member list took seconds); once per list version.
        let mut cache = self.lock_list_members();
        if let Some((version, members)) = cache.get(tenant).and_then(|l| l.get(&stored.name)) {
            if *version == stored.version {
                return Ok(members.clone());
            }
        }
        let element = self.ruleset.lists.get(index).map(|l| &l.element);
        let members = if element == Some(&Type::String) {
            ListMembers::from_strings(stored.members.iter().map(String::as_str))
        } else {
            let items: Vec<Json> = stored
                .members
                .iter()
                .map(|m| match serde_json::from_str::<Json>(m) {
                    // Numbers and booleans are stored as text and typed again here.
                    Ok(v @ (Json::Number(_) | Json::Bool(_))) => v,
                    _ => Json::String(m.clone()),
                })
                .collect();
            facts::list_members(&items, index, &self.ruleset).map_err(|e| OrderError::Invalid {
                path: e.path,
                message: e.message,
            })?
        };
        let members = Arc::new(members);
        cache
            .entry(tenant.to_owned())
            .or_default()
            .insert(stored.name.clone(), (stored.version, members.clone()));
        Ok(members)
    }

    fn lock_list_members(&self) -> std::sync::MutexGuard<'_, ListCache> {
        // Every update is one insert: a poisoned lock still holds a consistent map.
        self.list_members
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A point on the map (WGS 84 degrees).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

/// An order as a channel submits it. `order` and `customer` are the ruleset's facts as
/// JSON (`docs/language.md`; the same forms as `weir eval`): `order.items` holds the lines
/// (`sku`, `qty`, `price`, `category` and any item attributes the ruleset declares).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// The ruleset the caller named (the order API's choice among a merchant's
    /// rulesets). Part of the request, so an idempotency key reused with another
    /// ruleset is refused; the pipeline itself decides with the `Rules` it is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruleset: Option<String>,
    /// Chosen by the caller, or generated.
    #[serde(default)]
    pub order_id: Option<String>,
    pub currency: String,
    /// Where the order is delivered; distances are measured from here.
    #[serde(default)]
    pub delivery: Option<GeoPoint>,
    /// The carrier mode the buyer chose (`air` for express); by default `local` from
    /// stores and front warehouses, `ground` from warehouses. Constraints may change it.
    #[serde(default)]
    pub mode: Option<String>,
    pub order: Map<String, Json>,
    pub customer: Map<String, Json>,
}

/// Why an order was not placed. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("the order is in {given} but ruleset `{ruleset}` prices in {expected}")]
    CurrencyMismatch {
        ruleset: String,
        given: String,
        expected: String,
    },
    #[error("unknown SKU `{sku}` (order.items[{line}]): no location stocks it")]
    UnknownSku { sku: String, line: usize },
    #[error("unknown pickup store `{0}`")]
    UnknownLocation(String),
    #[error("rejected by risk rules: {}", reasons.join("; "))]
    Rejected { reasons: Vec<String> },
    #[error("cannot fulfil `{sku}` (order.items[{line}]): {reason}")]
    Unfulfillable {
        sku: String,
        line: usize,
        reason: String,
    },
    #[error("ruleset `{ruleset}`: {message}")]
    Evaluation { ruleset: String, message: String },
    #[error(transparent)]
    Place(#[from] PlaceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OrderError {
    fn invalid(path: impl Into<String>, message: impl Into<String>) -> OrderError {
        OrderError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A placed order with the decisions that shaped it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderOutcome {
    pub placed: PlacedOrder,
    /// The decision record's hook results (also stored with the order).
    pub decisions: Json,
}

/// One order line as the pipeline reads it from `order.items`.
#[derive(Debug, Clone)]
struct LineIn {
    sku: String,
    qty: i64,
}

/// A location a shipment may leave from, with what it can promise per SKU.
struct Candidate<'a> {
    location: &'a Location,
    km: f64,
    atp: HashMap<&'a str, i64>,
    /// Merchant-maintained facts the ruleset's schema knows (`margin_pct` …).
    attributes: Map<String, Json>,
}

/// Lines assigned to one location, and the constraints' verdict on them.
#[derive(Debug, Clone)]
struct PlannedShipment {
    candidate: usize,
    lines: Vec<usize>,
    mode: String,
    packaging: Vec<String>,
    constraints: Json,
    /// SOPs the shipment's events trigger (`shipment.assigned` …).
    sops: Vec<String>,
}

/// How many times an order is planned again when stock, a promotion's budget or a
/// customer's limit it was planned on went to another order between the read and the
/// commit.
pub const MAX_ATTEMPTS: usize = 4;

/// Places an order for `tenant` with `rules`. `idempotency_key`: the same key with the
/// same request returns the first result; with a different request, an error.
///
/// Stock is read, the order planned, then committed with conditional decrements; if
/// another order took the stock, a promotion's last budget or the customer's last use
/// of a limited promotion in between, the commit fails as a whole and the order is
/// planned again on a fresh read (up to [`MAX_ATTEMPTS`] times) — without the
/// promotion, if the rules no longer grant it.
///
/// A retry of an order already placed answers from what was stored, even if stock or
/// rules changed since (the pipeline would decide differently now): the key is looked
/// up with the order's other reads, before anything that depends on the rules is
/// checked, and a concurrent retry is caught by the store's unique key.
pub async fn place_order(
    store: &dyn Store,
    rules: &Rules,
    tenant: &str,
    request: &OrderRequest,
    idempotency_key: Option<&str>,
) -> Result<OrderOutcome, OrderError> {
    let order_id = match &request.order_id {
        Some(id) if id.is_empty() || id.len() > 128 => {
            return Err(OrderError::invalid("order_id", "1 to 128 characters"))
        }
        Some(id) => id.clone(),
        None => format!("o-{}", uuid::Uuid::now_v7().simple()),
    };
    let mut attempt = 1;
    loop {
        match place_once(store, rules, tenant, request, idempotency_key, &order_id).await {
            // What the order was planned on went to another order between the read
            // and the commit: plan again on a fresh read. For stock that may mean
            // another location; for a promotion's budget or a customer's limit, the
            // order without that promotion (the rules see the new use).
            Err(OrderError::Place(
                PlaceError::OutOfStock { .. }
                | PlaceError::LotsUnavailable { .. }
                | PlaceError::BudgetExhausted { .. }
                | PlaceError::LimitReached { .. },
            )) if attempt < MAX_ATTEMPTS => attempt += 1,
            result => return result,
        }
    }
}

/// The stored result of an earlier request with the same idempotency key, or `None`;
/// the same key with another request is `IdempotencyConflict`. [`place_order`] finds
/// the earlier order itself; this is for a caller that cannot get that far (the order
/// API when the rules the request names are gone).
pub async fn replay(
    store: &dyn Store,
    tenant: &str,
    key: &str,
    request: &OrderRequest,
) -> Result<Option<OrderOutcome>, OrderError> {
    let Some((order_id, hash)) = store.order_by_idempotency_key(tenant, key).await? else {
        return Ok(None);
    };
    replay_of(store, tenant, key, request, order_id, &hash).await
}

/// The answer to a retry of the order `order_id`, stored with request hash `hash`.
async fn replay_of(
    store: &dyn Store,
    tenant: &str,
    key: &str,
    request: &OrderRequest,
    order_id: String,
    hash: &str,
) -> Result<Option<OrderOutcome>, OrderError> {
    if hash != request_hash(request) {
        return Err(OrderError::Place(PlaceError::IdempotencyConflict {
            key: key.to_owned(),
            order_id,
        }));
    }
    let Some(record) = store.order(tenant, &order_id).await? else {
        return Ok(None);
    };
    Ok(Some(OrderOutcome {
        placed: PlacedOrder {
            order_id: record.summary.order_id.clone(),
            state: record.summary.state,
            hold_reason: record.summary.hold_reason.clone(),
            created_at: record.summary.created_at,
            replayed: true,
            reservations: record.reservations.clone(),
            work_order_ids: record.work_orders.iter().map(|w| w.id.clone()).collect(),
        },
        decisions: record
            .decision
            .as_ref()
            .map(|d| d.hooks.clone())
            .unwrap_or(Json::Null),
    }))
}

fn request_hash(request: &OrderRequest) -> String {
    digest(&serde_json::to_string(request).unwrap_or_default())
}

async fn place_once(
    store: &dyn Store,
    rules: &Rules,
    tenant: &str,
    request: &OrderRequest,
    idempotency_key: Option<&str>,
    order_id: &str,
) -> Result<OrderOutcome, OrderError> {
    match plan(store, rules, tenant, request, idempotency_key, order_id).await? {
        Planned::New(new, decisions) => {
            let placed = store.place_order(*new).await?;
            Ok(OrderOutcome { placed, decisions })
        }
        Planned::Earlier {
            key,
            order_id,
            hash,
        } => {
            match replay_of(store, tenant, &key, request, order_id, &hash).await? {
                Some(outcome) => Ok(outcome),
                // Found by its key a moment ago, gone now: a store that lost an order.
                None => Err(OrderError::Place(PlaceError::Store(StoreError::Corrupt(
                    format!("the order placed with idempotency key `{key}` vanished"),
                )))),
            }
        }
    }
}

/// What [`plan`] found: a new order to write, or the order an earlier request with the
/// same idempotency key placed.
enum Planned {
    New(Box<NewOrder>, Json),
    Earlier {
        key: String,
        order_id: String,
        hash: String,
    },
}

/// What an order would become, decided but not written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRun {
    /// Everything the order would write (lines, reservations, shipments, the decision
    /// record …); stock is checked again only when an order is really placed.
    pub order: NewOrder,
    pub decisions: Json,
}

/// Runs the whole pipeline on current stock and risk state, and writes nothing: for
/// trying an order against a ruleset version before activating it.
pub async fn dry_run(
    store: &dyn Store,
    rules: &Rules,
    tenant: &str,
    request: &OrderRequest,
) -> Result<DryRun, OrderError> {
    let order_id = request
        .order_id
        .clone()
        .unwrap_or_else(|| "dry-run".to_owned());
    match plan(store, rules, tenant, request, None, &order_id).await? {
        Planned::New(order, decisions) => Ok(DryRun {
            order: *order,
            decisions,
        }),
        // Without a key there is no earlier order to find.
        Planned::Earlier { order_id, .. } => {
            Err(OrderError::Place(PlaceError::Store(StoreError::Corrupt(
                format!("a dry run found order `{order_id}` by a key it did not give"),
            ))))
        }
    }
}

/// Reads, evaluates and plans an order: the unit of work [`Store::place_order`] commits.
async fn plan(
    store: &dyn Store,
    rules: &Rules,
    tenant: &str,
    request: &OrderRequest,
    idempotency_key: Option<&str>,
    order_id: &str,
) -> Result<Planned, OrderError> {
    let order_id = order_id.to_owned();
    let manifest = &rules.compiled.manifest;
    // Checks of the request alone come first (a request that fails them placed nothing
    // under its key); checks against the rules and stock come after the key is looked up.
    let lines = read_lines(&request.order)?;
    if let Some(mode) = &request.mode {
        if !weir_dsl::schema::MODES.contains(&mode.as_str()) {
            return Err(OrderError::invalid(
                "mode",
                format!("`{mode}` is not a carrier mode (ground, air, sea, local)"),
            ));
        }
    }
    let customer_id = request
        .customer
        .get("id")
        .and_then(Json::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| OrderError::invalid("customer.id", "a non-empty string is required"))?
        .to_owned();
    identifier("customer.id", &customer_id)?;
    if let Some(point) = request.delivery {
        // A point off the globe would make every candidate's distance meaningless.
        if !(-90.0..=90.0).contains(&point.lat) || !(-180.0..=180.0).contains(&point.lon) {
            return Err(OrderError::invalid(
                "delivery",
                "lat must be within ±90 and lon within ±180 degrees",
            ));
        }
    }
    let now_ms = store.now();

    // ---- what the rules need, read before evaluation ----
    // Reference data comes from the store's cache; the rest in one round on one
    // connection.
    let locations = store.locations(tenant).await?;
    let mut skus: Vec<String> = lines.iter().map(|l| l.sku.clone()).collect();
    skus.sort();
    skus.dedup();
    let needs = velocity_needs(rules, request);
    let limit_keys = period_limit_keys(rules, now_ms);
    let reads = OrderReads {
        skus,
        velocity: needs.iter().map(|(_, read)| read.clone()).collect(),
        budget_keys: rules
            .compiled
            .manifest
            .promotions
            .iter()
            .filter(|p| p.budget.is_some())
            .map(|p| p.name.clone())
            .collect(),
        limit_keys: limit_keys.values().cloned().collect(),
        customer_id: customer_id.clone(),
        idempotency_key: idempotency_key.map(str::to_owned),
    };
    let readings = store.order_reads(tenant, &reads).await?;
    if let (Some((order_id, hash)), Some(key)) = (readings.earlier, idempotency_key) {
        return Ok(Planned::Earlier {
            key: key.to_owned(),
            order_id,
            hash,
        });
    }
    if request.currency != manifest.currency {
        return Err(OrderError::CurrencyMismatch {
            ruleset: rules.name.clone(),
            given: request.currency.clone(),
            expected: manifest.currency.clone(),
        });
    }
    let mut stock: HashMap<(String, String), StockLevel> = HashMap::new();
    for level in readings.stock {
        stock.insert((level.sku.clone(), level.location_id.clone()), level);
    }
    let stocked: std::collections::HashSet<&str> =
        stock.keys().map(|(sku, _)| sku.as_str()).collect();
    for (index, line) in lines.iter().enumerate() {
        if !stocked.contains(line.sku.as_str()) {
            return Err(OrderError::UnknownSku {
                sku: line.sku.clone(),
                line: index,
            });
        }
    }
    let pickup = match request.order.get("pickup_store") {
        None | Some(Json::Null) => None,
        Some(Json::String(id)) => match locations.iter().find(|l| &l.id == id) {
            Some(location) if location.capabilities.pickup => Some(location),
            _ => return Err(OrderError::UnknownLocation(id.clone())),
        },
        Some(_) => {
            return Err(OrderError::invalid(
                "order.pickup_store",
                "a store id or null",
            ))
        }
    };
    let attributes = store.location_attributes(tenant).await?;
    let location_fields = location_fields(rules);
    let candidates = candidates(
        &locations,
        &stock,
        &lines,
        request.delivery,
        pickup,
        &attributes,
        &location_fields,
    );
    let counters = counters(&needs, &readings.velocity);
    let lists = lists(store, rules, tenant).await?;
    let usage = usage(rules, &limit_keys, &readings.usages);

    let mut document = Map::new();
    document.insert("now".into(), json!(now_ms / 1000));
    document.insert("order".into(), order_json(&request.order, &order_id));
    document.insert("customer".into(), Json::Object(request.customer.clone()));
    document.insert(
        "locations".into(),
        Json::Array(candidates.iter().map(location_json).collect()),
    );
    document.insert("counters".into(), Json::Array(counters));
    document.insert("usage".into(), usage);
    let mut document = Json::Object(document);
    let mut input = facts::read(&document, &rules.ruleset).map_err(|e| OrderError::Invalid {
        path: e.path,
        message: e.message,
    })?;
    let context = Context {
        lists,
        usage: std::mem::take(&mut input.usage),
    };
    // The order's own SOP event only: `shipment.assigned` is asked per planned shipment,
    // the later events when they happen (`services::later_events`).
    let decisions = run_hooks(
        rules,
        &input.facts,
        &context,
        &Hook::ALL,
        SopEvents::Only(&[ORDER_PLACED]),
    )?;

    // ---- risk ----
    if let Some(risk) = &decisions.risk {
        if risk.decision == Decision::Reject {
            let reasons = if risk.reasons.is_empty() {
                risk.fired
                    .iter()
                    .map(|(name, _)| name.to_string())
                    .collect()
            } else {
                owned(&risk.reasons)
            };
            return Err(OrderError::Rejected { reasons });
        }
    }

    // ---- shipments: route ranking, then constraints per shipment ----
    let ranking: Vec<usize> = match &decisions.route {
        Some(route) => route.ranking.iter().map(|(index, _)| *index).collect(),
        // No route rule: nearest first.
        None => (0..candidates.len()).collect(),
    };
    let mut shared = Shared {
        context: &context,
        found: decisions.list_hits.iter().cloned().collect(),
    };
    let shipments = plan_shipments(
        rules,
        &mut input.facts,
        &mut shared,
        &candidates,
        &lines,
        &ranking,
        request.mode.as_deref(),
    )?;

    // ---- the order, as one unit of work ----
    let line_discounts = decisions
        .promotions
        .as_ref()
        .map(|p| p.line_discounts.clone())
        .unwrap_or_default();
    let mut new = NewOrder::new(tenant, &order_id, &customer_id, &manifest.currency);
    new.channel = request
        .order
        .get("channel")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_owned();
    for (index, line) in lines.iter().enumerate() {
        let (price, subtotal) = line_money(&input.facts, &rules.ruleset, index);
        let discount = line_discounts.get(index).copied().unwrap_or(0);
        new.lines.push(NewLine {
            line_no: index as i64 + 1,
            sku: line.sku.clone(),
            qty: line.qty,
            unit_price_minor: price,
            discount_minor: discount,
        });
        new.subtotal_minor = new.subtotal_minor.saturating_add(subtotal);
        new.discount_minor = new.discount_minor.saturating_add(discount);
    }
    new.total_minor = (new.subtotal_minor - new.discount_minor).max(0);
    // A risk `review` places the order on hold: it waits for a human before it is
    // fulfilled (docs/orders.md, "Review holds").
    if decisions
        .risk
        .as_ref()
        .is_some_and(|risk| risk.decision == Decision::Review)
    {
        new.hold_reason = Some(RISK_REVIEW.to_owned());
    }
    new.idempotency = idempotency_key.map(|key| Idempotency {
        key: key.to_owned(),
        request_hash: request_hash(request),
    });
    let promised = promised_at(&input.facts, &rules.ruleset);
    let presale_session = request
        .order
        .get("session")
        .and_then(Json::as_str)
        .filter(|_| request.order.get("presale").and_then(Json::as_bool) == Some(true))
        .map(str::to_owned);
    new.reservation_expires_at = Some(now_ms.saturating_add(RESERVATION_HOLD_MS));
    for shipment in &shipments {
        let Some(candidate) = candidates.get(shipment.candidate) else {
            continue;
        };
        let location = &candidate.location.id;
        let mut shipment_lines = Vec::new();
        for &index in &shipment.lines {
            let Some(line) = lines.get(index) else {
                continue;
            };
            let lot_tracked = stock
                .get(&(line.sku.clone(), location.clone()))
                .is_some_and(|s| s.lot_tracked);
            new.reservations.push(NewReservation {
                sku: line.sku.clone(),
                location_id: location.clone(),
                qty: line.qty,
                presale_session_id: presale_session.clone(),
                not_expiring_before: if lot_tracked {
                    Some(promised.unwrap_or(now_ms))
                } else {
                    None
                },
            });
            shipment_lines.push(ShipmentLine {
                line_no: index as i64 + 1,
                qty: line.qty,
            });
        }
        new.shipments.push(NewShipment {
            location_id: location.clone(),
            carrier_mode: shipment.mode.clone(),
            packaging: shipment.packaging.clone(),
            lines: shipment_lines,
        });
    }
    // Gifts are stock too: each is reserved at a shipping location that can promise it,
    // or not given (docs/orders.md, "Gifts").
    let shipping: Vec<&str> = new
        .shipments
        .iter()
        .map(|s| s.location_id.as_str())
        .collect();
    let gifts = gifts::plan_gifts(
        store,
        tenant,
        &decisions.gifts,
        &shipping,
        &stock,
        &new.reservations,
    )
    .await?;
    for gift in &gifts {
        let Some(location) = &gift.location else {
            continue;
        };
        new.reservations.push(NewReservation {
            sku: gift.sku.clone(),
            location_id: location.clone(),
            qty: gift.qty,
            presale_session_id: None,
            not_expiring_before: gift.lot_tracked.then(|| promised.unwrap_or(now_ms)),
        });
    }
    if let Some(promotions) = &decisions.promotions {
        for consumption in &promotions.consumption {
            let Some(meta) = manifest
                .promotions
                .iter()
                .find(|p| p.name == consumption.promotion)
            else {
                continue;
            };
            if let Some(cap) = meta.budget {
                if consumption.budget > 0 {
                    new.budgets.push(BudgetUse {
                        key: meta.name.clone(),
                        amount: consumption.budget,
                        cap,
                    });
                }
            }
            if let (Some((max, _)), Some(key)) = (&meta.limit, limit_keys.get(&meta.name)) {
                if consumption.uses > 0 {
                    new.limits.push(LimitUse {
                        key: key.clone(),
                        customer_id: customer_id.clone(),
                        count: consumption.uses,
                        max: *max,
                    });
                }
            }
        }
    }
    new.velocity = velocity_keys(&needs);
    new.work_orders = work_orders(
        rules,
        &decisions,
        &shipments,
        &candidates,
        &order_id,
        now_ms,
    );
    if let Json::Object(fields) = &mut document {
        fields.insert("lists".into(), found_lists(rules, &context, &shared.found));
    }
    let (record, hooks) = decision_record(
        rules,
        &decisions,
        &candidates,
        &shipments,
        &gifts,
        &document,
    );
    new.events.push(NewEvent {
        aggregate_type: "order".into(),
        aggregate_id: order_id.clone(),
        event_type: "order.placed".into(),
        payload: json!({
            "order_id": order_id,
            "customer_id": customer_id,
            "currency": manifest.currency,
            "total_minor": new.total_minor,
            "discount_minor": new.discount_minor,
            "lines": new.lines.len(),
            "shipments": new.shipments.iter().map(|s| json!({
                "location": s.location_id, "mode": s.carrier_mode, "packaging": s.packaging,
            })).collect::<Vec<_>>(),
            "risk": hooks.get("risk").and_then(|r| r.get("decision")).cloned(),
            "hold_reason": new.hold_reason,
            "ruleset": rules.name,
            "version": rules.version,
        }),
    });
    new.decision = Some(record);
    Ok(Planned::New(Box::new(new), hooks))
}

fn evaluation_error(rules: &Rules, error: impl std::fmt::Display) -> OrderError {
    OrderError::Evaluation {
        ruleset: rules.name.clone(),
        message: error.to_string(),
    }
}

/// `order.items` as lines: 1 to [`MAX_LINES`], each with a SKU and a positive whole qty.
/// (Every other field is checked against the schema when the facts are read.)
fn read_lines(order: &Map<String, Json>) -> Result<Vec<LineIn>, OrderError> {
    let Some(Json::Array(items)) = order.get("items") else {
        return Err(OrderError::invalid(
            "order.items",
            "a list of order lines is required",
        ));
    };
    if items.is_empty() {
        return Err(OrderError::invalid(
            "order.items",
            "an order needs at least one line",
        ));
    }
    if items.len() > MAX_LINES {
        return Err(OrderError::invalid(
            "order.items",
            format!("{} lines; an order has at most {MAX_LINES}", items.len()),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("order.items[{i}]");
            let sku = item
                .get("sku")
                .and_then(Json::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| OrderError::invalid(format!("{path}.sku"), "a SKU is required"))?;
            identifier(&format!("{path}.sku"), sku)?;
            let qty = item
                .get("qty")
                .and_then(Json::as_i64)
                .filter(|q| *q > 0 && *q <= crate::store::MAX_UNITS)
                .ok_or_else(|| {
                    OrderError::invalid(
                        format!("{path}.qty"),
                        format!(
                            "a whole number of units from 1 to {}",
                            crate::store::MAX_UNITS
                        ),
                    )
                })?;
            Ok(LineIn {
                sku: sku.to_owned(),
                qty,
            })
        })
        .collect()
}

/// An identifier the request brings (a SKU, a customer id): 1 to 128 characters, none
/// a control character — the rule the API applies to the ids it is given, so a SKU
/// that could never have been stocked is refused as such, not echoed back at length.
fn identifier(path: &str, text: &str) -> Result<(), OrderError> {
    if text.is_empty() || text.chars().count() > 128 || text.chars().any(char::is_control) {
        return Err(OrderError::invalid(
            path,
            "1 to 128 characters, no control characters",
        ));
    }
    Ok(())
}

/// The order facts with the id the pipeline uses.
fn order_json(order: &Map<String, Json>, order_id: &str) -> Json {
    let mut order = order.clone();
    order.insert("id".into(), Json::String(order_id.to_owned()));
    Json::Object(order)
}

/// Great-circle distance in km.
fn haversine_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// Route candidates: locations that ship (or, for a pickup order, the pickup store) and
/// can promise at least one line, nearest first.
fn candidates<'a>(
    locations: &'a [Location],
    stock: &'a HashMap<(String, String), StockLevel>,
    lines: &'a [LineIn],
    delivery: Option<GeoPoint>,
    pickup: Option<&'a Location>,
    attributes: &HashMap<String, Map<String, Json>>,
    location_fields: &[&str],
) -> Vec<Candidate<'a>> {
    let mut out: Vec<Candidate<'a>> = locations
        .iter()
        .filter(|l| match pickup {
            Some(store) => l.id == store.id,
            None => l.capabilities.ships,
        })
        .filter_map(|location| {
            let atp: HashMap<&str, i64> = lines
                .iter()
                .filter_map(|line| {
                    stock
                        .get(&(line.sku.clone(), location.id.clone()))
                        .map(|s| (line.sku.as_str(), s.available_to_promise().max(0)))
                })
                .filter(|(_, atp)| *atp > 0)
                .collect();
            if atp.is_empty() {
                return None;
            }
            let km = match (delivery, pickup) {
                (_, Some(_)) | (None, _) => 0.0,
                (Some(point), None) => haversine_km(
                    point,
                    GeoPoint {
                        lat: location.lat,
                        lon: location.lon,
                    },
                ),
            };
            let attributes = known_attributes(attributes.get(&location.id), location_fields);
            Some(Candidate {
                location,
                km,
                atp,
                attributes,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        a.km.total_cmp(&b.km)
            .then(a.location.id.cmp(&b.location.id))
    });
    out
}

/// Hours to deliver from a location `km` away: handling by kind plus travel at 30 km/h
/// for local kinds, 60 km/h from a warehouse (docs/orders.md).
fn eta_hours(kind: LocationKind, km: f64) -> f64 {
    match kind {
        LocationKind::FrontWarehouse => 0.25 + km / 30.0,
        LocationKind::Store => 0.5 + km / 30.0,
        LocationKind::Warehouse => 12.0 + km / 60.0,
    }
}

fn location_json(candidate: &Candidate<'_>) -> Json {
    location_facts(
        candidate.location,
        candidate.attributes.clone(),
        Some(candidate.km),
    )
}

/// A location as the facts document writes it: the merchant's `attributes` (those the
/// ruleset's schema knows), then what the pipeline computes, which wins over them;
/// distance and ETA only where there is a delivery to measure them to (`km`).
pub(crate) fn location_facts(
    location: &Location,
    attributes: Map<String, Json>,
    km: Option<f64>,
) -> Json {
    let mut out = attributes;
    let computed = json!({
        "id": location.id,
        "kind": location.kind.as_str(),
        "cold_chain": location.capabilities.cold_chain,
        "hazmat_certified": location.capabilities.hazmat_certified,
        "pickup": location.capabilities.pickup,
    });
    if let Json::Object(computed) = computed {
        out.extend(computed);
    }
    if let Some(km) = km {
        let hours = eta_hours(location.kind, km);
        out.insert("distance".into(), json!(format!("{km:.3} km")));
        out.insert("distance_km".into(), json!(format!("{km:.3}")));
        out.insert(
            "eta".into(),
            json!(format!("{} min", (hours * 60.0).ceil() as i64)),
        );
        out.insert("eta_hours".into(), json!(format!("{hours:.3}")));
    }
    Json::Object(out)
}

/// The merchant's attributes of one location that the ruleset's schema knows
/// (`location_fields`): the others are not facts of this ruleset.
pub(crate) fn known_attributes(
    attributes: Option<&Map<String, Json>>,
    location_fields: &[&str],
) -> Map<String, Json> {
    attributes
        .map(|a| {
            a.iter()
                .filter(|(name, _)| location_fields.contains(&name.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The names of the fields of the ruleset's `location` entity.
pub(crate) fn location_fields(rules: &Rules) -> Vec<&str> {
    rules
        .ruleset
        .schema
        .entity(weir_dsl::schema::LOCATION)
        .map(|e| e.fields.iter().map(|f| f.name.as_str()).collect())
        .unwrap_or_default()
}

/// The value at a dotted fact path (`customer.device`) in the request, as a string key.
fn path_key(request: &OrderRequest, path: &str) -> Option<String> {
    let (root, rest) = path.split_once('.')?;
    let mut value = match root {
        "customer" => request.customer.get(rest.split('.').next()?)?,
        "order" => request.order.get(rest.split('.').next()?)?,
        _ => return None,
    };
    for part in rest.split('.').skip(1) {
        value = value.get(part)?;
    }
    match value {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The velocity counters the module's manifest asks for that this order has a key for
/// (`orders(customer.device, 1 h)` needs `customer.device`), and what to read for each.
fn velocity_needs<'r>(
    rules: &'r Rules,
    request: &OrderRequest,
) -> Vec<(&'r weir_compiler::manifest::Need, VelocityRead)> {
    rules
        .compiled
        .manifest
        .velocities
        .iter()
        .filter_map(|need| {
            let key = path_key(request, &need.key_path)?;
            Some((
                need,
                VelocityRead {
                    key: VelocityKey {
                        kind: need.key_path.clone(),
                        key,
                    },
                    window_ms: need.window_seconds.saturating_mul(1000),
                    distinct_customers: !matches!(need.kind, CounterKind::Orders),
                },
            ))
        })
        .collect()
}

/// The counters as facts (`counters` in the facts document), with the counts read.
fn counters(needs: &[(&weir_compiler::manifest::Need, VelocityRead)], counts: &[i64]) -> Vec<Json> {
    needs
        .iter()
        .enumerate()
        .map(|(i, (need, _))| {
            json!({
                "kind": need.kind.name(),
                "key": need.key_path,
                "window": format!("{} s", need.window_seconds),
                "count": counts.get(i).copied().unwrap_or(0),
            })
        })
        .collect()
}

/// The keys this order counts under, for the counters the ruleset uses (one each:
/// `orders(customer.device, 1 h)` and `customers(customer.device, 1 d)` count the same
/// event).
fn velocity_keys(needs: &[(&weir_compiler::manifest::Need, VelocityRead)]) -> Vec<VelocityKey> {
    let mut keys: Vec<VelocityKey> = Vec::new();
    for (_, read) in needs {
        if !keys.contains(&read.key) {
            keys.push(read.key.clone());
        }
    }
    keys
}

/// The runtime lists the ruleset declares, from the store (a missing list is empty),
/// as members shared by every order that reads the same list version
/// ([`Rules::list_members`]).
pub(crate) async fn lists(
    store: &dyn Store,
    rules: &Rules,
    tenant: &str,
) -> Result<Vec<(usize, Arc<ListMembers>)>, OrderError> {
    let mut out = Vec::with_capacity(rules.ruleset.lists.len());
    for (index, list) in rules.ruleset.lists.iter().enumerate() {
        if let Some(stored) = store.list(tenant, &list.name).await? {
            out.push((index, rules.list_members(tenant, index, &stored)?));
        }
    }
    Ok(out)
}

/// The runtime-list members an order's evaluations found, as the facts document writes
/// lists (`{"blocked_devices": ["d-666"]}`): what the decision record keeps instead of
/// the lists. Replaying the record with them gives the same answers, since a test of a
/// value not found was false and stays false.
fn found_lists(rules: &Rules, context: &Context, found: &BTreeSet<(usize, FoundMember)>) -> Json {
    let mut out = Map::new();
    for (index, list) in rules.ruleset.lists.iter().enumerate() {
        let Some((_, members)) = context.lists.iter().find(|(i, _)| *i == index) else {
            continue;
        };
        let values: Vec<Json> = found
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, member)| members.json_of(member))
            .collect();
        out.insert(list.name.clone(), Json::Array(values));
    }
    Json::Object(out)
}

/// The period a per-customer limit is counted in, as part of its key.
fn limit_key(promotion: &str, period: &str, now_ms: i64) -> String {
    let day = now_ms.div_euclid(86_400_000);
    match period {
        "day" => format!("{promotion}@day{day}"),
        // Weeks from the epoch (a Thursday) shifted to start on Monday.
        "week" => format!("{promotion}@week{}", (day + 3).div_euclid(7)),
        "month" => {
            let date = chrono::DateTime::from_timestamp_millis(now_ms)
                .map(|t| t.format("%Y-%m").to_string())
                .unwrap_or_default();
            format!("{promotion}@{date}")
        }
        // `campaign` (and `order`, counted per order by the engine) span all time.
        _ => promotion.to_owned(),
    }
}

/// Each limited promotion's key for the period `now_ms` falls in.
fn period_limit_keys(rules: &Rules, now_ms: i64) -> HashMap<String, String> {
    rules
        .compiled
        .manifest
        .promotions
        .iter()
        .filter_map(|promotion| {
            let (_, period) = promotion.limit.as_ref()?;
            Some((
                promotion.name.clone(),
                limit_key(&promotion.name, period, now_ms),
            ))
        })
        .collect()
}

/// Budget and limit usage so far, as facts (`usage` in the facts document).
fn usage(rules: &Rules, limit_keys: &HashMap<String, String>, found: &Usages) -> Json {
    let mut budget_used = Map::new();
    let mut limit_used = Map::new();
    for promotion in &rules.compiled.manifest.promotions {
        if let Some(used) = found.budgets.get(&promotion.name) {
            budget_used.insert(promotion.name.clone(), json!(used));
        }
        if let Some(used) = limit_keys
            .get(&promotion.name)
            .and_then(|k| found.limits.get(k))
        {
            limit_used.insert(promotion.name.clone(), json!(used));
        }
    }
    json!({ "budget_used": budget_used, "limit_used": limit_used })
}

/// The order's `promised_at` as the facts read it, in millis.
fn promised_at(facts_in: &weir_compiler::abi::Facts, ruleset: &Ruleset) -> Option<i64> {
    let Some(weir_dsl::checked::Value::Record(_, slots)) = &facts_in.order else {
        return None;
    };
    let index = ruleset
        .schema
        .entity(weir_dsl::schema::ORDER)
        .and_then(|e| e.field("promised_at"))
        .map(|(i, _)| i)?;
    match slots.get(index) {
        Some(Some(weir_dsl::checked::Value::Time(seconds))) => seconds.checked_mul(1000),
        _ => None,
    }
}

/// Unit price and line subtotal (minor units) of line `index` as the facts read them.
fn line_money(facts_in: &weir_compiler::abi::Facts, ruleset: &Ruleset, index: usize) -> (i64, i64) {
    use weir_dsl::checked::Value;
    let item = ruleset.schema.entity(weir_dsl::schema::ITEM);
    let field = |name: &str| item.and_then(|e| e.field(name)).map(|(i, _)| i);
    let order_items = ruleset
        .schema
        .entity(weir_dsl::schema::ORDER)
        .and_then(|e| e.field("items"))
        .map(|(i, _)| i);
    let Some(Value::Record(_, slots)) = &facts_in.order else {
        return (0, 0);
    };
    let Some(Some(Value::List(items))) = order_items.and_then(|i| slots.get(i)) else {
        return (0, 0);
    };
    let Some(Value::Record(_, item_slots)) = items.get(index) else {
        return (0, 0);
    };
    let money = |name: &str| match field(name).and_then(|i| item_slots.get(i)) {
        Some(Some(Value::Money(v))) => Some(*v),
        _ => None,
    };
    let qty = match field("qty").and_then(|i| item_slots.get(i)) {
        Some(Some(Value::Int(v))) => *v,
        _ => 0,
    };
    let price = money("price").unwrap_or(0);
    let subtotal = money("subtotal").unwrap_or_else(|| price.saturating_mul(qty));
    (price, subtotal)
}

/// What every evaluation of one order shares: the context (runtime lists, usage), and
/// the runtime-list members found so far, for the decision record.
struct Shared<'a> {
    context: &'a Context,
    found: BTreeSet<(usize, FoundMember)>,
}

/// Assigns lines to locations in route order — one location for every line when one
/// can (fewest splits), otherwise each line to the best-ranked location that can promise
/// it — and runs the `constraints` hook on each shipment. A blocked shipment's location
/// is dropped for those lines and they are planned again.
fn plan_shipments(
    rules: &Rules,
    facts_in: &mut weir_compiler::abi::Facts,
    shared: &mut Shared<'_>,
    candidates: &[Candidate<'_>],
    lines: &[LineIn],
    ranking: &[usize],
    requested_mode: Option<&str>,
) -> Result<Vec<PlannedShipment>, OrderError> {
    // (line, candidate) pairs ruled out by a blocked shipment.
    let mut ruled_out: Vec<(usize, usize)> = Vec::new();
    let mut reasons: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    // Each round either plans every line or rules out at least one pair.
    for _ in 0..=(lines.len() * candidates.len().max(1)) {
        let can = |line: usize, candidate: usize, used: &HashMap<(usize, usize), i64>| {
            let Some(l) = lines.get(line) else {
                return false;
            };
            let Some(c) = candidates.get(candidate) else {
                return false;
            };
            if ruled_out.contains(&(line, candidate)) {
                return false;
            }
            let taken = used
                .get(&(candidate, sku_index(lines, line)))
                .copied()
                .unwrap_or(0);
            c.atp.get(l.sku.as_str()).copied().unwrap_or(0) - taken >= l.qty
        };
        let mut assignment: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut used: HashMap<(usize, usize), i64> = HashMap::new();
        let whole = ranking.iter().copied().find(|&c| {
            let mut used = HashMap::new();
            (0..lines.len()).all(|line| {
                let ok = can(line, c, &used);
                if let Some(l) = lines.get(line) {
                    *used.entry((c, sku_index(lines, line))).or_insert(0) += l.qty;
                }
                ok
            })
        });
        match whole {
            Some(c) => {
                assignment.insert(c, (0..lines.len()).collect());
            }
            None => {
                for (line, l) in lines.iter().enumerate() {
                    let Some(c) = ranking.iter().copied().find(|&c| can(line, c, &used)) else {
                        let reason = match reasons.get(&line) {
                            Some(r) if !r.is_empty() => format!("blocked: {}", r.join("; ")),
                            _ => "no candidate location can promise the quantity".to_string(),
                        };
                        return Err(OrderError::Unfulfillable {
                            sku: l.sku.clone(),
                            line,
                            reason,
                        });
                    };
                    *used.entry((c, sku_index(lines, line))).or_insert(0) += l.qty;
                    assignment.entry(c).or_default().push(line);
                }
            }
        }
        let mut planned = Vec::new();
        let mut blocked_any = false;
        for (candidate, shipment_lines) in assignment {
            let shipment = Shipment {
                candidate,
                lines: &shipment_lines,
                requested_mode,
            };
            let verdict = check_shipment(rules, facts_in, shared, candidates, &shipment)?;
            match verdict {
                Ok(checked) => planned.push(PlannedShipment {
                    candidate,
                    lines: shipment_lines,
                    mode: checked.mode,
                    packaging: checked.packaging,
                    constraints: checked.record,
                    sops: checked.sops,
                }),
                Err(why) => {
                    blocked_any = true;
                    // Rule out only the lines that are blocked on their own here (the
                    // perfume, not the serum beside it); if none is, the combination is.
                    let mut alone = Vec::new();
                    if shipment_lines.len() > 1 {
                        for &line in &shipment_lines {
                            let single = Shipment {
                                candidate,
                                lines: std::slice::from_ref(&line),
                                requested_mode,
                            };
                            if let Err(why) =
                                check_shipment(rules, facts_in, shared, candidates, &single)?
                            {
                                alone.push((line, why));
                            }
                        }
                    }
                    if alone.is_empty() {
                        alone = shipment_lines.iter().map(|&l| (l, why.clone())).collect();
                    }
                    for (line, why) in alone {
                        ruled_out.push((line, candidate));
                        reasons.entry(line).or_default().push(why);
                    }
                }
            }
        }
        if !blocked_any {
            return Ok(planned);
        }
    }
    Err(OrderError::Evaluation {
        ruleset: rules.name.clone(),
        message: "shipment planning did not settle".into(),
    })
}

/// The first line with the same SKU (lines of one SKU draw on one stock figure).
fn sku_index(lines: &[LineIn], line: usize) -> usize {
    let sku = lines.get(line).map(|l| l.sku.as_str());
    lines
        .iter()
        .position(|l| Some(l.sku.as_str()) == sku)
        .unwrap_or(line)
}

/// A shipment to check: lines at one candidate.
struct Shipment<'a> {
    candidate: usize,
    lines: &'a [usize],
    requested_mode: Option<&'a str>,
}

/// A shipment the constraints let through.
struct Checked {
    mode: String,
    packaging: Vec<String>,
    record: Json,
    sops: Vec<String>,
}

type Verdict = Result<Checked, String>;

/// Runs the `constraints` and `sop_triggers` hooks on one shipment: its mode, packaging
/// and SOPs, or `Err(reason)` when it is blocked or no mode is allowed. The carrier is
/// the location's contracted one: licensed for dangerous goods where the location is
/// hazmat-certified, cold-chain where it is (docs/orders.md).
fn check_shipment(
    rules: &Rules,
    facts_in: &mut weir_compiler::abi::Facts,
    shared: &mut Shared<'_>,
    candidates: &[Candidate<'_>],
    shipment: &Shipment<'_>,
) -> Result<Verdict, OrderError> {
    let Some(c) = candidates.get(shipment.candidate) else {
        return Ok(Err("unknown candidate".into()));
    };
    let shipment_lines = shipment.lines;
    let planned_mode = shipment.requested_mode.unwrap_or(match c.location.kind {
        LocationKind::Warehouse => "ground",
        LocationKind::FrontWarehouse | LocationKind::Store => "local",
    });
    let unconstrained = || Checked {
        mode: planned_mode.to_owned(),
        packaging: Vec::new(),
        record: Json::Null,
        sops: Vec::new(),
    };
    let manifest = &rules.compiled.manifest;
    if manifest.constraints.is_empty() && manifest.sops.is_empty() {
        return Ok(Ok(unconstrained()));
    }
    set_shipment_facts(
        rules,
        facts_in,
        c.location,
        shipment.candidate,
        shipment_lines,
        planned_mode,
    )?;
    let decisions = run_hooks(
        rules,
        facts_in,
        shared.context,
        &[Hook::Constraints, Hook::SopTriggers],
        SopEvents::Only(&[SHIPMENT_ASSIGNED]),
    );
    clear_shipment_facts(facts_in);
    let decisions = decisions?;
    shared.found.extend(decisions.list_hits);
    let Some(outcome) = decisions.constraints else {
        return Ok(Ok(Checked {
            sops: owned(&decisions.sops),
            ..unconstrained()
        }));
    };
    // A candidate that cannot ship is only a reason; its record is never built.
    if !outcome.blocked.is_empty() || !outcome.conflicts.is_empty() {
        let mut why = outcome.blocked.clone();
        why.extend(outcome.conflicts.iter().map(String::as_str));
        return Ok(Err(format!("{} at {}", why.join(", "), c.location.id)));
    }
    let Some(mode) = outcome.mode else {
        return Ok(Err(format!("no carrier mode allowed at {}", c.location.id)));
    };
    let record = json!({
        "location": c.location.id,
        "fired": outcome.fired,
        "blocked": outcome.blocked,
        "forbidden_modes": outcome.forbidden_modes.iter().map(|m| mode_name(*m)).collect::<Vec<_>>(),
        "required_mode": outcome.required_mode.map(mode_name),
        "packaging": outcome.packaging,
        "conflicts": outcome.conflicts,
        "mode": mode_name(mode),
    });
    Ok(Ok(Checked {
        mode: mode_name(mode).to_owned(),
        packaging: owned(&outcome.packaging),
        record,
        sops: owned(&decisions.sops),
    }))
}

/// Names borrowed from a ruleset's manifest, owned: for what outlives the evaluation
/// (a shipment's plan, an order's record).
pub(crate) fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Runs `hooks` of the ruleset's module (in one sandboxed instance) on `facts_in`, the
/// SOP hook for `events` only.
pub(crate) fn run_hooks<'r>(
    rules: &'r Rules,
    facts_in: &weir_compiler::abi::Facts,
    context: &Context,
    hooks: &[Hook],
    events: SopEvents<'_>,
) -> Result<Decisions<'r>, OrderError> {
    let engine = WasmEngine {
        module: &rules.module,
    };
    evaluate_hooks(
        &rules.compiled,
        &rules.ruleset,
        facts_in,
        context,
        &engine,
        hooks,
        events,
    )
    .map_err(|e| evaluation_error(rules, e))
}

/// Sets the facts one shipment is evaluated on, over the order's facts: `location` (the
/// order's candidate `candidate`, i.e. `locations[candidate]`), `shipment` with `mode`
/// and the order's lines `lines` (indices of `order.items`) as its items, and the
/// location's contracted carrier: licensed for dangerous goods where the location is
/// hazmat-certified, cold-chain where it is. Set for one evaluation, then cleared with
/// [`clear_shipment_facts`]: no copy of the whole order per shipment.
pub(crate) fn set_shipment_facts(
    rules: &Rules,
    facts_in: &mut weir_compiler::abi::Facts,
    location: &Location,
    candidate: usize,
    lines: &[usize],
    mode: &str,
) -> Result<(), OrderError> {
    // The location and the lines were read (and checked) with the order's facts: the
    // shipment takes those values rather than reading their JSON a second time.
    let document = json!({
        "shipment": { "mode": mode },
        "carrier": {
            "id": format!("{}-carrier", location.id),
            "mode": mode,
            "cold_chain": location.capabilities.cold_chain,
            "hazmat": location.capabilities.hazmat_certified,
        },
    });
    let extra = facts::read(&document, &rules.ruleset).map_err(|e| OrderError::Invalid {
        path: e.path,
        message: e.message,
    })?;
    let shipment_value = extra
        .facts
        .shipment
        .map(|record| with_items(&rules.ruleset, facts_in, record, lines));
    facts_in.location = facts_in.locations.get(candidate).cloned();
    facts_in.shipment = shipment_value;
    facts_in.carrier = extra.facts.carrier;
    Ok(())
}

/// Undoes [`set_shipment_facts`].
pub(crate) fn clear_shipment_facts(facts_in: &mut weir_compiler::abi::Facts) {
    facts_in.location = None;
    facts_in.shipment = None;
    facts_in.carrier = None;
}

/// `shipment` (as read from JSON, without lines) with the order's lines `chosen` as
/// its `items`, taken from the order's facts (`order.items`).
fn with_items(
    ruleset: &Ruleset,
    facts_in: &weir_compiler::abi::Facts,
    shipment: weir_dsl::checked::Value,
    chosen: &[usize],
) -> weir_dsl::checked::Value {
    use weir_dsl::checked::Value;
    let slot = |entity: usize| {
        ruleset
            .schema
            .entity(entity)
            .and_then(|e| e.field("items"))
            .map(|(i, _)| i)
    };
    let Some(Value::Record(_, order)) = &facts_in.order else {
        return shipment;
    };
    let Some(Some(Value::List(lines))) = slot(weir_dsl::schema::ORDER).and_then(|i| order.get(i))
    else {
        return shipment;
    };
    let items: Vec<Value> = chosen
        .iter()
        .filter_map(|&i| lines.get(i).cloned())
        .collect();
    match (shipment, slot(weir_dsl::schema::SHIPMENT)) {
        (Value::Record(entity, mut slots), Some(index)) => {
            if let Some(field) = slots.get_mut(index) {
                *field = Some(Value::List(items));
            }
            Value::Record(entity, slots)
        }
        (other, _) => other,
    }
}

/// Work orders for the SOPs the evaluation triggered, with deadlines from now: one per
/// SOP on `order.placed`, one per SOP on `shipment.assigned` and shipment location.
fn work_orders(
    rules: &Rules,
    decisions: &Decisions,
    shipments: &[PlannedShipment],
    candidates: &[Candidate<'_>],
    order_id: &str,
    now_ms: i64,
) -> Vec<NewWorkOrder> {
    // The order was evaluated for `order.placed` and each shipment for
    // `shipment.assigned` only; SOPs on later events (shipped, delivered, returned,
    // cancelled) are opened when those happen (`services::later_events`).
    let manifest = &rules.compiled.manifest;
    let mut chosen: Vec<(&weir_compiler::manifest::SopMeta, Option<&str>)> = Vec::new();
    let placed = decisions
        .sops
        .iter()
        .filter_map(|n| manifest.sop(n))
        .map(|found| (found, None));
    let assigned = shipments.iter().flat_map(|s| {
        let at = candidates.get(s.candidate).map(|c| c.location.id.as_str());
        s.sops
            .iter()
            .filter_map(|n| manifest.sop(n))
            .map(move |found| (found, at))
    });
    for (found, at) in placed.chain(assigned) {
        if !chosen.iter().any(|(c, l)| c.name == found.name && *l == at) {
            chosen.push((found, at));
        }
    }
    chosen
        .into_iter()
        .map(|(sop, at)| work_order(sop, order_id, at, now_ms))
        .collect()
}

/// A new work order for `sop` on `order_id`, done at `location` (a shipment's or a
/// return's; `None` for the order's own events), its step deadlines counted from
/// `now_ms`.
pub(crate) fn work_order(
    sop: &weir_compiler::manifest::SopMeta,
    order_id: &str,
    location: Option<&str>,
    now_ms: i64,
) -> NewWorkOrder {
    NewWorkOrder {
        id: format!("wo-{}", uuid::Uuid::now_v7().simple()),
        order_id: Some(order_id.to_owned()),
        location_id: location.map(str::to_owned),
        sop_name: sop.name.clone(),
        steps: sop
            .steps
            .iter()
            .map(|step| NewStep {
                name: step.name.clone(),
                role: step.role.clone(),
                evidence: (!step.requires.is_empty()).then(|| step.requires.join(",")),
                deadline_at: (step.within_seconds > 0)
                    .then(|| now_ms.saturating_add(step.within_seconds.saturating_mul(1000))),
            })
            .collect(),
    }
}

fn digest(text: &str) -> String {
    crate::digest::sha256_hex(text.as_bytes())
}

/// What was decided and from what: enough to answer "why this location?" and to replay
/// the evaluation (the facts document is kept with its digest).
/// A skipped promotion in the decision record: its reason as a stable code, and for
/// `excluded_by` the promotion of its exclusive group that applied (docs/orders.md).
fn skipped_json(name: &str, why: &Skip<'_>) -> Json {
    match why {
        Skip::ExcludedBy(by) => json!({"name": name, "why": why.code(), "by": by}),
        _ => json!({"name": name, "why": why.code()}),
    }
}

fn decision_record(
    rules: &Rules,
    decisions: &Decisions,
    candidates: &[Candidate<'_>],
    shipments: &[PlannedShipment],
    gifts: &[PlannedGift],
    document: &Json,
) -> (NewDecision, Json) {
    let id = |index: usize| candidates.get(index).map(|c| c.location.id.clone());
    let promotions = decisions.promotions.as_ref().map(|p| {
        json!({
            "applied": p.applied.iter().map(|a| json!({"name": a.name, "discount_minor": a.discount})).collect::<Vec<_>>(),
            "skipped": p.skipped.iter().map(|(name, why)| skipped_json(name, why)).collect::<Vec<_>>(),
            "line_discounts_minor": p.line_discounts,
            "total_discount_minor": p.total_discount,
            "gifts": gifts.iter().map(PlannedGift::json).collect::<Vec<_>>(),
            "points_multiplier": p.points_multiplier as f64 / 1_000_000.0,
        })
    });
    let route = decisions.route.as_ref().map(|r| {
        json!({
            "rule": decisions.route_name,
            "ranking": r.ranking.iter().map(|(i, score)| json!({
                "location": id(*i), "score": *score as f64 / 1_000_000.0,
            })).collect::<Vec<_>>(),
            "candidates": candidates.iter().map(|c| json!({
                "location": c.location.id, "distance_km": (c.km * 1000.0).round() / 1000.0,
            })).collect::<Vec<_>>(),
            "excluded": candidates.iter().enumerate()
                .filter(|(i, _)| !r.ranking.iter().any(|(j, _)| j == i))
                .map(|(_, c)| c.location.id.clone()).collect::<Vec<_>>(),
        })
    });
    let risk = decisions.risk.as_ref().map(|r| {
        json!({
            "decision": match r.decision { Decision::Accept => "accept", Decision::Review => "review", Decision::Reject => "reject" },
            "score": r.score,
            "fired": r.fired.iter().map(|(name, score)| json!({"name": name, "score": score})).collect::<Vec<_>>(),
            "reasons": r.reasons,
        })
    });
    let hooks = json!({
        "ruleset": rules.name,
        "version": rules.version,
        "promotions": promotions,
        "route": route,
        "shipments": shipments.iter().map(|s| json!({
            "location": id(s.candidate),
            "lines": s.lines.iter().map(|l| l + 1).collect::<Vec<_>>(),
            "mode": s.mode,
            "packaging": s.packaging,
            "constraints": s.constraints,
            "sops": s.sops,
        })).collect::<Vec<_>>(),
        "risk": risk,
        "sops": decisions.sops,
    });
    let mut fired: Vec<String> = fired_rules(decisions)
        .into_iter()
        .map(str::to_owned)
        .collect();
    for shipment in shipments {
        if let Some(names) = shipment.constraints.get("fired").and_then(Json::as_array) {
            for name in names.iter().filter_map(Json::as_str) {
                if !fired.iter().any(|f| f == name) {
                    fired.push(name.to_owned());
                }
            }
        }
    }
    let record = NewDecision::render(&rules.version, &hooks, &fired, document);
    (record, hooks)
}

/// Shared handle for callers that keep rules behind an `Arc`.
pub type SharedRules = Arc<Rules>;

/// Builds [`Rules`] from a checked ruleset and its compiled module.
pub fn rules(
    engine: &crate::engine::Engine,
    name: &str,
    version: &str,
    ruleset: Ruleset,
    compiled: Compiled,
    wasm: &[u8],
) -> Result<Rules, EngineError> {
    let artifact = engine.precompile(wasm)?;
    let module = engine.load(name, &artifact)?;
    Ok(Rules {
        name: name.to_owned(),
        version: version.to_owned(),
        ruleset,
        compiled,
        module,
        list_members: Mutex::new(HashMap::new()),
    })
}
