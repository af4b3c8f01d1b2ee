//! The SSE4.2 string comparisons pcmpestri/pcmpestrm/pcmpistri/pcmpistrm (Intel SDM vol. 2, "Packed
//! Compare String" and its section 4.1 on the imm8 control byte), computed on bytes.
//!
//! imm8: bits 1:0 element format (unsigned bytes, unsigned words, signed bytes, signed words), bits 3:2
//! aggregation (equal any, ranges, equal each, equal ordered), bits 5:4 polarity (positive, negative, masked
//! positive, masked negative), bit 6 the output selection (index: most instead of least significant; mask:
//! element mask instead of bit mask).

/// What one comparison produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrResult {
    /// IntRes2, one bit per element.
    pub res: u32,
    /// The index (ecx) form's result.
    pub index: u32,
    /// The mask (xmm0) form's result.
    pub mask: u128,
    /// EFLAGS bits: CF, ZF, SF, OF (AF and PF clear).
    pub flags: u64,
}

fn elem(v: &[u8; 16], words: bool, signed: bool, i: usize) -> i64 {
    if words {
        let x = u16::from_le_bytes([v[2 * i], v[2 * i + 1]]);
        if signed {
            i64::from(x as i16)
        } else {
            i64::from(x)
        }
    } else if signed {
        i64::from(v[i] as i8)
    } else {
        i64::from(v[i])
    }
}

/// The implicit length of `v`: the index of its first zero element, or the element count.
pub fn implicit_len(v: &[u8; 16], words: bool) -> usize {
    let n = if words { 8 } else { 16 };
    (0..n).find(|&i| elem(v, words, false, i) == 0).unwrap_or(n)
}

/// An explicit length register's value as the instruction reads it: its absolute value, at most the element
/// count (`wide`: the 64-bit register, else its low 32 bits, both signed).
pub fn explicit_len(reg: u64, wide: bool, words: bool) -> usize {
    let n: u64 = if words { 8 } else { 16 };
    let v = if wide { reg as i64 } else { i64::from(reg as i32) };
    v.unsigned_abs().min(n) as usize
}

/// Compares `a` (the first operand, `la` valid elements) with `b` (the second, `lb` valid) under `imm`.
pub fn compare(a: &[u8; 16], la: usize, b: &[u8; 16], lb: usize, imm: u8) -> StrResult {
    let words = imm & 1 != 0;
    let signed = imm & 2 != 0;
    let n = if words { 8 } else { 16 };
    let ea = |i: usize| elem(a, words, signed, i);
    let eb = |i: usize| elem(b, words, signed, i);
    let mut res1: u32 = 0;
    for j in 0..n {
        let hit = match (imm >> 2) & 3 {
            0 => j < lb && (0..la).any(|i| ea(i) == eb(j)),
            1 => j < lb && (0..la / 2).any(|k| ea(2 * k) <= eb(j) && eb(j) <= ea(2 * k + 1)),
            2 => match (j < la, j < lb) {
                (true, true) => ea(j) == eb(j),
                (false, false) => true,
                _ => false,
            },
            _ => (0..n - j).all(|i| {
                let k = j + i;
                match (i < la, k < lb) {
                    (false, _) => true,
                    (true, false) => false,
                    (true, true) => ea(i) == eb(k),
                }
            }),
        };
        res1 |= u32::from(hit) << j;
    }
    let all = (1u32 << n) - 1;
    let valid_b = (1u32 << lb) - 1;
    let res = match (imm >> 4) & 3 {
        1 => !res1 & all,
        3 => (res1 ^ valid_b) & all,
        _ => res1,
    };
    let index = if res == 0 {
        n as u32
    } else if imm & 0x40 != 0 {
        31 - res.leading_zeros()
    } else {
        res.trailing_zeros()
    };
    let mask = if imm & 0x40 != 0 {
        let width = if words { 16 } else { 8 };
        (0..n)
            .filter(|&i| res >> i & 1 != 0)
            .fold(0u128, |m, i| m | (((1u128 << width) - 1) << (width * i)))
    } else {
        u128::from(res)
    };
    let mut flags = 0;
    if res != 0 {
        flags |= 1; // CF
    }
    if lb < n {
        flags |= 0x40; // ZF
    }
    if la < n {
        flags |= 0x80; // SF
    }
    if res & 1 != 0 {
        flags |= 0x800; // OF
    }
    StrResult {
        res,
        index,
        mask,
        flags,
    }
}
