//! Port 0x61, the PC's "port B": PIT channel 2's gate (bit 0) and output (bit 5), the speaker data enable
//! (bit 1), and the refresh toggle (bit 4) that BIOSes and old kernels use for short delays.
//!
//! Kept apart from the PIT because it is board logic, not part of the 8254. No sound is produced: the
//! speaker enable is stored and read back only. The refresh bit flips every 15.085 µs of virtual time (the
//! DRAM refresh period of PC/AT boards). The NMI-related bits (2: parity check disable, 3: channel check
//! disable) are stored; the NMI status bits 6 and 7 always read 0 (no NMI sources are emulated).

use std::cell::RefCell;
use std::rc::Rc;

use rqemu_softmmu::MmioDevice;

use crate::clock::VirtualClock;
use crate::i8254::Pit;

/// The port.
pub const IOBASE: u16 = 0x61;
/// Bit 0: PIT channel 2 gate.
pub const GATE2: u8 = 0x01;
/// Bit 1: speaker data enable.
pub const SPEAKER_DATA: u8 = 0x02;
/// Bits 2–3: NMI check disables, stored.
pub const NMI_DISABLES: u8 = 0x0c;
/// Bit 4: refresh toggle (read only).
pub const REFRESH: u8 = 0x10;
/// Bit 5: PIT channel 2 output (read only).
pub const OUT2: u8 = 0x20;
/// The refresh period in nanoseconds.
pub const REFRESH_PERIOD_NS: u64 = 15_085;

/// Port B.
pub struct PortB {
    pit: Rc<RefCell<Pit>>,
    clock: Rc<VirtualClock>,
    /// The writable bits as last written.
    value: u8,
}

impl PortB {
    /// Port B over `pit`'s channel 2, with the refresh toggle on `clock`.
    pub fn new(pit: Rc<RefCell<Pit>>, clock: Rc<VirtualClock>) -> PortB {
        PortB { pit, clock, value: 0 }
    }
}

impl MmioDevice for PortB {
    fn read(&mut self, _offset: u64, _size: u32) -> u64 {
        let mut v = self.value & (GATE2 | SPEAKER_DATA | NMI_DISABLES);
        if (self.clock.now() / REFRESH_PERIOD_NS) & 1 != 0 {
            v |= REFRESH;
        }
        if self.pit.borrow().output(2) {
            v |= OUT2;
        }
        u64::from(v)
    }

    fn write(&mut self, _offset: u64, _size: u32, value: u64) {
        self.value = value as u8 & (GATE2 | SPEAKER_DATA | NMI_DISABLES);
        self.pit.borrow_mut().set_gate(2, self.value & GATE2 != 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Timers, NANOS_PER_SEC};
    use crate::i8254::PIT_FREQ_HZ;
    use crate::irq::IrqLine;

    fn rig() -> (PortB, Rc<RefCell<Pit>>, crate::clock::ManualClock) {
        let (clock, src) = VirtualClock::manual();
        let pit = Pit::new(clock.clone(), Timers::new(), IrqLine::disconnected());
        (PortB::new(pit.clone(), clock), pit, src)
    }

    #[test]
    fn bit0_drives_channel2_gate_and_reads_back() {
        let (mut port, pit, _) = rig();
        port.write(0, 1, u64::from(GATE2 | SPEAKER_DATA));
        assert!(pit.borrow().gate(2));
        assert_eq!(port.read(0, 1) as u8 & (GATE2 | SPEAKER_DATA), GATE2 | SPEAKER_DATA);
        port.write(0, 1, 0);
        assert!(!pit.borrow().gate(2));
    }

    #[test]
    fn bit5_follows_channel2_output_for_calibration() {
        // The classic delay calibration: mode 0 on channel 2, gate on, poll bit 5.
        let (mut port, pit, src) = rig();
        port.write(0, 1, u64::from(GATE2));
        pit.borrow_mut().write(3, 1, 0b1011_0000); // ch2, word, mode 0
        pit.borrow_mut().write(2, 1, 100);
        pit.borrow_mut().write(2, 1, 0);
        assert_eq!(port.read(0, 1) as u8 & OUT2, 0);
        src.set(100 * NANOS_PER_SEC / PIT_FREQ_HZ + 100);
        assert_eq!(port.read(0, 1) as u8 & OUT2, OUT2);
    }

    #[test]
    fn refresh_bit_toggles_with_time() {
        let (mut port, _, src) = rig();
        let a = port.read(0, 1) as u8 & REFRESH;
        src.set(REFRESH_PERIOD_NS);
        let b = port.read(0, 1) as u8 & REFRESH;
        assert_ne!(a, b);
    }
}
