//! [`SoftMmu`]: one CPU's view of guest memory. It combines the address space, the software TLB and the
//! target's hooks, and holds the slow paths of guest loads, stores and code fetch.
//!
//! Ownership, the decisions in one place:
//! - A `SoftMmu` is created per CPU and owns the [`AddressSpace`] and the port space (one vCPU thread for
//!   now; SMP will share them behind a handle).
//! - The TLB tables are either owned ([`SoftMmu::new`], for tci-only runs and tests) or live in the target's
//!   CPU state ([`SoftMmu::with_tables`], a raw pointer), where generated code reaches them at a fixed offset
//!   from `env`. Either way the slow path and generated code read the same bytes; the slow path alone writes
//!   them.
//! - The target's [`TlbFill`] is owned too. The `env` pointer of [`GuestMemory`] is ignored: the hook already
//!   knows its CPU (see [`crate::fill`]), so the same `SoftMmu` serves tci, the wasm32 slow-path imports and
//!   helpers alike.
//! - Self-modifying code: the accel installs a code-write hook; pages marked with [`SoftMmu::set_code_page`]
//!   make every store to them call it before the bytes change.

use core::ptr::NonNull;

use rqemu_include::{GuestPhysAddr, GuestVirtAddr, MemOp, MmuIdx, TlbEntry, TARGET_PAGE_MASK, TARGET_PAGE_SIZE};
use rqemu_tcg::{GuestMemory, MemFault};

use crate::address_space::AddressSpace;
use crate::device::size_mask;
use crate::fill::{Access, TlbFill};
use crate::ioport::IoSpace;
use crate::tlb::{FullEntry, Tlb, TlbTables};

/// Called with `(paddr, len, abortable)` before a store changes bytes of a page marked as holding translated
/// code. `abortable` is set for stores from generated code (the `qemu_st` slow path), which may be refused
/// ([`CodeWrite::Abort`]) so that the store does not complete inside a TB built from the bytes it rewrites.
pub type CodeWriteHook = Box<dyn FnMut(GuestPhysAddr, u32, bool) -> CodeWrite>;

/// The code-write hook's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeWrite {
    /// Store; the page still holds code.
    Keep,
    /// Store; the page holds no code any more, so later stores to it run at full speed.
    Clear,
    /// Do not store (only when `abortable`): the hook recorded the reason in the target's state and the
    /// store fails as a fault would, writing nothing.
    Abort,
}

/// One CPU's guest memory: address space, port space, software TLB and the target's translation hook.
pub struct SoftMmu<F> {
    space: AddressSpace,
    io: IoSpace,
    tlb: Tlb,
    fill: F,
    code_write: Option<CodeWriteHook>,
}

/// What one page of an access resolved to.
#[derive(Clone, Copy)]
struct Page {
    ppage: GuestPhysAddr,
    host: Option<usize>,
    /// RAM marked as holding translated code when the entry was filled or marked since.
    code: bool,
}

impl<F: TlbFill> SoftMmu<F> {
    /// A `SoftMmu` with TLB tables of its own (generated code cannot inline the fast path against them unless
    /// it is told [`SoftMmu::tables_ptr`]).
    pub fn new(space: AddressSpace, fill: F) -> SoftMmu<F> {
        SoftMmu {
            space,
            io: IoSpace::new(),
            tlb: Tlb::owned(),
            fill,
            code_write: None,
        }
    }

    /// A `SoftMmu` using the TLB tables at `tables`, normally a field of the CPU state that generated code
    /// reaches from `env`. The tables are emptied here.
    ///
    /// # Safety
    /// For as long as the `SoftMmu` lives, `tables` must stay valid for reads and writes and must not move,
    /// and nothing may hold a Rust reference to them while a `SoftMmu` method runs (generated code reading
    /// them from `env` between calls is fine: one thread runs both).
    pub unsafe fn with_tables(space: AddressSpace, tables: NonNull<TlbTables>, fill: F) -> SoftMmu<F> {
        SoftMmu {
            space,
            io: IoSpace::new(),
            // SAFETY: the caller's promise, passed on.
            tlb: unsafe { Tlb::borrowed(tables) },
            fill,
            code_write: None,
        }
    }

    /// Where the TLB tables are.
    pub fn tables_ptr(&self) -> NonNull<TlbTables> {
        self.tlb.tables_ptr()
    }

    /// The physical address space.
    pub fn space(&self) -> &AddressSpace {
        &self.space
    }

    /// The physical address space, to map or unmap regions. Flushes the whole TLB, since any entry may now
    /// point at the wrong place.
    pub fn space_mut(&mut self) -> &mut AddressSpace {
        self.tlb.flush_all();
        &mut self.space
    }

    /// The port-I/O space (`in`/`out`).
    pub fn io(&mut self) -> &mut IoSpace {
        &mut self.io
    }

    /// The target's translation hook.
    pub fn fill(&self) -> &F {
        &self.fill
    }

    /// The target's translation hook, mutably.
    pub fn fill_mut(&mut self) -> &mut F {
        &mut self.fill
    }

    /// Installs the hook called before stores to pages holding translated code.
    pub fn set_code_write_hook(&mut self, hook: CodeWriteHook) {
        self.code_write = Some(hook);
    }

    /// Empties every MMU index's TLB (CR3 write without PCID, CR0/CR4 paging changes).
    pub fn flush_all(&mut self) {
        self.tlb.flush_all();
    }

    /// Empties one MMU index's TLB.
    pub fn flush_mmu(&mut self, mmu: MmuIdx) {
        self.tlb.flush_mmu(mmu);
    }

    /// Drops the page of `vaddr` from every MMU index (`invlpg`); flushes a whole index when the page lies
    /// in the range of large pages filled into it.
    pub fn flush_page(&mut self, vaddr: GuestVirtAddr) {
        self.tlb.flush_page(vaddr);
    }

    /// A copy of the TLB entry that `vaddr` uses in `mmu`.
    pub fn tlb_entry(&mut self, mmu: MmuIdx, vaddr: GuestVirtAddr) -> TlbEntry {
        self.tlb.entry(mmu, vaddr)
    }

    /// Marks the RAM page holding `paddr` as holding translated code: from now on stores to it, from the
    /// slow path or generated code, call the code-write hook first. Returns whether it was newly marked.
    pub fn set_code_page(&mut self, paddr: GuestPhysAddr) -> bool {
        let page = paddr & TARGET_PAGE_MASK;
        let new = self.space.set_code_page(page);
        if new {
            if let Some(ram) = self.space.ram_page(page) {
                self.tlb.set_notdirty(ram.host, true);
            }
        }
        new
    }

    /// Clears the code mark of the RAM page holding `paddr` (its translations are all gone).
    pub fn clear_code_page(&mut self, paddr: GuestPhysAddr) {
        let page = paddr & TARGET_PAGE_MASK;
        self.space.clear_code_page(page);
        if let Some(ram) = self.space.ram_page(page) {
            self.tlb.set_notdirty(ram.host, false);
        }
    }

    /// Translates the page of `vaddr`, from the TLB or through the target's hook (filling the TLB).
    /// A miss in the table checks the victim TLB before calling the hook.
    fn translate(&mut self, vaddr: GuestVirtAddr, access: Access, mmu: MmuIdx, probe: bool) -> Result<Page, MemFault> {
        let hit = self
            .tlb
            .lookup(mmu, vaddr, access)
            .or_else(|| self.tlb.victim_lookup(mmu, vaddr, access));
        if let Some(full) = hit {
            return Ok(Page {
                ppage: full.ppage,
                host: full.host.filter(|_| access != Access::Write || full.writable),
                code: full.code,
            });
        }
        let t = self.fill.tlb_fill(&mut self.space, vaddr, access, mmu, probe)?;
        if !t.prot.allows(access) {
            // The hook broke its contract (it must fail instead); refuse rather than loop or ignore it.
            return Err(MemFault);
        }
        let vpage = vaddr & TARGET_PAGE_MASK;
        let ppage = t.paddr & TARGET_PAGE_MASK;
        let ram = self.space.ram_page(ppage);
        let host = ram.map(|r| r.host);
        let writable = ram.is_some_and(|r| r.writable);
        let code = host.is_some() && self.space.is_code_page(ppage);
        let full = FullEntry {
            vpage,
            ppage,
            host,
            writable,
            prot: t.prot,
            code,
        };
        self.tlb.set(mmu, full, t.page_size);
        Ok(Page {
            ppage,
            host: host.filter(|_| access != Access::Write || writable),
            code,
        })
    }

    /// Records a misalignment through the target when `vaddr` breaks `memop`'s alignment requirement.
    /// Checked before translation, so #GP for an aligned SSE move wins over a page fault, as on x86.
    fn check_align(&mut self, vaddr: GuestVirtAddr, memop: MemOp, access: Access, mmu: MmuIdx) -> Result<(), MemFault> {
        if vaddr & (u64::from(memop.align_bytes()) - 1) != 0 {
            self.fill.unaligned_access(vaddr, access, mmu);
            return Err(MemFault);
        }
        Ok(())
    }

    /// Reads `len` bytes at offset `off` of a translated page into `buf`.
    fn read_page(&mut self, page: Page, off: u64, buf: &mut [u8]) {
        match page.host {
            Some(h) => {
                let src = core::ptr::with_exposed_provenance::<u8>(h.wrapping_add(off as usize));
                // SAFETY: `h` is the host address of a whole RAM page (exposed when the block was resolved,
                // blocks are never freed while mapped) and `off + len <= TARGET_PAGE_SIZE` (callers split).
                unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
            }
            None if buf.len() <= 8 && buf.len().is_power_of_two() => {
                let v = self.space.read(page.ppage | off, buf.len() as u32);
                buf.copy_from_slice(&v.to_le_bytes()[..buf.len()]);
            }
            None => {
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = self.space.read((page.ppage | off) + i as u64, 1) as u8;
                }
            }
        }
    }

    /// Writes `data` at offset `off` of a translated page.
    fn write_page(&mut self, page: Page, off: u64, data: &[u8]) {
        match page.host {
            Some(h) => {
                let dst = core::ptr::with_exposed_provenance_mut::<u8>(h.wrapping_add(off as usize));
                // SAFETY: as in `read_page`.
                unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
            }
            None if data.len() <= 8 && data.len().is_power_of_two() => {
                let mut b = [0u8; 8];
                b[..data.len()].copy_from_slice(data);
                self.space
                    .write(page.ppage | off, data.len() as u32, u64::from_le_bytes(b));
            }
            None => {
                for (i, &b) in data.iter().enumerate() {
                    self.space.write((page.ppage | off) + i as u64, 1, u64::from(b));
                }
            }
        }
    }

    /// Writes the low `size` bytes (1 to 8) of `value` at physical `addr`, for accesses that do not come from
    /// generated code (a target's helpers after their own page walk, device DMA): a write into a page holding
    /// translated code calls the code-write hook first, as a guest store does. It neither reads nor writes the
    /// TLB tables.
    pub fn write_phys(&mut self, addr: GuestPhysAddr, size: u32, value: u64) {
        let size = size.clamp(1, 8);
        let last = addr.wrapping_add(u64::from(size) - 1);
        self.before_write_phys(addr, last);
        self.space.write(addr, size, value);
    }

    /// The code-write hook for the physical bytes `first..=last` (on one or two pages).
    fn before_write_phys(&mut self, first: GuestPhysAddr, last: GuestPhysAddr) {
        let mut start = first;
        loop {
            let page = start & TARGET_PAGE_MASK;
            let end = if (last & TARGET_PAGE_MASK) == page {
                last
            } else {
                page | !TARGET_PAGE_MASK
            };
            if self.space.is_code_page(page) {
                if let Some(hook) = self.code_write.as_mut() {
                    // The TLB's NOTDIRTY marks stay: this path must not touch the tables (they may live in a
                    // CPU state a helper holds a reference to). A marked entry whose page lost its code just
                    // takes the slow path until it is refilled.
                    if hook(start, (end - start + 1) as u32, false) == CodeWrite::Clear {
                        self.space.clear_code_page(page);
                    }
                }
            }
            if end == last {
                break;
            }
            start = end.wrapping_add(1);
        }
    }

    /// Calls the code-write hook when `page` is RAM marked as holding code; `Err` when it aborts the store.
    fn before_write(&mut self, page: Page, off: u64, len: usize) -> Result<(), MemFault> {
        // The entry's mark keeps the common case (no code on the page) free of address-space lookups; the
        // bitmap is the truth, since another alias may have cleared it.
        let Some(host) = page.host else { return Ok(()) };
        if !page.code || !self.space.is_code_page(page.ppage) {
            return Ok(());
        }
        if let Some(hook) = self.code_write.as_mut() {
            match hook(page.ppage | off, len as u32, true) {
                CodeWrite::Keep => {}
                CodeWrite::Clear => {
                    self.space.clear_code_page(page.ppage);
                    self.tlb.set_notdirty(host, false);
                }
                CodeWrite::Abort => return Err(MemFault),
            }
        }
        Ok(())
    }

    /// The pages of an access of `len` bytes at `vaddr`: one, or two when it crosses a page boundary. Both
    /// translate before the caller touches any byte, so a fault on the second leaves memory unchanged.
    fn pages(
        &mut self,
        vaddr: GuestVirtAddr,
        len: u64,
        access: Access,
        mmu: MmuIdx,
    ) -> Result<(Page, Option<Page>, usize), MemFault> {
        let off = vaddr & !TARGET_PAGE_MASK;
        let first = self.translate(vaddr, access, mmu, false)?;
        if off + len <= TARGET_PAGE_SIZE {
            return Ok((first, None, len as usize));
        }
        let next = (vaddr & TARGET_PAGE_MASK).wrapping_add(TARGET_PAGE_SIZE);
        let second = self.translate(next, access, mmu, false)?;
        Ok((first, Some(second), (TARGET_PAGE_SIZE - off) as usize))
    }

    /// The `qemu_ld` slow path: loads `memop.size_bytes()` bytes at `vaddr` through MMU index `mmu`,
    /// byte-swapped and extended as `memop` says.
    ///
    /// Misalignment (against `memop`'s requirement) and translation faults are recorded by the target's hook
    /// and return `Err`. 16-byte memops are not scalar accesses: they return `Err(MemFault)` without
    /// recording anything (frontends split them into two 8-byte accesses).
    pub fn load(&mut self, vaddr: GuestVirtAddr, memop: MemOp, mmu: MmuIdx) -> Result<u64, MemFault> {
        let size = memop.size_bytes() as usize;
        if size > 8 {
            return Err(MemFault);
        }
        self.check_align(vaddr, memop, Access::Read, mmu)?;
        let mut b = [0u8; 8];
        let (first, second, split) = self.pages(vaddr, size as u64, Access::Read, mmu)?;
        let off = vaddr & !TARGET_PAGE_MASK;
        self.read_page(first, off, &mut b[..split]);
        if let Some(second) = second {
            self.read_page(second, 0, &mut b[split..size]);
        }
        Ok(extend(u64::from_le_bytes(b), memop))
    }

    /// The `qemu_st` slow path: stores the low `memop.size_bytes()` bytes of `value` at `vaddr` (byte-swapped
    /// when `memop` says). Faults as for [`SoftMmu::load`]; a faulting store writes nothing, also when only
    /// the second page of a page-crossing store faults.
    pub fn store(&mut self, vaddr: GuestVirtAddr, value: u64, memop: MemOp, mmu: MmuIdx) -> Result<(), MemFault> {
        let size = memop.size_bytes() as usize;
        if size > 8 {
            return Err(MemFault);
        }
        self.check_align(vaddr, memop, Access::Write, mmu)?;
        let value = if memop.is_bswap() { swap(value, size) } else { value };
        let b = value.to_le_bytes();
        let (first, second, split) = self.pages(vaddr, size as u64, Access::Write, mmu)?;
        let off = vaddr & !TARGET_PAGE_MASK;
        self.before_write(first, off, split)?;
        if let Some(second) = second {
            self.before_write(second, 0, size - split)?;
        }
        self.write_page(first, off, &b[..split]);
        if let Some(second) = second {
            self.write_page(second, 0, &b[split..size]);
        }
        Ok(())
    }

    /// The physical address of `vaddr` for instruction fetch, for looking TBs up by physical pc. A fault is
    /// recorded by the target as for the first page of [`SoftMmu::fetch_code`].
    pub fn code_paddr(&mut self, vaddr: GuestVirtAddr, mmu: MmuIdx) -> Result<GuestPhysAddr, MemFault> {
        let page = self.translate(vaddr, Access::Fetch, mmu, false)?;
        Ok(page.ppage | (vaddr & !TARGET_PAGE_MASK))
    }

    /// Translates every page of `len` bytes from `vaddr` for `access` (filling the TLB), recording the first
    /// fault at the address the architecture reports (`vaddr` itself, or the start of a later page). For
    /// instructions that store several pieces (fxsave, enter, far calls) and must fault before writing any.
    pub fn probe_access(
        &mut self,
        vaddr: GuestVirtAddr,
        len: u64,
        access: Access,
        mmu: MmuIdx,
    ) -> Result<(), MemFault> {
        if len == 0 {
            return Ok(());
        }
        let last_page = vaddr.wrapping_add(len - 1) & TARGET_PAGE_MASK;
        let mut at = vaddr;
        loop {
            self.translate(at, access, mmu, false)?;
            if at & TARGET_PAGE_MASK == last_page {
                return Ok(());
            }
            at = (at & TARGET_PAGE_MASK).wrapping_add(TARGET_PAGE_SIZE);
        }
    }

    /// Fetches instruction bytes at `vaddr` into `buf` (the decoder's window, up to 15 bytes) through the
    /// code TLB. Returns how many bytes were fetched and, if fewer than `buf.len()`, the fault that stopped
    /// it.
    ///
    /// A fault on the first page is recorded by the target (the instruction starts there). Pages after the
    /// first are only probed, since the instruction may end before them: when the decoder needs the bytes
    /// past the returned length, it calls `fetch_code` again at `vaddr + len`, which records the fault at
    /// exactly that address.
    pub fn fetch_code(&mut self, vaddr: GuestVirtAddr, buf: &mut [u8], mmu: MmuIdx) -> (usize, Option<MemFault>) {
        let mut done = 0;
        while done < buf.len() {
            let at = vaddr.wrapping_add(done as u64);
            let off = at & !TARGET_PAGE_MASK;
            let n = (buf.len() - done).min((TARGET_PAGE_SIZE - off) as usize);
            match self.translate(at, Access::Fetch, mmu, done > 0) {
                Ok(page) => self.read_page(page, off, &mut buf[done..done + n]),
                Err(fault) => return (done, Some(fault)),
            }
            done += n;
        }
        (done, None)
    }
}

/// Byte-swaps the low `size` bytes of `v`.
fn swap(v: u64, size: usize) -> u64 {
    match size {
        2 => u64::from((v as u16).swap_bytes()),
        4 => u64::from((v as u32).swap_bytes()),
        8 => v.swap_bytes(),
        _ => v,
    }
}

/// A raw little-endian load of `memop`'s size, byte-swapped and extended as `memop` says.
fn extend(raw: u64, memop: MemOp) -> u64 {
    let size = memop.size_bytes();
    let v = raw & size_mask(size);
    let v = if memop.is_bswap() { swap(v, size as usize) } else { v };
    let sh = 64 - 8 * size.min(8);
    if memop.is_signed() {
        ((v << sh) as i64 >> sh) as u64
    } else {
        v
    }
}

/// `qemu_ld`/`qemu_st` for backends on a TLB miss (or for every access, without a TLB in `env`) and for
/// slow-path helpers. `env` is ignored: the `SoftMmu` belongs to one CPU and its [`TlbFill`] already
/// reaches that CPU's state.
impl<F: TlbFill> GuestMemory for SoftMmu<F> {
    fn load(&mut self, _env: *mut u8, addr: u64, memop: MemOp, mmu: MmuIdx) -> Result<u64, MemFault> {
        SoftMmu::load(self, addr, memop, mmu)
    }

    fn store(&mut self, _env: *mut u8, addr: u64, value: u64, memop: MemOp, mmu: MmuIdx) -> Result<(), MemFault> {
        SoftMmu::store(self, addr, value, memop, mmu)
    }
}

#[cfg(test)]
mod tests;
