//! The devices wired as the PC machine will wire them, driven only through the port-I/O space: what the
//! machine loop of the next issue relies on (PIT → PIC → INTA vector, UART → PIC, debug exit and debugcon).

use std::cell::RefCell;
use std::rc::Rc;

use rqemu_hw::clock::NANOS_PER_SEC;
use rqemu_hw::i8254::PIT_FREQ_HZ;
use rqemu_hw::{
    CharInput, ClockSource, DebugCon, DualPic, ElcrPort, IsaDebugExit, MachineExit, MemSink, PicPort, Pit, PortB,
    Serial, Timers, VirtualClock,
};
use rqemu_softmmu::IoSpace;

struct Pc {
    io: IoSpace,
    pic: Rc<RefCell<DualPic>>,
    timers: Rc<Timers>,
    src: rqemu_hw::ManualClock,
    com1: Rc<RefCell<Serial>>,
    com1_in: CharInput,
    com1_out: MemSink,
    debug_out: MemSink,
    exit: MachineExit,
}

fn pc() -> Pc {
    let (clock, src) = VirtualClock::manual();
    let timers = Timers::new();
    let pic = DualPic::new_shared();
    let mut io = IoSpace::new();
    io.map(0x20, 2, Box::new(PicPort::master(pic.clone()))).unwrap();
    io.map(0xa0, 2, Box::new(PicPort::slave(pic.clone()))).unwrap();
    io.map(0x4d0, 2, Box::new(ElcrPort::new(pic.clone()))).unwrap();
    let pit = Pit::new(clock.clone(), timers.clone(), DualPic::irq_line(&pic, 0));
    io.map(0x40, 4, Box::new(pit.clone())).unwrap();
    io.map(0x61, 1, Box::new(PortB::new(pit, clock))).unwrap();
    let com1_in = CharInput::new();
    let com1_out = MemSink::new();
    let com1 = Rc::new(RefCell::new(Serial::new(
        Box::new(com1_out.clone()),
        com1_in.clone(),
        DualPic::irq_line(&pic, 4),
    )));
    io.map(0x3f8, 8, Box::new(com1.clone())).unwrap();
    let debug_out = MemSink::new();
    io.map(0xe9, 1, Box::new(DebugCon::new(Box::new(debug_out.clone()))))
        .unwrap();
    let exit = MachineExit::new();
    io.map(0xf4, 4, Box::new(IsaDebugExit::new(exit.clone()))).unwrap();
    Pc {
        io,
        pic,
        timers,
        src,
        com1,
        com1_in,
        com1_out,
        debug_out,
        exit,
    }
}

impl Pc {
    fn out(&mut self, port: u16, v: u8) {
        self.io.write(port, 1, u64::from(v));
    }

    fn inb(&mut self, port: u16) -> u8 {
        self.io.read(port, 1) as u8
    }

    /// A guest's PIC setup: vectors 0x20/0x28, everything unmasked.
    fn init_pic(&mut self) {
        for (cmd, data, base, wiring) in [(0x20, 0x21, 0x20, 0x04), (0xa0, 0xa1, 0x28, 0x02)] {
            self.out(cmd, 0x11);
            self.out(data, base);
            self.out(data, wiring);
            self.out(data, 0x01);
            self.out(data, 0x00);
        }
    }

    fn src_now(&self) -> u64 {
        self.src.now_ns()
    }

    /// What the loop does in `hlt`: sleep to the next deadline, run the timers.
    fn sleep_until_interrupt(&mut self) -> bool {
        let Some(deadline) = self.timers.next_deadline() else {
            return false;
        };
        self.src.set(deadline);
        self.timers.run_expired(deadline);
        self.pic.borrow().has_interrupt()
    }
}

#[test]
fn pit_tick_reaches_the_cpu_as_vector_0x20() {
    let mut pc = pc();
    pc.init_pic();
    // 100 Hz, mode 2.
    let count = (PIT_FREQ_HZ / 100) as u16;
    pc.out(0x43, 0x34);
    pc.out(0x40, count as u8);
    pc.out(0x40, (count >> 8) as u8);
    assert_eq!(pc.pic.borrow_mut().acknowledge(), 0x20, "loading the count raises OUT0");
    pc.out(0x20, 0x20); // EOI
    let mut ticks = 0;
    while pc.src_now() < NANOS_PER_SEC / 10 {
        if pc.sleep_until_interrupt() {
            assert_eq!(pc.pic.borrow_mut().acknowledge(), 0x20);
            pc.out(0x20, 0x20);
            ticks += 1;
        }
    }
    assert!((9..=11).contains(&ticks), "{ticks} ticks in 100 ms at 100 Hz");
}

#[test]
fn uart_receive_interrupt_reaches_the_cpu_as_vector_0x24() {
    let mut pc = pc();
    pc.init_pic();
    pc.out(0x3f9, 0x01); // IER: received data
    pc.com1_in.push(b"k");
    pc.com1.borrow_mut().poll_input();
    assert!(pc.pic.borrow().has_interrupt());
    assert_eq!(pc.pic.borrow_mut().acknowledge(), 0x24);
    assert_eq!(pc.inb(0x3fa) & 0x0f, 0x04);
    assert_eq!(pc.inb(0x3f8), b'k');
    pc.out(0x20, 0x20);
    assert!(!pc.pic.borrow().has_interrupt());
}

#[test]
fn output_paths_and_debug_exit_through_ports() {
    let mut pc = pc();
    for &b in b"serial\n" {
        pc.out(0x3f8, b);
    }
    for &b in b"debugcon\n" {
        pc.out(0xe9, b);
    }
    assert_eq!(pc.inb(0xe9), 0xe9);
    assert_eq!(pc.com1_out.contents(), b"serial\n");
    assert_eq!(pc.debug_out.contents(), b"debugcon\n");
    assert_eq!(pc.exit.get(), None);
    pc.io.write(0xf4, 4, 0x31); // outl
    assert_eq!(pc.exit.get(), Some(0x63));
}
