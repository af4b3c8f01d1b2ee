//! The 8254 programmable interval timer: three 16-bit counters at 0x40–0x42, the control port at 0x43,
//! clocked at 1.193182 MHz. Channel 0's output drives IRQ0; channel 2's gate and output are reached through
//! port 0x61 ([`crate::pcspk::PortB`]); channel 1 (DRAM refresh on old PCs) counts but drives nothing.
//!
//! The counters are not stepped: each channel remembers when its count was loaded, and its value and output
//! are computed from the [`VirtualClock`] when read. Channel 0 puts its next output change on [`Timers`], so
//! the machine loop sleeps until then instead of polling; when the loop runs late, the missed rising edge is
//! still delivered (once), as a pulse if needed, so a late tick is delayed but not lost.
//!
//! Emulated: modes 0–5 (6 and 7 alias 2 and 3), the counter-latch and read-back commands (count and
//! status, with the null-count flag), LSB/MSB/word access with its byte toggles, BCD counting, and the gate
//! of channel 2 (a rising gate restarts modes 1, 2, 3 and 5; a low gate holds modes 2 and 3 high).
//! Simplified: a count written takes effect at once in every mode (the chip waits for the end of the period
//! in modes 2 and 3); a low gate does not pause modes 0 and 4; mode 3 with an odd count reads as the even
//! count below it; modes 2 and 3 treat a count of 1 (illegal on the chip) as 2.

use std::cell::RefCell;
use std::rc::Rc;

use rqemu_softmmu::MmioDevice;

use crate::clock::{TimerId, Timers, VirtualClock, NANOS_PER_SEC};
use crate::irq::IrqLine;

/// The input clock: 1.193182 MHz (the 14.31818 MHz PC crystal divided by 12).
pub const PIT_FREQ_HZ: u64 = 1_193_182;
/// The first counter port.
pub const IOBASE: u16 = 0x40;
/// Ports the PIT occupies.
pub const IOSIZE: u32 = 4;
/// The ISA interrupt of channel 0.
pub const IRQ: u32 = 0;
/// Offset of the control-word port.
pub const CONTROL: u64 = 3;

/// Control word: select-counter field (3 = read-back).
pub const CW_SC_SHIFT: u8 = 6;
/// Control word: read/write field (0 = counter latch, 1 = LSB, 2 = MSB, 3 = LSB then MSB).
pub const CW_RW_SHIFT: u8 = 4;
/// Control word: mode field (bits 1–3).
pub const CW_MODE_SHIFT: u8 = 1;
/// Control word: BCD counting.
pub const CW_BCD: u8 = 0x01;
/// Select-counter value of the read-back command.
pub const SC_READ_BACK: u8 = 3;
/// Read-back: do not latch the count (active low).
pub const RB_NO_COUNT: u8 = 0x20;
/// Read-back: do not latch the status (active low).
pub const RB_NO_STATUS: u8 = 0x10;
/// Status byte: output level.
pub const STATUS_OUTPUT: u8 = 0x80;
/// Status byte: null count (a count was written but not yet loaded).
pub const STATUS_NULL_COUNT: u8 = 0x40;

/// Access mode: LSB only.
const RW_LSB: u8 = 1;
/// Access mode: MSB only.
const RW_MSB: u8 = 2;
/// Access mode: LSB then MSB.
const RW_WORD: u8 = 3;

fn from_bcd(v: u16) -> u32 {
    (0..4)
        .rev()
        .fold(0, |acc, i| acc * 10 + u32::from((v >> (4 * i)) & 0xf))
}

fn to_bcd(v: u32) -> u16 {
    let v = v % 10_000;
    ((v / 1000) << 12 | (v / 100 % 10) << 8 | (v / 10 % 10) << 4 | (v % 10)) as u16
}

#[derive(Clone, Debug)]
struct Channel {
    /// The reload value in counts: 1..=0x10000 (binary) or 1..=10000 (BCD).
    count: u32,
    mode: u8,
    rw: u8,
    bcd: bool,
    gate: bool,
    /// A count has been loaded since the last control word.
    armed: bool,
    /// Modes 1 and 5: the gate has triggered the count.
    triggered: bool,
    null_count: bool,
    /// Virtual time the count was loaded (or restarted by the gate).
    load_ns: u64,
    latched_count: Option<u16>,
    latched_status: Option<u8>,
    /// Word access: the next read returns the MSB.
    read_msb: bool,
    /// Word access: the LSB has been written, the MSB comes next.
    write_msb: bool,
    write_lsb: u8,
}

impl Channel {
    fn new(gate: bool) -> Channel {
        Channel {
            count: 0x10000,
            mode: 0,
            rw: RW_WORD,
            bcd: false,
            gate,
            armed: false,
            triggered: false,
            null_count: false,
            load_ns: 0,
            latched_count: None,
            latched_status: None,
            read_msb: false,
            write_msb: false,
            write_lsb: 0,
        }
    }

    fn modulus(&self) -> u64 {
        if self.bcd {
            10_000
        } else {
            0x10000
        }
    }

    /// Input clock ticks since the count was loaded.
    fn ticks(&self, now: u64) -> u64 {
        let ns = u128::from(now.saturating_sub(self.load_ns));
        (ns * u128::from(PIT_FREQ_HZ) / u128::from(NANOS_PER_SEC)) as u64
    }

    /// The virtual time of tick `t` after the load (rounded up, so that `ticks` of it is at least `t`).
    fn tick_ns(&self, t: u64) -> u64 {
        let ns = (u128::from(t) * u128::from(NANOS_PER_SEC)).div_ceil(u128::from(PIT_FREQ_HZ));
        self.load_ns.saturating_add(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The period of modes 2 and 3.
    fn period(&self) -> u64 {
        u64::from(self.count).max(2)
    }

    fn running(&self) -> bool {
        self.armed && (!matches!(self.mode, 1 | 5) || self.triggered)
    }

    fn output_at(&self, d: u64) -> bool {
        let count = u64::from(self.count);
        if !self.armed {
            return self.mode != 0;
        }
        match self.mode {
            0 => d >= count,
            1 => !self.triggered || d >= count,
            2 => !self.gate || d % self.period() != self.period() - 1,
            3 => !self.gate || d % self.period() < self.period().div_ceil(2),
            4 => d != count,
            _ => !self.triggered || d != count,
        }
    }

    /// The first tick after `d` at which the output changes.
    fn next_change(&self, d: u64) -> Option<u64> {
        if !self.running() {
            return None;
        }
        let count = u64::from(self.count);
        match self.mode {
            0 | 1 => (d < count).then_some(count),
            2 | 3 if !self.gate => None,
            2 | 3 => {
                let p = self.period();
                let phase = d % p;
                let mark = if self.mode == 2 { p - 1 } else { p.div_ceil(2) };
                Some(d - phase + if phase < mark { mark } else { p })
            }
            _ if d < count => Some(count),
            _ if d == count => Some(count + 1),
            _ => None,
        }
    }

    /// Rising edges of the output in the ticks `(from, to]`, as far as an edge-triggered input cares.
    fn rose_between(&self, from: u64, to: u64) -> bool {
        match self.mode {
            2 | 3 if self.running() && self.gate => to / self.period() > from / self.period(),
            0 | 1 => {
                let c = u64::from(self.count);
                self.running() && from < c && c <= to
            }
            _ => false,
        }
    }

    fn counter_at(&self, d: u64) -> u32 {
        let count = u64::from(self.count);
        let m = self.modulus();
        let v = match self.mode {
            2 => self.period() - d % self.period(),
            3 => (self.period() - (2 * d) % self.period()) & !1,
            _ if !self.running() => count % m,
            _ => (count % m + m - d % m) % m,
        };
        v as u32
    }

    fn read_value(&self, d: u64) -> u16 {
        let v = self.counter_at(d);
        if self.bcd {
            to_bcd(v)
        } else {
            v as u16
        }
    }

    fn status(&self, d: u64) -> u8 {
        let mut s = (self.rw << CW_RW_SHIFT) | (self.mode << CW_MODE_SHIFT) | u8::from(self.bcd);
        if self.output_at(d) {
            s |= STATUS_OUTPUT;
        }
        if self.null_count {
            s |= STATUS_NULL_COUNT;
        }
        s
    }
}

/// The 8254.
pub struct Pit {
    channels: [Channel; 3],
    clock: Rc<VirtualClock>,
    timers: Rc<Timers>,
    timer: Option<TimerId>,
    irq: IrqLine,
    irq_level: bool,
    /// Channel 0's tick count when its output was last propagated.
    last_tick0: u64,
}

impl Pit {
    /// A PIT reading time from `clock`, scheduling channel 0 on `timers`, driving `irq0`.
    pub fn new(clock: Rc<VirtualClock>, timers: Rc<Timers>, irq0: IrqLine) -> Rc<RefCell<Pit>> {
        let pit = Rc::new(RefCell::new(Pit {
            channels: [Channel::new(true), Channel::new(true), Channel::new(false)],
            clock,
            timers: timers.clone(),
            timer: None,
            irq: irq0,
            irq_level: false,
            last_tick0: 0,
        }));
        let weak = Rc::downgrade(&pit);
        let id = timers.add(Rc::new(move |now| {
            if let Some(p) = weak.upgrade() {
                p.borrow_mut().update_channel0(now);
            }
        }));
        pit.borrow_mut().timer = Some(id);
        pit
    }

    /// A system reset: the channels back to their power-on state (channel 2's gate low), the timer cancelled
    /// and the IRQ 0 output lowered.
    pub fn reset(&mut self) {
        self.channels = [Channel::new(true), Channel::new(true), Channel::new(false)];
        if let Some(id) = self.timer {
            self.timers.cancel(id);
        }
        self.irq_level = false;
        self.irq.set(false);
        self.last_tick0 = 0;
    }

    /// Channel `ch`'s output level now.
    pub fn output(&self, ch: usize) -> bool {
        let c = &self.channels[ch % 3];
        c.output_at(c.ticks(self.clock.now()))
    }

    /// Channel `ch`'s gate input.
    pub fn gate(&self, ch: usize) -> bool {
        self.channels[ch % 3].gate
    }

    /// Drives channel `ch`'s gate (only channel 2's is wired, to port 0x61 bit 0).
    pub fn set_gate(&mut self, ch: usize, level: bool) {
        let now = self.clock.now();
        let ch = ch % 3;
        let c = &mut self.channels[ch];
        if level && !c.gate && c.armed {
            match c.mode {
                1 | 5 => {
                    c.triggered = true;
                    c.load_ns = now;
                }
                2 | 3 => c.load_ns = now,
                _ => {}
            }
        }
        c.gate = level;
        if ch == 0 {
            self.restart_channel0(now);
        }
    }

    /// Channel 0 was reprogrammed: propagate its output and reschedule from its new load time.
    fn restart_channel0(&mut self, now: u64) {
        self.last_tick0 = self.channels[0].ticks(now);
        let level = self.channels[0].output_at(self.last_tick0);
        self.set_irq(level);
        self.schedule(self.last_tick0);
    }

    fn set_irq(&mut self, level: bool) {
        if level != self.irq_level {
            self.irq_level = level;
            self.irq.set(level);
        }
    }

    fn schedule(&mut self, d: u64) {
        let Some(id) = self.timer else { return };
        let c = &self.channels[0];
        match c.next_change(d) {
            Some(t) => self.timers.arm(id, c.tick_ns(t)),
            None => self.timers.cancel(id),
        }
    }

    /// Brings IRQ0 up to date at `now` and schedules the next change (the timer callback).
    pub fn update_channel0(&mut self, now: u64) {
        let c = &self.channels[0];
        let d = c.ticks(now);
        let level = c.output_at(d);
        let rose = c.rose_between(self.last_tick0, d);
        if rose && (self.irq_level == level) {
            // The loop ran late and missed a whole low-high cycle: deliver the edge anyway.
            if level {
                self.irq.lower();
                self.irq.raise();
            } else {
                self.irq.pulse();
            }
        } else {
            self.set_irq(level);
        }
        self.irq_level = level;
        self.last_tick0 = d;
        self.schedule(d);
    }

    fn write_control(&mut self, v: u8, now: u64) {
        let sc = v >> CW_SC_SHIFT;
        if sc == SC_READ_BACK {
            for (i, c) in self.channels.iter_mut().enumerate() {
                if v & (2 << i) == 0 {
                    continue;
                }
                let d = c.ticks(now);
                if v & RB_NO_COUNT == 0 && c.latched_count.is_none() {
                    c.latched_count = Some(c.read_value(d));
                    c.read_msb = false;
                }
                if v & RB_NO_STATUS == 0 && c.latched_status.is_none() {
                    c.latched_status = Some(c.status(d));
                }
            }
            return;
        }
        let ch = usize::from(sc);
        let rw = (v >> CW_RW_SHIFT) & 3;
        let c = &mut self.channels[ch];
        if rw == 0 {
            if c.latched_count.is_none() {
                c.latched_count = Some(c.read_value(c.ticks(now)));
                c.read_msb = false;
            }
            return;
        }
        let mode = (v >> CW_MODE_SHIFT) & 7;
        c.mode = if mode >= 6 { mode - 4 } else { mode };
        c.rw = rw;
        c.bcd = v & CW_BCD != 0;
        c.armed = false;
        c.triggered = false;
        c.null_count = true;
        c.read_msb = false;
        c.write_msb = false;
        c.latched_count = None;
        c.latched_status = None;
        if ch == 0 {
            self.restart_channel0(now);
        }
    }

    fn load_count(&mut self, ch: usize, raw: u16, now: u64) {
        let c = &mut self.channels[ch];
        c.count = match (c.bcd, raw) {
            (true, 0) => 10_000,
            (true, v) => from_bcd(v).max(1),
            (false, 0) => 0x10000,
            (false, v) => u32::from(v),
        };
        c.load_ns = now;
        c.armed = true;
        c.triggered = false;
        c.null_count = false;
        if ch == 0 {
            self.restart_channel0(now);
        }
    }

    fn write_counter(&mut self, ch: usize, v: u8, now: u64) {
        let c = &mut self.channels[ch];
        match c.rw {
            RW_LSB => self.load_count(ch, u16::from(v), now),
            RW_MSB => self.load_count(ch, u16::from(v) << 8, now),
            _ if !c.write_msb => {
                c.write_lsb = v;
                c.write_msb = true;
            }
            _ => {
                c.write_msb = false;
                let raw = u16::from(c.write_lsb) | u16::from(v) << 8;
                self.load_count(ch, raw, now);
            }
        }
    }

    fn read_counter(&mut self, ch: usize, now: u64) -> u8 {
        let c = &mut self.channels[ch];
        if let Some(s) = c.latched_status.take() {
            return s;
        }
        let (value, from_latch) = match c.latched_count {
            Some(v) => (v, true),
            None => (c.read_value(c.ticks(now)), false),
        };
        let (byte, done) = match c.rw {
            RW_LSB => (value as u8, true),
            RW_MSB => ((value >> 8) as u8, true),
            _ if !c.read_msb => {
                c.read_msb = true;
                (value as u8, false)
            }
            _ => {
                c.read_msb = false;
                ((value >> 8) as u8, true)
            }
        };
        if from_latch && done {
            c.latched_count = None;
        }
        byte
    }
}

impl MmioDevice for Pit {
    fn read(&mut self, offset: u64, _size: u32) -> u64 {
        let now = self.clock.now();
        match offset & 3 {
            CONTROL => 0xff, // the control port is write-only
            ch => u64::from(self.read_counter(ch as usize, now)),
        }
    }

    fn write(&mut self, offset: u64, _size: u32, value: u64) {
        let now = self.clock.now();
        match offset & 3 {
            CONTROL => self.write_control(value as u8, now),
            ch => self.write_counter(ch as usize, value as u8, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::irq::IrqRecorder;

    struct Rig {
        pit: Rc<RefCell<Pit>>,
        src: ManualClock,
        timers: Rc<Timers>,
        irq: Rc<IrqRecorder>,
    }

    fn rig() -> Rig {
        let (clock, src) = VirtualClock::manual();
        let timers = Timers::new();
        let irq = IrqRecorder::new();
        let pit = Pit::new(clock, timers.clone(), irq.line(IRQ));
        Rig { pit, src, timers, irq }
    }

    /// Nanoseconds of `t` ticks (rounded up).
    fn ns(t: u64) -> u64 {
        (t * NANOS_PER_SEC).div_ceil(PIT_FREQ_HZ)
    }

    impl Rig {
        fn out(&self, port: u64, v: u8) {
            self.pit.borrow_mut().write(port, 1, u64::from(v));
        }
        fn inb(&self, port: u64) -> u8 {
            self.pit.borrow_mut().read(port, 1) as u8
        }
        fn program(&self, ch: u8, mode: u8, count: u16) {
            self.out(CONTROL, ch << 6 | RW_WORD << 4 | mode << 1);
            self.out(u64::from(ch), count as u8);
            self.out(u64::from(ch), (count >> 8) as u8);
        }
        /// Runs the machine loop until `t` ns: timers fire at their deadlines.
        fn run_until(&self, t: u64) {
            while let Some(d) = self.timers.next_deadline().filter(|&d| d <= t) {
                self.src.set(d);
                self.timers.run_expired(d);
            }
            self.src.set(t);
        }
    }

    #[test]
    fn mode2_rate_generator_gives_one_irq0_edge_per_period() {
        let r = rig();
        r.program(0, 2, 1000);
        // Loading the count raises the output (the first edge), then one edge per period.
        r.run_until(ns(10_000) + 10);
        assert_eq!(r.irq.rises(IRQ), 1 + 10);
    }

    #[test]
    fn reset_stops_channel_0_and_lowers_irq0() {
        let r = rig();
        r.program(0, 3, 100);
        r.run_until(ns(10));
        assert!(r.irq.level(IRQ));
        r.pit.borrow_mut().reset();
        assert!(!r.irq.level(IRQ));
        assert_eq!(r.timers.next_deadline(), None);
        let rises = r.irq.rises(IRQ);
        r.run_until(ns(10_000));
        assert_eq!(r.irq.rises(IRQ), rises, "no ticks after reset until programmed again");
        r.program(0, 2, 1000);
        r.run_until(ns(10_000) + ns(5000) + 10);
        assert!(r.irq.rises(IRQ) > rises);
    }

    #[test]
    fn mode3_square_wave_is_high_half_the_period() {
        let r = rig();
        r.program(0, 3, 100);
        r.run_until(ns(10));
        assert!(r.irq.level(IRQ));
        r.run_until(ns(60));
        assert!(!r.irq.level(IRQ));
        r.run_until(ns(1000) + 10);
        assert_eq!(r.irq.rises(IRQ), 1 + 10, "initial high plus one per period");
    }

    #[test]
    fn mode0_interrupt_on_terminal_count_fires_once() {
        let r = rig();
        r.program(0, 0, 500);
        assert!(!r.irq.level(IRQ));
        r.run_until(ns(499));
        assert!(!r.irq.level(IRQ));
        r.run_until(ns(500));
        assert!(r.irq.level(IRQ));
        r.run_until(ns(200_000));
        assert_eq!(r.irq.rises(IRQ), 1);
        assert_eq!(r.timers.next_deadline(), None);
    }

    #[test]
    fn counter_decrements_with_virtual_time() {
        let r = rig();
        r.program(1, 0, 0x1000);
        r.src.set(ns(0x100));
        let lo = r.inb(1);
        let hi = r.inb(1);
        assert_eq!(u16::from(lo) | u16::from(hi) << 8, 0x0f00);
    }

    #[test]
    fn latch_command_freezes_the_count_until_read() {
        let r = rig();
        r.program(2, 0, 0x2000);
        r.src.set(ns(0x10));
        r.out(CONTROL, 2 << 6); // counter latch, channel 2
        r.src.set(ns(0x800));
        assert_eq!(r.inb(2), 0xf0);
        assert_eq!(r.inb(2), 0x1f);
        // Released: the next read is live.
        assert_eq!(r.inb(2), 0x00);
        assert_eq!(r.inb(2), 0x18);
    }

    #[test]
    fn read_back_latches_status_then_count() {
        let r = rig();
        r.program(0, 2, 0x1234);
        // Read-back of channel 0, count and status.
        r.out(CONTROL, 0xc0 | 0x02);
        let status = r.inb(0);
        assert_eq!(status & 0x3f, RW_WORD << 4 | 2 << 1);
        assert_eq!(status & STATUS_OUTPUT, STATUS_OUTPUT);
        assert_eq!(r.inb(0), 0x34);
        assert_eq!(r.inb(0), 0x12);
    }

    #[test]
    fn null_count_set_by_control_word_cleared_by_count() {
        let r = rig();
        r.out(CONTROL, 1 << 6 | RW_LSB << 4);
        r.out(CONTROL, 0xc0 | RB_NO_COUNT | 0x04);
        assert_eq!(r.inb(1) & STATUS_NULL_COUNT, STATUS_NULL_COUNT);
        r.out(1, 50);
        r.out(CONTROL, 0xc0 | RB_NO_COUNT | 0x04);
        assert_eq!(r.inb(1) & STATUS_NULL_COUNT, 0);
    }

    #[test]
    fn lsb_only_and_msb_only_access() {
        let r = rig();
        r.out(CONTROL, 1 << 6 | RW_LSB << 4);
        r.out(1, 0x80);
        assert_eq!(r.inb(1), 0x80);
        r.out(CONTROL, 1 << 6 | RW_MSB << 4);
        r.out(1, 0x12);
        assert_eq!(r.inb(1), 0x12);
        assert_eq!(r.inb(1), 0x12);
    }

    #[test]
    fn bcd_count_reads_back_in_bcd() {
        let r = rig();
        r.out(CONTROL, 1 << 6 | RW_WORD << 4 | CW_BCD);
        r.out(1, 0x00);
        r.out(1, 0x10); // 1000 decimal
        r.src.set(ns(1));
        assert_eq!(r.inb(1), 0x99);
        assert_eq!(r.inb(1), 0x09);
    }

    #[test]
    fn zero_count_means_65536() {
        let r = rig();
        r.program(0, 2, 0);
        r.run_until(ns(65_536 * 3) + 10);
        assert_eq!(r.irq.rises(IRQ), 1 + 3);
    }

    #[test]
    fn gate_low_holds_mode2_high_and_rising_gate_restarts() {
        let r = rig();
        r.program(2, 2, 100);
        r.pit.borrow_mut().set_gate(2, true);
        r.src.set(ns(99));
        assert!(!r.pit.borrow().output(2));
        r.pit.borrow_mut().set_gate(2, false);
        assert!(r.pit.borrow().output(2));
        r.src.set(ns(150));
        r.pit.borrow_mut().set_gate(2, true);
        r.src.set(ns(150) + ns(50));
        let lo = r.inb(2);
        let hi = r.inb(2);
        assert_eq!(u16::from(lo) | u16::from(hi) << 8, 50);
    }

    #[test]
    fn mode1_one_shot_starts_on_gate_edge() {
        let r = rig();
        r.program(2, 1, 10);
        r.src.set(ns(100));
        assert!(r.pit.borrow().output(2), "waits for a trigger");
        r.pit.borrow_mut().set_gate(2, true);
        assert!(!r.pit.borrow().output(2));
        r.src.set(ns(100) + ns(10));
        assert!(r.pit.borrow().output(2));
    }

    #[test]
    fn mode4_strobe_pulses_low_once() {
        let r = rig();
        r.program(1, 4, 20);
        let out = |t| {
            r.src.set(t);
            r.pit.borrow().output(1)
        };
        assert!(out(ns(19)));
        assert!(!out(ns(20)));
        assert!(out(ns(21)));
    }

    #[test]
    fn late_loop_still_delivers_one_edge() {
        let r = rig();
        r.program(0, 2, 1000);
        assert_eq!(r.irq.rises(IRQ), 1, "loading the count raises the output");
        // The loop wakes long after several periods: one more edge, not a storm, and the timer moves on.
        r.src.set(ns(5500));
        r.timers.run_expired(ns(5500));
        assert_eq!(r.irq.rises(IRQ), 2);
        assert!(r.timers.next_deadline().unwrap() > ns(5500));
    }

    #[test]
    fn control_port_and_any_size_are_answered() {
        let r = rig();
        assert_eq!(r.inb(CONTROL), 0xff);
        for off in 0..16 {
            r.pit.borrow_mut().write(off, 4, u64::MAX);
            r.pit.borrow_mut().read(off, 4);
        }
    }
}
