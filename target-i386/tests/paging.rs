//! The page-table walker (`rqemu_target_i386::paging`) on a fake physical memory with page tables built by a
//! small builder: every mode and page size, every page-fault error-code bit that can arise, reserved bits at
//! each level, access rights (R/W with and without CR0.WP, U/S, XD with and without EFER.NXE, SMEP, SMAP with
//! and without EFLAGS.AC, implicit supervisor accesses), the A/D flags, the TLB protection (WRITE only once
//! dirty), global and PAT bits, the PAE PDPTE check, and the `AddressSpace` implementation of `PhysMem`.

use rqemu_softmmu::{Access, AddressSpace, Prot, RamBlock};
use rqemu_target_i386::paging::{
    load_pae_pdptes, pf_err, pte, translate, PageFault, PageSize, PageWalk, PagingMode, PagingRegs, PhysMem, Privilege,
    CR0_PG, CR0_WP, CR4_PAE, CR4_PGE, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_LMA, EFER_NXE,
};

use Access::{Fetch, Read, Write};

/// Size of the fake RAM; physical addresses above read as all ones and drop writes, like an empty bus.
const RAM: usize = 4 << 20;
/// Where the builder allocates tables.
const TABLES: u64 = 0x10_0000;
/// CR0.PE (not looked at by the walker, but a real CR0 with PG has it).
const CR0_PE: u64 = 1;
/// EFER.LME.
const EFER_LME: u64 = 1 << 8;

const SUP: Privilege = Privilege::Supervisor { ac: false };
const SUP_AC: Privilege = Privilege::Supervisor { ac: true };
const USER: Privilege = Privilege::User;

/// Fake physical memory that logs every write.
struct Mem {
    ram: Vec<u8>,
    writes: Vec<(u64, u64)>,
}

impl Mem {
    fn new() -> Mem {
        Mem {
            ram: vec![0; RAM],
            writes: Vec::new(),
        }
    }

    fn get(&self, addr: u64, size: usize) -> u64 {
        let mut b = [0xffu8; 8];
        for (i, byte) in b.iter_mut().enumerate().take(size) {
            if let Some(v) = self.ram.get(addr as usize + i) {
                *byte = *v;
            }
        }
        u64::from_le_bytes(b) & (u64::MAX >> (64 - 8 * size))
    }

    fn put(&mut self, addr: u64, size: usize, value: u64) {
        for i in 0..size {
            if let Some(v) = self.ram.get_mut(addr as usize + i) {
                *v = (value >> (8 * i)) as u8;
            }
        }
    }
}

impl PhysMem for Mem {
    fn read_u32(&mut self, paddr: u64) -> u32 {
        self.get(paddr, 4) as u32
    }
    fn read_u64(&mut self, paddr: u64) -> u64 {
        self.get(paddr, 8)
    }
    fn write_u32(&mut self, paddr: u64, value: u32) {
        self.writes.push((paddr, u64::from(value)));
        self.put(paddr, 4, u64::from(value));
    }
    fn write_u64(&mut self, paddr: u64, value: u64) {
        self.writes.push((paddr, value));
        self.put(paddr, 8, value);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Bits32,
    Pae,
    Long,
}

const MODES: [Mode; 3] = [Mode::Bits32, Mode::Pae, Mode::Long];

/// Builds page tables in a [`Mem`] and walks them.
struct Pt {
    mem: Mem,
    mode: Mode,
    regs: PagingRegs,
    next: u64,
}

/// Flags of a present, writable, user leaf (the tests clear what they need).
const LEAF: u64 = pte::P | pte::RW | pte::US;

impl Pt {
    /// Empty tables for `mode`, CR0.WP set, everything else in CR4/EFER off but what the mode needs.
    fn new(mode: Mode) -> Pt {
        let mut pt = Pt {
            mem: Mem::new(),
            mode,
            regs: PagingRegs {
                cr0: CR0_PG | CR0_PE | CR0_WP,
                ..PagingRegs::default()
            },
            next: TABLES,
        };
        pt.regs.cr3 = pt.alloc();
        match mode {
            Mode::Bits32 => pt.regs.cr4 = CR4_PSE,
            Mode::Pae => pt.regs.cr4 = CR4_PAE,
            Mode::Long => {
                pt.regs.cr4 = CR4_PAE;
                pt.regs.efer = EFER_LME | EFER_LMA;
            }
        }
        pt
    }

    fn alloc(&mut self) -> u64 {
        let t = self.next;
        self.next += 0x1000;
        t
    }

    fn entry(&self, addr: u64) -> u64 {
        self.mem.get(addr, if self.mode == Mode::Bits32 { 4 } else { 8 })
    }

    fn set_entry(&mut self, addr: u64, value: u64) {
        let size = if self.mode == Mode::Bits32 { 4 } else { 8 };
        self.mem.put(addr, size, value);
    }

    fn set(&mut self, addr: u64, bits: u64) {
        let v = self.entry(addr) | bits;
        self.set_entry(addr, v);
    }

    fn clear(&mut self, addr: u64, bits: u64) {
        let v = self.entry(addr) & !bits;
        self.set_entry(addr, v);
    }

    /// The table an entry points to, creating it (P, R/W, U/S; a PAE PDPTE only P) when the entry is empty.
    fn table_of(&mut self, entry_addr: u64, pdpte: bool) -> u64 {
        let e = self.entry(entry_addr);
        if e != 0 {
            return e & 0x000f_ffff_ffff_f000;
        }
        let t = self.alloc();
        let flags = if pdpte { pte::P } else { pte::P | pte::RW | pte::US };
        self.set_entry(entry_addr, t | flags);
        t
    }

    /// Maps `va` to `pa` with a page of `size` and leaf `flags` (PS added for large pages). Returns the
    /// addresses of the entries used, top level first, leaf last.
    fn map(&mut self, va: u64, pa: u64, size: PageSize, flags: u64) -> Vec<u64> {
        let mut path = Vec::new();
        let ps = if size == PageSize::Size4K { 0 } else { pte::PS };
        match self.mode {
            Mode::Bits32 => {
                let pde = self.regs.cr3 + ((va >> 22) & 0x3ff) * 4;
                path.push(pde);
                if size == PageSize::Size4M {
                    self.set_entry(pde, pa | flags | ps);
                    return path;
                }
                assert_eq!(size, PageSize::Size4K);
                let pt = self.table_of(pde, false);
                let pte = pt + ((va >> 12) & 0x3ff) * 4;
                path.push(pte);
                self.set_entry(pte, pa | flags);
                path
            }
            Mode::Pae | Mode::Long => {
                let (mut table, top) = if self.mode == Mode::Pae {
                    let pdpte = (self.regs.cr3 & 0xffff_ffe0) + ((va >> 30) & 3) * 8;
                    path.push(pdpte);
                    (self.table_of(pdpte, true), 2)
                } else {
                    (self.regs.cr3, 4)
                };
                let leaf_level = match size {
                    PageSize::Size4K => 1,
                    PageSize::Size2M => 2,
                    PageSize::Size1G => 3,
                    PageSize::Size4M => panic!("no 4 MiB pages with 64-bit entries"),
                };
                for level in (leaf_level..=top).rev() {
                    let e = table + ((va >> (12 + 9 * (level - 1))) & 0x1ff) * 8;
                    path.push(e);
                    if level == leaf_level {
                        self.set_entry(e, pa | flags | ps);
                    } else {
                        table = self.table_of(e, false);
                    }
                }
                path
            }
        }
    }

    fn walk(&mut self, va: u64, access: Access, privilege: Privilege) -> Result<PageWalk, PageFault> {
        translate(&mut self.mem, &self.regs, va, access, privilege)
    }

    /// The error code of a walk that must fault at `va`.
    fn fault(&mut self, va: u64, access: Access, privilege: Privilege) -> u32 {
        match self.walk(va, access, privilege) {
            Err(f) => {
                assert_eq!(f.addr, va, "CR2 is the address translated");
                f.error_code
            }
            Ok(w) => panic!("{:?}: {va:#x} {access:?} {privilege:?} translated: {w:?}", self.mode),
        }
    }

    fn ok(&mut self, va: u64, access: Access, privilege: Privilege) -> PageWalk {
        match self.walk(va, access, privilege) {
            Ok(w) => w,
            Err(f) => panic!("{:?}: {va:#x} {access:?} {privilege:?} faulted: {f:?}", self.mode),
        }
    }
}

const P: u32 = pf_err::P;
const W: u32 = pf_err::W;
const U: u32 = pf_err::U;
const RSVD: u32 = pf_err::RSVD;
const I: u32 = pf_err::I;

/// The error code bits every fault of `access` by `privilege` carries (I as when it is reported).
fn access_bits(access: Access, privilege: Privilege, i_reported: bool) -> u32 {
    (if access == Write { W } else { 0 })
        | (if privilege == USER { U } else { 0 })
        | (if access == Fetch && i_reported { I } else { 0 })
}

// ---------------------------------------------------------------------------------------------------------
// Modes and page sizes

#[test]
fn mode_selection() {
    let mut r = PagingRegs::default();
    assert_eq!(r.mode(), PagingMode::Off);
    r.cr0 = CR0_PG | CR0_PE;
    assert_eq!(r.mode(), PagingMode::Bits32);
    r.cr4 = CR4_PAE;
    assert_eq!(r.mode(), PagingMode::Pae);
    r.efer = EFER_LME;
    assert_eq!(r.mode(), PagingMode::Pae, "LME alone is not long mode: LMA is");
    r.efer |= EFER_LMA;
    assert_eq!(r.mode(), PagingMode::Long4);
}

#[test]
fn from_state_copies_control_registers() {
    let s = rqemu_target_i386::X86CpuState::new_long_mode(0x1000);
    let r = PagingRegs::from_state(&s);
    assert_eq!((r.cr0, r.cr3, r.cr4, r.efer), (s.cr[0], s.cr[3], s.cr[4], s.efer));
    let mut b = Box::new(s);
    b.cr[3] = 0x1234_5000;
    // SAFETY: a live state, not written during the call.
    let r = unsafe { PagingRegs::from_state_ptr(&*b) };
    assert_eq!((r.cr0, r.cr3, r.cr4, r.efer), (b.cr[0], 0x1234_5000, b.cr[4], b.efer));
    assert_eq!(r.mode(), PagingMode::Long4);
}

#[test]
fn paging_off_is_identity() {
    let mut pt = Pt::new(Mode::Long);
    pt.regs.cr0 &= !CR0_PG;
    for access in [Read, Write, Fetch] {
        let w = pt.ok(0x1234_5678_9abc, access, USER);
        assert_eq!(w.paddr, 0x1234_5678_9abc);
        assert_eq!(w.prot, Prot::all());
        assert_eq!(w.page_size, PageSize::Size4K);
        assert!(!w.global);
    }
    assert!(pt.mem.writes.is_empty());
}

#[test]
fn bits32_4k() {
    let mut pt = Pt::new(Mode::Bits32);
    pt.map(0xc012_3000, 0x0055_6000, PageSize::Size4K, LEAF | pte::D);
    let w = pt.ok(0xc012_3abc, Read, USER);
    assert_eq!(w.paddr, 0x0055_6abc);
    assert_eq!(w.page_size, PageSize::Size4K);
    assert_eq!(w.prot, Prot::all());
    // Bits 63:32 of the address play no part outside long mode.
    assert_eq!(pt.ok(0xffff_ffff_c012_3001, Read, USER).paddr, 0x0055_6001);
}

#[test]
fn bits32_4m_and_pse36() {
    let mut pt = Pt::new(Mode::Bits32);
    // Physical bits 39:32 = 0xab in PDE bits 20:13.
    pt.map(0x8040_0000, 0x0140_0000 | 0xab << 13, PageSize::Size4M, LEAF | pte::D);
    let w = pt.ok(0x807f_fffc, Write, SUP);
    assert_eq!(w.paddr, 0xab_017f_fffc);
    assert_eq!(w.page_size, PageSize::Size4M);
    assert_eq!(w.translation().page_size, 4 << 20);
}

#[test]
fn bits32_ps_ignored_without_pse() {
    let mut pt = Pt::new(Mode::Bits32);
    pt.regs.cr4 &= !CR4_PSE;
    let path = pt.map(0x0040_5000, 0x0020_0000, PageSize::Size4K, LEAF);
    // PS set in the PDE: ignored without PSE, the PDE points to a page table.
    pt.set(path[0], pte::PS);
    let w = pt.ok(0x0040_5010, Read, SUP);
    assert_eq!((w.paddr, w.page_size), (0x0020_0010, PageSize::Size4K));
    // With PSE the same PDE maps a 4 MiB page: the table address 0x10_1000 read as a 4 MiB frame (bits 31:22
    // zero, bits 20:13 = 0x80: physical bit 39).
    pt.regs.cr4 |= CR4_PSE;
    let w = pt.ok(0x0040_5010, Read, SUP);
    assert_eq!((w.paddr, w.page_size), (0x80_0000_5010, PageSize::Size4M));
    // ... and there bit 21 is reserved.
    pt.set(path[0], 1 << 21);
    assert_eq!(pt.fault(0x0040_5010, Read, SUP), P | RSVD);
}

#[test]
fn pae_4k_and_2m() {
    let mut pt = Pt::new(Mode::Pae);
    pt.map(0xbfff_f000, 0x1_2345_6000, PageSize::Size4K, LEAF);
    pt.map(0x4020_0000, 0xff_ffe0_0000, PageSize::Size2M, LEAF);
    let w = pt.ok(0xbfff_f123, Read, SUP);
    assert_eq!((w.paddr, w.page_size), (0x1_2345_6123, PageSize::Size4K));
    let w = pt.ok(0x403f_ffff, Read, SUP);
    assert_eq!((w.paddr, w.page_size), (0xff_ffff_ffff, PageSize::Size2M));
}

#[test]
fn pae_cr3_is_32_byte_aligned() {
    let mut pt = Pt::new(Mode::Pae);
    pt.regs.cr3 += 0x60;
    pt.map(0xc000_0000, 0x7000, PageSize::Size4K, LEAF);
    assert_eq!(pt.ok(0xc000_0008, Read, SUP).paddr, 0x7008);
    // Low CR3 bits (PWT, PCD, ignored) do not move the PDPT.
    pt.regs.cr3 |= 0x1f;
    assert_eq!(pt.ok(0xc000_0008, Read, SUP).paddr, 0x7008);
}

#[test]
fn long_4k_2m_1g() {
    let mut pt = Pt::new(Mode::Long);
    pt.map(0xffff_8000_0000_1000, 0xabc_def0_1000, PageSize::Size4K, LEAF);
    pt.map(0x7fff_ffe0_0000, 0x8000_0000_0000 - 0x20_0000, PageSize::Size2M, LEAF);
    pt.map(0x40_0000_0000, 0xc0_0000_0000, PageSize::Size1G, LEAF);
    let w = pt.ok(0xffff_8000_0000_1fff, Read, SUP);
    assert_eq!((w.paddr, w.page_size), (0xabc_def0_1fff, PageSize::Size4K));
    let w = pt.ok(0x7fff_ffff_fff8, Read, SUP);
    assert_eq!((w.paddr, w.page_size), (0x7fff_ffff_fff8, PageSize::Size2M));
    let w = pt.ok(0x40_3fff_0001, Read, SUP);
    assert_eq!((w.paddr, w.page_size), (0xc0_3fff_0001, PageSize::Size1G));
    assert_eq!(w.translation().page_size, 1 << 30);
    assert_eq!(w.translation().paddr, 0xc0_3fff_0001);
}

#[test]
fn long_cr3_pcid_bits_ignored() {
    let mut pt = Pt::new(Mode::Long);
    pt.map(0x1000, 0x9000, PageSize::Size4K, LEAF);
    pt.regs.cr3 |= 0xfff;
    assert_eq!(pt.ok(0x1004, Read, SUP).paddr, 0x9004);
}

#[test]
fn ignored_bits_are_ignored() {
    // 4-level: bits 62:52 and 11:9 are ignored (no PKE), and D/G/PAT-position bits of non-leaf entries.
    let mut pt = Pt::new(Mode::Long);
    let path = pt.map(0x20_0000, 0x3000, PageSize::Size4K, LEAF);
    for &e in &path {
        pt.set(e, 0x7ff0_0000_0000_0e00);
    }
    pt.set(path[1], pte::D | pte::G);
    pt.set(path[2], pte::D | pte::G);
    pt.set(path[0], pte::D | pte::G);
    assert_eq!(pt.ok(0x20_0000, Read, SUP).paddr, 0x3000);
}

// ---------------------------------------------------------------------------------------------------------
// Not-present faults

#[test]
fn not_present_at_each_level() {
    for mode in MODES {
        for nxe in [false, true] {
            for level in 0..[2, 3, 4][mode as usize] {
                for access in [Read, Write, Fetch] {
                    for privilege in [SUP, USER] {
                        let mut pt = Pt::new(mode);
                        if nxe {
                            pt.regs.efer |= EFER_NXE;
                        }
                        let va = 0x4060_5000;
                        let path = pt.map(va, 0x8000, PageSize::Size4K, LEAF);
                        assert_eq!(path.len(), [2, 3, 4][mode as usize]);
                        // Not present: every other bit is ignored, even reserved ones.
                        pt.set_entry(path[level], 0xffff_fffe);
                        let i_reported = mode != Mode::Bits32 && nxe;
                        let code = pt.fault(va, access, privilege);
                        assert_eq!(
                            code,
                            access_bits(access, privilege, i_reported),
                            "{mode:?} nxe={nxe} level {level} {access:?} {privilege:?}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn hole_in_physical_memory_reads_as_ones() {
    // A table pointer into nothing: the entry there reads as all ones, a present entry with reserved bits.
    let mut pt = Pt::new(Mode::Long);
    let path = pt.map(0x1000, 0x2000, PageSize::Size4K, LEAF);
    pt.set_entry(path[1], 0x8000_0000 | pte::P | pte::RW);
    assert_eq!(pt.fault(0x1000, Read, SUP), P | RSVD);
}

// ---------------------------------------------------------------------------------------------------------
// Reserved bits

/// `(mode, level (index in the path), page size, bit, NXE)`: a bit that is reserved there.
const RESERVED: &[(Mode, usize, PageSize, u32, bool)] = &[
    // 32-bit paging: only bit 21 of a 4 MiB PDE (PSE-36 with a 40-bit physical width).
    (Mode::Bits32, 0, PageSize::Size4M, 21, true),
    // PAE PDPTE: 2:1, 8:5, 63:MAXPHYADDR (bit 63 even with NXE: a PDPTE has no XD).
    (Mode::Pae, 0, PageSize::Size4K, 1, true),
    (Mode::Pae, 0, PageSize::Size4K, 2, true),
    (Mode::Pae, 0, PageSize::Size4K, 5, true),
    (Mode::Pae, 0, PageSize::Size4K, 6, true),
    (Mode::Pae, 0, PageSize::Size4K, 7, true),
    (Mode::Pae, 0, PageSize::Size4K, 8, true),
    (Mode::Pae, 0, PageSize::Size4K, 48, true),
    (Mode::Pae, 0, PageSize::Size4K, 63, true),
    // PAE PDE/PTE: 62:MAXPHYADDR; 63 without NXE; 20:13 of a 2 MiB PDE.
    (Mode::Pae, 1, PageSize::Size4K, 48, true),
    (Mode::Pae, 1, PageSize::Size4K, 62, true),
    (Mode::Pae, 1, PageSize::Size4K, 63, false),
    (Mode::Pae, 2, PageSize::Size4K, 52, true),
    (Mode::Pae, 2, PageSize::Size4K, 62, true),
    (Mode::Pae, 2, PageSize::Size4K, 63, false),
    (Mode::Pae, 1, PageSize::Size2M, 13, true),
    (Mode::Pae, 1, PageSize::Size2M, 20, true),
    (Mode::Pae, 1, PageSize::Size2M, 55, true),
    // 4-level: 51:MAXPHYADDR at every level; 63 without NXE at every level; PS in a PML4E; 29:13 of a
    // 1 GiB PDPTE; 20:13 of a 2 MiB PDE.
    (Mode::Long, 0, PageSize::Size4K, 48, true),
    (Mode::Long, 0, PageSize::Size4K, 51, true),
    (Mode::Long, 0, PageSize::Size4K, 7, true),
    (Mode::Long, 0, PageSize::Size4K, 63, false),
    (Mode::Long, 1, PageSize::Size4K, 50, true),
    (Mode::Long, 1, PageSize::Size4K, 63, false),
    (Mode::Long, 2, PageSize::Size4K, 49, true),
    (Mode::Long, 2, PageSize::Size4K, 63, false),
    (Mode::Long, 3, PageSize::Size4K, 51, true),
    (Mode::Long, 3, PageSize::Size4K, 63, false),
    (Mode::Long, 1, PageSize::Size1G, 13, true),
    (Mode::Long, 1, PageSize::Size1G, 29, true),
    (Mode::Long, 1, PageSize::Size1G, 48, true),
    (Mode::Long, 1, PageSize::Size1G, 63, false),
    (Mode::Long, 2, PageSize::Size2M, 13, true),
    (Mode::Long, 2, PageSize::Size2M, 20, true),
    (Mode::Long, 2, PageSize::Size2M, 51, true),
    (Mode::Long, 2, PageSize::Size2M, 63, false),
];

#[test]
fn reserved_bit_at_each_level() {
    for &(mode, level, size, bit, nxe) in RESERVED {
        for access in [Read, Write, Fetch] {
            for privilege in [SUP, USER] {
                let mut pt = Pt::new(mode);
                if nxe {
                    pt.regs.efer |= EFER_NXE;
                }
                let va = 0x4000_0000;
                let path = pt.map(va, 0x4000_0000, size, LEAF);
                pt.set(path[level], 1 << bit);
                let i_reported = mode != Mode::Bits32 && nxe;
                let code = pt.fault(va, access, privilege);
                assert_eq!(
                    code,
                    P | RSVD | access_bits(access, privilege, i_reported),
                    "{mode:?} level {level} {size:?} bit {bit} {access:?} {privilege:?}"
                );
                // The entry with the reserved bit and those below it are not used: not written (no A flag).
                for &(addr, _) in &pt.mem.writes {
                    assert!(
                        !path[level..].contains(&addr),
                        "{mode:?} bit {bit}: unused entry written"
                    );
                }
            }
        }
    }
}

#[test]
fn same_bits_not_reserved_elsewhere() {
    // Bits 62:52 are ignored with 4-level paging but reserved with PAE; bit 63 is XD with NXE; bit 12 of a
    // large page is PAT; bit 7 of a PTE is PAT.
    let mut pt = Pt::new(Mode::Long);
    pt.regs.efer |= EFER_NXE;
    let path = pt.map(0x4000_0000, 0x4000_0000, PageSize::Size2M, LEAF);
    pt.set(path[2], 1 << 62 | 1 << 52 | pte::XD | pte::PAT_LARGE);
    assert!(pt.walk(0x4000_0000, Read, SUP).is_ok());
    let path = pt.map(0x8000_0000, 0x5000, PageSize::Size4K, LEAF);
    pt.set(path[3], pte::PAT_4K);
    assert!(pt.walk(0x8000_0000, Read, SUP).is_ok());
    // A 2 MiB frame with bit 21 set is an address bit, not reserved.
    pt.map(0xc000_0000, 0x60_0000, PageSize::Size2M, LEAF);
    assert_eq!(pt.ok(0xc000_0001, Read, SUP).paddr, 0x60_0001);
}

#[test]
fn large_page_alignment_bits_are_reserved() {
    // A large-page frame address that is not aligned to the page size sets reserved bits.
    let mut pt = Pt::new(Mode::Long);
    let path = pt.map(0x8000_0000, 0x8000_0000, PageSize::Size1G, LEAF);
    pt.set(path[1], 0x20_0000); // bit 21: inside the 1 GiB frame
    assert_eq!(pt.fault(0x8000_0000, Read, SUP), P | RSVD);
    let path = pt.map(0x4000_0000, 0x4000_0000, PageSize::Size2M, LEAF);
    pt.set(path[2], 0x2000); // bit 13
    assert_eq!(pt.fault(0x4000_0000, Read, SUP), P | RSVD);
    let mut pt = Pt::new(Mode::Bits32);
    let path = pt.map(0x40_0000, 0x40_0000, PageSize::Size4M, LEAF);
    pt.set(path[0], 0x20_0000); // bit 21
    assert_eq!(pt.fault(0x40_0000, Read, SUP), P | RSVD);
}

#[test]
fn pae_pdpte_load_check() {
    let mut pt = Pt::new(Mode::Pae);
    pt.map(0x0, 0x1000, PageSize::Size4K, LEAF);
    pt.map(0xc000_0000, 0x2000, PageSize::Size4K, LEAF);
    let cr3 = pt.regs.cr3;
    let pdptes = load_pae_pdptes(&mut pt.mem, cr3).expect("valid PDPTEs");
    assert_eq!(pdptes[0] & pte::P, 1);
    assert_eq!(pdptes[1], 0);
    assert_eq!(pdptes[3] & pte::P, 1);
    // Reserved bits of a not-present PDPTE do not matter.
    pt.set_entry(cr3 + 8, 0xffff_ffff_ffff_fffe);
    assert!(load_pae_pdptes(&mut pt.mem, cr3).is_some());
    pt.set(cr3 + 24, pte::RW);
    assert!(
        load_pae_pdptes(&mut pt.mem, cr3).is_none(),
        "R/W is reserved in a PDPTE"
    );
    assert!(pt.mem.writes.is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// Access rights

#[test]
fn write_to_read_only() {
    for mode in MODES {
        for level in 0..[2, 3, 4][mode as usize] {
            if mode == Mode::Pae && level == 0 {
                continue; // PDPTEs have no R/W
            }
            let mut pt = Pt::new(mode);
            let va = 0x4060_5000;
            let path = pt.map(va, 0x8000, PageSize::Size4K, LEAF);
            pt.clear(path[level], pte::RW);
            let what = format!("{mode:?} R/W clear at level {level}");
            // User writes: never.
            assert_eq!(pt.fault(va, Write, USER), P | W | U, "{what}");
            assert_eq!(pt.ok(va, Read, USER).prot, Prot::READ | Prot::EXEC, "{what}");
            // Supervisor writes: not with CR0.WP.
            assert_eq!(pt.fault(va, Write, SUP), P | W, "{what}");
            assert_eq!(pt.fault(va, Write, Privilege::Implicit), P | W, "{what}");
            // ... but with CR0.WP = 0, to a user page as to a supervisor page, and D gets set.
            pt.regs.cr0 &= !CR0_WP;
            let w = pt.ok(va, Write, SUP);
            assert!(w.prot.contains(Prot::WRITE), "{what}");
            assert_ne!(pt.entry(path[path.len() - 1]) & pte::D, 0, "{what}");
            pt.clear(*path.last().unwrap(), pte::US);
            assert!(pt.ok(va, Write, SUP).prot.contains(Prot::WRITE), "{what}");
            // User writes still fault (and now U/S too).
            assert_eq!(pt.fault(va, Write, USER), P | W | U, "{what}");
        }
    }
}

#[test]
fn user_access_to_supervisor_page() {
    for mode in MODES {
        for nxe in [false, true] {
            for level in 0..[2, 3, 4][mode as usize] {
                if mode == Mode::Pae && level == 0 {
                    continue; // PDPTEs have no U/S
                }
                let mut pt = Pt::new(mode);
                if nxe {
                    pt.regs.efer |= EFER_NXE;
                }
                let va = 0x4060_5000;
                let path = pt.map(va, 0x8000, PageSize::Size4K, LEAF);
                pt.clear(path[level], pte::US);
                let i = if mode != Mode::Bits32 && nxe { I } else { 0 };
                assert_eq!(pt.fault(va, Read, USER), P | U, "{mode:?} {level}");
                assert_eq!(pt.fault(va, Write, USER), P | W | U, "{mode:?} {level}");
                assert_eq!(pt.fault(va, Fetch, USER), P | U | i, "{mode:?} {level}");
                // The supervisor may do everything there.
                pt.ok(va, Write, SUP);
                assert_eq!(pt.ok(va, Read, SUP).prot, Prot::all());
                // A user fault does not set the leaf's A flag; the upper levels' A flags are set.
                let mut pt = Pt::new(mode);
                let path = pt.map(va, 0x8000, PageSize::Size4K, LEAF);
                pt.clear(path[level], pte::US);
                pt.fault(va, Read, USER);
                let leaf = *path.last().unwrap();
                assert_eq!(pt.entry(leaf) & pte::A, 0);
                for &e in &path[..path.len() - 1] {
                    if !(mode == Mode::Pae && e == path[0]) {
                        assert_ne!(pt.entry(e) & pte::A, 0, "{mode:?} upper A");
                    }
                }
            }
        }
    }
}

#[test]
fn nx_fetch() {
    for mode in [Mode::Pae, Mode::Long] {
        for level in 0..[2, 3, 4][mode as usize] {
            if mode == Mode::Pae && level == 0 {
                continue; // bit 63 of a PDPTE is reserved, tested above
            }
            for privilege in [SUP, USER] {
                let mut pt = Pt::new(mode);
                pt.regs.efer |= EFER_NXE;
                let va = 0x4060_5000;
                let path = pt.map(va, 0x8000, PageSize::Size4K, LEAF);
                pt.set(path[level], pte::XD);
                let u = if privilege == USER { U } else { 0 };
                assert_eq!(pt.fault(va, Fetch, privilege), P | I | u, "{mode:?} {level}");
                // Data accesses are fine; the TLB gets no EXEC.
                let w = pt.ok(va, Write, privilege);
                assert_eq!(w.prot, Prot::READ | Prot::WRITE, "{mode:?} {level}");
                // Without NXE, bit 63 is reserved: RSVD, and no I (neither SMEP nor NXE).
                pt.regs.efer &= !EFER_NXE;
                assert_eq!(pt.fault(va, Fetch, privilege), P | RSVD | u, "{mode:?} {level}");
                assert_eq!(pt.fault(va, Read, privilege), P | RSVD | u, "{mode:?} {level}");
                // ... and with SMEP, I is reported even without NXE.
                pt.regs.cr4 |= CR4_SMEP;
                assert_eq!(pt.fault(va, Fetch, privilege), P | RSVD | I | u, "{mode:?} {level}");
            }
        }
    }
}

#[test]
fn nxe_without_xd_allows_fetch() {
    let mut pt = Pt::new(Mode::Long);
    pt.regs.efer |= EFER_NXE;
    pt.map(0x1000, 0x2000, PageSize::Size4K, LEAF);
    assert_eq!(pt.ok(0x1000, Fetch, USER).prot, Prot::READ | Prot::EXEC);
}

#[test]
fn fetch_i_bit_rules() {
    // 32-bit paging: I only under SMEP (there is no NX). PAE/4-level: under NXE or SMEP.
    let cases: &[(Mode, bool, bool, u32)] = &[
        (Mode::Bits32, false, false, 0),
        (Mode::Bits32, true, false, 0), // NXE means nothing without PAE
        (Mode::Bits32, false, true, I),
        (Mode::Pae, false, false, 0),
        (Mode::Pae, true, false, I),
        (Mode::Pae, false, true, I),
        (Mode::Long, false, false, 0),
        (Mode::Long, true, false, I),
        (Mode::Long, true, true, I),
    ];
    for &(mode, nxe, smep, i) in cases {
        let mut pt = Pt::new(mode);
        if nxe {
            pt.regs.efer |= EFER_NXE;
        }
        if smep {
            pt.regs.cr4 |= CR4_SMEP;
        }
        // Nothing mapped: not present.
        assert_eq!(pt.fault(0x1000, Fetch, SUP), i, "{mode:?} nxe={nxe} smep={smep}");
        assert_eq!(pt.fault(0x1000, Fetch, USER), U | i, "{mode:?} nxe={nxe} smep={smep}");
        assert_eq!(pt.fault(0x1000, Read, USER), U, "{mode:?} nxe={nxe} smep={smep}");
    }
}

#[test]
fn smep() {
    for mode in MODES {
        let mut pt = Pt::new(mode);
        pt.map(0x1000, 0x2000, PageSize::Size4K, LEAF); // a user page
        pt.map(0x3000, 0x4000, PageSize::Size4K, LEAF & !pte::US); // a supervisor page
                                                                   // SMEP off: the supervisor may fetch from user pages.
        assert!(pt.ok(0x1000, Fetch, SUP).prot.contains(Prot::EXEC));
        pt.regs.cr4 |= CR4_SMEP;
        assert_eq!(pt.fault(0x1000, Fetch, SUP), P | I, "{mode:?}");
        // Data accesses and user fetches are unaffected; the TLB gets no EXEC for the supervisor.
        assert_eq!(pt.ok(0x1000, Read, SUP).prot, Prot::READ, "{mode:?}");
        assert!(pt.ok(0x1000, Fetch, USER).prot.contains(Prot::EXEC));
        assert!(pt.ok(0x3000, Fetch, SUP).prot.contains(Prot::EXEC));
        // U/S clear at one upper level makes it a supervisor page.
        let path = pt.map(0x4000_0000, 0x5000, PageSize::Size4K, LEAF);
        pt.clear(path[path.len() - 2], pte::US);
        assert!(pt.ok(0x4000_0000, Fetch, SUP).prot.contains(Prot::EXEC));
    }
}

#[test]
fn smap() {
    for mode in MODES {
        let mut pt = Pt::new(mode);
        let path = pt.map(0x1000, 0x2000, PageSize::Size4K, LEAF | pte::D); // a user page
        pt.map(0x3000, 0x4000, PageSize::Size4K, LEAF & !pte::US); // a supervisor page
        pt.regs.cr4 |= CR4_SMAP;
        // AC = 0: no data access to user pages.
        assert_eq!(pt.fault(0x1000, Read, SUP), P, "{mode:?}");
        assert_eq!(pt.fault(0x1000, Write, SUP), P | W, "{mode:?}");
        // AC = 1: allowed for explicit accesses, with the usual R/W rules.
        assert_eq!(pt.ok(0x1000, Read, SUP_AC).prot, Prot::all(), "{mode:?}");
        pt.ok(0x1000, Write, SUP_AC);
        // Implicit supervisor accesses: SMAP applies whatever AC says; the error code has no U.
        assert_eq!(pt.fault(0x1000, Read, Privilege::Implicit), P, "{mode:?}");
        assert_eq!(pt.fault(0x1000, Write, Privilege::Implicit), P | W, "{mode:?}");
        // Fetches are SMEP's business, not SMAP's: the supervisor TLB entry may be EXEC only.
        assert_eq!(pt.ok(0x1000, Fetch, SUP).prot, Prot::EXEC, "{mode:?}");
        // Supervisor pages and user accesses are not affected.
        assert_eq!(pt.ok(0x3000, Read, SUP).prot & Prot::READ, Prot::READ);
        assert_eq!(pt.ok(0x1000, Write, USER).prot, Prot::all());
        // Read-only user page with AC = 1: WP decides the write.
        pt.clear(path[path.len() - 1], pte::RW);
        assert_eq!(pt.fault(0x1000, Write, SUP_AC), P | W, "{mode:?}");
        pt.regs.cr0 &= !CR0_WP;
        pt.ok(0x1000, Write, SUP_AC);
        // WP = 0 does not lift SMAP.
        assert_eq!(pt.fault(0x1000, Write, SUP), P | W, "{mode:?}");
        // SMAP off: everything again.
        pt.regs.cr4 &= !CR4_SMAP;
        pt.ok(0x1000, Write, SUP);
        pt.ok(0x1000, Read, Privilege::Implicit);
    }
}

#[test]
fn smap_and_smep_fault_codes_with_nxe() {
    let mut pt = Pt::new(Mode::Long);
    pt.regs.efer |= EFER_NXE;
    pt.regs.cr4 |= CR4_SMEP | CR4_SMAP;
    pt.map(0x1000, 0x2000, PageSize::Size4K, LEAF);
    assert_eq!(pt.fault(0x1000, Fetch, SUP), P | I);
    assert_eq!(pt.fault(0x1000, Fetch, SUP_AC), P | I, "AC does not lift SMEP");
    assert_eq!(pt.fault(0x1000, Read, SUP), P);
}

// ---------------------------------------------------------------------------------------------------------
// Accessed and dirty flags, TLB protection

#[test]
fn read_sets_accessed_on_all_levels_not_dirty() {
    for mode in MODES {
        let mut pt = Pt::new(mode);
        let path = pt.map(0x4060_5000, 0x8000, PageSize::Size4K, LEAF);
        let w = pt.ok(0x4060_5000, Read, USER);
        for (n, &e) in path.iter().enumerate() {
            let a = if mode == Mode::Pae && n == 0 { 0 } else { pte::A };
            assert_eq!(pt.entry(e) & pte::A, a, "{mode:?} level {n}");
            assert_eq!(pt.entry(e) & pte::D, 0, "{mode:?} level {n}: no D on a read");
        }
        // Writable but clean: the TLB must not get WRITE.
        assert_eq!(w.prot, Prot::READ | Prot::EXEC, "{mode:?}");
        // Fetches set A but not D either.
        let leaf = *path.last().unwrap();
        pt.clear(leaf, pte::A);
        pt.ok(0x4060_5000, Fetch, USER);
        assert_eq!(pt.entry(leaf) & (pte::A | pte::D), pte::A, "{mode:?}");
    }
}

#[test]
fn write_sets_dirty_on_leaf_only() {
    for mode in MODES {
        for size in [
            PageSize::Size4K,
            [PageSize::Size4M, PageSize::Size2M, PageSize::Size1G][mode as usize],
        ] {
            let mut pt = Pt::new(mode);
            let path = pt.map(0x4000_0000, 0x4000_0000, size, LEAF);
            let w = pt.ok(0x4000_0010, Write, USER);
            assert_eq!(
                w.prot,
                Prot::all(),
                "{mode:?} {size:?}: the write that set D may cache WRITE"
            );
            assert_eq!(w.page_size, size);
            let (leaf, upper) = path.split_last().unwrap();
            assert_eq!(
                pt.entry(*leaf) & (pte::A | pte::D),
                pte::A | pte::D,
                "{mode:?} {size:?}"
            );
            for &e in upper {
                assert_eq!(pt.entry(e) & pte::D, 0, "{mode:?} {size:?}: D only on the leaf");
            }
            // Now dirty: a read may cache WRITE too.
            assert_eq!(pt.ok(0x4000_0010, Read, USER).prot, Prot::all(), "{mode:?} {size:?}");
        }
    }
}

#[test]
fn entries_written_only_when_they_change() {
    for mode in MODES {
        let mut pt = Pt::new(mode);
        let path = pt.map(0x4060_5000, 0x8000, PageSize::Size4K, LEAF);
        pt.ok(0x4060_5000, Read, SUP);
        // PAE: the PDPTE is never written (it has no A flag).
        let written = if mode == Mode::Pae { path.len() - 1 } else { path.len() };
        assert_eq!(pt.mem.writes.len(), written, "{mode:?}");
        pt.mem.writes.clear();
        pt.ok(0x4060_5000, Read, SUP);
        assert!(pt.mem.writes.is_empty(), "{mode:?}: A already set");
        pt.ok(0x4060_5000, Write, SUP);
        assert_eq!(
            pt.mem.writes,
            vec![(*path.last().unwrap(), pt.entry(*path.last().unwrap()))]
        );
        pt.mem.writes.clear();
        pt.ok(0x4060_5000, Write, SUP);
        assert!(pt.mem.writes.is_empty(), "{mode:?}: D already set");
        // Entries keep their other bits (32-bit entries are written as 32 bits).
        let leaf = pt.entry(*path.last().unwrap());
        assert_eq!(leaf, 0x8000 | LEAF | pte::A | pte::D, "{mode:?}");
    }
}

#[test]
fn upper_accessed_set_before_lower_fault() {
    for mode in [Mode::Bits32, Mode::Long] {
        let mut pt = Pt::new(mode);
        let path = pt.map(0x4060_5000, 0x8000, PageSize::Size4K, LEAF);
        pt.clear(*path.last().unwrap(), pte::P);
        pt.fault(0x4060_5000, Read, SUP);
        let (leaf, upper) = path.split_last().unwrap();
        for &e in upper {
            assert_ne!(pt.entry(e) & pte::A, 0, "{mode:?}");
        }
        assert_eq!(pt.entry(*leaf) & pte::A, 0, "{mode:?}");
    }
}

#[test]
fn protection_fault_leaves_leaf_flags_alone() {
    let mut pt = Pt::new(Mode::Long);
    let path = pt.map(0x1000, 0x2000, PageSize::Size4K, LEAF & !pte::RW);
    pt.fault(0x1000, Write, SUP);
    assert_eq!(pt.entry(path[3]) & (pte::A | pte::D), 0);
}

#[test]
fn supervisor_write_with_wp_off_on_clean_read_only_page() {
    // Prot for a supervisor read with WP = 0 of a read-only clean page: WRITE would be allowed, but D is
    // clear, so the TLB must not get it.
    let mut pt = Pt::new(Mode::Long);
    pt.regs.cr0 &= !CR0_WP;
    pt.map(0x1000, 0x2000, PageSize::Size4K, LEAF & !pte::RW);
    assert_eq!(pt.ok(0x1000, Read, SUP).prot, Prot::READ | Prot::EXEC);
    assert_eq!(pt.ok(0x1000, Write, SUP).prot, Prot::all());
}

// ---------------------------------------------------------------------------------------------------------
// Global, PAT

#[test]
fn global_needs_pge_and_leaf_g() {
    for mode in MODES {
        let mut pt = Pt::new(mode);
        let path = pt.map(0x1000, 0x2000, PageSize::Size4K, LEAF | pte::G);
        assert!(!pt.ok(0x1000, Read, SUP).global, "{mode:?}: no PGE");
        pt.regs.cr4 |= CR4_PGE;
        assert!(pt.ok(0x1000, Read, SUP).global, "{mode:?}");
        // G in an upper level only: not global.
        pt.clear(*path.last().unwrap(), pte::G);
        pt.set(path[path.len() - 2], pte::G);
        assert!(!pt.ok(0x1000, Read, SUP).global, "{mode:?}");
    }
    let mut pt = Pt::new(Mode::Long);
    pt.regs.cr4 |= CR4_PGE;
    pt.map(0x4000_0000, 0x4000_0000, PageSize::Size1G, LEAF | pte::G);
    assert!(pt.ok(0x4000_0000, Read, SUP).global);
}

#[test]
fn pat_index() {
    let mut pt = Pt::new(Mode::Long);
    pt.map(0x1000, 0x2000, PageSize::Size4K, LEAF | pte::PAT_4K | pte::PWT);
    assert_eq!(pt.ok(0x1000, Read, SUP).pat_index, 0b101);
    pt.map(
        0x4000_0000,
        0x4000_0000,
        PageSize::Size2M,
        LEAF | pte::PAT_LARGE | pte::PCD,
    );
    let w = pt.ok(0x4000_0000, Read, SUP);
    assert_eq!(
        (w.pat_index, w.paddr),
        (0b110, 0x4000_0000),
        "PAT is not part of the frame"
    );
    // In a large-page entry bit 7 is PS, not PAT.
    pt.map(0x8000_0000, 0x8000_0000, PageSize::Size2M, LEAF | pte::PCD);
    assert_eq!(pt.ok(0x8000_0000, Read, SUP).pat_index, 0b010);
    let mut pt = Pt::new(Mode::Bits32);
    pt.map(
        0x40_0000,
        0x40_0000,
        PageSize::Size4M,
        LEAF | pte::PAT_LARGE | pte::PCD | pte::PWT,
    );
    let w = pt.ok(0x40_0000, Read, SUP);
    assert_eq!((w.pat_index, w.paddr), (0b111, 0x40_0000));
    pt.map(0x1000, 0x2000, PageSize::Size4K, LEAF);
    assert_eq!(pt.ok(0x1000, Read, SUP).pat_index, 0);
}

// ---------------------------------------------------------------------------------------------------------
// On a real AddressSpace

#[test]
fn walks_through_address_space() {
    let mut space = AddressSpace::new();
    let ram = space.add_ram(RamBlock::new(0x20_0000).unwrap());
    space.map_ram(0, 0x20_0000, ram, 0).unwrap();
    // 4-level tables at 0x1000 (PML4), 0x2000, 0x3000, 0x4000; 0x40_1000 -> 0x9000.
    let (pml4, pdpt, pd, ptab) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
    let table = pte::P | pte::RW | pte::US;
    space.write(pml4, 8, pdpt | table);
    space.write(pdpt, 8, pd | table);
    space.write(pd + 2 * 8, 8, ptab | table);
    space.write(ptab + 8, 8, 0x9000 | LEAF);
    // A PDE pointing outside RAM: its table reads as all ones (reserved bits set).
    space.write(pd + 3 * 8, 8, 0x8000_0000 | table);
    let regs = PagingRegs {
        cr0: CR0_PG | CR0_PE | CR0_WP,
        cr3: pml4,
        cr4: CR4_PAE,
        efer: EFER_LME | EFER_LMA,
    };
    let w = translate(&mut space, &regs, 0x40_1abc, Write, SUP).unwrap();
    assert_eq!(w.paddr, 0x9abc);
    assert_eq!(w.translation().paddr, 0x9abc);
    assert_eq!(space.read(ptab + 8, 8), 0x9000 | LEAF | pte::A | pte::D);
    assert_eq!(space.read(pml4, 8), pdpt | table | pte::A);
    assert_eq!(space.read(pd + 16, 8), ptab | table | pte::A);
    let f = translate(&mut space, &regs, 0x60_0000, Read, USER).unwrap_err();
    assert_eq!(
        f,
        PageFault {
            addr: 0x60_0000,
            error_code: P | RSVD | U
        }
    );
    // 32-bit entries through the same implementation.
    let regs32 = PagingRegs {
        cr0: CR0_PG | CR0_PE,
        cr3: 0x5000,
        cr4: 0,
        efer: 0,
    };
    space.write(0x5000 + 4, 4, 0x6000 | table);
    space.write(0x6000 + 4 * 3, 4, 0x7000 | LEAF);
    let w = translate(&mut space, &regs32, 0x40_3004, Read, USER).unwrap();
    assert_eq!(w.paddr, 0x7004);
    assert_eq!(space.read(0x5004, 4), 0x6000 | table | pte::A);
    assert_eq!(
        space.read(0x6000 + 12, 8),
        0x7000 | LEAF | pte::A,
        "4-byte write leaves the next entry"
    );
}
