//! Multiplication and division: mul, imul (one, two and three operands), div, idiv.
//!
//! Products are computed inline (64-bit operands with `mulu2`/`muls2`); CF = OF = "the high half is
//! significant", with `cc_op = Mul` (SF, ZF, AF, PF are undefined after a multiplication: rqemu computes them
//! from the low half, AF = 0, as QEMU does). Division goes through the `divide` helper, which raises #DE for a
//! zero divisor or a quotient that does not fit; its flags are undefined and rqemu leaves them unchanged.

use iced_x86::{Mnemonic, OpKind};
use rqemu_tcg::{Func, Temp, Type};

use super::operand::{gen_ext, Loc};
use super::DisasContext;
use crate::cc::{CcKind, CcOp, Size};
use crate::cpu::{excp, reg, X86CpuState};
use crate::desc::I386Target;

impl DisasContext<'_> {
    /// `(low, significant_high)` of `a * b` at `size`; `significant_high` is nonzero when CF/OF must be set.
    /// Also returns the high half for the one-operand forms.
    fn gen_product(&mut self, f: &mut Func, size: Size, signed: bool, a: Temp, b: Temp) -> (Temp, Temp, Temp) {
        let lo = f.new_ebb_temp(Type::I64);
        let hi = f.new_ebb_temp(Type::I64);
        let sig = f.new_ebb_temp(Type::I64);
        if size == Size::Q {
            if signed {
                f.muls2(lo, hi, a, b);
                let sign = f.new_ebb_temp(Type::I64);
                let k = f.constant(Type::I64, 63);
                f.sar(sign, lo, k);
                f.sub(sig, hi, sign);
            } else {
                f.mulu2(lo, hi, a, b);
                f.mov(sig, hi);
            }
        } else {
            let (x, y) = (gen_ext(f, size, signed, a), gen_ext(f, size, signed, b));
            f.mul(lo, x, y);
            let bits = f.constant(Type::I64, size.bits() as u64);
            if signed {
                f.sar(hi, lo, bits);
                let t = gen_ext(f, size, true, lo);
                f.sub(sig, lo, t);
            } else {
                f.shr(hi, lo, bits);
                f.mov(sig, hi);
            }
        }
        (lo, hi, sig)
    }

    /// mul r/m, imul r/m, imul r, r/m, imul r, r/m, imm.
    pub(super) fn gen_mul(&mut self, f: &mut Func) -> bool {
        let signed = self.insn.mnemonic() == Mnemonic::Imul;
        let n = self.insn.op_count();
        let Some(size) = self.op_size(0) else {
            return false;
        };
        if n == 1 {
            let b = self.load_operand(f, 0, size);
            let a = self.read_reg_n(f, reg::RAX, size);
            let (lo, hi, sig) = self.gen_product(f, size, signed, a, b);
            if size == Size::B {
                self.write_reg_n(f, reg::RAX, Size::W, lo);
            } else {
                self.write_reg_n(f, reg::RAX, size, lo);
                self.write_reg_n(f, reg::RDX, size, hi);
            }
            self.set_cc(f, CcOp::new(CcKind::Mul, size), lo, Some(sig), None);
        } else {
            let (a, b) = if n == 2 {
                (self.load_operand(f, 0, size), self.load_operand(f, 1, size))
            } else {
                (self.load_operand(f, 1, size), self.load_operand(f, 2, size))
            };
            let (lo, _, sig) = self.gen_product(f, size, true, a, b);
            self.gen_st(f, Loc::Reg(self.insn.op_register(0)), size, lo);
            self.set_cc(f, CcOp::new(CcKind::Mul, size), lo, Some(sig), None);
        }
        true
    }

    /// div r/m, idiv r/m through the `divide` helper.
    pub(super) fn gen_div(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0) else {
            return false;
        };
        if !matches!(self.insn.op_kind(0), OpKind::Register | OpKind::Memory) {
            return false;
        }
        let divisor = self.load_operand(f, 0, size);
        let signed = self.insn.mnemonic() == Mnemonic::Idiv;
        let mode = f.constant(Type::I32, (size as u64) | (signed as u64) << 2);
        f.call(self.target.helpers.divide, None, &[mode, divisor]);
        true
    }

    /// A copy of register number `n` at width `size`, zero-extended.
    pub(super) fn read_reg_n(&mut self, f: &mut Func, n: usize, size: Size) -> Temp {
        let t = f.new_ebb_temp(Type::I64);
        let v = gen_ext(f, size, false, I386Target::reg(n));
        f.mov(t, v);
        t
    }
}

/// The `divide` helper: `mode` = size (0..4) | signed << 2. Divides rdx:rax (ax for bytes) by `divisor`,
/// writes quotient and remainder, or raises #DE and changes nothing.
pub(crate) unsafe extern "C" fn helper_divide(env: *mut u8, mode: u64, divisor: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on.
    let cpu = unsafe { &mut *env.cast::<X86CpuState>() };
    let size = Size::ALL[(mode & 3) as usize];
    let signed = mode & 4 != 0;
    let bits = size.bits();
    let (rax, rdx) = (cpu.regs[reg::RAX], cpu.regs[reg::RDX]);
    // The dividend: ax, dx:ax, edx:eax or rdx:rax, as a 2*bits-wide value.
    let dividend: u128 = if size == Size::B {
        (rax & 0xffff) as u128
    } else {
        ((size.zext(rdx) as u128) << bits) | size.zext(rax) as u128
    };
    let d = size.zext(divisor);
    if d == 0 {
        cpu.raise(excp::DE, 0);
        return 0;
    }
    let (q, r) = if signed {
        let wide = 2 * bits;
        let n = ((dividend << (128 - wide)) as i128) >> (128 - wide);
        let dv = size.sext(d) as i64 as i128;
        let (q, r) = (n.wrapping_div(dv), n.wrapping_rem(dv));
        let min = -(1i128 << (bits - 1));
        let max = (1i128 << (bits - 1)) - 1;
        if q < min || q > max {
            cpu.raise(excp::DE, 0);
            return 0;
        }
        (q as u64, r as u64)
    } else {
        let (q, r) = (dividend / d as u128, dividend % d as u128);
        if q >> bits != 0 {
            cpu.raise(excp::DE, 0);
            return 0;
        }
        (q as u64, r as u64)
    };
    let write = |reg: &mut u64, v: u64| {
        *reg = match size {
            Size::B | Size::W => (*reg & !size.mask()) | size.zext(v),
            Size::L => size.zext(v),
            Size::Q => v,
        }
    };
    if size == Size::B {
        let ax = (size.zext(q) | size.zext(r) << 8) & 0xffff;
        cpu.regs[reg::RAX] = (rax & !0xffff) | ax;
    } else {
        write(&mut cpu.regs[reg::RAX], q);
        write(&mut cpu.regs[reg::RDX], r);
    }
    0
}
