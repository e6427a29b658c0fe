//! `test` blocks: their inputs are checked against the schema like any rule, so a test
//! that names a field that does not exist fails at `weir check`, not at `weir test`.

use super::expr::{const_value, field_path};
use super::values::literal_value;
use super::{coerce, Checker, DeclKind};
use crate::ast::{self, Expectation as E, TestClause, UsedKind, ValueKind};
use crate::checked::{self, CounterKind, Expectation, Value, VelocityKey};
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::schema::{self, Context, Root};
use crate::span::Span;
use crate::types::{Dimension, Type};

/// Top-level keys of a `given` block.
const GIVEN_KEYS: &[&str] = &[
    "order",
    "customer",
    "location",
    "locations",
    "shipment",
    "carrier",
    "now",
];

impl Checker<'_> {
    pub(super) fn test(&mut self, t: &ast::Test, span: Span) {
        if let Some((file, first)) = self.test_names.get(&t.name.value).copied() {
            self.report(
                Diagnostic::new(
                    Code::Duplicate,
                    t.name.span,
                    format!("a test named \"{}\" already exists", t.name.value),
                )
                .with_related(file, first, "first declared here"),
            );
        } else {
            self.test_names
                .insert(t.name.value.clone(), (self.file, t.name.span));
        }
        let mut out = checked::Test {
            name: t.name.value.clone(),
            given: Vec::new(),
            counters: Vec::new(),
            lists: Vec::new(),
            budget_used: Vec::new(),
            limit_used: Vec::new(),
            expectations: Vec::new(),
            origin: self.origin(span),
        };
        for clause in &t.clauses {
            match &clause.kind {
                TestClause::Given(value) => self.given(value, &mut out),
                TestClause::Counter { call, value } => self.counter(call, value, &mut out),
                TestClause::List { name, items } => {
                    let Some(&id) = self.list_ids.get(&name.name) else {
                        let help =
                            did_you_mean(&name.name, self.list_ids.keys().map(String::as_str));
                        self.report(
                            Diagnostic::new(
                                Code::UnknownName,
                                name.span,
                                format!("unknown list `{}`", name.name),
                            )
                            .with_help_opt(help),
                        );
                        continue;
                    };
                    let element = self
                        .lists
                        .get(id)
                        .map_or(Type::Error, |l| l.element.clone());
                    if let Some(Value::List(values)) =
                        self.given_value(items, &Type::List(Box::new(element)))
                    {
                        out.lists.push((id, values));
                    }
                }
                TestClause::Used { kind, rule, value } => {
                    if !self.rule_ref(rule, &[DeclKind::Promotion]) {
                        continue;
                    }
                    let ty = match kind {
                        UsedKind::Budget => Type::Money,
                        UsedKind::Limit => Type::Int,
                    };
                    match (kind, self.given_value(value, &ty)) {
                        (UsedKind::Budget, Some(Value::Money(v))) => {
                            out.budget_used.push((rule.name.clone(), v))
                        }
                        (UsedKind::Limit, Some(Value::Int(v))) => {
                            out.limit_used.push((rule.name.clone(), v))
                        }
                        _ => {}
                    }
                }
                TestClause::Expect(expectation) => {
                    if let Some(e) = self.expectation(expectation) {
                        out.expectations.push((e, clause.span));
                    }
                }
            }
        }
        self.tests.push(out);
    }

    fn given(&mut self, value: &ast::Value, out: &mut checked::Test) {
        let ValueKind::Object(fields) = &value.kind else {
            self.report(Diagnostic::new(
                Code::BadFact,
                value.span,
                "`given` takes an object: `given { order: { ... }, customer: { ... } }`",
            ));
            return;
        };
        for (key, field_value) in fields {
            let (root, ty) = match key.name.as_str() {
                "order" => (Root::Order, Type::Entity(schema::ORDER)),
                "customer" => (Root::Customer, Type::Entity(schema::CUSTOMER)),
                "location" => (Root::Location, Type::Entity(schema::LOCATION)),
                "locations" => (
                    Root::Location,
                    Type::List(Box::new(Type::Entity(schema::LOCATION))),
                ),
                "shipment" => (Root::Shipment, Type::Entity(schema::SHIPMENT)),
                "carrier" => (Root::Carrier, Type::Entity(schema::CARRIER)),
                "now" => (Root::Now, Type::Time),
                other => {
                    let help = did_you_mean(other, GIVEN_KEYS.iter().copied())
                        .unwrap_or_else(|| format!("a test gives {}", GIVEN_KEYS.join(", ")));
                    self.report(
                        Diagnostic::new(
                            Code::BadFact,
                            key.span,
                            format!("`{other}` is not a fact a test can give"),
                        )
                        .with_help(help),
                    );
                    continue;
                }
            };
            if out.given.iter().any(|(r, _)| *r == root) {
                self.report(Diagnostic::new(
                    Code::BadFact,
                    key.span,
                    format!(
                        "`{}` is given twice (`location` and `locations` are the same fact)",
                        key.name
                    ),
                ));
                continue;
            }
            if let Some(v) = self.given_value(field_value, &ty) {
                out.given.push((root, v));
            }
        }
    }

    /// Checks a test value against a type and turns it into a constant.
    fn given_value(&mut self, value: &ast::Value, ty: &Type) -> Option<Value> {
        match (&value.kind, ty) {
            (_, Type::Error) => None,
            (ValueKind::Literal(ast::Literal::None), Type::Optional(_)) => Some(Value::None),
            (_, Type::Optional(inner)) => self.given_value(value, inner),
            (ValueKind::Object(fields), Type::Entity(entity)) => {
                let def = self.schema.entity(*entity)?.clone();
                let mut slots: Vec<Option<Value>> = vec![None; def.fields.len()];
                let mut ok = true;
                for (name, field_value) in fields {
                    match def.field(&name.name) {
                        Some((index, field)) => {
                            if slots.get(index).is_some_and(Option::is_some) {
                                self.report(Diagnostic::new(
                                    Code::BadFact,
                                    name.span,
                                    format!("`{}` is given twice", name.name),
                                ));
                                ok = false;
                                continue;
                            }
                            match self.given_value(field_value, &field.ty) {
                                Some(v) => {
                                    if let Some(slot) = slots.get_mut(index) {
                                        *slot = Some(v);
                                    }
                                }
                                None => ok = false,
                            }
                        }
                        None => {
                            let help = did_you_mean(
                                &name.name,
                                def.fields.iter().map(|f| f.name.as_str()),
                            );
                            self.report(
                                Diagnostic::new(
                                    Code::BadFact,
                                    name.span,
                                    format!("`{}` has no field `{}`", def.name, name.name),
                                )
                                .with_help_opt(help),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(Value::Record(*entity, slots))
            }
            (ValueKind::Array(items), Type::List(inner)) => {
                let mut values = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items {
                    match self.given_value(item, inner) {
                        Some(v) => values.push(v),
                        None => ok = false,
                    }
                }
                ok.then_some(Value::List(values))
            }
            (ValueKind::Variant(ident), Type::Enum(id)) => {
                let def = self.schema.enum_def(*id)?;
                match def.variant(&ident.name) {
                    Some(v) => Some(Value::Enum(*id, v)),
                    None => {
                        let variants = def.variants.join(", ");
                        let name = def.name.clone();
                        let suggestion =
                            did_you_mean(&ident.name, def.variants.iter().map(String::as_str));
                        let help = match suggestion {
                            Some(s) => format!("{s} the variants are: {variants}"),
                            None => format!("the variants are: {variants}"),
                        };
                        self.report(
                            Diagnostic::new(
                                Code::UnknownVariant,
                                ident.span,
                                format!("`{}` is not a variant of enum {name}", ident.name),
                            )
                            .with_help(help),
                        );
                        None
                    }
                }
            }
            (ValueKind::Literal(literal), expected) => {
                let (v, found) = match literal_value(literal, value.span, self.currency) {
                    Ok(pair) => pair,
                    Err(diagnostic) => {
                        self.report(diagnostic);
                        return None;
                    }
                };
                if found.assignable_to(expected) {
                    return Some(coerce(v, expected));
                }
                self.mismatch(value.span, &found, expected);
                None
            }
            (kind, expected) => {
                let found = match kind {
                    ValueKind::Object(_) => "an object".to_string(),
                    ValueKind::Array(_) => "a list".to_string(),
                    ValueKind::Variant(ident) => format!("the name `{}`", ident.name),
                    ValueKind::Literal(_) => "a value".to_string(),
                };
                let wanted = self.type_name(expected);
                let mut diagnostic = Diagnostic::new(
                    Code::BadFact,
                    value.span,
                    format!("expected `{wanted}`, found {found}"),
                );
                if matches!(kind, ValueKind::Variant(_)) && *expected == Type::String {
                    diagnostic = diagnostic.with_help("write text in double quotes");
                }
                self.report(diagnostic);
                None
            }
        }
    }

    fn mismatch(&mut self, span: Span, found: &Type, expected: &Type) {
        let (f, w) = (self.type_name(found), self.type_name(expected));
        let help = match (expected, found) {
            (Type::Money, n) if n.is_numeric() => Some(format!(
                "write money as `{}{}`",
                self.currency.main_symbol(),
                self.source_text(span)
            )),
            (Type::Quantity(d), n) if n.is_numeric() => Some(format!(
                "write the unit: {}",
                d.units()
                    .iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            (Type::Percent, n) if n.is_numeric() => Some("write percents with `%`".to_string()),
            _ => None,
        };
        self.report(
            Diagnostic::new(Code::BadFact, span, format!("expected `{w}`, found `{f}`"))
                .with_help_opt(help),
        );
    }

    fn counter(&mut self, call: &ast::Expr, value: &ast::Value, out: &mut checked::Test) {
        let ast::ExprKind::Call(name, args) = &call.kind else {
            return;
        };
        let (Some(kind), [key, window]) = (CounterKind::from_name(&name.name), args.as_slice())
        else {
            self.report(
                Diagnostic::new(
                    Code::BadFact,
                    call.span,
                    "a test counter is written `counter orders(KEY, WINDOW) = N` or `counter customers(KEY, WINDOW) = N`",
                )
                .with_help("for example `counter orders(customer.device, 1 h) = 6`"),
            );
            return;
        };
        self.context = Context::Risk;
        let key = self.expr(key, None);
        let window = self.expr(window, None);
        let Some(key_path) = field_path(&key, &self.schema) else {
            if !key.ty.is_error() {
                self.report(Diagnostic::new(
                    Code::TypeMismatch,
                    key.span,
                    "the counter key must be a field such as `customer.device`",
                ));
            }
            return;
        };
        let Some(Value::Quantity(micro, Dimension::Duration)) = const_value(&window) else {
            if !window.ty.is_error() {
                self.report(Diagnostic::new(
                    Code::TypeMismatch,
                    window.span,
                    "the counter window must be a constant duration such as `1 h`",
                ));
            }
            return;
        };
        if let Some(Value::Int(count)) = self.given_value(value, &Type::Int) {
            out.counters.push((
                VelocityKey {
                    kind,
                    key_path,
                    window_seconds: micro / checked::SCALE,
                },
                count,
            ));
        }
    }

    /// Reports an unknown rule or a rule of the wrong kind; true when `name` is fine.
    fn rule_ref(&mut self, name: &ast::Ident, kinds: &[DeclKind]) -> bool {
        match self.names.get(&name.name).map(|d| d.kind) {
            Some(kind) if kinds.contains(&kind) => true,
            Some(kind) => {
                let wanted: Vec<&str> = kinds.iter().map(|k| k.noun()).collect();
                let wanted = match wanted.as_slice() {
                    [one] => with_article(one),
                    [init @ .., last] => format!("a {} or {last}", init.join(", ")),
                    [] => String::new(),
                };
                self.report(Diagnostic::new(
                    Code::WrongRuleKind,
                    name.span,
                    format!(
                        "`{}` is {}; this expectation names {wanted}",
                        name.name,
                        with_article(kind.noun())
                    ),
                ));
                false
            }
            None => {
                let candidates: Vec<&str> = self
                    .names
                    .iter()
                    .filter(|(_, d)| kinds.contains(&d.kind))
                    .map(|(n, _)| n.as_str())
                    .collect();
                let help = did_you_mean(&name.name, candidates.iter().copied());
                self.report(
                    Diagnostic::new(
                        Code::UnknownRule,
                        name.span,
                        format!("no rule named `{}`", name.name),
                    )
                    .with_help_opt(help),
                );
                false
            }
        }
    }

    fn constant_of(&mut self, e: &ast::Expr, ty: &Type, what: &str) -> Option<Value> {
        self.context = Context::Constant;
        let checked = self.expr(e, Some(ty));
        if !self.require(&checked, ty, what) {
            return None;
        }
        let value = const_value(&checked);
        if value.is_none() && !checked.ty.is_error() {
            self.report(Diagnostic::new(
                Code::TypeMismatch,
                e.span,
                format!("{what} must be a constant"),
            ));
        }
        value.map(|v| coerce(v, ty))
    }

    fn expectation(&mut self, e: &E) -> Option<Expectation> {
        const RULES: &[DeclKind] = &[
            DeclKind::Promotion,
            DeclKind::Route,
            DeclKind::Constraint,
            DeclKind::Risk,
            DeclKind::Sop,
        ];
        Some(match e {
            E::NoDiscount => Expectation::NoDiscount,
            E::NoGift => Expectation::NoGift,
            E::NoRoute => Expectation::NoRoute,
            E::NoSop => Expectation::NoSop,
            E::NoBlock => Expectation::NoBlock,
            E::Blocked => Expectation::Blocked,
            E::Fired(name) => {
                self.rule_ref(name, RULES).then_some(())?;
                Expectation::Fired(name.name.clone())
            }
            E::NotFired(name) => {
                self.rule_ref(name, RULES).then_some(())?;
                Expectation::NotFired(name.name.clone())
            }
            E::Discount(amount) => {
                match self.constant_of(amount, &Type::Money, "an expected discount")? {
                    Value::Money(v) => Expectation::Discount(v),
                    _ => return None,
                }
            }
            E::Gift { sku, qty } => {
                let qty = match qty {
                    Some(q) => {
                        match self.constant_of(q, &Type::Int, "an expected gift quantity")? {
                            Value::Int(n) => n,
                            _ => return None,
                        }
                    }
                    None => 1,
                };
                Expectation::Gift {
                    sku: sku.value.clone(),
                    qty,
                }
            }
            E::PointsMultiplier(m) => Expectation::PointsMultiplier(self.constant_of(
                m,
                &Type::Decimal,
                "an expected points multiplier",
            )?),
            E::RiskScore(s) => match self.constant_of(s, &Type::Int, "an expected risk score")? {
                Value::Int(v) => Expectation::RiskScore(v),
                _ => return None,
            },
            E::Risk(outcome) => Expectation::Risk(self.decision(outcome)?),
            E::Route(location) => Expectation::Route(location.value.clone()),
            E::ForbidMode(mode) => Expectation::ForbidMode(self.mode(mode)?),
            E::Mode(mode) => Expectation::Mode(self.mode(mode)?),
            E::Packaging(p) => Expectation::Packaging(p.value.clone()),
            E::Sop(name) => {
                self.rule_ref(name, &[DeclKind::Sop]).then_some(())?;
                Expectation::Sop(name.name.clone())
            }
        })
    }
}

/// "an SOP", "a table".
fn with_article(noun: &str) -> String {
    let vowel_sound = noun.starts_with(['a', 'e', 'i', 'o', 'u']) || noun == "SOP";
    format!("{} {noun}", if vowel_sound { "an" } else { "a" })
}
