//! Interrupt lines: the handle a device raises and lowers, connected to one input of an interrupt controller.
//!
//! A line is an `Rc` to the controller plus the input number, so cloning it is cheap and a device never
//! knows which controller it feeds (the 8259 today, the I/O APIC later, both at once on a real PC). The
//! machine is single-threaded (wasm32 has one thread; natively the vCPU loop owns every device), so the
//! handle is neither `Send` nor `Sync` and the controller uses interior mutability.

use std::cell::RefCell;
use std::rc::Rc;

/// An interrupt controller's inputs, as seen by the lines that drive them.
pub trait IrqHandler {
    /// Input `line` is now at `level` (true: asserted). Edge-triggered inputs react to false → true.
    fn set_level(&self, line: u32, level: bool);
}

/// One device output wired to one controller input.
#[derive(Clone)]
pub struct IrqLine {
    /// `None`: not connected (writes go nowhere), as a device built before the machine wires it.
    handler: Option<Rc<dyn IrqHandler>>,
    line: u32,
}

impl std::fmt::Debug for IrqLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrqLine")
            .field("line", &self.line)
            .field("connected", &self.handler.is_some())
            .finish()
    }
}

impl IrqLine {
    /// Input `line` of `handler`.
    pub fn new(handler: Rc<dyn IrqHandler>, line: u32) -> IrqLine {
        IrqLine {
            handler: Some(handler),
            line,
        }
    }

    /// A line connected to nothing.
    pub fn disconnected() -> IrqLine {
        IrqLine { handler: None, line: 0 }
    }

    /// The controller input number.
    pub fn number(&self) -> u32 {
        self.line
    }

    /// Drives the line to `level`.
    pub fn set(&self, level: bool) {
        if let Some(h) = &self.handler {
            h.set_level(self.line, level);
        }
    }

    /// Asserts the line.
    pub fn raise(&self) {
        self.set(true);
    }

    /// Deasserts the line.
    pub fn lower(&self) {
        self.set(false);
    }

    /// Raises then lowers: one edge for an edge-triggered input, nothing lasting for a level one.
    pub fn pulse(&self) {
        self.set(true);
        self.set(false);
    }
}

/// A controller stand-in for tests and for the machine's probes: remembers each input's level and counts
/// its rising edges.
#[derive(Debug, Default)]
pub struct IrqRecorder {
    levels: RefCell<Vec<bool>>,
    rises: RefCell<Vec<u32>>,
}

impl IrqRecorder {
    /// A recorder with every input low.
    pub fn new() -> Rc<IrqRecorder> {
        Rc::new(IrqRecorder::default())
    }

    /// Input `line` of the recorder as a line.
    pub fn line(self: &Rc<Self>, line: u32) -> IrqLine {
        IrqLine::new(self.clone(), line)
    }

    /// The current level of input `line`.
    pub fn level(&self, line: u32) -> bool {
        self.levels.borrow().get(line as usize).copied().unwrap_or(false)
    }

    /// How many times input `line` went from low to high.
    pub fn rises(&self, line: u32) -> u32 {
        self.rises.borrow().get(line as usize).copied().unwrap_or(0)
    }
}

impl IrqHandler for IrqRecorder {
    fn set_level(&self, line: u32, level: bool) {
        let i = line as usize;
        let mut levels = self.levels.borrow_mut();
        let mut rises = self.rises.borrow_mut();
        if levels.len() <= i {
            levels.resize(i + 1, false);
            rises.resize(i + 1, 0);
        }
        if level && !levels[i] {
            rises[i] += 1;
        }
        levels[i] = level;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_lower_reach_the_controller_input() {
        let rec = IrqRecorder::new();
        let irq = rec.line(4);
        irq.raise();
        assert!(rec.level(4));
        assert!(!rec.level(3));
        irq.lower();
        assert!(!rec.level(4));
    }

    #[test]
    fn pulse_is_one_rising_edge_and_ends_low() {
        let rec = IrqRecorder::new();
        let irq = rec.line(0);
        irq.pulse();
        irq.pulse();
        assert_eq!(rec.rises(0), 2);
        assert!(!rec.level(0));
    }

    #[test]
    fn clones_drive_the_same_input() {
        let rec = IrqRecorder::new();
        let a = rec.line(1);
        let b = a.clone();
        a.raise();
        b.lower();
        assert!(!rec.level(1));
        assert_eq!(b.number(), 1);
    }

    #[test]
    fn disconnected_line_ignores_everything() {
        let irq = IrqLine::disconnected();
        irq.raise();
        irq.pulse();
    }
}
