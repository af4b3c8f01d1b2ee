//! The x86 CPU on the execution loop and on softmmu: [`X86Cpu`] implements `rqemu_accel`'s [`CpuOps`] over an
//! [`X86CpuState`] whose TLB tables a [`SoftMmu`] fills, and drives [`DisasContext`] through the accel's
//! [`translator_loop`] (the [`TranslatorOps`] adapter below).
//!
//! # MMU indexes
//! The walker's rights depend on who accesses ([`Privilege`]), and a TLB entry caches them, so each privilege
//! has its own index. The translator picks the data index from the TB flags (`DisasContext::mem_index`:
//! CPL, EFLAGS.AC) and the code-fetch index from the CPL ([`code_mmu_index`]).
//!
//! | index | accesses | walked as |
//! |---|---|---|
//! | 0 ([`MMU_KERNEL`]) | supervisor data (CPL 0..2), EFLAGS.AC = 0; implicit | `Supervisor { ac: false }`: SMAP on |
//! | 1 ([`MMU_USER`]) | CPL 3 data and code fetch | `User` |
//! | 2 ([`MMU_PHYS`]) | physical (identity whatever CR0.PG says; reserved) | none |
//! | 3 ([`MMU_KERNEL_AC`]) | supervisor data with EFLAGS.AC = 1 | `Supervisor { ac: true }`: SMAP overridden |
//! | 4 ([`MMU_KERNEL_CODE`]) | supervisor code fetch | `Supervisor { ac: false }`: SMEP applies |
//!
//! Since AC and the CPL are TB flags, popf/iret/interrupts that change them start new TBs with the right
//! index and no flush is needed. Helpers (descriptor tables, interrupt frames) do not use the TLB: they walk
//! with `sysmem::PagedMem`.
//!
//! # Paging
//! [`X86Fill`] translates with [`crate::paging::translate`] over the address space whenever CR0.PG is set:
//! #PF is recorded with the walker's error code and the faulting address in `fault_addr` (CR2 is written at
//! delivery by `excp_helper`); in 4-level paging a non-canonical address is #GP(0). With paging off (and for
//! [`MMU_PHYS`]) every address maps to itself below [`X86Fill::identity`]'s `limit` and raises #PF at and above
//! it (a stand-in for "nothing there"). A state that starts with CR0.PG set and CR3 = 0 (the loader-style
//! `X86CpuState::new_long_mode` without page tables) runs flat ([`X86Fill::flat`]) until the guest writes CR0
//! or CR3.
//!
//! TLB flushes (done by the system-instruction helpers in `translate/sysregs.rs` after they finish updating
//! the state, never while holding a reference to it: see [`with_sys`]): a CR3 load drops the pages [`X86Fill`]
//! filled without the walker's global flag (CR4.PGE and G), one by one, so global pages survive it (softmmu keeps
//! no global bit; past [`NONGLOBAL_MAX`] such pages, or after other full flushes' bookkeeping is lost, it
//! flushes everything, which is only slower); changes of
//! CR0.PG/WP/PE, CR4.PGE/PAE/PSE/SMEP/SMAP and EFER.NXE flush everything; `invlpg` flushes the page from every
//! index (the whole index when the page lies in a large page's range).
//!
//! # Memory
//! The [`SoftMmu`] lives behind an [`MmuHandle`] (`Rc<RefCell<_>>`): the CPU keeps one for code fetch
//! ([`SoftMmu::fetch_code`], [`SoftMmu::code_paddr`]) and the caller passes another, as the loop's
//! [`GuestMemory`], to [`rqemu_accel::CpuExec::run`] ([`X86Cpu::memory`]). The CPU state is owned by the
//! fill hook inside the `SoftMmu`, so it lives (at a fixed address) as long as any handle does.
//!
//! # Exceptions and exits
//! [`CpuOps::handle_exception`] delivers the pending exception through the IVT/IDT
//! ([`crate::excp_helper::deliver`], double-fault rule; a triple fault stops the loop with
//! [`STOP_TRIPLE_FAULT`]) in [`ExceptionMode::Deliver`], the default; in [`ExceptionMode::Stop`] it records
//! it in [`X86Cpu::last_exception`] (rip restored to the faulting instruction, registers as before it; for a
//! trap, rip of the next instruction) and stops the loop with [`STOP_EXCEPTION`]` | vector`. External
//! interrupts come from the [`InterruptController`] the machine sets ([`CpuOps::handle_interrupt`], at TB
//! boundaries, IF = 1 and no interrupt shadow); hlt sets `halted` and [`CpuOps::check_halted`] keeps the loop
//! stopped until the controller has an interrupt the CPU takes. Target exit values (`>= EXIT_TARGET_BASE`)
//! stop the loop with that value.
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
use rqemu_softmmu::{Access, AddressSpace, CodeWrite, IdentityFill, SoftMmu, TlbFill, Translation};
use rqemu_tcg::opcodes::INSN_START_WORDS;
use rqemu_tcg::{Func, GuestMemory, MemFault, TargetDesc};

use crate::cpu::{excp, seg, X86CpuState, DESC_B, DESC_L};
use crate::desc::I386Target;
use crate::paging::{PagingMode, PagingRegs, Privilege};
use crate::translate::{CodeFetch, DisasContext, DisasJump, TbFlags};

/// MMU index 0: supervisor data accesses with SMAP enforced (EFLAGS.AC = 0), and implicit supervisor accesses.
pub const MMU_KERNEL: MmuIdx = mmu(0);
/// MMU index 1: user accesses (CPL 3): data and code fetch.
pub const MMU_USER: MmuIdx = mmu(1);
/// MMU index 2: physical accesses (identity whatever CR0.PG says; reserved: nothing generates it yet).
pub const MMU_PHYS: MmuIdx = mmu(2);
/// MMU index 3: supervisor data accesses with EFLAGS.AC = 1 (the SMAP override).
pub const MMU_KERNEL_AC: MmuIdx = mmu(3);
/// MMU index 4: supervisor code fetch (CPL 0..2; SMEP applies).
pub const MMU_KERNEL_CODE: MmuIdx = mmu(4);

/// The MMU index of explicit data accesses at `cpl` with EFLAGS.AC = `ac` (the TB flags' CPL and AC).
pub const fn data_mmu_index(cpl: u8, ac: bool) -> MmuIdx {
    if cpl == 3 {
        MMU_USER
    } else if ac {
        MMU_KERNEL_AC
    } else {
        MMU_KERNEL
    }
}

/// The MMU index of code fetch at `cpl`.
pub const fn code_mmu_index(cpl: u8) -> MmuIdx {
    if cpl == 3 {
        MMU_USER
    } else {
        MMU_KERNEL_CODE
    }
}

const fn mmu(i: u8) -> MmuIdx {
    match MmuIdx::new(i) {
        Some(m) => m,
        None => panic!("MMU index out of range"),
    }
}

/// Stop code of [`CpuOps::handle_exception`] in [`ExceptionMode::Stop`]: `STOP_EXCEPTION | vector`.
pub const STOP_EXCEPTION: u64 = 0x1_0000_0000;

/// Stop code of a triple fault (a fault while delivering #DF, or an unrecoverable delivery): the machine
/// resets the CPU ([`X86Cpu::reset`]) or, under `-no-reboot`, exits.
pub const STOP_TRIPLE_FAULT: u64 = 0x2_0000_0000;

/// What [`CpuOps::handle_exception`] does with an exception.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExceptionMode {
    /// Deliver it through the IVT/IDT (`excp_helper::deliver`, with the double-fault rule) and go on; a triple
    /// fault stops the loop with [`STOP_TRIPLE_FAULT`]. What hardware does: the default.
    #[default]
    Deliver,
    /// Record it in [`X86Cpu::last_exception`] and stop the loop with [`STOP_EXCEPTION`]` | vector` (rip at
    /// the faulting instruction, or after a trap). For tests and harnesses that run code without an IDT.
    Stop,
}

/// The interrupt controller as the CPU sees it (the machine's 8259 pair or a test's fake): asked at every TB
/// boundary the loop enters ([`CpuOps::handle_interrupt`]) and by a halted CPU ([`CpuOps::check_halted`]).
pub trait InterruptController {
    /// Whether an external interrupt (INTR) is pending.
    fn has_interrupt(&self) -> bool;
    /// The interrupt acknowledge cycle: the vector of the pending interrupt (called only when
    /// [`InterruptController::has_interrupt`] said so and the CPU takes it; a spurious vector otherwise).
    fn acknowledge(&mut self) -> u8;
    /// Whether an NMI is pending (delivered as vector 2 whatever IF says, unless an earlier NMI's handler
    /// has not executed iret yet: `X86CpuState::nmi_blocked`).
    fn nmi_pending(&self) -> bool {
        false
    }
    /// Takes the pending NMI (the CPU is delivering it).
    fn acknowledge_nmi(&mut self) {}
}

/// EFER.LMA.
const EFER_LMA: u64 = 1 << 10;

/// TB flags word bit: `ss32`.
pub const TB_SS32: u32 = 1 << 2;
/// TB flags word: shift of the 2-bit CPL.
pub const TB_CPL_SHIFT: u32 = 3;
/// TB flags word bit: CR0.PE.
pub const TB_PE: u32 = 1 << 5;
/// TB flags word bit: EFLAGS.VM (vm86).
pub const TB_VM86: u32 = 1 << 6;
/// TB flags word bit: EFER.LMA.
pub const TB_LMA: u32 = 1 << 7;
/// TB flags word bit: `addseg` (DS/ES/SS bases are added to memory operands).
pub const TB_ADDSEG: u32 = 1 << 8;
/// TB flags word bit: EFLAGS.AC.
pub const TB_AC: u32 = 1 << 9;
/// TB flags word bit: interrupt shadow (`X86CpuState::interrupt_shadow`).
pub const TB_INHIBIT_IRQ: u32 = 1 << 10;
/// TB flags word: shift of the six `seg_checks` bits.
pub const TB_SEG_CHECKS_SHIFT: u32 = 12;

/// DR6.BS: the #DB came from single-stepping (EFLAGS.TF).
const DR6_BS: u64 = 1 << 14;

/// TB flags word bit: EFLAGS.TF (single-step).
pub const TB_TF: u32 = 1 << 11;

const CR0_EM: u64 = 1 << 2;
const CR0_TS: u64 = 1 << 3;
const CR4_OSFXSR: u64 = 1 << 9;

/// TB flags word bit: CR0.EM.
pub const TB_EM: u32 = 1 << 18;
/// TB flags word bit: CR0.TS.
pub const TB_TS: u32 = 1 << 19;
/// TB flags word bit: CR4.OSFXSR is *clear* (inverted so that the usual SSE-enabled state keeps the word of
/// before the bit existed).
pub const TB_NO_OSFXSR: u32 = 1 << 20;

/// The TB flags word of [`TbKey::flags`]:
///
/// | bits | field |
/// |---|---|
/// | 0..2 | code size (0: 16, 1: 32, 2: 64) |
/// | 2 | `ss32` (SS.B, or 64-bit mode) |
/// | 3..5 | CPL |
/// | 5 | `pe` (CR0.PE) |
/// | 6 | `vm86` (EFLAGS.VM) |
/// | 7 | `lma` (EFER.LMA) |
/// | 8 | `addseg` |
/// | 9 | `ac` (EFLAGS.AC) |
/// | 10 | `inhibit_irq` (interrupt shadow) |
/// | 11 | `tf` (EFLAGS.TF) |
/// | 12..18 | `seg_checks` (one bit per segment register) |
/// | 18 | `em` (CR0.EM) |
/// | 19 | `ts` (CR0.TS) |
/// | 20 | not `osfxsr` (CR4.OSFXSR clear) |
///
/// Bits 21..32 are free (0).
pub fn tb_flags_word(flags: &TbFlags) -> u32 {
    let size = match flags.bitness {
        64 => 2,
        32 => 1,
        _ => 0,
    };
    let bit = |b: bool, v: u32| if b { v } else { 0 };
    size | bit(flags.ss32, TB_SS32)
        | u32::from(flags.cpl & 3) << TB_CPL_SHIFT
        | bit(flags.pe, TB_PE)
        | bit(flags.vm86, TB_VM86)
        | bit(flags.lma, TB_LMA)
        | bit(flags.addseg, TB_ADDSEG)
        | bit(flags.ac, TB_AC)
        | bit(flags.inhibit_irq, TB_INHIBIT_IRQ)
        | bit(flags.tf, TB_TF)
        | u32::from(flags.seg_checks & 0x3f) << TB_SEG_CHECKS_SHIFT
        | bit(flags.em, TB_EM)
        | bit(flags.ts, TB_TS)
        | bit(!flags.osfxsr, TB_NO_OSFXSR)
}

/// [`TbFlags`] back from a [`TbKey`].
pub fn tb_flags_of_key(key: &TbKey) -> TbFlags {
    let w = key.flags;
    TbFlags {
        bitness: match w & 3 {
            2 => 64,
            1 => 32,
            _ => 16,
        },
        ss32: w & TB_SS32 != 0,
        cs_base: key.cs_base,
        cpl: (w >> TB_CPL_SHIFT & 3) as u8,
        pe: w & TB_PE != 0,
        vm86: w & TB_VM86 != 0,
        lma: w & TB_LMA != 0,
        addseg: w & TB_ADDSEG != 0,
        ac: w & TB_AC != 0,
        inhibit_irq: w & TB_INHIBIT_IRQ != 0,
        tf: w & TB_TF != 0,
        seg_checks: (w >> TB_SEG_CHECKS_SHIFT & 0x3f) as u8,
        em: w & TB_EM != 0,
        ts: w & TB_TS != 0,
        osfxsr: w & TB_NO_OSFXSR == 0,
    }
}

/// The [`TbFlags`] of the CPU state now (QEMU's hflags): mode, CPL, segment-base use, AC, interrupt shadow.
pub fn tb_flags_of_state(s: &X86CpuState) -> TbFlags {
    let cs = &s.segs[seg::CS];
    let lma = s.efer & EFER_LMA != 0;
    let long = lma && cs.flags & DESC_L != 0;
    let addseg = !long && [seg::DS, seg::ES, seg::SS].iter().any(|&i| s.segs[i].base != 0);
    TbFlags {
        bitness: if long {
            64
        } else if cs.flags & DESC_B != 0 {
            32
        } else {
            16
        },
        ss32: long || s.segs[seg::SS].flags & DESC_B != 0,
        cs_base: if long { 0 } else { cs.base },
        cpl: crate::seg_helper::cpl(s),
        pe: crate::seg_helper::is_protected(s),
        vm86: crate::seg_helper::is_vm86(s),
        lma,
        addseg,
        ac: s.eflags & crate::cpu::eflags::AC != 0,
        inhibit_irq: s.interrupt_shadow != 0,
        tf: s.eflags & crate::cpu::eflags::TF != 0,
        seg_checks: if long {
            0
        } else {
            (0..6).fold(0, |m, i| m | u8::from(crate::seg_helper::needs_data_check(s, i)) << i)
        },
        em: s.cr[0] & CR0_EM != 0,
        ts: s.cr[0] & CR0_TS != 0,
        osfxsr: s.cr[4] & CR4_OSFXSR != 0,
    }
}

/// QEMU's `cpu_get_tb_cpu_state` for x86: rip, the CS base (0 in 64-bit mode) and the mode flags.
pub fn tb_key_of(s: &X86CpuState) -> TbKey {
    let flags = tb_flags_of_state(s);
    TbKey {
        pc: s.rip,
        cs_base: flags.cs_base,
        flags: tb_flags_word(&flags),
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

/// The x86 TLB fill hook (see the module doc): with CR0.PG set, [`crate::paging::translate`] with the privilege of
/// the MMU index; with paging off (or [`X86Fill::flat`], or [`MMU_PHYS`]) the identity mapping below
/// `identity.limit` and #PF at and above it. Non-canonical addresses and misaligned accesses that must fault
/// raise #GP(0). Faults are recorded in the CPU state (`exception_index`, `error_code`, `fault_addr`); the
/// backend sets the fault word.
pub struct X86Fill {
    state: StateBox,
    /// The identity mapping used while paging is off (its `limit` is the first unmapped address; its `fills`
    /// counts TLB misses served by it).
    pub identity: IdentityFill,
    /// Translate as if paging were off whatever CR0.PG says. Set by [`X86Cpu::new`] for a state that starts
    /// with CR0.PG = 1 and CR3 = 0 (a loader's flat 64-bit state without page tables,
    /// `X86CpuState::new_long_mode`); cleared by the first write to CR0 or CR3, after which the page tables
    /// are the guest's. A guest from RESET starts with paging off, so this never applies to it.
    pub flat: bool,
    /// Page walks made (TLB misses served by the walker), for tests.
    pub walks: u64,
    /// The pages filled since the last full flush that a CR3 load must drop: every fill except the global
    /// pages of the walker (softmmu keeps no global bit, so the fill remembers the others). `None` once more
    /// than [`NONGLOBAL_MAX`] were filled: the next CR3 load flushes everything.
    nonglobal: Option<Vec<u64>>,
}

/// How many non-global pages [`X86Fill`] remembers before a CR3 load falls back to a full flush.
pub const NONGLOBAL_MAX: usize = 256;

impl X86Fill {
    /// What a CR3 load flushes: `Some(pages)` to drop one by one (global pages stay), `None` for everything.
    /// Starts a new record either way.
    pub fn take_nonglobal(&mut self) -> Option<Vec<u64>> {
        self.nonglobal.replace(Vec::new())
    }

    /// Forgets the record after a full flush.
    pub fn reset_nonglobal(&mut self) {
        self.nonglobal = Some(Vec::new());
    }

    fn note_nonglobal(&mut self, vaddr: u64) {
        if let Some(v) = &mut self.nonglobal {
            if v.len() >= NONGLOBAL_MAX {
                self.nonglobal = None;
            } else {
                v.push(vaddr & TARGET_PAGE_MASK);
            }
        }
    }
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

/// The walker's privilege for an MMU index (the module doc's table).
fn privilege_of(mmu: MmuIdx) -> Privilege {
    if mmu == MMU_USER {
        Privilege::User
    } else if mmu == MMU_KERNEL_AC {
        Privilege::Supervisor { ac: true }
    } else {
        // MMU_KERNEL (SMAP enforced, also implicit accesses) and MMU_KERNEL_CODE (SMEP applies to fetches).
        Privilege::Supervisor { ac: false }
    }
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
        // Outside long mode the translator already truncates linear addresses to 32 bits, so this only
        // catches 64-bit addresses.
        if !is_canonical(vaddr) {
            if !probe {
                self.record(excp::GP, 0, 0);
            }
            return Err(MemFault);
        }
        // SAFETY: the state outlives the fill; only the four paging registers are read through the pointer.
        let regs = unsafe { PagingRegs::from_state_ptr(self.state.0.as_ptr()) };
        if self.flat || mmu == MMU_PHYS || regs.mode() == PagingMode::Off {
            self.note_nonglobal(vaddr);
            return self
                .identity
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
                });
        }
        self.walks += 1;
        match crate::paging::translate(space, &regs, vaddr, access, privilege_of(mmu)) {
            Ok(walk) => {
                if !walk.global {
                    self.note_nonglobal(vaddr);
                }
                Ok(walk.translation())
            }
            Err(pf) => {
                if !probe {
                    self.record(excp::PF, pf.error_code, pf.addr);
                }
                Err(MemFault)
            }
        }
    }

    fn unaligned_access(&mut self, _vaddr: GuestVirtAddr, _access: Access, _mmu: MmuIdx) {
        self.record(excp::GP, 0, 0);
    }
}

/// What [`X86CpuState::sys`] points to: the CPU's [`SoftMmu`] in its shared cell.
pub type SysCell = RefCell<SoftMmu<X86Fill>>;

/// Runs `f` on the CPU's memory, for helpers that access guest memory or I/O ports outside generated code's
/// loads and stores (descriptor tables, interrupt frames, port I/O). `None` when the state has no memory
/// attached ([`X86CpuState::sys`] is 0) or the memory is busy (a host bug: helpers never run inside a memory
/// access).
///
/// A helper may hold `&mut X86CpuState` while `f` runs as long as `f` only uses [`SoftMmu::space_mut`],
/// [`SoftMmu::io`] and [`SoftMmu::write_phys`] (and page walks over them): those never touch the TLB tables,
/// which live inside the state. Flushes and `SoftMmu::load`/`store` do: call them after the last use of the
/// state reference.
///
/// # Safety
/// `env` is the [`X86CpuState`] generated code runs on.
pub unsafe fn with_sys<R>(env: *mut u8, f: impl FnOnce(&mut SoftMmu<X86Fill>) -> R) -> Option<R> {
    // SAFETY: the caller's promise; only the `sys` field is read.
    let sys = unsafe { (*env.cast::<X86CpuState>()).sys };
    if sys == 0 {
        return None;
    }
    // SAFETY: set by `X86Cpu::new` to the cell that (indirectly) owns this state, so it is alive.
    let cell = unsafe { &*(sys as *const SysCell) };
    let mut soft = cell.try_borrow_mut().ok()?;
    Some(f(&mut soft))
}

/// The paging registers the system helpers' [`crate::sysmem::PagedMem`] walks with: the state's, with paging
/// off while the fill runs flat ([`X86Fill::flat`]), so descriptor tables and interrupt frames are reached
/// at the same addresses as generated code's accesses.
pub fn sys_paging_regs(soft: &SoftMmu<X86Fill>, s: &X86CpuState) -> crate::paging::PagingRegs {
    let mut regs = crate::paging::PagingRegs::from_state(s);
    if soft.fill().flat {
        regs.cr0 &= !crate::paging::CR0_PG;
    }
    regs
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

/// An exception [`X86Cpu::handle_exception`] stopped on ([`ExceptionMode::Stop`]) or delivered.
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
    /// where the CPU state's rip is left in [`ExceptionMode::Stop`] (when delivered, the state is at the handler).
    pub rip: u64,
}

/// One x86-64 CPU for the execution loop: its state (with the TLB), the target description, and its memory.
pub struct X86Cpu {
    state: NonNull<X86CpuState>,
    target: I386Target,
    mmu: MmuHandle,
    /// The last exception `handle_exception` stopped on or delivered.
    pub last_exception: Option<X86Exception>,
    /// Guest instructions translated so far.
    pub insns_translated: u64,
    exception_mode: ExceptionMode,
    irq: Option<Box<dyn InterruptController>>,
    /// Translation options for the next TB (set after an aborted store into running code).
    cflags_next_tb: Option<u32>,
}

impl X86Cpu {
    /// A CPU starting in `state` over the physical address space `space`, with the identity fill (nothing
    /// unmapped) and the loop's `lookup_tb_ptr` registered, so indirect jumps end with `goto_ptr`.
    pub fn new(space: AddressSpace, state: X86CpuState) -> X86Cpu {
        let state = NonNull::from(Box::leak(Box::new(state)));
        let fill = X86Fill {
            state: StateBox(state),
            identity: IdentityFill::default(),
            // SAFETY: just leaked, not shared yet.
            flat: unsafe { (*state.as_ptr()).cr[0] } & crate::paging::CR0_PG != 0
                && unsafe { (*state.as_ptr()).cr[3] } == 0,
            walks: 0,
            nonglobal: Some(Vec::new()),
        };
        // SAFETY: the tables are a field of the state, which the fill owns: they live and stay put as long as
        // the SoftMmu. References to the state are made only between SoftMmu calls (see `state_mut`).
        let soft = unsafe {
            let tables = NonNull::new_unchecked(&raw mut (*state.as_ptr()).tlb);
            SoftMmu::with_tables(space, tables, fill)
        };
        let mmu = MmuHandle(Rc::new(RefCell::new(soft)));
        // SAFETY: no reference to the state exists yet. The cell lives in the Rc that owns the fill that owns
        // the state, so the address is valid whenever the state is reachable.
        unsafe { (*state.as_ptr()).sys = Rc::as_ptr(&mmu.0) as usize };
        X86Cpu {
            state,
            target: I386Target::with_lookup(Some(helper_lookup_tb_ptr)),
            mmu,
            last_exception: None,
            insns_translated: 0,
            exception_mode: ExceptionMode::default(),
            irq: None,
            cflags_next_tb: None,
        }
    }

    /// Chooses what exceptions do: [`ExceptionMode::Deliver`] (the default) or [`ExceptionMode::Stop`].
    pub fn set_exception_mode(&mut self, mode: ExceptionMode) {
        self.exception_mode = mode;
    }

    /// The exception mode in force.
    pub fn exception_mode(&self) -> ExceptionMode {
        self.exception_mode
    }

    /// Connects the interrupt controller external interrupts come from (none: no external interrupts).
    pub fn set_interrupt_controller(&mut self, controller: Box<dyn InterruptController>) {
        self.irq = Some(controller);
    }

    /// The CPU's RESET: the architectural reset state ([`X86CpuState::new`]) with the machine's links kept
    /// (memory, TSC clock) and the TLB flushed. For a triple fault ([`STOP_TRIPLE_FAULT`]) or a machine reset;
    /// translated code stays valid (TB keys hold the mode).
    pub fn reset(&mut self) {
        let old = self.state();
        let mut fresh = X86CpuState::new();
        fresh.sys = old.sys;
        fresh.tsc_clock = old.tsc_clock;
        fresh.tsc_offset = old.tsc_offset;
        fresh.tsc_last = old.tsc_last;
        // SAFETY: no other reference to the state is live (`&mut self`, the loop is not running); the new
        // value's TLB tables are empty and the SoftMmu's view is flushed right after.
        unsafe { self.state.as_ptr().write(fresh) };
        self.mmu.with(|m| {
            // RESET runs with paging off: the loader's flat mode (if any) is over.
            m.fill_mut().flat = false;
            m.flush_all()
        });
    }

    /// Delivers `event` through the IVT/IDT with the double-fault rule, on the CPU's memory.
    pub fn deliver(&mut self, event: crate::excp_helper::Event) -> crate::excp_helper::Delivery {
        let state = self.state.as_ptr();
        self.mmu.with(|soft| {
            // SAFETY: the loop is not running and no other reference to the state is live; the walk and the
            // accesses use only `space_mut`/`write_phys`, never the TLB tables inside the state (`with_sys`).
            let s = unsafe { &mut *state };
            let regs = sys_paging_regs(soft, s);
            let mut mem = crate::sysmem::PagedMem { space: soft, regs };
            crate::excp_helper::deliver(s, &mut mem, event)
        })
    }

    /// The outcome of a delivery as the loop's action.
    fn after_delivery(&mut self, d: crate::excp_helper::Delivery) -> CpuAction {
        match d {
            crate::excp_helper::Delivery::Delivered { .. } => CpuAction::Continue,
            crate::excp_helper::Delivery::TripleFault => CpuAction::Stop(STOP_TRIPLE_FAULT),
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
    /// A store from generated code into the code of a multi-instruction TB is refused instead (the running
    /// TB may be that one and would go on with the old instructions): it records
    /// [`excp::SMC_RESTART`](crate::cpu::excp::SMC_RESTART), the TB exits as for a fault, and the loop
    /// re-runs the storing instruction alone after the invalidation, so its store completes and the next
    /// instruction is translated from the new bytes.
    pub fn attach_invalidate_queue(&mut self, queue: InvalidateQueue) {
        let state = self.state;
        self.mmu.with(|m| {
            m.set_code_write_hook(Box::new(move |paddr, len, abortable| {
                let end = paddr + u64::from(len);
                queue.push(paddr, end);
                if abortable && queue.hits_multi_insn_code(paddr, end) {
                    // SAFETY: the state is owned by the fill of the SoftMmu holding this hook, so it outlives
                    // it; the hook runs inside a store, where no reference to the state is held.
                    unsafe { (*state.as_ptr()).exception_index = crate::cpu::excp::SMC_RESTART };
                    return CodeWrite::Abort;
                }
                CodeWrite::Keep
            }))
        });
    }
}

/// Code fetch through the code TLB.
struct MmuFetch<'a> {
    mmu: &'a mut SoftMmu<X86Fill>,
    /// The code-fetch MMU index of the TB's CPL ([`code_mmu_index`]).
    idx: MmuIdx,
}

impl CodeFetch for MmuFetch<'_> {
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> usize {
        self.mmu.fetch_code(addr, buf, self.idx).0
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
            if self
                .fetch
                .mmu
                .fetch_code(fault.addr, &mut byte, self.fetch.idx)
                .1
                .is_none()
            {
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

    fn take_cflags_next_tb(&mut self) -> Option<u32> {
        self.cflags_next_tb.take()
    }

    fn tb_key_fn(&self) -> Option<TbKeyFn> {
        Some(tb_key_from_env as TbKeyFn)
    }

    fn code_phys_addr(&mut self, _mem: &mut dyn GuestMemory, pc: u64) -> Result<u64, CodeFault> {
        let flags = tb_flags_of_key(&self.tb_key());
        let linear = linear(&flags, pc);
        self.mmu
            .with(|m| m.code_paddr(linear, code_mmu_index(flags.cpl)))
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
            fetch: MmuFetch {
                mmu: &mut soft,
                idx: code_mmu_index(flags.cpl),
            },
        };
        translator_loop(&mut tr, db, func, exit_word)?;
        self.insns_translated += u64::from(db.num_insns);
        // Mark the pages the TB was built from, so stores to them invalidate it.
        let first = linear(&flags, db.key.pc);
        let last = linear(&flags, db.key.pc.wrapping_add(db.size().max(1) - 1));
        for page in [first, last] {
            if let Ok(paddr) = soft.code_paddr(page, code_mmu_index(flags.cpl)) {
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
        if self.state().exception_index == crate::cpu::excp::SMC_RESTART {
            // Not an exception: re-run the storing instruction alone, once the loop has invalidated the TBs.
            self.state_mut().exception_index = 0;
            self.cflags_next_tb = Some(1);
            return CpuAction::Continue;
        }
        if self.exception_mode == ExceptionMode::Stop {
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
            return CpuAction::Stop(STOP_EXCEPTION | u64::from(e.vector));
        }
        let s = self.state_mut();
        crate::dump::log_exception(s);
        // Not `complete_trap` first: the event carries a trap's return address, and a fault raised while
        // delivering it (the DPL check of int n, say) returns to the trapping instruction, the state's rip.
        let event = crate::excp_helper::Event::from_pending(s);
        let e = X86Exception {
            vector: s.exception_index,
            error_code: s.error_code,
            fault_addr: s.fault_addr,
            rip: event.next_rip.unwrap_or(s.rip),
        };
        s.exception_is_int = 0;
        s.exception_is_trap = 0;
        // An exception ends an interrupt shadow (the instruction in it did not complete) and a halt.
        s.interrupt_shadow = 0;
        s.halted = 0;
        self.last_exception = Some(e);
        let d = self.deliver(event);
        self.after_delivery(d)
    }

    fn handle_interrupt(&mut self) -> Option<CpuAction> {
        let s = self.state();
        if s.interrupt_shadow != 0 {
            return None;
        }
        let if_set = s.eflags & crate::cpu::eflags::IF != 0;
        let nmi_open = s.nmi_blocked == 0;
        let irq = self.irq.as_mut()?;
        let nmi = nmi_open && irq.nmi_pending();
        let vector = if nmi {
            irq.acknowledge_nmi();
            2
        } else if if_set && irq.has_interrupt() {
            irq.acknowledge()
        } else {
            return None;
        };
        let s = self.state_mut();
        s.halted = 0;
        if nmi {
            s.nmi_blocked = 1;
        }
        if rqemu_accel::log::enabled(rqemu_accel::log::LogMask::INT) {
            rqemu_accel::log::log(
                rqemu_accel::log::LogMask::INT,
                &format!(
                    "Servicing hardware INT=0x{vector:02x} at {:04x}:{:016x}",
                    s.segs[seg::CS].selector,
                    s.rip
                ),
            );
        }
        let d = self.deliver(crate::excp_helper::Event::external(vector));
        Some(self.after_delivery(d))
    }

    fn check_halted(&mut self) -> bool {
        let s = self.state();
        if s.halted == 0 {
            return false;
        }
        // An interrupt the CPU would take (IF = 1) wakes it; handle_interrupt then delivers it.
        let if_set = s.eflags & crate::cpu::eflags::IF != 0;
        let nmi_open = s.nmi_blocked == 0;
        let wake = self
            .irq
            .as_ref()
            .is_some_and(|c| (nmi_open && c.nmi_pending()) || (if_set && c.has_interrupt()));
        if wake {
            self.state_mut().halted = 0;
        }
        !wake
    }

    fn handle_exit(&mut self, value: u64) -> CpuAction {
        debug_assert!(value >= EXIT_TARGET_BASE);
        if value == crate::translate::EXIT_SINGLE_STEP {
            // The single-stepped instruction completed: #DB is a trap at the rip it left.
            let s = self.state_mut();
            s.dr[6] |= DR6_BS;
            let next = s.rip;
            s.raise_trap(crate::cpu::excp::DB, false, next);
            s.fault = 0;
            return self.handle_exception();
        }
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
