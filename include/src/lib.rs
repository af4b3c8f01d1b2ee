//! Types shared by every rqemu crate.
//!
//! Guest addresses are `u64` on every host, wasm32 included; host pointers stay `usize`. This crate holds
//! only plain data and layouts that more than one crate (frontend, accel, softmmu and the backends that inline
//! the TLB fast path) must agree on. No behaviour beyond small accessors lives here.

pub mod addr;
pub mod memop;
pub mod mmu;
pub mod tlb;

pub use addr::{GuestPhysAddr, GuestVirtAddr, TARGET_PAGE_BITS, TARGET_PAGE_MASK, TARGET_PAGE_SIZE};
pub use memop::{MemOp, MemOpError};
pub use mmu::{MmuIdx, NB_MMU_MODES};
pub use tlb::TlbEntry;
