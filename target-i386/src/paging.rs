//! The x86 page-table walker (Intel SDM vol. 3 ch. 4, AMD APM vol. 2 ch. 5): translates a linear address for
//! one access into a physical address, checks the access rights, sets the accessed and dirty flags, and
//! computes what the software TLB may cache. Self-contained: it reads control registers from a
//! [`PagingRegs`] snapshot and physical memory through [`PhysMem`], so it runs without a CPU or a softmmu.
//!
//! # Modes
//! [`PagingRegs::mode`] picks one of four from CR0.PG, CR4.PAE and EFER.LMA:
//! - [`PagingMode::Off`]: identity, everything allowed;
//! - [`PagingMode::Bits32`]: 32-bit paging, 4 KiB pages, and 4 MiB pages under CR4.PSE, with PSE-36 (PDE bits
//!   20:13 give physical bits 39:32; bit 21 is reserved). CR4.PSE = 0 ignores the PDE's PS bit;
//! - [`PagingMode::Pae`]: PAE paging, 4 KiB and 2 MiB pages. The four PDPTEs are read from memory on every walk
//!   (see "PDPTEs" below);
//! - [`PagingMode::Long4`]: 4-level paging, 4 KiB, 2 MiB and 1 GiB pages.
//!
//! 5-level paging (CR4.LA57) and protection keys (CR4.PKE) are not supported (nor advertised): CR4.LA57 and
//! CR4.PKE are ignored. Outside long mode only bits 31:0 of the linear address take part in the walk. Canonical
//! checks are not this module's business: in long mode the caller raises #GP(0) (#SS(0) for stack accesses)
//! for a non-canonical address before calling [`translate`].
//!
//! # Physical address width
//! MAXPHYADDR is [`MAXPHYADDR`] = 48, what `cpuid.rs` reports in leaf 0x8000_0008 (a test keeps them equal).
//! Bits 51:48 of a present entry are reserved in 4-level paging, 62:48 in PAE paging, 63:48 in a PAE PDPTE. With
//! 32-bit paging the physical width is min(MAXPHYADDR, 40) = 40 (PSE-36). The PAT is taken as supported (bit 7
//! of a PTE and bit 12 of a large-page entry are PAT, never reserved), and so are 1 GiB pages; the CPUID model
//! advertises PSE, PSE-36, PAE, PGE, PAT, NX, Page1GB, SMEP and SMAP.
//!
//! # Checks, in the order the hardware applies them
//! 1. Each entry on the way down: P = 0 is a not-present fault; a set reserved bit is a reserved-bit fault
//!    (error code P | RSVD). Reserved bits are only checked in present entries.
//! 2. At the leaf, the access rights combined over all levels: R/W and U/S are ANDed, XD is ORed (only under
//!    EFER.NXE, otherwise bit 63 is reserved). See [`Privilege`] for user, supervisor and implicit supervisor
//!    accesses, CR0.WP, SMEP, SMAP and EFLAGS.AC.
//!
//! The error code ([`pf_err`]) has W for writes, U for user-mode accesses (not for implicit supervisor
//! accesses at CPL 3), and I for fetches when CR4.SMEP = 1 or (CR4.PAE = 1 and EFER.NXE = 1), as the SDM's
//! section on page-fault exceptions says; in 32-bit paging without SMEP a fetch fault has I = 0. The faulting
//! address (CR2) is the address passed in.
//!
//! # Accessed and dirty flags
//! The A flag of every non-leaf entry is set as the walk goes past it (the entry is present and has no
//! reserved bit), even if a later level then faults: the SDM lets the processor set A flags of the upper
//! levels it has used before the translation completes (it must, before caching them in its paging-structure
//! caches), and says the PDE's A flag is set on a protection fault. The leaf's A flag, and its D flag on a
//! write, are set only when the access is allowed (the SDM leaves the leaf's A flag on a protection fault
//! model-specific; QEMU does the same). PAE PDPTEs have no A flag. An entry is written back only when its
//! value changes (the hardware uses a locked read-modify-write; rqemu is single-threaded, so a plain write of
//! the updated entry is enough).
//!
//! # What the TLB may cache
//! [`PageWalk::prot`] lists every kind of access the page allows *for the privilege asked for*, so that a TLB
//! entry filled by a read can serve a later fetch or write. One subtlety: [`Prot::WRITE`] is granted only if
//! the leaf's dirty flag is set (already, or by this walk because it is a write). Otherwise a TLB entry filled
//! by a read would let a later write hit in the TLB and never set the D flag; instead that write misses, walks
//! again and sets it.
//!
//! # PDPTEs
//! Real hardware loads the four PAE PDPTEs into internal registers when CR3 is loaded (and when CR0/CR4 changes
//! enable PAE paging), checks their reserved bits there (#GP on a violation) and does not re-read memory until
//! the next such load. rqemu reads the PDPTE from memory on every walk instead: simpler, and exact for a guest
//! that does not modify its PDPT without reloading CR3 (which the manuals leave undefined anyway). Differences:
//! a PDPTE changed in memory takes effect at the next TLB miss instead of at the next CR3 load, and a PDPTE with
//! a reserved bit set gives #PF with P | RSVD at the first walk instead of #GP at the `mov cr3`. `mov cr3` (and a
//! CR0/CR4 write entering PAE paging) calls [`load_pae_pdptes`] to raise that #GP.
//!
//! # Physical memory
//! Page-table entries are read and written through [`PhysMem`], implemented for
//! [`rqemu_softmmu::AddressSpace`] with its `read`/`write` (1..8 bytes, little-endian): unassigned physical
//! addresses read as all ones (a bus with nothing on it) and drop writes, so an entry in a hole reads as present
//! with every reserved bit set (#PF with RSVD), except in 32-bit paging without CR4.PSE, where it is a present
//! page table at 0xffff_f000. Entries in MMIO regions go to the device. The A/D write-back does not consult the
//! "holds translated code" bitmap (like `AddressSpace::write_bytes`): a page table that shares a page with
//! translated code does not invalidate those TBs when A/D bits change.
//!
//! # Use by `X86Fill::tlb_fill` (machine.rs)
//! The fill reads the registers with [`PagingRegs::from_state_ptr`] (no reference to the state, whose TLB
//! tables the softmmu borrows), raises #GP(0) for non-canonical addresses, maps its MMU index to a
//! [`Privilege`] (user; supervisor with SMAP enforced, shared by implicit accesses; supervisor with AC = 1;
//! supervisor code fetch), calls [`translate`] over the address space and caches `walk.translation()` or
//! records the #PF, noting the pages that are not [`PageWalk::global`]. The system instructions
//! (`translate/sysregs.rs`) flush those on CR3 loads (global pages survive), everything on changes of CR0.PG/WP/PE,
//! CR4.PSE/PAE/PGE/SMEP/SMAP and EFER.NXE, and the page on `invlpg`; `mov cr3` and paging enables call
//! [`load_pae_pdptes`] under PAE paging.

use rqemu_softmmu::{Access, AddressSpace, Prot, Translation};

use crate::cpu::X86CpuState;

/// CR0.WP: supervisor writes honour R/W.
pub const CR0_WP: u64 = 1 << 16;
/// CR0.PG: paging enabled.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PSE: 4 MiB pages in 32-bit paging.
pub const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE: 64-bit entries (PAE or 4-level paging).
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.PGE: global pages.
pub const CR4_PGE: u64 = 1 << 7;
/// CR4.SMEP: no supervisor fetches from user pages.
pub const CR4_SMEP: u64 = 1 << 20;
/// CR4.SMAP: no supervisor data accesses to user pages unless EFLAGS.AC.
pub const CR4_SMAP: u64 = 1 << 21;
/// EFER.LMA: long mode active (4-level paging when CR0.PG is set).
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE: bit 63 of 64-bit entries is XD (otherwise reserved).
pub const EFER_NXE: u64 = 1 << 11;

/// MAXPHYADDR: physical address bits, as CPUID leaf 0x8000_0008 reports.
pub const MAXPHYADDR: u32 = 48;
/// Physical address bits reachable with 32-bit paging (PSE-36): min(MAXPHYADDR, 40).
pub const PSE36_MAXPHYADDR: u32 = 40;

/// Bits of a paging-structure entry (the same positions in 32-bit and 64-bit entries).
pub mod pte {
    /// Present.
    pub const P: u64 = 1 << 0;
    /// Read/write: writes allowed when set in every level.
    pub const RW: u64 = 1 << 1;
    /// User/supervisor: user accesses allowed when set in every level.
    pub const US: u64 = 1 << 2;
    /// Page-level write-through.
    pub const PWT: u64 = 1 << 3;
    /// Page-level cache disable.
    pub const PCD: u64 = 1 << 4;
    /// Accessed.
    pub const A: u64 = 1 << 5;
    /// Dirty (leaf entries).
    pub const D: u64 = 1 << 6;
    /// Page size: the entry maps a large page (PDPTE, PDE); the PAT bit in a PTE.
    pub const PS: u64 = 1 << 7;
    /// PAT bit of a 4 KiB PTE.
    pub const PAT_4K: u64 = 1 << 7;
    /// Global (leaf entries, under CR4.PGE).
    pub const G: u64 = 1 << 8;
    /// PAT bit of a large-page entry.
    pub const PAT_LARGE: u64 = 1 << 12;
    /// Execute-disable (64-bit entries, under EFER.NXE; reserved otherwise).
    pub const XD: u64 = 1 << 63;
}

/// Bits of the page-fault error code.
pub mod pf_err {
    /// The fault was a protection or reserved-bit violation (not a not-present entry).
    pub const P: u32 = 1 << 0;
    /// The access was a write.
    pub const W: u32 = 1 << 1;
    /// The access was a user-mode access.
    pub const U: u32 = 1 << 2;
    /// A reserved bit was set in a paging-structure entry.
    pub const RSVD: u32 = 1 << 3;
    /// The access was an instruction fetch (only under CR4.SMEP, or CR4.PAE with EFER.NXE).
    pub const I: u32 = 1 << 4;
}

/// Address bits of a 64-bit entry (and of CR3 in 4-level paging): MAXPHYADDR-1..12.
const ADDR_MASK: u64 = ((1 << MAXPHYADDR) - 1) & !0xfff;
/// Address bits of a 32-bit entry pointing to a 4 KiB frame or table (and of CR3 in 32-bit paging).
const ADDR_MASK_32: u64 = 0xffff_f000;
/// Bits 31:22 of a 4 MiB PDE: physical bits 31:22.
const PDE32_4M_LOW: u64 = 0xffc0_0000;
/// Bits 20:13 of a 4 MiB PDE: physical bits 39:32 (PSE-36).
const PDE32_4M_HIGH: u64 = 0x1f_e000;
/// Shift from PDE bits 20:13 to physical bits 39:32.
const PDE32_4M_HIGH_SHIFT: u32 = 32 - 13;
/// Reserved bits of a 4 MiB PDE: 21:(M-19) with M = 40, i.e. bit 21.
const PDE32_4M_RSVD: u64 = ((1 << 22) - 1) & !((1 << (PSE36_MAXPHYADDR - 19)) - 1);
/// CR3 bits 31:5: the PDPT address in PAE paging.
const CR3_PAE_MASK: u64 = 0xffff_ffe0;
/// Reserved bits of a present 4-level entry above the address: 51:MAXPHYADDR (62:52 are ignored).
const RSVD_HIGH_LONG: u64 = ((1 << 52) - 1) & !((1 << MAXPHYADDR) - 1);
/// Reserved bits of a present PAE PDE/PTE above the address: 62:MAXPHYADDR.
const RSVD_HIGH_PAE: u64 = ((1 << 63) - 1) & !((1 << MAXPHYADDR) - 1);
/// Reserved bits of a present PAE PDPTE: 63:MAXPHYADDR, 8:5 and 2:1 (no R/W, U/S, A, D, PS, G, XD).
const RSVD_PDPTE_PAE: u64 = !((1 << MAXPHYADDR) - 1) | 0x1e0 | 0x6;
/// Reserved bits of a present 2 MiB entry: 20:13 (between the PAT bit and the frame address).
const RSVD_2M: u64 = 0x1f_e000;
/// Reserved bits of a present 1 GiB entry: 29:13.
const RSVD_1G: u64 = 0x3fff_e000;

/// Page sizes a translation can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageSize {
    /// 4 KiB (every mode).
    Size4K,
    /// 2 MiB (PAE and 4-level PDEs).
    Size2M,
    /// 4 MiB (32-bit paging under CR4.PSE).
    Size4M,
    /// 1 GiB (4-level PDPTEs).
    Size1G,
}

impl PageSize {
    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << 12,
            PageSize::Size2M => 1 << 21,
            PageSize::Size4M => 1 << 22,
            PageSize::Size1G => 1 << 30,
        }
    }
}

/// The paging mode, from CR0.PG, CR4.PAE and EFER.LMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PagingMode {
    /// CR0.PG = 0: linear = physical.
    Off,
    /// 32-bit paging (CR4.PAE = 0).
    Bits32,
    /// PAE paging (CR4.PAE = 1, EFER.LMA = 0).
    Pae,
    /// 4-level paging (CR4.PAE = 1, EFER.LMA = 1).
    Long4,
}

/// The registers a walk depends on. Copy them from the CPU state at each walk ([`PagingRegs::from_state`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingRegs {
    /// CR0 (PG, WP).
    pub cr0: u64,
    /// CR3 (the top-level table; its PCID/PWT/PCD bits are ignored).
    pub cr3: u64,
    /// CR4 (PSE, PAE, PGE, SMEP, SMAP).
    pub cr4: u64,
    /// EFER (LMA, NXE).
    pub efer: u64,
}

impl PagingRegs {
    /// A snapshot of `s`'s CR0, CR3, CR4 and EFER.
    pub fn from_state(s: &X86CpuState) -> PagingRegs {
        PagingRegs {
            cr0: s.cr[0],
            cr3: s.cr[3],
            cr4: s.cr[4],
            efer: s.efer,
        }
    }

    /// The same snapshot through a raw pointer, for `X86Fill`, which must not make a reference to the whole
    /// state while its `SoftMmu` borrows the TLB tables at the end of it: only the four fields are read.
    ///
    /// # Safety
    /// `s` points to a live [`X86CpuState`] that nothing writes during the call.
    pub unsafe fn from_state_ptr(s: *const X86CpuState) -> PagingRegs {
        // SAFETY: the caller's promise; place expressions through the raw pointer read single fields.
        unsafe {
            PagingRegs {
                cr0: (*s).cr[0],
                cr3: (*s).cr[3],
                cr4: (*s).cr[4],
                efer: (*s).efer,
            }
        }
    }

    /// Which paging mode these registers select. (EFER.LMA is only ever set with CR0.PG and CR4.PAE; it is
    /// what the hardware uses, not EFER.LME.)
    pub fn mode(&self) -> PagingMode {
        if self.cr0 & CR0_PG == 0 {
            PagingMode::Off
        } else if self.cr4 & CR4_PAE == 0 {
            PagingMode::Bits32
        } else if self.efer & EFER_LMA == 0 {
            PagingMode::Pae
        } else {
            PagingMode::Long4
        }
    }

    /// Whether bit 63 of 64-bit entries is XD (EFER.NXE) rather than reserved.
    fn nxe(&self) -> bool {
        self.efer & EFER_NXE != 0
    }
}

/// Who makes the access, for the access-rights checks and the error code's U bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Privilege {
    /// An explicit access at CPL 3 (data or fetch): only user pages (U/S = 1 at every level).
    User,
    /// An explicit access at CPL 0..2. Writes to read-only pages are allowed unless CR0.WP; under CR4.SMEP no
    /// fetch from a user page; under CR4.SMAP no data access to a user page unless `ac` (EFLAGS.AC).
    Supervisor {
        /// EFLAGS.AC: the SMAP override for explicit accesses.
        ac: bool,
    },
    /// An implicit supervisor access (GDT, LDT, IDT, TSS, at any CPL): supervisor rights, error code U = 0,
    /// and SMAP applies whatever EFLAGS.AC says. Same rights as `Supervisor { ac: false }`.
    Implicit,
}

/// A page fault: the error code and the faulting linear address (CR2), the address that was translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFault {
    /// The faulting linear address.
    pub addr: u64,
    /// The error code ([`pf_err`] bits).
    pub error_code: u32,
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageWalk {
    /// Physical address of the translated byte.
    pub paddr: u64,
    /// Size of the page that maps it.
    pub page_size: PageSize,
    /// What the page allows for the [`Privilege`] the walk was made with, for the TLB to cache. Always
    /// includes the access asked for; [`Prot::WRITE`] only when the leaf's dirty flag is set (module doc).
    pub prot: Prot,
    /// CR4.PGE and the leaf's G bit: the translation may survive CR3 loads.
    pub global: bool,
    /// The leaf's memory-type bits as a PAT index: bit 2 PAT, bit 1 PCD, bit 0 PWT (0 with paging off).
    /// Not used by rqemu (all memory is write-back).
    pub pat_index: u8,
}

impl PageWalk {
    /// The softmmu's view of it (the global flag and the PAT index are dropped).
    pub fn translation(&self) -> Translation {
        Translation {
            paddr: self.paddr,
            prot: self.prot,
            page_size: self.page_size.bytes(),
        }
    }
}

/// Physical memory as the walker sees it: little-endian, naturally aligned entries.
pub trait PhysMem {
    /// Reads a 32-bit entry.
    fn read_u32(&mut self, paddr: u64) -> u32;
    /// Reads a 64-bit entry.
    fn read_u64(&mut self, paddr: u64) -> u64;
    /// Writes a 32-bit entry (A/D updates).
    fn write_u32(&mut self, paddr: u64, value: u32);
    /// Writes a 64-bit entry (A/D updates).
    fn write_u64(&mut self, paddr: u64, value: u64);
}

/// Through the address space's dispatch: RAM, ROM (writes dropped), MMIO, and unassigned addresses (all ones,
/// writes dropped).
impl PhysMem for AddressSpace {
    fn read_u32(&mut self, paddr: u64) -> u32 {
        self.read(paddr, 4) as u32
    }

    fn read_u64(&mut self, paddr: u64) -> u64 {
        self.read(paddr, 8)
    }

    fn write_u32(&mut self, paddr: u64, value: u32) {
        self.write(paddr, 4, u64::from(value));
    }

    fn write_u64(&mut self, paddr: u64, value: u64) {
        self.write(paddr, 8, value);
    }
}

/// Access rights combined over the levels walked so far.
#[derive(Clone, Copy)]
struct Rights {
    /// R/W set at every level.
    writable: bool,
    /// U/S set at every level: a user-mode address.
    user: bool,
    /// XD set at some level (only under EFER.NXE).
    no_exec: bool,
}

impl Rights {
    const ALL: Rights = Rights {
        writable: true,
        user: true,
        no_exec: false,
    };

    fn and(self, entry: u64, nxe: bool) -> Rights {
        Rights {
            writable: self.writable && entry & pte::RW != 0,
            user: self.user && entry & pte::US != 0,
            no_exec: self.no_exec || (nxe && entry & pte::XD != 0),
        }
    }
}

/// The entry that maps the page.
struct Leaf {
    /// Its physical address.
    addr: u64,
    /// Its value.
    entry: u64,
    /// A 64-bit entry (PAE, 4-level) rather than a 32-bit one.
    wide: bool,
    /// Physical address of the page's first byte.
    frame: u64,
    size: PageSize,
    /// Where its PAT bit is.
    pat_bit: u64,
}

/// Why a walk failed.
#[derive(Clone, Copy)]
enum Fault {
    NotPresent,
    Reserved,
    Protection,
}

/// One walk's inputs.
struct Walker<'a, M: PhysMem + ?Sized> {
    mem: &'a mut M,
    regs: &'a PagingRegs,
    addr: u64,
    access: Access,
    privilege: Privilege,
}

/// Translates `addr` for `access` by `privilege` under `regs`, reading (and updating the A/D flags of) the
/// paging structures in `mem`. In long mode `addr` must be canonical (the caller's #GP); outside it only bits
/// 31:0 are translated. Allocates nothing.
pub fn translate<M: PhysMem + ?Sized>(
    mem: &mut M,
    regs: &PagingRegs,
    addr: u64,
    access: Access,
    privilege: Privilege,
) -> Result<PageWalk, PageFault> {
    let mut w = Walker {
        mem,
        regs,
        addr,
        access,
        privilege,
    };
    match regs.mode() {
        PagingMode::Off => Ok(PageWalk {
            paddr: addr,
            page_size: PageSize::Size4K,
            prot: Prot::all(),
            global: false,
            pat_index: 0,
        }),
        PagingMode::Bits32 => w.walk32(),
        PagingMode::Pae => w.walk_pae(),
        PagingMode::Long4 => w.walk64(regs.cr3 & ADDR_MASK, 4, RSVD_HIGH_LONG, Rights::ALL),
    }
}

/// Reads the four PAE PDPTEs at CR3 as a `mov cr3` (or a CR0/CR4 write enabling PAE paging) does, checking
/// the reserved bits of the present ones: `None` is the #GP(0) the hardware raises. [`translate`] does not use
/// it (it reads the PDPTE at every walk, see the module doc); `mov cr3` and PAE paging enables use it.
pub fn load_pae_pdptes<M: PhysMem + ?Sized>(mem: &mut M, cr3: u64) -> Option<[u64; 4]> {
    let base = cr3 & CR3_PAE_MASK;
    let mut pdptes = [0; 4];
    for (i, p) in pdptes.iter_mut().enumerate() {
        *p = mem.read_u64(base + 8 * i as u64);
        if *p & pte::P != 0 && *p & RSVD_PDPTE_PAE != 0 {
            return None;
        }
    }
    Some(pdptes)
}

impl<M: PhysMem + ?Sized> Walker<'_, M> {
    /// 32-bit paging: PDE, then PTE unless the PDE maps a 4 MiB page.
    fn walk32(&mut self) -> Result<PageWalk, PageFault> {
        let la = self.addr & 0xffff_ffff;
        let pde_addr = (self.regs.cr3 & ADDR_MASK_32) | (la >> 22) << 2;
        let pde = u64::from(self.mem.read_u32(pde_addr));
        if pde & pte::P == 0 {
            return Err(self.fault(Fault::NotPresent));
        }
        // 32-bit entries have no XD bit.
        let rights = Rights::ALL.and(pde, false);
        if self.regs.cr4 & CR4_PSE != 0 && pde & pte::PS != 0 {
            if pde & PDE32_4M_RSVD != 0 {
                return Err(self.fault(Fault::Reserved));
            }
            let frame = (pde & PDE32_4M_LOW) | (pde & PDE32_4M_HIGH) << PDE32_4M_HIGH_SHIFT;
            let leaf = Leaf {
                addr: pde_addr,
                entry: pde,
                wide: false,
                frame,
                size: PageSize::Size4M,
                pat_bit: pte::PAT_LARGE,
            };
            return self.finish(leaf, rights);
        }
        // Without CR4.PSE the PS bit is ignored: the PDE points to a page table either way.
        self.set_accessed(pde_addr, pde, false);
        let pte_addr = (pde & ADDR_MASK_32) | ((la >> 12) & 0x3ff) << 2;
        let pte = u64::from(self.mem.read_u32(pte_addr));
        if pte & pte::P == 0 {
            return Err(self.fault(Fault::NotPresent));
        }
        let leaf = Leaf {
            addr: pte_addr,
            entry: pte,
            wide: false,
            frame: pte & ADDR_MASK_32,
            size: PageSize::Size4K,
            pat_bit: pte::PAT_4K,
        };
        self.finish(leaf, rights.and(pte, false))
    }

    /// PAE paging: the PDPTE (read now, see the module doc), then the PDE/PTE levels as in 4-level paging.
    fn walk_pae(&mut self) -> Result<PageWalk, PageFault> {
        let la = self.addr & 0xffff_ffff;
        let pdpte = self.mem.read_u64((self.regs.cr3 & CR3_PAE_MASK) + ((la >> 30) << 3));
        if pdpte & pte::P == 0 {
            return Err(self.fault(Fault::NotPresent));
        }
        if pdpte & RSVD_PDPTE_PAE != 0 {
            return Err(self.fault(Fault::Reserved));
        }
        // A PDPTE has no R/W, U/S, XD or A bits: it adds no rights and is never written.
        self.walk64(pdpte & ADDR_MASK, 2, RSVD_HIGH_PAE, Rights::ALL)
    }

    /// 64-bit entries from `level` (4: PML4, 3: PDPT, 2: PD, 1: PT) down, starting at `table`.
    fn walk64(
        &mut self,
        mut table: u64,
        level: u32,
        rsvd_high: u64,
        mut rights: Rights,
    ) -> Result<PageWalk, PageFault> {
        let nxe = self.regs.nxe();
        let rsvd = rsvd_high | if nxe { 0 } else { pte::XD };
        for level in (1..=level).rev() {
            let shift = 12 + 9 * (level - 1);
            let entry_addr = table + ((self.addr >> shift) & 0x1ff) * 8;
            let entry = self.mem.read_u64(entry_addr);
            if entry & pte::P == 0 {
                return Err(self.fault(Fault::NotPresent));
            }
            let (leaf_size, rsvd) = match level {
                // PS is reserved in a PML4E.
                4 => (None, rsvd | pte::PS),
                3 if entry & pte::PS != 0 => (Some(PageSize::Size1G), rsvd | RSVD_1G),
                2 if entry & pte::PS != 0 => (Some(PageSize::Size2M), rsvd | RSVD_2M),
                1 => (Some(PageSize::Size4K), rsvd),
                _ => (None, rsvd),
            };
            if entry & rsvd != 0 {
                return Err(self.fault(Fault::Reserved));
            }
            rights = rights.and(entry, nxe);
            if let Some(size) = leaf_size {
                let leaf = Leaf {
                    addr: entry_addr,
                    entry,
                    wide: true,
                    // Bits below the page size are either the PAT bit or reserved (checked above).
                    frame: entry & ADDR_MASK & !(size.bytes() - 1),
                    size,
                    pat_bit: if level == 1 { pte::PAT_4K } else { pte::PAT_LARGE },
                };
                return self.finish(leaf, rights);
            }
            self.set_accessed(entry_addr, entry, true);
            table = entry & ADDR_MASK;
        }
        unreachable!("level 1 always maps a page")
    }

    /// Sets the A flag of a non-leaf entry the walk goes through, if it is clear.
    fn set_accessed(&mut self, addr: u64, entry: u64, wide: bool) {
        if entry & pte::A == 0 {
            self.write_entry(addr, entry | pte::A, wide);
        }
    }

    fn write_entry(&mut self, addr: u64, value: u64, wide: bool) {
        if wide {
            self.mem.write_u64(addr, value);
        } else {
            self.mem.write_u32(addr, value as u32);
        }
    }

    /// The access rights check at the leaf, the A/D update, and the result.
    fn finish(&mut self, leaf: Leaf, rights: Rights) -> Result<PageWalk, PageFault> {
        let mut prot = self.allowed(rights);
        if !prot.allows(self.access) {
            return Err(self.fault(Fault::Protection));
        }
        let mut entry = leaf.entry | pte::A;
        if self.access == Access::Write {
            entry |= pte::D;
        }
        if entry != leaf.entry {
            self.write_entry(leaf.addr, entry, leaf.wide);
        }
        if entry & pte::D == 0 {
            // A later write must miss in the TLB and come back here to set D.
            prot.remove(Prot::WRITE);
        }
        let bit = |b: u64, v: u8| if entry & b != 0 { v } else { 0 };
        Ok(PageWalk {
            paddr: leaf.frame | (self.addr & (leaf.size.bytes() - 1)),
            page_size: leaf.size,
            prot,
            global: self.regs.cr4 & CR4_PGE != 0 && entry & pte::G != 0,
            pat_index: bit(leaf.pat_bit, 4) | bit(pte::PCD, 2) | bit(pte::PWT, 1),
        })
    }

    /// Every kind of access the combined rights allow for this walk's privilege (SDM "Determination of Access
    /// Rights").
    fn allowed(&self, rights: Rights) -> Prot {
        let cr4 = self.regs.cr4;
        let mut prot = Prot::empty();
        match self.privilege {
            Privilege::User => {
                if rights.user {
                    prot |= Prot::READ;
                    prot.set(Prot::WRITE, rights.writable);
                    prot.set(Prot::EXEC, !rights.no_exec);
                }
            }
            Privilege::Supervisor { .. } | Privilege::Implicit => {
                let ac = matches!(self.privilege, Privilege::Supervisor { ac: true });
                // SMAP: data accesses to user pages only with EFLAGS.AC, and never for implicit accesses.
                let smap_denies = rights.user && cr4 & CR4_SMAP != 0 && !ac;
                if !smap_denies {
                    prot |= Prot::READ;
                    // CR0.WP = 0: supervisor writes ignore R/W (user or supervisor page alike).
                    prot.set(Prot::WRITE, rights.writable || self.regs.cr0 & CR0_WP == 0);
                }
                // SMEP: no fetches from user pages. SMAP does not concern fetches.
                let smep_denies = rights.user && cr4 & CR4_SMEP != 0;
                prot.set(Prot::EXEC, !(rights.no_exec || smep_denies));
            }
        }
        prot
    }

    /// The page fault for `kind`, with the error code of this access.
    fn fault(&self, kind: Fault) -> PageFault {
        let mut code = match kind {
            Fault::NotPresent => 0,
            Fault::Reserved => pf_err::P | pf_err::RSVD,
            Fault::Protection => pf_err::P,
        };
        if self.access == Access::Write {
            code |= pf_err::W;
        }
        if self.privilege == Privilege::User {
            code |= pf_err::U;
        }
        let cr4 = self.regs.cr4;
        if self.access == Access::Fetch && (cr4 & CR4_SMEP != 0 || (cr4 & CR4_PAE != 0 && self.regs.nxe())) {
            code |= pf_err::I;
        }
        PageFault {
            addr: self.addr,
            error_code: code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxphyaddr_matches_cpuid() {
        assert_eq!(crate::cpuid::cpuid(0x8000_0008, 0).eax & 0xff, MAXPHYADDR);
    }

    #[test]
    fn reserved_masks() {
        assert_eq!(PDE32_4M_RSVD, 1 << 21);
        assert_eq!(RSVD_HIGH_LONG, 0x000f_0000_0000_0000);
        assert_eq!(RSVD_HIGH_PAE, 0x7fff_0000_0000_0000);
        assert_eq!(RSVD_PDPTE_PAE, 0xffff_0000_0000_01e6);
        assert_eq!(ADDR_MASK, 0x0000_ffff_ffff_f000);
    }
}
