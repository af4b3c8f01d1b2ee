//! IR -> bytecode, in three passes over the ops:
//! 1. check every op's shape, temps and constant arguments, give `env` and constants their fixed slots,
//!    record where TB and EBB temps occur and which branches go backward;
//! 2. give TB and EBB temps slots ([`crate::slots`]);
//! 3. emit one [`Insn`] per op that does something, resolving labels to instruction indexes.
//!
//! Frame layout: slot 0 holds `env`, then the IR's constants, then the temps' slots, then constants the
//! bytecode needs that the IR does not have (wide `movi` values, zero for unused helper arguments). The TB
//! keeps the constant part as a template that is copied into the frame at entry.
//!
//! Any IR is accepted without panicking: what the verifier would reject, or what exceeds a bytecode limit,
//! becomes a [`CompileError`]. Prepared IR has no globals, so a global temp is an error too.

use rqemu_include::{MemOp, MmuIdx};
use rqemu_tcg::op::MAX_OP_ARGS;
use rqemu_tcg::opcodes::ArgKind;
use rqemu_tcg::{
    CompileError, Cond, Func, HelperFlags, HelperId, Op, OpFlags, Opcode, TempKind, Type, HELPER_MAX_ARGS,
};

use crate::bytecode::{CallSite, Cc, Insn, Slot};
use crate::slots::LiveRanges;
use crate::tb::TciTb;

/// Marks a temp without a slot, or a label not placed yet.
const NONE: u32 = u32::MAX;
/// More labels than this is a broken function, not a big one.
const MAX_LABELS: u32 = 1 << 20;

/// The IR -> bytecode compiler, keeping its buffers from one TB to the next.
#[derive(Default)]
pub(crate) struct Compiler {
    ranges: LiveRanges,
    /// Slot number of each temp, [`NONE`] when it has none.
    slot_of: Vec<u32>,
    /// Op position of each placed label (pass 1).
    label_op: Vec<u32>,
    /// Instruction index of each placed label (pass 3).
    label_insn: Vec<u32>,
    /// `(instruction, label)` of branches emitted before their label was placed.
    fixups: Vec<(u32, u32)>,
    /// Frame template: `env` (placeholder), then the IR's constants.
    template: Vec<u64>,
    /// Constants the bytecode adds, placed after the temps' slots.
    extra_consts: Vec<u64>,
    code: Vec<Insn>,
    calls: Vec<CallSite>,
    exits: Vec<u64>,
}

/// Where the extra constants start and how many guest instructions were seen, during pass 3.
struct EmitState {
    first_extra: u32,
    insn_starts: u32,
}

impl Compiler {
    /// Compiles one prepared TB.
    pub(crate) fn compile(&mut self, f: &Func) -> Result<TciTb, CompileError> {
        if f.nb_labels > MAX_LABELS {
            return Err(CompileError::TooLarge(format!("{} labels", f.nb_labels)));
        }
        // Live ranges count two points per op.
        if f.ops.len() >= NONE as usize / 2 {
            return Err(CompileError::TooLarge(format!("{} ops", f.ops.len())));
        }
        self.scan(f)?;
        let first_temp = self.template.len() as u32;
        let first_extra = first_temp + self.ranges.assign(first_temp, &mut self.slot_of);
        self.emit_all(f, first_extra)?;

        let frame_len = first_extra as usize + self.extra_consts.len();
        if frame_len > Slot::LIMIT {
            return Err(CompileError::TooLarge(format!("{frame_len} frame slots")));
        }
        let mut template = Vec::with_capacity(frame_len);
        template.extend_from_slice(&self.template);
        template.resize(first_extra as usize, 0);
        template.extend_from_slice(&self.extra_consts);
        TciTb::new(
            self.code.as_slice().into(),
            template.into(),
            self.calls.as_slice().into(),
            self.exits.as_slice().into(),
            f.target.fault_offset,
            f.target.tlb_offset,
        )
    }

    /// Pass 1: checks, fixed slots, live ranges and backward branches.
    fn scan(&mut self, f: &Func) -> Result<(), CompileError> {
        self.slot_of.clear();
        self.slot_of.resize(f.temps.len(), NONE);
        self.label_op.clear();
        self.label_op.resize(f.nb_labels as usize, NONE);
        self.template.clear();
        self.template.push(0); // env, filled in at entry
        self.ranges.reset(f.temps.len());

        for (pos, op) in f.ops.iter().enumerate() {
            let bad = || invalid(pos, op);
            let sig = Signature::of(f, op).ok_or_else(bad)?;
            for (i, t) in op.outs().chain(op.ins()).enumerate() {
                let is_out = i < op.nb_out as usize;
                let info = f.temps.get(t.index()).ok_or_else(bad)?;
                if Some(info.ty) != sig.arg_type(i) {
                    return Err(bad());
                }
                match info.kind {
                    TempKind::Global { .. } => return Err(bad()),
                    TempKind::Env | TempKind::Const(_) if is_out => return Err(bad()),
                    TempKind::Env => self.slot_of[t.index()] = 0,
                    TempKind::Const(v) => {
                        if self.slot_of[t.index()] == NONE {
                            self.slot_of[t.index()] = self.template.len() as u32;
                            self.template.push(v & info.ty.mask());
                        }
                    }
                    TempKind::Tb | TempKind::Ebb => {
                        if op.opc != Opcode::Discard {
                            self.ranges.occur(t.index(), pos as u32, is_out);
                        }
                    }
                }
            }
            match op.opc {
                Opcode::SetLabel => {
                    let l = label(f, op).ok_or_else(bad)?;
                    if self.label_op[l] != NONE {
                        return Err(bad());
                    }
                    self.label_op[l] = pos as u32;
                }
                Opcode::Br | Opcode::Brcond => {
                    let l = label(f, op).ok_or_else(bad)?;
                    if self.label_op[l] != NONE {
                        self.ranges.backward_branch(self.label_op[l], pos as u32);
                    }
                }
                _ => {}
            }
        }
        if self.template.len() >= Slot::LIMIT {
            return Err(CompileError::TooLarge(format!("{} constants", self.template.len())));
        }
        Ok(())
    }

    /// Pass 3: emits the bytecode and resolves labels.
    fn emit_all(&mut self, f: &Func, first_extra: u32) -> Result<(), CompileError> {
        self.code.clear();
        self.calls.clear();
        self.exits.clear();
        self.extra_consts.clear();
        self.fixups.clear();
        self.label_insn.clear();
        self.label_insn.resize(f.nb_labels as usize, NONE);
        let mut st = EmitState {
            first_extra,
            insn_starts: 0,
        };
        for (pos, op) in f.ops.iter().enumerate() {
            self.emit(f, pos, op, &mut st)?;
        }

        if !self.code.last().is_some_and(Insn::is_terminator) {
            let last = f.ops.len().saturating_sub(1);
            return Err(match f.ops.last() {
                Some(op) => invalid(last, op),
                None => CompileError::Invalid {
                    op_index: 0,
                    why: "a TB without ops".into(),
                },
            });
        }
        for &(at, l) in &self.fixups {
            let target = self.label_insn[l as usize];
            // A label that is never placed, or placed after the last instruction, has no instruction to run.
            if target == NONE || target as usize >= self.code.len() {
                let op = f.ops.iter().position(|op| is_branch_to(op, l)).unwrap_or(0);
                return Err(invalid(op, &f.ops[op]));
            }
            if let Some(t) = self.code[at as usize].target_mut() {
                *t = target;
            }
        }
        if self.code.len() >= NONE as usize {
            return Err(CompileError::TooLarge(format!("{} instructions", self.code.len())));
        }
        Ok(())
    }

    /// Emits the instruction(s) of one op that passed [`Compiler::scan`].
    fn emit(&mut self, f: &Func, pos: usize, op: &Op, st: &mut EmitState) -> Result<(), CompileError> {
        use Opcode as O;
        let bad = || invalid(pos, op);
        let wide = op.ty == Type::I64;
        let bits = op.ty.bits() as u64;
        let k = |i: usize| op.konst(i);
        // Operand slots; absent ones are never read.
        let mut o = [Slot::ENV; 2];
        let mut x = [o[0]; 4];
        for (dst, t) in o.iter_mut().zip(op.outs()) {
            *dst = self.slot(t.index());
        }
        if op.opc != O::Call {
            for (dst, t) in x.iter_mut().zip(op.ins()) {
                *dst = self.slot(t.index());
            }
        }
        let (d, d2) = (o[0], o[1]);
        let (a, b, c, e) = (x[0], x[1], x[2], x[3]);

        macro_rules! typed {
            ($n32:ident, $n64:ident { $($field:ident),* }) => {
                if wide { Insn::$n64 { $($field),* } } else { Insn::$n32 { $($field),* } }
            };
        }

        // The guest instruction containing this op; an op before the first `insn_start` counts as the first.
        let fault_insn = st.insn_starts.saturating_sub(1);
        let insn = match op.opc {
            O::Mov if d == a => return Ok(()),
            O::Mov => Insn::Mov { d, a },
            O::Movi => self.movi(d, k(0) & op.ty.mask(), st)?,
            O::Add => typed!(Add32, Add64 { d, a, b }),
            O::Sub => typed!(Sub32, Sub64 { d, a, b }),
            O::Mul => typed!(Mul32, Mul64 { d, a, b }),
            O::Neg => typed!(Neg32, Neg64 { d, a }),
            O::Mulu2 => typed!(Mulu2_32, Mulu2_64 { d, d2, a, b }),
            O::Muls2 => typed!(Muls2_32, Muls2_64 { d, d2, a, b }),
            O::Muluh => typed!(Muluh32, Muluh64 { d, a, b }),
            O::Mulsh => typed!(Mulsh32, Mulsh64 { d, a, b }),
            O::Divs => typed!(Divs32, Divs64 { d, a, b }),
            O::Divu => Insn::Divu { d, a, b },
            O::Rems => typed!(Rems32, Rems64 { d, a, b }),
            O::Remu => Insn::Remu { d, a, b },
            O::And => Insn::And { d, a, b },
            O::Or => Insn::Or { d, a, b },
            O::Xor => Insn::Xor { d, a, b },
            O::Andc => Insn::Andc { d, a, b },
            O::Orc => typed!(Orc32, Orc64 { d, a, b }),
            O::Eqv => typed!(Eqv32, Eqv64 { d, a, b }),
            O::Nand => typed!(Nand32, Nand64 { d, a, b }),
            O::Nor => typed!(Nor32, Nor64 { d, a, b }),
            O::Not => typed!(Not32, Not64 { d, a }),
            O::Shl => typed!(Shl32, Shl64 { d, a, b }),
            O::Shr => typed!(Shr32, Shr64 { d, a, b }),
            O::Sar => typed!(Sar32, Sar64 { d, a, b }),
            O::Rotl => typed!(Rotl32, Rotl64 { d, a, b }),
            O::Rotr => typed!(Rotr32, Rotr64 { d, a, b }),
            O::Clz => typed!(Clz32, Clz64 { d, a, b }),
            O::Ctz => Insn::Ctz { d, a, b },
            O::Ctpop => Insn::Ctpop { d, a },
            O::Setcond => {
                let (cc, swap) = canonical(cond(k(0)).ok_or_else(bad)?, op.ty);
                let (a, b) = if swap { (b, a) } else { (a, b) };
                match cc {
                    Cc::Never => Insn::Movi { d, imm: 0 },
                    Cc::Always => Insn::Movi { d, imm: 1 },
                    Cc::Eq => Insn::SetEq { d, a, b },
                    Cc::Ne => Insn::SetNe { d, a, b },
                    Cc::Ltu => Insn::SetLtu { d, a, b },
                    Cc::Leu => Insn::SetLeu { d, a, b },
                    Cc::Lt32 => Insn::SetLt32 { d, a, b },
                    Cc::Le32 => Insn::SetLe32 { d, a, b },
                    Cc::Lt64 => Insn::SetLt64 { d, a, b },
                    Cc::Le64 => Insn::SetLe64 { d, a, b },
                    Cc::Tsteq => Insn::SetTsteq { d, a, b },
                    Cc::Tstne => Insn::SetTstne { d, a, b },
                }
            }
            O::Negsetcond => {
                let (cc, swap) = canonical(cond(k(0)).ok_or_else(bad)?, op.ty);
                let (a, b) = if swap { (b, a) } else { (a, b) };
                typed!(NegSetcond32, NegSetcond64 { d, a, b, cc })
            }
            O::Movcond => {
                let (cc, swap) = canonical(cond(k(0)).ok_or_else(bad)?, op.ty);
                let (a, b) = if swap { (b, a) } else { (a, b) };
                match cc {
                    Cc::Never => Insn::Mov { d, a: e },
                    Cc::Always => Insn::Mov { d, a: c },
                    Cc::Eq => Insn::MovEq { d, a, b, c, e },
                    Cc::Ne => Insn::MovNe { d, a, b, c, e },
                    Cc::Ltu => Insn::MovLtu { d, a, b, c, e },
                    Cc::Leu => Insn::MovLeu { d, a, b, c, e },
                    Cc::Lt32 => Insn::MovLt32 { d, a, b, c, e },
                    Cc::Le32 => Insn::MovLe32 { d, a, b, c, e },
                    Cc::Lt64 => Insn::MovLt64 { d, a, b, c, e },
                    Cc::Le64 => Insn::MovLe64 { d, a, b, c, e },
                    Cc::Tsteq => Insn::MovTsteq { d, a, b, c, e },
                    Cc::Tstne => Insn::MovTstne { d, a, b, c, e },
                }
            }
            O::Brcond => {
                let (cc, swap) = canonical(cond(k(0)).ok_or_else(bad)?, op.ty);
                let (a, b) = if swap { (b, a) } else { (a, b) };
                let target = self.target(k(1) as u32);
                match cc {
                    Cc::Never => return Ok(()),
                    Cc::Always => Insn::Br { target },
                    Cc::Eq => Insn::BrEq { a, b, target },
                    Cc::Ne => Insn::BrNe { a, b, target },
                    Cc::Ltu => Insn::BrLtu { a, b, target },
                    Cc::Leu => Insn::BrLeu { a, b, target },
                    Cc::Lt32 => Insn::BrLt32 { a, b, target },
                    Cc::Le32 => Insn::BrLe32 { a, b, target },
                    Cc::Lt64 => Insn::BrLt64 { a, b, target },
                    Cc::Le64 => Insn::BrLe64 { a, b, target },
                    Cc::Tsteq => Insn::BrTsteq { a, b, target },
                    Cc::Tstne => Insn::BrTstne { a, b, target },
                }
            }
            O::Deposit | O::Extract | O::Sextract => {
                let (pos, len) = (k(0), k(1));
                if pos >= bits || len == 0 || len > bits - pos {
                    return Err(bad());
                }
                let (shl, shr) = ((64 - pos - len) as u8, (64 - len) as u8);
                match op.opc {
                    O::Deposit => Insn::Deposit {
                        d,
                        a,
                        b,
                        pos: pos as u8,
                        len: len as u8,
                    },
                    O::Extract => Insn::Extract { d, a, shl, shr },
                    _ => typed!(Sextract32, Sextract64 { d, a, shl, shr }),
                }
            }
            O::Extract2 => match k(0) {
                0 => Insn::Mov { d, a },
                s if s == bits => Insn::Mov { d, a: b },
                s if s < bits => {
                    let shift = s as u8;
                    typed!(Extract2_32, Extract2_64 { d, a, b, shift })
                }
                _ => return Err(bad()),
            },
            O::Ext8s => typed!(Ext8s32, Ext8s64 { d, a }),
            O::Ext8u => Insn::Ext8u { d, a },
            O::Ext16s => typed!(Ext16s32, Ext16s64 { d, a }),
            O::Ext16u => Insn::Ext16u { d, a },
            O::Ext32s | O::ExtI32I64 => Insn::Ext32s { d, a },
            O::Ext32u | O::ExtuI32I64 | O::ExtrlI64I32 => Insn::Ext32u { d, a },
            O::ExtrhI64I32 => Insn::High32 { d, a },
            O::Bswap16 => Insn::Bswap16 { d, a },
            O::Bswap32 => Insn::Bswap32 { d, a },
            O::Bswap64 => Insn::Bswap64 { d, a },
            O::Addco => typed!(Addco32, Addco64 { d, d2, a, b }),
            O::Addci => typed!(Addci32, Addci64 { d, a, b, c }),
            O::Addcio => typed!(Addcio32, Addcio64 { d, d2, a, b, c }),
            O::Subbo => typed!(Subbo32, Subbo64 { d, d2, a, b }),
            O::Subbi => typed!(Subbi32, Subbi64 { d, a, b, c }),
            O::Subbio => typed!(Subbio32, Subbio64 { d, d2, a, b, c }),
            O::Ld8u | O::Ld8s | O::Ld16u | O::Ld16s | O::Ld32u | O::Ld32s | O::Ld => {
                let off = offset(k(0)).ok_or_else(bad)?;
                match op.opc {
                    // Slot 0 is `env` and nothing else.
                    O::Ld8u if a == Slot::ENV => Insn::LdEnv8u { d, off },
                    O::Ld8s if a == Slot::ENV => typed!(LdEnv8s32, LdEnv8s64 { d, off }),
                    O::Ld16u if a == Slot::ENV => Insn::LdEnv16u { d, off },
                    O::Ld16s if a == Slot::ENV => typed!(LdEnv16s32, LdEnv16s64 { d, off }),
                    O::Ld32u if a == Slot::ENV => Insn::LdEnv32u { d, off },
                    O::Ld32s if a == Slot::ENV => Insn::LdEnv32s { d, off },
                    O::Ld if a == Slot::ENV => typed!(LdEnv32u, LdEnv64 { d, off }),
                    O::Ld8u => Insn::Ld8u { d, a, off },
                    O::Ld8s => typed!(Ld8s32, Ld8s64 { d, a, off }),
                    O::Ld16u => Insn::Ld16u { d, a, off },
                    O::Ld16s => typed!(Ld16s32, Ld16s64 { d, a, off }),
                    O::Ld32u => Insn::Ld32u { d, a, off },
                    O::Ld32s => Insn::Ld32s { d, a, off },
                    _ => typed!(Ld32u, Ld64 { d, a, off }),
                }
            }
            O::St8 | O::St16 | O::St32 | O::St => {
                let (v, off) = (a, offset(k(0)).ok_or_else(bad)?);
                let a = b;
                match op.opc {
                    O::St8 if a == Slot::ENV => Insn::StEnv8 { v, off },
                    O::St16 if a == Slot::ENV => Insn::StEnv16 { v, off },
                    O::St32 if a == Slot::ENV => Insn::StEnv32 { v, off },
                    O::St if a == Slot::ENV => typed!(StEnv32, StEnv64 { v, off }),
                    O::St8 => Insn::St8 { v, a, off },
                    O::St16 => Insn::St16 { v, a, off },
                    O::St32 => Insn::St32 { v, a, off },
                    _ => typed!(St32, St64 { v, a, off }),
                }
            }
            O::QemuLd | O::QemuSt => {
                let (memop, mmu) = guest_access(k(0), k(1), bits).ok_or_else(bad)?;
                let insn = fault_insn;
                if op.opc == O::QemuSt {
                    let (v, a) = (a, b);
                    Insn::QemuSt { v, a, memop, mmu, insn }
                } else {
                    typed!(QemuLd32, QemuLd64 { d, a, memop, mmu, insn })
                }
            }
            O::SetLabel => {
                self.label_insn[k(0) as usize] = self.code.len() as u32;
                return Ok(());
            }
            O::Br => Insn::Br {
                target: self.target(k(0) as u32),
            },
            O::Call => self.call(f, op, fault_insn, st).ok_or_else(bad)?,
            O::ExitTb => {
                self.exits.push(k(0));
                Insn::ExitTb {
                    exit: self.exits.len() as u32 - 1,
                }
            }
            O::GotoTb if k(0) <= 1 => Insn::GotoTb { slot: k(0) as u32 },
            O::GotoTb => return Err(bad()),
            O::GotoPtr => Insn::GotoPtr { a },
            O::InsnStart => {
                st.insn_starts = st.insn_starts.saturating_add(1);
                return Ok(());
            }
            // One vCPU runs per host thread and nothing else touches its memory while a TB runs: the
            // interpreter's accesses already happen in program order.
            O::Mb => return Ok(()),
            // The slot is free once the temp's live range ends ([`crate::slots`]), which is at or before this.
            O::Discard => return Ok(()),
        };
        self.code.push(insn);
        Ok(())
    }

    /// The slot pass 1 or 2 gave `temp`.
    fn slot(&self, temp: usize) -> Slot {
        // Every temp of an op that passed `scan` has a slot below the frame length, which `compile` checks
        // against `Slot::LIMIT` before building the TB; until then slot 0 stands in for one past the limit.
        Slot::new(self.slot_of[temp] as usize).unwrap_or(Slot::ENV)
    }

    /// The instruction index of `label`, or 0 and a fixup when it is not placed yet.
    fn target(&mut self, label: u32) -> u32 {
        let t = self.label_insn[label as usize];
        if t == NONE {
            self.fixups.push((self.code.len() as u32, label));
            0
        } else {
            t
        }
    }

    /// A slot holding `value` among the extra constants.
    fn extra_const(&mut self, value: u64, st: &EmitState) -> Result<Slot, CompileError> {
        let i = match self.extra_consts.iter().position(|&v| v == value) {
            Some(i) => i,
            None => {
                self.extra_consts.push(value);
                self.extra_consts.len() - 1
            }
        };
        let index = st.first_extra as usize + i;
        Slot::new(index).ok_or_else(|| CompileError::TooLarge(format!("{} frame slots", index + 1)))
    }

    fn movi(&mut self, d: Slot, value: u64, st: &EmitState) -> Result<Insn, CompileError> {
        Ok(match u32::try_from(value) {
            Ok(imm) => Insn::Movi { d, imm },
            Err(_) => Insn::Mov {
                d,
                a: self.extra_const(value, st)?,
            },
        })
    }

    /// A call op, checked by `scan` against its helper's declaration.
    fn call(&mut self, f: &Func, op: &Op, insn: u32, st: &EmitState) -> Option<Insn> {
        let h = f.target.helpers.get(HelperId(u32::try_from(op.konst(0)).ok()?))?;
        let zero = self.extra_const(0, st).ok()?;
        let mut args = [zero; HELPER_MAX_ARGS];
        for (dst, t) in args.iter_mut().zip(op.ins()) {
            *dst = self.slot(t.index());
        }
        let ret = op
            .outs()
            .next()
            .map(|t| (self.slot(t.index()), f.temps[t.index()].ty.mask()));
        self.calls.push(CallSite {
            func: h.func,
            args,
            ret,
            may_fault: h.flags.contains(HelperFlags::MAY_FAULT),
            insn,
        });
        Some(Insn::Call {
            site: self.calls.len() as u32 - 1,
        })
    }
}

/// The error for a malformed op (tci implements every op, so nothing else is refused).
fn invalid(op_index: usize, op: &Op) -> CompileError {
    CompileError::Invalid {
        op_index,
        why: format!("malformed {} at type {}", op.opc.def().name, op.ty),
    }
}

/// The types an op's temp arguments must have: from the opcode table, or from the helper's declaration.
enum Signature<'a> {
    Table {
        outs: &'static [ArgKind],
        ins: &'static [ArgKind],
        ty: Type,
    },
    Call {
        ret: Option<Type>,
        args: &'a [Type],
    },
}

impl<'a> Signature<'a> {
    /// The signature of `op`, when its argument counts agree with it and its type exists for its opcode.
    fn of(f: &'a Func, op: &Op) -> Option<Signature<'a>> {
        let def = op.opc.def();
        let (nb_out, nb_in) = (op.nb_out as usize, op.nb_in as usize);
        if nb_out + nb_in + op.nb_const as usize > MAX_OP_ARGS
            || op.nb_const as usize != def.consts.len()
            || !op.opc.has_type(op.ty)
        {
            return None;
        }
        if def.flags.contains(OpFlags::VARIADIC) {
            let id = u32::try_from(*op.consts().first()?).ok()?;
            let h = f.target.helpers.get(HelperId(id))?;
            let ok = nb_out == h.ret.is_some() as usize && nb_in == h.args.len() && nb_in <= HELPER_MAX_ARGS;
            return ok.then_some(Signature::Call {
                ret: h.ret,
                args: h.args,
            });
        }
        let ok = nb_out == def.outs.len() && nb_in == def.ins.len();
        ok.then_some(Signature::Table {
            outs: def.outs,
            ins: def.ins,
            ty: op.ty,
        })
    }

    /// The type temp argument `i` (outputs first, then inputs) must have.
    fn arg_type(&self, i: usize) -> Option<Type> {
        match *self {
            Signature::Table { outs, ins, ty } => {
                let kind = match i.checked_sub(outs.len()) {
                    None => outs.get(i),
                    Some(j) => ins.get(j),
                };
                kind.map(|&k| k.type_in(ty))
            }
            Signature::Call { ret: Some(ret), .. } if i == 0 => Some(ret),
            Signature::Call { ret, args } => args.get(i - ret.is_some() as usize).copied(),
        }
    }
}

/// The label of a branch or `set_label`, if it was allocated.
fn label(f: &Func, op: &Op) -> Option<usize> {
    let i = if op.opc == Opcode::Brcond { 1 } else { 0 };
    let l = op.consts().get(i).copied()?;
    (l < f.nb_labels as u64).then_some(l as usize)
}

fn is_branch_to(op: &Op, l: u32) -> bool {
    matches!(op.opc, Opcode::Br | Opcode::Brcond) && op.label().0 == l
}

fn cond(raw: u64) -> Option<Cond> {
    Cond::from_raw(raw)
}

/// The bytecode form of `cond` at `ty`, and whether the operands must be swapped to get it.
fn canonical(cond: Cond, ty: Type) -> (Cc, bool) {
    let (lt, le) = match ty {
        Type::I32 => (Cc::Lt32, Cc::Le32),
        Type::I64 => (Cc::Lt64, Cc::Le64),
    };
    match cond {
        Cond::Never => (Cc::Never, false),
        Cond::Always => (Cc::Always, false),
        Cond::Eq => (Cc::Eq, false),
        Cond::Ne => (Cc::Ne, false),
        Cond::Lt => (lt, false),
        Cond::Gt => (lt, true),
        Cond::Le => (le, false),
        Cond::Ge => (le, true),
        Cond::Ltu => (Cc::Ltu, false),
        Cond::Gtu => (Cc::Ltu, true),
        Cond::Leu => (Cc::Leu, false),
        Cond::Geu => (Cc::Leu, true),
        Cond::Tsteq => (Cc::Tsteq, false),
        Cond::Tstne => (Cc::Tstne, false),
    }
}

/// A host-memory offset constant, if it is a signed 32-bit value.
fn offset(raw: u64) -> Option<i32> {
    i32::try_from(raw as i64).ok()
}

/// The MemOp (raw, it fits 8 bits) and MMU index of a guest access of an op `bits` wide, if valid.
fn guest_access(memop: u64, mmu: u64, bits: u64) -> Option<(u8, MmuIdx)> {
    let m = MemOp::from_raw(u32::try_from(memop).ok()?).ok()?;
    if m.size_bytes() as u64 * 8 > bits {
        return None;
    }
    let mmu = MmuIdx::new(u8::try_from(mmu).ok()?)?;
    Some((m.bits() as u8, mmu))
}
