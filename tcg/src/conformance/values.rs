//! Inputs: the edge values every op is tried on, and a small seeded PRNG for the random ones.
//!
//! Everything is deterministic: a seed is derived from the op, its type and its constant arguments, so a case
//! does not change when another op is added to the suite.

use crate::opcodes::Opcode;
use crate::types::Type;

/// SplitMix64: tiny, fast, and good enough to scatter test inputs; no external crate needed.
#[derive(Clone, Debug)]
pub(super) struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator whose stream depends only on the op, its type and its constants.
    pub(super) fn for_op(opc: Opcode, ty: Type, consts: &[u64]) -> Rng {
        let mut seed = 0x5eed_0fc0_ffee_u64 ^ ((opc as u64) << 8) ^ ty.bits() as u64;
        for (i, &c) in consts.iter().enumerate() {
            seed = seed.rotate_left(17) ^ c.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64;
        }
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`); the slight bias is irrelevant here.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A random value of `ty`, biased towards the shapes that break code: uniformly random bits rarely
    /// produce small numbers, sign-extended negatives or long runs of ones.
    pub(super) fn value(&mut self, ty: Type) -> u64 {
        let r = self.next_u64();
        let v = match self.below(6) {
            0 => r & 0xff,
            1 => (r & 0xff).wrapping_neg(),
            2 => r >> self.below(64),
            3 => r << self.below(64),
            _ => r,
        };
        v & ty.mask()
    }
}

/// `v` reinterpreted at `ty`: negative numbers written as `i64` become that type's two's complement.
fn at(ty: Type, v: i64) -> u64 {
    v as u64 & ty.mask()
}

/// Smallest and largest signed values of `ty`.
fn min_max(ty: Type) -> (u64, u64) {
    let min = 1u64 << (ty.bits() - 1);
    (min, min - 1)
}

fn dedup(mut v: Vec<u64>) -> Vec<u64> {
    let mut seen = Vec::with_capacity(v.len());
    v.retain(|x| {
        if seen.contains(x) {
            false
        } else {
            seen.push(*x);
            true
        }
    });
    v
}

/// The values next to every boundary an implementation may get wrong, without the single-bit values.
pub(super) fn small_edges(ty: Type) -> Vec<u64> {
    let (min, max) = min_max(ty);
    let m = ty.mask();
    dedup(vec![
        0,
        1,
        2,
        at(ty, -1),
        at(ty, -2),
        min,
        max,
        min + 1,
        max - 1,
        0x5555_5555_5555_5555 & m,
        0xaaaa_aaaa_aaaa_aaaa & m,
        0x8000,
        0xffff,
        0x8000_0000 & m,
        0xffff_ffff,
        0x0123_4567_89ab_cdef & m,
    ])
}

/// [`small_edges`] plus every single-bit value `1 << k`.
pub(super) fn edges(ty: Type) -> Vec<u64> {
    let mut v = small_edges(ty);
    v.extend((0..ty.bits()).map(|k| 1u64 << k));
    dedup(v)
}

/// Operands for comparisons: values on both sides of the signed and unsigned boundaries.
pub(super) fn compare_edges(ty: Type) -> Vec<u64> {
    let mut v = small_edges(ty);
    v.extend([3, 0x7f, 0x80, at(ty, -0x80), at(ty, -0x81)]);
    dedup(v)
}

/// Second operands of shifts and rotates: every count `0..2 * width`, then values whose low bits are a valid
/// count but whose high bits are not zero (the count is taken modulo the width).
pub(super) fn shift_counts(ty: Type) -> Vec<u64> {
    let bits = ty.bits() as u64;
    let mut v: Vec<u64> = (0..2 * bits).collect();
    v.extend([at(ty, -1), at(ty, -2), 0x100 | 3, (1u64 << (bits - 1)) | 5]);
    dedup(v)
}

/// Values as `[0x1, 0xff]` for failure messages.
pub(super) fn hex(vals: &[u64]) -> String {
    let items: Vec<String> = vals.iter().map(|v| format!("0x{v:x}")).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_fit_their_type_and_are_distinct() {
        for ty in [Type::I32, Type::I64] {
            let e = edges(ty);
            assert!(e.iter().all(|&v| v & !ty.mask() == 0));
            assert_eq!(dedup(e.clone()).len(), e.len());
            assert!(e.contains(&(1u64 << (ty.bits() - 1))));
        }
    }

    #[test]
    fn rng_is_deterministic() {
        let a: Vec<u64> = (0..4).scan(Rng::new(1), |r, _| Some(r.next_u64())).collect();
        let b: Vec<u64> = (0..4).scan(Rng::new(1), |r, _| Some(r.next_u64())).collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
