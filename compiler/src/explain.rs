//! What `--explain` shows: every rule with where its condition is, the value of each
//! clause of the condition, and the value of every fact path and counter its conditions
//! read — evaluated by the reference interpreter ([`Probe`]) over the same encoded input
//! and runtime lists the engines saw.

use crate::abi::{self, Facts, Interner};
use crate::evaluate::Context;
use crate::interp::{Machine, Trap};
use crate::lists::{ListMembers, Lists};
use crate::numeric::ABSENT;
use crate::Compiled;
use std::sync::Arc;
use weir_dsl::checked::{Action, Origin, Ruleset, TExpr, TExprKind};
use weir_dsl::types::Type;

/// A fact value a rule's conditions read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub rule: String,
    /// `order.subtotal`, or `orders(customer.device, 3600 s)` /
    /// `customers(order.address, 2592000 s)` for a counter.
    pub path: String,
    /// The value as text (`¥299.00`, `30 km`, `none`).
    pub value: String,
}

/// Every rule: name, kind, and where its condition is (file, span), if it has one.
pub fn rules(ruleset: &Ruleset) -> Vec<(String, &'static str, Option<Origin>)> {
    let at = |origin: Origin, when: Option<&TExpr>| {
        when.map(|w| Origin {
            file: origin.file,
            span: w.span,
        })
    };
    let mut out = Vec::new();
    for p in &ruleset.promotions {
        out.push((p.name.clone(), "promotion", at(p.origin, p.when.as_ref())));
    }
    if let Some(r) = &ruleset.route {
        out.push((r.name.clone(), "route", None));
    }
    for c in &ruleset.constraints {
        out.push((c.name.clone(), "constraint", at(c.origin, c.when.as_ref())));
    }
    for r in &ruleset.risks {
        out.push((r.name.clone(), "risk", at(r.origin, r.when.as_ref())));
    }
    for s in &ruleset.sops {
        out.push((s.name.clone(), "sop", at(s.origin, s.when.as_ref())));
    }
    out
}

/// Fact paths (rooted at `order`, `customer`, ... — not at a quantifier variable) and
/// counters in an expression.
fn paths<'a>(e: &'a TExpr, out: &mut Vec<&'a TExpr>) {
    match &e.kind {
        TExprKind::Field(..) if rooted(e) => out.push(e),
        TExprKind::Velocity(_) => out.push(e),
        _ => {
            for child in e.children() {
                paths(child, out);
            }
        }
    }
}

fn rooted(e: &TExpr) -> bool {
    match &e.kind {
        TExprKind::Root(_) => true,
        TExprKind::Field(base, _) => rooted(base),
        _ => false,
    }
}

fn conditions(ruleset: &Ruleset) -> Vec<(String, Vec<&TExpr>)> {
    let mut out = Vec::new();
    for p in &ruleset.promotions {
        let mut exprs: Vec<&TExpr> = p.when.iter().collect();
        for action in &p.actions {
            if let Action::DiscountItems {
                filter: Some(f), ..
            } = action
            {
                exprs.push(f);
            }
        }
        out.push((p.name.clone(), exprs));
    }
    for c in &ruleset.constraints {
        out.push((c.name.clone(), c.when.iter().collect()));
    }
    for r in &ruleset.risks {
        out.push((r.name.clone(), r.when.iter().collect()));
    }
    for s in &ruleset.sops {
        out.push((s.name.clone(), s.when.iter().collect()));
    }
    out
}

/// The reference interpreter over one evaluation's encoded facts and runtime lists:
/// evaluates a rule's parts (fact paths, clauses) on their own, as the engines saw them.
pub struct Probe<'a> {
    ruleset: &'a Ruleset,
    compiled: &'a Compiled,
    interner: Arc<Interner>,
    input: Vec<u8>,
    lists: Vec<(usize, Arc<ListMembers>)>,
}

impl<'a> Probe<'a> {
    /// `None` if the facts do not encode (the evaluation itself then failed first).
    pub fn new(
        ruleset: &'a Ruleset,
        compiled: &'a Compiled,
        facts: &Facts,
        context: &Context,
    ) -> Option<Probe<'a>> {
        let mut interner = Interner::new(&compiled.manifest.strings);
        let input = abi::encode(ruleset, facts, &mut interner).ok()?;
        Some(Probe {
            ruleset,
            compiled,
            interner: Arc::new(interner),
            input,
            lists: context.lists.clone(),
        })
    }

    /// `None` if `e` cannot be evaluated on its own.
    fn eval(&mut self, e: &TExpr) -> Option<Result<i64, Trap>> {
        let (ir, interner) =
            crate::lower::lower_expr(self.ruleset, e, (*self.interner).clone()).ok()?;
        // Lowering may intern a literal the module's table lacks (a rule folded away),
        // so the lists resolve ids with the interner as it is now.
        self.interner = Arc::new(interner);
        let lists = Lists::new(&self.lists, self.interner.clone());
        Some(Machine::new(&self.compiled.program, &self.input, &lists).eval(&ir))
    }

    /// The values every rule's conditions read.
    pub fn fact_values(&mut self) -> Vec<Seen> {
        let ruleset = self.ruleset;
        let mut seen = Vec::new();
        for (rule, exprs) in conditions(ruleset) {
            let mut found = Vec::new();
            for e in exprs {
                paths(e, &mut found);
            }
            let mut done: Vec<String> = Vec::new();
            for e in found {
                let path = describe_path(e, ruleset);
                if done.contains(&path) {
                    continue;
                }
                done.push(path.clone());
                let value = match self.eval(e) {
                    None => continue,
                    Some(Ok(word)) => format_word(word, &e.ty, ruleset, &self.interner),
                    Some(Err(trap)) => format!("<{trap}>"),
                };
                seen.push(Seen {
                    rule: rule.clone(),
                    path,
                    value,
                });
            }
        }
        seen
    }

    /// The value of every clause of every rule's `when` ([`clauses`]).
    pub fn clause_values(&mut self) -> Vec<Clause> {
        let mut out = Vec::new();
        for (rule, origin, when) in whens(self.ruleset) {
            let mut parts = Vec::new();
            clauses(when, &mut parts);
            for clause in parts {
                let value = match self.eval(clause) {
                    None => continue,
                    Some(Ok(word)) => (word != 0).to_string(),
                    Some(Err(trap)) => format!("<{trap}>"),
                };
                out.push(Clause {
                    rule: rule.to_owned(),
                    at: Origin {
                        file: origin.file,
                        span: clause.span,
                    },
                    value,
                });
            }
        }
        out
    }
}

/// One clause of a rule's condition and the value it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub rule: String,
    /// Where the clause is written (file, span), for the caller to quote it.
    pub at: Origin,
    /// `true` or `false`, or `<trap>` if evaluating it failed.
    pub value: String,
}

/// The rules with a `when`: name, where the rule is, the condition.
fn whens(ruleset: &Ruleset) -> Vec<(&str, Origin, &TExpr)> {
    let promotions = ruleset
        .promotions
        .iter()
        .map(|p| (&p.name, p.origin, &p.when));
    let constraints = ruleset
        .constraints
        .iter()
        .map(|c| (&c.name, c.origin, &c.when));
    let risks = ruleset.risks.iter().map(|r| (&r.name, r.origin, &r.when));
    let sops = ruleset.sops.iter().map(|s| (&s.name, s.origin, &s.when));
    promotions
        .chain(constraints)
        .chain(risks)
        .chain(sops)
        .filter_map(|(name, origin, when)| when.as_ref().map(|w| (name.as_str(), origin, w)))
        .collect()
}

/// The clauses of `when`: the operands of its top-level chain of `and` (or of `or`);
/// a condition that is neither is one clause.
fn clauses<'a>(when: &'a TExpr, out: &mut Vec<&'a TExpr>) {
    match &when.kind {
        TExprKind::And(..) => split(when, true, out),
        TExprKind::Or(..) => split(when, false, out),
        _ => out.push(when),
    }
}

fn split<'a>(e: &'a TExpr, and: bool, out: &mut Vec<&'a TExpr>) {
    match &e.kind {
        TExprKind::And(a, b) if and => {
            split(a, and, out);
            split(b, and, out);
        }
        TExprKind::Or(a, b) if !and => {
            split(a, and, out);
            split(b, and, out);
        }
        _ => out.push(e),
    }
}

fn describe_path(e: &TExpr, ruleset: &Ruleset) -> String {
    match &e.kind {
        TExprKind::Velocity(i) => ruleset.velocities.get(*i).map_or_else(
            || "orders(...)".to_string(),
            |v| format!("{}({}, {} s)", v.kind.name(), v.key_path, v.window_seconds),
        ),
        _ => weir_dsl::check::field_path(e, &ruleset.schema).unwrap_or_else(|| "?".to_string()),
    }
}

fn format_word(word: i64, ty: &Type, ruleset: &Ruleset, interner: &Interner) -> String {
    if word == ABSENT && matches!(ty, Type::Optional(_)) {
        return "none".to_string();
    }
    let scaled = |v: i64| {
        let text = format!("{}.{:06}", v / 1_000_000, (v % 1_000_000).unsigned_abs());
        let text = text.trim_end_matches('0').trim_end_matches('.').to_string();
        if v < 0 && v > -1_000_000 {
            format!("-{text}")
        } else {
            text
        }
    };
    match ty.strip_optional() {
        Type::Bool => (word != 0).to_string(),
        Type::Int => word.to_string(),
        Type::Decimal => scaled(word),
        Type::Percent => format!("{}%", scaled(word.saturating_mul(100))),
        Type::Money => {
            let digits = ruleset.currency.minor_digits;
            let symbol = ruleset.currency.main_symbol();
            if digits == 0 {
                format!("{symbol}{word}")
            } else {
                let scale = 10_u64.pow(digits);
                let sign = if word < 0 { "-" } else { "" };
                let a = word.unsigned_abs();
                format!(
                    "{sign}{symbol}{}.{:0w$}",
                    a / scale,
                    a % scale,
                    w = digits as usize
                )
            }
        }
        Type::Quantity(d) => format!("{} {}", scaled(word), d.base_unit().symbol()),
        Type::String => interner
            .resolve(word)
            .map_or_else(|| format!("#{word}"), |s| format!("\"{s}\"")),
        Type::Enum(id) => ruleset
            .schema
            .enum_def(*id)
            .and_then(|def| {
                usize::try_from(word)
                    .ok()
                    .and_then(|i| def.variants.get(i))
                    .cloned()
            })
            .unwrap_or_else(|| word.to_string()),
        Type::Time => chrono::DateTime::from_timestamp(word, 0)
            .map_or_else(|| word.to_string(), |t| t.to_rfc3339()),
        Type::List(_) => {
            let (_, count) = abi::unpack(word);
            format!(
                "{count} {}",
                if count == 1 { "element" } else { "elements" }
            )
        }
        _ => word.to_string(),
    }
}
