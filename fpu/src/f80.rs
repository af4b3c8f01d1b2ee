//! The x87 80-bit extended format and its arithmetic under precision control.

use crate::arith::{drop_denormal_if_rejected, OPS};
use crate::round::{round_pack, Format, Rounded, EXTENDED};
use crate::sqrt::sqrt;
use crate::status::{flags, FloatStatus, Precision, RoundingMode};
use crate::unpacked::{Exact, Num};

/// An x87 extended-precision value: 64-bit significand with an explicit integer bit (bit 63)
/// and `se = sign << 15 | biased exponent` (bias 16383).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct F80 {
    /// Significand including the explicit integer bit.
    pub mant: u64,
    /// Sign (bit 15) and 15-bit biased exponent.
    pub se: u16,
}

const INT_BIT: u64 = 1 << 63;
const QUIET_BIT: u64 = 1 << 62;
const EXP_MAX: u16 = 0x7fff;

impl F80 {
    /// The x87 "real indefinite" NaN produced by masked invalid operations.
    pub const DEFAULT_NAN: F80 = F80 {
        mant: 0xC000_0000_0000_0000,
        se: 0xffff,
    };

    fn exp(self) -> u16 {
        self.se & EXP_MAX
    }
    fn sign(self) -> bool {
        self.se & 0x8000 != 0
    }
}

/// True for encodings the 387 and later reject as operands: unnormals (integer bit clear with
/// a nonzero, non-maximal exponent), pseudo-infinities and pseudo-NaNs (integer bit clear
/// with the maximal exponent).
pub fn f80_is_invalid_encoding(a: F80) -> bool {
    a.exp() != 0 && a.mant & INT_BIT == 0
}

/// True for any NaN, quiet or signaling (pseudo-NaNs excluded: they are invalid encodings).
pub fn f80_is_nan(a: F80) -> bool {
    a.exp() == EXP_MAX && a.mant & INT_BIT != 0 && a.mant << 1 != 0
}

/// True for signaling NaNs (quiet bit 62 clear).
pub fn f80_is_snan(a: F80) -> bool {
    f80_is_nan(a) && a.mant & QUIET_BIT == 0
}

/// True for denormals and pseudo-denormals (zero exponent, nonzero significand).
pub fn f80_is_denormal(a: F80) -> bool {
    a.exp() == 0 && a.mant != 0
}

/// Decodes a valid non-NaN encoding. Pseudo-denormals carry the same weight as exponent 1.
pub(crate) fn decode(a: F80) -> Num {
    let sign = a.sign();
    let e = a.exp() as i32;
    if e == EXP_MAX as i32 {
        return Num::Inf(sign);
    }
    if a.mant == 0 {
        return Num::Zero(sign);
    }
    Num::Fin {
        sign,
        exp: e.max(1) - 16383 - 63,
        sig: a.mant,
    }
}

/// Decodes an x87 operand, raising DENORMAL for (pseudo-)denormals (x87 has no DAZ).
pub(crate) fn operand(a: F80, st: &mut FloatStatus) -> Num {
    if f80_is_denormal(a) {
        st.raise(flags::DENORMAL);
    }
    decode(a)
}

pub(crate) fn x87_format(p: Precision) -> Format {
    let p = match p {
        Precision::Single => 24,
        Precision::Double => 53,
        Precision::Extended => 64,
    };
    Format { p, ..EXTENDED }
}

pub(crate) fn pack(sign: bool, r: Rounded, fmt: Format) -> F80 {
    let s = if sign { 0x8000 } else { 0 };
    match r {
        Rounded::Zero => F80 { mant: 0, se: s },
        Rounded::Inf => F80 {
            mant: INT_BIT,
            se: s | EXP_MAX,
        },
        Rounded::Finite { biased, sig } => F80 {
            mant: sig << (64 - fmt.p),
            se: s | biased as u16,
        },
    }
}

/// Rounds an exact result to `fmt` (an extended-range format) and encodes it.
pub(crate) fn finish(e: Exact, fmt: Format, st: &mut FloatStatus) -> F80 {
    match e {
        Exact::Zero(s) => pack(s, Rounded::Zero, fmt),
        Exact::Inf(s) => pack(s, Rounded::Inf, fmt),
        Exact::Invalid => {
            st.raise(flags::INVALID);
            F80::DEFAULT_NAN
        }
        Exact::DivZero(s) => {
            st.raise(flags::DIV_BY_ZERO);
            pack(s, Rounded::Inf, fmt)
        }
        Exact::Fin { sign, exp, sig, sticky } => pack(sign, round_pack(sign, exp, sig, sticky, fmt, st, false), fmt),
    }
}

pub(crate) fn quiet(a: F80) -> F80 {
    F80 {
        mant: a.mant | QUIET_BIT,
        se: a.se,
    }
}

/// x87 rule for two operands of which at least one is a NaN (Intel SDM "Rules for generating
/// a QNaN"): a QNaN beats an SNaN, two NaNs of the same kind yield the larger significand,
/// and the chosen NaN is returned quiet.
pub(crate) fn propagate(a: F80, b: F80, st: &mut FloatStatus) -> F80 {
    let (an, bn) = (f80_is_nan(a), f80_is_nan(b));
    let (asn, bsn) = (f80_is_snan(a), f80_is_snan(b));
    if asn || bsn {
        st.raise(flags::INVALID);
    }
    let pick = if an && bn {
        // Equal significands: the positive NaN wins (measured on the host).
        let b_wins = if asn != bsn {
            asn
        } else {
            b.mant > a.mant || (b.mant == a.mant && a.sign())
        };
        if b_wins {
            b
        } else {
            a
        }
    } else if an {
        a
    } else {
        b
    };
    quiet(pick)
}

fn x87_binop(a: F80, b: F80, st: &mut FloatStatus, op: fn(Num, Num, RoundingMode) -> Exact) -> F80 {
    if f80_is_invalid_encoding(a) || f80_is_invalid_encoding(b) {
        st.raise(flags::INVALID);
        return F80::DEFAULT_NAN;
    }
    if f80_is_nan(a) || f80_is_nan(b) {
        return propagate(a, b, st);
    }
    let before = st.flags;
    let na = operand(a, st);
    let nb = operand(b, st);
    let e = op(na, nb, st.rounding);
    drop_denormal_if_rejected(e, before, st);
    finish(e, x87_format(st.precision), st)
}

/// `a + b` with x87 fadd semantics, rounded to `st.precision`.
pub fn f80_add(a: F80, b: F80, st: &mut FloatStatus) -> F80 {
    x87_binop(a, b, st, OPS[0])
}

/// `a - b` with x87 fsub semantics, rounded to `st.precision`.
pub fn f80_sub(a: F80, b: F80, st: &mut FloatStatus) -> F80 {
    x87_binop(a, b, st, OPS[1])
}

/// `a * b` with x87 fmul semantics, rounded to `st.precision`.
pub fn f80_mul(a: F80, b: F80, st: &mut FloatStatus) -> F80 {
    x87_binop(a, b, st, OPS[2])
}

/// `a / b` with x87 fdiv semantics, rounded to `st.precision`.
pub fn f80_div(a: F80, b: F80, st: &mut FloatStatus) -> F80 {
    x87_binop(a, b, st, OPS[3])
}

/// Square root with x87 fsqrt semantics, rounded to `st.precision`.
pub fn f80_sqrt(a: F80, st: &mut FloatStatus) -> F80 {
    if f80_is_invalid_encoding(a) {
        st.raise(flags::INVALID);
        return F80::DEFAULT_NAN;
    }
    if f80_is_nan(a) {
        return propagate(a, a, st);
    }
    let before = st.flags;
    let na = operand(a, st);
    let e = sqrt(na);
    drop_denormal_if_rejected(e, before, st);
    finish(e, x87_format(st.precision), st)
}

/// `a * 2^n`, rounded to full extended precision (fscale is not subject to precision
/// control). Deriving `n` from ST(1) (truncation, huge or non-integral scales) is left to
/// the x87 layer.
pub fn f80_scalbn(a: F80, n: i32, st: &mut FloatStatus) -> F80 {
    if f80_is_invalid_encoding(a) {
        st.raise(flags::INVALID);
        return F80::DEFAULT_NAN;
    }
    if f80_is_nan(a) {
        return propagate(a, a, st);
    }
    match operand(a, st) {
        Num::Fin { sign, exp, sig } => {
            // Any scale beyond the format's whole range behaves the same; clamping keeps
            // the exponent arithmetic from overflowing.
            let n = n.clamp(-70000, 70000);
            let e = Exact::Fin {
                sign,
                exp: exp + n,
                sig: sig as u128,
                sticky: false,
            };
            finish(e, EXTENDED, st)
        }
        _ => a,
    }
}
