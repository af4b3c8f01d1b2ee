//! The x87 transcendental instructions' arithmetic: fsin, fcos, fsincos, fptan, fpatan, f2xm1, fyl2x, fyl2xp1.
//!
//! Values are evaluated in a 128-bit-significand software float ([`Big`]) with integer arithmetic only, so
//! results are identical on every host. Its operations keep what they cannot hold as a sticky last bit, so a
//! result that is an operand plus or minus a term far below its last bit (sin x, tan x, cos x for tiny x)
//! still rounds in the right direction, also into the denormal range. Each result is then rounded once to the
//! 64-bit significand under the control word's rounding mode ([`round`]; precision control does not apply to
//! these instructions, also measured for tiny and denormal results). The evaluation error
//! is far below 2^-100 relative, so the result is the correctly rounded one except when the exact value lies
//! within that distance of a rounding boundary; against the host CPU, whose microcode is not correctly rounded,
//! results agree within 1 ulp (see `tests/x87.rs`: 97-99.8% are identical, none is further than 1 ulp).
//! fsin/fcos/fsincos/fptan reduce their argument as the x87 does: the quotient q = round(x / (pi/2)) (found
//! with a 256-bit 2/pi), the remainder x - q * P against P = pi/2 rounded to 66 bits, exactly. This matches
//! the host over the whole domain |x| < 2^63, where an exact reduction would differ by many ulps for large x.

use rqemu_fpu::{RoundingMode, F80};

/// A nonzero finite value `m * 2^(e - 127)` (`m` normalized: bit 127 set, so the value is in [2^e, 2^(e+1))),
/// or zero (`m == 0`), with a sign.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Big {
    /// Sign.
    pub neg: bool,
    /// Exponent of the leading bit.
    pub e: i32,
    /// Significand, normalized (or 0).
    pub m: u128,
}

const ZERO: Big = Big { neg: false, e: 0, m: 0 };

fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    let (a1, a0) = (a >> 64, a & u128::from(u64::MAX));
    let (b1, b0) = (b >> 64, b & u128::from(u64::MAX));
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & u128::from(u64::MAX)) + (p10 & u128::from(u64::MAX));
    let lo = (p00 & u128::from(u64::MAX)) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// `v >> d` with the bits shifted out ORed into the lsb.
fn jam(v: u128, d: u32) -> u128 {
    if d == 0 {
        v
    } else if d >= 128 {
        u128::from(v != 0)
    } else {
        v >> d | u128::from(v << (128 - d) != 0)
    }
}

impl Big {
    fn norm(neg: bool, e: i32, m: u128) -> Big {
        if m == 0 {
            return Big { neg, e: 0, m: 0 };
        }
        let lz = m.leading_zeros() as i32;
        Big {
            neg,
            e: e - lz,
            m: m << lz,
        }
    }

    /// An exact small integer.
    pub fn int(v: i64) -> Big {
        Big::norm(v < 0, 127, u128::from(v.unsigned_abs()))
    }

    /// The exact value of a finite F80 (any encoding the caller accepts as finite).
    pub fn from_f80(x: F80) -> Big {
        let be = i32::from(x.se & 0x7fff).max(1);
        Big::norm(x.se & 0x8000 != 0, be - 16383, u128::from(x.mant) << 64)
    }

    fn is_zero(self) -> bool {
        self.m == 0
    }

    fn neg(self) -> Big {
        Big { neg: !self.neg, ..self }
    }

    fn abs(self) -> Big {
        Big { neg: false, ..self }
    }

    /// `self * 2^n`.
    pub fn scale(self, n: i32) -> Big {
        if self.is_zero() {
            self
        } else {
            Big { e: self.e + n, ..self }
        }
    }

    /// Product, to 128 bits with a sticky lsb.
    pub fn mul(self, b: Big) -> Big {
        if self.is_zero() || b.is_zero() {
            return Big {
                neg: self.neg ^ b.neg,
                ..ZERO
            };
        }
        let (hi, lo) = mul_wide(self.m, b.m);
        // The product of two normalized significands has its leading bit at 255 or 254: keep 128 bits, the
        // rest as a sticky lsb so that later rounding sees "slightly above" rather than "exact".
        let (m, e) = if hi >> 127 != 0 {
            (hi | u128::from(lo != 0), self.e + b.e + 1)
        } else {
            (hi << 1 | lo >> 127 | u128::from(lo << 1 != 0), self.e + b.e)
        };
        Big {
            neg: self.neg ^ b.neg,
            e,
            m,
        }
    }

    /// Sum, to 128 bits with a sticky lsb (the bits shifted out are ORed into the last one).
    pub fn add(self, b: Big) -> Big {
        if self.is_zero() {
            return b;
        }
        if b.is_zero() {
            return self;
        }
        let (x, y) = if self.e > b.e || (self.e == b.e && self.m >= b.m) {
            (self, b)
        } else {
            (b, self)
        };
        let d = (x.e - y.e) as u32;
        if d >= 129 && x.m & 1 != 0 {
            // y lies wholly below x's last bit, and x already carries a sticky tail (from an inexact quotient
            // or product of 64-bit operands, whose discarded part is not far below that bit): the tail
            // dominates y, so the sum keeps x's direction. Jamming y in would cancel the sticky bit instead.
            return x;
        }
        // One guard bit below the 128 kept: shift both right by 1 first, keeping what falls off as sticky.
        let xm = x.m >> 1 | (x.m & 1);
        let ym = jam(y.m >> 1 | (y.m & 1), d);
        if x.neg == y.neg {
            Big::norm(x.neg, x.e + 1, xm + ym)
        } else if xm >= ym {
            Big::norm(x.neg, x.e + 1, xm - ym)
        } else {
            Big::norm(y.neg, x.e + 1, ym - xm)
        }
    }

    /// Difference.
    pub fn sub(self, b: Big) -> Big {
        self.add(b.neg())
    }

    /// Quotient by long division (128 quotient bits).
    pub fn div(self, b: Big) -> Big {
        if self.is_zero() || b.is_zero() {
            return Big {
                neg: self.neg ^ b.neg,
                ..ZERO
            };
        }
        let d = b.m;
        let mut r = self.m;
        let mut q: u128 = 0;
        let mut carry = false;
        for _ in 0..128 {
            q <<= 1;
            if carry || r >= d {
                r = r.wrapping_sub(d);
                q |= 1;
            }
            carry = r >> 127 != 0;
            r <<= 1;
        }
        // q = floor(a.m / d * 2^127): the integer bit is bit 127; a nonzero remainder becomes a sticky lsb.
        Big::norm(self.neg ^ b.neg, self.e - b.e, q | u128::from(carry || r != 0))
    }

    /// Square root of a non-negative value (Newton).
    pub fn sqrt(self) -> Big {
        if self.is_zero() {
            return self;
        }
        // Initial guess (about 32 bits) from the top 64 bits, then Newton steps y = (y + a / y) / 2.
        // self = M * 2^e with M = m * 2^-127 in [1, 2) and top = m >> 64, M ~ top * 2^-63.
        let top = (self.m >> 64) as u64;
        let mut y = if self.e.rem_euclid(2) == 0 {
            // sqrt(M) ~ isqrt(2 top) * 2^-32
            let g = (u128::from(top) * 2).isqrt();
            Big::norm(false, 95 + self.e.div_euclid(2), g)
        } else {
            // sqrt(2M) * 2^((e-1)/2), sqrt(2M) ~ isqrt(top) * 2^-31
            let g = u128::from(top.isqrt());
            Big::norm(false, 96 + (self.e - 1).div_euclid(2), g)
        };
        for _ in 0..4 {
            y = y.add(self.div(y)).scale(-1);
        }
        y
    }
}

/// 2/pi with 256 fraction bits (big-endian words).
const TWO_OVER_PI: [u64; 4] = [
    0xa2f9_836e_4e44_1529,
    0xfc27_57d1_f534_ddc0,
    0xdb62_9599_3c43_9041,
    0xfe51_63ab_debb_c561,
];
/// pi/2 rounded to 66 bits, times 2^65 (the reduction constant of fsin/fcos/fsincos/fptan).
const PI_OVER_2_66: u128 = 0x3_243f_6a88_85a3_08d3;
const PI_HI: u128 = 0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1; // pi * 2^126
const LN2_HI: u128 = 0xb172_17f7_d1cf_79ab_c9e3_b398_03f2_f6af; // ln 2 * 2^128

/// pi as a Big.
pub(crate) fn pi() -> Big {
    Big {
        neg: false,
        e: 1,
        m: PI_HI,
    }
}

fn ln2() -> Big {
    Big {
        neg: false,
        e: -1,
        m: LN2_HI,
    }
}

/// `x = q * pi/2 + r` with |r| <= pi/4; returns (q mod 4, r). `x` finite with |x| < 2^63.
fn reduce(x: Big) -> (u32, Big) {
    if x.is_zero() || x.e < -1 {
        // |x| < 0.5 < pi/4: nothing to reduce.
        return (0, x);
    }
    // x = M * 2^s with M the top 64 bits and s = e - 63 (in -64..=-1 here: 0.5 <= |x| < 2^63).
    let mt = (x.m >> 64) as u64;
    let s = x.e - 63;
    // M * (2/pi) as a 320-bit product (2/pi with 256 fraction bits): words w[0] (most significant) ..
    let mut prod = [0u128; 5];
    for (i, &w) in TWO_OVER_PI.iter().enumerate() {
        let p = u128::from(mt) * u128::from(w);
        prod[i] += p >> 64;
        prod[i + 1] += p & u128::from(u64::MAX);
    }
    for i in (1..5).rev() {
        let c = prod[i] >> 64;
        prod[i] &= u128::from(u64::MAX);
        prod[i - 1] += c;
    }
    // The product's value is sum(prod[i] * 2^(64 - 64 i)) * 2^-256 * 2^64 ... with prod[0] the integer part
    // of M*(2/pi) (a 64-bit integer) before the 2^s scaling.
    let words: [u64; 5] = [
        prod[0] as u64,
        prod[1] as u64,
        prod[2] as u64,
        prod[3] as u64,
        prod[4] as u64,
    ];
    // Shift the 320-bit number (64 integer bits, 256 fraction bits) right by -s.
    let sh = (-s) as u32; // 1..=64
    let get = |bit_from_top: u32| -> u64 {
        // 64 bits starting at `bit_from_top` (0 = msb of words[0]).
        let w = (bit_from_top / 64) as usize;
        let b = bit_from_top % 64;
        let hi = words.get(w).copied().unwrap_or(0);
        let lo = words.get(w + 1).copied().unwrap_or(0);
        if b == 0 {
            hi
        } else {
            hi << b | lo >> (64 - b)
        }
    };
    // Integer part of the shifted value: the top 64 - sh bits of words[0].
    let int = if sh >= 64 { 0 } else { words[0] >> sh };
    // Fraction: the 128 bits after the binary point, which sits at bit (64 - sh) from the top.
    let fpos = 64 - sh;
    let frac = u128::from(get(fpos)) << 64 | u128::from(get(fpos + 64));
    // Round the quotient to nearest; the remainder is then taken against pi/2 rounded to 66 bits, as the host
    // (like the original 387) does: results for large arguments follow its reduction, not the exact one.
    let q = int + u64::from(frac >> 127 != 0);
    let x_fixed = u128::from(mt) << (65 + s) as u32; // |x| * 2^65, exact (s >= -64)
    let diff = x_fixed.wrapping_sub(u128::from(q).wrapping_mul(PI_OVER_2_66)) as i128;
    let r = Big::norm(diff < 0, 62, diff.unsigned_abs()); // diff * 2^-65
    let q = (q & 3) as u32;
    if x.neg {
        ((4 - q) & 3, r.neg())
    } else {
        (q, r)
    }
}

/// sin and cos of |r| <= pi/4 by their Taylor series.
fn sin_cos_small(r: Big) -> (Big, Big) {
    let r2 = r.mul(r);
    let mut s = r;
    let mut term = r;
    let mut c = Big::int(1);
    let mut cterm = Big::int(1);
    for k in 1..40i64 {
        term = term.mul(r2).div(Big::int((2 * k) * (2 * k + 1))).neg();
        cterm = cterm.mul(r2).div(Big::int((2 * k - 1) * (2 * k))).neg();
        s = s.add(term);
        c = c.add(cterm);
        if term.is_zero() || term.e < s.e - 140 {
            break;
        }
    }
    (s, c)
}

/// (sin x, cos x) for finite |x| < 2^63.
pub(crate) fn sin_cos(x: Big) -> (Big, Big) {
    if x.is_zero() {
        return (x, Big::int(1));
    }
    let (q, r) = reduce(x);
    let (s, c) = sin_cos_small(r);
    match q {
        0 => (s, c),
        1 => (c, s.neg()),
        2 => (s.neg(), c.neg()),
        _ => (c.neg(), s),
    }
}

/// tan x for finite |x| < 2^63.
pub(crate) fn tan(x: Big) -> Big {
    let (q, r) = reduce(x);
    // For tiny r, sin r / cos r would carry two sticky tails whose quotient loses the direction of the
    // r^3/3 term; take the series instead (the next term is below 2^-160 relative).
    let t = if r.e < -40 {
        r.add(r.mul(r).mul(r).div(Big::int(3)))
    } else {
        let (s, c) = sin_cos_small(r);
        s.div(c)
    };
    if q & 1 == 1 {
        Big::int(-1).div(t)
    } else {
        t
    }
}

/// atan(t) for t >= 0.
fn atan_pos(t: Big) -> Big {
    if t.is_zero() {
        return t;
    }
    // For t > 1: atan t = pi/2 - atan(1/t).
    if t.e > 0 || (t.e == 0 && t.m > 1 << 127) {
        return pi().scale(-1).sub(atan_pos(Big::int(1).div(t)));
    }
    // Halve the argument twice: atan t = 2 atan(t / (1 + sqrt(1 + t^2))).
    let mut t = t;
    let mut mult = 0;
    while t.e >= -3 {
        let one = Big::int(1);
        t = t.div(one.add(one.add(t.mul(t)).sqrt()));
        mult += 1;
    }
    let t2 = t.mul(t);
    let mut sum = t;
    let mut pw = t;
    for k in 1..80i64 {
        pw = pw.mul(t2).neg();
        let term = pw.div(Big::int(2 * k + 1));
        sum = sum.add(term);
        if term.is_zero() || term.e < sum.e - 140 {
            break;
        }
    }
    sum.scale(mult)
}

/// atan2(y, x) for finite, not both zero.
pub(crate) fn atan2(y: Big, x: Big) -> Big {
    let a = if x.is_zero() {
        pi().scale(-1)
    } else {
        atan_pos(y.abs().div(x.abs()))
    };
    let a = if x.neg && !x.is_zero() { pi().sub(a) } else { a };
    if y.neg {
        a.neg()
    } else {
        a
    }
}

/// e^y - 1 for |y| <= 1 by its series.
fn expm1(y: Big) -> Big {
    let mut sum = y;
    let mut term = y;
    for k in 2..80i64 {
        term = term.mul(y).div(Big::int(k));
        sum = sum.add(term);
        if term.is_zero() || term.e < sum.e - 140 {
            break;
        }
    }
    sum
}

/// 2^x - 1 for |x| <= 1.
pub(crate) fn exp2m1(x: Big) -> Big {
    expm1(x.mul(ln2()))
}

/// ln(1 + z) = 2 atanh(z / (2 + z)), for z > -1.
fn ln1p(z: Big) -> Big {
    let u = z.div(Big::int(2).add(z));
    let u2 = u.mul(u);
    let mut sum = u;
    let mut pw = u;
    for k in 1..200i64 {
        pw = pw.mul(u2);
        let term = pw.div(Big::int(2 * k + 1));
        sum = sum.add(term);
        if term.is_zero() || term.e < sum.e - 140 {
            break;
        }
    }
    sum.scale(1)
}

/// log2(x) for finite x > 0.
pub(crate) fn log2(x: Big) -> Big {
    // x = m * 2^k with m in [sqrt(1/2), sqrt(2)).
    let mut k = x.e;
    let mut m = Big { e: 0, ..x };
    // sqrt(2) * 2^127 ~ 0xb504f333f9de6484...
    if m.m > 0xb504_f333_f9de_6484_597d_89b3_754a_be9f {
        m = m.scale(-1);
        k += 1;
    }
    let l = ln1p(m.sub(Big::int(1))).div(ln2());
    Big::int(i64::from(k)).add(l)
}

/// log2(1 + x) for x > -1.
pub(crate) fn log2_1p(x: Big) -> Big {
    if x.e >= -2 {
        // |x| >= 1/4: 1 + x is well conditioned; the atanh series would converge slowly.
        return log2(Big::int(1).add(x));
    }
    ln1p(x).div(ln2())
}

/// A [`Big`] rounded to an F80 with the 64-bit significand.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rounded {
    /// The result (infinity or the largest finite value on overflow, per the rounding mode).
    pub value: F80,
    /// Rounded away from zero (the x87's C1).
    pub up: bool,
    /// Tiny (after rounding, as the arithmetic detects it): the x87 then reports underflow.
    pub tiny: bool,
    /// Beyond the largest finite value after rounding.
    pub overflow: bool,
}

/// Whether rounding to nearest-even, down, up or toward zero increments the kept magnitude.
fn increments(rc: RoundingMode, neg: bool, odd: bool, rbit: bool, rest: bool) -> bool {
    match rc {
        RoundingMode::NearestEven => rbit && (rest || odd),
        RoundingMode::TowardZero => false,
        RoundingMode::Up => !neg && (rbit || rest),
        RoundingMode::Down => neg && (rbit || rest),
    }
}

/// Whether rounding `b`'s significand to its top `bits` (< 128) bits increments them.
fn rounds_up(b: Big, rc: RoundingMode, bits: u32) -> bool {
    let shift = 128 - bits;
    let kept = b.m >> shift;
    let rbit = (b.m >> (shift - 1)) & 1 != 0;
    let rest = b.m & ((1u128 << (shift - 1)) - 1) != 0;
    increments(rc, b.neg, kept & 1 != 0, rbit, rest)
}

/// Rounds `b * 2^adjust` to an F80 under `rc` (extended precision, denormals in the gradual-underflow range).
pub(crate) fn round(b: Big, rc: RoundingMode, adjust: i32) -> Rounded {
    let sign = if b.neg { 0x8000u16 } else { 0 };
    if b.is_zero() {
        return Rounded {
            value: F80 { mant: 0, se: sign },
            up: false,
            tiny: false,
            overflow: false,
        };
    }
    let biased = i64::from(b.e) + 16383 + i64::from(adjust);
    // Tininess after rounding, as the arithmetic: the value rounded to 64 bits with an unbounded exponent is
    // below 2^-16382.
    let tiny = biased < 0 || (biased == 0 && !(b.m >> 64 == u128::from(u64::MAX) && rounds_up(b, rc, 64)));
    // Keep the bits down to the weight of the significand's lsb (at exponent 1 for denormals).
    let shift = 64 + (1 - biased).max(0);
    let (kept, rbit, rest) = if shift > 128 {
        (0u128, false, true)
    } else if shift == 128 {
        (0, true, b.m << 1 != 0)
    } else {
        (
            b.m >> shift,
            (b.m >> (shift - 1)) & 1 != 0,
            b.m & ((1u128 << (shift - 1)) - 1) != 0,
        )
    };
    let inc = increments(rc, b.neg, kept & 1 != 0, rbit, rest);
    let mut kept = kept + u128::from(inc);
    let mut biased = biased;
    if biased >= 1 && kept >> 64 != 0 {
        kept >>= 1;
        biased += 1;
    }
    if biased >= 0x7fff {
        let to_inf = match rc {
            RoundingMode::NearestEven => true,
            RoundingMode::TowardZero => false,
            RoundingMode::Up => !b.neg,
            RoundingMode::Down => b.neg,
        };
        let value = if to_inf {
            F80 {
                mant: 1 << 63,
                se: sign | 0x7fff,
            }
        } else {
            F80 {
                mant: u64::MAX,
                se: sign | 0x7ffe,
            }
        };
        return Rounded {
            value,
            up: to_inf,
            tiny: false,
            overflow: true,
        };
    }
    // A denormal whose rounding carried into the integer bit is the smallest normal (exponent field 1).
    let exp = if biased >= 1 {
        biased as u16
    } else {
        u16::from(kept >> 63 != 0)
    };
    Rounded {
        value: F80 {
            mant: kept as u64,
            se: sign | exp,
        },
        up: inc,
        tiny,
        overflow: false,
    }
}
