//! The software TLB: the tables generated code probes (`TlbTables`, `repr(C)`, meant to be embedded in a
//! target's CPU state) and softmmu's private bookkeeping beside them (what each entry really maps, and the
//! range of large pages per MMU index).
//!
//! Generated code only reads the tables: it compares a tag with its probe value and adds the addend (see
//! `rqemu_include::tlb`). The slow path never trusts the tables for where to go: it checks the tag and then
//! takes the physical page and host address from its own record of the fill, so a CPU state that was zeroed or
//! scribbled on can send an access to the slow path but never to a wild host address from here.
//! Filling and the access paths are in [`crate::SoftMmu`].
//!
//! Victim TLB (QEMU's `vtlb`): each MMU index also keeps the last [`VICTIM_ENTRIES`] records evicted from its
//! direct-mapped table, fully associative, in the private side only (generated code never probes them). A
//! refill that replaces an entry of another page moves that page's record there; the slow path checks them
//! before calling the target's `tlb_fill`, and on a hit swaps the victim with the entry in the table, so the
//! inlined fast path hits next time. A victim keeps only the verified [`FullEntry`], never a copy of the
//! table's bytes: the table entry is rebuilt from it on the swap ([`FullEntry::entry`]), so a scribbled table
//! cannot be laundered into a trusted entry. Every flush clears the victims it covers.

use core::ptr::NonNull;

use rqemu_include::tlb::{tlb_index, TLB_ENTRIES, TLB_ENTRY_SIZE, TLB_INVALID, TLB_MMIO, TLB_NOTDIRTY};
use rqemu_include::{GuestPhysAddr, GuestVirtAddr, MmuIdx, TlbEntry, NB_MMU_MODES, TARGET_PAGE_MASK, TARGET_PAGE_SIZE};

use crate::fill::{Access, Prot};

/// The software-TLB tables of one CPU: table `m` (MMU index `m`) at byte offset `m * TLB_ENTRIES * 32`.
///
/// Embed it in the target's `repr(C)` CPU state and give generated code its offset from `env` (the wasm32
/// backend's `TlbAbi { offset_from_env }`); give the [`crate::SoftMmu`] a pointer to it. A fresh value must
/// be [`TlbTables::EMPTY`] (all-ones tags): an all-zero table would make page 0 hit with addend 0.
#[repr(C)]
#[derive(Clone)]
pub struct TlbTables {
    /// One table per MMU index.
    pub modes: [[TlbEntry; TLB_ENTRIES]; NB_MMU_MODES],
}

impl TlbTables {
    /// Tables in which nothing hits.
    pub const EMPTY: TlbTables = TlbTables {
        modes: [[TlbEntry::EMPTY; TLB_ENTRIES]; NB_MMU_MODES],
    };

    /// Bytes of one MMU index's table.
    pub const TABLE_BYTES: usize = TLB_ENTRIES * TLB_ENTRY_SIZE;

    /// Byte offset of MMU index `mmu`'s table from the start of the tables.
    pub const fn table_offset(mmu: MmuIdx) -> usize {
        mmu.index() * Self::TABLE_BYTES
    }
}

const _: () = assert!(core::mem::size_of::<TlbTables>() == NB_MMU_MODES * TlbTables::TABLE_BYTES);

impl Default for TlbTables {
    fn default() -> Self {
        TlbTables::EMPTY
    }
}

/// Whether `tag` maps the page `vpage` (flags other than [`TLB_INVALID`] do not matter here: they only
/// send generated code to the slow path).
pub(crate) fn tag_matches(tag: u64, vpage: GuestVirtAddr) -> bool {
    tag & (TARGET_PAGE_MASK | TLB_INVALID) == vpage
}

/// What a filled entry maps, as softmmu recorded it when filling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FullEntry {
    /// The virtual page; `u64::MAX` when the entry is empty (no page-aligned address equals it).
    pub vpage: GuestVirtAddr,
    /// The physical page.
    pub ppage: GuestPhysAddr,
    /// Host address of the page when it is all RAM or ROM; `None` sends accesses through the address space.
    pub host: Option<usize>,
    /// Whether writes may use `host` (false for ROM: they go through the address space, which drops them).
    pub writable: bool,
    /// What the translation allows.
    pub prot: Prot,
    /// The page holds translated code (mirrors [`TLB_NOTDIRTY`] in the write tag): stores call the hook.
    pub code: bool,
}

impl FullEntry {
    const EMPTY: FullEntry = FullEntry {
        vpage: u64::MAX,
        ppage: 0,
        host: None,
        writable: false,
        prot: Prot::empty(),
        code: false,
    };

    /// The table entry generated code probes for this record: tags for what `prot` allows, [`TLB_MMIO`] when
    /// the page is not all RAM (and on writes when it is not writable), [`TLB_NOTDIRTY`] on writes to a code
    /// page, and the addend of `host`.
    pub fn entry(&self) -> TlbEntry {
        let vpage = self.vpage;
        // Pages that are not wholly RAM are dispatched per access: every kind of access takes the slow path.
        // So are writes to ROM, which the address space drops.
        let flags = if self.host.is_some() { 0 } else { TLB_MMIO };
        let write_flags = if self.writable { flags } else { TLB_MMIO };
        let tag = |p: Prot, extra: u64| {
            if self.prot.contains(p) {
                vpage | extra
            } else {
                u64::MAX
            }
        };
        TlbEntry {
            addr_read: tag(Prot::READ, flags),
            addr_write: tag(Prot::WRITE, write_flags | if self.code { TLB_NOTDIRTY } else { 0 }),
            addr_code: tag(Prot::EXEC, flags),
            // host = vaddr + addend in the host's pointer width (wrapping on 32-bit hosts by design).
            addend: self.host.map_or(0, |h| h.wrapping_sub(vpage as usize)),
        }
    }
}

/// Victim-TLB entries per MMU index (QEMU's `CPU_VTLB_SIZE`).
pub(crate) const VICTIM_ENTRIES: usize = 8;

/// Softmmu's state for one MMU index.
struct MmuDesc {
    /// `(addr, mask)` covering every large page filled since the last flush of this index.
    large_page: Option<(u64, u64)>,
    full: Box<[FullEntry]>,
    /// Records evicted from `full`, fully associative; [`FullEntry::EMPTY`] when unused.
    victim: [FullEntry; VICTIM_ENTRIES],
    /// The victim slot the next eviction overwrites (round robin).
    victim_next: usize,
}

impl MmuDesc {
    fn new() -> MmuDesc {
        MmuDesc {
            large_page: None,
            full: vec![FullEntry::EMPTY; TLB_ENTRIES].into_boxed_slice(),
            victim: [FullEntry::EMPTY; VICTIM_ENTRIES],
            victim_next: 0,
        }
    }

    /// Drops every victim record of `vpage`.
    fn flush_victims(&mut self, vpage: GuestVirtAddr) {
        for v in self.victim.iter_mut().filter(|v| v.vpage == vpage) {
            *v = FullEntry::EMPTY;
        }
    }
}

/// The tables (owned or borrowed from a CPU state) and the private side.
pub(crate) struct Tlb {
    tables: NonNull<TlbTables>,
    /// Whether `tables` came from `Box::into_raw` here and is freed on drop.
    owned: bool,
    desc: Vec<MmuDesc>,
}

impl Drop for Tlb {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: `tables` came from `Box::into_raw` in `Tlb::owned` and is freed only here.
            drop(unsafe { Box::from_raw(self.tables.as_ptr()) });
        }
    }
}

impl Tlb {
    /// A TLB with tables of its own, emptied.
    pub fn owned() -> Tlb {
        let tables = NonNull::from(Box::leak(Box::new(TlbTables::EMPTY)));
        Tlb {
            tables,
            owned: true,
            desc: (0..NB_MMU_MODES).map(|_| MmuDesc::new()).collect(),
        }
    }

    /// A TLB using `tables`, which it empties.
    ///
    /// # Safety
    /// See [`crate::SoftMmu::with_tables`].
    pub unsafe fn borrowed(tables: NonNull<TlbTables>) -> Tlb {
        let mut tlb = Tlb {
            tables,
            owned: false,
            desc: (0..NB_MMU_MODES).map(|_| MmuDesc::new()).collect(),
        };
        tlb.flush_all();
        tlb
    }

    pub fn tables_ptr(&self) -> NonNull<TlbTables> {
        self.tables
    }

    fn table(&mut self, mmu: usize) -> &mut [TlbEntry; TLB_ENTRIES] {
        // SAFETY: `tables` is valid and not otherwise referenced while softmmu runs (constructor contract);
        // the borrow lasts as long as `&mut self`.
        unsafe { &mut (*self.tables.as_ptr()).modes[mmu] }
    }

    /// The live mapping of `vaddr`'s page for `access` in `mmu`, if the entry holds it.
    pub fn lookup(&mut self, mmu: MmuIdx, vaddr: GuestVirtAddr, access: Access) -> Option<FullEntry> {
        let vpage = vaddr & TARGET_PAGE_MASK;
        let idx = tlb_index(vaddr);
        let e = self.table(mmu.index())[idx];
        let tag = match access {
            Access::Read => e.addr_read,
            Access::Write => e.addr_write,
            Access::Fetch => e.addr_code,
        };
        let full = self.desc[mmu.index()].full[idx];
        (tag_matches(tag, vpage) && full.vpage == vpage && full.prot.allows(access)).then_some(full)
    }

    /// Installs an entry for `full.vpage` in `mmu`, noting a large page of `page_size` bytes.
    ///
    /// A record of another page in that slot moves to the victim TLB; victim records of `full.vpage` are
    /// dropped (the new fill supersedes them).
    pub fn set(&mut self, mmu: MmuIdx, full: FullEntry, page_size: u64) {
        let idx = tlb_index(full.vpage);
        self.table(mmu.index())[idx] = full.entry();
        let desc = &mut self.desc[mmu.index()];
        desc.flush_victims(full.vpage);
        let old = desc.full[idx];
        if old.vpage != FullEntry::EMPTY.vpage && old.vpage != full.vpage {
            desc.victim[desc.victim_next] = old;
            desc.victim_next = (desc.victim_next + 1) % VICTIM_ENTRIES;
        }
        desc.full[idx] = full;
        if page_size > TARGET_PAGE_SIZE && page_size.is_power_of_two() {
            // QEMU's tlb_add_large_page: widen the mask until one aligned range covers the old and new pages.
            let mut mask = !(page_size - 1);
            let addr = match desc.large_page {
                None => full.vpage,
                Some((addr, old_mask)) => {
                    mask &= old_mask;
                    while (addr ^ full.vpage) & mask != 0 {
                        mask <<= 1;
                    }
                    addr
                }
            };
            desc.large_page = Some((addr & mask, mask));
        }
    }

    /// Looks `vaddr`'s page up in `mmu`'s victim TLB after [`Tlb::lookup`] missed. On a hit for `access`,
    /// swaps the victim with the table's slot (whose record, if any, becomes the victim) and rebuilds the
    /// table entry from the victim's record, then returns that record.
    pub fn victim_lookup(&mut self, mmu: MmuIdx, vaddr: GuestVirtAddr, access: Access) -> Option<FullEntry> {
        let vpage = vaddr & TARGET_PAGE_MASK;
        let idx = tlb_index(vaddr);
        let m = mmu.index();
        let desc = &mut self.desc[m];
        let slot = desc
            .victim
            .iter()
            .position(|v| v.vpage == vpage && v.prot.allows(access))?;
        let hit = desc.victim[slot];
        let old = desc.full[idx];
        // The slot's record goes to the victim TLB unless it is empty or (stale table bytes) the same page.
        desc.victim[slot] = if old.vpage == vpage { FullEntry::EMPTY } else { old };
        desc.full[idx] = hit;
        self.table(m)[idx] = hit.entry();
        Some(hit)
    }

    /// Empties every table.
    pub fn flush_all(&mut self) {
        for m in 0..NB_MMU_MODES {
            self.flush_index(m);
        }
    }

    /// Empties one MMU index's table.
    pub fn flush_mmu(&mut self, mmu: MmuIdx) {
        self.flush_index(mmu.index());
    }

    fn flush_index(&mut self, m: usize) {
        self.table(m).fill(TlbEntry::EMPTY);
        let desc = &mut self.desc[m];
        desc.full.fill(FullEntry::EMPTY);
        desc.victim = [FullEntry::EMPTY; VICTIM_ENTRIES];
        desc.victim_next = 0;
        desc.large_page = None;
    }

    /// Drops `vaddr`'s page from `mmu`; a page inside the large-page range flushes the whole index, since
    /// one large page is held as many 4 KiB entries.
    pub fn flush_page_mmu(&mut self, mmu: MmuIdx, vaddr: GuestVirtAddr) {
        let m = mmu.index();
        if let Some((addr, mask)) = self.desc[m].large_page {
            if vaddr & mask == addr {
                self.flush_index(m);
                return;
            }
        }
        let vpage = vaddr & TARGET_PAGE_MASK;
        self.desc[m].flush_victims(vpage);
        let idx = tlb_index(vaddr);
        let e = self.table(m)[idx];
        let maps = [e.addr_read, e.addr_write, e.addr_code]
            .iter()
            .any(|&t| tag_matches(t, vpage));
        if maps || self.desc[m].full[idx].vpage == vpage {
            self.table(m)[idx] = TlbEntry::EMPTY;
            self.desc[m].full[idx] = FullEntry::EMPTY;
        }
    }

    /// Drops `vaddr`'s page from every MMU index.
    pub fn flush_page(&mut self, vaddr: GuestVirtAddr) {
        for m in 0..NB_MMU_MODES as u8 {
            if let Some(mmu) = MmuIdx::new(m) {
                self.flush_page_mmu(mmu, vaddr);
            }
        }
    }

    /// Sets or clears [`TLB_NOTDIRTY`] in the write tag of every entry that maps the RAM page at `host`, so
    /// that generated code's stores to it take (or stop taking) the slow path.
    /// Victim records of the page follow, so that a swap back rebuilds the write tag with the mark.
    pub fn set_notdirty(&mut self, host: usize, on: bool) {
        for m in 0..NB_MMU_MODES {
            for v in self.desc[m].victim.iter_mut().filter(|v| v.host == Some(host)) {
                v.code = on;
            }
            for idx in 0..TLB_ENTRIES {
                let full = &mut self.desc[m].full[idx];
                if full.host != Some(host) {
                    continue;
                }
                full.code = on;
                let e = &mut self.table(m)[idx];
                if e.addr_write & TLB_INVALID != 0 {
                    continue;
                }
                if on {
                    e.addr_write |= TLB_NOTDIRTY;
                } else {
                    e.addr_write &= !TLB_NOTDIRTY;
                }
            }
        }
    }

    /// A copy of the entry of `vaddr` in `mmu` (tests, debugging).
    pub fn entry(&mut self, mmu: MmuIdx, vaddr: GuestVirtAddr) -> TlbEntry {
        self.table(mmu.index())[tlb_index(vaddr)]
    }
}
