//! The PC's two cascaded 8259A programmable interrupt controllers (master at 0x20, slave at 0xa0 on the
//! master's IR2) and the PIIX-style edge/level control registers (ELCR at 0x4d0/0x4d1).
//!
//! Devices drive the 16 inputs through [`IrqLine`]s made by [`DualPic::irq_line`]; the CPU loop asks
//! [`DualPic::has_interrupt`] before each TB and, when interrupts are enabled, takes the vector with
//! [`DualPic::acknowledge`] (the INTA cycle). Port access goes through the small [`PicPort`] and
//! [`ElcrPort`] adapters, which share the controller.
//!
//! Emulated: ICW1–ICW4 (single or cascaded, ICW4 optional, LTIM), OCW1 (IMR), OCW2 (non-specific,
//! specific and rotating EOI, rotate in auto-EOI, set priority), OCW3 (read IRR/ISR, poll, special mask);
//! auto-EOI, special fully nested mode on the master, edge or level triggering per input (ELCR, or LTIM for
//! a whole chip), and the spurious IRQ7/IRQ15 answer when the request vanished before INTA.
//! Poll mode: reading the command port after an OCW3 poll returns `0x80 | level` and acknowledges that
//! level as INTA would (the cascade is not followed: a poll of the master that finds IR2 reports 2), or 0.
//! Not emulated: 8080/8085 mode (ICW1 bit 2 call address interval), buffered mode (ICW4 bits 2–3).

use std::cell::RefCell;
use std::rc::Rc;

use rqemu_softmmu::MmioDevice;

use crate::irq::{IrqHandler, IrqLine};

/// The master's command port.
pub const MASTER_IOBASE: u16 = 0x20;
/// The slave's command port.
pub const SLAVE_IOBASE: u16 = 0xa0;
/// The master's ELCR port (the slave's is the next one).
pub const ELCR_IOBASE: u16 = 0x4d0;
/// The master input the slave's output drives.
pub const CASCADE_IRQ: u32 = 2;

/// ICW1 (command port, bit 4 set): start initialization.
pub const ICW1_INIT: u8 = 0x10;
/// ICW1: ICW4 follows.
pub const ICW1_IC4: u8 = 0x01;
/// ICW1: single chip (no ICW3).
pub const ICW1_SNGL: u8 = 0x02;
/// ICW1: level-triggered inputs for the whole chip.
pub const ICW1_LTIM: u8 = 0x08;
/// ICW4: automatic end of interrupt.
pub const ICW4_AEOI: u8 = 0x02;
/// ICW4: special fully nested mode.
pub const ICW4_SFNM: u8 = 0x10;
/// Command port, bit 4 clear and bit 3 set: OCW3 (else OCW2).
pub const OCW3_SELECT: u8 = 0x08;
/// OCW3: the read-register command is valid.
pub const OCW3_RR: u8 = 0x02;
/// OCW3: read ISR (else IRR).
pub const OCW3_RIS: u8 = 0x01;
/// OCW3: poll command.
pub const OCW3_POLL: u8 = 0x04;
/// OCW3: the special-mask command is valid.
pub const OCW3_ESMM: u8 = 0x40;
/// OCW3: set special mask mode (with ESMM).
pub const OCW3_SMM: u8 = 0x20;
/// OCW2 command: rotate in auto-EOI mode, clear.
pub const OCW2_ROTATE_AEOI_CLEAR: u8 = 0;
/// OCW2 command: non-specific EOI.
pub const OCW2_EOI: u8 = 1;
/// OCW2 command: no operation.
pub const OCW2_NOP: u8 = 2;
/// OCW2 command: specific EOI (level in bits 0–2).
pub const OCW2_SPECIFIC_EOI: u8 = 3;
/// OCW2 command: rotate in auto-EOI mode, set.
pub const OCW2_ROTATE_AEOI_SET: u8 = 4;
/// OCW2 command: rotate on non-specific EOI.
pub const OCW2_ROTATE_EOI: u8 = 5;
/// OCW2 command: set priority (bits 0–2 become the lowest).
pub const OCW2_SET_PRIORITY: u8 = 6;
/// OCW2 command: rotate on specific EOI.
pub const OCW2_ROTATE_SPECIFIC_EOI: u8 = 7;
/// The level answered when a request vanished before INTA.
pub const SPURIOUS_LEVEL: u8 = 7;
/// ELCR bits that can be set on the master: IRQ0–2 are always edge-triggered on a PC.
pub const ELCR_MASTER_MASK: u8 = 0xf8;
/// ELCR bits that can be set on the slave: IRQ8 and IRQ13 are always edge-triggered.
pub const ELCR_SLAVE_MASK: u8 = 0xde;

/// Where a chip is in its initialization sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Init {
    Ready,
    Icw2,
    Icw3,
    Icw4,
}

/// One 8259A.
#[derive(Clone, Debug)]
struct Pic {
    irr: u8,
    isr: u8,
    imr: u8,
    elcr: u8,
    elcr_mask: u8,
    /// Input levels as last driven, to detect rising edges.
    input: u8,
    /// The level with the highest priority is `priority_add` (rotation).
    priority_add: u8,
    vector_base: u8,
    init: Init,
    needs_icw4: bool,
    single: bool,
    ltim: bool,
    auto_eoi: bool,
    rotate_on_auto_eoi: bool,
    special_fully_nested: bool,
    special_mask: bool,
    read_isr: bool,
    poll: bool,
    is_master: bool,
}

impl Pic {
    fn new(is_master: bool, elcr_mask: u8) -> Pic {
        Pic {
            irr: 0,
            isr: 0,
            imr: 0,
            elcr: 0,
            elcr_mask,
            input: 0,
            priority_add: 0,
            vector_base: 0,
            init: Init::Ready,
            needs_icw4: false,
            single: false,
            ltim: false,
            auto_eoi: false,
            rotate_on_auto_eoi: false,
            special_fully_nested: false,
            special_mask: false,
            read_isr: false,
            poll: false,
            is_master,
        }
    }

    fn level_triggered(&self, mask: u8) -> bool {
        self.ltim || self.elcr & mask != 0
    }

    fn set_input(&mut self, n: u8, level: bool) {
        let mask = 1u8 << (n & 7);
        if self.level_triggered(mask) {
            if level {
                self.irr |= mask;
            } else {
                self.irr &= !mask;
            }
        } else if level && self.input & mask == 0 {
            self.irr |= mask;
        }
        if level {
            self.input |= mask;
        } else {
            self.input &= !mask;
        }
    }

    /// Priority rank (0 highest) of the best level in `mask`, or 8 for none.
    fn best_priority(&self, mask: u8) -> u8 {
        (0..8)
            .find(|p| mask & (1 << ((p + self.priority_add) & 7)) != 0)
            .unwrap_or(8)
    }

    /// The level this chip would present to INTA now.
    fn pending(&self) -> Option<u8> {
        let p = self.best_priority(self.irr & !self.imr);
        if p == 8 {
            return None;
        }
        let mut in_service = self.isr;
        if self.special_mask {
            in_service &= !self.imr;
        }
        if self.special_fully_nested && self.is_master {
            // The cascade stays open so that a higher slave input can nest.
            in_service &= !(1 << CASCADE_IRQ);
        }
        (p < self.best_priority(in_service)).then_some((p + self.priority_add) & 7)
    }

    /// INTA for `level`: moves it from IRR to ISR (edge) or just into ISR (level: the device holds it).
    fn ack(&mut self, level: u8) {
        let mask = 1 << level;
        if !self.level_triggered(mask) {
            self.irr &= !mask;
        }
        if self.auto_eoi {
            if self.rotate_on_auto_eoi {
                self.priority_add = (level + 1) & 7;
            }
        } else {
            self.isr |= mask;
        }
    }

    fn write_command(&mut self, v: u8) {
        if v & ICW1_INIT != 0 {
            self.irr = 0;
            self.isr = 0;
            self.imr = 0;
            self.input = 0;
            self.priority_add = 0;
            self.special_mask = false;
            self.read_isr = false;
            self.poll = false;
            self.auto_eoi = false;
            self.rotate_on_auto_eoi = false;
            self.special_fully_nested = false;
            self.needs_icw4 = v & ICW1_IC4 != 0;
            self.single = v & ICW1_SNGL != 0;
            self.ltim = v & ICW1_LTIM != 0;
            self.init = Init::Icw2;
        } else if v & OCW3_SELECT != 0 {
            if v & OCW3_POLL != 0 {
                self.poll = true;
            }
            if v & OCW3_RR != 0 {
                self.read_isr = v & OCW3_RIS != 0;
            }
            if v & OCW3_ESMM != 0 {
                self.special_mask = v & OCW3_SMM != 0;
            }
        } else {
            let level = v & 7;
            match v >> 5 {
                OCW2_ROTATE_AEOI_CLEAR => self.rotate_on_auto_eoi = false,
                OCW2_ROTATE_AEOI_SET => self.rotate_on_auto_eoi = true,
                cmd @ (OCW2_EOI | OCW2_ROTATE_EOI) => {
                    let p = self.best_priority(self.isr);
                    if p != 8 {
                        let served = (p + self.priority_add) & 7;
                        self.isr &= !(1 << served);
                        if cmd == OCW2_ROTATE_EOI {
                            self.priority_add = (served + 1) & 7;
                        }
                    }
                }
                OCW2_SPECIFIC_EOI => self.isr &= !(1 << level),
                OCW2_SET_PRIORITY => self.priority_add = (level + 1) & 7,
                OCW2_ROTATE_SPECIFIC_EOI => {
                    self.isr &= !(1 << level);
                    self.priority_add = (level + 1) & 7;
                }
                _ => {} // OCW2_NOP
            }
        }
    }

    fn write_data(&mut self, v: u8) {
        self.init = match self.init {
            Init::Ready => {
                self.imr = v;
                Init::Ready
            }
            Init::Icw2 => {
                self.vector_base = v & 0xf8;
                match (self.single, self.needs_icw4) {
                    (false, _) => Init::Icw3,
                    (true, true) => Init::Icw4,
                    (true, false) => Init::Ready,
                }
            }
            // ICW3 describes the wiring, which is fixed on a PC.
            Init::Icw3 if self.needs_icw4 => Init::Icw4,
            Init::Icw3 => Init::Ready,
            Init::Icw4 => {
                self.auto_eoi = v & ICW4_AEOI != 0;
                self.special_fully_nested = v & ICW4_SFNM != 0;
                Init::Ready
            }
        };
    }
}

/// The master/slave pair.
#[derive(Clone, Debug)]
pub struct DualPic {
    chips: [Pic; 2],
}

impl Default for DualPic {
    fn default() -> Self {
        DualPic::new()
    }
}

impl DualPic {
    /// Both chips after power-on (uninitialized: vector base 0, nothing masked, all edge-triggered).
    pub fn new() -> DualPic {
        DualPic {
            chips: [Pic::new(true, ELCR_MASTER_MASK), Pic::new(false, ELCR_SLAVE_MASK)],
        }
    }

    /// A system reset: both chips back to their power-on state (as [`DualPic::new`]).
    pub fn reset(&mut self) {
        *self = DualPic::new();
    }

    /// A pair shared by the port adapters, the lines and the CPU loop.
    pub fn new_shared() -> Rc<RefCell<DualPic>> {
        Rc::new(RefCell::new(DualPic::new()))
    }

    /// A line driving input `irq` (0–15) of `pic`.
    pub fn irq_line(pic: &Rc<RefCell<DualPic>>, irq: u32) -> IrqLine {
        IrqLine::new(pic.clone(), irq)
    }

    /// Drives input `irq` (0–7 master, 8–15 slave; others are ignored) to `level`.
    pub fn set_irq(&mut self, irq: u32, level: bool) {
        if irq < 16 {
            self.chips[(irq >> 3) as usize].set_input((irq & 7) as u8, level);
            self.update_cascade();
        }
    }

    /// The slave's INT output is a level on the master's IR2: the request follows it (latching its edge
    /// would keep a request the slave already withdrew and turn it into a spurious IRQ15).
    fn update_cascade(&mut self) {
        let slave = self.chips[1].pending().is_some();
        let mask = 1u8 << CASCADE_IRQ;
        let master = &mut self.chips[0];
        if slave {
            master.irr |= mask;
            master.input |= mask;
        } else {
            master.irr &= !mask;
            master.input &= !mask;
        }
    }

    /// Whether the master asserts INTR: the CPU should take an interrupt when IF allows.
    pub fn has_interrupt(&self) -> bool {
        self.chips[0].pending().is_some()
    }

    /// The INTA cycle: returns the vector to deliver and marks it in service. When the request went away
    /// since [`has_interrupt`](Self::has_interrupt), the answer is the spurious IRQ7 (or IRQ15 through the
    /// cascade) vector, with nothing put in service, as the chip does.
    pub fn acknowledge(&mut self) -> u8 {
        let vector = match self.chips[0].pending() {
            Some(level) => {
                self.chips[0].ack(level);
                if level == CASCADE_IRQ as u8 {
                    match self.chips[1].pending() {
                        Some(l2) => {
                            self.chips[1].ack(l2);
                            self.chips[1].vector_base | l2
                        }
                        None => self.chips[1].vector_base | SPURIOUS_LEVEL,
                    }
                } else {
                    self.chips[0].vector_base | level
                }
            }
            None => self.chips[0].vector_base | SPURIOUS_LEVEL,
        };
        self.update_cascade();
        vector
    }

    /// A port read on chip `chip` (0 master, 1 slave) at `offset` (0 command, 1 data).
    pub fn read_port(&mut self, chip: usize, offset: u64) -> u8 {
        let c = chip & 1;
        let value = if offset & 1 == 0 {
            let pic = &mut self.chips[c];
            if pic.poll {
                pic.poll = false;
                match pic.pending() {
                    Some(level) => {
                        pic.ack(level);
                        0x80 | level
                    }
                    None => 0,
                }
            } else if pic.read_isr {
                pic.isr
            } else {
                pic.irr
            }
        } else {
            self.chips[c].imr
        };
        self.update_cascade();
        value
    }

    /// A port write on chip `chip` at `offset`.
    pub fn write_port(&mut self, chip: usize, offset: u64, value: u8) {
        let pic = &mut self.chips[chip & 1];
        if offset & 1 == 0 {
            pic.write_command(value);
        } else {
            pic.write_data(value);
        }
        self.update_cascade();
    }

    /// The ELCR of chip `chip`.
    pub fn elcr(&self, chip: usize) -> u8 {
        self.chips[chip & 1].elcr
    }

    /// Sets the ELCR of chip `chip` (bits fixed to edge on a PC stay clear).
    pub fn set_elcr(&mut self, chip: usize, value: u8) {
        let pic = &mut self.chips[chip & 1];
        pic.elcr = value & pic.elcr_mask;
        self.update_cascade();
    }

    /// The vector base programmed by ICW2 of chip `chip`.
    pub fn vector_base(&self, chip: usize) -> u8 {
        self.chips[chip & 1].vector_base
    }
}

impl IrqHandler for RefCell<DualPic> {
    fn set_level(&self, line: u32, level: bool) {
        self.borrow_mut().set_irq(line, level);
    }
}

/// The two command/data ports of one chip, for the port-I/O space.
pub struct PicPort {
    pic: Rc<RefCell<DualPic>>,
    chip: usize,
}

impl PicPort {
    /// The master's ports (map at [`MASTER_IOBASE`], 2 ports).
    pub fn master(pic: Rc<RefCell<DualPic>>) -> PicPort {
        PicPort { pic, chip: 0 }
    }

    /// The slave's ports (map at [`SLAVE_IOBASE`], 2 ports).
    pub fn slave(pic: Rc<RefCell<DualPic>>) -> PicPort {
        PicPort { pic, chip: 1 }
    }
}

impl MmioDevice for PicPort {
    fn read(&mut self, offset: u64, _size: u32) -> u64 {
        u64::from(self.pic.borrow_mut().read_port(self.chip, offset))
    }

    fn write(&mut self, offset: u64, _size: u32, value: u64) {
        self.pic.borrow_mut().write_port(self.chip, offset, value as u8);
    }
}

/// Both ELCR ports (map at [`ELCR_IOBASE`], 2 ports; offset 0 master, 1 slave).
pub struct ElcrPort {
    pic: Rc<RefCell<DualPic>>,
}

impl ElcrPort {
    /// The ELCR pair of `pic`.
    pub fn new(pic: Rc<RefCell<DualPic>>) -> ElcrPort {
        ElcrPort { pic }
    }
}

impl MmioDevice for ElcrPort {
    fn read(&mut self, offset: u64, size: u32) -> u64 {
        let pic = self.pic.borrow();
        let lo = u64::from(pic.elcr((offset & 1) as usize));
        if size >= 2 && offset & 1 == 0 {
            lo | u64::from(pic.elcr(1)) << 8
        } else {
            lo
        }
    }

    fn write(&mut self, offset: u64, size: u32, value: u64) {
        let mut pic = self.pic.borrow_mut();
        pic.set_elcr((offset & 1) as usize, value as u8);
        if size >= 2 && offset & 1 == 0 {
            pic.set_elcr(1, (value >> 8) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BIOS/Linux sequence: edge, cascaded, ICW4, vectors 0x20 and 0x28.
    fn init(pic: &mut DualPic, icw4: u8) {
        pic.write_port(0, 0, ICW1_INIT | ICW1_IC4);
        pic.write_port(0, 1, 0x20);
        pic.write_port(0, 1, 0x04);
        pic.write_port(0, 1, icw4);
        pic.write_port(1, 0, ICW1_INIT | ICW1_IC4);
        pic.write_port(1, 1, 0x28);
        pic.write_port(1, 1, 0x02);
        pic.write_port(1, 1, icw4);
        pic.write_port(0, 1, 0);
        pic.write_port(1, 1, 0);
    }

    fn ready() -> DualPic {
        let mut pic = DualPic::new();
        init(&mut pic, 0x01);
        pic
    }

    fn eoi(pic: &mut DualPic, chip: usize) {
        pic.write_port(chip, 0, OCW2_EOI << 5);
    }

    #[test]
    fn icw_sequence_sets_vector_bases() {
        let pic = ready();
        assert_eq!(pic.vector_base(0), 0x20);
        assert_eq!(pic.vector_base(1), 0x28);
    }

    #[test]
    fn edge_input_delivers_its_vector_once() {
        let mut pic = ready();
        pic.set_irq(1, true);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x21);
        assert!(!pic.has_interrupt(), "in service and the edge is consumed");
        eoi(&mut pic, 0);
        assert!(!pic.has_interrupt(), "still high, but no new edge");
        pic.set_irq(1, false);
        pic.set_irq(1, true);
        assert!(pic.has_interrupt());
    }

    #[test]
    fn slave_interrupt_arrives_through_the_cascade() {
        let mut pic = ready();
        pic.set_irq(12, true);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x2c);
        pic.write_port(1, 0, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        assert_eq!(pic.read_port(1, 0), 1 << 4);
        pic.write_port(0, 0, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        assert_eq!(pic.read_port(0, 0), 1 << 2);
        eoi(&mut pic, 1);
        eoi(&mut pic, 0);
        pic.write_port(0, 0, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        assert_eq!(pic.read_port(0, 0), 0);
    }

    #[test]
    fn imr_masks_an_input_until_unmasked() {
        let mut pic = ready();
        pic.write_port(0, 1, 0x01);
        pic.set_irq(0, true);
        assert!(!pic.has_interrupt());
        assert_eq!(pic.read_port(0, 1), 0x01);
        pic.write_port(0, 1, 0x00);
        assert!(pic.has_interrupt());
        assert_eq!(pic.acknowledge(), 0x20);
    }

    #[test]
    fn higher_priority_nests_lower_waits_for_eoi() {
        let mut pic = ready();
        pic.set_irq(3, true);
        assert_eq!(pic.acknowledge(), 0x23);
        pic.set_irq(4, true);
        assert!(!pic.has_interrupt(), "IRQ4 waits behind IRQ3 in service");
        pic.set_irq(1, true);
        assert_eq!(pic.acknowledge(), 0x21, "IRQ1 nests");
        eoi(&mut pic, 0); // ends IRQ1, the highest in service
        eoi(&mut pic, 0); // ends IRQ3
        assert_eq!(pic.acknowledge(), 0x24);
    }

    #[test]
    fn irr_read_shows_requests() {
        let mut pic = ready();
        pic.write_port(0, 1, 0xff);
        pic.set_irq(5, true);
        pic.write_port(0, 0, OCW3_SELECT | OCW3_RR);
        assert_eq!(pic.read_port(0, 0), 1 << 5);
    }

    #[test]
    fn specific_eoi_clears_the_named_level() {
        let mut pic = ready();
        pic.set_irq(3, true);
        pic.acknowledge();
        pic.set_irq(1, true);
        pic.acknowledge();
        pic.write_port(0, 0, (OCW2_SPECIFIC_EOI << 5) | 3);
        pic.write_port(0, 0, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        assert_eq!(pic.read_port(0, 0), 1 << 1);
    }

    #[test]
    fn level_triggered_input_via_elcr_stays_requested_while_high() {
        let pic = DualPic::new_shared();
        init(&mut pic.borrow_mut(), 0x01);
        let mut elcr = ElcrPort::new(pic.clone());
        elcr.write(1, 1, 1 << 3); // IRQ11
        assert_eq!(elcr.read(0, 2), 0x0800);
        let line = DualPic::irq_line(&pic, 11);
        line.raise();
        assert_eq!(pic.borrow_mut().acknowledge(), 0x2b);
        eoi(&mut pic.borrow_mut(), 1);
        eoi(&mut pic.borrow_mut(), 0);
        assert!(pic.borrow().has_interrupt(), "still asserted: requested again");
        line.lower();
        assert!(!pic.borrow().has_interrupt());
    }

    #[test]
    fn elcr_cannot_make_timer_keyboard_or_cascade_level() {
        let mut pic = DualPic::new();
        pic.set_elcr(0, 0xff);
        pic.set_elcr(1, 0xff);
        assert_eq!(pic.elcr(0), ELCR_MASTER_MASK);
        assert_eq!(pic.elcr(1), ELCR_SLAVE_MASK);
    }

    #[test]
    fn auto_eoi_leaves_nothing_in_service() {
        let mut pic = DualPic::new();
        init(&mut pic, 0x01 | ICW4_AEOI);
        pic.set_irq(4, true);
        assert_eq!(pic.acknowledge(), 0x24);
        pic.write_port(0, 0, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        assert_eq!(pic.read_port(0, 0), 0);
        pic.set_irq(6, true);
        assert!(pic.has_interrupt());
    }

    #[test]
    fn rotate_on_eoi_makes_served_level_lowest() {
        let mut pic = ready();
        pic.set_irq(0, true);
        pic.set_irq(1, true);
        assert_eq!(pic.acknowledge(), 0x20);
        pic.write_port(0, 0, OCW2_ROTATE_EOI << 5);
        pic.set_irq(0, false);
        pic.set_irq(0, true);
        // IRQ0 is now the lowest priority: IRQ1 goes first.
        assert_eq!(pic.acknowledge(), 0x21);
    }

    #[test]
    fn set_priority_changes_the_order() {
        let mut pic = ready();
        pic.write_port(0, 0, (OCW2_SET_PRIORITY << 5) | 4); // IRQ5 highest
        pic.set_irq(3, true);
        pic.set_irq(6, true);
        assert_eq!(pic.acknowledge(), 0x26);
    }

    #[test]
    fn vanished_request_is_spurious_irq7_and_irq15() {
        let mut pic = ready();
        assert_eq!(pic.acknowledge(), 0x27);
        pic.write_port(0, 0, OCW3_SELECT | OCW3_RR | OCW3_RIS);
        assert_eq!(pic.read_port(0, 0), 0, "spurious is not put in service");
        // A level-triggered slave input dropping between INTR and INTA gives IRQ15's vector.
        pic.set_elcr(1, 1 << 2);
        pic.set_irq(10, true);
        pic.chips[1].irr = 0; // the request vanishes after the master latched IR2
        assert_eq!(pic.acknowledge(), 0x2f);
    }

    #[test]
    fn poll_mode_returns_and_acknowledges_highest_request() {
        let mut pic = ready();
        pic.write_port(0, 1, !(1 << 6));
        pic.set_irq(6, true);
        pic.write_port(0, 0, OCW3_SELECT | OCW3_POLL);
        assert_eq!(pic.read_port(0, 0), 0x86);
        pic.write_port(0, 0, OCW3_SELECT | OCW3_POLL);
        assert_eq!(pic.read_port(0, 0), 0);
    }

    #[test]
    fn special_mask_mode_lets_lower_levels_in() {
        let mut pic = ready();
        pic.set_irq(2 + 1, true);
        assert_eq!(pic.acknowledge(), 0x23);
        pic.write_port(0, 1, 1 << 3); // mask the level in service
        pic.write_port(0, 0, OCW3_SELECT | OCW3_ESMM | OCW3_SMM);
        pic.set_irq(5, true);
        assert_eq!(pic.acknowledge(), 0x25);
    }

    #[test]
    fn single_mode_without_icw4_is_ready_after_icw2() {
        let mut pic = DualPic::new();
        pic.write_port(0, 0, ICW1_INIT | ICW1_SNGL);
        pic.write_port(0, 1, 0x40);
        pic.write_port(0, 1, 0xfe); // OCW1, not ICW3
        assert_eq!(pic.read_port(0, 1), 0xfe);
        assert_eq!(pic.vector_base(0), 0x40);
    }

    #[test]
    fn ports_answer_any_offset_and_size() {
        let pic = DualPic::new_shared();
        let mut p = PicPort::slave(pic.clone());
        for off in 0..8 {
            p.write(off, 4, u64::MAX);
            p.read(off, 4);
        }
        let mut e = ElcrPort::new(pic);
        e.write(5, 8, u64::MAX);
        e.read(7, 8);
    }
}
