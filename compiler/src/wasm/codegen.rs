//! IR → WebAssembly instructions: the expression compiler and the five hook drivers.
//!
//! Every IR node compiles to straight-line code on `i64` values, except the control
//! the IR itself has (short-circuit `and`/`or`, `if`, quantifier loops, table branch
//! chains). A node is compiled either as a *value* (an `i64` on the stack, booleans as
//! 0/1 like the interpreter) or as a *condition* (an `i32` 0/1), whichever the context
//! needs, so that comparisons feeding a branch never round-trip through `i64`.
//!
//! The hook drivers mirror `interp::run` statement for statement: same reads of the
//! input in the same order (so the same inputs trap), same output words.

use super::body::Body;
use super::globals;
use super::helpers::{self, Helper, Helpers};
use crate::interp::{compare, Hook};
use crate::ir::*;
use crate::numeric::{ABSENT, SCALE};
use wasm_encoder::{BlockType, ValType};

const I64: ValType = ValType::I64;

/// Wasm locals of a hook function: the two parameters, the `i32` output cursor of
/// `out`, one `i64` per IR local, then scratch `i64`s for loops and temporaries.
const PARAMS: u32 = 2;
const OUT_CURSOR: u32 = PARAMS;
const FIRST_I64: u32 = PARAMS + 1;

pub(super) struct FnGen<'a> {
    b: Body,
    helpers: &'a mut Helpers,
    /// IR locals `0..ir_locals` exist (the interpreter's machine has this many).
    ir_locals: u32,
    scratch_used: u32,
    scratch_max: u32,
}

impl<'a> FnGen<'a> {
    pub(super) fn new(program: &Program, helpers: &'a mut Helpers) -> FnGen<'a> {
        FnGen {
            b: Body::default(),
            helpers,
            ir_locals: program.locals.saturating_add(1),
            scratch_used: 0,
            scratch_max: 0,
        }
    }

    /// The declared locals and the finished body.
    pub(super) fn finish(self) -> (Vec<(u32, ValType)>, Vec<u8>) {
        let count = self.ir_locals.saturating_add(self.scratch_max);
        (vec![(1, ValType::I32), (count, I64)], self.b.finish())
    }

    fn call(&mut self, helper: Helper) {
        let index = self.helpers.index(helper);
        self.b.i().call(index);
    }

    fn scratch(&mut self) -> u32 {
        let local = FIRST_I64 + self.ir_locals + self.scratch_used;
        self.scratch_used += 1;
        self.scratch_max = self.scratch_max.max(self.scratch_used);
        local
    }

    /// Reads an IR local; one the interpreter does not have stops the hook there, as
    /// the interpreter does.
    fn get_local(&mut self, local: u32) {
        if local < self.ir_locals {
            self.b.i().local_get(FIRST_I64 + local);
        } else {
            self.b.i().unreachable();
        }
    }

    fn set_local(&mut self, local: u32) {
        if local < self.ir_locals {
            self.b.i().local_set(FIRST_I64 + local);
        } else {
            self.b.i().drop().unreachable();
        }
    }

    /// The input word at the byte offset on the stack (`helpers::word`, in place).
    fn word(&mut self) {
        let mark = self.scratch_used;
        let offset = self.scratch();
        self.b.i().local_set(offset);
        helpers::word(&mut self.b.i(), offset);
        self.scratch_used = mark;
    }

    /// Checked `+` or `-` of the two `i64`s on the stack, in place.
    fn add_or_sub_checked(&mut self, add: bool) {
        let mark = self.scratch_used;
        let (a, b, result) = (self.scratch(), self.scratch(), self.scratch());
        let mut i = self.b.i();
        i.local_set(b).local_set(a);
        if add {
            helpers::add_checked(&mut i, a, b, result);
        } else {
            helpers::sub_checked(&mut i, a, b, result);
        }
        self.scratch_used = mark;
    }

    fn word_at_constant(&mut self, offset: i64) {
        self.b.i().i64_const(offset);
        self.word();
    }

    fn header(&mut self, slot: HeaderSlot) {
        self.word_at_constant(i64::from(slot.word()) * 8);
    }

    /// Unpacks the list descriptor on the stack into `offset` and `count`, trapping
    /// unless the whole list lies inside the input (`helpers::unpack_list`).
    fn unpack_into(&mut self, offset: u32, count: u32, stride: u32) {
        super::helpers::unpack_list(&mut self.b.i(), offset, count, stride);
    }

    // ---------------------------------------------------------------- expressions

    /// Compiles `ir` to leave its `i64` value on the stack.
    pub(super) fn value(&mut self, ir: &Ir) {
        match ir {
            Ir::Const(v) => {
                self.b.i().i64_const(*v);
            }
            Ir::Header(slot) => self.header(*slot),
            Ir::Load { record, field } => {
                self.value(record);
                // `record + 8·field` can only wrap for a record offset near i64::MAX,
                // which the unsigned bounds check in `Word` refuses anyway, exactly as
                // the interpreter refuses the failed `checked_add`.
                if *field != 0 {
                    self.b.i().i64_const(i64::from(*field) * 8).i64_add();
                }
                self.word();
            }
            Ir::Local(local) => self.get_local(*local),
            Ir::Let { local, value, body } => {
                self.value(value);
                self.set_local(*local);
                self.value(body);
            }
            Ir::Neg(a) => {
                // checked_neg fails exactly where 0 - a does.
                self.b.i().i64_const(0);
                self.value(a);
                self.add_or_sub_checked(false);
            }
            Ir::Arith(op, a, b) => {
                self.value(a);
                self.value(b);
                match op {
                    Arith::Add => self.add_or_sub_checked(true),
                    Arith::Sub => self.add_or_sub_checked(false),
                    Arith::Mul => self.call(Helper::MulChecked),
                    Arith::MulScaled => self.call(Helper::MulScaled),
                    Arith::DivScaled => self.call(Helper::DivScaled),
                }
            }
            Ir::Scale(a) => {
                self.value(a);
                self.b.i().i64_const(SCALE);
                self.call(Helper::MulChecked);
            }
            Ir::Unscale(a) => {
                self.value(a);
                self.b.i().i64_const(SCALE);
                self.call(Helper::DivRound);
            }
            Ir::If(c, a, b) => {
                self.cond(c);
                self.b.if_(BlockType::Result(I64));
                self.value(a);
                self.b.else_();
                self.value(b);
                self.b.end();
            }
            Ir::Loop {
                kind,
                local,
                list,
                element,
                filter,
                body,
            } => self.quantify(
                *kind,
                *local,
                list,
                *element,
                filter.as_deref(),
                body.as_deref(),
            ),
            Ir::Counter(index) => {
                self.b.i().i64_const(i64::from(*index));
                self.call(Helper::Counter);
            }
            Ir::Default(a, fallback) => {
                let mark = self.scratch_used;
                let t = self.scratch();
                self.value(a);
                self.b.i().local_tee(t).i64_const(ABSENT).i64_eq();
                self.b.if_(BlockType::Result(I64));
                self.value(fallback);
                self.b.else_();
                self.b.i().local_get(t);
                self.b.end();
                self.scratch_used = mark;
            }
            Ir::Min(a, b) | Ir::Max(a, b) => {
                self.value(a);
                self.value(b);
                self.call(if matches!(ir, Ir::Min(..)) {
                    Helper::Min
                } else {
                    Helper::Max
                });
            }
            Ir::Trap(..) => {
                self.b.i().unreachable();
            }
            Ir::Table { args, rows, .. } => self.table(args, rows),
            Ir::Not(_)
            | Ir::Compare { .. }
            | Ir::And(..)
            | Ir::Or(..)
            | Ir::InConsts { .. }
            | Ir::InList { .. }
            | Ir::HostList { .. } => {
                self.cond(ir);
                self.b.i().i64_extend_i32_u();
            }
        }
    }

    /// Compiles `ir` to leave its truth (`value != 0`) on the stack as an `i32` 0 or 1.
    pub(super) fn cond(&mut self, ir: &Ir) {
        match ir {
            Ir::Const(v) => {
                self.b.i().i32_const(i32::from(*v != 0));
            }
            Ir::Not(a) => {
                self.cond(a);
                self.b.i().i32_eqz();
            }
            Ir::Compare {
                op,
                absent_aware,
                left,
                right,
            } => {
                self.value(left);
                self.value(right);
                if *absent_aware {
                    let mark = self.scratch_used;
                    let (x, y) = (self.scratch(), self.scratch());
                    self.b.i().local_set(y).local_set(x);
                    helpers::compare_absent(&mut self.b.i(), *op, x, y);
                    self.scratch_used = mark;
                } else {
                    helpers::compare(&mut self.b.i(), *op);
                }
            }
            Ir::And(a, b) => {
                self.cond(a);
                self.b.if_(BlockType::Result(ValType::I32));
                self.cond(b);
                self.b.else_();
                self.b.i().i32_const(0);
                self.b.end();
            }
            Ir::Or(a, b) => {
                self.cond(a);
                self.b.if_(BlockType::Result(ValType::I32));
                self.b.i().i32_const(1);
                self.b.else_();
                self.cond(b);
                self.b.end();
            }
            Ir::If(c, a, b) => {
                self.cond(c);
                self.b.if_(BlockType::Result(ValType::I32));
                self.cond(a);
                self.b.else_();
                self.cond(b);
                self.b.end();
            }
            Ir::Let { local, value, body } => {
                self.value(value);
                self.set_local(*local);
                self.cond(body);
            }
            Ir::InConsts {
                value,
                consts,
                negated,
            } => self.in_consts(value, consts, *negated),
            Ir::InList {
                value,
                list,
                negated,
            } => {
                self.value(value);
                self.value(list);
                self.b.i().i32_const(i32::from(*negated));
                self.call(Helper::InList);
            }
            Ir::HostList {
                list,
                value,
                negated,
            } => {
                // The id is read as unsigned by the host.
                self.b.i().i32_const(*list as i32);
                self.value(value);
                self.b.i().i32_const(i32::from(*negated));
                self.call(Helper::HostList);
            }
            Ir::Loop {
                kind: LoopKind::Any | LoopKind::All,
                ..
            } => {
                // Any and All leave exactly 0 or 1.
                self.value(ir);
                self.b.i().i32_wrap_i64();
            }
            _ => {
                self.value(ir);
                self.b.i().i64_eqz().i32_eqz();
            }
        }
    }

    fn in_consts(&mut self, value: &Ir, consts: &[i64], negated: bool) {
        let mark = self.scratch_used;
        let t = self.scratch();
        self.value(value);
        self.b.i().local_set(t);
        let mut distinct: Vec<i64> = Vec::with_capacity(consts.len());
        for c in consts {
            if !distinct.contains(c) {
                distinct.push(*c);
            }
        }
        let mut i = self.b.i();
        match distinct.split_first() {
            None => {
                i.i32_const(0);
            }
            Some((first, rest)) => {
                i.local_get(t).i64_const(*first).i64_eq();
                for c in rest {
                    i.local_get(t).i64_const(*c).i64_eq().i32_or();
                }
            }
        }
        if negated {
            i.i32_eqz();
        }
        // Absent is never in and never `not in`; without `not` the test above already
        // says so unless absent itself is one of the constants.
        if negated || distinct.contains(&ABSENT) {
            i.local_get(t).i64_const(ABSENT).i64_ne().i32_and();
        }
        self.scratch_used = mark;
    }

    fn quantify(
        &mut self,
        kind: LoopKind,
        local: u32,
        list: &Ir,
        element: Element,
        filter: Option<&Ir>,
        body: Option<&Ir>,
    ) {
        let mark = self.scratch_used;
        let (cursor, remaining, acc) = (self.scratch(), self.scratch(), self.scratch());
        self.value(list);
        let stride = match element {
            Element::Record { stride } => stride,
            Element::Scalar => 8,
        };
        self.unpack_into(cursor, remaining, stride);
        self.b
            .i()
            .i64_const(i64::from(kind == LoopKind::All))
            .local_set(acc);
        let done = self.b.block(BlockType::Empty);
        let top = self.b.loop_(BlockType::Empty);
        self.b.i().local_get(remaining).i64_eqz();
        self.b.br_if(done);
        self.b.i().local_get(cursor);
        let step = match element {
            Element::Record { stride } => i64::from(stride),
            Element::Scalar => {
                self.word();
                8
            }
        };
        self.set_local(local);
        match kind {
            LoopKind::Any => match filter {
                Some(f) => {
                    self.cond(f);
                    self.b.if_(BlockType::Empty);
                    self.b.i().i64_const(1).local_set(acc);
                    self.b.br(done);
                    self.b.end();
                }
                None => {
                    self.b.i().i64_const(1).local_set(acc);
                    self.b.br(done);
                }
            },
            LoopKind::All => {
                if let Some(f) = filter {
                    self.cond(f);
                    self.b.i().i32_eqz();
                    self.b.if_(BlockType::Empty);
                    self.b.i().i64_const(0).local_set(acc);
                    self.b.br(done);
                    self.b.end();
                }
            }
            LoopKind::Count => {
                // acc + selected: adding 0 never overflows, adding 1 where the
                // interpreter's checked_add(1) does.
                self.b.i().local_get(acc);
                match filter {
                    Some(f) => {
                        self.cond(f);
                        self.b.i().i64_extend_i32_u();
                    }
                    None => {
                        self.b.i().i64_const(1);
                    }
                }
                self.add_or_sub_checked(true);
                self.b.i().local_set(acc);
            }
            LoopKind::Sum => {
                // A missing summand adds 0, which never overflows.
                if let Some(body) = body {
                    let open = match filter {
                        Some(f) => {
                            self.cond(f);
                            self.b.if_(BlockType::Empty);
                            true
                        }
                        None => false,
                    };
                    self.b.i().local_get(acc);
                    self.value(body);
                    self.add_or_sub_checked(true);
                    self.b.i().local_set(acc);
                    if open {
                        self.b.end();
                    }
                } else if let Some(f) = filter {
                    // The filter is still evaluated (it may trap).
                    self.cond(f);
                    self.b.i().drop();
                }
            }
        }
        self.b
            .i()
            .local_get(cursor)
            .i64_const(step)
            .i64_add()
            .local_set(cursor)
            .local_get(remaining)
            .i64_const(1)
            .i64_sub()
            .local_set(remaining);
        self.b.br(top);
        self.b.end();
        self.b.end();
        self.b.i().local_get(acc);
        self.scratch_used = mark;
    }

    fn table(&mut self, args: &[(u32, Ir)], rows: &[TableRowIr]) {
        for (local, arg) in args {
            self.value(arg);
            self.set_local(*local);
        }
        let found = self.b.block(BlockType::Result(I64));
        let mut always = false;
        for row in rows {
            if row.tests.is_empty() {
                self.b.i().i64_const(row.value);
                self.b.br(found);
                always = true;
                break;
            }
            let next = self.b.block(BlockType::Empty);
            for (local, op, constant) in &row.tests {
                // Absent never matches; the comparison alone already fails for it
                // unless `compare(op, ABSENT, constant)` holds.
                if compare(*op, ABSENT, *constant) {
                    self.get_local(*local);
                    self.b.i().i64_const(ABSENT).i64_eq();
                    self.b.br_if(next);
                }
                self.get_local(*local);
                self.b.i().i64_const(*constant);
                helpers::compare(&mut self.b.i(), negate(*op));
                self.b.br_if(next);
            }
            self.b.i().i64_const(row.value);
            self.b.br(found);
            self.b.end();
        }
        if !always {
            // No row matched.
            self.b.i().unreachable();
        }
        self.b.end();
    }

    // ---------------------------------------------------------------- hook drivers

    /// Appends the `i64` on the stack to the output.
    fn out(&mut self) {
        let mark = self.scratch_used;
        let value = self.scratch();
        self.b.i().local_set(value);
        helpers::out(&mut self.b.i(), value, OUT_CURSOR);
        self.scratch_used = mark;
    }

    /// A rule's `when` as an `i64` 0/1 in `local` (absent: always).
    fn when_into(&mut self, condition: Option<&Ir>, local: u32) {
        match condition {
            Some(c) => {
                self.cond(c);
                self.b.i().i64_extend_i32_u();
            }
            None => {
                self.b.i().i64_const(1);
            }
        }
        self.b.i().local_set(local);
    }

    /// Opens `if local != 0` (the local holds 0/1).
    fn if_set(&mut self, local: u32, bt: BlockType) {
        self.b.i().local_get(local).i32_wrap_i64();
        self.b.if_(bt);
    }

    pub(super) fn hook(&mut self, program: &Program, hook: Hook) {
        self.b.i().local_get(0).local_get(1);
        self.call(Helper::Enter);
        match hook {
            Hook::Promotions => self.promotions(program),
            Hook::Route => self.route(program),
            Hook::Constraints => {
                for constraint in &program.constraints {
                    match constraint {
                        Some(c) => {
                            self.cond(c);
                            self.b.i().i64_extend_i32_u();
                        }
                        None => {
                            self.b.i().i64_const(1);
                        }
                    }
                    self.out();
                }
            }
            Hook::Risk => self.risk(program),
            Hook::SopTriggers => self.sop_triggers(program),
        }
        self.call(Helper::Finish);
    }

    /// Per line of the order: binds `line_local`, then writes `matched` and
    /// `matched ? amount : 0`.
    fn per_line(
        &mut self,
        program: &Program,
        (items_offset, items): (u32, u32),
        line_local: u32,
        filter: Option<&Ir>,
        amount: &Ir,
    ) {
        let mark = self.scratch_used;
        let (cursor, remaining, matched) = (self.scratch(), self.scratch(), self.scratch());
        self.b
            .i()
            .local_get(items_offset)
            .local_set(cursor)
            .local_get(items)
            .local_set(remaining);
        let done = self.b.block(BlockType::Empty);
        let top = self.b.loop_(BlockType::Empty);
        self.b.i().local_get(remaining).i64_eqz();
        self.b.br_if(done);
        self.b.i().local_get(cursor);
        self.set_local(line_local);
        match filter {
            Some(f) => {
                self.when_into(Some(f), matched);
                self.b.i().local_get(matched);
                self.out();
                self.if_set(matched, BlockType::Result(I64));
                self.value(amount);
                self.b.else_();
                self.b.i().i64_const(0);
                self.b.end();
            }
            None => {
                self.b.i().i64_const(1);
                self.out();
                self.value(amount);
            }
        }
        self.out();
        self.b
            .i()
            .local_get(cursor)
            .i64_const(i64::from(program.item_stride))
            .i64_add()
            .local_set(cursor)
            .local_get(remaining)
            .i64_const(1)
            .i64_sub()
            .local_set(remaining);
        self.b.br(top);
        self.b.end();
        self.b.end();
        self.scratch_used = mark;
    }

    fn cap(&mut self, cap: Option<&Ir>) {
        match cap {
            Some(c) => self.value(c),
            None => {
                self.b.i().i64_const(ABSENT);
            }
        }
        self.out();
    }

    fn promotions(&mut self, program: &Program) {
        let (items_offset, items, fired) = (self.scratch(), self.scratch(), self.scratch());
        // The interpreter reads the order's lines before any rule, rules or not.
        self.header(HeaderSlot::Order);
        if program.order_items_field != 0 {
            self.b
                .i()
                .i64_const(i64::from(program.order_items_field) * 8)
                .i64_add();
        }
        self.word();
        self.unpack_into(items_offset, items, program.item_stride);
        for promotion in &program.promotions {
            if promotion.when == Some(Ir::Const(0)) {
                // Dead: never fires, nothing of it is evaluated.
                self.b.i().i64_const(0);
                self.out();
                continue;
            }
            let conditional = promotion.when.is_some();
            self.when_into(promotion.when.as_ref(), fired);
            self.b.i().local_get(fired);
            self.out();
            if conditional {
                self.if_set(fired, BlockType::Empty);
            }
            for action in &promotion.actions {
                match action {
                    ActionIr::DiscountOrder { amount, cap, .. } => {
                        self.value(amount);
                        self.out();
                        self.cap(cap.as_ref());
                    }
                    ActionIr::DiscountItems {
                        line_local,
                        filter,
                        amount,
                        cap,
                        ..
                    } => {
                        self.cap(cap.as_ref());
                        self.per_line(
                            program,
                            (items_offset, items),
                            *line_local,
                            filter.as_ref(),
                            amount,
                        );
                    }
                    ActionIr::Gift { sku, qty } => {
                        self.value(sku);
                        self.out();
                        self.value(qty);
                        self.out();
                    }
                    ActionIr::PointsMultiplier(multiplier) => {
                        self.value(multiplier);
                        self.out();
                    }
                }
            }
            if conditional {
                self.b.end();
            }
        }
    }

    fn route(&mut self, program: &Program) {
        let Some(route) = &program.route else {
            return;
        };
        let (cursor, remaining, eligible) = (self.scratch(), self.scratch(), self.scratch());
        self.header(HeaderSlot::Locations);
        self.unpack_into(cursor, remaining, program.location_stride);
        let done = self.b.block(BlockType::Empty);
        let top = self.b.loop_(BlockType::Empty);
        self.b.i().local_get(remaining).i64_eqz();
        self.b.br_if(done);
        self.b.i().local_get(cursor);
        self.set_local(route.location_local);
        self.when_into(Some(&route.eligible), eligible);
        self.b.i().local_get(eligible);
        self.out();
        self.if_set(eligible, BlockType::Result(I64));
        self.value(&route.score);
        self.b.else_();
        self.b.i().i64_const(0);
        self.b.end();
        self.out();
        self.b
            .i()
            .local_get(cursor)
            .i64_const(i64::from(program.location_stride))
            .i64_add()
            .local_set(cursor)
            .local_get(remaining)
            .i64_const(1)
            .i64_sub()
            .local_set(remaining);
        self.b.br(top);
        self.b.end();
        self.b.end();
    }

    fn risk(&mut self, program: &Program) {
        let (slot, total, evaluated, rejected, fired, score) = (
            self.scratch(),
            self.scratch(),
            self.scratch(),
            self.scratch(),
            self.scratch(),
            self.scratch(),
        );
        // The first word is the number of rules evaluated, known at the end: keep its
        // place.
        self.b
            .i()
            .global_get(globals::OUT_PTR)
            .i64_extend_i32_u()
            .local_set(slot)
            .i64_const(0);
        self.out();
        let stop = self.b.block(BlockType::Empty);
        for risk in &program.risks {
            self.when_into(risk.when.as_ref(), fired);
            match (&risk.score, &risk.when) {
                (Some(s), Some(_)) => {
                    self.if_set(fired, BlockType::Result(I64));
                    self.value(s);
                    self.b.else_();
                    self.b.i().i64_const(0);
                    self.b.end();
                }
                (Some(s), None) => self.value(s),
                (None, _) => {
                    self.b.i().i64_const(0);
                }
            }
            self.b
                .i()
                .local_set(score)
                .local_get(total)
                .local_get(score);
            self.add_or_sub_checked(true);
            self.b.i().local_set(total).local_get(fired);
            self.out();
            self.b.i().local_get(score);
            self.out();
            self.b
                .i()
                .local_get(evaluated)
                .i64_const(1)
                .i64_add()
                .local_set(evaluated);
            if risk.rejects {
                self.if_set(fired, BlockType::Empty);
                self.b.i().i64_const(1).local_set(rejected);
                self.b.br(stop);
                self.b.end();
            }
        }
        self.b.end();
        self.b
            .i()
            .local_get(slot)
            .i32_wrap_i64()
            .local_get(evaluated)
            .i64_store(super::body::WORD)
            .local_get(total);
        self.out();
        self.if_set(rejected, BlockType::Result(I64));
        self.b.i().i64_const(-1);
        self.b.else_();
        self.b.i().local_get(total);
        self.set_local(program.score_local);
        let chosen = self.b.block(BlockType::Result(I64));
        let mut always = false;
        for (i, arm) in program.decide.iter().enumerate() {
            match arm {
                Some(c) => {
                    self.cond(c);
                    self.b.if_(BlockType::Empty);
                    self.b.i().i64_const(i as i64);
                    self.b.br(chosen);
                    self.b.end();
                }
                None => {
                    self.b.i().i64_const(i as i64);
                    self.b.br(chosen);
                    always = true;
                    break;
                }
            }
        }
        if !always {
            self.b.i().i64_const(-2);
        }
        self.b.end();
        self.b.end();
        self.out();
    }

    fn sop_triggers(&mut self, program: &Program) {
        let event = self.scratch();
        self.header(HeaderSlot::Event);
        self.b.i().local_set(event);
        for sop in &program.sops {
            // The condition is only evaluated for the SOP's own event.
            self.b.i().local_get(event).i64_const(sop.event).i64_eq();
            if let Some(w) = &sop.when {
                self.b.if_(BlockType::Result(ValType::I32));
                self.cond(w);
                self.b.else_();
                self.b.i().i32_const(0);
                self.b.end();
            }
            self.b.i().i64_extend_i32_u();
            self.out();
        }
    }
}

/// The comparison that holds exactly when `op` does not.
fn negate(op: Cmp) -> Cmp {
    match op {
        Cmp::Eq => Cmp::Ne,
        Cmp::Ne => Cmp::Eq,
        Cmp::Lt => Cmp::Ge,
        Cmp::Le => Cmp::Gt,
        Cmp::Gt => Cmp::Le,
        Cmp::Ge => Cmp::Lt,
    }
}
