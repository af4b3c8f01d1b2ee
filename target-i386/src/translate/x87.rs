//! x87 FPU instructions -> calls of the `x87` helper ([`crate::fpu_helper`], which holds the semantics).
//!
//! Each instruction becomes: a check call (#NM from CR0.EM/TS/MP, then #MF when an unmasked exception is
//! pending and the instruction waits), the guest accesses of its memory operand into or out of
//! [`crate::cpu::X86CpuState::fp_scratch`], the FOP/FIP/FCS/FDP/FDS bookkeeping of non-control instructions,
//! and the operation call. A load is done before the operation; a store destination is probed first (read,
//! then written back unchanged) so a page fault leaves the x87 state untouched, and the result is stored
//! after the operation (unchanged bytes when the operation stored nothing, e.g. an unmasked invalid
//! operation).

use core::mem::{offset_of, size_of};

use iced_x86::{MemorySize, Mnemonic, OpKind, Register};
use rqemu_include::MemOp;
use rqemu_tcg::{Func, Opcode, Temp, Type};

use super::DisasContext;
use crate::cpu::{seg, FpuState, SegmentCache, X86CpuState};
use crate::fpu_helper::{arith, kind, misc, op};

const FPU: usize = offset_of!(X86CpuState, fpu);
const SCRATCH: i32 = offset_of!(X86CpuState, fp_scratch) as i32;
const FOP: i32 = (FPU + offset_of!(FpuState, fop)) as i32;
const FIP: i32 = (FPU + offset_of!(FpuState, fip)) as i32;
const FDP: i32 = (FPU + offset_of!(FpuState, fdp)) as i32;
const FCS: i32 = (FPU + offset_of!(FpuState, fcs)) as i32;
const FDS: i32 = (FPU + offset_of!(FpuState, fds)) as i32;

fn selector_offset(s: usize) -> i32 {
    (offset_of!(X86CpuState, segs) + s * size_of::<SegmentCache>() + offset_of!(SegmentCache, selector)) as i32
}

/// Which way the memory operand goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    None,
    Load,
    Store,
}

/// One translated x87 instruction.
struct Plan {
    /// `op::CHECK` argument: 0 waiting, 1 fwait, 2 non-waiting.
    check: u32,
    dir: Dir,
    /// Bytes of the memory operand.
    len: usize,
    /// Updates FOP/FIP/FDP (non-control instruction).
    note: bool,
    op: u32,
    a: u32,
    b: u32,
    c: u32,
    /// The operation writes EFLAGS (fcomi).
    eflags: bool,
}

fn st_index(r: Register) -> Option<u32> {
    let n = r as u32;
    let b = Register::ST0 as u32;
    (b..b + 8).contains(&n).then(|| n - b)
}

fn mem_kind(m: MemorySize) -> Option<u32> {
    Some(match m {
        MemorySize::Float32 => kind::F32,
        MemorySize::Float64 => kind::F64,
        MemorySize::Float80 => kind::F80,
        MemorySize::Int16 => kind::I16,
        MemorySize::Int32 => kind::I32,
        MemorySize::Int64 => kind::I64,
        MemorySize::Bcd => kind::BCD,
        _ => return None,
    })
}

impl DisasContext<'_> {
    /// The ST register operands, in operand order.
    fn st_regs(&self) -> Vec<u32> {
        (0..self.insn.op_count())
            .filter(|&n| self.insn.op_kind(n) == OpKind::Register)
            .filter_map(|n| st_index(self.insn.op_register(n)))
            .collect()
    }

    fn has_mem(&self) -> bool {
        (0..self.insn.op_count()).any(|n| self.insn.op_kind(n) == OpKind::Memory)
    }

    /// x87 instructions; `None` when the mnemonic is not one of them.
    pub(super) fn dispatch_x87(&mut self, f: &mut Func) -> Option<bool> {
        let plan = match self.x87_plan() {
            // lock is never valid on an x87 instruction: #UD.
            Some(Some(_)) if self.insn.has_lock_prefix() => return Some(false),
            Some(Some(p)) => p,
            Some(None) => return Some(false),
            None => return None,
        };
        self.gen_x87(f, plan);
        Some(true)
    }

    fn x87_plan(&self) -> Option<Option<Plan>> {
        use Mnemonic as M;
        let m = self.insn.mnemonic();
        let mem = self.has_mem();
        let mk = if mem { mem_kind(self.insn.memory_size()) } else { None };
        let regs = self.st_regs();
        let mut p = Plan {
            check: 0,
            dir: Dir::None,
            len: 0,
            note: true,
            op: op::MISC,
            a: misc::FNOP,
            b: 0,
            c: 0,
            eflags: false,
        };
        let r0 = regs.first().copied().unwrap_or(1);
        match m {
            M::Fld | M::Fild | M::Fbld => {
                p.op = op::LD;
                if mem {
                    let Some(k) = mk else { return Some(None) };
                    p.a = k;
                    p.dir = Dir::Load;
                    p.len = kind::size(k);
                } else {
                    p.a = kind::ST;
                    p.b = r0;
                }
            }
            M::Fst | M::Fstp | M::Fist | M::Fistp | M::Fisttp | M::Fbstp => {
                p.op = op::ST;
                p.c =
                    u32::from(matches!(m, M::Fstp | M::Fistp | M::Fisttp | M::Fbstp)) | u32::from(m == M::Fisttp) << 1;
                if mem {
                    let Some(k) = mk else { return Some(None) };
                    p.a = k;
                    p.dir = Dir::Store;
                    p.len = kind::size(k);
                } else {
                    p.a = kind::ST;
                    p.b = r0;
                }
            }
            M::Fld1 | M::Fldl2t | M::Fldl2e | M::Fldpi | M::Fldlg2 | M::Fldln2 | M::Fldz => {
                p.op = op::CONST;
                p.a = match m {
                    M::Fld1 => 0,
                    M::Fldl2t => 1,
                    M::Fldl2e => 2,
                    M::Fldpi => 3,
                    M::Fldlg2 => 4,
                    M::Fldln2 => 5,
                    _ => 6,
                };
            }
            M::Fadd
            | M::Faddp
            | M::Fiadd
            | M::Fmul
            | M::Fmulp
            | M::Fimul
            | M::Fsub
            | M::Fsubp
            | M::Fisub
            | M::Fsubr
            | M::Fsubrp
            | M::Fisubr
            | M::Fdiv
            | M::Fdivp
            | M::Fidiv
            | M::Fdivr
            | M::Fdivrp
            | M::Fidivr => {
                p.op = op::ARITH;
                let operation = match m {
                    M::Fadd | M::Faddp | M::Fiadd => arith::ADD,
                    M::Fmul | M::Fmulp | M::Fimul => arith::MUL,
                    M::Fsub | M::Fsubp | M::Fisub => arith::SUB,
                    M::Fsubr | M::Fsubrp | M::Fisubr => arith::SUBR,
                    M::Fdiv | M::Fdivp | M::Fidiv => arith::DIV,
                    _ => arith::DIVR,
                };
                let popping = matches!(m, M::Faddp | M::Fmulp | M::Fsubp | M::Fsubrp | M::Fdivp | M::Fdivrp);
                p.a = operation | if popping { 0x100 } else { 0 };
                if mem {
                    let Some(k) = mk else { return Some(None) };
                    p.b = 0;
                    p.c = 8 + k;
                    p.dir = Dir::Load;
                    p.len = kind::size(k);
                } else if regs.len() == 2 {
                    p.b = regs[0];
                    p.c = regs[1];
                } else {
                    // The operand-less popping forms: ST(1) = ST(1) op ST(0).
                    p.b = 1;
                    p.c = 0;
                }
            }
            M::Fcom | M::Fcomp | M::Fcompp | M::Fucom | M::Fucomp | M::Fucompp | M::Ficom | M::Ficomp => {
                p.op = op::COM;
                let pops = match m {
                    M::Fcomp | M::Fucomp | M::Ficomp => 1,
                    M::Fcompp | M::Fucompp => 2,
                    _ => 0,
                };
                let unordered = matches!(m, M::Fucom | M::Fucomp | M::Fucompp);
                p.b = u32::from(unordered) | pops << 1;
                if mem {
                    let Some(k) = mk else { return Some(None) };
                    p.a = 8 + k;
                    p.dir = Dir::Load;
                    p.len = kind::size(k);
                } else {
                    p.a = regs
                        .last()
                        .copied()
                        .filter(|_| regs.len() > 1 || regs.first() != Some(&0))
                        .unwrap_or(1);
                    if regs.len() == 1 {
                        p.a = regs[0];
                    }
                }
            }
            M::Fcomi | M::Fcomip | M::Fucomi | M::Fucomip => {
                p.op = op::COM;
                p.a = regs.last().copied().unwrap_or(1);
                let pops = u32::from(matches!(m, M::Fcomip | M::Fucomip));
                p.b = u32::from(matches!(m, M::Fucomi | M::Fucomip)) | pops << 1 | 8;
                p.eflags = true;
            }
            M::Ftst => {
                p.op = op::COM;
                p.b = 16;
            }
            M::Fcmovb | M::Fcmove | M::Fcmovbe | M::Fcmovu | M::Fcmovnb | M::Fcmovne | M::Fcmovnbe | M::Fcmovnu => {
                p.a = misc::FCMOV;
                p.b = regs.last().copied().unwrap_or(1);
                p.c = match m {
                    M::Fcmovb => 0,
                    M::Fcmove => 1,
                    M::Fcmovbe => 2,
                    M::Fcmovu => 3,
                    M::Fcmovnb => 4,
                    M::Fcmovne => 5,
                    M::Fcmovnbe => 6,
                    _ => 7,
                };
            }
            M::Fxch => {
                p.a = misc::FXCH;
                p.b = regs
                    .iter()
                    .copied()
                    .find(|&r| r != 0)
                    .unwrap_or(if regs.is_empty() { 1 } else { 0 });
            }
            M::Ffree | M::Ffreep => {
                p.a = if m == M::Ffree { misc::FFREE } else { misc::FFREEP };
                p.b = r0;
            }
            M::Fincstp => p.a = misc::FINCSTP,
            M::Fdecstp => p.a = misc::FDECSTP,
            M::Fnop => p.a = misc::FNOP,
            // The 8087/287 control instructions are no-ops on later FPUs (non-waiting forms; the F-forms wait).
            M::Fneni | M::Fndisi | M::Fnsetpm | M::Feni | M::Fdisi | M::Fsetpm => {
                p.check = if matches!(m, M::Fneni | M::Fndisi | M::Fnsetpm) {
                    2
                } else {
                    0
                };
                p.note = false;
                p.op = op::CHECK;
                p.a = p.check;
            }
            M::Fchs => p.a = misc::FCHS,
            M::Fabs => p.a = misc::FABS,
            M::Fsqrt => p.a = misc::FSQRT,
            M::Frndint => p.a = misc::FRNDINT,
            M::Fxam => p.a = misc::FXAM,
            M::Fscale => p.a = misc::FSCALE,
            M::Fxtract => p.a = misc::FXTRACT,
            M::Fprem => p.a = misc::FPREM,
            M::Fprem1 => p.a = misc::FPREM1,
            M::Fsin => p.a = misc::FSIN,
            M::Fcos => p.a = misc::FCOS,
            M::Fsincos => p.a = misc::FSINCOS,
            M::Fptan => p.a = misc::FPTAN,
            M::Fpatan => p.a = misc::FPATAN,
            M::F2xm1 => p.a = misc::F2XM1,
            M::Fyl2x => p.a = misc::FYL2X,
            M::Fyl2xp1 => p.a = misc::FYL2XP1,
            M::Fnclex | M::Fclex => {
                p.check = if m == M::Fnclex { 2 } else { 0 };
                p.note = false;
                p.a = misc::FNCLEX;
            }
            M::Fninit | M::Finit => {
                p.check = if m == M::Fninit { 2 } else { 0 };
                p.note = false;
                p.a = misc::FNINIT;
            }
            M::Wait => {
                p.check = 1;
                p.note = false;
                p.op = op::CHECK;
                p.a = 1;
            }
            M::Fnstenv | M::Fstenv | M::Fldenv | M::Fnsave | M::Fsave | M::Frstor if mem => {
                let (bytes32, full) = match self.insn.memory_size() {
                    MemorySize::FpuEnv14 => (false, false),
                    MemorySize::FpuEnv28 => (true, false),
                    MemorySize::FpuState94 => (false, true),
                    MemorySize::FpuState108 => (true, true),
                    _ => return Some(None),
                };
                let prot = self.flags.pe && !self.flags.vm86;
                p.op = op::ENV;
                p.note = false;
                p.a = match m {
                    M::Fnstenv | M::Fstenv => 0,
                    M::Fldenv => 1,
                    M::Fnsave | M::Fsave => 2,
                    _ => 3,
                };
                p.check = if matches!(m, M::Fnstenv | M::Fnsave) { 2 } else { 0 };
                p.b = u32::from(bytes32) | u32::from(prot) << 1;
                p.len = if bytes32 { 28 } else { 14 } + if full { 80 } else { 0 };
                p.dir = if p.a & 1 == 0 { Dir::Store } else { Dir::Load };
            }
            _ => return None,
        }
        Some(Some(p))
    }

    /// The `x87` helper call `op(a, b, c)`.
    pub(super) fn gen_x87_call(&mut self, f: &mut Func, op: u32, a: u32, b: u32, c: u32) {
        let args: Vec<Temp> = [op, a, b, c]
            .iter()
            .map(|&v| f.constant(Type::I32, u64::from(v)))
            .collect();
        f.call(self.target.helpers.x87, None, &args);
    }

    /// The byte pieces (offset, width) of a `len`-byte operand.
    fn pieces(len: usize) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        let mut off = 0;
        while off < len {
            let w = match len - off {
                n if n >= 8 => 8,
                n if n >= 4 => 4,
                _ => 2,
            };
            v.push((off, w));
            off += w;
        }
        v
    }

    fn piece_ops(w: usize) -> (MemOp, Opcode, Opcode) {
        match w {
            8 => (MemOp::LEUQ, Opcode::St, Opcode::Ld),
            4 => (MemOp::LEUL, Opcode::St32, Opcode::Ld32u),
            _ => (MemOp::LEUW, Opcode::St16, Opcode::Ld16u),
        }
    }

    fn gen_x87(&mut self, f: &mut Func, p: Plan) {
        self.gen_x87_call(f, op::CHECK, p.check, 0, 0);
        if p.op == op::CHECK {
            return;
        }
        let mmu = self.mem_index();
        let mut mem = None;
        if p.dir != Dir::None {
            let off = self.gen_lea_addr(f, 0);
            let seg_index = self.mem_seg_index();
            let addr = self.add_seg_base(f, off, seg_index, p.len as u64);
            for (o, w) in Self::pieces(p.len) {
                let (mop, st, _) = Self::piece_ops(w);
                let a = f.new_ebb_temp(Type::I64);
                let k = f.constant(Type::I64, o as u64);
                f.add(a, addr, k);
                let t = f.new_ebb_temp(Type::I64);
                f.qemu_ld(t, a, mop, mmu);
                f.store(st, t, Temp::ENV, SCRATCH + o as i32);
                if p.dir == Dir::Store {
                    // Probe: write the bytes back unchanged, so a write fault happens before any x87 change.
                    f.qemu_st(t, a, mop, mmu);
                }
            }
            mem = Some((off, seg_index, addr));
        }
        if p.note {
            let fop = f.constant(Type::I64, u64::from(self.x87_fop));
            f.store(Opcode::St16, fop, Temp::ENV, FOP);
            let ip = f.constant(Type::I64, self.pc);
            f.store(Opcode::St, ip, Temp::ENV, FIP);
            let cs = f.new_ebb_temp(Type::I64);
            f.load(Opcode::Ld16u, cs, Temp::ENV, selector_offset(seg::CS));
            f.store(Opcode::St16, cs, Temp::ENV, FCS);
            if let Some((off, seg_index, _)) = mem {
                f.store(Opcode::St, off, Temp::ENV, FDP);
                let ds = f.new_ebb_temp(Type::I64);
                f.load(Opcode::Ld16u, ds, Temp::ENV, selector_offset(seg_index));
                f.store(Opcode::St16, ds, Temp::ENV, FDS);
            }
        }
        self.gen_x87_call(f, p.op, p.a, p.b, p.c);
        if p.eflags {
            self.forget_cc_op();
        }
        if let (Dir::Store, Some((_, _, addr))) = (p.dir, mem) {
            for (o, w) in Self::pieces(p.len) {
                let (mop, _, ld) = Self::piece_ops(w);
                let a = f.new_ebb_temp(Type::I64);
                let k = f.constant(Type::I64, o as u64);
                f.add(a, addr, k);
                let t = f.new_ebb_temp(Type::I64);
                f.load(ld, t, Temp::ENV, SCRATCH + o as i32);
                f.qemu_st(t, a, mop, mmu);
            }
        }
    }
}
