//! Gifts with purchase as stock (docs/orders.md, "Gifts"): a gift the promotions give is
//! reserved like a line, at one of the order's shipping locations, so it leaves the
//! books when the order ships and comes back when it is cancelled. A gift no shipping
//! location can promise is not given ("while stocks last"); the order is placed
//! without it and its decision record says so.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{json, Value as Json};

use crate::store::{NewReservation, StockLevel, Store, StoreError};

/// A gift the promotions gave, and where it is reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedGift {
    pub sku: String,
    pub qty: i64,
    /// The shipping location that reserves it, or `None`: not given, no stock.
    pub location: Option<String>,
    /// The stock at `location` is in lots (the reservation picks them FEFO).
    pub lot_tracked: bool,
}

impl PlannedGift {
    /// The gift as the decision record writes it.
    pub(crate) fn json(&self) -> Json {
        json!({
            "sku": self.sku,
            "qty": self.qty,
            "location": self.location,
            "given": self.location.is_some(),
        })
    }
}

/// Where each of `gifts` (SKU, qty) is reserved: the first of `shipping` (the order's
/// shipment locations, in plan order) that can promise the whole quantity on top of
/// what the order already reserves there (`reserved`: the lines' reservations, and the
/// gifts placed before it). `stock` holds the levels read for the order's lines; a gift
/// SKU not among them is read now.
pub(crate) async fn plan_gifts(
    store: &dyn Store,
    tenant: &str,
    gifts: &[(Cow<'_, str>, i64)],
    shipping: &[&str],
    stock: &HashMap<(String, String), StockLevel>,
    reserved: &[NewReservation],
) -> Result<Vec<PlannedGift>, StoreError> {
    let mut planned: Vec<PlannedGift> = Vec::with_capacity(gifts.len());
    for (sku, qty) in gifts {
        let sku: &str = sku;
        // A line's SKU was read at every location with the order; another is read now.
        let read_now = if stock.keys().any(|(s, _)| s == sku) {
            Vec::new()
        } else {
            store.stock_by_sku(tenant, sku).await?
        };
        let level_at = |location: &str| {
            stock
                .get(&(sku.to_owned(), location.to_owned()))
                .or_else(|| read_now.iter().find(|l| l.location_id == location))
        };
        let taken = |location: &str| -> i64 {
            let by_lines = reserved
                .iter()
                .filter(|r| r.sku == sku && r.location_id == location)
                .map(|r| r.qty);
            let by_gifts = planned
                .iter()
                .filter(|g| g.sku == sku && g.location.as_deref() == Some(location))
                .map(|g| g.qty);
            by_lines.chain(by_gifts).fold(0, i64::saturating_add)
        };
        let chosen = shipping.iter().find_map(|location| {
            let level = level_at(location)?;
            let free = level.available_to_promise().saturating_sub(taken(location));
            (*qty > 0 && free >= *qty).then_some(level)
        });
        planned.push(PlannedGift {
            sku: sku.to_owned(),
            qty: *qty,
            location: chosen.map(|level| level.location_id.clone()),
            lot_tracked: chosen.is_some_and(|level| level.lot_tracked),
        });
    }
    Ok(planned)
}
