//! Lazy flags in the translator: recording a flag-setting operation (`set_cc`), computing CF
//! (`gen_compute_cf`) or all flags (`gen_compute_eflags`), and QEMU's `gen_prepare_cc`: a condition code turned
//! into one IR comparison, directly on the operands when the last operation is known statically (cmp/sub,
//! add, logic/test, and ZF/SF after any arithmetic), through `compute_eflags` otherwise.

use rqemu_tcg::{Cond, Func, Temp, Type};

use super::operand::gen_ext;
use super::DisasContext;
use crate::cc::{CcKind, CcOp, Size, CC_C, CC_MASK, CC_O, CC_P, CC_S, CC_Z};
use crate::desc::{global, I386Target};

/// A condition as one IR comparison: true when `cond(a, b)`.
#[derive(Clone, Copy, Debug)]
pub(super) struct CcPrepare {
    pub cond: Cond,
    pub a: Temp,
    pub b: Temp,
}

/// The eight base conditions of x86 (`jcc` encoding >> 1); odd encodings are their negations.
const JCC_O: u8 = 0;
const JCC_B: u8 = 1;
const JCC_Z: u8 = 2;
const JCC_BE: u8 = 3;
const JCC_S: u8 = 4;
const JCC_P: u8 = 5;
const JCC_L: u8 = 6;
const JCC_LE: u8 = 7;

fn cc_dst() -> Temp {
    I386Target::global(global::CC_DST)
}
fn cc_src() -> Temp {
    I386Target::global(global::CC_SRC)
}
fn cc_src2() -> Temp {
    I386Target::global(global::CC_SRC2)
}

impl DisasContext<'_> {
    /// The statically known CC_OP (`Dynamic` when only the global knows).
    pub fn cc_op(&self) -> CcOp {
        self.cc_op
    }

    /// Forgets the static CC_OP: the `cc_op` global was computed at run time.
    pub(super) fn forget_cc_op(&mut self) {
        self.cc_op = CcOp::DYNAMIC;
    }

    /// Records that the last flag-setting operation is `op` (writes the `cc_op` global when it changes).
    pub(super) fn set_cc_op(&mut self, f: &mut Func, op: CcOp) {
        if op != self.cc_op {
            let g = I386Target::global(global::CC_OP);
            f.movi(g, op.raw() as u64);
            self.cc_op = op;
        }
    }

    /// Records a flag-setting operation and its values (see the table in `cc.rs`).
    pub(super) fn set_cc(&mut self, f: &mut Func, op: CcOp, dst: Temp, src: Option<Temp>, src2: Option<Temp>) {
        f.mov(cc_dst(), dst);
        if let Some(s) = src {
            f.mov(cc_src(), s);
        }
        if let Some(s) = src2 {
            f.mov(cc_src2(), s);
        }
        self.set_cc_op(f, op);
    }

    /// Records a subtraction `a - b = dst` (cmp, sub, neg): keeps `a` for the fast path.
    pub(super) fn set_cc_sub(&mut self, f: &mut Func, size: Size, a: Temp, b: Temp, dst: Temp) {
        let srct = match self.cc_srct {
            Some(t) => t,
            None => {
                let t = f.new_temp(Type::I64);
                self.cc_srct = Some(t);
                t
            }
        };
        f.mov(srct, a);
        self.set_cc(f, CcOp::new(CcKind::Sub, size), dst, Some(b), None);
    }

    /// The `cc_op` value as an i32 temp (a constant when known).
    fn cc_op_temp(&mut self, f: &mut Func) -> Temp {
        if self.cc_op == CcOp::DYNAMIC {
            I386Target::global(global::CC_OP)
        } else {
            f.constant(Type::I32, self.cc_op.raw() as u64)
        }
    }

    /// All six arithmetic flags, computed by the `compute_eflags` helper (or read when already computed).
    pub(super) fn gen_compute_eflags(&mut self, f: &mut Func) -> Temp {
        let t = f.new_ebb_temp(Type::I64);
        match self.cc_op.kind {
            CcKind::Eflags => f.mov(t, cc_src()),
            CcKind::Clr => f.movi(t, CC_Z | CC_P),
            _ => {
                let op = self.cc_op_temp(f);
                f.call(
                    self.target.helpers.compute_eflags,
                    Some(t),
                    &[op, cc_dst(), cc_src(), cc_src2()],
                );
            }
        }
        t
    }

    /// CF as 0 or 1.
    pub(super) fn gen_compute_cf(&mut self, f: &mut Func) -> Temp {
        let t = f.new_ebb_temp(Type::I64);
        let size = self.cc_op.size;
        match self.cc_op.kind {
            CcKind::Sub if self.cc_srct.is_some() => {
                let a = gen_ext(f, size, false, self.cc_srct.unwrap_or(cc_src()));
                let b = gen_ext(f, size, false, cc_src());
                f.setcond(Cond::Ltu, t, a, b);
            }
            CcKind::Add => {
                let d = gen_ext(f, size, false, cc_dst());
                let b = gen_ext(f, size, false, cc_src());
                f.setcond(Cond::Ltu, t, d, b);
            }
            CcKind::Logic | CcKind::Clr => f.movi(t, 0),
            CcKind::Inc | CcKind::Dec => f.mov(t, cc_src()),
            CcKind::Eflags => {
                let one = f.constant(Type::I64, CC_C);
                f.and(t, cc_src(), one);
            }
            _ => {
                let op = self.cc_op_temp(f);
                f.call(
                    self.target.helpers.compute_cf,
                    Some(t),
                    &[op, cc_dst(), cc_src(), cc_src2()],
                );
            }
        }
        t
    }

    /// Condition `jcc` (the x86 encoding 0..16: o, no, b, ae, e, ne, be, a, s, ns, p, np, l, ge, le, g) as
    /// one comparison.
    pub(super) fn gen_prepare_cc(&mut self, f: &mut Func, jcc: u8) -> CcPrepare {
        let base = (jcc >> 1) & 7;
        let p = self.prepare_base_cc(f, base);
        if jcc & 1 == 1 {
            CcPrepare {
                cond: p.cond.invert(),
                ..p
            }
        } else {
            p
        }
    }

    fn prepare_base_cc(&mut self, f: &mut Func, base: u8) -> CcPrepare {
        let op = self.cc_op;
        let size = op.size;
        let zero = f.constant(Type::I64, 0);
        let never = CcPrepare {
            cond: Cond::Never,
            a: zero,
            b: zero,
        };
        let always = CcPrepare {
            cond: Cond::Always,
            ..never
        };
        match (op.kind, base) {
            (CcKind::Clr, JCC_Z | JCC_BE | JCC_P | JCC_LE) => return always,
            (CcKind::Clr, _) => return never,
            (CcKind::Sub, JCC_B | JCC_BE | JCC_L | JCC_LE) if self.cc_srct.is_some() => {
                let signed = matches!(base, JCC_L | JCC_LE);
                let srct = self.cc_srct.unwrap_or(zero);
                let a = gen_ext(f, size, signed, srct);
                let b = gen_ext(f, size, signed, cc_src());
                let cond = match base {
                    JCC_B => Cond::Ltu,
                    JCC_BE => Cond::Leu,
                    JCC_L => Cond::Lt,
                    _ => Cond::Le,
                };
                return CcPrepare { cond, a, b };
            }
            (CcKind::Add, JCC_B) => {
                let a = gen_ext(f, size, false, cc_dst());
                let b = gen_ext(f, size, false, cc_src());
                return CcPrepare { cond: Cond::Ltu, a, b };
            }
            (CcKind::Logic, JCC_O | JCC_B) => return never,
            (CcKind::Logic, JCC_BE) => {
                let mask = f.constant(Type::I64, size.mask());
                return CcPrepare {
                    cond: Cond::Tsteq,
                    a: cc_dst(),
                    b: mask,
                };
            }
            (CcKind::Logic, JCC_L | JCC_LE) => {
                let a = gen_ext(f, size, true, cc_dst());
                let cond = if base == JCC_L { Cond::Lt } else { Cond::Le };
                return CcPrepare { cond, a, b: zero };
            }
            (k, JCC_Z) if k.dst_is_result() => {
                let mask = f.constant(Type::I64, size.mask());
                return CcPrepare {
                    cond: Cond::Tsteq,
                    a: cc_dst(),
                    b: mask,
                };
            }
            (k, JCC_S) if k.dst_is_result() => {
                let sign = f.constant(Type::I64, size.sign_bit());
                return CcPrepare {
                    cond: Cond::Tstne,
                    a: cc_dst(),
                    b: sign,
                };
            }
            _ => {}
        }
        // Generic: test bits of the computed flags.
        let flags = self.gen_compute_eflags(f);
        let test = |f: &mut Func, a: Temp, bits: u64| CcPrepare {
            cond: Cond::Tstne,
            a,
            b: f.constant(Type::I64, bits),
        };
        match base {
            JCC_O => test(f, flags, CC_O),
            JCC_B => test(f, flags, CC_C),
            JCC_Z => test(f, flags, CC_Z),
            JCC_BE => test(f, flags, CC_C | CC_Z),
            JCC_S => test(f, flags, CC_S),
            JCC_P => test(f, flags, CC_P),
            _ => {
                // SF != OF: bring OF (bit 11) down to SF (bit 7). The flags word has nothing but the six flags,
                // so bit 6 of the xor is ZF itself.
                let t = f.new_ebb_temp(Type::I64);
                let four = f.constant(Type::I64, 4);
                f.shr(t, flags, four);
                f.xor(t, t, flags);
                let bits = if base == JCC_L { CC_S } else { CC_S | CC_Z };
                debug_assert_eq!(CC_MASK & 0x400, 0);
                test(f, t, bits)
            }
        }
    }

    /// Materializes the flags into `cc_src` with `cc_op = Eflags`, then applies `update` (flags -> flags).
    pub(super) fn gen_update_eflags(&mut self, f: &mut Func, update: impl FnOnce(&mut Func, Temp) -> Temp) {
        let flags = self.gen_compute_eflags(f);
        let new = update(f, flags);
        f.mov(cc_src(), new);
        self.set_cc_op(f, CcOp::EFLAGS);
    }
}
