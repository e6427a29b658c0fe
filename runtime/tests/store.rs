//! The store's trait-level suite, run on SQLite and PostgreSQL alike: every operation,
//! every typed error, tenant isolation, and nothing half-written on failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{location, simple_order, stocked, Harness, Kind, T0};
use serde_json::{json, Value as Json};
use weir_runtime::store::{
    Adjustment, Advanced, BudgetUse, Idempotency, LimitUse, LocationKind, LotRef, MovementKind,
    NewApiKey, NewDecision, NewEvent, NewHold, NewLine, NewOrder, NewPresale, NewReservation,
    NewReturn, NewRulesetVersion, NewShipment, NewStep, NewWave, NewWorkOrder, OrderFilter,
    OrderReads, OrderState, PendingSops, PlaceError, PresaleState, Receipt, ReservationStatus,
    ReturnLine, ReturnState, ShipmentLine, StepCompletion, StepState, Store, StoreConfig,
    StoreError, VelocityKey, VelocityRead, WorkOrderFilter, WorkOrderState,
};

const A: &str = "acme";
const B: &str = "globex";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

both_backends!(
    locations_are_kept_per_tenant,
    receipts_adjustments_and_the_ledger,
    safety_stock_limits_what_is_promised,
    fefo_never_picks_a_lot_expiring_before_the_promise,
    holds_release_and_expire,
    unpaid_orders_are_cancelled_when_their_hold_expires,
    presale_waves_sell_and_return_unsold_units,
    a_full_order_is_written_and_read_back,
    every_refusal_is_typed_and_writes_nothing,
    idempotent_retries_return_the_stored_result,
    the_state_machine_confirms_stock_once_at_shipment,
    a_held_order_is_paid_for_but_not_fulfilled_until_released,
    cancellation_releases_and_compensates_once,
    orders_are_listed_with_filters_and_pages,
    cross_store_returns_restock_the_receiving_store_after_qc,
    velocity_counts_follow_the_window,
    runtime_lists_replace_patch_and_version,
    sop_steps_need_evidence_and_escalate_after_restart,
    outbox_rows_are_read_in_order_and_marked,
    ruleset_versions_activate_and_roll_back,
    one_tenant_never_reads_or_changes_another,
    concurrent_mixed_orders_each_commit_whole_or_not_at_all,
    tenants_and_api_keys,
    lookups_the_order_api_needs,
    reference_data_is_cached_but_never_stale_after_a_change,
    an_expired_list_is_renewed_by_its_version_and_read_once_by_concurrent_misses,
    concurrent_order_reads_each_get_their_own_answer,
);

async fn locations_are_kept_per_tenant(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    let mut wh = location("wh-1", LocationKind::Warehouse);
    wh.capabilities.cold_chain = true;
    s.upsert_location(A, &wh).await.unwrap();
    s.upsert_location(A, &location("store-1", LocationKind::Store))
        .await
        .unwrap();
    s.upsert_location(B, &location("wh-1", LocationKind::FrontWarehouse))
        .await
        .unwrap();
    assert_eq!(s.location(A, "wh-1").await.unwrap(), Some(wh.clone()));
    assert_eq!(
        s.location(B, "wh-1").await.unwrap().unwrap().kind,
        LocationKind::FrontWarehouse
    );
    let ids: Vec<String> = s
        .locations(A)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(ids, ["store-1", "wh-1"]);
    wh.name = "renamed".into();
    wh.capabilities.hazmat_certified = true;
    s.upsert_location(A, &wh).await.unwrap();
    assert_eq!(s.location(A, "wh-1").await.unwrap(), Some(wh));
    assert_eq!(s.location(A, "nope").await.unwrap(), None);
    assert!(matches!(
        s.upsert_location(A, &location("", LocationKind::Store))
            .await,
        Err(StoreError::Invalid(_))
    ));
    h.cleanup().await;
}

async fn receipts_adjustments_and_the_ledger(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, A, "wh", "sku-1", 10).await;
    let level = s
        .receive(
            A,
            &Receipt {
                sku: "sku-1".into(),
                location_id: "wh".into(),
                qty: 5,
                lot: None,
                reference: "asn-2".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!((level.on_hand, level.reserved), (15, 0));
    let level = s
        .adjust(
            A,
            &Adjustment {
                sku: "sku-1".into(),
                location_id: "wh".into(),
                delta: -3,
                lot_id: None,
                reason: "damaged".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(level.on_hand, 12);
    // Reserve 10, then try to count below what is reserved.
    s.place_order(simple_order(A, "o1", "sku-1", "wh", 10))
        .await
        .unwrap();
    let err = s
        .adjust(
            A,
            &Adjustment {
                sku: "sku-1".into(),
                location_id: "wh".into(),
                delta: -3,
                lot_id: None,
                reason: "count".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InsufficientStock {
                requested: 3,
                available: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let ledger = s.movements(A, "sku-1", "wh").await.unwrap();
    let kinds: Vec<MovementKind> = ledger.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            MovementKind::Receipt,
            MovementKind::Receipt,
            MovementKind::Adjustment
        ]
    );
    assert_eq!(ledger.iter().map(|m| m.on_hand_delta).sum::<i64>(), 12);
    assert_eq!(ledger[2].reason, "damaged");
    assert_eq!(ledger[1].reference, "asn-2");

    // Receipts need a known location, a positive quantity; lots must be consistent.
    let receipt = |loc: &str, qty: i64, lot: Option<LotRef>| Receipt {
        sku: "sku-1".into(),
        location_id: loc.into(),
        qty,
        lot,
        reference: String::new(),
    };
    assert!(matches!(
        s.receive(A, &receipt("nowhere", 1, None)).await,
        Err(StoreError::NotFound {
            kind: "location",
            ..
        })
    ));
    assert!(matches!(
        s.receive(A, &receipt("wh", 0, None)).await,
        Err(StoreError::Invalid(_))
    ));
    let lot = LotRef {
        lot_id: "L1".into(),
        expires_at: T0 + DAY,
    };
    assert!(matches!(
        s.receive(A, &receipt("wh", 1, Some(lot.clone()))).await,
        Err(StoreError::NotLotTracked { .. })
    ));
    assert!(matches!(
        s.adjust(
            A,
            &Adjustment {
                sku: "other".into(),
                location_id: "wh".into(),
                delta: 1,
                lot_id: None,
                reason: String::new(),
            }
        )
        .await,
        Err(StoreError::NotFound { kind: "stock", .. })
    ));
    // Failed operations wrote nothing.
    assert_eq!(s.movements(A, "sku-1", "wh").await.unwrap().len(), 3);
    assert_eq!(
        s.stock(A, "sku-1", "wh").await.unwrap().unwrap().on_hand,
        12
    );
    h.cleanup().await;
}

async fn safety_stock_limits_what_is_promised(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, A, "wh", "sku", 10).await;
    let level = s.set_safety_stock(A, "sku", "wh", 4).await.unwrap();
    assert_eq!(level.available_to_promise(), 6);
    let err = s
        .place_order(simple_order(A, "o1", "sku", "wh", 7))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PlaceError::OutOfStock { sku, location_id, requested: 7, available: 6 }
            if sku == "sku" && location_id == "wh"),
        "{err:?}"
    );
    s.place_order(simple_order(A, "o2", "sku", "wh", 6))
        .await
        .unwrap();
    let level = s.stock(A, "sku", "wh").await.unwrap().unwrap();
    assert_eq!(
        (level.on_hand, level.reserved, level.safety_stock),
        (10, 6, 4)
    );
    assert_eq!(level.available_to_promise(), 0);
    // Raising safety stock above what is free never makes a negative promise.
    let level = s.set_safety_stock(A, "sku", "wh", 8).await.unwrap();
    assert_eq!(level.available_to_promise(), 0);
    assert!(matches!(
        s.set_safety_stock(A, "sku", "wh", -1).await,
        Err(StoreError::Invalid(_))
    ));
    h.cleanup().await;
}

async fn fefo_never_picks_a_lot_expiring_before_the_promise(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    s.upsert_location(A, &location("wh", LocationKind::Warehouse))
        .await
        .unwrap();
    let lots = [
        ("EXPIRED", T0 - DAY, 5),
        ("SOON", T0 + 2 * DAY, 4),
        ("LATER", T0 + 30 * DAY, 6),
        ("LATEST", T0 + 90 * DAY, 10),
    ];
    for (id, exp, qty) in lots {
        s.receive(
            A,
            &Receipt {
                sku: "serum".into(),
                location_id: "wh".into(),
                qty,
                lot: Some(LotRef {
                    lot_id: id.into(),
                    expires_at: exp,
                }),
                reference: "asn".into(),
            },
        )
        .await
        .unwrap();
    }
    let level = s.stock(A, "serum", "wh").await.unwrap().unwrap();
    assert!(level.lot_tracked);
    assert_eq!(level.on_hand, 25);

    // Without a promise date, expired lots are never picked: SOON first.
    let placed = s
        .place_order(simple_order(A, "o1", "serum", "wh", 6))
        .await
        .unwrap();
    let picks: Vec<(String, i64)> = placed.reservations[0]
        .lots
        .iter()
        .map(|p| (p.lot_id.clone(), p.qty))
        .collect();
    assert_eq!(picks, [("SOON".into(), 4), ("LATER".into(), 2)]);

    // Promised delivery in 40 days: only LATEST qualifies.
    let mut o = simple_order(A, "o2", "serum", "wh", 3);
    o.reservations[0].not_expiring_before = Some(T0 + 40 * DAY);
    let placed = s.place_order(o).await.unwrap();
    assert_eq!(placed.reservations[0].lots.len(), 1);
    assert_eq!(placed.reservations[0].lots[0].lot_id, "LATEST");

    let mut o = simple_order(A, "o3", "serum", "wh", 8);
    o.reservations[0].not_expiring_before = Some(T0 + 40 * DAY);
    let err = s.place_order(o).await.unwrap_err();
    assert!(
        matches!(
            err,
            PlaceError::LotsUnavailable {
                requested: 8,
                available: 7,
                ..
            }
        ),
        "{err:?}"
    );
    // The picks are stored with the order.
    let rec = s.order(A, "o1").await.unwrap().unwrap();
    assert_eq!(rec.reservations[0].lots.len(), 2);
    let by_lot = s.lots(A, "serum", "wh").await.unwrap();
    let reserved: Vec<(String, i64)> = by_lot
        .iter()
        .map(|l| (l.lot_id.clone(), l.reserved))
        .collect();
    assert_eq!(
        reserved,
        [
            ("EXPIRED".into(), 0),
            ("SOON".into(), 4),
            ("LATER".into(), 2),
            ("LATEST".into(), 3)
        ]
    );
    // A lot-tracked SKU needs a lot on every receipt and adjustment.
    assert!(matches!(
        s.receive(
            A,
            &Receipt {
                sku: "serum".into(),
                location_id: "wh".into(),
                qty: 1,
                lot: None,
                reference: String::new(),
            }
        )
        .await,
        Err(StoreError::LotRequired { .. })
    ));
    // Shipping consumes exactly the picked lots.
    for st in [
        OrderState::Allocated,
        OrderState::Picking,
        OrderState::Shipped,
    ] {
        s.advance_order(A, "o1", st, &[]).await.unwrap();
    }
    let by_lot = s.lots(A, "serum", "wh").await.unwrap();
    let left: Vec<(String, i64, i64)> = by_lot
        .iter()
        .map(|l| (l.lot_id.clone(), l.on_hand, l.reserved))
        .collect();
    assert_eq!(
        left,
        [
            ("EXPIRED".into(), 5, 0),
            ("SOON".into(), 0, 0),
            ("LATER".into(), 4, 0),
            ("LATEST".into(), 10, 3)
        ]
    );
    let level = s.stock(A, "serum", "wh").await.unwrap().unwrap();
    assert_eq!((level.on_hand, level.reserved), (19, 3));
    h.cleanup().await;
}

async fn holds_release_and_expire(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, A, "wh", "sku", 5).await;
    let hold = |id: &str, qty: i64, expires_at: Option<i64>| NewHold {
        id: id.into(),
        sku: "sku".into(),
        location_id: "wh".into(),
        qty,
        expires_at,
        not_expiring_before: None,
    };
    let r = s.hold(A, &hold("h1", 2, None)).await.unwrap();
    assert_eq!(r.status, ReservationStatus::Held);
    s.hold(A, &hold("h2", 3, Some(T0 + 10_000))).await.unwrap();
    assert!(matches!(
        s.hold(A, &hold("h3", 1, None)).await,
        Err(PlaceError::OutOfStock { available: 0, .. })
    ));
    assert!(matches!(
        s.hold(A, &hold("h1", 1, None)).await,
        Err(PlaceError::Store(StoreError::AlreadyExists { .. }))
    ));
    // Release is idempotent.
    assert!(s.release_hold(A, "h1").await.unwrap());
    assert!(!s.release_hold(A, "h1").await.unwrap());
    assert_eq!(s.stock(A, "sku", "wh").await.unwrap().unwrap().reserved, 3);
    assert!(matches!(
        s.release_hold(A, "nope").await,
        Err(StoreError::NotFound { .. })
    ));
    // Not yet expired: the sweep leaves it.
    let sweep = s.sweep_expired_reservations(100).await.unwrap();
    assert!(sweep.released_holds.is_empty());
    h.clock.advance(10_000);
    let sweep = s.sweep_expired_reservations(100).await.unwrap();
    assert_eq!(sweep.released_holds, [(A.to_string(), "h2".to_string())]);
    assert_eq!(
        s.reservation(A, "h2").await.unwrap().unwrap().status,
        ReservationStatus::Expired
    );
    assert_eq!(s.stock(A, "sku", "wh").await.unwrap().unwrap().reserved, 0);
    // Sweeping again finds nothing; events were written once.
    let sweep = s.sweep_expired_reservations(100).await.unwrap();
    assert!(sweep.released_holds.is_empty());
    let events = s
        .outbox_events(A, Some(("reservation", "h2")))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "reservation.expired");
    h.cleanup().await;
}

async fn unpaid_orders_are_cancelled_when_their_hold_expires(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, A, "wh", "sku", 10).await;
    let mut unpaid = simple_order(A, "unpaid", "sku", "wh", 4);
    unpaid.reservation_expires_at = Some(T0 + 15 * 60_000);
    let mut paid = simple_order(A, "paid", "sku", "wh", 3);
    paid.reservation_expires_at = Some(T0 + 15 * 60_000);
    s.place_order(unpaid).await.unwrap();
    s.place_order(paid).await.unwrap();
    // Payment arrives: allocation clears the expiry.
    s.advance_order(A, "paid", OrderState::Allocated, &[])
        .await
        .unwrap();
    h.clock.advance(16 * 60_000);
    let sweep = s.sweep_expired_reservations(100).await.unwrap();
    assert_eq!(
        sweep.cancelled_orders,
        [(A.to_string(), "unpaid".to_string())]
    );
    let rec = s.order(A, "unpaid").await.unwrap().unwrap();
    assert_eq!(rec.summary.state, OrderState::Cancelled);
    assert_eq!(
        rec.summary.cancel_reason.as_deref(),
        Some("reservation_expired")
    );
    assert_eq!(rec.reservations[0].status, ReservationStatus::Expired);
    let rec = s.order(A, "paid").await.unwrap().unwrap();
    assert_eq!(rec.summary.state, OrderState::Allocated);
    assert_eq!(rec.reservations[0].status, ReservationStatus::Held);
    assert_eq!(rec.reservations[0].expires_at, None);
    assert_eq!(s.stock(A, "sku", "wh").await.unwrap().unwrap().reserved, 3);
    // The sweep has no rules: the cancelled order's `order.cancelled` SOPs are left
    // pending, to be opened once (with the cancellation's work orders) and cleared.
    let pending = s.pending_sops(10).await.unwrap();
    assert_eq!(
        pending,
        [PendingSops {
            tenant: A.into(),
            order_id: "unpaid".into(),
            event: "order.cancelled".into(),
        }]
    );
    assert!(s
        .open_pending_sops(
            A,
            "unpaid",
            "order.cancelled",
            &[later_work_order("wo-swept")]
        )
        .await
        .unwrap());
    assert!(!s
        .open_pending_sops(
            A,
            "unpaid",
            "order.cancelled",
            &[later_work_order("wo-twice")]
        )
        .await
        .unwrap());
    assert!(s.pending_sops(10).await.unwrap().is_empty());
    let opened = work_order_ids(s, A, "unpaid").await;
    assert_eq!(opened, ["wo-swept"]);
    h.cleanup().await;
}

async fn presale_waves_sell_and_return_unsold_units(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, A, "wh", "lipstick", 100).await;
    let presale = NewPresale {
        session_id: "live-1".into(),
        sku: "lipstick".into(),
        location_id: "wh".into(),
        qty: 30,
        waves: vec![
            NewWave {
                release_at: T0,
                qty: 10,
            },
            NewWave {
                release_at: T0 + HOUR,
                qty: 20,
            },
        ],
        ends_at: T0 + 2 * HOUR,
    };
    let session = s.lock_presale(A, &presale).await.unwrap();
    assert_eq!(
        (session.locked, session.released, session.sold),
        (30, 10, 0)
    );
    assert_eq!(
        s.stock(A, "lipstick", "wh")
            .await
            .unwrap()
            .unwrap()
            .available_to_promise(),
        70
    );
    assert!(matches!(
        s.lock_presale(A, &presale).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let mut too_big = presale.clone();
    too_big.session_id = "live-2".into();
    too_big.qty = 80;
    too_big.waves = vec![NewWave {
        release_at: T0,
        qty: 80,
    }];
    assert!(matches!(
        s.lock_presale(A, &too_big).await,
        Err(StoreError::InsufficientStock {
            requested: 80,
            available: 70,
            ..
        })
    ));

    let buyer = |id: &str, qty: i64| {
        let mut o = simple_order(A, id, "lipstick", "wh", qty);
        o.reservations[0].presale_session_id = Some("live-1".into());
        o
    };
    s.place_order(buyer("b1", 8)).await.unwrap();
    let err = s.place_order(buyer("b2", 5)).await.unwrap_err();
    assert!(
        matches!(&err, PlaceError::PresaleUnavailable { session_id, requested: 5, available: 2 }
            if session_id == "live-1"),
        "{err:?}"
    );
    // A session for another SKU is refused by name.
    let mut wrong = buyer("b3", 1);
    wrong.reservations[0].sku = "other".into();
    assert!(matches!(
        s.place_order(wrong).await,
        Err(PlaceError::PresaleMismatch { .. })
    ));
    // The second wave opens at its time.
    h.clock.advance(HOUR);
    let tick = s.presale_tick().await.unwrap();
    assert_eq!(
        tick.released_waves,
        [(A.to_string(), "live-1".to_string(), 2, 20)]
    );
    assert!(s.presale_tick().await.unwrap().released_waves.is_empty());
    s.place_order(buyer("b2", 5)).await.unwrap();
    // A cancelled buyer's unit goes back to the session while it is open.
    s.cancel_order(A, "b2", "changed mind", &[]).await.unwrap();
    let session = s.presale_session(A, "live-1").await.unwrap().unwrap();
    assert_eq!(
        (session.locked, session.released, session.sold),
        (30, 30, 8)
    );
    // Presale orders do not touch free stock; the lock already holds them.
    let level = s.stock(A, "lipstick", "wh").await.unwrap().unwrap();
    assert_eq!((level.on_hand, level.reserved), (100, 30));
    // The session ends: the 22 unsold units go back to stock.
    h.clock.advance(HOUR);
    let tick = s.presale_tick().await.unwrap();
    assert_eq!(
        tick.ended_sessions,
        [(A.to_string(), "live-1".to_string(), 22)]
    );
    let session = s.presale_session(A, "live-1").await.unwrap().unwrap();
    assert_eq!(session.state, PresaleState::Closed);
    assert_eq!((session.locked, session.sold), (8, 8));
    let level = s.stock(A, "lipstick", "wh").await.unwrap().unwrap();
    assert_eq!((level.on_hand, level.reserved), (100, 8));
    assert!(matches!(
        s.place_order(buyer("b4", 1)).await,
        Err(PlaceError::PresaleMismatch { .. })
    ));
    // Ending again changes nothing; cancelling after the end returns the unit to stock.
    assert_eq!(s.end_presale(A, "live-1").await.unwrap().locked, 8);
    s.cancel_order(A, "b1", "late", &[]).await.unwrap();
    let level = s.stock(A, "lipstick", "wh").await.unwrap().unwrap();
    assert_eq!((level.on_hand, level.reserved), (100, 0));
    let types: Vec<String> = s
        .outbox_events(A, Some(("presale", "live-1")))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        ["presale.locked", "presale.wave_released", "presale.ended"]
    );
    h.cleanup().await;
}

/// An order with every kind of side effect.
/// Text that must come back as written: quotes, a backslash, CJK, an emoji, control
/// characters (SQLite's inserts carry rows as JSON, see `Script`).
const CHANNEL: &str = "livestream \"双11\" \\ 🎉\n\t\u{1}";

/// The ids of an order's work orders.
async fn work_order_ids(s: &dyn Store, tenant: &str, order_id: &str) -> Vec<String> {
    s.order(tenant, order_id)
        .await
        .unwrap()
        .unwrap()
        .work_orders
        .into_iter()
        .map(|w| w.id)
        .collect()
}

/// A work order an order's later event opens (one step, no deadline).
fn later_work_order(id: &str) -> NewWorkOrder {
    NewWorkOrder {
        id: id.into(),
        order_id: None,
        location_id: None,
        sop_name: format!("sop-of-{id}"),
        steps: vec![NewStep {
            name: "check".into(),
            role: "clerk".into(),
            evidence: None,
            deadline_at: None,
        }],
    }
}

fn full_order(tenant: &str, id: &str) -> NewOrder {
    let mut o = NewOrder::new(tenant, id, "cust-9", "CNY");
    o.channel = CHANNEL.into();
    o.idempotency = Some(Idempotency {
        key: format!("key-{id}"),
        request_hash: "h1".into(),
    });
    o.subtotal_minor = 39_800;
    o.discount_minor = 5_000;
    o.total_minor = 34_800;
    o.lines = vec![
        NewLine {
            line_no: 1,
            sku: "cream".into(),
            qty: 2,
            unit_price_minor: 12_900,
            discount_minor: 2_000,
        },
        NewLine {
            line_no: 2,
            sku: "perfume".into(),
            qty: 1,
            unit_price_minor: 14_000,
            discount_minor: 3_000,
        },
    ];
    o.reservations = vec![
        NewReservation {
            sku: "cream".into(),
            location_id: "wh".into(),
            qty: 2,
            presale_session_id: None,
            not_expiring_before: None,
        },
        NewReservation {
            sku: "perfume".into(),
            location_id: "store".into(),
            qty: 1,
            presale_session_id: None,
            not_expiring_before: None,
        },
    ];
    o.shipments = vec![
        NewShipment {
            location_id: "wh".into(),
            carrier_mode: "ground".into(),
            packaging: vec!["box".into()],
            lines: vec![ShipmentLine { line_no: 1, qty: 2 }],
        },
        NewShipment {
            location_id: "store".into(),
            carrier_mode: "ground".into(),
            packaging: vec!["sealed-bag".into(), "box".into()],
            lines: vec![ShipmentLine { line_no: 2, qty: 1 }],
        },
    ];
    o.decision = Some(NewDecision::render(
        "sha256:abc",
        &json!({"pricing": {"discount": 5000}, "routing": {"wh": 0.9, "store": 0.4}}),
        &["spend_299_save_50".into(), "flammable_not_by_air".into()],
        &json!({"order": {"subtotal": 39800}}),
    ));
    o.budgets = vec![BudgetUse {
        key: "spend_299_save_50".into(),
        amount: 5_000,
        cap: 100_000,
    }];
    o.limits = vec![LimitUse {
        key: "spend_299_save_50:2026-11-29".into(),
        customer_id: "cust-9".into(),
        count: 1,
        max: 1,
    }];
    o.velocity = vec![
        VelocityKey {
            kind: "customer".into(),
            key: "cust-9".into(),
        },
        VelocityKey {
            kind: "device".into(),
            key: "dev-1".into(),
        },
    ];
    o.work_orders = vec![NewWorkOrder {
        id: String::new(),
        order_id: None,
        location_id: None,
        sop_name: "hazmat_pack".into(),
        steps: vec![
            NewStep {
                name: "seal".into(),
                role: "packer".into(),
                evidence: Some("photo".into()),
                deadline_at: Some(T0 + HOUR),
            },
            NewStep {
                name: "label".into(),
                role: "packer".into(),
                evidence: None,
                deadline_at: None,
            },
        ],
    }];
    o.events = vec![NewEvent {
        aggregate_type: "order".into(),
        aggregate_id: id.into(),
        event_type: "order.placed".into(),
        payload: json!({"order_id": id, "total": 34800}),
    }];
    o
}

async fn stock_full_order(s: &dyn Store, tenant: &str) {
    stocked(s, tenant, "wh", "cream", 10).await;
    stocked(s, tenant, "store", "perfume", 3).await;
}

async fn a_full_order_is_written_and_read_back(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stock_full_order(s, A).await;
    let placed = s.place_order(full_order(A, "o-1")).await.unwrap();
    assert!(!placed.replayed);
    assert_eq!(placed.state, OrderState::Placed);
    assert_eq!(placed.created_at, T0);
    let ids: Vec<&str> = placed.reservations.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["o-1/r1", "o-1/r2"]);
    assert_eq!(placed.work_order_ids, ["o-1/wo1"]);

    let rec = s.order(A, "o-1").await.unwrap().unwrap();
    assert_eq!(rec.summary.customer_id, "cust-9");
    assert_eq!(rec.summary.channel, CHANNEL);
    assert_eq!(
        (
            rec.summary.subtotal_minor,
            rec.summary.discount_minor,
            rec.summary.total_minor
        ),
        (39_800, 5_000, 34_800)
    );
    assert_eq!(rec.summary.idempotency_key.as_deref(), Some("key-o-1"));
    assert_eq!(rec.lines.len(), 2);
    assert_eq!(rec.lines[1].unit_price_minor, 14_000);
    assert_eq!(rec.reservations, placed.reservations);
    assert_eq!(rec.shipments.len(), 2);
    assert_eq!(rec.shipments[1].packaging, ["sealed-bag", "box"]);
    assert_eq!(
        rec.shipments[1].lines,
        [ShipmentLine { line_no: 2, qty: 1 }]
    );
    let decision = rec.decision.unwrap();
    assert_eq!(decision.ruleset_hash, "sha256:abc");
    assert_eq!(decision.hooks["routing"]["wh"], json!(0.9));
    assert_eq!(
        decision.fired_rules,
        ["spend_299_save_50", "flammable_not_by_air"]
    );
    assert_eq!(decision.facts, Some(json!({"order": {"subtotal": 39800}})));
    assert_eq!(rec.budgets.len(), 1);
    assert_eq!(rec.budgets[0].amount, 5_000);
    assert_eq!(rec.work_orders.len(), 1);
    assert_eq!(rec.work_orders[0].steps.len(), 2);
    assert_eq!(
        rec.work_orders[0].steps[0].evidence.as_deref(),
        Some("photo")
    );

    assert_eq!(
        s.budget_usage(A, "spend_299_save_50").await.unwrap(),
        Some((5_000, 100_000))
    );
    assert_eq!(
        s.limit_usage(A, "spend_299_save_50:2026-11-29", "cust-9")
            .await
            .unwrap(),
        Some((1, 1))
    );
    let counts = s
        .velocity_counts(
            A,
            &[
                VelocityKey {
                    kind: "customer".into(),
                    key: "cust-9".into(),
                },
                VelocityKey {
                    kind: "device".into(),
                    key: "dev-1".into(),
                },
            ],
            HOUR,
        )
        .await
        .unwrap();
    assert_eq!(counts, [1, 1]);
    let events = s.outbox_events(A, Some(("order", "o-1"))).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "order.placed");
    let payload: serde_json::Value = serde_json::from_str(&events[0].payload).unwrap();
    assert_eq!(payload["total"], 34800);
    assert_eq!(
        s.stock(A, "cream", "wh").await.unwrap().unwrap().reserved,
        2
    );
    assert_eq!(
        s.stock(A, "perfume", "store")
            .await
            .unwrap()
            .unwrap()
            .reserved,
        1
    );
    assert_eq!(s.order(A, "missing").await.unwrap(), None);
    h.cleanup().await;
}

/// Counts of every table an order writes to, for one tenant.
async fn footprint(h: &Harness, tenant: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "orders",
        "order_lines",
        "reservations",
        "reservation_lots",
        "shipments",
        "shipment_lines",
        "decision_records",
        "order_budget_uses",
        "order_limit_uses",
        "velocity_events",
        "work_orders",
        "work_order_steps",
        "outbox",
    ] {
        out.push(
            h.scalar(&format!(
                "SELECT COUNT(*) FROM {table} WHERE tenant = '{tenant}'"
            ))
            .await,
        );
    }
    for sql in [
        "SELECT CAST(COALESCE(SUM(reserved), 0) AS BIGINT) FROM stock WHERE tenant = '{t}'",
        "SELECT CAST(COALESCE(SUM(reserved), 0) AS BIGINT) FROM lots WHERE tenant = '{t}'",
        "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT) FROM budgets WHERE tenant = '{t}'",
        "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT) FROM customer_limits WHERE tenant = '{t}'",
        "SELECT CAST(COALESCE(SUM(sold), 0) AS BIGINT) FROM presale_sessions WHERE tenant = '{t}'",
    ] {
        out.push(h.scalar(&sql.replace("{t}", tenant)).await);
    }
    out
}

async fn every_refusal_is_typed_and_writes_nothing(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stock_full_order(s, A).await;
    // A first order uses the customer's limit and part of the budget.
    s.place_order(full_order(A, "first")).await.unwrap();
    let before = footprint(&h, A).await;

    // Each refusal comes after some of the order's checks passed.
    let mut out_of_stock = full_order(A, "x1");
    out_of_stock.limits.clear();
    out_of_stock.reservations[1].qty = 5;
    out_of_stock.lines[1].qty = 5;
    let err = s.place_order(out_of_stock).await.unwrap_err();
    assert!(
        matches!(&err, PlaceError::OutOfStock { sku, location_id, requested: 5, available: 2 }
            if sku == "perfume" && location_id == "store"),
        "{err:?}"
    );

    let mut budget = full_order(A, "x2");
    budget.limits.clear();
    budget.budgets[0].amount = 96_000;
    let err = s.place_order(budget).await.unwrap_err();
    assert!(
        matches!(&err, PlaceError::BudgetExhausted { key, used: 5_000, amount: 96_000, cap: 100_000 }
            if key == "spend_299_save_50"),
        "{err:?}"
    );

    let err = s.place_order(full_order(A, "x3")).await.unwrap_err();
    assert!(
        matches!(&err, PlaceError::LimitReached { key, customer_id, used: 1, count: 1, max: 1 }
            if key == "spend_299_save_50:2026-11-29" && customer_id == "cust-9"),
        "{err:?}"
    );

    let mut conflict = full_order(A, "x4");
    conflict.idempotency = Some(Idempotency {
        key: "key-first".into(),
        request_hash: "other".into(),
    });
    let err = s.place_order(conflict).await.unwrap_err();
    assert!(
        matches!(&err, PlaceError::IdempotencyConflict { key, order_id }
            if key == "key-first" && order_id == "first"),
        "{err:?}"
    );

    let mut dup = full_order(A, "first");
    dup.idempotency = None;
    let err = s.place_order(dup).await.unwrap_err();
    assert!(
        matches!(&err, PlaceError::DuplicateOrder { order_id } if order_id == "first"),
        "{err:?}"
    );

    let mut invalid = full_order(A, "x5");
    invalid.shipments[0].lines[0].qty = 3;
    assert!(matches!(
        s.place_order(invalid).await,
        Err(PlaceError::Invalid(_))
    ));
    let mut invalid = full_order(A, "x6");
    invalid.reservations[0].qty = 0;
    assert!(matches!(
        s.place_order(invalid).await,
        Err(PlaceError::Invalid(_))
    ));
    let mut no_session = full_order(A, "x7");
    no_session.limits.clear();
    no_session.reservations[0].presale_session_id = Some("nope".into());
    assert!(matches!(
        s.place_order(no_session).await,
        Err(PlaceError::PresaleMismatch { .. })
    ));
    let mut nowhere = full_order(A, "x8");
    nowhere.limits.clear();
    nowhere.reservations[0].location_id = "moon".into();
    assert!(matches!(
        s.place_order(nowhere).await,
        Err(PlaceError::OutOfStock { available: 0, .. })
    ));

    assert_eq!(footprint(&h, A).await, before);
    for id in ["x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8"] {
        assert_eq!(s.order(A, id).await.unwrap(), None, "{id}");
    }
    h.cleanup().await;
}

async fn idempotent_retries_return_the_stored_result(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, A, "wh", "sku", 10).await;
    let order = |id: &str, hash: &str| {
        let mut o = simple_order(A, id, "sku", "wh", 2);
        o.idempotency = Some(Idempotency {
            key: "checkout-77".into(),
            request_hash: hash.into(),
        });
        o
    };
    let first = s.place_order(order("o1", "h")).await.unwrap();
    h.clock.advance(1_000);
    let again = s.place_order(order("o1", "h")).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.order_id, "o1");
    assert_eq!(again.created_at, first.created_at);
    assert_eq!(again.reservations, first.reservations);
    // Retried under a new order id: still the stored result, nothing new written.
    let again = s.place_order(order("o1-retry", "h")).await.unwrap();
    assert_eq!(again.order_id, "o1");
    assert_eq!(s.stock(A, "sku", "wh").await.unwrap().unwrap().reserved, 2);
    assert_eq!(s.order(A, "o1-retry").await.unwrap(), None);
    assert!(matches!(
        s.place_order(order("o2", "different")).await,
        Err(PlaceError::IdempotencyConflict { .. })
    ));
    // The same key from many concurrent requests: one order, the rest replays.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = h.store.clone();
        let mut o = simple_order(A, &format!("c{i}"), "sku", "wh", 1);
        o.idempotency = Some(Idempotency {
            key: "burst".into(),
            request_hash: "same".into(),
        });
        tasks.push(tokio::spawn(async move { store.place_order(o).await }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut fresh = 0;
    for t in tasks {
        let p = t.await.unwrap().unwrap();
        ids.insert(p.order_id.clone());
        if !p.replayed {
            fresh += 1;
        }
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(fresh, 1);
    assert_eq!(s.stock(A, "sku", "wh").await.unwrap().unwrap().reserved, 3);
    // Keys are per tenant.
    stocked(s, B, "wh", "sku", 10).await;
    let mut other = simple_order(B, "o1", "sku", "wh", 2);
    other.idempotency = Some(Idempotency {
        key: "checkout-77".into(),
        request_hash: "something else".into(),
    });
    assert!(!s.place_order(other).await.unwrap().replayed);
    h.cleanup().await;
}

async fn a_held_order_is_paid_for_but_not_fulfilled_until_released(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, A, "wh", "sku", 10).await;
    let mut held = simple_order(A, "held", "sku", "wh", 2);
    held.hold_reason = Some("risk_review".into());
    let placed = s.place_order(held).await.unwrap();
    assert_eq!(placed.hold_reason.as_deref(), Some("risk_review"));
    s.place_order(simple_order(A, "free", "sku", "wh", 1))
        .await
        .unwrap();
    // The review queue: held orders only, and the others.
    let listed = |on_hold| {
        let filter = OrderFilter {
            on_hold: Some(on_hold),
            ..OrderFilter::default()
        };
        async move {
            s.list_orders(A, &filter)
                .await
                .unwrap()
                .into_iter()
                .map(|o| (o.order_id, o.hold_reason))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(true).await,
        [("held".to_owned(), Some("risk_review".to_owned()))]
    );
    assert_eq!(listed(false).await, [("free".to_owned(), None)]);
    // Paying is allowed; picking is not, and writes nothing.
    s.advance_order(A, "held", OrderState::Allocated, &[])
        .await
        .unwrap();
    match s
        .advance_order(
            A,
            "held",
            OrderState::Picking,
            &[later_work_order("wo-held")],
        )
        .await
    {
        Err(StoreError::OnHold { reason, to, .. }) => {
            assert_eq!((reason.as_str(), to), ("risk_review", OrderState::Picking))
        }
        other => panic!("{other:?}"),
    }
    let record = s.order(A, "held").await.unwrap().unwrap();
    assert_eq!(record.summary.state, OrderState::Allocated);
    assert!(record.work_orders.is_empty());
    // Released by a reviewer: once, with an event; then it moves on.
    assert!(matches!(
        s.release_order(A, "held", "").await,
        Err(StoreError::Invalid(_))
    ));
    let released = s.release_order(A, "held", "reviewer-7").await.unwrap();
    assert_eq!(
        (
            released.released,
            released.hold_reason.as_deref(),
            released.state
        ),
        (true, Some("risk_review"), OrderState::Allocated)
    );
    let again = s.release_order(A, "held", "reviewer-7").await.unwrap();
    assert_eq!((again.released, again.hold_reason), (false, None));
    assert_eq!(
        s.order(A, "held")
            .await
            .unwrap()
            .unwrap()
            .summary
            .hold_reason,
        None
    );
    for state in [OrderState::Picking, OrderState::Shipped] {
        s.advance_order(A, "held", state, &[]).await.unwrap();
    }
    let released_events: Vec<Json> = s
        .outbox_events(A, Some(("order", "held")))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "order.released")
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .collect();
    assert_eq!(released_events.len(), 1);
    assert_eq!(released_events[0]["by"], "reviewer-7");
    assert!(matches!(
        s.release_order(A, "nope", "reviewer-7").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.release_order(B, "held", "reviewer-7").await,
        Err(StoreError::NotFound { .. })
    ));
    h.cleanup().await;
}

async fn the_state_machine_confirms_stock_once_at_shipment(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, A, "wh", "sku", 10).await;
    s.place_order(simple_order(A, "o1", "sku", "wh", 3))
        .await
        .unwrap();
    let illegal = |r: Result<Advanced, StoreError>, from: OrderState, to: OrderState| match r {
        Err(StoreError::IllegalTransition { from: f, to: t, .. }) => assert_eq!((f, t), (from, to)),
        other => panic!("{other:?}"),
    };
    illegal(
        s.advance_order(A, "o1", OrderState::Shipped, &[]).await,
        OrderState::Placed,
        OrderState::Shipped,
    );
    illegal(
        s.advance_order(A, "o1", OrderState::Cancelled, &[]).await,
        OrderState::Placed,
        OrderState::Cancelled,
    );
    let allocated = s
        .advance_order(A, "o1", OrderState::Allocated, &[])
        .await
        .unwrap();
    assert_eq!(
        (allocated.state, allocated.changed),
        (OrderState::Allocated, true)
    );
    s.advance_order(A, "o1", OrderState::Picking, &[])
        .await
        .unwrap();
    illegal(
        s.advance_order(A, "o1", OrderState::Allocated, &[]).await,
        OrderState::Picking,
        OrderState::Allocated,
    );
    // The work orders of the step's SOPs are written with it.
    let shipped = s
        .advance_order(
            A,
            "o1",
            OrderState::Shipped,
            &[later_work_order("wo-shipped")],
        )
        .await
        .unwrap();
    assert_eq!(
        (shipped.changed, shipped.work_order_ids.as_slice()),
        (true, ["wo-shipped".to_owned()].as_slice())
    );
    let level = s.stock(A, "sku", "wh").await.unwrap().unwrap();
    assert_eq!((level.on_hand, level.reserved), (7, 0));
    // Shipping again is a no-op: the stock dropped once, no work order is opened.
    let again = s
        .advance_order(
            A,
            "o1",
            OrderState::Shipped,
            &[later_work_order("wo-again")],
        )
        .await
        .unwrap();
    assert_eq!((again.changed, again.work_order_ids.len()), (false, 0));
    let level = s.stock(A, "sku", "wh").await.unwrap().unwrap();
    assert_eq!((level.on_hand, level.reserved), (7, 0));
    let rec = s.order(A, "o1").await.unwrap().unwrap();
    let opened: Vec<(&str, Option<&str>, usize)> = rec
        .work_orders
        .iter()
        .map(|w| (w.id.as_str(), w.order_id.as_deref(), w.steps.len()))
        .collect();
    assert_eq!(opened, [("wo-shipped", Some("o1"), 1)]);
    assert_eq!(rec.reservations[0].status, ReservationStatus::Confirmed);
    let ledger = s.movements(A, "sku", "wh").await.unwrap();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[1].kind, MovementKind::Shipment);
    assert_eq!(
        (ledger[1].on_hand_delta, ledger[1].reference.as_str()),
        (-3, "o1")
    );
    // Shipped goods cannot be cancelled; they are returned instead. The refused
    // cancellation opens none of its work orders.
    assert!(matches!(
        s.cancel_order(A, "o1", "late", &[later_work_order("wo-refused")])
            .await,
        Err(StoreError::IllegalTransition {
            from: OrderState::Shipped,
            to: OrderState::Cancelled,
            ..
        })
    ));
    s.advance_order(A, "o1", OrderState::Delivered, &[])
        .await
        .unwrap();
    illegal(
        s.advance_order(A, "o1", OrderState::Picking, &[]).await,
        OrderState::Delivered,
        OrderState::Picking,
    );
    let types: Vec<String> = s
        .outbox_events(A, Some(("order", "o1")))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        [
            "order.allocated",
            "order.picking",
            "order.shipped",
            "order.delivered"
        ]
    );
    assert!(matches!(
        s.advance_order(A, "nope", OrderState::Allocated, &[]).await,
        Err(StoreError::NotFound { kind: "order", .. })
    ));
    h.cleanup().await;
}

async fn cancellation_releases_and_compensates_once(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stock_full_order(s, A).await;
    s.place_order(full_order(A, "o1")).await.unwrap();
    s.advance_order(A, "o1", OrderState::Allocated, &[])
        .await
        .unwrap();
    let out = s
        .cancel_order(
            A,
            "o1",
            "customer request",
            &[later_work_order("wo-cancel")],
        )
        .await
        .unwrap();
    assert!(!out.already_cancelled);
    assert_eq!(out.work_order_ids, ["wo-cancel"]);
    assert_eq!(out.released_reservations, ["o1/r1", "o1/r2"]);
    assert!(out.event_id.is_some());
    assert_eq!(
        s.stock(A, "cream", "wh").await.unwrap().unwrap().reserved,
        0
    );
    assert_eq!(
        s.stock(A, "perfume", "store")
            .await
            .unwrap()
            .unwrap()
            .reserved,
        0
    );
    assert_eq!(
        s.budget_usage(A, "spend_299_save_50").await.unwrap(),
        Some((0, 100_000))
    );
    assert_eq!(
        s.limit_usage(A, "spend_299_save_50:2026-11-29", "cust-9")
            .await
            .unwrap(),
        Some((0, 1))
    );
    let rec = s.order(A, "o1").await.unwrap().unwrap();
    assert_eq!(rec.summary.state, OrderState::Cancelled);
    assert!(rec.budgets.iter().all(|b| b.compensated));
    assert!(rec
        .reservations
        .iter()
        .all(|r| r.status == ReservationStatus::Released));
    // Twice: nothing more happens.
    let again = s
        .cancel_order(A, "o1", "again", &[later_work_order("wo-cancel-2")])
        .await
        .unwrap();
    assert!(again.already_cancelled);
    assert!(again.event_id.is_none());
    assert!(again.work_order_ids.is_empty());
    let opened: Vec<String> = work_order_ids(s, A, "o1")
        .await
        .into_iter()
        .filter(|id| id.starts_with("wo-cancel"))
        .collect();
    assert_eq!(opened, ["wo-cancel"]);
    assert_eq!(
        s.budget_usage(A, "spend_299_save_50").await.unwrap(),
        Some((0, 100_000))
    );
    let cancels = s
        .outbox_events(A, Some(("order", "o1")))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "order.cancelled")
        .count();
    assert_eq!(cancels, 1);
    // The customer's limit is free again: a new order passes.
    s.place_order(full_order(A, "o2")).await.unwrap();
    assert!(matches!(
        s.cancel_order(A, "nope", "x", &[]).await,
        Err(StoreError::NotFound { .. })
    ));
    h.cleanup().await;
}

async fn orders_are_listed_with_filters_and_pages(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, A, "wh", "sku", 100).await;
    for i in 0..7 {
        let mut o = simple_order(A, &format!("o{i}"), "sku", "wh", 1);
        o.customer_id = if i % 2 == 0 { "even" } else { "odd" }.into();
        o.channel = if i < 3 { "tmall" } else { "miniapp" }.into();
        s.place_order(o).await.unwrap();
        h.clock.advance(1_000);
    }
    s.cancel_order(A, "o4", "x", &[]).await.unwrap();
    let ids = |v: Vec<weir_runtime::store::OrderSummary>| -> Vec<String> {
        v.into_iter().map(|o| o.order_id).collect()
    };
    let all = s.list_orders(A, &OrderFilter::default()).await.unwrap();
    assert_eq!(ids(all), ["o0", "o1", "o2", "o3", "o4", "o5", "o6"]);
    let f = OrderFilter {
        customer_id: Some("even".into()),
        ..OrderFilter::default()
    };
    assert_eq!(
        ids(s.list_orders(A, &f).await.unwrap()),
        ["o0", "o2", "o4", "o6"]
    );
    let f = OrderFilter {
        channel: Some("tmall".into()),
        ..OrderFilter::default()
    };
    assert_eq!(ids(s.list_orders(A, &f).await.unwrap()), ["o0", "o1", "o2"]);
    let f = OrderFilter {
        state: Some(OrderState::Cancelled),
        ..OrderFilter::default()
    };
    assert_eq!(ids(s.list_orders(A, &f).await.unwrap()), ["o4"]);
    let f = OrderFilter {
        created_from: Some(T0 + 2_000),
        created_before: Some(T0 + 5_000),
        ..OrderFilter::default()
    };
    assert_eq!(ids(s.list_orders(A, &f).await.unwrap()), ["o2", "o3", "o4"]);
    // Pages of 3, continued after the last row.
    let mut f = OrderFilter {
        limit: 3,
        ..OrderFilter::default()
    };
    let mut pages = Vec::new();
    loop {
        let page = s.list_orders(A, &f).await.unwrap();
        let Some(last) = page.last() else { break };
        f.after = Some((last.created_at, last.order_id.clone()));
        pages.push(ids(page));
    }
    assert_eq!(
        pages,
        [vec!["o0", "o1", "o2"], vec!["o3", "o4", "o5"], vec!["o6"]]
    );
    assert!(s
        .list_orders(B, &OrderFilter::default())
        .await
        .unwrap()
        .is_empty());
    h.cleanup().await;
}

async fn ship(s: &dyn Store, tenant: &str, id: &str) {
    for st in [
        OrderState::Allocated,
        OrderState::Picking,
        OrderState::Shipped,
    ] {
        s.advance_order(tenant, id, st, &[]).await.unwrap();
    }
}

async fn cross_store_returns_restock_the_receiving_store_after_qc(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, A, "wh", "sku", 10).await;
    s.upsert_location(A, &location("store-sh", LocationKind::Store))
        .await
        .unwrap();
    s.place_order(simple_order(A, "o1", "sku", "wh", 4))
        .await
        .unwrap();
    let ret = |id: &str, qty: i64| NewReturn {
        return_id: id.into(),
        order_id: "o1".into(),
        receiving_location_id: "store-sh".into(),
        lines: vec![ReturnLine { line_no: 1, qty }],
    };
    assert!(matches!(
        s.create_return(A, &ret("r0", 1), &[]).await,
        Err(StoreError::NotReturnable {
            state: OrderState::Placed,
            ..
        })
    ));
    ship(s, A, "o1").await;
    let r1 = s
        .create_return(A, &ret("r1", 2), &[later_work_order("wo-r1")])
        .await
        .unwrap();
    assert_eq!(r1.state, ReturnState::Received);
    assert_eq!(r1.lines, [(1, "sku".to_string(), 2)]);
    // A refused return opens none of its work orders; an accepted one opens them.
    assert!(matches!(
        s.create_return(A, &ret("r2", 3), &[later_work_order("wo-r2")])
            .await,
        Err(StoreError::ReturnExceedsShipped {
            requested: 3,
            returnable: 2,
            ..
        })
    ));
    assert!(matches!(
        s.create_return(A, &ret("r1", 1), &[]).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let mut bad_line = ret("r3", 1);
    bad_line.lines[0].line_no = 9;
    assert!(matches!(
        s.create_return(A, &bad_line, &[]).await,
        Err(StoreError::NotFound { .. })
    ));
    // QC passes: the receiving store gets the units, the shipping warehouse does not.
    let passed = s.record_return_qc(A, "r1", true, None).await.unwrap();
    assert_eq!(passed.state, ReturnState::QcPassed);
    assert_eq!(
        s.stock(A, "sku", "store-sh")
            .await
            .unwrap()
            .unwrap()
            .on_hand,
        2
    );
    assert_eq!(s.stock(A, "sku", "wh").await.unwrap().unwrap().on_hand, 6);
    assert!(matches!(
        s.record_return_qc(A, "r1", true, None).await,
        Err(StoreError::QcAlreadyRecorded { .. })
    ));
    let ledger = s.movements(A, "sku", "store-sh").await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].kind, MovementKind::ReturnRestock);
    assert_eq!(ledger[0].reference, "r1");
    // QC fails: nothing is restocked.
    s.create_return(A, &ret("r4", 2), &[]).await.unwrap();
    let failed = s.record_return_qc(A, "r4", false, None).await.unwrap();
    assert_eq!(failed.state, ReturnState::QcFailed);
    assert_eq!(
        s.stock(A, "sku", "store-sh")
            .await
            .unwrap()
            .unwrap()
            .on_hand,
        2
    );
    // Everything shipped has now been returned.
    assert!(matches!(
        s.create_return(A, &ret("r5", 1), &[]).await,
        Err(StoreError::ReturnExceedsShipped { returnable: 0, .. })
    ));
    assert_eq!(
        s.return_record(A, "r4").await.unwrap().unwrap().state,
        ReturnState::QcFailed
    );
    assert_eq!(s.return_record(B, "r4").await.unwrap(), None);
    let opened = work_order_ids(s, A, "o1").await;
    assert_eq!(opened, ["wo-r1"]);
    h.cleanup().await;
}

async fn velocity_counts_follow_the_window(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    let phone = VelocityKey {
        kind: "phone".into(),
        key: "+86-139".into(),
    };
    let addr = VelocityKey {
        kind: "address".into(),
        key: "shanghai-1".into(),
    };
    s.record_velocity(A, &[phone.clone(), addr.clone()], Some("c1"))
        .await
        .unwrap();
    h.clock.advance(30 * 60_000);
    s.record_velocity(A, std::slice::from_ref(&phone), Some("c2"))
        .await
        .unwrap();
    s.record_velocity(A, std::slice::from_ref(&phone), Some("c2"))
        .await
        .unwrap();
    s.record_velocity(B, std::slice::from_ref(&phone), None)
        .await
        .unwrap();
    let keys = [phone.clone(), addr.clone()];
    assert_eq!(s.velocity_counts(A, &keys, HOUR).await.unwrap(), [3, 1]);
    // Two customers share the phone; the address has one.
    assert_eq!(s.velocity_customers(A, &keys, HOUR).await.unwrap(), [2, 1]);
    assert_eq!(
        s.velocity_counts(A, &keys, 10 * 60_000).await.unwrap(),
        [2, 0]
    );
    assert_eq!(
        s.velocity_customers(A, &keys, 10 * 60_000).await.unwrap(),
        [1, 0]
    );
    h.clock.advance(45 * 60_000);
    assert_eq!(s.velocity_counts(A, &keys, HOUR).await.unwrap(), [2, 0]);
    assert_eq!(s.velocity_counts(B, &keys, HOUR).await.unwrap(), [1, 0]);
    let pruned = s.prune_velocity(T0 + 10 * 60_000).await.unwrap();
    assert_eq!(pruned, 2);
    assert_eq!(s.velocity_counts(A, &keys, DAY).await.unwrap(), [2, 0]);
    h.cleanup().await;
}

async fn runtime_lists_replace_patch_and_version(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    let strs = |v: &[&str]| -> Vec<String> { v.iter().map(|x| x.to_string()).collect() };
    assert_eq!(s.list(A, "blocked").await.unwrap(), None);
    let l = s
        .replace_list(A, "blocked", &strs(&["b", "a", "b"]), None)
        .await
        .unwrap();
    assert_eq!((l.version, l.members.clone()), (1, strs(&["a", "b"])));
    let l = s
        .patch_list(A, "blocked", &strs(&["c", "a"]), &strs(&["b"]), Some(1))
        .await
        .unwrap();
    assert_eq!((l.version, l.members.clone()), (2, strs(&["a", "c"])));
    let err = s
        .replace_list(A, "blocked", &strs(&["z"]), Some(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::VersionConflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let l = s
        .replace_list(A, "blocked", &strs(&["z"]), Some(2))
        .await
        .unwrap();
    assert_eq!((l.version, l.members.clone()), (3, strs(&["z"])));
    assert_eq!(s.list(A, "blocked").await.unwrap().as_deref(), Some(&l));
    s.replace_list(A, "vip", &[], None).await.unwrap();
    assert_eq!(s.list_names(A).await.unwrap(), strs(&["blocked", "vip"]));
    assert_eq!(s.list(B, "blocked").await.unwrap(), None);
    assert!(s.list_names(B).await.unwrap().is_empty());
    h.cleanup().await;
}

async fn sop_steps_need_evidence_and_escalate_after_restart(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    let wo = NewWorkOrder {
        id: "wo-1".into(),
        order_id: None,
        location_id: None,
        sop_name: "cold_chain_check".into(),
        steps: vec![
            NewStep {
                name: "photo of seal".into(),
                role: "clerk".into(),
                evidence: Some("photo".into()),
                deadline_at: Some(T0 + HOUR),
            },
            NewStep {
                name: "sign off".into(),
                role: "manager".into(),
                evidence: None,
                deadline_at: Some(T0 + 2 * HOUR),
            },
        ],
    };
    let created = s.create_work_order(A, &wo).await.unwrap();
    assert_eq!(created.state, WorkOrderState::Open);
    assert!(matches!(
        s.create_work_order(A, &wo).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let no_photo = StepCompletion {
        by: "clerk-7".into(),
        evidence_ref: None,
    };
    assert!(matches!(
        s.complete_step(A, "wo-1", 1, &no_photo).await,
        Err(StoreError::EvidenceRequired { step_no: 1, ref evidence, .. }) if evidence == "photo"
    ));
    let blank = StepCompletion {
        by: "clerk-7".into(),
        evidence_ref: Some("  ".into()),
    };
    assert!(matches!(
        s.complete_step(A, "wo-1", 1, &blank).await,
        Err(StoreError::EvidenceRequired { .. })
    ));

    // The process restarts; deadlines live in the database.
    let restarted = h.reopen().await;
    h.clock.advance(HOUR);
    let escalated = restarted.escalate_overdue_steps(100).await.unwrap();
    assert_eq!(escalated.len(), 1);
    assert_eq!(
        (
            escalated[0].work_order_id.as_str(),
            escalated[0].step_no,
            escalated[0].role.as_str()
        ),
        ("wo-1", 1, "clerk")
    );
    assert!(restarted
        .escalate_overdue_steps(100)
        .await
        .unwrap()
        .is_empty());
    let events = restarted
        .outbox_events(A, Some(("work_order", "wo-1")))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, escalated[0].event_id);

    // An escalated step can still be completed, late, with its photo.
    let photo = StepCompletion {
        by: "clerk-7".into(),
        evidence_ref: Some("s3://evidence/seal.jpg".into()),
    };
    let w = restarted.complete_step(A, "wo-1", 1, &photo).await.unwrap();
    assert_eq!(w.steps[0].state, StepState::Done);
    assert_eq!(w.steps[0].escalated_at, Some(T0 + HOUR));
    assert_eq!(
        w.steps[0].evidence_ref.as_deref(),
        Some("s3://evidence/seal.jpg")
    );
    assert_eq!(w.state, WorkOrderState::Open);
    assert!(matches!(
        restarted.complete_step(A, "wo-1", 1, &photo).await,
        Err(StoreError::StepAlreadyDone { .. })
    ));
    let w = restarted
        .complete_step(
            A,
            "wo-1",
            2,
            &StepCompletion {
                by: "mgr-1".into(),
                evidence_ref: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(w.state, WorkOrderState::Done);
    assert_eq!(w.steps[1].completed_by.as_deref(), Some("mgr-1"));
    // Done steps never escalate.
    h.clock.advance(2 * HOUR);
    assert!(restarted
        .escalate_overdue_steps(100)
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        restarted.complete_step(A, "wo-1", 9, &photo).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(restarted.work_order(B, "wo-1").await.unwrap(), None);
    h.cleanup().await;
}

async fn outbox_rows_are_read_in_order_and_marked(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stocked(s, A, "wh", "sku", 10).await;
    for i in 0..3 {
        let mut o = simple_order(A, &format!("o{i}"), "sku", "wh", 1);
        o.events.push(NewEvent {
            aggregate_type: "order".into(),
            aggregate_id: format!("o{i}"),
            event_type: "order.placed".into(),
            payload: json!({ "n": i }),
        });
        s.place_order(o).await.unwrap();
    }
    let pending = s.outbox_pending(100).await.unwrap();
    assert_eq!(pending.len(), 3);
    assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq));
    let agg: Vec<&str> = pending.iter().map(|e| e.aggregate_id.as_str()).collect();
    assert_eq!(agg, ["o0", "o1", "o2"]);
    assert!(pending.iter().all(|e| e.published_at.is_none()));
    let first_two: Vec<String> = pending[..2].iter().map(|e| e.id.clone()).collect();
    assert_eq!(s.mark_published(&first_two).await.unwrap(), 2);
    assert_eq!(s.mark_published(&first_two).await.unwrap(), 0);
    let pending = s.outbox_pending(100).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].aggregate_id, "o2");
    let all = s.outbox_events(A, None).await.unwrap();
    assert_eq!(all.iter().filter(|e| e.published_at == Some(T0)).count(), 2);
    assert_eq!(s.outbox_pending(1).await.unwrap().len(), 1);
    h.cleanup().await;
}

async fn ruleset_versions_activate_and_roll_back(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    let v = |hash: &str| NewRulesetVersion {
        name: "beauty".into(),
        content_hash: hash.into(),
        files: json!({ "rules.weir": format!("ruleset beauty // {hash}") }),
    };
    assert_eq!(s.active_ruleset(A, "beauty").await.unwrap(), None);
    let saved = s.save_ruleset_version(A, &v("h1")).await.unwrap();
    assert!(!saved.active);
    assert_eq!(saved.files["rules.weir"], "ruleset beauty // h1");
    h.clock.advance(1);
    s.save_ruleset_version(A, &v("h2")).await.unwrap();
    // Saving again keeps the first copy.
    h.clock.advance(1);
    assert_eq!(
        s.save_ruleset_version(A, &v("h1"))
            .await
            .unwrap()
            .created_at,
        T0
    );
    assert!(matches!(
        s.rollback_ruleset(A, "beauty").await,
        Err(StoreError::NothingToRollBack { .. })
    ));
    assert!(matches!(
        s.activate_ruleset(A, "beauty", "h9").await,
        Err(StoreError::NotFound { .. })
    ));
    s.activate_ruleset(A, "beauty", "h1").await.unwrap();
    assert!(matches!(
        s.rollback_ruleset(A, "beauty").await,
        Err(StoreError::NothingToRollBack { .. })
    ));
    let active = s.activate_ruleset(A, "beauty", "h2").await.unwrap();
    assert!(active.active);
    assert_eq!(
        s.active_ruleset(A, "beauty")
            .await
            .unwrap()
            .unwrap()
            .content_hash,
        "h2"
    );
    let back = s.rollback_ruleset(A, "beauty").await.unwrap();
    assert_eq!(back.content_hash, "h1");
    assert_eq!(
        s.active_ruleset(A, "beauty")
            .await
            .unwrap()
            .unwrap()
            .content_hash,
        "h1"
    );
    let versions = s.ruleset_versions(A, "beauty").await.unwrap();
    let flags: Vec<(String, bool)> = versions
        .into_iter()
        .map(|v| (v.content_hash, v.active))
        .collect();
    assert_eq!(flags, [("h1".into(), true), ("h2".into(), false)]);
    assert!(matches!(
        s.rollback_ruleset(A, "beauty").await,
        Err(StoreError::NothingToRollBack { .. })
    ));
    assert_eq!(s.active_ruleset(B, "beauty").await.unwrap(), None);
    assert!(matches!(
        s.activate_ruleset(B, "beauty", "h1").await,
        Err(StoreError::NotFound { .. })
    ));
    let activations = s
        .outbox_events(A, Some(("ruleset", "beauty")))
        .await
        .unwrap();
    assert_eq!(activations.len(), 3);
    h.cleanup().await;
}

async fn one_tenant_never_reads_or_changes_another(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    stock_full_order(s, A).await;
    s.place_order(full_order(A, "o1")).await.unwrap();
    s.hold(
        A,
        &NewHold {
            id: "h1".into(),
            sku: "cream".into(),
            location_id: "wh".into(),
            qty: 1,
            expires_at: None,
            not_expiring_before: None,
        },
    )
    .await
    .unwrap();
    let a_before = footprint(&h, A).await;

    // Tenant B, with the same ids, sees and changes nothing of A's.
    assert_eq!(s.order(B, "o1").await.unwrap(), None);
    assert_eq!(s.stock(B, "cream", "wh").await.unwrap(), None);
    assert!(s.stock_by_sku(B, "cream").await.unwrap().is_empty());
    assert!(s.locations(B).await.unwrap().is_empty());
    assert!(s.lots(B, "cream", "wh").await.unwrap().is_empty());
    assert!(s.movements(B, "cream", "wh").await.unwrap().is_empty());
    assert_eq!(s.reservation(B, "o1/r1").await.unwrap(), None);
    assert_eq!(s.work_order(B, "o1/wo1").await.unwrap(), None);
    assert!(s.outbox_events(B, None).await.unwrap().is_empty());
    assert_eq!(s.budget_usage(B, "spend_299_save_50").await.unwrap(), None);
    assert!(matches!(
        s.cancel_order(B, "o1", "x", &[]).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.advance_order(B, "o1", OrderState::Allocated, &[]).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.release_hold(B, "h1").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.complete_step(
            B,
            "o1/wo1",
            2,
            &StepCompletion {
                by: "x".into(),
                evidence_ref: None
            }
        )
        .await,
        Err(StoreError::NotFound { .. })
    ));
    // B cannot order against A's stock, even naming A's location.
    assert!(matches!(
        s.place_order(simple_order(B, "o2", "cream", "wh", 1)).await,
        Err(PlaceError::OutOfStock { available: 0, .. })
    ));
    assert!(matches!(
        s.receive(
            B,
            &Receipt {
                sku: "cream".into(),
                location_id: "wh".into(),
                qty: 5,
                lot: None,
                reference: String::new(),
            }
        )
        .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.adjust(
            B,
            &Adjustment {
                sku: "cream".into(),
                location_id: "wh".into(),
                delta: -1,
                lot_id: None,
                reason: String::new(),
            }
        )
        .await,
        Err(StoreError::NotFound { .. })
    ));
    // B's own order with A's ids, budget key and idempotency key is independent.
    stock_full_order(s, B).await;
    let placed = s.place_order(full_order(B, "o1")).await.unwrap();
    assert!(!placed.replayed);
    assert_eq!(
        s.budget_usage(B, "spend_299_save_50").await.unwrap(),
        Some((5_000, 100_000))
    );
    s.cancel_order(B, "o1", "test", &[]).await.unwrap();
    assert_eq!(footprint(&h, A).await, a_before);
    assert_eq!(
        s.order(A, "o1").await.unwrap().unwrap().summary.state,
        OrderState::Placed
    );
    h.cleanup().await;
}

async fn concurrent_mixed_orders_each_commit_whole_or_not_at_all(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.clone();
    stocked(s.as_ref(), A, "wh", "a", 30).await;
    stocked(s.as_ref(), A, "wh", "b", 20).await;
    // Each order wants one `a` and two `b`: `b` runs out after 10 orders, and an order
    // refused for `b` must not keep its `a`.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut o = simple_order(A, &format!("m{i}"), "a", "wh", 1);
            o.lines.push(NewLine {
                line_no: 2,
                sku: "b".into(),
                qty: 2,
                unit_price_minor: 50,
                discount_minor: 0,
            });
            o.reservations.push(NewReservation {
                sku: "b".into(),
                location_id: "wh".into(),
                qty: 2,
                presale_session_id: None,
                not_expiring_before: None,
            });
            o.budgets.push(BudgetUse {
                key: "mix".into(),
                amount: 10,
                cap: 1_000,
            });
            s.place_order(o).await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(PlaceError::OutOfStock { sku, .. }) => assert_eq!(sku, "b"),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(accepted, 10);
    assert_eq!(s.stock(A, "a", "wh").await.unwrap().unwrap().reserved, 10);
    assert_eq!(s.stock(A, "b", "wh").await.unwrap().unwrap().reserved, 20);
    assert_eq!(s.budget_usage(A, "mix").await.unwrap(), Some((100, 1_000)));
    assert_eq!(h.scalar("SELECT COUNT(*) FROM reservations").await, 20);
    h.cleanup().await;
}

async fn tenants_and_api_keys(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    let tenant = s.create_tenant(A, "Acme").await.unwrap();
    assert_eq!(tenant.created_at, T0);
    assert!(matches!(
        s.create_tenant(A, "again").await,
        Err(StoreError::AlreadyExists { kind: "tenant", .. })
    ));
    assert!(matches!(
        s.create_tenant("", "empty").await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.tenant(A).await.unwrap().unwrap().name, "Acme");
    assert_eq!(s.tenant(B).await.unwrap(), None);

    let key = |id: &str, hash: &str, scopes: &[&str]| NewApiKey {
        id: id.into(),
        key_hash: hash.into(),
        label: format!("label {id}"),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    };
    let stored = s
        .create_api_key(A, &key("k1", "hash-1", &["orders", "rules"]))
        .await
        .unwrap();
    assert_eq!(stored.scopes, vec!["orders", "rules"]);
    // A key for a tenant that does not exist, an unknown scope, no scope, a taken id.
    assert!(matches!(
        s.create_api_key(B, &key("k2", "hash-2", &["orders"])).await,
        Err(StoreError::NotFound { kind: "tenant", .. })
    ));
    assert!(matches!(
        s.create_api_key(A, &key("k2", "hash-2", &["root"])).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_api_key(A, &key("k2", "hash-2", &[])).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.create_api_key(A, &key("k1", "hash-3", &["admin"])).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let found = s.api_key_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.tenant.as_str()), ("k1", A));
    assert_eq!(s.api_key_by_hash("hash-x").await.unwrap(), None);

    // Revocation is per tenant and idempotent.
    s.create_tenant(B, "Globex").await.unwrap();
    assert!(matches!(
        s.revoke_api_key(B, "k1").await,
        Err(StoreError::NotFound { .. })
    ));
    h.clock.advance(5);
    assert!(s.revoke_api_key(A, "k1").await.unwrap());
    assert!(!s.revoke_api_key(A, "k1").await.unwrap());
    let revoked = s.api_key_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(T0 + 5));
    assert_eq!(s.api_keys(A).await.unwrap().len(), 1);
    assert!(s.api_keys(B).await.unwrap().is_empty());
    h.cleanup().await;
}

async fn lookups_the_order_api_needs(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    // Active rulesets of every tenant, for a server's start.
    let version = |name: &str, hash: &str| NewRulesetVersion {
        name: name.into(),
        content_hash: hash.into(),
        files: json!({ "rules.weir": hash }),
    };
    s.save_ruleset_version(A, &version("beauty", "h1"))
        .await
        .unwrap();
    s.save_ruleset_version(A, &version("grocery", "h2"))
        .await
        .unwrap();
    s.save_ruleset_version(B, &version("beauty", "h3"))
        .await
        .unwrap();
    s.activate_ruleset(A, "beauty", "h1").await.unwrap();
    s.activate_ruleset(B, "beauty", "h3").await.unwrap();
    let active: Vec<(String, String)> = s
        .all_active_rulesets()
        .await
        .unwrap()
        .into_iter()
        .map(|(t, v)| (t, v.content_hash))
        .collect();
    assert_eq!(
        active,
        vec![
            (A.to_owned(), "h1".to_owned()),
            (B.to_owned(), "h3".to_owned())
        ]
    );
    assert_eq!(s.ruleset_names(A).await.unwrap(), vec!["beauty"]);

    // An order by its idempotency key, in its tenant only.
    stocked(s, A, "wh-1", "SKU-1", 10).await;
    let mut order = simple_order(A, "o-1", "SKU-1", "wh-1", 1);
    order.idempotency = Some(Idempotency {
        key: "key-1".into(),
        request_hash: "rh".into(),
    });
    order.work_orders.push(NewWorkOrder {
        id: String::new(),
        order_id: None,
        location_id: Some("wh-1".into()),
        sop_name: "pick".into(),
        steps: vec![NewStep {
            name: "pick".into(),
            role: "picker".into(),
            evidence: None,
            deadline_at: None,
        }],
    });
    s.place_order(order).await.unwrap();
    assert_eq!(
        s.order_by_idempotency_key(A, "key-1").await.unwrap(),
        Some(("o-1".to_owned(), "rh".to_owned()))
    );
    assert_eq!(s.order_by_idempotency_key(B, "key-1").await.unwrap(), None);
    // The same lookup made with an order's other reads.
    for (tenant, found) in [(A, Some(("o-1".to_owned(), "rh".to_owned()))), (B, None)] {
        let reads = OrderReads {
            idempotency_key: Some("key-1".into()),
            ..OrderReads::default()
        };
        assert_eq!(s.order_reads(tenant, &reads).await.unwrap().earlier, found);
    }

    // Several SKUs' stock in one read; unknown SKUs are simply absent.
    stocked(s, A, "wh-2", "SKU-2", 4).await;
    stocked(s, B, "wh-1", "SKU-1", 99).await;
    let reads = OrderReads {
        skus: vec!["SKU-1".into(), "SKU-2".into(), "SKU-X".into()],
        ..OrderReads::default()
    };
    let levels = s.order_reads(A, &reads).await.unwrap().stock;
    let seen: Vec<(&str, &str, i64)> = levels
        .iter()
        .map(|l| (l.sku.as_str(), l.location_id.as_str(), l.on_hand))
        .collect();
    assert_eq!(seen, vec![("SKU-1", "wh-1", 10), ("SKU-2", "wh-2", 4)]);

    // Quantities near i64 overflow are refused, not stored (SQLite would turn the sum
    // into a float and leave the row unreadable).
    for qty in [i64::MAX - 1, weir_runtime::store::MAX_UNITS + 1] {
        let huge = Receipt {
            sku: "SKU-1".into(),
            location_id: "wh-1".into(),
            qty,
            lot: None,
            reference: "fuzz".into(),
        };
        assert!(matches!(
            s.receive(A, &huge).await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert!(matches!(
        s.adjust(
            A,
            &Adjustment {
                sku: "SKU-1".into(),
                location_id: "wh-1".into(),
                delta: i64::MIN + 1,
                lot_id: None,
                reason: "fuzz".into(),
            }
        )
        .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.set_safety_stock(A, "SKU-1", "wh-1", i64::MAX).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.locations(A).await.unwrap().len(), 2);

    // Budget and limit usage in one statement, with the velocity counts, in one round.
    let mut spend = simple_order(A, "o-2", "SKU-1", "wh-1", 1);
    spend.budgets.push(BudgetUse {
        key: "promo".into(),
        amount: 700,
        cap: 10_000,
    });
    spend.limits.push(LimitUse {
        key: "promo:day:1".into(),
        customer_id: "cust-1".into(),
        count: 1,
        max: 3,
    });
    spend.velocity.push(VelocityKey {
        kind: "customer.device".into(),
        key: "d-1".into(),
    });
    s.place_order(spend).await.unwrap();
    let device = VelocityKey {
        kind: "customer.device".into(),
        key: "d-1".into(),
    };
    let reads = OrderReads {
        velocity: vec![
            VelocityRead {
                key: device.clone(),
                window_ms: HOUR,
                distinct_customers: false,
            },
            VelocityRead {
                key: device,
                window_ms: HOUR,
                distinct_customers: true,
            },
        ],
        budget_keys: vec!["promo".into(), "other".into()],
        limit_keys: vec!["promo:day:1".into(), "promo:day:2".into()],
        customer_id: "cust-1".into(),
        ..OrderReads::default()
    };
    let found = s.order_reads(A, &reads).await.unwrap();
    assert_eq!(found.velocity, vec![1, 1]);
    let usages = found.usages;
    assert_eq!(usages.budgets.get("promo"), Some(&700));
    assert_eq!(usages.budgets.len(), 1);
    assert_eq!(usages.limits.get("promo:day:1"), Some(&1));
    assert_eq!(usages.limits.len(), 1);
    // Budgets alone and limits alone take the one-kind statements.
    let budgets_only = OrderReads {
        budget_keys: vec!["promo".into()],
        ..OrderReads::default()
    };
    let found = s.order_reads(A, &budgets_only).await.unwrap().usages;
    assert_eq!(
        (found.budgets.get("promo"), found.limits.len()),
        (Some(&700), 0)
    );
    let limits_only = OrderReads {
        limit_keys: vec!["promo:day:1".into()],
        customer_id: "cust-1".into(),
        ..OrderReads::default()
    };
    let found = s.order_reads(A, &limits_only).await.unwrap().usages;
    assert_eq!(
        (found.budgets.len(), found.limits.get("promo:day:1")),
        (0, Some(&1))
    );
    let elsewhere = s.order_reads(B, &reads).await.unwrap();
    assert!(elsewhere.usages.budgets.is_empty() && elsewhere.usages.limits.is_empty());
    assert_eq!(elsewhere.velocity, vec![0, 0]);

    // Work orders by order, by location and by state.
    let listed = |order_id: Option<&str>, location_id: Option<&str>, state| {
        let filter = WorkOrderFilter {
            order_id: order_id.map(str::to_owned),
            location_id: location_id.map(str::to_owned),
            state,
        };
        async move { s.list_work_orders(A, &filter).await.unwrap() }
    };
    let of_order = listed(Some("o-1"), None, None).await;
    assert_eq!(of_order.len(), 1);
    assert_eq!(of_order[0].steps.len(), 1);
    assert_eq!(of_order[0].location_id.as_deref(), Some("wh-1"));
    assert_eq!(listed(None, None, None).await.len(), 1);
    assert_eq!(listed(None, Some("wh-1"), None).await.len(), 1);
    assert!(listed(None, Some("wh-2"), None).await.is_empty());
    assert!(listed(None, Some("wh-1"), Some(WorkOrderState::Done))
        .await
        .is_empty());
    assert!(listed(None, None, Some(WorkOrderState::Done))
        .await
        .is_empty());
    assert!(s
        .list_work_orders(B, &WorkOrderFilter::default())
        .await
        .unwrap()
        .is_empty());
    h.cleanup().await;
}

/// Locations, attributes and lists are cached per process; a change through the store
/// is seen at once by the process that made it and, on PostgreSQL, by every other one
/// (NOTIFY); on SQLite another process sees it when its copy ages out.
async fn reference_data_is_cached_but_never_stale_after_a_change(kind: Kind) {
    let long = StoreConfig {
        reference_max_age_ms: 600_000,
        ..StoreConfig::default()
    };
    let h = Harness::open_with(kind, long.clone()).await;
    let here = h.store.as_ref();
    let other = h.reopen_with(long).await;
    here.upsert_location(A, &location("wh-1", LocationKind::Warehouse))
        .await
        .unwrap();
    here.replace_list(A, "blocked", &["d-1".to_owned()], None)
        .await
        .unwrap();
    // Both processes have read (and cached) the data.
    assert_eq!(here.locations(A).await.unwrap().len(), 1);
    assert_eq!(other.locations(A).await.unwrap().len(), 1);
    assert_eq!(other.list(A, "blocked").await.unwrap().unwrap().version, 1);
    assert!(other.location_attributes(A).await.unwrap().is_empty());

    here.upsert_location(A, &location("store-1", LocationKind::Store))
        .await
        .unwrap();
    let mut facts = serde_json::Map::new();
    facts.insert("margin_pct".into(), json!(12));
    here.set_location_attributes(A, "wh-1", &facts)
        .await
        .unwrap();
    here.patch_list(A, "blocked", &["d-2".to_owned()], &[], Some(1))
        .await
        .unwrap();
    // The writer's own reads are fresh at once.
    assert_eq!(here.locations(A).await.unwrap().len(), 2);
    assert_eq!(here.location_attributes(A).await.unwrap().len(), 1);
    assert_eq!(here.list(A, "blocked").await.unwrap().unwrap().version, 2);
    // Another tenant's cache is not this tenant's business.
    assert!(here.locations(B).await.unwrap().is_empty());

    match kind {
        Kind::Postgres => {
            // Announced: the other process drops its copy within moments.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let locations = other.locations(A).await.unwrap().len();
                let attributes = other.location_attributes(A).await.unwrap().len();
                let version = other.list(A, "blocked").await.unwrap().unwrap().version;
                if (locations, attributes, version) == (2, 1, 2) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the other process still sees {locations} locations, list v{version}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        Kind::Sqlite => {
            // Not announced: the other process keeps its copy until it ages out.
            assert_eq!(other.locations(A).await.unwrap().len(), 1);
            let short = h
                .reopen_with(StoreConfig {
                    reference_max_age_ms: 50,
                    ..StoreConfig::default()
                })
                .await;
            assert_eq!(short.locations(A).await.unwrap().len(), 2);
            here.upsert_location(A, &location("fw-1", LocationKind::FrontWarehouse))
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            assert_eq!(short.locations(A).await.unwrap().len(), 3);
        }
    }
    drop(other);
    h.cleanup().await;
}

/// A runtime list's cached copy outlives its age when its version is unchanged (renewed
/// by one small query, the same members shared), is read again when the version moved,
/// and orders that miss it together wait for one read.
async fn an_expired_list_is_renewed_by_its_version_and_read_once_by_concurrent_misses(kind: Kind) {
    let short = StoreConfig {
        reference_max_age_ms: 50,
        ..StoreConfig::default()
    };
    // A tenant no other test uses: on PostgreSQL every store hears every announcement
    // for a tenant name, whichever test's schema it came from.
    const TENANT: &str = "list-renewal";
    let h = Harness::open_with(kind, short.clone()).await;
    let here = h.store.clone();
    here.replace_list(TENANT, "blocked", &["d-1".to_owned()], None)
        .await
        .unwrap();
    // On PostgreSQL the change is announced to this process too: let that pass.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let first = here.list(TENANT, "blocked").await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let renewed = here.list(TENANT, "blocked").await.unwrap().unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &renewed),
        "same version: the copy is renewed, not read again"
    );

    // Another process changes it (on SQLite unannounced): once the copy ages out, the
    // new version is read.
    let other = h.reopen_with(short.clone()).await;
    other
        .patch_list(TENANT, "blocked", &["d-2".to_owned()], &[], Some(1))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let changed = here.list(TENANT, "blocked").await.unwrap().unwrap();
    assert_eq!((changed.version, changed.members.len()), (2, 2));

    // A change empties this process's copy (and, on PostgreSQL, announces itself to
    // every process, this one included: wait for that to pass); then many orders ask
    // at once.
    here.patch_list(TENANT, "blocked", &["d-3".to_owned()], &[], Some(2))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let reads: Vec<_> = (0..16)
        .map(|_| {
            let here = here.clone();
            tokio::spawn(async move { here.list(TENANT, "blocked").await.unwrap().unwrap() })
        })
        .collect();
    let mut lists = Vec::new();
    for read in reads {
        lists.push(read.await.unwrap());
    }
    assert_eq!(lists[0].version, 3);
    assert!(
        lists.iter().all(|l| std::sync::Arc::ptr_eq(l, &lists[0])),
        "one read served every concurrent miss"
    );
    drop(other);
    h.cleanup().await;
}

/// Many orders' reads at once (answered together on SQLite, `read_batch.rs`) give each
/// order exactly what it gets when it reads alone: its own SKUs in order, its own
/// counters, its own customer's limits, nothing of another tenant's.
async fn concurrent_order_reads_each_get_their_own_answer(kind: Kind) {
    let h = Harness::open(kind).await;
    let s = h.store.as_ref();
    for n in 0..6 {
        stocked(s, A, "wh-1", &format!("SKU-{n}"), 10 + n).await;
        stocked(s, A, "wh-2", &format!("SKU-{n}"), 20 + n).await;
        stocked(s, B, "wh-1", &format!("SKU-{n}"), 30 + n).await;
    }
    // Budget, limit and velocity use by three customers on two devices, in A only.
    for n in 0..6i64 {
        let customer = format!("cust-{}", n % 3);
        let mut order = simple_order(A, &format!("o-{n}"), "SKU-0", "wh-1", 1);
        order.customer_id = customer.clone();
        order.budgets.push(BudgetUse {
            key: format!("promo-{}", n % 2),
            amount: 100 * (n + 1),
            cap: 10_000,
        });
        order.limits.push(LimitUse {
            key: "promo:day:1".into(),
            customer_id: customer,
            count: 1,
            max: 10,
        });
        order.velocity.push(VelocityKey {
            kind: "customer.device".into(),
            key: format!("d-{}", n % 2),
        });
        order.idempotency = Some(Idempotency {
            key: format!("k-{n}"),
            request_hash: format!("h-{n}"),
        });
        s.place_order(order).await.unwrap();
    }
    let asks: Vec<(&str, OrderReads)> = (0..40usize)
        .map(|n| {
            let tenant = if n % 5 == 4 { B } else { A };
            let mut skus: Vec<String> = (0..1 + n % 4)
                .map(|k| format!("SKU-{}", (n + 2 * k) % 7))
                .collect();
            skus.sort();
            skus.dedup();
            let device = VelocityKey {
                kind: "customer.device".into(),
                key: format!("d-{}", n % 3),
            };
            let reads = OrderReads {
                skus,
                velocity: vec![
                    VelocityRead {
                        key: device.clone(),
                        window_ms: HOUR,
                        distinct_customers: n % 2 == 0,
                    },
                    VelocityRead {
                        key: device,
                        window_ms: DAY,
                        distinct_customers: false,
                    },
                ],
                budget_keys: (0..n % 3).map(|k| format!("promo-{k}")).collect(),
                limit_keys: if n % 4 == 0 {
                    Vec::new()
                } else {
                    vec!["promo:day:1".into(), "promo:day:2".into()]
                },
                customer_id: format!("cust-{}", n % 4),
                // Keys k-0 … k-5 were used in A; k-6 and k-7 never were.
                idempotency_key: (n % 3 != 2).then(|| format!("k-{}", n % 8)),
            };
            (tenant, reads)
        })
        .collect();
    let mut alone = Vec::new();
    for (tenant, reads) in &asks {
        alone.push(s.order_reads(tenant, reads).await.unwrap());
    }
    // The answers are not all alike (the comparison below could fail).
    assert!(alone.iter().any(|r| r.velocity != alone[0].velocity));
    assert!(alone.iter().any(|r| !r.usages.limits.is_empty()));
    assert!(alone.iter().any(|r| r.stock.len() != alone[0].stock.len()));
    assert!(alone.iter().any(|r| r.earlier.is_some()));
    assert!(alone.iter().any(|r| r.earlier.is_none()));
    let together: Vec<_> = asks
        .iter()
        .map(|(tenant, reads)| {
            let store = h.store.clone();
            let (tenant, reads) = (tenant.to_string(), reads.clone());
            tokio::spawn(async move { store.order_reads(&tenant, &reads).await.unwrap() })
        })
        .collect();
    for (n, (task, expected)) in together.into_iter().zip(&alone).enumerate() {
        assert_eq!(&task.await.unwrap(), expected, "reads of order {n}");
    }
    // Spot checks against the data itself.
    let first = &alone[1]; // A, SKU-1 and SKU-3, device d-1, customer cust-1
    let stock: Vec<(&str, &str, i64)> = first
        .stock
        .iter()
        .map(|l| (l.sku.as_str(), l.location_id.as_str(), l.on_hand))
        .collect();
    assert_eq!(
        stock,
        vec![
            ("SKU-1", "wh-1", 11),
            ("SKU-1", "wh-2", 21),
            ("SKU-3", "wh-1", 13),
            ("SKU-3", "wh-2", 23)
        ]
    );
    assert_eq!(first.velocity, vec![3, 3]);
    assert_eq!(
        first.usages.budgets.get("promo-0"),
        Some(&(100 + 300 + 500))
    );
    assert_eq!(first.usages.limits.get("promo:day:1"), Some(&2));
    assert_eq!(first.earlier, Some(("o-1".to_owned(), "h-1".to_owned())));
    assert_eq!(alone[6].earlier, None); // k-6: never used
    assert_eq!(alone[9].earlier, None); // k-1, but in B
    assert_eq!(alone[3].earlier, Some(("o-3".to_owned(), "h-3".to_owned())));
    let other_tenant = &alone[4];
    assert!(other_tenant.velocity.iter().all(|&n| n == 0));
    assert!(other_tenant.stock.iter().all(|l| l.on_hand >= 30));
}

/// On SQLite the WAL is copied into the database file beside the order writer
/// (`checkpoint_loop`), not by the writer's own commits, which checkpoint only after
/// 64 MiB: a few MiB written reach the database file while the store stays open.
#[tokio::test]
async fn sqlite_checkpoints_the_wal_beside_the_writer() {
    let path = std::env::temp_dir().join(format!("weir-checkpoint-{}.db", std::process::id()));
    let files = |path: &std::path::Path| {
        ["", "-wal", "-shm"].map(|suffix| {
            let mut p = path.to_path_buf().into_os_string();
            p.push(suffix);
            std::path::PathBuf::from(p)
        })
    };
    for f in files(&path) {
        let _ = std::fs::remove_file(f);
    }
    let store = weir_runtime::store::sqlite::open(&path, StoreConfig::default())
        .await
        .unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    // About 4 MiB of rows on the writer's connection (a scratch table: the rows only
    // need to make pages).
    let pool = store.write_pool();
    sqlx::query("CREATE TABLE scratch (blob BLOB NOT NULL)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
         INSERT INTO scratch SELECT randomblob(4000) FROM n",
    )
    .execute(pool)
    .await
    .unwrap();
    let mut grown = 0;
    for _ in 0..200 {
        grown = std::fs::metadata(&path)
            .unwrap()
            .len()
            .saturating_sub(before);
        if grown >= 4_000_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        grown >= 4_000_000,
        "the database file grew by {grown} bytes only: the WAL was not checkpointed"
    );
    store.close().await;
    drop(store);
    for f in files(&path) {
        let _ = std::fs::remove_file(f);
    }
}
