//! QEMU's `isa-debugcon`: the Bochs-style debug console on port 0xe9.
//!
//! Every byte written goes to a [`CharSink`] (the machine chooses stdout, a file or the page). Reads return
//! the readback value, 0xe9 by default, which is how guests detect the port before using it. A wider write
//! sends its low byte only, as the port is 8 bits wide.

use rqemu_softmmu::MmioDevice;

use crate::chardev::CharSink;

/// The port QEMU and Bochs use.
pub const DEFAULT_IOBASE: u16 = 0xe9;
/// What a read returns unless configured otherwise.
pub const DEFAULT_READBACK: u8 = 0xe9;

/// The debug console.
pub struct DebugCon {
    sink: Box<dyn CharSink>,
    readback: u8,
}

impl DebugCon {
    /// A console writing to `sink`, answering reads with [`DEFAULT_READBACK`].
    pub fn new(sink: Box<dyn CharSink>) -> DebugCon {
        DebugCon {
            sink,
            readback: DEFAULT_READBACK,
        }
    }

    /// Changes what reads return (QEMU's `readback` property).
    pub fn with_readback(mut self, readback: u8) -> DebugCon {
        self.readback = readback;
        self
    }
}

impl MmioDevice for DebugCon {
    fn read(&mut self, _offset: u64, _size: u32) -> u64 {
        u64::from(self.readback)
    }

    fn write(&mut self, _offset: u64, _size: u32, value: u64) {
        self.sink.write(&[value as u8]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chardev::MemSink;

    #[test]
    fn written_bytes_reach_the_sink() {
        let sink = MemSink::new();
        let mut con = DebugCon::new(Box::new(sink.clone()));
        for &b in b"ok\n" {
            con.write(0, 1, u64::from(b));
        }
        con.write(0, 2, 0x4142);
        assert_eq!(sink.contents(), b"ok\nB");
    }

    #[test]
    fn reads_return_readback_value() {
        let mut con = DebugCon::new(Box::new(MemSink::new()));
        assert_eq!(con.read(0, 1), 0xe9);
        let mut con = con.with_readback(0x00);
        assert_eq!(con.read(0, 1), 0);
    }
}
