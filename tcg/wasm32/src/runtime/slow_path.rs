//! The `qemu_ld`/`qemu_st` slow paths that generated code calls through the helper ABI when the inlined TLB
//! probe misses (or for every access when the module does not inline the TLB).
//!
//! They reach the [`GuestMemory`] of the `ExecContext` the running TB was given: [`Running`] stashes a raw
//! pointer to it for the duration of one `run`. The emulator runs one vCPU on one thread on wasm32, so a
//! thread-local is enough, and nested runs (a helper running a TB) restore the outer context on exit.

use core::cell::Cell;

use rqemu_include::{MemOp, MmuIdx};
use rqemu_tcg::GuestMemory;

/// What the slow paths need from the running TB's context.
#[derive(Clone, Copy)]
struct Current {
    mem: *mut (dyn GuestMemory + 'static),
    fault_offset: i32,
}

std::thread_local! {
    static CURRENT: Cell<Option<Current>> = const { Cell::new(None) };
}

/// The guest memory of a running TB, reachable by the slow paths while this guard lives.
pub struct Running {
    outer: Option<Current>,
}

impl Running {
    /// Makes `mem` the slow paths' memory, and `fault_offset` the CPU-state offset of the fault word.
    ///
    /// # Safety
    /// `mem` must outlive the guard, and must not be used through another reference while generated code
    /// (which calls the slow paths) runs.
    pub unsafe fn enter(mem: &mut dyn GuestMemory, fault_offset: i32) -> Running {
        let mem: *mut (dyn GuestMemory + '_) = mem;
        // SAFETY: only the lifetime is erased; the guard removes the pointer before `mem`'s borrow ends.
        let mem: *mut (dyn GuestMemory + 'static) = unsafe { core::mem::transmute(mem) };
        let outer = CURRENT.with(|c| c.replace(Some(Current { mem, fault_offset })));
        Running { outer }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.outer));
    }
}

/// Splits the slow paths' operand `memop_bits | mmu << 8`; `None` for an encoding no IR can carry.
fn decode(op: u64) -> Option<(MemOp, MmuIdx)> {
    let memop = MemOp::from_raw((op & 0xff) as u32).ok()?;
    let mmu = MmuIdx::new(u8::try_from(op >> 8).ok()?)?;
    Some((memop, mmu))
}

/// Sets the fault word of `env` when there is a running context.
///
/// # Safety
/// `env` is the CPU state of the running TB.
unsafe fn set_fault(env: *mut u8, current: Option<Current>) {
    if let Some(c) = current {
        // SAFETY: the fault word lies inside the CPU state (the `run` contract); it may be unaligned.
        unsafe {
            env.wrapping_offset(c.fault_offset as isize)
                .cast::<u32>()
                .write_unaligned(1)
        };
    }
}

/// `ld_slow(env, addr, memop | mmu << 8, 0, 0, 0) -> value`: a guest load; on failure it returns 0 and sets
/// the fault word.
///
/// # Safety
/// Called by generated code with the CPU state of the TB that [`Running`] was entered for.
pub unsafe extern "C" fn ld_slow(env: *mut u8, addr: u64, op: u64, _: u64, _: u64, _: u64) -> u64 {
    let current = CURRENT.with(Cell::get);
    let result = match (current, decode(op)) {
        // SAFETY: `Running::enter`'s contract: the memory is live and not otherwise borrowed.
        (Some(c), Some((memop, mmu))) => unsafe { (*c.mem).load(env, addr, memop, mmu).ok() },
        _ => None,
    };
    result.unwrap_or_else(|| {
        // SAFETY: as the caller promised.
        unsafe { set_fault(env, current) };
        0
    })
}

/// `st_slow(env, addr, value, memop | mmu << 8, 0, 0) -> 0`: a guest store; on failure it sets the fault
/// word.
///
/// # Safety
/// Called by generated code with the CPU state of the TB that [`Running`] was entered for.
pub unsafe extern "C" fn st_slow(env: *mut u8, addr: u64, value: u64, op: u64, _: u64, _: u64) -> u64 {
    let current = CURRENT.with(Cell::get);
    let ok = match (current, decode(op)) {
        // SAFETY: `Running::enter`'s contract: the memory is live and not otherwise borrowed.
        (Some(c), Some((memop, mmu))) => unsafe { (*c.mem).store(env, addr, value, memop, mmu).is_ok() },
        _ => false,
    };
    if !ok {
        // SAFETY: as the caller promised.
        unsafe { set_fault(env, current) };
    }
    0
}
