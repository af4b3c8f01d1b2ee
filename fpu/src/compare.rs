//! Ordered/unordered comparison (ucomis*/comis*, fcom/fucom).

use crate::f80::{self, f80_is_invalid_encoding, f80_is_nan, f80_is_snan, F80};
use crate::status::{flags, FloatStatus};
use crate::unpacked::{Ieee, Num, F32, F64};
use core::cmp::Ordering;

/// Outcome of a comparison; `Unordered` when either operand is a NaN.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Relation {
    /// a < b
    Less,
    /// a == b (including +0 == -0)
    Equal,
    /// a > b
    Greater,
    /// At least one NaN (or, for f80, an invalid encoding).
    Unordered,
}

fn magnitude(exp: i32, sig: u64) -> (i64, u64) {
    let lz = sig.leading_zeros();
    (exp as i64 - lz as i64, sig << lz)
}

fn compare_nums(a: Num, b: Num) -> Relation {
    // Map each value to (class rank, magnitude) ordered along the real line.
    let key = |n: Num| -> (i8, i64, u64) {
        match n {
            Num::Zero(_) => (0, 0, 0),
            Num::Inf(s) => (if s { -2 } else { 2 }, 0, 0),
            Num::Fin { sign, exp, sig } => {
                let (e, m) = magnitude(exp, sig);
                if sign {
                    (-1, -e, !m)
                } else {
                    (1, e, m)
                }
            }
        }
    };
    match key(a).cmp(&key(b)) {
        Ordering::Less => Relation::Less,
        Ordering::Equal => Relation::Equal,
        Ordering::Greater => Relation::Greater,
    }
}

fn ieee_compare(f: &Ieee, a: u64, b: u64, signaling: bool, st: &mut FloatStatus) -> Relation {
    if f.is_nan(a) || f.is_nan(b) {
        if signaling || f.is_snan(a) || f.is_snan(b) {
            st.raise(flags::INVALID);
        }
        return Relation::Unordered;
    }
    let na = f.operand(a, st);
    let nb = f.operand(b, st);
    compare_nums(na, nb)
}

/// Compares two f32 values like comiss (`signaling`: every NaN is invalid) or ucomiss
/// (only SNaNs are invalid). Denormal operands raise DENORMAL unless DAZ is set.
pub fn f32_compare(a: u32, b: u32, signaling: bool, st: &mut FloatStatus) -> Relation {
    ieee_compare(&F32, a as u64, b as u64, signaling, st)
}

/// f64 counterpart of [`f32_compare`] (comisd/ucomisd).
pub fn f64_compare(a: u64, b: u64, signaling: bool, st: &mut FloatStatus) -> Relation {
    ieee_compare(&F64, a, b, signaling, st)
}

/// Compares two f80 values like fcom (`signaling`) or fucom. Invalid encodings are always
/// invalid and unordered.
pub fn f80_compare(a: F80, b: F80, signaling: bool, st: &mut FloatStatus) -> Relation {
    if f80_is_invalid_encoding(a) || f80_is_invalid_encoding(b) {
        st.raise(flags::INVALID);
        return Relation::Unordered;
    }
    if f80_is_nan(a) || f80_is_nan(b) {
        if signaling || f80_is_snan(a) || f80_is_snan(b) {
            st.raise(flags::INVALID);
        }
        return Relation::Unordered;
    }
    let na = f80::operand(a, st);
    let nb = f80::operand(b, st);
    compare_nums(na, nb)
}
