//! The target's side of the software TLB: translating a virtual address on a TLB miss, and recording the
//! faults that softmmu detects (misalignment). The identity translation (paging off) lives here too.
//!
//! How the hook reaches its CPU state is the target's choice: the object implementing [`TlbFill`] is owned by
//! the CPU's [`crate::SoftMmu`], so it typically holds a pointer to that CPU's state (the same `env` that
//! generated code runs on) and reads CR0/CR3/EFER and writes the pending exception through it. Errors never
//! unwind: the hook records the fault in the CPU state and returns [`MemFault`].

use bitflags::bitflags;
use rqemu_include::{GuestPhysAddr, GuestVirtAddr, MmuIdx, TARGET_PAGE_SIZE};
use rqemu_tcg::MemFault;

use crate::address_space::AddressSpace;

/// The kind of access that needs a translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// A data load.
    Read,
    /// A data store.
    Write,
    /// An instruction fetch.
    Fetch,
}

bitflags! {
    /// What a translation allows.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Prot: u8 {
        /// Data reads.
        const READ = 1;
        /// Data writes.
        const WRITE = 2;
        /// Instruction fetch.
        const EXEC = 4;
    }
}

impl Prot {
    /// Whether `self` allows `access`.
    pub fn allows(self, access: Access) -> bool {
        self.contains(match access {
            Access::Read => Prot::READ,
            Access::Write => Prot::WRITE,
            Access::Fetch => Prot::EXEC,
        })
    }
}

/// The result of a successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Physical address of the virtual address that was translated (any offset in the page).
    pub paddr: GuestPhysAddr,
    /// What the whole page allows. Must include the access asked for; the TLB caches the rest so that a
    /// later access of another kind can hit.
    pub prot: Prot,
    /// Size of the guest page that maps it (4 KiB, 2 MiB, 1 GiB): the TLB still holds 4 KiB entries, but
    /// remembers the range of large pages so that flushing one address flushes all of it.
    pub page_size: u64,
}

/// The target's translation hook, owned by the CPU's [`crate::SoftMmu`].
pub trait TlbFill {
    /// Translates `vaddr` for `access` in MMU regime `mmu`. `space` is there for page-table walks (which
    /// may set accessed/dirty bits).
    ///
    /// On failure: when `probe` is false, record the fault in the CPU state (page fault with its error
    /// code and CR2, ...) and return `Err(MemFault)`; when `probe` is true, return `Err(MemFault)` and record
    /// nothing (used to look ahead, e.g. the bytes of a code fetch window that the instruction may not need).
    fn tlb_fill(
        &mut self,
        space: &mut AddressSpace,
        vaddr: GuestVirtAddr,
        access: Access,
        mmu: MmuIdx,
        probe: bool,
    ) -> Result<Translation, MemFault>;

    /// An access at `vaddr` breaks the alignment its MemOp requires: record the fault the architecture raises
    /// (x86: #GP(0) for SSE's aligned moves, #AC under CR0.AM/EFLAGS.AC). The access then fails.
    fn unaligned_access(&mut self, vaddr: GuestVirtAddr, access: Access, mmu: MmuIdx);
}

impl<T: TlbFill + ?Sized> TlbFill for Box<T> {
    fn tlb_fill(
        &mut self,
        space: &mut AddressSpace,
        vaddr: GuestVirtAddr,
        access: Access,
        mmu: MmuIdx,
        probe: bool,
    ) -> Result<Translation, MemFault> {
        (**self).tlb_fill(space, vaddr, access, mmu, probe)
    }

    fn unaligned_access(&mut self, vaddr: GuestVirtAddr, access: Access, mmu: MmuIdx) {
        (**self).unaligned_access(vaddr, access, mmu)
    }
}

/// A fault recorded by [`IdentityFill`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedFault {
    /// The address that faulted.
    pub vaddr: GuestVirtAddr,
    /// The access.
    pub access: Access,
    /// Whether it was a misalignment (otherwise a translation failure).
    pub unaligned: bool,
}

/// Paging off: every virtual address is the physical address, everything allowed. For tests and for a
/// target's state before it enables paging. Addresses at or above `limit` fail (a stand-in for a page fault,
/// recorded in `last_fault`), which tests use to model an unmapped page.
#[derive(Clone, Debug)]
pub struct IdentityFill {
    /// First address that does not translate (`u64::MAX` by default: all do, except the very last byte).
    pub limit: GuestVirtAddr,
    /// The last fault recorded, as a CPU state would hold it.
    pub last_fault: Option<RecordedFault>,
    /// Number of `tlb_fill` calls, so tests can tell hits from misses.
    pub fills: u64,
}

impl Default for IdentityFill {
    fn default() -> Self {
        IdentityFill {
            limit: u64::MAX,
            last_fault: None,
            fills: 0,
        }
    }
}

impl TlbFill for IdentityFill {
    fn tlb_fill(
        &mut self,
        _space: &mut AddressSpace,
        vaddr: GuestVirtAddr,
        access: Access,
        _mmu: MmuIdx,
        probe: bool,
    ) -> Result<Translation, MemFault> {
        self.fills += 1;
        if vaddr >= self.limit {
            if !probe {
                self.last_fault = Some(RecordedFault {
                    vaddr,
                    access,
                    unaligned: false,
                });
            }
            return Err(MemFault);
        }
        Ok(Translation {
            paddr: vaddr,
            prot: Prot::all(),
            page_size: TARGET_PAGE_SIZE,
        })
    }

    fn unaligned_access(&mut self, vaddr: GuestVirtAddr, access: Access, _mmu: MmuIdx) {
        self.last_fault = Some(RecordedFault {
            vaddr,
            access,
            unaligned: true,
        });
    }
}
