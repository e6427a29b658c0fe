//! 64 concurrent clients place 20,000 single-unit orders on one SKU with 1,000 units:
//! exactly 1,000 are accepted, ATP is never negative, every accepted order is stored
//! with its reservation and every rejected one says "out of stock".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{simple_order, stocked, Harness, Kind};
use weir_runtime::store::{OrderFilter, PlaceError, ReservationStatus};

const TENANT: &str = "acme";
const CLIENTS: usize = 64;
const ORDERS: usize = 20_000;
const UNITS: i64 = 1_000;

both_backends!(twenty_thousand_orders_on_one_thousand_units);

async fn twenty_thousand_orders_on_one_thousand_units(kind: Kind) {
    let h = Harness::open(kind).await;
    let store = h.store.clone();
    stocked(store.as_ref(), TENANT, "wh", "hot", UNITS).await;

    // A watcher reads the stock row throughout and checks it never promises more than
    // it has.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut samples = 0u64;
            while !done.load(Ordering::SeqCst) {
                let s = store.stock(TENANT, "hot", "wh").await.unwrap().unwrap();
                assert!(
                    s.on_hand - s.reserved - s.safety_stock >= 0,
                    "negative ATP: {s:?}"
                );
                assert_eq!(s.on_hand, UNITS);
                samples += 1;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            samples
        })
    };

    let mut clients = Vec::with_capacity(CLIENTS);
    for c in 0..CLIENTS {
        let store = store.clone();
        clients.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut rejected = Vec::new();
            for i in (c..ORDERS).step_by(CLIENTS) {
                let id = format!("o{i:05}");
                match store
                    .place_order(simple_order(TENANT, &id, "hot", "wh", 1))
                    .await
                {
                    Ok(p) => {
                        assert_eq!(p.reservations.len(), 1);
                        accepted.push(id);
                    }
                    Err(PlaceError::OutOfStock {
                        sku,
                        location_id,
                        requested,
                        available,
                    }) => {
                        assert_eq!((sku.as_str(), location_id.as_str()), ("hot", "wh"));
                        assert_eq!((requested, available), (1, 0));
                        rejected.push(id);
                    }
                    Err(e) => panic!("order {id}: unexpected error {e:?}"),
                }
            }
            (accepted, rejected)
        }));
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for c in clients {
        let (a, r) = c.await.unwrap();
        accepted.extend(a);
        rejected.extend(r);
    }
    done.store(true, Ordering::SeqCst);
    assert!(watcher.await.unwrap() > 0);

    assert_eq!(accepted.len(), UNITS as usize);
    assert_eq!(rejected.len(), ORDERS - UNITS as usize);
    let s = store.stock(TENANT, "hot", "wh").await.unwrap().unwrap();
    assert_eq!((s.on_hand, s.reserved), (UNITS, UNITS));

    // Every accepted order is stored with its held reservation; no rejected one is.
    let mut stored = Vec::new();
    let mut filter = OrderFilter {
        limit: 1000,
        ..OrderFilter::default()
    };
    loop {
        let page = store.list_orders(TENANT, &filter).await.unwrap();
        let Some(last) = page.last() else { break };
        filter.after = Some((last.created_at, last.order_id.clone()));
        stored.extend(page.into_iter().map(|o| o.order_id));
    }
    stored.sort();
    accepted.sort();
    assert_eq!(stored, accepted);
    for id in accepted.iter().step_by(50) {
        let rec = store.order(TENANT, id).await.unwrap().unwrap();
        assert_eq!(rec.reservations.len(), 1);
        assert_eq!(rec.reservations[0].status, ReservationStatus::Held);
        assert_eq!(rec.reservations[0].qty, 1);
    }
    assert_eq!(
        h.scalar("SELECT COUNT(*) FROM reservations WHERE status = 'held'")
            .await,
        UNITS
    );
    assert_eq!(
        h.scalar("SELECT CAST(SUM(qty) AS BIGINT) FROM reservations")
            .await,
        UNITS
    );
    for id in rejected.iter().step_by(500) {
        assert_eq!(store.order(TENANT, id).await.unwrap(), None);
    }
    h.cleanup().await;
}
