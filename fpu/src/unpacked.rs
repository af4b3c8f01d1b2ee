//! The one internal number representation, and the IEEE (f32/f64) encodings around it.

use crate::round::{round_pack, Format, Rounded, DOUBLE, SINGLE};
use crate::status::{flags, FloatStatus};

/// A non-NaN operand: NaNs never get this far because their propagation rules depend on
/// the raw encodings. Finite values are `sig * 2^exp` with `sig != 0`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Num {
    Zero(bool),
    Fin { sign: bool, exp: i32, sig: u64 },
    Inf(bool),
}

impl Num {
    pub(crate) fn sign(self) -> bool {
        match self {
            Num::Zero(s) | Num::Inf(s) => s,
            Num::Fin { sign, .. } => sign,
        }
    }

    pub(crate) fn negate(self) -> Num {
        match self {
            Num::Zero(s) => Num::Zero(!s),
            Num::Inf(s) => Num::Inf(!s),
            Num::Fin { sign, exp, sig } => Num::Fin { sign: !sign, exp, sig },
        }
    }
}

/// Result of an operation before rounding: exact apart from `sticky`, which stands for
/// nonzero bits below `sig`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Exact {
    Zero(bool),
    Inf(bool),
    /// Invalid operation without NaN operands: the caller substitutes its default NaN.
    Invalid,
    /// Finite nonzero divided by zero.
    DivZero(bool),
    Fin {
        sign: bool,
        exp: i32,
        sig: u128,
        sticky: bool,
    },
}

/// Bit layout of an IEEE binary interchange format held in the low bits of a u64.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ieee {
    pub frac: u32,
    pub expbits: u32,
    pub fmt: Format,
}

pub(crate) const F32: Ieee = Ieee {
    frac: 23,
    expbits: 8,
    fmt: SINGLE,
};
pub(crate) const F64: Ieee = Ieee {
    frac: 52,
    expbits: 11,
    fmt: DOUBLE,
};

impl Ieee {
    pub(crate) fn sign_mask(&self) -> u64 {
        1 << (self.frac + self.expbits)
    }
    pub(crate) fn exp_mask(&self) -> u64 {
        ((1 << self.expbits) - 1) << self.frac
    }
    pub(crate) fn frac_mask(&self) -> u64 {
        (1 << self.frac) - 1
    }
    pub(crate) fn quiet_bit(&self) -> u64 {
        1 << (self.frac - 1)
    }
    pub(crate) fn is_nan(&self, a: u64) -> bool {
        a & self.exp_mask() == self.exp_mask() && a & self.frac_mask() != 0
    }
    pub(crate) fn is_snan(&self, a: u64) -> bool {
        self.is_nan(a) && a & self.quiet_bit() == 0
    }
    pub(crate) fn is_denormal(&self, a: u64) -> bool {
        a & self.exp_mask() == 0 && a & self.frac_mask() != 0
    }
    /// x86's default ("real indefinite") NaN: negative, quiet, zero payload.
    pub(crate) fn default_nan(&self) -> u64 {
        self.sign_mask() | self.exp_mask() | self.quiet_bit()
    }
    pub(crate) fn sign(&self, a: u64) -> bool {
        a & self.sign_mask() != 0
    }

    /// Decodes a non-NaN value without side effects.
    pub(crate) fn decode(&self, a: u64) -> Num {
        let sign = self.sign(a);
        let e = ((a & self.exp_mask()) >> self.frac) as i32;
        let f = a & self.frac_mask();
        let bias = self.fmt.emax;
        if e == 0 {
            if f == 0 {
                Num::Zero(sign)
            } else {
                Num::Fin {
                    sign,
                    exp: 1 - bias - self.frac as i32,
                    sig: f,
                }
            }
        } else if a & self.exp_mask() == self.exp_mask() {
            Num::Inf(sign)
        } else {
            Num::Fin {
                sign,
                exp: e - bias - self.frac as i32,
                sig: f | (1 << self.frac),
            }
        }
    }

    /// Decodes an SSE operand: DAZ turns denormals into signed zero silently, otherwise a
    /// denormal raises DENORMAL.
    pub(crate) fn operand(&self, a: u64, st: &mut FloatStatus) -> Num {
        if self.is_denormal(a) {
            if st.daz {
                return Num::Zero(self.sign(a));
            }
            st.raise(flags::DENORMAL);
        }
        self.decode(a)
    }

    /// Like [`Ieee::operand`] but without the DENORMAL flag, for instructions that do not
    /// report it (conversions to integer, rounding to integral).
    pub(crate) fn operand_quiet(&self, a: u64, st: &FloatStatus) -> Num {
        if st.daz && self.is_denormal(a) {
            return Num::Zero(self.sign(a));
        }
        self.decode(a)
    }

    pub(crate) fn pack(&self, sign: bool, r: Rounded) -> u64 {
        let s = if sign { self.sign_mask() } else { 0 };
        match r {
            Rounded::Zero => s,
            Rounded::Inf => s | self.exp_mask(),
            Rounded::Finite { biased, sig } => s | (u64::from(biased) << self.frac) | (sig & self.frac_mask()),
        }
    }

    /// Rounds an exact result into this format, substituting the default NaN for invalid
    /// operations.
    pub(crate) fn finish(&self, e: Exact, st: &mut FloatStatus) -> u64 {
        match e {
            Exact::Zero(s) => self.pack(s, Rounded::Zero),
            Exact::Inf(s) => self.pack(s, Rounded::Inf),
            Exact::Invalid => {
                st.raise(flags::INVALID);
                self.default_nan()
            }
            Exact::DivZero(s) => {
                st.raise(flags::DIV_BY_ZERO);
                self.pack(s, Rounded::Inf)
            }
            Exact::Fin { sign, exp, sig, sticky } => {
                self.pack(sign, round_pack(sign, exp, sig, sticky, self.fmt, st, true))
            }
        }
    }

    /// SSE rule for NaN operands: an SNaN anywhere is invalid, and the result is the first
    /// NaN operand (in instruction operand order), quieted.
    pub(crate) fn propagate(&self, a: u64, b: u64, st: &mut FloatStatus) -> u64 {
        if self.is_snan(a) || self.is_snan(b) {
            st.raise(flags::INVALID);
        }
        let n = if self.is_nan(a) { a } else { b };
        n | self.quiet_bit()
    }
}
