//! The syntax tree of one rule file, with spans. It is what the parser produces and what
//! the formatter prints; names are not resolved and nothing is typed yet.

use crate::span::Span;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A parsed file: its header (if any), its items in source order, and its comments
/// (kept for the formatter).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SourceFile {
    pub items: Vec<Item>,
    pub comments: Vec<Comment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The text after `//`, without the line break.
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub kind: ItemKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    Header(Header),
    Attribute(Attribute),
    List(ListDecl),
    Promotion(Promotion),
    Route(Route),
    Constraint(Constraint),
    Risk(Risk),
    Decide(Decide),
    Table(Table),
    Sop(Sop),
    Test(Test),
}

impl ItemKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            ItemKind::Header(_) => "ruleset",
            ItemKind::Attribute(_) => "attribute",
            ItemKind::List(_) => "list",
            ItemKind::Promotion(_) => "promotion",
            ItemKind::Route(_) => "route",
            ItemKind::Constraint(_) => "constraint",
            ItemKind::Risk(_) => "risk",
            ItemKind::Decide(_) => "decide",
            ItemKind::Table(_) => "table",
            ItemKind::Sop(_) => "sop",
            ItemKind::Test(_) => "test",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: Ident,
    pub currency: Ident,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub entity: Ident,
    pub field: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListDecl {
    pub name: Ident,
    pub ty: TypeExpr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeExprKind {
    Named(Ident),
    Enum(Vec<Ident>),
    List(Box<TypeExpr>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeExpr {
    pub kind: TypeExprKind,
    pub span: Span,
}

/// A clause of a rule body. Rules are a name plus a list of clauses; which clauses a rule
/// kind accepts is fixed by the grammar, how many of each by the checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause<K> {
    pub kind: K,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    pub name: Ident,
    pub clauses: Vec<Clause<PromotionClause>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromotionClause {
    Priority(i64),
    Group { name: Ident, exclusive: bool },
    When(Expr),
    Then(Action),
    Limit { count: i64, period: Option<Ident> },
    Budget(Expr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `discount order AMOUNT [max CAP]`: money or percent of the subtotal.
    DiscountOrder { amount: Expr, cap: Option<Expr> },
    /// `discount items [where P] by AMOUNT [max CAP]`: per matching line.
    DiscountItems {
        filter: Option<Expr>,
        amount: Expr,
        cap: Option<Expr>,
    },
    /// `gift SKU [qty N]`.
    Gift { sku: Expr, qty: Option<Expr> },
    /// `points multiplier N`.
    PointsMultiplier(Expr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub name: Ident,
    pub clauses: Vec<Clause<RouteClause>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteClause {
    Consider(Vec<Candidate>),
    Score(Expr),
    PreferFewerSplits,
    Exclude {
        kind: Option<Ident>,
        condition: Option<Expr>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub kind: Ident,
    pub within: Option<Expr>,
    pub condition: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constraint {
    pub name: Ident,
    pub clauses: Vec<Clause<ConstraintClause>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConstraintClause {
    When(Expr),
    ForbidMode(Vec<Ident>),
    RequireMode(Ident),
    RequirePackaging(StringLit),
    Block(StringLit),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringLit {
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Risk {
    pub name: Ident,
    pub clauses: Vec<Clause<RiskClause>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RiskClause {
    When(Expr),
    Score {
        points: Expr,
        reason: Option<StringLit>,
    },
    Reject(StringLit),
    Review(StringLit),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decide {
    pub target: Ident,
    pub arms: Vec<DecideArm>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecideArm {
    /// `None` for the `else` arm.
    pub condition: Option<Expr>,
    pub outcome: Ident,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub name: Ident,
    /// The key columns, written as the fact expressions whose types they take.
    pub keys: Vec<Expr>,
    pub result: TypeExpr,
    pub rows: Vec<TableRow>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRow {
    pub patterns: Vec<Pattern>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternKind {
    Wildcard,
    /// A literal or an enum variant, matched with `==`.
    Equals(Expr),
    /// `>= ¥100` and friends.
    Compare(CompareOp, Expr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub kind: PatternKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sop {
    pub name: Ident,
    pub clauses: Vec<Clause<SopClause>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SopClause {
    Trigger {
        event: Ident,
        condition: Option<Expr>,
    },
    Step(Step),
    OnTimeoutEscalate(Ident),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: Ident,
    pub role: Ident,
    pub within: Expr,
    pub instructions: Option<StringLit>,
    pub requires: Vec<Ident>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Test {
    pub name: StringLit,
    pub clauses: Vec<Clause<TestClause>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestClause {
    Given(Value),
    /// `counter orders(customer.device, 1 h) = 6`, `counter customers(order.address, 30 d) = 4`
    Counter {
        call: Expr,
        value: Value,
    },
    /// `list blocked_devices = ["d-1"]`
    List {
        name: Ident,
        items: Value,
    },
    /// `used budget spend_299 = ¥199000`, `used limit spend_299 = 1`
    Used {
        kind: UsedKind,
        rule: Ident,
        value: Value,
    },
    Expect(Expectation),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsedKind {
    Budget,
    Limit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expectation {
    NoDiscount,
    NoGift,
    NoRoute,
    NoSop,
    NoBlock,
    Fired(Ident),
    NotFired(Ident),
    Discount(Expr),
    Gift { sku: StringLit, qty: Option<Expr> },
    PointsMultiplier(Expr),
    RiskScore(Expr),
    Risk(Ident),
    Route(StringLit),
    Blocked,
    ForbidMode(Ident),
    Packaging(StringLit),
    Mode(Ident),
    Sop(Ident),
}

/// A fact value in a test's `given` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Object(Vec<(Ident, Value)>),
    Array(Vec<Value>),
    Literal(Literal),
    /// A bare enum variant such as `gold`.
    Variant(Ident),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    Literal(Literal),
    /// A bare name: a fact root (`order`), a variable, a list, an enum variant.
    Name(Ident),
    /// `base.field`
    Field(Box<Expr>, Ident),
    List(Vec<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Compare(CompareOp, Box<Expr>, Box<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    Quantifier {
        kind: QuantifierKind,
        var: Ident,
        collection: Box<Expr>,
        filter: Option<Box<Expr>>,
    },
    Sum {
        body: Box<Expr>,
        var: Ident,
        collection: Box<Expr>,
        filter: Option<Box<Expr>>,
    },
    Call(Ident, Vec<Expr>),
    /// `( e )`: kept so the formatter can reproduce the author's grouping.
    Paren(Box<Expr>),
    /// Placeholder for an expression that failed to build; a diagnostic was reported.
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    And,
    Or,
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::In => "in",
            CompareOp::NotIn => "not in",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantifierKind {
    Any,
    All,
    Count,
}

impl QuantifierKind {
    pub fn keyword(self) -> &'static str {
        match self {
            QuantifierKind::Any => "any",
            QuantifierKind::All => "all",
            QuantifierKind::Count => "count",
        }
    }
}

/// Literals keep their source spelling (`¥12.50` stays `¥12.50`, `200_000` stays
/// `200_000`); the checker turns them into exact values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Literal {
    Bool(bool),
    None,
    /// Digits as written (underscores kept), with or without a decimal point.
    Number(String),
    /// Currency symbol and amount digits as written.
    Money {
        symbol: String,
        amount: String,
    },
    Percent(String),
    Quantity {
        amount: String,
        unit: Unit,
    },
    String(String),
    /// RFC 3339 text as written.
    DateTime(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Gram,
    Kilogram,
    Millilitre,
    Litre,
    WattHour,
    KilowattHour,
    Metre,
    Kilometre,
    Second,
    Minute,
    Hour,
    Day,
}

impl Unit {
    pub const ALL: &'static [Unit] = &[
        Unit::Gram,
        Unit::Kilogram,
        Unit::Millilitre,
        Unit::Litre,
        Unit::WattHour,
        Unit::KilowattHour,
        Unit::Metre,
        Unit::Kilometre,
        Unit::Second,
        Unit::Minute,
        Unit::Hour,
        Unit::Day,
    ];

    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Gram => "g",
            Unit::Kilogram => "kg",
            Unit::Millilitre => "ml",
            Unit::Litre => "l",
            Unit::WattHour => "Wh",
            Unit::KilowattHour => "kWh",
            Unit::Metre => "m",
            Unit::Kilometre => "km",
            Unit::Second => "s",
            Unit::Minute => "min",
            Unit::Hour => "h",
            Unit::Day => "d",
        }
    }

    pub fn from_symbol(symbol: &str) -> Option<Unit> {
        Unit::ALL
            .iter()
            .copied()
            .find(|unit| unit.symbol() == symbol)
    }
}
