//! Edge bit patterns of the IEEE formats the FP families feed to instructions (32-, 64- and the x87 80-bit
//! extended format), shared by the SSE FP, x87 and MMX generators: ±0, ±inf, quiet and signalling NaNs with
//! random payloads (the x87 also its default "real indefinite" NaN), denormals (smallest, largest, random; for
//! the 80-bit format also pseudo-denormals and unnormals), the smallest normal and the largest finite of both
//! signs, one, values that round to integer boundaries (±2^31, ±2^63 and one ulp either side, the
//! integer-indefinite boundaries of the conversions), halves (ties for rounding), and random finite values of
//! any exponent.

use super::SplitMix64;

/// One element width of the FP formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpFormat {
    /// binary32 (4 bytes).
    F32,
    /// binary64 (8 bytes).
    F64,
    /// x87 double-extended (10 bytes, explicit integer bit).
    F80,
}

impl FpFormat {
    /// Exponent bits, fraction bits (without an explicit integer bit) and the exponent bias.
    fn layout(self) -> (u32, u32, i64) {
        match self {
            FpFormat::F32 => (8, 23, 127),
            FpFormat::F64 => (11, 52, 1023),
            FpFormat::F80 => (15, 63, 16383),
        }
    }

    /// Bytes of one value.
    pub fn bytes(self) -> usize {
        match self {
            FpFormat::F32 => 4,
            FpFormat::F64 => 8,
            FpFormat::F80 => 10,
        }
    }
}

/// Assembles a value of `f` from sign, biased exponent and fraction (for F80 the fraction field includes the
/// explicit integer bit as its top bit, bit 63).
fn pack(f: FpFormat, sign: bool, exp: u64, frac: u64) -> u128 {
    let (eb, fb, _) = f.layout();
    let frac_bits = if f == FpFormat::F80 { 64 } else { fb };
    let frac_mask = if frac_bits == 64 {
        u64::MAX
    } else {
        (1u64 << frac_bits) - 1
    };
    (sign as u128) << (eb + frac_bits) | ((exp & ((1 << eb) - 1)) as u128) << frac_bits | (frac & frac_mask) as u128
}

/// A value of `f` near `2^k` (`k` unbiased) plus `delta` ulps of that binade (for the integer-conversion
/// boundaries).
fn power_of_two(f: FpFormat, sign: bool, k: i64, delta: i64) -> u128 {
    let (_, fb, bias) = f.layout();
    let one = if f == FpFormat::F80 { 1u64 << 63 } else { 0 };
    match delta {
        // One ulp below 2^k: the largest value of the binade below.
        d if d < 0 => {
            let all = if f == FpFormat::F80 { u64::MAX } else { (1u64 << fb) - 1 };
            pack(f, sign, (bias + k - 1) as u64, all)
        }
        d => pack(f, sign, (bias + k) as u64, one | d as u64),
    }
}

/// An edge (or random) value of format `f`, zero-extended.
pub fn fp_edge(rng: &mut SplitMix64, f: FpFormat) -> u128 {
    let (eb, fb, bias) = f.layout();
    let max_exp = (1u64 << eb) - 1;
    let sign = rng.one_in(2);
    // The explicit integer bit of the 80-bit format (zero for the others, which have none).
    let j = if f == FpFormat::F80 { 1u64 << 63 } else { 0 };
    let frac_mask = if f == FpFormat::F80 {
        (1u64 << 63) - 1
    } else {
        (1u64 << fb) - 1
    };
    let quiet = 1u64 << (if f == FpFormat::F80 { 62 } else { fb - 1 });
    let random_frac = rng.next_u64() & frac_mask;
    match rng.below(22) {
        0 => pack(f, sign, 0, 0),
        1 => pack(f, sign, max_exp, j),
        // Quiet NaN with a payload.
        2 => pack(f, sign, max_exp, j | quiet | (random_frac & (quiet - 1))),
        // Signalling NaN (payload nonzero).
        3 => pack(f, sign, max_exp, j | (random_frac & (quiet - 1)).max(1)),
        // The default NaN (x87 "real indefinite", SSE's QNaN default): negative, quiet, no payload.
        4 => pack(f, true, max_exp, j | quiet),
        // Denormals: smallest, largest, random.
        5 => pack(f, sign, 0, 1),
        6 => pack(f, sign, 0, frac_mask),
        7 => pack(f, sign, 0, random_frac.max(1)),
        // Smallest normal and largest finite.
        8 => pack(f, sign, 1, j),
        9 => pack(f, sign, max_exp - 1, j | frac_mask),
        // One, and halves (ties when rounding to integers).
        10 => pack(f, sign, bias as u64, j),
        11 => pack(f, sign, (bias - 1) as u64, j | rng.below(2) << (fb - 1)),
        12 => {
            let k = rng.pick(&[1i64, 2, 3, 10]);
            pack(f, sign, (bias + k) as u64, j | quiet >> k)
        }
        // Integer-indefinite boundaries of the conversions: ±2^15, ±2^31, ±2^63 and one ulp either side.
        13 | 14 => {
            let k = rng.pick(&[15i64, 16, 31, 32, 63, 64]);
            power_of_two(f, sign, k, rng.pick(&[-1i64, 0, 1]))
        }
        // 80-bit only encodings: pseudo-denormal (exponent 0, J set), unnormal (J clear), pseudo-NaN/-infinity.
        15 if f == FpFormat::F80 => pack(f, sign, 0, j | random_frac),
        16 if f == FpFormat::F80 => pack(f, sign, rng.below(max_exp - 1) + 1, random_frac),
        17 if f == FpFormat::F80 => pack(f, sign, max_exp, random_frac),
        // Small integers (exact conversions, fscale counts, fprem quotients).
        18 => {
            let n = rng.below(70);
            int_value(f, if sign { -(n as i64) } else { n as i64 })
        }
        // Random finite of any exponent.
        _ => pack(f, sign, rng.below(max_exp - 1) + 1, j | random_frac),
    }
}

/// The value of format `f` equal to the integer `n` (exact: `|n| < 2^24`).
pub fn int_value(f: FpFormat, n: i64) -> u128 {
    if n == 0 {
        return 0;
    }
    let (_, fb, bias) = f.layout();
    let m = n.unsigned_abs();
    let k = 63 - m.leading_zeros() as i64;
    let frac = if f == FpFormat::F80 {
        m << (63 - k)
    } else {
        (m << (fb as i64 - k)) & ((1u64 << fb) - 1)
    };
    pack(f, n < 0, (bias + k) as u64, frac)
}

/// A random MXCSR for an SSE FP case: any rounding mode, DAZ and FTZ, a random subset of sticky flags, and
/// random masks (all masked half the time, so results are compared, otherwise each exception unmasked with
/// probability one half, so #XM happens). Never reserved bits (bit 17 included: AMD's misaligned-SSE mode).
pub fn random_mxcsr(rng: &mut SplitMix64) -> u32 {
    let flags = if rng.one_in(2) { 0 } else { rng.next_u64() as u32 & 0x3f };
    let masks = if rng.one_in(2) {
        0x3f
    } else {
        rng.next_u64() as u32 & 0x3f
    };
    let rc = rng.below(4) as u32;
    let daz = rng.below(2) as u32;
    let ftz = rng.below(2) as u32;
    ftz << 15 | rc << 13 | masks << 7 | daz << 6 | flags
}

/// A random x87 control word: any rounding and precision control (including the reserved precision value 1),
/// masks as [`random_mxcsr`] draws them, bit 6 set (it reads as 1 on every CPU), the rest zero.
pub fn random_fcw(rng: &mut SplitMix64) -> u16 {
    let masks = if rng.one_in(2) {
        0x3f
    } else {
        rng.next_u64() as u16 & 0x3f
    };
    let pc = rng.below(4) as u16;
    let rc = rng.below(4) as u16;
    rc << 10 | pc << 8 | 0x40 | masks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_patterns() {
        assert_eq!(int_value(FpFormat::F32, 1), 0x3f80_0000);
        assert_eq!(int_value(FpFormat::F64, -3), 0xc008_0000_0000_0000);
        assert_eq!(int_value(FpFormat::F80, 1), 0x3fff_8000_0000_0000_0000);
        assert_eq!(power_of_two(FpFormat::F32, false, 31, 0), 0x4f00_0000);
        assert_eq!(power_of_two(FpFormat::F32, false, 31, -1), 0x4eff_ffff);
        assert_eq!(power_of_two(FpFormat::F80, true, 63, 1), 0xc03e_8000_0000_0000_0001);
    }

    #[test]
    fn edges_fit_their_format_and_cover_the_classes() {
        let mut rng = SplitMix64(5);
        for f in [FpFormat::F32, FpFormat::F64, FpFormat::F80] {
            let mut classes = std::collections::HashSet::new();
            for _ in 0..5000 {
                let v = fp_edge(&mut rng, f);
                assert_eq!(v >> (8 * f.bytes()), 0, "{f:?} {v:x}");
                let (eb, fb, _) = f.layout();
                let frac_bits = if f == FpFormat::F80 { 64 } else { fb };
                let exp = (v >> frac_bits) as u64 & ((1 << eb) - 1);
                let frac = v & ((1u128 << frac_bits) - 1);
                classes.insert(match (exp, frac) {
                    (0, 0) => "zero",
                    (0, _) => "denormal",
                    (e, _) if e == (1 << eb) - 1 => "inf-nan",
                    _ => "normal",
                });
            }
            assert_eq!(classes.len(), 4, "{f:?}: {classes:?}");
        }
        for _ in 0..1000 {
            let m = random_mxcsr(&mut rng);
            assert_eq!(m & !0xffff, 0);
            let c = random_fcw(&mut rng);
            assert_eq!(c & 0xf080, 0);
        }
    }
}
