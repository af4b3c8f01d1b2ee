//! Port I/O from generated code: `in`/`out` (imm8 and DX forms, 8/16/32 bits) and `ins`/`outs` with `rep`
//! reach the port space of the CPU's `SoftMmu`; `out` ends its TB so a device's exit request is honoured
//! at once; unclaimed ports read all ones. Programs end with `ud2`, which stops the loop (exception mode
//! `Stop`: no IDT here).
//!
//! The I/O permission checks: at CPL > IOPL in protected mode, and always in vm86 mode, the TSS's I/O
//! bitmap decides (#GP(0) when a port's bit is set, the bitmap bytes lie beyond the TSS limit or TR is not a
//! 32-bit TSS); the check comes before the access and before any register changes.

use std::cell::RefCell;
use std::rc::Rc;

use iced_x86::code_asm::*;
use rqemu_accel::{AccelOptions, CpuExec, ExitRequest, StopReason};
use rqemu_softmmu::{AddressSpace, MmioDevice, RamBlock};
use rqemu_target_i386::cpu::{eflags, excp, seg, SegmentCache, DESC_B, DESC_P};
use rqemu_target_i386::seg_helper::vm86_cache;
use rqemu_target_i386::{ExceptionMode, X86Cpu, X86CpuState, STOP_EXCEPTION};
use rqemu_tcg_tci::Tci;

const RAM_SIZE: u64 = 0x10_0000;
const CODE: u64 = 0x1000;
const DATA: u64 = 0x2_0000;
const UD: StopReason = StopReason::Cpu(STOP_EXCEPTION | excp::UD as u64);
const GP: StopReason = StopReason::Cpu(STOP_EXCEPTION | excp::GP as u64);
/// Where the tests' TSS lives.
const TSS: u64 = 0x3_0000;

/// Every access, and reads answering `0xcafe_0000 | offset << 8 | size` (or the next byte of `feed`).
#[derive(Default)]
struct Probe {
    log: Vec<(char, u64, u32, u64)>,
    feed: Vec<u8>,
    /// Raised on every write, like isa-debug-exit does.
    request: Option<ExitRequest>,
}

impl MmioDevice for Probe {
    fn read(&mut self, offset: u64, size: u32) -> u64 {
        let p = self;
        p.log.push(('r', offset, size, 0));
        if !p.feed.is_empty() {
            return u64::from(p.feed.remove(0));
        }
        0xcafe_0000 | offset << 8 | u64::from(size)
    }
    fn write(&mut self, offset: u64, size: u32, value: u64) {
        let p = self;
        p.log.push(('w', offset, size, value));
        if let Some(r) = &p.request {
            r.set();
        }
    }
}

fn asm(bitness: u32, build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(bitness).unwrap();
    build(&mut a).unwrap();
    a.assemble(CODE).unwrap()
}

/// A CPU at `CODE` in `state`, over 1 MiB of RAM, with a probe on ports 0x80..0x88.
fn machine(state: X86CpuState, code: &[u8]) -> (X86Cpu, Rc<RefCell<Probe>>) {
    let mut space = AddressSpace::new();
    let ram = space.add_ram(RamBlock::new(RAM_SIZE).unwrap());
    space.map_ram(0, RAM_SIZE, ram, 0).unwrap();
    let mut cpu = X86Cpu::new(space, state);
    // No IDT: the closing ud2 stops the loop (STOP_EXCEPTION | #UD).
    cpu.set_exception_mode(ExceptionMode::Stop);
    let probe = Rc::new(RefCell::new(Probe::default()));
    cpu.memory().with(|m| {
        m.space_mut().write_bytes(CODE, code);
        m.io().map(0x80, 8, Box::new(probe.clone())).unwrap();
    });
    (cpu, probe)
}

fn long_mode() -> X86CpuState {
    let mut s = X86CpuState::new_long_mode(CODE);
    s.regs[4] = 0x8_0000;
    s
}

fn run(cpu: &mut X86Cpu, budget: u64) -> (StopReason, CpuExec) {
    let mut ex = CpuExec::with_backends(Box::new(Tci::new()), None, AccelOptions::default());
    let mut mem = cpu.memory();
    (ex.run(cpu, &mut mem, budget), ex)
}

#[test]
fn in_and_out_at_every_width_and_port_form() {
    let code = asm(64, |a| {
        a.mov(al, 0x11u32)?;
        a.out(0x80u32, al)?;
        a.mov(edx, 0x82u32)?;
        a.mov(ax, 0x2233u32)?;
        a.out(dx, ax)?;
        a.mov(eax, 0x4455_6677u32)?;
        a.out(dx, eax)?;
        a.mov(rax, -1i64)?;
        a.in_(al, 0x81u32)?;
        a.mov(rbx, rax)?;
        a.mov(rax, -1i64)?;
        a.in_(ax, dx)?;
        a.mov(rcx, rax)?;
        a.mov(rax, -1i64)?;
        a.in_(eax, dx)?;
        a.mov(rsi, rax)?;
        // Nobody claims port 0x300: all ones.
        a.mov(edx, 0x300u32)?;
        a.in_(eax, dx)?;
        a.mov(rdi, rax)?;
        a.ud2()
    });
    let (mut cpu, probe) = machine(long_mode(), &code);
    assert_eq!(run(&mut cpu, u64::MAX).0, UD);
    let r = cpu.state().regs;
    // in al keeps the upper bits; in ax keeps bits 16..64; in eax zero-extends.
    assert_eq!(r[3], 0xffff_ffff_ffff_ff01);
    assert_eq!(r[1], 0xffff_ffff_ffff_0202);
    assert_eq!(r[6], 0xcafe_0204);
    assert_eq!(r[7], 0xffff_ffff);
    assert_eq!(
        probe.borrow().log,
        vec![
            ('w', 0, 1, 0x11),
            ('w', 2, 2, 0x2233),
            ('w', 2, 4, 0x4455_6677),
            ('r', 1, 1, 0),
            ('r', 2, 2, 0),
            ('r', 2, 4, 0),
        ]
    );
}

#[test]
fn rep_outsb_and_rep_insb() {
    let code = asm(64, |a| {
        a.mov(esi, DATA as u32)?;
        a.mov(ecx, 5u32)?;
        a.mov(edx, 0x84u32)?;
        a.rep().outsb()?;
        a.mov(edi, (DATA + 0x100) as u32)?;
        a.mov(ecx, 4u32)?;
        a.rep().insb()?;
        // rep with rcx = 0 does nothing.
        a.rep().outsb()?;
        a.outsw()?;
        a.ud2()
    });
    let (mut cpu, probe) = machine(long_mode(), &code);
    cpu.memory().with(|m| m.space_mut().write_bytes(DATA, b"hello\x34\x12"));
    probe.borrow_mut().feed = b"abcd".to_vec();
    assert_eq!(run(&mut cpu, u64::MAX).0, UD);
    let r = cpu.state().regs;
    assert_eq!(r[1], 0, "rcx counted down");
    assert_eq!(r[6], DATA + 7, "rsi past the string and the word");
    assert_eq!(r[7], DATA + 0x104);
    let mut got = [0u8; 4];
    cpu.memory().with(|m| m.space_mut().read_bytes(DATA + 0x100, &mut got));
    assert_eq!(&got, b"abcd");
    let log = probe.borrow().log.clone();
    let writes: Vec<_> = log.iter().filter(|e| e.0 == 'w').map(|e| (e.1, e.2, e.3)).collect();
    let mut want: Vec<_> = b"hello".iter().map(|&b| (4, 1, u64::from(b))).collect();
    want.push((4, 2, 0x1234));
    assert_eq!(writes, want);
    assert_eq!(log.iter().filter(|e| e.0 == 'r').count(), 4);
}

#[test]
fn rep_outsb_goes_backwards_with_df() {
    let code = asm(64, |a| {
        a.std()?;
        a.mov(esi, (DATA + 2) as u32)?;
        a.mov(ecx, 3u32)?;
        a.mov(edx, 0x80u32)?;
        a.rep().outsb()?;
        a.cld()?;
        a.ud2()
    });
    let (mut cpu, probe) = machine(long_mode(), &code);
    cpu.memory().with(|m| m.space_mut().write_bytes(DATA, b"xyz"));
    assert_eq!(run(&mut cpu, u64::MAX).0, UD);
    let bytes: Vec<u64> = probe.borrow().log.iter().map(|e| e.3).collect();
    assert_eq!(bytes, vec![u64::from(b'z'), u64::from(b'y'), u64::from(b'x')]);
    assert_eq!(cpu.state().regs[6], DATA - 1);
}

#[test]
fn out_ends_the_tb_so_an_exit_request_stops_at_once() {
    // After the out, an endless loop: the loop must stop on the device's request, right after the out.
    let code = asm(64, |a| {
        let mut spin = a.create_label();
        a.mov(al, 1u32)?;
        a.out(0x80u32, al)?;
        a.set_label(&mut spin)?;
        a.jmp(spin)
    });
    let (mut cpu, probe) = machine(long_mode(), &code);
    let mut ex = CpuExec::with_backends(Box::new(Tci::new()), None, AccelOptions::default());
    probe.borrow_mut().request = Some(ex.exit_request());
    let mut mem = cpu.memory();
    assert_eq!(ex.run(&mut cpu, &mut mem, 1000), StopReason::ExitRequested);
    assert_eq!(cpu.state().rip, CODE + 4, "stopped right after the out");
}

#[test]
fn in_and_out_in_32_bit_protected_mode() {
    let mut s = X86CpuState::new();
    s.rip = CODE;
    s.cr[0] = 0x11;
    s.segs[seg::CS] = SegmentCache::flat(0x08, DESC_P | DESC_B | 0x9b00);
    for i in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
        s.segs[i] = SegmentCache::flat(0x10, DESC_P | DESC_B | 0x9300);
    }
    s.regs[4] = 0x8_0000;
    let code = asm(32, |a| {
        a.mov(dx, 0x86u32)?;
        a.mov(eax, 0xdead_beefu32)?;
        a.out(dx, eax)?;
        a.in_(ax, 0x87u32)?;
        a.mov(edi, DATA as u32)?;
        a.insd()?;
        a.ud2()
    });
    let (mut cpu, probe) = machine(s, &code);
    assert_eq!(run(&mut cpu, u64::MAX).0, UD);
    assert_eq!(cpu.state().regs[0], 0xdead_0702);
    assert_eq!(cpu.state().regs[7], DATA + 4);
    let mut got = [0u8; 4];
    cpu.memory().with(|m| m.space_mut().read_bytes(DATA, &mut got));
    assert_eq!(u32::from_le_bytes(got), 0xcafe_0604);
    assert_eq!(probe.borrow().log[0], ('w', 6, 4, 0xdead_beef));
}

/// 32-bit protected mode at CPL 3 (flat DPL-3 segments) with EFLAGS.IOPL = `iopl` and TR a busy 32-bit TSS
/// at [`TSS`] with `limit`.
fn user_mode(iopl: u64, limit: u32) -> X86CpuState {
    let mut s = X86CpuState::new();
    s.rip = CODE;
    s.cr[0] = 0x11;
    s.segs[seg::CS] = SegmentCache::flat(0x1b, DESC_P | DESC_B | 0xfb00);
    for i in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
        s.segs[i] = SegmentCache::flat(0x23, DESC_P | DESC_B | 0xf300);
    }
    s.regs[4] = 0x8_0000;
    s.eflags = 2 | iopl << 12;
    s.tr = SegmentCache::flat(0x28, DESC_P | 0x8b00);
    s.tr.base = TSS;
    s.tr.limit = limit;
    s
}

/// Writes the TSS's I/O map base and, from `TSS + base`, `bitmap`.
fn bitmap(cpu: &X86Cpu, base: u16, bitmap: &[u8]) {
    cpu.memory().with(|m| {
        m.space_mut().write_bytes(TSS + 0x66, &base.to_le_bytes());
        m.space_mut().write_bytes(TSS + u64::from(base), bitmap);
    });
}

/// A bitmap for ports 0..0x90 (and the byte after) denying everything except `allowed`.
fn allowing(allowed: &[u16]) -> Vec<u8> {
    let mut b = vec![0xffu8; 0x13];
    for &p in allowed {
        b[usize::from(p / 8)] &= !(1 << (p % 8));
    }
    b
}

/// One probe access: kind, offset, size, value.
type Access = (char, u64, u32, u64);

/// Runs `cpu` until it stops; the stop, the exception's (error code, rip) and the probe's log.
fn outcome(cpu: &mut X86Cpu, probe: &Rc<RefCell<Probe>>) -> (StopReason, Option<(u32, u64)>, Vec<Access>) {
    let stop = run(cpu, 10_000).0;
    let e = cpu.last_exception.map(|e| (e.error_code, e.rip));
    (stop, e, probe.borrow().log.clone())
}

#[test]
fn cpl3_with_iopl0_goes_by_the_bitmap() {
    let code = asm(32, |a| {
        a.mov(al, 0x11u32)?;
        a.out(0x80u32, al)?;
        a.in_(al, 0x82u32)?;
        a.mov(dx, 0x82u32)?;
        a.mov(ax, 0x2233u32)?;
        // Ports 0x82 and 0x83: both allowed.
        a.out(dx, ax)?;
        a.mov(dx, 0x81u32)?;
        a.mov(ebx, 0x77u32)?;
        a.nop()?;
        a.out(dx, al)?;
        a.mov(ebx, 0x99u32)?;
        a.ud2()
    });
    // The faulting `out dx, al` is the byte before `mov ebx, 0x99` (5 bytes), then ud2 (2).
    let fault_at = CODE + code.len() as u64 - 2 - 5 - 1;
    let (mut cpu, probe) = machine(user_mode(0, 0x68 + 0x20), &code);
    bitmap(&cpu, 0x68, &allowing(&[0x80, 0x82, 0x83]));
    let (stop, e, log) = outcome(&mut cpu, &probe);
    assert_eq!(stop, GP);
    assert_eq!(e, Some((0, fault_at)));
    assert_eq!(log, vec![('w', 0, 1, 0x11), ('r', 2, 1, 0), ('w', 2, 2, 0x2233)]);
    assert_eq!(cpu.state().regs[3], 0x77, "nothing after the fault ran");

    // Allowing 0x81 as well: the same program runs to its ud2.
    let (mut cpu, probe) = machine(user_mode(0, 0x68 + 0x20), &code);
    bitmap(&cpu, 0x68, &allowing(&[0x80, 0x81, 0x82, 0x83]));
    let (stop, _, log) = outcome(&mut cpu, &probe);
    assert_eq!(stop, UD);
    assert_eq!(log.len(), 4);
    assert_eq!(cpu.state().regs[3], 0x99);
}

#[test]
fn a_multi_byte_access_needs_every_port_allowed() {
    // 0x7e, 0x7f, 0x80 and 0x83 allowed: a word at 0x7f straddles two bitmap bytes and is allowed; a word
    // at 0x83 (0x84 denied) and a dword at 0x7f (0x81 denied) are not.
    let allowed = [0x7e, 0x7f, 0x80, 0x83];
    for (port, wide, ok) in [
        (0x7fu32, false, true),
        (0x83, false, false),
        (0x7f, true, false),
        (0x7e, false, true),
    ] {
        let code = asm(32, |a| {
            a.mov(dx, port)?;
            if wide {
                a.in_(eax, dx)?;
            } else {
                a.in_(ax, dx)?;
            }
            a.ud2()
        });
        let (mut cpu, probe) = machine(user_mode(0, 0x68 + 0x20), &code);
        bitmap(&cpu, 0x68, &allowing(&allowed));
        let (stop, e, log) = outcome(&mut cpu, &probe);
        if ok {
            assert_eq!(stop, UD, "port {port:#x}");
        } else {
            assert_eq!((stop, e), (GP, Some((0, CODE + 4))), "port {port:#x} wide {wide}");
            assert!(log.is_empty(), "no access made");
        }
    }
}

#[test]
fn bitmap_bytes_beyond_the_tss_limit_are_gp() {
    let code = asm(32, |a| {
        a.out(0x80u32, al)?;
        a.ud2()
    });
    // (limit, base): the bitmap byte of port 0x80 is at base + 0x10, and the byte after it must be inside.
    for (limit, base, ok) in [
        (0x67, 0x68, false),
        (0x68 + 0x10, 0x68, false),
        (0x68 + 0x11, 0x68, true),
        (0x68 + 0x20, 0x1000, false),
        (0x65, 0x68, false),
    ] {
        let (mut cpu, probe) = machine(user_mode(0, limit), &code);
        bitmap(&cpu, base, &allowing(&[0x80]));
        let (stop, e, log) = outcome(&mut cpu, &probe);
        if ok {
            assert_eq!((stop, log.len()), (UD, 1), "limit {limit:#x} base {base:#x}");
        } else {
            assert_eq!(
                (stop, e, log.len()),
                (GP, Some((0, CODE)), 0),
                "limit {limit:#x} base {base:#x}"
            );
        }
    }
}

#[test]
fn cpl_at_most_iopl_needs_no_bitmap() {
    let code = asm(32, |a| {
        a.out(0x81u32, al)?;
        a.ud2()
    });
    // No bitmap (limit 0x67) and not even a 32-bit TSS: IOPL 3 allows everything at CPL 3.
    let mut s = user_mode(3, 0x67);
    s.tr.flags = DESC_P | 0x8300;
    let (mut cpu, probe) = machine(s, &code);
    let (stop, _, log) = outcome(&mut cpu, &probe);
    assert_eq!((stop, log.len()), (UD, 1));
    // IOPL 2 at CPL 3 goes to the bitmap, which is not there (its base is the limit + 1).
    let (mut cpu, probe) = machine(user_mode(2, 0x67), &code);
    bitmap(&cpu, 0x68, &[]);
    let (stop, e, log) = outcome(&mut cpu, &probe);
    assert_eq!((stop, e, log.len()), (GP, Some((0, CODE)), 0));
}

#[test]
fn a_16_bit_tss_has_no_bitmap() {
    let code = asm(32, |a| {
        a.out(0x80u32, al)?;
        a.ud2()
    });
    let mut s = user_mode(0, 0x68 + 0x20);
    s.tr.flags = DESC_P | 0x8300;
    let (mut cpu, probe) = machine(s, &code);
    bitmap(&cpu, 0x68, &allowing(&[0x80]));
    let (stop, e, log) = outcome(&mut cpu, &probe);
    assert_eq!((stop, e, log.len()), (GP, Some((0, CODE)), 0));
}

#[test]
fn a_denied_rep_outsb_changes_nothing() {
    let code = asm(32, |a| {
        a.mov(esi, DATA as u32)?;
        a.mov(ecx, 3u32)?;
        a.mov(edx, 0x81u32)?;
        a.rep().outsb()?;
        a.ud2()
    });
    let (mut cpu, probe) = machine(user_mode(0, 0x68 + 0x20), &code);
    bitmap(&cpu, 0x68, &allowing(&[0x80]));
    let (stop, e, log) = outcome(&mut cpu, &probe);
    assert_eq!((stop, e.map(|e| e.0)), (GP, Some(0)));
    assert!(log.is_empty());
    let r = cpu.state().regs;
    assert_eq!((r[1], r[6]), (3, DATA), "rcx and rsi untouched");
    // Allowed: all three bytes go out.
    let (mut cpu, probe) = machine(user_mode(0, 0x68 + 0x20), &code);
    bitmap(&cpu, 0x68, &allowing(&[0x81]));
    let (stop, _, log) = outcome(&mut cpu, &probe);
    assert_eq!((stop, log.len()), (UD, 3));
}

#[test]
fn vm86_mode_ignores_iopl() {
    // vm86 with IOPL 3: still the bitmap (0x80 allowed, 0x81 denied).
    let mut s = user_mode(3, 0x68 + 0x20);
    s.eflags |= eflags::VM;
    s.segs[seg::CS] = vm86_cache((CODE >> 4) as u16);
    for i in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
        s.segs[i] = vm86_cache(0x7000);
    }
    s.rip = 0;
    s.regs[4] = 0xfff0;
    let code = asm(16, |a| {
        a.mov(al, 0x5au32)?;
        a.out(0x80u32, al)?;
        a.out(0x81u32, al)?;
        a.ud2()
    });
    let (mut cpu, probe) = machine(s, &code);
    bitmap(&cpu, 0x68, &allowing(&[0x80]));
    let (stop, e, log) = outcome(&mut cpu, &probe);
    assert_eq!((stop, e), (GP, Some((0, 4))));
    assert_eq!(log, vec![('w', 0, 1, 0x5a)]);
}
