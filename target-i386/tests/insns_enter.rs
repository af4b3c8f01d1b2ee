//! enter: every interesting (size, nesting level) pair at 64- and 16-bit operand size in 64-bit code against
//! this machine's CPU (inline asm on a private stack laid out like the guest's), rsp, rbp and the stack bytes;
//! 32- and 16-bit code (which the host cannot run here) against the manual's algorithm; a faulting enter
//! leaving rsp and rbp alone.

#![cfg(target_arch = "x86_64")]

mod harness;

use harness::{mov_imm64, run_with, Machine, Outcome, MEM_BASE, MEM_LEN};
use rqemu_target_i386::TbFlags;

/// Where the guest's (and the host image's) stack pointer and frame pointer start.
const SP: u64 = 0x7800;
const BP: u64 = 0x7a00;
/// The compared window of the stack: [LOW, HIGH).
const LOW: u64 = 0x7500;
const HIGH: u64 = 0x7c00;

/// The initial stack image: distinct non-address words, so copied frame pointers are recognisable.
fn image() -> Vec<u8> {
    (0..(HIGH - LOW) / 8)
        .flat_map(|i| (0x5a00_0000_0000_0000u64 | (i * 0x0101_0101)).to_le_bytes())
        .collect()
}

/// A private stack for the host whose addresses agree with the guest's modulo 0x10000 (so 16-bit frame
/// pointers are equal and 64-bit ones differ by a multiple of 0x10000, `delta`).
struct HostStack {
    buf: Vec<u8>,
    base: usize,
}

impl HostStack {
    fn new() -> HostStack {
        let buf = vec![0u8; 0x80000];
        let p = buf.as_ptr() as usize;
        // The host address of guest address MEM_BASE: at least 0x30000 into the buffer (enter probes the final
        // stack pointer, up to 0x10000 + 256 below), same low 16 bits.
        let base = ((p + 0x30000) & !0xffff) + MEM_BASE as usize - p;
        let mut s = HostStack { buf, base };
        let img = image();
        let off = s.off(LOW);
        s.buf[off..off + img.len()].copy_from_slice(&img);
        s
    }
    fn off(&self, guest: u64) -> usize {
        self.base + (guest - MEM_BASE) as usize
    }
    fn addr(&self, guest: u64) -> u64 {
        (self.buf.as_ptr() as usize + self.off(guest)) as u64
    }
    /// Host address minus guest address.
    fn delta(&self) -> u64 {
        self.addr(MEM_BASE).wrapping_sub(MEM_BASE)
    }
}

macro_rules! host_enter {
    ($s:expr, $o16:literal, $alloc:literal, $level:literal) => {{
        let (sp, bp) = ($s.addr(SP), $s.addr(BP));
        let (osp, obp): (u64, u64);
        // SAFETY: rsp and rbp point into a private buffer while enter runs (with room below for its pushes
        // and any signal frame) and are restored before the asm ends.
        unsafe {
            core::arch::asm!(
                "mov r12, rsp",
                "mov r13, rbp",
                "mov rsp, r8",
                "mov rbp, r9",
                ".byte {pfx}, 0xc8, {lo}, {hi}, {lv}",
                "mov r10, rsp",
                "mov r11, rbp",
                "mov rsp, r12",
                "mov rbp, r13",
                pfx = const if $o16 { 0x66 } else { 0x90 },
                lo = const $alloc & 0xff,
                hi = const $alloc >> 8,
                lv = const $level,
                in("r8") sp, in("r9") bp, out("r10") osp, out("r11") obp, out("r12") _, out("r13") _,
            );
        }
        (osp, obp)
    }};
}

/// Runs enter in the guest (64-bit code) from the same image.
fn guest_enter(o16: bool, alloc: u16, level: u8) -> Machine {
    let mut p = mov_imm64(4, SP);
    p.extend(mov_imm64(5, BP));
    if o16 {
        p.push(0x66);
    }
    p.push(0xc8);
    p.extend(alloc.to_le_bytes());
    p.push(level);
    run_with(&p, |m| {
        let img = image();
        let o = (LOW - MEM_BASE) as usize;
        m.mem.bytes_mut()[o..o + img.len()].copy_from_slice(&img);
    })
}

fn compare(o16: bool, alloc: u16, level: u8, host: (u64, u64), s: &HostStack) {
    let what = format!("enter o16={o16} {alloc:#x}, {level}");
    let m = guest_enter(o16, alloc, level);
    let d = s.delta();
    assert_eq!(m.cpu.regs[4], host.0.wrapping_sub(d), "rsp after {what}");
    assert_eq!(m.cpu.regs[5], host.1.wrapping_sub(d), "rbp after {what}");
    // The stack window, with host addresses turned into guest ones (8-byte words in 64-bit pushes).
    let mut want = s.buf[s.off(LOW)..s.off(HIGH)].to_vec();
    if !o16 {
        for w in want.chunks_mut(8) {
            let v = u64::from_le_bytes(w.try_into().unwrap());
            if v >= s.addr(MEM_BASE) && v < s.addr(MEM_BASE + MEM_LEN as u64) {
                w.copy_from_slice(&v.wrapping_sub(d).to_le_bytes());
            }
        }
    }
    let got = &m.mem.bytes()[(LOW - MEM_BASE) as usize..(HIGH - MEM_BASE) as usize];
    assert_eq!(got, &want[..], "stack after {what}");
}

macro_rules! cases {
    ($($o16:literal, $alloc:literal, $level:literal);* $(;)?) => {{
        let mut n = 0;
        $(
            let s = HostStack::new();
            let host = host_enter!(s, $o16, $alloc, $level);
            compare($o16, $alloc, $level, host, &s);
            n += 1;
        )*
        n
    }};
}

#[test]
fn enter_in_64_bit_code_against_the_host() {
    let n = cases!(
        false, 0, 0; false, 8, 0; false, 0x1234, 0; false, 0x6000, 0;
        false, 0, 1; false, 16, 1; false, 0, 2; false, 0x20, 3; false, 0x6000, 5; false, 8, 31;
        false, 0, 32; false, 0x40, 33; false, 0, 255;
        true, 0, 0; true, 6, 0; true, 0x6000, 0; true, 0, 1; true, 2, 2; true, 0x10, 3; true, 0x100, 7;
        true, 0, 31; true, 0x22, 63; true, 0, 128;
    );
    assert_eq!(n, 23);
}

/// The manual's algorithm on a little-endian byte image (`mem[a - base]`), for code of `bits` and operand size
/// `opsize` with 32-bit stack addresses: returns (esp, ebp).
fn model_enter(mem: &mut [u8], base: u64, sp: u64, bp: u64, opsize: u32, alloc: u64, level: u64) -> (u64, u64) {
    let n = (opsize / 8) as usize;
    let put = |mem: &mut [u8], a: u64, v: u64| {
        let o = (a - base) as usize;
        mem[o..o + n].copy_from_slice(&v.to_le_bytes()[..n]);
    };
    let get = |mem: &[u8], a: u64| {
        let o = (a - base) as usize;
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&mem[o..o + n]);
        u64::from_le_bytes(b)
    };
    let mut sp = sp;
    sp -= n as u64;
    put(mem, sp, bp);
    let frame = sp;
    let level = level % 32;
    if level > 0 {
        let mut p = bp & 0xffff_ffff;
        for _ in 1..level {
            p -= n as u64;
            let v = get(mem, p);
            sp -= n as u64;
            put(mem, sp, v);
        }
        sp -= n as u64;
        put(mem, sp, frame);
    }
    let new_bp = if opsize == 16 {
        (bp & !0xffff) | (frame & 0xffff)
    } else {
        frame
    };
    (sp - alloc, new_bp)
}

#[test]
fn enter_in_32_and_16_bit_code_follows_the_manual() {
    // (code size, 66 prefix, 32-bit stack addresses)
    for (bits, o16, ss32) in [
        (32u32, false, true),
        (32, true, true),
        (16, false, true),
        (16, true, true),
        (16, false, false),
        (16, true, false),
    ] {
        let opsize = if (bits == 16) != o16 { 16 } else { 32 };
        for (alloc, level) in [(0u16, 0u8), (12, 0), (0, 1), (4, 2), (0x100, 3), (0, 31), (8, 33)] {
            let mut p = Vec::new();
            if o16 {
                p.push(0x66);
            }
            p.push(0xc8);
            p.extend(alloc.to_le_bytes());
            p.push(level);
            let m = run_with(&p, |m| {
                let img = image();
                let o = (LOW - MEM_BASE) as usize;
                m.mem.bytes_mut()[o..o + img.len()].copy_from_slice(&img);
                m.flags = TbFlags {
                    bitness: bits,
                    ss32,
                    cs_base: 0,
                    ..TbFlags::LONG
                };
                m.cpu.regs[4] = SP;
                m.cpu.regs[5] = 0x1234_0000_0000_0000 | BP;
            });
            let mut img = image();
            let (sp, bp) = model_enter(
                &mut img,
                LOW,
                SP,
                0x1234_0000_0000_0000 | BP,
                opsize,
                alloc as u64,
                level as u64,
            );
            let what = format!("{bits}-bit code, ss32={ss32}, {opsize}-bit enter {alloc:#x}, {level}");
            assert_eq!(m.cpu.regs[4], sp, "esp (zero-extended) after {what}");
            let bp_want = if opsize == 32 { bp & 0xffff_ffff } else { bp };
            assert_eq!(m.cpu.regs[5], bp_want, "ebp after {what}");
            let got = &m.mem.bytes()[(LOW - MEM_BASE) as usize..(HIGH - MEM_BASE) as usize];
            assert_eq!(got, &img[..], "stack after {what}");
        }
    }
}

#[test]
fn enter_probes_the_final_stack_pointer() {
    // Nothing is pushed at rsp - 8 - 0xffff, but it is below guest memory: the CPU faults (the host does too,
    // on an unmapped page) before writing anything.
    let mut p = mov_imm64(4, SP);
    p.extend(mov_imm64(5, BP));
    p.extend([0xc8, 0xff, 0xff, 0x00]);
    let mut m = Machine::new(&p);
    let before = m.mem.bytes().to_vec();
    let out = m.run();
    assert!(matches!(out, Outcome::Fault { vector: 14, .. }), "{out:?}");
    assert_eq!((m.cpu.regs[4], m.cpu.regs[5]), (SP, BP));
    assert_eq!(m.mem.bytes(), &before[..], "nothing written");
}

#[test]
fn a_faulting_enter_leaves_rsp_and_rbp_alone() {
    // rbp points below guest memory: copying the enclosing frame pointer faults.
    let mut p = mov_imm64(4, SP);
    p.extend(mov_imm64(5, 0x100));
    p.extend([0xc8, 0x10, 0x00, 0x03]);
    let mut m = Machine::new(&p);
    let out = m.run();
    assert!(matches!(out, Outcome::Fault { vector: 14, .. }), "{out:?}");
    assert_eq!((m.cpu.regs[4], m.cpu.regs[5]), (SP, 0x100));
}

macro_rules! host_leave {
    ($s:expr, $pfx:literal) => {{
        let (sp, bp) = ($s.addr(SP), $s.addr(BP));
        let (osp, obp): (u64, u64);
        // SAFETY: as in `host_enter!`: a private stack, rsp and rbp restored before the asm ends.
        unsafe {
            core::arch::asm!(
                "mov r12, rsp",
                "mov r13, rbp",
                "mov rsp, r8",
                "mov rbp, r9",
                concat!(".byte ", $pfx, ", 0xc9"),
                "mov r10, rsp",
                "mov r11, rbp",
                "mov rsp, r12",
                "mov rbp, r13",
                in("r8") sp, in("r9") bp, out("r10") osp, out("r11") obp, out("r12") _, out("r13") _,
            );
        }
        (osp, obp)
    }};
}

#[test]
fn leave_at_64_and_16_bit_operand_size_against_the_host() {
    for o16 in [false, true] {
        let s = HostStack::new();
        let (osp, obp) = if o16 {
            host_leave!(s, "0x66")
        } else {
            host_leave!(s, "0x90")
        };
        let mut p = mov_imm64(4, SP);
        p.extend(mov_imm64(5, BP));
        if o16 {
            p.push(0x66);
        }
        p.push(0xc9);
        let m = run_with(&p, |m| {
            let img = image();
            let o = (LOW - MEM_BASE) as usize;
            m.mem.bytes_mut()[o..o + img.len()].copy_from_slice(&img);
        });
        let d = s.delta();
        assert_eq!(m.cpu.regs[4], osp.wrapping_sub(d), "rsp after leave o16={o16}");
        // The popped value is data, not an address: only the bits leave did not write are host-relative.
        let want_bp = if o16 { obp.wrapping_sub(d) } else { obp };
        assert_eq!(m.cpu.regs[5], want_bp, "rbp after leave o16={o16}");
    }
}
