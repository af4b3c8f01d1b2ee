//! SSE/SSE2 data moves on the XMM registers held in [`crate::cpu::X86CpuState::xmm`]: movd/movq (XMM <-> r/m32,
//! r/m64, XMM <-> XMM/m64), movdqa/movaps/movapd (16-byte aligned: #GP(0) otherwise), movdqu/movups/movupd.
//! 128-bit accesses are two 64-bit guest accesses, low half first. The MMX forms of movd/movq, the logic ops
//! and the enabling checks are in `sse_int.rs` (the dispatcher checks CR0/CR4 before calling in here).

use core::mem::offset_of;

use iced_x86::{Mnemonic, OpKind, Register};
use rqemu_include::MemOp;
use rqemu_tcg::{Cond, Func, Opcode, Temp, Type};

use super::DisasContext;
use crate::cc::Size;
use crate::cpu::{excp, X86CpuState};

/// XMM register number (0..16) of `r`.
pub(super) fn xmm(r: Register) -> Option<usize> {
    let v = (r as usize).wrapping_sub(Register::XMM0 as usize);
    (v < 16).then_some(v)
}

/// Byte offset in the CPU state of the low (`half` 0) or high (1) quadword of XMM register `n`.
pub(super) fn xmm_offset(n: usize, half: usize) -> i32 {
    (offset_of!(X86CpuState, xmm) + 16 * n + 8 * half) as i32
}

/// Where a 128-bit operand lives.
#[derive(Clone, Copy)]
enum Vloc {
    Xmm(usize),
    Mem,
}

impl DisasContext<'_> {
    fn vloc(&self, i: u32) -> Option<Vloc> {
        match self.insn.op_kind(i) {
            OpKind::Register => xmm(self.insn.op_register(i)).map(Vloc::Xmm),
            OpKind::Memory => Some(Vloc::Mem),
            _ => None,
        }
    }

    /// Raises #GP(0) unless the memory operand's address is 16-byte aligned; returns the address (valid after
    /// the check).
    pub(super) fn gen_check_align16(&mut self, f: &mut Func) -> Temp {
        let addr = self.gen_ea(f, 0);
        let aligned = f.new_label();
        let fifteen = f.constant(Type::I64, 15);
        f.brcond(Cond::Tsteq, addr, fifteen, aligned);
        self.gen_exception(f, excp::GP, 0);
        self.is_jmp = super::DisasJump::Next; // only the misaligned path ended
        f.set_label(aligned);
        self.gen_ea(f, 0)
    }

    /// Loads 16 bytes at `addr` as (low, high).
    fn ld128(&mut self, f: &mut Func, addr: Temp) -> (Temp, Temp) {
        let lo = f.new_ebb_temp(Type::I64);
        let hi = f.new_ebb_temp(Type::I64);
        let a8 = f.new_ebb_temp(Type::I64);
        let k = f.constant(Type::I64, 8);
        f.add(a8, addr, k);
        f.qemu_ld(lo, addr, MemOp::LEUQ, self.mem_index());
        f.qemu_ld(hi, a8, MemOp::LEUQ, self.mem_index());
        (lo, hi)
    }

    fn st128(&mut self, f: &mut Func, addr: Temp, lo: Temp, hi: Temp) {
        let a8 = f.new_ebb_temp(Type::I64);
        let k = f.constant(Type::I64, 8);
        f.add(a8, addr, k);
        f.qemu_st(lo, addr, MemOp::LEUQ, self.mem_index());
        f.qemu_st(hi, a8, MemOp::LEUQ, self.mem_index());
    }

    /// Reads a quadword of XMM register `n` from the CPU state.
    pub(super) fn xmm_ld(&mut self, f: &mut Func, n: usize, half: usize) -> Temp {
        let t = f.new_ebb_temp(Type::I64);
        f.load(Opcode::Ld, t, Temp::ENV, xmm_offset(n, half));
        t
    }

    /// Writes a quadword of XMM register `n`.
    pub(super) fn xmm_st(&mut self, f: &mut Func, n: usize, half: usize, v: Temp) {
        f.store(Opcode::St, v, Temp::ENV, xmm_offset(n, half));
    }

    /// The SSE moves this file implements; false: #UD.
    pub(super) fn gen_sse_move(&mut self, f: &mut Func) -> bool {
        use Mnemonic as M;
        match self.insn.mnemonic() {
            M::Movd | M::Movq => self.gen_movd_movq(f),
            M::Movdqa | M::Movaps | M::Movapd => self.gen_mov128(f, true),
            M::Movdqu | M::Movups | M::Movupd => self.gen_mov128(f, false),
            _ => false,
        }
    }

    /// movdqa/movaps/movapd (`aligned`) and movdqu/movups/movupd: xmm <- xmm/m128, m128 <- xmm.
    fn gen_mov128(&mut self, f: &mut Func, aligned: bool) -> bool {
        let (Some(d), Some(s)) = (self.vloc(0), self.vloc(1)) else {
            return false;
        };
        match (d, s) {
            (Vloc::Xmm(d), Vloc::Xmm(s)) => {
                let lo = self.xmm_ld(f, s, 0);
                let hi = self.xmm_ld(f, s, 1);
                self.xmm_st(f, d, 0, lo);
                self.xmm_st(f, d, 1, hi);
            }
            (Vloc::Xmm(d), Vloc::Mem) => {
                let addr = if aligned {
                    self.gen_check_align16(f)
                } else {
                    self.gen_ea(f, 0)
                };
                let (lo, hi) = self.ld128(f, addr);
                self.xmm_st(f, d, 0, lo);
                self.xmm_st(f, d, 1, hi);
            }
            (Vloc::Mem, Vloc::Xmm(s)) => {
                let addr = if aligned {
                    self.gen_check_align16(f)
                } else {
                    self.gen_ea(f, 0)
                };
                let lo = self.xmm_ld(f, s, 0);
                let hi = self.xmm_ld(f, s, 1);
                self.st128(f, addr, lo, hi);
            }
            (Vloc::Mem, Vloc::Mem) => return false,
        }
        true
    }

    /// movd/movq between XMM registers and r/m32, r/m64, and movq xmm, xmm/m64 / movq xmm/m64, xmm. A write to
    /// an XMM register from a GPR, memory or (movq) another XMM register zeroes the bits above the moved ones.
    fn gen_movd_movq(&mut self, f: &mut Func) -> bool {
        let insn = self.insn;
        let size = if insn.mnemonic() == Mnemonic::Movd {
            Size::L
        } else {
            Size::Q
        };
        let kind = |i: u32| match insn.op_kind(i) {
            OpKind::Register => {
                let r = insn.op_register(i);
                if let Some(n) = xmm(r) {
                    Some((true, n, r))
                } else {
                    super::operand::gpr(r).map(|g| (false, g.n, r))
                }
            }
            OpKind::Memory => Some((false, usize::MAX, Register::None)),
            _ => None,
        };
        let (Some(d), Some(s)) = (kind(0), kind(1)) else {
            return false;
        };
        match (d, s) {
            ((true, dn, _), (true, sn, _)) => {
                let lo = self.xmm_ld(f, sn, 0);
                let zero = f.constant(Type::I64, 0);
                self.xmm_st(f, dn, 0, lo);
                self.xmm_st(f, dn, 1, zero);
            }
            ((true, dn, _), (false, _, r)) => {
                let v = if r == Register::None {
                    let addr = self.gen_ea(f, 0);
                    let t = f.new_ebb_temp(Type::I64);
                    f.qemu_ld(t, addr, super::operand::memop(size), self.mem_index());
                    t
                } else {
                    self.read_reg(f, r)
                };
                let zero = f.constant(Type::I64, 0);
                self.xmm_st(f, dn, 0, v);
                self.xmm_st(f, dn, 1, zero);
            }
            ((false, _, r), (true, sn, _)) => {
                let v = self.xmm_ld(f, sn, 0);
                if r == Register::None {
                    let addr = self.gen_ea(f, 0);
                    f.qemu_st(v, addr, super::operand::memop(size), self.mem_index());
                } else {
                    self.write_reg(f, r, v);
                }
            }
            _ => return false,
        }
        true
    }
}
