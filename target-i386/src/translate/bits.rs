//! Bit operations: rol/ror, bt/bts/btr/btc, bsf/bsr, bswap.
//!
//! Rotates and bit tests change only some flags (CF and OF, CF alone), so they materialize the flags
//! (`cc_op = Eflags`) and replace those bits; a rotate by a zero count keeps them all.

use iced_x86::{Mnemonic, OpKind};
use rqemu_tcg::{Cond, Func, Temp, Type};

use super::operand::{gen_ext, Loc};
use super::DisasContext;
use crate::cc::{CcKind, CcOp, Size, CC_C, CC_O};

impl DisasContext<'_> {
    /// rol, ror by an immediate, 1 or CL.
    pub(super) fn gen_rotate(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let left = self.insn.mnemonic() == Mnemonic::Rol;
        let loc = self.op_loc(f, 0);
        let v = self.gen_ld(f, loc, size);
        let count_mask = if size == Size::Q { 63 } else { 31 };
        let count = match self.insn.op_kind(1) {
            OpKind::Register => {
                let c = self.read_reg(f, self.insn.op_register(1));
                let t = f.new_ebb_temp(Type::I64);
                let k = f.constant(Type::I64, count_mask);
                f.and(t, c, k);
                t
            }
            _ => f.constant(Type::I64, self.insn.immediate(1) & count_mask),
        };
        if f.const_value(count) == Some(0) {
            // Flags unchanged; a 32-bit register is still written (zero-extended).
            self.gen_st(f, loc, size, v);
            return true;
        }
        let bits = size.bits() as u64;
        // n = count mod width; r = rotate(v, n) at the operand width.
        let n = f.new_ebb_temp(Type::I64);
        let k = f.constant(Type::I64, bits - 1);
        f.and(n, count, k);
        let r = f.new_ebb_temp(Type::I64);
        if size == Size::Q {
            if left {
                f.rotl(r, v, n);
            } else {
                f.rotr(r, v, n);
            }
        } else {
            let (a, b, m) = (
                f.new_ebb_temp(Type::I64),
                f.new_ebb_temp(Type::I64),
                f.new_ebb_temp(Type::I64),
            );
            let width = f.constant(Type::I64, bits);
            f.sub(m, width, n);
            if left {
                f.shl(a, v, n);
                f.shr(b, v, m);
            } else {
                f.shr(a, v, n);
                f.shl(b, v, m);
            }
            f.or(r, a, b);
            let t = gen_ext(f, size, false, r);
            f.mov(r, t);
        }
        self.gen_st(f, loc, size, r);
        // CF: rol -> bit 0 of the result, ror -> its MSB. OF = MSB ^ CF (rol), MSB ^ MSB-1 (ror).
        let (cf, of) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        let msb = f.new_ebb_temp(Type::I64);
        f.extract(msb, r, size.bits() - 1, 1);
        if left {
            f.extract(cf, r, 0, 1);
            f.xor(of, msb, cf);
        } else {
            f.mov(cf, msb);
            let next = f.new_ebb_temp(Type::I64);
            f.extract(next, r, size.bits() - 2, 1);
            f.xor(of, msb, next);
        }
        let zero = f.constant(Type::I64, 0);
        self.gen_update_eflags(f, |f, old| {
            let new = f.new_ebb_temp(Type::I64);
            let clear = f.constant(Type::I64, CC_C | CC_O);
            f.andc(new, old, clear);
            f.or(new, new, cf);
            let o = f.new_ebb_temp(Type::I64);
            let eleven = f.constant(Type::I64, 11);
            f.shl(o, of, eleven);
            f.or(new, new, o);
            let sel = f.new_ebb_temp(Type::I64);
            f.movcond(Cond::Eq, sel, count, zero, old, new);
            sel
        });
        true
    }

    /// bt, bts, btr, btc with an immediate or register bit offset. With a register offset and a memory
    /// operand the offset addresses the whole bit string (signed, beyond the operand).
    pub(super) fn gen_bt(&mut self, f: &mut Func) -> bool {
        let m = self.insn.mnemonic();
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let bits = size.bits() as u64;
        let low = f.constant(Type::I64, bits - 1);
        let (loc, off) = match (self.insn.op_kind(0), self.insn.op_kind(1)) {
            (OpKind::Memory, OpKind::Register) => {
                let raw = self.read_reg(f, self.insn.op_register(1));
                let soff = gen_ext(f, size, true, raw);
                let addr = self.gen_ea(f, 0);
                let (words, bytes) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
                let shift = f.constant(Type::I64, size.bits().trailing_zeros() as u64);
                f.sar(words, soff, shift);
                let scale = f.constant(Type::I64, size.bytes().trailing_zeros() as u64);
                f.shl(bytes, words, scale);
                let a = f.new_ebb_temp(Type::I64);
                f.add(a, addr, bytes);
                let off = f.new_ebb_temp(Type::I64);
                f.and(off, soff, low);
                (Loc::Mem(a), off)
            }
            (_, OpKind::Register) => {
                let raw = self.read_reg(f, self.insn.op_register(1));
                let off = f.new_ebb_temp(Type::I64);
                f.and(off, raw, low);
                (self.op_loc(f, 0), off)
            }
            _ => {
                let off = f.constant(Type::I64, self.insn.immediate(1) & (bits - 1));
                (self.op_loc(f, 0), off)
            }
        };
        let v = self.gen_ld(f, loc, size);
        let bit = f.new_ebb_temp(Type::I64);
        f.shr(bit, v, off);
        let one = f.constant(Type::I64, 1);
        f.and(bit, bit, one);
        if m != Mnemonic::Bt {
            let mask = f.new_ebb_temp(Type::I64);
            f.shl(mask, one, off);
            let r = f.new_ebb_temp(Type::I64);
            match m {
                Mnemonic::Bts => f.or(r, v, mask),
                Mnemonic::Btr => f.andc(r, v, mask),
                _ => f.xor(r, v, mask),
            }
            self.gen_st(f, loc, size, r);
        }
        self.gen_update_eflags(f, |f, old| {
            let new = f.new_ebb_temp(Type::I64);
            let c = f.constant(Type::I64, CC_C);
            f.andc(new, old, c);
            f.or(new, new, bit);
            new
        });
        true
    }

    /// bsf, bsr: ZF = (source == 0), destination unchanged then, even a 32-bit one (as x86 CPUs do).
    pub(super) fn gen_bitscan(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let src = self.load_operand(f, 1, size);
        let dst = self.insn.op_register(0);
        let old = self.read_reg(f, dst);
        let r = f.new_ebb_temp(Type::I64);
        if self.insn.mnemonic() == Mnemonic::Bsf {
            f.ctz(r, src, old);
        } else {
            // bsr = 63 - clz over the zero-extended value.
            let n = f.new_ebb_temp(Type::I64);
            let k64 = f.constant(Type::I64, 64);
            f.clz(n, src, k64);
            let k63 = f.constant(Type::I64, 63);
            f.sub(r, k63, n);
            let zero = f.constant(Type::I64, 0);
            f.movcond(Cond::Eq, r, src, zero, old, r);
        }
        if size == Size::L {
            // A zero source leaves the whole register alone (no 32-bit write, no zero-extension).
            let g = rqemu_tcg::Temp(super::operand::gpr(dst).map_or(0, |g| g.n) as u32 + 1);
            let t = gen_ext(f, Size::L, false, r);
            let zero = f.constant(Type::I64, 0);
            f.movcond(Cond::Eq, g, src, zero, g, t);
        } else {
            self.write_reg(f, dst, r);
        }
        // ZF from the source; CF, OF = 0; SF, AF, PF are undefined.
        self.set_cc(f, CcOp::new(CcKind::Logic, size), src, None, None);
        true
    }

    /// bswap r32 | r64 (the 16-bit form clears the low word, as CPUs do).
    pub(super) fn gen_bswap(&mut self, f: &mut Func) -> bool {
        let r = self.insn.op_register(0);
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let v = self.read_reg(f, r);
        let t: Temp = f.new_ebb_temp(Type::I64);
        match size {
            Size::Q => f.bswap64(t, v),
            Size::L => f.bswap32(t, v),
            _ => f.movi(t, 0),
        }
        self.write_reg(f, r, t);
        true
    }
}

impl DisasContext<'_> {
    /// popcnt, lzcnt, tzcnt r, r/m. popcnt: ZF = (source == 0), the other five flags 0. lzcnt/tzcnt: CF =
    /// (source == 0), ZF = (result == 0); OF, SF, AF, PF are undefined (rqemu clears them).
    pub(super) fn gen_count(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let src = self.load_operand(f, 1, size);
        let r = f.new_ebb_temp(Type::I64);
        let width = f.constant(Type::I64, size.bits() as u64);
        let zero = f.constant(Type::I64, 0);
        let flags = f.new_ebb_temp(Type::I64);
        match self.insn.mnemonic() {
            Mnemonic::Popcnt => {
                f.ctpop(r, src);
                let z = f.constant(Type::I64, crate::cc::CC_Z);
                f.movcond(Cond::Eq, flags, src, zero, z, zero);
            }
            m => {
                if m == Mnemonic::Tzcnt {
                    f.ctz(r, src, width);
                } else {
                    // Leading zeros at the operand width: clz over 64 bits minus the unused high bits.
                    let k64 = f.constant(Type::I64, 64);
                    f.clz(r, src, k64);
                    let unused = f.constant(Type::I64, 64 - size.bits() as u64);
                    f.sub(r, r, unused);
                }
                let (cf, zf) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
                f.setcond(Cond::Eq, cf, src, zero);
                f.setcond(Cond::Eq, zf, r, zero);
                let six = f.constant(Type::I64, 6);
                f.shl(zf, zf, six);
                f.or(flags, cf, zf);
            }
        }
        self.write_reg(f, self.insn.op_register(0), r);
        let src_g = crate::desc::I386Target::global(crate::desc::global::CC_SRC);
        f.mov(src_g, flags);
        self.set_cc_op(f, CcOp::EFLAGS);
        true
    }
}

impl DisasContext<'_> {
    /// rcl, rcr by an immediate, 1 or CL, through the PURE `rotate_carry` helpers (result, then flags).
    pub(super) fn gen_rotate_carry(&mut self, f: &mut Func) -> bool {
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let left = self.insn.mnemonic() == Mnemonic::Rcl;
        let loc = self.op_loc(f, 0);
        let v = self.gen_ld(f, loc, size);
        let count = match self.insn.op_kind(1) {
            OpKind::Register => self.read_reg(f, self.insn.op_register(1)),
            _ => f.constant(Type::I64, self.insn.immediate(1) & 0xff),
        };
        let flags = self.gen_compute_eflags(f);
        let mode = f.constant(Type::I32, size as u64 | (left as u64) << 2);
        let h = self.target.helpers;
        let (r, new_flags) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        f.call(h.rotate_carry, Some(r), &[mode, v, count, flags]);
        f.call(h.rotate_carry_flags, Some(new_flags), &[mode, v, count, flags]);
        self.gen_st(f, loc, size, r);
        self.gen_update_eflags(f, |_, _| new_flags);
        true
    }
}

/// rcl/rcr of `v` (width and direction in `mode` = size | left << 2) by `count` with the flags `flags`:
/// the result and the new flags (CF, OF replaced; unchanged when the count modulo width + 1 is 0).
pub(crate) fn rotate_carry(mode: u64, v: u64, count: u64, flags: u64) -> (u64, u64) {
    let size = Size::ALL[(mode & 3) as usize];
    let left = mode & 4 != 0;
    let bits = size.bits();
    let c = count & if size == Size::Q { 63 } else { 31 };
    let n = match size {
        Size::B => c % 9,
        Size::W => c % 17,
        _ => c,
    } as u32;
    let v = size.zext(v);
    if n == 0 {
        return (v, flags);
    }
    let w = bits + 1;
    let mask_w = (1u128 << w) - 1;
    let wide = ((flags & CC_C) as u128) << bits | v as u128;
    let rot = if left {
        ((wide << n) | (wide >> (w - n))) & mask_w
    } else {
        ((wide >> n) | (wide << (w - n))) & mask_w
    };
    let r = size.zext(rot as u64);
    let cf = (rot >> bits) as u64 & 1;
    let msb = (r >> (bits - 1)) & 1;
    let of = if left { msb ^ cf } else { msb ^ ((r >> (bits - 2)) & 1) };
    (r, (flags & !(CC_C | CC_O)) | cf | (of << 11))
}

pub(crate) unsafe extern "C" fn helper_rotate_carry(_: *mut u8, mode: u64, v: u64, c: u64, fl: u64, _: u64) -> u64 {
    rotate_carry(mode, v, c, fl).0
}

pub(crate) unsafe extern "C" fn helper_rotate_carry_flags(
    _: *mut u8,
    mode: u64,
    v: u64,
    c: u64,
    fl: u64,
    _: u64,
) -> u64 {
    rotate_carry(mode, v, c, fl).1
}
