//! Rounding to an integral value in floating-point format (roundss/roundsd, frndint).

use crate::f80::{self, f80_is_invalid_encoding, f80_is_nan, F80};
use crate::round::{round_to_integer, Rounded, EXTENDED};
use crate::status::{flags, FloatStatus, RoundingMode};
use crate::unpacked::{Exact, Ieee, Num, F32, F64};

/// `None` for values that are already integral (and zeros/infinities): the caller then
/// returns the input encoding untouched, which is what the hardware does.
fn round_num_to_int(n: Num, mode: RoundingMode, suppress_inexact: bool, st: &mut FloatStatus) -> Option<Exact> {
    match n {
        Num::Fin { sign, exp, sig } if exp < 0 => {
            let (m, inexact) = round_to_integer(sign, exp, sig, mode);
            if inexact && !suppress_inexact {
                st.raise(flags::INEXACT);
            }
            Some(match m {
                Some(0) | None => Exact::Zero(sign),
                Some(m) => Exact::Fin {
                    sign,
                    exp: 0,
                    sig: m,
                    sticky: false,
                },
            })
        }
        _ => None,
    }
}

fn ieee_round_to_int(f: &Ieee, a: u64, mode: RoundingMode, suppress: bool, st: &mut FloatStatus) -> u64 {
    if f.is_nan(a) {
        return f.propagate(a, a, st);
    }
    let n = f.operand_quiet(a, st);
    match round_num_to_int(n, mode, suppress, st) {
        Some(e) => f.finish(e, st),
        // Zeros, infinities and values without a fraction come back unchanged (DAZ zeros keep
        // their sign).
        None => match n {
            Num::Zero(s) => f.pack(s, Rounded::Zero),
            _ => a,
        },
    }
}

/// roundss: rounds to an integral value in `mode`; `suppress_inexact` is imm8 bit 3.
pub fn f32_round_to_int(a: u32, mode: RoundingMode, suppress_inexact: bool, st: &mut FloatStatus) -> u32 {
    ieee_round_to_int(&F32, a as u64, mode, suppress_inexact, st) as u32
}

/// roundsd: rounds to an integral value in `mode`; `suppress_inexact` is imm8 bit 3.
pub fn f64_round_to_int(a: u64, mode: RoundingMode, suppress_inexact: bool, st: &mut FloatStatus) -> u64 {
    ieee_round_to_int(&F64, a, mode, suppress_inexact, st)
}

/// frndint: rounds to an integral value in `mode` (not subject to precision control).
pub fn f80_round_to_int(a: F80, mode: RoundingMode, suppress_inexact: bool, st: &mut FloatStatus) -> F80 {
    if f80_is_invalid_encoding(a) {
        st.raise(flags::INVALID);
        return F80::DEFAULT_NAN;
    }
    if f80_is_nan(a) {
        return f80::propagate(a, a, st);
    }
    let n = f80::operand(a, st);
    match round_num_to_int(n, mode, suppress_inexact, st) {
        Some(e) => f80::finish(e, EXTENDED, st),
        None => a,
    }
}
