//! The x86 port-I/O space: 65536 byte-wide ports, dispatched to the same [`MmioDevice`] trait as MMIO.
//!
//! A device claims a range of ports; where ranges overlap, the one mapped last wins (devices rarely overlap
//! here; the rule matches the physical address space's for equal priorities). An access goes whole to the
//! device holding its first port, with the offset from the device's first port: `in ax, 0x3f9` reaches the
//! UART at 0x3f8 with offset 1 and size 2. Ports nobody claims read all ones and ignore writes.

use crate::address_space::MapError;
use crate::device::{size_mask, MmioDevice};

/// Names a mapped port range, to unmap it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRangeId(usize);

struct PortRange {
    base: u16,
    /// Last port (inclusive).
    last: u16,
    device: Box<dyn MmioDevice>,
}

/// The port-I/O space.
#[derive(Default)]
pub struct IoSpace {
    /// Indexed by [`PortRangeId`]; unmapped slots are `None`.
    ranges: Vec<Option<PortRange>>,
}

impl IoSpace {
    /// An empty port space.
    pub fn new() -> IoSpace {
        IoSpace::default()
    }

    /// Gives the `count` ports from `base` to `device`.
    pub fn map(&mut self, base: u16, count: u32, device: Box<dyn MmioDevice>) -> Result<PortRangeId, MapError> {
        if count == 0 {
            return Err(MapError::Empty);
        }
        let last = u32::from(base) + (count - 1);
        let last = u16::try_from(last).map_err(|_| MapError::Wraps)?;
        self.ranges.push(Some(PortRange { base, last, device }));
        Ok(PortRangeId(self.ranges.len() - 1))
    }

    /// Unmaps a range and gives the device back.
    pub fn unmap(&mut self, id: PortRangeId) -> Option<Box<dyn MmioDevice>> {
        Some(self.ranges.get_mut(id.0)?.take()?.device)
    }

    fn find(&mut self, port: u16) -> Option<&mut PortRange> {
        self.ranges
            .iter_mut()
            .rev()
            .flatten()
            .find(|r| r.base <= port && port <= r.last)
    }

    /// `in`: reads `size` bytes (1, 2 or 4) from `port`.
    pub fn read(&mut self, port: u16, size: u32) -> u64 {
        let size = size.clamp(1, 8);
        match self.find(port) {
            Some(r) => r.device.read(u64::from(port - r.base), size) & size_mask(size),
            None => size_mask(size),
        }
    }

    /// `out`: writes the low `size` bytes (1, 2 or 4) of `value` to `port`.
    pub fn write(&mut self, port: u16, size: u32, value: u64) {
        let size = size.clamp(1, 8);
        if let Some(r) = self.find(port) {
            r.device.write(u64::from(port - r.base), size, value & size_mask(size));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address_space::tests::probe;

    #[test]
    fn port_dispatch_gets_offset_and_size() {
        let mut io = IoSpace::new();
        let uart = probe(0x100);
        io.map(0x3f8, 8, Box::new(uart.clone())).unwrap();
        assert_eq!(io.read(0x3f9, 2), 0x101);
        io.write(0x3fb, 1, 0x183);
        assert_eq!(uart.borrow().log, vec![('r', 1, 2, 0), ('w', 3, 1, 0x83)]);
    }

    #[test]
    fn unclaimed_port_reads_ones() {
        let mut io = IoSpace::new();
        assert_eq!(io.read(0x80, 1), 0xff);
        assert_eq!(io.read(0x80, 4), 0xffff_ffff);
        io.write(0x80, 1, 0);
    }

    #[test]
    fn later_port_range_wins_and_unmap_uncovers() {
        let mut io = IoSpace::new();
        io.map(0x60, 0x10, Box::new(probe(0x100))).unwrap();
        let id = io.map(0x64, 1, Box::new(probe(0x200))).unwrap();
        assert_eq!(io.read(0x64, 2), 0x200);
        assert!(io.unmap(id).is_some());
        assert_eq!(io.read(0x64, 2), 0x104);
    }

    #[test]
    fn port_range_past_0xffff_is_an_error() {
        let mut io = IoSpace::new();
        assert!(io.map(0xffff, 1, Box::new(probe(0))).is_ok());
        assert_eq!(io.map(0xffff, 2, Box::new(probe(0))).unwrap_err(), MapError::Wraps);
        assert_eq!(io.map(0, 0, Box::new(probe(0))).unwrap_err(), MapError::Empty);
    }
}
