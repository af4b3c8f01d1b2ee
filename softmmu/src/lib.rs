//! rqemu's system memory: guest RAM, the physical address space with MMIO dispatch, the port-I/O space, the
//! software TLB and the guest load/store/fetch slow paths.
//!
//! | module | holds |
//! |---|---|
//! | [`ram`] | guest RAM blocks (anonymous mmap natively, a zeroed allocation on wasm32) |
//! | [`device`] | the [`MmioDevice`] trait that MMIO regions and I/O ports dispatch to |
//! | [`address_space`] | RAM, ROM and MMIO regions, overlap by priority, physical dispatch, the "page holds code" bitmap |
//! | [`ioport`] | the x86 port-I/O space |
//! | [`fill`] | the target's translation hook ([`TlbFill`]) and the identity mapping (paging off) |
//! | [`tlb`] | the `repr(C)` TLB tables generated code probes, flushing, large-page tracking |
//! | [`soft_mmu`] | [`SoftMmu`]: one CPU's memory view, the slow paths, `GuestMemory` for the backends |
//!
//! Guest addresses are `u64` on every host; host addresses are `usize`. Nothing here panics on what a guest
//! can control: unassigned accesses read all ones, faults are recorded by the target and returned as
//! [`rqemu_tcg::MemFault`].

pub mod address_space;
pub mod device;
pub mod fill;
pub mod ioport;
pub mod ram;
pub mod soft_mmu;
pub mod tlb;

pub use address_space::{AddressSpace, Backing, MapError, RamId, RegionId};
pub use device::MmioDevice;
pub use fill::{Access, IdentityFill, Prot, RecordedFault, TlbFill, Translation};
pub use ioport::{IoSpace, PortRangeId};
pub use ram::{OutOfRange, RamBlock, RamError};
pub use soft_mmu::{CodeWrite, CodeWriteHook, SoftMmu};
pub use tlb::TlbTables;
