//! Integer arithmetic and logic: add, adc, sub, sbb, and, or, xor, cmp, test (r/m, r and immediate forms at
//! every width), inc, dec, neg, not, shl/sal/shr/sar, and the flag instructions clc, stc, cmc, cld, std,
//! lahf, sahf.
//!
//! Order within an instruction: load operands, compute, store the result (which may fault), and only then
//! update the lazy flags, so a faulting store leaves the flags of the previous instruction.

use iced_x86::{Mnemonic, OpKind};
use rqemu_tcg::{Cond, Func, Temp, Type};

use super::operand::{gen_ext, Loc};
use super::DisasContext;
use crate::cc::{CcKind, CcOp, Size, CC_A, CC_C, CC_O, CC_P, CC_S, CC_Z};
use crate::cpu::eflags;
use crate::desc::{global, I386Target};

impl DisasContext<'_> {
    /// Two-operand arithmetic and logic.
    pub(super) fn gen_alu(&mut self, f: &mut Func) -> bool {
        let m = self.insn.mnemonic();
        let Some(size) = self.op_size(0) else {
            return false;
        };
        // xor r, r and sub r, r: the result is 0 whatever the register held.
        let same_reg = self.insn.op_count() == 2
            && self.insn.op_kind(0) == OpKind::Register
            && self.insn.op_kind(1) == OpKind::Register
            && self.insn.op_register(0) == self.insn.op_register(1);
        if same_reg && matches!(m, Mnemonic::Xor | Mnemonic::Sub) {
            let zero = f.constant(Type::I64, 0);
            self.write_reg(f, self.insn.op_register(0), zero);
            if m == Mnemonic::Xor {
                self.set_cc_op(f, CcOp::CLR);
            } else {
                self.set_cc_sub(f, size, zero, zero, zero);
            }
            return true;
        }
        let dst_loc = self.op_loc(f, 0);
        let a = self.gen_ld(f, dst_loc, size);
        let b = self.load_operand(f, 1, size);
        let with_carry = matches!(m, Mnemonic::Adc | Mnemonic::Sbb);
        let carry = if with_carry {
            self.gen_compute_cf(f)
        } else {
            f.constant(Type::I64, 0)
        };
        let r = f.new_ebb_temp(Type::I64);
        match m {
            Mnemonic::Add => f.add(r, a, b),
            Mnemonic::Adc => {
                f.add(r, a, b);
                f.add(r, r, carry);
            }
            Mnemonic::Sub | Mnemonic::Cmp => f.sub(r, a, b),
            Mnemonic::Sbb => {
                f.sub(r, a, b);
                f.sub(r, r, carry);
            }
            Mnemonic::And | Mnemonic::Test => f.and(r, a, b),
            Mnemonic::Or => f.or(r, a, b),
            _ => f.xor(r, a, b),
        }
        if !matches!(m, Mnemonic::Cmp | Mnemonic::Test) {
            self.gen_st(f, dst_loc, size, r);
        }
        match m {
            Mnemonic::Add => self.set_cc(f, CcOp::new(CcKind::Add, size), r, Some(b), None),
            Mnemonic::Adc => self.set_cc(f, CcOp::new(CcKind::Adc, size), r, Some(b), Some(carry)),
            Mnemonic::Sub | Mnemonic::Cmp => self.set_cc_sub(f, size, a, b, r),
            Mnemonic::Sbb => self.set_cc(f, CcOp::new(CcKind::Sbb, size), r, Some(b), Some(carry)),
            _ => self.set_cc(f, CcOp::new(CcKind::Logic, size), r, None, None),
        }
        true
    }

    /// inc, dec, neg, not on r/m.
    pub(super) fn gen_unary(&mut self, f: &mut Func) -> bool {
        let m = self.insn.mnemonic();
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let loc = self.op_loc(f, 0);
        let a = self.gen_ld(f, loc, size);
        let r = f.new_ebb_temp(Type::I64);
        let one = f.constant(Type::I64, 1);
        // inc/dec keep CF: compute it before anything changes the lazy state.
        let cf = if matches!(m, Mnemonic::Inc | Mnemonic::Dec) {
            Some(self.gen_compute_cf(f))
        } else {
            None
        };
        match m {
            Mnemonic::Inc => f.add(r, a, one),
            Mnemonic::Dec => f.sub(r, a, one),
            Mnemonic::Neg => f.neg(r, a),
            _ => f.not(r, a),
        }
        self.gen_st(f, loc, size, r);
        match m {
            Mnemonic::Inc => self.set_cc(f, CcOp::new(CcKind::Inc, size), r, cf, None),
            Mnemonic::Dec => self.set_cc(f, CcOp::new(CcKind::Dec, size), r, cf, None),
            Mnemonic::Neg => {
                let zero = f.constant(Type::I64, 0);
                self.set_cc_sub(f, size, zero, a, r);
            }
            _ => {}
        }
        true
    }

    /// clc, stc, cmc: materialize the flags and change CF.
    pub(super) fn gen_carry_op(&mut self, f: &mut Func) -> bool {
        let m = self.insn.mnemonic();
        self.gen_update_eflags(f, |f, flags| {
            let t = f.new_ebb_temp(Type::I64);
            let c = f.constant(Type::I64, CC_C);
            match m {
                Mnemonic::Clc => f.andc(t, flags, c),
                Mnemonic::Stc => f.or(t, flags, c),
                _ => f.xor(t, flags, c),
            }
            t
        });
        true
    }

    /// cld, std.
    pub(super) fn gen_direction(&mut self, f: &mut Func) -> bool {
        let g = I386Target::global(global::EFLAGS);
        let df = f.constant(Type::I64, eflags::DF);
        if self.insn.mnemonic() == Mnemonic::Std {
            f.or(g, g, df);
        } else {
            f.andc(g, g, df);
        }
        true
    }
}

impl DisasContext<'_> {
    /// shl/sal, shr, sar by an immediate, 1 or CL. The count is masked to 5 bits (6 for 64-bit operands); a
    /// count of 0 leaves the flags alone (known at translation time for immediates, chosen with `movcond` at
    /// run time for CL, after which `cc_op` is dynamic).
    pub(super) fn gen_shift(&mut self, f: &mut Func) -> bool {
        let m = self.insn.mnemonic();
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let count_mask = if size == Size::Q { 63 } else { 31 };
        let loc = self.op_loc(f, 0);
        let v = self.gen_ld(f, loc, size);
        let sar = m == Mnemonic::Sar;
        let v = gen_ext(f, size, sar, v);
        let count = match self.insn.op_kind(1) {
            OpKind::Register => {
                let c = self.read_reg(f, self.insn.op_register(1));
                let t = f.new_ebb_temp(Type::I64);
                let mask = f.constant(Type::I64, count_mask);
                f.and(t, c, mask);
                t
            }
            _ => f.constant(Type::I64, self.insn.immediate(1) & count_mask),
        };
        let one = f.constant(Type::I64, 1);
        let count_m1 = f.new_ebb_temp(Type::I64);
        f.sub(count_m1, count, one);
        let (r, prev) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        match m {
            Mnemonic::Shl | Mnemonic::Sal => {
                f.shl(r, v, count);
                f.shl(prev, v, count_m1);
            }
            Mnemonic::Shr => {
                f.shr(r, v, count);
                f.shr(prev, v, count_m1);
            }
            _ => {
                f.sar(r, v, count);
                f.sar(prev, v, count_m1);
            }
        }
        self.gen_st(f, loc, size, r);
        let kind = if sar || m == Mnemonic::Shr {
            CcKind::Sar
        } else {
            CcKind::Shl
        };
        self.set_shift_cc(f, CcOp::new(kind, size), count, r, prev);
        true
    }

    /// Records the flags of a shift by `count` (result `r`, `prev` = the value shifted by `count - 1`): none
    /// when the count is a constant 0, chosen at run time when it is not a constant.
    pub(super) fn set_shift_cc(&mut self, f: &mut Func, op: CcOp, count: Temp, r: Temp, prev: Temp) {
        match f.const_value(count) {
            Some(0) => {}
            Some(_) => self.set_cc(f, op, r, Some(prev), None),
            None => {
                // Keep the old lazy state when the count is 0.
                let zero = f.constant(Type::I64, 0);
                let (dst, src) = (I386Target::global(global::CC_DST), I386Target::global(global::CC_SRC));
                f.movcond(Cond::Eq, dst, count, zero, dst, r);
                f.movcond(Cond::Eq, src, count, zero, src, prev);
                let old = if self.cc_op() == CcOp::DYNAMIC {
                    I386Target::global(global::CC_OP)
                } else {
                    f.constant(Type::I32, self.cc_op().raw() as u64)
                };
                let new = f.constant(Type::I32, op.raw() as u64);
                let c32 = f.new_ebb_temp(Type::I32);
                f.extrl_i64_i32(c32, count);
                let zero32 = f.constant(Type::I32, 0);
                let g = I386Target::global(global::CC_OP);
                f.movcond(Cond::Eq, g, c32, zero32, old, new);
                self.forget_cc_op();
            }
        }
    }

    /// shld, shrd r/m, r, imm8 | CL: shift the destination, filling from the source. Computed on the
    /// concatenation in 64 bits for narrower operands, from two shifts for 64-bit ones.
    pub(super) fn gen_shxd(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let left = self.insn.mnemonic() == Mnemonic::Shld;
        let count_mask = if size == Size::Q { 63 } else { 31 };
        let loc = self.op_loc(f, 0);
        let d = self.gen_ld(f, loc, size);
        let s = self.read_reg(f, self.insn.op_register(1));
        let count = match self.insn.op_kind(2) {
            OpKind::Register => {
                let c = self.read_reg(f, self.insn.op_register(2));
                let t = f.new_ebb_temp(Type::I64);
                let k = f.constant(Type::I64, count_mask);
                f.and(t, c, k);
                t
            }
            _ => f.constant(Type::I64, self.insn.immediate(2) & count_mask),
        };
        let one = f.constant(Type::I64, 1);
        let cm1 = f.new_ebb_temp(Type::I64);
        f.sub(cm1, count, one);
        let (r, prev) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        let bits = f.constant(Type::I64, size.bits() as u64);
        if size == Size::Q {
            // r = d << c | s >> (64 - c); prev likewise with c - 1; c == 0 and c == 1 pick d.
            let gen = |f: &mut Func, out: Temp, c: Temp| {
                let (a, b, inv) = (
                    f.new_ebb_temp(Type::I64),
                    f.new_ebb_temp(Type::I64),
                    f.new_ebb_temp(Type::I64),
                );
                f.sub(inv, bits, c);
                if left {
                    f.shl(a, d, c);
                    f.shr(b, s, inv);
                } else {
                    f.shr(a, d, c);
                    f.shl(b, s, inv);
                }
                f.or(out, a, b);
                let zero = f.constant(Type::I64, 0);
                f.movcond(Cond::Eq, out, c, zero, d, out);
            };
            gen(f, r, count);
            gen(f, prev, cm1);
        } else {
            // comb = d:s (shld) or s:d (shrd) in 64 bits.
            let comb = f.new_ebb_temp(Type::I64);
            let (hi, lo) = if left { (d, s) } else { (s, d) };
            f.shl(comb, hi, bits);
            f.or(comb, comb, lo);
            if left {
                let t = f.new_ebb_temp(Type::I64);
                f.shl(t, comb, count);
                f.shr(r, t, bits);
                f.shl(t, comb, cm1);
                f.shr(prev, t, bits);
            } else {
                f.shr(r, comb, count);
                f.shr(prev, comb, cm1);
            }
            let t = gen_ext(f, size, false, r);
            f.mov(r, t);
        }
        self.gen_st(f, loc, size, r);
        let kind = if left { CcKind::Shl } else { CcKind::Sar };
        self.set_shift_cc(f, CcOp::new(kind, size), count, r, prev);
        true
    }

    /// lahf: AH = SF:ZF:0:AF:0:PF:1:CF.
    pub(super) fn gen_lahf(&mut self, f: &mut Func) -> bool {
        let flags = self.gen_compute_eflags(f);
        let t = f.new_ebb_temp(Type::I64);
        let mask = f.constant(Type::I64, CC_S | CC_Z | CC_A | CC_P | CC_C);
        let fixed = f.constant(Type::I64, 2);
        f.and(t, flags, mask);
        f.or(t, t, fixed);
        let rax = I386Target::reg(crate::cpu::reg::RAX);
        f.deposit(rax, rax, t, 8, 8);
        true
    }

    /// sahf: SF, ZF, AF, PF, CF from AH; OF kept.
    pub(super) fn gen_sahf(&mut self, f: &mut Func) -> bool {
        let ah = self.read_reg(f, iced_x86::Register::AH);
        self.gen_update_eflags(f, |f, flags| {
            let (t, u) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
            let keep = f.constant(Type::I64, CC_O);
            let take = f.constant(Type::I64, CC_S | CC_Z | CC_A | CC_P | CC_C);
            f.and(t, flags, keep);
            f.and(u, ah, take);
            f.or(t, t, u);
            t
        });
        true
    }
}

impl DisasContext<'_> {
    /// xadd r/m, r: dest = dest + src, src = old dest (the destination is written last, so `xadd eax, eax`
    /// doubles eax; with memory, memory is written first so a fault leaves the register alone).
    pub(super) fn gen_xadd(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let loc = self.op_loc(f, 0);
        let old = self.gen_ld(f, loc, size);
        let src_reg = self.insn.op_register(1);
        let src = self.read_reg(f, src_reg);
        let sum = f.new_ebb_temp(Type::I64);
        f.add(sum, old, src);
        match loc {
            Loc::Mem(_) => {
                self.gen_st(f, loc, size, sum);
                self.write_reg(f, src_reg, old);
            }
            Loc::Reg(_) => {
                self.write_reg(f, src_reg, old);
                self.gen_st(f, loc, size, sum);
            }
        }
        self.set_cc(f, CcOp::new(CcKind::Add, size), sum, Some(src), None);
        true
    }

    /// cmpxchg r/m, r: compare the accumulator with the destination; equal: dest = src; else the accumulator
    /// takes the destination. A memory destination is always written (the CPU's unconditional store cycle); a
    /// 32-bit register destination only on success, a 32-bit accumulator only on failure (so each is
    /// zero-extended only then), as measured on the host CPU.
    pub(super) fn gen_cmpxchg(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let loc = self.op_loc(f, 0);
        let old = self.gen_ld(f, loc, size);
        let src = self.read_reg(f, self.insn.op_register(1));
        let acc = self.read_reg_n(f, crate::cpu::reg::RAX, size);
        let new = f.new_ebb_temp(Type::I64);
        f.movcond(Cond::Eq, new, acc, old, src, old);
        match loc {
            Loc::Reg(r) if size == Size::L => {
                // A 32-bit register destination is written (and zero-extended) only on success.
                let n = super::operand::gpr(r).map_or(0, |g| g.n);
                let g = I386Target::reg(n);
                let t = gen_ext(f, Size::L, false, src);
                f.movcond(Cond::Eq, g, acc, old, t, g);
            }
            _ => self.gen_st(f, loc, size, new),
        }
        let rax = I386Target::reg(crate::cpu::reg::RAX);
        if size == Size::L {
            let t = gen_ext(f, Size::L, false, old);
            f.movcond(Cond::Eq, rax, acc, old, rax, t);
        } else {
            // On success the accumulator is not written: when it is also the destination (cmpxchg al, bl), it
            // keeps the source just stored there.
            let cur = self.read_reg_n(f, crate::cpu::reg::RAX, size);
            let v = f.new_ebb_temp(Type::I64);
            f.movcond(Cond::Eq, v, acc, old, cur, old);
            self.write_reg_n(f, crate::cpu::reg::RAX, size, v);
        }
        let diff = f.new_ebb_temp(Type::I64);
        f.sub(diff, acc, old);
        self.set_cc_sub(f, size, acc, old, diff);
        true
    }
}

impl DisasContext<'_> {
    /// cmpxchg8b m64 / cmpxchg16b m128: compare rdx:rax (edx:eax) with memory; equal: ZF = 1 and memory =
    /// rcx:rbx; else ZF = 0 and rdx:rax = memory (written only then). Memory is written either way. The other
    /// flags are unchanged. cmpxchg16b of a misaligned operand raises #GP(0).
    pub(super) fn gen_cmpxchg_wide(&mut self, f: &mut Func) -> bool {
        let wide = self.insn.mnemonic() == Mnemonic::Cmpxchg16b;
        if wide {
            let addr = self.gen_ea(f, 0);
            let aligned = f.new_label();
            let fifteen = f.constant(Type::I64, 15);
            f.brcond(Cond::Tsteq, addr, fifteen, aligned);
            self.gen_exception(f, crate::cpu::excp::GP, 0);
            self.is_jmp = super::DisasJump::Next; // only the misaligned path ended
            f.set_label(aligned);
        }
        self.gen_cmpxchg_wide_body(f, if wide { Size::Q } else { Size::L })
    }

    fn gen_cmpxchg_wide_body(&mut self, f: &mut Func, half: Size) -> bool {
        use crate::cpu::reg::{RAX as rax, RBX as rbx, RCX as rcx, RDX as rdx};
        let addr = self.gen_ea(f, 0);
        let mop = super::operand::memop(half);
        let mmu = self.mem_index();
        let addr_hi = f.new_ebb_temp(Type::I64);
        let k = f.constant(Type::I64, half.bytes() as u64);
        f.add(addr_hi, addr, k);
        let (lo, hi) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        f.qemu_ld(lo, addr, mop, mmu);
        f.qemu_ld(hi, addr_hi, mop, mmu);
        let (a, d) = (self.read_reg_n(f, rax, half), self.read_reg_n(f, rdx, half));
        let (b, c) = (self.read_reg_n(f, rbx, half), self.read_reg_n(f, rcx, half));
        // eq = (lo == a) && (hi == d)
        let (x, y, eq) = (
            f.new_ebb_temp(Type::I64),
            f.new_ebb_temp(Type::I64),
            f.new_ebb_temp(Type::I64),
        );
        f.xor(x, lo, a);
        f.xor(y, hi, d);
        f.or(eq, x, y);
        let zero = f.constant(Type::I64, 0);
        let (new_lo, new_hi) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        f.movcond(Cond::Eq, new_lo, eq, zero, b, lo);
        f.movcond(Cond::Eq, new_hi, eq, zero, c, hi);
        f.qemu_st(new_lo, addr, mop, mmu);
        f.qemu_st(new_hi, addr_hi, mop, mmu);
        for (n, v) in [(rax, lo), (rdx, hi)] {
            let g = I386Target::reg(n);
            let t = gen_ext(f, half, false, v);
            f.movcond(Cond::Eq, g, eq, zero, g, t);
        }
        self.gen_update_eflags(f, |f, old| {
            let (t, z) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
            let zf = f.constant(Type::I64, CC_Z);
            f.andc(t, old, zf);
            f.movcond(Cond::Eq, z, eq, zero, zf, zero);
            f.or(t, t, z);
            t
        });
        true
    }
}
