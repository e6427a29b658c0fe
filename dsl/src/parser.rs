//! Text → AST. `prescan` splits the file into items; pest parses each item on its own;
//! the builders here turn pest's pairs into the AST of `ast.rs`.

use crate::ast::*;
use crate::diagnostic::{Code, Diagnostic};
use crate::prescan::{prescan, trim_trailing_trivia, ItemChunk, ITEM_KEYWORDS};
use crate::span::Span;
use pest::iterators::{Pair, Pairs};
use pest::Parser as _;
use std::iter::Peekable;

#[derive(pest_derive::Parser)]
#[grammar = "weir.pest"]
struct WeirParser;

/// Largest file the front end accepts.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Deepest expression tree (operators nested in operators) the parser builds.
pub const MAX_EXPR_DEPTH: usize = 256;

/// Parses one file. Always returns a (possibly partial) AST: items that fail to parse
/// are left out and reported.
pub fn parse_file(text: &str) -> (SourceFile, Vec<Diagnostic>) {
    if text.len() > MAX_FILE_BYTES {
        let diagnostic = Diagnostic::new(
            Code::FileTooLarge,
            Span::new(0, 0),
            format!(
                "file is {} bytes; the limit is {} bytes (16 MiB)",
                text.len(),
                MAX_FILE_BYTES
            ),
        )
        .with_help("split the ruleset into several files in one folder");
        return (SourceFile::default(), vec![diagnostic]);
    }
    let scan = prescan(text);
    let mut builder = Builder {
        text,
        offset: 0,
        diagnostics: scan.diagnostics,
        comments: &scan.comments,
    };
    let mut items = Vec::with_capacity(scan.items.len());
    for chunk in &scan.items {
        if let Some(item) = builder.item(chunk) {
            items.push(item);
        }
    }
    let mut diagnostics = builder.diagnostics;
    diagnostics.sort_by_key(|d| (d.span.start, d.code));
    (
        SourceFile {
            items,
            comments: scan.comments,
        },
        diagnostics,
    )
}

/// Parses a single expression (used by tests and tools). Returns `None` with
/// diagnostics when the text is not exactly one expression.
pub fn parse_expr(text: &str) -> (Option<Expr>, Vec<Diagnostic>) {
    let scan = prescan(text);
    if !scan.diagnostics.is_empty() {
        return (None, scan.diagnostics);
    }
    let mut builder = Builder {
        text,
        offset: 0,
        diagnostics: Vec::new(),
        comments: &scan.comments,
    };
    match WeirParser::parse(Rule::expr, text) {
        Ok(mut pairs) => {
            let expr = pairs.next().and_then(|pair| builder.expr(pair));
            let whole = expr
                .as_ref()
                .is_some_and(|e| e.span.end as usize == text.trim_end().len());
            if whole {
                (expr, builder.diagnostics)
            } else {
                let end = expr.map_or(0, |e| e.span.end as usize);
                builder.diagnostics.push(Diagnostic::new(
                    Code::Syntax,
                    Span::new(end, text.len()),
                    "unexpected text after the expression",
                ));
                (None, builder.diagnostics)
            }
        }
        Err(_) => {
            let error = parse_with_detail(Rule::expr, text);
            builder.syntax_error(&error, text.len());
            (None, builder.diagnostics)
        }
    }
}

/// Pest's "expected tokens" detail makes messages name the keywords that could come
/// next, but tracking it makes every parse 2.5× slower. So valid text is parsed without
/// it, and only text that failed is parsed again with it. The switch is process-wide;
/// the lock makes every detailed parse see it on (a fast parse that overlaps merely
/// runs slower), so messages never depend on timing.
fn parse_with_detail(rule: Rule, text: &str) -> pest::error::Error<Rule> {
    static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = DETAIL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    pest::set_error_detail(true);
    let result = WeirParser::parse(rule, text);
    pest::set_error_detail(false);
    match result {
        Err(error) => error,
        // The same text failed a moment ago; parsing is deterministic, so this is
        // unreachable, but a clear generic error beats a panic.
        Ok(_) => pest::error::Error::new_from_pos(
            pest::error::ErrorVariant::CustomError {
                message: "syntax error".to_string(),
            },
            pest::Position::from_start(text),
        ),
    }
}

struct Builder<'t> {
    text: &'t str,
    /// The file's comments, to trim them off the end of spans.
    comments: &'t [Comment],
    /// Byte offset of the item being built within the file.
    offset: usize,
    diagnostics: Vec<Diagnostic>,
}

type P<'i> = Pair<'i, Rule>;

/// A cursor over a pair's children.
struct Kids<'i> {
    pairs: Peekable<Pairs<'i, Rule>>,
}

impl<'i> Kids<'i> {
    fn of(pair: P<'i>) -> Kids<'i> {
        Kids {
            pairs: pair.into_inner().peekable(),
        }
    }

    fn next(&mut self) -> Option<P<'i>> {
        self.pairs.next()
    }

    /// Takes the next child if it is `rule`.
    fn eat(&mut self, rule: Rule) -> Option<P<'i>> {
        if self.pairs.peek().is_some_and(|p| p.as_rule() == rule) {
            self.pairs.next()
        } else {
            None
        }
    }

    fn skip(&mut self, rule: Rule) -> bool {
        self.eat(rule).is_some()
    }

    fn rest(self) -> Peekable<Pairs<'i, Rule>> {
        self.pairs
    }
}

impl<'t> Builder<'t> {
    /// The pair's span in the file. Pest lets a rule that ends in an optional part
    /// swallow the whitespace (and comments) after it; diagnostics point at code only.
    fn span(&self, pair: &P<'_>) -> Span {
        let s = pair.as_span();
        let (start, end) = (self.offset + s.start(), self.offset + s.end());
        Span::new(
            start,
            trim_trailing_trivia(self.text, start, end, self.comments),
        )
    }

    fn ident(&self, pair: P<'_>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn item(&mut self, chunk: &ItemChunk) -> Option<Item> {
        if !chunk.parseable {
            return None;
        }
        let range = chunk.span.range();
        let text = self.text.get(range.clone())?;
        self.offset = range.start;
        match WeirParser::parse(Rule::item, text) {
            Ok(mut pairs) => {
                let pair = pairs.next()?;
                let span = self.span(&pair);
                let kind = self.item_kind(pair);
                match kind {
                    Some(kind) => Some(Item { kind, span }),
                    None => {
                        if !self
                            .diagnostics
                            .iter()
                            .any(|d| span.range().contains(&(d.span.start as usize)))
                        {
                            self.diagnostics.push(Diagnostic::new(
                                Code::Syntax,
                                span,
                                "this item could not be read",
                            ));
                        }
                        None
                    }
                }
            }
            Err(_) => {
                let error = parse_with_detail(Rule::item, text);
                self.syntax_error(&error, text.len());
                None
            }
        }
    }

    fn syntax_error(&mut self, error: &pest::error::Error<Rule>, chunk_len: usize) {
        let mut pos = match error.location {
            pest::error::InputLocation::Pos(pos) => pos,
            pest::error::InputLocation::Span((start, _)) => start,
        };
        // `ParseAttempts` and `ParsingToken` are not exported: keep what is needed.
        let attempts = error.parse_attempts().map(|a| {
            let tokens: Vec<String> = a.expected_tokens().iter().map(|t| t.to_string()).collect();
            (a.max_position, tokens)
        });
        // Pest places the error at the furthest *rule* that failed; a keyword that was
        // missing further on (`limit 1 per day`, without `customer`) is only in the
        // attempts, at their furthest position.
        if let Some((max_position, _)) = &attempts {
            if *max_position > pos && *max_position <= chunk_len {
                pos = *max_position;
            }
        }
        let start = self.offset + pos;
        let (found, found_len) = describe_found(self.text, start, self.offset + chunk_len);
        let mut help = syntax_help(self.text, start);
        let message = if error.variant.message().contains("limit reached") {
            "this item is too deeply nested to parse".to_string()
        } else if pos == 0 {
            let word: String = self
                .text
                .get(start..)
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if help.is_none() {
                help = Some(
                    match crate::diagnostic::closest(&word, ITEM_KEYWORDS.iter().copied()) {
                        Some(keyword) => format!("did you mean `{keyword}`?"),
                        None => format!("items start with {}", ITEM_KEYWORDS.join(", ")),
                    },
                );
            }
            format!("expected an item such as `promotion`, `constraint` or `risk`, found {found}")
        } else {
            match describe_expected(
                error,
                attempts.as_ref().map(|(_, tokens)| tokens.as_slice()),
                pos,
            ) {
                Some(expected) => format!("expected {expected}, found {found}"),
                None => format!("unexpected {found}"),
            }
        };
        let mut diagnostic =
            Diagnostic::new(Code::Syntax, Span::new(start, start + found_len), message);
        if let Some(help) = help {
            diagnostic = diagnostic.with_help(help);
        }
        self.diagnostics.push(diagnostic);
    }

    fn item_kind(&mut self, pair: P<'_>) -> Option<ItemKind> {
        Some(match pair.as_rule() {
            Rule::header => {
                let mut kids = Kids::of(pair);
                ItemKind::Header(Header {
                    name: self.ident(kids.next()?),
                    currency: self.ident(kids.next()?),
                })
            }
            Rule::attribute => {
                let mut kids = Kids::of(pair);
                let entity = self.ident(kids.next()?);
                let field = self.ident(kids.next()?);
                let ty = self.type_expr(kids.next()?)?;
                let default = match kids.next() {
                    Some(p) => Some(self.expr(p)?),
                    None => None,
                };
                ItemKind::Attribute(Attribute {
                    entity,
                    field,
                    ty,
                    default,
                })
            }
            Rule::list_decl => {
                let mut kids = Kids::of(pair);
                ItemKind::List(ListDecl {
                    name: self.ident(kids.next()?),
                    ty: self.type_expr(kids.next()?)?,
                })
            }
            Rule::promotion => self.promotion(pair)?,
            Rule::route => self.route(pair)?,
            Rule::constraint => self.constraint(pair)?,
            Rule::risk => self.risk(pair)?,
            Rule::decide => self.decide(pair)?,
            Rule::table => self.table(pair)?,
            Rule::sop => self.sop(pair)?,
            Rule::test => self.test(pair)?,
            _ => return None,
        })
    }

    fn type_expr(&mut self, pair: P<'_>) -> Option<TypeExpr> {
        let span = self.span(&pair);
        let inner = pair.into_inner().next()?;
        let kind = match inner.as_rule() {
            Rule::enum_type => {
                TypeExprKind::Enum(inner.into_inner().map(|p| self.ident(p)).collect())
            }
            Rule::list_type => {
                TypeExprKind::List(Box::new(self.type_expr(inner.into_inner().next()?)?))
            }
            _ => TypeExprKind::Named(self.ident(inner)),
        };
        Some(TypeExpr { kind, span })
    }

    fn promotion(&mut self, pair: P<'_>) -> Option<ItemKind> {
        let mut kids = Kids::of(pair);
        let name = self.ident(kids.next()?);
        let mut clauses = Vec::new();
        for clause in kids.rest() {
            let span = self.span(&clause);
            let kind = match clause.as_rule() {
                Rule::priority => PromotionClause::Priority(self.int(clause.into_inner().next()?)?),
                Rule::group => {
                    let mut kids = Kids::of(clause);
                    let name = self.ident(kids.next()?);
                    PromotionClause::Group {
                        name,
                        exclusive: kids.skip(Rule::exclusive),
                    }
                }
                Rule::when_clause => PromotionClause::When(self.when(clause)?),
                Rule::then_clause => {
                    let mut kids = Kids::of(clause);
                    kids.skip(Rule::k_then);
                    PromotionClause::Then(self.action(kids.next()?)?)
                }
                Rule::limit => {
                    let mut kids = Kids::of(clause);
                    let count = self.int(kids.next()?)?;
                    let period = kids.next().map(|p| self.ident(p));
                    PromotionClause::Limit { count, period }
                }
                Rule::budget => PromotionClause::Budget(self.expr(clause.into_inner().next()?)?),
                _ => return None,
            };
            clauses.push(Clause { kind, span });
        }
        Some(ItemKind::Promotion(Promotion { name, clauses }))
    }

    fn when(&mut self, clause: P<'_>) -> Option<Expr> {
        let mut kids = Kids::of(clause);
        kids.skip(Rule::k_when);
        self.expr(kids.next()?)
    }

    fn action(&mut self, pair: P<'_>) -> Option<Action> {
        let rule = pair.as_rule();
        let mut kids = Kids::of(pair);
        Some(match rule {
            Rule::discount_order => {
                let amount = self.expr(kids.next()?)?;
                let cap = self.cap(&mut kids)?;
                Action::DiscountOrder { amount, cap }
            }
            Rule::discount_items => {
                let filter = if kids.skip(Rule::k_where) {
                    Some(self.expr(kids.next()?)?)
                } else {
                    None
                };
                let amount = self.expr(kids.next()?)?;
                let cap = self.cap(&mut kids)?;
                Action::DiscountItems {
                    filter,
                    amount,
                    cap,
                }
            }
            Rule::gift => {
                let sku = self.expr(kids.next()?)?;
                let qty = match kids.next() {
                    Some(p) => Some(self.expr(p)?),
                    None => None,
                };
                Action::Gift { sku, qty }
            }
            Rule::points => Action::PointsMultiplier(self.expr(kids.next()?)?),
            _ => return None,
        })
    }

    /// `Some(None)` when there is no cap, `None` when the cap failed to build.
    fn cap(&mut self, kids: &mut Kids<'_>) -> Option<Option<Expr>> {
        match kids.eat(Rule::cap) {
            Some(cap) => Some(Some(self.expr(cap.into_inner().next()?)?)),
            None => Some(None),
        }
    }

    fn route(&mut self, pair: P<'_>) -> Option<ItemKind> {
        let mut kids = Kids::of(pair);
        let name = self.ident(kids.next()?);
        let mut clauses = Vec::new();
        for clause in kids.rest() {
            let span = self.span(&clause);
            let kind = match clause.as_rule() {
                Rule::consider => {
                    let mut candidates = Vec::new();
                    for candidate in clause.into_inner() {
                        let span = self.span(&candidate);
                        let mut kids = Kids::of(candidate);
                        let kind = self.ident(kids.next()?);
                        let within = match kids.eat(Rule::within) {
                            Some(w) => Some(self.expr(w.into_inner().next()?)?),
                            None => None,
                        };
                        let condition = if kids.skip(Rule::k_when) {
                            Some(self.expr(kids.next()?)?)
                        } else {
                            None
                        };
                        candidates.push(Candidate {
                            kind,
                            within,
                            condition,
                            span,
                        });
                    }
                    RouteClause::Consider(candidates)
                }
                Rule::route_score => RouteClause::Score(self.expr(clause.into_inner().next()?)?),
                Rule::prefer => RouteClause::PreferFewerSplits,
                Rule::exclude => {
                    let mut kids = Kids::of(clause);
                    let kind = kids.eat(Rule::ident).map(|p| self.ident(p));
                    let condition = if kids.skip(Rule::k_when) {
                        Some(self.expr(kids.next()?)?)
                    } else {
                        None
                    };
                    RouteClause::Exclude { kind, condition }
                }
                _ => return None,
            };
            clauses.push(Clause { kind, span });
        }
        Some(ItemKind::Route(Route { name, clauses }))
    }

    fn string_lit(&mut self, pair: P<'_>) -> Option<StringLit> {
        let span = self.span(&pair);
        let inner = pair.into_inner().next()?;
        let inner_start = self.span(&inner).start as usize;
        Some(StringLit {
            value: self.unescape(inner.as_str(), inner_start),
            span,
        })
    }

    fn constraint(&mut self, pair: P<'_>) -> Option<ItemKind> {
        let mut kids = Kids::of(pair);
        let name = self.ident(kids.next()?);
        let mut clauses = Vec::new();
        for clause in kids.rest() {
            let span = self.span(&clause);
            let kind = match clause.as_rule() {
                Rule::when_clause => ConstraintClause::When(self.when(clause)?),
                Rule::forbid_mode => ConstraintClause::ForbidMode(
                    clause.into_inner().map(|p| self.ident(p)).collect(),
                ),
                Rule::require_mode => {
                    ConstraintClause::RequireMode(self.ident(clause.into_inner().next()?))
                }
                Rule::require_packaging => ConstraintClause::RequirePackaging(
                    self.string_lit(clause.into_inner().next()?)?,
                ),
                Rule::block => {
                    ConstraintClause::Block(self.string_lit(clause.into_inner().next()?)?)
                }
                _ => return None,
            };
            clauses.push(Clause { kind, span });
        }
        Some(ItemKind::Constraint(Constraint { name, clauses }))
    }

    fn risk(&mut self, pair: P<'_>) -> Option<ItemKind> {
        let mut kids = Kids::of(pair);
        let name = self.ident(kids.next()?);
        let mut clauses = Vec::new();
        for clause in kids.rest() {
            let span = self.span(&clause);
            let kind = match clause.as_rule() {
                Rule::when_clause => RiskClause::When(self.when(clause)?),
                Rule::risk_score => {
                    let mut kids = Kids::of(clause);
                    let points = self.expr(kids.next()?)?;
                    let reason = match kids.next() {
                        Some(p) => Some(self.string_lit(p)?),
                        None => None,
                    };
                    RiskClause::Score { points, reason }
                }
                Rule::reject => RiskClause::Reject(self.string_lit(clause.into_inner().next()?)?),
                Rule::review => RiskClause::Review(self.string_lit(clause.into_inner().next()?)?),
                _ => return None,
            };
            clauses.push(Clause { kind, span });
        }
        Some(ItemKind::Risk(Risk { name, clauses }))
    }

    fn decide(&mut self, pair: P<'_>) -> Option<ItemKind> {
        let mut kids = Kids::of(pair);
        let target = self.ident(kids.next()?);
        let mut arms = Vec::new();
        for arm in kids.rest() {
            let span = self.span(&arm);
            let mut kids = Kids::of(arm);
            let condition = if kids.skip(Rule::else_arm) {
                None
            } else {
                Some(self.expr(kids.next()?)?)
            };
            let outcome = self.ident(kids.next()?);
            arms.push(DecideArm {
                condition,
                outcome,
                span,
            });
        }
        Some(ItemKind::Decide(Decide { target, arms }))
    }

    fn table(&mut self, pair: P<'_>) -> Option<ItemKind> {
        let mut kids = Kids::of(pair);
        let name = self.ident(kids.next()?);
        let mut keys = Vec::new();
        while let Some(key) = kids.eat(Rule::expr) {
            keys.push(self.expr(key)?);
        }
        let result = self.type_expr(kids.next()?)?;
        let mut rows = Vec::new();
        for row in kids.rest() {
            let span = self.span(&row);
            let mut patterns = Vec::new();
            let mut value = None;
            for part in row.into_inner() {
                match part.as_rule() {
                    Rule::pattern => patterns.push(self.pattern(part)?),
                    _ => value = Some(self.expr(part)?),
                }
            }
            rows.push(TableRow {
                patterns,
                value: value?,
                span,
            });
        }
        Some(ItemKind::Table(Table {
            name,
            keys,
            result,
            rows,
        }))
    }

    fn pattern(&mut self, pair: P<'_>) -> Option<Pattern> {
        let span = self.span(&pair);
        let inner = pair.into_inner().next()?;
        let kind = match inner.as_rule() {
            Rule::wildcard => PatternKind::Wildcard,
            Rule::compare_pattern => {
                let mut kids = Kids::of(inner);
                let op = compare_op(kids.next()?.as_str())?;
                PatternKind::Compare(op, self.unary(kids.next()?)?)
            }
            Rule::literal => {
                let span = self.span(&inner);
                PatternKind::Equals(Expr {
                    kind: ExprKind::Literal(self.literal(inner)?),
                    span,
                })
            }
            _ => {
                let ident = self.ident(inner);
                PatternKind::Equals(Expr {
                    span: ident.span,
                    kind: ExprKind::Name(ident),
                })
            }
        };
        Some(Pattern { kind, span })
    }

    fn sop(&mut self, pair: P<'_>) -> Option<ItemKind> {
        let mut kids = Kids::of(pair);
        let name = self.ident(kids.next()?);
        let mut clauses = Vec::new();
        for clause in kids.rest() {
            let span = self.span(&clause);
            let kind = match clause.as_rule() {
                Rule::trigger => {
                    let mut kids = Kids::of(clause);
                    kids.skip(Rule::k_on);
                    let event = self.ident(kids.next()?);
                    let condition = if kids.skip(Rule::k_when) {
                        Some(self.expr(kids.next()?)?)
                    } else {
                        None
                    };
                    SopClause::Trigger { event, condition }
                }
                Rule::step => {
                    let mut kids = Kids::of(clause);
                    let name = self.ident(kids.next()?);
                    let role = self.ident(kids.next()?);
                    let within = self.expr(kids.next()?)?;
                    let instructions = match kids.eat(Rule::string) {
                        Some(p) => Some(self.string_lit(p)?),
                        None => None,
                    };
                    let requires = match kids.eat(Rule::requires) {
                        Some(p) => p.into_inner().map(|p| self.ident(p)).collect(),
                        None => Vec::new(),
                    };
                    SopClause::Step(Step {
                        name,
                        role,
                        within,
                        instructions,
                        requires,
                    })
                }
                Rule::on_timeout => {
                    let mut kids = Kids::of(clause);
                    kids.skip(Rule::k_on);
                    SopClause::OnTimeoutEscalate(self.ident(kids.next()?))
                }
                _ => return None,
            };
            clauses.push(Clause { kind, span });
        }
        Some(ItemKind::Sop(Sop { name, clauses }))
    }

    fn test(&mut self, pair: P<'_>) -> Option<ItemKind> {
        let mut kids = Kids::of(pair);
        let name = self.string_lit(kids.next()?)?;
        let mut clauses = Vec::new();
        for clause in kids.rest() {
            let span = self.span(&clause);
            let kind = match clause.as_rule() {
                Rule::given => TestClause::Given(self.value(clause.into_inner().next()?)?),
                Rule::counter => {
                    let mut kids = Kids::of(clause);
                    let call = self.call(kids.next()?)?;
                    TestClause::Counter {
                        call,
                        value: self.value(kids.next()?)?,
                    }
                }
                Rule::given_list => {
                    let mut kids = Kids::of(clause);
                    let name = self.ident(kids.next()?);
                    let array = kids.next()?;
                    TestClause::List {
                        name,
                        items: self.array_value(array)?,
                    }
                }
                Rule::used => {
                    let mut kids = Kids::of(clause);
                    let kind = match kids.next()?.as_str() {
                        "budget" => UsedKind::Budget,
                        _ => UsedKind::Limit,
                    };
                    let rule = self.ident(kids.next()?);
                    TestClause::Used {
                        kind,
                        rule,
                        value: self.value(kids.next()?)?,
                    }
                }
                Rule::expect => TestClause::Expect(self.expectation(clause.into_inner().next()?)?),
                _ => return None,
            };
            clauses.push(Clause { kind, span });
        }
        Some(ItemKind::Test(Test { name, clauses }))
    }

    fn expectation(&mut self, pair: P<'_>) -> Option<Expectation> {
        let rule = pair.as_rule();
        let text = pair.as_str();
        let mut kids = Kids::of(pair);
        Some(match rule {
            Rule::expect_no => {
                // The last word decides: a comment may sit between `no` and it.
                let what = ["discount", "gift", "route", "sop"]
                    .into_iter()
                    .find(|word| text.ends_with(word));
                match what {
                    Some("discount") => Expectation::NoDiscount,
                    Some("gift") => Expectation::NoGift,
                    Some("route") => Expectation::NoRoute,
                    Some("sop") => Expectation::NoSop,
                    _ => Expectation::NoBlock,
                }
            }
            Rule::expect_fired => Expectation::Fired(self.ident(kids.next()?)),
            Rule::expect_not_fired => {
                kids.skip(Rule::k_not);
                Expectation::NotFired(self.ident(kids.next()?))
            }
            Rule::expect_discount => Expectation::Discount(self.expr(kids.next()?)?),
            Rule::expect_gift => {
                let sku = self.string_lit(kids.next()?)?;
                let qty = match kids.next() {
                    Some(p) => Some(self.expr(p)?),
                    None => None,
                };
                Expectation::Gift { sku, qty }
            }
            Rule::expect_points => Expectation::PointsMultiplier(self.expr(kids.next()?)?),
            Rule::expect_risk_score => Expectation::RiskScore(self.expr(kids.next()?)?),
            Rule::expect_risk => Expectation::Risk(self.ident(kids.next()?)),
            Rule::expect_route => Expectation::Route(self.string_lit(kids.next()?)?),
            Rule::expect_blocked => Expectation::Blocked,
            Rule::expect_forbid => Expectation::ForbidMode(self.ident(kids.next()?)),
            Rule::expect_packaging => Expectation::Packaging(self.string_lit(kids.next()?)?),
            Rule::expect_mode => Expectation::Mode(self.ident(kids.next()?)),
            Rule::expect_sop => Expectation::Sop(self.ident(kids.next()?)),
            _ => return None,
        })
    }

    fn value(&mut self, pair: P<'_>) -> Option<Value> {
        let span = self.span(&pair);
        let inner = if pair.as_rule() == Rule::value {
            pair.into_inner().next()?
        } else {
            pair
        };
        let kind = match inner.as_rule() {
            Rule::object => {
                let mut fields = Vec::new();
                for field in inner.into_inner() {
                    let mut kids = Kids::of(field);
                    let name = self.ident(kids.next()?);
                    fields.push((name, self.value(kids.next()?)?));
                }
                ValueKind::Object(fields)
            }
            Rule::array => return self.array_value(inner),
            Rule::literal => ValueKind::Literal(self.literal(inner)?),
            Rule::signed_literal => {
                let literal = self.literal_kind(inner.into_inner().next()?)?;
                ValueKind::Literal(negate_literal(literal))
            }
            _ => ValueKind::Variant(self.ident(inner)),
        };
        Some(Value { kind, span })
    }

    fn array_value(&mut self, pair: P<'_>) -> Option<Value> {
        let span = self.span(&pair);
        let mut items = Vec::new();
        for value in pair.into_inner() {
            items.push(self.value(value)?);
        }
        Some(Value {
            kind: ValueKind::Array(items),
            span,
        })
    }

    fn int(&mut self, pair: P<'_>) -> Option<i64> {
        let span = self.span(&pair);
        let digits: String = pair.as_str().chars().filter(|c| *c != '_').collect();
        match digits.parse::<i64>() {
            Ok(value) => Some(value),
            Err(_) => {
                self.diagnostics.push(Diagnostic::new(
                    Code::InvalidNumber,
                    span,
                    format!("`{}` does not fit in a whole number", pair.as_str()),
                ));
                Some(0)
            }
        }
    }

    // ---- expressions ------------------------------------------------------------------

    fn too_deep(&mut self, span: Span) -> Expr {
        self.diagnostics.push(
            Diagnostic::new(
                Code::NestingTooDeep,
                span,
                format!("expression nests more than {MAX_EXPR_DEPTH} operators deep"),
            )
            .with_help("split it into several rules or use a table"),
        );
        Expr {
            kind: ExprKind::Error,
            span,
        }
    }

    fn expr(&mut self, pair: P<'_>) -> Option<Expr> {
        self.expr_depth(pair).map(|(expr, _)| expr)
    }

    /// Builds an expression and returns its operator depth, so that long operator chains
    /// are cut off before they can make later recursive passes overflow the stack.
    fn expr_depth(&mut self, pair: P<'_>) -> Option<(Expr, usize)> {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::expr | Rule::primary => self.expr_depth(pair.into_inner().next()?),
            Rule::if_expr => {
                let mut kids = Kids::of(pair);
                kids.skip(Rule::k_if);
                let (cond, d1) = self.expr_depth(kids.next()?)?;
                kids.skip(Rule::k_then);
                let (then, d2) = self.expr_depth(kids.next()?)?;
                kids.skip(Rule::k_else);
                let (otherwise, d3) = self.expr_depth(kids.next()?)?;
                self.node(
                    ExprKind::If(Box::new(cond), Box::new(then), Box::new(otherwise)),
                    span,
                    1 + d1.max(d2).max(d3),
                )
            }
            Rule::or_expr | Rule::and_expr | Rule::add_expr | Rule::mul_expr => self.chain(pair),
            Rule::not_expr | Rule::unary => {
                let mut ops = Vec::new();
                let mut operand = None;
                for kid in pair.into_inner() {
                    match kid.as_rule() {
                        Rule::not_op => ops.push((UnaryOp::Not, self.span(&kid))),
                        Rule::neg_op => ops.push((UnaryOp::Neg, self.span(&kid))),
                        _ => operand = Some(self.expr_depth(kid)?),
                    }
                }
                let (mut expr, mut depth) = operand?;
                for (op, op_span) in ops.into_iter().rev() {
                    depth += 1;
                    let span = op_span.to(expr.span);
                    if depth > MAX_EXPR_DEPTH {
                        return Some((self.too_deep(span), depth));
                    }
                    expr = Expr {
                        kind: ExprKind::Unary(op, Box::new(expr)),
                        span,
                    };
                }
                Some((expr, depth))
            }
            Rule::cmp_expr => {
                let mut kids = Kids::of(pair);
                let (left, d1) = self.expr_depth(kids.next()?)?;
                let Some(op) = kids.next() else {
                    return Some((left, d1));
                };
                // `not in` may have whitespace and comments between its two words.
                let text = op.as_str();
                let op = match op.into_inner().next() {
                    Some(inner) if inner.as_rule() == Rule::not_in => CompareOp::NotIn,
                    _ => compare_op(text)?,
                };
                let (right, d2) = self.expr_depth(kids.next()?)?;
                self.node(
                    ExprKind::Compare(op, Box::new(left), Box::new(right)),
                    span,
                    1 + d1.max(d2),
                )
            }
            Rule::postfix => {
                let mut kids = Kids::of(pair);
                let (mut expr, mut depth) = self.expr_depth(kids.next()?)?;
                for field in kids.rest() {
                    let field = self.ident(field);
                    depth += 1;
                    let span = expr.span.to(field.span);
                    if depth > MAX_EXPR_DEPTH {
                        return Some((self.too_deep(span), depth));
                    }
                    expr = Expr {
                        kind: ExprKind::Field(Box::new(expr), field),
                        span,
                    };
                }
                Some((expr, depth))
            }
            Rule::literal => {
                let literal = self.literal(pair)?;
                Some((
                    Expr {
                        kind: ExprKind::Literal(literal),
                        span,
                    },
                    1,
                ))
            }
            Rule::ident => Some((
                Expr {
                    kind: ExprKind::Name(self.ident(pair)),
                    span,
                },
                1,
            )),
            Rule::paren => {
                let (inner, depth) = self.expr_depth(pair.into_inner().next()?)?;
                self.node(ExprKind::Paren(Box::new(inner)), span, depth + 1)
            }
            Rule::list_expr => {
                let mut items = Vec::new();
                let mut depth = 0;
                for kid in pair.into_inner() {
                    let (item, d) = self.expr_depth(kid)?;
                    depth = depth.max(d);
                    items.push(item);
                }
                self.node(ExprKind::List(items), span, depth + 1)
            }
            Rule::call => {
                let (expr, depth) = self.call_depth(pair)?;
                Some((expr, depth))
            }
            Rule::quantifier => {
                let mut kids = Kids::of(pair);
                let kind = match kids.next()?.as_str() {
                    "any" => QuantifierKind::Any,
                    "all" => QuantifierKind::All,
                    _ => QuantifierKind::Count,
                };
                let var = self.ident(kids.next()?);
                kids.skip(Rule::k_in);
                let (collection, d1) = self.expr_depth(kids.next()?)?;
                let (filter, d2) = if kids.skip(Rule::k_where) {
                    let (f, d) = self.expr_depth(kids.next()?)?;
                    (Some(Box::new(f)), d)
                } else {
                    (None, 0)
                };
                self.node(
                    ExprKind::Quantifier {
                        kind,
                        var,
                        collection: Box::new(collection),
                        filter,
                    },
                    span,
                    1 + d1.max(d2),
                )
            }
            Rule::sum_expr => {
                let mut kids = Kids::of(pair);
                let (body, d0) = self.expr_depth(kids.next()?)?;
                kids.skip(Rule::k_for);
                let var = self.ident(kids.next()?);
                kids.skip(Rule::k_in);
                let (collection, d1) = self.expr_depth(kids.next()?)?;
                let (filter, d2) = if kids.skip(Rule::k_where) {
                    let (f, d) = self.expr_depth(kids.next()?)?;
                    (Some(Box::new(f)), d)
                } else {
                    (None, 0)
                };
                self.node(
                    ExprKind::Sum {
                        body: Box::new(body),
                        var,
                        collection: Box::new(collection),
                        filter,
                    },
                    span,
                    1 + d0.max(d1).max(d2),
                )
            }
            _ => None,
        }
    }

    fn node(&mut self, kind: ExprKind, span: Span, depth: usize) -> Option<(Expr, usize)> {
        if depth > MAX_EXPR_DEPTH {
            return Some((self.too_deep(span), depth));
        }
        Some((Expr { kind, span }, depth))
    }

    fn call(&mut self, pair: P<'_>) -> Option<Expr> {
        self.call_depth(pair).map(|(e, _)| e)
    }

    fn call_depth(&mut self, pair: P<'_>) -> Option<(Expr, usize)> {
        let span = self.span(&pair);
        let mut kids = Kids::of(pair);
        let name = self.ident(kids.next()?);
        let mut args = Vec::new();
        let mut depth = 0;
        for arg in kids.rest() {
            let (arg, d) = self.expr_depth(arg)?;
            depth = depth.max(d);
            args.push(arg);
        }
        self.node(ExprKind::Call(name, args), span, depth + 1)
    }

    /// Left-associative operator chains, folded iteratively.
    fn chain(&mut self, pair: P<'_>) -> Option<(Expr, usize)> {
        let mut kids = Kids::of(pair);
        let (mut left, mut depth) = self.expr_depth(kids.next()?)?;
        while let Some(op) = kids.next() {
            let op = match op.as_rule() {
                Rule::k_or => BinaryOp::Or,
                Rule::k_and => BinaryOp::And,
                _ => match op.as_str() {
                    "+" => BinaryOp::Add,
                    "-" => BinaryOp::Sub,
                    "*" => BinaryOp::Mul,
                    _ => BinaryOp::Div,
                },
            };
            let (right, d) = self.expr_depth(kids.next()?)?;
            depth = depth.max(d) + 1;
            let span = left.span.to(right.span);
            if depth > MAX_EXPR_DEPTH {
                return Some((self.too_deep(span), depth));
            }
            left = Expr {
                kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
                span,
            };
        }
        Some((left, depth))
    }

    fn unary(&mut self, pair: P<'_>) -> Option<Expr> {
        self.expr(pair)
    }

    fn literal(&mut self, pair: P<'_>) -> Option<Literal> {
        let inner = pair.into_inner().next()?;
        self.literal_kind(inner)
    }

    fn literal_kind(&mut self, inner: P<'_>) -> Option<Literal> {
        Some(match inner.as_rule() {
            Rule::datetime => Literal::DateTime(inner.as_str().to_string()),
            Rule::money => {
                let mut kids = Kids::of(inner);
                let symbol = kids.next()?.as_str().to_string();
                let amount = kids.next()?.as_str().to_string();
                Literal::Money { symbol, amount }
            }
            Rule::percent => Literal::Percent(inner.into_inner().next()?.as_str().to_string()),
            Rule::quantity => {
                let mut kids = Kids::of(inner);
                let amount = kids.next()?.as_str().to_string();
                let unit = Unit::from_symbol(kids.next()?.as_str())?;
                Literal::Quantity { amount, unit }
            }
            Rule::number => Literal::Number(inner.as_str().to_string()),
            Rule::string => {
                let string = self.string_lit(inner)?;
                Literal::String(string.value)
            }
            Rule::boolean => Literal::Bool(inner.as_str() == "true"),
            Rule::none_lit => Literal::None,
            _ => return None,
        })
    }

    fn unescape(&mut self, raw: &str, start: usize) -> String {
        if !raw.contains('\\') {
            return raw.to_string();
        }
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.char_indices().peekable();
        while let Some((offset, ch)) = chars.next() {
            if ch != '\\' {
                out.push(ch);
                continue;
            }
            let Some((_, escaped)) = chars.next() else {
                break;
            };
            match escaped {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    let rest = raw.get(offset + 2..).unwrap_or("");
                    let decoded = rest
                        .strip_prefix('{')
                        .and_then(|r| r.split_once('}'))
                        .and_then(|(hex, _)| {
                            let code = u32::from_str_radix(hex, 16).ok()?;
                            // Any character a rule file may hold as it is (the
                            // prescan's rule): a string with a bare carriage return
                            // formats as `\u{000D}`, which must read back.
                            char::from_u32(code)
                                .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
                                .map(|c| (c, hex.len()))
                        });
                    match decoded {
                        Some((decoded, hex_len)) => {
                            out.push(decoded);
                            for _ in 0..hex_len + 2 {
                                chars.next();
                            }
                        }
                        None => self.bad_escape(
                            start + offset,
                            2,
                            "`\\u` takes a code point like `\\u{4E2D}`",
                        ),
                    }
                }
                other => self.bad_escape(
                    start + offset,
                    1 + other.len_utf8(),
                    "use `\\\"`, `\\\\`, `\\n`, `\\t` or `\\u{XXXX}`",
                ),
            }
        }
        out
    }

    fn bad_escape(&mut self, at: usize, len: usize, help: &str) {
        let text = self.text.get(at..at + len).unwrap_or("\\");
        self.diagnostics.push(
            Diagnostic::new(
                Code::InvalidEscape,
                Span::new(at, at + len),
                format!("invalid escape `{text}` in string"),
            )
            .with_help(help),
        );
    }
}

fn compare_op(text: &str) -> Option<CompareOp> {
    Some(match text {
        "==" => CompareOp::Eq,
        "!=" => CompareOp::Ne,
        "<" => CompareOp::Lt,
        "<=" => CompareOp::Le,
        ">" => CompareOp::Gt,
        ">=" => CompareOp::Ge,
        "in" => CompareOp::In,
        "not in" => CompareOp::NotIn,
        _ => return None,
    })
}

fn negate_literal(literal: Literal) -> Literal {
    match literal {
        Literal::Number(n) => Literal::Number(format!("-{n}")),
        Literal::Money { symbol, amount } => Literal::Money {
            symbol,
            amount: format!("-{amount}"),
        },
        Literal::Percent(p) => Literal::Percent(format!("-{p}")),
        Literal::Quantity { amount, unit } => Literal::Quantity {
            amount: format!("-{amount}"),
            unit,
        },
        other => other,
    }
}

/// What the parser found at `pos`, for "expected X, found Y", and its length in bytes.
fn describe_found(text: &str, pos: usize, chunk_end: usize) -> (String, usize) {
    let rest = text.get(pos..chunk_end).unwrap_or("");
    let Some(first) = rest.chars().next() else {
        return ("end of item".to_string(), 0);
    };
    if first.is_alphanumeric() || first == '_' {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let shown: String = word.chars().take(40).collect();
        return (format!("`{shown}`"), word.len());
    }
    if first == '"' {
        let len = rest
            .get(1..)
            .and_then(|r| r.find(['"', '\n']))
            .map_or(rest.len(), |end| end + 2)
            .min(rest.len());
        return ("a string".to_string(), len);
    }
    const OPERATORS: &[&str] = &["=>", "->", "==", "!=", "<=", ">=", "&&", "||"];
    if let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) {
        return (format!("`{op}`"), op.len());
    }
    (format!("`{first}`"), first.len_utf8())
}

/// Tokens that can start an expression: when one is expected, "an expression" says it.
const EXPRESSION_STARTS: &[&str] = &[
    "(", "[", "any", "all", "count", "sum", "true", "false", "none", "if", "¥", "￥", "$", "€",
    "£", "₩",
];

/// Tokens that would continue what came before (an operator after an operand, a unit
/// after a number). They are possible, but rarely what the author meant to write.
const CONTINUATIONS: &[&str] = &[
    "+", "-", "*", "/", "==", "!=", "<", "<=", ">", ">=", "and", "or", "in", "not", ".", "%", "kg",
    "g", "ml", "l", "Wh", "kWh", "m", "km", "s", "min", "h", "d", "_",
];

fn describe_expected(
    error: &pest::error::Error<Rule>,
    expected_tokens: Option<&[String]>,
    pos: usize,
) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    let mut expression = false;
    let mut continuation = false;
    if let Some(tokens) = expected_tokens {
        for token in tokens {
            // A token's Display is the literal for keywords and punctuation.
            let token = token.trim();
            // Whitespace and comments may appear anywhere; naming them helps no one.
            if token.is_empty()
                || token.contains("..")
                || token == "BUILTIN_RULE"
                || token == "//"
                || token == "\u{FEFF}"
            {
                continue;
            }
            if token == "\"" {
                words.push("a string".to_string());
                continue;
            }
            if EXPRESSION_STARTS.contains(&token) {
                expression = true;
            } else if CONTINUATIONS.contains(&token) {
                continuation = true;
            } else {
                words.push(format!("`{token}`"));
            }
        }
    }
    let error_pos = match error.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    if let (pest::error::ErrorVariant::ParsingError { positives, .. }, true) =
        (&error.variant, error_pos == pos)
    {
        for rule in positives {
            match rule_name(*rule) {
                Some("an expression") => expression = true,
                Some(name) => words.push(name.to_string()),
                None => {}
            }
        }
    }
    if expression {
        // A string is one kind of expression.
        words.retain(|w| w != "a string");
        words.insert(0, "an expression".to_string());
    }
    let mut seen = std::collections::BTreeSet::new();
    words.retain(|w| seen.insert(w.clone()));
    if words.is_empty() && continuation {
        words.push("an operator".to_string());
    }
    if words.is_empty() {
        return None;
    }
    // After a complete operand, a unit or a comparison could follow, but when the
    // clause could also end here the next clause is what the author more likely missed.
    if words.len() > 2 {
        words.retain(|w| w != "a unit" && w != "a comparison");
    }
    words.truncate(8);
    Some(match words.len() {
        1 => words.concat(),
        n => {
            let (head, last) = words.split_at(n - 1);
            format!("{} or {}", head.join(", "), last.concat())
        }
    })
}

fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::expr
        | Rule::or_expr
        | Rule::and_expr
        | Rule::not_expr
        | Rule::cmp_expr
        | Rule::add_expr
        | Rule::mul_expr
        | Rule::unary
        | Rule::postfix
        | Rule::primary => "an expression",
        Rule::ident | Rule::ident_raw => "a name",
        Rule::string => "a string",
        Rule::int_lit | Rule::digits | Rule::number => "a number",
        Rule::literal => "a value",
        Rule::type_expr => "a type",
        Rule::pattern => "a pattern",
        Rule::value => "a value",
        Rule::cmp_op | Rule::compare_op => "a comparison",
        Rule::event => "an event such as `shipment.assigned`",
        Rule::EOI => "end of item",
        Rule::k_when => "`when`",
        Rule::k_then => "`then`",
        Rule::k_else => "`else`",
        Rule::k_in => "`in`",
        Rule::k_for => "`for`",
        Rule::k_where => "`where`",
        Rule::k_on => "`on`",
        Rule::unit => "a unit",
        _ => return None,
    })
}

/// Hints for the commonest slips, by looking at the text around the error.
fn syntax_help(text: &str, pos: usize) -> Option<String> {
    let rest = text.get(pos..)?;
    let word: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if matches!(word.as_str(), "AND" | "OR" | "NOT") {
        return Some(format!(
            "operators are lowercase: write `{}`",
            word.to_lowercase()
        ));
    }
    if rest.starts_with("->")
        || (rest.starts_with('>') && text.get(pos.saturating_sub(1)..pos) == Some("-"))
    {
        return Some("decide arms and table rows use `=>`".to_string());
    }
    if rest.starts_with("&&") {
        return Some("write `and` instead of `&&`".to_string());
    }
    if rest.starts_with("||") {
        return Some("write `or` instead of `||`".to_string());
    }
    if rest.starts_with('=') && !rest.starts_with("==") && !rest.starts_with("=>") {
        return Some(
            "compare with `==`; `=` only appears in attribute defaults and test inputs".to_string(),
        );
    }
    if rest.starts_with('\'') {
        return Some("strings use double quotes: \"...\"".to_string());
    }
    if let Some(unit) = [
        "KG", "ML", "Kg", "L", "wh", "WH", "KM", "Km", "hr", "hours", "mins", "sec",
    ]
    .iter()
    .find(|u| word == **u)
    {
        let suggestion = match *unit {
            "KG" | "Kg" => "kg",
            "ML" => "ml",
            "L" => "l",
            "wh" | "WH" => "Wh",
            "KM" | "Km" => "km",
            "hr" | "hours" => "h",
            "mins" => "min",
            _ => "s",
        };
        return Some(format!("units are written `{suggestion}`"));
    }
    None
}
