//! Checked ruleset → IR and manifest. Every representation decision happens here:
//! which arithmetic kernel an operator uses, where ints are scaled, which comparisons
//! must treat an absent operand as false, how tables become branch chains.

use crate::abi::Interner;
use crate::ir::*;
use crate::manifest::*;
use crate::numeric::{ABSENT, SCALE};
use weir_dsl::ast::{CompareOp, QuantifierKind};
use weir_dsl::checked::{self, ArithOp, Pattern, Ruleset, TExpr, TExprKind, Value};
use weir_dsl::schema::{self, Root};
use weir_dsl::types::{Dimension, Type};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("{what} in `{rule}` must be a constant")]
    NotConstant { rule: String, what: &'static str },
    #[error("internal compiler error: {0}")]
    Internal(String),
}

/// Local 0 holds the total risk score in `decide`; local 1 the route candidate.
pub const SCORE_LOCAL: u32 = 0;
pub const LOCATION_LOCAL: u32 = 1;
const FIRST_VAR_LOCAL: u32 = 2;

struct Lowerer<'a> {
    ruleset: &'a Ruleset,
    interner: Interner,
    /// Locals beyond the checker's variables, for table arguments.
    next_local: u32,
    in_route: bool,
}

/// Lowers a checked ruleset. Strings met in rules are interned into the manifest's
/// string table, so the host can give input strings the same ids.
pub fn lower(ruleset: &Ruleset) -> Result<(Program, Manifest), CompileError> {
    let mut l = Lowerer {
        ruleset,
        interner: Interner::default(),
        next_local: FIRST_VAR_LOCAL + ruleset.variables,
        in_route: false,
    };
    let mut promotions = Vec::with_capacity(ruleset.promotions.len());
    let mut promotion_meta = Vec::with_capacity(ruleset.promotions.len());
    for p in &ruleset.promotions {
        let when = p.when.as_ref().map(|w| l.expr(w)).transpose()?;
        let mut actions = Vec::with_capacity(p.actions.len());
        let mut kinds = Vec::with_capacity(p.actions.len());
        for action in &p.actions {
            let (ir, kind) = l.action(action)?;
            actions.push(ir);
            kinds.push(kind);
        }
        let budget = match &p.budget {
            Some(b) => Some(constant_word(b).ok_or_else(|| CompileError::NotConstant {
                rule: p.name.clone(),
                what: "the budget",
            })?),
            None => None,
        };
        promotions.push(PromotionIr { when, actions });
        promotion_meta.push(PromotionMeta {
            name: p.name.clone(),
            priority: p.priority,
            group: p.group.clone(),
            exclusive: p.exclusive,
            limit: p
                .limit
                .as_ref()
                .map(|limit| (limit.count, limit.period.clone())),
            budget,
            actions: kinds,
        });
    }
    let (route, route_meta) = match &ruleset.route {
        Some(r) => {
            l.in_route = true;
            let lowered = l.route(r)?;
            l.in_route = false;
            (
                Some(lowered),
                Some(RouteMeta {
                    name: r.name.clone(),
                    prefer_fewer_splits: r.prefer_fewer_splits,
                }),
            )
        }
        None => (None, None),
    };
    let mut constraints = Vec::with_capacity(ruleset.constraints.len());
    let mut constraint_meta = Vec::with_capacity(ruleset.constraints.len());
    for c in &ruleset.constraints {
        constraints.push(c.when.as_ref().map(|w| l.expr(w)).transpose()?);
        constraint_meta.push(ConstraintMeta {
            name: c.name.clone(),
            forbid_modes: c.forbid_modes.clone(),
            require_mode: c.require_mode,
            require_packaging: c.require_packaging.clone(),
            block: c.block.clone(),
        });
    }
    let mut risks = Vec::with_capacity(ruleset.risks.len());
    let mut risk_meta = Vec::with_capacity(ruleset.risks.len());
    for r in &ruleset.risks {
        risks.push(RiskIr {
            when: r.when.as_ref().map(|w| l.expr(w)).transpose()?,
            score: r.score.as_ref().map(|s| l.expr(s)).transpose()?,
            rejects: r.reject.is_some(),
        });
        risk_meta.push(RiskMeta {
            name: r.name.clone(),
            reason: r.reason.clone(),
            reject: r.reject.clone(),
            review: r.review.clone(),
        });
    }
    let mut decide = Vec::new();
    let mut decide_meta = Vec::new();
    if let Some(d) = &ruleset.decide {
        for (condition, outcome) in &d.arms {
            decide.push(condition.as_ref().map(|c| l.expr(c)).transpose()?);
            decide_meta.push(*outcome);
        }
    }
    let mut sops = Vec::with_capacity(ruleset.sops.len());
    let mut sop_meta = Vec::with_capacity(ruleset.sops.len());
    for s in &ruleset.sops {
        let event = schema::EVENTS
            .iter()
            .position(|(name, _)| *name == s.event)
            .map_or(-1, |i| i as i64);
        sops.push(SopIr {
            event,
            when: s.when.as_ref().map(|w| l.expr(w)).transpose()?,
        });
        sop_meta.push(SopMeta {
            name: s.name.clone(),
            event: s.event.clone(),
            steps: s.steps.clone(),
            escalate: s.escalate.clone(),
        });
    }
    let program = Program {
        promotions,
        route,
        constraints,
        risks,
        decide,
        score_local: SCORE_LOCAL,
        sops,
        locals: l.next_local,
        order_items_field: field_index(ruleset, schema::ORDER, "items")?,
        item_stride: 8 * entity_fields(ruleset, schema::ITEM),
        location_stride: 8 * entity_fields(ruleset, schema::LOCATION),
    };
    let manifest = Manifest {
        ruleset: ruleset.name.clone(),
        currency: ruleset.currency.code.to_string(),
        minor_digits: ruleset.currency.minor_digits,
        strings: (0..)
            .map_while(|id| l.interner.resolve(id).map(str::to_string))
            .collect(),
        entity_fields: ruleset
            .schema
            .entities
            .iter()
            .map(|e| e.fields.len() as u32)
            .collect(),
        item_fields: ruleset
            .schema
            .entity(schema::ITEM)
            .map(|e| e.fields.iter().map(|f| f.name.clone()).collect())
            .unwrap_or_default(),
        promotions: promotion_meta,
        route: route_meta,
        constraints: constraint_meta,
        risks: risk_meta,
        decide: decide_meta,
        sops: sop_meta,
        velocities: ruleset
            .velocities
            .iter()
            .map(|v| Need {
                kind: v.kind,
                key_path: v.key_path.clone(),
                window_seconds: v.window_seconds,
            })
            .collect(),
        lists: ruleset.lists.iter().map(|list| list.name.clone()).collect(),
    };
    Ok((program, manifest))
}

/// Lowers one expression on its own (for `--explain`, which evaluates the facts a
/// condition reads). `location` is read from the header, as in constraints.
pub fn lower_expr(
    ruleset: &Ruleset,
    expr: &TExpr,
    interner: Interner,
) -> Result<(Ir, Interner), CompileError> {
    let mut l = Lowerer {
        ruleset,
        interner,
        next_local: FIRST_VAR_LOCAL + ruleset.variables,
        in_route: false,
    };
    let ir = l.expr(expr)?;
    Ok((ir, l.interner))
}

fn field_index(ruleset: &Ruleset, entity: usize, name: &str) -> Result<u32, CompileError> {
    ruleset
        .schema
        .entity(entity)
        .and_then(|e| e.field(name))
        .map(|(i, _)| i as u32)
        .ok_or_else(|| CompileError::Internal(format!("field {name} is missing")))
}

fn entity_fields(ruleset: &Ruleset, entity: usize) -> u32 {
    ruleset
        .schema
        .entity(entity)
        .map_or(0, |e| e.fields.len() as u32)
}

/// The machine word of a constant (strings excluded: they need the interner).
fn constant_word(e: &TExpr) -> Option<i64> {
    crate::abi::scalar_word(&weir_dsl::check::const_value(e)?)
}

fn is_scaled(ty: &Type) -> bool {
    matches!(
        ty.strip_optional(),
        Type::Decimal | Type::Percent | Type::Quantity(_)
    )
}

impl Lowerer<'_> {
    fn fresh_local(&mut self) -> u32 {
        let local = self.next_local;
        self.next_local += 1;
        local
    }

    fn value_word(&mut self, value: &Value) -> i64 {
        match value {
            Value::Bool(b) => i64::from(*b),
            Value::Int(v)
            | Value::Decimal(v)
            | Value::Money(v)
            | Value::Percent(v)
            | Value::Time(v) => *v,
            Value::Quantity(v, _) => *v,
            Value::Enum(_, variant) => i64::from(*variant),
            Value::String(s) => self.interner.intern(s),
            Value::None | Value::List(_) | Value::Record(..) => ABSENT,
        }
    }

    /// Lowers `e` and converts it to `target`'s representation (an int where a decimal
    /// is wanted is scaled).
    fn expr_as(&mut self, e: &TExpr, target: &Type) -> Result<Ir, CompileError> {
        let ir = self.expr(e)?;
        Ok(
            if matches!(e.ty.strip_optional(), Type::Int) && is_scaled(target) {
                Ir::Scale(ir.boxed())
            } else {
                ir
            },
        )
    }

    fn expr(&mut self, e: &TExpr) -> Result<Ir, CompileError> {
        Ok(match &e.kind {
            TExprKind::Const(value) => match value {
                Value::List(_) => {
                    return Err(CompileError::Internal(
                        "a list constant outside `in`".to_string(),
                    ))
                }
                v => Ir::Const(self.value_word(v)),
            },
            TExprKind::Root(root) => match root {
                Root::Order => Ir::Header(HeaderSlot::Order),
                Root::Customer => Ir::Header(HeaderSlot::Customer),
                Root::Shipment => Ir::Header(HeaderSlot::Shipment),
                Root::Carrier => Ir::Header(HeaderSlot::Carrier),
                Root::Now => Ir::Header(HeaderSlot::Now),
                Root::Location if self.in_route => Ir::Local(LOCATION_LOCAL),
                Root::Location => Ir::Header(HeaderSlot::Location),
            },
            TExprKind::Var(v) => Ir::Local(FIRST_VAR_LOCAL + v),
            TExprKind::Field(base, index) => Ir::Load {
                record: self.expr(base)?.boxed(),
                field: *index as u32,
            },
            TExprKind::ListLiteral(_) => {
                return Err(CompileError::Internal(
                    "a list literal outside `in` or a quantifier".to_string(),
                ))
            }
            TExprKind::RuntimeList(_) => {
                return Err(CompileError::Internal(
                    "a runtime list outside `in`".to_string(),
                ))
            }
            TExprKind::Not(a) => Ir::Not(self.expr(a)?.boxed()),
            TExprKind::Neg(a) => Ir::Neg(self.expr(a)?.boxed()),
            TExprKind::Arith(op, a, b) => self.arith(*op, a, b)?,
            TExprKind::And(a, b) => Ir::And(self.expr(a)?.boxed(), self.expr(b)?.boxed()),
            TExprKind::Or(a, b) => Ir::Or(self.expr(a)?.boxed(), self.expr(b)?.boxed()),
            TExprKind::Compare(op, a, b) => self.compare(*op, a, b)?,
            TExprKind::In {
                negated,
                element,
                collection,
            } => self.membership(*negated, element, collection)?,
            TExprKind::If(c, a, b) => Ir::If(
                self.expr(c)?.boxed(),
                self.expr_as(a, &e.ty)?.boxed(),
                self.expr_as(b, &e.ty)?.boxed(),
            ),
            TExprKind::Quantifier {
                kind,
                var,
                collection,
                filter,
            } => {
                let kind = match kind {
                    QuantifierKind::Any => LoopKind::Any,
                    QuantifierKind::All => LoopKind::All,
                    QuantifierKind::Count => LoopKind::Count,
                };
                self.quantifier(kind, *var, collection, filter.as_deref(), None, &e.ty)?
            }
            TExprKind::Sum {
                var,
                collection,
                filter,
                body,
            } => self.quantifier(
                LoopKind::Sum,
                *var,
                collection,
                filter.as_deref(),
                Some(body),
                &e.ty,
            )?,
            TExprKind::Default(a, b) => Ir::Default(
                self.expr_as(a, &e.ty)?.boxed(),
                self.expr_as(b, &e.ty)?.boxed(),
            ),
            TExprKind::Min(a, b) => Ir::Min(
                self.expr_as(a, &e.ty)?.boxed(),
                self.expr_as(b, &e.ty)?.boxed(),
            ),
            TExprKind::Max(a, b) => Ir::Max(
                self.expr_as(a, &e.ty)?.boxed(),
                self.expr_as(b, &e.ty)?.boxed(),
            ),
            TExprKind::Velocity(index) => Ir::Counter(*index as u32),
            TExprKind::TableCall(table, args) => self.table_call(*table, args)?,
            TExprKind::Score => Ir::Local(SCORE_LOCAL),
        })
    }

    fn arith(&mut self, op: ArithOp, a: &TExpr, b: &TExpr) -> Result<Ir, CompileError> {
        use Type::*;
        let (ta, tb) = (a.ty.clone(), b.ty.clone());
        let la = self.expr(a)?;
        let lb = self.expr(b)?;
        let scale = |ir: Ir| Ir::Scale(ir.boxed());
        let node = |kind: Arith, x: Ir, y: Ir| Ir::Arith(kind, x.boxed(), y.boxed());
        Ok(match op {
            ArithOp::Add | ArithOp::Sub => {
                let kind = if op == ArithOp::Add {
                    Arith::Add
                } else {
                    Arith::Sub
                };
                match (&ta, &tb) {
                    (Time, Quantity(Dimension::Duration)) => {
                        node(kind, la, Ir::Unscale(lb.boxed()))
                    }
                    (Quantity(Dimension::Duration), Time) => {
                        node(kind, Ir::Unscale(la.boxed()), lb)
                    }
                    (Time, Time) => scale(node(Arith::Sub, la, lb)),
                    (Int, Decimal) => node(kind, scale(la), lb),
                    (Decimal, Int) => node(kind, la, scale(lb)),
                    _ => node(kind, la, lb),
                }
            }
            ArithOp::Mul => match (&ta, &tb) {
                (x, y) if is_scaled(x) && is_scaled(y) => node(Arith::MulScaled, la, lb),
                (Money, y) if is_scaled(y) => node(Arith::MulScaled, la, lb),
                (x, Money) if is_scaled(x) => node(Arith::MulScaled, la, lb),
                _ => node(Arith::Mul, la, lb),
            },
            ArithOp::Div => match (&ta, &tb) {
                // x ÷ y = DivScaled(x, y) = x·10⁶ ÷ y, so the operands are put in the
                // representation that makes that the wanted scaled result.
                (Int, Int) => node(Arith::DivScaled, la, lb),
                (Int, _) => node(Arith::DivScaled, scale(la), lb),
                (_, Int) => node(Arith::DivScaled, la, scale(lb)),
                _ => node(Arith::DivScaled, la, lb),
            },
        })
    }

    fn compare(&mut self, op: CompareOp, a: &TExpr, b: &TExpr) -> Result<Ir, CompileError> {
        let cmp = match op {
            CompareOp::Eq => Cmp::Eq,
            CompareOp::Ne => Cmp::Ne,
            CompareOp::Lt => Cmp::Lt,
            CompareOp::Le => Cmp::Le,
            CompareOp::Gt => Cmp::Gt,
            CompareOp::Ge => Cmp::Ge,
            CompareOp::In | CompareOp::NotIn => {
                return Err(CompileError::Internal("`in` reached compare".to_string()))
            }
        };
        let testing_none = a.ty == Type::Absent || b.ty == Type::Absent;
        let optional = matches!(a.ty, Type::Optional(_)) || matches!(b.ty, Type::Optional(_));
        let scaled = is_scaled(&a.ty) || is_scaled(&b.ty);
        let mut left = self.expr(a)?;
        let mut right = self.expr(b)?;
        if scaled && matches!(a.ty.strip_optional(), Type::Int) {
            left = Ir::Scale(left.boxed());
        }
        if scaled && matches!(b.ty.strip_optional(), Type::Int) {
            right = Ir::Scale(right.boxed());
        }
        Ok(Ir::Compare {
            op: cmp,
            absent_aware: optional && !testing_none,
            left: left.boxed(),
            right: right.boxed(),
        })
    }

    fn membership(
        &mut self,
        negated: bool,
        element: &TExpr,
        collection: &TExpr,
    ) -> Result<Ir, CompileError> {
        let element_ty = match &collection.ty {
            Type::List(inner) => (**inner).clone(),
            _ => Type::Error,
        };
        let value = self.expr_as(element, &element_ty)?;
        Ok(match &collection.kind {
            TExprKind::RuntimeList(list) => Ir::HostList {
                list: *list as u32,
                value: value.boxed(),
                negated,
            },
            TExprKind::ListLiteral(items) => {
                let mut consts = Vec::with_capacity(items.len());
                let mut all_constant = true;
                for item in items {
                    match self.expr_as(item, &element_ty)? {
                        Ir::Const(c) => consts.push(c),
                        Ir::Scale(inner) if matches!(*inner, Ir::Const(_)) => match *inner {
                            Ir::Const(c) => consts.push(c.checked_mul(SCALE).unwrap_or(ABSENT)),
                            _ => all_constant = false,
                        },
                        _ => all_constant = false,
                    }
                }
                if all_constant {
                    Ir::InConsts {
                        value: value.boxed(),
                        consts,
                        negated,
                    }
                } else {
                    // `x in [a, f(y)]`: bind x once, then compare with each element.
                    let local = self.fresh_local();
                    let mut any = Ir::Const(0);
                    for item in items.iter().rev() {
                        let test = Ir::Compare {
                            op: Cmp::Eq,
                            absent_aware: true,
                            left: Ir::Local(local).boxed(),
                            right: self.expr_as(item, &element_ty)?.boxed(),
                        };
                        any = Ir::Or(test.boxed(), any.boxed());
                    }
                    let guarded = if negated {
                        // `not in` is false for an absent element too.
                        Ir::And(
                            Ir::Compare {
                                op: Cmp::Ne,
                                absent_aware: false,
                                left: Ir::Local(local).boxed(),
                                right: Ir::Const(ABSENT).boxed(),
                            }
                            .boxed(),
                            Ir::Not(any.boxed()).boxed(),
                        )
                    } else {
                        any
                    };
                    Ir::Let {
                        local,
                        value: value.boxed(),
                        body: guarded.boxed(),
                    }
                }
            }
            _ => Ir::InList {
                value: value.boxed(),
                list: self.expr(collection)?.boxed(),
                negated,
            },
        })
    }

    fn quantifier(
        &mut self,
        kind: LoopKind,
        var: u32,
        collection: &TExpr,
        filter: Option<&TExpr>,
        body: Option<&TExpr>,
        result: &Type,
    ) -> Result<Ir, CompileError> {
        let local = FIRST_VAR_LOCAL + var;
        let element_ty = match &collection.ty {
            Type::List(inner) => (**inner).clone(),
            _ => Type::Error,
        };
        if let TExprKind::ListLiteral(items) = &collection.kind {
            return self.unrolled(kind, local, items, &element_ty, filter, body, result);
        }
        let element = match element_ty {
            Type::Entity(entity) => Element::Record {
                stride: 8 * self
                    .ruleset
                    .schema
                    .entity(entity)
                    .map_or(0, |d| d.fields.len()) as u32,
            },
            _ => Element::Scalar,
        };
        Ok(Ir::Loop {
            kind,
            local,
            list: self.expr(collection)?.boxed(),
            element,
            filter: filter.map(|f| self.expr(f)).transpose()?.map(Ir::boxed),
            body: body
                .map(|b| self.expr_as(b, result))
                .transpose()?
                .map(Ir::boxed),
        })
    }

    /// A quantifier over a list literal, unrolled into one test per element.
    #[allow(clippy::too_many_arguments)]
    fn unrolled(
        &mut self,
        kind: LoopKind,
        local: u32,
        items: &[TExpr],
        element_ty: &Type,
        filter: Option<&TExpr>,
        body: Option<&TExpr>,
        result: &Type,
    ) -> Result<Ir, CompileError> {
        let filter_ir = filter.map(|f| self.expr(f)).transpose()?;
        let body_ir = body.map(|b| self.expr_as(b, result)).transpose()?;
        let mut acc = match kind {
            LoopKind::Any | LoopKind::Count | LoopKind::Sum => Ir::Const(0),
            LoopKind::All => Ir::Const(1),
        };
        for item in items.iter().rev() {
            let value = self.expr_as(item, element_ty)?;
            let test = filter_ir.clone().unwrap_or(Ir::Const(1));
            let step = match kind {
                LoopKind::Any => Ir::Or(test.boxed(), acc.boxed()),
                LoopKind::All => Ir::And(test.boxed(), acc.boxed()),
                LoopKind::Count => Ir::Arith(
                    Arith::Add,
                    Ir::If(test.boxed(), Ir::Const(1).boxed(), Ir::Const(0).boxed()).boxed(),
                    acc.boxed(),
                ),
                LoopKind::Sum => Ir::Arith(
                    Arith::Add,
                    Ir::If(
                        test.boxed(),
                        body_ir.clone().unwrap_or(Ir::Const(0)).boxed(),
                        Ir::Const(0).boxed(),
                    )
                    .boxed(),
                    acc.boxed(),
                ),
            };
            acc = Ir::Let {
                local,
                value: value.boxed(),
                body: step.boxed(),
            };
        }
        Ok(acc)
    }

    /// A table call: arguments bound once, then the rows as a flat chain of tests
    /// (first match wins); no match stops the hook.
    fn table_call(&mut self, table: usize, args: &[TExpr]) -> Result<Ir, CompileError> {
        let Some(def) = self.ruleset.tables.get(table) else {
            return Err(CompileError::Internal(format!("table {table} is missing")));
        };
        let def = def.clone();
        let mut bound = Vec::with_capacity(args.len());
        for (arg, key_ty) in args.iter().zip(&def.keys) {
            let local = self.fresh_local();
            bound.push((local, self.expr_as(arg, key_ty)?));
        }
        let mut rows = Vec::with_capacity(def.rows.len());
        for row in &def.rows {
            let mut tests = Vec::new();
            for ((pattern, (local, _)), key_ty) in row.patterns.iter().zip(&bound).zip(&def.keys) {
                let (op, value) = match pattern {
                    Pattern::Wildcard => continue,
                    Pattern::Equals(v) => (Cmp::Eq, v),
                    Pattern::Compare(op, v) => (
                        match op {
                            CompareOp::Ne => Cmp::Ne,
                            CompareOp::Lt => Cmp::Lt,
                            CompareOp::Le => Cmp::Le,
                            CompareOp::Gt => Cmp::Gt,
                            CompareOp::Ge => Cmp::Ge,
                            _ => Cmp::Eq,
                        },
                        v,
                    ),
                };
                tests.push((*local, op, self.pattern_word(value, key_ty)));
            }
            rows.push(TableRowIr {
                tests,
                value: self.pattern_word(&row.value, &def.result),
            });
        }
        Ok(Ir::Table {
            table: table as u32,
            args: bound,
            rows,
        })
    }

    /// A constant in the representation of `ty` (ints scaled where `ty` is scaled).
    fn pattern_word(&mut self, value: &Value, ty: &Type) -> i64 {
        match (value, ty.strip_optional()) {
            (Value::Int(v), t) if is_scaled(t) => v.saturating_mul(SCALE),
            (v, _) => self.value_word(v),
        }
    }

    fn action(&mut self, action: &checked::Action) -> Result<(ActionIr, ActionKind), CompileError> {
        Ok(match action {
            checked::Action::DiscountOrder { amount, cap } => {
                let percent = amount.ty == Type::Percent;
                (
                    ActionIr::DiscountOrder {
                        amount: self.expr(amount)?,
                        cap: cap.as_ref().map(|c| self.expr(c)).transpose()?,
                        percent,
                    },
                    ActionKind::DiscountOrder { percent },
                )
            }
            checked::Action::DiscountItems {
                item_var,
                filter,
                amount,
                cap,
            } => {
                let percent = amount.ty == Type::Percent;
                (
                    ActionIr::DiscountItems {
                        line_local: FIRST_VAR_LOCAL + item_var,
                        filter: filter.as_ref().map(|f| self.expr(f)).transpose()?,
                        amount: self.expr(amount)?,
                        cap: cap.as_ref().map(|c| self.expr(c)).transpose()?,
                        percent,
                    },
                    ActionKind::DiscountItems { percent },
                )
            }
            checked::Action::Gift { sku, qty } => (
                ActionIr::Gift {
                    sku: self.expr(sku)?,
                    qty: self.expr(qty)?,
                },
                ActionKind::Gift,
            ),
            checked::Action::PointsMultiplier(m) => (
                ActionIr::PointsMultiplier(self.expr_as(m, &Type::Decimal)?),
                ActionKind::PointsMultiplier,
            ),
        })
    }

    fn route(&mut self, r: &checked::Route) -> Result<RouteIr, CompileError> {
        let location = || Ir::Local(LOCATION_LOCAL);
        let field = |name: &str| -> Result<u32, CompileError> {
            self.ruleset
                .schema
                .entity(schema::LOCATION)
                .and_then(|e| e.field(name))
                .map(|(i, _)| i as u32)
                .ok_or_else(|| CompileError::Internal(format!("location.{name} is missing")))
        };
        let kind_field = field("kind")?;
        let id_field = field("id")?;
        let distance_field = field("distance")?;
        let order_pickup = self
            .ruleset
            .schema
            .entity(schema::ORDER)
            .and_then(|e| e.field("pickup_store"))
            .map(|(i, _)| i as u32)
            .ok_or_else(|| CompileError::Internal("order.pickup_store is missing".to_string()))?;
        let kind_is = |kind: checked::CandidateKind| -> Ir {
            let variant = match kind {
                checked::CandidateKind::Warehouse => 0,
                checked::CandidateKind::FrontWarehouse => 1,
                checked::CandidateKind::Store => 2,
                checked::CandidateKind::Pickup => {
                    return Ir::Compare {
                        op: Cmp::Eq,
                        absent_aware: true,
                        left: Ir::Load {
                            record: location().boxed(),
                            field: id_field,
                        }
                        .boxed(),
                        right: Ir::Load {
                            record: Ir::Header(HeaderSlot::Order).boxed(),
                            field: order_pickup,
                        }
                        .boxed(),
                    }
                }
            };
            Ir::Compare {
                op: Cmp::Eq,
                absent_aware: false,
                left: Ir::Load {
                    record: location().boxed(),
                    field: kind_field,
                }
                .boxed(),
                right: Ir::Const(variant).boxed(),
            }
        };
        let and = |a: Ir, b: Ir| Ir::And(a.boxed(), b.boxed());
        let mut considered = if r.consider.is_empty() {
            Ir::Const(1)
        } else {
            Ir::Const(0)
        };
        for candidate in r.consider.iter().rev() {
            let mut test = kind_is(candidate.kind);
            if let Some(within) = &candidate.within {
                test = and(
                    test,
                    Ir::Compare {
                        op: Cmp::Le,
                        absent_aware: false,
                        left: Ir::Load {
                            record: location().boxed(),
                            field: distance_field,
                        }
                        .boxed(),
                        right: self.expr(within)?.boxed(),
                    },
                );
            }
            if let Some(when) = &candidate.when {
                test = and(test, self.expr(when)?);
            }
            considered = Ir::Or(test.boxed(), considered.boxed());
        }
        let mut excluded = Ir::Const(0);
        for exclude in r.excludes.iter().rev() {
            let mut test = match exclude.kind {
                Some(kind) => kind_is(kind),
                None => Ir::Const(1),
            };
            if let Some(when) = &exclude.when {
                test = and(test, self.expr(when)?);
            }
            excluded = Ir::Or(test.boxed(), excluded.boxed());
        }
        Ok(RouteIr {
            location_local: LOCATION_LOCAL,
            eligible: and(considered, Ir::Not(excluded.boxed())),
            score: self.expr_as(&r.score, &Type::Decimal)?,
        })
    }
}
