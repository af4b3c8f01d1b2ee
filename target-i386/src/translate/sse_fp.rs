//! SSE/SSE2/SSE3/SSE4.1 floating point: arithmetic, min/max, rcp/rsqrt, compares, comis/ucomis, every
//! conversion (the MMX-register forms included), addsub/hadd/hsub, movddup/movshdup/movsldup/lddqu,
//! round and dp. The work is done by [`crate::sse_fp_helper::helper_sse_fp`] on CPU-state offsets.
//!
//! A memory source is loaded by IR into `X86CpuState::xmm_t0` before the helper runs, so a page fault or a
//! misalignment #GP(0) (16-byte operands of the legacy-SSE forms, except lddqu) comes first and precisely;
//! scalar and 64-bit operands have no alignment requirement. A general-register source (cvtsi2ss/sd) goes
//! through the same slot. The helper may raise #XM/#UD, in which case no destination changed; its return
//! value (cvt*2si, comis flags) is only used after it returned.

use core::mem::offset_of;

use iced_x86::{Mnemonic, OpKind, Register};
use rqemu_tcg::{Func, Opcode, Temp, Type};

use super::sse_moves::{xmm, xmm_offset};
use super::DisasContext;
use crate::cc::{CcOp, Size};
use crate::cpu::{FpuState, X86CpuState};
use crate::desc::{global, I386Target};
use crate::sse_fp_helper::{form, imm, op, XMM_T0_OFFSET};

/// Byte offset of MMX register `n` (the low 8 bytes of x87 register slot `n`).
fn mmx_offset(n: usize) -> i32 {
    (offset_of!(X86CpuState, fpu) + offset_of!(FpuState, regs) + 16 * n) as i32
}

fn mmx(r: Register) -> Option<usize> {
    let v = (r as usize).wrapping_sub(Register::MM0 as usize);
    (v < 8).then_some(v)
}

/// The operation code and extra immediate bits of an SSE floating-point mnemonic.
fn decode(m: Mnemonic) -> Option<(u32, u32)> {
    use Mnemonic as M;
    let (kind, fm) = match m {
        M::Addps => (op::ADD, form::PS),
        M::Addss => (op::ADD, form::SS),
        M::Addpd => (op::ADD, form::PD),
        M::Addsd => (op::ADD, form::SD),
        M::Subps => (op::SUB, form::PS),
        M::Subss => (op::SUB, form::SS),
        M::Subpd => (op::SUB, form::PD),
        M::Subsd => (op::SUB, form::SD),
        M::Mulps => (op::MUL, form::PS),
        M::Mulss => (op::MUL, form::SS),
        M::Mulpd => (op::MUL, form::PD),
        M::Mulsd => (op::MUL, form::SD),
        M::Divps => (op::DIV, form::PS),
        M::Divss => (op::DIV, form::SS),
        M::Divpd => (op::DIV, form::PD),
        M::Divsd => (op::DIV, form::SD),
        M::Sqrtps => (op::SQRT, form::PS),
        M::Sqrtss => (op::SQRT, form::SS),
        M::Sqrtpd => (op::SQRT, form::PD),
        M::Sqrtsd => (op::SQRT, form::SD),
        M::Minps => (op::MIN, form::PS),
        M::Minss => (op::MIN, form::SS),
        M::Minpd => (op::MIN, form::PD),
        M::Minsd => (op::MIN, form::SD),
        M::Maxps => (op::MAX, form::PS),
        M::Maxss => (op::MAX, form::SS),
        M::Maxpd => (op::MAX, form::PD),
        M::Maxsd => (op::MAX, form::SD),
        M::Rcpps => (op::RCP, form::PS),
        M::Rcpss => (op::RCP, form::SS),
        M::Rsqrtps => (op::RSQRT, form::PS),
        M::Rsqrtss => (op::RSQRT, form::SS),
        M::Cmpps => (op::CMP, form::PS),
        M::Cmpss => (op::CMP, form::SS),
        M::Cmppd => (op::CMP, form::PD),
        M::Cmpsd => (op::CMP, form::SD),
        M::Comiss => (op::COMI, form::SS),
        M::Comisd => (op::COMI, form::SD),
        M::Ucomiss => (op::UCOMI, form::SS),
        M::Ucomisd => (op::UCOMI, form::SD),
        M::Addsubps => (op::ADDSUB, form::PS),
        M::Addsubpd => (op::ADDSUB, form::PD),
        M::Haddps => (op::HADD, form::PS),
        M::Haddpd => (op::HADD, form::PD),
        M::Hsubps => (op::HSUB, form::PS),
        M::Hsubpd => (op::HSUB, form::PD),
        M::Roundps => (op::ROUND, form::PS),
        M::Roundss => (op::ROUND, form::SS),
        M::Roundpd => (op::ROUND, form::PD),
        M::Roundsd => (op::ROUND, form::SD),
        M::Dpps => (op::DP, form::PS),
        M::Dppd => (op::DP, form::PD),
        M::Cvtss2sd => (op::CVT_S2D, form::SS),
        M::Cvtps2pd => (op::CVT_S2D, form::PS),
        M::Cvtsd2ss => (op::CVT_D2S, form::SD),
        M::Cvtpd2ps => (op::CVT_D2S, form::PD),
        M::Cvtdq2ps => (op::CVT_DQ2F, form::PS),
        M::Cvtdq2pd => (op::CVT_DQ2F, form::PD),
        M::Cvtps2dq => (op::CVT_F2DQ, form::PS),
        M::Cvtpd2dq => (op::CVT_F2DQ, form::PD),
        M::Cvtsi2ss => (op::CVT_SI2F, form::SS),
        M::Cvtsi2sd => (op::CVT_SI2F, form::SD),
        M::Cvtss2si => (op::CVT_F2SI, form::SS),
        M::Cvtsd2si => (op::CVT_F2SI, form::SD),
        M::Cvtpi2ps => (op::CVT_PI2F, form::PS),
        M::Cvtpi2pd => (op::CVT_PI2F, form::PD),
        M::Cvtps2pi => (op::CVT_F2PI, form::PS),
        M::Cvtpd2pi => (op::CVT_F2PI, form::PD),
        M::Movddup => (op::DUP, form::PD),
        M::Movsldup => (op::DUP, form::PS),
        M::Movshdup => (op::DUP, form::PS),
        M::Lddqu => (op::DUP, form::SS), // decoded below: a plain load
        M::Cvttps2dq => return Some((op::CVT_F2DQ | form::PS << 8, imm::TRUNCATE)),
        M::Cvttpd2dq => return Some((op::CVT_F2DQ | form::PD << 8, imm::TRUNCATE)),
        M::Cvttss2si => return Some((op::CVT_F2SI | form::SS << 8, imm::TRUNCATE)),
        M::Cvttsd2si => return Some((op::CVT_F2SI | form::SD << 8, imm::TRUNCATE)),
        M::Cvttps2pi => return Some((op::CVT_F2PI | form::PS << 8, imm::TRUNCATE)),
        M::Cvttpd2pi => return Some((op::CVT_F2PI | form::PD << 8, imm::TRUNCATE)),
        _ => return None,
    };
    let extra = if m == M::Movshdup { 1 } else { 0 };
    Some((kind | fm << 8, extra))
}

/// Whether `m` is translated by this file.
pub(super) fn is_sse_fp(m: Mnemonic) -> bool {
    decode(m).is_some()
}

/// Where an operand of an SSE floating-point instruction lives.
#[derive(Clone, Copy)]
enum Opnd {
    Xmm(usize),
    Mmx(usize),
    Gpr(Register),
    Mem,
}

impl DisasContext<'_> {
    fn fp_operand(&self, i: u32) -> Option<Opnd> {
        match self.insn.op_kind(i) {
            OpKind::Register => {
                let r = self.insn.op_register(i);
                if let Some(n) = xmm(r) {
                    Some(Opnd::Xmm(n))
                } else if let Some(n) = mmx(r) {
                    Some(Opnd::Mmx(n))
                } else {
                    super::operand::gpr(r).map(|_| Opnd::Gpr(r))
                }
            }
            OpKind::Memory => Some(Opnd::Mem),
            _ => None,
        }
    }

    /// Loads the memory operand (4, 8 or 16 bytes as the instruction reads) into `xmm_t0` (sse_int's
    /// `gen_load_t0`), checking the alignment of 16-byte legacy-SSE operands first; false for other sizes.
    fn gen_load_fp_t0(&mut self, f: &mut Func, unaligned_ok: bool) -> bool {
        let size = self.insn.memory_size().size();
        if !matches!(size, 4 | 8 | 16) {
            return false;
        }
        self.gen_load_t0(f, size, !unaligned_ok);
        true
    }

    /// The SSE floating-point instructions of this file; false: #UD.
    pub(super) fn gen_sse_fp(&mut self, f: &mut Func) -> bool {
        let m = self.insn.mnemonic();
        let Some((code, mut extra)) = decode(m) else {
            return false;
        };
        if self.insn.has_lock_prefix() {
            return false;
        }
        let kind = code & 0xff;
        let (Some(d), Some(s)) = (self.fp_operand(0), self.fp_operand(1)) else {
            return false;
        };
        // The operand shapes each kind accepts; anything else is #UD. (VEX forms never get here: iced-x86
        // decodes them to other mnemonics, vaddps and so on.)
        let ok = match (kind, d, s) {
            (op::CVT_F2SI, Opnd::Gpr(_), Opnd::Xmm(_) | Opnd::Mem) => true,
            (op::CVT_SI2F, Opnd::Xmm(_), Opnd::Gpr(_) | Opnd::Mem) => true,
            (op::CVT_PI2F, Opnd::Xmm(_), Opnd::Mmx(_) | Opnd::Mem) => true,
            (op::CVT_F2PI, Opnd::Mmx(_), Opnd::Xmm(_) | Opnd::Mem) => true,
            (op::CVT_F2SI | op::CVT_SI2F | op::CVT_PI2F | op::CVT_F2PI, _, _) => false,
            (_, Opnd::Xmm(_), Opnd::Xmm(_) | Opnd::Mem) => true,
            _ => false,
        };
        if !ok || self.insn.op_count() > 3 {
            return false;
        }
        // The SSE enabling checks (#UD for CR0.EM or CR4.OSFXSR clear, #NM for CR0.TS), then, with an MMX
        // register operand, the x87 pending-exception check (#MF).
        if !self.gen_sse_enabled(f, false) {
            return true;
        }
        if matches!(d, Opnd::Mmx(_)) || matches!(s, Opnd::Mmx(_)) {
            self.gen_mmx_pending_check(f);
        }
        if m == Mnemonic::Lddqu {
            // lddqu xmm, m128: an unaligned load, nothing else.
            let Opnd::Xmm(dn) = d else { return false };
            if !matches!(s, Opnd::Mem) || !self.gen_load_fp_t0(f, true) {
                return false;
            }
            let t = f.new_ebb_temp(Type::I64);
            for half in 0..2 {
                f.load(Opcode::Ld, t, Temp::ENV, XMM_T0_OFFSET as i32 + 8 * half as i32);
                self.xmm_st(f, dn, half, t);
            }
            return true;
        }
        let src_off = match s {
            Opnd::Xmm(n) => xmm_offset(n, 0),
            Opnd::Mmx(n) => mmx_offset(n),
            Opnd::Mem => {
                if !self.gen_load_fp_t0(f, false) {
                    return false;
                }
                if self.insn.memory_size().size() == 8 && kind == op::CVT_SI2F {
                    extra |= imm::WIDE;
                }
                XMM_T0_OFFSET as i32
            }
            Opnd::Gpr(r) => {
                let v = self.read_reg(f, r);
                f.store(Opcode::St, v, Temp::ENV, XMM_T0_OFFSET as i32);
                if super::operand::gpr(r).map(|g| g.size) == Some(Size::Q) {
                    extra |= imm::WIDE;
                }
                XMM_T0_OFFSET as i32
            }
        };
        let dst_off = match d {
            Opnd::Xmm(n) => xmm_offset(n, 0),
            Opnd::Mmx(n) => mmx_offset(n),
            // cvt*2si: the helper's return value goes to the register; it reads `dst` without using it.
            Opnd::Gpr(r) => {
                if super::operand::gpr(r).map(|g| g.size) == Some(Size::Q) {
                    extra |= imm::WIDE;
                }
                XMM_T0_OFFSET as i32
            }
            Opnd::Mem => return false,
        };
        let imm8 = if self.insn.op_count() == 3 {
            if self.insn.op_kind(2) != OpKind::Immediate8 {
                return false;
            }
            u32::from(self.insn.immediate8())
        } else {
            0
        };
        let args = [
            f.constant(Type::I32, u64::from(code)),
            f.constant(Type::I32, dst_off as u64),
            f.constant(Type::I32, src_off as u64),
            f.constant(Type::I32, u64::from(imm8 | extra)),
        ];
        let ret = f.new_ebb_temp(Type::I64);
        f.call(self.target().helpers.sse_fp, Some(ret), &args);
        match (kind, d) {
            (op::COMI | op::UCOMI, _) => {
                // ZF/PF/CF from the compare, OF/SF/AF cleared: the flags are exactly the helper's value.
                let src = I386Target::global(global::CC_SRC);
                f.mov(src, ret);
                self.set_cc_op(f, CcOp::EFLAGS);
            }
            (op::CVT_F2SI, Opnd::Gpr(r)) => self.write_reg(f, r, ret),
            _ => {}
        }
        true
    }
}
