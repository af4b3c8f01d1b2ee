//! A backend for testing the suite itself: it interprets IR (prepared or not) with [`crate::semantics`], and
//! can be told to get one op wrong or to refuse some, so the tests see the suite catch it.

use std::collections::HashMap;

use rqemu_include::{MemOp, MmuIdx};

use crate::backend::{Backend, CompileError, CompiledTb, ExecContext, TbExit};
use crate::func::Func;
use crate::helper::{HelperFlags, HELPER_MAX_ARGS};
use crate::opcodes::Opcode;
use crate::semantics::{self, eval_cond};
use crate::temp::{Temp, TempKind};
use crate::types::Type;

/// A deliberate mistake of the reference backend, which the suite must notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bug {
    /// Flips the low bit of this op's first result.
    Corrupt(Opcode, Type),
    /// Flips the low bit of the first result of computational ops with a constant input.
    ConstOperand,
    /// `st_i32` writes 8 bytes.
    WideI32Store,
    /// Reports faults one guest instruction late.
    FaultInsnLate,
    /// Passes garbage in unused helper arguments.
    HelperGarbage,
    /// Ignores the fault word after `MAY_FAULT` helpers.
    HelperFaultIgnored,
    /// Ignores `BSWAP` in guest accesses.
    NoBswap,
    /// Truncates guest addresses to 32 bits.
    TruncatedAddress,
    /// Leaves garbage above i32 values in temps and relies on it being zero in `extu_i32_i64`.
    DirtyI32,
}

/// The reference interpreter as a backend.
#[derive(Default)]
pub(super) struct Reference {
    /// The mistake to make, if any.
    pub bug: Option<Bug>,
    /// Pairs `supports` denies.
    pub unsupported: Vec<(Opcode, Type)>,
    /// Pairs `supports` admits but `compile` refuses.
    pub refused: Vec<(Opcode, Type)>,
    /// TBs compiled so far.
    pub compiled: usize,
}

impl Backend for Reference {
    fn name(&self) -> &'static str {
        "reference"
    }

    fn supports(&self, opc: Opcode, ty: Type) -> bool {
        !self.unsupported.contains(&(opc, ty))
    }

    fn compile(&mut self, func: &Func) -> Result<Box<dyn CompiledTb>, CompileError> {
        if let Some((i, op)) = func
            .ops
            .iter()
            .enumerate()
            .find(|(_, op)| self.refused.contains(&(op.opc, op.ty)))
        {
            return Err(CompileError::Unsupported {
                op_index: i,
                opc: op.opc,
                ty: op.ty,
            });
        }
        self.compiled += 1;
        let labels = func
            .ops
            .iter()
            .enumerate()
            .filter(|(_, op)| op.opc == Opcode::SetLabel)
            .map(|(i, op)| (op.konst(0), i))
            .collect();
        Ok(Box::new(RefTb {
            func: func.clone(),
            labels,
            bug: self.bug,
        }))
    }
}

/// Ops one run may execute; the suite's longest loop needs a few thousand.
const MAX_STEPS: u32 = 100_000;

struct RefTb {
    func: Func,
    labels: HashMap<u64, usize>,
    bug: Option<Bug>,
}

/// Reads a `size`-byte host value at `p`.
unsafe fn load(p: *const u8, size: usize) -> u64 {
    let mut b = [0u8; 8];
    core::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), size);
    u64::from_le_bytes(b)
}

/// Writes the low `size` bytes of `v` at `p`.
unsafe fn store(p: *mut u8, size: usize, v: u64) {
    core::ptr::copy_nonoverlapping(v.to_le_bytes().as_ptr(), p, size);
}

fn sext(v: u64, size: usize) -> u64 {
    let shift = 64 - 8 * size as u32;
    (((v << shift) as i64) >> shift) as u64
}

impl RefTb {
    unsafe fn read(&self, vals: &[u64], env: *mut u8, t: Temp) -> u64 {
        let info = self.func.temp(t);
        match info.kind {
            TempKind::Env => env as usize as u64,
            TempKind::Global { offset, .. } => load(env.offset(offset as isize), info.ty.bits() as usize / 8),
            TempKind::Const(v) => v,
            TempKind::Tb | TempKind::Ebb => vals[t.index()],
        }
    }

    unsafe fn write(&self, vals: &mut [u64], env: *mut u8, t: Temp, v: u64) {
        let info = self.func.temp(t);
        let v = v & info.ty.mask();
        match info.kind {
            TempKind::Global { offset, .. } => store(env.offset(offset as isize), info.ty.bits() as usize / 8, v),
            _ if info.ty == Type::I32 && self.bug == Some(Bug::DirtyI32) => vals[t.index()] = v | 0xdead << 32,
            _ => vals[t.index()] = v,
        }
    }
}

impl RefTb {
    fn fault(&self, insn: u32) -> TbExit {
        let late = (self.bug == Some(Bug::FaultInsnLate)) as u32;
        TbExit::Fault { insn: insn + late }
    }
}

impl CompiledTb for RefTb {
    unsafe fn run(&self, ctx: &mut ExecContext<'_>) -> TbExit {
        use Opcode::*;
        let env = ctx.env;
        let f = &self.func;
        let mut vals = vec![0u64; f.temps.len()];
        let mut insn: u32 = 0;
        let mut started = false;
        let mut pc = 0;
        // A deliberate bug can turn a counted loop into an endless one.
        let mut budget = MAX_STEPS;
        while let Some(op) = f.ops.get(pc) {
            pc += 1;
            budget -= 1;
            if budget == 0 {
                return TbExit::Exit(u64::MAX);
            }
            let ins: Vec<u64> = op.ins().map(|t| self.read(&vals, env, t)).collect();
            let mask = op.ty.mask();
            match op.opc {
                InsnStart => {
                    insn += started as u32;
                    started = true;
                }
                SetLabel | Mb | Discard => {}
                Br => pc = self.labels[&op.konst(0)],
                Brcond => {
                    if eval_cond(op.cond(), op.ty, ins[0], ins[1]) {
                        pc = self.labels[&op.konst(1)];
                    }
                }
                ExitTb => return TbExit::Exit(op.konst(0)),
                GotoTb => return TbExit::GotoTb(op.konst(0) as u32),
                GotoPtr => return TbExit::GotoPtr(ins[0] as usize),
                Ld8u | Ld8s | Ld16u | Ld16s | Ld32u | Ld32s | Ld => {
                    let (size, signed) = match op.opc {
                        Ld8u => (1, false),
                        Ld8s => (1, true),
                        Ld16u => (2, false),
                        Ld16s => (2, true),
                        Ld32u => (4, false),
                        Ld32s => (4, true),
                        _ => (op.ty.bits() as usize / 8, false),
                    };
                    let p = (ins[0] as usize as *const u8).offset(op.konst(0) as i64 as isize);
                    let v = load(p, size);
                    self.write(&mut vals, env, op.out(0), if signed { sext(v, size) } else { v });
                }
                St8 | St16 | St32 | St => {
                    let size = match op.opc {
                        St8 => 1,
                        St16 => 2,
                        St32 => 4,
                        _ => op.ty.bits() as usize / 8,
                    };
                    let p = (ins[1] as usize as *mut u8).offset(op.konst(0) as i64 as isize);
                    let wide = self.bug == Some(Bug::WideI32Store) && op.opc == St && op.ty == Type::I32;
                    store(p, if wide { 8 } else { size }, ins[0]);
                }
                QemuLd | QemuSt => {
                    let mut memop = MemOp::from_bits_retain(op.konst(0) as u32);
                    if self.bug == Some(Bug::NoBswap) {
                        memop.remove(MemOp::BSWAP);
                    }
                    let addr_mask = if self.bug == Some(Bug::TruncatedAddress) {
                        u32::MAX as u64
                    } else {
                        u64::MAX
                    };
                    let mmu = MmuIdx::new(op.konst(1) as u8).unwrap_or_default();
                    let r = if op.opc == QemuLd {
                        ctx.mem
                            .load(env, ins[0] & addr_mask, memop, mmu)
                            .map(|v| self.write(&mut vals, env, op.out(0), v))
                    } else {
                        ctx.mem.store(env, ins[1] & addr_mask, ins[0] & mask, memop, mmu)
                    };
                    if r.is_err() {
                        return self.fault(insn);
                    }
                }
                Call => {
                    let Some(h) = f.target.helpers.get(crate::HelperId(op.konst(0) as u32)) else {
                        return TbExit::Exit(u64::MAX);
                    };
                    let unused = if self.bug == Some(Bug::HelperGarbage) {
                        0xdead
                    } else {
                        0
                    };
                    let mut a = [unused; HELPER_MAX_ARGS];
                    for (i, (&v, ty)) in ins.iter().zip(h.args).enumerate() {
                        a[i] = v & ty.mask();
                    }
                    let r = (h.func)(env, a[0], a[1], a[2], a[3], a[4]);
                    let fault_word = env
                        .offset(f.target.fault_offset as isize)
                        .cast::<u32>()
                        .read_unaligned();
                    let ignored = self.bug == Some(Bug::HelperFaultIgnored);
                    if h.flags.contains(HelperFlags::MAY_FAULT) && fault_word != 0 && !ignored {
                        return self.fault(insn);
                    }
                    if op.nb_out == 1 {
                        self.write(&mut vals, env, op.out(0), r);
                    }
                }
                ExtuI32I64 if self.bug == Some(Bug::DirtyI32) => self.write(&mut vals, env, op.out(0), ins[0]),
                opc => {
                    let Some(mut outs) = semantics::eval(opc, op.ty, &ins, op.consts()) else {
                        return TbExit::Exit(u64::MAX);
                    };
                    let has_const = op.ins().any(|t| f.const_value(t).is_some());
                    if self.bug == Some(Bug::Corrupt(opc, op.ty)) || (self.bug == Some(Bug::ConstOperand) && has_const)
                    {
                        outs[0] ^= 1;
                    }
                    for (i, t) in op.outs().enumerate() {
                        self.write(&mut vals, env, t, outs[i]);
                    }
                }
            }
        }
        TbExit::Exit(u64::MAX)
    }

    fn code_size(&self) -> usize {
        self.func.ops.len()
    }
}
