//! Conversions between the float formats and to/from integers.

use crate::f80::{self, f80_is_invalid_encoding, f80_is_nan, f80_is_snan, F80};
use crate::round::{round_to_integer, EXTENDED};
use crate::status::RoundingMode;
use crate::status::{flags, FloatStatus};
use crate::unpacked::{Exact, Ieee, Num, F32, F64};

/// Re-encodes a NaN's sign and payload (top-aligned) in another IEEE format, quieted.
fn nan_to_ieee(sign: bool, payload_top: u64, to: &Ieee) -> u64 {
    let s = if sign { to.sign_mask() } else { 0 };
    s | to.exp_mask() | to.quiet_bit() | ((payload_top >> (64 - to.frac)) & to.frac_mask())
}

fn ieee_to_ieee(from: &Ieee, to: &Ieee, a: u64, st: &mut FloatStatus) -> u64 {
    if from.is_nan(a) {
        if from.is_snan(a) {
            st.raise(flags::INVALID);
        }
        return nan_to_ieee(from.sign(a), a << (64 - from.frac), to);
    }
    let n = from.operand(a, st);
    to.finish(num_exact(n), st)
}

fn num_exact(n: Num) -> Exact {
    match n {
        Num::Zero(s) => Exact::Zero(s),
        Num::Inf(s) => Exact::Inf(s),
        Num::Fin { sign, exp, sig } => Exact::Fin {
            sign,
            exp,
            sig: sig as u128,
            sticky: false,
        },
    }
}

/// cvtss2sd: exact apart from NaN quieting; SNaN raises INVALID, denormals DENORMAL (or DAZ).
pub fn f32_to_f64(a: u32, st: &mut FloatStatus) -> u64 {
    ieee_to_ieee(&F32, &F64, a as u64, st)
}

/// cvtsd2ss: rounds per `st.rounding` with overflow/underflow/FTZ handling.
pub fn f64_to_f32(a: u64, st: &mut FloatStatus) -> u32 {
    ieee_to_ieee(&F64, &F32, a, st) as u32
}

fn ieee_to_f80(from: &Ieee, a: u64, st: &mut FloatStatus) -> F80 {
    if from.is_nan(a) {
        if from.is_snan(a) {
            st.raise(flags::INVALID);
        }
        let se = if from.sign(a) { 0xffff } else { 0x7fff };
        let payload = (a & from.frac_mask()) << (63 - from.frac);
        return F80 {
            mant: (1 << 63) | (1 << 62) | payload,
            se,
        };
    }
    let n = from.operand(a, st);
    f80::finish(num_exact(n), EXTENDED, st)
}

/// fld m32: exact widening; SNaN is quieted with INVALID, denormals raise DENORMAL.
pub fn f32_to_f80(a: u32, st: &mut FloatStatus) -> F80 {
    ieee_to_f80(&F32, a as u64, st)
}

/// fld m64: exact widening; SNaN is quieted with INVALID, denormals raise DENORMAL.
pub fn f64_to_f80(a: u64, st: &mut FloatStatus) -> F80 {
    ieee_to_f80(&F64, a, st)
}

fn f80_to_ieee(a: F80, to: &Ieee, st: &mut FloatStatus) -> u64 {
    if f80_is_invalid_encoding(a) {
        st.raise(flags::INVALID);
        return to.default_nan();
    }
    if f80_is_nan(a) {
        if f80_is_snan(a) {
            st.raise(flags::INVALID);
        }
        return nan_to_ieee(a.se & 0x8000 != 0, a.mant << 1, to);
    }
    // Stores do not report a denormal source (measured on the host).
    to.finish(num_exact(f80::decode(a)), st)
}

/// fst m32: rounds per `st.rounding` (precision control does not apply to stores).
pub fn f80_to_f32(a: F80, st: &mut FloatStatus) -> u32 {
    f80_to_ieee(a, &F32, st) as u32
}

/// fst m64: rounds per `st.rounding` (precision control does not apply to stores).
pub fn f80_to_f64(a: F80, st: &mut FloatStatus) -> u64 {
    f80_to_ieee(a, &F64, st)
}

fn int_exact(v: i64) -> Exact {
    if v == 0 {
        Exact::Zero(false)
    } else {
        Exact::Fin {
            sign: v < 0,
            exp: 0,
            sig: v.unsigned_abs() as u128,
            sticky: false,
        }
    }
}

/// cvtsi2ss with a 32-bit source.
pub fn i32_to_f32(v: i32, st: &mut FloatStatus) -> u32 {
    F32.finish(int_exact(v as i64), st) as u32
}

/// cvtsi2sd with a 32-bit source (always exact).
pub fn i32_to_f64(v: i32, st: &mut FloatStatus) -> u64 {
    F64.finish(int_exact(v as i64), st)
}

/// cvtsi2ss with a 64-bit source.
pub fn i64_to_f32(v: i64, st: &mut FloatStatus) -> u32 {
    F32.finish(int_exact(v), st) as u32
}

/// cvtsi2sd with a 64-bit source.
pub fn i64_to_f64(v: i64, st: &mut FloatStatus) -> u64 {
    F64.finish(int_exact(v), st)
}

/// fild: exact at full extended precision.
pub fn i64_to_f80(v: i64, st: &mut FloatStatus) -> F80 {
    f80::finish(int_exact(v), EXTENDED, st)
}

/// Shared float-to-integer step: `None` input means NaN/invalid. Out-of-range values give
/// the "integer indefinite" (most negative value) with INVALID only.
fn num_to_int(n: Option<Num>, bits: u32, truncate: bool, st: &mut FloatStatus) -> i64 {
    let indefinite = i64::MIN >> (64 - bits);
    let mode = if truncate {
        RoundingMode::TowardZero
    } else {
        st.rounding
    };
    let (sign, mag, inexact) = match n {
        None | Some(Num::Inf(_)) => (false, None, false),
        Some(Num::Zero(_)) => return 0,
        Some(Num::Fin { sign, exp, sig }) => {
            let (m, ix) = round_to_integer(sign, exp, sig, mode);
            (sign, m, ix)
        }
    };
    let limit = 1u128 << (bits - 1);
    match mag {
        Some(m) if (sign && m <= limit) || (!sign && m < limit) => {
            if inexact {
                st.raise(flags::INEXACT);
            }
            let m = m as i128;
            (if sign { -m } else { m }) as i64
        }
        _ => {
            st.raise(flags::INVALID);
            indefinite
        }
    }
}

fn ieee_to_int(f: &Ieee, a: u64, bits: u32, truncate: bool, st: &mut FloatStatus) -> i64 {
    let n = if f.is_nan(a) {
        None
    } else {
        Some(f.operand_quiet(a, st))
    };
    num_to_int(n, bits, truncate, st)
}

/// cvtss2si / cvttss2si (32-bit destination). `truncate` selects round-toward-zero.
pub fn f32_to_i32(a: u32, truncate: bool, st: &mut FloatStatus) -> i32 {
    ieee_to_int(&F32, a as u64, 32, truncate, st) as i32
}

/// cvtss2si / cvttss2si with a 64-bit destination.
pub fn f32_to_i64(a: u32, truncate: bool, st: &mut FloatStatus) -> i64 {
    ieee_to_int(&F32, a as u64, 64, truncate, st)
}

/// cvtsd2si / cvttsd2si (32-bit destination).
pub fn f64_to_i32(a: u64, truncate: bool, st: &mut FloatStatus) -> i32 {
    ieee_to_int(&F64, a, 32, truncate, st) as i32
}

/// cvtsd2si / cvttsd2si with a 64-bit destination.
pub fn f64_to_i64(a: u64, truncate: bool, st: &mut FloatStatus) -> i64 {
    ieee_to_int(&F64, a, 64, truncate, st)
}

fn f80_to_int(a: F80, bits: u32, truncate: bool, st: &mut FloatStatus) -> i64 {
    // Like the float stores, fist(t)p does not report a denormal source (measured on the host).
    let n = if f80_is_invalid_encoding(a) || f80_is_nan(a) {
        None
    } else {
        Some(f80::decode(a))
    };
    num_to_int(n, bits, truncate, st)
}

/// fistp m16 / fisttp m16 (`truncate`).
pub fn f80_to_i16(a: F80, truncate: bool, st: &mut FloatStatus) -> i16 {
    f80_to_int(a, 16, truncate, st) as i16
}

/// fistp m32 / fisttp m32 (`truncate`).
pub fn f80_to_i32(a: F80, truncate: bool, st: &mut FloatStatus) -> i32 {
    f80_to_int(a, 32, truncate, st) as i32
}

/// fistp m64 / fisttp m64 (`truncate`).
pub fn f80_to_i64(a: F80, truncate: bool, st: &mut FloatStatus) -> i64 {
    f80_to_int(a, 64, truncate, st)
}

/// True for any f32 NaN.
pub fn f32_is_nan(a: u32) -> bool {
    F32.is_nan(a as u64)
}
/// True for an f32 signaling NaN.
pub fn f32_is_snan(a: u32) -> bool {
    F32.is_snan(a as u64)
}
/// True for an f32 denormal.
pub fn f32_is_denormal(a: u32) -> bool {
    F32.is_denormal(a as u64)
}
/// True for any f64 NaN.
pub fn f64_is_nan(a: u64) -> bool {
    F64.is_nan(a)
}
/// True for an f64 signaling NaN.
pub fn f64_is_snan(a: u64) -> bool {
    F64.is_snan(a)
}
/// True for an f64 denormal.
pub fn f64_is_denormal(a: u64) -> bool {
    F64.is_denormal(a)
}
