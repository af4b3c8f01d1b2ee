//! The PC in-process: the port map as the guest sees it (driven through the port space directly, without
//! the translator), the RAM layout and the boot GDT, and the main loop's ends (exit status, fatal exception)
//! with a host that records its waits.

use std::path::PathBuf;
use std::time::Duration;

use rqemu_accel::{CpuExec, ExitRequest};
use rqemu_hw::ManualClock;
use rqemu_softmmu_vl::boot::{GDT, GDT_ADDR};
use rqemu_softmmu_vl::main_loop::{self, Host, Outcome};
use rqemu_softmmu_vl::options::{self, Action, Options};
use rqemu_softmmu_vl::pc::{BootPath, Pc};

/// A host with no input that counts how long it was asked to wait.
#[derive(Default)]
struct FakeHost {
    waits: Vec<Duration>,
}

impl Host for FakeHost {
    fn poll_input(&mut self) -> Vec<u8> {
        Vec::new()
    }

    fn wait(&mut self, timeout: Duration) -> Vec<u8> {
        self.waits.push(timeout);
        Vec::new()
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rqemu-vl-machine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A multiboot image (a.out kludge, loaded at 1 MiB, entry after the 32-byte header) around `code`.
fn kernel(name: &str, code: &[u8]) -> PathBuf {
    let (magic, flags) = (0x1bad_b002u32, 0x0001_0003u32);
    let mut img = Vec::new();
    for w in [
        magic,
        flags,
        0u32.wrapping_sub(magic).wrapping_sub(flags),
        0x10_0000,
        0x10_0000,
        0,
        0,
        0x10_0020,
    ] {
        img.extend_from_slice(&w.to_le_bytes());
    }
    img.extend_from_slice(code);
    let path = scratch(name);
    std::fs::write(&path, img).unwrap();
    path
}

fn options(args: &[&str]) -> Options {
    match options::parse(args).unwrap() {
        Action::Run(o) => *o,
        other => panic!("{other:?}"),
    }
}

fn build(args: &[&str]) -> (Pc, CpuExec, ExitRequest) {
    let exec = CpuExec::new(options(args).accel).unwrap();
    let request = exec.exit_request();
    let pc = Pc::new(&options(args), Box::new(ManualClock::new()), request.clone()).unwrap();
    (pc, exec, request)
}

#[test]
fn ports_reach_the_devices() {
    let com1 = scratch("com1.txt");
    let con = scratch("con.txt");
    let k = kernel("ports.elf", &[0x0f, 0x0b]);
    let serial = format!("file:{}", com1.display());
    let debugcon = format!("file:{}", con.display());
    let (pc, _exec, request) = build(&[
        "-kernel",
        k.to_str().unwrap(),
        "-serial",
        &serial,
        "-debugcon",
        &debugcon,
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
    ]);
    let mem = pc.cpu.memory();
    mem.with(|m| {
        let io = m.io();
        for &b in b"ok" {
            io.write(0x3f8, 1, u64::from(b));
            io.write(0xe9, 1, u64::from(b));
        }
        // UART line status: transmitter empty; the debug console's readback; an unclaimed port.
        assert_eq!(io.read(0x3fd, 1) & 0x60, 0x60);
        assert_eq!(io.read(0xe9, 1), 0xe9);
        assert_eq!(io.read(0x80, 1), 0xff);
        // PIC: the mask register reads back; ELCR too.
        io.write(0x21, 1, 0xfb);
        assert_eq!(io.read(0x21, 1), 0xfb);
        io.write(0x4d0, 1, 0x20);
        assert_eq!(io.read(0x4d0, 1), 0x20);
        // PIT channel 0 latched count after programming it.
        io.write(0x43, 1, 0x34);
        io.write(0x40, 1, 0x00);
        io.write(0x40, 1, 0x10);
        io.write(0x43, 1, 0x00);
        let lo = io.read(0x40, 1);
        let hi = io.read(0x40, 1);
        assert_eq!(hi << 8 | lo, 0x1000);
        assert!(!request.is_set());
        io.write(0xf6, 1, 0x2a);
    });
    assert_eq!(pc.exit.get(), Some(85));
    assert!(request.is_set(), "isa-debug-exit stops the CPU loop");
    assert_eq!(std::fs::read(&com1).unwrap(), b"ok");
    assert_eq!(std::fs::read(&con).unwrap(), b"ok");
}

#[test]
fn multiboot_start_writes_the_gdt_and_the_info() {
    let k = kernel("start.elf", &[0x0f, 0x0b]);
    let (pc, _, _) = build(&["-kernel", k.to_str().unwrap(), "-append", "x=1", "-m", "64"]);
    let BootPath::Multiboot(boot) = &pc.boot else {
        panic!("{:?}", pc.boot)
    };
    assert_eq!(boot.entry, 0x10_0020);
    let mut gdt = [0u8; 24];
    pc.read_phys(GDT_ADDR, &mut gdt);
    assert_eq!(&gdt[8..16], &GDT[1].to_le_bytes());
    // mem_upper: 64 MiB minus the first, in KiB.
    let mut info = [0u8; 12];
    pc.read_phys(u64::from(boot.info_addr), &mut info);
    assert_eq!(u32::from_le_bytes(info[4..8].try_into().unwrap()), 639);
    assert_eq!(u32::from_le_bytes(info[8..12].try_into().unwrap()), 63 * 1024);
    assert_eq!(pc.cpu.state().regs[3], u64::from(boot.info_addr));
}

#[test]
fn large_memory_continues_above_4g() {
    let k = kernel("big.elf", &[0x0f, 0x0b]);
    let (pc, _, _) = build(&["-kernel", k.to_str().unwrap(), "-m", "4G"]);
    assert_eq!(pc.layout.below_4g, 0xe000_0000);
    assert_eq!(pc.layout.above_4g, 0x2000_0000);
    pc.cpu.memory().with(|m| {
        m.space_mut().write_bytes(0x1_0000_0000, b"hi");
        let mut b = [0u8; 2];
        m.space_mut().read_bytes(0x1_0000_0000, &mut b);
        assert_eq!(&b, b"hi");
        // The hole reads all ones.
        let mut h = [0u8; 1];
        m.space_mut().read_bytes(0xf000_0000, &mut h);
        assert_eq!(h[0], 0xff);
    });
}

#[test]
fn main_loop_ends_with_the_exit_status() {
    let k = kernel("exit.elf", &[0xeb, 0xfe]); // jmp $
    let (mut pc, mut exec, request) = build(&["-kernel", k.to_str().unwrap()]);
    pc.exit.request(7);
    request.set();
    assert_eq!(
        main_loop::run(&mut pc, &mut exec, &mut FakeHost::default()),
        Outcome::Exit(7)
    );
}

#[test]
fn main_loop_ends_on_a_triple_fault_with_no_reboot() {
    let k = kernel("ud.elf", &[0x90, 0x0f, 0x0b]); // nop; ud2 (no IDT: a triple fault)
    let (mut pc, mut exec, _) = build(&["-kernel", k.to_str().unwrap(), "-no-reboot"]);
    assert_eq!(
        main_loop::run(&mut pc, &mut exec, &mut FakeHost::default()),
        Outcome::Exit(0)
    );
}

#[test]
fn reset_puts_the_cpu_and_devices_back_and_reloads_the_kernel() {
    let k = kernel("reset.elf", &[0xeb, 0xfe]); // jmp $
    let (mut pc, _exec, _) = build(&["-kernel", k.to_str().unwrap()]);
    let entry = pc.cpu.state().clone();
    // The guest changed registers, its code, the GDT and a RAM byte the boot setup does not write, and
    // programmed the PIC.
    pc.cpu.state_mut().regs[3] = 0xdead;
    pc.cpu.state_mut().rip = 0x1234;
    pc.cpu.state_mut().cr[0] |= 1 << 31;
    let mem = pc.cpu.memory();
    mem.with(|m| {
        let space = m.space_mut();
        space.write_bytes(0x10_0020, &[0xf4, 0xf4]);
        space.write_bytes(GDT_ADDR, &[0xff; 8]);
        space.write_bytes(0x500, &[0x42]);
        m.io().write(0x21, 1, 0xfe);
    });
    assert_eq!(pc.pic.borrow_mut().read_port(0, 1), 0xfe);
    pc.reset().unwrap();
    let s = pc.cpu.state();
    assert_eq!(
        (s.regs, s.rip, s.cr[0], s.rflags()),
        (entry.regs, entry.rip, entry.cr[0], entry.rflags())
    );
    assert_eq!(s.segs, entry.segs);
    assert_eq!((s.gdt.base, s.gdt.limit), (entry.gdt.base, entry.gdt.limit));
    assert!(matches!(pc.boot, BootPath::Multiboot(_)));
    let (mut code, mut gdt, mut kept) = ([0u8; 2], [0u8; 8], [0u8; 1]);
    pc.read_phys(0x10_0020, &mut code);
    pc.read_phys(GDT_ADDR, &mut gdt);
    pc.read_phys(0x500, &mut kept);
    assert_eq!(code, [0xeb, 0xfe], "the kernel is loaded again");
    assert_eq!(gdt, [0; 8], "the boot GDT is written again");
    assert_eq!(kept, [0x42], "RAM is not cleared");
    assert_eq!(pc.pic.borrow_mut().read_port(0, 1), 0, "the PIC is reset");
}
