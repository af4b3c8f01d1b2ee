//! The software-TLB entry layout that softmmu fills and that backends inline into generated code.
//!
//! One entry maps one guest virtual page for one MMU index. Each tag holds the page address of the entry for
//! that kind of access, with flag bits below [`crate::TARGET_PAGE_BITS`] that force the slow path. The fast
//! path of a guest access of `size` bytes with required alignment `align` (see [`crate::MemOp`]) is:
//!
//! ```text
//! index = (vaddr >> TARGET_PAGE_BITS) & (TLB_ENTRIES - 1)
//! probe = (vaddr + size - align) & (TARGET_PAGE_MASK | (align - 1))   // size >= align; see below
//! if probe == tag(entry, access) { host = vaddr as usize + entry.addend } else { slow path }
//! ```
//!
//! Adding `size - align` makes an access that crosses a page boundary probe the next page, which never matches;
//! keeping the low `align - 1` bits makes a misaligned access miss. Flag bits in a tag never survive the probe
//! mask, so a flagged tag always misses. When `align > size` use `probe = vaddr & (TARGET_PAGE_MASK | (align-1))`.

use core::mem::{offset_of, size_of};

/// log2 of the number of entries per MMU index.
pub const TLB_ENTRIES_BITS: u32 = 8;

/// Entries per MMU index.
pub const TLB_ENTRIES: usize = 1 << TLB_ENTRIES_BITS;

/// Tag flag: the entry is empty. The all-ones tag of an empty entry includes it.
pub const TLB_INVALID: u64 = 1 << 11;
/// Tag flag: the page is MMIO; every access takes the slow path to reach the device.
pub const TLB_MMIO: u64 = 1 << 10;
/// Tag flag: the page holds translated code; writes take the slow path to invalidate it first.
pub const TLB_NOTDIRTY: u64 = 1 << 9;
/// Tag flag: watchpoint or other per-access check; always slow path.
pub const TLB_CHECK: u64 = 1 << 8;

/// One software-TLB entry. `repr(C)` because backends read it from generated code by offset.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbEntry {
    /// Tag for data reads.
    pub addr_read: u64,
    /// Tag for data writes.
    pub addr_write: u64,
    /// Tag for instruction fetch.
    pub addr_code: u64,
    /// Added to a guest virtual address in this page to get the host address.
    pub addend: usize,
}

impl TlbEntry {
    /// An entry that matches nothing.
    pub const EMPTY: TlbEntry = TlbEntry {
        addr_read: u64::MAX,
        addr_write: u64::MAX,
        addr_code: u64::MAX,
        addend: 0,
    };
}

impl Default for TlbEntry {
    fn default() -> Self {
        TlbEntry::EMPTY
    }
}

/// Byte offset of [`TlbEntry::addr_read`].
pub const TLB_OFFSET_READ: usize = offset_of!(TlbEntry, addr_read);
/// Byte offset of [`TlbEntry::addr_write`].
pub const TLB_OFFSET_WRITE: usize = offset_of!(TlbEntry, addr_write);
/// Byte offset of [`TlbEntry::addr_code`].
pub const TLB_OFFSET_CODE: usize = offset_of!(TlbEntry, addr_code);
/// Byte offset of [`TlbEntry::addend`].
pub const TLB_OFFSET_ADDEND: usize = offset_of!(TlbEntry, addend);
/// Size of one entry: 32 bytes on both 64-bit and 32-bit hosts, so the index scales by a shift.
pub const TLB_ENTRY_SIZE: usize = size_of::<TlbEntry>();

const _: () = assert!(TLB_ENTRY_SIZE == 32);

/// Computes the fast-path probe value described in the module doc.
pub const fn tlb_probe(vaddr: u64, size: u32, align: u32) -> u64 {
    let mask = crate::TARGET_PAGE_MASK | (align as u64 - 1);
    if size >= align {
        vaddr.wrapping_add((size - align) as u64) & mask
    } else {
        vaddr & mask
    }
}

/// The table index of `vaddr`.
pub const fn tlb_index(vaddr: u64) -> usize {
    ((vaddr >> crate::TARGET_PAGE_BITS) as usize) & (TLB_ENTRIES - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_catches_crossing_and_misalignment() {
        let tag = 0x7000u64;
        assert_eq!(tlb_probe(0x7ff8, 8, 1), tag);
        assert_ne!(tlb_probe(0x7ffc, 8, 1), tag, "crosses into the next page");
        assert_eq!(tlb_probe(0x7ff8, 8, 8), tag);
        assert_ne!(tlb_probe(0x7ff9, 8, 8), tag, "misaligned");
        assert_ne!(tlb_probe(0x7000, 1, 1), TlbEntry::EMPTY.addr_read);
    }
}
