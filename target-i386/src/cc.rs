//! Lazy condition codes (QEMU's CC_OP scheme).
//!
//! Arithmetic instructions do not compute EFLAGS. They record *what* they did in `cc_op` and the values needed
//! to recompute the flags later in `cc_dst`, `cc_src` and `cc_src2`; the six arithmetic flags (CF, PF, AF, ZF,
//! SF, OF) are computed only when something consumes them: [`compute_eflags`] for all of them, [`compute_cf`]
//! for the carry alone. The translator also knows `cc_op` statically inside a TB and turns most conditions into
//! one IR comparison without calling either (see `translate::flags`).
//!
//! What the three words hold, per operation (`size` = operand width; values may carry garbage above `size`,
//! every consumer truncates):
//!
//! | cc_op | cc_dst | cc_src | cc_src2 |
//! |---|---|---|---|
//! | `Add` | result | second operand | - |
//! | `Adc` | result | second operand | carry in (0/1) |
//! | `Sub` | result | second operand (subtrahend) | - |
//! | `Sbb` | result | second operand | borrow in (0/1) |
//! | `Logic` | result | - | - |
//! | `Inc`, `Dec` | result | CF before the instruction (0/1) | - |
//! | `Shl`, `Sar` | result | the operand shifted by `count - 1` | - |
//! | `Mul` | low half of the product | nonzero iff CF = OF = 1 | - |
//! | `Eflags` | - | the six flags, already computed | - |
//! | `Clr` | - | - | - |
//! | `Dynamic` | unknown at translation time: the `cc_op` global holds the real value |||
//!
//! The non-arithmetic bits of RFLAGS (DF, IF, TF, ...) live in the `eflags` field of the CPU state and are never
//! lazy. What is *not* here: the translator's fast paths, and the table of flags the manuals leave undefined
//! (rqemu computes them as QEMU does: AF = 0 after logic ops, shifts and multiplies).

/// Carry flag.
pub const CC_C: u64 = 0x0001;
/// Parity flag (even parity of the low byte).
pub const CC_P: u64 = 0x0004;
/// Auxiliary (BCD) carry flag.
pub const CC_A: u64 = 0x0010;
/// Zero flag.
pub const CC_Z: u64 = 0x0040;
/// Sign flag.
pub const CC_S: u64 = 0x0080;
/// Overflow flag.
pub const CC_O: u64 = 0x0800;
/// The six arithmetic flags that the lazy scheme computes.
pub const CC_MASK: u64 = CC_C | CC_P | CC_A | CC_Z | CC_S | CC_O;

/// Operand width of a flag-setting operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Size {
    /// 8 bits.
    B = 0,
    /// 16 bits.
    W = 1,
    /// 32 bits.
    L = 2,
    /// 64 bits.
    Q = 3,
}

impl Size {
    /// Every width, narrowest first.
    pub const ALL: [Size; 4] = [Size::B, Size::W, Size::L, Size::Q];

    /// The width of an operand of `bytes` bytes (1, 2, 4 or 8).
    pub fn from_bytes(bytes: usize) -> Option<Size> {
        match bytes {
            1 => Some(Size::B),
            2 => Some(Size::W),
            4 => Some(Size::L),
            8 => Some(Size::Q),
            _ => None,
        }
    }

    /// Width in bits.
    pub const fn bits(self) -> u32 {
        8 << self as u32
    }

    /// Width in bytes.
    pub const fn bytes(self) -> u32 {
        1 << self as u32
    }

    /// Mask of the value bits.
    pub const fn mask(self) -> u64 {
        u64::MAX >> (64 - self.bits())
    }

    /// The sign bit.
    pub const fn sign_bit(self) -> u64 {
        1 << (self.bits() - 1)
    }

    /// `v` truncated and zero-extended from this width.
    pub const fn zext(self, v: u64) -> u64 {
        v & self.mask()
    }

    /// `v` truncated and sign-extended from this width.
    pub const fn sext(self, v: u64) -> u64 {
        let shift = 64 - self.bits();
        (((v << shift) as i64) >> shift) as u64
    }
}

/// The kind of the last flag-setting operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CcKind {
    /// Unknown at translation time; only ever a translator state, never stored in the CPU state.
    Dynamic = 0,
    /// `cc_src` holds the flags.
    Eflags = 1,
    /// `xor r, r` and friends: ZF and PF set, the rest clear.
    Clr = 2,
    /// Multiplication.
    Mul = 3,
    /// Addition.
    Add = 4,
    /// Addition with carry.
    Adc = 5,
    /// Subtraction and comparison.
    Sub = 6,
    /// Subtraction with borrow.
    Sbb = 7,
    /// and/or/xor/test.
    Logic = 8,
    /// Increment (CF preserved in `cc_src`).
    Inc = 9,
    /// Decrement (CF preserved in `cc_src`).
    Dec = 10,
    /// Left shift.
    Shl = 11,
    /// Right shift (sar and shr).
    Sar = 12,
}

impl CcKind {
    /// Every kind, in encoding order.
    pub const ALL: [CcKind; 13] = [
        CcKind::Dynamic,
        CcKind::Eflags,
        CcKind::Clr,
        CcKind::Mul,
        CcKind::Add,
        CcKind::Adc,
        CcKind::Sub,
        CcKind::Sbb,
        CcKind::Logic,
        CcKind::Inc,
        CcKind::Dec,
        CcKind::Shl,
        CcKind::Sar,
    ];

    /// Whether the kind comes in four widths.
    pub const fn has_size(self) -> bool {
        (self as u32) >= CcKind::Mul as u32
    }

    /// Whether `cc_dst` holds the result, so ZF, SF and PF follow from it alone.
    pub const fn dst_is_result(self) -> bool {
        self.has_size()
    }
}

/// A CC_OP value: a kind and, for the kinds that have one, a width. Stored in the CPU state as
/// `kind * 4 + size` ([`CcOp::raw`]); `Dynamic`, `Eflags` and `Clr` use size `B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CcOp {
    /// The operation.
    pub kind: CcKind,
    /// Its width (`B` for kinds without one).
    pub size: Size,
}

impl CcOp {
    /// Unknown at translation time.
    pub const DYNAMIC: CcOp = CcOp::new(CcKind::Dynamic, Size::B);
    /// Flags already computed in `cc_src`.
    pub const EFLAGS: CcOp = CcOp::new(CcKind::Eflags, Size::B);
    /// ZF and PF set.
    pub const CLR: CcOp = CcOp::new(CcKind::Clr, Size::B);

    /// `kind` at width `size` (the width is dropped for kinds without one).
    pub const fn new(kind: CcKind, size: Size) -> CcOp {
        let size = if kind.has_size() { size } else { Size::B };
        CcOp { kind, size }
    }

    /// The encoding stored in the `cc_op` field.
    pub const fn raw(self) -> u32 {
        (self.kind as u32) * 4 + self.size as u32
    }

    /// Decodes a stored value; `None` for values no CC_OP has.
    pub fn from_raw(raw: u32) -> Option<CcOp> {
        let kind = *CcKind::ALL.get((raw / 4) as usize)?;
        let size = Size::ALL[(raw % 4) as usize];
        if !kind.has_size() && size != Size::B {
            return None;
        }
        Some(CcOp { kind, size })
    }

    /// Every valid CC_OP (each kind at each of its widths).
    pub fn all() -> impl Iterator<Item = CcOp> {
        (0..CcKind::ALL.len() as u32 * 4).filter_map(CcOp::from_raw)
    }
}

fn parity(v: u64) -> u64 {
    if (v as u8).count_ones() & 1 == 0 {
        CC_P
    } else {
        0
    }
}

/// ZF, SF and PF of a result at width `s`.
fn zsp(s: Size, dst: u64) -> u64 {
    let d = s.zext(dst);
    let mut f = parity(d);
    if d == 0 {
        f |= CC_Z;
    }
    if d & s.sign_bit() != 0 {
        f |= CC_S;
    }
    f
}

fn flag(cond: bool, bit: u64) -> u64 {
    if cond {
        bit
    } else {
        0
    }
}

/// OF from the sign bit of `v` at width `s`.
fn of_from_sign(s: Size, v: u64) -> u64 {
    flag(v & s.sign_bit() != 0, CC_O)
}

/// The six arithmetic flags (a subset of [`CC_MASK`]) for the lazy state `(cc_op, dst, src, src2)`.
/// An invalid or `Dynamic` `cc_op` gives 0.
pub fn compute_eflags(cc_op: u32, dst: u64, src: u64, src2: u64) -> u64 {
    let Some(op) = CcOp::from_raw(cc_op) else {
        return 0;
    };
    let s = op.size;
    let d = s.zext(dst);
    let b = s.zext(src);
    match op.kind {
        CcKind::Dynamic => 0,
        CcKind::Eflags => src & CC_MASK,
        CcKind::Clr => CC_Z | CC_P,
        CcKind::Mul => {
            let cf = src != 0;
            zsp(s, d) | flag(cf, CC_C) | flag(cf, CC_O)
        }
        CcKind::Add | CcKind::Adc => {
            let cin = op.kind == CcKind::Adc && src2 != 0;
            let a = s.zext(d.wrapping_sub(b).wrapping_sub(cin as u64));
            let cf = if cin { d <= b } else { d < b };
            zsp(s, d) | flag(cf, CC_C) | ((d ^ a ^ b) & CC_A) | of_from_sign(s, (a ^ b ^ s.mask()) & (a ^ d))
        }
        CcKind::Sub | CcKind::Sbb => {
            let bin = op.kind == CcKind::Sbb && src2 != 0;
            let a = s.zext(d.wrapping_add(b).wrapping_add(bin as u64));
            let cf = if bin { a <= b } else { a < b };
            zsp(s, d) | flag(cf, CC_C) | ((d ^ a ^ b) & CC_A) | of_from_sign(s, (a ^ b) & (a ^ d))
        }
        CcKind::Logic => zsp(s, d),
        CcKind::Inc => {
            let a = s.zext(d.wrapping_sub(1));
            zsp(s, d) | flag(src != 0, CC_C) | ((d ^ a ^ 1) & CC_A) | flag(d == s.sign_bit(), CC_O)
        }
        CcKind::Dec => {
            let a = s.zext(d.wrapping_add(1));
            zsp(s, d) | flag(src != 0, CC_C) | ((d ^ a ^ 1) & CC_A) | flag(d == s.sign_bit() - 1, CC_O)
        }
        CcKind::Shl => zsp(s, d) | flag(b & s.sign_bit() != 0, CC_C) | of_from_sign(s, b ^ d),
        CcKind::Sar => zsp(s, d) | flag(b & 1 != 0, CC_C) | of_from_sign(s, b ^ d),
    }
}

/// CF alone for the lazy state `(cc_op, dst, src, src2)`: 0 or 1.
pub fn compute_cf(cc_op: u32, dst: u64, src: u64, src2: u64) -> u64 {
    let Some(op) = CcOp::from_raw(cc_op) else {
        return 0;
    };
    let s = op.size;
    match op.kind {
        CcKind::Dynamic | CcKind::Clr | CcKind::Logic => 0,
        CcKind::Eflags => src & CC_C,
        CcKind::Inc | CcKind::Dec => (src != 0) as u64,
        CcKind::Mul => (src != 0) as u64,
        CcKind::Add => (s.zext(dst) < s.zext(src)) as u64,
        CcKind::Sub => {
            let a = s.zext(dst.wrapping_add(src));
            (a < s.zext(src)) as u64
        }
        CcKind::Adc | CcKind::Sbb | CcKind::Shl | CcKind::Sar => compute_eflags(cc_op, dst, src, src2) & CC_C,
    }
}

/// [`compute_eflags`] with the uniform helper ABI (declared PURE).
pub(crate) unsafe extern "C" fn helper_compute_eflags(
    _env: *mut u8,
    cc_op: u64,
    dst: u64,
    src: u64,
    src2: u64,
    _: u64,
) -> u64 {
    compute_eflags(cc_op as u32, dst, src, src2)
}

/// [`compute_cf`] with the uniform helper ABI (declared PURE).
pub(crate) unsafe extern "C" fn helper_compute_cf(
    _env: *mut u8,
    cc_op: u64,
    dst: u64,
    src: u64,
    src2: u64,
    _: u64,
) -> u64 {
    compute_cf(cc_op as u32, dst, src, src2)
}

#[cfg(test)]
mod tests {
    //! compute_eflags against a reference that performs each operation on wide integers and reads the flags off
    //! the exact result, for every CC_OP at every width over edge values.

    use super::*;

    fn edges(s: Size) -> Vec<u64> {
        let m = s.mask();
        let sb = s.sign_bit();
        let mut v = vec![
            0,
            1,
            2,
            0x0f,
            0x10,
            0x7f,
            0x80,
            0xff,
            m,
            m - 1,
            sb,
            sb - 1,
            sb + 1,
            m >> 1,
            0x55 & m,
        ];
        v.extend([
            0xaaaa_aaaa_aaaa_aaaa & m,
            0x1234_5678_9abc_def0 & m,
            0x8000_0000 & m,
            0xffff_0000 & m,
        ]);
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Reference flags of `a op b` (op an addition or subtraction with carry/borrow `c`) from i128 arithmetic.
    fn reference_arith(s: Size, a: u64, b: u64, c: u64, sub: bool) -> (u64, u64) {
        let bits = s.bits();
        let (ua, ub) = (a as u128, b as u128);
        let (sa, sb) = (s.sext(a) as i64 as i128, s.sext(b) as i64 as i128);
        let (wide_u, wide_s) = if sub {
            (ua as i128 - ub as i128 - c as i128, sa - sb - c as i128)
        } else {
            ((ua + ub + c as u128) as i128, sa + sb + c as i128)
        };
        let res = (wide_u as u64) & s.mask();
        let cf = if sub { wide_u < 0 } else { wide_u >> bits != 0 };
        let min = -(1i128 << (bits - 1));
        let max = (1i128 << (bits - 1)) - 1;
        let of = wide_s < min || wide_s > max;
        let low_nibble = if sub {
            ((a & 0xf) as i64 - (b & 0xf) as i64 - c as i64) < 0
        } else {
            (a & 0xf) + (b & 0xf) + c > 0xf
        };
        let mut f = reference_zsp(s, res);
        f |= if cf { CC_C } else { 0 } | if of { CC_O } else { 0 } | if low_nibble { CC_A } else { 0 };
        (res, f)
    }

    fn reference_zsp(s: Size, res: u64) -> u64 {
        let mut f = 0;
        if res == 0 {
            f |= CC_Z;
        }
        if res >> (s.bits() - 1) & 1 == 1 {
            f |= CC_S;
        }
        if (0..8).filter(|i| res >> i & 1 == 1).count() % 2 == 0 {
            f |= CC_P;
        }
        f
    }

    fn check(op: CcOp, dst: u64, src: u64, src2: u64, want: u64, what: &str) {
        let got = compute_eflags(op.raw(), dst, src, src2);
        assert_eq!(got, want, "{op:?} {what}: got {got:#x} want {want:#x}");
        assert_eq!(
            compute_cf(op.raw(), dst, src, src2),
            want & CC_C,
            "compute_cf {op:?} {what}"
        );
    }

    #[test]
    fn raw_encoding_round_trips() {
        let all: Vec<CcOp> = CcOp::all().collect();
        assert_eq!(all.len(), 3 + 10 * 4);
        for op in all {
            assert_eq!(CcOp::from_raw(op.raw()), Some(op));
        }
        assert_eq!(CcOp::from_raw(1), None);
        assert_eq!(CcOp::from_raw(1000), None);
        assert_eq!(compute_eflags(1000, 0, 0, 0), 0);
    }

    #[test]
    fn add_adc_sub_sbb_every_width() {
        for s in Size::ALL {
            for &a in &edges(s) {
                for &b in &edges(s) {
                    for c in 0..2 {
                        let garbage = !s.mask(); // high bits must be ignored
                        let (r, f) = reference_arith(s, a, b, c, false);
                        let what = format!("{a:#x} + {b:#x} + {c}");
                        if c == 0 {
                            check(CcOp::new(CcKind::Add, s), r | garbage, b, 0, f, &what);
                        }
                        check(CcOp::new(CcKind::Adc, s), r, b | garbage, c, f, &what);
                        let (r, f) = reference_arith(s, a, b, c, true);
                        let what = format!("{a:#x} - {b:#x} - {c}");
                        if c == 0 {
                            check(CcOp::new(CcKind::Sub, s), r, b | garbage, 0, f, &what);
                        }
                        check(CcOp::new(CcKind::Sbb, s), r | garbage, b, c, f, &what);
                    }
                }
            }
        }
    }

    #[test]
    fn logic_inc_dec_every_width() {
        for s in Size::ALL {
            for &a in &edges(s) {
                check(
                    CcOp::new(CcKind::Logic, s),
                    a,
                    0,
                    0,
                    reference_zsp(s, a),
                    &format!("{a:#x}"),
                );
                for cf in 0..2 {
                    // inc/dec are add/sub of 1 that keep the old CF.
                    let (r, f) = reference_arith(s, a, 1, 0, false);
                    let want = (f & !CC_C) | if cf == 1 { CC_C } else { 0 };
                    check(
                        CcOp::new(CcKind::Inc, s),
                        r,
                        cf,
                        0,
                        want,
                        &format!("inc {a:#x} cf={cf}"),
                    );
                    let (r, f) = reference_arith(s, a, 1, 0, true);
                    let want = (f & !CC_C) | if cf == 1 { CC_C } else { 0 };
                    check(
                        CcOp::new(CcKind::Dec, s),
                        r,
                        cf,
                        0,
                        want,
                        &format!("dec {a:#x} cf={cf}"),
                    );
                }
            }
        }
    }

    #[test]
    fn shifts_every_width_and_count() {
        for s in Size::ALL {
            for &a in &edges(s) {
                for count in 1..s.bits() {
                    // shl: CF = last bit shifted out, OF = MSB(result) ^ CF (defined for count 1; rqemu computes
                    // the same formula for every count, as QEMU does).
                    let r = (a << count) & s.mask();
                    let cf = (a >> (s.bits() - count)) & 1;
                    let of = ((r >> (s.bits() - 1)) & 1) ^ cf;
                    let want = reference_zsp(s, r) | (cf * CC_C) | (of * CC_O);
                    let prev = (a << (count - 1)) & s.mask();
                    check(
                        CcOp::new(CcKind::Shl, s),
                        r,
                        prev,
                        0,
                        want,
                        &format!("shl {a:#x}, {count}"),
                    );
                    // sar: CF = last bit out, OF = 0.
                    let r = (s.sext(a) as i64 >> count) as u64 & s.mask();
                    let prev = (s.sext(a) as i64 >> (count - 1)) as u64;
                    let want = reference_zsp(s, r) | (((a >> (count - 1)) & 1) * CC_C);
                    check(
                        CcOp::new(CcKind::Sar, s),
                        r,
                        prev,
                        0,
                        want,
                        &format!("sar {a:#x}, {count}"),
                    );
                    // shr: CF = last bit out, OF = MSB(original) for count 1 (the formula gives it for every
                    // count where the result's MSB is 0 and the previous value kept the original's MSB).
                    let r = a >> count;
                    let prev = a >> (count - 1);
                    let of = if count == 1 { (a >> (s.bits() - 1)) & 1 } else { 0 };
                    let want = reference_zsp(s, r) | ((prev & 1) * CC_C) | (of * CC_O);
                    check(
                        CcOp::new(CcKind::Sar, s),
                        r,
                        prev,
                        0,
                        want,
                        &format!("shr {a:#x}, {count}"),
                    );
                }
            }
        }
    }

    #[test]
    fn mul_every_width() {
        for s in Size::ALL {
            for &a in &edges(s) {
                for &b in &edges(s) {
                    let p = a as u128 * b as u128;
                    let lo = p as u64 & s.mask();
                    let hi = (p >> s.bits()) as u64 & s.mask();
                    let over = if hi != 0 { CC_C | CC_O } else { 0 };
                    let want = reference_zsp(s, lo) | over;
                    check(CcOp::new(CcKind::Mul, s), lo, hi, 0, want, &format!("{a:#x} * {b:#x}"));
                }
            }
        }
    }

    #[test]
    fn eflags_clr_dynamic() {
        check(CcOp::EFLAGS, 0, u64::MAX, 0, CC_MASK, "all set");
        check(CcOp::EFLAGS, 0, 0x400 | CC_C, 0, CC_C, "DF dropped");
        check(CcOp::CLR, 5, 5, 5, CC_Z | CC_P, "clr");
        check(CcOp::DYNAMIC, 5, 5, 5, 0, "dynamic");
    }
}
