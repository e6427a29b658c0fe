//! The IR: per-rule expression trees over `i64`, with every representation decision
//! made explicit (fixed-point scaling, absent values, record loads). The reference
//! interpreter evaluates it directly; the code generator turns it into WebAssembly.
//! Both read facts from the same encoded input (`abi`), so the ABI is tested too.

/// Words of the input header (see docs/abi.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeaderSlot {
    Order = 1,
    Customer = 2,
    Now = 3,
    Location = 4,
    Shipment = 5,
    Carrier = 6,
    /// Packed list descriptor of the route candidates.
    Locations = 7,
    Event = 8,
    Counters = 9,
}

impl HeaderSlot {
    pub fn word(self) -> u32 {
        self as u32
    }
}

/// Arithmetic with an exact, checked meaning (see `numeric`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arith {
    /// Checked `+`.
    Add,
    /// Checked `-`.
    Sub,
    /// Checked `*` of two values one of which is unscaled (int × anything).
    Mul,
    /// `a × b ÷ 10⁶`, rounded (scaled × scaled).
    MulScaled,
    /// `a × 10⁶ ÷ b`, rounded (scaled ÷ scaled, int ÷ int → decimal).
    DivScaled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoopKind {
    Any,
    All,
    Count,
    Sum,
}

/// Why an evaluation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrapCode {
    Overflow = 1,
    DivisionByZero = 2,
    /// A table call matched no row; the payload is the table index.
    NoTableRow = 3,
    BadInput = 4,
}

/// A list element is either a record (the local holds its offset) or a scalar (the
/// local holds its value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Element {
    Record { stride: u32 },
    Scalar,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ir {
    Const(i64),
    Header(HeaderSlot),
    /// The word at `record + 8 × field`.
    Load {
        record: Box<Ir>,
        field: u32,
    },
    Local(u32),
    /// Binds `local` to `value` while evaluating `body`.
    Let {
        local: u32,
        value: Box<Ir>,
        body: Box<Ir>,
    },
    Not(Box<Ir>),
    /// Checked negation.
    Neg(Box<Ir>),
    Arith(Arith, Box<Ir>, Box<Ir>),
    /// Checked `× 10⁶`: an int where a scaled value is needed.
    Scale(Box<Ir>),
    /// Seconds from a scaled duration (rounded), for `time ± duration`.
    Unscale(Box<Ir>),
    /// A comparison; with `absent_aware`, an absent operand makes it false.
    Compare {
        op: Cmp,
        absent_aware: bool,
        left: Box<Ir>,
        right: Box<Ir>,
    },
    And(Box<Ir>, Box<Ir>),
    Or(Box<Ir>, Box<Ir>),
    If(Box<Ir>, Box<Ir>, Box<Ir>),
    /// `value in [constants]`; absent is never in (and never `not in`).
    InConsts {
        value: Box<Ir>,
        consts: Vec<i64>,
        negated: bool,
    },
    /// `value in list` for a list of scalars given by a packed descriptor.
    InList {
        value: Box<Ir>,
        list: Box<Ir>,
        negated: bool,
    },
    /// `value in runtime_list`, answered by the host.
    HostList {
        list: u32,
        value: Box<Ir>,
        negated: bool,
    },
    /// A quantifier over a list (packed descriptor): binds `local` to each element.
    Loop {
        kind: LoopKind,
        local: u32,
        list: Box<Ir>,
        element: Element,
        filter: Option<Box<Ir>>,
        /// The summand for `Sum`.
        body: Option<Box<Ir>>,
    },
    /// The value of the manifest's counter `n`.
    Counter(u32),
    /// `value` unless it is absent, else `fallback`.
    Default(Box<Ir>, Box<Ir>),
    Min(Box<Ir>, Box<Ir>),
    Max(Box<Ir>, Box<Ir>),
    Trap(TrapCode, u32),
    /// A decision table: the arguments are evaluated into `locals`, then the rows are
    /// tried in order (a flat branch chain, however many rows) and the first whose tests
    /// all hold gives its value; no match stops the hook.
    Table {
        table: u32,
        args: Vec<(u32, Ir)>,
        rows: Vec<TableRowIr>,
    },
}

/// One row of a lowered table: tests on argument locals (absent never matches) and
/// the row's value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableRowIr {
    pub tests: Vec<(u32, Cmp, i64)>,
    pub value: i64,
}

impl Ir {
    pub fn boxed(self) -> Box<Ir> {
        Box::new(self)
    }

    pub fn is_const(&self) -> bool {
        matches!(self, Ir::Const(_))
    }

    /// The direct children, in evaluation order.
    pub fn children(&self) -> Vec<&Ir> {
        match self {
            Ir::Const(_) | Ir::Header(_) | Ir::Local(_) | Ir::Counter(_) | Ir::Trap(..) => {
                Vec::new()
            }
            Ir::Load { record, .. } => vec![record],
            Ir::Let { value, body, .. } => vec![value, body],
            Ir::Not(a) | Ir::Neg(a) | Ir::Scale(a) | Ir::Unscale(a) => vec![a],
            Ir::Arith(_, a, b)
            | Ir::And(a, b)
            | Ir::Or(a, b)
            | Ir::Default(a, b)
            | Ir::Min(a, b)
            | Ir::Max(a, b) => vec![a, b],
            Ir::Compare { left, right, .. } => vec![left, right],
            Ir::If(a, b, c) => vec![a, b, c],
            Ir::InConsts { value, .. } | Ir::HostList { value, .. } => vec![value],
            Ir::InList { value, list, .. } => vec![value, list],
            Ir::Loop {
                list, filter, body, ..
            } => {
                let mut out: Vec<&Ir> = vec![list];
                out.extend(filter.as_deref());
                out.extend(body.as_deref());
                out
            }
            Ir::Table { args, .. } => args.iter().map(|(_, ir)| ir).collect(),
        }
    }

    /// Number of nodes, for size reports.
    pub fn size(&self) -> usize {
        1 + self.children().into_iter().map(Ir::size).sum::<usize>()
    }
}

/// What a promotion's action computes in the guest; how the amounts combine is fixed
/// host-side (`combine`), identically for both engines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionIr {
    /// Output: amount, cap (or ABSENT).
    DiscountOrder {
        amount: Ir,
        cap: Option<Ir>,
        percent: bool,
    },
    /// Output: cap (or ABSENT), then per order line: matched, amount.
    DiscountItems {
        line_local: u32,
        filter: Option<Ir>,
        amount: Ir,
        cap: Option<Ir>,
        percent: bool,
    },
    /// Output: sku (interned), qty.
    Gift { sku: Ir, qty: Ir },
    /// Output: multiplier (scaled).
    PointsMultiplier(Ir),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromotionIr {
    /// `None`: always eligible. `Some(Const(0))` after folding: never (dead).
    pub when: Option<Ir>,
    pub actions: Vec<ActionIr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteIr {
    /// Evaluated with `location_local` bound to each candidate's record.
    pub location_local: u32,
    pub eligible: Ir,
    pub score: Ir,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskIr {
    pub when: Option<Ir>,
    pub score: Option<Ir>,
    /// A firing reject stops evaluation.
    pub rejects: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SopIr {
    pub event: i64,
    pub when: Option<Ir>,
}

/// A ruleset lowered to IR: one section per hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub promotions: Vec<PromotionIr>,
    pub route: Option<RouteIr>,
    pub constraints: Vec<Option<Ir>>,
    pub risks: Vec<RiskIr>,
    /// Arms over the total score (bound to `score_local`); `None` is `else`.
    pub decide: Vec<Option<Ir>>,
    pub score_local: u32,
    pub sops: Vec<SopIr>,
    /// Locals used by any expression (the code generator declares this many).
    pub locals: u32,
    /// Where the hook drivers find the order lines and how big records are.
    pub order_items_field: u32,
    pub item_stride: u32,
    pub location_stride: u32,
}
