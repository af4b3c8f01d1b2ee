//! The x86 CPU on the execution loop and on softmmu: [`X86Cpu`] implements `rqemu_accel`'s [`CpuOps`] over an
//! [`X86CpuState`] whose TLB tables a [`SoftMmu`] fills, and drives [`DisasContext`] through the accel's
//! [`translator_loop`] (the [`TranslatorOps`] adapter below).
//!
//! # MMU indexes
//! | index | meaning |
//! |---|---|
//! | 0 ([`MMU_KERNEL`]) | supervisor accesses (CPL 0..2) and every code fetch: all generated code uses it today |
//! | 1 ([`MMU_USER`]) | user accesses (CPL 3), reserved for the system issue |
//! | 2 ([`MMU_PHYS`]) | physical accesses (page walks, paging off), reserved |
//!
//! Paging is off: [`X86Fill`] maps every canonical virtual address to the same physical address (a 64-bit flat
//! guest as a loader leaves it), except addresses at or above [`X86Fill::limit`], which raise #PF (a
//! stand-in for unmapped pages until page walks arrive). Non-canonical addresses raise #GP(0).
//!
//! # Memory
//! The [`SoftMmu`] lives behind an [`MmuHandle`] (`Rc<RefCell<_>>`): the CPU keeps one for code fetch
//! ([`SoftMmu::fetch_code`], [`SoftMmu::code_paddr`]) and the caller passes another, as the loop's
//! [`GuestMemory`], to [`rqemu_accel::CpuExec::run`] ([`X86Cpu::memory`]). The CPU state is owned by the
//! fill hook inside the `SoftMmu`, so it lives (at a fixed address) as long as any handle does.
//!
//! # Exceptions and exits
//! IDT delivery is the system issue. Until then [`CpuOps::handle_exception`] records the exception in
//! [`X86Cpu::last_exception`] (rip restored to the faulting instruction, registers as before it; for a trap,
//! rip of the next instruction) and stops the loop with [`STOP_EXCEPTION`]` | vector`. Target exit values
//! (`>= EXIT_TARGET_BASE`) stop the loop with that value. No interrupts yet.
//!
//! # Self-modifying code
//! Every page a TB is translated from is marked as holding code ([`SoftMmu::set_code_page`]); the code-write
//! hook queues the written range on the loop's [`InvalidateQueue`] ([`X86Cpu::attach_invalidate_queue`]),
//! applied at the next TB boundary (a write into the running TB takes effect at the next TB, as the accel
//! documents).

use core::cell::RefCell;
use core::mem::offset_of;
use core::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;

use rqemu_accel::cpu::EXIT_TARGET_BASE;
use rqemu_accel::{
    helper_lookup_tb_ptr, translator_loop, CodeFault, CpuAction, CpuOps, DisasBase, DisasJump as AccelJump,
    InvalidateQueue, TbKey, TbKeyFn, TranslateError, TranslatorOps,
};
use rqemu_include::{GuestVirtAddr, MemOp, MmuIdx, TARGET_PAGE_MASK};
use rqemu_softmmu::{Access, AddressSpace, IdentityFill, SoftMmu, TlbFill, Translation};
use rqemu_tcg::opcodes::INSN_START_WORDS;
use rqemu_tcg::{Func, GuestMemory, MemFault, TargetDesc};

use crate::cpu::{excp, seg, X86CpuState, DESC_B, DESC_L};
use crate::desc::I386Target;
use crate::translate::{CodeFetch, DisasContext, DisasJump, TbFlags};

/// MMU index 0: supervisor data accesses and code fetch.
pub const MMU_KERNEL: MmuIdx = mmu(0);
/// MMU index 1: user data accesses (reserved).
pub const MMU_USER: MmuIdx = mmu(1);
/// MMU index 2: physical accesses (reserved).
pub const MMU_PHYS: MmuIdx = mmu(2);

const fn mmu(i: u8) -> MmuIdx {
    match MmuIdx::new(i) {
        Some(m) => m,
        None => panic!("MMU index out of range"),
    }
}

/// Stop code of [`CpuOps::handle_exception`]: `STOP_EXCEPTION | vector`.
pub const STOP_EXCEPTION: u64 = 0x1_0000_0000;

/// EFER.LMA.
const EFER_LMA: u64 = 1 << 10;

/// The TB flags word of [`TbKey::flags`]: bits 0..2 code size (0: 16, 1: 32, 2: 64), bit 2 `ss32`, bits 3..5
/// CPL (CS selector's RPL).
pub fn tb_flags_word(flags: &TbFlags, cpl: u16) -> u32 {
    let size = match flags.bitness {
        64 => 2,
        32 => 1,
        _ => 0,
    };
    size | u32::from(flags.ss32) << 2 | u32::from(cpl & 3) << 3
}

/// [`TbFlags`] back from a [`TbKey`].
pub fn tb_flags_of_key(key: &TbKey) -> TbFlags {
    TbFlags {
        bitness: match key.flags & 3 {
            2 => 64,
            1 => 32,
            _ => 16,
        },
        ss32: key.flags & 4 != 0,
        cs_base: key.cs_base,
    }
}

/// QEMU's `cpu_get_tb_cpu_state` for x86: rip, the CS base (0 in 64-bit mode) and the mode flags.
pub fn tb_key_of(s: &X86CpuState) -> TbKey {
    let cs = &s.segs[seg::CS];
    let long = s.efer & EFER_LMA != 0 && cs.flags & DESC_L != 0;
    let flags = TbFlags {
        bitness: if long {
            64
        } else if cs.flags & DESC_B != 0 {
            32
        } else {
            16
        },
        ss32: long || s.segs[seg::SS].flags & DESC_B != 0,
        cs_base: if long { 0 } else { cs.base },
    };
    TbKey {
        pc: s.rip,
        cs_base: flags.cs_base,
        flags: tb_flags_word(&flags, cs.selector),
        cflags: 0,
    }
}

/// [`tb_key_of`] from `env`, for the loop's `lookup_tb_ptr` helper.
///
/// # Safety
/// `env` points to an [`X86CpuState`].
unsafe fn tb_key_from_env(env: *const u8) -> TbKey {
    // SAFETY: the caller's promise; it runs inside a TB (a helper), while no SoftMmu method holds the tables.
    let s = unsafe { &*env.cast::<X86CpuState>() };
    tb_key_of(s)
}

/// The CPU state's heap allocation, freed when the last owner (the fill hook) goes.
struct StateBox(NonNull<X86CpuState>);

impl Drop for StateBox {
    fn drop(&mut self) {
        // SAFETY: from `Box::into_raw` in `X86Cpu::new`, freed only here.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// The x86 TLB fill hook, paging off (see the module doc): identity mapping below `limit`, #PF at and above
/// it, #GP(0) for non-canonical addresses and misaligned accesses that must fault. Faults are recorded in the
/// CPU state (`exception_index`, `error_code`, `fault_addr`); the backend sets the fault word.
pub struct X86Fill {
    state: StateBox,
    /// The identity mapping (its `limit` is the first unmapped address; its `fills` counts TLB misses).
    pub identity: IdentityFill,
}

impl X86Fill {
    fn record(&mut self, vector: u32, error_code: u32, addr: u64) {
        let s = self.state.0.as_ptr();
        // SAFETY: the state outlives the fill (it owns it); fields are written through the raw pointer, no
        // reference to the TLB tables is made.
        unsafe {
            (*s).exception_index = vector;
            (*s).error_code = error_code;
            (*s).fault_addr = addr;
            // A fault, not a trap: forget what an earlier int n left.
            (*s).exception_is_int = 0;
            (*s).exception_is_trap = 0;
        }
    }
}

/// Whether `vaddr` is canonical for 48-bit virtual addresses.
fn is_canonical(vaddr: u64) -> bool {
    ((vaddr as i64) << 16 >> 16) as u64 == vaddr
}

impl TlbFill for X86Fill {
    fn tlb_fill(
        &mut self,
        space: &mut AddressSpace,
        vaddr: GuestVirtAddr,
        access: Access,
        mmu: MmuIdx,
        probe: bool,
    ) -> Result<Translation, MemFault> {
        if !is_canonical(vaddr) {
            if !probe {
                self.record(excp::GP, 0, 0);
            }
            return Err(MemFault);
        }
        self.identity
            .tlb_fill(space, vaddr, access, mmu, probe)
            .inspect_err(|_| {
                if !probe {
                    let code = match access {
                        Access::Read => 0,
                        Access::Write => 2,
                        Access::Fetch => 0x10,
                    } | if mmu == MMU_USER { 4 } else { 0 };
                    self.record(excp::PF, code, vaddr);
                }
            })
    }

    fn unaligned_access(&mut self, _vaddr: GuestVirtAddr, _access: Access, _mmu: MmuIdx) {
        self.record(excp::GP, 0, 0);
    }
}

/// A shared handle on the CPU's [`SoftMmu`]: the loop's [`GuestMemory`] and the translator's code fetch.
pub struct MmuHandle(Rc<RefCell<SoftMmu<X86Fill>>>);

impl Clone for MmuHandle {
    fn clone(&self) -> Self {
        MmuHandle(self.0.clone())
    }
}

impl MmuHandle {
    /// Runs `f` on the `SoftMmu` (map regions, read or write guest memory, inspect the TLB).
    pub fn with<R>(&self, f: impl FnOnce(&mut SoftMmu<X86Fill>) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }
}

impl GuestMemory for MmuHandle {
    fn load(&mut self, _env: *mut u8, addr: u64, memop: MemOp, mmu: MmuIdx) -> Result<u64, MemFault> {
        self.0.borrow_mut().load(addr, memop, mmu)
    }

    fn store(&mut self, _env: *mut u8, addr: u64, value: u64, memop: MemOp, mmu: MmuIdx) -> Result<(), MemFault> {
        self.0.borrow_mut().store(addr, value, memop, mmu)
    }
}

/// An exception [`X86Cpu::handle_exception`] recorded instead of delivering it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X86Exception {
    /// The vector.
    pub vector: u32,
    /// Its error code.
    pub error_code: u32,
    /// The faulting address (#PF).
    pub fault_addr: u64,
    /// Where the exception returns: for a fault the rip of the instruction that raised it; for a trap (int n,
    /// int3, into, int1: `X86CpuState::exception_is_trap`) the rip of the next instruction, which is also
    /// where the CPU state's rip is left.
    pub rip: u64,
}

/// One x86-64 CPU for the execution loop: its state (with the TLB), the target description, and its memory.
pub struct X86Cpu {
    state: NonNull<X86CpuState>,
    target: I386Target,
    mmu: MmuHandle,
    /// The exception the last `handle_exception` stopped on.
    pub last_exception: Option<X86Exception>,
    /// Guest instructions translated so far.
    pub insns_translated: u64,
}

impl X86Cpu {
    /// A CPU starting in `state` over the physical address space `space`, with the identity fill (nothing
    /// unmapped) and the loop's `lookup_tb_ptr` registered, so indirect jumps end with `goto_ptr`.
    pub fn new(space: AddressSpace, state: X86CpuState) -> X86Cpu {
        let state = NonNull::from(Box::leak(Box::new(state)));
        let fill = X86Fill {
            state: StateBox(state),
            identity: IdentityFill::default(),
        };
        // SAFETY: the tables are a field of the state, which the fill owns: they live and stay put as long as
        // the SoftMmu. References to the state are made only between SoftMmu calls (see `state_mut`).
        let soft = unsafe {
            let tables = NonNull::new_unchecked(&raw mut (*state.as_ptr()).tlb);
            SoftMmu::with_tables(space, tables, fill)
        };
        X86Cpu {
            state,
            target: I386Target::with_lookup(Some(helper_lookup_tb_ptr)),
            mmu: MmuHandle(Rc::new(RefCell::new(soft))),
            last_exception: None,
            insns_translated: 0,
        }
    }

    /// The CPU state.
    pub fn state(&self) -> &X86CpuState {
        // SAFETY: the state lives as long as `self.mmu` (see `new`); the loop is not running while `&self` is.
        unsafe { self.state.as_ref() }
    }

    /// The CPU state, to set registers between runs. Do not keep the reference across a memory access.
    pub fn state_mut(&mut self) -> &mut X86CpuState {
        // SAFETY: as in `state`.
        unsafe { self.state.as_mut() }
    }

    /// The memory handle to pass to `CpuExec::run` (and to load guest code and data with).
    pub fn memory(&self) -> MmuHandle {
        self.mmu.clone()
    }

    /// The target (globals and helpers) TBs are built for.
    pub fn target(&self) -> &I386Target {
        &self.target
    }

    /// Makes stores to pages holding translated code queue their range on `queue` (the loop's
    /// `CpuExec::invalidate_queue`), so the TBs built from them are invalidated at the next TB boundary.
    pub fn attach_invalidate_queue(&mut self, queue: InvalidateQueue) {
        self.mmu.with(|m| {
            m.set_code_write_hook(Box::new(move |paddr, len| {
                queue.push(paddr, paddr + u64::from(len));
                true
            }))
        });
    }
}

/// Code fetch through the code TLB.
struct MmuFetch<'a> {
    mmu: &'a mut SoftMmu<X86Fill>,
}

impl CodeFetch for MmuFetch<'_> {
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> usize {
        self.mmu.fetch_code(addr, buf, MMU_KERNEL).0
    }
}

/// [`DisasContext`] as the accel's [`TranslatorOps`]: the accel's translator loop owns the instruction limit
/// and the page end (the context's own limit is set out of reach; its page check agrees with the loop's).
struct X86Translator<'a, 't> {
    dc: DisasContext<'t>,
    fetch: MmuFetch<'a>,
}

impl TranslatorOps for X86Translator<'_, '_> {
    fn tb_start(&mut self, _db: &mut DisasBase, f: &mut Func) {
        self.dc.tb_start(f);
    }

    fn insn_start(&mut self, db: &mut DisasBase, f: &mut Func) {
        self.dc.pc_next = db.pc_next;
        self.dc.insn_start(f);
    }

    fn translate_insn(&mut self, db: &mut DisasBase, f: &mut Func) -> Result<(), TranslateError> {
        self.dc.translate_insn(f, &mut self.fetch);
        if let Some(fault) = self.dc.fetch_fault {
            // The first instruction runs into bytes that cannot be fetched: fetch the first of them again so
            // the fill records the fault at exactly that address.
            let mut byte = [0u8];
            if self.fetch.mmu.fetch_code(fault.addr, &mut byte, MMU_KERNEL).1.is_none() {
                return Err(TranslateError::Other(format!(
                    "code at {:#x} is fetchable on retry",
                    fault.addr
                )));
            }
            return Err(TranslateError::Fault);
        }
        if self.dc.is_jmp == DisasJump::TooMany && self.dc.pc_next == self.dc.pc {
            // A later instruction could not be fetched: the context dropped it (and its insn_start).
            db.num_insns -= 1;
        }
        db.pc_next = self.dc.pc_next;
        db.is_jmp = match self.dc.is_jmp {
            DisasJump::Next => AccelJump::Next,
            DisasJump::TooMany => AccelJump::TooMany,
            DisasJump::NoReturn => AccelJump::NoReturn,
        };
        Ok(())
    }

    fn tb_stop(&mut self, db: &mut DisasBase, f: &mut Func) {
        self.dc.pc_next = db.pc_next;
        self.dc.is_jmp = match db.is_jmp {
            AccelJump::Next | AccelJump::TooMany | AccelJump::Target(_) => DisasJump::TooMany,
            AccelJump::NoReturn => DisasJump::NoReturn,
        };
        self.dc.tb_stop(f);
    }

    fn disas_log(&mut self, db: &DisasBase) -> Option<String> {
        // `-d in_asm` only: fetch the TB's bytes again (the context does not keep them).
        let mut bytes = vec![0; db.size() as usize];
        let linear = linear(&self.dc.flags, db.key.pc);
        let n = self.fetch.fetch(linear, &mut bytes);
        Some(crate::dump::format_in_asm(
            &bytes[..n],
            db.key.pc,
            self.dc.flags.bitness,
        ))
    }
}

impl CpuOps for X86Cpu {
    fn target_desc(&self) -> Arc<TargetDesc> {
        self.target.desc.clone()
    }

    fn env(&mut self) -> *mut u8 {
        self.state.as_ptr().cast()
    }

    fn exit_word_offset(&self) -> Option<i32> {
        Some(offset_of!(X86CpuState, exit_word) as i32)
    }

    fn tb_key(&self) -> TbKey {
        tb_key_of(self.state())
    }

    fn tb_key_fn(&self) -> Option<TbKeyFn> {
        Some(tb_key_from_env as TbKeyFn)
    }

    fn code_phys_addr(&mut self, _mem: &mut dyn GuestMemory, pc: u64) -> Result<u64, CodeFault> {
        let flags = tb_flags_of_key(&self.tb_key());
        let linear = linear(&flags, pc);
        self.mmu
            .with(|m| m.code_paddr(linear, MMU_KERNEL))
            .map_err(|_| CodeFault)
    }

    fn gen_code(
        &mut self,
        _mem: &mut dyn GuestMemory,
        db: &mut DisasBase,
        func: &mut Func,
    ) -> Result<(), TranslateError> {
        let exit_word = self.exit_word_offset();
        let flags = tb_flags_of_key(&db.key);
        // No limit of its own: the accel's loop stops the TB.
        let dc = DisasContext::new(&self.target, db.key.pc, flags, u32::MAX);
        let mut soft = self.mmu.0.borrow_mut();
        let mut tr = X86Translator {
            dc,
            fetch: MmuFetch { mmu: &mut soft },
        };
        translator_loop(&mut tr, db, func, exit_word)?;
        self.insns_translated += u64::from(db.num_insns);
        // Mark the pages the TB was built from, so stores to them invalidate it.
        let first = linear(&flags, db.key.pc);
        let last = linear(&flags, db.key.pc.wrapping_add(db.size().max(1) - 1));
        for page in [first, last] {
            if let Ok(paddr) = soft.code_paddr(page, MMU_KERNEL) {
                soft.set_code_page(paddr);
            }
            if (first ^ last) & TARGET_PAGE_MASK == 0 {
                break;
            }
        }
        Ok(())
    }

    fn restore_state_to_opc(&mut self, _key: &TbKey, words: &[u64; INSN_START_WORDS]) {
        let s = self.state_mut();
        s.rip = words[0];
        if words[1] != 0 {
            s.cc_op = words[1] as u32;
        }
    }

    fn handle_exception(&mut self) -> CpuAction {
        // A trap returns to the next instruction (the loop restored the trapping one's rip).
        self.state_mut().complete_trap();
        let s = self.state();
        crate::dump::log_exception(s);
        let e = X86Exception {
            vector: s.exception_index,
            error_code: s.error_code,
            fault_addr: s.fault_addr,
            rip: s.rip,
        };
        self.last_exception = Some(e);
        CpuAction::Stop(STOP_EXCEPTION | u64::from(e.vector))
    }

    fn handle_interrupt(&mut self) -> Option<CpuAction> {
        None
    }

    fn check_halted(&mut self) -> bool {
        self.state().halted != 0
    }

    fn handle_exit(&mut self, value: u64) -> CpuAction {
        debug_assert!(value >= EXIT_TARGET_BASE);
        CpuAction::Stop(value)
    }

    fn dump_state(&self) -> String {
        self.state().to_string()
    }
}

/// The linear address of `rip` in mode `flags`.
fn linear(flags: &TbFlags, rip: u64) -> u64 {
    let a = flags.cs_base.wrapping_add(rip);
    if flags.bitness == 64 {
        a
    } else {
        a & 0xffff_ffff
    }
}
