//! One end-to-end order story per business, with the real rulesets in `rulesets/`:
//! the pipeline reads stock, evaluates the business's rules in WebAssembly, plans and
//! checks shipments and commits through the store — on SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Harness, Kind};
use serde_json::{json, Map, Value as Json};
use weir_runtime::engine::{Engine, EngineConfig};
use weir_runtime::services::later_events::{event_work_orders, LaterEvent};
use weir_runtime::services::orders::{self, GeoPoint, OrderError, OrderRequest, Rules};
use weir_runtime::store::{
    Capabilities, Clock, Location, LocationKind, LotRef, NewPresale, NewReturn, NewWave,
    OrderState, PlaceError, Receipt, ReturnLine, Store,
};

const T: &str = "merchant";
const HOUR: i64 = 3_600_000;

both_backends!(
    beauty_perfume_stays_off_air_and_a_160_wh_battery_is_blocked,
    fresh_grocery_cold_chain_from_the_front_warehouse_with_a_fefo_lot,
    chain_store_ships_from_store_takes_bopis_and_restocks_a_cross_store_return,
    livestream_presale_waves_never_oversell,
);

/// Checks and builds every `.weir` file of `rulesets/<name>`.
fn business(name: &str) -> Rules {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rulesets")
        .join(name);
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "weir") {
            sources.push(weir_dsl::SourceText {
                name: path.display().to_string(),
                text: std::fs::read_to_string(&path).unwrap(),
            });
        }
    }
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    let out = weir_dsl::check(&sources);
    assert!(!out.has_errors(), "{name}: {:?}", out.diagnostics);
    let ruleset = out.ruleset.unwrap();
    let (compiled, wasm) = weir_compiler::build(&ruleset).unwrap();
    let engine = Engine::new(&EngineConfig {
        max_instances: 16,
        ..EngineConfig::default()
    })
    .unwrap();
    orders::rules(&engine, name, "e2e", ruleset, compiled, &wasm).unwrap()
}

struct Site {
    id: &'static str,
    kind: LocationKind,
    lat: f64,
    lon: f64,
    cold_chain: bool,
    hazmat: bool,
}

async fn site(s: &dyn Store, site: Site) {
    s.upsert_location(
        T,
        &Location {
            id: site.id.into(),
            kind: site.kind,
            name: site.id.into(),
            lat: site.lat,
            lon: site.lon,
            capabilities: Capabilities {
                ships: true,
                pickup: site.kind == LocationKind::Store,
                cold_chain: site.cold_chain,
                hazmat_certified: site.hazmat,
            },
        },
    )
    .await
    .unwrap();
}

async fn receive(s: &dyn Store, location: &str, sku: &str, qty: i64, lot: Option<LotRef>) {
    s.receive(
        T,
        &Receipt {
            sku: sku.into(),
            location_id: location.into(),
            qty,
            lot,
            reference: "asn".into(),
        },
    )
    .await
    .unwrap();
}

fn object(value: Json) -> Map<String, Json> {
    value.as_object().unwrap().clone()
}

fn request(order: Json, customer: Json) -> OrderRequest {
    OrderRequest {
        ruleset: None,
        order_id: None,
        currency: "CNY".into(),
        delivery: Some(GeoPoint {
            lat: 31.2400,
            lon: 121.4800,
        }),
        mode: None,
        order: object(order),
        customer: object(customer),
    }
}

async fn beauty_perfume_stays_off_air_and_a_160_wh_battery_is_blocked(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    let rules = business("beauty");
    site(
        s,
        Site {
            id: "SH-STORE-01",
            kind: LocationKind::Store,
            lat: 31.2304,
            lon: 121.4737,
            cold_chain: false,
            hazmat: false,
        },
    )
    .await;
    site(
        s,
        Site {
            id: "WH-KS-DG",
            kind: LocationKind::Warehouse,
            lat: 31.3850,
            lon: 120.9800,
            cold_chain: false,
            hazmat: true,
        },
    )
    .await;
    for sku in ["EDP-50", "CLEANSER-BRUSH", "SERUM-30"] {
        receive(s, "SH-STORE-01", sku, 10, None).await;
        receive(s, "WH-KS-DG", sku, 10, None).await;
    }
    // One travel spray to give away, at the warehouse only.
    receive(s, "WH-KS-DG", "EDT-TRAVEL-10ML", 1, None).await;
    let perfume = json!({
        "sku": "EDP-50", "category": "fragrance", "qty": 1, "price": "¥890.00",
        "liquid_ml": "50 ml", "flammable": true, "hazmat": true, "un_number": "UN1266"
    });
    let mut req = request(
        json!({ "channel": "tmall", "items": [perfume] }),
        json!({ "id": "c-77", "device": "dev-77" }),
    );
    req.mode = Some("air".into());
    let out = orders::place_order(s, &rules, T, &req, None).await.unwrap();
    let first_order = out.placed.order_id.clone();
    let record = s.order(T, &out.placed.order_id).await.unwrap().unwrap();
    assert_eq!(record.shipments.len(), 1);
    let shipment = &record.shipments[0];
    // A hazmat-only order leaves from the certified warehouse, by ground, sealed.
    assert_eq!(shipment.location_id, "WH-KS-DG");
    assert_eq!(shipment.carrier_mode, "ground");
    assert!(
        shipment.packaging.contains(&"sealed-bag".to_string()),
        "{:?}",
        shipment.packaging
    );
    assert!(shipment
        .packaging
        .contains(&"limited-quantity-label".to_string()));
    let decision = record.decision.unwrap();
    assert!(decision
        .fired_rules
        .contains(&"flammable_not_by_air".to_string()));
    assert_eq!(
        decision.hooks["shipments"][0]["constraints"]["forbidden_modes"],
        json!(["air"])
    );
    // ¥890 passes both thresholds of the exclusive group: the record names the one
    // that took it.
    let skipped = decision.hooks["promotions"]["skipped"].as_array().unwrap();
    assert!(
        skipped.contains(
            &json!({"name": "spend_299_save_50", "why": "excluded_by", "by": "spend_599_save_120"})
        ),
        "{skipped:?}"
    );
    assert!(skipped.contains(&json!({"name": "newcomer_coupon", "why": "not_eligible"})));
    // ¥890 of fragrance earns the travel spray (香水满800赠小样): reserved as stock at
    // the shipping warehouse, which has one.
    assert_eq!(
        decision.hooks["promotions"]["gifts"],
        json!([{"sku": "EDT-TRAVEL-10ML", "qty": 1, "location": "WH-KS-DG", "given": true}])
    );
    let gift: Vec<(&str, &str, i64)> = record
        .reservations
        .iter()
        .filter(|r| r.sku == "EDT-TRAVEL-10ML")
        .map(|r| (r.location_id.as_str(), r.status.as_str(), r.qty))
        .collect();
    assert_eq!(gift, [("WH-KS-DG", "held", 1)]);
    let spray = s
        .stock(T, "EDT-TRAVEL-10ML", "WH-KS-DG")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((spray.on_hand, spray.reserved), (1, 1));
    // The next buyer's spray is gone ("while stocks last"): the order is placed
    // without it, and its record says so.
    let mut req = request(
        json!({ "channel": "tmall", "items": [perfume.clone()] }),
        json!({ "id": "c-79", "device": "dev-79" }),
    );
    req.mode = Some("ground".into());
    let out = orders::place_order(s, &rules, T, &req, None).await.unwrap();
    let record = s.order(T, &out.placed.order_id).await.unwrap().unwrap();
    assert_eq!(
        record.decision.unwrap().hooks["promotions"]["gifts"],
        json!([{"sku": "EDT-TRAVEL-10ML", "qty": 1, "location": null, "given": false}])
    );
    assert!(record.reservations.iter().all(|r| r.sku == "EDP-50"));
    // Cancelling the first order gives the spray back.
    s.cancel_order(T, &first_order, "changed mind", &[])
        .await
        .unwrap();
    let spray = s
        .stock(T, "EDT-TRAVEL-10ML", "WH-KS-DG")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((spray.on_hand, spray.reserved), (1, 0));

    // A device with a 160 Wh battery is blocked everywhere: nothing is written.
    let before = h.scalar("SELECT COUNT(*) FROM orders").await;
    let device = json!({
        "sku": "CLEANSER-BRUSH", "category": "device", "qty": 1, "price": 1299,
        "battery_wh": "160 Wh", "un_number": "UN3481"
    });
    let req = request(
        json!({ "channel": "tmall", "items": [device] }),
        json!({ "id": "c-78", "device": "dev-78" }),
    );
    match orders::place_order(s, &rules, T, &req, None).await {
        Err(OrderError::Unfulfillable { sku, reason, .. }) => {
            assert_eq!(sku, "CLEANSER-BRUSH");
            assert!(reason.contains("100 Wh"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.scalar("SELECT COUNT(*) FROM orders").await, before);
    assert_eq!(
        s.stock(T, "CLEANSER-BRUSH", "WH-KS-DG")
            .await
            .unwrap()
            .unwrap()
            .reserved,
        0
    );
    h.cleanup().await;
}

async fn fresh_grocery_cold_chain_from_the_front_warehouse_with_a_fefo_lot(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    let rules = business("fresh_grocery");
    let now = h.clock.now_millis();
    // A store 0.9 km away without cold storage, a front warehouse 2.5 km away with it,
    // a city warehouse 25 km out (not considered for 30-minute delivery).
    site(
        s,
        Site {
            id: "STORE-JA",
            kind: LocationKind::Store,
            lat: 31.2330,
            lon: 121.4750,
            cold_chain: false,
            hazmat: false,
        },
    )
    .await;
    site(
        s,
        Site {
            id: "FW-JA-02",
            kind: LocationKind::FrontWarehouse,
            lat: 31.2600,
            lon: 121.4650,
            cold_chain: true,
            hazmat: false,
        },
    )
    .await;
    site(
        s,
        Site {
            id: "WH-MH",
            kind: LocationKind::Warehouse,
            lat: 31.0500,
            lon: 121.3800,
            cold_chain: true,
            hazmat: false,
        },
    )
    .await;
    // Milk: the front warehouse holds a lot expiring in 30 minutes (before the slot)
    // and one expiring in 5 days; FEFO must skip the first.
    let soon = LotRef {
        lot_id: "MILK-L1".into(),
        expires_at: now + HOUR / 2,
    };
    let later = LotRef {
        lot_id: "MILK-L2".into(),
        expires_at: now + 5 * 24 * HOUR,
    };
    receive(s, "FW-JA-02", "MILK-1L", 6, Some(soon)).await;
    receive(s, "FW-JA-02", "MILK-1L", 20, Some(later)).await;
    receive(s, "STORE-JA", "MILK-1L", 50, None).await;
    receive(s, "WH-MH", "MILK-1L", 500, None).await;
    let promised = (now + HOUR) / 1000;
    let milk = json!({ "sku": "MILK-1L", "category": "dairy", "qty": 2, "price": "¥12.80", "cold_chain": true });
    let req = request(
        json!({ "channel": "miniapp", "items": [milk], "promised_at": promised, "address": "addr-ja-1" }),
        json!({ "id": "c-9", "device": "dev-9" }),
    );
    let out = orders::place_order(s, &rules, T, &req, None).await.unwrap();
    let record = s.order(T, &out.placed.order_id).await.unwrap().unwrap();
    assert_eq!(record.shipments.len(), 1);
    assert_eq!(record.shipments[0].location_id, "FW-JA-02");
    assert!(record.shipments[0]
        .packaging
        .contains(&"insulated-bag-with-ice-packs".to_string()));
    // The nearer store was excluded (no cold storage); the warehouse was never a candidate.
    let route = &record.decision.as_ref().unwrap().hooks["route"];
    let ranked: Vec<&str> = route["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["location"].as_str().unwrap())
        .collect();
    assert_eq!(ranked, ["FW-JA-02"]);
    // FEFO: both units from the lot that outlives the delivery slot.
    let reservation = &record.reservations[0];
    assert_eq!(reservation.lots.len(), 1);
    assert_eq!(reservation.lots[0].lot_id, "MILK-L2");
    assert_eq!(reservation.lots[0].qty, 2);

    // Delivery of a chilled shipment asks the rider for a doorstep photo: the SOP on
    // `shipment.delivered` is evaluated when the delivery is reported, and opened with
    // it. Nothing listens to `shipment.shipped`.
    let order_id = &out.placed.order_id;
    for state in [OrderState::Allocated, OrderState::Picking] {
        s.advance_order(T, order_id, state, &[]).await.unwrap();
    }
    let record = s.order(T, order_id).await.unwrap().unwrap();
    let shipped = event_work_orders(s, &rules, T, &record, LaterEvent::Shipped)
        .await
        .unwrap();
    assert!(shipped.is_empty(), "{shipped:?}");
    s.advance_order(T, order_id, OrderState::Shipped, &shipped)
        .await
        .unwrap();
    let record = s.order(T, order_id).await.unwrap().unwrap();
    let delivered = event_work_orders(s, &rules, T, &record, LaterEvent::Delivered)
        .await
        .unwrap();
    let names: Vec<(&str, Option<&str>)> = delivered
        .iter()
        .map(|w| (w.sop_name.as_str(), w.location_id.as_deref()))
        .collect();
    assert_eq!(names, [("doorstep_photo", Some("FW-JA-02"))]);
    let step = &delivered[0].steps[0];
    assert_eq!(
        (
            step.role.as_str(),
            step.evidence.as_deref(),
            step.deadline_at
        ),
        ("rider", Some("photo"), Some(s.now() + 2 * 60_000))
    );
    let advanced = s
        .advance_order(T, order_id, OrderState::Delivered, &delivered)
        .await
        .unwrap();
    assert_eq!(advanced.work_order_ids, [delivered[0].id.clone()]);
    let record = s.order(T, order_id).await.unwrap().unwrap();
    assert!(record
        .work_orders
        .iter()
        .any(|w| w.sop_name == "doorstep_photo" && w.id == delivered[0].id));
    h.cleanup().await;
}

async fn chain_store_ships_from_store_takes_bopis_and_restocks_a_cross_store_return(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    let rules = business("chain_store");
    site(
        s,
        Site {
            id: "HQ-WH",
            kind: LocationKind::Warehouse,
            lat: 30.9000,
            lon: 121.1000,
            cold_chain: false,
            hazmat: false,
        },
    )
    .await;
    site(
        s,
        Site {
            id: "STORE-XH",
            kind: LocationKind::Store,
            lat: 31.2000,
            lon: 121.4400,
            cold_chain: false,
            hazmat: false,
        },
    )
    .await;
    site(
        s,
        Site {
            id: "STORE-PD",
            kind: LocationKind::Store,
            lat: 31.2200,
            lon: 121.5400,
            cold_chain: false,
            hazmat: false,
        },
    )
    .await;
    // Store economics the routing rule weighs (maintained by the merchant).
    for (location, turnover, margin, cost) in [
        ("HQ-WH", "30", "42", "1.0"),
        ("STORE-XH", "12", "48", "1.4"),
        ("STORE-PD", "9", "47", "1.5"),
    ] {
        let facts = json!({ "stock_turnover": turnover, "margin_pct": margin, "cost_coefficient": cost, "unknown_to_the_ruleset": 1 });
        s.set_location_attributes(T, location, facts.as_object().unwrap())
            .await
            .unwrap();
    }
    assert!(s
        .set_location_attributes(T, "NOWHERE", &Map::new())
        .await
        .is_err());
    // One pooled SKU: stock at head office and both stores.
    for (location, qty) in [("HQ-WH", 100), ("STORE-XH", 5), ("STORE-PD", 5)] {
        receive(s, location, "TEE-M", qty, None).await;
    }
    let tee = json!({ "sku": "TEE-M", "category": "apparel", "qty": 1, "price": "¥129.00", "weight": "300 g" });

    // BOPIS (到店自提): the buyer picks STORE-PD; the stock there is reserved.
    let req = request(
        json!({ "channel": "miniapp", "items": [tee.clone()], "pickup_store": "STORE-PD", "address": "addr-1" }),
        json!({ "id": "c-1" }),
    );
    let bopis = orders::place_order(s, &rules, T, &req, None).await.unwrap();
    let record = s.order(T, &bopis.placed.order_id).await.unwrap().unwrap();
    assert_eq!(record.shipments[0].location_id, "STORE-PD");
    assert_eq!(
        s.stock(T, "TEE-M", "STORE-PD")
            .await
            .unwrap()
            .unwrap()
            .reserved,
        1
    );
    let bopis_work: Vec<(&str, Option<&str>)> = record
        .work_orders
        .iter()
        .map(|w| (w.sop_name.as_str(), w.location_id.as_deref()))
        .collect();
    assert_eq!(
        bopis_work,
        [("bopis_ready_for_pickup", Some("STORE-PD"))],
        "the pick-up store's work order"
    );
    // SOPs on later events (a return's quality check) are not opened when the order is.
    assert!(
        record
            .work_orders
            .iter()
            .all(|w| !w.sop_name.contains("return")),
        "{:?}",
        record.work_orders
    );

    // An order split across both stores: each store packs its own parcel, so each gets
    // its own work order.
    receive(s, "STORE-XH", "SOCK-M", 3, None).await;
    receive(s, "STORE-PD", "CAP-L", 3, None).await;
    let req = request(
        json!({ "channel": "tmall", "address": "addr-3", "items": [
            { "sku": "SOCK-M", "category": "apparel", "qty": 1, "price": "¥29.00" },
            { "sku": "CAP-L", "category": "apparel", "qty": 1, "price": "¥79.00" },
        ] }),
        json!({ "id": "c-3" }),
    );
    let split = orders::place_order(s, &rules, T, &req, None).await.unwrap();
    let record = s.order(T, &split.placed.order_id).await.unwrap().unwrap();
    assert_eq!(record.shipments.len(), 2);
    let mut packs: Vec<(&str, Option<&str>)> = record
        .work_orders
        .iter()
        .map(|w| (w.sop_name.as_str(), w.location_id.as_deref()))
        .collect();
    packs.sort();
    assert_eq!(
        packs,
        [
            ("ship_from_store_pack", Some("STORE-PD")),
            ("ship_from_store_pack", Some("STORE-XH")),
        ]
    );

    // Ship-from-store (门店发货): the nearest store with stock ships a delivery order.
    let req = request(
        json!({ "channel": "tmall", "items": [tee], "address": "addr-2", "fulfilled_from": "STORE-XH" }),
        json!({ "id": "c-2" }),
    );
    let shipped = orders::place_order(s, &rules, T, &req, None).await.unwrap();
    let record = s.order(T, &shipped.placed.order_id).await.unwrap().unwrap();
    let from = record.shipments[0].location_id.clone();
    assert_eq!(
        from,
        "STORE-XH",
        "{:?}",
        record.decision.unwrap().hooks["route"]
    );

    // The buyer returns it at the other store (跨店退货): QC passes, STORE-PD restocks.
    for state in [
        OrderState::Allocated,
        OrderState::Picking,
        OrderState::Shipped,
        OrderState::Delivered,
    ] {
        s.advance_order(T, &shipped.placed.order_id, state, &[])
            .await
            .unwrap();
    }
    let on_hand_before = s
        .stock(T, "TEE-M", "STORE-PD")
        .await
        .unwrap()
        .unwrap()
        .on_hand;
    // Its return SOP is decided when the return is received, on the store that takes
    // it: 异店退货 at STORE-PD, a same-store return at STORE-XH.
    let record = s.order(T, &shipped.placed.order_id).await.unwrap().unwrap();
    let return_sops = |at: &'static str| {
        let record = &record;
        let rules = &rules;
        async move {
            let location = s.location(T, at).await.unwrap().unwrap();
            let event = LaterEvent::ReturnReceived {
                location: &location,
            };
            event_work_orders(s, rules, T, record, event).await.unwrap()
        }
    };
    let same_store: Vec<String> = return_sops("STORE-XH")
        .await
        .into_iter()
        .map(|w| w.sop_name)
        .collect();
    assert_eq!(same_store, ["same_store_return"]);
    let work_orders = return_sops("STORE-PD").await;
    let names: Vec<&str> = work_orders.iter().map(|w| w.sop_name.as_str()).collect();
    assert_eq!(names, ["cross_store_return"]);
    assert_eq!(work_orders[0].steps.len(), 3);
    assert_eq!(work_orders[0].location_id.as_deref(), Some("STORE-PD"));
    let ret = s
        .create_return(
            T,
            &NewReturn {
                return_id: "r-1".into(),
                order_id: shipped.placed.order_id.clone(),
                receiving_location_id: "STORE-PD".into(),
                lines: vec![ReturnLine { line_no: 1, qty: 1 }],
            },
            &work_orders,
        )
        .await
        .unwrap();
    let opened: Vec<String> = s
        .order(T, &shipped.placed.order_id)
        .await
        .unwrap()
        .unwrap()
        .work_orders
        .into_iter()
        .map(|w| w.sop_name)
        .filter(|name| name.contains("return"))
        .collect();
    assert_eq!(opened, ["cross_store_return"]);
    s.record_return_qc(T, &ret.return_id, true, None)
        .await
        .unwrap();
    let after = s.stock(T, "TEE-M", "STORE-PD").await.unwrap().unwrap();
    assert_eq!(after.on_hand, on_hand_before + 1);
    assert_eq!(
        s.stock(T, "TEE-M", "STORE-XH")
            .await
            .unwrap()
            .unwrap()
            .on_hand,
        4
    );
    h.cleanup().await;
}

async fn livestream_presale_waves_never_oversell(kind: Kind) {
    let h = Harness::open(kind).await;
    let rules = Arc::new(business("livestream"));
    // The session: 2026-11-10 20:00 to 24:00 (+08); wave 1 releases 11-11 20:00, wave 2
    // 11-12 10:00 (the ruleset's `wave_release` table).
    let wave1 = 1_794_398_400_000; // 2026-11-11T12:00:00Z
    let wave2 = 1_794_448_800_000; // 2026-11-12T02:00:00Z
    h.clock.set(wave1 - HOUR);
    let s = h.store.as_ref();
    site(
        s,
        Site {
            id: "WH-HZ",
            kind: LocationKind::Warehouse,
            lat: 30.2700,
            lon: 120.1500,
            cold_chain: false,
            hazmat: false,
        },
    )
    .await;
    receive(s, "WH-HZ", "LUCKY-BOX", 120, None).await;
    s.lock_presale(
        T,
        &NewPresale {
            session_id: "ANNA-1111".into(),
            sku: "LUCKY-BOX".into(),
            location_id: "WH-HZ".into(),
            qty: 100,
            waves: vec![
                NewWave {
                    release_at: wave1,
                    qty: 60,
                },
                NewWave {
                    release_at: wave2,
                    qty: 40,
                },
            ],
            ends_at: wave2 + 24 * HOUR,
        },
    )
    .await
    .unwrap();

    let buy = |n: usize, wave: i64| {
        let store = h.store.clone();
        let rules = rules.clone();
        tokio::spawn(async move {
            let req = request(
                json!({
                    "channel": "livestream", "session": "ANNA-1111", "presale": true,
                    "wave": wave, "balance_paid": true,
                    "items": [{ "sku": "LUCKY-BOX", "category": "lucky_bag", "qty": 1, "price": "¥99.00" }]
                }),
                json!({ "id": format!("fan-{n}"), "device": format!("d-{n}"), "phone": format!("p-{n}") }),
            );
            orders::place_order(store.as_ref(), &rules, T, &req, None).await
        })
    };
    let outcome = |result: Result<_, OrderError>| match result {
        Ok(_) => true,
        Err(OrderError::Place(PlaceError::PresaleUnavailable { .. }))
        | Err(OrderError::Unfulfillable { .. }) => false,
        Err(other) => panic!("{other:?}"),
    };

    // Wave 1 released: 90 fans race for 60 units.
    h.clock.set(wave1 + 60_000);
    s.presale_tick().await.unwrap();
    let tasks: Vec<_> = (0..90).map(|n| buy(n, 1)).collect();
    let mut wave1_sold = 0;
    for task in tasks {
        wave1_sold += usize::from(outcome(task.await.unwrap()));
    }
    assert_eq!(wave1_sold, 60);
    let session = s.presale_session(T, "ANNA-1111").await.unwrap().unwrap();
    assert_eq!((session.released, session.sold), (60, 60));

    // Wave 2 is still locked: its buyers are refused until it is released.
    assert!(!outcome(buy(500, 2).await.unwrap()));
    h.clock.set(wave2 + 60_000);
    s.presale_tick().await.unwrap();
    let tasks: Vec<_> = (100..170).map(|n| buy(n, 2)).collect();
    let mut wave2_sold = 0;
    for task in tasks {
        wave2_sold += usize::from(outcome(task.await.unwrap()));
    }
    assert_eq!(wave2_sold, 40);
    let session = s.presale_session(T, "ANNA-1111").await.unwrap().unwrap();
    assert_eq!((session.released, session.sold), (100, 100));
    let level = s.stock(T, "LUCKY-BOX", "WH-HZ").await.unwrap().unwrap();
    assert!(level.available_to_promise() >= 0);
    assert_eq!(h.scalar("SELECT COUNT(*) FROM orders").await, 100);
    h.cleanup().await;
}
