//! Boot loaders: [`multiboot`] kernels (`-kernel`) and [`bios`] flat firmware images (`-bios`).
//!
//! Loaders are pure: they parse an image held in memory, check it against the guest's memory map, and write
//! through the small [`PhysWriter`] trait, so they depend neither on the CPU crate nor on files (the machine
//! reads the files; on wasm32 they come from the JS host). Setting up the CPU is the machine's job.

pub mod bios;
pub mod multiboot;

use rqemu_softmmu::{AddressSpace, OutOfRange, RamBlock};

/// Guest physical memory as a loader writes it.
pub trait PhysWriter {
    /// Copies `bytes` to guest physical address `addr`.
    fn write_phys(&mut self, addr: u64, bytes: &[u8]) -> Result<(), OutOfRange>;
}

/// The machine's physical address space. Writes to ROM regions are dropped there, as the guest's are: fill
/// a ROM's block directly (a [`RamBlock`] is a `PhysWriter` too). It copies byte by byte through dispatch;
/// for large images, write the RAM block.
impl PhysWriter for AddressSpace {
    fn write_phys(&mut self, addr: u64, bytes: &[u8]) -> Result<(), OutOfRange> {
        self.write_bytes(addr, bytes);
        Ok(())
    }
}

/// A flat buffer standing for guest memory from address 0 (tests, and machines that load before mapping).
impl PhysWriter for Vec<u8> {
    fn write_phys(&mut self, addr: u64, bytes: &[u8]) -> Result<(), OutOfRange> {
        let start = usize::try_from(addr).map_err(|_| OutOfRange)?;
        let end = start.checked_add(bytes.len()).ok_or(OutOfRange)?;
        self.get_mut(start..end).ok_or(OutOfRange)?.copy_from_slice(bytes);
        Ok(())
    }
}

/// A RAM block whose first byte is guest physical address 0 (the PC's RAM below 4 GiB), or a ROM block
/// written with image offsets as addresses.
impl PhysWriter for RamBlock {
    fn write_phys(&mut self, addr: u64, bytes: &[u8]) -> Result<(), OutOfRange> {
        self.write(addr, bytes)
    }
}
