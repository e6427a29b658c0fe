//! The differential property test's generator and checker: random well-typed rulesets
//! and random facts, run through the reference interpreter and the compiled WebAssembly
//! module; both must produce the same output words, or both must fail. Every module
//! built here is also validated by wasmparser (inside `weir_compiler::build`); every
//! ruleset is formatted and must compile to the same module bytes again; and every
//! decision must keep the rules of docs/semantics.md and agree with what `--explain`
//! shows (docs/architecture.md, `tests/`).
//!
//! CI runs [`Config::default`] (`tests/tests/differential.rs`); long runs use the
//! `weir-diff` binary (`--cases`, `--facts`, `--seed`, `--replay`, `--jobs`), see
//! docs/architecture.md (`tests/`).

use std::sync::Arc;
use weir_compiler::abi::Facts;
use weir_compiler::evaluate::{evaluate, Context, Interpreter};
use weir_compiler::lists::ListMembers;
use weir_dsl::checked::Value;
use weir_dsl::schema::{Context as Scope, Root};
use weir_dsl::types::Dimension;
use weir_runtime::evaluator::WasmEngine;
use weir_runtime::Engine;

/// How much to compare.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Random rulesets to generate (the `--cases` of `weir-diff`).
    pub rulesets: u64,
    /// Random fact sets evaluated against each ruleset.
    pub facts_per_ruleset: u64,
    /// The base seed; ruleset `n` is generated from [`ruleset_seed`]`(seed, n)`.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rulesets: 400,
            facts_per_ruleset: 12,
            seed: 0x5EED,
        }
    }
}

/// What a run compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Evaluations run through both engines.
    pub compared: u64,
    /// Of those, the ones both engines finished (the rest both stopped with an error).
    pub both_ok: u64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.compared += other.compared;
        self.both_ok += other.both_ok;
    }
}

/// A case the engines do not agree on, or a generator or set-up failure. Every variant
/// that comes from a ruleset names its seed: `weir-diff --replay SEED` runs it again.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(
        "ruleset seed {seed}: the generator made an ill-typed ruleset:\n{text}\n{diagnostics}"
    )]
    IllTyped {
        seed: u64,
        text: String,
        diagnostics: String,
    },
    #[error("ruleset seed {seed}: the compiler failed: {error}\n{text}")]
    Build {
        seed: u64,
        text: String,
        error: String,
    },
    #[error("ruleset seed {seed}: the engine could not load the module: {error}")]
    Load { seed: u64, error: String },
    #[error("ruleset seed {seed}: the engines disagree\n{text}\nfacts: {facts}\ninterpreter: {interpreter}\nwebassembly: {webassembly}")]
    Disagree {
        seed: u64,
        text: String,
        facts: String,
        interpreter: String,
        webassembly: String,
    },
    #[error("ruleset seed {seed}: formatting changed the ruleset: {what}\n{text}")]
    Format {
        seed: u64,
        text: String,
        what: String,
    },
    #[error("ruleset seed {seed}: `--explain` disagrees with the decisions: {what}\n{text}\nfacts: {facts}")]
    Explain {
        seed: u64,
        text: String,
        facts: String,
        what: String,
    },
    #[error("ruleset seed {seed}: the decisions break a rule of docs/semantics.md: {what}\n{text}\nfacts: {facts}")]
    Semantics {
        seed: u64,
        text: String,
        facts: String,
        what: String,
    },
    #[error("the generator is out of step with the schema: {0}")]
    Generator(String),
}

/// The seed of ruleset `n` of a run with base seed `seed`.
pub fn ruleset_seed(seed: u64, n: u64) -> u64 {
    seed.wrapping_add(n).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// The text of the ruleset `seed` generates (what `weir-diff --print SEED` shows).
pub fn ruleset_text(seed: u64) -> String {
    ruleset(&mut Rng(seed))
}

/// Generates the ruleset of `seed`, builds it (and its formatted text), and on
/// `facts_per_ruleset` random fact sets drawn from the same seed compares both engines,
/// checks the decisions against docs/semantics.md and `--explain` against the decisions.
pub fn check_ruleset(engine: &Engine, seed: u64, facts_per_ruleset: u64) -> Result<Tally, Failure> {
    let mut r = Rng(seed);
    let text = ruleset(&mut r);
    let out = weir_dsl::check(&[weir_dsl::SourceText {
        name: "diff.weir".into(),
        text: text.clone(),
    }]);
    let Some(rs) = out.ruleset else {
        return Err(Failure::IllTyped {
            seed,
            text,
            diagnostics: format!("{:#?}", out.diagnostics),
        });
    };
    let (compiled, wasm) = weir_compiler::build(&rs).map_err(|e| Failure::Build {
        seed,
        text: text.clone(),
        error: e.to_string(),
    })?;
    same_after_formatting(seed, &text, &wasm)?;
    let module = engine
        .precompile(&wasm)
        .and_then(|artifact| engine.load("diff", &artifact))
        .map_err(|e| Failure::Load {
            seed,
            error: e.to_string(),
        })?;
    let interpreter = Interpreter {
        compiled: &compiled,
    };
    let webassembly = WasmEngine { module: &module };
    let mut tally = Tally::default();
    for _ in 0..facts_per_ruleset {
        let facts = facts(&mut r, &rs)?;
        let mut context = Context::default();
        if r.chance(50) {
            let member = Value::String(format!("d{}", r.below(3)));
            context
                .lists
                .push((0, Arc::new(ListMembers::from_values(&[member]))));
        }
        // Some of each promotion's limit and budget already used, now and then all of it.
        for meta in &compiled.manifest.promotions {
            if let (Some((count, _)), true) = (&meta.limit, r.chance(30)) {
                let used = r.below(*count as u64 + 1) as i64;
                context.usage.limit_used.insert(meta.name.clone(), used);
            }
            if let (Some(budget), true) = (meta.budget, r.chance(30)) {
                let used = r.below(budget as u64 + 2) as i64;
                context.usage.budget_used.insert(meta.name.clone(), used);
            }
        }
        let a = evaluate(&compiled, &rs, &facts, &context, &interpreter);
        let b = evaluate(&compiled, &rs, &facts, &context, &webassembly);
        let agree = match (&a, &b) {
            (Ok(x), Ok(y)) => {
                tally.both_ok += 1;
                // The members found are what a decision record keeps of the lists.
                x.raw == y.raw && x.list_hits == y.list_hits
            }
            (Err(_), Err(_)) => true,
            _ => false,
        };
        if !agree {
            return Err(Failure::Disagree {
                seed,
                text,
                facts: format!("{facts:#?}"),
                interpreter: format!("{:?}", a.map(|e| (e.raw, e.list_hits))),
                webassembly: format!("{:?}", b.map(|e| (e.raw, e.list_hits))),
            });
        }
        // The engines agree; what they decided must also keep the documented rules.
        if let Ok(decisions) = &a {
            decisions_hold(&rs, &compiled, &facts, &context, decisions).map_err(|what| {
                Failure::Semantics {
                    seed,
                    text: text.clone(),
                    facts: format!("{facts:#?}"),
                    what,
                }
            })?;
            explain_agrees(&rs, &compiled, &facts, &context, decisions).map_err(|what| {
                Failure::Explain {
                    seed,
                    text: text.clone(),
                    facts: format!("{facts:#?}"),
                    what,
                }
            })?;
        }
        tally.compared += 1;
    }
    Ok(tally)
}

/// The combination step is shared by both engines, so the comparison above cannot see
/// its mistakes; these are the rules of docs/semantics.md any decision must keep,
/// whatever the ruleset and the facts.
fn decisions_hold(
    rs: &weir_dsl::checked::Ruleset,
    compiled: &weir_compiler::Compiled,
    facts: &Facts,
    context: &Context,
    decisions: &weir_compiler::evaluate::Decisions<'_>,
) -> Result<(), String> {
    use weir_compiler::manifest::ActionKind;
    use weir_compiler::outcome::Skip;
    let manifest = &compiled.manifest;
    let lines = line_subtotals(rs, facts).ok_or("the facts' lines could not be read")?;
    let p = decisions
        .promotions
        .as_ref()
        .ok_or("no promotion outcome")?;

    // Discounts: per line within what the line costs, and every sum the same.
    if p.line_discounts.len() != lines.len() {
        return Err(format!(
            "{} line discounts for {} lines",
            p.line_discounts.len(),
            lines.len()
        ));
    }
    for (discount, subtotal) in p.line_discounts.iter().zip(&lines) {
        if *discount < 0 || *discount > (*subtotal).max(0) {
            return Err(format!(
                "a line costing {subtotal} has a discount of {discount}"
            ));
        }
    }
    let by_line: i64 = p.line_discounts.iter().sum();
    let by_promotion: i64 = p.applied.iter().map(|a| a.discount).sum();
    if by_line != p.total_discount || by_promotion != p.total_discount {
        return Err(format!(
            "total discount {} but {by_line} over the lines and {by_promotion} over the promotions",
            p.total_discount
        ));
    }

    // Every promotion applied or skipped, once; applied in priority order; one per
    // exclusive group; within its budget.
    let meta = |name: &str| manifest.promotions.iter().find(|m| m.name == name);
    let mut seen: Vec<&str> = p.applied.iter().map(|a| a.name).collect();
    seen.extend(p.skipped.iter().map(|(name, _)| *name));
    seen.sort_unstable();
    let mut all: Vec<&str> = manifest
        .promotions
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    all.sort_unstable();
    if seen != all {
        return Err(format!(
            "promotions applied or skipped {seen:?}, not {all:?}"
        ));
    }
    let mut last_priority = i64::MAX;
    let mut groups_taken: Vec<&str> = Vec::new();
    for applied in &p.applied {
        let m = meta(applied.name).ok_or("an applied promotion the manifest lacks")?;
        if m.priority > last_priority {
            return Err(format!("{} applied after a lower priority", m.name));
        }
        last_priority = m.priority;
        if let (true, Some(group)) = (m.exclusive, m.group.as_deref()) {
            if groups_taken.contains(&group) {
                return Err(format!("two promotions of exclusive group {group} applied"));
            }
            groups_taken.push(group);
        }
        let budget_used = context.usage.budget_used.get(&m.name).copied();
        let budget_left = m.budget.map(|b| b - budget_used.unwrap_or(0));
        if applied.discount < 0 || budget_left.is_some_and(|left| applied.discount > left) {
            return Err(format!(
                "{} gave {} (budget {:?}, used {budget_used:?})",
                m.name, applied.discount, m.budget
            ));
        }
        let limit_used = context.usage.limit_used.get(&m.name).copied().unwrap_or(0);
        if m.limit
            .as_ref()
            .is_some_and(|(count, _)| limit_used >= *count)
        {
            return Err(format!("{} applied past its limit", m.name));
        }
    }
    for (name, skip) in &p.skipped {
        if let Skip::ExcludedBy(first) = skip {
            let same_group = meta(name).and_then(|m| m.group.as_deref())
                == meta(first).and_then(|m| m.group.as_deref());
            if !same_group || !p.applied.iter().any(|a| a.name == *first) {
                return Err(format!(
                    "{name} excluded by {first}, which did not take its group"
                ));
            }
        }
    }
    let gives_points = p
        .applied
        .iter()
        .any(|a| meta(a.name).is_some_and(|m| m.actions.contains(&ActionKind::PointsMultiplier)));
    if !gives_points && p.points_multiplier != weir_compiler::numeric::SCALE {
        return Err(format!(
            "points multiplier {} with no points promotion applied",
            p.points_multiplier
        ));
    }
    let mut skus: Vec<i64> = p.gifts.iter().map(|(sku, _)| *sku).collect();
    skus.sort_unstable();
    skus.dedup();
    if skus.len() != p.gifts.len() || p.gifts.iter().any(|(_, qty)| *qty < 1) {
        return Err(format!("gifts {:?}", p.gifts));
    }

    // (A ruleset without constraints, or without risk rules, has no such outcome.)
    if let Some(c) = &decisions.constraints {
        constraints_hold(c)?;
    }
    if let Some(r) = &decisions.risk {
        risk_holds(r, manifest)?;
    }

    // Route: best score first, each candidate at most once.
    if let Some(route) = &decisions.route {
        let ordered = route.ranking.windows(2).all(|w| match w {
            [(_, a), (_, b)] => a >= b,
            _ => true,
        });
        let mut indexes: Vec<usize> = route.ranking.iter().map(|(i, _)| *i).collect();
        indexes.sort_unstable();
        indexes.dedup();
        if !ordered
            || indexes.len() != route.ranking.len()
            || indexes.iter().any(|i| *i >= facts.locations.len())
        {
            return Err(format!("route ranking {:?}", route.ranking));
        }
    }
    Ok(())
}

/// A shipment goes by a mode nothing forbids, or by none when something blocks it or
/// its requirements conflict.
fn constraints_hold(c: &weir_compiler::outcome::ConstraintOutcome<'_>) -> Result<(), String> {
    let stopped = !c.blocked.is_empty() || !c.conflicts.is_empty();
    match c.mode {
        Some(mode) if stopped || c.forbidden_modes.contains(&mode) => {
            return Err(format!("mode {mode} chosen for {c:?}"));
        }
        Some(mode) if c.required_mode.is_some_and(|r| r != mode) => {
            return Err(format!(
                "mode {mode} chosen, but another is required: {c:?}"
            ));
        }
        None if !stopped && c.forbidden_modes.len() < 4 => {
            return Err(format!("no mode chosen, though some is allowed: {c:?}"));
        }
        _ => {}
    }
    Ok(())
}

/// The score is the sum of the points of the rules that fired, and a rule that rejects
/// fixes the decision.
fn risk_holds(
    r: &weir_compiler::outcome::RiskOutcome<'_>,
    manifest: &weir_compiler::manifest::Manifest,
) -> Result<(), String> {
    let points = r
        .fired
        .iter()
        .try_fold(0i64, |sum, (_, points)| sum.checked_add(*points));
    if points != Some(r.score) {
        return Err(format!("risk score {} from {:?}", r.score, r.fired));
    }
    let rejects = r.fired.iter().any(|(name, _)| {
        manifest
            .risks
            .iter()
            .any(|m| m.name == *name && m.reject.is_some())
    });
    if rejects && r.decision != weir_dsl::checked::Decision::Reject {
        return Err(format!("a rejecting rule fired, decision {:?}", r.decision));
    }
    Ok(())
}

/// price × qty of every order line of the facts.
fn line_subtotals(rs: &weir_dsl::checked::Ruleset, facts: &Facts) -> Option<Vec<i64>> {
    use weir_dsl::schema::{ITEM, ORDER};
    let Some(Value::Record(_, order)) = &facts.order else {
        return Some(Vec::new());
    };
    let (items_at, _) = rs.schema.entity(ORDER)?.field("items")?;
    let Some(Some(Value::List(items))) = order.get(items_at) else {
        return Some(Vec::new());
    };
    let item = rs.schema.entity(ITEM)?;
    let (price_at, _) = item.field("price")?;
    let (qty_at, _) = item.field("qty")?;
    items
        .iter()
        .map(|line| {
            let Value::Record(_, fields) = line else {
                return None;
            };
            let price = match fields.get(price_at) {
                Some(Some(Value::Money(m))) => *m,
                _ => 0,
            };
            let qty = match fields.get(qty_at) {
                Some(Some(Value::Int(q))) => *q,
                _ => 0,
            };
            price.checked_mul(qty)
        })
        .collect()
}

/// What `weir eval --explain` shows must agree with what was decided: the probe
/// evaluates every fact path and every clause of every condition without a panic, and
/// a promotion whose `when` is a chain of `and` (or of `or`) was eligible exactly when
/// all (any) of its clauses were true, unless a clause trapped on its own (the whole
/// condition may have short-circuited past it).
fn explain_agrees(
    rs: &weir_dsl::checked::Ruleset,
    compiled: &weir_compiler::Compiled,
    facts: &Facts,
    context: &Context,
    decisions: &weir_compiler::evaluate::Decisions<'_>,
) -> Result<(), String> {
    use weir_compiler::outcome::Skip;
    use weir_dsl::checked::TExprKind;
    let mut probe = weir_compiler::explain::Probe::new(rs, compiled, facts, context)
        .ok_or("facts that evaluated did not encode for the probe")?;
    probe.fact_values();
    let clauses = probe.clause_values();
    let Some(promotions) = &decisions.promotions else {
        return Err("no promotion outcome".into());
    };
    for promotion in &rs.promotions {
        let Some(when) = &promotion.when else {
            continue;
        };
        let values: Vec<&str> = clauses
            .iter()
            .filter(|c| c.rule == promotion.name)
            .map(|c| c.value.as_str())
            .collect();
        if values.is_empty() || values.iter().any(|v| v.starts_with('<')) {
            continue;
        }
        let holds = match &when.kind {
            TExprKind::Or(..) => values.contains(&"true"),
            _ => values.iter().all(|v| *v == "true"),
        };
        let eligible = !promotions
            .skipped
            .iter()
            .any(|(name, skip)| *name == promotion.name && *skip == Skip::NotEligible);
        if holds != eligible {
            return Err(format!(
                "promotion {}: clauses {values:?}, but eligible = {eligible}",
                promotion.name
            ));
        }
    }
    Ok(())
}

/// `weir fmt` must not change what a ruleset means: the formatted text checks, is a
/// fixed point of the formatter, and compiles to the very same module bytes.
fn same_after_formatting(seed: u64, text: &str, wasm: &[u8]) -> Result<(), Failure> {
    let failure = |what: String| Failure::Format {
        seed,
        text: text.to_string(),
        what,
    };
    let formatted = weir_dsl::fmt::format_file(text)
        .map_err(|d| failure(format!("it did not format: {d:?}")))?;
    if weir_dsl::fmt::format_file(&formatted).ok().as_ref() != Some(&formatted) {
        return Err(failure(format!(
            "formatting again changes it:\n{formatted}"
        )));
    }
    let out = weir_dsl::check(&[weir_dsl::SourceText {
        name: "diff.weir".into(),
        text: formatted.clone(),
    }]);
    let Some(rs) = out.ruleset else {
        return Err(failure(format!(
            "the formatted text does not check:\n{formatted}\n{:#?}",
            out.diagnostics
        )));
    };
    match weir_compiler::build(&rs) {
        Ok((_, again)) if again == wasm => Ok(()),
        Ok(_) => Err(failure(format!(
            "it compiles to another module:\n{formatted}"
        ))),
        Err(e) => Err(failure(format!("the formatted text does not build: {e}"))),
    }
}

/// A small deterministic generator (xorshift64*), so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick(&mut self, items: &[&'static str]) -> &'static str {
        let at = self.below(items.len() as u64) as usize;
        items.get(at).copied().unwrap_or_default()
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const PRELUDE: &str = "ruleset diff currency CNY

attribute item.flammable: bool = false
attribute item.liquid_ml: volume = 0 ml
attribute item.points: decimal = 0.5
attribute customer.tier: enum(basic, silver, gold, black) = basic
attribute customer.trust: percent = 50%
attribute item.battery_wh: energy = 0 Wh
attribute order.fulfilled_from: string = \"\"
list blocked: string

table tier_points(customer.tier, order.channel) -> int {
  gold, _ => 3
  silver, \"store\" => 2
  _, _ => 1
}

table line_rate(customer.tier, item.category) -> percent {
  gold, \"skincare\" => 10%
  black, _ => 15%
  _, \"makeup\" => 5%
  _, _ => 0%
}

table shelf(item.category) -> duration {
  \"skincare\" => 3 d
  \"tools\" => 12 h
  _ => 1 d
}

table spend_band(order.subtotal) -> money {
  >= ¥300 => ¥30
  >= ¥100 => ¥10
  _ => ¥0
}
";

const CHANNELS: &[&str] = &["tmall", "jd", "miniapp", "store", "livestream"];
const CATEGORIES: &[&str] = &["skincare", "makeup", "fragrance", "tools"];
const TIERS: &[&str] = &["basic", "silver", "gold", "black"];
const CITIES: &[&str] = &["上海", "杭州", "北京"];
const COMPARISONS: &[&str] = &["==", "!=", "<", "<=", ">", ">="];
/// Instants a few hours either side of the facts' `now` (1,790,000,000).
const TIMES: &[&str] = &[
    "2026-09-20T22:13:20+08:00",
    "2026-09-21T21:13:20+08:00",
    "2026-09-21T22:13:20+08:00",
    "2026-09-22T00:13:20+08:00",
];
/// The text fields a velocity counter may be keyed on, and some windows.
const COUNTER_KEYS: &[&str] = &[
    "customer.id",
    "customer.device",
    "customer.phone",
    "order.address",
];
const WINDOWS: &[&str] = &["1 h", "2 d", "30 d"];

/// The quantity kinds the generator picks from (in this order: a seed's ruleset depends
/// on it).
const QUANTITY_KINDS: &[Dimension] = &[
    Dimension::Mass,
    Dimension::Volume,
    Dimension::Energy,
    Dimension::Duration,
    Dimension::Distance,
];

/// Writes a random ruleset's text. Every expression is generated for the scope of the
/// item it sits in (`weir_dsl::schema::Context`: a promotion sees the order, the
/// customer and `now`; a route also the candidate location; a constraint also the
/// shipment, its location and the carrier; a risk rule also the velocity counters; an
/// SOP what its event gives), so the text is well typed by construction.
struct Gen<'a> {
    r: &'a mut Rng,
    scope: Scope,
    /// Quantifier variables named so far: each gets a fresh name, so none shadows another.
    vars: u32,
}

impl Gen<'_> {
    fn sees(&self, root: Root) -> bool {
        self.scope.roots().contains(&root)
    }

    fn var(&mut self) -> String {
        self.vars += 1;
        format!("v{}", self.vars)
    }

    /// The order lines, or the shipment's where the scope has a shipment.
    fn lines(&mut self) -> &'static str {
        if self.sees(Root::Shipment) && self.r.chance(50) {
            "shipment.items"
        } else {
            "order.items"
        }
    }

    fn pick(&mut self, items: &[&'static str]) -> &'static str {
        self.r.pick(items)
    }

    /// One of `candidates`; they are all written (their random draws keep the stream
    /// the same whichever is picked) and one is kept.
    fn one_of(&mut self, candidates: Vec<String>) -> String {
        let at = self.r.below(candidates.len() as u64) as usize;
        candidates.into_iter().nth(at).unwrap_or_default()
    }

    /// `(a OP b)`, both sides written by `side`.
    fn binary(&mut self, op: &str, mut side: impl FnMut(&mut Self) -> String) -> String {
        let (a, b) = (side(self), side(self));
        format!("({a} {op} {b})")
    }

    /// `NAME(a, b)`, both arguments written by `argument`.
    fn call(&mut self, name: &str, mut argument: impl FnMut(&mut Self) -> String) -> String {
        let (a, b) = (argument(self), argument(self));
        format!("{name}({a}, {b})")
    }

    /// `(if CONDITION then a else b)`, both branches written by `branch`.
    fn conditional(&mut self, d: u32, mut branch: impl FnMut(&mut Self) -> String) -> String {
        let condition = self.bool(d);
        let (a, b) = (branch(self), branch(self));
        format!("(if {condition} then {a} else {b})")
    }

    fn int(&mut self, depth: u32, item: Option<&str>) -> String {
        if depth == 0 || self.r.chance(40) {
            let mut leaves = vec![
                format!("{}", self.r.below(2000) as i64 - 100),
                format!("{}", self.r.below(10)),
                "customer.order_count".to_string(),
                "tier_points(customer.tier, order.channel)".to_string(),
            ];
            let v = self.var();
            let lines = self.lines();
            leaves.push(format!("count({v} in {lines})"));
            // A line's own fields twice, so they are picked as often as the rest together.
            if let Some(i) = item {
                leaves.push(format!("{i}.qty"));
                leaves.push(format!("{i}.qty"));
            }
            if self.scope == Scope::Risk {
                let function = if self.r.chance(50) {
                    "orders"
                } else {
                    "customers"
                };
                let (key, window) = (self.pick(COUNTER_KEYS), self.pick(WINDOWS));
                leaves.push(format!("{function}({key}, {window})"));
            }
            return self.one_of(leaves);
        }
        let d = depth - 1;
        match self.r.below(9) {
            0 => self.binary("+", |g| g.int(d, item)),
            1 => self.binary("-", |g| g.int(d, item)),
            2 => self.binary("*", |g| g.int(d, item)),
            3 => {
                let (v, lines) = (self.var(), self.lines());
                format!(
                    "sum({v}.qty for {v} in {lines} where {})",
                    self.item_bool(d, &v)
                )
            }
            4 => {
                let (v, lines) = (self.var(), self.lines());
                format!("count({v} in {lines} where {})", self.item_bool(d, &v))
            }
            5 => self.call("max", |g| g.int(d, item)),
            6 => self.call("min", |g| g.int(d, item)),
            7 => format!("(-{})", self.int(d, item)),
            _ => self.conditional(d, |g| g.int(d, item)),
        }
    }

    fn decimal(&mut self, depth: u32, item: Option<&str>) -> String {
        if depth == 0 || self.r.chance(35) {
            let mut leaves = vec![
                format!("{}.{}", self.r.below(50), self.r.below(1000)),
                format!("{}", self.r.below(7)),
                format!("(customer.trust / {}%)", 1 + self.r.below(90)),
                format!("(order.subtotal / ¥{})", 1 + self.r.below(300)),
            ];
            let (v, lines) = (self.var(), self.lines());
            leaves.push(format!("sum({v}.points for {v} in {lines})"));
            let (v, lines) = (self.var(), self.lines());
            leaves.push(format!(
                "(sum({v}.weight for {v} in {lines}) / {} g)",
                1 + self.r.below(900)
            ));
            if self.scope == Scope::Route {
                for field in [
                    "distance_km",
                    "margin_pct",
                    "eta_hours",
                    "cost_coefficient",
                    "stock_turnover",
                ] {
                    leaves.push(format!("location.{field}"));
                }
            }
            if let Some(i) = item {
                leaves.push(format!("{i}.points"));
            }
            return self.one_of(leaves);
        }
        let d = depth - 1;
        match self.r.below(7) {
            0 => self.binary("*", |g| g.decimal(d, item)),
            1 => self.binary("/", |g| g.decimal(d, item)),
            2 => format!("({} - {})", self.decimal(d, item), self.int(d, item)),
            3 => self.binary("/", |g| g.int(d, item)),
            4 => self.call("min", |g| g.decimal(d, item)),
            5 => format!("max({}, {})", self.decimal(d, item), self.int(d, item)),
            _ => self.conditional(d, |g| g.decimal(d, item)),
        }
    }

    fn money(&mut self, depth: u32, item: Option<&str>) -> String {
        if depth == 0 || self.r.chance(40) {
            let mut leaves = vec![
                "order.subtotal".to_string(),
                format!("¥{}.{:02}", 1 + self.r.below(500), self.r.below(100)),
                format!("¥{}", 1 + self.r.below(100)),
                "spend_band(order.subtotal)".to_string(),
            ];
            let (v, lines) = (self.var(), self.lines());
            leaves.push(format!("sum({v}.subtotal for {v} in {lines})"));
            if let Some(i) = item {
                leaves.push(format!("{i}.price"));
                leaves.push(format!("{i}.subtotal"));
            }
            return self.one_of(leaves);
        }
        let d = depth - 1;
        match self.r.below(10) {
            0 => self.binary("+", |g| g.money(d, item)),
            1 => self.binary("-", |g| g.money(d, item)),
            2 => format!("({} * {}%)", self.money(d, item), self.r.below(150)),
            3 => format!("({} / {})", self.money(d, item), self.int(d, item)),
            4 => format!("({} * {})", self.money(d, item), self.percent(d, item)),
            5 => format!("({} * {})", self.decimal(d, item), self.money(d, item)),
            6 => self.call("max", |g| g.money(d, item)),
            7 => self.call("min", |g| g.money(d, item)),
            8 => {
                let (v, lines) = (self.var(), self.lines());
                format!(
                    "sum({v}.price * {v}.qty for {v} in {lines} where {})",
                    self.item_bool(d, &v)
                )
            }
            _ => self.conditional(d, |g| g.money(d, item)),
        }
    }

    fn percent(&mut self, depth: u32, item: Option<&str>) -> String {
        if depth == 0 || self.r.chance(45) {
            let mut leaves = vec![
                format!("{}%", self.r.below(120)),
                format!("{}.5%", self.r.below(30)),
                "customer.trust".to_string(),
            ];
            // The per-line table twice, so it is picked as often as the rest together.
            if let Some(i) = item {
                leaves.push(format!("line_rate(customer.tier, {i}.category)"));
                leaves.push(format!("line_rate(customer.tier, {i}.category)"));
            }
            return self.one_of(leaves);
        }
        let d = depth - 1;
        match self.r.below(6) {
            0 => self.binary("+", |g| g.percent(d, item)),
            1 => self.binary("-", |g| g.percent(d, item)),
            2 => format!("({} * {})", self.percent(d, item), self.int(d, item)),
            3 => format!("({} / {})", self.percent(d, item), 1 + self.r.below(4)),
            4 => self.call("max", |g| g.percent(d, item)),
            _ => self.conditional(d, |g| g.percent(d, item)),
        }
    }

    fn quantity(&mut self, kind: Dimension, depth: u32, item: Option<&str>) -> String {
        if depth == 0 || self.r.chance(45) {
            let n = self.r.below(400);
            let mut leaves = match kind {
                Dimension::Mass => vec![
                    format!("{n} g"),
                    format!("{}.{} kg", n % 5, n % 10),
                    format!("sum({v}.weight for {v} in order.items)", v = self.var()),
                ],
                Dimension::Volume => vec![
                    format!("{n} ml"),
                    "1 l".to_string(),
                    format!("sum({v}.liquid_ml for {v} in order.items)", v = self.var()),
                ],
                Dimension::Energy => vec![format!("{n} Wh"), format!("0.{} kWh", n % 10)],
                Dimension::Duration => vec![
                    format!("{n} min"),
                    format!("{} h", n % 30),
                    format!("{} d", n % 40),
                    "customer.account_age".to_string(),
                    "(now - order.placed_at)".to_string(),
                ],
                Dimension::Distance => vec![format!("{n} m"), format!("{} km", n % 60)],
            };
            match (kind, item) {
                (Dimension::Mass, Some(i)) => leaves.push(format!("{i}.weight")),
                (Dimension::Volume, Some(i)) => leaves.push(format!("{i}.liquid_ml")),
                (Dimension::Energy, Some(i)) => leaves.push(format!("{i}.battery_wh")),
                (Dimension::Duration, Some(i)) => leaves.push(format!("shelf({i}.category)")),
                _ => {}
            }
            match kind {
                Dimension::Mass if self.sees(Root::Shipment) => {
                    leaves.push("shipment.weight".into())
                }
                Dimension::Duration if self.sees(Root::Location) => {
                    leaves.push("location.eta".into())
                }
                Dimension::Distance if self.sees(Root::Location) => {
                    leaves.push("location.distance".into())
                }
                _ => {}
            }
            return self.one_of(leaves);
        }
        let d = depth - 1;
        match self.r.below(6) {
            0 => self.binary("+", |g| g.quantity(kind, d, item)),
            1 => self.binary("-", |g| g.quantity(kind, d, item)),
            2 => format!("({} * {})", self.quantity(kind, d, item), self.int(d, item)),
            3 => format!(
                "({} * {})",
                self.percent(d, item),
                self.quantity(kind, d, item)
            ),
            4 => format!(
                "({} / {})",
                self.quantity(kind, d, item),
                1 + self.r.below(5)
            ),
            _ => self.conditional(d, |g| g.quantity(kind, d, item)),
        }
    }

    fn time(&mut self, depth: u32) -> String {
        let literal = self.pick(TIMES).to_string();
        let base = self.one_of(vec![
            "now".to_string(),
            "order.placed_at".to_string(),
            "default(order.promised_at, now)".to_string(),
            literal,
        ]);
        match self.r.below(3) {
            0 => base,
            1 => format!(
                "({base} + {})",
                self.quantity(Dimension::Duration, depth, None)
            ),
            _ => format!(
                "({base} - {})",
                self.quantity(Dimension::Duration, depth, None)
            ),
        }
    }

    /// A comparison of two expressions of one random type (quantities of one kind).
    fn comparison(&mut self, depth: u32, item: Option<&str>) -> String {
        let op = self.pick(COMPARISONS);
        let (a, b) = match self.r.below(6) {
            0 => (self.int(depth, item), self.int(depth, item)),
            1 => (self.money(depth, item), self.money(depth, item)),
            2 => (self.decimal(depth, item), self.int(depth, item)),
            3 => (self.percent(depth, item), self.percent(depth, item)),
            4 => {
                let kind = QUANTITY_KINDS
                    .get(self.r.below(QUANTITY_KINDS.len() as u64) as usize)
                    .copied()
                    .unwrap_or(Dimension::Mass);
                (
                    self.quantity(kind, depth, item),
                    self.quantity(kind, depth, item),
                )
            }
            _ => (self.time(depth), self.time(depth)),
        };
        format!("{a} {op} {b}")
    }

    fn bool(&mut self, depth: u32) -> String {
        if depth == 0 || self.r.chance(30) {
            let mut leaves = vec![
                format!(
                    "order.channel in [\"{}\", \"{}\"]",
                    self.pick(CHANNELS),
                    self.pick(CHANNELS)
                ),
                format!(
                    "customer.tier in [{}, {}]",
                    self.pick(TIERS),
                    self.pick(TIERS)
                ),
                format!("customer.tier not in [{}]", self.pick(TIERS)),
                "customer.device in blocked".to_string(),
                "order.pickup_store != none".to_string(),
                "order.pickup_store == none".to_string(),
                format!("customer.device == \"d{}\"", self.r.below(3)),
                format!("customer.phone not in [\"p1\", \"p{}\"]", self.r.below(3)),
                format!("order.subtotal >= ¥{}", self.r.below(500)),
                format!("customer.account_age < {} d", self.r.below(30)),
                format!(
                    "default(order.promised_at, now) - now > {} h",
                    self.r.below(4)
                ),
                format!("order.coupon == \"C{}\"", self.r.below(3)),
                format!("default(order.coupon, \"\") != \"C{}\"", self.r.below(3)),
                "order.presale".to_string(),
                format!("order.city == \"{}\"", self.pick(CITIES)),
                format!("order.promised_at > {}", self.pick(TIMES)),
                "order.pickup_store == customer.device".to_string(),
            ];
            if self.scope == Scope::Risk {
                let function = if self.r.chance(50) {
                    "orders"
                } else {
                    "customers"
                };
                let (key, window) = (self.pick(COUNTER_KEYS), self.pick(WINDOWS));
                leaves.push(format!("{function}({key}, {window}) > {}", self.r.below(4)));
            }
            if self.sees(Root::Location) {
                let kinds = weir_dsl::schema::LOCATION_KINDS;
                leaves.extend([
                    format!("location.kind == {}", self.pick(kinds)),
                    format!(
                        "location.kind in [{}, {}]",
                        self.pick(kinds),
                        self.pick(kinds)
                    ),
                    "location.pickup".to_string(),
                    "location.cold_chain".to_string(),
                    "not location.hazmat_certified".to_string(),
                    format!("location.distance < {} km", self.r.below(60)),
                    format!("location.eta > {} min", self.r.below(600)),
                    "now + location.eta > order.promised_at".to_string(),
                    "location.id == order.fulfilled_from".to_string(),
                ]);
            }
            if self.sees(Root::Shipment) {
                let modes = weir_dsl::schema::MODES;
                leaves.extend([
                    format!("shipment.mode == {}", self.pick(modes)),
                    format!(
                        "shipment.mode in [{}, {}]",
                        self.pick(modes),
                        self.pick(modes)
                    ),
                    format!("shipment.weight > {} kg", self.r.below(10)),
                    "carrier.hazmat".to_string(),
                    "carrier.cold_chain".to_string(),
                    format!("carrier.mode != {}", self.pick(modes)),
                    format!("carrier.id == \"K{}\"", self.r.below(2)),
                ]);
            }
            return self.one_of(leaves);
        }
        let d = depth - 1;
        match self.r.below(10) {
            0 => format!("({} and {})", self.bool(d), self.bool(d)),
            1 => format!("({} or {})", self.bool(d), self.bool(d)),
            2 => format!("not {}", self.bool(d)),
            3 => {
                let (v, lines) = (self.var(), self.lines());
                format!("any({v} in {lines} where {})", self.item_bool(d, &v))
            }
            4 => {
                let (v, lines) = (self.var(), self.lines());
                format!("all({v} in {lines} where {})", self.item_bool(d, &v))
            }
            5 => {
                let (v, lines) = (self.var(), self.lines());
                format!("any({v} in {lines})")
            }
            6 => self.conditional(d, |g| g.bool(d)),
            _ => self.comparison(d, None),
        }
    }

    fn item_bool(&mut self, depth: u32, i: &str) -> String {
        if depth == 0 || self.r.chance(50) {
            let leaves = vec![
                format!("{i}.flammable"),
                format!("{i}.liquid_ml > {} ml", self.r.below(200)),
                format!("{i}.category == \"{}\"", self.pick(CATEGORIES)),
                format!(
                    "{i}.category in [\"{}\", \"{}\"]",
                    self.pick(CATEGORIES),
                    self.pick(CATEGORIES)
                ),
                format!("{i}.qty >= {}", self.r.below(5)),
                format!("{i}.price * {i}.qty > ¥{}", self.r.below(300)),
                format!("{i}.weight <= {}.{} kg", self.r.below(3), self.r.below(10)),
                format!("{i}.battery_wh > {} Wh", self.r.below(150)),
                format!("{i}.cold_chain"),
                format!("not {i}.hazmat"),
                format!("{i}.sku in [\"S1\", \"S{}\"]", self.r.below(5)),
                format!("{i}.sku != \"S{}\"", self.r.below(3)),
                format!(
                    "line_rate(customer.tier, {i}.category) > {}%",
                    self.r.below(12)
                ),
                format!("now + shelf({i}.category) > {}", self.pick(TIMES)),
                format!("{i}.subtotal >= ¥{}", self.r.below(900)),
            ];
            return self.one_of(leaves);
        }
        let d = depth - 1;
        match self.r.below(6) {
            0 => format!("({} and {})", self.item_bool(d, i), self.item_bool(d, i)),
            1 => format!("({} or {})", self.item_bool(d, i), self.item_bool(d, i)),
            2 => format!("not {}", self.item_bool(d, i)),
            3 => {
                let v = self.var();
                format!(
                    "count({v} in order.items where {v}.category == {i}.category) > {}",
                    self.r.below(3)
                )
            }
            _ => self.comparison(d, Some(i)),
        }
    }

    fn promotion(&mut self, p: u64, depth: u32) -> String {
        self.scope = Scope::Promotion;
        let mut text = format!("\npromotion p{p} {{\n  priority {}\n", self.r.below(5));
        if self.r.chance(40) {
            let exclusive = if self.r.chance(70) { " exclusive" } else { "" };
            // Every promotion of a group agrees on `exclusive`, so the kind of group is
            // part of its name.
            let name = if exclusive.is_empty() { "s" } else { "g" };
            text.push_str(&format!("  group {name}{}{exclusive}\n", self.r.below(2)));
        }
        if self.r.chance(85) {
            text.push_str(&format!("  when {}\n", self.bool(depth)));
        }
        for _ in 0..(1 + self.r.below(3)) {
            let action = self.action(depth);
            text.push_str(&format!("  then {action}\n"));
        }
        if self.r.chance(20) {
            let period = self.pick(weir_dsl::schema::LIMIT_PERIODS);
            text.push_str(&format!(
                "  limit {} per customer per {period}\n",
                1 + self.r.below(3)
            ));
        }
        if self.r.chance(20) {
            text.push_str(&format!("  budget ¥{}\n", 1 + self.r.below(5000)));
        }
        text.push_str("}\n");
        text
    }

    fn action(&mut self, depth: u32) -> String {
        let cap = |g: &mut Self| {
            if g.r.chance(40) {
                format!(" max ¥{}", 1 + g.r.below(200))
            } else {
                String::new()
            }
        };
        match self.r.below(8) {
            0 => format!("discount order {}{}", self.money(depth, None), cap(self)),
            1 => format!("discount order {}%{}", 1 + self.r.below(60), cap(self)),
            2 => format!(
                "discount items where {} by {}%{}",
                self.item_bool(depth, "item"),
                1 + self.r.below(90),
                cap(self)
            ),
            3 => format!(
                "discount items where {} by ¥{}{}",
                self.item_bool(depth, "item"),
                1 + self.r.below(80),
                cap(self)
            ),
            4 => {
                let mut rate = self.percent(depth, Some("item"));
                // A constant rate must lie in (0%, 100%] (E0403); an expression is
                // clamped when the discount is combined.
                if rate
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '%')
                {
                    rate = format!("{}%", 1 + self.r.below(100));
                }
                format!("discount items by {rate}{}", cap(self))
            }
            5 => format!(
                "discount items where {} by {}",
                self.item_bool(depth, "item"),
                self.money(depth, Some("item"))
            ),
            6 => {
                let qty = if self.r.chance(50) {
                    format!(" qty {}", 1 + self.r.below(3))
                } else {
                    String::new()
                };
                format!("gift \"G{}\"{qty}", self.r.below(3))
            }
            _ => {
                let multiplier = if self.r.chance(50) {
                    self.decimal(depth, None)
                } else {
                    self.int(depth, None)
                };
                format!("points multiplier {multiplier}")
            }
        }
    }

    fn route(&mut self, depth: u32) -> String {
        self.scope = Scope::Route;
        let mut candidates = Vec::new();
        for kind in weir_dsl::schema::CANDIDATE_KINDS {
            if !self.r.chance(55) {
                continue;
            }
            let mut candidate = kind.to_string();
            if *kind != "pickup" && self.r.chance(50) {
                candidate.push_str(&format!(" within {} km", 1 + self.r.below(50)));
            }
            if self.r.chance(35) {
                candidate.push_str(&format!(" when {}", self.bool(depth)));
            }
            candidates.push(candidate);
        }
        if candidates.is_empty() {
            candidates.push("warehouse".to_string());
        }
        let score = if self.r.chance(70) {
            self.decimal(depth, None)
        } else {
            self.int(depth, None)
        };
        let mut text = format!(
            "\nroute main {{\n  consider {}\n  score {score}\n",
            candidates.join(", ")
        );
        if self.r.chance(50) {
            text.push_str("  prefer fewer splits\n");
        }
        for _ in 0..self.r.below(3) {
            let kind = if self.r.chance(50) {
                format!(" {}", self.pick(weir_dsl::schema::LOCATION_KINDS))
            } else {
                String::new()
            };
            let when = if kind.is_empty() || self.r.chance(70) {
                format!(" when {}", self.bool(depth))
            } else {
                String::new()
            };
            text.push_str(&format!("  exclude{kind}{when}\n"));
        }
        text.push_str("}\n");
        text
    }

    fn constraint(&mut self, c: u64, depth: u32) -> String {
        self.scope = Scope::Constraint;
        let mut text = format!("\nconstraint c{c} {{\n  when {}\n", self.bool(depth));
        let modes = weir_dsl::schema::MODES;
        let mut clauses = 0;
        if self.r.chance(60) {
            let first = self.pick(modes);
            text.push_str(&format!("  forbid mode {first}"));
            let second = self.pick(modes);
            if second != first && self.r.chance(30) {
                text.push_str(&format!(", {second}"));
            }
            text.push('\n');
            clauses += 1;
        }
        if self.r.chance(30) {
            text.push_str(&format!("  require mode {}\n", self.pick(modes)));
            clauses += 1;
        }
        if self.r.chance(40) {
            text.push_str(&format!("  require packaging \"P{}\"\n", self.r.below(3)));
            clauses += 1;
        }
        if clauses == 0 || self.r.chance(20) {
            text.push_str("  block \"not this way\"\n");
        }
        text.push_str("}\n");
        text
    }

    fn risk(&mut self, k: u64, depth: u32) -> String {
        self.scope = Scope::Risk;
        let mut text = format!("\nrisk r{k} {{\n  when {}\n", self.bool(depth));
        let mut outcomes = 0;
        if self.r.chance(60) {
            text.push_str(&format!("  score {}", self.int(depth, None)));
            if self.r.chance(50) {
                text.push_str(" reason \"why\"");
            }
            text.push('\n');
            outcomes += 1;
        }
        if self.r.chance(25) {
            text.push_str("  review \"look\"\n");
            outcomes += 1;
        }
        if outcomes == 0 || self.r.chance(15) {
            text.push_str("  reject \"no\"\n");
        }
        text.push_str("}\n");
        text
    }

    fn sop(&mut self, s: u64, depth: u32) -> String {
        let events = weir_dsl::schema::EVENTS;
        let (event, scope) = events
            .get(self.r.below(events.len() as u64) as usize)
            .copied()
            .unwrap_or(("order.placed", Scope::SopOrder));
        self.scope = scope;
        let when = if self.r.chance(75) {
            format!(" when {}", self.bool(depth))
        } else {
            String::new()
        };
        let mut text = format!(
            "\nsop s{s} {{\n  on {event}{when}\n  step pick role picker within 15 min \"Pick\"\n"
        );
        if self.r.chance(50) {
            text.push_str("  step seal role packer within 10 min requires photo\n");
        }
        if self.r.chance(50) {
            text.push_str("  on timeout escalate store_manager\n");
        }
        text.push_str("}\n");
        text
    }
}

fn ruleset(r: &mut Rng) -> String {
    let mut text = String::from(PRELUDE);
    let depth = 1 + r.below(3) as u32;
    let mut g = Gen {
        r,
        scope: Scope::Promotion,
        vars: 0,
    };
    for p in 0..(1 + g.r.below(5)) {
        text.push_str(&g.promotion(p, depth));
    }
    for c in 0..g.r.below(3) {
        text.push_str(&g.constraint(c, depth));
    }
    for k in 0..g.r.below(4) {
        text.push_str(&g.risk(k, depth));
    }
    if g.r.chance(60) {
        let (review, reject) = (10 + g.r.below(30), 40 + g.r.below(40));
        text.push_str(&format!(
            "\ndecide risk {{\n  score >= {reject} => reject\n  score >= {review} => review\n  else => accept\n}}\n"
        ));
    }
    if g.r.chance(60) {
        text.push_str(&g.route(depth));
    }
    for s in 0..g.r.below(3) {
        text.push_str(&g.sop(s, depth));
    }
    text
}

fn record(
    entity: usize,
    fields: &[(&str, Value)],
    rs: &weir_dsl::checked::Ruleset,
) -> Result<Value, Failure> {
    let def = rs
        .schema
        .entity(entity)
        .ok_or_else(|| Failure::Generator(format!("no entity #{entity} in the schema")))?;
    let mut slots = vec![None; def.fields.len()];
    for (name, value) in fields {
        let slot = def
            .field(name)
            .and_then(|(i, _)| slots.get_mut(i))
            .ok_or_else(|| Failure::Generator(format!("no field `{name}` in the schema")))?;
        *slot = Some(value.clone());
    }
    Ok(Value::Record(entity, slots))
}

fn facts(r: &mut Rng, rs: &weir_dsl::checked::Ruleset) -> Result<Facts, Failure> {
    use weir_dsl::schema::*;
    let tier_enum = rs
        .schema
        .enums
        .iter()
        .position(|e| e.name == "customer.tier")
        .ok_or_else(|| Failure::Generator("no enum customer.tier".into()))?;
    // Now and then a price or a count near the top of the range, so that overflow (a
    // trap in both engines, at the same step) is compared too.
    let money = |r: &mut Rng| {
        if r.chance(3) {
            (r.next() >> 2) as i64
        } else {
            r.below(50_000) as i64
        }
    };
    let items: Vec<Value> = (0..r.below(6))
        .map(|n| {
            record(
                ITEM,
                &[
                    ("sku", Value::String(format!("S{n}"))),
                    ("category", Value::String(r.pick(CATEGORIES).to_string())),
                    ("qty", Value::Int(r.below(5) as i64)),
                    ("price", Value::Money(money(r))),
                    (
                        "weight",
                        Value::Quantity(r.below(3_000_000_000) as i64, Dimension::Mass),
                    ),
                    ("cold_chain", Value::Bool(r.chance(20))),
                    ("hazmat", Value::Bool(r.chance(20))),
                    ("flammable", Value::Bool(r.chance(30))),
                    (
                        "liquid_ml",
                        Value::Quantity(r.below(300) as i64 * 1_000_000, Dimension::Volume),
                    ),
                    (
                        "battery_wh",
                        Value::Quantity(r.below(200) as i64 * 1_000_000, Dimension::Energy),
                    ),
                    ("points", Value::Decimal(r.below(3_000_000) as i64)),
                ],
                rs,
            )
        })
        .collect::<Result<_, _>>()?;
    let optional = |r: &mut Rng, s: String| {
        if r.chance(70) {
            Value::String(s)
        } else {
            Value::None
        }
    };
    let coupon = format!("C{}", r.below(3));
    let mut order_fields = vec![
        ("channel", Value::String(r.pick(CHANNELS).to_string())),
        ("items", Value::List(items.clone())),
        ("pickup_store", optional(r, "S1".to_string())),
        ("coupon", optional(r, coupon)),
        ("presale", Value::Bool(r.chance(20))),
        ("city", Value::String(r.pick(CITIES).to_string())),
        ("address", Value::String(format!("a{}", r.below(3)))),
        ("fulfilled_from", Value::String(format!("L{}", r.below(3)))),
        (
            "placed_at",
            Value::Time(1_790_000_000 - r.below(7_200) as i64),
        ),
    ];
    if r.chance(50) {
        order_fields.push((
            "promised_at",
            Value::Time(1_790_000_000 + r.below(20_000) as i64),
        ));
    }
    let device_name = format!("d{}", r.below(3));
    let device = optional(r, device_name);
    let phone_name = format!("p{}", r.below(3));
    let phone = optional(r, phone_name);
    let customer = record(
        CUSTOMER,
        &[
            ("id", Value::String(format!("u{}", r.below(3)))),
            ("tier", Value::Enum(tier_enum, r.below(4) as u32)),
            ("device", device),
            ("phone", phone),
            (
                "order_count",
                Value::Int(if r.chance(3) {
                    (r.next() >> 1) as i64
                } else {
                    r.below(50) as i64
                }),
            ),
            (
                "account_age",
                Value::Quantity(r.below(40) as i64 * 86_400_000_000, Dimension::Duration),
            ),
            ("trust", Value::Percent(r.below(1_000_000) as i64)),
        ],
        rs,
    )?;
    let location = |r: &mut Rng, n: u64| {
        let km = r.below(60) as i64;
        let minutes = r.below(900) as i64;
        record(
            LOCATION,
            &[
                ("id", Value::String(format!("L{n}"))),
                ("kind", Value::Enum(LOCATION_KIND, r.below(3) as u32)),
                (
                    "distance",
                    Value::Quantity(km * 1_000_000_000, Dimension::Distance),
                ),
                ("distance_km", Value::Decimal(km * 1_000_000)),
                (
                    "eta",
                    Value::Quantity(minutes * 60_000_000, Dimension::Duration),
                ),
                ("eta_hours", Value::Decimal(minutes * 1_000_000 / 60)),
                ("margin_pct", Value::Decimal(r.below(40_000_000) as i64)),
                (
                    "cost_coefficient",
                    Value::Decimal(r.below(3_000_000) as i64),
                ),
                ("stock_turnover", Value::Decimal(r.below(9_000_000) as i64)),
                ("cold_chain", Value::Bool(r.chance(40))),
                ("hazmat_certified", Value::Bool(r.chance(40))),
                ("pickup", Value::Bool(r.chance(40))),
            ],
            rs,
        )
    };
    let locations = (0..r.below(4))
        .map(|n| location(r, n))
        .collect::<Result<_, _>>()?;
    let shipping_id = r.below(3);
    let shipping_from = location(r, shipping_id)?;
    let shipment = record(
        SHIPMENT,
        &[
            ("items", Value::List(items)),
            ("mode", Value::Enum(MODE, r.below(4) as u32)),
            (
                "weight",
                Value::Quantity(r.below(9_000_000_000) as i64, Dimension::Mass),
            ),
        ],
        rs,
    )?;
    let carrier = record(
        CARRIER,
        &[
            ("id", Value::String(format!("K{}", r.below(2)))),
            ("mode", Value::Enum(MODE, r.below(4) as u32)),
            ("cold_chain", Value::Bool(r.chance(50))),
            ("hazmat", Value::Bool(r.chance(50))),
        ],
        rs,
    )?;
    Ok(Facts {
        order: Some(record(ORDER, &order_fields, rs)?),
        customer: Some(customer),
        now: 1_790_000_000,
        // The order path gives these to the hooks that see them; `weir eval` and tests
        // may leave them out, and both engines must then read the same defaults.
        location: r.chance(90).then_some(shipping_from),
        locations,
        shipment: r.chance(90).then_some(shipment),
        carrier: r.chance(90).then_some(carrier),
        event: 0,
        counters: (0..rs.velocities.len())
            .map(|_| r.below(6) as i64)
            .collect(),
    })
}
