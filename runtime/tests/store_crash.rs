//! The order write path fails at each of its steps (an injected fault after the step's
//! statements ran): no order, reservation, stock change, budget use, velocity count,
//! work order or event is left behind, and the same order then goes through.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{location, simple_order, stocked, Harness, Kind, T0};
use serde_json::json;
use weir_runtime::store::{
    BudgetUse, FaultInjector, LimitUse, LocationKind, LotRef, NewDecision, NewEvent, NewLine,
    NewPresale, NewReservation, NewShipment, NewStep, NewWave, NewWorkOrder, PlaceError, Receipt,
    ShipmentLine, StoreConfig, StoreError, VelocityKey, WriteStep,
};

const T: &str = "acme";

/// Fails at the step whose index is stored (`usize::MAX`: never).
#[derive(Debug)]
struct FailAt(AtomicUsize);

impl FaultInjector for FailAt {
    fn fail_at(&self, step: WriteStep) -> bool {
        WriteStep::ALL.get(self.0.load(Ordering::SeqCst)) == Some(&step)
    }
}

both_backends!(a_failure_at_any_step_leaves_nothing_behind);

/// An order that writes to every table of the path.
fn order(id: &str) -> weir_runtime::store::NewOrder {
    let mut o = simple_order(T, id, "cream", "wh", 2);
    o.lines.push(NewLine {
        line_no: 2,
        sku: "serum".into(),
        qty: 1,
        unit_price_minor: 900,
        discount_minor: 0,
    });
    o.lines.push(NewLine {
        line_no: 3,
        sku: "lipstick".into(),
        qty: 1,
        unit_price_minor: 500,
        discount_minor: 0,
    });
    o.reservations.push(NewReservation {
        sku: "serum".into(),
        location_id: "wh".into(),
        qty: 1,
        presale_session_id: None,
        not_expiring_before: Some(T0 + 1_000),
    });
    o.reservations.push(NewReservation {
        sku: "lipstick".into(),
        location_id: "wh".into(),
        qty: 1,
        presale_session_id: Some("live".into()),
        not_expiring_before: None,
    });
    o.shipments.push(NewShipment {
        location_id: "wh".into(),
        carrier_mode: "ground".into(),
        packaging: vec!["box".into()],
        lines: vec![ShipmentLine { line_no: 1, qty: 2 }],
    });
    o.decision = Some(NewDecision::render(
        "h",
        &json!({}),
        &["r".into()],
        &json!({}),
    ));
    o.budgets.push(BudgetUse {
        key: "b".into(),
        amount: 10,
        cap: 100,
    });
    o.limits.push(LimitUse {
        key: "l".into(),
        customer_id: "cust-1".into(),
        count: 1,
        max: 5,
    });
    o.velocity.push(VelocityKey {
        kind: "customer".into(),
        key: "cust-1".into(),
    });
    o.work_orders.push(NewWorkOrder {
        id: String::new(),
        order_id: None,
        location_id: None,
        sop_name: "pack".into(),
        steps: vec![NewStep {
            name: "seal".into(),
            role: "packer".into(),
            evidence: None,
            deadline_at: Some(T0 + 60_000),
        }],
    });
    o.events.push(NewEvent {
        aggregate_type: "order".into(),
        aggregate_id: id.into(),
        event_type: "order.placed".into(),
        payload: json!({}),
    });
    o
}

async fn footprint(h: &Harness) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM orders",
        "SELECT COUNT(*) FROM order_lines",
        "SELECT COUNT(*) FROM reservations",
        "SELECT COUNT(*) FROM reservation_lots",
        "SELECT COUNT(*) FROM shipments",
        "SELECT COUNT(*) FROM shipment_lines",
        "SELECT COUNT(*) FROM decision_records",
        "SELECT COUNT(*) FROM order_budget_uses",
        "SELECT COUNT(*) FROM order_limit_uses",
        "SELECT COUNT(*) FROM velocity_events",
        "SELECT COUNT(*) FROM work_orders",
        "SELECT COUNT(*) FROM work_order_steps",
        "SELECT COUNT(*) FROM outbox",
        "SELECT CAST(SUM(reserved) AS BIGINT) FROM stock",
        "SELECT CAST(SUM(reserved) AS BIGINT) FROM lots",
        "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT) FROM budgets",
        "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT) FROM customer_limits",
        "SELECT CAST(SUM(sold) AS BIGINT) FROM presale_sessions",
    ] {
        out.push(h.scalar(sql).await);
    }
    out
}

async fn a_failure_at_any_step_leaves_nothing_behind(kind: Kind) {
    let fault = Arc::new(FailAt(AtomicUsize::new(usize::MAX)));
    let config = StoreConfig {
        faults: Some(fault.clone()),
        ..StoreConfig::default()
    };
    let h = Harness::open_with(kind, config).await;
    let s = h.store.as_ref();
    stocked(s, T, "wh", "cream", 10).await;
    stocked(s, T, "wh", "lipstick", 10).await;
    s.upsert_location(T, &location("wh", LocationKind::Warehouse))
        .await
        .unwrap();
    s.receive(
        T,
        &Receipt {
            sku: "serum".into(),
            location_id: "wh".into(),
            qty: 5,
            lot: Some(LotRef {
                lot_id: "L1".into(),
                expires_at: T0 + 86_400_000,
            }),
            reference: String::new(),
        },
    )
    .await
    .unwrap();
    s.lock_presale(
        T,
        &NewPresale {
            session_id: "live".into(),
            sku: "lipstick".into(),
            location_id: "wh".into(),
            qty: 5,
            waves: vec![NewWave {
                release_at: T0,
                qty: 5,
            }],
            ends_at: T0 + 3_600_000,
        },
    )
    .await
    .unwrap();
    let clean = footprint(&h).await;

    for (i, step) in WriteStep::ALL.iter().enumerate() {
        fault.0.store(i, Ordering::SeqCst);
        let err = s.place_order(order("o1")).await.unwrap_err();
        assert!(
            matches!(err, PlaceError::Store(StoreError::Injected(name)) if name == step.name()),
            "{step:?}: {err:?}"
        );
        assert_eq!(footprint(&h).await, clean, "left behind at {step:?}");
        assert_eq!(s.order(T, "o1").await.unwrap(), None);

        // Several orders failing in one batch: none of them stays either.
        let mut tasks = Vec::new();
        for n in 0..4 {
            let store = h.store.clone();
            tasks.push(tokio::spawn(async move {
                store.place_order(order(&format!("b{n}"))).await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
        assert_eq!(footprint(&h).await, clean, "batch left behind at {step:?}");
    }

    fault.0.store(usize::MAX, Ordering::SeqCst);
    let placed = s.place_order(order("o1")).await.unwrap();
    assert_eq!(placed.reservations.len(), 3);
    assert_eq!(placed.reservations[1].lots[0].lot_id, "L1");
    let after = footprint(&h).await;
    assert_eq!(after[0], clean[0] + 1);
    assert_eq!(after[12], clean[12] + 1);
    h.cleanup().await;
}
