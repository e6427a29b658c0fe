//! The OpenAPI document, generated from the handlers' annotations (utoipa).

use serde_json::Value as Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes::{admin, inventory, orders, rules, sop, system};

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
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
        orders::shipment_event, orders::create_return, orders::get_return, orders::return_qc,
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

/// The document as JSON.
pub fn document() -> Json {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or(Json::Null)
}
