//! The manifest: everything about a compiled ruleset that is static — rule names,
//! actions whose parameters are constants, the strings the module compares with, and
//! what the host must fetch before evaluation (counters, runtime lists). It travels
//! with the module (a custom section) so a host needs nothing else to run it.

pub use weir_dsl::checked::CounterKind;
use weir_dsl::checked::{Decision, Step};

/// What a promotion's action outputs, so the host can read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionKind {
    DiscountOrder { percent: bool },
    DiscountItems { percent: bool },
    Gift,
    PointsMultiplier,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromotionMeta {
    pub name: String,
    pub priority: i64,
    pub group: Option<String>,
    pub exclusive: bool,
    /// Uses per customer, and the period they are counted in.
    pub limit: Option<(i64, String)>,
    /// Minor units.
    pub budget: Option<i64>,
    pub actions: Vec<ActionKind>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMeta {
    pub name: String,
    pub prefer_fewer_splits: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConstraintMeta {
    pub name: String,
    /// Variants of the carrier-mode enum (`ground`, `air`, `sea`, `local`).
    pub forbid_modes: Vec<u32>,
    pub require_mode: Option<u32>,
    pub require_packaging: Vec<String>,
    pub block: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskMeta {
    pub name: String,
    pub reason: Option<String>,
    pub reject: Option<String>,
    pub review: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SopMeta {
    pub name: String,
    pub event: String,
    pub steps: Vec<Step>,
    pub escalate: Option<String>,
}

/// A counter the host fetches before evaluation, over the orders placed before this one
/// whose `key_path` value equals this order's, within the last `window_seconds`:
/// `Orders` counts those orders, `Customers` the distinct `customer.id`s among them.
/// Each distinct (kind, key path, window) is one counter slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    pub kind: CounterKind,
    pub key_path: String,
    pub window_seconds: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub ruleset: String,
    pub currency: String,
    pub minor_digits: u32,
    /// Interned strings: id = index. Input strings equal to one of these get its id.
    pub strings: Vec<String>,
    /// Fields per entity, in schema order (order, item, customer, location, shipment, carrier).
    pub entity_fields: Vec<u32>,
    /// Names of the item fields, in record order (the host reads `subtotal` and `qty`
    /// of each order line to combine discounts).
    pub item_fields: Vec<String>,
    pub promotions: Vec<PromotionMeta>,
    pub route: Option<RouteMeta>,
    pub constraints: Vec<ConstraintMeta>,
    pub risks: Vec<RiskMeta>,
    pub decide: Vec<Decision>,
    pub sops: Vec<SopMeta>,
    pub velocities: Vec<Need>,
    pub lists: Vec<String>,
}

impl Manifest {
    /// The SOP named `name` (SOP names are unique in a ruleset).
    pub fn sop(&self, name: &str) -> Option<&SopMeta> {
        self.sops.iter().find(|sop| sop.name == name)
    }

    /// Whether some SOP listens to `event`.
    pub fn listens_to(&self, event: &str) -> bool {
        self.sops.iter().any(|sop| sop.event == event)
    }
}
