//! QEMU's `isa-debug-exit` device: a guest write of `v` asks the machine to exit with status `(v << 1) | 1`.
//!
//! Test programs use it to report pass/fail without a shutdown sequence (`-device
//! isa-debug-exit,iobase=0xf4,iosize=0x04`). The status is always odd, so it can never be mistaken for the
//! emulator's own success (0). The device only records the request in an [`MachineExit`]; the machine loop
//! polls it, stops the guest and exits the process — a device never ends the process itself. Reads return 0
//! (the device has no readable register; QEMU answers 0 as well).
//! The cell is called [`MachineExit`] to keep it apart from accel's `ExitRequest`, which only stops the CPU
//! loop: on seeing a status here the machine also raises that one so the guest stops at once. The machine maps it at `iobase` with
//! `iosize` ports; a write at any offset and of any size counts, with the value of the access' size.

use std::cell::Cell;
use std::rc::Rc;

use rqemu_softmmu::MmioDevice;

/// QEMU's default port for the device.
pub const DEFAULT_IOBASE: u16 = 0x501;
/// QEMU's default port count.
pub const DEFAULT_IOSIZE: u32 = 0x02;

/// A pending request to end the machine with a process exit status; clones share it.
#[derive(Clone, Debug, Default)]
pub struct MachineExit {
    status: Rc<Cell<Option<i32>>>,
}

impl MachineExit {
    /// No request yet.
    pub fn new() -> MachineExit {
        MachineExit::default()
    }

    /// Asks for an exit with `status`; the first request wins, as the guest stops at it.
    pub fn request(&self, status: i32) {
        if self.status.get().is_none() {
            self.status.set(Some(status));
        }
    }

    /// The requested status, if any (the loop polls this after each device access or slice).
    pub fn get(&self) -> Option<i32> {
        self.status.get()
    }
}

/// The isa-debug-exit device.
#[derive(Debug)]
pub struct IsaDebugExit {
    exit: MachineExit,
}

impl IsaDebugExit {
    /// A device that records its exit requests in `exit`.
    pub fn new(exit: MachineExit) -> IsaDebugExit {
        IsaDebugExit { exit }
    }

    /// The status a write of `value` asks for: `(value << 1) | 1`, truncated to 32 bits like a process
    /// status (the host keeps only the low 8 bits anyway).
    pub fn status_for(value: u64) -> i32 {
        ((value as u32) << 1 | 1) as i32
    }
}

impl MmioDevice for IsaDebugExit {
    fn read(&mut self, _offset: u64, _size: u32) -> u64 {
        0
    }

    fn write(&mut self, _offset: u64, _size: u32, value: u64) {
        self.exit.request(Self::status_for(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_requests_exit_with_shifted_odd_status() {
        let exit = MachineExit::new();
        let mut dev = IsaDebugExit::new(exit.clone());
        assert_eq!(exit.get(), None);
        dev.write(0, 4, 0x10);
        assert_eq!(exit.get(), Some(0x21));
    }

    #[test]
    fn zero_write_exits_with_status_one() {
        let exit = MachineExit::new();
        IsaDebugExit::new(exit.clone()).write(0, 1, 0);
        assert_eq!(exit.get(), Some(1));
    }

    #[test]
    fn first_request_wins() {
        let exit = MachineExit::new();
        let mut dev = IsaDebugExit::new(exit.clone());
        dev.write(0, 1, 1);
        dev.write(0, 1, 2);
        assert_eq!(exit.get(), Some(3));
    }

    #[test]
    fn reads_return_zero_and_large_values_do_not_overflow() {
        let exit = MachineExit::new();
        let mut dev = IsaDebugExit::new(exit.clone());
        assert_eq!(dev.read(0, 4), 0);
        dev.write(0, 4, 0xffff_ffff);
        assert_eq!(exit.get(), Some(-1));
    }
}
