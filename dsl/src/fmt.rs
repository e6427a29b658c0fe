//! The formatter: prints an `ast::SourceFile` in weir's one canonical layout.
//!
//! # Canonical layout
//!
//! - Two-space indentation; files end with exactly one newline; no trailing whitespace;
//!   no tabs. Widths are counted in characters.
//! - Items in source order. Between two items: one blank line if either is a block item
//!   (with `{ }`) or if the source had at least one blank line between them; otherwise
//!   none (so runs of `attribute`/`list` lines stay together unless the author separated
//!   them). After the `ruleset` header always one blank line.
//! - Block items: `promotion NAME {`, one clause per line indented 2, `}` (an empty block
//!   is `promotion NAME {` and `}` on two lines). Clauses in source order. Inside blocks
//!   at most one blank line is kept between clause lines where the source had one; never
//!   after `{` or before `}`.
//! - Expressions on one line, canonical spacing: `a + b`, `a == b`, `a not in b`,
//!   `not x`, `-x`, `a.b`, `f(a, b)`, `[a, b]`, `any(x in c where p)`, `count(x in c)`,
//!   `sum(e for x in c where p)`, `if a then b else c`. `Paren` nodes print as `(e)`
//!   exactly where the AST has them; where precedence needs parentheses and the AST has
//!   no `Paren` node (a generated AST), they are added. Precedence, loosest first:
//!   if/then/else, or, and, not, comparison (non-associative), `+ -`, `* /`, unary `-`,
//!   field access, primary. (Also added: around a table row value looser than a
//!   comparison when the next row starts with a comparison pattern, which the value
//!   would otherwise swallow; the parser never produces that AST.)
//! - Literals as written: numbers and money amounts keep their digits (including `_`),
//!   money is symbol and amount (`¥12.50`, negative test values `-¥5`), percent `10%`,
//!   quantity `30 km` (one space), date-times as written, strings re-escaped (`\"`,
//!   `\\`, `\n`, `\t`, other control characters as `\u{XXXX}`; other text, Chinese
//!   included, kept literally).
//! - Table rows and `decide` arms are aligned: in a table each pattern column (patterns
//!   joined with `, `) is padded so the columns and the `=>` line up across the rows; in
//!   `decide` the conditions (`else` included) are padded so `=>` lines up.
//! - `consider a, b within 30 km, c when x` on one line; `forbid mode air, sea`;
//!   `step NAME role ROLE within 15 min "text" requires photo, scan`.
//! - Test values: the top-level `given { ... }` object prints one field per line, with
//!   commas between fields and none after the last. Nested objects and arrays print
//!   inline (`{ tier: gold }`, `[1, 2]`, `{}`, `[]`: spaces inside braces, none inside
//!   brackets) when the whole line (indentation, key and comma included, a trailing
//!   comment not) fits in 100 columns, otherwise one
//!   field or element per line, again without a trailing comma. The values of
//!   `counter`, `list` and `used` lines follow the same rule. `expect` lines one per line.
//! - Comments are never lost. A comment alone on its line(s) before an item, clause,
//!   row, arm or field prints on its own line before it, at its indentation; a comment
//!   after code prints after that line's code as `  // text`, and if that code was a
//!   multi-line construct now printed on one line, on the printed line where the
//!   construct ended. Comments after the last clause of a block print before the `}` at
//!   clause indentation; comments at the end of the file print at the end. Blank lines
//!   around own-line comments are kept (at most one), except after `{`, before `}` and
//!   at the start of the file. Comments inside a construct that is now printed on one
//!   line (an expression that spanned lines) move to their own line just after it.
//!   Comment text is kept exactly, trailing whitespace trimmed.

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::span::Span;

const INDENT: &str = "  ";

/// Lines of test values longer than this break one field or element per line.
const MAX_WIDTH: usize = 100;

/// Formats a file, or returns its diagnostics: a file with any syntax error is left
/// alone, because items that failed to parse are missing from the AST and printing it
/// would delete them.
pub fn format_file(text: &str) -> Result<String, Vec<Diagnostic>> {
    let (file, diagnostics) = crate::parse_file(text);
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    Ok(print_file(&file, text))
}

/// Prints a file in the canonical layout. `source` is the text the AST was parsed from;
/// it is only consulted for blank lines and for which line each comment was on. For an
/// AST built in code pass `""`: only the comments in `file.comments` are printed.
pub fn print_file(file: &SourceFile, source: &str) -> String {
    let src = Source::new(source, &file.comments);
    let printer = Printer { src: &src };
    let mut lines = Vec::new();
    let mut previous: Option<&ItemKind> = None;
    for (index, item) in file.items.iter().enumerate() {
        let node = printer.item(item);
        let force_blank = previous.is_some_and(|prev| {
            is_block_item(prev) || is_block_item(&item.kind) || matches!(prev, ItemKind::Header(_))
        });
        flatten(node, 0, index == 0, force_blank, &mut lines);
        previous = Some(&item.kind);
    }
    let end_comments = place_comments(&mut lines, &file.comments, &src);
    emit(&lines, &end_comments)
}

fn is_block_item(kind: &ItemKind) -> bool {
    !matches!(
        kind,
        ItemKind::Header(_) | ItemKind::Attribute(_) | ItemKind::List(_)
    )
}

// ---- the source text, for blank lines and comment positions -----------------------------

struct Source<'a> {
    text: &'a str,
    /// `(end, start)` of every comment, sorted, to step back over comments that pest
    /// folded into the end of a span (implicit whitespace includes comments).
    comment_ends: Vec<(u32, u32)>,
}

fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{FEFF}'
}

impl<'a> Source<'a> {
    fn new(text: &'a str, comments: &[Comment]) -> Source<'a> {
        let mut comment_ends: Vec<(u32, u32)> = comments
            .iter()
            .map(|c| (c.span.end, c.span.start))
            .collect();
        comment_ends.sort_unstable();
        Source { text, comment_ends }
    }

    /// Where the code of `span` really ends. Pest spans of rules that end in an optional
    /// or repeated part include the whitespace and comments after the last token; the
    /// parser trims them, but an AST from elsewhere may not, and a comment counted as
    /// inside a construct would be moved off its line.
    fn code_end(&self, span: Span) -> u32 {
        let start = span.start as usize;
        let mut end = span.end as usize;
        loop {
            let Some(chunk) = self.text.get(start..end) else {
                return end as u32;
            };
            let new_end = start + chunk.trim_end_matches(is_space).len();
            let comment_start = self
                .comment_ends
                .binary_search_by_key(&(new_end as u32), |(end, _)| *end)
                .ok()
                .and_then(|i| self.comment_ends.get(i))
                .map(|(_, start)| *start as usize);
            match comment_start {
                Some(comment_start) if comment_start >= start && comment_start < new_end => {
                    end = comment_start
                }
                _ => return new_end as u32,
            }
        }
    }

    /// Whether a whole line between `from` and `to` is empty.
    fn blank_between(&self, from: u32, to: u32) -> bool {
        if from >= to {
            return false;
        }
        let Some(gap) = self.text.get(from as usize..to as usize) else {
            return false;
        };
        // The first piece is the rest of `from`'s line and the last the start of `to`'s;
        // only the lines in between can be blank.
        let mut pieces = gap.split('\n').skip(1).peekable();
        while let Some(piece) = pieces.next() {
            if pieces.peek().is_some() && piece.chars().all(is_space) {
                return true;
            }
        }
        false
    }

    /// Whether only whitespace precedes `at` on its line.
    fn own_line(&self, at: u32) -> bool {
        let Some(before) = self.text.get(..at as usize) else {
            return true;
        };
        before
            .rsplit('\n')
            .next()
            .is_none_or(|line| line.chars().all(is_space))
    }
}

// ---- layout tree --------------------------------------------------------------------

/// One printed line, and the lines of its block if it opens one.
struct Node {
    text: String,
    /// The source this line stands for: comments inside it cannot stay where they were.
    anchor: Span,
    block: Option<Block>,
}

struct Block {
    children: Vec<Node>,
    close: String,
    close_anchor: Span,
}

struct Printer<'a> {
    src: &'a Source<'a>,
}

impl Printer<'_> {
    fn leaf(&self, text: String, span: Span) -> Node {
        Node {
            text,
            anchor: self.anchor(span.start, span),
            block: None,
        }
    }

    /// From `start` to where the code of `last` ends.
    fn anchor(&self, start: u32, last: Span) -> Span {
        Span {
            start,
            end: self.src.code_end(last).max(start),
        }
    }

    /// The closing bracket that ends `span`.
    fn closer(&self, span: Span) -> Span {
        let end = self.src.code_end(span);
        Span {
            start: end.saturating_sub(1),
            end,
        }
    }

    /// `head {`, one line per child, `}`; the head line stands for the source up to the
    /// end of `head_end` (the item's name, or its result type for a table).
    fn block(&self, head: String, item: Span, head_end: Span, children: Vec<Node>) -> Node {
        Node {
            text: format!("{head} {{"),
            anchor: Span {
                start: item.start,
                end: head_end.end.max(item.start),
            },
            block: Some(Block {
                children,
                close: "}".to_string(),
                close_anchor: self.closer(item),
            }),
        }
    }

    fn item(&self, item: &Item) -> Node {
        let span = item.span;
        match &item.kind {
            ItemKind::Header(header) => self.leaf(
                format!(
                    "ruleset {} currency {}",
                    header.name.name, header.currency.name
                ),
                span,
            ),
            ItemKind::Attribute(attribute) => {
                let mut text = format!(
                    "attribute {}.{}: {}",
                    attribute.entity.name,
                    attribute.field.name,
                    type_string(&attribute.ty)
                );
                if let Some(default) = &attribute.default {
                    text.push_str(" = ");
                    write_expr(&mut text, default, IF);
                }
                self.leaf(text, span)
            }
            ItemKind::List(list) => self.leaf(
                format!("list {}: {}", list.name.name, type_string(&list.ty)),
                span,
            ),
            ItemKind::Promotion(promotion) => {
                let children = promotion
                    .clauses
                    .iter()
                    .map(|clause| self.leaf(promotion_clause(&clause.kind), clause.span))
                    .collect();
                self.block(
                    format!("promotion {}", promotion.name.name),
                    span,
                    promotion.name.span,
                    children,
                )
            }
            ItemKind::Route(route) => {
                let children = route
                    .clauses
                    .iter()
                    .map(|clause| self.leaf(route_clause(&clause.kind), clause.span))
                    .collect();
                self.block(
                    format!("route {}", route.name.name),
                    span,
                    route.name.span,
                    children,
                )
            }
            ItemKind::Constraint(constraint) => {
                let children = constraint
                    .clauses
                    .iter()
                    .map(|clause| self.leaf(constraint_clause(&clause.kind), clause.span))
                    .collect();
                self.block(
                    format!("constraint {}", constraint.name.name),
                    span,
                    constraint.name.span,
                    children,
                )
            }
            ItemKind::Risk(risk) => {
                let children = risk
                    .clauses
                    .iter()
                    .map(|clause| self.leaf(risk_clause(&clause.kind), clause.span))
                    .collect();
                self.block(
                    format!("risk {}", risk.name.name),
                    span,
                    risk.name.span,
                    children,
                )
            }
            ItemKind::Decide(decide) => self.decide(span, decide),
            ItemKind::Table(table) => self.table(span, table),
            ItemKind::Sop(sop) => {
                let children = sop
                    .clauses
                    .iter()
                    .map(|clause| self.leaf(sop_clause(&clause.kind), clause.span))
                    .collect();
                self.block(
                    format!("sop {}", sop.name.name),
                    span,
                    sop.name.span,
                    children,
                )
            }
            ItemKind::Test(test) => {
                let children = test
                    .clauses
                    .iter()
                    .map(|clause| self.test_clause(clause))
                    .collect();
                self.block(
                    format!("test {}", quote(&test.name.value)),
                    span,
                    test.name.span,
                    children,
                )
            }
        }
    }

    fn decide(&self, span: Span, decide: &Decide) -> Node {
        let conditions: Vec<String> = decide
            .arms
            .iter()
            .map(|arm| {
                arm.condition
                    .as_ref()
                    .map_or_else(|| "else".to_string(), expr_string)
            })
            .collect();
        let width = conditions
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0);
        let children = decide
            .arms
            .iter()
            .zip(conditions)
            .map(|(arm, condition)| {
                let text = format!("{} => {}", pad(&condition, width), arm.outcome.name);
                self.leaf(text, arm.span)
            })
            .collect();
        self.block(
            format!("decide {}", decide.target.name),
            span,
            decide.target.span,
            children,
        )
    }

    fn table(&self, span: Span, table: &Table) -> Node {
        let keys: Vec<String> = table.keys.iter().map(expr_string).collect();
        let head = format!(
            "table {}({}) -> {}",
            table.name.name,
            keys.join(", "),
            type_string(&table.result)
        );
        let cells: Vec<Vec<String>> = table
            .rows
            .iter()
            .map(|row| row.patterns.iter().map(pattern_string).collect())
            .collect();
        // Width of each pattern column, comma included, over the rows where another
        // column follows it; the last column is aligned by padding up to `=>`.
        let mut widths: Vec<usize> = Vec::new();
        for row in &cells {
            for (column, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
                if widths.len() <= column {
                    widths.resize(column + 1, 0);
                }
                if let Some(width) = widths.get_mut(column) {
                    *width = (*width).max(cell.chars().count() + 1);
                }
            }
        }
        let prefixes: Vec<String> = cells
            .iter()
            .map(|row| {
                let mut prefix = String::new();
                for (column, cell) in row.iter().enumerate() {
                    if column + 1 < row.len() {
                        prefix.push_str(&pad(
                            &format!("{cell},"),
                            widths.get(column).copied().unwrap_or(0),
                        ));
                        prefix.push(' ');
                    } else {
                        prefix.push_str(cell);
                    }
                }
                prefix
            })
            .collect();
        let width = prefixes
            .iter()
            .map(|p| p.chars().count())
            .max()
            .unwrap_or(0);
        let children = table
            .rows
            .iter()
            .zip(prefixes)
            .enumerate()
            .map(|(index, (row, prefix))| {
                // A row value followed by a row that starts with a comparison pattern
                // (`< ¥99 => ...`) would swallow it as `value < ¥99` unless the value is
                // a comparison or tighter.
                let next_compares = table
                    .rows
                    .get(index + 1)
                    .and_then(|next| next.patterns.first())
                    .is_some_and(|pattern| matches!(pattern.kind, PatternKind::Compare(..)));
                let mut text = format!("{} => ", pad(&prefix, width));
                write_expr(&mut text, &row.value, if next_compares { CMP } else { IF });
                self.leaf(text, row.span)
            })
            .collect();
        self.block(head, span, table.result.span, children)
    }

    fn test_clause(&self, clause: &Clause<TestClause>) -> Node {
        let start = clause.span.start;
        match &clause.kind {
            TestClause::Given(value) => match &value.kind {
                ValueKind::Object(fields) if !fields.is_empty() => Node {
                    text: "given {".to_string(),
                    anchor: Span {
                        start,
                        end: value.span.start.saturating_add(1).max(start),
                    },
                    block: Some(Block {
                        children: self.fields(fields, 2),
                        close: "}".to_string(),
                        close_anchor: self.closer(value.span),
                    }),
                },
                _ => self.leaf(format!("given {}", value_string(value)), clause.span),
            },
            TestClause::Counter { call, value } => self.value_node(
                format!("counter {} = ", expr_string(call)),
                value,
                "",
                1,
                start,
            ),
            TestClause::List { name, items } => {
                self.value_node(format!("list {} = ", name.name), items, "", 1, start)
            }
            TestClause::Used { kind, rule, value } => {
                let kind = match kind {
                    UsedKind::Budget => "budget",
                    UsedKind::Limit => "limit",
                };
                self.value_node(format!("used {kind} {} = ", rule.name), value, "", 1, start)
            }
            TestClause::Expect(expectation) => self.leaf(
                format!("expect {}", expectation_string(expectation)),
                clause.span,
            ),
        }
    }

    fn fields(&self, fields: &[(Ident, Value)], depth: usize) -> Vec<Node> {
        let last = fields.len().saturating_sub(1);
        fields
            .iter()
            .enumerate()
            .map(|(index, (name, value))| {
                let comma = if index < last { "," } else { "" };
                self.value_node(
                    format!("{}: ", name.name),
                    value,
                    comma,
                    depth,
                    name.span.start,
                )
            })
            .collect()
    }

    fn elements(&self, items: &[Value], depth: usize) -> Vec<Node> {
        let last = items.len().saturating_sub(1);
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let comma = if index < last { "," } else { "" };
                self.value_node(String::new(), item, comma, depth, item.span.start)
            })
            .collect()
    }

    /// `prefix value suffix` on one line if it fits at `depth`, else the object or array
    /// broken one field or element per line.
    fn value_node(
        &self,
        prefix: String,
        value: &Value,
        suffix: &str,
        depth: usize,
        start: u32,
    ) -> Node {
        let inline = format!("{prefix}{}{suffix}", value_string(value));
        let fits = INDENT.len() * depth + inline.chars().count() <= MAX_WIDTH;
        let (open, close, children) = match &value.kind {
            ValueKind::Object(fields) if !fits && !fields.is_empty() => {
                ("{", "}", self.fields(fields, depth + 1))
            }
            ValueKind::Array(items) if !fits && !items.is_empty() => {
                ("[", "]", self.elements(items, depth + 1))
            }
            _ => {
                return Node {
                    text: inline,
                    anchor: self.anchor(start, value.span),
                    block: None,
                }
            }
        };
        Node {
            text: format!("{prefix}{open}"),
            anchor: Span {
                start,
                end: value.span.start.saturating_add(1).max(start),
            },
            block: Some(Block {
                children,
                close: format!("{close}{suffix}"),
                close_anchor: self.closer(value.span),
            }),
        }
    }
}

fn pad(text: &str, width: usize) -> String {
    let mut padded = text.to_string();
    for _ in text.chars().count()..width {
        padded.push(' ');
    }
    padded
}

// ---- clauses ------------------------------------------------------------------------

fn promotion_clause(clause: &PromotionClause) -> String {
    match clause {
        PromotionClause::Priority(priority) => format!("priority {priority}"),
        PromotionClause::Group { name, exclusive } => {
            let exclusive = if *exclusive { " exclusive" } else { "" };
            format!("group {}{exclusive}", name.name)
        }
        PromotionClause::When(condition) => format!("when {}", expr_string(condition)),
        PromotionClause::Then(action) => format!("then {}", action_string(action)),
        PromotionClause::Limit { count, period } => {
            let mut text = format!("limit {count} per customer");
            if let Some(period) = period {
                text.push_str(" per ");
                text.push_str(&period.name);
            }
            text
        }
        PromotionClause::Budget(budget) => format!("budget {}", expr_string(budget)),
    }
}

fn action_string(action: &Action) -> String {
    let mut text = String::new();
    match action {
        Action::DiscountOrder { amount, cap } => {
            text.push_str("discount order ");
            write_expr(&mut text, amount, IF);
            write_cap(&mut text, cap.as_ref());
        }
        Action::DiscountItems {
            filter,
            amount,
            cap,
        } => {
            text.push_str("discount items");
            write_filter(&mut text, filter.as_ref());
            text.push_str(" by ");
            write_expr(&mut text, amount, IF);
            write_cap(&mut text, cap.as_ref());
        }
        Action::Gift { sku, qty } => {
            text.push_str("gift ");
            write_expr(&mut text, sku, IF);
            if let Some(qty) = qty {
                text.push_str(" qty ");
                write_expr(&mut text, qty, IF);
            }
        }
        Action::PointsMultiplier(multiplier) => {
            text.push_str("points multiplier ");
            write_expr(&mut text, multiplier, IF);
        }
    }
    text
}

fn write_cap(out: &mut String, cap: Option<&Expr>) {
    if let Some(cap) = cap {
        out.push_str(" max ");
        write_expr(out, cap, IF);
    }
}

fn route_clause(clause: &RouteClause) -> String {
    match clause {
        RouteClause::Consider(candidates) => {
            let candidates: Vec<String> = candidates.iter().map(candidate_string).collect();
            format!("consider {}", candidates.join(", "))
        }
        RouteClause::Score(score) => format!("score {}", expr_string(score)),
        RouteClause::PreferFewerSplits => "prefer fewer splits".to_string(),
        RouteClause::Exclude { kind, condition } => {
            let mut text = "exclude".to_string();
            if let Some(kind) = kind {
                text.push(' ');
                text.push_str(&kind.name);
            }
            if let Some(condition) = condition {
                text.push_str(" when ");
                write_expr(&mut text, condition, IF);
            }
            text
        }
    }
}

fn candidate_string(candidate: &Candidate) -> String {
    let mut text = candidate.kind.name.clone();
    if let Some(within) = &candidate.within {
        text.push_str(" within ");
        write_expr(&mut text, within, IF);
    }
    if let Some(condition) = &candidate.condition {
        text.push_str(" when ");
        write_expr(&mut text, condition, IF);
    }
    text
}

fn constraint_clause(clause: &ConstraintClause) -> String {
    match clause {
        ConstraintClause::When(condition) => format!("when {}", expr_string(condition)),
        ConstraintClause::ForbidMode(modes) => format!("forbid mode {}", names(modes)),
        ConstraintClause::RequireMode(mode) => format!("require mode {}", mode.name),
        ConstraintClause::RequirePackaging(packaging) => {
            format!("require packaging {}", quote(&packaging.value))
        }
        ConstraintClause::Block(reason) => format!("block {}", quote(&reason.value)),
    }
}

fn risk_clause(clause: &RiskClause) -> String {
    match clause {
        RiskClause::When(condition) => format!("when {}", expr_string(condition)),
        RiskClause::Score { points, reason } => {
            let mut text = format!("score {}", expr_string(points));
            if let Some(reason) = reason {
                text.push_str(" reason ");
                text.push_str(&quote(&reason.value));
            }
            text
        }
        RiskClause::Reject(reason) => format!("reject {}", quote(&reason.value)),
        RiskClause::Review(reason) => format!("review {}", quote(&reason.value)),
    }
}

fn sop_clause(clause: &SopClause) -> String {
    match clause {
        SopClause::Trigger { event, condition } => {
            let mut text = format!("on {}", event.name);
            if let Some(condition) = condition {
                text.push_str(" when ");
                write_expr(&mut text, condition, IF);
            }
            text
        }
        SopClause::Step(step) => {
            let mut text = format!(
                "step {} role {} within {}",
                step.name.name,
                step.role.name,
                expr_string(&step.within)
            );
            if let Some(instructions) = &step.instructions {
                text.push(' ');
                text.push_str(&quote(&instructions.value));
            }
            if !step.requires.is_empty() {
                text.push_str(" requires ");
                text.push_str(&names(&step.requires));
            }
            text
        }
        SopClause::OnTimeoutEscalate(role) => format!("on timeout escalate {}", role.name),
    }
}

fn expectation_string(expectation: &Expectation) -> String {
    match expectation {
        Expectation::NoDiscount => "no discount".to_string(),
        Expectation::NoGift => "no gift".to_string(),
        Expectation::NoRoute => "no route".to_string(),
        Expectation::NoSop => "no sop".to_string(),
        Expectation::NoBlock => "no block".to_string(),
        Expectation::Fired(rule) => format!("fired {}", rule.name),
        Expectation::NotFired(rule) => format!("not fired {}", rule.name),
        Expectation::Discount(amount) => format!("discount {}", expr_string(amount)),
        Expectation::Gift { sku, qty } => {
            let mut text = format!("gift {}", quote(&sku.value));
            if let Some(qty) = qty {
                text.push_str(" qty ");
                write_expr(&mut text, qty, IF);
            }
            text
        }
        Expectation::PointsMultiplier(multiplier) => {
            format!("points multiplier {}", expr_string(multiplier))
        }
        Expectation::RiskScore(score) => format!("risk score {}", expr_string(score)),
        Expectation::Risk(outcome) => format!("risk {}", outcome.name),
        Expectation::Route(route) => format!("route {}", quote(&route.value)),
        Expectation::Blocked => "blocked".to_string(),
        Expectation::ForbidMode(mode) => format!("forbid mode {}", mode.name),
        Expectation::Packaging(packaging) => format!("packaging {}", quote(&packaging.value)),
        Expectation::Mode(mode) => format!("mode {}", mode.name),
        Expectation::Sop(sop) => format!("sop {}", sop.name),
    }
}

fn names(idents: &[Ident]) -> String {
    let names: Vec<&str> = idents.iter().map(|ident| ident.name.as_str()).collect();
    names.join(", ")
}

fn type_string(ty: &TypeExpr) -> String {
    match &ty.kind {
        TypeExprKind::Named(name) => name.name.clone(),
        TypeExprKind::Enum(variants) => format!("enum({})", names(variants)),
        TypeExprKind::List(item) => format!("list<{}>", type_string(item)),
    }
}

fn pattern_string(pattern: &Pattern) -> String {
    match &pattern.kind {
        PatternKind::Wildcard => "_".to_string(),
        PatternKind::Equals(value) => expr_string(value),
        PatternKind::Compare(op, operand) => {
            let mut text = format!("{} ", op.symbol());
            write_expr(&mut text, operand, NEG);
            text
        }
    }
}

// ---- expressions --------------------------------------------------------------------

// Binding levels, loosest first: an operand printed where a tighter level is required
// gets parentheses.
const IF: u8 = 0;
const OR: u8 = 1;
const AND: u8 = 2;
const NOT: u8 = 3;
const CMP: u8 = 4;
const ADD: u8 = 5;
const MUL: u8 = 6;
const NEG: u8 = 7;
const FIELD: u8 = 8;
const PRIMARY: u8 = 9;

fn binary_level(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => OR,
        BinaryOp::And => AND,
        BinaryOp::Add | BinaryOp::Sub => ADD,
        BinaryOp::Mul | BinaryOp::Div => MUL,
    }
}

fn level(expr: &Expr) -> u8 {
    match &expr.kind {
        ExprKind::If(..) => IF,
        ExprKind::Binary(op, ..) => binary_level(*op),
        ExprKind::Unary(UnaryOp::Not, _) => NOT,
        ExprKind::Compare(..) => CMP,
        ExprKind::Unary(UnaryOp::Neg, _) => NEG,
        ExprKind::Field(..) => FIELD,
        // A negative literal (only test values have them) reads back as a negation.
        ExprKind::Literal(literal) if is_negative(literal) => NEG,
        _ => PRIMARY,
    }
}

fn expr_string(expr: &Expr) -> String {
    let mut text = String::new();
    write_expr(&mut text, expr, IF);
    text
}

fn write_list(out: &mut String, exprs: &[Expr]) {
    for (index, expr) in exprs.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        write_expr(out, expr, IF);
    }
}

/// Writes `expr` where the grammar expects binding level `min` or tighter.
fn write_expr(out: &mut String, expr: &Expr, min: u8) {
    if level(expr) < min {
        out.push('(');
        write_expr(out, expr, IF);
        out.push(')');
        return;
    }
    match &expr.kind {
        ExprKind::Literal(literal) => write_literal(out, literal),
        ExprKind::Name(name) => out.push_str(&name.name),
        ExprKind::Field(base, field) => {
            write_expr(out, base, FIELD);
            out.push('.');
            out.push_str(&field.name);
        }
        ExprKind::List(items) => {
            out.push('[');
            write_list(out, items);
            out.push(']');
        }
        ExprKind::Unary(UnaryOp::Not, operand) => {
            out.push_str("not ");
            write_expr(out, operand, NOT);
        }
        ExprKind::Unary(UnaryOp::Neg, operand) => {
            out.push('-');
            write_expr(out, operand, NEG);
        }
        ExprKind::Binary(op, left, right) => {
            // Left-associative: the right operand must bind tighter.
            let op_level = binary_level(*op);
            write_expr(out, left, op_level);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            write_expr(out, right, op_level + 1);
        }
        ExprKind::Compare(op, left, right) => {
            // Non-associative: neither side may be a comparison itself.
            write_expr(out, left, ADD);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            write_expr(out, right, ADD);
        }
        ExprKind::If(condition, then, otherwise) => {
            out.push_str("if ");
            write_expr(out, condition, IF);
            out.push_str(" then ");
            write_expr(out, then, IF);
            out.push_str(" else ");
            write_expr(out, otherwise, IF);
        }
        ExprKind::Quantifier {
            kind,
            var,
            collection,
            filter,
        } => {
            out.push_str(kind.keyword());
            out.push('(');
            out.push_str(&var.name);
            out.push_str(" in ");
            write_expr(out, collection, IF);
            write_filter(out, filter.as_deref());
            out.push(')');
        }
        ExprKind::Sum {
            body,
            var,
            collection,
            filter,
        } => {
            out.push_str("sum(");
            write_expr(out, body, IF);
            out.push_str(" for ");
            out.push_str(&var.name);
            out.push_str(" in ");
            write_expr(out, collection, IF);
            write_filter(out, filter.as_deref());
            out.push(')');
        }
        ExprKind::Call(name, args) => {
            out.push_str(&name.name);
            out.push('(');
            write_list(out, args);
            out.push(')');
        }
        ExprKind::Paren(inner) => {
            out.push('(');
            write_expr(out, inner, IF);
            out.push(')');
        }
        // Only an AST with parse errors holds this, and such files are not formatted;
        // print something that cannot parse rather than something that means else.
        ExprKind::Error => out.push_str("<error>"),
    }
}

fn write_filter(out: &mut String, filter: Option<&Expr>) {
    if let Some(filter) = filter {
        out.push_str(" where ");
        write_expr(out, filter, IF);
    }
}

fn is_negative(literal: &Literal) -> bool {
    match literal {
        Literal::Number(amount) | Literal::Percent(amount) => amount.starts_with('-'),
        Literal::Money { amount, .. } | Literal::Quantity { amount, .. } => amount.starts_with('-'),
        _ => false,
    }
}

fn write_literal(out: &mut String, literal: &Literal) {
    match literal {
        Literal::Bool(true) => out.push_str("true"),
        Literal::Bool(false) => out.push_str("false"),
        Literal::None => out.push_str("none"),
        Literal::Number(amount) => out.push_str(amount),
        Literal::Money { symbol, amount } => {
            // The parser keeps a test value's sign in the amount; it is written first.
            match amount.strip_prefix('-') {
                Some(magnitude) => {
                    out.push('-');
                    out.push_str(symbol);
                    out.push_str(magnitude);
                }
                None => {
                    out.push_str(symbol);
                    out.push_str(amount);
                }
            }
        }
        Literal::Percent(amount) => {
            out.push_str(amount);
            out.push('%');
        }
        Literal::Quantity { amount, unit } => {
            out.push_str(amount);
            out.push(' ');
            out.push_str(unit.symbol());
        }
        Literal::String(text) => out.push_str(&quote(text)),
        Literal::DateTime(text) => out.push_str(text),
    }
}

fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for ch in text.chars() {
        match ch {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            ch if ch.is_control() => quoted.push_str(&format!("\\u{{{:04X}}}", ch as u32)),
            ch => quoted.push(ch),
        }
    }
    quoted.push('"');
    quoted
}

// ---- test values --------------------------------------------------------------------

fn value_string(value: &Value) -> String {
    let mut text = String::new();
    write_value(&mut text, value);
    text
}

fn write_value(out: &mut String, value: &Value) {
    match &value.kind {
        ValueKind::Object(fields) if fields.is_empty() => out.push_str("{}"),
        ValueKind::Object(fields) => {
            out.push_str("{ ");
            for (index, (name, value)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                out.push_str(&name.name);
                out.push_str(": ");
                write_value(out, value);
            }
            out.push_str(" }");
        }
        ValueKind::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        ValueKind::Literal(literal) => write_literal(out, literal),
        ValueKind::Variant(name) => out.push_str(&name.name),
    }
}

// ---- lines, comments and blank lines ------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    Open,
    Close,
}

struct Line {
    depth: usize,
    text: String,
    anchor: Span,
    role: Role,
    /// First thing in the file or in a block: no blank line before it (or before its
    /// leading comments).
    first: bool,
    /// Separates two items that need a blank line between them.
    force_blank: bool,
    /// Own-line comments before this line, each with whether a blank line preceded it.
    leading: Vec<(String, bool)>,
    /// Whether the source had a blank line just before this line's code.
    blank: bool,
    trailing: Option<String>,
    /// Comments from inside this line's construct, printed on their own lines after it.
    after: Vec<String>,
}

fn flatten(node: Node, depth: usize, first: bool, force_blank: bool, out: &mut Vec<Line>) {
    let line = |text: String, anchor: Span, role: Role, first: bool, force_blank: bool| Line {
        depth,
        text,
        anchor,
        role,
        first,
        force_blank,
        leading: Vec::new(),
        blank: false,
        trailing: None,
        after: Vec::new(),
    };
    match node.block {
        None => out.push(line(
            node.text,
            node.anchor,
            Role::Plain,
            first,
            force_blank,
        )),
        Some(block) => {
            out.push(line(node.text, node.anchor, Role::Open, first, force_blank));
            let empty = block.children.is_empty();
            for (index, child) in block.children.into_iter().enumerate() {
                flatten(child, depth + 1, index == 0, false, out);
            }
            out.push(line(
                block.close,
                block.close_anchor,
                Role::Close,
                empty,
                false,
            ));
        }
    }
}

/// Assigns every comment to a line (leading, trailing or after) or to the end of the
/// file, which is returned; and records where the source had blank lines.
fn place_comments(
    lines: &mut [Line],
    comments: &[Comment],
    src: &Source<'_>,
) -> Vec<(String, bool)> {
    let mut sorted: Vec<&Comment> = comments.iter().collect();
    sorted.sort_by_key(|comment| (comment.span.start, comment.span.end));
    let mut queue = sorted.into_iter().peekable();
    let mut cursor = 0u32;
    let mut previous: Option<usize> = None;
    for index in 0..lines.len() {
        let Some(anchor) = lines.get(index).map(|line| line.anchor) else {
            continue;
        };
        while let Some(comment) = queue.next_if(|comment| comment.span.start < anchor.start) {
            let text = comment.text.trim_end().to_string();
            // A comment after code stays on the line of that code.
            let slot = if src.own_line(comment.span.start) {
                None
            } else {
                previous
                    .and_then(|p| lines.get_mut(p))
                    .filter(|line| line.trailing.is_none())
            };
            match slot {
                Some(line) => line.trailing = Some(text),
                None => {
                    let blank = src.blank_between(cursor, comment.span.start);
                    if let Some(line) = lines.get_mut(index) {
                        line.leading.push((text, blank));
                    }
                }
            }
            cursor = cursor.max(comment.span.end);
        }
        let blank = src.blank_between(cursor, anchor.start);
        if let Some(line) = lines.get_mut(index) {
            line.blank = blank;
            while let Some(comment) = queue.next_if(|comment| comment.span.start < anchor.end) {
                line.after.push(comment.text.trim_end().to_string());
                cursor = cursor.max(comment.span.end);
            }
        }
        cursor = cursor.max(anchor.end);
        previous = Some(index);
    }
    let mut end = Vec::new();
    for comment in queue {
        let text = comment.text.trim_end().to_string();
        let slot = if src.own_line(comment.span.start) {
            None
        } else {
            previous
                .and_then(|p| lines.get_mut(p))
                .filter(|line| line.trailing.is_none())
        };
        match slot {
            Some(line) => line.trailing = Some(text),
            None => end.push((text, src.blank_between(cursor, comment.span.start))),
        }
        cursor = cursor.max(comment.span.end);
    }
    end
}

fn emit(lines: &[Line], end_comments: &[(String, bool)]) -> String {
    let mut out: Vec<String> = Vec::new();
    let blank_line = |out: &mut Vec<String>| {
        if out.last().is_some_and(|last| !last.is_empty()) {
            out.push(String::new());
        }
    };
    let comment_line = |depth: usize, text: &str| format!("{}//{text}", INDENT.repeat(depth));
    for line in lines {
        // The line's group is its leading comments and then its code; blank lines are
        // decided for the group as a whole.
        let mut blanks: Vec<bool> = line.leading.iter().map(|(_, blank)| *blank).collect();
        blanks.push(line.blank && line.role != Role::Close);
        if line.first {
            if let Some(blank) = blanks.first_mut() {
                *blank = false;
            }
        }
        if line.force_blank && !blanks.contains(&true) {
            if let Some(blank) = blanks.first_mut() {
                *blank = true;
            }
        }
        let mut blanks = blanks.into_iter();
        // Comments before a `}` belong to the block's body.
        let leading_depth = if line.role == Role::Close {
            line.depth + 1
        } else {
            line.depth
        };
        for (text, _) in &line.leading {
            if blanks.next() == Some(true) {
                blank_line(&mut out);
            }
            out.push(comment_line(leading_depth, text));
        }
        if blanks.next() == Some(true) {
            blank_line(&mut out);
        }
        let mut code = format!("{}{}", INDENT.repeat(line.depth), line.text)
            .trim_end()
            .to_string();
        if let Some(text) = &line.trailing {
            code.push_str("  //");
            code.push_str(text);
        }
        out.push(code);
        let after_depth = if line.role == Role::Open {
            line.depth + 1
        } else {
            line.depth
        };
        for text in &line.after {
            out.push(comment_line(after_depth, text));
        }
    }
    for (text, blank) in end_comments {
        if *blank {
            blank_line(&mut out);
        }
        out.push(comment_line(0, text));
    }
    if out.is_empty() {
        return String::new();
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}
