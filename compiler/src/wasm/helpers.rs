//! Internal functions shared by every hook: the entry and exit sequences, checked
//! arithmetic and the fixed-point kernels of `numeric` (step for step, so they overflow
//! on exactly the same inputs), and the out-of-line parts of a few IR nodes. Each is
//! emitted once per module, and only if some code calls it.
//!
//! The small, frequent operations — the bounds-checked input load, the output writer,
//! checked `+` and `-`, absent-aware comparisons — are emitter functions over locals
//! that the hooks write in place instead of calling, as the fixed-point helpers do
//! with checked `×` and `div_round` (a hook's own `×` still calls `MulChecked`): wasmtime
//! does not inline calls within a module by default, and on the benchmark ruleset the
//! calls cost more than the work (guest code 3.5 µs with calls, 0.97 µs in place:
//! docs/benchmarks.md, "Seventh run").

use super::body::{Body, WORD};
use super::globals;
use crate::abi::MAGIC;
use crate::ir::{Cmp, HeaderSlot};
use crate::numeric::{ABSENT, SCALE};
use wasm_encoder::{BlockType, InstructionSink, ValType};

/// An internal function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Helper {
    /// `(input_ptr: i32, input_len: i32)`: records where the input is, checks the magic
    /// word and places the output after the input.
    Enter,
    /// `() -> i64`: the packed output region.
    Finish,
    /// `(offset: i64) -> i64`: the input word at a byte offset; traps when the word is
    /// not wholly inside the input (the interpreter's `BadInput`).
    Word,
    AddChecked,
    MulChecked,
    AbsChecked,
    /// `numeric::div_round`.
    DivRound,
    /// `numeric::mul_scaled`.
    MulScaled,
    /// `numeric::div_scaled`, division by zero included.
    DivScaled,
    Min,
    Max,
    /// `(value: i64, descriptor: i64, negated: i32) -> i32`: `Ir::InList` once its
    /// operands are evaluated.
    InList,
    /// `(list: i32, value: i64, negated: i32) -> i32`: `Ir::HostList` once its operand
    /// is evaluated.
    HostList,
    /// `(index: i64) -> i64`: `Ir::Counter`.
    Counter,
}

const I32: ValType = ValType::I32;
const I64: ValType = ValType::I64;

impl Helper {
    pub(super) fn signature(self) -> (&'static [ValType], &'static [ValType]) {
        match self {
            Helper::Enter => (&[I32, I32], &[]),
            Helper::Finish => (&[], &[I64]),
            Helper::Word | Helper::AbsChecked | Helper::Counter => (&[I64], &[I64]),
            Helper::AddChecked
            | Helper::MulChecked
            | Helper::DivRound
            | Helper::MulScaled
            | Helper::DivScaled
            | Helper::Min
            | Helper::Max => (&[I64, I64], &[I64]),
            Helper::InList => (&[I64, I64, I32], &[I32]),
            Helper::HostList => (&[I32, I64, I32], &[I32]),
        }
    }
}

/// The helpers a module needs, in the order they were first asked for; their function
/// indices follow the imports and the hooks.
#[derive(Debug)]
pub(super) struct Helpers {
    first_index: u32,
    order: Vec<Helper>,
    /// Function index of the imported `weir.list_contains`, when the program uses
    /// runtime lists.
    pub(super) list_contains: Option<u32>,
}

impl Helpers {
    pub(super) fn new(first_index: u32, list_contains: Option<u32>) -> Helpers {
        Helpers {
            first_index,
            order: Vec::new(),
            list_contains,
        }
    }

    /// The function index of `helper`, adding it to the module on first use.
    pub(super) fn index(&mut self, helper: Helper) -> u32 {
        let position = match self.order.iter().position(|h| *h == helper) {
            Some(p) => p,
            None => {
                self.order.push(helper);
                self.order.len() - 1
            }
        };
        self.first_index + position as u32
    }

    pub(super) fn get(&self, position: usize) -> Option<Helper> {
        self.order.get(position).copied()
    }
}

/// Unpacks the list descriptor on the stack into the locals `offset` and `count`,
/// trapping when the list's `count` elements of `stride` bytes do not all lie inside
/// the input (the interpreter's `Machine::list`). Both halves are below 2³², so the
/// end cannot overflow an `i64`.
pub(super) fn unpack_list(i: &mut InstructionSink<'_>, offset: u32, count: u32, stride: u32) {
    i.local_tee(count)
        .i64_const(32)
        .i64_shr_u()
        .local_set(offset)
        .local_get(count)
        .i64_const(0xFFFF_FFFF)
        .i64_and()
        .local_tee(count)
        .i64_const(i64::from(stride))
        .i64_mul()
        .local_get(offset)
        .i64_add()
        // LIMIT is input_len - 8.
        .global_get(globals::LIMIT)
        .i64_const(8)
        .i64_add()
        .i64_gt_u()
        .if_(BlockType::Empty)
        .unreachable()
        .end();
}

/// The input word at the byte offset held in the `i64` local `offset`; traps when the
/// word is not wholly inside the input (the interpreter's `BadInput`). The body of
/// `Helper::Word`, and what the hooks emit in place of calling it: a load is the most
/// frequent operation of every hook, and a call per load cost more than the load
/// (wasmtime does not inline within a module by default).
pub(super) fn word(i: &mut InstructionSink<'_>, offset: u32) {
    // Unsigned: a negative offset is as far outside as a huge one. The limit is
    // `input_len - 8`, never negative once `Enter` has run.
    i.local_get(offset)
        .global_get(globals::LIMIT)
        .i64_gt_u()
        .if_(BlockType::Empty)
        .unreachable()
        .end();
    i.global_get(globals::IN_PTR)
        .local_get(offset)
        .i32_wrap_i64()
        .i32_add()
        .i64_load(WORD);
}

/// Appends the `i64` local `value` to the output, growing memory by a page when the
/// next word would cross its end; `cursor` is an `i32` scratch local. Emitted in place
/// by the hooks (an out-of-line call per word cost more than the store).
pub(super) fn out(i: &mut InstructionSink<'_>, value: u32, cursor: u32) {
    // The cursor stays 8-aligned and never passes the end, so one page is enough.
    i.global_get(globals::OUT_PTR)
        .local_tee(cursor)
        .i64_extend_i32_u()
        .i64_const(8)
        .i64_add()
        .memory_size(0)
        .i64_extend_i32_u()
        .i64_const(16)
        .i64_shl()
        .i64_gt_u()
        .if_(BlockType::Empty)
        .i32_const(1)
        .memory_grow(0)
        .i32_const(-1)
        .i32_eq()
        .if_(BlockType::Empty)
        .unreachable()
        .end()
        .end();
    i.local_get(cursor).local_get(value).i64_store(WORD);
    i.local_get(cursor)
        .i32_const(8)
        .i32_add()
        .global_set(globals::OUT_PTR);
}

/// Checked `a + b` of the `i64` locals `a` and `b`, through the scratch `sum`: the
/// body of `Helper::AddChecked`, also emitted in place by the hooks (sums and counts).
pub(super) fn add_checked(i: &mut InstructionSink<'_>, a: u32, b: u32, sum: u32) {
    // Overflow iff both operands have the sign the result lacks.
    i.local_get(a)
        .local_get(b)
        .i64_add()
        .local_tee(sum)
        .local_get(a)
        .i64_xor()
        .local_get(sum)
        .local_get(b)
        .i64_xor()
        .i64_and();
    trap_if_negative(i);
    i.local_get(sum);
}

/// Traps when the `i64` on the stack is negative: the overflow test of checked `+` and
/// `-`, which is a sign bit.
fn trap_if_negative(i: &mut InstructionSink<'_>) {
    i.i64_const(0)
        .i64_lt_s()
        .if_(BlockType::Empty)
        .unreachable()
        .end();
}

/// Checked `a - b`, as [`add_checked`].
pub(super) fn sub_checked(i: &mut InstructionSink<'_>, a: u32, b: u32, difference: u32) {
    // Overflow iff the operands' signs differ and the result's differs from a's.
    i.local_get(a)
        .local_get(b)
        .i64_sub()
        .local_set(difference)
        .local_get(a)
        .local_get(b)
        .i64_xor()
        .local_get(a)
        .local_get(difference)
        .i64_xor()
        .i64_and();
    trap_if_negative(i);
    i.local_get(difference);
}

/// `x op y` of the `i64` locals `x` and `y`, false when either is absent (emitted in
/// place by the hooks).
pub(super) fn compare_absent(i: &mut InstructionSink<'_>, op: Cmp, x: u32, y: u32) {
    i.local_get(x).local_get(y);
    compare(i, op);
    i.local_get(x)
        .i64_const(ABSENT)
        .i64_ne()
        .i32_and()
        .local_get(y)
        .i64_const(ABSENT)
        .i64_ne()
        .i32_and();
}

/// Checked `a × b` of the `i64` locals `a` and `b`, through the scratch `product`.
pub(super) fn mul_checked(i: &mut InstructionSink<'_>, a: u32, b: u32, product: u32) {
    i.local_get(a).local_get(b).i64_mul().local_set(product);
    // Two factors in [-2³¹, 2³¹) cannot overflow, and almost every product has them
    // (amounts, percents, quantities): the division below is only for the rest.
    i.local_get(a)
        .i64_const(1 << 31)
        .i64_add()
        .local_get(b)
        .i64_const(1 << 31)
        .i64_add()
        .i64_or()
        .i64_const(0xFFFF_FFFF)
        .i64_gt_u()
        .if_(BlockType::Empty);
    // Overflow iff a ≠ 0 and (a·b mod 2⁶⁴) / a ≠ b; the one product whose check would
    // itself trap (i64::MIN / -1, from -1 × i64::MIN) overflows anyway.
    i.local_get(a)
        .i64_eqz()
        .i32_eqz()
        .if_(BlockType::Empty)
        .local_get(product)
        .local_get(a)
        .i64_div_s()
        .local_get(b)
        .i64_ne()
        .if_(BlockType::Empty)
        .unreachable()
        .end()
        .end()
        .end()
        .local_get(product);
}

/// `numeric::div_round` of the `i64` locals `a` and `d`, step for step; `scratch` are
/// four `i64` locals: the quotient, `|r|`, the constant 1 and a temporary.
pub(super) fn div_round(i: &mut InstructionSink<'_>, a: u32, d: u32, scratch: [u32; 4]) {
    let [q, r_abs, one, t] = scratch;
    i.local_get(d)
        .i64_const(0)
        .i64_le_s()
        .if_(BlockType::Empty)
        .unreachable()
        .end();
    i.local_get(a).local_get(d).i64_div_s().local_set(q);
    // checked_abs: absent (i64::MIN) has no absolute value.
    i.local_get(a).local_get(d).i64_rem_s().local_tee(t);
    i.i64_const(ABSENT)
        .i64_eq()
        .if_(BlockType::Empty)
        .unreachable()
        .end();
    i.i64_const(0)
        .local_get(t)
        .i64_sub()
        .local_get(t)
        .local_get(t)
        .i64_const(0)
        .i64_lt_s()
        .select()
        .local_set(r_abs);
    i.i64_const(1).local_set(one);
    // r_abs >= d - r_abs
    i.local_get(r_abs)
        .local_get(d)
        .local_get(r_abs)
        .i64_sub()
        .i64_ge_s()
        .if_(BlockType::Result(I64))
        .local_get(a)
        .i64_const(0)
        .i64_lt_s()
        .if_(BlockType::Result(I64));
    sub_checked(i, q, one, t);
    i.else_();
    add_checked(i, q, one, t);
    i.end().else_().local_get(q).end();
}

pub(super) fn compare(i: &mut InstructionSink<'_>, op: Cmp) {
    match op {
        Cmp::Eq => i.i64_eq(),
        Cmp::Ne => i.i64_ne(),
        Cmp::Lt => i.i64_lt_s(),
        Cmp::Le => i.i64_le_s(),
        Cmp::Gt => i.i64_gt_s(),
        Cmp::Ge => i.i64_ge_s(),
    };
}

/// A function's extra locals (count, type) and its body bytes.
pub(super) type FunctionParts = (Vec<(u32, ValType)>, Vec<u8>);

/// Locals (beyond the parameters) and body of a helper.
pub(super) fn body(helper: Helper, helpers: &mut Helpers) -> Result<FunctionParts, String> {
    let mut b = Body::default();
    let mut locals = Vec::new();
    match helper {
        Helper::Enter => {
            let word = helpers.index(Helper::Word);
            let mut i = b.i();
            i.local_get(0).global_set(globals::IN_PTR);
            // The interpreter's first read is the magic word at offset 0.
            i.local_get(1).i32_const(8).i32_lt_u().if_(BlockType::Empty);
            i.unreachable().end();
            i.local_get(1)
                .i64_extend_i32_u()
                .i64_const(8)
                .i64_sub()
                .global_set(globals::LIMIT);
            i.i64_const(0).call(word).i64_const(MAGIC).i64_ne();
            i.if_(BlockType::Empty).unreachable().end();
            // Output: the first 8-aligned address after the input.
            locals.push((1, I64));
            i.local_get(0)
                .i64_extend_i32_u()
                .local_get(1)
                .i64_extend_i32_u()
                .i64_add()
                .i64_const(7)
                .i64_add()
                .i64_const(-8)
                .i64_and()
                .local_tee(2)
                .i64_const(i64::from(u32::MAX))
                .i64_gt_u()
                .if_(BlockType::Empty)
                .unreachable()
                .end();
            i.local_get(2).i32_wrap_i64().global_set(globals::OUT_BASE);
            i.local_get(2).i32_wrap_i64().global_set(globals::OUT_PTR);
        }
        Helper::Finish => {
            b.i()
                .global_get(globals::OUT_BASE)
                .i64_extend_i32_u()
                .i64_const(32)
                .i64_shl()
                .global_get(globals::OUT_PTR)
                .global_get(globals::OUT_BASE)
                .i32_sub()
                .i64_extend_i32_u()
                .i64_or();
        }
        Helper::Word => word(&mut b.i(), 0),
        Helper::AddChecked => {
            locals.push((1, I64));
            add_checked(&mut b.i(), 0, 1, 2);
        }
        Helper::MulChecked => {
            locals.push((1, I64));
            mul_checked(&mut b.i(), 0, 1, 2);
        }
        Helper::AbsChecked => {
            b.i()
                .local_get(0)
                .i64_const(ABSENT)
                .i64_eq()
                .if_(BlockType::Empty)
                .unreachable()
                .end()
                .i64_const(0)
                .local_get(0)
                .i64_sub()
                .local_get(0)
                .local_get(0)
                .i64_const(0)
                .i64_lt_s()
                .select();
        }
        Helper::DivRound => {
            // 2: q, 3: |r|, 4: the constant 1, 5: scratch.
            locals.push((4, I64));
            div_round(&mut b.i(), 0, 1, [2, 3, 4, 5]);
        }
        Helper::MulScaled => {
            // 2: ah, 3: al, 4: bh, 5: bl, 6: first, 7: second, 8: scratch, then the
            // four locals of `div_round`. `numeric::mul_scaled` step for step, every
            // step in place: the fixed-point product is the one helper route scores
            // call per candidate, and nested calls were most of its cost.
            locals.push((11, I64));
            let mut i = b.i();
            i.local_get(0).i64_const(SCALE).i64_div_s().local_set(2);
            i.local_get(0).i64_const(SCALE).i64_rem_s().local_set(3);
            i.local_get(1).i64_const(SCALE).i64_div_s().local_set(4);
            i.local_get(1).i64_const(SCALE).i64_rem_s().local_set(5);
            // first = ah × b, second = al × bh
            mul_checked(&mut i, 2, 1, 8);
            i.local_set(6);
            mul_checked(&mut i, 3, 4, 8);
            i.local_set(7);
            // third = div_round(al × bl, S)
            mul_checked(&mut i, 3, 5, 8);
            i.local_set(0);
            i.i64_const(SCALE).local_set(1);
            div_round(&mut i, 0, 1, [9, 10, 11, 12]);
            i.local_set(5);
            // first + second + third
            add_checked(&mut i, 6, 7, 8);
            i.local_set(6);
            add_checked(&mut i, 6, 5, 8);
        }
        Helper::DivScaled => {
            let mul = helpers.index(Helper::MulChecked);
            let add = helpers.index(Helper::AddChecked);
            let abs = helpers.index(Helper::AbsChecked);
            // 2: sign (negative iff a ^ b < 0), 3: quotient, 4: remainder, 5: digits left
            locals.push((4, I64));
            {
                let mut i = b.i();
                i.local_get(1).i64_eqz().if_(BlockType::Empty);
                i.unreachable().end();
                i.local_get(0).local_get(1).i64_xor().local_set(2);
                i.local_get(0).call(abs).local_set(0);
                i.local_get(1).call(abs).local_set(1);
                i.local_get(0).local_get(1).i64_div_s().local_set(3);
                i.local_get(0).local_get(1).i64_rem_s().local_set(4);
                i.i64_const(6).local_set(5);
            }
            let top = b.loop_(BlockType::Empty);
            {
                let mut i = b.i();
                i.local_get(4).i64_const(10).call(mul).local_set(4);
                i.local_get(3)
                    .i64_const(10)
                    .call(mul)
                    .local_get(4)
                    .local_get(1)
                    .i64_div_s()
                    .call(add)
                    .local_set(3);
                i.local_get(4).local_get(1).i64_rem_s().local_set(4);
                i.local_get(5)
                    .i64_const(1)
                    .i64_sub()
                    .local_tee(5)
                    .i64_eqz()
                    .i32_eqz();
            }
            b.br_if(top);
            b.end();
            let mut i = b.i();
            // Round half away from zero on the seventh digit.
            i.local_get(4)
                .local_get(1)
                .local_get(4)
                .i64_sub()
                .i64_ge_s()
                .if_(BlockType::Empty)
                .local_get(3)
                .i64_const(1)
                .call(add)
                .local_set(3)
                .end();
            i.i64_const(0)
                .local_get(3)
                .i64_sub()
                .local_get(3)
                .local_get(2)
                .i64_const(0)
                .i64_lt_s()
                .select();
        }
        Helper::Min | Helper::Max => {
            let mut i = b.i();
            i.local_get(0).local_get(1).local_get(0).local_get(1);
            if helper == Helper::Min {
                i.i64_lt_s();
            } else {
                i.i64_gt_s();
            }
            i.select();
        }
        Helper::InList => {
            let word = helpers.index(Helper::Word);
            locals.push((1, I64)); // 3: cursor
            {
                let mut i = b.i();
                i.local_get(0)
                    .i64_const(ABSENT)
                    .i64_eq()
                    .if_(BlockType::Empty)
                    .i32_const(0)
                    .return_()
                    .end();
                i.local_get(1);
                unpack_list(&mut i, 3, 1, 8);
            }
            let done = b.block(BlockType::Result(I32));
            let top = b.loop_(BlockType::Empty);
            b.i().local_get(1).i64_eqz();
            b.if_(BlockType::Empty);
            b.i().i32_const(0);
            b.br(done);
            b.end();
            b.i().local_get(3).call(word).local_get(0).i64_eq();
            b.if_(BlockType::Empty);
            b.i().i32_const(1);
            b.br(done);
            b.end();
            b.i()
                .local_get(3)
                .i64_const(8)
                .i64_add()
                .local_set(3)
                .local_get(1)
                .i64_const(1)
                .i64_sub()
                .local_set(1);
            b.br(top);
            b.end();
            b.i().unreachable();
            b.end();
            b.i().local_get(2).i32_xor();
        }
        Helper::HostList => {
            let Some(import) = helpers.list_contains else {
                return Err("a runtime list without the list_contains import".to_string());
            };
            b.i()
                .local_get(1)
                .i64_const(ABSENT)
                .i64_eq()
                .if_(BlockType::Empty)
                .i32_const(0)
                .return_()
                .end()
                .local_get(0)
                .local_get(1)
                .call(import)
                .i32_const(0)
                .i32_ne()
                .local_get(2)
                .i32_xor();
        }
        Helper::Counter => {
            let word = helpers.index(Helper::Word);
            locals.push((1, I64)); // 1: descriptor
            let mut i = b.i();
            i.i64_const(i64::from(HeaderSlot::Counters.word()) * 8)
                .call(word)
                .local_tee(1)
                .i64_const(0xFFFF_FFFF)
                .i64_and()
                .local_get(0)
                .i64_le_u()
                .if_(BlockType::Empty)
                .unreachable()
                .end();
            i.local_get(1)
                .i64_const(32)
                .i64_shr_u()
                .local_get(0)
                .i64_const(8)
                .i64_mul()
                .i64_add()
                .call(word);
        }
    }
    Ok((locals, b.finish()))
}
