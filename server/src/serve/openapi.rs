//! The OpenAPI document, generated from the handlers' annotations (utoipa).

use serde_json::Value as Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes::{admin, inventory, orders, rules, sop, system};

struct BearerKey;

/// The problems any `/v1` operation may answer, beside the ones it documents itself.
const COMMON_PROBLEMS: &[(&str, &str)] = &[
    (
        "400",
        "Unreadable request: malformed JSON, bad path or query",
    ),
    ("401", "Missing, unknown or revoked API key"),
    ("403", "The API key lacks the scope"),
    ("404", "Nothing of this tenant by that id"),
    ("405", "Method not allowed"),
    ("409", "Conflicts with the current state"),
    ("413", "Body too large"),
    ("415", "Body is not JSON"),
    ("422", "Valid JSON that cannot be done"),
    ("503", "The store failed or the request timed out; retry"),
];

fn problem_response(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ProblemDoc")))
                .build(),
        )
        .build()
}

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, description) in COMMON_PROBLEMS {
                    operation
                        .responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| problem_response(description).into());
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("weir_<64 hex digits>")
                    .description(Some(
                        "A tenant's API key; scopes `orders`, `rules`, `admin` (admin: all)",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "weir order API",
        description = "Orders decided by the merchant's own rules (compiled to sandboxed \
            WebAssembly), inventory, rulesets and SOP work orders. Errors are \
            application/problem+json (RFC 9457); docs/api.md lists their types."
    ),
    paths(
        system::healthz, system::readyz, system::metrics, system::openapi,
        orders::create, orders::list, orders::get, orders::explain, orders::cancel,
        orders::release, orders::shipment_event, orders::create_return, orders::get_return, orders::return_qc,
        inventory::put_location, inventory::list_locations, inventory::sku_stock,
        inventory::location_stock, inventory::receipt, inventory::adjustment,
        inventory::safety_stock, inventory::lock_presale, inventory::get_presale,
        inventory::end_presale,
        rules::upload, rules::list, rules::get, rules::get_version, rules::activate,
        rules::rollback, rules::dry_run, rules::lists, rules::get_list, rules::replace_list,
        rules::patch_list,
        sop::list, sop::get, sop::complete_step,
        admin::create, admin::list, admin::revoke,
    ),
    components(schemas(super::routes::ProblemDoc)),
    modifiers(&BearerKey),
    tags(
        (name = "orders", description = "Orders and shipment events (scope orders)"),
        (name = "returns", description = "Returns, cross-store, with quality check (scope orders)"),
        (name = "inventory", description = "Locations, stock, presale locks (scope orders)"),
        (name = "rulesets", description = "Upload, activate, roll back, dry-run (scope rules)"),
        (name = "lists", description = "Runtime lists rules read (scope rules)"),
        (name = "sop", description = "SOP work orders (scope orders)"),
        (name = "admin", description = "API keys (scope admin)"),
        (name = "system", description = "Health, readiness, metrics (no key)"),
    )
)]
pub struct ApiDoc;

/// The example request of `POST /v1/orders`: the demo merchant's beauty order, the one
/// the README places. Generated clients and API fuzzers (docs/fuzzing.md) start from a
/// valid order instead of free-form `order`/`customer` objects that never get past
/// validation; `http_demo.rs` places it.
const ORDER_EXAMPLE: &str = include_str!("../../../rulesets/beauty/examples/api-order.json");

/// The example request of `POST /v1/inventory/receipts`: goods in for the demo beauty
/// store's serum (no lot: the store does not track lots).
const RECEIPT_EXAMPLE: &str = r#"{"sku": "SERUM-30", "location_id": "bty-store-sh-jingan", "qty": 24, "reference": "PO-1111"}"#;

/// The example request of `POST /v1/presales`: a live-stream session on the demo
/// livestream merchant's serum set, released in two waves in 2100 (a date an example
/// can keep).
const PRESALE_EXAMPLE: &str = r#"{"session_id": "anna-2100", "sku": "lvs-serum-set-1111",
    "location_id": "lvs-wh-hangzhou", "qty": 20,
    "waves": [{"release_at": 4102444800000, "qty": 12}, {"release_at": 4102448400000, "qty": 8}],
    "ends_at": 4102531200000}"#;

/// Request examples by path (as a JSON pointer token): requests the demo merchant
/// accepts, so generated clients and fuzzers get past validation; `http_demo.rs` sends
/// each of them.
const EXAMPLES: [(&str, &str); 3] = [
    ("~1v1~1orders", ORDER_EXAMPLE),
    ("~1v1~1inventory~1receipts", RECEIPT_EXAMPLE),
    ("~1v1~1presales", PRESALE_EXAMPLE),
];

/// The document as JSON.
pub fn document() -> Json {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Json::Null);
    for (path, example) in EXAMPLES {
        let body = doc
            .pointer_mut(&format!(
                "/paths/{path}/post/requestBody/content/application~1json"
            ))
            .and_then(Json::as_object_mut);
        if let (Some(body), Ok(example)) = (body, serde_json::from_str::<Json>(example)) {
            body.insert("example".to_owned(), example);
        }
    }
    // How many files a ruleset may have, and what their names look like
    // (`registry::check_files`): bounds utoipa's field attributes cannot state.
    let files = doc
        .pointer_mut("/components/schemas/UploadBody/properties/files")
        .and_then(Json::as_object_mut);
    if let Some(files) = files {
        files.insert("minProperties".to_owned(), Json::from(1));
        files.insert(
            "maxProperties".to_owned(),
            Json::from(super::registry::MAX_FILES),
        );
        files.insert(
            "propertyNames".to_owned(),
            serde_json::json!({
                "pattern": super::registry::FILE_NAME_PATTERN,
                "maxLength": super::registry::MAX_FILE_NAME_CHARS,
            }),
        );
    }
    doc
}
