//! The 16550A UART: the PC's COM ports (COM1 at 0x3f8, IRQ 4).
//!
//! A register state machine with no I/O of its own: transmitted bytes go to a [`CharSink`], received bytes
//! come from a [`CharInput`] the machine fills and that [`Serial::poll_input`] drains into the receive FIFO
//! as it has room, and the interrupt output is an [`IrqLine`]. Every register is emulated, at the offsets
//! the 8250 family uses (with DLAB set, offsets 0 and 1 are the divisor latch):
//!
//! | offset | read | write |
//! |---|---|---|
//! | 0 | RBR: receive buffer | THR: transmit holding |
//! | 1 | IER | IER |
//! | 2 | IIR: interrupt identification | FCR: FIFO control |
//! | 3 | LCR | LCR |
//! | 4 | MCR | MCR |
//! | 5 | LSR | (ignored: factory test) |
//! | 6 | MSR | (ignored) |
//! | 7 | SCR: scratch | SCR |
//!
//! What differs from a real chip, and why:
//! - transmission is instantaneous: THR and the shifter are always empty again after a write, so THRE and
//!   TEMT read set and a THRE interrupt follows each write at once; the divisor is stored but sets no pace;
//! - the character-timeout interrupt (data below the trigger level) is reported at once instead of after
//!   four character times: with no line timing, host input arrives in bursts and nothing more will come;
//! - no parity, framing or break errors are ever received; overrun is (a byte arriving at a full FIFO is lost
//!   and OE is set), so LSR bit 7 (error in FIFO) stays clear;
//! - the modem-status inputs read CTS, DSR and DCD asserted (a connected terminal); in loopback they follow
//!   RTS, DTR, OUT1 and OUT2 as on the chip;
//! - OUT2 does not gate the interrupt output (as in QEMU): bare-metal tests enable IER alone and expect
//!   interrupts; Linux sets OUT2 anyway;
//! - the transmit FIFO has no depth to overflow, and FCR's DMA mode bit is stored only.

use std::collections::VecDeque;

use rqemu_softmmu::MmioDevice;

use crate::chardev::{CharInput, CharSink};
use crate::irq::IrqLine;

/// COM1's base port.
pub const COM1_IOBASE: u16 = 0x3f8;
/// COM1's ISA interrupt.
pub const COM1_IRQ: u32 = 4;
/// Ports a UART occupies.
pub const IOSIZE: u32 = 8;

/// Receive buffer (read, DLAB=0).
pub const RBR: u64 = 0;
/// Transmit holding register (write, DLAB=0).
pub const THR: u64 = 0;
/// Divisor latch low byte (DLAB=1).
pub const DLL: u64 = 0;
/// Interrupt enable register (DLAB=0).
pub const IER: u64 = 1;
/// Divisor latch high byte (DLAB=1).
pub const DLM: u64 = 1;
/// Interrupt identification register (read).
pub const IIR: u64 = 2;
/// FIFO control register (write).
pub const FCR: u64 = 2;
/// Line control register.
pub const LCR: u64 = 3;
/// Modem control register.
pub const MCR: u64 = 4;
/// Line status register.
pub const LSR: u64 = 5;
/// Modem status register.
pub const MSR: u64 = 6;
/// Scratch register.
pub const SCR: u64 = 7;

/// IER: received data available (and character timeout).
pub const IER_RDI: u8 = 0x01;
/// IER: transmit holding register empty.
pub const IER_THRI: u8 = 0x02;
/// IER: receiver line status.
pub const IER_RLSI: u8 = 0x04;
/// IER: modem status.
pub const IER_MSI: u8 = 0x08;
/// IER bits that exist on a 16550A.
pub const IER_MASK: u8 = 0x0f;

/// IIR: no interrupt pending.
pub const IIR_NO_INT: u8 = 0x01;
/// IIR: mask of the interrupt identity.
pub const IIR_ID_MASK: u8 = 0x0e;
/// IIR identity: modem status changed (lowest priority).
pub const IIR_MSI: u8 = 0x00;
/// IIR identity: transmit holding register empty.
pub const IIR_THRI: u8 = 0x02;
/// IIR identity: received data at or above the trigger level.
pub const IIR_RDI: u8 = 0x04;
/// IIR identity: receiver line status (highest priority).
pub const IIR_RLSI: u8 = 0x06;
/// IIR identity: character timeout (data below the trigger level).
pub const IIR_CTI: u8 = 0x0c;
/// IIR: both bits set when the FIFOs are enabled (a 16550A; a 16550 without working FIFOs sets one).
pub const IIR_FIFO_ENABLED: u8 = 0xc0;

/// FCR: enable both FIFOs.
pub const FCR_ENABLE: u8 = 0x01;
/// FCR: clear the receive FIFO (self-clearing).
pub const FCR_CLEAR_RCVR: u8 = 0x02;
/// FCR: clear the transmit FIFO (self-clearing).
pub const FCR_CLEAR_XMIT: u8 = 0x04;
/// FCR: DMA mode select.
pub const FCR_DMA_SELECT: u8 = 0x08;
/// FCR: receive trigger level field (1, 4, 8 or 14 bytes).
pub const FCR_TRIGGER_MASK: u8 = 0xc0;
/// FCR bits kept after a write.
const FCR_KEPT: u8 = FCR_ENABLE | FCR_DMA_SELECT | FCR_TRIGGER_MASK;

/// LCR: word length field.
pub const LCR_WLEN_MASK: u8 = 0x03;
/// LCR: two stop bits.
pub const LCR_STOP: u8 = 0x04;
/// LCR: parity enable.
pub const LCR_PARITY: u8 = 0x08;
/// LCR: even parity.
pub const LCR_EPAR: u8 = 0x10;
/// LCR: stick parity.
pub const LCR_SPAR: u8 = 0x20;
/// LCR: set break.
pub const LCR_SBC: u8 = 0x40;
/// LCR: divisor latch access.
pub const LCR_DLAB: u8 = 0x80;

/// MCR: data terminal ready.
pub const MCR_DTR: u8 = 0x01;
/// MCR: request to send.
pub const MCR_RTS: u8 = 0x02;
/// MCR: user output 1.
pub const MCR_OUT1: u8 = 0x04;
/// MCR: user output 2 (gates the IRQ on a real PC board; see the module doc).
pub const MCR_OUT2: u8 = 0x08;
/// MCR: loopback.
pub const MCR_LOOP: u8 = 0x10;
/// MCR bits that exist on a 16550A.
pub const MCR_MASK: u8 = 0x1f;

/// LSR: data ready.
pub const LSR_DR: u8 = 0x01;
/// LSR: overrun error.
pub const LSR_OE: u8 = 0x02;
/// LSR: parity error.
pub const LSR_PE: u8 = 0x04;
/// LSR: framing error.
pub const LSR_FE: u8 = 0x08;
/// LSR: break interrupt.
pub const LSR_BI: u8 = 0x10;
/// LSR: transmit holding register empty.
pub const LSR_THRE: u8 = 0x20;
/// LSR: transmitter empty.
pub const LSR_TEMT: u8 = 0x40;
/// LSR: error in the receive FIFO.
pub const LSR_FIFO_ERR: u8 = 0x80;
/// LSR bits that raise a receiver-line-status interrupt and clear on read.
pub const LSR_ERRORS: u8 = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

/// MSR: delta clear to send.
pub const MSR_DCTS: u8 = 0x01;
/// MSR: delta data set ready.
pub const MSR_DDSR: u8 = 0x02;
/// MSR: trailing edge ring indicator.
pub const MSR_TERI: u8 = 0x04;
/// MSR: delta data carrier detect.
pub const MSR_DDCD: u8 = 0x08;
/// MSR: the delta bits, cleared by reading MSR.
pub const MSR_DELTAS: u8 = 0x0f;
/// MSR: clear to send.
pub const MSR_CTS: u8 = 0x10;
/// MSR: data set ready.
pub const MSR_DSR: u8 = 0x20;
/// MSR: ring indicator.
pub const MSR_RI: u8 = 0x40;
/// MSR: data carrier detect.
pub const MSR_DCD: u8 = 0x80;

/// Depth of the receive FIFO.
pub const FIFO_SIZE: usize = 16;
/// Divisor after reset: 115200 / 12 = 9600 baud, what a BIOS leaves.
pub const RESET_DIVISOR: u16 = 12;
/// The baud rate of divisor 1 (1.8432 MHz / 16).
pub const BASE_BAUD: u32 = 115_200;

/// A 16550A.
pub struct Serial {
    rx: VecDeque<u8>,
    ier: u8,
    fcr: u8,
    lcr: u8,
    mcr: u8,
    /// Sticky error bits of LSR (the other bits are computed).
    lsr_errors: u8,
    /// Modem status: input bits and latched deltas.
    msr: u8,
    scr: u8,
    divisor: u16,
    /// A THRE interrupt is owed (set when THR empties or ETBEI is enabled; cleared by IIR read or THR write).
    thr_pending: bool,
    irq: IrqLine,
    irq_level: bool,
    sink: Box<dyn CharSink>,
    input: CharInput,
}

impl Serial {
    /// A UART after reset, sending to `sink`, receiving from `input`, interrupting on `irq`.
    pub fn new(sink: Box<dyn CharSink>, input: CharInput, irq: IrqLine) -> Serial {
        Serial {
            rx: VecDeque::with_capacity(FIFO_SIZE),
            ier: 0,
            fcr: 0,
            lcr: 0,
            mcr: 0,
            lsr_errors: 0,
            msr: MSR_CTS | MSR_DSR | MSR_DCD,
            scr: 0,
            divisor: RESET_DIVISOR,
            thr_pending: false,
            irq,
            irq_level: false,
            sink,
            input,
        }
    }

    /// A system reset: the registers back to their state after [`Serial::new`], the receive FIFO emptied and
    /// the interrupt output lowered; the backend (sink and host input) stays connected.
    pub fn reset(&mut self) {
        self.rx.clear();
        self.ier = 0;
        self.fcr = 0;
        self.lcr = 0;
        self.mcr = 0;
        self.lsr_errors = 0;
        self.msr = MSR_CTS | MSR_DSR | MSR_DCD;
        self.scr = 0;
        self.divisor = RESET_DIVISOR;
        self.thr_pending = false;
        self.irq_level = false;
        self.irq.set(false);
    }

    /// The divisor latch (the baud rate is [`BASE_BAUD`] / divisor; 0 means no clock).
    pub fn divisor(&self) -> u16 {
        self.divisor
    }

    /// Whether the interrupt output is asserted.
    pub fn irq_asserted(&self) -> bool {
        self.irq_level
    }

    fn fifo_enabled(&self) -> bool {
        self.fcr & FCR_ENABLE != 0
    }

    fn loopback(&self) -> bool {
        self.mcr & MCR_LOOP != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() {
            FIFO_SIZE
        } else {
            1
        }
    }

    /// The receive trigger level FCR selects.
    pub fn rx_trigger(&self) -> usize {
        match self.fcr >> 6 {
            0 => 1,
            1 => 4,
            2 => 8,
            _ => 14,
        }
    }

    /// Moves waiting host input into the receive FIFO as far as it has room, and updates the interrupt.
    /// The machine calls this when it pushed input; register reads call it too. In loopback the external
    /// input is disconnected and stays queued.
    pub fn poll_input(&mut self) {
        if !self.loopback() {
            while self.rx.len() < self.rx_capacity() {
                match self.input.pop() {
                    Some(b) => self.rx.push_back(b),
                    None => break,
                }
            }
        }
        self.update_irq();
    }

    /// A byte arrives at the receiver (from loopback); a full FIFO loses it and flags an overrun.
    fn receive(&mut self, byte: u8) {
        if self.rx.len() < self.rx_capacity() {
            self.rx.push_back(byte);
        } else {
            self.lsr_errors |= LSR_OE;
        }
    }

    fn lsr(&self) -> u8 {
        let mut lsr = LSR_THRE | LSR_TEMT | self.lsr_errors;
        if !self.rx.is_empty() {
            lsr |= LSR_DR;
        }
        lsr
    }

    /// The pending interrupt of highest priority, as IIR's identity bits.
    fn interrupt_id(&self) -> u8 {
        if self.ier & IER_RLSI != 0 && self.lsr_errors != 0 {
            IIR_RLSI
        } else if self.ier & IER_RDI != 0 && !self.rx.is_empty() {
            if self.fifo_enabled() && self.rx.len() < self.rx_trigger() {
                IIR_CTI
            } else {
                IIR_RDI
            }
        } else if self.ier & IER_THRI != 0 && self.thr_pending {
            IIR_THRI
        } else if self.ier & IER_MSI != 0 && self.msr & MSR_DELTAS != 0 {
            IIR_MSI
        } else {
            IIR_NO_INT
        }
    }

    fn update_irq(&mut self) {
        let level = self.interrupt_id() != IIR_NO_INT;
        if level != self.irq_level {
            self.irq_level = level;
            self.irq.set(level);
        }
    }

    /// Recomputes the modem-status inputs after MCR changed and latches the deltas.
    fn update_msr(&mut self) {
        let inputs = if self.loopback() {
            let m = self.mcr;
            let mut v = 0;
            if m & MCR_RTS != 0 {
                v |= MSR_CTS;
            }
            if m & MCR_DTR != 0 {
                v |= MSR_DSR;
            }
            if m & MCR_OUT1 != 0 {
                v |= MSR_RI;
            }
            if m & MCR_OUT2 != 0 {
                v |= MSR_DCD;
            }
            v
        } else {
            MSR_CTS | MSR_DSR | MSR_DCD
        };
        let old = self.msr;
        let changed = old ^ inputs;
        let mut deltas = old & MSR_DELTAS;
        if changed & MSR_CTS != 0 {
            deltas |= MSR_DCTS;
        }
        if changed & MSR_DSR != 0 {
            deltas |= MSR_DDSR;
        }
        if changed & MSR_DCD != 0 {
            deltas |= MSR_DDCD;
        }
        if old & MSR_RI != 0 && inputs & MSR_RI == 0 {
            deltas |= MSR_TERI;
        }
        self.msr = (inputs & !MSR_DELTAS) | deltas;
    }

    fn transmit(&mut self, byte: u8) {
        self.thr_pending = false;
        if self.loopback() {
            self.receive(byte);
        } else {
            self.sink.write(&[byte]);
        }
        // Sent at once: the holding register is empty again.
        self.thr_pending = true;
    }

    fn write_fcr(&mut self, value: u8) {
        let enable = value & FCR_ENABLE;
        if enable != self.fcr & FCR_ENABLE {
            // Switching the FIFOs on or off empties them.
            self.rx.clear();
        }
        if value & FCR_CLEAR_RCVR != 0 {
            self.rx.clear();
        }
        // With FCR_ENABLE clear, the chip ignores the other bits.
        self.fcr = if enable != 0 { value & FCR_KEPT } else { 0 };
    }
}

impl MmioDevice for Serial {
    fn read(&mut self, offset: u64, _size: u32) -> u64 {
        let dlab = self.lcr & LCR_DLAB != 0;
        let value = match offset & 7 {
            DLL if dlab => self.divisor as u8,
            DLM if dlab => (self.divisor >> 8) as u8,
            RBR => {
                let b = self.rx.pop_front().unwrap_or(0);
                self.poll_input();
                b
            }
            IER => self.ier,
            IIR => {
                self.poll_input();
                let id = self.interrupt_id();
                if id == IIR_THRI {
                    // Reading IIR while it reports THRE acknowledges that interrupt.
                    self.thr_pending = false;
                    self.update_irq();
                }
                let fifo = if self.fifo_enabled() { IIR_FIFO_ENABLED } else { 0 };
                id | fifo
            }
            LCR => self.lcr,
            MCR => self.mcr,
            LSR => {
                self.poll_input();
                let v = self.lsr();
                self.lsr_errors = 0;
                self.update_irq();
                v
            }
            MSR => {
                let v = self.msr;
                self.msr &= !MSR_DELTAS;
                self.update_irq();
                v
            }
            _ => self.scr,
        };
        u64::from(value)
    }

    fn write(&mut self, offset: u64, _size: u32, value: u64) {
        let v = value as u8;
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset & 7 {
            DLL if dlab => self.divisor = (self.divisor & 0xff00) | u16::from(v),
            DLM if dlab => self.divisor = (self.divisor & 0x00ff) | (u16::from(v) << 8),
            THR => self.transmit(v),
            IER => {
                let new = v & IER_MASK;
                if new & IER_THRI != 0 && self.ier & IER_THRI == 0 {
                    // Enabling THRE interrupts with an empty THR raises one at once (drivers rely on it).
                    self.thr_pending = true;
                } else if new & IER_THRI == 0 {
                    self.thr_pending = false;
                }
                self.ier = new;
            }
            FCR => self.write_fcr(v),
            LCR => self.lcr = v,
            MCR => {
                self.mcr = v & MCR_MASK;
                self.update_msr();
            }
            LSR | MSR => {}
            _ => self.scr = v,
        }
        self.poll_input();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chardev::MemSink;
    use crate::irq::IrqRecorder;
    use std::rc::Rc;

    struct Rig {
        uart: Serial,
        out: MemSink,
        input: CharInput,
        irq: Rc<IrqRecorder>,
    }

    fn rig() -> Rig {
        let out = MemSink::new();
        let input = CharInput::new();
        let irq = IrqRecorder::new();
        let uart = Serial::new(Box::new(out.clone()), input.clone(), irq.line(COM1_IRQ));
        Rig { uart, out, input, irq }
    }

    fn rd(u: &mut Serial, reg: u64) -> u8 {
        u.read(reg, 1) as u8
    }

    fn wr(u: &mut Serial, reg: u64, v: u8) {
        u.write(reg, 1, u64::from(v))
    }

    #[test]
    fn serial_thr_sends_to_sink_and_lsr_shows_empty() {
        let mut r = rig();
        for &b in b"hi" {
            wr(&mut r.uart, THR, b);
        }
        assert_eq!(r.out.contents(), b"hi");
        assert_eq!(rd(&mut r.uart, LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
    }

    #[test]
    fn serial_reset_restores_registers_and_lowers_the_irq() {
        let mut r = rig();
        wr(&mut r.uart, LCR, LCR_DLAB | 0x03);
        wr(&mut r.uart, DLL, 0x01);
        wr(&mut r.uart, LCR, 0x03);
        wr(&mut r.uart, IER, 0x02);
        assert!(r.irq.level(COM1_IRQ), "THRE interrupt");
        r.uart.reset();
        assert!(!r.irq.level(COM1_IRQ));
        assert_eq!(r.uart.divisor(), RESET_DIVISOR);
        assert_eq!((rd(&mut r.uart, IER), rd(&mut r.uart, LCR)), (0, 0));
        // Still connected to its sink.
        wr(&mut r.uart, THR, b'x');
        assert_eq!(r.out.contents(), b"x");
    }

    #[test]
    fn serial_dlab_switches_offsets_0_and_1_to_divisor() {
        let mut r = rig();
        wr(&mut r.uart, LCR, LCR_DLAB | 0x03);
        wr(&mut r.uart, DLL, 0x01);
        wr(&mut r.uart, DLM, 0x00);
        assert_eq!(r.uart.divisor(), 1);
        assert_eq!(rd(&mut r.uart, DLL), 1);
        wr(&mut r.uart, LCR, 0x03);
        wr(&mut r.uart, IER, 0x05);
        assert_eq!(rd(&mut r.uart, IER), 0x05);
        assert_eq!(r.uart.divisor(), 1);
        assert!(r.out.contents().is_empty(), "divisor writes must not transmit");
    }

    #[test]
    fn serial_scratch_register_holds_value() {
        let mut r = rig();
        wr(&mut r.uart, SCR, 0x5a);
        assert_eq!(rd(&mut r.uart, SCR), 0x5a);
        wr(&mut r.uart, SCR, 0xa5);
        assert_eq!(rd(&mut r.uart, SCR), 0xa5);
    }

    #[test]
    fn serial_loopback_echoes_and_maps_modem_lines() {
        let mut r = rig();
        wr(&mut r.uart, MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
        // The 8250 probe: in loopback with RTS|OUT2 set, MSR's high nibble reads CTS|DCD.
        assert_eq!(rd(&mut r.uart, MSR) & 0xf0, MSR_CTS | MSR_DCD);
        wr(&mut r.uart, THR, b'x');
        assert!(r.out.contents().is_empty());
        assert_eq!(rd(&mut r.uart, LSR) & LSR_DR, LSR_DR);
        assert_eq!(rd(&mut r.uart, RBR), b'x');
        wr(&mut r.uart, MCR, MCR_LOOP | MCR_DTR | MCR_OUT1);
        assert_eq!(rd(&mut r.uart, MSR) & 0xf0, MSR_DSR | MSR_RI);
    }

    #[test]
    fn serial_msr_deltas_latch_and_clear_on_read() {
        let mut r = rig();
        wr(&mut r.uart, MCR, MCR_LOOP); // all inputs drop
        let msr = rd(&mut r.uart, MSR);
        assert_eq!(msr & MSR_DELTAS, MSR_DCTS | MSR_DDSR | MSR_DDCD);
        assert_eq!(rd(&mut r.uart, MSR) & MSR_DELTAS, 0);
        wr(&mut r.uart, IER, IER_MSI);
        wr(&mut r.uart, MCR, MCR_LOOP | MCR_OUT1);
        wr(&mut r.uart, MCR, MCR_LOOP); // RI falls: trailing edge
        assert_eq!(rd(&mut r.uart, IIR) & IIR_ID_MASK, IIR_MSI);
        assert!(r.irq.level(COM1_IRQ));
        assert_eq!(rd(&mut r.uart, MSR) & MSR_TERI, MSR_TERI);
        assert!(!r.irq.level(COM1_IRQ));
    }

    #[test]
    fn serial_iir_reports_fifo_bits_when_enabled() {
        let mut r = rig();
        assert_eq!(rd(&mut r.uart, IIR), IIR_NO_INT);
        wr(&mut r.uart, FCR, FCR_ENABLE | FCR_CLEAR_RCVR | FCR_CLEAR_XMIT);
        assert_eq!(rd(&mut r.uart, IIR), IIR_FIFO_ENABLED | IIR_NO_INT);
        wr(&mut r.uart, FCR, 0);
        assert_eq!(rd(&mut r.uart, IIR) & IIR_FIFO_ENABLED, 0);
    }

    #[test]
    fn serial_thre_interrupt_on_enable_cleared_by_iir_read_and_rearmed_by_write() {
        let mut r = rig();
        wr(&mut r.uart, IER, IER_THRI);
        assert!(r.irq.level(COM1_IRQ));
        assert_eq!(rd(&mut r.uart, IIR) & IIR_ID_MASK, IIR_THRI);
        assert!(!r.irq.level(COM1_IRQ));
        assert_eq!(rd(&mut r.uart, IIR), IIR_NO_INT);
        wr(&mut r.uart, THR, b'a');
        assert!(r.irq.level(COM1_IRQ));
        assert_eq!(r.irq.rises(COM1_IRQ), 2);
        wr(&mut r.uart, IER, 0);
        assert!(!r.irq.level(COM1_IRQ));
    }

    #[test]
    fn serial_rx_data_interrupt_without_fifo() {
        let mut r = rig();
        wr(&mut r.uart, IER, IER_RDI);
        r.input.push(b"ab");
        r.uart.poll_input();
        assert!(r.irq.level(COM1_IRQ));
        assert_eq!(rd(&mut r.uart, IIR), IIR_RDI);
        assert_eq!(rd(&mut r.uart, RBR), b'a');
        // The one-byte holding register refills from the host queue.
        assert_eq!(rd(&mut r.uart, RBR), b'b');
        assert!(!r.irq.level(COM1_IRQ));
        assert_eq!(rd(&mut r.uart, LSR) & LSR_DR, 0);
    }

    #[test]
    fn serial_fifo_trigger_level_selects_rdi_or_timeout() {
        let mut r = rig();
        wr(&mut r.uart, FCR, FCR_ENABLE | 0x80); // trigger at 8
        assert_eq!(r.uart.rx_trigger(), 8);
        wr(&mut r.uart, IER, IER_RDI);
        r.input.push(b"1234");
        r.uart.poll_input();
        assert_eq!(rd(&mut r.uart, IIR), IIR_FIFO_ENABLED | IIR_CTI);
        r.input.push(b"5678");
        r.uart.poll_input();
        assert_eq!(rd(&mut r.uart, IIR), IIR_FIFO_ENABLED | IIR_RDI);
        let got: Vec<u8> = (0..8).map(|_| rd(&mut r.uart, RBR)).collect();
        assert_eq!(got, b"12345678");
        assert!(!r.irq.level(COM1_IRQ));
    }

    #[test]
    fn serial_fifo_holds_16_and_keeps_the_rest_queued() {
        let mut r = rig();
        wr(&mut r.uart, FCR, FCR_ENABLE);
        r.input.push(&[7u8; 20]);
        r.uart.poll_input();
        assert_eq!(r.input.len(), 4);
        for _ in 0..20 {
            assert_eq!(rd(&mut r.uart, RBR), 7);
        }
        assert_eq!(rd(&mut r.uart, LSR) & (LSR_DR | LSR_OE), 0);
    }

    #[test]
    fn serial_loopback_overrun_sets_oe_and_line_status_interrupt() {
        let mut r = rig();
        wr(&mut r.uart, MCR, MCR_LOOP);
        wr(&mut r.uart, IER, IER_RLSI);
        wr(&mut r.uart, THR, 1);
        wr(&mut r.uart, THR, 2); // no FIFO: holding register full
        assert_eq!(rd(&mut r.uart, IIR), IIR_RLSI);
        assert!(r.irq.level(COM1_IRQ));
        assert_eq!(rd(&mut r.uart, LSR) & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
        assert_eq!(rd(&mut r.uart, LSR) & LSR_OE, 0, "OE clears on read");
        assert!(!r.irq.level(COM1_IRQ));
    }

    #[test]
    fn serial_interrupt_priority_line_status_over_data_over_thre() {
        let mut r = rig();
        wr(&mut r.uart, MCR, MCR_LOOP);
        wr(&mut r.uart, IER, IER_RLSI | IER_RDI | IER_THRI | IER_MSI);
        wr(&mut r.uart, THR, 1);
        wr(&mut r.uart, THR, 2);
        assert_eq!(rd(&mut r.uart, IIR), IIR_RLSI);
        rd(&mut r.uart, LSR);
        assert_eq!(rd(&mut r.uart, IIR), IIR_RDI);
        rd(&mut r.uart, RBR);
        assert_eq!(rd(&mut r.uart, IIR), IIR_THRI);
        assert_eq!(rd(&mut r.uart, IIR), IIR_MSI);
        rd(&mut r.uart, MSR);
        assert_eq!(rd(&mut r.uart, IIR), IIR_NO_INT);
    }

    #[test]
    fn serial_fcr_clear_empties_receive_fifo() {
        let mut r = rig();
        wr(&mut r.uart, FCR, FCR_ENABLE);
        wr(&mut r.uart, MCR, MCR_LOOP);
        wr(&mut r.uart, THR, 1);
        wr(&mut r.uart, THR, 2);
        wr(&mut r.uart, FCR, FCR_ENABLE | FCR_CLEAR_RCVR);
        assert_eq!(rd(&mut r.uart, LSR) & LSR_DR, 0);
    }

    #[test]
    fn serial_loopback_leaves_host_input_queued() {
        let mut r = rig();
        wr(&mut r.uart, MCR, MCR_LOOP);
        r.input.push(b"z");
        r.uart.poll_input();
        assert_eq!(rd(&mut r.uart, LSR) & LSR_DR, 0);
        wr(&mut r.uart, MCR, 0);
        assert_eq!(rd(&mut r.uart, RBR), b'z');
    }

    #[test]
    fn serial_any_offset_and_size_is_answered() {
        let mut r = rig();
        for off in 0..64 {
            r.uart.read(off, 4);
            r.uart.write(off, 8, u64::MAX);
        }
    }
}
