//! The character-backend seam between devices and the host: [`CharSink`] takes bytes a device sends,
//! [`CharInput`] queues bytes for a device to receive.
//!
//! Devices never touch stdio: the machine gives a UART a sink that writes to stdout (natively) or to the
//! page's terminal (wasm32), and fills its input queue from stdin or from the terminal. Tests use
//! [`MemSink`] and push bytes by hand. Flow control stays with the device: it pulls from the queue only as
//! its receive buffer has room, so nothing is lost when the guest reads slowly.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// Where a device's output bytes go.
pub trait CharSink {
    /// Takes `bytes`, in order. A sink that fails (closed stdout) drops them: the guest cannot be told.
    fn write(&mut self, bytes: &[u8]);
}

/// A sink that keeps every byte in memory; clones share the buffer, so a test keeps one clone and gives the
/// device the other.
#[derive(Clone, Debug, Default)]
pub struct MemSink {
    buf: Rc<RefCell<Vec<u8>>>,
}

impl MemSink {
    /// An empty buffer.
    pub fn new() -> MemSink {
        MemSink::default()
    }

    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.buf.borrow().clone()
    }

    /// Takes everything written so far, leaving the buffer empty.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.borrow_mut())
    }
}

impl CharSink for MemSink {
    fn write(&mut self, bytes: &[u8]) {
        self.buf.borrow_mut().extend_from_slice(bytes);
    }
}

/// A sink over any [`std::io::Write`] (stdout, a log file), flushed after every write so that output shows
/// as the guest produces it. Errors are dropped (see [`CharSink::write`]).
#[derive(Debug)]
pub struct WriteSink<W: std::io::Write>(pub W);

impl<W: std::io::Write> CharSink for WriteSink<W> {
    fn write(&mut self, bytes: &[u8]) {
        let _ = self.0.write_all(bytes);
        let _ = self.0.flush();
    }
}

/// Bytes waiting for a device, filled by the machine. Clones share the queue.
#[derive(Clone, Debug, Default)]
pub struct CharInput {
    queue: Rc<RefCell<VecDeque<u8>>>,
}

impl CharInput {
    /// An empty queue.
    pub fn new() -> CharInput {
        CharInput::default()
    }

    /// Appends bytes from the host (stdin, the terminal).
    pub fn push(&self, bytes: &[u8]) {
        self.queue.borrow_mut().extend(bytes.iter().copied());
    }

    /// Takes the oldest byte.
    pub fn pop(&self) -> Option<u8> {
        self.queue.borrow_mut().pop_front()
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Whether no byte is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_sink_clones_share_the_buffer() {
        let sink = MemSink::new();
        let mut dev_side = sink.clone();
        dev_side.write(b"ab");
        dev_side.write(b"c");
        assert_eq!(sink.contents(), b"abc");
        assert_eq!(sink.take(), b"abc");
        assert!(sink.contents().is_empty());
    }

    #[test]
    fn input_queue_is_fifo_and_shared() {
        let host = CharInput::new();
        let dev = host.clone();
        host.push(b"hi");
        assert_eq!(dev.len(), 2);
        assert_eq!(dev.pop(), Some(b'h'));
        assert_eq!(dev.pop(), Some(b'i'));
        assert_eq!(dev.pop(), None);
        assert!(host.is_empty());
    }

    #[test]
    fn write_sink_passes_bytes_through() {
        let mut sink = WriteSink(Vec::new());
        sink.write(b"xyz");
        assert_eq!(sink.0, b"xyz");
    }
}
