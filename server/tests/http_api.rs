//! The order API (`weir serve`) over real HTTP on a loopback port, on SQLite and
//! PostgreSQL alike: every endpoint's success case, every error shape, idempotent
//! replay, and tenant isolation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{now_ms, order, seg, serum, Kind, Reply, TestServer, SHOP};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value as Json};
use weir_runtime::store::ManualClock;
use weir_server::serve::routes::orders::open_pending_sops;
use weir_server::serve::{Limits, Options};

both_backends!(
    // 1. every endpoint's success case
    orders_create_get_list_explain_cancel_and_ship,
    returns_restock_the_receiving_location,
    inventory_locations_receipts_adjustments_safety_stock,
    presales_lock_get_and_end,
    rulesets_upload_list_get_activate_and_roll_back,
    dry_run_decides_and_writes_nothing,
    lists_replace_patch_get_and_conflict,
    work_orders_list_get_and_complete,
    sops_on_later_events_open_work_orders_with_the_deciding_version,
    a_risk_review_holds_the_order_until_released,
    the_sweeps_cancellations_open_their_sops_once,
    api_keys_show_the_secret_once_and_revoke,
    health_readiness_metrics_and_openapi,
    // 2. error shapes
    body_errors_are_problems,
    a_body_over_the_limit_is_413,
    authentication_and_scope_errors,
    unknown_routes_and_wrong_methods,
    order_errors_are_typed,
    bad_query_parameters_are_problems,
    request_ids_are_set_and_echoed,
    // 3. idempotency
    idempotent_replay_is_byte_identical,
    idempotent_replay_survives_the_stock_running_out,
    idempotent_replay_survives_the_rules_changing,
    an_idempotency_key_reused_for_another_ruleset_is_422,
    // 4. tenants
    another_tenant_cannot_reach_an_order,
    another_tenant_sees_none_of_the_resources,
    same_names_in_two_tenants_stay_apart,
);

/// Asserts a problem answer's status and type; its body.
#[track_caller]
fn problem(reply: (u16, HeaderMap, Json), status: u16, slug: &str) -> Json {
    let (got, _, body) = reply;
    assert_eq!(got, status, "{body}");
    assert_eq!(
        body["type"],
        format!("urn:weir:problem:{slug}").as_str(),
        "{body}"
    );
    body
}

#[track_caller]
fn problem_reply(reply: &Reply, status: u16, slug: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.slug(), slug, "{}", reply.text());
}

fn order_ids(page: &Json) -> Vec<String> {
    page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_owned())
        .collect()
}

fn with_id(mut body: Json, id: &str) -> Json {
    body["order_id"] = json!(id);
    body
}

/// Moves an order to `delivered` through its shipment events.
async fn deliver(s: &TestServer, key: &str, id: &str) {
    for event in ["allocated", "picked", "shipped", "delivered"] {
        let (status, _, body) = s
            .post(
                &format!("/v1/orders/{id}/shipment-events"),
                key,
                json!({ "event": event }),
            )
            .await;
        assert_eq!(status, 200, "{event}: {body}");
    }
}

// ---- 1. every endpoint's success case ----------------------------------------------

async fn orders_create_get_list_explain_cancel_and_ship(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.admin;
    let version = s.seed_shop(key).await;

    // Create: 201, Location, the reservation and the work order.
    let (status, headers, created) = s
        .post(
            "/v1/orders",
            key,
            with_id(order("c-1", json!([serum(1)])), "A-1"),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["location"], "/v1/orders/A-1");
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(created["order_id"], "A-1");
    assert_eq!(created["state"], "placed");
    assert!(created["created_at"].as_i64().unwrap() > 0);
    let reservations = created["reservations"].as_array().unwrap();
    assert_eq!(reservations.len(), 1);
    assert_eq!(reservations[0]["sku"], "SERUM-30");
    assert_eq!(reservations[0]["location_id"], "SH-STORE");
    assert_eq!(reservations[0]["qty"], 1);
    assert_eq!(created["work_orders"].as_array().unwrap().len(), 1);
    assert_eq!(created["decisions"]["risk"]["decision"], "accept");
    assert_eq!(created["decisions"]["version"], version.as_str());
    assert_eq!(s.stock(key, "SERUM-30", "SH-STORE").await["reserved"], 1);

    // Get.
    let got = s.ok("/v1/orders/A-1", key).await;
    assert_eq!(got["summary"]["order_id"], "A-1");
    assert_eq!(got["summary"]["state"], "placed");
    assert_eq!(got["summary"]["customer_id"], "c-1");
    assert_eq!(got["summary"]["channel"], "tmall");
    assert_eq!(got["summary"]["currency"], "CNY");
    assert_eq!(got["summary"]["total_minor"], 16_000);
    assert_eq!(got["lines"].as_array().unwrap().len(), 1);
    assert_eq!(got["lines"][0]["sku"], "SERUM-30");
    assert_eq!(got["shipments"][0]["location_id"], "SH-STORE");
    assert_eq!(got["reservations"][0]["status"], "held");
    assert_eq!(got["work_orders"][0]["sop_name"], "pick_and_pack");
    assert_eq!(got["decision"]["ruleset_hash"], version.as_str());

    // Two more orders: another channel and customer; a promotion-sized one.
    let mut second = with_id(order("c-2", json!([serum(1)])), "A-2");
    second["order"]["channel"] = json!("jd");
    s.place(key, second).await;
    let third = s
        .place(key, with_id(order("c-1", json!([serum(2)])), "A-3"))
        .await;
    assert_eq!(
        third["decisions"]["promotions"]["total_discount_minor"],
        5_000
    );

    // List, filters, paging.
    let all = s.ok("/v1/orders", key).await;
    assert_eq!(order_ids(&all), ["A-1", "A-2", "A-3"]);
    assert_eq!(all["next_cursor"], Json::Null);
    assert_eq!(
        order_ids(&s.ok("/v1/orders?channel=jd", key).await),
        ["A-2"]
    );
    assert_eq!(
        order_ids(&s.ok("/v1/orders?customer_id=c-1", key).await),
        ["A-1", "A-3"]
    );
    assert_eq!(
        order_ids(&s.ok("/v1/orders?state=placed&channel=tmall", key).await),
        ["A-1", "A-3"]
    );
    let later = now_ms() + 3_600_000;
    assert!(order_ids(&s.ok(&format!("/v1/orders?created_from={later}"), key).await).is_empty());
    assert_eq!(
        order_ids(
            &s.ok(&format!("/v1/orders?created_before={later}"), key)
                .await
        )
        .len(),
        3
    );
    let page1 = s.ok("/v1/orders?limit=2", key).await;
    assert_eq!(order_ids(&page1), ["A-1", "A-2"]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = s
        .ok(&format!("/v1/orders?limit=2&cursor={cursor}"), key)
        .await;
    assert_eq!(order_ids(&page2), ["A-3"]);
    assert_eq!(page2["next_cursor"], Json::Null);

    // Explain: every rule, fired or not.
    let explained = s.ok("/v1/orders/A-1/explain", key).await;
    assert_eq!(explained["order_id"], "A-1");
    assert_eq!(explained["ruleset"], "shop");
    assert_eq!(explained["version"], version.as_str());
    assert_eq!(explained["facts_digest"].as_str().unwrap().len(), 64);
    let rules = explained["rules"].as_array().unwrap();
    assert!(rules.len() >= 8, "{explained}");
    assert!(rules
        .iter()
        .all(|r| r["rule"].is_string() && r["fired"].is_boolean()));
    let fired = |rules: &[Json], name: &str| {
        rules
            .iter()
            .find(|r| r["rule"] == name)
            .unwrap_or_else(|| panic!("no rule {name}"))["fired"]
            .clone()
    };
    assert_eq!(fired(rules, "spend_299_save_50"), false);
    assert_eq!(fired(rules, "blocked_device"), false);
    // Why the promotion did not fire: the clause that was false, on the stored facts.
    let spend = rules
        .iter()
        .find(|r| r["rule"] == "spend_299_save_50")
        .unwrap();
    let clauses = spend["clauses"].as_array().unwrap();
    assert!(
        clauses
            .iter()
            .any(|c| c["clause"].as_str().unwrap().contains("order.subtotal")
                && c["value"] == "false"),
        "{spend}"
    );
    let explained = s.ok("/v1/orders/A-3/explain", key).await;
    assert_eq!(
        fired(explained["rules"].as_array().unwrap(), "spend_299_save_50"),
        true
    );

    // Cancel: reservations released; cancelling again changes nothing.
    let (status, _, cancelled) = s
        .post(
            "/v1/orders/A-3/cancel",
            key,
            json!({"reason": "customer asked"}),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["order_id"], "A-3");
    assert_eq!(cancelled["already_cancelled"], false);
    assert_eq!(
        cancelled["released_reservations"].as_array().unwrap().len(),
        1
    );
    let (status, _, again) = s.post("/v1/orders/A-3/cancel", key, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(again["already_cancelled"], true);
    // The body is optional: `null` (which its schema allows) is no body.
    let (status, _, again) = s.post("/v1/orders/A-3/cancel", key, json!(null)).await;
    assert_eq!(
        (status, &again["already_cancelled"]),
        (200, &json!(true)),
        "{again}"
    );
    let a3 = s.ok("/v1/orders/A-3", key).await;
    assert_eq!(a3["summary"]["state"], "cancelled");
    assert_eq!(a3["summary"]["cancel_reason"], "customer asked");
    assert_eq!(
        order_ids(&s.ok("/v1/orders?state=cancelled", key).await),
        ["A-3"]
    );
    assert_eq!(s.stock(key, "SERUM-30", "SH-STORE").await["reserved"], 2);

    // Shipment events: allocated → picked → shipped → delivered.
    for (event, state) in [
        ("allocated", "allocated"),
        ("picked", "picking"),
        ("shipped", "shipped"),
        ("delivered", "delivered"),
    ] {
        let (status, _, body) = s
            .post(
                "/v1/orders/A-1/shipment-events",
                key,
                json!({ "event": event }),
            )
            .await;
        assert_eq!(status, 200, "{event}: {body}");
        assert_eq!(
            body,
            json!({"order_id": "A-1", "state": state, "work_order_ids": []})
        );
    }
    assert_eq!(
        s.ok("/v1/orders/A-1", key).await["summary"]["state"],
        "delivered"
    );
    // Shipping took the unit off the books.
    let stock = s.stock(key, "SERUM-30", "SH-STORE").await;
    assert_eq!(
        (stock["on_hand"].clone(), stock["reserved"].clone()),
        (json!(19), json!(1))
    );
    // Not the next step; goods that left cannot be cancelled.
    let body = problem(
        s.post(
            "/v1/orders/A-1/shipment-events",
            key,
            json!({"event": "allocated"}),
        )
        .await,
        409,
        "illegal-transition",
    );
    assert_eq!(
        (body["from"].clone(), body["to"].clone()),
        (json!("delivered"), json!("allocated"))
    );
    let (status, _, _) = s.post("/v1/orders/A-1/cancel", key, json!({})).await;
    assert_eq!(status, 409);
    s.stop().await;
}

async fn returns_restock_the_receiving_location(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.orders;
    s.seed_shop(&s.a.admin).await;
    s.place(key, with_id(order("c-r", json!([serum(2)])), "R-1"))
        .await;
    let line_no = s.ok("/v1/orders/R-1", key).await["lines"][0]["line_no"].clone();
    let ret = |id: Option<&str>, qty: i64| {
        let mut body = json!({
            "order_id": "R-1",
            "receiving_location_id": "SH-WH",
            "lines": [{"line_no": line_no, "qty": qty}],
        });
        if let Some(id) = id {
            body["return_id"] = json!(id);
        }
        body
    };
    // Not shipped yet: nothing to return.
    problem(
        s.post("/v1/returns", key, ret(Some("RET-0"), 1)).await,
        409,
        "not-returnable",
    );
    deliver(&s, key, "R-1").await;
    assert_eq!(s.stock(key, "SERUM-30", "SH-WH").await["on_hand"], 100);

    // Cross-store return: shipped from the store, handed in at the warehouse.
    let (status, _, created) = s.post("/v1/returns", key, ret(Some("RET-1"), 1)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["return_id"], "RET-1");
    assert_eq!(created["order_id"], "R-1");
    assert_eq!(created["receiving_location_id"], "SH-WH");
    assert_eq!(created["state"], "received");
    assert_eq!(created["lines"], json!([[line_no, "SERUM-30", 1]]));
    assert_eq!(created["qc_at"], Json::Null);
    // The answer to the receipt also names the work orders it opened (the shop has no
    // SOP on `return.received`); the rest is the return as GET shows it.
    let mut created = created;
    assert_eq!(
        created.as_object_mut().unwrap().remove("work_order_ids"),
        Some(json!([]))
    );
    assert_eq!(s.ok("/v1/returns/RET-1", key).await, created);
    // Nothing restocked before the quality check.
    assert_eq!(s.stock(key, "SERUM-30", "SH-WH").await["on_hand"], 100);

    let (status, _, checked) = s
        .post("/v1/returns/RET-1/qc", key, json!({"passed": true}))
        .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["state"], "qc_passed");
    assert!(checked["qc_at"].as_i64().is_some());
    assert_eq!(s.ok("/v1/returns/RET-1", key).await["state"], "qc_passed");
    // The receiving location got the unit back; the shipping one did not.
    let wh = s.stock(key, "SERUM-30", "SH-WH").await;
    assert_eq!(wh["on_hand"], 101);
    assert_eq!(wh["available_to_promise"], 101);
    assert_eq!(s.stock(key, "SERUM-30", "SH-STORE").await["on_hand"], 18);
    problem(
        s.post("/v1/returns/RET-1/qc", key, json!({"passed": true}))
            .await,
        409,
        "qc-already-recorded",
    );

    // One of two units left to return; a failed check restocks nothing.
    problem(
        s.post("/v1/returns", key, ret(None, 2)).await,
        409,
        "not-returnable",
    );
    let (status, _, second) = s.post("/v1/returns", key, ret(None, 1)).await;
    assert_eq!(status, 201, "{second}");
    let id = second["return_id"].as_str().unwrap();
    assert!(id.starts_with("r-"), "{id}");
    let (status, _, failed) = s
        .post(
            &format!("/v1/returns/{id}/qc"),
            key,
            json!({"passed": false}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(failed["state"], "qc_failed");
    assert_eq!(s.stock(key, "SERUM-30", "SH-WH").await["on_hand"], 101);
    problem(s.get("/v1/returns/NOPE", key).await, 404, "not-found");
    s.stop().await;
}

async fn inventory_locations_receipts_adjustments_safety_stock(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.orders;

    let (status, _, location) = s
        .put(
            "/v1/locations/WH-1",
            key,
            json!({"kind": "warehouse", "name": "Main", "lat": 31.05, "lon": 121.25,
                   "capabilities": {"ships": true}, "attributes": {"margin_pct": 12.5}}),
        )
        .await;
    assert_eq!(status, 200, "{location}");
    assert_eq!(
        location,
        json!({"id": "WH-1", "kind": "warehouse", "name": "Main", "lat": 31.05, "lon": 121.25,
               "capabilities": {"ships": true, "pickup": false, "cold_chain": false, "hazmat_certified": false}})
    );
    s.put_location(
        key,
        "FW-1",
        json!({"kind": "front_warehouse", "name": "Front", "lat": 31.2, "lon": 121.4,
               "capabilities": {"ships": true, "cold_chain": true}}),
    )
    .await;
    // PUT replaces.
    s.put_location(
        key,
        "WH-1",
        json!({"kind": "warehouse", "name": "Main (renamed)", "lat": 31.05, "lon": 121.25,
               "capabilities": {"ships": true}}),
    )
    .await;
    let locations = s.ok("/v1/locations", key).await;
    let locations = locations["locations"].as_array().unwrap();
    assert_eq!(locations.len(), 2);
    let wh = locations.iter().find(|l| l["id"] == "WH-1").unwrap();
    assert_eq!(wh["name"], "Main (renamed)");
    let fw = locations.iter().find(|l| l["id"] == "FW-1").unwrap();
    assert_eq!(fw["kind"], "front_warehouse");
    assert_eq!(fw["capabilities"]["cold_chain"], true);

    // Receipts.
    let level = s.receive(key, "TEA-1", "WH-1", 10).await;
    assert_eq!(
        level,
        json!({"location_id": "WH-1", "on_hand": 10, "reserved": 0, "safety_stock": 0,
               "available_to_promise": 10, "lot_tracked": false})
    );
    s.receive(key, "TEA-1", "FW-1", 5).await;
    let by_sku = s.ok("/v1/inventory/TEA-1", key).await;
    assert_eq!(by_sku["sku"], "TEA-1");
    assert_eq!(by_sku["available_to_promise"], 15);
    assert_eq!(by_sku["locations"].as_array().unwrap().len(), 2);

    // Adjustments.
    let (status, _, level) = s
        .post(
            "/v1/inventory/adjustments",
            key,
            json!({"sku": "TEA-1", "location_id": "WH-1", "delta": -3, "reason": "damaged"}),
        )
        .await;
    assert_eq!(status, 201, "{level}");
    assert_eq!(level["on_hand"], 7);
    assert_eq!(level["available_to_promise"], 7);
    problem(
        s.post(
            "/v1/inventory/adjustments",
            key,
            json!({"sku": "TEA-1", "location_id": "WH-1", "delta": -8, "reason": "lost"}),
        )
        .await,
        409,
        "insufficient-stock",
    );

    // Safety stock lowers what can be promised.
    let (status, _, level) = s
        .put(
            "/v1/inventory/TEA-1/WH-1/safety-stock",
            key,
            // JSON Schema's `integer` includes `2.0`: so does the server.
            json!({"safety_stock": 2.0}),
        )
        .await;
    assert_eq!(status, 200, "{level}");
    assert_eq!(level["safety_stock"], 2);
    assert_eq!(level["available_to_promise"], 5);
    let at = s.stock(key, "TEA-1", "WH-1").await;
    assert_eq!(at["sku"], "TEA-1");
    assert_eq!(at["location_id"], "WH-1");
    assert_eq!(at["on_hand"], 7);
    assert_eq!(at["reserved"], 0);
    assert_eq!(at["safety_stock"], 2);
    assert_eq!(at["available_to_promise"], 5);
    assert_eq!(at["lots"], json!([]));
    assert_eq!(
        s.ok("/v1/inventory/TEA-1", key).await["available_to_promise"],
        10
    );
    // Above the free stock: nothing promisable, never negative.
    let (_, _, level) = s
        .put(
            "/v1/inventory/TEA-1/WH-1/safety-stock",
            key,
            json!({"safety_stock": 50}),
        )
        .await;
    assert_eq!(level["available_to_promise"], 0);
    problem(
        s.put(
            "/v1/inventory/TEA-1/WH-1/safety-stock",
            key,
            json!({"safety_stock": -1}),
        )
        .await,
        422,
        "invalid-request",
    );
    for not_an_integer in [json!(2.5), json!(1e300), json!("2")] {
        problem(
            s.put(
                "/v1/inventory/TEA-1/WH-1/safety-stock",
                key,
                json!({ "safety_stock": not_an_integer }),
            )
            .await,
            422,
            "invalid-body",
        );
    }

    // Lots: tracked from the first receipt with a lot, FEFO listed.
    let expires = now_ms() + 10 * 86_400_000;
    let (status, _, level) = s
        .post(
            "/v1/inventory/receipts",
            key,
            json!({"sku": "MILK-1", "location_id": "FW-1", "qty": 4,
                   "lot": {"lot_id": "L-1", "expires_at": expires}}),
        )
        .await;
    assert_eq!(status, 201, "{level}");
    assert_eq!(level["lot_tracked"], true);
    let milk = s.stock(key, "MILK-1", "FW-1").await;
    assert_eq!(
        milk["lots"],
        json!([{"lot_id": "L-1", "expires_at": expires, "on_hand": 4, "reserved": 0}])
    );
    problem(
        s.post(
            "/v1/inventory/receipts",
            key,
            json!({"sku": "MILK-1", "location_id": "FW-1", "qty": 1}),
        )
        .await,
        422,
        "lot-tracking",
    );

    // Invalid input and unknown stock.
    problem(
        s.post(
            "/v1/inventory/receipts",
            key,
            json!({"sku": "TEA-1", "location_id": "WH-1", "qty": 0}),
        )
        .await,
        422,
        "invalid-request",
    );
    problem(
        s.post(
            "/v1/inventory/receipts",
            key,
            json!({"sku": "TEA-1", "location_id": "NOWHERE", "qty": 1}),
        )
        .await,
        404,
        "not-found",
    );
    problem(
        s.put(
            "/v1/locations/BAD",
            key,
            json!({"kind": "store", "name": "x", "lat": 91.0, "lon": 0.0}),
        )
        .await,
        422,
        "invalid-request",
    );
    problem(s.get("/v1/inventory/NOPE", key).await, 404, "not-found");
    problem(
        s.get("/v1/inventory/TEA-1/NOWHERE", key).await,
        404,
        "not-found",
    );
    s.stop().await;
}

async fn presales_lock_get_and_end(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.orders;
    s.put_location(
        key,
        "WH-1",
        json!({"kind": "warehouse", "name": "Main", "lat": 31.05, "lon": 121.25,
               "capabilities": {"ships": true}}),
    )
    .await;
    s.receive(key, "LIVE-1", "WH-1", 10).await;
    let now = now_ms();
    let presale = |id: &str, qty: i64, waves: Json| {
        json!({"session_id": id, "sku": "LIVE-1", "location_id": "WH-1", "qty": qty,
               "waves": waves, "ends_at": now + 3 * 3_600_000})
    };
    let (status, _, session) = s
        .post(
            "/v1/presales",
            key,
            presale(
                "S-1",
                6,
                json!([{"release_at": now + 3_600_000, "qty": 4},
                       {"release_at": now + 7_200_000, "qty": 2}]),
            ),
        )
        .await;
    assert_eq!(status, 201, "{session}");
    assert_eq!(session["session_id"], "S-1");
    assert_eq!(session["locked"], 6);
    assert_eq!(session["released"], 0);
    assert_eq!(session["sold"], 0);
    assert_eq!(session["state"], "open");
    let waves = session["waves"].as_array().unwrap();
    assert_eq!(waves.len(), 2);
    assert!(waves.iter().all(|w| w["released"] == false));
    // Locked units leave free stock.
    let stock = s.stock(key, "LIVE-1", "WH-1").await;
    assert_eq!(stock["reserved"], 6);
    assert_eq!(stock["available_to_promise"], 4);
    assert_eq!(s.ok("/v1/presales/S-1", key).await, session);

    problem(
        s.post(
            "/v1/presales",
            key,
            presale("S-2", 5, json!([{"release_at": now, "qty": 5}])),
        )
        .await,
        409,
        "insufficient-stock",
    );
    problem(
        s.post(
            "/v1/presales",
            key,
            presale("S-3", 3, json!([{"release_at": now, "qty": 1}])),
        )
        .await,
        422,
        "invalid-request",
    );

    // Ending returns the unsold units.
    let (status, _, ended) = s.post("/v1/presales/S-1/end", key, json!({})).await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["state"], "closed");
    assert_eq!(s.ok("/v1/presales/S-1", key).await["state"], "closed");
    let stock = s.stock(key, "LIVE-1", "WH-1").await;
    assert_eq!(stock["reserved"], 0);
    assert_eq!(stock["available_to_promise"], 10);
    problem(s.get("/v1/presales/NOPE", key).await, 404, "not-found");
    problem(
        s.post("/v1/presales/NOPE/end", key, json!({})).await,
        404,
        "not-found",
    );
    s.stop().await;
}

async fn rulesets_upload_list_get_activate_and_roll_back(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.rules;

    // A clean upload, not activated.
    let first = s.upload(key, json!({ "shop.weir": SHOP }), false).await;
    assert_eq!(first["name"], "shop");
    assert_eq!(first["active"], false);
    let v1 = first["version"].as_str().unwrap().to_owned();
    assert_eq!(v1.len(), 64);
    assert!(first["created_at"].as_i64().is_some());
    assert_eq!(first["diagnostics"]["summary"]["errors"], 0);
    assert!(first["diagnostics"]["summary"]["warnings"].is_u64());
    assert_eq!(first["diagnostics"]["summary"]["files"], 1);
    assert_eq!(s.ok("/v1/rulesets", key).await, json!({"rulesets": []}));

    // Activate it.
    let (status, _, body) = s
        .post("/v1/rulesets/shop/activate", key, json!({ "version": v1 }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"name": "shop", "active_version": v1}));
    assert_eq!(
        s.ok("/v1/rulesets", key).await,
        json!({"rulesets": [{"name": "shop", "active_version": v1}]})
    );

    // A second version, activated on upload.
    let edited = format!("{SHOP}\n// second version\n");
    let second = s.upload(key, json!({ "shop.weir": edited }), true).await;
    assert_eq!(second["active"], true);
    let v2 = second["version"].as_str().unwrap().to_owned();
    assert_ne!(v1, v2);
    let ruleset = s.ok("/v1/rulesets/shop", key).await;
    assert_eq!(ruleset["name"], "shop");
    assert_eq!(ruleset["active_version"], v2.as_str());
    let versions = ruleset["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    let active: Vec<&Json> = versions.iter().filter(|v| v["active"] == true).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["version"], v2.as_str());

    // A version's files.
    let files = s.ok(&format!("/v1/rulesets/shop/versions/{v1}"), key).await;
    assert_eq!(files["name"], "shop");
    assert_eq!(files["content_hash"], v1.as_str());
    assert_eq!(files["files"], json!({ "shop.weir": SHOP }));
    assert_eq!(files["active"], false);

    // Roll back to the first.
    let (status, _, body) = s.post("/v1/rulesets/shop/rollback", key, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"name": "shop", "active_version": v1}));
    assert_eq!(
        s.ok("/v1/rulesets/shop", key).await["active_version"],
        v1.as_str()
    );
    assert_eq!(
        s.ok("/v1/rulesets", key).await["rulesets"][0]["active_version"],
        v1.as_str()
    );

    // An upload with an error: 422 with the checker's diagnostics, nothing saved.
    let broken = "ruleset broken currency CNY\n\npromotion p {\n  when order.subtotal >= 5 kg\n  then discount order ¥1\n}\n";
    let body = problem(
        s.post(
            "/v1/rulesets",
            key,
            json!({"files": {"broken.weir": broken}, "activate": true}),
        )
        .await,
        422,
        "ruleset-invalid",
    );
    let diagnostics = body["diagnostics"]["diagnostics"].as_array().unwrap();
    assert!(!diagnostics.is_empty(), "{body}");
    for d in diagnostics {
        assert!(
            d["code"].as_str().is_some_and(|c| c.starts_with('E')),
            "{d}"
        );
        assert!(d["span"].is_object(), "{d}");
        assert_eq!(d["file"], "broken.weir");
    }
    assert!(body["diagnostics"]["summary"]["errors"].as_u64().unwrap() >= 1);
    problem(s.get("/v1/rulesets/broken", key).await, 404, "not-found");
    problem(
        s.post("/v1/rulesets", key, json!({"files": {"notes.txt": SHOP}}))
            .await,
        422,
        "invalid-request",
    );

    // Unknown names and versions.
    problem(s.get("/v1/rulesets/nope", key).await, 404, "not-found");
    problem(
        s.get("/v1/rulesets/shop/versions/0000", key).await,
        404,
        "not-found",
    );
    problem(
        s.post(
            "/v1/rulesets/shop/activate",
            key,
            json!({"version": "0000"}),
        )
        .await,
        404,
        "not-found",
    );
    assert_eq!(
        s.ok("/v1/rulesets/shop", key).await["active_version"],
        v1.as_str()
    );
    s.stop().await;
}

async fn dry_run_decides_and_writes_nothing(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.admin;
    let version = s.seed_shop(key).await;
    let before = s.ok("/v1/inventory/SERUM-30", key).await;
    let (status, _, run) = s
        .post(
            "/v1/rulesets/shop/dry-run",
            key,
            json!({"order": order("c-d", json!([serum(2)]))}),
        )
        .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["version"], version.as_str());
    assert_eq!(run["order"]["lines"].as_array().unwrap().len(), 1);
    assert_eq!(run["order"]["reservations"][0]["location_id"], "SH-STORE");
    assert_eq!(run["order"]["discount_minor"], 5_000);
    assert_eq!(
        run["decisions"]["promotions"]["total_discount_minor"],
        5_000
    );
    assert_eq!(run["decisions"]["risk"]["decision"], "accept");
    let (status, _, run) = s
        .post(
            "/v1/rulesets/shop/dry-run",
            key,
            json!({"version": version, "order": order("c-d", json!([serum(2)]))}),
        )
        .await;
    assert_eq!(status, 200, "{run}");

    // Nothing written: stock, orders, work orders, the customer's daily promotion limit.
    assert_eq!(s.ok("/v1/inventory/SERUM-30", key).await, before);
    assert!(order_ids(&s.ok("/v1/orders", key).await).is_empty());
    assert_eq!(
        s.ok("/v1/work-orders", key).await,
        json!({"work_orders": []})
    );
    let placed = s.place(key, order("c-d", json!([serum(2)]))).await;
    assert_eq!(
        placed["decisions"]["promotions"]["total_discount_minor"],
        5_000
    );

    // Refusals and unknown versions.
    problem(
        s.post(
            "/v1/rulesets/shop/dry-run",
            key,
            json!({"order": order("c-d", json!([{"sku": "NOPE", "qty": 1}]))}),
        )
        .await,
        422,
        "unknown-sku",
    );
    problem(
        s.post(
            "/v1/rulesets/shop/dry-run",
            key,
            json!({"version": "0000", "order": order("c-d", json!([serum(1)]))}),
        )
        .await,
        404,
        "not-found",
    );
    problem(
        s.post(
            "/v1/rulesets/nope/dry-run",
            key,
            json!({"order": order("c-d", json!([serum(1)]))}),
        )
        .await,
        404,
        "not-found",
    );
    let mut other = order("c-d", json!([serum(1)]));
    other["ruleset"] = json!("other");
    problem(
        s.post("/v1/rulesets/shop/dry-run", key, json!({ "order": other }))
            .await,
        422,
        "invalid-request",
    );
    s.stop().await;
}

async fn lists_replace_patch_get_and_conflict(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.rules;
    s.seed_shop(&s.a.admin).await;

    let (status, _, list) = s
        .put(
            "/v1/lists/blocked_devices",
            key,
            json!({"members": ["dev-bad", "dev-evil", "dev-bad"]}),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list,
        json!({"name": "blocked_devices", "version": 1, "members": ["dev-bad", "dev-evil"]})
    );
    // The rules read it on the next order.
    let body = problem(
        s.post("/v1/orders", &s.a.orders, order("bad", json!([serum(1)])))
            .await,
        422,
        "rejected-by-risk",
    );
    assert_eq!(body["reasons"], json!(["blocked device"]));

    let (status, _, list) = s
        .patch(
            "/v1/lists/blocked_devices",
            key,
            json!({"add": ["dev-worse"], "remove": ["dev-bad"]}),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list,
        json!({"name": "blocked_devices", "version": 2, "members": ["dev-evil", "dev-worse"]})
    );
    s.place(&s.a.orders, order("bad", json!([serum(1)]))).await;
    assert_eq!(s.ok("/v1/lists/blocked_devices", key).await, list);
    assert_eq!(
        s.ok("/v1/lists", key).await,
        json!({"lists": ["blocked_devices"]})
    );

    // Optimistic concurrency.
    let body = problem(
        s.put(
            "/v1/lists/blocked_devices",
            key,
            json!({"members": [], "expected_version": 1}),
        )
        .await,
        409,
        "version-conflict",
    );
    assert_eq!(body["current_version"], 2);
    problem(
        s.patch(
            "/v1/lists/blocked_devices",
            key,
            json!({"add": ["x"], "expected_version": 1.0}),
        )
        .await,
        409,
        "version-conflict",
    );
    assert_eq!(s.ok("/v1/lists/blocked_devices", key).await, list);
    let (status, _, list) = s
        .put(
            "/v1/lists/blocked_devices",
            key,
            json!({"members": ["dev-1"], "expected_version": 2}),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["version"], 3);
    let (status, _, list) = s
        .patch(
            "/v1/lists/blocked_devices",
            key,
            json!({"add": ["dev-2"], "expected_version": 3}),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["members"], json!(["dev-1", "dev-2"]));
    problem(s.get("/v1/lists/nope", key).await, 404, "not-found");
    s.stop().await;
}

async fn work_orders_list_get_and_complete(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.orders;
    s.seed_shop(&s.a.admin).await;
    let created = s
        .place(key, with_id(order("c-w", json!([serum(1)])), "W-1"))
        .await;
    let id = created["work_orders"][0].as_str().unwrap().to_owned();

    let listed = s.ok("/v1/work-orders?order_id=W-1", key).await;
    let list = listed["work_orders"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let work_order = &list[0];
    assert_eq!(work_order["id"], id.as_str());
    assert_eq!(work_order["order_id"], "W-1");
    assert_eq!(work_order["sop_name"], "pick_and_pack");
    assert_eq!(work_order["state"], "open");
    let steps = work_order["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["step_no"], 1);
    assert_eq!(steps[0]["role"], "picker");
    assert_eq!(steps[0]["state"], "pending");
    assert_eq!(steps[0]["evidence"], Json::Null);
    assert_eq!(steps[1]["evidence"], "photo");
    assert!(steps[1]["deadline_at"].as_i64().is_some());
    assert_eq!(
        &s.ok(&format!("/v1/work-orders/{}", seg(&id)), key).await,
        work_order
    );
    let open = s.ok("/v1/work-orders", key).await;
    assert!(open["work_orders"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["id"] == id.as_str()));

    // Step 1 needs no evidence.
    let (status, _, after) = s
        .post(
            &format!("/v1/work-orders/{}/steps/1/complete", seg(&id)),
            key,
            json!({"by": "picker-7"}),
        )
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["state"], "open");
    assert_eq!(after["steps"][0]["state"], "done");
    assert_eq!(after["steps"][0]["completed_by"], "picker-7");
    assert!(after["steps"][0]["completed_at"].as_i64().is_some());

    // Step 2 asks for a photo.
    let step2 = format!("/v1/work-orders/{}/steps/2/complete", seg(&id));
    problem(
        s.post(&step2, key, json!({"by": "packer-2"})).await,
        422,
        "evidence-required",
    );
    problem(
        s.post(&step2, key, json!({"by": "packer-2", "evidence_ref": "  "}))
            .await,
        422,
        "evidence-required",
    );
    problem(
        s.post(&step2, key, json!({"by": " ", "evidence_ref": "photo-1"}))
            .await,
        422,
        "invalid-request",
    );
    let (status, _, done) = s
        .post(
            &step2,
            key,
            json!({"by": "packer-2", "evidence_ref": "s3://parcels/W-1.jpg"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "done");
    assert_eq!(done["steps"][1]["evidence_ref"], "s3://parcels/W-1.jpg");
    problem(
        s.post(
            &format!("/v1/work-orders/{}/steps/1/complete", seg(&id)),
            key,
            json!({"by": "picker-7"}),
        )
        .await,
        409,
        "step-done",
    );

    // Closed work orders leave the open list.
    let open = s.ok("/v1/work-orders", key).await;
    assert!(!open["work_orders"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["id"] == id.as_str()));
    let closed = s.ok("/v1/work-orders?state=done", key).await;
    assert!(closed["work_orders"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["id"] == id.as_str()));
    problem(s.get("/v1/work-orders/NOPE", key).await, 404, "not-found");
    problem(
        s.post(
            &format!("/v1/work-orders/{}/steps/9/complete", seg(&id)),
            key,
            json!({"by": "x"}),
        )
        .await,
        404,
        "not-found",
    );
    s.stop().await;
}

/// SOPs on the events after placement, added to the shop ruleset for this test.
const LATER_SOPS: &str = r#"
sop delivery_follow_up {
  on shipment.delivered when location.kind == store
  step call role customer_service within 24 h "Ask the buyer how the parcel arrived"
}

sop shipped_from_warehouse {
  on shipment.shipped when location.kind == warehouse
  step notify role clerk within 1 h "Send the tracking number"
}

sop return_inspection {
  on return.received when location.kind == warehouse
  step inspect role returns_clerk within 1 h "Inspect the returned goods" requires photo
}

sop cancelled_big_order {
  on order.cancelled when order.subtotal >= ¥299
  step restock role picker within 2 h "Put the picked units back"
}
"#;

/// The work orders of `order_id`, by SOP name.
async fn sop_names(s: &TestServer, key: &str, order_id: &str) -> Vec<String> {
    let listed = s
        .ok(&format!("/v1/work-orders?order_id={order_id}"), key)
        .await;
    let mut names: Vec<String> = listed["work_orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["sop_name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Returns one unit of the first line of `order_id` at `location`: the status and body.
async fn return_first_unit(
    s: &TestServer,
    key: &str,
    order_id: &str,
    location: &str,
) -> (u16, Json) {
    let line_no = s.ok(&format!("/v1/orders/{order_id}"), key).await["lines"][0]["line_no"].clone();
    let (status, _, body) = s
        .post(
            "/v1/returns",
            key,
            json!({"order_id": order_id, "receiving_location_id": location,
                   "lines": [{"line_no": line_no, "qty": 1}]}),
        )
        .await;
    (status, body)
}

async fn sops_on_later_events_open_work_orders_with_the_deciding_version(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.admin;
    let plain = s.seed_shop(key).await;
    let with_later = s
        .upload(
            key,
            json!({ "shop.weir": format!("{SHOP}{LATER_SOPS}") }),
            true,
        )
        .await;
    // L-1 ships from the Shanghai store; L-2 (two serums, ¥320) will be cancelled.
    s.place(key, with_id(order("c-l1", json!([serum(1)])), "L-1"))
        .await;
    s.place(key, with_id(order("c-l2", json!([serum(2)])), "L-2"))
        .await;
    // Placing opens only the placement SOPs, and its decision record lists only those:
    // L-2's `order.cancelled` condition holds already, but its SOP is decided when the
    // order is cancelled.
    assert_eq!(sop_names(&s, key, "L-1").await, ["pick_and_pack"]);
    let l2 = s.ok("/v1/orders/L-2", key).await;
    assert_eq!(l2["decision"]["hooks"]["sops"], json!(["pick_and_pack"]));
    // The version without the later SOPs is active again: the orders keep the version
    // that decided them.
    let (status, _, body) = s
        .post(
            "/v1/rulesets/shop/activate",
            key,
            json!({ "version": plain }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(with_later["version"], json!(plain));

    let mut opened = Vec::new();
    for event in ["allocated", "picked", "shipped", "delivered", "delivered"] {
        let (status, _, body) = s
            .post(
                "/v1/orders/L-1/shipment-events",
                key,
                json!({ "event": event }),
            )
            .await;
        assert_eq!(status, 200, "{event}: {body}");
        assert_eq!(body.get("sop_error"), None, "{body}");
        opened.push(body["work_order_ids"].as_array().unwrap().len());
    }
    // Shipped from a store (not a warehouse): no tracking SOP; delivered: the follow-up,
    // once (the second `delivered` changes nothing).
    assert_eq!(opened, [0, 0, 0, 1, 0]);
    assert_eq!(
        sop_names(&s, key, "L-1").await,
        ["delivery_follow_up", "pick_and_pack"]
    );
    let listed = s.ok("/v1/work-orders?order_id=L-1", key).await;
    let follow_up = listed["work_orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["sop_name"] == "delivery_follow_up")
        .unwrap()
        .clone();
    assert_eq!(follow_up["steps"][0]["role"], "customer_service");
    assert_eq!(follow_up["state"], "open");
    assert_eq!(follow_up["location_id"], "SH-STORE");
    let deadline = follow_up["steps"][0]["deadline_at"].as_i64().unwrap();
    assert!(deadline > now_ms() + 23 * 3_600_000, "{deadline}");

    // Returned at the warehouse: the inspection SOP, decided on the receiving location.
    let (status, received) = return_first_unit(&s, key, "L-1", "SH-WH").await;
    assert_eq!(status, 201, "{received}");
    assert_eq!(received["work_order_ids"].as_array().unwrap().len(), 1);
    assert_eq!(
        sop_names(&s, key, "L-1").await,
        ["delivery_follow_up", "pick_and_pack", "return_inspection"]
    );
    // The warehouse's queue: the inspection is done where the goods came back.
    let queue = s.ok("/v1/work-orders?location_id=SH-WH", key).await;
    let at_warehouse: Vec<&str> = queue["work_orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["sop_name"].as_str().unwrap())
        .collect();
    assert_eq!(at_warehouse, ["return_inspection"]);

    // Cancelled with a subtotal of ¥320: the restock SOP, once.
    let (status, _, cancelled) = s.post("/v1/orders/L-2/cancel", key, json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["work_order_ids"].as_array().unwrap().len(), 1);
    let (_, _, again) = s.post("/v1/orders/L-2/cancel", key, json!({})).await;
    assert_eq!(again["work_order_ids"], json!([]));
    assert_eq!(
        sop_names(&s, key, "L-2").await,
        ["cancelled_big_order", "pick_and_pack"]
    );
    // An order decided by the version without them opens none.
    s.place(key, with_id(order("c-l3", json!([serum(2)])), "L-3"))
        .await;
    let (_, _, cancelled) = s.post("/v1/orders/L-3/cancel", key, json!({})).await;
    assert_eq!(cancelled["work_order_ids"], json!([]));

    // An SOP that cannot be evaluated when its event comes (its product overflows on
    // the receiving location's attribute) does not hold the return back: the return is
    // recorded, no work order opened, and the answer says why.
    let trapping = r#"
attribute location.factor: int = 0

sop overflowing_inspection {
  on return.received when location.factor * 1000000000000 > 5
  step inspect role returns_clerk within 1 h "Inspect"
}
"#;
    s.upload(
        key,
        json!({ "shop.weir": format!("{SHOP}{trapping}") }),
        true,
    )
    .await;
    s.put_location(
        key,
        "SH-WH",
        json!({"kind": "warehouse", "name": "Shanghai warehouse", "lat": 31.05, "lon": 121.25,
               "capabilities": {"ships": true, "hazmat_certified": true},
               "attributes": {"factor": 10_000_000_000i64}}),
    )
    .await;
    s.place(key, with_id(order("c-l4", json!([serum(1)])), "L-4"))
        .await;
    deliver(&s, key, "L-4").await;
    let (status, received) = return_first_unit(&s, key, "L-4", "SH-WH").await;
    assert_eq!(status, 201, "{received}");
    assert_eq!(received["state"], "received");
    assert_eq!(received["work_order_ids"], json!([]));
    let why = received["sop_error"].as_str().unwrap_or_default();
    assert!(why.contains("sop_triggers"), "{received}");
    assert_eq!(sop_names(&s, key, "L-4").await, ["pick_and_pack"]);
    s.stop().await;
}

async fn the_sweeps_cancellations_open_their_sops_once(kind: Kind) {
    let clock = Arc::new(ManualClock::new(now_ms()));
    // The background job waits an hour between rounds: the test drives the rounds.
    let options = Options {
        tick: std::time::Duration::from_secs(3600),
        ..Options::default()
    };
    let s = TestServer::start_with_clock(kind, options, clock.clone()).await;
    let key = &s.a.admin;
    s.seed_shop(key).await;
    s.upload(
        key,
        json!({ "shop.weir": format!("{SHOP}{LATER_SOPS}") }),
        true,
    )
    .await;
    // Two unpaid orders: ¥320 (the restock SOP's threshold is ¥299) and ¥160.
    s.place(key, with_id(order("c-sw1", json!([serum(2)])), "SW-1"))
        .await;
    s.place(key, with_id(order("c-sw2", json!([serum(1)])), "SW-2"))
        .await;
    clock.advance(31 * 60_000);
    let sweep = s.state.store.sweep_expired_reservations(100).await.unwrap();
    assert_eq!(sweep.cancelled_orders.len(), 2);
    assert_eq!(open_pending_sops(&s.state, 100).await.unwrap(), 2);
    assert_eq!(open_pending_sops(&s.state, 100).await.unwrap(), 0);
    assert_eq!(
        sop_names(&s, key, "SW-1").await,
        ["cancelled_big_order", "pick_and_pack"]
    );
    assert_eq!(sop_names(&s, key, "SW-2").await, ["pick_and_pack"]);
    let sw1 = s.ok("/v1/orders/SW-1", key).await;
    assert_eq!(
        (&sw1["summary"]["state"], &sw1["summary"]["cancel_reason"]),
        (&json!("cancelled"), &json!("reservation_expired"))
    );
    s.stop().await;
}

async fn a_risk_review_holds_the_order_until_released(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.orders;
    s.seed_shop(&s.a.admin).await;
    // The shop scores 60 for a fourth order from one device within the hour: review.
    for n in 1..=4 {
        let created = s
            .place(
                key,
                with_id(order("c-rv", json!([serum(1)])), &format!("RV-{n}")),
            )
            .await;
        let expected = if n == 4 {
            json!("risk_review")
        } else {
            Json::Null
        };
        assert_eq!(created["hold_reason"], expected, "RV-{n}: {created}");
    }
    assert_eq!(
        s.ok("/v1/orders/RV-4", key).await["summary"]["hold_reason"],
        "risk_review"
    );
    // The review queue.
    assert_eq!(
        order_ids(&s.ok("/v1/orders?on_hold=true", key).await),
        ["RV-4"]
    );
    assert_eq!(
        order_ids(&s.ok("/v1/orders?on_hold=false", key).await),
        ["RV-1", "RV-2", "RV-3"]
    );
    problem(
        s.get("/v1/orders?on_hold=maybe", key).await,
        400,
        "invalid-query",
    );
    // Paid for, but not picked while held.
    let event = |name: &str| json!({ "event": name });
    let (status, _, _) = s
        .post("/v1/orders/RV-4/shipment-events", key, event("allocated"))
        .await;
    assert_eq!(status, 200);
    let body = problem(
        s.post("/v1/orders/RV-4/shipment-events", key, event("picked"))
            .await,
        409,
        "order-on-hold",
    );
    assert_eq!(
        (body["hold_reason"].clone(), body["to"].clone()),
        (json!("risk_review"), json!("picking"))
    );
    // A reviewer releases it (naming themself); it then moves on.
    problem(
        s.post("/v1/orders/RV-4/release", key, json!({})).await,
        422,
        "invalid-body",
    );
    for blank in ["", " \u{85}\t"] {
        problem(
            s.post("/v1/orders/RV-4/release", key, json!({ "by": blank }))
                .await,
            422,
            "invalid-request",
        );
    }
    let (status, _, released) = s
        .post("/v1/orders/RV-4/release", key, json!({"by": "reviewer-7"}))
        .await;
    assert_eq!(status, 200, "{released}");
    assert_eq!(
        released,
        json!({"order_id": "RV-4", "released": true, "hold_reason": "risk_review", "state": "allocated"})
    );
    let (_, _, again) = s
        .post("/v1/orders/RV-4/release", key, json!({"by": "reviewer-7"}))
        .await;
    assert_eq!(again["released"], false);
    assert_eq!(
        s.ok("/v1/orders?on_hold=true", key).await["orders"],
        json!([])
    );
    let (status, _, body) = s
        .post("/v1/orders/RV-4/shipment-events", key, event("picked"))
        .await;
    assert_eq!(status, 200, "{body}");
    problem(
        s.post("/v1/orders/NOPE/release", key, json!({"by": "reviewer-7"}))
            .await,
        404,
        "not-found",
    );
    s.stop().await;
}

async fn api_keys_show_the_secret_once_and_revoke(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.admin;
    let (status, _, created) = s
        .post(
            "/v1/api-keys",
            key,
            json!({"label": "pos-store-12", "scopes": ["orders", "orders"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert_eq!(created["label"], "pos-store-12");
    assert_eq!(created["scopes"], json!(["orders"]));
    assert!(created["created_at"].as_i64().is_some());
    assert!(secret.starts_with("weir_"));
    assert_eq!(secret.len(), 5 + 64);
    assert!(secret[5..].chars().all(|c| c.is_ascii_hexdigit()));

    // The new key works, within its scope.
    assert_eq!(s.get("/v1/locations", &secret).await.0, 200);
    problem(s.get("/v1/rulesets", &secret).await, 403, "forbidden");

    // Listing never shows a secret (nor its hash).
    let listed = s
        .send(Method::GET, "/v1/api-keys", Some(key), None, &[])
        .await;
    assert_eq!(listed.status, 200);
    assert!(!listed.text().contains(&secret));
    assert!(!listed.text().contains(&key[5..]));
    let keys = listed.json["api_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4); // admin, orders, rules, and the new one
    for k in keys {
        assert!(
            k.get("secret").is_none() && k.get("key_hash").is_none(),
            "{k}"
        );
    }
    let mine = keys.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(mine["label"], "pos-store-12");
    assert_eq!(mine["revoked_at"], Json::Null);

    // Revoked: the key gets 401 at once.
    let (status, _, revoked) = s.delete(&format!("/v1/api-keys/{id}"), key).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(
        revoked,
        json!({"id": id, "revoked": true, "already_revoked": false})
    );
    problem(s.get("/v1/locations", &secret).await, 401, "unauthorized");
    let keys = s.ok("/v1/api-keys", key).await;
    let mine = keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(mine["revoked_at"].as_i64().is_some());
    let (status, _, again) = s.delete(&format!("/v1/api-keys/{id}"), key).await;
    assert_eq!(status, 200);
    assert_eq!(again["already_revoked"], true);
    problem(
        s.delete("/v1/api-keys/key_nope", key).await,
        404,
        "not-found",
    );

    // Invalid requests.
    problem(
        s.post("/v1/api-keys", key, json!({"label": "x", "scopes": []}))
            .await,
        422,
        "invalid-request",
    );
    problem(
        s.post(
            "/v1/api-keys",
            key,
            json!({"label": "x", "scopes": ["superuser"]}),
        )
        .await,
        422,
        "invalid-body",
    );
    s.stop().await;
}

async fn health_readiness_metrics_and_openapi(kind: Kind) {
    let s = TestServer::start(kind).await;
    let health = s.send(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json, json!({"status": "ok"}));

    let ready = s.send(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json["status"], "ready");
    let backend = match kind {
        Kind::Sqlite => "sqlite",
        Kind::Postgres => "postgres",
    };
    assert_eq!(ready.json["backend"], backend);

    assert_eq!(s.get("/v1/orders", &s.a.admin).await.0, 200);
    let metrics = s.send(Method::GET, "/metrics", None, None, &[]).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text();
    assert!(text.contains("weir_http_requests_total"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("weir_http_requests_total")
                && l.contains("route=\"/v1/orders\"")
                && l.contains("status=\"200\"")),
        "{text}"
    );
    assert!(text.contains("weir_http_request_duration_seconds"));

    let openapi = s.send(Method::GET, "/openapi.json", None, None, &[]).await;
    assert_eq!(openapi.status, 200);
    assert!(openapi.json["openapi"].as_str().unwrap().starts_with("3."));
    let paths = openapi.json["paths"].as_object().unwrap();
    assert!(paths["/v1/orders"].get("post").is_some());
    assert!(paths["/v1/orders"].get("get").is_some());
    for path in [
        "/v1/orders/{id}",
        "/v1/rulesets",
        "/v1/lists/{name}",
        "/v1/work-orders",
        "/v1/api-keys",
        "/healthz",
    ] {
        assert!(paths.contains_key(path), "{path}");
    }
    assert!(openapi.json["components"]["securitySchemes"]["api_key"].is_object());

    // The limits the handlers enforce are stated in the description (docs/fuzzing.md,
    // finding 4), so generated clients check them before sending.
    let number = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let schemas = &openapi.json["components"]["schemas"];
    let receipt = &schemas["ReceiptBody"]["properties"];
    assert_eq!(number(&receipt["qty"]["minimum"]), 1.0);
    assert_eq!(number(&receipt["qty"]["maximum"]), 1e9);
    assert_eq!(receipt["sku"]["minLength"], 1);
    assert_eq!(receipt["sku"]["maxLength"], 128);
    assert_eq!(
        receipt["sku"]["pattern"],
        r"^[^\u0000-\u001F\u007F-\u009F]*$"
    );
    let safety = &schemas["SafetyStockBody"]["properties"]["safety_stock"];
    assert_eq!(number(&safety["minimum"]), 0.0);
    assert_eq!(schemas["NewKeyBody"]["properties"]["scopes"]["minItems"], 1);
    assert_eq!(
        schemas["NewKeyBody"]["properties"]["label"]["maxLength"],
        128
    );
    assert_eq!(
        number(&schemas["LocationBody"]["properties"]["lat"]["maximum"]),
        90.0
    );
    assert_eq!(
        schemas["CreateReturn"]["properties"]["lines"]["minItems"],
        1
    );
    let files = &schemas["UploadBody"]["properties"]["files"];
    assert_eq!(
        (&files["minProperties"], &files["maxProperties"]),
        (&json!(1), &json!(64))
    );
    let param = |path: &str, method: &str, name: &str| -> serde_json::Value {
        paths[path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path}: no parameter {name}"))["schema"]
            .clone()
    };
    assert_eq!(number(&param("/v1/orders", "get", "limit")["minimum"]), 1.0);
    assert_eq!(
        number(&param("/v1/orders", "get", "limit")["maximum"]),
        1000.0
    );
    assert_eq!(
        param("/v1/work-orders", "get", "state")["pattern"],
        "^(open|done)$"
    );
    assert_eq!(param("/v1/lists/{name}", "put", "name")["maxLength"], 128);
    assert_eq!(
        param("/v1/orders", "post", "Idempotency-Key")["maxLength"],
        255
    );
    s.stop().await;
}

// ---- 2. error shapes -----------------------------------------------------------------

async fn body_errors_are_problems(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = s.a.admin.as_str();
    let json_type = Some("application/json");

    let reply = s
        .send_raw(
            Method::POST,
            "/v1/orders",
            Some(key),
            json_type,
            b"{\"currency\": ".to_vec(),
        )
        .await;
    problem_reply(&reply, 400, "malformed-json");

    let mut unknown = order("c-1", json!([serum(1)]));
    unknown["colour"] = json!("red");
    let body = problem(
        s.post("/v1/orders", key, unknown).await,
        422,
        "invalid-body",
    );
    assert!(
        body["detail"].as_str().unwrap().contains("colour"),
        "{body}"
    );

    let mut wrong = order("c-1", json!([serum(1)]));
    wrong["currency"] = json!(5);
    problem(s.post("/v1/orders", key, wrong).await, 422, "invalid-body");
    // A body is an object: serde would take an array for a struct's fields by position.
    let positional = order("c-1", json!([serum(1)]))
        .as_object()
        .unwrap()
        .values()
        .cloned()
        .collect::<Vec<_>>();
    let body = problem(
        s.post("/v1/orders", key, json!(positional)).await,
        422,
        "invalid-body",
    );
    assert!(
        body["detail"].as_str().unwrap().contains("a JSON object"),
        "{body}"
    );
    problem(
        s.post("/v1/orders/X/cancel", key, json!([])).await,
        422,
        "invalid-body",
    );
    // So is every object nested in a body: an array would fill its fields by position.
    let mut positional_delivery = order("c-1", json!([serum(1)]));
    positional_delivery["delivery"] = json!([31.2, 121.5]);
    let nested = [
        ("/v1/orders", positional_delivery),
        (
            "/v1/inventory/receipts",
            json!({"sku": "SERUM-30", "location_id": "WH-1", "qty": 1, "lot": ["L-1", 1_900_000_000_000_i64]}),
        ),
        (
            "/v1/returns",
            json!({"order_id": "X", "receiving_location_id": "WH-1", "lines": [[1, 1]]}),
        ),
    ];
    for (path, body) in nested {
        let body = problem(s.post(path, key, body).await, 422, "invalid-body");
        assert!(
            body["detail"].as_str().unwrap().contains("a JSON object"),
            "{path}: {body}"
        );
    }
    problem(
        s.put(
            "/v1/locations/X",
            key,
            json!({"kind": "warehouse", "name": "x", "lat": 0.0, "lon": 0.0, "capabilities": []}),
        )
        .await,
        422,
        "invalid-body",
    );
    problem(
        s.put(
            "/v1/locations/X",
            key,
            json!({"kind": "castle", "name": "x", "lat": 0.0, "lon": 0.0}),
        )
        .await,
        422,
        "invalid-body",
    );
    problem(
        s.post("/v1/orders/X/shipment-events", key, json!({})).await,
        422,
        "invalid-body",
    );

    let valid = serde_json::to_vec(&order("c-1", json!([serum(1)]))).unwrap();
    let reply = s
        .send_raw(Method::POST, "/v1/orders", Some(key), None, valid.clone())
        .await;
    problem_reply(&reply, 415, "unsupported-media-type");
    let reply = s
        .send_raw(
            Method::POST,
            "/v1/orders",
            Some(key),
            Some("text/plain"),
            valid,
        )
        .await;
    problem_reply(&reply, 415, "unsupported-media-type");

    // A path parameter of the wrong type.
    problem(
        s.post(
            "/v1/work-orders/W/steps/first/complete",
            key,
            json!({"by": "x"}),
        )
        .await,
        400,
        "invalid-path",
    );
    // Nothing was placed.
    assert!(order_ids(&s.ok("/v1/orders", key).await).is_empty());
    s.stop().await;
}

async fn a_body_over_the_limit_is_413(kind: Kind) {
    let options = Options {
        limits: Limits {
            body_bytes: 1024,
            ..Limits::default()
        },
        ..Options::default()
    };
    let s = TestServer::start_with(kind, options).await;
    let key = &s.a.admin;
    let (status, _, list) = s.put("/v1/lists/vip", key, json!({"members": ["a"]})).await;
    assert_eq!(status, 200, "{list}");
    let members: Vec<String> = (0..200).map(|i| format!("member-{i:05}")).collect();
    let body = problem(
        s.put("/v1/lists/vip", key, json!({ "members": members }))
            .await,
        413,
        "body-too-large",
    );
    assert!(!body["detail"].as_str().unwrap().is_empty());
    problem(
        s.post(
            "/v1/rulesets",
            key,
            json!({"files": {"shop.weir": SHOP}, "activate": true}),
        )
        .await,
        413,
        "body-too-large",
    );
    assert_eq!(s.ok("/v1/lists/vip", key).await["version"], 1);
    assert_eq!(s.ok("/v1/rulesets", key).await, json!({"rulesets": []}));
    s.stop().await;
}

async fn authentication_and_scope_errors(kind: Kind) {
    let s = TestServer::start(kind).await;
    let none = s.send(Method::GET, "/v1/orders", None, None, &[]).await;
    problem_reply(&none, 401, "unauthorized");
    let unknown = format!("weir_{}", "0".repeat(64));
    problem(s.get("/v1/orders", &unknown).await, 401, "unauthorized");
    problem(s.get("/v1/orders", "not-a-key").await, 401, "unauthorized");
    let basic = s
        .send(
            Method::GET,
            "/v1/orders",
            None,
            None,
            &[("authorization", "Basic dXNlcjpwYXNz")],
        )
        .await;
    problem_reply(&basic, 401, "unauthorized");
    // Authentication comes before the body is read.
    let reply = s
        .send_raw(
            Method::POST,
            "/v1/orders",
            None,
            Some("application/json"),
            b"{oops".to_vec(),
        )
        .await;
    problem_reply(&reply, 401, "unauthorized");

    // Scopes: orders, rules, admin (admin = all).
    let orders = &s.a.orders;
    let rules = &s.a.rules;
    assert_eq!(s.get("/v1/orders", orders).await.0, 200);
    assert_eq!(s.get("/v1/rulesets", rules).await.0, 200);
    assert_eq!(s.get("/v1/lists", rules).await.0, 200);
    for path in ["/v1/rulesets", "/v1/lists", "/v1/api-keys"] {
        problem(s.get(path, orders).await, 403, "forbidden");
    }
    problem(
        s.post(
            "/v1/rulesets",
            orders,
            json!({"files": {"shop.weir": SHOP}}),
        )
        .await,
        403,
        "forbidden",
    );
    problem(
        s.put("/v1/lists/x", orders, json!({"members": []})).await,
        403,
        "forbidden",
    );
    for path in [
        "/v1/orders",
        "/v1/locations",
        "/v1/work-orders",
        "/v1/api-keys",
    ] {
        problem(s.get(path, rules).await, 403, "forbidden");
    }
    problem(
        s.post(
            "/v1/inventory/receipts",
            rules,
            json!({"sku": "X", "location_id": "Y", "qty": 1}),
        )
        .await,
        403,
        "forbidden",
    );
    problem(
        s.post(
            "/v1/api-keys",
            orders,
            json!({"label": "x", "scopes": ["admin"]}),
        )
        .await,
        403,
        "forbidden",
    );
    for path in [
        "/v1/orders",
        "/v1/rulesets",
        "/v1/lists",
        "/v1/api-keys",
        "/v1/work-orders",
    ] {
        assert_eq!(s.get(path, &s.a.admin).await.0, 200, "{path}");
    }
    s.stop().await;
}

async fn unknown_routes_and_wrong_methods(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.admin;
    for path in ["/v1/nope", "/nope", "/v1", "/v1/orders/A/nope"] {
        problem(s.get(path, key).await, 404, "no-such-route");
    }
    let anonymous = s.send(Method::GET, "/v2/orders", None, None, &[]).await;
    problem_reply(&anonymous, 404, "no-such-route");
    let (status, headers, body) = s.delete("/v1/orders", key).await;
    let allow: BTreeSet<&str> = headers["allow"]
        .to_str()
        .unwrap()
        .split(',')
        .map(str::trim)
        .collect();
    assert!(
        allow.contains("GET") && allow.contains("POST") && !allow.contains("DELETE"),
        "{allow:?}"
    );
    problem((status, headers, body), 405, "method-not-allowed");
    problem(
        s.put("/healthz", key, json!({})).await,
        405,
        "method-not-allowed",
    );
    problem(
        s.get("/v1/orders/A/cancel", key).await,
        405,
        "method-not-allowed",
    );
    problem(
        s.post("/v1/locations", key, json!({})).await,
        405,
        "method-not-allowed",
    );
    s.stop().await;
}

async fn order_errors_are_typed(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.orders;
    // No ruleset yet.
    problem(
        s.post("/v1/orders", key, order("c-1", json!([serum(1)])))
            .await,
        422,
        "no-active-ruleset",
    );
    s.seed_shop(&s.a.admin).await;

    for path in ["/v1/orders/NOPE", "/v1/orders/NOPE/explain"] {
        problem(s.get(path, key).await, 404, "not-found");
    }
    problem(
        s.post("/v1/orders/NOPE/cancel", key, json!({})).await,
        404,
        "not-found",
    );
    problem(
        s.post(
            "/v1/orders/NOPE/shipment-events",
            key,
            json!({"event": "allocated"}),
        )
        .await,
        404,
        "not-found",
    );

    let body = problem(
        s.post(
            "/v1/orders",
            key,
            order("c-1", json!([serum(1), {"sku": "NOPE", "qty": 1}])),
        )
        .await,
        422,
        "unknown-sku",
    );
    assert_eq!(body["sku"], "NOPE");
    assert_eq!(body["line"], 1);

    let mut usd = order("c-1", json!([serum(1)]));
    usd["currency"] = json!("USD");
    let body = problem(
        s.post("/v1/orders", key, usd).await,
        422,
        "currency-mismatch",
    );
    assert_eq!(body["expected"], "CNY");

    // More than every location holds together (120 units).
    let body = problem(
        s.post("/v1/orders", key, order("c-1", json!([serum(500)])))
            .await,
        409,
        "unfulfillable",
    );
    assert_eq!(body["sku"], "SERUM-30");

    let body = problem(
        s.post("/v1/orders", key, order("c-1", json!([serum(0)])))
            .await,
        422,
        "invalid-request",
    );
    assert_eq!(body["errors"][0]["path"], "order.items[0].qty");
    let mut named = order("c-1", json!([serum(1)]));
    named["ruleset"] = json!("nope");
    problem(
        s.post("/v1/orders", key, named).await,
        422,
        "unknown-ruleset",
    );
    problem(
        s.post(
            "/v1/orders",
            key,
            with_id(order("c-1", json!([serum(1)])), ""),
        )
        .await,
        422,
        "invalid-request",
    );
    let reply = s
        .send(
            Method::POST,
            "/v1/orders",
            Some(key),
            Some(&order("c-1", json!([serum(1)]))),
            &[("idempotency-key", "k".repeat(300).as_str())],
        )
        .await;
    problem_reply(&reply, 400, "invalid-idempotency-key");

    // Refusals write nothing.
    for location in ["SH-STORE", "SH-WH"] {
        assert_eq!(s.stock(key, "SERUM-30", location).await["reserved"], 0);
    }
    assert!(order_ids(&s.ok("/v1/orders", key).await).is_empty());

    // The order id is taken.
    s.place(key, with_id(order("c-1", json!([serum(1)])), "D-1"))
        .await;
    let body = problem(
        s.post(
            "/v1/orders",
            key,
            with_id(order("c-2", json!([serum(1)])), "D-1"),
        )
        .await,
        409,
        "duplicate-order",
    );
    assert_eq!(body["order_id"], "D-1");
    assert_eq!(order_ids(&s.ok("/v1/orders", key).await), ["D-1"]);
    assert_eq!(s.stock(key, "SERUM-30", "SH-STORE").await["reserved"], 1);
    s.stop().await;
}

async fn bad_query_parameters_are_problems(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = &s.a.orders;
    for query in [
        "limit=abc",
        "limit=-1",
        "created_from=yesterday",
        "colour=red",
    ] {
        problem(
            s.get(&format!("/v1/orders?{query}"), key).await,
            400,
            "invalid-query",
        );
    }
    for query in ["limit=0", "limit=1001", "state=lost", "cursor=garbage"] {
        problem(
            s.get(&format!("/v1/orders?{query}"), key).await,
            422,
            "invalid-request",
        );
    }
    assert_eq!(s.get("/v1/orders?limit=1000", key).await.0, 200);
    problem(
        s.get("/v1/work-orders?state=nope", key).await,
        422,
        "invalid-request",
    );
    problem(
        s.get("/v1/work-orders?order=1", key).await,
        400,
        "invalid-query",
    );
    s.stop().await;
}

async fn request_ids_are_set_and_echoed(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = s.a.admin.as_str();
    for (path, key, status) in [
        ("/healthz", None, 200),
        ("/v1/orders", Some(key), 200),
        ("/v1/orders", None, 401),
        ("/v1/nope", Some(key), 404),
        ("/v1/orders/NOPE", Some(key), 404),
    ] {
        let reply = s
            .send(
                Method::GET,
                path,
                key,
                None,
                &[("x-request-id", "trace-4f2a")],
            )
            .await;
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(reply.header("x-request-id"), Some("trace-4f2a"), "{path}");
    }
    // Without one, each answer gets its own.
    let mut seen = BTreeSet::new();
    for path in ["/healthz", "/healthz", "/v1/nope"] {
        let reply = s.send(Method::GET, path, None, None, &[]).await;
        let id = reply.header("x-request-id").unwrap().to_owned();
        assert_eq!(id.len(), 36, "{id}");
        assert!(seen.insert(id));
    }
    // Also on a POST that fails in the body.
    let reply = s
        .send_raw(
            Method::POST,
            "/v1/orders",
            Some(key),
            Some("application/json"),
            b"[".to_vec(),
        )
        .await;
    problem_reply(&reply, 400, "malformed-json");
    s.stop().await;
}

// ---- 3. idempotency ------------------------------------------------------------------

async fn idempotent_replay_is_byte_identical(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = s.a.orders.as_str();
    s.seed_shop(&s.a.admin).await;
    let body = order("c-i", json!([serum(1)]));
    let place = |body: Json, idempotency: &'static str| {
        let s = &s;
        async move {
            s.send(
                Method::POST,
                "/v1/orders",
                Some(key),
                Some(&body),
                &[("idempotency-key", idempotency)],
            )
            .await
        }
    };
    let first = place(body.clone(), "key-1").await;
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(first.header("idempotent-replayed"), None);
    let second = place(body.clone(), "key-1").await;
    assert_eq!(second.status, 201, "{}", second.text());
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        first.bytes,
        second.bytes,
        "\n{}\n{}",
        first.text(),
        second.text()
    );
    assert_eq!(first.header("location"), second.header("location"));
    let order_id = first.json["order_id"].as_str().unwrap().to_owned();

    // One order, one reservation.
    assert_eq!(
        order_ids(&s.ok("/v1/orders", key).await),
        vec![order_id.as_str()]
    );
    assert_eq!(s.stock(key, "SERUM-30", "SH-STORE").await["reserved"], 1);
    assert_eq!(s.stock(key, "SERUM-30", "SH-WH").await["reserved"], 0);

    // The same key for another request.
    let reply = place(order("c-i", json!([serum(2)])), "key-1").await;
    problem_reply(&reply, 422, "idempotency-key-reused");
    assert_eq!(reply.json["order_id"], order_id.as_str());
    assert_eq!(reply.json["idempotency_key"], "key-1");
    assert_eq!(
        order_ids(&s.ok("/v1/orders", key).await),
        vec![order_id.as_str()]
    );
    assert_eq!(s.stock(key, "SERUM-30", "SH-STORE").await["reserved"], 1);

    // The same request under another key is another order.
    let third = place(body, "key-2").await;
    assert_eq!(third.status, 201);
    assert_eq!(third.header("idempotent-replayed"), None);
    assert_ne!(third.json["order_id"], order_id.as_str());
    assert_eq!(order_ids(&s.ok("/v1/orders", key).await).len(), 2);
    s.stop().await;
}

async fn idempotent_replay_survives_the_stock_running_out(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = s.a.admin.as_str();
    s.upload_shop(key).await;
    s.put_location(
        key,
        "SH-WH",
        json!({"kind": "warehouse", "name": "Shanghai warehouse", "lat": 31.05, "lon": 121.25,
               "capabilities": {"ships": true}}),
    )
    .await;
    s.receive(key, "MUG-1", "SH-WH", 2).await;
    let mug = json!([{"sku": "MUG-1", "category": "home", "qty": 1, "price": "¥39.00"}]);
    let keyed = order("c-k", mug.clone());
    let send = || {
        s.send(
            Method::POST,
            "/v1/orders",
            Some(key),
            Some(&keyed),
            &[("idempotency-key", "mug-order-1")],
        )
    };
    let first = send().await;
    assert_eq!(first.status, 201, "{}", first.text());

    // Others take the last unit; the next buyer is refused.
    s.place(key, order("c-x", mug.clone())).await;
    problem(
        s.post("/v1/orders", key, order("c-y", mug.clone())).await,
        409,
        "unfulfillable",
    );
    let stock = s.stock(key, "MUG-1", "SH-WH").await;
    assert_eq!(stock["available_to_promise"], 0);

    // The retry still gets the first answer.
    let replay = send().await;
    assert_eq!(replay.status, 201, "{}", replay.text());
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        first.bytes,
        replay.bytes,
        "\n{}\n{}",
        first.text(),
        replay.text()
    );
    assert_eq!(order_ids(&s.ok("/v1/orders", key).await).len(), 2);
    assert_eq!(s.stock(key, "MUG-1", "SH-WH").await["reserved"], 2);
    s.stop().await;
}

async fn idempotent_replay_survives_the_rules_changing(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = s.a.admin.as_str();
    let first_version = s.seed_shop(key).await;
    // No `ruleset` in the request: the tenant's only active ruleset decides it.
    let body = order("c-r", json!([serum(1)]));
    let send = || {
        s.send(
            Method::POST,
            "/v1/orders",
            Some(key),
            Some(&body),
            &[("idempotency-key", "retry-me")],
        )
    };
    let first = send().await;
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(first.json["decisions"]["version"], first_version.as_str());

    // A new version of the same ruleset: the retry answers from what was stored.
    let edited = format!("{SHOP}\n// second version\n");
    s.upload(key, json!({ "shop.weir": edited }), true).await;
    let replay = send().await;
    assert_eq!(replay.status, 201, "{}", replay.text());
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.bytes, replay.bytes);

    // A second active ruleset: new orders must name one, but a retry of an order
    // already placed still gets its first answer (nothing is decided again).
    let other = "ruleset other currency CNY\n\nroute nearest {\n  consider warehouse, store\n  score -1.0 * location.distance_km\n}\n";
    s.upload(key, json!({ "other.weir": other }), true).await;
    problem(
        s.post("/v1/orders", key, order("c-new", json!([serum(1)])))
            .await,
        422,
        "ruleset-required",
    );
    let replay = send().await;
    assert_eq!(replay.status, 201, "{}", replay.text());
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.bytes, replay.bytes);
    assert_eq!(order_ids(&s.ok("/v1/orders", key).await).len(), 1);
    s.stop().await;
}

async fn an_idempotency_key_reused_for_another_ruleset_is_422(kind: Kind) {
    let s = TestServer::start(kind).await;
    let key = s.a.admin.as_str();
    s.seed_shop(key).await;
    let other = "ruleset other currency CNY\n\nroute nearest {\n  consider warehouse, store\n  score -1.0 * location.distance_km\n}\n";
    s.upload(key, json!({ "other.weir": other }), true).await;
    let mut by_shop = order("c-n", json!([serum(1)]));
    by_shop["ruleset"] = json!("shop");
    let mut by_other = by_shop.clone();
    by_other["ruleset"] = json!("other");
    let send = |body: &Json| {
        let body = body.clone();
        let s = &s;
        async move {
            s.send(
                Method::POST,
                "/v1/orders",
                Some(key),
                Some(&body),
                &[("idempotency-key", "named-1")],
            )
            .await
        }
    };
    let first = send(&by_shop).await;
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(first.json["decisions"]["ruleset"], "shop");
    // The same key with a body that names another ruleset is another request.
    let reused = send(&by_other).await;
    problem_reply(&reused, 422, "idempotency-key-reused");
    assert_eq!(reused.json["order_id"], first.json["order_id"]);
    assert_eq!(order_ids(&s.ok("/v1/orders", key).await).len(), 1);
    s.stop().await;
}

// ---- 4. tenants ----------------------------------------------------------------------

async fn another_tenant_cannot_reach_an_order(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (a, b) = (s.a.admin.as_str(), s.b.admin.as_str());
    s.seed_shop(a).await;
    let created = s
        .place(a, with_id(order("c-a", json!([serum(1)])), "A-1"))
        .await;
    let work_order = created["work_orders"][0].as_str().unwrap().to_owned();
    s.place(a, with_id(order("c-a2", json!([serum(1)])), "A-2"))
        .await;
    deliver(&s, a, "A-1").await;
    let line_no = s.ok("/v1/orders/A-1", a).await["lines"][0]["line_no"].clone();
    let ret = json!({"return_id": "RET-A", "order_id": "A-1", "receiving_location_id": "SH-WH",
                     "lines": [{"line_no": line_no, "qty": 1}]});
    assert_eq!(s.post("/v1/returns", a, ret.clone()).await.0, 201);

    // 404, as for an order that does not exist: existence is not revealed.
    for path in ["/v1/orders/A-1", "/v1/orders/A-1/explain", "/v1/orders/A-2"] {
        problem(s.get(path, b).await, 404, "not-found");
    }
    problem(
        s.post("/v1/orders/A-2/cancel", b, json!({})).await,
        404,
        "not-found",
    );
    problem(
        s.post(
            "/v1/orders/A-2/shipment-events",
            b,
            json!({"event": "allocated"}),
        )
        .await,
        404,
        "not-found",
    );
    assert!(order_ids(&s.ok("/v1/orders", b).await).is_empty());
    problem(s.get("/v1/returns/RET-A", b).await, 404, "not-found");
    problem(
        s.post("/v1/returns/RET-A/qc", b, json!({"passed": true}))
            .await,
        404,
        "not-found",
    );
    let mut steal = ret.clone();
    steal["return_id"] = json!("RET-B");
    let (status, _, body) = s.post("/v1/returns", b, steal).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        s.ok("/v1/work-orders?order_id=A-1", b).await,
        json!({"work_orders": []})
    );
    problem(
        s.get(&format!("/v1/work-orders/{}", seg(&work_order)), b)
            .await,
        404,
        "not-found",
    );
    problem(
        s.post(
            &format!("/v1/work-orders/{}/steps/1/complete", seg(&work_order)),
            b,
            json!({"by": "intruder"}),
        )
        .await,
        404,
        "not-found",
    );

    // A's records are untouched.
    let a2 = s.ok("/v1/orders/A-2", a).await;
    assert_eq!(a2["summary"]["state"], "placed");
    assert_eq!(a2["reservations"][0]["status"], "held");
    assert_eq!(s.ok("/v1/returns/RET-A", a).await["state"], "received");
    let wo = s
        .ok(&format!("/v1/work-orders/{}", seg(&work_order)), a)
        .await;
    assert_eq!(wo["steps"][0]["state"], "pending");

    // B, with a ruleset and a location of its own, does not know A's SKU.
    s.upload_shop(b).await;
    s.put_location(
        b,
        "B-WH",
        json!({"kind": "warehouse", "name": "B", "lat": 31.0, "lon": 121.0,
               "capabilities": {"ships": true}}),
    )
    .await;
    s.receive(b, "B-ONLY", "B-WH", 5).await;
    let body = problem(
        s.post("/v1/orders", b, order("c-b", json!([serum(1)])))
            .await,
        422,
        "unknown-sku",
    );
    assert_eq!(body["sku"], "SERUM-30");
    // The same idempotency key in another tenant is another order.
    let keyed = order(
        "c-a",
        json!([{"sku": "B-ONLY", "qty": 1, "price": "¥10.00"}]),
    );
    let first_a = s
        .send(
            Method::POST,
            "/v1/orders",
            Some(a),
            Some(&order("c-a", json!([serum(1)]))),
            &[("idempotency-key", "shared-key")],
        )
        .await;
    assert_eq!(first_a.status, 201);
    let first_b = s
        .send(
            Method::POST,
            "/v1/orders",
            Some(b),
            Some(&keyed),
            &[("idempotency-key", "shared-key")],
        )
        .await;
    assert_eq!(first_b.status, 201, "{}", first_b.text());
    assert_eq!(first_b.header("idempotent-replayed"), None);
    assert_ne!(first_a.json["order_id"], first_b.json["order_id"]);
    assert_eq!(order_ids(&s.ok("/v1/orders", b).await).len(), 1);
    assert_eq!(order_ids(&s.ok("/v1/orders", a).await).len(), 3);
    s.stop().await;
}

async fn another_tenant_sees_none_of_the_resources(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (a, b) = (s.a.admin.as_str(), s.b.admin.as_str());
    let version = s.seed_shop(a).await;
    s.place(a, with_id(order("c-a", json!([serum(1)])), "A-1"))
        .await;
    assert_eq!(
        s.put("/v1/lists/vip", a, json!({"members": ["p-1"]}))
            .await
            .0,
        200
    );
    let now = now_ms();
    let (status, _, _) = s
        .post(
            "/v1/presales",
            a,
            json!({"session_id": "S-A", "sku": "SERUM-30", "location_id": "SH-WH", "qty": 10,
                   "waves": [{"release_at": now + 3_600_000, "qty": 10}],
                   "ends_at": now + 7_200_000}),
        )
        .await;
    assert_eq!(status, 201);
    let a_stock = s.ok("/v1/inventory/SERUM-30", a).await;

    // Locations and stock.
    assert_eq!(s.ok("/v1/locations", b).await, json!({"locations": []}));
    problem(s.get("/v1/inventory/SERUM-30", b).await, 404, "not-found");
    problem(
        s.get("/v1/inventory/SERUM-30/SH-STORE", b).await,
        404,
        "not-found",
    );
    problem(
        s.put(
            "/v1/inventory/SERUM-30/SH-STORE/safety-stock",
            b,
            json!({"safety_stock": 20}),
        )
        .await,
        404,
        "not-found",
    );
    problem(
        s.post(
            "/v1/inventory/adjustments",
            b,
            json!({"sku": "SERUM-30", "location_id": "SH-STORE", "delta": -20, "reason": "x"}),
        )
        .await,
        404,
        "not-found",
    );
    problem(
        s.post(
            "/v1/inventory/receipts",
            b,
            json!({"sku": "SERUM-30", "location_id": "SH-STORE", "qty": 1}),
        )
        .await,
        404,
        "not-found",
    );
    problem(s.get("/v1/presales/S-A", b).await, 404, "not-found");
    problem(
        s.post("/v1/presales/S-A/end", b, json!({})).await,
        404,
        "not-found",
    );

    // Lists and rulesets.
    assert_eq!(s.ok("/v1/lists", b).await, json!({"lists": []}));
    problem(s.get("/v1/lists/vip", b).await, 404, "not-found");
    assert_eq!(s.ok("/v1/rulesets", b).await, json!({"rulesets": []}));
    problem(s.get("/v1/rulesets/shop", b).await, 404, "not-found");
    problem(
        s.get(&format!("/v1/rulesets/shop/versions/{version}"), b)
            .await,
        404,
        "not-found",
    );
    problem(
        s.post(
            "/v1/rulesets/shop/activate",
            b,
            json!({ "version": version }),
        )
        .await,
        404,
        "not-found",
    );
    problem(
        s.post(
            "/v1/rulesets/shop/dry-run",
            b,
            json!({"order": order("c-b", json!([serum(1)]))}),
        )
        .await,
        404,
        "not-found",
    );
    problem(
        s.post("/v1/rulesets/shop/rollback", b, json!({})).await,
        409,
        "nothing-to-roll-back",
    );
    assert_eq!(s.ok("/v1/rulesets", b).await, json!({"rulesets": []}));

    // Work orders and keys.
    assert_eq!(s.ok("/v1/work-orders", b).await, json!({"work_orders": []}));
    assert_eq!(
        s.ok("/v1/work-orders?state=open", b).await,
        json!({"work_orders": []})
    );
    let a_keys: BTreeSet<String> = s.ok("/v1/api-keys", a).await["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_owned())
        .collect();
    let b_keys = s.ok("/v1/api-keys", b).await;
    let b_keys = b_keys["api_keys"].as_array().unwrap();
    assert_eq!(b_keys.len(), 3);
    for k in b_keys {
        assert_eq!(k["tenant"], "globex");
        assert!(!a_keys.contains(k["id"].as_str().unwrap()));
    }
    for id in &a_keys {
        problem(
            s.delete(&format!("/v1/api-keys/{id}"), b).await,
            404,
            "not-found",
        );
    }

    // A sees everything as it was; its keys still work.
    assert_eq!(s.ok("/v1/inventory/SERUM-30", a).await, a_stock);
    assert_eq!(s.ok("/v1/presales/S-A", a).await["state"], "open");
    assert_eq!(s.ok("/v1/lists/vip", a).await["members"], json!(["p-1"]));
    assert_eq!(
        s.ok("/v1/rulesets", a).await,
        json!({"rulesets": [{"name": "shop", "active_version": version}]})
    );
    assert_eq!(
        s.ok("/v1/locations", a).await["locations"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    for k in [&s.a.admin, &s.a.orders] {
        assert_eq!(s.get("/v1/orders", k).await.0, 200);
    }
    assert_eq!(s.get("/v1/rulesets", &s.a.rules).await.0, 200);
    s.stop().await;
}

async fn same_names_in_two_tenants_stay_apart(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (a, b) = (s.a.admin.as_str(), s.b.admin.as_str());
    let version_a = s.seed_shop(a).await;

    // B's own `shop` ruleset, in another currency.
    let usd = "ruleset shop currency USD\n\nroute nearest {\n  consider warehouse, front_warehouse, store\n  score -1.0 * location.distance_km\n}\n";
    let uploaded = s.upload(b, json!({ "shop.weir": usd }), true).await;
    let version_b = uploaded["version"].as_str().unwrap().to_owned();
    assert_ne!(version_a, version_b);
    assert_eq!(
        s.ok("/v1/rulesets", a).await,
        json!({"rulesets": [{"name": "shop", "active_version": version_a}]})
    );
    assert_eq!(
        s.ok("/v1/rulesets/shop", b).await["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // B's location of the same id, with B's stock.
    s.put_location(
        b,
        "SH-STORE",
        json!({"kind": "store", "name": "B's store", "lat": 31.0, "lon": 121.0,
               "capabilities": {"ships": true}}),
    )
    .await;
    s.receive(b, "SERUM-30", "SH-STORE", 5).await;
    assert_eq!(s.stock(b, "SERUM-30", "SH-STORE").await["on_hand"], 5);
    assert_eq!(s.stock(a, "SERUM-30", "SH-STORE").await["on_hand"], 20);
    let a_locations = s.ok("/v1/locations", a).await;
    let a_store = a_locations["locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == "SH-STORE")
        .unwrap()
        .clone();
    assert_eq!(a_store["name"], "Shanghai store");

    // B blocks a device in its own `blocked_devices`: A's buyer on it is not affected.
    let (status, _, list) = s
        .put(
            "/v1/lists/blocked_devices",
            b,
            json!({"members": ["dev-c-a"]}),
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let placed = s.place(a, order("c-a", json!([serum(1)]))).await;
    assert_eq!(placed["decisions"]["risk"]["decision"], "accept");
    assert_eq!(placed["decisions"]["version"], version_a.as_str());
    problem(
        s.get("/v1/lists/blocked_devices", a).await,
        404,
        "not-found",
    );

    // A's own list has its own versions; B's stays as it was.
    let (_, _, a_list) = s
        .put(
            "/v1/lists/blocked_devices",
            a,
            json!({"members": ["dev-c-z"]}),
        )
        .await;
    assert_eq!(a_list["version"], 1);
    assert_eq!(s.ok("/v1/lists/blocked_devices", b).await, list);
    problem(
        s.post("/v1/orders", a, order("c-z", json!([serum(1)])))
            .await,
        422,
        "rejected-by-risk",
    );
    s.place(a, order("c-a", json!([serum(1)]))).await;

    // B's orders are decided by B's ruleset.
    let body = problem(
        s.post("/v1/orders", b, order("c-b", json!([serum(1)])))
            .await,
        422,
        "currency-mismatch",
    );
    assert_eq!(body["expected"], "USD");
    let mut usd_order = order("c-b", json!([{"sku": "SERUM-30", "qty": 1, "price": 10}]));
    usd_order["currency"] = json!("USD");
    let placed_b = s.place(b, usd_order).await;
    assert_eq!(placed_b["decisions"]["version"], version_b.as_str());
    assert_eq!(s.stock(b, "SERUM-30", "SH-STORE").await["reserved"], 1);
    // A's explain still reads A's version.
    let a_order = placed["order_id"].as_str().unwrap();
    assert_eq!(
        s.ok(&format!("/v1/orders/{a_order}/explain"), a).await["version"],
        version_a.as_str()
    );
    assert_eq!(order_ids(&s.ok("/v1/orders", a).await).len(), 2);
    assert_eq!(order_ids(&s.ok("/v1/orders", b).await).len(), 1);
    s.stop().await;
}
