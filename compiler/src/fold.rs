//! Constant folding and dead-rule elimination on the IR. Folding evaluates a node
//! whose operands are constants with the reference interpreter itself, so folding can
//! never change a result; a node that would trap is left in place to trap at run time.

use crate::interp::{Machine, NoLists};
use crate::ir::*;

/// Folds every expression; rules whose condition folds to false lose their actions
/// (nothing of theirs is evaluated), and conditions that fold to true are dropped.
pub fn optimise(mut program: Program) -> Program {
    let empty = Program {
        promotions: Vec::new(),
        route: None,
        constraints: Vec::new(),
        risks: Vec::new(),
        decide: Vec::new(),
        score_local: 0,
        sops: Vec::new(),
        locals: program.locals,
        order_items_field: 0,
        item_stride: 0,
        location_stride: 0,
    };
    let fold_ir = |ir: Ir| fold(ir, &empty);
    let fold_when = |when: Option<Ir>| -> Option<Ir> {
        match when.map(|w| fold(w, &empty)) {
            Some(Ir::Const(v)) if v != 0 => None,
            other => other,
        }
    };
    for promotion in &mut program.promotions {
        promotion.when = fold_when(promotion.when.take());
        if promotion.when == Some(Ir::Const(0)) {
            promotion.actions.clear();
            continue;
        }
        for action in &mut promotion.actions {
            *action = match std::mem::replace(action, ActionIr::PointsMultiplier(Ir::Const(0))) {
                ActionIr::DiscountOrder {
                    amount,
                    cap,
                    percent,
                } => ActionIr::DiscountOrder {
                    amount: fold_ir(amount),
                    cap: cap.map(fold_ir),
                    percent,
                },
                ActionIr::DiscountItems {
                    line_local,
                    filter,
                    amount,
                    cap,
                    percent,
                } => ActionIr::DiscountItems {
                    line_local,
                    filter: fold_when(filter),
                    amount: fold_ir(amount),
                    cap: cap.map(fold_ir),
                    percent,
                },
                ActionIr::Gift { sku, qty } => ActionIr::Gift {
                    sku: fold_ir(sku),
                    qty: fold_ir(qty),
                },
                ActionIr::PointsMultiplier(m) => ActionIr::PointsMultiplier(fold_ir(m)),
            };
        }
    }
    if let Some(route) = &mut program.route {
        route.eligible = fold_ir(std::mem::replace(&mut route.eligible, Ir::Const(0)));
        route.score = fold_ir(std::mem::replace(&mut route.score, Ir::Const(0)));
    }
    for constraint in &mut program.constraints {
        *constraint = fold_when(constraint.take());
    }
    for risk in &mut program.risks {
        risk.when = fold_when(risk.when.take());
        risk.score = risk.score.take().map(fold_ir);
    }
    for arm in &mut program.decide {
        *arm = fold_when(arm.take());
    }
    for sop in &mut program.sops {
        sop.when = fold_when(sop.when.take());
    }
    program
}

/// Nodes whose value depends only on their operands.
fn pure(ir: &Ir) -> bool {
    !matches!(
        ir,
        Ir::Header(_)
            | Ir::Load { .. }
            | Ir::Local(_)
            | Ir::Let { .. }
            | Ir::HostList { .. }
            | Ir::Loop { .. }
            | Ir::Counter(_)
            | Ir::Trap(..)
            | Ir::Table { .. }
            | Ir::InList { .. }
    )
}

fn fold(ir: Ir, scratch: &Program) -> Ir {
    let ir = fold_children(ir, scratch);
    match ir {
        Ir::If(c, a, b) => match *c {
            Ir::Const(0) => *b,
            Ir::Const(_) => *a,
            c => Ir::If(c.boxed(), a, b),
        },
        Ir::And(a, b) => match (*a, *b) {
            (Ir::Const(0), _) => Ir::Const(0),
            (Ir::Const(_), b) => normalise_bool(b),
            (a, b) => Ir::And(a.boxed(), b.boxed()),
        },
        Ir::Or(a, b) => match (*a, *b) {
            (Ir::Const(x), _) if x != 0 => Ir::Const(1),
            (Ir::Const(_), b) => normalise_bool(b),
            (a, b) => Ir::Or(a.boxed(), b.boxed()),
        },
        ir if pure(&ir) && !ir.is_const() && ir.children().iter().all(|c| c.is_const()) => {
            let lists = NoLists;
            let mut machine = Machine::new(scratch, &[], &lists);
            match machine.eval(&ir) {
                Ok(v) => Ir::Const(v),
                Err(_) => ir,
            }
        }
        ir => ir,
    }
}

/// `b` as 0/1 when it is a constant (conditions are compared with 0 only, but keeping
/// folded booleans canonical makes the IR easier to read and test).
fn normalise_bool(b: Ir) -> Ir {
    match b {
        Ir::Const(v) => Ir::Const(i64::from(v != 0)),
        other => other,
    }
}

// Takes the box it replaces, so that a tree is rebuilt without re-allocating its spine.
#[allow(clippy::boxed_local)]
fn fold_box(b: Box<Ir>, scratch: &Program) -> Box<Ir> {
    Box::new(fold(*b, scratch))
}

fn fold_children(ir: Ir, s: &Program) -> Ir {
    match ir {
        Ir::Load { record, field } => Ir::Load {
            record: fold_box(record, s),
            field,
        },
        Ir::Let { local, value, body } => Ir::Let {
            local,
            value: fold_box(value, s),
            body: fold_box(body, s),
        },
        Ir::Not(a) => Ir::Not(fold_box(a, s)),
        Ir::Neg(a) => Ir::Neg(fold_box(a, s)),
        Ir::Scale(a) => Ir::Scale(fold_box(a, s)),
        Ir::Unscale(a) => Ir::Unscale(fold_box(a, s)),
        Ir::Arith(op, a, b) => Ir::Arith(op, fold_box(a, s), fold_box(b, s)),
        Ir::Compare {
            op,
            absent_aware,
            left,
            right,
        } => Ir::Compare {
            op,
            absent_aware,
            left: fold_box(left, s),
            right: fold_box(right, s),
        },
        Ir::And(a, b) => Ir::And(fold_box(a, s), fold_box(b, s)),
        Ir::Or(a, b) => Ir::Or(fold_box(a, s), fold_box(b, s)),
        Ir::If(c, a, b) => Ir::If(fold_box(c, s), fold_box(a, s), fold_box(b, s)),
        Ir::InConsts {
            value,
            consts,
            negated,
        } => Ir::InConsts {
            value: fold_box(value, s),
            consts,
            negated,
        },
        Ir::InList {
            value,
            list,
            negated,
        } => Ir::InList {
            value: fold_box(value, s),
            list: fold_box(list, s),
            negated,
        },
        Ir::HostList {
            list,
            value,
            negated,
        } => Ir::HostList {
            list,
            value: fold_box(value, s),
            negated,
        },
        Ir::Loop {
            kind,
            local,
            list,
            element,
            filter,
            body,
        } => Ir::Loop {
            kind,
            local,
            list: fold_box(list, s),
            element,
            filter: filter.map(|f| fold_box(f, s)),
            body: body.map(|b| fold_box(b, s)),
        },
        Ir::Default(a, b) => Ir::Default(fold_box(a, s), fold_box(b, s)),
        Ir::Min(a, b) => Ir::Min(fold_box(a, s), fold_box(b, s)),
        Ir::Max(a, b) => Ir::Max(fold_box(a, s), fold_box(b, s)),
        Ir::Table { table, args, rows } => Ir::Table {
            table,
            args: args.into_iter().map(|(l, a)| (l, fold(a, s))).collect(),
            rows,
        },
        leaf => leaf,
    }
}
