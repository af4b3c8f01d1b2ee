//! Shared helpers for the differential tests: a deterministic PRNG, operand generators
//! biased toward the interesting corners, and mismatch bookkeeping.
#![allow(dead_code)]

/// xorshift64*: tiny, deterministic, good enough to scatter bits.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// Layout of an IEEE format for generation purposes.
#[derive(Clone, Copy)]
pub struct Layout {
    pub frac: u32,
    pub expbits: u32,
}

pub const L32: Layout = Layout { frac: 23, expbits: 8 };
pub const L64: Layout = Layout { frac: 52, expbits: 11 };

impl Layout {
    fn bias(self) -> u64 {
        (1 << (self.expbits - 1)) - 1
    }
    fn emax_field(self) -> u64 {
        (1 << self.expbits) - 1
    }
    fn all(self) -> u64 {
        u64::MAX >> (63 - self.frac - self.expbits)
    }
    fn fmask(self) -> u64 {
        (1 << self.frac) - 1
    }
    fn make(self, sign: bool, e: u64, f: u64) -> u64 {
        ((sign as u64) << (self.frac + self.expbits)) | (e << self.frac) | (f & self.fmask())
    }
    /// Special and boundary values of this format (both signs are added by the caller).
    pub fn edges(self) -> Vec<u64> {
        let b = self.bias();
        let q = 1 << (self.frac - 1);
        let m = self.fmask();
        let mut v = vec![
            0,
            self.make(false, self.emax_field(), 0),
            self.make(false, self.emax_field(), q),
            self.make(false, self.emax_field(), q | 0x1234),
            self.make(false, self.emax_field(), 1),
            self.make(false, self.emax_field(), 0x2345),
            self.make(false, self.emax_field(), m),
            1,
            m,
            1 << self.frac,
            self.make(false, 1, 1),
            self.make(false, self.emax_field() - 1, m),
            self.make(false, self.emax_field() - 1, 0),
            self.make(false, b, 0),
            self.make(false, b, 1),
            self.make(false, b - 1, m),
            self.make(false, b, q),
            self.make(false, b - 1, 0),
        ];
        for k in [15u64, 16, 31, 32, 62, 63, 64] {
            v.push(self.make(false, b + k, 0));
            v.push(self.make(false, b + k, 1));
            v.push(self.make(false, b + k - 1, m));
            v.push(self.make(false, b + k - 1, m - 1));
        }
        v
    }

    /// A random operand: edge values, tiny numbers, moderate numbers and raw bit noise.
    pub fn gen(self, r: &mut Rng) -> u64 {
        let sign = r.chance(2);
        let s = (sign as u64) << (self.frac + self.expbits);
        match r.below(8) {
            0 => {
                let e = self.edges();
                s | e[r.below(e.len() as u64) as usize]
            }
            1 => self.make(sign, r.below(3), mantissa(r, self.frac)),
            2 => self.make(sign, self.emax_field() - 1 - r.below(3), mantissa(r, self.frac)),
            3 | 4 => self.make(sign, self.bias() - 40 + r.below(80), mantissa(r, self.frac)),
            5 => self.make(sign, self.bias() + r.below(66), mantissa(r, self.frac)),
            _ => r.next() & self.all(),
        }
    }

    /// A second operand related to the first, to hit cancellation, ties and near-overflow.
    pub fn gen_pair(self, r: &mut Rng, a: u64) -> u64 {
        let all = self.all();
        match r.below(6) {
            0 => a.wrapping_add(r.below(5)).wrapping_sub(2) & all,
            1 => (a ^ (1 << (self.frac + self.expbits))) & all,
            2 => {
                let shift = r.below(self.frac as u64 + 3) << self.frac;
                (a.wrapping_sub(shift) & all) ^ (r.below(4) & all)
            }
            _ => self.gen(r),
        }
    }
}

/// Significands with long runs of ones or zeros, which is where rounding gets interesting.
pub fn mantissa(r: &mut Rng, bits: u32) -> u64 {
    let mask = if bits == 64 { u64::MAX } else { (1 << bits) - 1 };
    let v = match r.below(4) {
        0 => r.next(),
        1 => !(r.next() >> r.below(64)) ^ r.below(4),
        2 => (r.next() >> r.below(64)) ^ (1 << r.below(64)),
        _ => u64::MAX << r.below(64),
    };
    v & mask
}

/// Counts cases and keeps the first few mismatches for the failure message.
pub struct Report {
    name: String,
    cases: u64,
    mismatches: u64,
    first: Vec<String>,
}

impl Report {
    pub fn new(name: &str) -> Self {
        Report {
            name: name.to_string(),
            cases: 0,
            mismatches: 0,
            first: Vec::new(),
        }
    }
    pub fn check(&mut self, ok: bool, detail: impl FnOnce() -> String) {
        self.cases += 1;
        if !ok {
            self.mismatches += 1;
            if self.first.len() < 12 {
                self.first.push(detail());
            }
        }
    }
    pub fn finish(self) {
        println!("{}: cases={} mismatches={}", self.name, self.cases, self.mismatches);
        assert!(
            self.mismatches == 0,
            "{}: {} of {} cases mismatch; first:\n{}",
            self.name,
            self.mismatches,
            self.cases,
            self.first.join("\n")
        );
    }
}
