//! The checked, typed ruleset: names resolved, every expression typed, literals turned
//! into exact values. This is what the compiler lowers; it is only built when checking
//! found no error.

use crate::ast::{CompareOp, QuantifierKind};
use crate::diagnostic::FileId;
use crate::schema::{Root, Schema};
use crate::span::Span;
use crate::types::{Currency, Dimension, EntityId, EnumId, Type};

/// Fixed-point scale of `decimal`, `percent` and quantities: six fractional digits.
pub const SCALE: i64 = 1_000_000;

/// An exact constant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    Bool(bool),
    Int(i64),
    /// Millionths.
    Decimal(i64),
    /// Minor units of the ruleset currency (fen for CNY).
    Money(i64),
    /// Millionths of one: `10%` is 100_000.
    Percent(i64),
    /// Millionths of the dimension's base unit (g, ml, Wh, m, s).
    Quantity(i64, Dimension),
    String(String),
    /// Seconds since the Unix epoch.
    Time(i64),
    Enum(EnumId, u32),
    None,
    List(Vec<Value>),
    /// A fact given in a test: one slot per schema field, `None` where the test left the
    /// field out (it then takes the field's default).
    Record(EntityId, Vec<Option<Value>>),
}

pub type VarId = u32;
pub type ListId = usize;
pub type TableId = usize;
pub type VelocityId = usize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TExpr {
    pub kind: TExprKind,
    pub ty: Type,
    pub span: Span,
}

impl TExpr {
    /// The direct subexpressions, in evaluation order.
    pub fn children(&self) -> Vec<&TExpr> {
        match &self.kind {
            TExprKind::Const(_)
            | TExprKind::Root(_)
            | TExprKind::Var(_)
            | TExprKind::RuntimeList(_)
            | TExprKind::Velocity(_)
            | TExprKind::Score => Vec::new(),
            TExprKind::Field(base, _) => vec![base],
            TExprKind::ListLiteral(items) | TExprKind::TableCall(_, items) => {
                items.iter().collect()
            }
            TExprKind::Not(a) | TExprKind::Neg(a) => vec![a],
            TExprKind::Arith(_, a, b)
            | TExprKind::And(a, b)
            | TExprKind::Or(a, b)
            | TExprKind::Compare(_, a, b)
            | TExprKind::Default(a, b)
            | TExprKind::Min(a, b)
            | TExprKind::Max(a, b) => vec![a, b],
            TExprKind::In {
                element,
                collection,
                ..
            } => vec![element, collection],
            TExprKind::If(a, b, c) => vec![a, b, c],
            TExprKind::Quantifier {
                collection, filter, ..
            } => {
                let mut out: Vec<&TExpr> = vec![collection];
                out.extend(filter.as_deref());
                out
            }
            TExprKind::Sum {
                collection,
                filter,
                body,
                ..
            } => {
                let mut out: Vec<&TExpr> = vec![collection];
                out.extend(filter.as_deref());
                out.push(body);
                out
            }
        }
    }

    /// Whether this expression or any part of it failed to check.
    pub fn has_error(&self) -> bool {
        self.ty == Type::Error || self.children().into_iter().any(TExpr::has_error)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TExprKind {
    Const(Value),
    Root(Root),
    Var(VarId),
    /// `base.field`, the field by its index in the entity's schema.
    Field(Box<TExpr>, usize),
    ListLiteral(Vec<TExpr>),
    RuntimeList(ListId),
    Not(Box<TExpr>),
    Neg(Box<TExpr>),
    Arith(ArithOp, Box<TExpr>, Box<TExpr>),
    And(Box<TExpr>, Box<TExpr>),
    Or(Box<TExpr>, Box<TExpr>),
    /// Ordering and equality; never `In`/`NotIn` (see `In`).
    Compare(CompareOp, Box<TExpr>, Box<TExpr>),
    In {
        negated: bool,
        element: Box<TExpr>,
        collection: Box<TExpr>,
    },
    If(Box<TExpr>, Box<TExpr>, Box<TExpr>),
    Quantifier {
        kind: QuantifierKind,
        var: VarId,
        collection: Box<TExpr>,
        filter: Option<Box<TExpr>>,
    },
    Sum {
        var: VarId,
        collection: Box<TExpr>,
        filter: Option<Box<TExpr>>,
        body: Box<TExpr>,
    },
    /// `default(x, fallback)`
    Default(Box<TExpr>, Box<TExpr>),
    Min(Box<TExpr>, Box<TExpr>),
    Max(Box<TExpr>, Box<TExpr>),
    /// `orders(key, window)` or `customers(key, window)`: a counter the host fetches
    /// before evaluation.
    Velocity(VelocityId),
    TableCall(TableId, Vec<TExpr>),
    /// The summed risk score, inside `decide risk`.
    Score,
}

/// Where a declaration is, for coverage reports and runtime errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: FileId,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListInfo {
    pub name: String,
    pub element: Type,
    pub origin: Origin,
}

/// What a counter counts, among the earlier orders whose key equals this order's key
/// within the window (the order being evaluated is never among them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CounterKind {
    /// `orders(KEY, WINDOW)`: how many such orders.
    #[default]
    Orders,
    /// `customers(KEY, WINDOW)`: how many distinct customers (`customer.id`) placed them.
    Customers,
}

impl CounterKind {
    pub const ALL: [CounterKind; 2] = [CounterKind::Orders, CounterKind::Customers];

    /// The function name: `orders` or `customers`.
    pub fn name(self) -> &'static str {
        match self {
            CounterKind::Orders => "orders",
            CounterKind::Customers => "customers",
        }
    }

    /// The kind a function name calls, if it is a counter function.
    pub fn from_name(name: &str) -> Option<CounterKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A counter the module asks the host for: orders (or their distinct customers) keyed
/// by a fact field in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Velocity {
    pub kind: CounterKind,
    /// The key as written, e.g. `customer.device`.
    pub key_path: String,
    pub key: TExpr,
    pub window_seconds: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    Wildcard,
    Equals(Value),
    Compare(CompareOp, Value),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRow {
    pub patterns: Vec<Pattern>,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub keys: Vec<Type>,
    pub result: Type,
    pub rows: Vec<TableRow>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Money or percent of the undiscounted subtotal, optionally capped.
    DiscountOrder {
        amount: TExpr,
        cap: Option<TExpr>,
    },
    /// Per matching line; `item` is `item_var` in the filter and amount.
    DiscountItems {
        item_var: VarId,
        filter: Option<TExpr>,
        amount: TExpr,
        cap: Option<TExpr>,
    },
    Gift {
        sku: TExpr,
        qty: TExpr,
    },
    PointsMultiplier(TExpr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    pub count: i64,
    /// `order`, `day`, `week`, `month` or `campaign`.
    pub period: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    pub name: String,
    pub priority: i64,
    pub group: Option<String>,
    pub exclusive: bool,
    pub when: Option<TExpr>,
    pub actions: Vec<Action>,
    pub limit: Option<Limit>,
    /// Minor units.
    pub budget: Option<TExpr>,
    pub origin: Origin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CandidateKind {
    Warehouse,
    FrontWarehouse,
    Store,
    /// The store the buyer chose for pickup.
    Pickup,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub kind: CandidateKind,
    pub within: Option<TExpr>,
    pub when: Option<TExpr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclude {
    pub kind: Option<CandidateKind>,
    pub when: Option<TExpr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub consider: Vec<Candidate>,
    pub score: TExpr,
    pub prefer_fewer_splits: bool,
    pub excludes: Vec<Exclude>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub name: String,
    pub when: Option<TExpr>,
    /// Variants of the carrier-mode enum.
    pub forbid_modes: Vec<u32>,
    pub require_mode: Option<u32>,
    pub require_packaging: Vec<String>,
    pub block: Option<String>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Risk {
    pub name: String,
    pub when: Option<TExpr>,
    pub score: Option<TExpr>,
    pub reason: Option<String>,
    pub reject: Option<String>,
    pub review: Option<String>,
    pub origin: Origin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Review,
    Reject,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decide {
    /// Arms in order; the last has no condition (`else`).
    pub arms: Vec<(Option<TExpr>, Decision)>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    pub role: String,
    pub within_seconds: i64,
    pub instructions: Option<String>,
    pub requires: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sop {
    pub name: String,
    pub event: String,
    pub when: Option<TExpr>,
    pub steps: Vec<Step>,
    pub escalate: Option<String>,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    NoDiscount,
    NoGift,
    NoRoute,
    NoSop,
    NoBlock,
    Fired(String),
    NotFired(String),
    /// Total discount, minor units.
    Discount(i64),
    Gift {
        sku: String,
        qty: i64,
    },
    PointsMultiplier(Value),
    RiskScore(i64),
    Risk(Decision),
    Route(String),
    Blocked,
    ForbidMode(u32),
    Packaging(String),
    Mode(u32),
    Sop(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Test {
    pub name: String,
    /// Facts by root; `locations` (several route candidates) is given as `Root::Location`
    /// with a `Value::List` of records.
    pub given: Vec<(Root, Value)>,
    pub counters: Vec<(VelocityKey, i64)>,
    pub lists: Vec<(ListId, Vec<Value>)>,
    pub budget_used: Vec<(String, i64)>,
    pub limit_used: Vec<(String, i64)>,
    pub expectations: Vec<(Expectation, Span)>,
    pub origin: Origin,
}

/// How a test names a counter: its kind, the key path and the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VelocityKey {
    pub kind: CounterKind,
    pub key_path: String,
    pub window_seconds: i64,
}

/// A ruleset that passed checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    pub name: String,
    pub currency: Currency,
    pub schema: Schema,
    /// Default value of every field, by entity then field index.
    pub defaults: Vec<Vec<Value>>,
    pub lists: Vec<ListInfo>,
    pub tables: Vec<Table>,
    pub velocities: Vec<Velocity>,
    pub promotions: Vec<Promotion>,
    pub route: Option<Route>,
    pub constraints: Vec<Constraint>,
    pub risks: Vec<Risk>,
    pub decide: Option<Decide>,
    pub sops: Vec<Sop>,
    pub tests: Vec<Test>,
    /// Source file names, by `FileId`.
    pub files: Vec<String>,
    /// Quantifier variables are numbered `0..variables` across the whole ruleset.
    pub variables: u32,
}
