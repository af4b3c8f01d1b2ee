//! The guest physical address space: RAM blocks and MMIO devices mapped as regions, and dispatch of
//! physical accesses to them.
//!
//! Overlap works like QEMU's memory API: every address belongs to the region with the highest priority that
//! covers it, and among equal priorities to the one mapped last. So a device mapped over RAM (the VGA window
//! over low memory, a PCI BAR) hides the RAM below it only where it lies, and unmapping it uncovers the RAM
//! again. The winner of every address is precomputed into a sorted "flat view" on each change, so dispatch
//! is a binary search. Addresses that no region covers are unassigned: reads return all ones and writes are
//! ignored, QEMU's default.
//!
//! The "holds translated code" bitmap lives here too, one bit per page of each RAM block, so aliases of the
//! same RAM at two physical addresses share it. The software TLB and the slow paths are in [`crate::SoftMmu`].

use core::fmt;

use rqemu_include::{GuestPhysAddr, TARGET_PAGE_BITS, TARGET_PAGE_MASK, TARGET_PAGE_SIZE};

use crate::device::{size_mask, MmioDevice};
use crate::ram::RamBlock;

/// Names a RAM block added with [`AddressSpace::add_ram`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RamId(pub(crate) usize);

/// Names a mapped region, to unmap it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegionId(usize);

/// What a region maps.
pub enum Backing {
    /// `size` bytes of a RAM block starting at `offset` in it.
    Ram {
        /// The block.
        block: RamId,
        /// Offset of the region's first byte in the block.
        offset: u64,
    },
    /// Read-only memory: like [`Backing::Ram`] for reads and fetches, writes are dropped (QEMU's ROM
    /// regions). The guest cannot change it; loaders fill the block directly ([`RamBlock::write`]).
    Rom {
        /// The block.
        block: RamId,
        /// Offset of the region's first byte in the block.
        offset: u64,
    },
    /// A device; accesses get the offset from the region's base.
    Mmio(Box<dyn MmioDevice>),
}

impl fmt::Debug for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backing::Ram { block, offset } => write!(f, "Ram({block:?} + {offset:#x})"),
            Backing::Rom { block, offset } => write!(f, "Rom({block:?} + {offset:#x})"),
            Backing::Mmio(_) => write!(f, "Mmio"),
        }
    }
}

/// Why a region could not be mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapError {
    /// A region of zero bytes.
    Empty,
    /// `base + size` goes past the top of the 64-bit address space.
    Wraps,
    /// The RAM id was not returned by this address space.
    UnknownRam,
    /// `offset + size` goes past the end of the RAM block.
    RamTooSmall,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            MapError::Empty => "region of zero bytes",
            MapError::Wraps => "region wraps past the end of the address space",
            MapError::UnknownRam => "unknown RAM block",
            MapError::RamTooSmall => "region extends past the end of its RAM block",
        };
        f.write_str(s)
    }
}

impl std::error::Error for MapError {}

struct Region {
    base: u64,
    /// Last address covered (inclusive, so a region may end at the top of the address space).
    last: u64,
    priority: i32,
    backing: Backing,
}

/// A run of addresses that all dispatch to one region.
#[derive(Clone, Copy, Debug)]
struct FlatRange {
    start: u64,
    last: u64,
    region: usize,
}

struct RamEntry {
    block: RamBlock,
    /// One bit per page of the block: the page holds translated code.
    code: Vec<u64>,
}

/// Where one physical address goes.
enum Target<'a> {
    /// RAM at this offset of this block, with this many bytes of the flat range left from there, and
    /// whether it is writable (not ROM).
    Ram(&'a RamEntry, u64, u64, bool),
    /// A device at this offset, with this many bytes left.
    Mmio(usize, u64, u64),
    /// Nothing.
    Unassigned,
}

/// A guest RAM page as the TLB needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RamPage {
    /// Host address of the page's first byte.
    pub host: usize,
    /// Whether guest writes reach it (false for ROM).
    pub writable: bool,
}

/// The guest physical address space.
#[derive(Default)]
pub struct AddressSpace {
    ram: Vec<RamEntry>,
    /// Indexed by [`RegionId`]; unmapped slots are `None` (ids are never reused).
    regions: Vec<Option<Region>>,
    flat: Vec<FlatRange>,
}

impl fmt::Debug for AddressSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for r in &self.flat {
            if let Some(region) = &self.regions[r.region] {
                l.entry(&format_args!("{:#x}..={:#x} {:?}", r.start, r.last, region.backing));
            }
        }
        l.finish()
    }
}

impl AddressSpace {
    /// An empty address space: every access is unassigned.
    pub fn new() -> AddressSpace {
        AddressSpace::default()
    }

    /// Takes ownership of a RAM block; map it with [`AddressSpace::map_ram`].
    pub fn add_ram(&mut self, block: RamBlock) -> RamId {
        let pages = block.size().div_ceil(TARGET_PAGE_SIZE);
        let words = usize::try_from(pages.div_ceil(64)).unwrap_or(0);
        self.ram.push(RamEntry {
            block,
            code: vec![0; words],
        });
        RamId(self.ram.len() - 1)
    }

    /// The block behind `id`.
    pub fn ram(&self, id: RamId) -> Option<&RamBlock> {
        self.ram.get(id.0).map(|r| &r.block)
    }

    /// Maps `size` bytes of RAM block `block` from `offset` at `base`, with priority 0.
    pub fn map_ram(&mut self, base: u64, size: u64, block: RamId, offset: u64) -> Result<RegionId, MapError> {
        self.map(base, size, Backing::Ram { block, offset }, 0)
    }

    /// Maps `size` bytes of RAM block `block` from `offset` at `base` as ROM (writes dropped), priority 0.
    pub fn map_rom(&mut self, base: u64, size: u64, block: RamId, offset: u64) -> Result<RegionId, MapError> {
        self.map(base, size, Backing::Rom { block, offset }, 0)
    }

    /// Maps a device over `size` bytes at `base`, with priority 0.
    pub fn map_mmio(&mut self, base: u64, size: u64, device: Box<dyn MmioDevice>) -> Result<RegionId, MapError> {
        self.map(base, size, Backing::Mmio(device), 0)
    }

    /// Maps a region. Where regions overlap, the higher `priority` wins, and among equal priorities the one
    /// mapped last.
    pub fn map(&mut self, base: u64, size: u64, backing: Backing, priority: i32) -> Result<RegionId, MapError> {
        if size == 0 {
            return Err(MapError::Empty);
        }
        let last = base.checked_add(size - 1).ok_or(MapError::Wraps)?;
        if let Backing::Ram { block, offset } | Backing::Rom { block, offset } = &backing {
            let ram = self.ram.get(block.0).ok_or(MapError::UnknownRam)?;
            let end = offset.checked_add(size).ok_or(MapError::RamTooSmall)?;
            if end > ram.block.size() {
                return Err(MapError::RamTooSmall);
            }
        }
        self.regions.push(Some(Region {
            base,
            last,
            priority,
            backing,
        }));
        self.rebuild();
        Ok(RegionId(self.regions.len() - 1))
    }

    /// Unmaps a region and gives back what it mapped (the device, to reuse it); `None` if it is not mapped.
    pub fn unmap(&mut self, id: RegionId) -> Option<Backing> {
        let region = self.regions.get_mut(id.0)?.take()?;
        self.rebuild();
        Some(region.backing)
    }

    /// Recomputes the flat view: for every interval between region boundaries, the winning region.
    fn rebuild(&mut self) {
        let mut points: Vec<u64> = Vec::new();
        for r in self.regions.iter().flatten() {
            points.push(r.base);
            if let Some(next) = r.last.checked_add(1) {
                points.push(next);
            }
        }
        points.sort_unstable();
        points.dedup();
        let mut flat: Vec<FlatRange> = Vec::new();
        for (i, &start) in points.iter().enumerate() {
            let last = points.get(i + 1).map_or(u64::MAX, |n| n - 1);
            // Highest priority, then latest mapped (the larger index).
            let winner = self
                .regions
                .iter()
                .enumerate()
                .filter_map(|(idx, r)| r.as_ref().map(|r| (idx, r)))
                .filter(|(_, r)| r.base <= start && start <= r.last)
                .max_by_key(|(idx, r)| (r.priority, *idx))
                .map(|(idx, _)| idx);
            let Some(region) = winner else { continue };
            match flat.last_mut() {
                Some(prev) if prev.region == region && prev.last.wrapping_add(1) == start => prev.last = last,
                _ => flat.push(FlatRange { start, last, region }),
            }
        }
        self.flat = flat;
    }

    fn find(&self, addr: u64) -> Option<&FlatRange> {
        let i = self.flat.partition_point(|r| r.start <= addr).checked_sub(1)?;
        let r = &self.flat[i];
        (addr <= r.last).then_some(r)
    }

    fn target(&self, addr: u64) -> Target<'_> {
        let Some(fr) = self.find(addr) else {
            return Target::Unassigned;
        };
        let Some(region) = &self.regions[fr.region] else {
            return Target::Unassigned;
        };
        let left = fr.last - addr; // bytes after `addr` in the range
        let off = addr - region.base;
        match &region.backing {
            Backing::Ram { block, offset } | Backing::Rom { block, offset } => match self.ram.get(block.0) {
                Some(ram) => Target::Ram(ram, offset + off, left, matches!(region.backing, Backing::Ram { .. })),
                None => Target::Unassigned,
            },
            Backing::Mmio(_) => Target::Mmio(fr.region, off, left),
        }
    }

    fn device(&mut self, region: usize) -> Option<&mut dyn MmioDevice> {
        match self.regions.get_mut(region)?.as_mut()?.backing {
            Backing::Mmio(ref mut d) => Some(&mut **d),
            Backing::Ram { .. } | Backing::Rom { .. } => None,
        }
    }

    /// Reads `size` bytes (1, 2, 4 or 8) at `addr` as a little-endian value. An access that spans two regions
    /// is split into bytes; unassigned bytes read as 0xff.
    pub fn read(&mut self, addr: GuestPhysAddr, size: u32) -> u64 {
        let size = size.clamp(1, 8);
        match self.target(addr) {
            Target::Ram(ram, off, left, _) if left >= u64::from(size - 1) => {
                let mut b = [0u8; 8];
                if ram.block.read(off, &mut b[..size as usize]).is_err() {
                    return size_mask(size);
                }
                u64::from_le_bytes(b)
            }
            Target::Mmio(region, off, left) if left >= u64::from(size - 1) => match self.device(region) {
                Some(d) => d.read(off, size) & size_mask(size),
                None => size_mask(size),
            },
            Target::Unassigned if size == 1 => 0xff,
            _ => (0..size).fold(0, |v, i| v | self.read(addr.wrapping_add(u64::from(i)), 1) << (8 * i)),
        }
    }

    /// Writes the low `size` bytes (1, 2, 4 or 8) of `value` at `addr`, little-endian. Split into bytes when
    /// the access spans two regions; unassigned bytes are dropped.
    pub fn write(&mut self, addr: GuestPhysAddr, size: u32, value: u64) {
        let size = size.clamp(1, 8);
        match self.target(addr) {
            Target::Ram(_, _, left, false) if left >= u64::from(size - 1) => {}
            Target::Ram(ram, off, left, true) if left >= u64::from(size - 1) => {
                // In range: the flat range lies inside the block (checked when mapped).
                let _ = ram.block.write(off, &value.to_le_bytes()[..size as usize]);
            }
            Target::Mmio(region, off, left) if left >= u64::from(size - 1) => {
                if let Some(d) = self.device(region) {
                    d.write(off, size, value & size_mask(size));
                }
            }
            Target::Unassigned if size == 1 => {}
            _ => {
                for i in 0..size {
                    self.write(addr.wrapping_add(u64::from(i)), 1, value >> (8 * i));
                }
            }
        }
    }

    /// Copies guest physical memory into `buf` (loaders, DMA); MMIO is read byte by byte.
    pub fn read_bytes(&mut self, addr: GuestPhysAddr, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.read(addr.wrapping_add(i as u64), 1) as u8;
        }
    }

    /// Copies `data` into guest physical memory (loaders, DMA). It does not consult the code bitmap: load
    /// images before translating, or invalidate afterwards.
    pub fn write_bytes(&mut self, addr: GuestPhysAddr, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            self.write(addr.wrapping_add(i as u64), 1, u64::from(b));
        }
    }

    /// The page at `page` (page-aligned) when all of it is RAM of one region: the TLB maps such pages
    /// directly. Pages that are partly or wholly MMIO or unassigned go through dispatch.
    pub(crate) fn ram_page(&self, page: GuestPhysAddr) -> Option<RamPage> {
        match self.target(page) {
            Target::Ram(ram, off, left, writable) if left >= TARGET_PAGE_SIZE - 1 => {
                let ptr = ram.block.range_ptr(off, TARGET_PAGE_SIZE as usize).ok()?;
                Some(RamPage {
                    host: ptr as usize,
                    writable,
                })
            }
            _ => None,
        }
    }

    /// The code bit of the RAM page holding `addr`: (block index, word, bit), or `None` for non-RAM.
    fn code_bit(&self, addr: GuestPhysAddr) -> Option<(usize, usize, u64)> {
        let Target::Ram(ram, off, _, _) = self.target(addr) else {
            return None;
        };
        let block = self.ram.iter().position(|r| core::ptr::eq(r, ram))?;
        let page = usize::try_from(off >> TARGET_PAGE_BITS).ok()?;
        Some((block, page / 64, 1 << (page % 64)))
    }

    /// Marks the RAM page holding `addr` as holding translated code; returns whether it was newly marked.
    /// Non-RAM addresses are ignored (their accesses always take the slow path anyway).
    pub fn set_code_page(&mut self, addr: GuestPhysAddr) -> bool {
        let Some((b, w, bit)) = self.code_bit(addr & TARGET_PAGE_MASK) else {
            return false;
        };
        let word = &mut self.ram[b].code[w];
        let new = *word & bit == 0;
        *word |= bit;
        new
    }

    /// Clears the code mark of the RAM page holding `addr`.
    pub fn clear_code_page(&mut self, addr: GuestPhysAddr) {
        if let Some((b, w, bit)) = self.code_bit(addr & TARGET_PAGE_MASK) {
            self.ram[b].code[w] &= !bit;
        }
    }

    /// Whether the RAM page holding `addr` is marked as holding translated code.
    pub fn is_code_page(&self, addr: GuestPhysAddr) -> bool {
        self.code_bit(addr & TARGET_PAGE_MASK)
            .is_some_and(|(b, w, bit)| self.ram[b].code[w] & bit != 0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A device that records accesses and answers reads with `base | offset`.
    #[derive(Default)]
    pub(crate) struct Probe {
        pub base: u64,
        pub log: Vec<(char, u64, u32, u64)>,
    }

    impl MmioDevice for Probe {
        fn read(&mut self, offset: u64, size: u32) -> u64 {
            self.log.push(('r', offset, size, 0));
            self.base | offset
        }
        fn write(&mut self, offset: u64, size: u32, value: u64) {
            self.log.push(('w', offset, size, value));
        }
    }

    pub(crate) fn probe(base: u64) -> Rc<RefCell<Probe>> {
        Rc::new(RefCell::new(Probe { base, log: Vec::new() }))
    }

    fn space_with_ram(size: u64) -> (AddressSpace, RamId) {
        let mut s = AddressSpace::new();
        let id = s.add_ram(RamBlock::new(size).unwrap());
        s.map_ram(0, size, id, 0).unwrap();
        (s, id)
    }

    #[test]
    fn ram_read_write_little_endian() {
        let (mut s, _) = space_with_ram(0x4000);
        s.write(0x100, 4, 0x1122_3344);
        assert_eq!(s.read(0x100, 1), 0x44);
        assert_eq!(s.read(0x100, 8), 0x1122_3344);
        assert_eq!(s.read(0x102, 2), 0x1122);
    }

    #[test]
    fn mmio_dispatch_gets_offset_and_size() {
        let (mut s, _) = space_with_ram(0x4000);
        let dev = probe(0xab00);
        s.map_mmio(0x10_0000, 0x100, Box::new(dev.clone())).unwrap();
        assert_eq!(s.read(0x10_0010, 4), 0xab10);
        s.write(0x10_0020, 2, 0x1_2345);
        assert_eq!(dev.borrow().log, vec![('r', 0x10, 4, 0), ('w', 0x20, 2, 0x2345)]);
    }

    #[test]
    fn mmio_read_is_masked_to_size() {
        let mut s = AddressSpace::new();
        s.map_mmio(0x1000, 0x100, Box::new(probe(0xffff_0000))).unwrap();
        assert_eq!(s.read(0x1001, 1), 0x01);
    }

    #[test]
    fn unassigned_reads_ones_and_ignores_writes() {
        let (mut s, _) = space_with_ram(0x1000);
        assert_eq!(s.read(0x8000, 4), 0xffff_ffff);
        assert_eq!(s.read(0x8000, 8), u64::MAX);
        s.write(0x8000, 8, 0);
        assert_eq!(s.read(0x8000, 2), 0xffff);
    }

    #[test]
    fn access_spanning_ram_and_unassigned_is_split() {
        let (mut s, _) = space_with_ram(0x1000);
        s.write(0xffe, 2, 0x2211);
        assert_eq!(s.read(0xffe, 4), 0xffff_2211);
    }

    #[test]
    fn later_region_wins_overlap_and_unmap_uncovers() {
        let (mut s, _) = space_with_ram(0x10_0000);
        s.write(0xa_0000, 1, 0x55);
        let vga = s.map_mmio(0xa_0000, 0x2_0000, Box::new(probe(0x100_0000))).unwrap();
        assert_eq!(s.read(0xa_0000, 4), 0x100_0000);
        assert_eq!(s.read(0x9_ffff, 1), 0);
        assert!(s.unmap(vga).is_some());
        assert_eq!(s.read(0xa_0000, 1), 0x55);
        assert!(s.unmap(vga).is_none());
    }

    #[test]
    fn higher_priority_wins_over_later_region() {
        let (mut s, _) = space_with_ram(0x2000);
        s.map(0x1000, 0x1000, Backing::Mmio(Box::new(probe(0x7700))), 1)
            .unwrap();
        s.map_mmio(0x1000, 0x10, Box::new(probe(0x8800))).unwrap();
        assert_eq!(s.read(0x1004, 2), 0x7704);
    }

    #[test]
    fn rom_reads_like_ram_and_drops_writes() {
        let (mut s, id) = space_with_ram(0x2000);
        s.ram(id).unwrap().write(0x1000, &[0xea, 0x5b]).unwrap();
        s.map_rom(0xffff_f000, 0x1000, id, 0x1000).unwrap();
        assert_eq!(s.read(0xffff_f000, 2), 0x5bea);
        s.write(0xffff_f000, 2, 0);
        assert_eq!(s.read(0xffff_f000, 2), 0x5bea);
        assert_eq!(s.ram_page(0xffff_f000).map(|p| p.writable), Some(false));
    }

    #[test]
    fn ram_alias_at_offset() {
        let (mut s, id) = space_with_ram(0x2000);
        s.map_ram(0x1_0000, 0x1000, id, 0x1000).unwrap();
        s.write(0x1_0008, 1, 0x99);
        assert_eq!(s.read(0x1008, 1), 0x99);
    }

    #[test]
    fn bad_maps_are_errors() {
        let (mut s, id) = space_with_ram(0x1000);
        assert_eq!(s.map_ram(0, 0, id, 0), Err(MapError::Empty));
        assert_eq!(s.map_ram(u64::MAX, 2, id, 0), Err(MapError::Wraps));
        assert_eq!(s.map_ram(0, 0x1001, id, 0), Err(MapError::RamTooSmall));
        assert_eq!(s.map_ram(0, 1, RamId(9), 0), Err(MapError::UnknownRam));
        assert!(s.map_mmio(u64::MAX, 1, Box::new(probe(0))).is_ok());
        assert_eq!(s.read(u64::MAX, 1), 0, "a device at the very top");
        assert_eq!(s.read(u64::MAX - 1, 2), 0x00ff);
    }

    #[test]
    fn code_bitmap_is_per_ram_page_and_shared_by_aliases() {
        let (mut s, id) = space_with_ram(0x3000);
        s.map_ram(0x10_0000, 0x1000, id, 0x2000).unwrap();
        assert!(s.set_code_page(0x2abc));
        assert!(!s.set_code_page(0x2000));
        assert!(s.is_code_page(0x10_0fff));
        assert!(!s.is_code_page(0x1000));
        s.clear_code_page(0x10_0000);
        assert!(!s.is_code_page(0x2000));
        assert!(!s.set_code_page(0x5000_0000), "not RAM");
    }

    #[test]
    fn ram_page_needs_a_whole_page_of_ram() {
        let (mut s, _) = space_with_ram(0x2000);
        assert!(s.ram_page(0x1000).is_some());
        s.map_mmio(0x1800, 4, Box::new(probe(0))).unwrap();
        assert!(s.ram_page(0x1000).is_none());
        assert!(s.ram_page(0x0).is_some());
        assert!(s.ram_page(0x2000).is_none());
    }
}
