//! The host side of the embedded engine: the state of a run (guest memory, the caller's CPU state), copying
//! the CPU state between the caller and linear memory, and the host functions that modules import (helpers and
//! the `qemu_ld`/`qemu_st` slow paths).

use rqemu_include::{MemOp, MmuIdx};
use rqemu_tcg::{GuestMemory, HelperFn};
use wasmi::{Caller, Func, Memory, Store};

use super::ENV_ADDR;

/// What a running TB's host functions need.
pub(super) struct RunContext {
    /// The guest memory of the run (lifetime erased, valid while the run lasts).
    pub mem: *mut (dyn GuestMemory + 'static),
    /// The caller's CPU state.
    pub host_env: *mut u8,
    pub env_size: usize,
    pub fault_offset: i32,
    /// Offsets of 8-byte pointer globals to relocate.
    pub ptr_globals: Vec<i32>,
}

/// The store's data: the context of the run in progress, if any.
#[derive(Default)]
pub(super) struct HostState {
    pub run: Option<RunContext>,
}

/// Erases the lifetime of a guest memory reference.
///
/// # Safety
/// The pointer must not be used after the borrow of `mem` ends.
pub(super) unsafe fn erase(mem: &mut dyn GuestMemory) -> *mut (dyn GuestMemory + 'static) {
    let p: *mut (dyn GuestMemory + '_) = mem;
    // SAFETY: only the lifetime changes; the caller promises not to outlive the borrow.
    unsafe { core::mem::transmute(p) }
}

impl RunContext {
    /// Moves a pointer global's value from one placement of the state to the other when it points into it.
    fn relocated(&self, v: u64, from: u64, to: u64) -> u64 {
        if v >= from && v <= from + self.env_size as u64 {
            v - from + to
        } else {
            v
        }
    }

    /// Copies the caller's CPU state into linear memory at [`ENV_ADDR`].
    ///
    /// # Safety
    /// `host_env` must point to `env_size` readable bytes.
    pub(super) unsafe fn copy_in(&self, data: &mut [u8]) {
        let at = ENV_ADDR as usize;
        // SAFETY: the caller's promise.
        let src = unsafe { core::slice::from_raw_parts(self.host_env, self.env_size) };
        let dst = &mut data[at..at + self.env_size];
        dst.copy_from_slice(src);
        for &off in &self.ptr_globals {
            let Some(field) = dst.get_mut(off as usize..off as usize + 8) else {
                continue;
            };
            let v = u64::from_ne_bytes(field.try_into().unwrap_or([0; 8]));
            let v = self.relocated(v, self.host_env as u64, ENV_ADDR as u64);
            field.copy_from_slice(&v.to_le_bytes());
        }
    }

    /// Copies the CPU state in linear memory back to the caller's.
    ///
    /// # Safety
    /// `host_env` must point to `env_size` writable bytes.
    pub(super) unsafe fn copy_out(&self, data: &[u8]) {
        let at = ENV_ADDR as usize;
        // SAFETY: the caller's promise.
        let dst = unsafe { core::slice::from_raw_parts_mut(self.host_env, self.env_size) };
        dst.copy_from_slice(&data[at..at + self.env_size]);
        for &off in &self.ptr_globals {
            let Some(field) = dst.get_mut(off as usize..off as usize + 8) else {
                continue;
            };
            let v = u64::from_le_bytes(field.try_into().unwrap_or([0; 8]));
            let v = self.relocated(v, ENV_ADDR as u64, self.host_env as u64);
            field.copy_from_slice(&v.to_ne_bytes());
        }
    }

    /// Sets the fault word in the state in linear memory.
    fn set_fault(&self, data: &mut [u8]) {
        let at = (ENV_ADDR as i64 + self.fault_offset as i64) as usize;
        if let Some(w) = data.get_mut(at..at + 4) {
            w.copy_from_slice(&1u32.to_le_bytes());
        }
    }
}

/// Runs `f` on the caller's CPU state: the state in linear memory is copied out before and in again after,
/// so `f` sees and changes exactly what generated code would. Returns `None` outside a run.
fn on_host_state<R>(
    caller: &mut Caller<'_, HostState>,
    memory: Memory,
    f: impl FnOnce(&RunContext, &mut [u8]) -> R,
) -> Option<R> {
    let (data, state) = memory.data_and_store_mut(caller);
    let run = state.run.as_ref()?;
    // SAFETY: during a run `host_env` is the caller's CPU state of `env_size` bytes (`EmbeddedTb::run`).
    unsafe { run.copy_out(data) };
    let r = f(run, data);
    // SAFETY: as above.
    unsafe { run.copy_in(data) };
    Some(r)
}

/// A host function calling the helper `func` with the caller's real `env`.
pub(super) fn helper_func(store: &mut Store<HostState>, memory: Memory, func: HelperFn) -> Func {
    Func::wrap(
        store,
        move |mut caller: Caller<'_, HostState>, _env: i32, a0: i64, a1: i64, a2: i64, a3: i64, a4: i64| -> i64 {
            on_host_state(&mut caller, memory, |run, _| {
                // SAFETY: the helper was registered for this target and gets its CPU state.
                unsafe { func(run.host_env, a0 as u64, a1 as u64, a2 as u64, a3 as u64, a4 as u64) as i64 }
            })
            .unwrap_or(0)
        },
    )
}

/// Which slow path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Load,
    Store,
}

/// Splits the slow paths' operand `memop | mmu << 8`.
fn decode(op: u64) -> Option<(MemOp, MmuIdx)> {
    let memop = MemOp::from_raw((op & 0xff) as u32).ok()?;
    let mmu = MmuIdx::new(u8::try_from(op >> 8).ok()?)?;
    Some((memop, mmu))
}

/// A host function for `ld_slow(env, addr, op, 0, 0, 0)` or `st_slow(env, addr, value, op, 0, 0)`, reaching
/// the run's [`GuestMemory`]; a failed access sets the fault word and returns 0.
pub(super) fn slow_path_func(store: &mut Store<HostState>, memory: Memory, access: Access) -> Func {
    Func::wrap(
        store,
        move |mut caller: Caller<'_, HostState>, _env: i32, a0: i64, a1: i64, a2: i64, _: i64, _: i64| -> i64 {
            let (addr, value, op) = match access {
                Access::Load => (a0 as u64, 0, a1 as u64),
                Access::Store => (a0 as u64, a1 as u64, a2 as u64),
            };
            let result = on_host_state(&mut caller, memory, |run, _| {
                let (memop, mmu) = decode(op).ok_or(rqemu_tcg::MemFault)?;
                // SAFETY: `mem` is the run's guest memory, not otherwise borrowed while generated code runs.
                let mem = unsafe { &mut *run.mem };
                match access {
                    Access::Load => mem.load(run.host_env, addr, memop, mmu),
                    Access::Store => mem.store(run.host_env, addr, value, memop, mmu).map(|()| 0),
                }
            });
            match result {
                Some(Ok(v)) => v as i64,
                _ => {
                    let (data, state) = memory.data_and_store_mut(&mut caller);
                    if let Some(run) = state.run.as_ref() {
                        run.set_fault(data);
                    }
                    0
                }
            }
        },
    )
}
