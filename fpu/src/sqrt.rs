//! Correctly rounded square root by exact integer square root.

use crate::unpacked::{Exact, Num};

/// Integer square root with remainder, bit by bit (the result fits in 64 bits).
fn isqrt(n: u128) -> (u128, u128) {
    let mut rem = n;
    let mut root: u128 = 0;
    let mut bit: u128 = 1 << 126;
    while bit > rem {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    (root, rem)
}

pub(crate) fn sqrt(a: Num) -> Exact {
    match a {
        Num::Zero(s) => Exact::Zero(s),
        Num::Inf(false) => Exact::Inf(false),
        Num::Inf(true) | Num::Fin { sign: true, .. } => Exact::Invalid,
        Num::Fin { exp, sig, .. } => {
            let n = sig as u128;
            let lz = n.leading_zeros();
            let mut n = n << lz;
            let mut e = exp as i64 - lz as i64;
            if e & 1 != 0 {
                // The low 64 bits are zero, so nothing is lost.
                n >>= 1;
                e += 1;
            }
            let (root, rem) = isqrt(n);
            // sqrt(n) is never exactly root + 1/2, so "rem > root" is the half bit and any
            // nonzero remainder makes the tail nonzero.
            let half = (rem > root) as u128;
            let tail = (rem != 0) as u128;
            Exact::Fin {
                sign: false,
                exp: (e / 2 - 2) as i32,
                sig: (root << 2) | (half << 1) | tail,
                sticky: false,
            }
        }
    }
}
