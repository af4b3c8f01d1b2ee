//! The single rounding routine shared by every format and precision.
//!
//! Everything funnels through [`round_pack`]: operations compute an exact (or exact-plus-sticky)
//! result, and only here does it meet a destination format. x87 precision control is then
//! just another [`Format`] with a short significand and the extended exponent range.

use crate::status::{flags, FloatStatus, RoundingMode};

/// Whether x86 decides "tiny" after rounding (to the destination precision with unbounded
/// exponent) rather than on the exact result. Measured on the host by the differential
/// tests; see the crate documentation.
pub(crate) const TININESS_AFTER_ROUNDING: bool = true;

/// Destination significand width (including the integer bit) and exponent range.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Format {
    pub p: u32,
    pub emin: i32,
    pub emax: i32,
}

pub(crate) const SINGLE: Format = Format {
    p: 24,
    emin: -126,
    emax: 127,
};
pub(crate) const DOUBLE: Format = Format {
    p: 53,
    emin: -1022,
    emax: 1023,
};
pub(crate) const EXTENDED: Format = Format {
    p: 64,
    emin: -16382,
    emax: 16383,
};

/// A rounded value ready for packing. `biased` is 0 for denormals, whose `sig` then lacks the
/// integer bit; `sig` always has at most `p` bits.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rounded {
    Zero,
    Finite { biased: u32, sig: u64 },
    Inf,
}

/// Splits `sig` at `shift` into kept bits, the first dropped bit, and "anything below it".
fn split(sig: u128, shift: i64, sticky: bool) -> (u128, bool, bool) {
    if shift <= 0 {
        (sig, false, sticky)
    } else if shift > 128 {
        (0, false, sig != 0 || sticky)
    } else if shift == 128 {
        (0, sig >> 127 != 0, (sig << 1) != 0 || sticky)
    } else {
        let kept = sig >> shift;
        let rbit = (sig >> (shift - 1)) & 1 != 0;
        let rest = sig & ((1u128 << (shift - 1)) - 1) != 0 || sticky;
        (kept, rbit, rest)
    }
}

/// Whether the kept magnitude must be incremented, given what was dropped.
pub(crate) fn round_up(mode: RoundingMode, sign: bool, odd: bool, rbit: bool, rest: bool) -> bool {
    match mode {
        RoundingMode::NearestEven => rbit && (rest || odd),
        RoundingMode::TowardZero => false,
        RoundingMode::Up => !sign && (rbit || rest),
        RoundingMode::Down => sign && (rbit || rest),
    }
}

/// Rounds the magnitude `sig * 2^exp` (plus an infinitesimal when `sticky`) to an integer.
/// Returns `None` when the result would not fit in 64 bits, and whether it was inexact.
pub(crate) fn round_to_integer(sign: bool, exp: i32, sig: u64, mode: RoundingMode) -> (Option<u128>, bool) {
    if sig == 0 {
        return (Some(0), false);
    }
    if exp >= 0 {
        let bits = 64 - sig.leading_zeros() as i64 + exp as i64;
        if bits > 64 {
            return (None, false);
        }
        return (Some((sig as u128) << exp), false);
    }
    let (kept, rbit, rest) = split(sig as u128, -(exp as i64), false);
    let inc = round_up(mode, sign, kept & 1 != 0, rbit, rest);
    (Some(kept + inc as u128), rbit || rest)
}

/// Rounds `(-1)^sign * sig * 2^exp` (with `sticky` standing for nonzero bits below `sig`) to
/// `fmt`, raising INEXACT/UNDERFLOW/OVERFLOW and applying flush-to-zero as x86 does with the
/// corresponding exceptions masked. `allow_ftz` is false for x87 results, since FTZ is an
/// SSE-only control even when the caller's status has it set.
pub(crate) fn round_pack(
    sign: bool,
    exp: i32,
    sig: u128,
    sticky: bool,
    fmt: Format,
    st: &mut FloatStatus,
    allow_ftz: bool,
) -> Rounded {
    if sig == 0 {
        // Callers never produce a bare sticky bit; treat it as an exact zero.
        return Rounded::Zero;
    }
    let lz = sig.leading_zeros();
    let sig = sig << lz;
    let exp = exp as i64 - lz as i64;
    let p = fmt.p as i64;
    // Exponent of the leading bit.
    let e = exp + 127;
    let emin = fmt.emin as i64;
    let mode = st.rounding;

    let tiny = if e >= emin {
        false
    } else if TININESS_AFTER_ROUNDING && e == emin - 1 {
        // Tiny unless rounding to p bits with unbounded exponent carries up to 2^emin.
        let (k, r, s) = split(sig, 128 - p, sticky);
        let k = k + round_up(mode, sign, k & 1 != 0, r, s) as u128;
        k >> p == 0
    } else {
        true
    };

    if tiny && allow_ftz && st.ftz {
        st.raise(flags::UNDERFLOW | flags::INEXACT);
        return Rounded::Zero;
    }

    let mut lsb = e.max(emin) - (p - 1);
    let (kept, rbit, rest) = split(sig, lsb - exp, sticky);
    let inexact = rbit || rest;
    let mut kept = kept + round_up(mode, sign, kept & 1 != 0, rbit, rest) as u128;
    if kept >> p != 0 {
        kept >>= 1;
        lsb += 1;
    }
    if inexact {
        st.raise(flags::INEXACT);
        if tiny {
            st.raise(flags::UNDERFLOW);
        }
    }
    if kept == 0 {
        return Rounded::Zero;
    }
    let top = lsb + (127 - kept.leading_zeros() as i64);
    if top > fmt.emax as i64 {
        st.raise(flags::OVERFLOW | flags::INEXACT);
        let to_inf = match mode {
            RoundingMode::NearestEven => true,
            RoundingMode::TowardZero => false,
            RoundingMode::Up => !sign,
            RoundingMode::Down => sign,
        };
        return if to_inf { Rounded::Inf } else { max_finite(fmt) };
    }
    let biased = if kept >> (p - 1) != 0 {
        (top + fmt.emax as i64) as u32
    } else {
        0
    };
    Rounded::Finite {
        biased,
        sig: kept as u64,
    }
}

/// Largest finite magnitude of `fmt`, the overflow result of the directed roundings.
pub(crate) fn max_finite(fmt: Format) -> Rounded {
    Rounded::Finite {
        biased: (2 * fmt.emax) as u32,
        sig: if fmt.p == 64 { u64::MAX } else { (1u64 << fmt.p) - 1 },
    }
}
