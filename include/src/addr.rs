//! Guest address types and the guest page geometry.
//!
//! Both kinds of guest address are 64-bit on every host. They are plain aliases rather than newtypes because
//! generated code and the IR handle them as raw `i64` values; the names document intent at API boundaries.

/// A guest virtual (linear) address, 64-bit on every host.
pub type GuestVirtAddr = u64;

/// A guest physical address, 64-bit on every host.
pub type GuestPhysAddr = u64;

/// log2 of the guest page size used by the software TLB (x86: 4 KiB).
pub const TARGET_PAGE_BITS: u32 = 12;

/// Guest page size in bytes.
pub const TARGET_PAGE_SIZE: u64 = 1 << TARGET_PAGE_BITS;

/// Mask that keeps the page-number bits of a guest address.
pub const TARGET_PAGE_MASK: u64 = !(TARGET_PAGE_SIZE - 1);
