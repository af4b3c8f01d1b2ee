//! Software floating point with x86 semantics, the rqemu counterpart of QEMU's
//! `fpu/softfloat`.
//!
//! # Why not an existing crate
//!
//! A guest-visible x86 FPU is more than IEEE 754 arithmetic. The SSE unit picks the first
//! NaN operand when propagating, while the x87 prefers a quiet NaN over a signaling one and
//! then the larger significand; both report a denormal-operand exception that IEEE does not
//! have; SSE can treat denormal inputs as zero (DAZ) and flush tiny results (FTZ); the x87
//! rounds to 24, 53 or 64 significand bits under precision control while keeping its 15-bit
//! exponent; and underflow is reported according to x86's own tininess rule. General-purpose
//! soft-float crates (rustc_apfloat, for example) implement plain IEEE and lack these knobs,
//! and some lack square root altogether. Host floats are not an option either: results
//! must be identical on every host, including wasm32, and the exception flags are needed.
//! So this crate computes everything with integer arithmetic only.
//!
//! # Design
//!
//! Operands are decoded into one unpacked form (sign, exponent, integer significand),
//! operations compute an exact result plus a sticky bit, and a single round-and-pack routine
//! parameterised by significand width and exponent range produces the destination format.
//! x87 precision control is simply that routine with a 24- or 53-bit significand and the
//! extended exponent range.
//!
//! # Use
//!
//! Values travel as raw bit patterns (`u32`, `u64`, [`F80`]). Build a [`FloatStatus`] from
//! the guest control register, run the operation, then OR the accumulated flags back:
//!
//! ```
//! use rqemu_fpu::{f32_add, FloatStatus};
//! let mut mxcsr: u32 = 0x1f80; // reset value: all exceptions masked
//! let mut st = FloatStatus::from_mxcsr(mxcsr);
//! let sum = f32_add(0x3f80_0000, 0x3380_0000, &mut st); // 1.0 + 2^-24: a tie
//! mxcsr |= u32::from(st.flags);
//! assert_eq!(sum, 0x3f80_0000);
//! assert_eq!(mxcsr & 0x3f, 0x20); // precision exception
//! ```
//!
//! # Flags and tininess
//!
//! [`FloatStatus::flags`] accumulates exceptions as x86 reports them with every exception
//! masked; reacting to unmasked exceptions is the caller's business. Findings from the
//! differential tests against the host CPU, which the code follows:
//!
//! * Tininess is detected **after rounding**, for SSE and x87 alike: a result is tiny when,
//!   rounded to the destination precision as if the exponent were unbounded, it is below the
//!   smallest normal. With tininess-before-rounding the tests report mismatches (e.g.
//!   `mulss 0x807fffff, 0xbf800001` rounding up to the smallest normal sets no UE).
//! * With underflow masked, UNDERFLOW is raised only if the tiny result is also inexact.
//!   FTZ flushes exactly the tiny results (by the same after-rounding rule) and then reports
//!   UNDERFLOW | INEXACT.
//! * Invalid-operation and divide-by-zero outrank the denormal-operand flag: `sqrt(-denormal)`
//!   and `denormal / 0` do not report DENORMAL. A NaN operand also suppresses it.
//! * Float-to-integer conversions and roundss/roundsd never report DENORMAL (DAZ still
//!   applies to their input); x87 stores (`fst m32/m64`, `fist(t)p`) do not report a
//!   denormal source either, while x87 loads, arithmetic and compares do.
//! * x87 NaN selection: QNaN over SNaN, then the larger significand, and for equal
//!   significands the positive NaN. SSE returns the first NaN operand.
//! * Integer conversions that overflow return the integer indefinite with INVALID only (no
//!   INEXACT).
//! * The reserved precision-control encoding 1 behaves like 64-bit precision.
//!
//! # Coverage
//!
//! Implemented and checked bit-for-bit (results and flags) against the host CPU by
//! `tests/host_sse.rs` and `tests/host_x87.rs` under all rounding modes with DAZ/FTZ (SSE)
//! or all precision controls (x87): f32/f64 add, sub, mul, div, sqrt, ucomis/comis,
//! cvtss2sd/cvtsd2ss, cvtsi2ss/sd (32/64-bit), cvt(t)ss2si/cvt(t)sd2si (32/64-bit),
//! roundss/roundsd; f80 fadd, fsub, fmul, fdiv, fsqrt, fcom/fucom, fld m32/m64, fst m32/m64,
//! fild m64, fistp and fisttp m16/m32/m64, frndint, and fscale by integer scales (including
//! unnormals, pseudo-NaNs/infinities and pseudo-denormals as operands).
//!
//! Not implemented: fused multiply-add, the transcendental x87 instructions (fsin, fcos,
//! fptan, fpatan, f2xm1, fyl2x, fyl2xp1), fprem/fprem1, fxtract, BCD load/store,
//! unsigned-integer conversions (AVX-512), and the x87 unmasked overflow/underflow
//! behaviour that delivers an exponent-wrapped result. `f80_round_to_int`'s
//! `suppress_inexact` has no x87 counterpart and is only unit-checked. Deriving the fscale
//! scale from ST(1) (truncation, non-integral or huge values) is left to the x87 layer.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod arith;
mod compare;
mod convert;
mod f80;
mod round;
mod round_int;
mod sqrt;
mod status;
mod unpacked;

pub use arith::{f32_add, f32_div, f32_mul, f32_sqrt, f32_sub, f64_add, f64_div, f64_mul, f64_sqrt, f64_sub};
pub use compare::{f32_compare, f64_compare, f80_compare, Relation};
pub use convert::{
    f32_is_denormal, f32_is_nan, f32_is_snan, f32_to_f64, f32_to_f80, f32_to_i32, f32_to_i64, f64_is_denormal,
    f64_is_nan, f64_is_snan, f64_to_f32, f64_to_f80, f64_to_i32, f64_to_i64, f80_to_f32, f80_to_f64, f80_to_i16,
    f80_to_i32, f80_to_i64, i32_to_f32, i32_to_f64, i64_to_f32, i64_to_f64, i64_to_f80,
};
pub use f80::{
    f80_add, f80_div, f80_is_denormal, f80_is_invalid_encoding, f80_is_nan, f80_is_snan, f80_mul, f80_scalbn, f80_sqrt,
    f80_sub, F80,
};
pub use round_int::{f32_round_to_int, f64_round_to_int, f80_round_to_int};
pub use status::{flags, FloatStatus, Precision, RoundingMode};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_plus_one() {
        let mut st = FloatStatus::default();
        assert_eq!(f32_add(0x3f80_0000, 0x3f80_0000, &mut st), 0x4000_0000);
        assert_eq!(
            f64_add(0x3ff0_0000_0000_0000, 0x3ff0_0000_0000_0000, &mut st),
            0x4000_0000_0000_0000
        );
        assert_eq!(st.flags, 0);
    }

    #[test]
    fn point_one_plus_point_two() {
        let mut st = FloatStatus::default();
        // 0.1 + 0.2 = 0.30000000000000004
        assert_eq!(
            f64_add(0x3fb9_9999_9999_999a, 0x3fc9_9999_9999_999a, &mut st),
            0x3fd3_3333_3333_3334
        );
        assert_eq!(st.flags, flags::INEXACT);
    }

    #[test]
    fn default_nans() {
        let mut st = FloatStatus::default();
        assert_eq!(f32_sub(0x7f80_0000, 0x7f80_0000, &mut st), 0xffc0_0000);
        assert_eq!(f64_div(0, 0, &mut st), 0xfff8_0000_0000_0000);
        assert_eq!(st.flags, flags::INVALID);
        let mut st = FloatStatus::default();
        let m1 = F80 {
            mant: 1 << 63,
            se: 0xbfff,
        };
        assert_eq!(f80_sqrt(m1, &mut st), F80::DEFAULT_NAN);
        assert_eq!(st.flags, flags::INVALID);
    }

    #[test]
    fn sse_nan_first_operand() {
        let mut st = FloatStatus::default();
        assert_eq!(f32_add(0x7fc0_0001, 0x7f80_0002, &mut st), 0x7fc0_0001);
        assert_eq!(st.flags, flags::INVALID);
    }

    #[test]
    fn sqrt_two_and_x87_single_precision() {
        let mut st = FloatStatus::default();
        assert_eq!(f64_sqrt(0x4000_0000_0000_0000, &mut st), 0x3ff6_a09e_667f_3bcd);
        let two = F80 {
            mant: 1 << 63,
            se: 0x4000,
        };
        let mut st = FloatStatus::from_fcw(0x007f); // PC = single, nearest
        let r = f80_sqrt(two, &mut st);
        assert_eq!(
            r,
            F80 {
                mant: 0xb504_f300_0000_0000,
                se: 0x3fff
            }
        );
        assert_eq!(st.flags, flags::INEXACT);
    }

    #[test]
    fn conversions() {
        let mut st = FloatStatus::default();
        assert_eq!(f64_to_i32(0x41e0_0000_0000_0000, false, &mut st), i32::MIN); // 2^31
        assert_eq!(st.flags, flags::INVALID);
        let mut st = FloatStatus::default();
        assert_eq!(f32_to_i32(0xbfc0_0000, true, &mut st), -1); // -1.5
        assert_eq!(f32_to_i32(0xbfc0_0000, false, &mut st), -2);
        assert_eq!(
            i64_to_f80(-3, &mut st),
            F80 {
                mant: 0xc000_0000_0000_0000,
                se: 0xc000
            }
        );
        assert_eq!(
            f32_to_f80(0x3f80_0000, &mut st),
            F80 {
                mant: 1 << 63,
                se: 0x3fff
            }
        );
    }

    #[test]
    fn ftz_and_overflow() {
        let mut st = FloatStatus {
            ftz: true,
            ..FloatStatus::default()
        };
        // smallest normal / 2 flushes
        assert_eq!(f32_mul(0x0080_0000, 0x3f00_0000, &mut st), 0);
        assert_eq!(st.flags, flags::UNDERFLOW | flags::INEXACT);
        let mut st = FloatStatus {
            rounding: RoundingMode::TowardZero,
            ..FloatStatus::default()
        };
        assert_eq!(f32_mul(0x7f7f_ffff, 0x4000_0000, &mut st), 0x7f7f_ffff);
        assert_eq!(st.flags, flags::OVERFLOW | flags::INEXACT);
    }
}
