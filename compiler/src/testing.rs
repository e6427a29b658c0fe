//! Runs a ruleset's `test` blocks: the given facts through every engine, the outcomes
//! against the expectations, the engines against each other, and which rules the
//! tests made fire (for coverage).

use crate::abi::Facts;
use crate::evaluate::{evaluate, Context, Decisions, Engine};
use crate::lists::ListMembers;
use crate::outcome::{mode_name, Usage};
use crate::Compiled;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;
use weir_dsl::checked::{Decision, Expectation, Origin, Ruleset, Test, Value};
use weir_dsl::schema::{self, Root};
use weir_dsl::Span;

/// One way a test failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The expectation that failed (or the test itself for an evaluation error).
    pub span: Span,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub name: String,
    pub origin: Origin,
    pub failures: Vec<Failure>,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub results: Vec<TestResult>,
    /// Every rule at least one test made fire.
    pub fired: BTreeSet<String>,
    /// Every rule of the ruleset, for coverage.
    pub rules: Vec<(String, Origin)>,
    pub engines: Vec<&'static str>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.passed()).count()
    }

    /// Rules no test made fire.
    pub fn not_covered(&self) -> Vec<&(String, Origin)> {
        self.rules
            .iter()
            .filter(|(name, _)| !self.fired.contains(name))
            .collect()
    }

    /// Percent of rules covered (100 when there are no rules).
    pub fn coverage(&self) -> f64 {
        if self.rules.is_empty() {
            return 100.0;
        }
        let covered = self.rules.len() - self.not_covered().len();
        covered as f64 * 100.0 / self.rules.len() as f64
    }
}

/// The facts of a test block.
pub fn facts_of(test: &Test, compiled: &Compiled) -> Facts {
    let mut facts = Facts::default();
    for (root, value) in &test.given {
        match (root, value) {
            (Root::Order, v) => facts.order = Some(v.clone()),
            (Root::Customer, v) => facts.customer = Some(v.clone()),
            (Root::Location, Value::List(locations)) => facts.locations = locations.clone(),
            (Root::Location, v) => {
                facts.location = Some(v.clone());
                facts.locations = vec![v.clone()];
            }
            (Root::Shipment, v) => facts.shipment = Some(v.clone()),
            (Root::Carrier, v) => facts.carrier = Some(v.clone()),
            (Root::Now, Value::Time(t)) => facts.now = *t,
            _ => {}
        }
    }
    facts.counters = compiled
        .manifest
        .velocities
        .iter()
        .map(|need| {
            test.counters
                .iter()
                .find(|(key, _)| {
                    key.kind == need.kind
                        && key.key_path == need.key_path
                        && key.window_seconds == need.window_seconds
                })
                .map_or(0, |(_, count)| *count)
        })
        .collect();
    facts
}

fn context_of(test: &Test) -> Context {
    Context {
        lists: test
            .lists
            .iter()
            .map(|(list, values)| (*list, Arc::new(ListMembers::from_values(values))))
            .collect(),
        usage: Usage {
            budget_used: test.budget_used.iter().cloned().collect(),
            limit_used: test.limit_used.iter().cloned().collect(),
        },
    }
}

/// Runs every test of `ruleset` with every engine (the first engine's decisions are
/// the ones checked; the others must produce identical raw results).
pub fn run_tests(ruleset: &Ruleset, compiled: &Compiled, engines: &[&dyn Engine]) -> Report {
    let mut report = Report {
        engines: engines.iter().map(|e| e.name()).collect(),
        rules: rules_of(ruleset),
        ..Report::default()
    };
    for test in &ruleset.tests {
        let facts = facts_of(test, compiled);
        let context = context_of(test);
        let mut failures = Vec::new();
        let mut first: Option<Decisions> = None;
        for engine in engines {
            match evaluate(compiled, ruleset, &facts, &context, *engine) {
                Ok(decisions) => match &first {
                    None => first = Some(decisions),
                    Some(reference) => {
                        for ((hook, a), (_, b)) in reference.raw.iter().zip(&decisions.raw) {
                            if a != b {
                                failures.push(Failure {
                                    span: test.origin.span,
                                    message: format!(
                                        "engines disagree on `{}`: {} gave {a:?}, {} gave {b:?}",
                                        hook.export_name(),
                                        report.engines.first().copied().unwrap_or("?"),
                                        engine.name()
                                    ),
                                });
                            }
                        }
                        // The runtime-list members found are what a decision record
                        // keeps: both engines must find the same ones.
                        if reference.list_hits != decisions.list_hits {
                            failures.push(Failure {
                                span: test.origin.span,
                                message: format!(
                                    "engines disagree on the runtime-list members found: {} found {:?}, {} found {:?}",
                                    report.engines.first().copied().unwrap_or("?"),
                                    reference.list_hits,
                                    engine.name(),
                                    decisions.list_hits
                                ),
                            });
                        }
                    }
                },
                Err(error) => failures.push(Failure {
                    span: test.origin.span,
                    message: format!("{}: {error}", engine.name()),
                }),
            }
        }
        if let Some(decisions) = &first {
            let fired = fired_rules(decisions);
            for (expectation, span) in &test.expectations {
                if let Some(message) =
                    check_expectation(expectation, decisions, &fired, &facts, ruleset, compiled)
                {
                    failures.push(Failure {
                        span: *span,
                        message,
                    });
                }
            }
            report.fired.extend(fired.into_iter().map(str::to_owned));
        }
        report.results.push(TestResult {
            name: test.name.clone(),
            origin: test.origin,
            failures,
        });
    }
    report
}

fn rules_of(ruleset: &Ruleset) -> Vec<(String, Origin)> {
    let mut rules: Vec<(String, Origin)> = Vec::new();
    rules.extend(
        ruleset
            .promotions
            .iter()
            .map(|p| (p.name.clone(), p.origin)),
    );
    rules.extend(ruleset.route.iter().map(|r| (r.name.clone(), r.origin)));
    rules.extend(
        ruleset
            .constraints
            .iter()
            .map(|c| (c.name.clone(), c.origin)),
    );
    rules.extend(ruleset.risks.iter().map(|r| (r.name.clone(), r.origin)));
    rules.extend(ruleset.sops.iter().map(|s| (s.name.clone(), s.origin)));
    rules
}

/// Rules that fired: promotions that applied, the route when a location was eligible,
/// constraints and risk rules whose condition held, SOPs that triggered.
pub fn fired_rules<'m>(decisions: &Decisions<'m>) -> BTreeSet<&'m str> {
    let mut fired = BTreeSet::new();
    if let Some(p) = &decisions.promotions {
        fired.extend(p.applied.iter().map(|a| a.name));
    }
    if let (Some(route), Some(name)) = (&decisions.route, decisions.route_name) {
        if !route.ranking.is_empty() {
            fired.insert(name);
        }
    }
    if let Some(c) = &decisions.constraints {
        fired.extend(c.fired.iter().copied());
    }
    if let Some(r) = &decisions.risk {
        fired.extend(r.fired.iter().map(|(name, _)| *name));
    }
    fired.extend(decisions.sops.iter().copied());
    fired
}

fn money(v: i64, compiled: &Compiled) -> String {
    let symbol = match compiled.manifest.currency.as_str() {
        "CNY" | "JPY" => "¥",
        "EUR" => "€",
        "GBP" => "£",
        "KRW" => "₩",
        _ => "$",
    };
    let digits = compiled.manifest.minor_digits;
    if digits == 0 {
        return format!("{symbol}{v}");
    }
    let scale = 10_i64.pow(digits);
    let sign = if v < 0 { "-" } else { "" };
    let v = v.unsigned_abs();
    format!(
        "{sign}{symbol}{}.{:0width$}",
        v / scale.unsigned_abs(),
        v % scale.unsigned_abs(),
        width = digits as usize
    )
}

fn scaled(v: i64) -> String {
    let whole = v / 1_000_000;
    let frac = (v % 1_000_000).unsigned_abs();
    if frac == 0 {
        whole.to_string()
    } else {
        let text = format!(
            "{}{whole}.{frac:06}",
            if v < 0 && whole == 0 { "-" } else { "" }
        );
        text.trim_end_matches('0').to_string()
    }
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Accept => "accept",
        Decision::Review => "review",
        Decision::Reject => "reject",
    }
}

fn location_id(facts: &Facts, index: usize, ruleset: &Ruleset) -> String {
    let id_field = ruleset
        .schema
        .entity(schema::LOCATION)
        .and_then(|e| e.field("id"))
        .map(|(i, _)| i);
    match (facts.locations.get(index), id_field) {
        (Some(Value::Record(_, slots)), Some(i)) => match slots.get(i) {
            Some(Some(Value::String(s))) => s.clone(),
            _ => format!("#{index}"),
        },
        _ => format!("#{index}"),
    }
}

fn check_expectation(
    expectation: &Expectation,
    d: &Decisions,
    fired: &BTreeSet<&str>,
    facts: &Facts,
    ruleset: &Ruleset,
    compiled: &Compiled,
) -> Option<String> {
    let total = d.promotions.as_ref().map_or(0, |p| p.total_discount);
    let fail =
        |expected: String, found: String| Some(format!("expected {expected}, found {found}"));
    match expectation {
        Expectation::Discount(v) => (total != *v).then(|| {
            format!(
                "expected discount {}, found {}",
                money(*v, compiled),
                money(total, compiled)
            )
        }),
        Expectation::NoDiscount => {
            (total != 0).then(|| format!("expected no discount, found {}", money(total, compiled)))
        }
        Expectation::Gift { sku, qty } => {
            let found = d.gifts.iter().find(|(s, _)| s == sku).map(|(_, q)| *q);
            match found {
                Some(q) if q == *qty => None,
                Some(q) => fail(format!("gift \"{sku}\" qty {qty}"), format!("qty {q}")),
                None => fail(
                    format!("gift \"{sku}\" qty {qty}"),
                    describe_gifts(&d.gifts),
                ),
            }
        }
        Expectation::NoGift => (!d.gifts.is_empty())
            .then(|| format!("expected no gift, found {}", describe_gifts(&d.gifts))),
        Expectation::PointsMultiplier(v) => {
            let expected = match v {
                Value::Decimal(x) => *x,
                Value::Int(x) => x.saturating_mul(1_000_000),
                _ => 0,
            };
            let found = d
                .promotions
                .as_ref()
                .map_or(1_000_000, |p| p.points_multiplier);
            (found != expected).then(|| {
                format!(
                    "expected points multiplier {}, found {}",
                    scaled(expected),
                    scaled(found)
                )
            })
        }
        Expectation::Fired(name) => (!fired.contains(name.as_str()))
            .then(|| format!("expected `{name}` to fire, but it did not")),
        Expectation::NotFired(name) => fired
            .contains(name.as_str())
            .then(|| format!("expected `{name}` not to fire, but it did")),
        Expectation::RiskScore(v) => {
            let found = d.risk.as_ref().map_or(0, |r| r.score);
            (found != *v).then(|| format!("expected risk score {v}, found {found}"))
        }
        Expectation::Risk(decision) => {
            let found = d.risk.as_ref().map_or(Decision::Accept, |r| r.decision);
            (found != *decision).then(|| {
                format!(
                    "expected risk {}, found {}",
                    decision_name(*decision),
                    decision_name(found)
                )
            })
        }
        Expectation::Route(location) => {
            let best = d
                .route
                .as_ref()
                .and_then(|r| r.ranking.first())
                .map(|(i, _)| location_id(facts, *i, ruleset));
            match best {
                Some(id) if id == *location => None,
                Some(id) => fail(format!("route \"{location}\""), format!("\"{id}\"")),
                None => fail(
                    format!("route \"{location}\""),
                    "no eligible location".to_string(),
                ),
            }
        }
        Expectation::NoRoute => {
            let best = d
                .route
                .as_ref()
                .and_then(|r| r.ranking.first())
                .map(|(i, _)| location_id(facts, *i, ruleset));
            best.map(|id| format!("expected no route, found \"{id}\""))
        }
        Expectation::Blocked => {
            let blocked = d.constraints.as_ref().is_some_and(|c| c.mode.is_none());
            (!blocked).then(|| "expected the shipment to be blocked, but it may ship".to_string())
        }
        Expectation::NoBlock => {
            let reasons = d.constraints.as_ref().map(|c| {
                let mut all = c.blocked.clone();
                all.extend(c.conflicts.iter().map(String::as_str));
                all
            });
            match reasons {
                Some(r) if !r.is_empty() => {
                    Some(format!("expected no block, found: {}", r.join("; ")))
                }
                _ => None,
            }
        }
        Expectation::ForbidMode(mode) => {
            let forbidden = d
                .constraints
                .as_ref()
                .is_some_and(|c| c.forbidden_modes.contains(mode));
            (!forbidden).then(|| {
                format!(
                    "expected mode {} to be forbidden, but it is allowed",
                    mode_name(*mode)
                )
            })
        }
        Expectation::Mode(mode) => {
            let found = d.constraints.as_ref().and_then(|c| c.mode);
            match found {
                Some(m) if m == *mode => None,
                Some(m) => fail(
                    format!("mode {}", mode_name(*mode)),
                    mode_name(m).to_string(),
                ),
                None => fail(
                    format!("mode {}", mode_name(*mode)),
                    "a blocked shipment".to_string(),
                ),
            }
        }
        Expectation::Packaging(p) => {
            let found = d
                .constraints
                .as_ref()
                .map(|c| c.packaging.clone())
                .unwrap_or_default();
            (!found.contains(&p.as_str()))
                .then(|| format!("expected packaging \"{p}\", found [{}]", found.join(", ")))
        }
        Expectation::Sop(name) => (!d.sops.contains(&name.as_str()))
            .then(|| format!("expected SOP `{name}` to trigger, but it did not")),
        Expectation::NoSop => {
            (!d.sops.is_empty()).then(|| format!("expected no SOP, found {}", d.sops.join(", ")))
        }
    }
}

fn describe_gifts(gifts: &[(Cow<'_, str>, i64)]) -> String {
    if gifts.is_empty() {
        return "no gift".to_string();
    }
    gifts
        .iter()
        .map(|(sku, qty)| format!("\"{sku}\" qty {qty}"))
        .collect::<Vec<_>>()
        .join(", ")
}
