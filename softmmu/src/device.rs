//! The device side of memory dispatch: the trait that MMIO regions and I/O ports call.
//!
//! Devices are plain state machines: an access arrives with an offset inside the device's range and a size
//! (1, 2, 4 or 8 bytes); the device has no access to guest memory or the CPU here. Values are
//! little-endian-significant: a 2-byte read returns the register's value in its low 16 bits.

use std::cell::RefCell;
use std::rc::Rc;

/// A device reachable by MMIO or port I/O.
pub trait MmioDevice {
    /// Reads `size` bytes (1, 2, 4 or 8) at `offset` from the start of the device's range. Bits above the
    /// size are ignored by the caller.
    fn read(&mut self, offset: u64, size: u32) -> u64;
    /// Writes the low `size` bytes of `value` at `offset`.
    fn write(&mut self, offset: u64, size: u32, value: u64);
}

/// A device shared with other owners (the machine's main loop, another bus) behind `Rc<RefCell<_>>`.
impl<T: MmioDevice + ?Sized> MmioDevice for Rc<RefCell<T>> {
    fn read(&mut self, offset: u64, size: u32) -> u64 {
        self.borrow_mut().read(offset, size)
    }

    fn write(&mut self, offset: u64, size: u32, value: u64) {
        self.borrow_mut().write(offset, size, value)
    }
}

/// Mask of the low `size` bytes (size 8 or more: all bits).
pub(crate) fn size_mask(size: u32) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * size)) - 1
    }
}
