//! Locations, stock (available to promise), receipts, adjustments and presale locks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use utoipa::ToSchema;
use weir_runtime::store::{
    Adjustment, Capabilities, Location, LocationKind, LotRef, NewPresale, NewWave, Receipt,
};

use super::{check_id, reply};
use crate::serve::auth::{Caller, Scope};
use crate::serve::extract::{integer, object, objects, optional_object, ApiJson, ApiPath};
use crate::serve::problem::Problem;
use crate::serve::routes::orders::LotBody;
use crate::serve::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Warehouse,
    FrontWarehouse,
    Store,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesBody {
    #[serde(default)]
    pub ships: bool,
    #[serde(default)]
    pub pickup: bool,
    #[serde(default)]
    pub cold_chain: bool,
    #[serde(default)]
    pub hazmat_certified: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationBody {
    pub kind: Kind,
    pub name: String,
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
    #[serde(default, deserialize_with = "object")]
    pub capabilities: CapabilitiesBody,
    /// Merchant facts rules may read (`margin_pct`, `cost_coefficient`,
    /// `stock_turnover`, ruleset attributes).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Json>>,
}

/// Creates or replaces a location.
#[utoipa::path(put, path = "/v1/locations/{id}", tag = "inventory", request_body = LocationBody,
    params(("id" = String, Path, description = "Location id", min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")),
    responses(
        (status = 200, description = "Stored", body = serde_json::Value),
        (status = 422, description = "Invalid", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn put_location(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<LocationBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    check_id("location id", &id)?;
    if !(-90.0..=90.0).contains(&body.lat) || !(-180.0..=180.0).contains(&body.lon) {
        return Err(Problem::invalid(
            "lat must be within ±90 and lon within ±180 degrees",
        ));
    }
    let location = Location {
        id: id.clone(),
        kind: match body.kind {
            Kind::Warehouse => LocationKind::Warehouse,
            Kind::FrontWarehouse => LocationKind::FrontWarehouse,
            Kind::Store => LocationKind::Store,
        },
        name: body.name,
        lat: body.lat,
        lon: body.lon,
        capabilities: Capabilities {
            ships: body.capabilities.ships,
            pickup: body.capabilities.pickup,
            cold_chain: body.capabilities.cold_chain,
            hazmat_certified: body.capabilities.hazmat_certified,
        },
    };
    app.store.upsert_location(&caller.tenant, &location).await?;
    if let Some(attributes) = &body.attributes {
        app.store
            .set_location_attributes(&caller.tenant, &id, attributes)
            .await?;
    }
    Ok(reply(StatusCode::OK, &location))
}

/// The merchant's locations.
#[utoipa::path(get, path = "/v1/locations", tag = "inventory",
    responses((status = 200, description = "Locations", body = serde_json::Value)),
    security(("api_key" = [])))]
pub async fn list_locations(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let locations = app.store.locations(&caller.tenant).await?;
    Ok(reply(StatusCode::OK, &json!({ "locations": locations })))
}

/// Stock of a SKU at every location, with available to promise
/// (on hand − reserved − safety stock).
#[utoipa::path(get, path = "/v1/inventory/{sku}", tag = "inventory",
    params(("sku" = String, Path, description = "SKU")),
    responses(
        (status = 200, description = "Stock per location", body = serde_json::Value),
        (status = 404, description = "No location stocks it", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn sku_stock(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(sku): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let levels = app.store.stock_by_sku(&caller.tenant, &sku).await?;
    if levels.is_empty() {
        return Err(Problem::not_found("SKU", &sku));
    }
    let total: i64 = levels.iter().map(|l| l.available_to_promise()).sum();
    let locations: Vec<Json> = levels.iter().map(stock_json).collect();
    Ok(reply(
        StatusCode::OK,
        &json!({"sku": sku, "available_to_promise": total, "locations": locations}),
    ))
}

fn stock_json(level: &weir_runtime::store::StockLevel) -> Json {
    json!({
        "location_id": level.location_id,
        "on_hand": level.on_hand,
        "reserved": level.reserved,
        "safety_stock": level.safety_stock,
        "available_to_promise": level.available_to_promise(),
        "lot_tracked": level.lot_tracked,
    })
}

/// Stock of a SKU at one location, with its lots in first-expiry-first-out order.
#[utoipa::path(get, path = "/v1/inventory/{sku}/{location_id}", tag = "inventory",
    params(("sku" = String, Path, description = "SKU"),
        ("location_id" = String, Path, description = "Location id")),
    responses(
        (status = 200, description = "Stock and lots", body = serde_json::Value),
        (status = 404, description = "Not stocked there", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn location_stock(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((sku, location_id)): ApiPath<(String, String)>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let level = app
        .store
        .stock(&caller.tenant, &sku, &location_id)
        .await?
        .ok_or_else(|| Problem::not_found("stock", &format!("{sku}@{location_id}")))?;
    let lots = app.store.lots(&caller.tenant, &sku, &location_id).await?;
    let mut body = stock_json(&level);
    if let Json::Object(map) = &mut body {
        map.insert("sku".into(), json!(sku));
        map.insert("lots".into(), json!(lots));
    }
    Ok(reply(StatusCode::OK, &body))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub sku: String,
    pub location_id: String,
    /// Units received.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "integer")]
    pub qty: i64,
    #[serde(default, deserialize_with = "optional_object")]
    pub lot: Option<LotBody>,
    /// The delivery note or purchase order.
    #[serde(default)]
    pub reference: Option<String>,
}

/// Goods in.
#[utoipa::path(post, path = "/v1/inventory/receipts", tag = "inventory", request_body = ReceiptBody,
    responses(
        (status = 201, description = "The stock now", body = serde_json::Value),
        (status = 422, description = "Invalid", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn receipt(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ReceiptBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    check_id("sku", &body.sku)?;
    let level = app
        .store
        .receive(
            &caller.tenant,
            &Receipt {
                sku: body.sku,
                location_id: body.location_id,
                qty: body.qty,
                lot: body.lot.map(|l| LotRef {
                    lot_id: l.lot_id,
                    expires_at: l.expires_at,
                }),
                reference: body.reference.unwrap_or_default(),
            },
        )
        .await?;
    Ok(reply(StatusCode::CREATED, &stock_json(&level)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentBody {
    pub sku: String,
    pub location_id: String,
    /// Units found (+) or lost (−), never 0; on hand never drops below reserved.
    #[schema(minimum = -1_000_000_000, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "integer")]
    pub delta: i64,
    #[serde(default)]
    pub lot_id: Option<String>,
    pub reason: String,
}

/// A count correction.
#[utoipa::path(post, path = "/v1/inventory/adjustments", tag = "inventory", request_body = AdjustmentBody,
    responses(
        (status = 201, description = "The stock now", body = serde_json::Value),
        (status = 409, description = "Would go below reserved", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn adjustment(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AdjustmentBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let level = app
        .store
        .adjust(
            &caller.tenant,
            &Adjustment {
                sku: body.sku,
                location_id: body.location_id,
                delta: body.delta,
                lot_id: body.lot_id,
                reason: body.reason,
            },
        )
        .await?;
    Ok(reply(StatusCode::CREATED, &stock_json(&level)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SafetyStockBody {
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "integer")]
    pub safety_stock: i64,
}

/// Units held back from promising at a location.
#[utoipa::path(put, path = "/v1/inventory/{sku}/{location_id}/safety-stock", tag = "inventory",
    request_body = SafetyStockBody,
    params(("sku" = String, Path, description = "SKU"),
        ("location_id" = String, Path, description = "Location id")),
    responses(
        (status = 200, description = "The stock now", body = serde_json::Value),
        (status = 422, description = "Negative", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn safety_stock(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath((sku, location_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SafetyStockBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let level = app
        .store
        .set_safety_stock(&caller.tenant, &sku, &location_id, body.safety_stock)
        .await?;
    Ok(reply(StatusCode::OK, &stock_json(&level)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaveBody {
    /// Unix ms.
    #[serde(deserialize_with = "integer")]
    pub release_at: i64,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "integer")]
    pub qty: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresaleBody {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub session_id: String,
    pub sku: String,
    pub location_id: String,
    /// Units locked from free stock for the session.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "integer")]
    pub qty: i64,
    /// Releases to buyers (their quantities add up to `qty`).
    #[schema(min_items = 1)]
    #[serde(deserialize_with = "objects")]
    pub waves: Vec<WaveBody>,
    /// Unix ms; unsold units return to free stock then.
    #[serde(deserialize_with = "integer")]
    pub ends_at: i64,
}

/// Locks units for a live-stream session, released to buyers in waves (预售锁量, 分波).
#[utoipa::path(post, path = "/v1/presales", tag = "inventory", request_body = PresaleBody,
    responses(
        (status = 201, description = "Locked", body = serde_json::Value),
        (status = 409, description = "Not enough free stock", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn lock_presale(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PresaleBody>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    check_id("session_id", &body.session_id)?;
    let session = app
        .store
        .lock_presale(
            &caller.tenant,
            &NewPresale {
                session_id: body.session_id,
                sku: body.sku,
                location_id: body.location_id,
                qty: body.qty,
                waves: body
                    .waves
                    .iter()
                    .map(|w| NewWave {
                        release_at: w.release_at,
                        qty: w.qty,
                    })
                    .collect(),
                ends_at: body.ends_at,
            },
        )
        .await?;
    Ok(reply(StatusCode::CREATED, &session))
}

/// A presale session: locked, released and sold units, and its waves.
#[utoipa::path(get, path = "/v1/presales/{id}", tag = "inventory",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session", body = serde_json::Value),
        (status = 404, description = "No such session", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_presale(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let session = app
        .store
        .presale_session(&caller.tenant, &id)
        .await?
        .ok_or_else(|| Problem::not_found("presale session", &id))?;
    Ok(reply(StatusCode::OK, &session))
}

/// Ends a session now: unsold units go back to free stock.
#[utoipa::path(post, path = "/v1/presales/{id}/end", tag = "inventory",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "Closed", body = serde_json::Value),
        (status = 404, description = "No such session", body = super::ProblemDoc, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn end_presale(
    State(app): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, Problem> {
    caller.require(Scope::Orders)?;
    let session = app.store.end_presale(&caller.tenant, &id).await?;
    Ok(reply(StatusCode::OK, &session))
}
