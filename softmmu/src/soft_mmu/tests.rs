//! One test per behaviour of the slow paths and the TLB, on small RAM + MMIO machines.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use rqemu_include::tlb::{tlb_index, TLB_ENTRIES, TLB_INVALID, TLB_MMIO, TLB_NOTDIRTY};

use super::*;
use crate::address_space::tests::{probe, Probe};
use crate::fill::{IdentityFill, Prot, RecordedFault, Translation};
use crate::ram::RamBlock;

const RAM_SIZE: u64 = 0x10_0000;
const MMIO: u64 = 0x1000_0000;
const M0: MmuIdx = match MmuIdx::new(0) {
    Some(m) => m,
    None => unreachable!(),
};
const M1: MmuIdx = match MmuIdx::new(1) {
    Some(m) => m,
    None => unreachable!(),
};

/// 1 MiB of RAM at 0 and a probe device at [`MMIO`].
fn space() -> (AddressSpace, Rc<RefCell<Probe>>) {
    let mut s = AddressSpace::new();
    let id = s.add_ram(RamBlock::new(RAM_SIZE).unwrap());
    s.map_ram(0, RAM_SIZE, id, 0).unwrap();
    let dev = probe(0xd000_0000_0000);
    s.map_mmio(MMIO, 0x2000, Box::new(dev.clone())).unwrap();
    (s, dev)
}

fn identity() -> (SoftMmu<IdentityFill>, Rc<RefCell<Probe>>) {
    let (s, dev) = space();
    (SoftMmu::new(s, IdentityFill::default()), dev)
}

/// A page table for tests: virtual page -> (physical page, prot, page size); misses are faults.
#[derive(Default)]
struct MapFill {
    pages: HashMap<u64, (u64, Prot, u64)>,
    fault: Option<RecordedFault>,
    fills: u32,
}

impl TlbFill for MapFill {
    fn tlb_fill(
        &mut self,
        _space: &mut AddressSpace,
        vaddr: u64,
        access: Access,
        _mmu: MmuIdx,
        probe: bool,
    ) -> Result<Translation, MemFault> {
        self.fills += 1;
        match self.pages.get(&(vaddr & TARGET_PAGE_MASK)) {
            Some(&(p, prot, page_size)) if prot.allows(access) => Ok(Translation {
                paddr: p | (vaddr & !TARGET_PAGE_MASK),
                prot,
                page_size,
            }),
            _ => {
                if !probe {
                    self.fault = Some(RecordedFault {
                        vaddr,
                        access,
                        unaligned: false,
                    });
                }
                Err(MemFault)
            }
        }
    }

    fn unaligned_access(&mut self, vaddr: u64, access: Access, _mmu: MmuIdx) {
        self.fault = Some(RecordedFault {
            vaddr,
            access,
            unaligned: true,
        });
    }
}

fn mapped(pages: &[(u64, u64, Prot)]) -> SoftMmu<MapFill> {
    let mut fill = MapFill::default();
    for &(v, p, prot) in pages {
        fill.pages.insert(v, (p, prot, TARGET_PAGE_SIZE));
    }
    SoftMmu::new(space().0, fill)
}

fn phys(m: &mut SoftMmu<impl TlbFill>, addr: u64, size: u32) -> u64 {
    m.space_mut().read(addr, size)
}

#[test]
fn ram_store_then_load() {
    let (mut m, _) = identity();
    m.store(0x1234, 0x1122_3344_5566_7788, MemOp::LEUQ, M0).unwrap();
    assert_eq!(m.load(0x1234, MemOp::LEUQ, M0), Ok(0x1122_3344_5566_7788));
    assert_eq!(m.load(0x1234, MemOp::UB, M0), Ok(0x88));
    assert_eq!(phys(&mut m, 0x1238, 4), 0x1122_3344);
}

#[test]
fn tlb_hit_does_not_call_the_hook() {
    let (mut m, _) = identity();
    m.load(0x5000, MemOp::LEUL, M0).unwrap();
    m.store(0x5ff8, 1, MemOp::LEUQ, M0).unwrap();
    m.load(0x5010, MemOp::UB, M0).unwrap();
    assert_eq!(m.fill().fills, 1);
    m.load(0x5000, MemOp::UB, M1).unwrap();
    assert_eq!(m.fill().fills, 2, "another MMU index has its own table");
}

#[test]
fn filled_ram_entry_has_tags_and_addend() {
    let (mut m, _) = identity();
    m.load(0x7008, MemOp::LEUL, M1).unwrap();
    let e = m.tlb_entry(M1, 0x7000);
    assert_eq!((e.addr_read, e.addr_write, e.addr_code), (0x7000, 0x7000, 0x7000));
    let host = m.space().ram(crate::RamId(0)).unwrap().host_addr() + 0x7008;
    assert_eq!((0x7008usize).wrapping_add(e.addend), host);
}

#[test]
fn mmio_entry_is_flagged_and_dispatches_each_access() {
    let (mut m, dev) = identity();
    assert_eq!(m.load(MMIO + 8, MemOp::LEUL, M0), Ok(0x8));
    assert_eq!(m.load(MMIO + 8, MemOp::LEUL, M0), Ok(0x8));
    assert_eq!(dev.borrow().log.len(), 2, "no caching of device reads");
    let e = m.tlb_entry(M0, MMIO);
    assert_eq!(e.addr_read & TLB_MMIO, TLB_MMIO);
    assert_eq!(e.addr_write & TLB_MMIO, TLB_MMIO);
}

#[test]
fn mmio_sizes_reach_the_device() {
    let (mut m, dev) = identity();
    for (memop, size) in [(MemOp::UB, 1), (MemOp::LEUW, 2), (MemOp::LEUL, 4), (MemOp::LEUQ, 8)] {
        m.load(MMIO + 0x10, memop, M0).unwrap();
        m.store(MMIO + 0x20, 0x1122_3344_5566_7788, memop, M0).unwrap();
        let log = &dev.borrow().log;
        let mask = crate::device::size_mask(size);
        assert_eq!(
            log[log.len() - 2..],
            [('r', 0x10, size, 0), ('w', 0x20, size, 0x1122_3344_5566_7788 & mask)]
        );
    }
    assert_eq!(m.load(MMIO + 0x10, MemOp::LEUQ, M0), Ok(0xd000_0000_0010));
}

#[test]
fn unassigned_access_reads_ones() {
    let (mut m, _) = identity();
    assert_eq!(m.load(0x8000_0000, MemOp::LEUL, M0), Ok(0xffff_ffff));
    assert_eq!(m.load(0x8000_0000, MemOp::SB, M0), Ok(u64::MAX));
    assert_eq!(m.store(0x8000_0000, 0, MemOp::LEUQ, M0), Ok(()));
    assert_eq!(m.load(0x8000_0000, MemOp::LEUW, M0), Ok(0xffff));
}

#[test]
fn sign_extension_and_byte_swap() {
    let (mut m, _) = identity();
    m.store(0x100, 0x8081_8283, MemOp::LEUL, M0).unwrap();
    assert_eq!(m.load(0x100, MemOp::SB, M0), Ok(0xffff_ffff_ffff_ff83));
    assert_eq!(m.load(0x100, MemOp::LESW, M0), Ok(0xffff_ffff_ffff_8283));
    assert_eq!(m.load(0x100, MemOp::LESL, M0), Ok(0xffff_ffff_8081_8283));
    assert_eq!(m.load(0x100, MemOp::LEUW, M0), Ok(0x8283));
    assert_eq!(m.load(0x100, MemOp::LEUL | MemOp::BSWAP, M0), Ok(0x8382_8180));
    assert_eq!(m.load(0x102, MemOp::LESW | MemOp::BSWAP, M0), Ok(0xffff_ffff_ffff_8180));
    m.store(0x200, 0x0102_0304_0506_0708, MemOp::LEUQ | MemOp::BSWAP, M0)
        .unwrap();
    assert_eq!(phys(&mut m, 0x200, 8), 0x0807_0605_0403_0201);
    m.store(0x300, 0xaabb, MemOp::LEUW | MemOp::BSWAP, M0).unwrap();
    assert_eq!(phys(&mut m, 0x300, 2), 0xbbaa);
}

#[test]
fn unaligned_access_within_a_page() {
    let (mut m, _) = identity();
    m.store(0x1003, 0x1122_3344_5566_7788, MemOp::LEUQ, M0).unwrap();
    assert_eq!(m.load(0x1003, MemOp::LEUQ, M0), Ok(0x1122_3344_5566_7788));
    assert_eq!(m.load(0x1005, MemOp::LEUL, M0), Ok(0x3344_5566));
}

#[test]
fn alignment_requirement_faults_through_the_target() {
    let (mut m, _) = identity();
    let op = MemOp::LEUL | MemOp::ALIGN;
    assert_eq!(m.store(0x1002, 0x1234_5678, op, M0), Err(MemFault));
    assert_eq!(phys(&mut m, 0x1000, 8), 0, "nothing written");
    let f = m.fill().last_fault.unwrap();
    assert_eq!((f.vaddr, f.access, f.unaligned), (0x1002, Access::Write, true));
    assert_eq!(m.load(0x1004, op, M0), Ok(0));
    assert_eq!(m.load(0x1008, MemOp::LEUQ | MemOp::ALIGN_16, M0).unwrap_err(), MemFault);
}

#[test]
fn page_crossing_load_and_store_use_both_translations() {
    // Virtual pages 0x1000 and 0x2000 map to physical pages 0x9000 and 0x3000: not contiguous.
    let rw = Prot::READ | Prot::WRITE;
    let mut m = mapped(&[(0x1000, 0x9000, rw), (0x2000, 0x3000, rw)]);
    m.store(0x1ffd, 0x1122_3344_5566_7788, MemOp::LEUQ, M0).unwrap();
    assert_eq!(phys(&mut m, 0x9ffd, 2), 0x7788);
    assert_eq!(phys(&mut m, 0x9fff, 1), 0x66);
    assert_eq!(phys(&mut m, 0x3000, 8), 0x11_2233_4455);
    assert_eq!(m.load(0x1ffd, MemOp::LEUQ, M0), Ok(0x1122_3344_5566_7788));
    assert_eq!(m.load(0x1fff, MemOp::LESW, M0), Ok(0x5566));
    assert_eq!(m.load(0x1fff, MemOp::LEUW | MemOp::BSWAP, M0), Ok(0x6655));
}

#[test]
fn page_crossing_store_faulting_on_second_page_writes_nothing() {
    let mut m = mapped(&[(0x1000, 0x1000, Prot::all())]);
    assert_eq!(m.store(0x1ffe, u64::MAX, MemOp::LEUL, M0), Err(MemFault));
    assert_eq!(phys(&mut m, 0x1ff8, 8), 0, "no byte written");
    let f = m.fill().fault.unwrap();
    assert_eq!((f.vaddr, f.access), (0x2000, Access::Write), "fault at the second page");
    assert_eq!(m.load(0x1fff, MemOp::LEUW, M0), Err(MemFault));
}

#[test]
fn read_only_page_refuses_writes() {
    let mut m = mapped(&[(0x4000, 0x4000, Prot::READ)]);
    assert_eq!(m.load(0x4000, MemOp::UB, M0), Ok(0));
    assert_eq!(m.tlb_entry(M0, 0x4000).addr_write & TLB_INVALID, TLB_INVALID);
    assert_eq!(m.store(0x4000, 1, MemOp::UB, M0), Err(MemFault));
    assert_eq!(m.fill().fault.map(|f| f.access), Some(Access::Write));
    assert_eq!(phys(&mut m, 0x4000, 1), 0);
}

#[test]
fn flush_page_drops_that_page_in_every_index() {
    let (mut m, _) = identity();
    for mmu in [M0, M1] {
        m.load(0x3000, MemOp::UB, mmu).unwrap();
        m.load(0x5000, MemOp::UB, mmu).unwrap();
    }
    m.flush_page(0x3abc);
    assert_eq!(m.tlb_entry(M0, 0x3000), TlbEntry::EMPTY);
    assert_eq!(m.tlb_entry(M1, 0x3000), TlbEntry::EMPTY);
    assert_eq!(m.tlb_entry(M0, 0x5000).addr_read, 0x5000);
    let fills = m.fill().fills;
    m.load(0x3000, MemOp::UB, M0).unwrap();
    assert_eq!(m.fill().fills, fills + 1);
}

#[test]
fn flush_page_leaves_an_entry_of_another_page_with_the_same_index() {
    let (mut m, _) = identity();
    m.load(0x3000, MemOp::UB, M0).unwrap();
    m.flush_page(0x3000 + (256 << 12));
    assert_eq!(m.tlb_entry(M0, 0x3000).addr_read, 0x3000);
}

#[test]
fn flush_mmu_drops_only_that_index() {
    let (mut m, _) = identity();
    m.load(0x3000, MemOp::UB, M0).unwrap();
    m.load(0x3000, MemOp::UB, M1).unwrap();
    m.flush_mmu(M1);
    assert_eq!(m.tlb_entry(M1, 0x3000), TlbEntry::EMPTY);
    assert_eq!(m.tlb_entry(M0, 0x3000).addr_read, 0x3000);
}

#[test]
fn flush_all_drops_everything() {
    let (mut m, _) = identity();
    m.load(0x3000, MemOp::UB, M0).unwrap();
    m.load(0x4000, MemOp::UB, M1).unwrap();
    m.flush_all();
    assert_eq!(m.tlb_entry(M0, 0x3000), TlbEntry::EMPTY);
    assert_eq!(m.tlb_entry(M1, 0x4000), TlbEntry::EMPTY);
}

#[test]
fn flushing_a_page_inside_a_large_page_flushes_the_index() {
    // One 2 MiB page at virtual 0x4000_0000 -> physical 0 (RAM), held as 4 KiB entries.
    let mut fill = MapFill::default();
    for i in 0..512u64 {
        fill.pages
            .insert(0x4000_0000 + (i << 12), (i << 12, Prot::all(), 2 << 20));
    }
    fill.pages.insert(0x7000, (0x7000, Prot::all(), TARGET_PAGE_SIZE));
    let mut m = SoftMmu::new(space().0, fill);
    m.load(0x4000_1000, MemOp::UB, M0).unwrap();
    m.load(0x4000_5000, MemOp::UB, M0).unwrap();
    m.load(0x7000, MemOp::UB, M0).unwrap();
    m.load(0x4000_1000, MemOp::UB, M1).unwrap();
    m.flush_page(0x8000); // outside the large page: nothing of it goes
    assert_eq!(m.tlb_entry(M0, 0x4000_1000).addr_read, 0x4000_1000);
    // A page of the large page that is not even in the TLB: all of MMU 0 goes (7000 too), MMU 1's as well.
    m.flush_page(0x4010_0000);
    assert_eq!(m.tlb_entry(M0, 0x4000_1000), TlbEntry::EMPTY);
    assert_eq!(m.tlb_entry(M0, 0x4000_5000), TlbEntry::EMPTY);
    assert_eq!(m.tlb_entry(M0, 0x7000), TlbEntry::EMPTY);
    assert_eq!(m.tlb_entry(M1, 0x4000_1000), TlbEntry::EMPTY);
}

#[test]
fn large_page_range_widens_to_cover_two_large_pages() {
    let mut fill = MapFill::default();
    fill.pages.insert(0x4000_0000, (0, Prot::all(), 2 << 20));
    fill.pages.insert(0x4060_0000, (0x1000, Prot::all(), 2 << 20));
    let mut m = SoftMmu::new(space().0, fill);
    m.load(0x4000_0000, MemOp::UB, M0).unwrap();
    m.load(0x4060_0000, MemOp::UB, M0).unwrap();
    m.flush_page(0x4040_0000); // between them: inside the widened range
    assert_eq!(m.tlb_entry(M0, 0x4000_0000), TlbEntry::EMPTY);
    assert_eq!(m.tlb_entry(M0, 0x4060_0000), TlbEntry::EMPTY);
}

#[test]
fn sixteen_byte_memop_is_an_error() {
    let (mut m, _) = identity();
    assert_eq!(m.load(0x1000, MemOp::SIZE_128, M0), Err(MemFault));
    assert_eq!(m.store(0x1000, 0, MemOp::SIZE_128, M0), Err(MemFault));
    assert_eq!(m.fill().last_fault, None);
}

#[test]
fn store_to_code_page_calls_the_hook_before_writing() {
    let (mut m, _) = identity();
    let ram = m.space().ram(crate::RamId(0)).unwrap().host_addr();
    m.store(0x6010, 0xaa, MemOp::UB, M0).unwrap();
    assert_eq!(m.tlb_entry(M0, 0x6000).addr_write, 0x6000);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    m.set_code_write_hook(Box::new(move |paddr, len, _| {
        // The byte is still the old one when the hook runs.
        // SAFETY: the test's RAM block outlives the SoftMmu's calls; 0x6010 is inside it.
        let old = unsafe { *core::ptr::with_exposed_provenance::<u8>(ram + 0x6010) };
        log.borrow_mut().push((paddr, len, old));
        CodeWrite::Keep
    }));
    assert!(m.set_code_page(0x6000));
    assert_eq!(
        m.tlb_entry(M0, 0x6000).addr_write,
        0x6000 | TLB_NOTDIRTY,
        "existing entry marked"
    );
    m.store(0x600f, 0xbbcc, MemOp::LEUW, M0).unwrap();
    m.store(0x7000, 1, MemOp::UB, M0).unwrap();
    assert_eq!(*seen.borrow(), vec![(0x600f, 2, 0xaa)]);
    m.clear_code_page(0x6000);
    assert_eq!(m.tlb_entry(M0, 0x6000).addr_write, 0x6000);
}

#[test]
fn aborted_code_store_writes_nothing_on_either_page() {
    let (mut m, _) = identity();
    m.store(0x6ffe, 0x1122_3344, MemOp::LEUL, M0).unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    m.set_code_write_hook(Box::new(move |paddr, len, abortable| {
        log.borrow_mut().push((paddr, len, abortable));
        // Abort only for the second page, after the first already said yes.
        if paddr >= 0x7000 && abortable {
            CodeWrite::Abort
        } else {
            CodeWrite::Keep
        }
    }));
    m.set_code_page(0x6000);
    m.set_code_page(0x7000);
    assert_eq!(m.store(0x6ffe, 0xaabb_ccdd, MemOp::LEUL, M0), Err(MemFault));
    assert_eq!(m.load(0x6ffe, MemOp::LEUL, M0), Ok(0x1122_3344), "nothing written");
    assert_eq!(*seen.borrow(), vec![(0x6ffe, 2, true), (0x7000, 2, true)]);
    // Writes that do not come from generated code cannot be refused.
    m.write_phys(0x7000, 1, 0x55);
    assert_eq!(seen.borrow().last(), Some(&(0x7000, 1, false)));
    assert_eq!(m.load(0x7000, MemOp::UB, M0), Ok(0x55));
}

#[test]
fn code_hook_answering_clear_clears_the_mark() {
    let (mut m, _) = identity();
    let calls = Rc::new(RefCell::new(0));
    let c = calls.clone();
    m.set_code_write_hook(Box::new(move |_, _, _| {
        *c.borrow_mut() += 1;
        CodeWrite::Clear
    }));
    m.set_code_page(0x6000);
    m.store(0x6000, 1, MemOp::UB, M0).unwrap();
    assert_eq!(
        m.tlb_entry(M0, 0x6000).addr_write & TLB_NOTDIRTY,
        0,
        "filled, then cleared"
    );
    m.store(0x6001, 1, MemOp::UB, M0).unwrap();
    assert_eq!(*calls.borrow(), 1);
    assert!(!m.space().is_code_page(0x6000));
}

#[test]
fn entry_filled_for_a_code_page_is_notdirty() {
    let (mut m, _) = identity();
    m.set_code_page(0x6000);
    m.load(0x6000, MemOp::UB, M0).unwrap();
    let e = m.tlb_entry(M0, 0x6000);
    assert_eq!((e.addr_read, e.addr_write), (0x6000, 0x6000 | TLB_NOTDIRTY));
}

#[test]
fn fetch_code_across_a_page_boundary_into_an_unmapped_page() {
    let mut m = mapped(&[(0x1000, 0x1000, Prot::all())]);
    m.space_mut().write_bytes(0x1ffa, &[1, 2, 3, 4, 5, 6]);
    let mut buf = [0u8; 15];
    let (n, fault) = m.fetch_code(0x1ffa, &mut buf, M0);
    assert_eq!((n, fault), (6, Some(MemFault)));
    assert_eq!(&buf[..6], &[1, 2, 3, 4, 5, 6]);
    assert_eq!(m.fill().fault, None, "a look-ahead page is only probed");
    // The decoder needs byte 6: fetching it records the fault at exactly 0x2000.
    let (n, fault) = m.fetch_code(0x2000, &mut buf[6..], M0);
    assert_eq!((n, fault), (0, Some(MemFault)));
    let f = m.fill().fault.unwrap();
    assert_eq!((f.vaddr, f.access), (0x2000, Access::Fetch));
}

#[test]
fn fetch_code_across_two_mapped_pages() {
    let mut m = mapped(&[(0x1000, 0x5000, Prot::all()), (0x2000, 0x3000, Prot::all())]);
    m.space_mut().write_bytes(0x5ffe, &[0xaa, 0xbb]);
    m.space_mut().write_bytes(0x3000, &[0xcc]);
    let mut buf = [0u8; 3];
    assert_eq!(m.fetch_code(0x1ffe, &mut buf, M0), (3, None));
    assert_eq!(buf, [0xaa, 0xbb, 0xcc]);
}

#[test]
fn fetch_needs_exec_permission() {
    let mut m = mapped(&[(0x1000, 0x1000, Prot::READ)]);
    let mut buf = [0u8; 4];
    assert_eq!(m.fetch_code(0x1000, &mut buf, M0), (0, Some(MemFault)));
    assert_eq!(m.fill().fault.map(|f| f.access), Some(Access::Fetch));
}

#[test]
fn remapping_the_space_flushes_the_tlb() {
    let (mut m, _) = identity();
    m.load(0x3000, MemOp::UB, M0).unwrap();
    let _ = m.space_mut();
    assert_eq!(m.tlb_entry(M0, 0x3000), TlbEntry::EMPTY);
}

#[test]
fn tables_in_a_cpu_state_are_shared_with_the_caller() {
    #[repr(C)]
    struct Cpu {
        regs: [u64; 4],
        tlb: TlbTables,
    }
    let mut cpu = Box::new(Cpu {
        regs: [0; 4],
        tlb: TlbTables::EMPTY,
    });
    cpu.tlb.modes[0][3].addr_read = 0x3000; // stale garbage: emptied on creation
    let ptr = NonNull::from(&mut cpu.tlb);
    // SAFETY: `cpu` outlives `m` and is not referenced while `m` runs.
    let mut m = unsafe { SoftMmu::with_tables(space().0, ptr, IdentityFill::default()) };
    assert_eq!(m.tables_ptr(), ptr);
    m.load(0x3000, MemOp::UB, M1).unwrap();
    drop(m);
    assert_eq!(cpu.tlb.modes[0][3], TlbEntry::EMPTY);
    assert_eq!(cpu.tlb.modes[1][3].addr_read, 0x3000);
}

#[test]
fn scribbled_tables_cannot_redirect_the_slow_path() {
    let (mut m, _) = identity();
    m.load(0x3000, MemOp::UB, M0).unwrap();
    // SAFETY: nothing else references the owned tables.
    unsafe { (*m.tables_ptr().as_ptr()).modes[0][4].addr_read = 0x4000 };
    let fills = m.fill().fills;
    assert_eq!(m.load(0x4000, MemOp::UB, M0), Ok(0));
    assert_eq!(m.fill().fills, fills + 1, "a tag softmmu did not fill is a miss");
}

#[test]
fn fetch_code_from_mmio_with_a_long_window() {
    let (mut m, dev) = identity();
    let mut buf = [0u8; 16];
    assert_eq!(m.fetch_code(MMIO + 0xff0, &mut buf, M0), (16, None));
    assert_eq!(buf[0], 0xf0, "offset 0xff0 answers 0x...0ff0");
    assert!(dev.borrow().log.iter().all(|&(_, _, size, _)| size == 1));
}

#[test]
fn code_mark_set_after_fill_reaches_the_slow_path() {
    let (mut m, _) = identity();
    let calls = Rc::new(RefCell::new(0));
    let c = calls.clone();
    m.set_code_write_hook(Box::new(move |_, _, _| {
        *c.borrow_mut() += 1;
        CodeWrite::Keep
    }));
    m.store(0x6000, 1, MemOp::UB, M0).unwrap();
    m.store(0x6000, 1, MemOp::UB, M1).unwrap();
    m.set_code_page(0x6000);
    m.store(0x6000, 2, MemOp::UB, M0).unwrap();
    m.store(0x6000, 2, MemOp::UB, M1).unwrap();
    assert_eq!(*calls.borrow(), 2);
}

#[test]
fn code_paddr_translates_for_fetch() {
    let mut m = mapped(&[(0x1000, 0x9000, Prot::EXEC), (0x2000, 0x3000, Prot::READ)]);
    assert_eq!(m.code_paddr(0x1abc, M0), Ok(0x9abc));
    assert_eq!(m.code_paddr(0x2000, M0), Err(MemFault));
    assert_eq!(
        m.fill().fault.map(|f| (f.vaddr, f.access)),
        Some((0x2000, Access::Fetch))
    );
}

#[test]
fn probe_access_faults_at_the_first_untranslatable_page() {
    let rw = Prot::READ | Prot::WRITE;
    let mut m = mapped(&[(0x1000, 0x1000, rw), (0x2000, 0x2000, rw)]);
    assert_eq!(m.probe_access(0x1f00, 0x1100, Access::Write, M0), Ok(()));
    assert_eq!(m.probe_access(0x1f00, 0x1101, Access::Write, M0), Err(MemFault));
    assert_eq!(m.fill().fault.map(|f| f.vaddr), Some(0x3000));
    assert_eq!(m.probe_access(0x2ff0, 0, Access::Write, M0), Ok(()));
    assert_eq!(m.probe_access(0x4010, 4, Access::Read, M0), Err(MemFault));
    assert_eq!(
        m.fill().fault.map(|f| f.vaddr),
        Some(0x4010),
        "the access's own address on its first page"
    );
}

#[test]
fn rom_page_reads_fast_and_drops_writes() {
    let (mut s, _) = space();
    let rom = s.add_ram(RamBlock::new(0x1000).unwrap());
    s.ram(rom).unwrap().write(0, &[0x90, 0xf4]).unwrap();
    s.map_rom(0xffff_f000, 0x1000, rom, 0).unwrap();
    let mut m = SoftMmu::new(s, IdentityFill::default());
    assert_eq!(m.load(0xffff_f000, MemOp::LEUW, M0), Ok(0xf490));
    let e = m.tlb_entry(M0, 0xffff_f000);
    assert_eq!((e.addr_read, e.addr_write), (0xffff_f000, 0xffff_f000 | TLB_MMIO));
    assert_eq!(m.store(0xffff_f000, 0, MemOp::LEUW, M0), Ok(()));
    assert_eq!(m.load(0xffff_f000, MemOp::LEUW, M0), Ok(0xf490));
    let mut buf = [0u8; 2];
    assert_eq!(m.fetch_code(0xffff_f000, &mut buf, M0), (2, None));
    assert_eq!(buf, [0x90, 0xf4]);
}

/// Two virtual pages with the same TLB index, [`ALIAS_A`] -> physical 0x3000 and [`ALIAS_B`] -> 0x4000 (RAM).
const ALIAS_A: u64 = 0x3000;
const ALIAS_B: u64 = 0x3000 + ((TLB_ENTRIES as u64) << 12);

fn aliased() -> SoftMmu<MapFill> {
    mapped(&[(ALIAS_A, 0x3000, Prot::all()), (ALIAS_B, 0x4000, Prot::all())])
}

#[test]
fn aliasing_pages_alternate_through_the_victim_tlb_without_refills() {
    let mut m = aliased();
    for i in 0..10u64 {
        m.load(ALIAS_A + 8, MemOp::LEUQ, M0).unwrap();
        assert_eq!(m.tlb_entry(M0, ALIAS_A).addr_read, ALIAS_A, "swapped into the table");
        m.store(ALIAS_B + 8, i, MemOp::LEUQ, M0).unwrap();
        assert_eq!(m.tlb_entry(M0, ALIAS_B).addr_write, ALIAS_B, "swapped into the table");
    }
    assert_eq!(m.fill().fills, 2, "one fill per page, then victim hits");
    assert_eq!(phys(&mut m, 0x4008, 8), 9);
}

#[test]
fn flush_page_drops_a_victim_entry() {
    let mut m = aliased();
    m.load(ALIAS_A, MemOp::UB, M0).unwrap();
    m.load(ALIAS_B, MemOp::UB, M0).unwrap(); // A is now a victim
    m.flush_page(ALIAS_A);
    assert_eq!(m.tlb_entry(M0, ALIAS_B).addr_read, ALIAS_B, "B is another page");
    m.load(ALIAS_A, MemOp::UB, M0).unwrap();
    assert_eq!(m.fill().fills, 3, "A refilled through the hook");
    m.load(ALIAS_B, MemOp::UB, M0).unwrap();
    assert_eq!(m.fill().fills, 3, "B was kept (now a victim)");
}

#[test]
fn flush_mmu_drops_that_index_victims() {
    let mut m = aliased();
    for mmu in [M0, M1] {
        m.load(ALIAS_A, MemOp::UB, mmu).unwrap();
        m.load(ALIAS_B, MemOp::UB, mmu).unwrap();
    }
    m.flush_mmu(M1);
    m.load(ALIAS_A, MemOp::UB, M0).unwrap();
    assert_eq!(m.fill().fills, 4, "MMU 0's victim stays");
    m.load(ALIAS_A, MemOp::UB, M1).unwrap();
    assert_eq!(m.fill().fills, 5, "MMU 1's victim is gone");
}

#[test]
fn flush_all_drops_victims() {
    let mut m = aliased();
    for mmu in [M0, M1] {
        m.load(ALIAS_A, MemOp::UB, mmu).unwrap();
        m.load(ALIAS_B, MemOp::UB, mmu).unwrap();
    }
    m.flush_all();
    m.load(ALIAS_A, MemOp::UB, M0).unwrap();
    m.load(ALIAS_A, MemOp::UB, M1).unwrap();
    assert_eq!(m.fill().fills, 6);
}

#[test]
fn victim_entry_of_a_code_page_keeps_notdirty() {
    let mut m = aliased();
    let calls = Rc::new(RefCell::new(Vec::new()));
    let log = calls.clone();
    m.set_code_write_hook(Box::new(move |paddr, _, _| {
        log.borrow_mut().push(paddr);
        CodeWrite::Keep
    }));
    // Marked before the fill: the record carries the mark through eviction and swap back.
    m.set_code_page(0x3000);
    m.load(ALIAS_A, MemOp::UB, M0).unwrap();
    m.load(ALIAS_B, MemOp::UB, M0).unwrap();
    m.store(ALIAS_A + 1, 1, MemOp::UB, M0).unwrap();
    assert_eq!(m.tlb_entry(M0, ALIAS_A).addr_write, ALIAS_A | TLB_NOTDIRTY);
    // Marked while the page is a victim: the mark reaches the victim record too.
    m.load(ALIAS_A, MemOp::UB, M0).unwrap();
    m.load(ALIAS_B, MemOp::UB, M0).unwrap(); // B in the table, A a victim
    m.store(ALIAS_A, 1, MemOp::UB, M0).unwrap(); // A in the table, B a victim
    m.set_code_page(0x4000);
    m.load(ALIAS_B, MemOp::UB, M0).unwrap();
    assert_eq!(m.tlb_entry(M0, ALIAS_B).addr_write, ALIAS_B | TLB_NOTDIRTY);
    m.store(ALIAS_B + 2, 1, MemOp::UB, M0).unwrap();
    assert_eq!(m.fill().fills, 2);
    assert_eq!(*calls.borrow(), vec![0x3001, 0x3000, 0x4002]);
}

#[test]
fn scribbled_table_cannot_redirect_through_a_victim_swap() {
    let mut m = aliased();
    let ram = m.space().ram(crate::RamId(0)).unwrap().host_addr();
    m.space_mut().write(0x3000, 8, 0xaaaa);
    m.space_mut().write(0x4000, 8, 0xbbbb);
    m.load(ALIAS_A, MemOp::UB, M0).unwrap();
    // B in the table, A a victim.
    m.load(ALIAS_B, MemOp::UB, M0).unwrap();
    // Make B's entry claim to be A's page, pointing at B's physical page.
    let idx = tlb_index(ALIAS_A);
    // SAFETY: nothing else references the owned tables.
    unsafe {
        let e = &mut (*m.tables_ptr().as_ptr()).modes[0][idx];
        e.addr_read = ALIAS_A;
        e.addend = (ram + 0x4000).wrapping_sub(ALIAS_A as usize);
    }
    assert_eq!(
        m.load(ALIAS_A, MemOp::LEUQ, M0),
        Ok(0xaaaa),
        "the victim's record, not the table"
    );
    let e = m.tlb_entry(M0, ALIAS_A);
    assert_eq!(e.addr_read, ALIAS_A);
    assert_eq!(
        e.addend,
        (ram + 0x3000).wrapping_sub(ALIAS_A as usize),
        "rebuilt from the record"
    );
    // B's record went to the victim TLB from softmmu's side, not from the scribbled bytes.
    assert_eq!(m.load(ALIAS_B, MemOp::LEUQ, M0), Ok(0xbbbb));
    assert_eq!(
        m.tlb_entry(M0, ALIAS_B).addend,
        (ram + 0x4000).wrapping_sub(ALIAS_B as usize)
    );
    assert_eq!(m.fill().fills, 2);
}

#[test]
fn physical_writes_call_the_code_hook_per_page_and_write_through() {
    let (mut m, _) = identity();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    m.set_code_write_hook(Box::new(move |paddr, len, _| {
        log.borrow_mut().push((paddr, len));
        CodeWrite::Keep
    }));
    m.set_code_page(0x6000);
    m.set_code_page(0x7000);
    // Crossing from one code page into the next: one call per page, with the bytes on that page.
    m.write_phys(0x6ffe, 4, 0x4433_2211);
    // A page without code: no call.
    m.write_phys(0x9000, 8, u64::MAX);
    assert_eq!(*seen.borrow(), vec![(0x6ffe, 2), (0x7000, 2)]);
    assert_eq!(m.space_mut().read(0x6ffe, 4), 0x4433_2211);
    assert_eq!(m.space_mut().read(0x9000, 8), u64::MAX);
}
