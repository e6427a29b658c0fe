//! The reference interpreter: evaluates the IR directly over the encoded input and
//! writes the same output words the compiled module writes. It is the oracle the
//! WebAssembly engine is tested against, and it is what `--explain` uses.

use crate::abi::{unpack, word_at};
use crate::ir::*;
use crate::numeric::{self, ABSENT, SCALE};

/// Answers `value in list` for runtime-managed lists.
pub trait HostLists {
    fn contains(&self, list: u32, value: i64) -> bool;
}

/// No runtime lists: every membership test is false.
pub struct NoLists;

impl HostLists for NoLists {
    fn contains(&self, _list: u32, _value: i64) -> bool {
        false
    }
}

/// Why an evaluation stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Trap {
    #[error("arithmetic overflow")]
    Overflow,
    #[error("division by zero")]
    DivisionByZero,
    #[error("table #{0} matched no row")]
    NoTableRow(u32),
    #[error("the input does not follow the ABI")]
    BadInput,
}

impl Trap {
    fn from_code(code: TrapCode, payload: u32) -> Trap {
        match code {
            TrapCode::Overflow => Trap::Overflow,
            TrapCode::DivisionByZero => Trap::DivisionByZero,
            TrapCode::NoTableRow => Trap::NoTableRow(payload),
            TrapCode::BadInput => Trap::BadInput,
        }
    }
}

pub struct Machine<'a> {
    input: &'a [u8],
    lists: &'a dyn HostLists,
    locals: Vec<i64>,
}

fn truth(v: i64) -> bool {
    v != 0
}

impl<'a> Machine<'a> {
    pub fn new(program: &Program, input: &'a [u8], lists: &'a dyn HostLists) -> Machine<'a> {
        Machine {
            input,
            lists,
            locals: vec![0; program.locals as usize + 1],
        }
    }

    fn word(&self, offset: i64) -> Result<i64, Trap> {
        let offset = usize::try_from(offset).map_err(|_| Trap::BadInput)?;
        word_at(self.input, offset).ok_or(Trap::BadInput)
    }

    /// Unpacks a list descriptor whose elements are `stride` bytes apart, checking that
    /// the whole list lies inside the input. Every loop over a list goes through here,
    /// so a descriptor claiming more elements than the input holds stops the
    /// evaluation at once instead of looping (and growing the output) billions of times.
    fn list(&self, descriptor: i64, stride: u32) -> Result<(i64, i64), Trap> {
        let (offset, count) = unpack(descriptor);
        let end = u64::from(offset) + u64::from(count) * u64::from(stride);
        if end > self.input.len() as u64 {
            return Err(Trap::BadInput);
        }
        Ok((i64::from(offset), i64::from(count)))
    }

    fn header(&self, slot: HeaderSlot) -> Result<i64, Trap> {
        self.word(i64::from(slot.word()) * 8)
    }

    fn set_local(&mut self, local: u32, value: i64) -> Result<(), Trap> {
        let slot = self.locals.get_mut(local as usize).ok_or(Trap::BadInput)?;
        *slot = value;
        Ok(())
    }

    fn local(&self, local: u32) -> Result<i64, Trap> {
        self.locals
            .get(local as usize)
            .copied()
            .ok_or(Trap::BadInput)
    }

    /// Binds a local from outside an expression (the route candidate, the risk score).
    pub fn bind(&mut self, local: u32, value: i64) -> Result<(), Trap> {
        self.set_local(local, value)
    }

    fn bool_of(&mut self, ir: &Ir) -> Result<bool, Trap> {
        Ok(truth(self.eval(ir)?))
    }

    pub fn eval(&mut self, ir: &Ir) -> Result<i64, Trap> {
        Ok(match ir {
            Ir::Const(v) => *v,
            Ir::Header(slot) => self.header(*slot)?,
            Ir::Load { record, field } => {
                let base = self.eval(record)?;
                self.word(
                    base.checked_add(i64::from(*field) * 8)
                        .ok_or(Trap::BadInput)?,
                )?
            }
            Ir::Local(local) => self.local(*local)?,
            Ir::Let { local, value, body } => {
                let v = self.eval(value)?;
                self.set_local(*local, v)?;
                self.eval(body)?
            }
            Ir::Not(a) => i64::from(!self.bool_of(a)?),
            Ir::Neg(a) => self.eval(a)?.checked_neg().ok_or(Trap::Overflow)?,
            Ir::Arith(op, a, b) => {
                let (x, y) = (self.eval(a)?, self.eval(b)?);
                arith(*op, x, y)?
            }
            Ir::Scale(a) => self.eval(a)?.checked_mul(SCALE).ok_or(Trap::Overflow)?,
            Ir::Unscale(a) => numeric::div_round(self.eval(a)?, SCALE).ok_or(Trap::Overflow)?,
            Ir::Compare {
                op,
                absent_aware,
                left,
                right,
            } => {
                let (x, y) = (self.eval(left)?, self.eval(right)?);
                if *absent_aware && (x == ABSENT || y == ABSENT) {
                    0
                } else {
                    i64::from(compare(*op, x, y))
                }
            }
            Ir::And(a, b) => i64::from(self.bool_of(a)? && self.bool_of(b)?),
            Ir::Or(a, b) => i64::from(self.bool_of(a)? || self.bool_of(b)?),
            Ir::If(c, a, b) => {
                if self.bool_of(c)? {
                    self.eval(a)?
                } else {
                    self.eval(b)?
                }
            }
            Ir::InConsts {
                value,
                consts,
                negated,
            } => {
                let v = self.eval(value)?;
                if v == ABSENT {
                    0
                } else {
                    i64::from(consts.contains(&v) != *negated)
                }
            }
            Ir::InList {
                value,
                list,
                negated,
            } => {
                let v = self.eval(value)?;
                let descriptor = self.eval(list)?;
                if v == ABSENT {
                    0
                } else {
                    let (offset, count) = self.list(descriptor, 8)?;
                    let mut found = false;
                    for i in 0..count {
                        if self.word(offset + 8 * i)? == v {
                            found = true;
                            break;
                        }
                    }
                    i64::from(found != *negated)
                }
            }
            Ir::HostList {
                list,
                value,
                negated,
            } => {
                let v = self.eval(value)?;
                if v == ABSENT {
                    0
                } else {
                    i64::from(self.lists.contains(*list, v) != *negated)
                }
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
            )?,
            Ir::Counter(index) => {
                let (offset, count) = unpack(self.header(HeaderSlot::Counters)?);
                if *index >= count {
                    return Err(Trap::BadInput);
                }
                self.word(i64::from(offset) + 8 * i64::from(*index))?
            }
            Ir::Default(a, b) => {
                let v = self.eval(a)?;
                if v == ABSENT {
                    self.eval(b)?
                } else {
                    v
                }
            }
            Ir::Min(a, b) => self.eval(a)?.min(self.eval(b)?),
            Ir::Max(a, b) => self.eval(a)?.max(self.eval(b)?),
            Ir::Trap(code, payload) => return Err(Trap::from_code(*code, *payload)),
            Ir::Table { table, args, rows } => {
                for (local, arg) in args {
                    let v = self.eval(arg)?;
                    self.set_local(*local, v)?;
                }
                let mut result = None;
                for row in rows {
                    let mut matched = true;
                    for (local, op, constant) in &row.tests {
                        let v = self.local(*local)?;
                        if v == ABSENT || !compare(*op, v, *constant) {
                            matched = false;
                            break;
                        }
                    }
                    if matched {
                        result = Some(row.value);
                        break;
                    }
                }
                result.ok_or(Trap::NoTableRow(*table))?
            }
        })
    }

    fn quantify(
        &mut self,
        kind: LoopKind,
        local: u32,
        list: &Ir,
        element: Element,
        filter: Option<&Ir>,
        body: Option<&Ir>,
    ) -> Result<i64, Trap> {
        let stride = match element {
            Element::Record { stride } => stride,
            Element::Scalar => 8,
        };
        let descriptor = self.eval(list)?;
        let (offset, count) = self.list(descriptor, stride)?;
        let mut acc: i64 = match kind {
            LoopKind::All => 1,
            _ => 0,
        };
        for i in 0..count {
            let value = match element {
                Element::Record { stride } => offset + i64::from(stride) * i,
                Element::Scalar => self.word(offset + 8 * i)?,
            };
            self.set_local(local, value)?;
            let selected = match filter {
                Some(f) => self.bool_of(f)?,
                None => true,
            };
            match kind {
                LoopKind::Any if selected => return Ok(1),
                LoopKind::All if !selected => return Ok(0),
                LoopKind::Count if selected => acc = acc.checked_add(1).ok_or(Trap::Overflow)?,
                LoopKind::Sum if selected => {
                    let v = match body {
                        Some(b) => self.eval(b)?,
                        None => 0,
                    };
                    acc = acc.checked_add(v).ok_or(Trap::Overflow)?;
                }
                _ => {}
            }
        }
        Ok(acc)
    }
}

pub fn arith(op: Arith, x: i64, y: i64) -> Result<i64, Trap> {
    match op {
        Arith::Add => x.checked_add(y).ok_or(Trap::Overflow),
        Arith::Sub => x.checked_sub(y).ok_or(Trap::Overflow),
        Arith::Mul => x.checked_mul(y).ok_or(Trap::Overflow),
        Arith::MulScaled => numeric::mul_scaled(x, y).ok_or(Trap::Overflow),
        Arith::DivScaled => {
            if y == 0 {
                Err(Trap::DivisionByZero)
            } else {
                numeric::div_scaled(x, y).ok_or(Trap::Overflow)
            }
        }
    }
}

pub fn compare(op: Cmp, x: i64, y: i64) -> bool {
    match op {
        Cmp::Eq => x == y,
        Cmp::Ne => x != y,
        Cmp::Lt => x < y,
        Cmp::Le => x <= y,
        Cmp::Gt => x > y,
        Cmp::Ge => x >= y,
    }
}

/// The hooks a ruleset module exports: each is a function
/// `(input_ptr: i32, input_len: i32) -> i64` named by [`Hook::export_name`]. The one
/// definition shared by the interpreter, the code generator and the wasmtime host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// `promotions`
    Promotions,
    /// `route`
    Route,
    /// `constraints`
    Constraints,
    /// `risk`
    Risk,
    /// `sop_triggers`
    SopTriggers,
}

impl Hook {
    pub const ALL: [Hook; 5] = [
        Hook::Promotions,
        Hook::Route,
        Hook::Constraints,
        Hook::Risk,
        Hook::SopTriggers,
    ];

    pub fn export_name(self) -> &'static str {
        match self {
            Hook::Promotions => "promotions",
            Hook::Route => "route",
            Hook::Constraints => "constraints",
            Hook::Risk => "risk",
            Hook::SopTriggers => "sop_triggers",
        }
    }

    /// The hook exported under `name`, if any.
    pub fn from_export_name(name: &str) -> Option<Hook> {
        Hook::ALL
            .into_iter()
            .find(|hook| hook.export_name() == name)
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.export_name())
    }
}

fn when(machine: &mut Machine<'_>, condition: Option<&Ir>) -> Result<bool, Trap> {
    match condition {
        Some(c) => machine.bool_of(c),
        None => Ok(true),
    }
}

/// Runs one hook of a program over an encoded input, producing the output words.
pub fn run(
    program: &Program,
    hook: Hook,
    input: &[u8],
    lists: &dyn HostLists,
) -> Result<Vec<i64>, Trap> {
    let mut m = Machine::new(program, input, lists);
    if m.word(0)? != crate::abi::MAGIC {
        return Err(Trap::BadInput);
    }
    let mut out = Vec::new();
    match hook {
        Hook::Promotions => {
            let order = m.header(HeaderSlot::Order)?;
            let (items_offset, items) = m.list(
                m.word(
                    order
                        .checked_add(i64::from(program.order_items_field) * 8)
                        .ok_or(Trap::BadInput)?,
                )?,
                program.item_stride,
            )?;
            for promotion in &program.promotions {
                let fired = when(&mut m, promotion.when.as_ref())?;
                out.push(i64::from(fired));
                if !fired {
                    continue;
                }
                for action in &promotion.actions {
                    match action {
                        ActionIr::DiscountOrder { amount, cap, .. } => {
                            out.push(m.eval(amount)?);
                            out.push(match cap {
                                Some(c) => m.eval(c)?,
                                None => ABSENT,
                            });
                        }
                        ActionIr::DiscountItems {
                            line_local,
                            filter,
                            amount,
                            cap,
                            ..
                        } => {
                            out.push(match cap {
                                Some(c) => m.eval(c)?,
                                None => ABSENT,
                            });
                            for i in 0..items {
                                let line = items_offset + i64::from(program.item_stride) * i;
                                m.set_local(*line_local, line)?;
                                let matched = when(&mut m, filter.as_ref())?;
                                out.push(i64::from(matched));
                                out.push(if matched { m.eval(amount)? } else { 0 });
                            }
                        }
                        ActionIr::Gift { sku, qty } => {
                            out.push(m.eval(sku)?);
                            out.push(m.eval(qty)?);
                        }
                        ActionIr::PointsMultiplier(multiplier) => out.push(m.eval(multiplier)?),
                    }
                }
            }
        }
        Hook::Route => {
            if let Some(route) = &program.route {
                let (offset, count) =
                    m.list(m.header(HeaderSlot::Locations)?, program.location_stride)?;
                for i in 0..count {
                    let record = offset + i64::from(program.location_stride) * i;
                    m.set_local(route.location_local, record)?;
                    let eligible = m.bool_of(&route.eligible)?;
                    out.push(i64::from(eligible));
                    out.push(if eligible { m.eval(&route.score)? } else { 0 });
                }
            }
        }
        Hook::Constraints => {
            for constraint in &program.constraints {
                out.push(i64::from(when(&mut m, constraint.as_ref())?));
            }
        }
        Hook::Risk => {
            let mut total: i64 = 0;
            let mut evaluated = Vec::new();
            let mut rejected = false;
            for risk in &program.risks {
                let fired = when(&mut m, risk.when.as_ref())?;
                let score = match (&risk.score, fired) {
                    (Some(s), true) => m.eval(s)?,
                    _ => 0,
                };
                total = total.checked_add(score).ok_or(Trap::Overflow)?;
                evaluated.push(i64::from(fired));
                evaluated.push(score);
                if fired && risk.rejects {
                    rejected = true;
                    break;
                }
            }
            out.push((evaluated.len() / 2) as i64);
            out.extend(evaluated);
            out.push(total);
            let arm = if rejected {
                -1
            } else {
                m.set_local(program.score_local, total)?;
                let mut chosen = -2;
                for (i, arm) in program.decide.iter().enumerate() {
                    if when(&mut m, arm.as_ref())? {
                        chosen = i as i64;
                        break;
                    }
                }
                chosen
            };
            out.push(arm);
        }
        Hook::SopTriggers => {
            let event = m.header(HeaderSlot::Event)?;
            for sop in &program.sops {
                let fired = sop.event == event && when(&mut m, sop.when.as_ref())?;
                out.push(i64::from(fired));
            }
        }
    }
    Ok(out)
}
