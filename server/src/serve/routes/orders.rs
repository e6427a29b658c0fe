//! Orders, shipment events and returns.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use weir_runtime::services::later_events::{event_work_orders, LaterEvent};
use weir_runtime::services::orders::{self, GeoPoint, OrderError, OrderOutcome, OrderRequest};
use weir_runtime::store::{
    DecisionRecord, LotRef, NewReturn, NewWorkOrder, OrderFilter, OrderRecord, OrderState,
    PendingSops, Reservation, ReturnLine,
};

use super::{check_id, reply};
use crate::serve::auth::{Caller, Scope};
use crate::serve::extract::{
    integer, objects, optional_object, ApiJson, ApiJsonOrEmpty, ApiPath, ApiQuery,
};
use crate::serve::problem::Problem;
use crate::serve::registry::{BuildError, Version};
use crate::serve::AppState;

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Point {
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub lon: f64,
}

/// An order as a channel submits it. `order` and `customer` are the ruleset's facts
/// (`docs/language.md`): `order.items` holds the lines (`sku`, `qty`, `price` …).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// Which of the tenant's active rulesets decides the order; may be left out (or
    /// null) only when the tenant has exactly one active ruleset, else 422
    /// `ruleset-required`.
    #[serde(default)]
    pub ruleset: Option<String>,
    /// Chosen by the caller, or generated.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub order_id: Option<String>,
    /// ISO 4217; must be the ruleset's currency.
    pub currency: String,
    #[serde(default, deserialize_with = "optional_object")]
    pub delivery: Option<Point>,
    /// `ground`, `air`, `sea` or `local`.
    #[serde(default)]
    pub mode: Option<String>,
    #[schema(value_type = Object)]
    pub order: Map<String, Json>,
    #[schema(value_type = Object)]
    pub customer: Map<String, Json>,
}

impl CreateOrder {
    pub fn request(&self) -> OrderRequest {
        OrderRequest {
            ruleset: self.ruleset.clone(),
            order_id: self.order_id.clone(),
            currency: self.currency.clone(),
            delivery: self.delivery.map(|p| GeoPoint {
                lat: p.lat,
                lon: p.lon,
            }),
            mode: self.mode.clone(),
            order: self.order.clone(),
            customer: self.customer.clone(),
        }
    }
}

/// A reservation as the order's creation answer shows it (its status at that moment is
/// `held`; `GET /v1/orders/{id}` has the current one).
#[derive(Debug, Clone, Serialize)]
struct PlacedReservation<'a> {
    id: &'a str,
    sku: &'a str,
    location_id: &'a str,
    qty: i64,
    lots: Json,
}

fn reservation_view(r: &Reservation) -> PlacedReservation<'_> {
    PlacedReservation {
        id: &r.id,
        sku: &r.sku,
        location_id: &r.location_id,
        qty: r.qty,
        lots: json!(r.lots),
    }
}

/// The answer to an order's creation: built from the same fields whether the order was
/// placed now or is replayed from the store, so a replay's body is identical.
fn created_body(outcome: &OrderOutcome) -> Json {
    let placed = &outcome.placed;
    // The hold the order was placed with, read from its decisions (which never change)
    // rather than from the order (which a release changes): a replay answers the same.
    let review = outcome
        .decisions
        .pointer("/risk/decision")
        .is_some_and(|decision| decision == "review");
    json!({
        "order_id": placed.order_id,
        "state": OrderState::Placed.as_str(),
        "hold_reason": review.then_some(orders::RISK_REVIEW),
        "created_at": placed.created_at,
        "reservations": placed.reservations.iter().map(reservation_view).collect::<Vec<_>>(),
        "work_orders": placed.work_order_ids,
        "decisions": outcome.decisions,
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "The Idempotency-Key header is not valid",
                format!("1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// Places an order: risk, promotions, routing and constraints decided by the ruleset,
/// stock reserved, shipments and SOP work orders written, all in one transaction.
#[utoipa::path(post, path = "/v1/orders", tag = "orders", request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Same key and body: the first answer again; same key, other body: 422",
        min_length = 1, max_length = 255, pattern = r"^[\t\u0020-\u007E]*$")),
    responses(
        (status = 201, description = "Placed (or replayed: header `Idempotent-Replayed: true`)", body = serde_json::Value),
        (status = 409, description = "Out of stock, budget or limit used up", body = super::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "Invalid, rejected by risk rules, or key reused", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateOrder>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let key = idempotency_key(&headers)?;
    if let Some(id) = &body.order_id {
        check_id("order_id", id)?;
    }
    let request = body.request();
    // A retry is answered from what was stored even if the merchant's rulesets changed
    // since the first attempt: `place_order` finds the earlier order with its other
    // reads, before the rules decide anything, and if the rules the request names are
    // gone the key is looked up on its own.
    let result = match app.pick_ruleset(&caller.tenant, body.ruleset.as_deref()) {
        Ok(version) => {
            orders::place_order(
                app.store.as_ref(),
                &version.rules,
                &caller.tenant,
                &request,
                key.as_deref(),
            )
            .await
        }
        Err(problem) => match &key {
            Some(key) => {
                match orders::replay(app.store.as_ref(), &caller.tenant, key, &request).await {
                    Ok(Some(outcome)) => Ok(outcome),
                    Ok(None) => return Err(problem),
                    Err(error) => Err(error),
                }
            }
            None => return Err(problem),
        },
    };
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(error) => {
            let problem = Problem::from(error);
            app.metrics.order(problem.slug);
            return Err(problem);
        }
    };
    let replayed = outcome.placed.replayed;
    let outcome = if replayed {
        // A replay detected inside the store's transaction (a concurrent retry) carries
        // decisions recomputed now; answer from what was stored.
        let record = app
            .store
            .order(&caller.tenant, &outcome.placed.order_id)
            .await?
            .ok_or_else(|| Problem::not_found("order", &outcome.placed.order_id))?;
        OrderOutcome {
            decisions: record
                .decision
                .as_ref()
                .map(|d| d.hooks.clone())
                .unwrap_or(Json::Null),
            ..outcome
        }
    } else {
        outcome
    };
    app.metrics
        .order(if replayed { "replayed" } else { "placed" });
    let mut response = reply(StatusCode::CREATED, &created_body(&outcome));
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/orders/{}", outcome.placed.order_id))
    {
        response.headers_mut().insert("location", location);
    }
    Ok(response)
}

async fn record(app: &AppState, tenant: &str, id: &str) -> Result<OrderRecord, Problem> {
    app.store
        .order(tenant, id)
        .await?
        .ok_or_else(|| Problem::not_found("order", id))
}

/// An order with its lines, reservations, shipments, work orders and decision record.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = serde_json::Value),
        (status = 404, description = "No such order for this tenant", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let order = record(&app, &caller.tenant, &id).await?;
    Ok(reply(StatusCode::OK, &order))
}

/// The name of the ruleset that decided an order.
fn ruleset_name(decision: &DecisionRecord) -> String {
    decision
        .hooks
        .get("ruleset")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The ruleset version that decided an order (its decision record names it).
async fn deciding_version(
    app: &AppState,
    tenant: &str,
    decision: &DecisionRecord,
) -> Result<Arc<Version>, Problem> {
    let name = ruleset_name(decision);
    app.rules
        .version(tenant, &name, &decision.ruleset_hash)
        .await
        .map_err(|e| Problem::unavailable(e.to_string()))?
        .ok_or_else(|| {
            Problem::not_found(
                "ruleset version",
                &format!("{name}@{}", decision.ruleset_hash),
            )
        })
}

/// The work orders `event` opens for `order` (docs/orders.md, "SOPs after placement"),
/// and why there are none when its SOPs could not be evaluated. The event itself is
/// never refused for that: the goods moved whatever the rules say, and the version
/// that decided the order cannot be changed to mend it, so a refusal would hold the
/// order back for good. The failure is logged and answered instead. A store that
/// cannot be read is another matter: the caller retries, nothing was written.
async fn later_work_orders(
    app: &AppState,
    tenant: &str,
    order: &OrderRecord,
    event: LaterEvent<'_>,
) -> Result<(Vec<NewWorkOrder>, Option<String>), Problem> {
    let Some(decision) = &order.decision else {
        return Ok((Vec::new(), None));
    };
    let failed = |error: String| {
        tracing::warn!(order = %order.summary.order_id, event = event.name(), %error,
            "SOPs on a later event could not be evaluated; no work orders opened");
        Ok((Vec::new(), Some(error)))
    };
    let name = ruleset_name(decision);
    let version = match app
        .rules
        .version(tenant, &name, &decision.ruleset_hash)
        .await
    {
        Ok(Some(version)) => version,
        Ok(None) => {
            return failed(format!(
                "ruleset version {name}@{} is gone",
                decision.ruleset_hash
            ))
        }
        // A store that cannot be read now may be read on a retry.
        Err(BuildError::Store(error)) => return Err(error.into()),
        Err(error) => return failed(error.to_string()),
    };
    match event_work_orders(&*app.store, &version.rules, tenant, order, event).await {
        Ok(work_orders) => Ok((work_orders, None)),
        Err(OrderError::Store(error)) => Err(error.into()),
        Err(error) => failed(error.to_string()),
    }
}

/// Opens the SOP work orders of events the store recorded without the rules (the
/// reservation sweep's cancellations; docs/orders.md, "SOPs after placement"), up to
/// `limit` orders: each with the version that decided it, as the API's own
/// cancellations do. Returns how many were settled. An order whose reads fail stays
/// pending for the next round and is logged, without holding back the ones after it;
/// only a store that cannot list them fails the round.
pub async fn open_pending_sops(app: &AppState, limit: usize) -> Result<usize, Problem> {
    let mut settled = 0;
    for pending in app.store.pending_sops(limit).await? {
        match settle_pending(app, &pending).await {
            Ok(true) => settled += 1,
            Ok(false) => {}
            Err(problem) => {
                tracing::warn!(order = %pending.order_id, event = %pending.event,
                    error = %problem.detail, "pending SOPs not settled; retrying next round");
            }
        }
    }
    Ok(settled)
}

/// Evaluates and opens one order's pending SOPs; false when another process did first.
async fn settle_pending(app: &AppState, pending: &PendingSops) -> Result<bool, Problem> {
    let order = app.store.order(&pending.tenant, &pending.order_id).await?;
    let (work_orders, error) = match order {
        Some(order) if pending.event == LaterEvent::Cancelled.name() => {
            later_work_orders(app, &pending.tenant, &order, LaterEvent::Cancelled).await?
        }
        Some(_) => (
            Vec::new(),
            Some(format!(
                "no SOPs are opened for `{}` afterwards",
                pending.event
            )),
        ),
        None => (Vec::new(), Some("the order is gone".to_owned())),
    };
    if let Some(error) = error {
        tracing::warn!(order = %pending.order_id, event = %pending.event, %error,
            "pending SOPs settled without work orders");
    }
    Ok(app
        .store
        .open_pending_sops(
            &pending.tenant,
            &pending.order_id,
            &pending.event,
            &work_orders,
        )
        .await?)
}

/// Why the order was decided as it was: every rule of the version that decided it,
/// whether it fired and the facts its conditions read, re-run on the stored facts.
#[utoipa::path(get, path = "/v1/orders/{id}/explain", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "The explanation", body = serde_json::Value),
        (status = 404, description = "No such order", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn explain(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let order = record(&app, &caller.tenant, &id).await?;
    let Some(decision) = order.decision else {
        return Err(Problem::not_found("decision record of order", &id));
    };
    let name = ruleset_name(&decision);
    let version = deciding_version(&app, &caller.tenant, &decision).await?;
    let facts = decision.facts.clone().unwrap_or(Json::Null);
    let rules = crate::serve::explain::explain(&version, &facts)?;
    Ok(reply(
        StatusCode::OK,
        &json!({
            "order_id": id,
            "ruleset": name,
            "version": decision.ruleset_hash,
            "facts_digest": decision.facts_digest,
            "fired_rules": decision.fired_rules,
            "decisions": decision.hooks,
            "rules": rules,
            "facts": facts,
        }),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Cancels an order not yet shipped: reservations released, budgets and limits given
/// back. Cancelling again changes nothing.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders",
    request_body(content = Option<CancelBody>, description = "Optional"),
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "Cancelled", body = serde_json::Value),
        (status = 404, description = "No such order", body = super::ProblemDoc, content_type = "application/problem+json"),
        (status = 409, description = "Already shipped", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn cancel(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<CancelBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let reason = body
        .reason
        .unwrap_or_else(|| "cancelled_by_merchant".into());
    let order = record(&app, &caller.tenant, &id).await?;
    let (work_orders, sop_error) = if order.summary.state.cancellable() {
        later_work_orders(&app, &caller.tenant, &order, LaterEvent::Cancelled).await?
    } else {
        (Vec::new(), None)
    };
    let outcome = app
        .store
        .cancel_order(&caller.tenant, &id, &reason, &work_orders)
        .await?;
    Ok(reply(StatusCode::OK, &with_sop_error(&outcome, sop_error)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// Who reviewed and released the order (kept in the `order.released` event); not
    /// blank.
    #[schema(min_length = 1, max_length = 128, pattern = r"[^\s\u0085]|\uFEFF")]
    pub by: String,
}

/// Releases an order held for review (a risk `review`), so that it can be fulfilled.
/// Releasing an order that is not on hold changes nothing (`released: false`); to
/// reject it, cancel it.
#[utoipa::path(post, path = "/v1/orders/{id}/release", tag = "orders",
    request_body = ReleaseBody,
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "Released, or not on hold", body = serde_json::Value),
        (status = 404, description = "No such order", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn release(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ReleaseBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    if super::is_blank(&body.by) || body.by.chars().count() > 128 {
        return Err(Problem::invalid(
            "by: who released the order, 1 to 128 characters",
        ));
    }
    let released = app
        .store
        .release_order(&caller.tenant, &id, &body.by)
        .await?;
    Ok(reply(StatusCode::OK, &released))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// placed, allocated, picking, shipped, delivered, cancelled
    #[param(pattern = "^(placed|allocated|picking|shipped|delivered|cancelled)$")]
    pub state: Option<String>,
    /// Only orders held for review (`true`: the review queue) or not held (`false`).
    pub on_hold: Option<bool>,
    pub customer_id: Option<String>,
    pub channel: Option<String>,
    /// Created at or after (Unix ms).
    pub created_from: Option<i64>,
    /// Created before (Unix ms).
    pub created_before: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Orders, oldest first, filtered; pages continue with `cursor`.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(ListQuery),
    responses(
        (status = 200, description = "A page of orders", body = serde_json::Value),
        (status = 400, description = "Bad query", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let state = match &query.state {
        None => None,
        Some(s) => Some(OrderState::parse(s).ok_or_else(|| {
            Problem::invalid(format!(
                "state `{s}`: one of placed, allocated, picking, shipped, delivered, cancelled"
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid("limit: 1 to 1000"));
    }
    let after = match &query.cursor {
        None => None,
        Some(cursor) => {
            let parsed = cursor
                .split_once('.')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())));
            Some(parsed.ok_or_else(|| Problem::invalid("cursor: use `next_cursor` as given"))?)
        }
    };
    let filter = OrderFilter {
        state,
        on_hold: query.on_hold,
        customer_id: query.customer_id.clone(),
        channel: query.channel.clone(),
        created_from: query.created_from,
        created_before: query.created_before,
        after,
        limit,
    };
    let orders = app.store.list_orders(&caller.tenant, &filter).await?;
    let next = (orders.len() == limit as usize)
        .then(|| {
            orders
                .last()
                .map(|o| format!("{}.{}", o.created_at, o.order_id))
        })
        .flatten();
    Ok(reply(
        StatusCode::OK,
        &json!({"orders": orders, "next_cursor": next}),
    ))
}

/// A fulfilment step reported by the warehouse, store or carrier.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentEventKind {
    /// Stock committed to the order (reservations stop expiring).
    Allocated,
    /// Picking started.
    Picking,
    /// Picked and packed (the order stays in `picking` until handed over).
    Picked,
    /// Handed to the carrier: reserved stock leaves the books.
    Shipped,
    Delivered,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShipmentEvent {
    pub event: ShipmentEventKind,
}

/// Moves the order along placed → allocated → picking → shipped → delivered.
#[utoipa::path(post, path = "/v1/orders/{id}/shipment-events", tag = "orders",
    request_body = ShipmentEvent,
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order's state now and the work orders the step opened", body = serde_json::Value),
        (status = 409, description = "Not the next step", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn shipment_event(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ShipmentEvent>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let to = match body.event {
        ShipmentEventKind::Allocated => OrderState::Allocated,
        ShipmentEventKind::Picking | ShipmentEventKind::Picked => OrderState::Picking,
        ShipmentEventKind::Shipped => OrderState::Shipped,
        ShipmentEventKind::Delivered => OrderState::Delivered,
    };
    let event = match body.event {
        ShipmentEventKind::Shipped => Some(LaterEvent::Shipped),
        ShipmentEventKind::Delivered => Some(LaterEvent::Delivered),
        _ => None,
    };
    let (work_orders, sop_error) = match event {
        Some(event) => {
            let order = record(&app, &caller.tenant, &id).await?;
            if order.summary.state.can_advance_to(to) {
                later_work_orders(&app, &caller.tenant, &order, event).await?
            } else {
                (Vec::new(), None)
            }
        }
        None => (Vec::new(), None),
    };
    let advanced = app
        .store
        .advance_order(&caller.tenant, &id, to, &work_orders)
        .await?;
    Ok(reply(
        StatusCode::OK,
        &with_sop_error(
            &json!({"order_id": id, "state": advanced.state.as_str(),
                "work_order_ids": advanced.work_order_ids}),
            sop_error,
        ),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnLineBody {
    #[serde(deserialize_with = "integer")]
    pub line_no: i64,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "integer")]
    pub qty: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReturn {
    /// Chosen by the caller, or generated.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub return_id: Option<String>,
    pub order_id: String,
    /// Any location of the merchant (a cross-store return).
    pub receiving_location_id: String,
    /// Each order line at most once.
    #[schema(min_items = 1)]
    #[serde(deserialize_with = "objects")]
    pub lines: Vec<ReturnLineBody>,
}

/// Records goods handed back at any location.
#[utoipa::path(post, path = "/v1/returns", tag = "returns", request_body = CreateReturn,
    responses(
        (status = 201, description = "Received, awaiting quality check", body = serde_json::Value),
        (status = 409, description = "More than was shipped, or not shipped", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn create_return(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateReturn>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let return_id = body
        .return_id
        .unwrap_or_else(|| format!("r-{}", uuid::Uuid::now_v7().simple()));
    check_id("return_id", &return_id)?;
    let order = record(&app, &caller.tenant, &body.order_id).await?;
    let location = app
        .store
        .location(&caller.tenant, &body.receiving_location_id)
        .await?;
    let returnable = matches!(
        order.summary.state,
        OrderState::Shipped | OrderState::Delivered
    );
    // What cannot be returned is refused by the store, with its reason.
    let (work_orders, sop_error) = match location {
        Some(location) if returnable => {
            let event = LaterEvent::ReturnReceived {
                location: &location,
            };
            later_work_orders(&app, &caller.tenant, &order, event).await?
        }
        _ => (Vec::new(), None),
    };
    let received = app
        .store
        .create_return(
            &caller.tenant,
            &NewReturn {
                return_id,
                order_id: body.order_id,
                receiving_location_id: body.receiving_location_id,
                lines: body
                    .lines
                    .iter()
                    .map(|l| ReturnLine {
                        line_no: l.line_no,
                        qty: l.qty,
                    })
                    .collect(),
            },
            &work_orders,
        )
        .await?;
    let mut answer = serde_json::to_value(&received).unwrap_or(Json::Null);
    if let Json::Object(fields) = &mut answer {
        let ids: Vec<&str> = work_orders.iter().map(|w| w.id.as_str()).collect();
        fields.insert("work_order_ids".into(), json!(ids));
    }
    Ok(reply(
        StatusCode::CREATED,
        &with_sop_error(&answer, sop_error),
    ))
}

/// `answer` as JSON, with `sop_error` (why a later event's SOPs were not evaluated)
/// when there is one.
fn with_sop_error(answer: &impl Serialize, sop_error: Option<String>) -> Json {
    let mut json = serde_json::to_value(answer).unwrap_or(Json::Null);
    if let (Json::Object(fields), Some(error)) = (&mut json, sop_error) {
        fields.insert("sop_error".into(), Json::String(error));
    }
    json
}

/// A return.
#[utoipa::path(get, path = "/v1/returns/{id}", tag = "returns",
    params(("id" = String, Path, description = "Return id")),
    responses(
        (status = 200, description = "The return", body = serde_json::Value),
        (status = 404, description = "No such return", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_return(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let record = app
        .store
        .return_record(&caller.tenant, &id)
        .await?
        .ok_or_else(|| Problem::not_found("return", &id))?;
    Ok(reply(StatusCode::OK, &record))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LotBody {
    pub lot_id: String,
    /// Unix ms.
    #[serde(deserialize_with = "integer")]
    pub expires_at: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QcBody {
    pub passed: bool,
    /// The lot to restock into, where the receiving location tracks lots.
    #[serde(default, deserialize_with = "optional_object")]
    pub lot: Option<LotBody>,
}

/// Quality check of a return: passed restocks the receiving location.
#[utoipa::path(post, path = "/v1/returns/{id}/qc", tag = "returns", request_body = QcBody,
    params(("id" = String, Path, description = "Return id")),
    responses(
        (status = 200, description = "Recorded", body = serde_json::Value),
        (status = 409, description = "Already checked", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn return_qc(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<QcBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let lot = body.lot.map(|l| LotRef {
        lot_id: l.lot_id,
        expires_at: l.expires_at,
    });
    let record = app
        .store
        .record_return_qc(&caller.tenant, &id, body.passed, lot.as_ref())
        .await?;
    Ok(reply(StatusCode::OK, &record))
}
