//! Errors as `application/problem+json` (RFC 9457).
//!
//! Every error the API returns is a [`Problem`] with a stable `type` (a URN,
//! `urn:weir:problem:<slug>`), so clients branch on the type, never on the text. The
//! slugs are listed in `docs/api.md`. Extractor rejections (malformed JSON, unknown
//! fields, wrong types, a bad path or query) are turned into problems here too, so no
//! request can reach axum's plain-text error bodies.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value as Json};
use weir_runtime::services::orders::OrderError;
use weir_runtime::store::{PlaceError, StoreError};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// One error response.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// The stable part of `type`.
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Members beside the standard ones (`errors`, `diagnostics`, `sku` …).
    pub extensions: Map<String, Json>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            slug,
            title,
            detail: detail.into(),
            extensions: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: Json) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    pub fn type_uri(&self) -> String {
        format!("urn:weir:problem:{}", self.slug)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("{what} `{id}` not found"),
        )
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            "The request is not valid",
            detail,
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or unknown API key",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "The API key lacks the scope",
            detail,
        )
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    pub fn body(&self) -> Json {
        let mut body = Map::new();
        body.insert("type".into(), Json::String(self.type_uri()));
        body.insert("title".into(), Json::String(self.title.into()));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), Json::String(self.detail.clone()));
        for (key, value) in &self.extensions {
            body.insert(key.clone(), value.clone());
        }
        Json::Object(body)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(problem = self.slug, detail = %self.detail, "request failed");
        }
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "The JSON body does not match the schema",
                e.body_text(),
            ),
            JsonRejection::JsonSyntaxError(e) => Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "The body is not valid JSON",
                e.body_text(),
            ),
            JsonRejection::MissingJsonContentType(_) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The body must be JSON",
                "send `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "The body is too large",
                    e.body_text(),
                )
            }
            other => Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "The body could not be read",
                other.body_text(),
            ),
        }
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "The query string is not valid",
            rejection.body_text(),
        )
    }
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-path",
            "The path is not valid",
            rejection.body_text(),
        )
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        let detail = error.to_string();
        let conflict =
            |slug, title| Problem::new(StatusCode::CONFLICT, slug, title, detail.clone());
        match &error {
            StoreError::NotFound { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
            }
            StoreError::AlreadyExists { .. } => conflict("already-exists", "Already exists"),
            StoreError::Invalid(_) => Problem::invalid(detail),
            StoreError::IllegalTransition { from, to, .. } => {
                conflict("illegal-transition", "The order cannot make that move")
                    .with("from", json!(from.as_str()))
                    .with("to", json!(to.as_str()))
            }
            StoreError::OnHold { reason, to, .. } => {
                conflict("order-on-hold", "The order waits for review")
                    .with("hold_reason", json!(reason))
                    .with("to", json!(to.as_str()))
            }
            StoreError::InsufficientStock {
                sku,
                location_id,
                requested,
                available,
            } => conflict("insufficient-stock", "Not enough free stock")
                .with("sku", json!(sku))
                .with("location_id", json!(location_id))
                .with("requested", json!(requested))
                .with("available", json!(available)),
            StoreError::LotRequired { .. } | StoreError::NotLotTracked { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "lot-tracking",
                "Lot tracking does not match",
                detail,
            ),
            StoreError::ReturnExceedsShipped { .. } | StoreError::NotReturnable { .. } => {
                conflict("not-returnable", "The return does not match the order")
            }
            StoreError::QcAlreadyRecorded { .. } => {
                conflict("qc-already-recorded", "Quality check already recorded")
            }
            StoreError::EvidenceRequired { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "evidence-required",
                "The step needs evidence",
                detail,
            ),
            StoreError::StepAlreadyDone { .. } => conflict("step-done", "The step is already done"),
            StoreError::VersionConflict { actual, .. } => {
                conflict("version-conflict", "The list changed since that version")
                    .with("current_version", json!(actual))
            }
            StoreError::NothingToRollBack { .. } => {
                conflict("nothing-to-roll-back", "No earlier version to roll back to")
            }
            StoreError::PresaleClosed { .. } => conflict("presale-closed", "The presale is closed"),
            StoreError::Db(_)
            | StoreError::Migrate(_)
            | StoreError::Injected(_)
            | StoreError::Corrupt(_)
            | StoreError::Closed
            | StoreError::ReadAborted
            | StoreError::Thread { .. } => {
                Problem::unavailable(format!("the store failed: {detail}"))
            }
        }
    }
}

impl From<PlaceError> for Problem {
    fn from(error: PlaceError) -> Self {
        let detail = error.to_string();
        let conflict =
            |slug, title| Problem::new(StatusCode::CONFLICT, slug, title, detail.clone());
        match error {
            PlaceError::OutOfStock {
                sku,
                location_id,
                requested,
                available,
            } => conflict("out-of-stock", "Out of stock")
                .with("sku", json!(sku))
                .with("location_id", json!(location_id))
                .with("requested", json!(requested))
                .with("available", json!(available)),
            PlaceError::LotsUnavailable { sku, .. } => {
                conflict("lots-unavailable", "No lot lasts until delivery").with("sku", json!(sku))
            }
            PlaceError::PresaleUnavailable { session_id, .. } => conflict(
                "presale-sold-out",
                "Presale units are not released or sold out",
            )
            .with("session_id", json!(session_id)),
            PlaceError::PresaleMismatch { .. } => Problem::invalid(detail),
            PlaceError::BudgetExhausted { key, .. } => {
                conflict("budget-exhausted", "A promotion budget is used up")
                    .with("budget", json!(key))
            }
            PlaceError::LimitReached { key, .. } => {
                conflict("limit-reached", "A per-customer limit is reached")
                    .with("limit", json!(key))
            }
            PlaceError::IdempotencyConflict { key, order_id } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "The idempotency key was used for a different request",
                detail,
            )
            .with("idempotency_key", json!(key))
            .with("order_id", json!(order_id)),
            PlaceError::DuplicateOrder { order_id } => {
                conflict("duplicate-order", "The order id is taken")
                    .with("order_id", json!(order_id))
            }
            PlaceError::Invalid(_) => Problem::invalid(detail),
            PlaceError::Store(e) => e.into(),
        }
    }
}

impl From<OrderError> for Problem {
    fn from(error: OrderError) -> Self {
        let detail = error.to_string();
        match error {
            OrderError::Invalid { path, message } => Problem::invalid(detail)
                .with("errors", json!([{ "path": path, "message": message }])),
            OrderError::CurrencyMismatch { expected, .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "currency-mismatch",
                "The currency does not match the ruleset",
                detail,
            )
            .with("expected", json!(expected)),
            OrderError::UnknownSku { sku, line } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-sku",
                "Unknown SKU",
                detail,
            )
            .with("sku", json!(sku))
            .with("line", json!(line)),
            OrderError::UnknownLocation(id) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-location",
                "Unknown pickup store",
                detail,
            )
            .with("location_id", json!(id)),
            OrderError::Rejected { reasons } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rejected-by-risk",
                "The risk rules rejected the order",
                detail,
            )
            .with("reasons", json!(reasons)),
            OrderError::Unfulfillable { sku, line, .. } => Problem::new(
                StatusCode::CONFLICT,
                "unfulfillable",
                "No location can fulfil a line",
                detail,
            )
            .with("sku", json!(sku))
            .with("line", json!(line)),
            OrderError::Evaluation { ruleset, .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "evaluation-failed",
                "The ruleset could not decide the order",
                detail,
            )
            .with("ruleset", json!(ruleset)),
            OrderError::Place(e) => e.into(),
            OrderError::Store(e) => e.into(),
        }
    }
}
