//! BMI1 and BMI2, the VEX-encoded general-purpose bit manipulations: andn, bextr, blsi, blsmsk, blsr (BMI1;
//! tzcnt lives with the other counts in `bits.rs`) and bzhi, mulx, pdep, pext, rorx, sarx, shlx, shrx (BMI2).
//!
//! They exist at 32 and 64 bits only (VEX.W1 means 64 bits in 64-bit mode and is ignored outside it, which
//! iced-x86 already applies to the registers it reports). Flags, as this machine's AMD CPU sets them,
//! undefined ones included (checked over random values by `tests/insns_bmi.rs`):
//! - andn: a logic result (ZF, SF, PF from it; CF, OF, AF 0);
//! - blsi, blsr, blsmsk, bzhi: ZF, SF, PF from the result, AF 0, OF 0, CF as the manuals define it (source
//!   non-zero for blsi, source zero for blsr/blsmsk, index >= width for bzhi). They reuse the `Sar` lazy kind:
//!   `cc_src = (result & sign) | cf` gives exactly CF = cf and OF = 0;
//! - bextr: ZF and PF from the result, AF 1, SF 0, CF 0, OF 0 (materialized: `cc_op = Eflags`);
//! - mulx, pdep, pext, rorx, sarx, shlx, shrx leave every flag alone.

use iced_x86::Mnemonic;
use rqemu_tcg::{Cond, Func, Temp, Type};

use super::operand::gen_ext;
use super::DisasContext;
use crate::cc::{CcKind, CcOp, Size, CC_A, CC_P, CC_Z};
use crate::cpu::reg;
use crate::desc::{global, I386Target};

impl DisasContext<'_> {
    /// Dispatches a BMI1/BMI2 instruction; false (#UD) for an operand shape it does not know.
    pub(super) fn gen_bmi(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0).filter(|s| matches!(s, Size::L | Size::Q)) else {
            return false;
        };
        match self.insn.mnemonic() {
            Mnemonic::Andn => self.gen_andn(f, size),
            Mnemonic::Bextr => self.gen_bextr(f, size),
            Mnemonic::Blsi | Mnemonic::Blsr | Mnemonic::Blsmsk => self.gen_bls(f, size),
            Mnemonic::Bzhi => self.gen_bzhi(f, size),
            Mnemonic::Mulx => self.gen_mulx(f, size),
            Mnemonic::Pdep | Mnemonic::Pext => self.gen_pdep_pext(f, size),
            Mnemonic::Rorx => self.gen_rorx(f, size),
            Mnemonic::Sarx | Mnemonic::Shlx | Mnemonic::Shrx => self.gen_shiftx(f, size),
            _ => false,
        }
    }

    /// Writes `v` to the destination register (operand 0): a 32-bit write zero-extends.
    fn bmi_write(&mut self, f: &mut Func, v: Temp) {
        self.write_reg(f, self.insn.op_register(0), v);
    }

    /// Records flags through the `Sar` lazy kind: ZF, SF, PF from `result`, AF 0, OF 0, CF = `cf` (0 or 1).
    fn bmi_flags_with_cf(&mut self, f: &mut Func, size: Size, result: Temp, cf: Temp) {
        let src = f.new_ebb_temp(Type::I64);
        let sign = f.constant(Type::I64, size.sign_bit());
        f.and(src, result, sign);
        f.or(src, src, cf);
        self.set_cc(f, CcOp::new(CcKind::Sar, size), result, Some(src), None);
    }

    /// andn r, r(vvvv), r/m: `!src1 & src2`.
    fn gen_andn(&mut self, f: &mut Func, size: Size) -> bool {
        let a = self.load_operand(f, 1, size);
        let b = self.load_operand(f, 2, size);
        let r = f.new_ebb_temp(Type::I64);
        f.andc(r, b, a);
        self.bmi_write(f, r);
        self.set_cc(f, CcOp::new(CcKind::Logic, size), r, None, None);
        true
    }

    /// bextr r, r/m, r(vvvv): the field of `len = src2[15:8]` bits at `start = src2[7:0]`; bits at or above the
    /// operand width read as zero.
    fn gen_bextr(&mut self, f: &mut Func, size: Size) -> bool {
        let v = self.load_operand(f, 1, size);
        let ctl = self.load_operand(f, 2, size);
        let (start, len) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        f.extract(start, ctl, 0, 8);
        f.extract(len, ctl, 8, 8);
        let zero = f.constant(Type::I64, 0);
        let k64 = f.constant(Type::I64, 64);
        // v is zero-extended to 64 bits, so any start of 64 or more gives 0 (the IR's shift count wraps).
        let shifted = f.new_ebb_temp(Type::I64);
        f.shr(shifted, v, start);
        f.movcond(Cond::Ltu, shifted, start, k64, shifted, zero);
        // mask = (1 << len) - 1, all ones from len 64 on.
        let (mask, one, ones) = (
            f.new_ebb_temp(Type::I64),
            f.constant(Type::I64, 1),
            f.constant(Type::I64, u64::MAX),
        );
        f.shl(mask, one, len);
        f.sub(mask, mask, one);
        f.movcond(Cond::Ltu, mask, len, k64, mask, ones);
        let r = f.new_ebb_temp(Type::I64);
        f.and(r, shifted, mask);
        self.bmi_write(f, r);
        // Flags: ZF and PF from the result, AF set, the rest clear (the AMD behaviour; see the module doc).
        let flags = f.new_ebb_temp(Type::I64);
        let zf = f.new_ebb_temp(Type::I64);
        f.setcond(Cond::Eq, zf, r, zero);
        let six = f.constant(Type::I64, 6);
        f.shl(zf, zf, six);
        let pf = f.new_ebb_temp(Type::I64);
        f.ext8u(pf, r);
        f.ctpop(pf, pf);
        f.andc(pf, one, pf); // 1 when the low byte has even parity
        let two = f.constant(Type::I64, 2);
        f.shl(pf, pf, two);
        debug_assert_eq!((CC_Z, CC_P), (1 << 6, 1 << 2));
        let af = f.constant(Type::I64, CC_A);
        f.or(flags, zf, pf);
        f.or(flags, flags, af);
        f.mov(I386Target::global(global::CC_SRC), flags);
        self.set_cc_op(f, CcOp::EFLAGS);
        true
    }

    /// blsi (`-x & x`), blsr (`(x - 1) & x`), blsmsk (`(x - 1) ^ x`) into r(vvvv) from r/m.
    fn gen_bls(&mut self, f: &mut Func, size: Size) -> bool {
        let v = self.load_operand(f, 1, size);
        let t = f.new_ebb_temp(Type::I64);
        let r = f.new_ebb_temp(Type::I64);
        let cf = f.new_ebb_temp(Type::I64);
        let zero = f.constant(Type::I64, 0);
        match self.insn.mnemonic() {
            Mnemonic::Blsi => {
                f.neg(t, v);
                f.and(r, t, v);
                f.setcond(Cond::Ne, cf, v, zero);
            }
            m => {
                let one = f.constant(Type::I64, 1);
                f.sub(t, v, one);
                if m == Mnemonic::Blsr {
                    f.and(r, t, v);
                } else {
                    f.xor(r, t, v);
                }
                f.setcond(Cond::Eq, cf, v, zero);
            }
        }
        let r = gen_ext(f, size, false, r);
        self.bmi_write(f, r);
        self.bmi_flags_with_cf(f, size, r, cf);
        true
    }

    /// bzhi r, r/m, r(vvvv): clears the bits from `n = src2[7:0]` up (nothing when `n >= width`, which sets CF).
    fn gen_bzhi(&mut self, f: &mut Func, size: Size) -> bool {
        let v = self.load_operand(f, 1, size);
        let idx = self.load_operand(f, 2, size);
        let n = f.new_ebb_temp(Type::I64);
        f.ext8u(n, idx);
        let width = f.constant(Type::I64, size.bits() as u64);
        let (mask, one) = (f.new_ebb_temp(Type::I64), f.constant(Type::I64, 1));
        f.shl(mask, one, n);
        f.sub(mask, mask, one);
        let r = f.new_ebb_temp(Type::I64);
        f.and(r, v, mask);
        f.movcond(Cond::Ltu, r, n, width, r, v);
        let cf = f.new_ebb_temp(Type::I64);
        f.setcond(Cond::Geu, cf, n, width);
        self.bmi_write(f, r);
        self.bmi_flags_with_cf(f, size, r, cf);
        true
    }

    /// mulx r(hi), r(lo, vvvv), r/m: the unsigned product of edx/rdx and the source. The low half is written
    /// first, so when both destinations are one register it holds the high half.
    fn gen_mulx(&mut self, f: &mut Func, size: Size) -> bool {
        let src = self.load_operand(f, 2, size);
        let rdx = gen_ext(f, size, false, I386Target::reg(reg::RDX));
        let (lo, hi) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        if size == Size::Q {
            f.mulu2(lo, hi, rdx, src);
        } else {
            let p = f.new_ebb_temp(Type::I64);
            f.mul(p, rdx, src);
            f.ext32u(lo, p);
            let k = f.constant(Type::I64, 32);
            f.shr(hi, p, k);
        }
        self.write_reg(f, self.insn.op_register(1), lo);
        self.write_reg(f, self.insn.op_register(0), hi);
        true
    }

    /// pdep/pext r, r(vvvv), r/m (the mask): through the PURE `pdep_pext` helper.
    fn gen_pdep_pext(&mut self, f: &mut Func, size: Size) -> bool {
        let v = self.load_operand(f, 1, size);
        let mask = self.load_operand(f, 2, size);
        let mode = f.constant(Type::I32, (self.insn.mnemonic() == Mnemonic::Pext) as u64);
        let r = f.new_ebb_temp(Type::I64);
        f.call(self.target.helpers.pdep_pext, Some(r), &[mode, v, mask]);
        self.bmi_write(f, r);
        true
    }

    /// rorx r, r/m, imm8: rotate right by the immediate modulo the width.
    fn gen_rorx(&mut self, f: &mut Func, size: Size) -> bool {
        let v = self.load_operand(f, 1, size);
        let n = self.insn.immediate(2) & (size.bits() as u64 - 1);
        let r = f.new_ebb_temp(Type::I64);
        if size == Size::Q {
            let k = f.constant(Type::I64, n);
            f.rotr(r, v, k);
        } else {
            // Both halves hold the value: the low 32 bits of the 64-bit right shift are the rotation.
            f.deposit(r, v, v, 32, 32);
            let k = f.constant(Type::I64, n);
            f.shr(r, r, k);
            f.ext32u(r, r);
        }
        self.bmi_write(f, r);
        true
    }

    /// sarx/shlx/shrx r, r/m, r(vvvv): shifts by the count modulo the width, flags untouched.
    fn gen_shiftx(&mut self, f: &mut Func, size: Size) -> bool {
        let v = self.load_operand(f, 1, size);
        let c = self.load_operand(f, 2, size);
        let count = f.new_ebb_temp(Type::I64);
        let m = f.constant(Type::I64, size.bits() as u64 - 1);
        f.and(count, c, m);
        let r = f.new_ebb_temp(Type::I64);
        match self.insn.mnemonic() {
            Mnemonic::Shlx => f.shl(r, v, count),
            Mnemonic::Shrx => f.shr(r, v, count),
            _ => {
                let s = gen_ext(f, size, true, v);
                f.sar(r, s, count);
            }
        }
        let r = gen_ext(f, size, false, r);
        self.bmi_write(f, r);
        true
    }
}

/// Deposits the low bits of `v` at the set bits of `mask` (pdep).
pub(crate) fn pdep(v: u64, mut mask: u64) -> u64 {
    let (mut r, mut bit) = (0, 1u64);
    while mask != 0 {
        let lowest = mask & mask.wrapping_neg();
        if v & bit != 0 {
            r |= lowest;
        }
        mask ^= lowest;
        bit <<= 1;
    }
    r
}

/// Gathers the bits of `v` at the set bits of `mask` into the low bits (pext).
pub(crate) fn pext(v: u64, mut mask: u64) -> u64 {
    let (mut r, mut bit) = (0, 1u64);
    while mask != 0 {
        let lowest = mask & mask.wrapping_neg();
        if v & lowest != 0 {
            r |= bit;
        }
        mask ^= lowest;
        bit <<= 1;
    }
    r
}

/// The `pdep_pext(mode, value, mask)` helper (PURE): mode 0 pdep, 1 pext. Operands arrive zero-extended, so the
/// 32-bit forms need nothing more.
pub(crate) unsafe extern "C" fn helper_pdep_pext(_env: *mut u8, mode: u64, v: u64, mask: u64, _: u64, _: u64) -> u64 {
    if mode & 1 == 0 {
        pdep(v, mask)
    } else {
        pext(v, mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdep_and_pext_by_hand() {
        assert_eq!(pdep(0b1011, 0b1111_0000), 0b1011_0000);
        assert_eq!(pdep(0b11, 0b1010_0001), 0b0000_0001 | 0b0010_0000);
        assert_eq!(pext(0b1011_0000, 0b1111_0000), 0b1011);
        assert_eq!(pext(u64::MAX, 1 << 63 | 1), 0b11);
        assert_eq!(pdep(u64::MAX, 0), 0);
        assert_eq!(pext(0x1234, u64::MAX), 0x1234);
    }
}
