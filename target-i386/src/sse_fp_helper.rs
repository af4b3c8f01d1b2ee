//! Helper bodies of the SSE/SSE2/SSE3/SSE4.1 floating-point instructions (QEMU's `ops_sse.h` and the SSE part
//! of `fpu_helper.c`), on the soft-float crate `rqemu-fpu` only, so every host (wasm32 included) computes the
//! same bits.
//!
//! One helper, [`helper_sse_fp`], takes an operation code ([`op`]), the CPU-state offsets of its destination
//! and source (an XMM register, `xmm_t0` holding a memory or general-register source the IR loaded first, or
//! an MMX register's slot in [`crate::cpu::FpuState::regs`]) and an immediate word ([`imm`]).
//!
//! # MXCSR and #XM
//! Every element is computed with the exceptions as if masked, and their flags are OR-ed together. If a flag
//! whose mask bit is clear results, nothing is written (no element, no MMX register, no register result; only
//! the x87 tag/TOP change of an MMX operand happens) and the instruction faults: #XM (19) with
//! CR4.OSXMMEXCPT, else #UD. What MXCSR then holds follows the host (measured through SIGFPE by
//! `tests/sse_fp.rs`): with an unmasked pre-computation exception (invalid, denormal, divide-by-zero) in any
//! element, only the pre-computation flags of all elements; otherwise all flags, where an element whose
//! overflow or underflow is unmasked reports them from its result at an unbounded exponent range (underflow
//! even when exact, precision only for an inexact significand); dpps/dppd stop after the stage (products,
//! sums) that raised an unmasked exception. See `docs/target-i386.md`, "SSE floating point".

use core::mem::offset_of;

use rqemu_fpu::{self as fpu, flags, FloatStatus, Relation, RoundingMode};

use crate::cpu::X86CpuState;
use crate::sse_rcp_table::{RCP_TABLE, RSQRT_EVEN_TABLE, RSQRT_ODD_TABLE};

/// Operation codes: the low byte is the kind, bits 8..9 the [`form`].
pub mod op {
    /// addps/addss/addpd/addsd.
    pub const ADD: u32 = 0;
    /// sub*.
    pub const SUB: u32 = 1;
    /// mul*.
    pub const MUL: u32 = 2;
    /// div*.
    pub const DIV: u32 = 3;
    /// sqrt*.
    pub const SQRT: u32 = 4;
    /// min*.
    pub const MIN: u32 = 5;
    /// max*.
    pub const MAX: u32 = 6;
    /// rcpps/rcpss (single only).
    pub const RCP: u32 = 7;
    /// rsqrtps/rsqrtss (single only).
    pub const RSQRT: u32 = 8;
    /// cmpps/cmpss/cmppd/cmpsd; the predicate is imm8 bits 0..2.
    pub const CMP: u32 = 9;
    /// comiss/comisd: returns ZF/PF/CF (EFLAGS bits), scalar forms only.
    pub const COMI: u32 = 10;
    /// ucomiss/ucomisd.
    pub const UCOMI: u32 = 11;
    /// addsubps/addsubpd.
    pub const ADDSUB: u32 = 12;
    /// haddps/haddpd.
    pub const HADD: u32 = 13;
    /// hsubps/hsubpd.
    pub const HSUB: u32 = 14;
    /// roundps/ss/pd/sd: imm8 bits 0..1 the mode, bit 2 MXCSR.RC, bit 3 no precision exception.
    pub const ROUND: u32 = 15;
    /// dpps/dppd: imm8 bits 4..7 (dpps) or 4..5 (dppd) select products, bits 0..3/0..1 the result lanes.
    pub const DP: u32 = 16;
    /// Single to double: cvtss2sd (scalar form) and cvtps2pd (packed form).
    pub const CVT_S2D: u32 = 17;
    /// Double to single: cvtsd2ss and cvtpd2ps (upper half zeroed).
    pub const CVT_D2S: u32 = 18;
    /// cvtdq2ps (packed single form) and cvtdq2pd (packed double form, low two integers).
    pub const CVT_DQ2F: u32 = 19;
    /// cvt(t)ps2dq and cvt(t)pd2dq (upper half zeroed); [`super::imm::TRUNCATE`] for the t forms.
    pub const CVT_F2DQ: u32 = 20;
    /// cvtsi2ss/cvtsi2sd: the integer is in the low 32 bits of the source, or 64 with [`super::imm::WIDE`].
    pub const CVT_SI2F: u32 = 21;
    /// cvt(t)ss2si/cvt(t)sd2si: returns the integer (32 bits zero-extended, or 64 with `WIDE`).
    pub const CVT_F2SI: u32 = 22;
    /// cvtpi2ps/cvtpi2pd: two integers from an MMX register or m64.
    pub const CVT_PI2F: u32 = 23;
    /// cvt(t)ps2pi/cvt(t)pd2pi: two integers into an MMX register.
    pub const CVT_F2PI: u32 = 24;
    /// movddup (double form), movshdup (imm8 1) and movsldup (imm8 0) (single form).
    pub const DUP: u32 = 25;
}

/// Operand forms (bits 8..9 of the operation code).
pub mod form {
    /// Packed single.
    pub const PS: u32 = 0;
    /// Scalar single.
    pub const SS: u32 = 1;
    /// Packed double.
    pub const PD: u32 = 2;
    /// Scalar double.
    pub const SD: u32 = 3;
}

/// Bits of the immediate word above imm8.
pub mod imm {
    /// 64-bit integer operand (REX.W forms of cvtsi2ss/sd and cvt(t)ss2si/sd2si).
    pub const WIDE: u32 = 1 << 8;
    /// Truncating conversion (the cvtt forms).
    pub const TRUNCATE: u32 = 1 << 9;
}

/// The #XM vector.
pub const XM: u32 = 19;
/// CR4.OSXMMEXCPT: unmasked SIMD floating-point exceptions raise #XM rather than #UD.
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;

const PRE: u8 = flags::INVALID | flags::DENORMAL | flags::DIV_BY_ZERO;

/// What an operation produced before the MXCSR check: the new destination value (if any) and the helper's
/// return value.
struct Out {
    dst: Option<u128>,
    ret: u64,
}

fn lane32(v: u128, i: usize) -> u32 {
    (v >> (32 * i)) as u32
}

fn lane64(v: u128, i: usize) -> u64 {
    (v >> (64 * i)) as u64
}

fn with32(v: u128, i: usize, x: u32) -> u128 {
    (v & !(0xffff_ffffu128 << (32 * i))) | (u128::from(x) << (32 * i))
}

fn with64(v: u128, i: usize, x: u64) -> u128 {
    (v & !(u128::from(u64::MAX) << (64 * i))) | (u128::from(x) << (64 * i))
}

fn pack32(l: [u32; 4]) -> u128 {
    l.iter()
        .enumerate()
        .fold(0, |acc, (i, &x)| acc | u128::from(x) << (32 * i))
}

/// Per-element flags, tracked so an unmasked underflow on an exact tiny result can be added.
struct Lanes {
    all: u8,
    /// The unmasked ones of overflow and underflow.
    unmasked_post: u8,
    /// Every unmasked exception.
    unmasked: u8,
    /// Flags of completed stages of a multi-stage operation (dpps/dppd), reported even when a later stage
    /// has an unmasked pre-computation exception.
    done: u8,
}

/// Runs one element's operation with fresh flags, then records them. `unbounded` recomputes the result at an
/// unbounded exponent range; it is used only when overflow or underflow is unmasked, because then the flags
/// follow that result (measured on the host): overflow or underflow is reported for a result out of range
/// there (underflow even when exact), and precision only when rounding the significand was inexact.
fn run<T>(
    l: &mut Lanes,
    st: &FloatStatus,
    f: impl FnOnce(&mut FloatStatus) -> T,
    unbounded: impl Fn() -> Option<Unbounded>,
) -> T {
    let mut s = FloatStatus { flags: 0, ..*st };
    let r = f(&mut s);
    if l.unmasked_post != 0 && s.flags & (flags::INVALID | flags::DIV_BY_ZERO) == 0 {
        if let Some(u) = unbounded() {
            let pe = if u.inexact { flags::INEXACT } else { 0 };
            let de = s.flags & flags::DENORMAL;
            if u.huge && l.unmasked_post & flags::OVERFLOW != 0 {
                s.flags = de | flags::OVERFLOW | pe;
            } else if u.tiny && l.unmasked_post & flags::UNDERFLOW != 0 {
                s.flags = de | flags::UNDERFLOW | pe;
            }
        }
    }
    l.all |= s.flags;
    r
}

/// A result rounded to the destination precision with an unbounded exponent range, classified.
struct Unbounded {
    huge: bool,
    tiny: bool,
    inexact: bool,
}

/// The arithmetic operations whose result can overflow or underflow.
#[derive(Clone, Copy)]
enum Ar {
    Add,
    Sub,
    Mul,
    Div,
    Sqrt,
    /// f64 -> f32 (the operand is `x`).
    Narrow,
}

/// Recomputes `o` on the f32 (`single`) or f64 operands `x`, `y` in the x87 format with the destination's
/// significand width (precision control), whose 15-bit exponent cannot overflow or underflow here.
fn unbounded(o: Ar, x: u64, y: u64, single: bool, st: &FloatStatus) -> Option<Unbounded> {
    let mut s = FloatStatus {
        flags: 0,
        daz: false,
        ftz: false,
        precision: if single {
            fpu::Precision::Single
        } else {
            fpu::Precision::Double
        },
        ..*st
    };
    let narrow = matches!(o, Ar::Narrow);
    let wide_src = !single || narrow;
    let conv = |v: u64, s: &mut FloatStatus| {
        if wide_src {
            let v = if st.daz && fpu::f64_is_denormal(v) {
                v & (1 << 63)
            } else {
                v
            };
            fpu::f64_to_f80(v, s)
        } else {
            let v = v as u32;
            let v = if st.daz && fpu::f32_is_denormal(v) {
                v & 0x8000_0000
            } else {
                v
            };
            fpu::f32_to_f80(v, s)
        }
    };
    let (a, b) = (conv(x, &mut s), conv(y, &mut s));
    if fpu::f80_is_nan(a) || fpu::f80_is_nan(b) {
        return None;
    }
    s.flags = 0;
    let zero = fpu::F80 { mant: 0, se: 0 };
    let r = match o {
        Ar::Add => fpu::f80_add(a, b, &mut s),
        Ar::Sub => fpu::f80_sub(a, b, &mut s),
        Ar::Mul => fpu::f80_mul(a, b, &mut s),
        Ar::Div => fpu::f80_div(a, b, &mut s),
        Ar::Sqrt => fpu::f80_sqrt(b, &mut s),
        Ar::Narrow => fpu::f80_add(a, zero, &mut s),
    };
    if fpu::f80_is_nan(r) || r.mant == 0 {
        return None;
    }
    let e = i32::from(r.se & 0x7fff) - 16383;
    let (emin, emax) = if single { (-126, 127) } else { (-1022, 1023) };
    Some(Unbounded {
        huge: e > emax && e != 16384,
        tiny: e < emin,
        inexact: s.flags & flags::INEXACT != 0,
    })
}

/// [`run`] for an arithmetic operation on f32 lanes.
fn ar32(l: &mut Lanes, st: &FloatStatus, o: Ar, x: u32, y: u32) -> u32 {
    run(
        l,
        st,
        |s| match o {
            Ar::Add => fpu::f32_add(x, y, s),
            Ar::Sub => fpu::f32_sub(x, y, s),
            Ar::Mul => fpu::f32_mul(x, y, s),
            Ar::Div => fpu::f32_div(x, y, s),
            Ar::Sqrt => fpu::f32_sqrt(y, s),
            // Narrowing has an f64 source: ar64 handles it, this arm only completes the match.
            Ar::Narrow => x,
        },
        || unbounded(o, x.into(), y.into(), true, st),
    )
}

/// [`run`] for an arithmetic operation on f64 lanes (and f64 -> f32 narrowing, whose result is in the low
/// 32 bits).
fn ar64(l: &mut Lanes, st: &FloatStatus, o: Ar, x: u64, y: u64) -> u64 {
    run(
        l,
        st,
        |s| match o {
            Ar::Add => fpu::f64_add(x, y, s),
            Ar::Sub => fpu::f64_sub(x, y, s),
            Ar::Mul => fpu::f64_mul(x, y, s),
            Ar::Div => fpu::f64_div(x, y, s),
            Ar::Sqrt => fpu::f64_sqrt(y, s),
            Ar::Narrow => fpu::f64_to_f32(x, s).into(),
        },
        || unbounded(o, x, y, matches!(o, Ar::Narrow), st),
    )
}

fn none() -> Option<Unbounded> {
    None
}

/// x86 min/max: the first operand when it compares less (min) or greater (max), otherwise the second (NaNs,
/// equal values and zeros of either sign). Any NaN is invalid. With DAZ a denormal result reads as zero.
fn minmax32(a: u32, b: u32, max: bool, st: &mut FloatStatus) -> u32 {
    let rel = fpu::f32_compare(a, b, true, st);
    let pick = if (rel == Relation::Less && !max) || (rel == Relation::Greater && max) {
        a
    } else {
        b
    };
    if st.daz && fpu::f32_is_denormal(pick) {
        pick & 0x8000_0000
    } else {
        pick
    }
}

fn minmax64(a: u64, b: u64, max: bool, st: &mut FloatStatus) -> u64 {
    let rel = fpu::f64_compare(a, b, true, st);
    let pick = if (rel == Relation::Less && !max) || (rel == Relation::Greater && max) {
        a
    } else {
        b
    };
    if st.daz && fpu::f64_is_denormal(pick) {
        pick & (1 << 63)
    } else {
        pick
    }
}

/// cmpps predicate `p` (0..7) on relation `rel`; predicates 1, 2, 5, 6 (lt, le, nlt, nle) signal on QNaN.
fn cmp_pred(p: u32, rel: Relation) -> bool {
    use Relation::*;
    match p & 7 {
        0 => rel == Equal,
        1 => rel == Less,
        2 => rel == Less || rel == Equal,
        3 => rel == Unordered,
        4 => rel != Equal,
        5 => rel != Less,
        6 => !(rel == Less || rel == Equal),
        _ => rel != Unordered,
    }
}

fn cmp_signals(p: u32) -> bool {
    matches!(p & 3, 1 | 2)
}

/// rcpps on one element, bit-exact with the AMD host's approximation ([`crate::sse_rcp_table`]): the result
/// fraction comes from the top 12 input fraction bits, the exponent is mirrored. Denormal inputs read as zero
/// (infinite result) and results below the normal range flush to zero, as on every x86; no flags are raised
/// and MXCSR (rounding, DAZ, FTZ) is ignored.
fn rcp32(a: u32) -> u32 {
    let sign = a & 0x8000_0000;
    let mag = a & 0x7fff_ffff;
    if mag > 0x7f80_0000 {
        return a | 0x0040_0000;
    }
    if mag < 0x0080_0000 {
        return sign | 0x7f80_0000;
    }
    // 1 / (2^(e-127) * 1.f) = 2^(126-(e-127)) * table: biased exponent 253 - e; 0 or below flushes.
    let exp = 253 - (mag >> 23) as i32;
    if exp <= 0 {
        return sign;
    }
    let frac = u32::from(RCP_TABLE[(mag >> 11 & 0xfff) as usize]);
    sign | (exp as u32) << 23 | frac << 11
}

/// rsqrtps on one element, bit-exact with the AMD host ([`crate::sse_rcp_table`]), with the special cases of
/// [`rcp32`]; negative non-zero inputs (-inf included) give the default NaN.
fn rsqrt32(a: u32) -> u32 {
    let sign = a & 0x8000_0000;
    let mag = a & 0x7fff_ffff;
    if mag > 0x7f80_0000 {
        return a | 0x0040_0000;
    }
    if mag < 0x0080_0000 {
        return sign | 0x7f80_0000;
    }
    if sign != 0 {
        return 0xffc0_0000;
    }
    if mag == 0x7f80_0000 {
        return 0;
    }
    // x = 2^(2h + odd) * 1.f: the table gives rsqrt(2^odd * 1.f) with exponent 126; then scale by 2^-h.
    let k = (mag >> 23) as i32 - 127;
    let odd = k.rem_euclid(2);
    let h = (k - odd) / 2;
    let table = if odd == 0 { &RSQRT_EVEN_TABLE } else { &RSQRT_ODD_TABLE };
    let frac = u32::from(table[(mag >> 11 & 0xfff) as usize]);
    ((126 - h) as u32) << 23 | frac << 11
}

fn to_int32_pair(f: &dyn Fn(usize, &mut Lanes) -> i32, l: &mut Lanes) -> u64 {
    let lo = f(0, l) as u32 as u64;
    let hi = f(1, l) as u32 as u64;
    lo | hi << 32
}

/// Computes `op` on destination value `a` and source value `b` under `mxcsr`; returns what to write and the
/// accumulated flags (and those of completed stages, see [`reported`]).
fn compute(op: u32, a: u128, b: u128, imm8: u32, mxcsr: u32) -> (Out, u8, u8) {
    let st = FloatStatus::from_mxcsr(mxcsr & !0x3f);
    let mut l = Lanes {
        all: 0,
        unmasked_post: !((mxcsr >> 7) as u8) & (flags::OVERFLOW | flags::UNDERFLOW),
        unmasked: !((mxcsr >> 7) as u8) & 0x3f,
        done: 0,
    };
    let kind = op & 0xff;
    let fm = (op >> 8) & 3;
    let single = fm == form::PS || fm == form::SS;
    let lanes = match fm {
        form::PS => 4,
        form::PD => 2,
        _ => 1,
    };
    let trunc = imm8 & imm::TRUNCATE != 0;
    let wide = imm8 & imm::WIDE != 0;
    let ib = imm8 & 0xff;
    let out = |v: u128| Out { dst: Some(v), ret: 0 };
    let r = match kind {
        op::ADD | op::SUB | op::MUL | op::DIV | op::SQRT | op::MIN | op::MAX => {
            let o = match kind {
                op::ADD => Ar::Add,
                op::SUB => Ar::Sub,
                op::MUL => Ar::Mul,
                op::DIV => Ar::Div,
                _ => Ar::Sqrt,
            };
            let mut v = a;
            for i in 0..lanes {
                if single {
                    let (x, y) = (lane32(a, i), lane32(b, i));
                    let r = match kind {
                        op::MIN | op::MAX => run(&mut l, &st, |s| minmax32(x, y, kind == op::MAX, s), none),
                        _ => ar32(&mut l, &st, o, x, y),
                    };
                    v = with32(v, i, r);
                } else {
                    let (x, y) = (lane64(a, i), lane64(b, i));
                    let r = match kind {
                        op::MIN | op::MAX => run(&mut l, &st, |s| minmax64(x, y, kind == op::MAX, s), none),
                        _ => ar64(&mut l, &st, o, x, y),
                    };
                    v = with64(v, i, r);
                }
            }
            out(v)
        }
        op::RCP | op::RSQRT => {
            let mut v = a;
            for i in 0..lanes {
                let x = lane32(b, i);
                v = with32(v, i, if kind == op::RCP { rcp32(x) } else { rsqrt32(x) });
            }
            out(v)
        }
        op::CMP => {
            let sig = cmp_signals(ib);
            let mut v = a;
            for i in 0..lanes {
                if single {
                    let rel = run(
                        &mut l,
                        &st,
                        |s| fpu::f32_compare(lane32(a, i), lane32(b, i), sig, s),
                        none,
                    );
                    v = with32(v, i, if cmp_pred(ib, rel) { u32::MAX } else { 0 });
                } else {
                    let rel = run(
                        &mut l,
                        &st,
                        |s| fpu::f64_compare(lane64(a, i), lane64(b, i), sig, s),
                        none,
                    );
                    v = with64(v, i, if cmp_pred(ib, rel) { u64::MAX } else { 0 });
                }
            }
            out(v)
        }
        op::COMI | op::UCOMI => {
            let sig = kind == op::COMI;
            let rel = if single {
                run(
                    &mut l,
                    &st,
                    |s| fpu::f32_compare(lane32(a, 0), lane32(b, 0), sig, s),
                    none,
                )
            } else {
                run(
                    &mut l,
                    &st,
                    |s| fpu::f64_compare(lane64(a, 0), lane64(b, 0), sig, s),
                    none,
                )
            };
            let fl = match rel {
                Relation::Greater => 0,
                Relation::Less => 1,
                Relation::Equal => 0x40,
                Relation::Unordered => 0x45,
            };
            Out { dst: None, ret: fl }
        }
        op::ADDSUB | op::HADD | op::HSUB => {
            let mut v = 0;
            for i in 0..lanes {
                // (x, y, subtract) of lane i.
                let (x, y, sub) = if kind == op::ADDSUB {
                    if single {
                        (lane32(a, i) as u64, lane32(b, i) as u64, i % 2 == 0)
                    } else {
                        (lane64(a, i), lane64(b, i), i % 2 == 0)
                    }
                } else {
                    let half = lanes / 2;
                    let srcv = if i < half { a } else { b };
                    let j = 2 * (i % half);
                    if single {
                        (lane32(srcv, j) as u64, lane32(srcv, j + 1) as u64, kind == op::HSUB)
                    } else {
                        (lane64(srcv, j), lane64(srcv, j + 1), kind == op::HSUB)
                    }
                };
                let o = if sub { Ar::Sub } else { Ar::Add };
                if single {
                    v = with32(v, i, ar32(&mut l, &st, o, x as u32, y as u32));
                } else {
                    v = with64(v, i, ar64(&mut l, &st, o, x, y));
                }
            }
            out(v)
        }
        op::ROUND => {
            let mode = if ib & 4 != 0 {
                st.rounding
            } else {
                RoundingMode::from_rc(ib)
            };
            let quiet = ib & 8 != 0;
            let mut v = a;
            for i in 0..lanes {
                if single {
                    let r = run(
                        &mut l,
                        &st,
                        |s| fpu::f32_round_to_int(lane32(b, i), mode, quiet, s),
                        none,
                    );
                    v = with32(v, i, r);
                } else {
                    let r = run(
                        &mut l,
                        &st,
                        |s| fpu::f64_round_to_int(lane64(b, i), mode, quiet, s),
                        none,
                    );
                    v = with64(v, i, r);
                }
            }
            out(v)
        }
        op::DP => out(dot(a, b, ib, single, &st, &mut l)),
        op::CVT_S2D => {
            if fm == form::SS {
                let r = run(&mut l, &st, |s| fpu::f32_to_f64(lane32(b, 0), s), none);
                out(with64(a, 0, r))
            } else {
                let lo = run(&mut l, &st, |s| fpu::f32_to_f64(lane32(b, 0), s), none);
                let hi = run(&mut l, &st, |s| fpu::f32_to_f64(lane32(b, 1), s), none);
                out(u128::from(lo) | u128::from(hi) << 64)
            }
        }
        op::CVT_D2S => {
            if fm == form::SD {
                let r = ar64(&mut l, &st, Ar::Narrow, lane64(b, 0), 0) as u32;
                out(with32(a, 0, r))
            } else {
                let lo = ar64(&mut l, &st, Ar::Narrow, lane64(b, 0), 0) as u32;
                let hi = ar64(&mut l, &st, Ar::Narrow, lane64(b, 1), 0) as u32;
                out(u128::from(lo) | u128::from(hi) << 32)
            }
        }
        op::CVT_DQ2F => {
            if single {
                let mut v = [0u32; 4];
                for (i, x) in v.iter_mut().enumerate() {
                    *x = run(&mut l, &st, |s| fpu::i32_to_f32(lane32(b, i) as i32, s), none);
                }
                out(pack32(v))
            } else {
                let lo = run(&mut l, &st, |s| fpu::i32_to_f64(lane32(b, 0) as i32, s), none);
                let hi = run(&mut l, &st, |s| fpu::i32_to_f64(lane32(b, 1) as i32, s), none);
                out(u128::from(lo) | u128::from(hi) << 64)
            }
        }
        op::CVT_F2DQ => {
            if single {
                let mut v = [0u32; 4];
                for (i, x) in v.iter_mut().enumerate() {
                    *x = run(&mut l, &st, |s| fpu::f32_to_i32(lane32(b, i), trunc, s), none) as u32;
                }
                out(pack32(v))
            } else {
                let f = |i: usize, l: &mut Lanes| run(l, &st, |s| fpu::f64_to_i32(lane64(b, i), trunc, s), none);
                out(u128::from(to_int32_pair(&f, &mut l)))
            }
        }
        op::CVT_SI2F => {
            let v = lane64(b, 0);
            if single {
                let r = if wide {
                    run(&mut l, &st, |s| fpu::i64_to_f32(v as i64, s), none)
                } else {
                    run(&mut l, &st, |s| fpu::i32_to_f32(v as i32, s), none)
                };
                out(with32(a, 0, r))
            } else {
                let r = if wide {
                    run(&mut l, &st, |s| fpu::i64_to_f64(v as i64, s), none)
                } else {
                    run(&mut l, &st, |s| fpu::i32_to_f64(v as i32, s), none)
                };
                out(with64(a, 0, r))
            }
        }
        op::CVT_F2SI => {
            let ret = match (single, wide) {
                (true, false) => run(&mut l, &st, |s| fpu::f32_to_i32(lane32(b, 0), trunc, s), none) as u32 as u64,
                (true, true) => run(&mut l, &st, |s| fpu::f32_to_i64(lane32(b, 0), trunc, s), none) as u64,
                (false, false) => run(&mut l, &st, |s| fpu::f64_to_i32(lane64(b, 0), trunc, s), none) as u32 as u64,
                (false, true) => run(&mut l, &st, |s| fpu::f64_to_i64(lane64(b, 0), trunc, s), none) as u64,
            };
            Out { dst: None, ret }
        }
        op::CVT_PI2F => {
            let (x, y) = (lane32(b, 0) as i32, lane32(b, 1) as i32);
            if single {
                let lo = run(&mut l, &st, |s| fpu::i32_to_f32(x, s), none);
                let hi = run(&mut l, &st, |s| fpu::i32_to_f32(y, s), none);
                out(with64(a, 0, u64::from(lo) | u64::from(hi) << 32))
            } else {
                let lo = run(&mut l, &st, |s| fpu::i32_to_f64(x, s), none);
                let hi = run(&mut l, &st, |s| fpu::i32_to_f64(y, s), none);
                out(u128::from(lo) | u128::from(hi) << 64)
            }
        }
        op::CVT_F2PI => {
            let v = if single {
                let f = |i: usize, l: &mut Lanes| run(l, &st, |s| fpu::f32_to_i32(lane32(b, i), trunc, s), none);
                to_int32_pair(&f, &mut l)
            } else {
                let f = |i: usize, l: &mut Lanes| run(l, &st, |s| fpu::f64_to_i32(lane64(b, i), trunc, s), none);
                to_int32_pair(&f, &mut l)
            };
            out(u128::from(v))
        }
        _ => {
            // DUP: pure data movement.
            let v = if !single {
                let x = lane64(b, 0);
                u128::from(x) | u128::from(x) << 64
            } else {
                let o = (ib & 1) as usize;
                let (x, y) = (lane32(b, o), lane32(b, 2 + o));
                pack32([x, x, y, y])
            };
            out(v)
        }
    };
    (r, l.all, l.done)
}

/// dpps/dppd. The products are summed pairwise: (p0 + p1) + (p2 + p3), each step rounded; products of
/// unselected lanes are +0. As measured on the host, an unmasked exception in the multiplications ends the
/// instruction before the additions (whose flags are then not reported); otherwise the additions report
/// their own flags, a denormal intermediate product included.
fn dot(a: u128, b: u128, ib: u32, single: bool, st: &FloatStatus, l: &mut Lanes) -> u128 {
    if single {
        let mut p = [0u32; 4];
        for (i, x) in p.iter_mut().enumerate() {
            if ib & (0x10 << i) != 0 {
                *x = ar32(l, st, Ar::Mul, lane32(a, i), lane32(b, i));
            }
        }
        if !next_stage(l) {
            return 0;
        }
        let s01 = ar32(l, st, Ar::Add, p[0], p[1]);
        let s23 = ar32(l, st, Ar::Add, p[2], p[3]);
        if !next_stage(l) {
            return 0;
        }
        let sum = ar32(l, st, Ar::Add, s01, s23);
        let mut v = [0u32; 4];
        for (i, x) in v.iter_mut().enumerate() {
            if ib & (1 << i) != 0 {
                *x = sum;
            }
        }
        pack32(v)
    } else {
        let mut p = [0u64; 2];
        for (i, x) in p.iter_mut().enumerate() {
            if ib & (0x10 << i) != 0 {
                *x = ar64(l, st, Ar::Mul, lane64(a, i), lane64(b, i));
            }
        }
        if !next_stage(l) {
            return 0;
        }
        let sum = ar64(l, st, Ar::Add, p[0], p[1]);
        let mut v = 0u128;
        for i in 0..2 {
            if ib & (1 << i) != 0 {
                v = with64(v, i, sum);
            }
        }
        v
    }
}

/// Ends a stage of dpps/dppd: false (stop) when it raised an unmasked exception; else its flags become
/// final.
fn next_stage(l: &mut Lanes) -> bool {
    if l.all & l.unmasked != 0 {
        return false;
    }
    l.done = l.all;
    true
}

/// The flags an instruction leaves in MXCSR when it raised `all` with the unmasked ones in `unmasked`;
/// `done` are the flags of completed earlier stages (dpps/dppd), always kept.
fn reported(all: u8, unmasked: u8, done: u8) -> u8 {
    if unmasked & PRE != 0 {
        (all & PRE) | done
    } else {
        all
    }
}

/// Byte offset of `xmm_t0` in the CPU state.
pub const XMM_T0_OFFSET: usize = offset_of!(X86CpuState, xmm_t0);

/// Whether `off` is an MMX register slot (in the x87 register file).
fn is_mmx(off: usize) -> bool {
    let base = offset_of!(X86CpuState, fpu);
    (base..base + 128).contains(&off)
}

/// The MMX transition: every x87 register valid, TOP = 0.
fn mmx_touch(cpu: &mut X86CpuState) {
    cpu.fpu.ftw = 0xff;
    cpu.fpu.fsw &= !(7 << 11);
}

/// Reads 16 bytes (8 for an MMX slot) of the CPU state at byte offset `off`.
fn read_state(cpu: &X86CpuState, off: usize) -> u128 {
    let p = (cpu as *const X86CpuState).cast::<u8>();
    let n = if is_mmx(off) { 8 } else { 16 };
    let mut b = [0u8; 16];
    if off + n <= core::mem::size_of::<X86CpuState>() {
        // SAFETY: `off..off + n` lies inside the state (checked), and u8 has no alignment.
        unsafe { core::ptr::copy_nonoverlapping(p.add(off), b.as_mut_ptr(), n) };
    }
    u128::from_le_bytes(b)
}

/// Writes an XMM register (16 bytes) or an MMX register (8 bytes, then 0xffff in bytes 8..9) at `off`.
fn write_state(cpu: &mut X86CpuState, off: usize, v: u128) {
    let p = (cpu as *mut X86CpuState).cast::<u8>();
    let mut b = v.to_le_bytes();
    let n = if is_mmx(off) {
        b[8] = 0xff;
        b[9] = 0xff;
        10
    } else {
        16
    };
    if off + n <= core::mem::size_of::<X86CpuState>() {
        // SAFETY: as in read_state.
        unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), p.add(off), n) };
    }
}

/// `sse_fp(op: i32, dst_off: i32, src_off: i32, imm: i32) -> i64`, MAY_FAULT: the operation [`op`] on the
/// operands at CPU-state offsets `dst_off` (also the first source) and `src_off`; returns the integer result
/// of cvt*2si and the EFLAGS bits (ZF, PF, CF) of comis/ucomis. On an unmasked exception only MXCSR (and the
/// x87 tags of an MMX operand) change and #XM or #UD is raised.
///
/// # Safety
/// `env` must be the [`X86CpuState`] the generated code runs on.
pub unsafe extern "C" fn helper_sse_fp(env: *mut u8, op: u64, dst: u64, src: u64, imm8: u64, _: u64) -> u64 {
    // SAFETY: generated code passes the CPU state it runs on.
    let cpu = unsafe { &mut *env.cast::<X86CpuState>() };
    let (op, dst, src, imm8) = (op as u32, dst as u32 as usize, src as u32 as usize, imm8 as u32);
    let a = read_state(cpu, dst);
    let b = read_state(cpu, src);
    let (out, all, done) = compute(op, a, b, imm8, cpu.mxcsr);
    // Only an MMX register operand switches the x87 unit to MMX mode (cvtpi2ps/cvtpi2pd m64 do not: measured
    // on the host), and it does so even when the instruction then raises #XM (measured too).
    if is_mmx(dst) || is_mmx(src) {
        mmx_touch(cpu);
    }
    let masks = ((cpu.mxcsr >> 7) & 0x3f) as u8;
    let unmasked = all & !masks;
    if unmasked != 0 {
        cpu.mxcsr |= u32::from(reported(all, unmasked, done));
        let vector = if cpu.cr[4] & CR4_OSXMMEXCPT != 0 {
            XM
        } else {
            crate::cpu::excp::UD
        };
        cpu.raise(vector, 0);
        return 0;
    }
    cpu.mxcsr |= u32::from(all);
    if let Some(v) = out.dst {
        write_state(cpu, dst, v);
    }
    out.ret
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use core::arch::x86_64::*;

    fn host(x: u32, rsqrt: bool) -> u32 {
        // SAFETY: SSE is baseline on x86-64; the intrinsics only touch registers.
        unsafe {
            let v = _mm_castsi128_ps(_mm_cvtsi32_si128(x as i32));
            let r = if rsqrt { _mm_rsqrt_ss(v) } else { _mm_rcp_ss(v) };
            _mm_cvtsi128_si32(_mm_castps_si128(r)) as u32
        }
    }

    fn amd() -> bool {
        let r = __cpuid(0);
        let mut v = [0u8; 12];
        v[..4].copy_from_slice(&r.ebx.to_le_bytes());
        v[4..8].copy_from_slice(&r.edx.to_le_bytes());
        v[8..].copy_from_slice(&r.ecx.to_le_bytes());
        &v == b"AuthenticAMD"
    }

    /// Every table index under every exponent and sign, plus the low fraction bits at a few exponents,
    /// against the host (AMD hosts only: the tables are AMD's).
    #[test]
    fn rcp_rsqrt_match_the_amd_host() {
        if !amd() {
            return;
        }
        for sign in [0, 0x8000_0000u32] {
            for e in 0..256u32 {
                for i in 0..4096u32 {
                    let low = if i % 7 == 0 { (i * 0x9e37) & 0x7ff } else { 0 };
                    let x = sign | e << 23 | i << 11 | low;
                    assert_eq!(rcp32(x), host(x, false), "rcp {x:#010x}");
                    assert_eq!(rsqrt32(x), host(x, true), "rsqrt {x:#010x}");
                }
            }
        }
    }
}
