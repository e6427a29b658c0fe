//! The order placement decision, without I/O.
//!
//! The writer loads (and, on PostgreSQL, row-locks) every stock, lot, presale, budget
//! and limit row a batch of orders touches into a [`State`], then decides the orders
//! one after another here. Each order is checked against the state left by the orders
//! before it and either changes it as a whole or not at all, so the batch commits
//! exactly what a one-order-per-transaction run in the same order would have. The
//! writer then applies the accumulated deltas with guarded statements.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::error::PlaceError;
use super::types::{LotPick, Millis, NewOrder, NewReservation};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StockKey {
    pub tenant: String,
    pub sku: String,
    pub location_id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct StockRow {
    pub on_hand: i64,
    pub reserved: i64,
    pub safety_stock: i64,
    pub lot_tracked: bool,
    /// What this batch adds to `reserved`.
    pub reserved_delta: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct LotRow {
    pub lot_id: String,
    pub expires_at: Millis,
    pub on_hand: i64,
    pub reserved: i64,
    pub reserved_delta: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct PresaleRow {
    pub sku: String,
    pub location_id: String,
    pub released: i64,
    pub sold: i64,
    pub open: bool,
    pub sold_delta: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct BudgetRow {
    pub used: i64,
    pub cap: i64,
    pub delta: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct LimitRow {
    pub used: i64,
    pub max: i64,
    pub delta: i64,
}

/// An order already stored (or accepted earlier in the batch).
#[derive(Debug, Clone)]
pub(crate) struct KnownOrder {
    pub order_id: String,
    pub request_hash: Option<String>,
    /// Index in the batch when accepted by this batch.
    pub batch_index: Option<usize>,
}

pub(crate) type TenantKey = (String, String);
pub(crate) type LimitKey = (String, String, String);

/// Everything the batch's decisions read, with the deltas they made.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub stock: BTreeMap<StockKey, StockRow>,
    /// FEFO order: expiry, then lot id.
    pub lots: BTreeMap<StockKey, Vec<LotRow>>,
    pub presale: BTreeMap<TenantKey, PresaleRow>,
    pub budgets: BTreeMap<TenantKey, BudgetRow>,
    pub limits: BTreeMap<LimitKey, LimitRow>,
    /// (tenant, order id).
    pub order_ids: HashSet<TenantKey>,
    /// (tenant, idempotency key).
    pub idempotency: HashMap<TenantKey, KnownOrder>,
}

/// A reservation decided for an order or a hold.
#[derive(Debug, Clone)]
pub(crate) struct PlannedReservation {
    pub id: String,
    pub sku: String,
    pub location_id: String,
    pub qty: i64,
    pub presale_session_id: Option<String>,
    pub lots: Vec<LotPick>,
}

#[derive(Debug)]
pub(crate) struct Accepted<'a> {
    /// The order as submitted (borrowed: it carries the decision record, which is
    /// large, and the writer keeps the batch for a retry anyway).
    pub order: &'a NewOrder,
    pub reservations: Vec<PlannedReservation>,
    pub work_order_ids: Vec<String>,
    /// Budget uses merged per key: (key, amount, cap).
    pub budgets: Vec<(String, i64, i64)>,
    /// Limit uses merged per (key, customer): (key, customer, count).
    pub limits: Vec<(String, String, i64)>,
}

#[derive(Debug)]
pub(crate) enum Outcome<'a> {
    Accepted(Box<Accepted<'a>>),
    /// Same idempotency key and hash as a stored order.
    Replay {
        order_id: String,
    },
    /// Same idempotency key and hash as an order accepted earlier in this batch.
    ReplayOf(usize),
    Rejected(PlaceError),
}

/// Checks what can be checked without the database.
pub(crate) fn validate(order: &NewOrder) -> Result<(), PlaceError> {
    let invalid = |m: String| Err(PlaceError::Invalid(m));
    if order.tenant.is_empty() || order.order_id.is_empty() {
        return invalid("tenant and order id must not be empty".into());
    }
    if order.order_id.len() > 200 || order.order_id.contains('/') {
        return invalid("order id: at most 200 characters, no `/`".into());
    }
    let mut line_qty = HashMap::new();
    for line in &order.lines {
        if line.qty <= 0 {
            return invalid(format!("line {}: quantity must be positive", line.line_no));
        }
        if line_qty.insert(line.line_no, line.qty).is_some() {
            return invalid(format!("line {} appears twice", line.line_no));
        }
    }
    for r in &order.reservations {
        if r.qty <= 0 {
            return invalid(format!(
                "reservation of `{}`: quantity must be positive",
                r.sku
            ));
        }
    }
    let mut shipped: HashMap<i64, i64> = HashMap::new();
    for s in &order.shipments {
        for l in &s.lines {
            if l.qty <= 0 || !line_qty.contains_key(&l.line_no) {
                return invalid(format!(
                    "shipment line {}: unknown line or non-positive quantity",
                    l.line_no
                ));
            }
            *shipped.entry(l.line_no).or_default() += l.qty;
        }
    }
    for (line_no, qty) in shipped {
        if line_qty.get(&line_no).is_some_and(|&ordered| qty > ordered) {
            return invalid(format!(
                "line {line_no}: shipments exceed the ordered quantity"
            ));
        }
    }
    for b in &order.budgets {
        if b.amount < 0 || b.cap < 0 {
            return invalid(format!("budget `{}`: negative amount or cap", b.key));
        }
    }
    for l in &order.limits {
        if l.count <= 0 || l.max < 0 {
            return invalid(format!("limit `{}`: count must be positive", l.key));
        }
    }
    for (i, w) in order.work_orders.iter().enumerate() {
        if w.steps.is_empty() {
            return invalid(format!("work order {}: no steps", i + 1));
        }
    }
    Ok(())
}

/// The rows an order's changes touch, copied from the state on first use, so a failed
/// order leaves the state as it was.
struct Overlay<'a> {
    base: &'a State,
    stock: BTreeMap<StockKey, StockRow>,
    lots: BTreeMap<StockKey, Vec<LotRow>>,
    presale: BTreeMap<TenantKey, PresaleRow>,
    budgets: BTreeMap<TenantKey, BudgetRow>,
    limits: BTreeMap<LimitKey, LimitRow>,
}

impl<'a> Overlay<'a> {
    fn new(base: &'a State) -> Self {
        Overlay {
            base,
            stock: BTreeMap::new(),
            lots: BTreeMap::new(),
            presale: BTreeMap::new(),
            budgets: BTreeMap::new(),
            limits: BTreeMap::new(),
        }
    }

    fn stock(&mut self, key: &StockKey) -> Option<&mut StockRow> {
        if !self.stock.contains_key(key) {
            let row = self.base.stock.get(key)?.clone();
            self.stock.insert(key.clone(), row);
        }
        self.stock.get_mut(key)
    }

    fn lots(&mut self, key: &StockKey) -> &mut Vec<LotRow> {
        if !self.lots.contains_key(key) {
            let rows = self.base.lots.get(key).cloned().unwrap_or_default();
            self.lots.insert(key.clone(), rows);
        }
        self.lots.entry(key.clone()).or_default()
    }

    fn presale(&mut self, key: &TenantKey) -> Option<&mut PresaleRow> {
        if !self.presale.contains_key(key) {
            let row = self.base.presale.get(key)?.clone();
            self.presale.insert(key.clone(), row);
        }
        self.presale.get_mut(key)
    }

    fn budget(&mut self, key: &TenantKey, cap: i64) -> &mut BudgetRow {
        if !self.budgets.contains_key(key) {
            let row = self.base.budgets.get(key).cloned().unwrap_or(BudgetRow {
                used: 0,
                cap,
                delta: 0,
            });
            self.budgets.insert(key.clone(), row);
        }
        self.budgets.entry(key.clone()).or_insert(BudgetRow {
            used: 0,
            cap,
            delta: 0,
        })
    }

    fn limit(&mut self, key: &LimitKey, max: i64) -> &mut LimitRow {
        if !self.limits.contains_key(key) {
            let row = self.base.limits.get(key).cloned().unwrap_or(LimitRow {
                used: 0,
                max,
                delta: 0,
            });
            self.limits.insert(key.clone(), row);
        }
        self.limits.entry(key.clone()).or_insert(LimitRow {
            used: 0,
            max,
            delta: 0,
        })
    }

    fn into_changes(self) -> Changes {
        Changes {
            stock: self.stock,
            lots: self.lots,
            presale: self.presale,
            budgets: self.budgets,
            limits: self.limits,
        }
    }
}

/// An accepted order's rows, to be folded into the state.
pub(crate) struct Changes {
    stock: BTreeMap<StockKey, StockRow>,
    lots: BTreeMap<StockKey, Vec<LotRow>>,
    presale: BTreeMap<TenantKey, PresaleRow>,
    budgets: BTreeMap<TenantKey, BudgetRow>,
    limits: BTreeMap<LimitKey, LimitRow>,
}

impl State {
    pub(crate) fn apply(&mut self, changes: Changes) {
        self.stock.extend(changes.stock);
        self.lots.extend(changes.lots);
        self.presale.extend(changes.presale);
        self.budgets.extend(changes.budgets);
        self.limits.extend(changes.limits);
    }

    /// Decides a batch in order. `now` bounds lot expiry when an order gives none.
    pub(crate) fn decide_batch<'a>(
        &mut self,
        orders: &'a [NewOrder],
        now: Millis,
    ) -> Vec<Outcome<'a>> {
        let mut outcomes = Vec::with_capacity(orders.len());
        for (index, order) in orders.iter().enumerate() {
            let outcome = self.decide_one(index, order, now);
            outcomes.push(outcome);
        }
        outcomes
    }

    fn decide_one<'a>(&mut self, index: usize, order: &'a NewOrder, now: Millis) -> Outcome<'a> {
        if let Err(e) = validate(order) {
            return Outcome::Rejected(e);
        }
        if let Some(idem) = &order.idempotency {
            let key = (order.tenant.clone(), idem.key.clone());
            if let Some(known) = self.idempotency.get(&key) {
                if known.request_hash.as_deref() != Some(idem.request_hash.as_str()) {
                    return Outcome::Rejected(PlaceError::IdempotencyConflict {
                        key: idem.key.clone(),
                        order_id: known.order_id.clone(),
                    });
                }
                return match known.batch_index {
                    Some(i) => Outcome::ReplayOf(i),
                    None => Outcome::Replay {
                        order_id: known.order_id.clone(),
                    },
                };
            }
        }
        let id_key = (order.tenant.clone(), order.order_id.clone());
        if self.order_ids.contains(&id_key) {
            return Outcome::Rejected(PlaceError::DuplicateOrder {
                order_id: order.order_id.clone(),
            });
        }
        match plan_order(self, order, now) {
            Ok((accepted, changes)) => {
                self.apply(changes);
                self.order_ids.insert(id_key);
                if let Some(idem) = &order.idempotency {
                    self.idempotency.insert(
                        (order.tenant.clone(), idem.key.clone()),
                        KnownOrder {
                            order_id: order.order_id.clone(),
                            request_hash: Some(idem.request_hash.clone()),
                            batch_index: Some(index),
                        },
                    );
                }
                Outcome::Accepted(Box::new(accepted))
            }
            Err(e) => Outcome::Rejected(e),
        }
    }

    /// Decides one standalone hold.
    pub(crate) fn decide_hold(
        &mut self,
        tenant: &str,
        id: &str,
        request: &NewReservation,
        now: Millis,
    ) -> Result<PlannedReservation, PlaceError> {
        if request.qty <= 0 {
            return Err(PlaceError::Invalid("hold quantity must be positive".into()));
        }
        let mut overlay = Overlay::new(self);
        let planned = reserve(&mut overlay, tenant, id, request, now)?;
        let changes = overlay.into_changes();
        self.apply(changes);
        Ok(planned)
    }
}

fn plan_order<'a>(
    state: &State,
    order: &'a NewOrder,
    now: Millis,
) -> Result<(Accepted<'a>, Changes), PlaceError> {
    let mut overlay = Overlay::new(state);
    let tenant = order.tenant.as_str();
    let mut reservations = Vec::with_capacity(order.reservations.len());
    for (i, request) in order.reservations.iter().enumerate() {
        let id = format!("{}/r{}", order.order_id, i + 1);
        reservations.push(reserve(&mut overlay, tenant, &id, request, now)?);
    }

    // Budgets and limits named twice in one order are one use of their sum.
    let mut budgets: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for b in &order.budgets {
        let entry = budgets.entry(b.key.clone()).or_insert((0, b.cap));
        entry.0 += b.amount;
        entry.1 = entry.1.min(b.cap);
    }
    for (key, (amount, cap)) in &budgets {
        let row = overlay.budget(&(tenant.to_owned(), key.clone()), *cap);
        if row.used + amount > *cap {
            return Err(PlaceError::BudgetExhausted {
                key: key.clone(),
                used: row.used,
                amount: *amount,
                cap: *cap,
            });
        }
        row.used += amount;
        row.delta += amount;
        row.cap = *cap;
    }
    let mut limits: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for l in &order.limits {
        let entry = limits
            .entry((l.key.clone(), l.customer_id.clone()))
            .or_insert((0, l.max));
        entry.0 += l.count;
        entry.1 = entry.1.min(l.max);
    }
    for ((key, customer), (count, max)) in &limits {
        let row = overlay.limit(&(tenant.to_owned(), key.clone(), customer.clone()), *max);
        if row.used + count > *max {
            return Err(PlaceError::LimitReached {
                key: key.clone(),
                customer_id: customer.clone(),
                used: row.used,
                count: *count,
                max: *max,
            });
        }
        row.used += count;
        row.delta += count;
        row.max = *max;
    }
    let work_order_ids = (1..=order.work_orders.len())
        .map(|n| format!("{}/wo{}", order.order_id, n))
        .collect();
    let accepted = Accepted {
        order,
        reservations,
        work_order_ids,
        budgets: budgets
            .into_iter()
            .map(|(k, (amount, cap))| (k, amount, cap))
            .collect(),
        limits: limits
            .into_iter()
            .map(|((k, c), (count, _))| (k, c, count))
            .collect(),
    };
    Ok((accepted, overlay.into_changes()))
}

fn reserve(
    overlay: &mut Overlay<'_>,
    tenant: &str,
    id: &str,
    request: &NewReservation,
    now: Millis,
) -> Result<PlannedReservation, PlaceError> {
    let qty = request.qty;
    if let Some(session_id) = &request.presale_session_id {
        let key = (tenant.to_owned(), session_id.clone());
        let Some(session) = overlay.presale(&key) else {
            return Err(PlaceError::PresaleMismatch {
                session_id: session_id.clone(),
                reason: "does not exist".into(),
            });
        };
        if session.sku != request.sku || session.location_id != request.location_id {
            return Err(PlaceError::PresaleMismatch {
                session_id: session_id.clone(),
                reason: format!(
                    "is for `{}` at `{}`, not `{}` at `{}`",
                    session.sku, session.location_id, request.sku, request.location_id
                ),
            });
        }
        if !session.open {
            return Err(PlaceError::PresaleMismatch {
                session_id: session_id.clone(),
                reason: "is closed".into(),
            });
        }
        let available = session.released - session.sold;
        if available < qty {
            return Err(PlaceError::PresaleUnavailable {
                session_id: session_id.clone(),
                requested: qty,
                available,
            });
        }
        session.sold += qty;
        session.sold_delta += qty;
        return Ok(PlannedReservation {
            id: id.to_owned(),
            sku: request.sku.clone(),
            location_id: request.location_id.clone(),
            qty,
            presale_session_id: Some(session_id.clone()),
            lots: Vec::new(),
        });
    }

    let key = StockKey {
        tenant: tenant.to_owned(),
        sku: request.sku.clone(),
        location_id: request.location_id.clone(),
    };
    let out_of_stock = |available: i64| PlaceError::OutOfStock {
        sku: request.sku.clone(),
        location_id: request.location_id.clone(),
        requested: qty,
        available: available.max(0),
    };
    let Some(stock) = overlay.stock(&key) else {
        return Err(out_of_stock(0));
    };
    let atp = stock.on_hand - stock.reserved - stock.safety_stock;
    if atp < qty {
        return Err(out_of_stock(atp));
    }
    stock.reserved += qty;
    stock.reserved_delta += qty;
    let lot_tracked = stock.lot_tracked;

    let mut picks = Vec::new();
    if lot_tracked {
        let not_before = request.not_expiring_before.unwrap_or(now);
        let lots = overlay.lots(&key);
        let eligible: i64 = lots
            .iter()
            .filter(|l| l.expires_at >= not_before)
            .map(|l| l.on_hand - l.reserved)
            .sum();
        if eligible < qty {
            return Err(PlaceError::LotsUnavailable {
                sku: request.sku.clone(),
                location_id: request.location_id.clone(),
                not_before,
                requested: qty,
                available: eligible.max(0),
            });
        }
        let mut need = qty;
        for lot in lots.iter_mut().filter(|l| l.expires_at >= not_before) {
            if need == 0 {
                break;
            }
            let take = (lot.on_hand - lot.reserved).min(need);
            if take > 0 {
                lot.reserved += take;
                lot.reserved_delta += take;
                need -= take;
                picks.push(LotPick {
                    lot_id: lot.lot_id.clone(),
                    expires_at: lot.expires_at,
                    qty: take,
                });
            }
        }
    }
    Ok(PlannedReservation {
        id: id.to_owned(),
        sku: request.sku.clone(),
        location_id: request.location_id.clone(),
        qty,
        presale_session_id: None,
        lots: picks,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

    use super::*;
    use crate::store::types::{BudgetUse, NewLine};

    fn key(sku: &str) -> StockKey {
        StockKey {
            tenant: "t".into(),
            sku: sku.into(),
            location_id: "w".into(),
        }
    }

    fn order(id: &str, sku: &str, qty: i64) -> NewOrder {
        let mut o = NewOrder::new("t", id, "c", "CNY");
        o.lines.push(NewLine {
            line_no: 1,
            sku: sku.into(),
            qty,
            unit_price_minor: 100,
            discount_minor: 0,
        });
        o.reservations.push(NewReservation {
            sku: sku.into(),
            location_id: "w".into(),
            qty,
            presale_session_id: None,
            not_expiring_before: None,
        });
        o
    }

    fn state_with(sku: &str, on_hand: i64) -> State {
        let mut s = State::default();
        s.stock.insert(
            key(sku),
            StockRow {
                on_hand,
                reserved: 0,
                safety_stock: 0,
                lot_tracked: false,
                reserved_delta: 0,
            },
        );
        s
    }

    #[test]
    fn a_failed_order_leaves_no_trace_in_the_state() {
        let mut s = state_with("a", 5);
        s.stock.insert(
            key("b"),
            StockRow {
                on_hand: 1,
                reserved: 0,
                safety_stock: 0,
                lot_tracked: false,
                reserved_delta: 0,
            },
        );
        let mut o = order("o1", "a", 3);
        o.reservations.push(NewReservation {
            sku: "b".into(),
            location_id: "w".into(),
            qty: 2,
            presale_session_id: None,
            not_expiring_before: None,
        });
        let batch = [o];
        let out = s.decide_batch(&batch, 0);
        assert!(matches!(
            &out[0],
            Outcome::Rejected(PlaceError::OutOfStock { sku, available: 1, .. }) if sku == "b"
        ));
        assert_eq!(s.stock[&key("a")].reserved, 0);
        assert_eq!(s.stock[&key("a")].reserved_delta, 0);
    }

    #[test]
    fn orders_in_a_batch_see_each_other() {
        let mut s = state_with("a", 5);
        let orders: Vec<_> = (0..8).map(|i| order(&format!("o{i}"), "a", 1)).collect();
        let out = s.decide_batch(&orders, 0);
        let accepted = out
            .iter()
            .filter(|o| matches!(o, Outcome::Accepted(_)))
            .count();
        assert_eq!(accepted, 5);
        assert_eq!(s.stock[&key("a")].reserved_delta, 5);
    }

    #[test]
    fn fefo_skips_lots_expiring_before_the_bound() {
        let mut s = state_with("a", 10);
        s.stock.get_mut(&key("a")).unwrap().lot_tracked = true;
        s.lots.insert(
            key("a"),
            vec![
                LotRow {
                    lot_id: "early".into(),
                    expires_at: 100,
                    on_hand: 4,
                    reserved: 0,
                    reserved_delta: 0,
                },
                LotRow {
                    lot_id: "late".into(),
                    expires_at: 500,
                    on_hand: 6,
                    reserved: 0,
                    reserved_delta: 0,
                },
            ],
        );
        let mut o = order("o1", "a", 5);
        o.reservations[0].not_expiring_before = Some(200);
        let batch = [o];
        let out = s.decide_batch(&batch, 0);
        let Outcome::Accepted(a) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(a.reservations[0].lots.len(), 1);
        assert_eq!(a.reservations[0].lots[0].lot_id, "late");
        let mut o = order("o2", "a", 2);
        o.reservations[0].not_expiring_before = Some(200);
        let batch = [o];
        let out = s.decide_batch(&batch, 0);
        assert!(matches!(
            &out[0],
            Outcome::Rejected(PlaceError::LotsUnavailable { available: 1, .. })
        ));
    }

    #[test]
    fn budgets_named_twice_are_summed() {
        let mut s = state_with("a", 10);
        let mut o = order("o1", "a", 1);
        for _ in 0..2 {
            o.budgets.push(BudgetUse {
                key: "b".into(),
                amount: 60,
                cap: 100,
            });
        }
        let batch = [o];
        let out = s.decide_batch(&batch, 0);
        assert!(matches!(
            &out[0],
            Outcome::Rejected(PlaceError::BudgetExhausted { amount: 120, .. })
        ));
    }
}
