//! x87/SSE control state without x87 arithmetic: fnstcw/fldcw, fnstsw (m16 and ax), ldmxcsr/stmxcsr
//! and fxsave/fxrstor (and their REX.W forms fxsave64/fxrstor64), on [`crate::cpu::FpuState`],
//! [`crate::cpu::X86CpuState::mxcsr`] and the XMM registers.
//!
//! fxsave/fxrstor are generated as IR (loads from `env` and guest stores, or guest loads then stores to `env`;
//! the `x87` helper builds fxsave's first 160 bytes in `fp_scratch` and rotates fxrstor's ST-ordered registers
//! into physical order), so faults are precise: the area must be 16-byte aligned (#GP(0)); fxrstor loads the whole area before it
//! changes any state, and a reserved MXCSR bit raises #GP(0) with nothing changed. fxsave writes bytes 0..416
//! (header, MXCSR, MXCSR_MASK, ST0-7, XMM0-15) in ascending order; a page fault part-way leaves the earlier
//! bytes written. Bytes 416..512 are not written, as on hardware. The pending-exception checks of the x87
//! (#NM, and #MF for the waiting forms and fldcw) are the `x87` helper's CHECK call ([`crate::fpu_helper`]).

use core::mem::offset_of;

use iced_x86::{Mnemonic, OpKind, Register};
use rqemu_include::MemOp;
use rqemu_tcg::{Cond, Func, Opcode, Temp, Type};

use super::sse_moves::xmm_offset;
use super::DisasContext;
use crate::cpu::{excp, FpuState, X86CpuState};

/// The MXCSR bits that may be set (MXCSR_MASK, as fxsave stores it): everything up to bit 15, DAZ included.
pub const MXCSR_MASK: u32 = 0xffff;

const FPU: usize = offset_of!(X86CpuState, fpu);
const FCW: i32 = (FPU + offset_of!(FpuState, fcw)) as i32;
const FSW: i32 = (FPU + offset_of!(FpuState, fsw)) as i32;
const FTW: i32 = (FPU + offset_of!(FpuState, ftw)) as i32;
const FOP: i32 = (FPU + offset_of!(FpuState, fop)) as i32;
const FIP: i32 = (FPU + offset_of!(FpuState, fip)) as i32;
const FDP: i32 = (FPU + offset_of!(FpuState, fdp)) as i32;
const REGS: i32 = (FPU + offset_of!(FpuState, regs)) as i32;
const MXCSR: i32 = offset_of!(X86CpuState, mxcsr) as i32;
const SCRATCH: i32 = offset_of!(X86CpuState, fp_scratch) as i32;

impl DisasContext<'_> {
    /// The x87/MXCSR state instructions; false: #UD.
    pub(super) fn gen_x87_state(&mut self, f: &mut Func) -> bool {
        use Mnemonic as M;
        let mem = self.insn.op_count() == 1 && self.insn.op_kind(0) == OpKind::Memory;
        // #NM (CR0.EM/TS); the waiting forms and fldcw also raise #MF for a pending unmasked exception.
        let check = match self.insn.mnemonic() {
            M::Fnstcw | M::Fnstsw | M::Fxsave | M::Fxsave64 | M::Fxrstor | M::Fxrstor64 => Some(2),
            M::Fstcw | M::Fstsw | M::Fldcw => Some(0),
            _ => None,
        };
        if let Some(c) = check {
            self.gen_x87_call(f, crate::fpu_helper::op::CHECK, c, 0, 0);
        }
        match self.insn.mnemonic() {
            M::Fnstcw | M::Fstcw if mem => self.gen_st_env16(f, FCW),
            M::Fnstsw | M::Fstsw if mem => self.gen_st_env16(f, FSW),
            M::Fnstsw | M::Fstsw
                if self.insn.op_kind(0) == OpKind::Register && self.insn.op_register(0) == Register::AX =>
            {
                let t = f.new_ebb_temp(Type::I64);
                f.load(Opcode::Ld16u, t, Temp::ENV, FSW);
                self.write_reg(f, Register::AX, t);
            }
            M::Fldcw if mem => {
                let addr = self.gen_ea(f, 0);
                let t = f.new_ebb_temp(Type::I64);
                f.qemu_ld(t, addr, MemOp::LEUW, self.mem_index());
                // Reserved FCW bits: 6 reads as 1, 7 and 13..15 as 0 (measured on the host CPU; Bochs does the same).
                let keep = f.constant(Type::I64, 0x1f3f);
                let one = f.constant(Type::I64, 0x40);
                f.and(t, t, keep);
                f.or(t, t, one);
                f.store(Opcode::St16, t, Temp::ENV, FCW);
                self.gen_x87_call(f, crate::fpu_helper::op::MISC, crate::fpu_helper::misc::SYNC_ES, 0, 0);
            }
            M::Stmxcsr if mem => {
                let addr = self.gen_ea(f, 0);
                let t = f.new_ebb_temp(Type::I64);
                f.load(Opcode::Ld32u, t, Temp::ENV, MXCSR);
                f.qemu_st(t, addr, MemOp::LEUL, self.mem_index());
            }
            M::Ldmxcsr if mem => {
                let addr = self.gen_ea(f, 0);
                let t = f.new_temp(Type::I64); // lives across the check's label
                f.qemu_ld(t, addr, MemOp::LEUL, self.mem_index());
                self.gen_check_mxcsr(f, t);
                f.store(Opcode::St32, t, Temp::ENV, MXCSR);
            }
            M::Fxsave | M::Fxsave64 if mem => self.gen_fxsave(f),
            M::Fxrstor | M::Fxrstor64 if mem => self.gen_fxrstor(f),
            _ => return false,
        }
        true
    }

    fn gen_st_env16(&mut self, f: &mut Func, off: i32) {
        let addr = self.gen_ea(f, 0);
        let t = f.new_ebb_temp(Type::I64);
        f.load(Opcode::Ld16u, t, Temp::ENV, off);
        f.qemu_st(t, addr, MemOp::LEUW, self.mem_index());
    }

    /// #GP(0) when `v` has a bit outside [`MXCSR_MASK`]. The check ends the basic block: `v` and whatever is
    /// used after it must be TB temps.
    fn gen_check_mxcsr(&mut self, f: &mut Func, v: Temp) {
        let ok = f.new_label();
        let mask = f.constant(Type::I64, !(MXCSR_MASK as u64));
        f.brcond(Cond::Tsteq, v, mask, ok);
        self.gen_exception(f, excp::GP, 0);
        self.is_jmp = super::DisasJump::Next;
        f.set_label(ok);
    }

    /// The (env offset, area offset, env load opcode, width) list of the fxsave area's first 32 bytes.
    fn fx_header(&self) -> Vec<(i32, u64, Opcode, MemOp)> {
        let rex_w = self.insn.mnemonic() == Mnemonic::Fxsave64 || self.insn.mnemonic() == Mnemonic::Fxrstor64;
        let mut v = vec![
            (FCW, 0, Opcode::Ld16u, MemOp::LEUW),
            (FSW, 2, Opcode::Ld16u, MemOp::LEUW),
            (FTW, 4, Opcode::Ld8u, MemOp::UB),
            (FOP, 6, Opcode::Ld16u, MemOp::LEUW),
        ];
        if rex_w {
            v.push((FIP, 8, Opcode::Ld, MemOp::LEUQ));
            v.push((FDP, 16, Opcode::Ld, MemOp::LEUQ));
        } else {
            // 32-bit offsets; the FCS/FDS selectors (bytes 12..14, 20..22) are stored as 0.
            v.push((FIP, 8, Opcode::Ld32u, MemOp::LEUL));
            v.push((FDP, 16, Opcode::Ld32u, MemOp::LEUL));
        }
        v
    }

    fn fx_addr(f: &mut Func, base: Temp, off: u64) -> Temp {
        let a = f.new_ebb_temp(Type::I64);
        let k = f.constant(Type::I64, off);
        f.add(a, base, k);
        a
    }

    /// fxsave m512: bytes 0..416 of the area.
    fn gen_fxsave(&mut self, f: &mut Func) {
        let base = self.gen_check_align16(f);
        let mmu = self.mem_index();
        let rex_w = self.insn.mnemonic() == Mnemonic::Fxsave64;
        // The helper builds bytes 0..160 (header, MXCSR, MXCSR_MASK, ST0-7 in ST order from the physical
        // registers, and this host's rule for FOP/FIP/FDP) in the scratch area.
        self.gen_x87_call(f, crate::fpu_helper::op::FX, 0, u32::from(rex_w), 0);
        for q in 0..20u64 {
            let t = f.new_ebb_temp(Type::I64);
            f.load(Opcode::Ld, t, Temp::ENV, SCRATCH + 8 * q as i32);
            let a = Self::fx_addr(f, base, 8 * q);
            f.qemu_st(t, a, MemOp::LEUQ, mmu);
        }
        for n in 0..16 {
            for half in 0..2 {
                let t = self.xmm_ld(f, n, half);
                let a = Self::fx_addr(f, base, 160 + 16 * n as u64 + 8 * half as u64);
                f.qemu_st(t, a, MemOp::LEUQ, mmu);
            }
        }
    }

    /// fxrstor m512: loads everything, checks MXCSR (#GP(0) with nothing changed), then writes the state.
    fn gen_fxrstor(&mut self, f: &mut Func) {
        let base = self.gen_check_align16(f);
        let mmu = self.mem_index();
        let mx = f.new_temp(Type::I64);
        let a = Self::fx_addr(f, base, 24);
        f.qemu_ld(mx, a, MemOp::LEUL, mmu);
        let mut header = Vec::new();
        for (env, off, ld, mop) in self.fx_header() {
            let t = f.new_temp(Type::I64);
            let a = Self::fx_addr(f, base, off);
            f.qemu_ld(t, a, mop, mmu);
            let st = match ld {
                Opcode::Ld8u => Opcode::St8,
                Opcode::Ld16u => Opcode::St16,
                _ => Opcode::St,
            };
            header.push((env, st, t));
        }
        let mut regs = Vec::new();
        for i in 0..8 {
            let off = 32 + 16 * i as u64;
            let lo = f.new_temp(Type::I64);
            let hi = f.new_temp(Type::I64);
            let a = Self::fx_addr(f, base, off);
            f.qemu_ld(lo, a, MemOp::LEUQ, mmu);
            let a = Self::fx_addr(f, base, off + 8);
            f.qemu_ld(hi, a, MemOp::LEUW, mmu);
            regs.push((lo, hi));
        }
        let mut xmms = Vec::new();
        for n in 0..16u64 {
            for half in 0..2u64 {
                let t = f.new_temp(Type::I64);
                let a = Self::fx_addr(f, base, 160 + 16 * n + 8 * half);
                f.qemu_ld(t, a, MemOp::LEUQ, mmu);
                xmms.push(t);
            }
        }
        self.gen_check_mxcsr(f, mx);
        f.store(Opcode::St32, mx, Temp::ENV, MXCSR);
        for (env, st, t) in header {
            f.store(st, t, Temp::ENV, env);
        }
        for (i, (lo, hi)) in regs.into_iter().enumerate() {
            let i = i as i32;
            f.store(Opcode::St, lo, Temp::ENV, REGS + 16 * i);
            f.store(Opcode::St16, hi, Temp::ENV, REGS + 16 * i + 8);
        }
        for (k, t) in xmms.into_iter().enumerate() {
            f.store(Opcode::St, t, Temp::ENV, xmm_offset(k / 2, k % 2));
        }
        // The image's registers are in ST order: move them to their physical slots.
        self.gen_x87_call(f, crate::fpu_helper::op::FX, 1, 0, 0);
    }
}
