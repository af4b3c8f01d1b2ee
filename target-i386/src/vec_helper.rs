//! Bodies of the SSE/SSSE3/SSE4 integer, logic and shuffle instructions and of their MMX forms (QEMU's
//! `ops_sse.h` counterpart), reached through one helper, [`helper_vec_op`].
//!
//! Operands are named by byte offsets in [`X86CpuState`]: an XMM register, an MMX register (the low 8 bytes of
//! an x87 slot) or the scratch slot [`X86CpuState::xmm_t0`] into which generated code already loaded a memory
//! source (so every guest access, and its fault, happened before the helper). The helper reads 16 bytes at
//! each offset (every slot is 16 bytes long) and writes back the operation's width: 8 bytes for MMX, 16 for
//! XMM. It never faults.
//!
//! The operation word is `kind << 8 | lane_bytes`, plus [`MMX`] for 64-bit operands; see [`op`].

use crate::cpu::X86CpuState;

/// Operation word flag: MMX (64-bit) operands.
pub const MMX: u64 = 1 << 16;

/// Operation kinds (shifted left by 8 and or-ed with the lane size in bytes, 1/2/4/8, where it matters).
pub mod op {
    /// Wrapping add.
    pub const ADD: u64 = 1;
    /// Wrapping subtract.
    pub const SUB: u64 = 2;
    /// Signed saturating add.
    pub const ADDS: u64 = 3;
    /// Unsigned saturating add.
    pub const ADDUS: u64 = 4;
    /// Signed saturating subtract.
    pub const SUBS: u64 = 5;
    /// Unsigned saturating subtract.
    pub const SUBUS: u64 = 6;
    /// Low half of the product (pmullw, pmulld).
    pub const MULLO: u64 = 7;
    /// High half of the signed product (pmulhw).
    pub const MULHS: u64 = 8;
    /// High half of the unsigned product (pmulhuw).
    pub const MULHU: u64 = 9;
    /// Rounded unsigned average (pavgb/pavgw).
    pub const AVG: u64 = 10;
    /// Unsigned minimum.
    pub const MINU: u64 = 11;
    /// Unsigned maximum.
    pub const MAXU: u64 = 12;
    /// Signed minimum.
    pub const MINS: u64 = 13;
    /// Signed maximum.
    pub const MAXS: u64 = 14;
    /// All-ones where equal.
    pub const CMPEQ: u64 = 15;
    /// All-ones where signed greater.
    pub const CMPGT: u64 = 16;
    /// psign: negate, keep or zero by the source's sign.
    pub const SIGN: u64 = 17;
    /// pmulhrsw: rounded high product, scaled.
    pub const MULHRS: u64 = 18;
    /// pabs: absolute value of the source.
    pub const ABS: u64 = 19;
    /// Bitwise and.
    pub const AND: u64 = 20;
    /// Bitwise and-not (`!dst & src`).
    pub const ANDN: u64 = 21;
    /// Bitwise or.
    pub const OR: u64 = 22;
    /// Bitwise xor.
    pub const XOR: u64 = 23;
    /// Logical left shift by the source's low quadword (imm forms: the translator stores the count there).
    pub const SLL: u64 = 24;
    /// Logical right shift.
    pub const SRL: u64 = 25;
    /// Arithmetic right shift.
    pub const SRA: u64 = 26;
    /// pmuludq: unsigned 32x32->64 of the even dwords.
    pub const MULUDQ: u64 = 27;
    /// pmuldq: signed 32x32->64 of the even dwords.
    pub const MULDQ: u64 = 28;
    /// pmaddwd.
    pub const MADDWD: u64 = 29;
    /// pmaddubsw.
    pub const MADDUBSW: u64 = 30;
    /// psadbw.
    pub const SADBW: u64 = 31;
    /// Signed saturating pack of lanes of this size into halves (packsswb: 2, packssdw: 4).
    pub const PACKSS: u64 = 32;
    /// Unsigned saturating pack of signed lanes (packuswb: 2, packusdw: 4).
    pub const PACKUS: u64 = 33;
    /// Interleave the low halves (punpckl*, unpcklps/pd).
    pub const UNPCKL: u64 = 34;
    /// Interleave the high halves.
    pub const UNPCKH: u64 = 35;
    /// pshufb.
    pub const PSHUFB: u64 = 36;
    /// Horizontal add (phaddw/phaddd).
    pub const HADD: u64 = 37;
    /// Horizontal subtract.
    pub const HSUB: u64 = 38;
    /// Horizontal signed saturating add of words.
    pub const HADDS: u64 = 39;
    /// Horizontal signed saturating subtract of words.
    pub const HSUBS: u64 = 40;
    /// palignr by imm bytes.
    pub const PALIGNR: u64 = 41;
    /// pslldq by imm bytes.
    pub const SLLDQ: u64 = 42;
    /// psrldq by imm bytes.
    pub const SRLDQ: u64 = 43;
    /// pshufd / pshufw (dword or word selectors over the whole source).
    pub const PSHUF: u64 = 44;
    /// pshuflw.
    pub const PSHUFLW: u64 = 45;
    /// pshufhw.
    pub const PSHUFHW: u64 = 46;
    /// shufps (4) / shufpd (8).
    pub const SHUFP: u64 = 47;
    /// Sign-bit mask of the source's lanes, returned (pmovmskb, movmskps/pd).
    pub const MOVMSK: u64 = 48;
    /// Insert the helper's `extra` argument at lane `imm` (pinsrb/w/d/q).
    pub const PINSR: u64 = 49;
    /// Return the source's lane `imm`, zero-extended (pextr*, extractps).
    pub const PEXTR: u64 = 50;
    /// Blend by immediate bits (pblendw, blendps, blendpd).
    pub const BLENDI: u64 = 51;
    /// Blend by the sign bits of XMM0's lanes (pblendvb, blendvps, blendvpd).
    pub const BLENDV: u64 = 52;
    /// Sign extension from lanes of this size; `imm` is the destination lane size (pmovsx*).
    pub const PMOVSX: u64 = 53;
    /// Zero extension (pmovzx*).
    pub const PMOVZX: u64 = 54;
    /// ptest: returns ZF/CF as EFLAGS bits, writes nothing.
    pub const PTEST: u64 = 55;
    /// insertps with imm.
    pub const INSERTPS: u64 = 56;
    /// phminposuw.
    pub const PHMINPOSUW: u64 = 57;
    /// mpsadbw with imm.
    pub const MPSADBW: u64 = 58;
    /// crc32 (CRC32C) of `extra`'s low lane-size bytes into the CRC `imm`; returns it, touches no vector.
    pub const CRC32: u64 = 59;
    /// pcmpestri/pcmpestrm/pcmpistri/pcmpistrm ([`crate::pcmpstr`]); the low byte holds [`STR_MASK`],
    /// [`STR_EXPLICIT`] and [`STR_WIDE`] instead of a lane size. Returns the EFLAGS bits, and the index in bits
    /// 16..; the mask forms write XMM0.
    pub const PCMPSTR: u64 = 60;
    /// PCMPSTR flag: the mask form (result in XMM0).
    pub const STR_MASK: u64 = 1;
    /// PCMPSTR flag: explicit lengths in rax/rdx (the helper reads them from the state).
    pub const STR_EXPLICIT: u64 = 2;
    /// PCMPSTR flag: REX.W, 64-bit length registers.
    pub const STR_WIDE: u64 = 4;
}

/// 16 bytes at `off` in the state.
///
/// # Safety
/// `env` points to an [`X86CpuState`] and `off` is a 16-byte slot within it.
unsafe fn read16(env: *const u8, off: u64) -> [u8; 16] {
    // SAFETY: the caller's promise.
    unsafe { core::ptr::read_unaligned(env.add(off as usize).cast::<[u8; 16]>()) }
}

fn lane(v: &[u8; 16], sz: usize, i: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..sz].copy_from_slice(&v[i * sz..i * sz + sz]);
    u64::from_le_bytes(b)
}

fn set_lane(v: &mut [u8; 16], sz: usize, i: usize, x: u64) {
    v[i * sz..i * sz + sz].copy_from_slice(&x.to_le_bytes()[..sz]);
}

fn sext(x: u64, sz: usize) -> i64 {
    let sh = 64 - 8 * sz as u32;
    ((x << sh) as i64) >> sh
}

fn mask(sz: usize) -> u64 {
    if sz == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * sz)) - 1
    }
}

/// `x` saturated to a signed `sz`-byte lane (i128: no intermediate sum or product can overflow).
fn sat_s(x: i128, sz: usize) -> u64 {
    let bits = 8 * sz as u32;
    let max = (1i128 << (bits - 1)) - 1;
    let min = -(1i128 << (bits - 1));
    x.clamp(min, max) as u64 & mask(sz)
}

/// `x` saturated to an unsigned `sz`-byte lane.
fn sat_u(x: i128, sz: usize) -> u64 {
    x.clamp(0, i128::from(mask(sz))) as u64
}

/// The shift count, as the 64-bit value of the source's low quadword.
fn shift(kind: u64, d: u64, count: u64, sz: usize) -> u64 {
    let bits = 8 * sz as u64;
    match kind {
        op::SLL if count < bits => (d << count) & mask(sz),
        op::SRL if count < bits => d >> count,
        op::SRA => (sext(d, sz) >> count.min(bits - 1)) as u64 & mask(sz),
        _ => 0,
    }
}

/// One lane of a lane-wise operation; `None` for kinds that are not lane-wise.
fn lanewise(kind: u64, d: u64, s: u64, sz: usize) -> Option<u64> {
    // Wide enough for every sum and product of two 64-bit lanes.
    let (ds, ss) = (i128::from(sext(d, sz)), i128::from(sext(s, sz)));
    let (du, su) = (i128::from(d), i128::from(s));
    let m = mask(sz);
    let bits = 8 * sz as u32;
    Some(match kind {
        op::ADD => d.wrapping_add(s) & m,
        op::SUB => d.wrapping_sub(s) & m,
        op::ADDS => sat_s(ds + ss, sz),
        op::ADDUS => sat_u(du + su, sz),
        op::SUBS => sat_s(ds - ss, sz),
        op::SUBUS => sat_u(du - su, sz),
        op::MULLO => (ds * ss) as u64 & m,
        op::MULHS => ((ds * ss) >> bits) as u64 & m,
        op::MULHU => ((du * su) >> bits) as u64 & m,
        op::AVG => ((du + su + 1) >> 1) as u64,
        op::MINU => d.min(s),
        op::MAXU => d.max(s),
        op::MINS => ds.min(ss) as u64 & m,
        op::MAXS => ds.max(ss) as u64 & m,
        op::CMPEQ => {
            if d == s {
                m
            } else {
                0
            }
        }
        op::CMPGT => {
            if ds > ss {
                m
            } else {
                0
            }
        }
        op::SIGN => match ss.signum() {
            -1 => d.wrapping_neg() & m,
            0 => 0,
            _ => d,
        },
        op::MULHRS => ((((ds * ss) >> 14) + 1) >> 1) as u64 & m,
        op::ABS => ss.unsigned_abs() as u64 & m,
        op::AND => d & s,
        op::ANDN => !d & s,
        op::OR => d | s,
        op::XOR => d ^ s,
        op::MULUDQ => (d & 0xffff_ffff) * (s & 0xffff_ffff),
        op::MULDQ => (i64::from(d as i32) * i64::from(s as i32)) as u64,
        op::MADDWD => {
            let p = |x: u64, sh: u32| i64::from((x >> sh) as i16);
            ((p(d, 0) * p(s, 0) + p(d, 16) * p(s, 16)) as u64) & m
        }
        op::MADDUBSW => {
            let p = |sh: u32| i128::from((d >> sh) as u8) * i128::from((s >> sh) as i8);
            sat_s(p(0) + p(8), 2)
        }
        op::SADBW => (0..8)
            .map(|i| ((d >> (8 * i)) as u8).abs_diff((s >> (8 * i)) as u8) as u64)
            .sum(),
        _ => return None,
    })
}

/// Horizontal operation on adjacent pairs of `v`'s lanes.
fn horizontal(kind: u64, a: u64, b: u64, sz: usize) -> u64 {
    let (x, y) = (i128::from(sext(a, sz)), i128::from(sext(b, sz)));
    match kind {
        op::HADD => a.wrapping_add(b) & mask(sz),
        op::HSUB => a.wrapping_sub(b) & mask(sz),
        op::HADDS => sat_s(x + y, sz),
        _ => sat_s(x - y, sz),
    }
}

/// Computes operation `word` on `d` (destination, written in place: its first 8 bytes for MMX, all 16 for
/// XMM) and `s` (source); `xmm0` is XMM0 (the blendv masks). Returns the helper's result.
pub(crate) fn vec_op(word: u64, d: &mut [u8; 16], s: &[u8; 16], xmm0: &[u8; 16], imm: u64, extra: u64) -> u64 {
    let n = if word & MMX != 0 { 8 } else { 16 };
    let kind = (word >> 8) & 0xff;
    let sz = match (word & 0xff) as usize {
        sz @ (1 | 2 | 4 | 8) => sz,
        _ => 1,
    };
    let lanes = n / sz;
    let src = *s;
    let dst = *d;
    let mut r = [0u8; 16];
    match kind {
        op::SLL | op::SRL | op::SRA => {
            let count = lane(&src, 8, 0);
            for i in 0..lanes {
                set_lane(&mut r, sz, i, shift(kind, lane(&dst, sz, i), count, sz));
            }
        }
        op::PACKSS | op::PACKUS => {
            let half = lanes;
            let out = sz / 2;
            if out == 0 {
                return 0; // no byte-to-nibble pack: not an operation
            }
            for i in 0..lanes * 2 {
                let (v, j) = if i < half { (&dst, i) } else { (&src, i - half) };
                let x = i128::from(sext(lane(v, sz, j), sz));
                let y = if kind == op::PACKSS {
                    sat_s(x, out)
                } else {
                    sat_u(x, out)
                };
                set_lane(&mut r, out, i, y);
            }
        }
        op::UNPCKL | op::UNPCKH => {
            let base = if kind == op::UNPCKL { 0 } else { lanes / 2 };
            for i in 0..lanes / 2 {
                set_lane(&mut r, sz, 2 * i, lane(&dst, sz, base + i));
                set_lane(&mut r, sz, 2 * i + 1, lane(&src, sz, base + i));
            }
        }
        op::PSHUFB => {
            for i in 0..n {
                let c = src[i];
                r[i] = if c & 0x80 != 0 { 0 } else { dst[c as usize & (n - 1)] };
            }
        }
        op::HADD | op::HSUB | op::HADDS | op::HSUBS => {
            let half = lanes / 2;
            for i in 0..lanes {
                let (v, j) = if i < half { (&dst, i) } else { (&src, i - half) };
                let y = horizontal(kind, lane(v, sz, 2 * j), lane(v, sz, 2 * j + 1), sz);
                set_lane(&mut r, sz, i, y);
            }
        }
        op::PALIGNR => {
            // The 2n-byte concatenation dst:src shifted right by imm bytes.
            let mut cat = [0u8; 32];
            cat[..n].copy_from_slice(&src[..n]);
            cat[n..2 * n].copy_from_slice(&dst[..n]);
            for (i, b) in r.iter_mut().enumerate().take(n) {
                let k = i + imm as usize;
                *b = if k < 2 * n { cat[k] } else { 0 };
            }
        }
        op::SLLDQ | op::SRLDQ => {
            let k = imm.min(16) as usize;
            for i in 0..16 {
                r[i] = if kind == op::SLLDQ {
                    if i >= k {
                        dst[i - k]
                    } else {
                        0
                    }
                } else if i + k < 16 {
                    dst[i + k]
                } else {
                    0
                };
            }
        }
        op::PSHUF => {
            for i in 0..lanes {
                set_lane(&mut r, sz, i, lane(&src, sz, ((imm >> (2 * i)) as usize & 3) % lanes));
            }
        }
        op::PSHUFLW | op::PSHUFHW => {
            r = src;
            let base = if kind == op::PSHUFLW { 0 } else { 4 };
            for i in 0..4 {
                set_lane(
                    &mut r,
                    2,
                    base + i,
                    lane(&src, 2, base + ((imm >> (2 * i)) as usize & 3)),
                );
            }
        }
        op::SHUFP => {
            if sz == 4 {
                for i in 0..4 {
                    let v = if i < 2 { &dst } else { &src };
                    set_lane(&mut r, 4, i, lane(v, 4, (imm >> (2 * i)) as usize & 3));
                }
            } else {
                set_lane(&mut r, 8, 0, lane(&dst, 8, imm as usize & 1));
                set_lane(&mut r, 8, 1, lane(&src, 8, (imm >> 1) as usize & 1));
            }
        }
        op::MOVMSK => {
            return (0..lanes).fold(0, |m, i| m | (lane(&src, sz, i) >> (8 * sz - 1)) << i);
        }
        op::PEXTR => return lane(&src, sz, imm as usize & (lanes - 1)),
        op::PINSR => {
            r = dst;
            set_lane(&mut r, sz, imm as usize & (lanes - 1), extra & mask(sz));
        }
        op::BLENDI | op::BLENDV => {
            for i in 0..lanes {
                let pick = if kind == op::BLENDI {
                    imm >> i & 1 != 0
                } else {
                    lane(xmm0, sz, i) >> (8 * sz - 1) != 0
                };
                set_lane(&mut r, sz, i, lane(if pick { &src } else { &dst }, sz, i));
            }
        }
        op::PMOVSX | op::PMOVZX => {
            let to = match imm {
                2 | 4 | 8 => imm as usize,
                _ => 2,
            };
            // Never more source lanes than the register holds, whatever the word says.
            for i in 0..(16 / to).min(16 / sz) {
                let x = lane(&src, sz, i);
                let y = if kind == op::PMOVSX {
                    sext(x, sz) as u64 & mask(to)
                } else {
                    x
                };
                set_lane(&mut r, to, i, y);
            }
        }
        op::PTEST => {
            let a = u128::from_le_bytes(dst);
            let b = u128::from_le_bytes(src);
            let zf = if a & b == 0 { 0x40 } else { 0 };
            let cf = if !a & b == 0 { 1 } else { 0 };
            return zf | cf;
        }
        op::INSERTPS => {
            // With a register source, imm[7:6] picks its dword; a memory source is the dword already loaded
            // into lane 0 and the translator clears those bits.
            let v = lane(&src, 4, (imm >> 6) as usize & 3);
            r = dst;
            set_lane(&mut r, 4, (imm >> 4) as usize & 3, v);
            for i in 0..4 {
                if imm >> i & 1 != 0 {
                    set_lane(&mut r, 4, i, 0);
                }
            }
        }
        op::PHMINPOSUW => {
            let (idx, min) = (0..8)
                .map(|i| (i, lane(&src, 2, i)))
                .min_by_key(|&(i, v)| (v, i))
                .unwrap_or((0, 0));
            set_lane(&mut r, 2, 0, min);
            set_lane(&mut r, 2, 1, idx as u64);
        }
        op::MPSADBW => {
            let so = 4 * (imm as usize & 3);
            let dof = 4 * ((imm >> 2) as usize & 1);
            for i in 0..8 {
                let sum: u64 = (0..4).map(|j| dst[dof + i + j].abs_diff(src[so + j]) as u64).sum();
                set_lane(&mut r, 2, i, sum);
            }
        }
        op::CRC32 => return crc32c(imm as u32, extra, sz) as u64,
        _ => {
            for i in 0..lanes {
                let Some(y) = lanewise(kind, lane(&dst, sz, i), lane(&src, sz, i), sz) else {
                    return 0; // not an operation: nothing written
                };
                set_lane(&mut r, sz, i, y);
            }
        }
    }
    d[..n].copy_from_slice(&r[..n]);
    0
}

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) of the low `sz` bytes of `data`, from `crc`, as the
/// crc32 instruction computes it (no inversions).
pub fn crc32c(mut crc: u32, data: u64, sz: usize) -> u32 {
    for byte in data.to_le_bytes().iter().take(sz) {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// `vec_op(word, dst_off, src_off, imm, extra) -> u64`: see the module doc. Operations that write their
/// destination write `n` bytes at `dst_off`; the others (movmsk, pextr, ptest, crc32, pcmpXstri) only return.
///
/// # Safety
/// `env` points to an [`X86CpuState`]; the offsets name 16-byte slots in it (generated code passes them).
pub(crate) unsafe extern "C" fn helper_vec_op(
    env: *mut u8,
    word: u64,
    dst_off: u64,
    src_off: u64,
    imm: u64,
    extra: u64,
) -> u64 {
    let size = core::mem::size_of::<X86CpuState>() as u64;
    if dst_off.saturating_add(16) > size || src_off.saturating_add(16) > size {
        return 0; // not from the translator
    }
    let xmm0_off = core::mem::offset_of!(X86CpuState, xmm) as u64;
    // SAFETY: all three offsets were bounds-checked above or are a field's.
    let (mut d, s, x0) = unsafe { (read16(env, dst_off), read16(env, src_off), read16(env, xmm0_off)) };
    if (word >> 8) & 0xff == op::PCMPSTR {
        // SAFETY: the helper runs on the CPU state (registered with READS_GLOBALS, so rax/rdx are current).
        let cpu = unsafe { &mut *env.cast::<X86CpuState>() };
        let imm = imm as u8;
        let words = imm & 1 != 0;
        let (la, lb) = if word & op::STR_EXPLICIT != 0 {
            let wide = word & op::STR_WIDE != 0;
            let la = crate::pcmpstr::explicit_len(cpu.regs[0], wide, words);
            (la, crate::pcmpstr::explicit_len(cpu.regs[2], wide, words))
        } else {
            (
                crate::pcmpstr::implicit_len(&d, words),
                crate::pcmpstr::implicit_len(&s, words),
            )
        };
        let r = crate::pcmpstr::compare(&d, la, &s, lb, imm);
        if word & op::STR_MASK != 0 {
            cpu.xmm[0] = r.mask;
        }
        return r.flags | u64::from(r.index) << 16;
    }
    let before = d;
    let ret = vec_op(word, &mut d, &s, &x0, imm, extra);
    if d != before {
        // SAFETY: in bounds, see above.
        unsafe { core::ptr::write_unaligned(env.add(dst_off as usize).cast::<[u8; 16]>(), d) };
    }
    ret
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The CRC-32C check value: "123456789" with the usual initial and final inversion.
        let crc = b"123456789".iter().fold(!0u32, |c, &b| crc32c(c, u64::from(b), 1));
        assert_eq!(!crc, 0xe306_9283);
    }

    #[test]
    fn odd_words_never_panic() {
        let mut d = [0x80u8; 16];
        let s = [0xffu8; 16];
        for kind in 0..70u64 {
            for sz in [0u64, 1, 2, 3, 4, 8, 16] {
                for mmx in [0, MMX] {
                    vec_op(kind << 8 | sz | mmx, &mut d, &s, &s, 0xff, u64::MAX);
                }
            }
        }
    }
}
