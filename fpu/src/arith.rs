//! Exact arithmetic on unpacked operands, plus the f32/f64 (SSE) entry points.
//!
//! Results are exact except for a sticky bit, so the single rounding step in `round.rs`
//! sees exactly what an infinitely precise implementation would.

use crate::sqrt::sqrt;
use crate::status::{flags, FloatStatus, RoundingMode};
use crate::unpacked::{Exact, Ieee, Num, F32, F64};

/// Moves the leading bit of a nonzero u64 significand to bit 125 of a u128, leaving room for
/// a carry above and ample guard bits below.
fn widen(exp: i32, sig: u64) -> (i64, u128) {
    let lz = sig.leading_zeros() as i64;
    let shift = lz + 62;
    (exp as i64 - shift, (sig as u128) << shift)
}

pub(crate) fn add(a: Num, b: Num, mode: RoundingMode) -> Exact {
    let exact_zero_sign = mode == RoundingMode::Down;
    match (a, b) {
        (Num::Inf(sa), Num::Inf(sb)) => {
            if sa == sb {
                Exact::Inf(sa)
            } else {
                Exact::Invalid
            }
        }
        (Num::Inf(s), _) | (_, Num::Inf(s)) => Exact::Inf(s),
        (Num::Zero(sa), Num::Zero(sb)) => Exact::Zero(if sa == sb { sa } else { exact_zero_sign }),
        (Num::Zero(_), Num::Fin { sign, exp, sig }) | (Num::Fin { sign, exp, sig }, Num::Zero(_)) => Exact::Fin {
            sign,
            exp,
            sig: sig as u128,
            sticky: false,
        },
        (
            Num::Fin {
                sign: sa,
                exp: ea,
                sig: ma,
            },
            Num::Fin {
                sign: sb,
                exp: eb,
                sig: mb,
            },
        ) => {
            let (ea, ma) = widen(ea, ma);
            let (eb, mb) = widen(eb, mb);
            let ((eh, mh, sh), (el, ml, sl)) = if ea >= eb {
                ((ea, ma, sa), (eb, mb, sb))
            } else {
                ((eb, mb, sb), (ea, ma, sa))
            };
            let d = eh - el;
            // Shifted-out bits are jammed into the lowest bit; with 60+ guard bits that keeps
            // both sums and differences correctly rounded.
            let ml = if d == 0 {
                ml
            } else if d >= 127 {
                1
            } else {
                (ml >> d) | ((ml & ((1u128 << d) - 1)) != 0) as u128
            };
            let (sign, sig) = if sh == sl {
                (sh, mh + ml)
            } else if mh >= ml {
                (sh, mh - ml)
            } else {
                (sl, ml - mh)
            };
            if sig == 0 {
                return Exact::Zero(exact_zero_sign);
            }
            Exact::Fin {
                sign,
                exp: eh as i32,
                sig,
                sticky: false,
            }
        }
    }
}

pub(crate) fn mul(a: Num, b: Num) -> Exact {
    let sign = a.sign() != b.sign();
    match (a, b) {
        (Num::Inf(_), Num::Zero(_)) | (Num::Zero(_), Num::Inf(_)) => Exact::Invalid,
        (Num::Inf(_), _) | (_, Num::Inf(_)) => Exact::Inf(sign),
        (Num::Zero(_), _) | (_, Num::Zero(_)) => Exact::Zero(sign),
        (Num::Fin { exp: ea, sig: ma, .. }, Num::Fin { exp: eb, sig: mb, .. }) => Exact::Fin {
            sign,
            exp: ea + eb,
            sig: ma as u128 * mb as u128,
            sticky: false,
        },
    }
}

pub(crate) fn div(a: Num, b: Num) -> Exact {
    let sign = a.sign() != b.sign();
    match (a, b) {
        (Num::Inf(_), Num::Inf(_)) | (Num::Zero(_), Num::Zero(_)) => Exact::Invalid,
        (Num::Inf(_), _) => Exact::Inf(sign),
        (_, Num::Inf(_)) => Exact::Zero(sign),
        (Num::Zero(_), _) => Exact::Zero(sign),
        (_, Num::Zero(_)) => Exact::DivZero(sign),
        (Num::Fin { exp: ea, sig: ma, .. }, Num::Fin { exp: eb, sig: mb, .. }) => {
            // Dividend leading bit at 126 and divisor at 63 keep the first quotient word
            // below 2^64; two 64-bit long-division steps then give at least 126 bits.
            let la = ma.leading_zeros() as i32 + 63;
            let lb = mb.leading_zeros() as i32;
            let num = (ma as u128) << la;
            let nb = (mb as u128) << lb;
            let q1 = num / nb;
            let r1 = num % nb;
            let q2 = (r1 << 64) / nb;
            let r2 = (r1 << 64) % nb;
            let exp = (ea - la) - (eb - lb) - 64;
            Exact::Fin {
                sign,
                exp,
                sig: (q1 << 64) | q2,
                sticky: r2 != 0,
            }
        }
    }
}

/// Invalid-operation and divide-by-zero outrank the denormal-operand exception on x86: when
/// either is detected, a denormal operand is not reported.
pub(crate) fn drop_denormal_if_rejected(e: Exact, before: u8, st: &mut FloatStatus) {
    if matches!(e, Exact::Invalid | Exact::DivZero(_)) {
        st.flags = (st.flags & !flags::DENORMAL) | (before & flags::DENORMAL);
    }
}

fn sse_binop(f: &Ieee, a: u64, b: u64, st: &mut FloatStatus, op: fn(Num, Num, RoundingMode) -> Exact) -> u64 {
    if f.is_nan(a) || f.is_nan(b) {
        return f.propagate(a, b, st);
    }
    let before = st.flags;
    let na = f.operand(a, st);
    let nb = f.operand(b, st);
    let e = op(na, nb, st.rounding);
    drop_denormal_if_rejected(e, before, st);
    f.finish(e, st)
}

fn sse_sqrt(f: &Ieee, a: u64, st: &mut FloatStatus) -> u64 {
    if f.is_nan(a) {
        return f.propagate(a, a, st);
    }
    let before = st.flags;
    let na = f.operand(a, st);
    let e = sqrt(na);
    drop_denormal_if_rejected(e, before, st);
    f.finish(e, st)
}

fn op_add(a: Num, b: Num, m: RoundingMode) -> Exact {
    add(a, b, m)
}
fn op_sub(a: Num, b: Num, m: RoundingMode) -> Exact {
    add(a, b.negate(), m)
}
fn op_mul(a: Num, b: Num, _: RoundingMode) -> Exact {
    mul(a, b)
}
fn op_div(a: Num, b: Num, _: RoundingMode) -> Exact {
    div(a, b)
}

pub(crate) const OPS: [fn(Num, Num, RoundingMode) -> Exact; 4] = [op_add, op_sub, op_mul, op_div];

macro_rules! sse_ops {
    ($t:ty, $fmt:expr, $add:ident, $sub:ident, $mul:ident, $div:ident, $sqrt:ident, $name:literal) => {
        #[doc = concat!("`a + b` on ", $name, " with SSE (addss/addsd) semantics.")]
        pub fn $add(a: $t, b: $t, st: &mut FloatStatus) -> $t {
            sse_binop(&$fmt, a as u64, b as u64, st, OPS[0]) as $t
        }
        #[doc = concat!("`a - b` on ", $name, " with SSE semantics.")]
        pub fn $sub(a: $t, b: $t, st: &mut FloatStatus) -> $t {
            sse_binop(&$fmt, a as u64, b as u64, st, OPS[1]) as $t
        }
        #[doc = concat!("`a * b` on ", $name, " with SSE semantics.")]
        pub fn $mul(a: $t, b: $t, st: &mut FloatStatus) -> $t {
            sse_binop(&$fmt, a as u64, b as u64, st, OPS[2]) as $t
        }
        #[doc = concat!("`a / b` on ", $name, " with SSE semantics.")]
        pub fn $div(a: $t, b: $t, st: &mut FloatStatus) -> $t {
            sse_binop(&$fmt, a as u64, b as u64, st, OPS[3]) as $t
        }
        #[doc = concat!("Square root on ", $name, " with SSE semantics (sqrt(-0) = -0).")]
        pub fn $sqrt(a: $t, st: &mut FloatStatus) -> $t {
            sse_sqrt(&$fmt, a as u64, st) as $t
        }
    };
}

sse_ops!(u32, F32, f32_add, f32_sub, f32_mul, f32_div, f32_sqrt, "f32");
sse_ops!(u64, F64, f64_add, f64_sub, f64_mul, f64_div, f64_sqrt, "f64");
