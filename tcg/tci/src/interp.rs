//! The dispatch loop: fetch an [`Insn`], `match` on it, repeat until the TB leaves.
//!
//! The loop does no bounds checks: [`TciTb::new`] has checked, once per TB, everything they would catch (see
//! [`exec`]'s safety section). Every operation is written here from the IR's definition rather than by calling
//! `rqemu_tcg::semantics`, so the conformance suite's comparison with `semantics` means something. i32 values
//! are kept zero-extended in their slots: every i32 result is masked, which lets the unsigned, equality and
//! bitwise operations serve both types.

use rqemu_include::tlb::{
    tlb_probe, TLB_ENTRIES, TLB_ENTRY_SIZE, TLB_OFFSET_ADDEND, TLB_OFFSET_READ, TLB_OFFSET_WRITE,
};
use rqemu_include::{MemOp, MmuIdx, TARGET_PAGE_BITS};
use rqemu_tcg::{GuestMemory, TbExit};

use crate::bytecode::{Cc, Insn};
use crate::tb::TciTb;

const M32: u64 = u32::MAX as u64;

/// Runs `tb` on `frame` until it leaves.
///
/// # Safety
/// - `frame` points to `tb.frame_len()` initialised, writable, 8-byte-aligned `u64`s that nothing else
///   accesses while this runs.
/// - `env` and `mem` fulfil the contract of [`rqemu_tcg::CompiledTb::run`] for the IR `tb` was compiled from.
///
/// [`TciTb::new`] guarantees the rest: every slot of every instruction is below `frame_len()`, every branch
/// target and side-table index is in range, and the last instruction does not fall through, so `ip` never
/// leaves the code.
#[inline(never)]
pub(crate) unsafe fn exec(tb: &TciTb, frame: *mut u64, env: *mut u8, mem: &mut dyn GuestMemory) -> TbExit {
    let code = tb.code.as_ptr();
    let mut ip = code;

    // SAFETY (for every use below): slots are in the frame, see the function's safety section.
    macro_rules! r {
        ($s:expr) => {
            *frame.byte_add($s.byte_offset())
        };
    }
    // Inputs are read before the output is written: an output may share a slot with an input.
    macro_rules! w {
        ($s:expr, $v:expr) => {{
            let v: u64 = $v;
            *frame.byte_add($s.byte_offset()) = v;
        }};
    }
    macro_rules! bin {
        ($d:expr, $a:expr, $b:expr, |$x:ident, $y:ident| $e:expr) => {{
            let ($x, $y) = (r!($a), r!($b));
            w!($d, $e)
        }};
    }
    macro_rules! un {
        ($d:expr, $a:expr, |$x:ident| $e:expr) => {{
            let $x = r!($a);
            w!($d, $e)
        }};
    }
    macro_rules! two {
        ($d:expr, $d2:expr, ($lo:expr, $hi:expr)) => {{
            let (lo, hi): (u64, u64) = ($lo, $hi);
            w!($d, lo);
            w!($d2, hi);
        }};
    }
    macro_rules! branch_if {
        ($c:expr, $target:expr) => {
            if $c {
                // SAFETY: branch targets are instruction indexes inside the code.
                ip = code.add($target as usize);
            }
        };
    }

    loop {
        // SAFETY: `ip` is inside the code: it starts at 0, branches land inside, and the last instruction
        // does not fall through.
        let insn = *ip;
        ip = ip.add(1);
        match insn {
            Insn::Mov { d, a } => w!(d, r!(a)),
            Insn::Movi { d, imm } => w!(d, imm as u64),

            Insn::Add32 { d, a, b } => bin!(d, a, b, |x, y| x.wrapping_add(y) & M32),
            Insn::Add64 { d, a, b } => bin!(d, a, b, |x, y| x.wrapping_add(y)),
            Insn::Sub32 { d, a, b } => bin!(d, a, b, |x, y| x.wrapping_sub(y) & M32),
            Insn::Sub64 { d, a, b } => bin!(d, a, b, |x, y| x.wrapping_sub(y)),
            Insn::Mul32 { d, a, b } => bin!(d, a, b, |x, y| x.wrapping_mul(y) & M32),
            Insn::Mul64 { d, a, b } => bin!(d, a, b, |x, y| x.wrapping_mul(y)),
            Insn::Neg32 { d, a } => un!(d, a, |x| x.wrapping_neg() & M32),
            Insn::Neg64 { d, a } => un!(d, a, |x| x.wrapping_neg()),
            Insn::Mulu2_32 { d, d2, a, b } => {
                let p = r!(a).wrapping_mul(r!(b)); // both below 2^32: cannot wrap
                two!(d, d2, (p & M32, p >> 32))
            }
            Insn::Mulu2_64 { d, d2, a, b } => {
                let p = r!(a) as u128 * r!(b) as u128;
                two!(d, d2, (p as u64, (p >> 64) as u64))
            }
            Insn::Muls2_32 { d, d2, a, b } => {
                let p = (r!(a) as i32 as i64).wrapping_mul(r!(b) as i32 as i64) as u64;
                two!(d, d2, (p & M32, p >> 32))
            }
            Insn::Muls2_64 { d, d2, a, b } => {
                let p = (r!(a) as i64 as i128).wrapping_mul(r!(b) as i64 as i128) as u128;
                two!(d, d2, (p as u64, (p >> 64) as u64))
            }
            Insn::Muluh32 { d, a, b } => bin!(d, a, b, |x, y| x.wrapping_mul(y) >> 32),
            Insn::Muluh64 { d, a, b } => bin!(d, a, b, |x, y| ((x as u128 * y as u128) >> 64) as u64),
            Insn::Mulsh32 { d, a, b } => {
                bin!(d, a, b, |x, y| ((x as i32 as i64 * y as i32 as i64) >> 32) as u64 & M32)
            }
            Insn::Mulsh64 { d, a, b } => {
                bin!(d, a, b, |x, y| ((x as i64 as i128 * y as i64 as i128) >> 64) as u64)
            }
            Insn::Divs32 { d, a, b } => bin!(d, a, b, |x, y| match y as i32 {
                0 => 0,
                y => (x as i32).wrapping_div(y) as u32 as u64,
            }),
            Insn::Divs64 { d, a, b } => bin!(d, a, b, |x, y| match y as i64 {
                0 => 0,
                y => (x as i64).wrapping_div(y) as u64,
            }),
            Insn::Divu { d, a, b } => bin!(d, a, b, |x, y| x.checked_div(y).unwrap_or(0)),
            Insn::Rems32 { d, a, b } => bin!(d, a, b, |x, y| match y as i32 {
                0 => x,
                y => (x as i32).wrapping_rem(y) as u32 as u64,
            }),
            Insn::Rems64 { d, a, b } => bin!(d, a, b, |x, y| match y as i64 {
                0 => x,
                y => (x as i64).wrapping_rem(y) as u64,
            }),
            Insn::Remu { d, a, b } => bin!(d, a, b, |x, y| x.checked_rem(y).unwrap_or(x)),

            Insn::And { d, a, b } => bin!(d, a, b, |x, y| x & y),
            Insn::Or { d, a, b } => bin!(d, a, b, |x, y| x | y),
            Insn::Xor { d, a, b } => bin!(d, a, b, |x, y| x ^ y),
            Insn::Andc { d, a, b } => bin!(d, a, b, |x, y| x & !y),
            Insn::Orc32 { d, a, b } => bin!(d, a, b, |x, y| (x | !y) & M32),
            Insn::Orc64 { d, a, b } => bin!(d, a, b, |x, y| x | !y),
            Insn::Eqv32 { d, a, b } => bin!(d, a, b, |x, y| !(x ^ y) & M32),
            Insn::Eqv64 { d, a, b } => bin!(d, a, b, |x, y| !(x ^ y)),
            Insn::Nand32 { d, a, b } => bin!(d, a, b, |x, y| !(x & y) & M32),
            Insn::Nand64 { d, a, b } => bin!(d, a, b, |x, y| !(x & y)),
            Insn::Nor32 { d, a, b } => bin!(d, a, b, |x, y| !(x | y) & M32),
            Insn::Nor64 { d, a, b } => bin!(d, a, b, |x, y| !(x | y)),
            Insn::Not32 { d, a } => un!(d, a, |x| !x & M32),
            Insn::Not64 { d, a } => un!(d, a, |x| !x),

            Insn::Shl32 { d, a, b } => bin!(d, a, b, |x, y| ((x as u32) << (y & 31)) as u64),
            Insn::Shl64 { d, a, b } => bin!(d, a, b, |x, y| x << (y & 63)),
            Insn::Shr32 { d, a, b } => bin!(d, a, b, |x, y| ((x as u32) >> (y & 31)) as u64),
            Insn::Shr64 { d, a, b } => bin!(d, a, b, |x, y| x >> (y & 63)),
            Insn::Sar32 { d, a, b } => bin!(d, a, b, |x, y| ((x as i32) >> (y & 31)) as u32 as u64),
            Insn::Sar64 { d, a, b } => bin!(d, a, b, |x, y| ((x as i64) >> (y & 63)) as u64),
            Insn::Rotl32 { d, a, b } => bin!(d, a, b, |x, y| (x as u32).rotate_left(y as u32) as u64),
            Insn::Rotl64 { d, a, b } => bin!(d, a, b, |x, y| x.rotate_left(y as u32)),
            Insn::Rotr32 { d, a, b } => bin!(d, a, b, |x, y| (x as u32).rotate_right(y as u32) as u64),
            Insn::Rotr64 { d, a, b } => bin!(d, a, b, |x, y| x.rotate_right(y as u32)),
            Insn::Clz32 { d, a, b } => bin!(d, a, b, |x, y| match x {
                0 => y,
                x => (x as u32).leading_zeros() as u64,
            }),
            Insn::Clz64 { d, a, b } => bin!(d, a, b, |x, y| match x {
                0 => y,
                x => x.leading_zeros() as u64,
            }),
            Insn::Ctz { d, a, b } => bin!(d, a, b, |x, y| match x {
                0 => y,
                x => x.trailing_zeros() as u64,
            }),
            Insn::Ctpop { d, a } => un!(d, a, |x| x.count_ones() as u64),

            Insn::SetEq { d, a, b } => bin!(d, a, b, |x, y| (x == y) as u64),
            Insn::SetNe { d, a, b } => bin!(d, a, b, |x, y| (x != y) as u64),
            Insn::SetLtu { d, a, b } => bin!(d, a, b, |x, y| (x < y) as u64),
            Insn::SetLeu { d, a, b } => bin!(d, a, b, |x, y| (x <= y) as u64),
            Insn::SetLt32 { d, a, b } => bin!(d, a, b, |x, y| lt32(x, y) as u64),
            Insn::SetLe32 { d, a, b } => bin!(d, a, b, |x, y| le32(x, y) as u64),
            Insn::SetLt64 { d, a, b } => bin!(d, a, b, |x, y| lt64(x, y) as u64),
            Insn::SetLe64 { d, a, b } => bin!(d, a, b, |x, y| le64(x, y) as u64),
            Insn::SetTsteq { d, a, b } => bin!(d, a, b, |x, y| (x & y == 0) as u64),
            Insn::SetTstne { d, a, b } => bin!(d, a, b, |x, y| (x & y != 0) as u64),
            Insn::NegSetcond32 { d, a, b, cc } => bin!(d, a, b, |x, y| (test(cc, x, y) as u64).wrapping_neg() & M32),
            Insn::NegSetcond64 { d, a, b, cc } => bin!(d, a, b, |x, y| (test(cc, x, y) as u64).wrapping_neg()),
            Insn::MovEq { d, a, b, c, e } => w!(d, if r!(a) == r!(b) { r!(c) } else { r!(e) }),
            Insn::MovNe { d, a, b, c, e } => w!(d, if r!(a) != r!(b) { r!(c) } else { r!(e) }),
            Insn::MovLtu { d, a, b, c, e } => w!(d, if r!(a) < r!(b) { r!(c) } else { r!(e) }),
            Insn::MovLeu { d, a, b, c, e } => w!(d, if r!(a) <= r!(b) { r!(c) } else { r!(e) }),
            Insn::MovLt32 { d, a, b, c, e } => w!(d, if lt32(r!(a), r!(b)) { r!(c) } else { r!(e) }),
            Insn::MovLe32 { d, a, b, c, e } => w!(d, if le32(r!(a), r!(b)) { r!(c) } else { r!(e) }),
            Insn::MovLt64 { d, a, b, c, e } => w!(d, if lt64(r!(a), r!(b)) { r!(c) } else { r!(e) }),
            Insn::MovLe64 { d, a, b, c, e } => w!(d, if le64(r!(a), r!(b)) { r!(c) } else { r!(e) }),
            Insn::MovTsteq { d, a, b, c, e } => w!(d, if r!(a) & r!(b) == 0 { r!(c) } else { r!(e) }),
            Insn::MovTstne { d, a, b, c, e } => w!(d, if r!(a) & r!(b) != 0 { r!(c) } else { r!(e) }),

            Insn::Deposit { d, a, b, pos, len } => bin!(d, a, b, |x, y| {
                // 1 <= len <= 64 - pos (checked at compile time), so neither shift overflows.
                let mask = (u64::MAX >> (64 - len as u32)) << pos;
                (x & !mask) | ((y << pos) & mask)
            }),
            Insn::Extract { d, a, shl, shr } => un!(d, a, |x| (x << shl) >> shr),
            Insn::Sextract32 { d, a, shl, shr } => un!(d, a, |x| ((x << shl) as i64 >> shr) as u64 & M32),
            Insn::Sextract64 { d, a, shl, shr } => un!(d, a, |x| ((x << shl) as i64 >> shr) as u64),
            Insn::Extract2_32 { d, a, b, shift } => {
                bin!(d, a, b, |lo, hi| ((lo >> shift) | (hi << (32 - shift as u32))) & M32)
            }
            Insn::Extract2_64 { d, a, b, shift } => bin!(d, a, b, |lo, hi| (lo >> shift) | (hi << (64 - shift as u32))),

            Insn::Ext8s32 { d, a } => un!(d, a, |x| x as i8 as u32 as u64),
            Insn::Ext8s64 { d, a } => un!(d, a, |x| x as i8 as u64),
            Insn::Ext8u { d, a } => un!(d, a, |x| x as u8 as u64),
            Insn::Ext16s32 { d, a } => un!(d, a, |x| x as i16 as u32 as u64),
            Insn::Ext16s64 { d, a } => un!(d, a, |x| x as i16 as u64),
            Insn::Ext16u { d, a } => un!(d, a, |x| x as u16 as u64),
            Insn::Ext32s { d, a } => un!(d, a, |x| x as i32 as u64),
            Insn::Ext32u { d, a } => un!(d, a, |x| x as u32 as u64),
            Insn::High32 { d, a } => un!(d, a, |x| x >> 32),
            Insn::Bswap16 { d, a } => un!(d, a, |x| (x as u16).swap_bytes() as u64),
            Insn::Bswap32 { d, a } => un!(d, a, |x| (x as u32).swap_bytes() as u64),
            Insn::Bswap64 { d, a } => un!(d, a, |x| x.swap_bytes()),

            // At 32 bits the full result fits in 64 bits: the carry is bit 32, a borrow makes it negative.
            // (`wrapping_*` only keeps a stale slot read by malformed IR from panicking in debug builds.)
            Insn::Addco32 { d, d2, a, b } => {
                let s = r!(a).wrapping_add(r!(b));
                two!(d, d2, (s & M32, s >> 32))
            }
            Insn::Addco64 { d, d2, a, b } => {
                let (s, carry) = r!(a).overflowing_add(r!(b));
                two!(d, d2, (s, carry as u64))
            }
            Insn::Addci32 { d, a, b, c } => w!(d, r!(a).wrapping_add(r!(b)).wrapping_add((r!(c) != 0) as u64) & M32),
            Insn::Addci64 { d, a, b, c } => w!(d, r!(a).wrapping_add(r!(b)).wrapping_add((r!(c) != 0) as u64)),
            Insn::Addcio32 { d, d2, a, b, c } => {
                let s = r!(a).wrapping_add(r!(b)).wrapping_add((r!(c) != 0) as u64);
                two!(d, d2, (s & M32, s >> 32))
            }
            Insn::Addcio64 { d, d2, a, b, c } => {
                let (s, c1) = r!(a).overflowing_add(r!(b));
                let (s, c2) = s.overflowing_add((r!(c) != 0) as u64);
                two!(d, d2, (s, (c1 | c2) as u64))
            }
            Insn::Subbo32 { d, d2, a, b } => {
                let s = r!(a).wrapping_sub(r!(b));
                two!(d, d2, (s & M32, s >> 63))
            }
            Insn::Subbo64 { d, d2, a, b } => {
                let (s, borrow) = r!(a).overflowing_sub(r!(b));
                two!(d, d2, (s, borrow as u64))
            }
            Insn::Subbi32 { d, a, b, c } => w!(d, r!(a).wrapping_sub(r!(b)).wrapping_sub((r!(c) != 0) as u64) & M32),
            Insn::Subbi64 { d, a, b, c } => w!(d, r!(a).wrapping_sub(r!(b)).wrapping_sub((r!(c) != 0) as u64)),
            Insn::Subbio32 { d, d2, a, b, c } => {
                let s = r!(a).wrapping_sub(r!(b)).wrapping_sub((r!(c) != 0) as u64);
                two!(d, d2, (s & M32, s >> 63))
            }
            Insn::Subbio64 { d, d2, a, b, c } => {
                let (s, b1) = r!(a).overflowing_sub(r!(b));
                let (s, b2) = s.overflowing_sub((r!(c) != 0) as u64);
                two!(d, d2, (s, (b1 | b2) as u64))
            }

            // SAFETY: the addresses are `base + offset` of the IR's `ld`/`st`, valid by `run`'s contract.
            Insn::Ld8u { d, a, off } => w!(d, host(r!(a), off).read() as u64),
            Insn::Ld8s32 { d, a, off } => w!(d, host(r!(a), off).read() as i8 as u32 as u64),
            Insn::Ld8s64 { d, a, off } => w!(d, host(r!(a), off).read() as i8 as u64),
            Insn::Ld16u { d, a, off } => w!(d, host(r!(a), off).cast::<u16>().read_unaligned() as u64),
            Insn::Ld16s32 { d, a, off } => w!(d, host(r!(a), off).cast::<i16>().read_unaligned() as u32 as u64),
            Insn::Ld16s64 { d, a, off } => w!(d, host(r!(a), off).cast::<i16>().read_unaligned() as u64),
            Insn::Ld32u { d, a, off } => w!(d, host(r!(a), off).cast::<u32>().read_unaligned() as u64),
            Insn::Ld32s { d, a, off } => w!(d, host(r!(a), off).cast::<i32>().read_unaligned() as u64),
            Insn::Ld64 { d, a, off } => w!(d, host(r!(a), off).cast::<u64>().read_unaligned()),
            Insn::St8 { v, a, off } => host(r!(a), off).write(r!(v) as u8),
            Insn::St16 { v, a, off } => host(r!(a), off).cast::<u16>().write_unaligned(r!(v) as u16),
            Insn::St32 { v, a, off } => host(r!(a), off).cast::<u32>().write_unaligned(r!(v) as u32),
            Insn::St64 { v, a, off } => host(r!(a), off).cast::<u64>().write_unaligned(r!(v)),
            Insn::LdEnv8u { d, off } => w!(d, at(env, off).read() as u64),
            Insn::LdEnv8s32 { d, off } => w!(d, at(env, off).read() as i8 as u32 as u64),
            Insn::LdEnv8s64 { d, off } => w!(d, at(env, off).read() as i8 as u64),
            Insn::LdEnv16u { d, off } => w!(d, at(env, off).cast::<u16>().read_unaligned() as u64),
            Insn::LdEnv16s32 { d, off } => w!(d, at(env, off).cast::<i16>().read_unaligned() as u32 as u64),
            Insn::LdEnv16s64 { d, off } => w!(d, at(env, off).cast::<i16>().read_unaligned() as u64),
            Insn::LdEnv32u { d, off } => w!(d, at(env, off).cast::<u32>().read_unaligned() as u64),
            Insn::LdEnv32s { d, off } => w!(d, at(env, off).cast::<i32>().read_unaligned() as u64),
            Insn::LdEnv64 { d, off } => w!(d, at(env, off).cast::<u64>().read_unaligned()),
            Insn::StEnv8 { v, off } => at(env, off).write(r!(v) as u8),
            Insn::StEnv16 { v, off } => at(env, off).cast::<u16>().write_unaligned(r!(v) as u16),
            Insn::StEnv32 { v, off } => at(env, off).cast::<u32>().write_unaligned(r!(v) as u32),
            Insn::StEnv64 { v, off } => at(env, off).cast::<u64>().write_unaligned(r!(v)),

            Insn::QemuLd32 { d, a, memop, mmu, insn } => match guest_load(tb, env, mem, r!(a), memop, mmu) {
                Some(v) => w!(d, v & M32),
                None => return TbExit::Fault { insn },
            },
            Insn::QemuLd64 { d, a, memop, mmu, insn } => match guest_load(tb, env, mem, r!(a), memop, mmu) {
                Some(v) => w!(d, v),
                None => return TbExit::Fault { insn },
            },
            Insn::QemuSt { v, a, memop, mmu, insn } => {
                let addr = r!(a);
                match tlb_host(env, tb.tlb_offset, addr, memop, mmu, TLB_OFFSET_WRITE) {
                    Some(host) => host_store(host, memop, r!(v)),
                    None => {
                        if mem
                            .store(env, addr, r!(v), MemOp::from_bits_retain(memop as u32), mmu)
                            .is_err()
                        {
                            return TbExit::Fault { insn };
                        }
                    }
                }
            }

            Insn::Call { site } => {
                // SAFETY: call sites are in range; the helper accepts `env` by `run`'s contract.
                let c = tb.calls.get_unchecked(site as usize);
                let [a0, a1, a2, a3, a4] = c.args;
                let v = (c.func)(env, r!(a0), r!(a1), r!(a2), r!(a3), r!(a4));
                if let Some((d, mask)) = c.ret {
                    w!(d, v & mask);
                }
                // SAFETY: the fault word is inside the CPU state by `run`'s contract.
                if c.may_fault
                    && env
                        .wrapping_offset(tb.fault_offset as isize)
                        .cast::<u32>()
                        .read_unaligned()
                        != 0
                {
                    return TbExit::Fault { insn: c.insn };
                }
            }

            Insn::Br { target } => branch_if!(true, target),
            Insn::BrEq { a, b, target } => branch_if!(r!(a) == r!(b), target),
            Insn::BrNe { a, b, target } => branch_if!(r!(a) != r!(b), target),
            Insn::BrLtu { a, b, target } => branch_if!(r!(a) < r!(b), target),
            Insn::BrLeu { a, b, target } => branch_if!(r!(a) <= r!(b), target),
            Insn::BrLt32 { a, b, target } => branch_if!(lt32(r!(a), r!(b)), target),
            Insn::BrLe32 { a, b, target } => branch_if!(le32(r!(a), r!(b)), target),
            Insn::BrLt64 { a, b, target } => branch_if!(lt64(r!(a), r!(b)), target),
            Insn::BrLe64 { a, b, target } => branch_if!(le64(r!(a), r!(b)), target),
            Insn::BrTsteq { a, b, target } => branch_if!(r!(a) & r!(b) == 0, target),
            Insn::BrTstne { a, b, target } => branch_if!(r!(a) & r!(b) != 0, target),

            // SAFETY: exit indexes are in range.
            Insn::ExitTb { exit } => return TbExit::Exit(*tb.exits.get_unchecked(exit as usize)),
            Insn::GotoTb { slot } => return TbExit::GotoTb(slot),
            Insn::GotoPtr { a } => return TbExit::GotoPtr(r!(a) as usize),
        }
    }
}

/// The host address `base + off`; `base` came from a pointer whose provenance was exposed (`env` by
/// [`TciTb`]'s entry, other pointers by whoever turned them into integers).
#[inline(always)]
fn host(base: u64, off: i32) -> *mut u8 {
    core::ptr::with_exposed_provenance_mut::<u8>((base as usize).wrapping_add(off as isize as usize))
}

/// `env + off`, keeping `env`'s provenance.
#[inline(always)]
fn at(env: *mut u8, off: i32) -> *mut u8 {
    env.wrapping_offset(off as isize)
}

/// A guest load, extended as `memop` says: from the TLB when it hits, else through the guest memory; `None`
/// when it faulted (recorded by the memory).
///
/// # Safety
/// As for [`tlb_host`].
#[inline(always)]
unsafe fn guest_load(
    tb: &TciTb,
    env: *mut u8,
    mem: &mut dyn GuestMemory,
    addr: u64,
    memop: u8,
    mmu: MmuIdx,
) -> Option<u64> {
    // SAFETY: the caller's promise.
    let v = match unsafe { tlb_host(env, tb.tlb_offset, addr, memop, mmu, TLB_OFFSET_READ) } {
        // SAFETY: a hit is valid for the access.
        Some(host) => unsafe { host_load(host, memop) },
        None => mem.load(env, addr, MemOp::from_bits_retain(memop as u32), mmu).ok()?,
    };
    Some(extend_loaded(v, memop))
}

/// The host address of a guest access when it hits the target's TLB in `env` (the probe of
/// `rqemu_include::tlb`, as generated code makes it): a flagged tag (MMIO, code page on a write, empty), a
/// page-crossing or misaligned access, or a 16-byte memop misses and takes the guest memory's slow path.
///
/// # Safety
/// With `tlb` set, `env + tlb` holds the [`NB_MMU_MODES`] tables and `mmu` is below that (checked when the
/// TB was built); a hit's host address is valid for the access (softmmu's promise for what it fills).
#[inline(always)]
unsafe fn tlb_host(env: *mut u8, tlb: Option<i32>, vaddr: u64, memop: u8, mmu: MmuIdx, tag: usize) -> Option<*mut u8> {
    let tlb = tlb?;
    let op = MemOp::from_bits_retain(memop as u32);
    let size = op.size_bytes();
    if size > 8 {
        return None;
    }
    let index = (vaddr >> TARGET_PAGE_BITS) as usize & (TLB_ENTRIES - 1);
    // SAFETY: the caller's promise; the entry lies inside table `mmu`.
    let entry = unsafe {
        env.offset(tlb as isize)
            .add((mmu.index() * TLB_ENTRIES + index) * TLB_ENTRY_SIZE)
    };
    // SAFETY: as above; tags and the addend are plain words of the entry.
    let (want, addend) = unsafe {
        (
            entry.add(tag).cast::<u64>().read(),
            entry.add(TLB_OFFSET_ADDEND).cast::<usize>().read(),
        )
    };
    if tlb_probe(vaddr, size, op.align_bytes()) != want {
        return None;
    }
    Some(core::ptr::with_exposed_provenance_mut(
        (vaddr as usize).wrapping_add(addend),
    ))
}

/// A little-endian load of `memop`'s size at `host`, byte-swapped when `memop` says (not extended).
///
/// # Safety
/// `host` is valid for the access ([`tlb_host`]).
#[inline(always)]
unsafe fn host_load(host: *mut u8, memop: u8) -> u64 {
    // SAFETY: the caller's promise.
    let v = unsafe {
        match memop & 3 {
            0 => u64::from(host.read()),
            1 => u64::from(host.cast::<u16>().read_unaligned()),
            2 => u64::from(host.cast::<u32>().read_unaligned()),
            _ => host.cast::<u64>().read_unaligned(),
        }
    };
    if MemOp::from_bits_retain(memop as u32).is_bswap() {
        swap_low(v, memop)
    } else {
        v
    }
}

/// Stores the low bytes of `v` (`memop`'s size) at `host`, byte-swapped when `memop` says.
///
/// # Safety
/// `host` is valid for the access ([`tlb_host`]).
#[inline(always)]
unsafe fn host_store(host: *mut u8, memop: u8, v: u64) {
    let v = if MemOp::from_bits_retain(memop as u32).is_bswap() {
        swap_low(v, memop)
    } else {
        v
    };
    // SAFETY: the caller's promise.
    unsafe {
        match memop & 3 {
            0 => host.write(v as u8),
            1 => host.cast::<u16>().write_unaligned(v as u16),
            2 => host.cast::<u32>().write_unaligned(v as u32),
            _ => host.cast::<u64>().write_unaligned(v),
        }
    }
}

/// Reverses the bytes of the low `1 << (memop & 3)` bytes of `v`.
#[inline(always)]
fn swap_low(v: u64, memop: u8) -> u64 {
    match memop & 3 {
        0 => v & 0xff,
        1 => u64::from((v as u16).swap_bytes()),
        2 => u64::from((v as u32).swap_bytes()),
        _ => v.swap_bytes(),
    }
}

/// A loaded value extended as its MemOp says, whatever the memory did: `GuestMemory` is asked to extend
/// already, this keeps a sloppy implementation from breaking the slots' invariants.
#[inline(always)]
fn extend_loaded(v: u64, memop: u8) -> u64 {
    let sh = 64u32.wrapping_sub(8 << (memop as u32 & 7)) & 63;
    if memop as u32 & MemOp::SIGN.bits() != 0 {
        ((v << sh) as i64 >> sh) as u64
    } else {
        (v << sh) >> sh
    }
}

#[inline(always)]
fn lt32(a: u64, b: u64) -> bool {
    (a as i32) < (b as i32)
}

#[inline(always)]
fn le32(a: u64, b: u64) -> bool {
    (a as i32) <= (b as i32)
}

#[inline(always)]
fn lt64(a: u64, b: u64) -> bool {
    (a as i64) < (b as i64)
}

#[inline(always)]
fn le64(a: u64, b: u64) -> bool {
    (a as i64) <= (b as i64)
}

/// A condition tested at run time, for the instructions that keep one.
fn test(cc: Cc, a: u64, b: u64) -> bool {
    match cc {
        Cc::Never => false,
        Cc::Always => true,
        Cc::Eq => a == b,
        Cc::Ne => a != b,
        Cc::Ltu => a < b,
        Cc::Leu => a <= b,
        Cc::Lt32 => lt32(a, b),
        Cc::Le32 => le32(a, b),
        Cc::Lt64 => lt64(a, b),
        Cc::Le64 => le64(a, b),
        Cc::Tsteq => a & b == 0,
        Cc::Tstne => a & b != 0,
    }
}
