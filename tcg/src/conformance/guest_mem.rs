//! Guest loads and stores (`qemu_ld`, `qemu_st`) against the flat test memory: every size, sign and byte order
//! at both types, with and without an alignment requirement, at aligned, misaligned and out-of-range
//! addresses; and a fault in the third guest instruction of a TB, after globals were written.

use rqemu_include::{MemOp, MmuIdx};

use crate::backend::TbExit;
use crate::types::Type;

use super::harness::{Harness, Pipeline, MEM_BASE, MEM_LEN};
use super::state::{self, W_OUT, X_IN, X_OUT};
use super::values::Rng;

/// The MMU index the programs use; not the default, so one that gets lost is noticed.
fn mmu() -> MmuIdx {
    MmuIdx::new(3).unwrap_or_default()
}

/// Every memop tried at `ty`: sizes that fit, both signs, both byte orders, unaligned or natural alignment,
/// and one stricter-than-natural requirement.
fn memops(ty: Type) -> Vec<MemOp> {
    let max_log2 = if ty == Type::I32 { 2 } else { 3 };
    let mut v = Vec::new();
    for log2 in 0..=max_log2 {
        for sign in [MemOp::empty(), MemOp::SIGN] {
            for order in [MemOp::empty(), MemOp::BSWAP] {
                for align in [MemOp::empty(), MemOp::ALIGN] {
                    v.push(MemOp::from_bits_retain(log2) | sign | order | align);
                }
            }
        }
    }
    v.push(MemOp::LEUW | MemOp::ALIGN_8);
    v
}

/// Guest addresses tried for an access of `size` bytes: aligned and misaligned ones inside the memory, both
/// ends, just outside both ends, the base truncated to 32 bits, and the top of the address space.
fn addresses(size: u64) -> Vec<u64> {
    let len = MEM_LEN as u64;
    let mut v: Vec<u64> = [0, 8, 16, 1, 3, 5, 6, 2, len - size, len - size + 1, len]
        .iter()
        .map(|&o| MEM_BASE + o)
        .collect();
    v.extend([MEM_BASE - 1, MEM_BASE & 0xffff_ffff, u64::MAX - 2]);
    v
}

/// Whether the flat memory must refuse the access, decided independently of its implementation.
fn faults(addr: u64, memop: MemOp) -> bool {
    let size = memop.size_bytes() as u64;
    // Alignments are powers of two.
    let misaligned = addr & (memop.align_bytes() as u64 - 1) != 0;
    misaligned || addr < MEM_BASE || addr > MEM_BASE + MEM_LEN as u64 - size
}

/// The value a load of `bytes` (in address order) gives at `ty`.
fn loaded(bytes: &[u8], memop: MemOp, ty: Type) -> u64 {
    let mut v = 0u64;
    // Little-endian unless byte-swapped: the byte at the lowest address is least significant.
    for (i, &b) in bytes.iter().enumerate() {
        let shift = if memop.is_bswap() {
            8 * (bytes.len() - 1 - i)
        } else {
            8 * i
        };
        v |= (b as u64) << shift;
    }
    let bits = 8 * bytes.len() as u32;
    if memop.is_signed() && bits < 64 && v >> (bits - 1) & 1 == 1 {
        v |= u64::MAX << bits;
    }
    v & ty.mask()
}

/// Runs every guest memory program.
pub(super) fn run(h: &mut Harness) {
    let mut rng = Rng::new(0x9e57);
    for ty in [Type::I32, Type::I64] {
        for memop in memops(ty) {
            for pipe in Pipeline::ALL {
                loads(h, &mut rng, ty, memop, pipe);
                stores(h, &mut rng, ty, memop, pipe);
            }
        }
    }
    for pipe in Pipeline::ALL {
        fault_in_third_insn(h, pipe);
    }
}

fn fill_memory(h: &mut Harness, rng: &mut Rng) {
    for i in 0..MEM_LEN {
        h.set_mem_byte(i, rng.next_u64() as u8);
    }
}

fn loads(h: &mut Harness, rng: &mut Rng, ty: Type, memop: MemOp, pipe: Pipeline) {
    let out = state::output_slot(ty, 0);
    let mut f = h.func();
    f.insn_start([0x3000, 0, 0]);
    f.qemu_ld(state::global(out), state::global(X_IN[0]), memop, mmu());
    f.exit_tb(0);
    let what = || format!("qemu_ld_{ty} {memop}");
    let Some(tb) = h.build(f, pipe, &what) else { return };
    for addr in addresses(memop.size_bytes() as u64) {
        fill_memory(h, rng);
        h.reset();
        h.set(X_IN[0], Type::I64, addr);
        let fault = faults(addr, memop);
        let exit = if fault {
            TbExit::Fault { insn: 0 }
        } else {
            let at = (addr - MEM_BASE) as usize;
            let v = loaded(&h.mem.bytes()[at..at + memop.size_bytes() as usize], memop, ty);
            h.want.set(out, ty, v);
            TbExit::Exit(0)
        };
        let want = h.want.get(out, ty);
        let what = || {
            format!(
                "qemu_ld_{ty} {memop} [{}] addr=0x{addr:x} expected={exit:?} 0x{want:x}",
                pipe.name()
            )
        };
        if h.check_run(&tb, exit, &what) {
            check_access_context(h, &what);
        }
    }
}

fn stores(h: &mut Harness, rng: &mut Rng, ty: Type, memop: MemOp, pipe: Pipeline) {
    let val = state::input_slot(ty, 1);
    let mut f = h.func();
    f.insn_start([0x3000, 0, 0]);
    f.qemu_st(state::global(val), state::global(X_IN[0]), memop, mmu());
    f.exit_tb(0);
    let what = || format!("qemu_st_{ty} {memop}");
    let Some(tb) = h.build(f, pipe, &what) else { return };
    for addr in addresses(memop.size_bytes() as u64) {
        fill_memory(h, rng);
        h.reset();
        let value = rng.value(ty);
        h.set(X_IN[0], Type::I64, addr);
        h.set(val, ty, value);
        let fault = faults(addr, memop);
        let exit = if fault {
            TbExit::Fault { insn: 0 }
        } else {
            let size = memop.size_bytes() as usize;
            let at = (addr - MEM_BASE) as usize;
            for i in 0..size {
                let shift = if memop.is_bswap() { 8 * (size - 1 - i) } else { 8 * i };
                h.want_mem[at + i] = (value >> shift) as u8;
            }
            TbExit::Exit(0)
        };
        let what = || {
            format!(
                "qemu_st_{ty} {memop} [{}] addr=0x{addr:x} value=0x{value:x} expected={exit:?}",
                pipe.name()
            )
        };
        if h.check_run(&tb, exit, &what) {
            check_access_context(h, &what);
        }
    }
}

/// The memory must have seen the TB's MMU index and the `env` of the run.
fn check_access_context(h: &mut Harness, what: &dyn Fn() -> String) {
    let env = h.env_addr() as usize;
    let (got_mmu, got_env) = (h.mem.last_mmu, h.mem.last_env);
    let ok = got_mmu == Some(mmu()) && got_env == env;
    h.rec.check(ok, || {
        format!(
            "{}: memory access saw mmu {got_mmu:?} env 0x{got_env:x}, expected {:?} 0x{env:x}",
            what(),
            mmu()
        )
    });
    h.mem.last_mmu = None;
    h.mem.last_env = 0;
}

/// Three guest instructions write globals, then the third loads from `x0`; a bad address must end the TB with
/// `Fault { insn: 2 }` and leave the globals of the first two in the CPU state, the load's and the fourth
/// instruction's untouched.
fn fault_in_third_insn(h: &mut Harness, pipe: Pipeline) {
    let mut f = h.func();
    let (xo0, xo1) = (state::global(X_OUT[0]), state::global(X_OUT[1]));
    let (wo0, wo1) = (state::global(W_OUT[0]), state::global(W_OUT[1]));
    let five = f.constant(Type::I64, 5);
    f.insn_start([0x100, 0, 0]);
    f.movi(xo0, 0x11);
    f.insn_start([0x104, 0, 0]);
    f.add(xo1, xo0, five);
    f.insn_start([0x108, 0, 0]);
    f.qemu_ld(wo0, state::global(X_IN[0]), MemOp::LEUL | MemOp::ALIGN, mmu());
    f.insn_start([0x10c, 0, 0]);
    f.movi(wo1, 0x99);
    f.exit_tb(7);
    let what = || "fault in the third guest instruction".to_string();
    let Some(tb) = h.build(f, pipe, &what) else { return };
    let cases = [
        (MEM_BASE + 4, false),
        (MEM_BASE + 2, true),
        (MEM_BASE + MEM_LEN as u64, true),
        (0, true),
    ];
    for (addr, fault) in cases {
        h.reset();
        h.set(X_IN[0], Type::I64, addr);
        h.want.set(X_OUT[0], Type::I64, 0x11);
        h.want.set(X_OUT[1], Type::I64, 0x16);
        let exit = if fault {
            TbExit::Fault { insn: 2 }
        } else {
            let b = &h.mem.bytes()[4..8];
            let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
            h.want.set(W_OUT[0], Type::I32, v);
            h.want.set(W_OUT[1], Type::I32, 0x99);
            TbExit::Exit(7)
        };
        let what = || format!("fault in the third guest instruction [{}] addr=0x{addr:x}", pipe.name());
        h.check_run(&tb, exit, &what);
    }
}
