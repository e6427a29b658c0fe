//! Expressions: name resolution, type and unit checking, producing typed expressions.
//!
//! Checking is bidirectional where it must be: a bare name such as `gold` is resolved
//! against the type the other side of a comparison (or a table column) expects.

use super::Checker;
use crate::ast::{BinaryOp, CompareOp, Expr, ExprKind, QuantifierKind, UnaryOp};
use crate::checked::{ArithOp, CounterKind, TExpr, TExprKind, Value, Velocity};
use crate::diagnostic::{closest, did_you_mean, Code, Diagnostic};
use crate::schema::{Context, Root};
use crate::span::Span;
use crate::types::{Dimension, Type};

const BUILTIN_FUNCTIONS: &[&str] = &["orders", "customers", "default", "min", "max"];

fn texpr(kind: TExprKind, ty: Type, span: Span) -> TExpr {
    TExpr { kind, ty, span }
}

fn error_expr(span: Span) -> TExpr {
    texpr(TExprKind::Const(Value::None), Type::Error, span)
}

/// True when the expression reads no fact, variable, list or counter.
pub fn is_constant(e: &TExpr) -> bool {
    match &e.kind {
        TExprKind::Const(_) => true,
        TExprKind::Root(_)
        | TExprKind::Var(_)
        | TExprKind::RuntimeList(_)
        | TExprKind::Velocity(_)
        | TExprKind::Score => false,
        TExprKind::Field(base, _) => is_constant(base),
        TExprKind::ListLiteral(items) | TExprKind::TableCall(_, items) => {
            items.iter().all(is_constant)
        }
        TExprKind::Not(a) | TExprKind::Neg(a) => is_constant(a),
        TExprKind::Arith(_, a, b)
        | TExprKind::And(a, b)
        | TExprKind::Or(a, b)
        | TExprKind::Compare(_, a, b)
        | TExprKind::Default(a, b)
        | TExprKind::Min(a, b)
        | TExprKind::Max(a, b) => is_constant(a) && is_constant(b),
        TExprKind::In {
            element,
            collection,
            ..
        } => is_constant(element) && is_constant(collection),
        TExprKind::If(a, b, c) => is_constant(a) && is_constant(b) && is_constant(c),
        TExprKind::Quantifier { collection, .. } | TExprKind::Sum { collection, .. } => {
            is_constant(collection)
        }
    }
}

/// The value of a constant expression made of literals (and negated literals).
pub fn const_value(e: &TExpr) -> Option<Value> {
    match &e.kind {
        TExprKind::Const(v) => Some(v.clone()),
        TExprKind::Neg(inner) => match const_value(inner)? {
            Value::Int(v) => Some(Value::Int(v.checked_neg()?)),
            Value::Decimal(v) => Some(Value::Decimal(v.checked_neg()?)),
            Value::Money(v) => Some(Value::Money(v.checked_neg()?)),
            Value::Percent(v) => Some(Value::Percent(v.checked_neg()?)),
            Value::Quantity(v, d) => Some(Value::Quantity(v.checked_neg()?, d)),
            _ => None,
        },
        TExprKind::ListLiteral(items) => items
            .iter()
            .map(const_value)
            .collect::<Option<Vec<_>>>()
            .map(Value::List),
        _ => None,
    }
}

/// `customer.device` for a field path rooted at a fact, `None` for anything else.
pub fn field_path(e: &TExpr, schema: &crate::schema::Schema) -> Option<String> {
    match &e.kind {
        TExprKind::Root(root) => Some(root.name().to_string()),
        TExprKind::Field(base, index) => {
            let Type::Entity(entity) = base.ty.strip_optional() else {
                return None;
            };
            let field = schema.entity(*entity)?.fields.get(*index)?;
            Some(format!("{}.{}", field_path(base, schema)?, field.name))
        }
        _ => None,
    }
}

impl Checker<'_> {
    /// Checks a condition: any expression of type `bool`.
    pub(super) fn condition(&mut self, e: &Expr) -> TExpr {
        let checked = self.expr(e, Some(&Type::Bool));
        self.expect_bool(&checked);
        checked
    }

    fn expect_bool(&mut self, e: &TExpr) {
        if !e.ty.assignable_to(&Type::Bool) {
            let found = self.type_name(&e.ty);
            let mut diagnostic = Diagnostic::new(
                Code::NotBool,
                e.span,
                format!("expected a condition (true/false), found `{found}`"),
            );
            let text = self.source_text(e.span);
            let help = match &e.ty {
                Type::Optional(inner) if **inner == Type::Bool => {
                    Some(format!("the field may be absent: write `{text} == true`"))
                }
                Type::Optional(_) => Some(format!(
                    "to test that it is present, write `{text} != none`"
                )),
                Type::Int | Type::Decimal => Some(format!("compare it, e.g. `{text} > 0`")),
                Type::Money => Some(format!(
                    "compare it, e.g. `{text} >= {}100`",
                    self.currency.main_symbol()
                )),
                Type::String => Some(format!("compare it, e.g. `{text} == \"...\"`")),
                Type::List(_) => Some(format!(
                    "to test that it is not empty, write `any(x in {text})`"
                )),
                _ => None,
            };
            diagnostic = diagnostic.with_help_opt(help);
            self.report(diagnostic);
        }
    }

    /// Checks `e`, expecting (not requiring) `expected`: the hint resolves enum variants
    /// and empty lists. Callers that require a type check `ty` themselves.
    pub(super) fn expr(&mut self, e: &Expr, expected: Option<&Type>) -> TExpr {
        let span = e.span;
        match &e.kind {
            ExprKind::Error => error_expr(span),
            ExprKind::Paren(inner) => self.expr(inner, expected),
            ExprKind::Literal(literal) => {
                match super::values::literal_value(literal, span, self.currency) {
                    Ok((value, ty)) => texpr(TExprKind::Const(value), ty, span),
                    Err(diagnostic) => {
                        self.report(diagnostic);
                        error_expr(span)
                    }
                }
            }
            ExprKind::Name(ident) => self.name(&ident.name, span, expected),
            ExprKind::Field(base, field) => self.field(base, &field.name, field.span, span),
            ExprKind::List(items) => self.list_literal(items, expected, span),
            ExprKind::Unary(UnaryOp::Not, inner) => {
                let inner = self.condition(inner);
                texpr(TExprKind::Not(Box::new(inner)), Type::Bool, span)
            }
            ExprKind::Unary(UnaryOp::Neg, inner) => {
                let inner = self.expr(inner, expected);
                let ty = match inner.ty.clone() {
                    ty @ (Type::Int
                    | Type::Decimal
                    | Type::Money
                    | Type::Percent
                    | Type::Quantity(_)
                    | Type::Error) => ty,
                    other => {
                        let found = self.type_name(&other);
                        self.report(Diagnostic::new(
                            Code::BadOperator,
                            span,
                            format!("cannot negate `{found}`"),
                        ));
                        Type::Error
                    }
                };
                texpr(TExprKind::Neg(Box::new(inner)), ty, span)
            }
            ExprKind::Binary(op @ (BinaryOp::And | BinaryOp::Or), left, right) => {
                let left = self.condition(left);
                let right = self.condition(right);
                let kind = if *op == BinaryOp::And {
                    TExprKind::And(Box::new(left), Box::new(right))
                } else {
                    TExprKind::Or(Box::new(left), Box::new(right))
                };
                texpr(kind, Type::Bool, span)
            }
            ExprKind::Binary(op, left, right) => self.arith(*op, left, right, span),
            ExprKind::Compare(op, left, right) => self.compare(*op, left, right, span),
            ExprKind::If(cond, then, otherwise) => {
                let cond = self.condition(cond);
                let then = self.expr(then, expected);
                let hint = if then.ty.is_error() {
                    expected.cloned()
                } else {
                    Some(then.ty.clone())
                };
                let otherwise = self.expr(otherwise, hint.as_ref());
                let ty = match self.unify(&then.ty, &otherwise.ty) {
                    Some(ty) => ty,
                    None => {
                        let (a, b) = (self.type_name(&then.ty), self.type_name(&otherwise.ty));
                        self.report(
                            Diagnostic::new(
                                Code::TypeMismatch,
                                otherwise.span,
                                format!("`if` branches have different types: `{a}` and `{b}`"),
                            )
                            .with_label(format!("this is `{b}`")),
                        );
                        Type::Error
                    }
                };
                texpr(
                    TExprKind::If(Box::new(cond), Box::new(then), Box::new(otherwise)),
                    ty,
                    span,
                )
            }
            ExprKind::Quantifier {
                kind,
                var,
                collection,
                filter,
            } => {
                let collection = self.expr(collection, None);
                let element = self.element_type(&collection, "a quantifier");
                let var_id = self.bind(&var.name, var.span, element);
                let filter = filter.as_ref().map(|f| Box::new(self.condition(f)));
                self.unbind();
                let ty = match kind {
                    QuantifierKind::Count => Type::Int,
                    _ => Type::Bool,
                };
                texpr(
                    TExprKind::Quantifier {
                        kind: *kind,
                        var: var_id,
                        collection: Box::new(collection),
                        filter,
                    },
                    ty,
                    span,
                )
            }
            ExprKind::Sum {
                body,
                var,
                collection,
                filter,
            } => {
                let collection = self.expr(collection, None);
                let element = self.element_type(&collection, "`sum`");
                let var_id = self.bind(&var.name, var.span, element);
                let filter = filter.as_ref().map(|f| Box::new(self.condition(f)));
                let body = self.expr(body, None);
                self.unbind();
                let ty = match body.ty.clone() {
                    ty @ (Type::Int
                    | Type::Decimal
                    | Type::Money
                    | Type::Percent
                    | Type::Quantity(_)
                    | Type::Error) => ty,
                    other => {
                        let found = self.type_name(&other);
                        self.report(
                            Diagnostic::new(Code::BadOperator, body.span, format!("cannot sum `{found}` values"))
                                .with_help("`sum` adds numbers, money, percents or quantities; use `count` to count"),
                        );
                        Type::Error
                    }
                };
                texpr(
                    TExprKind::Sum {
                        var: var_id,
                        collection: Box::new(collection),
                        filter,
                        body: Box::new(body),
                    },
                    ty,
                    span,
                )
            }
            ExprKind::Call(name, args) => self.call(&name.name, name.span, args, span),
        }
    }

    fn element_type(&mut self, collection: &TExpr, what: &str) -> Type {
        match &collection.ty {
            Type::List(inner) => (**inner).clone(),
            Type::Error => Type::Error,
            other => {
                let found = self.type_name(other);
                self.report(
                    Diagnostic::new(
                        Code::NotACollection,
                        collection.span,
                        format!("{what} ranges over a list, but this is `{found}`"),
                    )
                    .with_help("use a list such as `order.items` or `shipment.items`"),
                );
                Type::Error
            }
        }
    }

    /// Brings a quantifier variable into scope.
    pub(super) fn bind(&mut self, name: &str, span: Span, ty: Type) -> u32 {
        let clash = if Root::from_name(name).is_some() {
            Some("a fact")
        } else if self.list_ids.contains_key(name) {
            Some("a list")
        } else if self.scope.iter().any(|(n, _, _)| n == name) {
            Some("an enclosing variable")
        } else {
            None
        };
        if let Some(what) = clash {
            self.report(
                Diagnostic::new(
                    Code::Shadowing,
                    span,
                    format!("variable `{name}` has the name of {what}"),
                )
                .with_help("pick another name, such as `line` or `it`"),
            );
        }
        let id = self.next_var;
        self.next_var += 1;
        self.scope.push((name.to_string(), id, ty));
        id
    }

    pub(super) fn unbind(&mut self) {
        self.scope.pop();
    }

    fn name(&mut self, name: &str, span: Span, expected: Option<&Type>) -> TExpr {
        if let Some((_, id, ty)) = self.scope.iter().rev().find(|(n, _, _)| n == name) {
            return texpr(TExprKind::Var(*id), ty.clone(), span);
        }
        if name == "score" && self.context == Context::Decide {
            return texpr(TExprKind::Score, Type::Int, span);
        }
        if let Some(root) = Root::from_name(name) {
            if self.context.roots().contains(&root) {
                return texpr(TExprKind::Root(root), root.ty(), span);
            }
            let available: Vec<String> = self
                .context
                .roots()
                .iter()
                .map(|r| format!("`{}`", r.name()))
                .collect();
            let help = if self.context == Context::Decide {
                "a decide block sees only `score`, the summed risk score".to_string()
            } else if available.is_empty() {
                "no facts are available here: use a constant".to_string()
            } else {
                format!("{} sees {}", self.context.describe(), join_and(&available))
            };
            self.report(
                Diagnostic::new(
                    Code::FactNotAvailable,
                    span,
                    format!("`{name}` is not available in {}", self.context.describe()),
                )
                .with_help(help),
            );
            return error_expr(span);
        }
        if let Some(&list) = self.list_ids.get(name) {
            if let Some(used) = self.list_used.get_mut(list) {
                *used = true;
            }
            let element = self
                .lists
                .get(list)
                .map_or(Type::Error, |l| l.element.clone());
            return texpr(
                TExprKind::RuntimeList(list),
                Type::List(Box::new(element)),
                span,
            );
        }
        // An enum variant: by the expected type if there is one, else by its name alone.
        let expected_enum = expected.map(|t| match t.strip_optional() {
            Type::List(inner) => inner.strip_optional().clone(),
            other => other.clone(),
        });
        if let Some(Type::Enum(id)) = expected_enum {
            if let Some(def) = self.schema.enum_def(id) {
                if let Some(variant) = def.variant(name) {
                    return texpr(
                        TExprKind::Const(Value::Enum(id, variant)),
                        Type::Enum(id),
                        span,
                    );
                }
                let variants = def.variants.join(", ");
                let enum_name = def.name.clone();
                let suggestion = did_you_mean(name, def.variants.iter().map(String::as_str));
                let help = match suggestion {
                    Some(s) => format!("{s} the variants are: {variants}"),
                    None => format!("the variants are: {variants}"),
                };
                self.report(
                    Diagnostic::new(
                        Code::UnknownVariant,
                        span,
                        format!("`{name}` is not a variant of enum {enum_name}"),
                    )
                    .with_help(help),
                );
                return error_expr(span);
            }
        }
        let owners: Vec<(usize, u32)> = self
            .schema
            .enums
            .iter()
            .enumerate()
            .filter_map(|(id, def)| def.variant(name).map(|v| (id, v)))
            .collect();
        if let [(id, variant)] = owners.as_slice() {
            return texpr(
                TExprKind::Const(Value::Enum(*id, *variant)),
                Type::Enum(*id),
                span,
            );
        }
        if owners.len() > 1 {
            let names: Vec<String> = owners
                .iter()
                .filter_map(|(id, _)| self.schema.enum_def(*id).map(|d| d.name.clone()))
                .collect();
            self.report(
                Diagnostic::new(
                    Code::UnknownName,
                    span,
                    format!(
                        "`{name}` is a variant of several enums ({})",
                        names.join(", ")
                    ),
                )
                .with_help(
                    "compare it with a field, e.g. `customer.tier == gold`, so its enum is known",
                ),
            );
            return error_expr(span);
        }
        let help = self.name_suggestion(name);
        self.report(
            Diagnostic::new(Code::UnknownName, span, format!("unknown name `{name}`"))
                .with_help_opt(help),
        );
        error_expr(span)
    }

    fn name_suggestion(&self, name: &str) -> Option<String> {
        let mut candidates: Vec<String> = Vec::new();
        candidates.extend(self.scope.iter().map(|(n, _, _)| n.clone()));
        candidates.extend(self.context.roots().iter().map(|r| r.name().to_string()));
        candidates.extend(self.list_ids.keys().cloned());
        for def in &self.schema.enums {
            candidates.extend(def.variants.iter().cloned());
        }
        if self.context == Context::Decide {
            candidates.push("score".to_string());
        }
        if let Some(best) = closest(name, candidates.iter().map(String::as_str)) {
            return Some(format!("did you mean `{best}`?"));
        }
        // `item` outside a quantifier is the commonest slip of all.
        if name == "item" {
            return Some("`item` exists inside `any(item in order.items where ...)` and `discount items where ...`".to_string());
        }
        None
    }

    fn field(&mut self, base: &Expr, field: &str, field_span: Span, span: Span) -> TExpr {
        let base = self.expr(base, None);
        match base.ty.clone() {
            Type::Error => error_expr(span),
            Type::Entity(entity) => {
                let Some(def) = self.schema.entity(entity) else {
                    return error_expr(span);
                };
                match def.field(field) {
                    Some((index, field_def)) => {
                        let ty = field_def.ty.clone();
                        self.attribute_used.insert((entity, index));
                        texpr(TExprKind::Field(Box::new(base), index), ty, span)
                    }
                    None => {
                        let entity_name = def.name;
                        let help = did_you_mean(field, def.fields.iter().map(|f| f.name.as_str()))
                            .or_else(|| {
                                Some(format!(
                                    "declare it: `attribute {entity_name}.{field}: TYPE = DEFAULT`"
                                ))
                            });
                        self.report(
                            Diagnostic::new(
                                Code::UnknownField,
                                field_span,
                                format!("`{entity_name}` has no field `{field}`"),
                            )
                            .with_help_opt(help),
                        );
                        error_expr(span)
                    }
                }
            }
            other => {
                let found = self.type_name(&other);
                self.report(Diagnostic::new(
                    Code::UnknownField,
                    field_span,
                    format!("`{found}` has no fields, so `.{field}` does not exist"),
                ));
                error_expr(span)
            }
        }
    }

    fn list_literal(&mut self, items: &[Expr], expected: Option<&Type>, span: Span) -> TExpr {
        let mut element_hint = match expected.map(Type::strip_optional) {
            Some(Type::List(inner)) => Some((**inner).clone()),
            _ => None,
        };
        let mut checked = Vec::with_capacity(items.len());
        let mut element: Option<Type> = None;
        for item in items {
            let item = self.expr(item, element_hint.as_ref());
            match &element {
                None => {
                    element = Some(item.ty.clone());
                    if element_hint.is_none() && !item.ty.is_error() {
                        element_hint = Some(item.ty.clone());
                    }
                }
                Some(current) => match self.unify(current, &item.ty) {
                    Some(ty) => element = Some(ty),
                    None => {
                        let (a, b) = (self.type_name(current), self.type_name(&item.ty));
                        self.report(
                            Diagnostic::new(
                                Code::MixedList,
                                item.span,
                                format!("list element is `{b}`, but earlier elements are `{a}`"),
                            )
                            .with_help("all elements of a list have one type"),
                        );
                    }
                },
            }
            checked.push(item);
        }
        let element = element.or(element_hint).unwrap_or(Type::Error);
        texpr(
            TExprKind::ListLiteral(checked),
            Type::List(Box::new(element)),
            span,
        )
    }

    /// The common type of two branches or list elements.
    fn unify(&self, a: &Type, b: &Type) -> Option<Type> {
        Some(match (a, b) {
            (Type::Error, other) | (other, Type::Error) => other.clone(),
            (x, y) if x == y => x.clone(),
            (Type::Int, Type::Decimal) | (Type::Decimal, Type::Int) => Type::Decimal,
            (Type::Absent, Type::Optional(t)) | (Type::Optional(t), Type::Absent) => {
                Type::Optional(t.clone())
            }
            (Type::Absent, t) | (t, Type::Absent) => Type::Optional(Box::new(t.clone())),
            (Type::Optional(x), y) | (y, Type::Optional(x)) if **x == *y => {
                Type::Optional(x.clone())
            }
            _ => return None,
        })
    }

    fn maybe_absent(&mut self, e: &TExpr) -> bool {
        if let Type::Optional(_) = e.ty {
            let path = field_path(e, &self.schema).unwrap_or_else(|| "this value".to_string());
            self.report(
                Diagnostic::new(Code::MaybeAbsent, e.span, format!("`{path}` may be absent"))
                    .with_help(format!(
                        "give a fallback: `default({path}, ...)`, or test `{path} != none` first"
                    )),
            );
            return true;
        }
        false
    }

    fn arith(&mut self, op: BinaryOp, left: &Expr, right: &Expr, span: Span) -> TExpr {
        let left = self.expr(left, None);
        let right = self.expr(right, None);
        let arith_op = match op {
            BinaryOp::Add => ArithOp::Add,
            BinaryOp::Sub => ArithOp::Sub,
            BinaryOp::Mul => ArithOp::Mul,
            _ => ArithOp::Div,
        };
        let absent = self.maybe_absent(&left) | self.maybe_absent(&right);
        let ty = if absent {
            Type::Error
        } else {
            match arith_type(arith_op, &left.ty, &right.ty) {
                Ok(ty) => ty,
                Err(problem) => {
                    self.arith_error(problem, op, &left, &right, span);
                    Type::Error
                }
            }
        };
        texpr(
            TExprKind::Arith(arith_op, Box::new(left), Box::new(right)),
            ty,
            span,
        )
    }

    fn arith_error(
        &mut self,
        problem: ArithProblem,
        op: BinaryOp,
        left: &TExpr,
        right: &TExpr,
        span: Span,
    ) {
        let (lt, rt) = (self.type_name(&left.ty), self.type_name(&right.ty));
        let symbol = op.symbol();
        let diagnostic = match problem {
            ArithProblem::Units(a, b) => Diagnostic::new(
                Code::UnitMismatch,
                span,
                format!("cannot use `{symbol}` on a {} and a {}", a.name(), b.name()),
            )
            .with_help("quantities combine only with quantities of the same kind"),
            ArithProblem::MissingUnit(d, number_side) => {
                let number = if number_side == Side::Left {
                    left
                } else {
                    right
                };
                Diagnostic::new(
                    Code::MissingUnit,
                    number.span,
                    format!(
                        "this number has no unit, but the other side of `{symbol}` is a {}",
                        d.name()
                    ),
                )
                .with_help(unit_help(d))
            }
            ArithProblem::MissingCurrency(number_side) => {
                let number = if number_side == Side::Left {
                    left
                } else {
                    right
                };
                Diagnostic::new(
                    Code::MissingCurrency,
                    number.span,
                    format!(
                        "this number has no currency, but the other side of `{symbol}` is money"
                    ),
                )
                .with_help(format!(
                    "write money as `{}{}`",
                    self.currency.main_symbol(),
                    self.source_text(number.span)
                ))
            }
            ArithProblem::Other => Diagnostic::new(
                Code::BadOperator,
                span,
                format!("cannot apply `{symbol}` to `{lt}` and `{rt}`"),
            )
            .with_help("see the arithmetic table in docs/language.md"),
        };
        self.report(diagnostic);
    }

    fn compare(&mut self, op: CompareOp, left: &Expr, right: &Expr, span: Span) -> TExpr {
        // Resolve a bare variant (`gold == customer.tier`) against the other side.
        let left_is_variant = self.is_bare_variant(left);
        let right_is_variant = self.is_bare_variant(right);
        let (left, right) = if left_is_variant && !right_is_variant {
            let right = self.expr(right, None);
            let hint = match op {
                CompareOp::In | CompareOp::NotIn => element_of(&right.ty),
                _ => right.ty.strip_optional().clone(),
            };
            (self.expr(left, Some(&hint)), right)
        } else {
            let left = self.expr(left, None);
            let hint = match op {
                CompareOp::In | CompareOp::NotIn => {
                    Type::List(Box::new(left.ty.strip_optional().clone()))
                }
                _ => left.ty.strip_optional().clone(),
            };
            let right = self.expr(right, Some(&hint));
            (left, right)
        };
        if let CompareOp::In | CompareOp::NotIn = op {
            return self.membership(op == CompareOp::NotIn, left, right, span);
        }
        if left.ty == Type::Absent || right.ty == Type::Absent {
            let (none_side, other) = if left.ty == Type::Absent {
                (&left, &right)
            } else {
                (&right, &left)
            };
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                self.report(Diagnostic::new(
                    Code::BadComparison,
                    none_side.span,
                    format!(
                        "`none` can only be compared with `==` or `!=`, not `{}`",
                        op.symbol()
                    ),
                ));
            } else if !matches!(other.ty, Type::Optional(_) | Type::Error | Type::Absent) {
                let path =
                    field_path(other, &self.schema).unwrap_or_else(|| "this value".to_string());
                self.report(
                    Diagnostic::new(
                        Code::NeverAbsent,
                        other.span,
                        format!("`{path}` is never absent"),
                    )
                    .with_help("only optional fields (such as `order.pickup_store`) can be `none`"),
                );
            }
            return texpr(
                TExprKind::Compare(op, Box::new(left), Box::new(right)),
                Type::Bool,
                span,
            );
        }
        self.comparable(op, &left, &right);
        texpr(
            TExprKind::Compare(op, Box::new(left), Box::new(right)),
            Type::Bool,
            span,
        )
    }

    fn is_bare_variant(&self, e: &Expr) -> bool {
        let ExprKind::Name(ident) = &e.kind else {
            return false;
        };
        let name = ident.name.as_str();
        !(self.scope.iter().any(|(n, _, _)| n == name)
            || Root::from_name(name).is_some()
            || self.list_ids.contains_key(name)
            || (name == "score" && self.context == Context::Decide))
    }

    /// Reports when two values cannot be compared with `op`.
    pub(super) fn comparable(&mut self, op: CompareOp, left: &TExpr, right: &TExpr) {
        self.comparable_as(op, left, right, None);
    }

    /// `membership` names the list when the right side is a list's element type.
    fn comparable_as(
        &mut self,
        op: CompareOp,
        left: &TExpr,
        right: &TExpr,
        membership: Option<Span>,
    ) {
        let (lt, rt) = (
            left.ty.strip_optional().clone(),
            right.ty.strip_optional().clone(),
        );
        let ordering = !matches!(op, CompareOp::Eq | CompareOp::Ne);
        let diagnostic = match (&lt, &rt) {
            (Type::Error, _) | (_, Type::Error) => None,
            (a, b) if a.is_numeric() && b.is_numeric() => None,
            (Type::Quantity(a), Type::Quantity(b)) if a != b => Some(
                Diagnostic::new(
                    Code::UnitMismatch,
                    right.span,
                    format!("cannot compare a {} with a {}", a.name(), b.name()),
                )
                .with_label(format!("this is a {}", b.name()))
                .with_related(self.file, left.span, format!("this is a {}", a.name()))
                .with_help(format!(
                    "compare with a {}: {}",
                    a.name(),
                    unit_list(*a)
                )),
            ),
            (Type::Quantity(d), n) | (n, Type::Quantity(d)) if n.is_numeric() => {
                let number = if n == &lt { left } else { right };
                Some(
                    Diagnostic::new(
                        Code::MissingUnit,
                        number.span,
                        format!(
                            "this number has no unit, but it is compared with a {}",
                            d.name()
                        ),
                    )
                    .with_help(unit_help(*d)),
                )
            }
            (Type::Money, n) | (n, Type::Money) if n.is_numeric() => {
                let number = if n == &lt { left } else { right };
                Some(
                    Diagnostic::new(
                        Code::MissingCurrency,
                        number.span,
                        "this number has no currency, but it is compared with money",
                    )
                    .with_help(format!(
                        "write money as `{}{}`",
                        self.currency.main_symbol(),
                        self.source_text(number.span)
                    )),
                )
            }
            (Type::Percent, n) | (n, Type::Percent) if n.is_numeric() => {
                let (number, percent) = if n == &lt {
                    (left, right)
                } else {
                    (right, left)
                };
                // Advise on the side the author typed as a literal.
                let diagnostic = if matches!(percent.kind, TExprKind::Const(_)) {
                    let text = self.source_text(percent.span);
                    let plain = text.trim_end_matches('%').to_string();
                    Diagnostic::new(
                        Code::BadComparison,
                        percent.span,
                        "a percent is compared with a plain number",
                    )
                    .with_help(format!(
                        "the other side is a plain number: write `{plain}` instead of `{text}`"
                    ))
                } else {
                    let text = self.source_text(number.span);
                    Diagnostic::new(
                        Code::BadComparison,
                        number.span,
                        "this number is compared with a percent",
                    )
                    .with_help(format!("write percents with `%`: `{text}%`"))
                };
                Some(diagnostic)
            }
            (a, b) if a == b => {
                if ordering && !a.is_ordered() {
                    let name = self.type_name(a);
                    Some(Diagnostic::new(
                        Code::BadComparison,
                        left.span.to(right.span),
                        format!(
                            "`{}` needs ordered values, but `{name}` has no order",
                            op.symbol()
                        ),
                    ))
                } else if matches!(a, Type::List(_) | Type::Entity(_)) {
                    let name = self.type_name(a);
                    Some(Diagnostic::new(
                        Code::BadComparison,
                        left.span.to(right.span),
                        format!("`{name}` values cannot be compared"),
                    ))
                } else {
                    None
                }
            }
            (a, b) => {
                let (a, b) = (self.type_name(a), self.type_name(b));
                Some(match membership {
                    Some(list_span) => Diagnostic::new(
                        Code::BadComparison,
                        left.span.to(list_span),
                        format!("cannot look for `{a}` in a list of `{b}`"),
                    )
                    .with_label(format!("`{a}` in list<{b}>")),
                    None => Diagnostic::new(
                        Code::BadComparison,
                        left.span.to(right.span),
                        format!("cannot compare `{a}` with `{b}`"),
                    )
                    .with_label(format!("`{a}` {} `{b}`", op.symbol())),
                })
            }
        };
        if let Some(diagnostic) = diagnostic {
            self.report(diagnostic);
        }
    }

    fn membership(
        &mut self,
        negated: bool,
        element: TExpr,
        collection: TExpr,
        span: Span,
    ) -> TExpr {
        let item_ty = match &collection.ty {
            Type::List(inner) => Some((**inner).clone()),
            Type::Error => None,
            other => {
                let found = self.type_name(other);
                self.report(
                    Diagnostic::new(
                        Code::NotACollection,
                        collection.span,
                        format!("`in` needs a list on its right, found `{found}`"),
                    )
                    .with_help("write a list such as `[\"tmall\", \"jd\"]` or name a runtime list"),
                );
                None
            }
        };
        if let Some(item_ty) = item_ty {
            let probe = texpr(TExprKind::Const(Value::None), item_ty, collection.span);
            self.comparable_as(CompareOp::Eq, &element, &probe, Some(collection.span));
        }
        texpr(
            TExprKind::In {
                negated,
                element: Box::new(element),
                collection: Box::new(collection),
            },
            Type::Bool,
            span,
        )
    }

    fn call(&mut self, name: &str, name_span: Span, args: &[Expr], span: Span) -> TExpr {
        let arity = |this: &mut Self, wanted: usize, shape: &str| -> bool {
            if args.len() != wanted {
                this.report(Diagnostic::new(
                    Code::WrongArgCount,
                    span,
                    format!(
                        "`{name}` takes {wanted} argument{}: {shape}; found {}",
                        if wanted == 1 { "" } else { "s" },
                        args.len()
                    ),
                ));
                return false;
            }
            true
        };
        match name {
            "orders" => {
                if !arity(self, 2, "`orders(customer.device, 1 h)`") {
                    return error_expr(span);
                }
                self.velocity(CounterKind::Orders, args, span)
            }
            "customers" => {
                if !arity(self, 2, "`customers(order.address, 30 d)`") {
                    return error_expr(span);
                }
                self.velocity(CounterKind::Customers, args, span)
            }
            "default" => {
                if !arity(self, 2, "`default(field, fallback)`") {
                    return error_expr(span);
                }
                let (Some(value_expr), Some(fallback_expr)) = (args.first(), args.get(1)) else {
                    return error_expr(span);
                };
                let value = self.expr(value_expr, None);
                let inner = match &value.ty {
                    Type::Optional(inner) => (**inner).clone(),
                    Type::Error => Type::Error,
                    _ => {
                        let path = field_path(&value, &self.schema)
                            .unwrap_or_else(|| "this value".to_string());
                        self.report(
                            Diagnostic::new(
                                Code::NeverAbsent,
                                value.span,
                                format!("`{path}` is never absent"),
                            )
                            .with_help("use the value directly; `default` is for optional fields"),
                        );
                        value.ty.clone()
                    }
                };
                let fallback = self.expr(fallback_expr, Some(&inner));
                self.require(&fallback, &inner, "the fallback");
                texpr(
                    TExprKind::Default(Box::new(value), Box::new(fallback)),
                    inner,
                    span,
                )
            }
            "min" | "max" => {
                if !arity(self, 2, &format!("`{name}(a, b)`")) {
                    return error_expr(span);
                }
                let (Some(a), Some(b)) = (args.first(), args.get(1)) else {
                    return error_expr(span);
                };
                let a = self.expr(a, None);
                let b = self.expr(b, Some(&a.ty.clone()));
                let absent = self.maybe_absent(&a) | self.maybe_absent(&b);
                let ty = match self.unify(&a.ty, &b.ty) {
                    Some(ty) if ty.is_ordered() || ty.is_error() => ty,
                    _ if absent => Type::Error,
                    _ => {
                        let (at, bt) = (self.type_name(&a.ty), self.type_name(&b.ty));
                        self.report(Diagnostic::new(
                            Code::BadOperator,
                            span,
                            format!("`{name}` needs two ordered values of one type, found `{at}` and `{bt}`"),
                        ));
                        Type::Error
                    }
                };
                let kind = if name == "min" {
                    TExprKind::Min(Box::new(a), Box::new(b))
                } else {
                    TExprKind::Max(Box::new(a), Box::new(b))
                };
                texpr(kind, ty, span)
            }
            _ => match self.table_ids.get(name).copied() {
                Some(table) => self.table_call(table, name, args, span),
                None => {
                    let candidates: Vec<&str> = BUILTIN_FUNCTIONS
                        .iter()
                        .copied()
                        .chain(self.table_ids.keys().map(String::as_str))
                        .collect();
                    let help = did_you_mean(name, candidates.iter().copied()).unwrap_or_else(|| {
                        "functions are `orders`, `customers`, `default`, `min`, `max`, and the tables this ruleset declares".to_string()
                    });
                    self.report(
                        Diagnostic::new(
                            Code::UnknownFunction,
                            name_span,
                            format!("unknown function or table `{name}`"),
                        )
                        .with_help(help),
                    );
                    for arg in args {
                        self.expr(arg, None);
                    }
                    error_expr(span)
                }
            },
        }
    }

    fn table_call(&mut self, table: usize, name: &str, args: &[Expr], span: Span) -> TExpr {
        if let Some(used) = self.table_used.get_mut(table) {
            *used = true;
        }
        let Some(signature) = self.table_signatures.get(table).cloned() else {
            return error_expr(span);
        };
        if args.len() != signature.keys.len() {
            self.report(Diagnostic::new(
                Code::WrongArgCount,
                span,
                format!(
                    "table `{name}` takes {} argument{} ({}), found {}",
                    signature.keys.len(),
                    if signature.keys.len() == 1 { "" } else { "s" },
                    signature.key_names.join(", "),
                    args.len()
                ),
            ));
            return error_expr(span);
        }
        let mut checked = Vec::with_capacity(args.len());
        for (arg, key) in args.iter().zip(&signature.keys) {
            let arg = self.expr(arg, Some(key));
            let probe = texpr(TExprKind::Const(Value::None), key.clone(), arg.span);
            self.comparable(CompareOp::Eq, &arg, &probe);
            checked.push(arg);
        }
        texpr(TExprKind::TableCall(table, checked), signature.result, span)
    }

    /// `orders(KEY, WINDOW)` and `customers(KEY, WINDOW)`: one counter slot per
    /// distinct (kind, key, window).
    fn velocity(&mut self, kind: CounterKind, args: &[Expr], span: Span) -> TExpr {
        let (Some(key_expr), Some(window_expr)) = (args.first(), args.get(1)) else {
            return error_expr(span);
        };
        if self.context != Context::Risk {
            self.report(
                Diagnostic::new(
                    Code::FactNotAvailable,
                    span,
                    format!(
                        "{} counters are not available in {}",
                        match kind {
                            CounterKind::Orders => "order",
                            CounterKind::Customers => "customer",
                        },
                        self.context.describe()
                    ),
                )
                .with_help(format!("use `{}(...)` in risk rules", kind.name())),
            );
            return error_expr(span);
        }
        let key = self.expr(key_expr, None);
        let key_path =
            field_path(&key, &self.schema).filter(|_| key.ty.strip_optional() == &Type::String);
        let window = self.expr(window_expr, None);
        let window_value = const_value(&window);
        let mut ok = true;
        if key_path.is_none() && !key.ty.is_error() {
            self.report(
                Diagnostic::new(
                    Code::TypeMismatch,
                    key.span,
                    "the counter key must be a text field of the order or customer",
                )
                .with_help("for example `customer.id`, `customer.device`, `customer.phone` or `order.address`"),
            );
            ok = false;
        }
        let window_seconds = match window_value {
            Some(Value::Quantity(micro, Dimension::Duration)) if micro > 0 => {
                micro / crate::checked::SCALE
            }
            Some(Value::Quantity(_, Dimension::Duration)) => {
                self.report(Diagnostic::new(
                    Code::OutOfRange,
                    window.span,
                    "the counter window must be positive",
                ));
                ok = false;
                0
            }
            _ if window.ty.is_error() => {
                ok = false;
                0
            }
            _ if window.ty.is_numeric() => {
                self.report(
                    Diagnostic::new(
                        Code::MissingUnit,
                        window.span,
                        "the counter window has no unit",
                    )
                    .with_help(unit_help(Dimension::Duration)),
                );
                ok = false;
                0
            }
            _ => {
                self.report(
                    Diagnostic::new(
                        Code::TypeMismatch,
                        window.span,
                        "the counter window must be a constant duration",
                    )
                    .with_help("write it like `1 h`, `30 min` or `7 d`"),
                );
                ok = false;
                0
            }
        };
        let (true, Some(key_path)) = (ok, key_path) else {
            return error_expr(span);
        };
        let index = match self.velocities.iter().position(|v| {
            v.kind == kind && v.key_path == key_path && v.window_seconds == window_seconds
        }) {
            Some(index) => index,
            None => {
                self.velocities.push(Velocity {
                    kind,
                    key_path,
                    key,
                    window_seconds,
                });
                self.velocities.len() - 1
            }
        };
        texpr(TExprKind::Velocity(index), Type::Int, span)
    }

    /// Reports when `e` is not assignable to `expected`, naming `what` it is.
    pub(super) fn require(&mut self, e: &TExpr, expected: &Type, what: &str) -> bool {
        if e.ty.assignable_to(expected) {
            return true;
        }
        let (found, wanted) = (self.type_name(&e.ty), self.type_name(expected));
        let mut diagnostic = Diagnostic::new(
            Code::TypeMismatch,
            e.span,
            format!("{what} must be `{wanted}`, found `{found}`"),
        );
        diagnostic = match (expected, &e.ty) {
            (Type::Money, t) if t.is_numeric() => diagnostic
                .with_help(format!(
                    "write money as `{}{}`",
                    self.currency.main_symbol(),
                    self.source_text(e.span)
                ))
                .with_code(Code::MissingCurrency),
            (Type::Quantity(d), t) if t.is_numeric() => diagnostic
                .with_help(unit_help(*d))
                .with_code(Code::MissingUnit),
            (Type::Quantity(a), Type::Quantity(b)) => diagnostic
                .with_help(format!(
                    "this is a {}; write a {}: {}",
                    b.name(),
                    a.name(),
                    unit_list(*a)
                ))
                .with_code(Code::UnitMismatch),
            (Type::Percent, t) if t.is_numeric() => {
                diagnostic.with_help("write percents with `%`, e.g. `10%`")
            }
            (_, Type::Optional(_)) => {
                let path = field_path(e, &self.schema).unwrap_or_else(|| "this value".to_string());
                diagnostic
                    .with_help(format!(
                        "`{path}` may be absent: use `default({path}, ...)`"
                    ))
                    .with_code(Code::MaybeAbsent)
            }
            _ => diagnostic,
        };
        self.report(diagnostic);
        false
    }
}

trait WithCode {
    fn with_code(self, code: Code) -> Self;
}

impl WithCode for Diagnostic {
    fn with_code(mut self, code: Code) -> Self {
        self.code = code;
        self
    }
}

fn element_of(ty: &Type) -> Type {
    match ty {
        Type::List(inner) => inner.strip_optional().clone(),
        other => other.clone(),
    }
}

fn unit_list(d: Dimension) -> String {
    d.units()
        .iter()
        .map(|u| format!("`{u}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unit_help(d: Dimension) -> String {
    let example = match d {
        Dimension::Mass => "500 g",
        Dimension::Volume => "500 ml",
        Dimension::Energy => "100 Wh",
        Dimension::Distance => "30 km",
        Dimension::Duration => "15 min",
    };
    format!(
        "write the unit, e.g. `{example}` ({} units: {})",
        d.name(),
        unit_list(d)
    )
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

enum ArithProblem {
    Units(Dimension, Dimension),
    MissingUnit(Dimension, Side),
    MissingCurrency(Side),
    Other,
}

/// The arithmetic table of docs/language.md.
fn arith_type(op: ArithOp, left: &Type, right: &Type) -> Result<Type, ArithProblem> {
    use Type::*;
    let side_of_number = |l: &Type| {
        if l.is_numeric() {
            Side::Left
        } else {
            Side::Right
        }
    };
    Ok(match (op, left, right) {
        (_, Error, _) | (_, _, Error) => Error,
        (ArithOp::Add | ArithOp::Sub | ArithOp::Mul, Int, Int) => Int,
        (ArithOp::Div, Int, Int) => Decimal,
        (_, l, r) if l.is_numeric() && r.is_numeric() => Decimal,
        (ArithOp::Add | ArithOp::Sub, Money, Money) => Money,
        (ArithOp::Add | ArithOp::Sub, Percent, Percent) => Percent,
        (ArithOp::Add | ArithOp::Sub, Quantity(a), Quantity(b)) if a == b => Quantity(*a),
        (ArithOp::Add | ArithOp::Sub, Time, Quantity(Dimension::Duration)) => Time,
        (ArithOp::Add, Quantity(Dimension::Duration), Time) => Time,
        (ArithOp::Sub, Time, Time) => Quantity(Dimension::Duration),
        (_, Quantity(a), Quantity(b)) if a != b => return Err(ArithProblem::Units(*a, *b)),
        (ArithOp::Add | ArithOp::Sub, Quantity(d), n)
        | (ArithOp::Add | ArithOp::Sub, n, Quantity(d))
            if n.is_numeric() =>
        {
            return Err(ArithProblem::MissingUnit(*d, side_of_number(left)))
        }
        (ArithOp::Add | ArithOp::Sub, Money, n) | (ArithOp::Add | ArithOp::Sub, n, Money)
            if n.is_numeric() =>
        {
            return Err(ArithProblem::MissingCurrency(side_of_number(left)))
        }
        (ArithOp::Mul, Money, n) | (ArithOp::Mul, n, Money) if n.is_numeric() => Money,
        (ArithOp::Mul, Money, Percent) | (ArithOp::Mul, Percent, Money) => Money,
        (ArithOp::Mul, Quantity(d), n) | (ArithOp::Mul, n, Quantity(d)) if n.is_numeric() => {
            Quantity(*d)
        }
        (ArithOp::Mul, Quantity(d), Percent) | (ArithOp::Mul, Percent, Quantity(d)) => Quantity(*d),
        (ArithOp::Mul, Percent, n) | (ArithOp::Mul, n, Percent) if n.is_numeric() => Percent,
        (ArithOp::Div, Money, n) if n.is_numeric() => Money,
        (ArithOp::Div, Money, Money) => Decimal,
        (ArithOp::Div, Quantity(d), n) if n.is_numeric() => Quantity(*d),
        (ArithOp::Div, Quantity(a), Quantity(b)) if a == b => Decimal,
        (ArithOp::Div, Percent, n) if n.is_numeric() => Percent,
        (ArithOp::Div, Percent, Percent) => Decimal,
        _ => return Err(ArithProblem::Other),
    })
}
