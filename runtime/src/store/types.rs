//! The storage layer's data types: what callers pass in and get back.
//!
//! Conventions (the same on both backends): money is `i64` minor units, quantities are
//! `i64` units, instants are `i64` milliseconds since the Unix epoch ([`Millis`]), and
//! every record belongs to one tenant (the merchant id).

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word stored in the database (and used in JSON).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The variant stored as `text`, if any.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum!(
    /// What a location is; routing rules match on it (`location.kind`).
    LocationKind {
        Warehouse => "warehouse",
        FrontWarehouse => "front_warehouse",
        Store => "store",
    }
);

word_enum!(
    /// The order state machine: placed → allocated → picking → shipped → delivered, and
    /// cancelled from any state before shipped.
    OrderState {
        Placed => "placed",
        Allocated => "allocated",
        Picking => "picking",
        Shipped => "shipped",
        Delivered => "delivered",
        Cancelled => "cancelled",
    }
);

impl OrderState {
    /// Whether `self → to` is a step of the state machine (cancellation has its own
    /// operation, [`crate::store::Store::cancel_order`]).
    pub fn can_advance_to(self, to: OrderState) -> bool {
        matches!(
            (self, to),
            (OrderState::Placed, OrderState::Allocated)
                | (OrderState::Allocated, OrderState::Picking)
                | (OrderState::Picking, OrderState::Shipped)
                | (OrderState::Shipped, OrderState::Delivered)
        )
    }

    /// States an order can still be cancelled from (goods have not left).
    pub fn cancellable(self) -> bool {
        matches!(
            self,
            OrderState::Placed | OrderState::Allocated | OrderState::Picking
        )
    }
}

word_enum!(
    /// The life of one reservation.
    ReservationStatus {
        Held => "held",
        Confirmed => "confirmed",
        Released => "released",
        Expired => "expired",
    }
);

word_enum!(
    /// Why `on_hand` moved (the movement ledger).
    MovementKind {
        Receipt => "receipt",
        Adjustment => "adjustment",
        Shipment => "shipment",
        ReturnRestock => "return_restock",
    }
);

word_enum!(
    /// A live-stream presale session.
    PresaleState {
        Open => "open",
        Closed => "closed",
    }
);

word_enum!(
    /// A return's quality check.
    ReturnState {
        Received => "received",
        QcPassed => "qc_passed",
        QcFailed => "qc_failed",
    }
);

word_enum!(
    /// An SOP work order.
    WorkOrderState {
        Open => "open",
        Done => "done",
    }
);

word_enum!(
    /// One step of an SOP work order. An escalated step can still be completed late.
    StepState {
        Pending => "pending",
        Escalated => "escalated",
        Done => "done",
    }
);

/// What a location can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub ships: bool,
    pub pickup: bool,
    pub cold_chain: bool,
    pub hazmat_certified: bool,
}

/// A warehouse, front warehouse or store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub id: String,
    pub kind: LocationKind,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub capabilities: Capabilities,
}

/// Stock of one SKU at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub sku: String,
    pub location_id: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub safety_stock: i64,
    /// Every unit is in a lot with an expiry; reservations pick lots FEFO.
    pub lot_tracked: bool,
}

impl StockLevel {
    /// `on_hand − reserved − safety_stock`, floored at 0: raising the safety stock above
    /// what is free makes nothing promisable, never a negative promise.
    pub fn available_to_promise(&self) -> i64 {
        (self.on_hand - self.reserved - self.safety_stock).max(0)
    }
}

/// A lot and its expiry, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotRef {
    pub lot_id: String,
    pub expires_at: Millis,
}

/// A lot's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    pub lot_id: String,
    pub expires_at: Millis,
    pub on_hand: i64,
    pub reserved: i64,
}

/// Goods in. A lot-tracked SKU (one whose first receipt at the location had a lot)
/// needs a lot on every receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub sku: String,
    pub location_id: String,
    pub qty: i64,
    pub lot: Option<LotRef>,
    /// The receiving document (ASN, transfer id …), kept in the ledger.
    pub reference: String,
}

/// A stock count correction. It cannot take `on_hand` below what is reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    pub sku: String,
    pub location_id: String,
    pub delta: i64,
    /// Required for a lot-tracked SKU.
    pub lot_id: Option<String>,
    pub reason: String,
}

/// One ledger row: a change of `on_hand`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movement {
    pub seq: i64,
    pub sku: String,
    pub location_id: String,
    pub lot_id: Option<String>,
    pub kind: MovementKind,
    pub on_hand_delta: i64,
    pub reference: String,
    pub reason: String,
    pub at: Millis,
}

/// Units of one lot picked for a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotPick {
    pub lot_id: String,
    pub expires_at: Millis,
    pub qty: i64,
}

/// A reservation (an order's, or a standalone hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub id: String,
    pub order_id: Option<String>,
    pub sku: String,
    pub location_id: String,
    pub qty: i64,
    pub status: ReservationStatus,
    pub presale_session_id: Option<String>,
    pub expires_at: Option<Millis>,
    /// FEFO picks, for lot-tracked SKUs.
    pub lots: Vec<LotPick>,
    pub created_at: Millis,
}

/// A standalone hold (a cart, a store clerk's hold), not tied to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewHold {
    pub id: String,
    pub sku: String,
    pub location_id: String,
    pub qty: i64,
    pub expires_at: Option<Millis>,
    pub not_expiring_before: Option<Millis>,
}

/// One release wave of a presale session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewWave {
    pub release_at: Millis,
    pub qty: i64,
}

/// Lock units of a SKU at a location for a live-stream session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPresale {
    pub session_id: String,
    pub sku: String,
    pub location_id: String,
    /// Units locked now; must equal the sum of the waves.
    pub qty: i64,
    pub waves: Vec<NewWave>,
    /// When unsold units go back to stock (by [`crate::store::Store::presale_tick`]).
    pub ends_at: Millis,
}

/// A wave and whether it has been released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    pub wave_no: i64,
    pub release_at: Millis,
    pub qty: i64,
    pub released: bool,
}

/// A presale session: `locked ≥ released ≥ sold`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresaleSession {
    pub session_id: String,
    pub sku: String,
    pub location_id: String,
    pub locked: i64,
    pub released: i64,
    pub sold: i64,
    pub ends_at: Millis,
    pub state: PresaleState,
    pub waves: Vec<Wave>,
}

/// What one presale sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresaleTick {
    /// (tenant, session id, wave number, units).
    pub released_waves: Vec<(String, String, i64, i64)>,
    /// (tenant, session id, unsold units returned to stock).
    pub ended_sessions: Vec<(String, String, i64)>,
}

/// Same key + same hash → the stored result; same key + another hash → an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLine {
    pub line_no: i64,
    pub sku: String,
    pub qty: i64,
    pub unit_price_minor: i64,
    pub discount_minor: i64,
}

/// A reservation made with the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReservation {
    pub sku: String,
    pub location_id: String,
    pub qty: i64,
    /// Draw from this presale session's released units instead of free stock.
    pub presale_session_id: Option<String>,
    /// FEFO picks only lots expiring at or after this instant (the promised delivery).
    /// Without it, lots already expired at placement are never picked.
    pub not_expiring_before: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentLine {
    pub line_no: i64,
    pub qty: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewShipment {
    pub location_id: String,
    /// The carrier mode the rules chose (`ground`, `air`, `cold_chain` …).
    pub carrier_mode: String,
    pub packaging: Vec<String>,
    pub lines: Vec<ShipmentLine>,
}

/// Why the order looks the way it does: enough to answer "why this location" and to
/// replay the evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Content hash of the ruleset version that decided.
    pub ruleset_hash: String,
    /// Result per hook (`{"pricing": …, "routing": …}`).
    pub hooks: serde_json::Value,
    pub fired_rules: Vec<String>,
    pub facts_digest: String,
    /// The full facts, when the caller wants exact replay without the digest's source.
    pub facts: Option<serde_json::Value>,
}

/// A decision record as an order carries it to the store: its JSON rendered to text
/// by the order's own task, so the store's order writer — one per database on SQLite,
/// the pipeline's serial step — binds text instead of serialising documents. The facts
/// document is rendered once, for both its digest and its stored copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDecision {
    ruleset_hash: String,
    hooks: String,
    fired_rules: String,
    facts_digest: String,
    facts: Option<String>,
}

impl NewDecision {
    /// The record of a decision over `facts`; its digest is the hex SHA-256 of the
    /// facts' JSON text.
    pub fn render(
        ruleset_hash: &str,
        hooks: &serde_json::Value,
        fired_rules: &[String],
        facts: &serde_json::Value,
    ) -> NewDecision {
        let facts = facts.to_string();
        NewDecision {
            ruleset_hash: ruleset_hash.to_owned(),
            hooks: hooks.to_string(),
            // A list of strings always serialises.
            fired_rules: serde_json::to_string(fired_rules).unwrap_or_default(),
            facts_digest: crate::digest::sha256_hex(facts.as_bytes()),
            facts: Some(facts),
        }
    }

    pub fn ruleset_hash(&self) -> &str {
        &self.ruleset_hash
    }

    /// JSON text of the hooks' results.
    pub fn hooks(&self) -> &str {
        &self.hooks
    }

    /// JSON text: an array of rule names.
    pub fn fired_rules(&self) -> &str {
        &self.fired_rules
    }

    pub fn facts_digest(&self) -> &str {
        &self.facts_digest
    }

    /// JSON text of the facts document, if kept.
    pub fn facts(&self) -> Option<&str> {
        self.facts.as_deref()
    }
}

/// Consume `amount` of a budget whose cap is `cap` (the rule's), or fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUse {
    pub key: String,
    pub amount: i64,
    pub cap: i64,
}

/// Use `count` of a per-customer limit of `max`. The key carries the period
/// (`spend_299_save_50:2026-11-29`): the caller computes it from the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitUse {
    pub key: String,
    pub customer_id: String,
    pub count: i64,
    pub max: i64,
}

/// A velocity counter: `kind` is `customer`, `device`, `phone`, `address` …
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VelocityKey {
    pub kind: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewStep {
    pub name: String,
    pub role: String,
    /// What completing the step must attach (`photo`, `signature` …), if anything.
    pub evidence: Option<String>,
    pub deadline_at: Option<Millis>,
}

/// An SOP work order. Within [`NewOrder`] the id is ignored and set to
/// `{order_id}/wo{n}` (n from 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewWorkOrder {
    pub id: String,
    pub order_id: Option<String>,
    /// Where it is done: a shipment's location, a return's receiving location, or
    /// `None` for the order's own events.
    pub location_id: Option<String>,
    pub sop_name: String,
    pub steps: Vec<NewStep>,
}

/// An outbox event written in the same transaction as its change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub payload: serde_json::Value,
}

/// Everything one order writes, committed as one unit or not at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOrder {
    pub tenant: String,
    pub order_id: String,
    pub idempotency: Option<Idempotency>,
    pub customer_id: String,
    pub channel: String,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub total_minor: i64,
    /// Why the order waits for a human before it is fulfilled (`risk_review`), or
    /// `None` (docs/orders.md, "Review holds").
    pub hold_reason: Option<String>,
    pub lines: Vec<NewLine>,
    pub reservations: Vec<NewReservation>,
    /// Held reservations expire then (an unpaid order); the sweeper cancels the order.
    /// Moving the order to `allocated` clears it.
    pub reservation_expires_at: Option<Millis>,
    pub shipments: Vec<NewShipment>,
    pub decision: Option<NewDecision>,
    pub budgets: Vec<BudgetUse>,
    pub limits: Vec<LimitUse>,
    pub velocity: Vec<VelocityKey>,
    pub work_orders: Vec<NewWorkOrder>,
    pub events: Vec<NewEvent>,
}

impl NewOrder {
    /// An order with no lines, reservations or side effects yet.
    pub fn new(tenant: &str, order_id: &str, customer_id: &str, currency: &str) -> Self {
        NewOrder {
            tenant: tenant.to_owned(),
            order_id: order_id.to_owned(),
            idempotency: None,
            customer_id: customer_id.to_owned(),
            channel: String::new(),
            currency: currency.to_owned(),
            subtotal_minor: 0,
            discount_minor: 0,
            total_minor: 0,
            hold_reason: None,
            lines: Vec::new(),
            reservations: Vec::new(),
            reservation_expires_at: None,
            shipments: Vec::new(),
            decision: None,
            budgets: Vec::new(),
            limits: Vec::new(),
            velocity: Vec::new(),
            work_orders: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// What `place_order` committed (or, with `replayed`, had committed before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedOrder {
    pub order_id: String,
    pub state: OrderState,
    /// Held for a human before fulfilment (`risk_review`), or `None`.
    pub hold_reason: Option<String>,
    pub created_at: Millis,
    /// The result of an earlier request with the same idempotency key.
    pub replayed: bool,
    pub reservations: Vec<Reservation>,
    pub work_order_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub line_no: i64,
    pub sku: String,
    pub qty: i64,
    pub unit_price_minor: i64,
    pub discount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub shipment_no: i64,
    pub location_id: String,
    pub carrier_mode: String,
    pub packaging: Vec<String>,
    pub lines: Vec<ShipmentLine>,
}

/// An order's budget consumption, and whether a cancellation gave it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetConsumption {
    pub key: String,
    pub amount: i64,
    pub compensated: bool,
}

/// The order header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order_id: String,
    pub customer_id: String,
    pub channel: String,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub total_minor: i64,
    pub state: OrderState,
    pub cancel_reason: Option<String>,
    /// Held for a human before fulfilment (`risk_review`), or `None`.
    pub hold_reason: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// An order with everything written with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    pub summary: OrderSummary,
    pub lines: Vec<OrderLine>,
    pub reservations: Vec<Reservation>,
    pub shipments: Vec<Shipment>,
    pub decision: Option<DecisionRecord>,
    pub budgets: Vec<BudgetConsumption>,
    pub work_orders: Vec<WorkOrder>,
}

/// Filters for [`crate::store::Store::list_orders`]; results are ordered by
/// `(created_at, order_id)`, and `after` continues after a previous page's last row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFilter {
    pub state: Option<OrderState>,
    /// Only orders held (`true`) or not held (`false`) for review.
    pub on_hold: Option<bool>,
    pub customer_id: Option<String>,
    pub channel: Option<String>,
    pub created_from: Option<Millis>,
    pub created_before: Option<Millis>,
    pub after: Option<(Millis, String)>,
    /// At most 1,000; 0 means 100.
    pub limit: u32,
}

/// What a cancellation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOutcome {
    pub order_id: String,
    /// It was cancelled before: nothing changed, no event written.
    pub already_cancelled: bool,
    pub released_reservations: Vec<String>,
    pub event_id: Option<String>,
    /// The work orders the cancellation opened (SOPs on `order.cancelled`).
    pub work_order_ids: Vec<String>,
}

/// An order whose SOPs on `event` are still to be opened: the store recorded the event
/// without the rules (a sweep's cancellation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSops {
    pub tenant: String,
    pub order_id: String,
    pub event: String,
}

/// Which work orders [`crate::store::Store::list_work_orders`] returns: those of one
/// order, else those of one location, else all; in `state` (without an order, `open`
/// unless given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkOrderFilter {
    pub order_id: Option<String>,
    pub location_id: Option<String>,
    pub state: Option<WorkOrderState>,
}

/// What releasing an order from its hold did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    pub order_id: String,
    /// False when the order was not on hold: nothing was written.
    pub released: bool,
    /// The hold it was released from.
    pub hold_reason: Option<String>,
    pub state: OrderState,
}

/// What a step of an order's fulfilment did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advanced {
    /// The order's state now.
    pub state: OrderState,
    /// False when the order was already in that state: nothing was written.
    pub changed: bool,
    /// The work orders the step opened (SOPs on `shipment.shipped` …).
    pub work_order_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLine {
    pub line_no: i64,
    pub qty: i64,
}

/// Goods handed back at any location of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReturn {
    pub return_id: String,
    pub order_id: String,
    pub receiving_location_id: String,
    pub lines: Vec<ReturnLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnRecord {
    pub return_id: String,
    pub order_id: String,
    pub receiving_location_id: String,
    pub state: ReturnState,
    /// (line number, sku, qty).
    pub lines: Vec<(i64, String, i64)>,
    pub created_at: Millis,
    pub qc_at: Option<Millis>,
}

/// A named list of strings that rules read at run time (`in list blocked_phones`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeList {
    pub name: String,
    /// Starts at 1 and grows by one with every change.
    pub version: i64,
    /// Sorted, without duplicates.
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkOrderStep {
    pub step_no: i64,
    pub name: String,
    pub role: String,
    pub evidence: Option<String>,
    pub deadline_at: Option<Millis>,
    pub state: StepState,
    pub completed_at: Option<Millis>,
    pub completed_by: Option<String>,
    pub evidence_ref: Option<String>,
    pub escalated_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkOrder {
    pub id: String,
    pub order_id: Option<String>,
    /// Where it is done (see [`NewWorkOrder::location_id`]).
    pub location_id: Option<String>,
    pub sop_name: String,
    pub state: WorkOrderState,
    pub steps: Vec<WorkOrderStep>,
    pub created_at: Millis,
}

/// Completing a step: who did it and, when the step asks for it, the evidence
/// (a photo's storage reference …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCompletion {
    pub by: String,
    pub evidence_ref: Option<String>,
}

/// A step whose deadline passed, as the escalation sweep found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalatedStep {
    pub tenant: String,
    pub work_order_id: String,
    pub step_no: i64,
    pub role: String,
    pub deadline_at: Millis,
    pub event_id: String,
}

/// An outbox row (Debezium's outbox columns plus tenant and sequence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// Commit-independent insertion order; the publisher reads in this order.
    pub seq: i64,
    /// Unique event id (UUID v7); the JetStream `Nats-Msg-Id`.
    pub id: String,
    pub tenant: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    /// JSON text.
    pub payload: String,
    pub created_at: Millis,
    pub published_at: Option<Millis>,
}

/// A ruleset version to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRulesetVersion {
    pub name: String,
    pub content_hash: String,
    /// The files as the server received them (`{"rules.weir": "…"}`).
    pub files: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesetVersion {
    pub name: String,
    pub content_hash: String,
    pub files: serde_json::Value,
    pub created_at: Millis,
    pub active: bool,
}

/// What the reservation sweeper released.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpirySweep {
    /// (tenant, reservation id) of standalone holds released.
    pub released_holds: Vec<(String, String)>,
    /// (tenant, order id) of orders cancelled because their hold expired.
    pub cancelled_orders: Vec<(String, String)>,
}

/// A merchant: every other record belongs to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
}

/// An API key to keep: the secret is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub id: String,
    /// Hex SHA-256 of the secret.
    pub key_hash: String,
    pub label: String,
    /// Any of `orders`, `rules`, `admin`.
    pub scopes: Vec<String>,
}

/// A stored API key (without its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub tenant: String,
    pub label: String,
    pub scopes: Vec<String>,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// Budget and limit use found by [`crate::store::Store::order_reads`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usages {
    /// Budget key → amount used.
    pub budgets: std::collections::HashMap<String, i64>,
    /// Limit key → the customer's uses.
    pub limits: std::collections::HashMap<String, i64>,
}

/// What the order pipeline reads for one order besides reference data
/// ([`crate::store::Store::order_reads`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderReads {
    /// Stock rows of these SKUs at every location.
    pub skus: Vec<String>,
    /// Velocity counters, each over its own window.
    pub velocity: Vec<VelocityRead>,
    /// Budgets whose use so far is wanted.
    pub budget_keys: Vec<String>,
    /// Per-customer limits whose use so far by `customer_id` is wanted.
    pub limit_keys: Vec<String>,
    pub customer_id: String,
    /// An idempotency key to look up among the tenant's orders: a retry is answered
    /// from the order it placed, found in the same round as the other reads.
    pub idempotency_key: Option<String>,
}

/// One velocity counter to read: events under `key` in the last `window_ms`, or the
/// distinct customers behind them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VelocityRead {
    pub key: VelocityKey,
    pub window_ms: i64,
    pub distinct_customers: bool,
}

/// The answers to [`OrderReads`], in its order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderReadings {
    pub stock: Vec<StockLevel>,
    /// One count per [`OrderReads::velocity`] entry.
    pub velocity: Vec<i64>,
    pub usages: Usages,
    /// The order already placed with [`OrderReads::idempotency_key`]: its id and request
    /// hash (as [`crate::store::Store::order_by_idempotency_key`] answers).
    pub earlier: Option<(String, String)>,
}
