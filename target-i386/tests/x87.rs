//! x87 instructions, differentially against this host's x87 unit: the same instruction bytes run on the host
//! (inline asm between fxrstor64 and fxsave64) and on rqemu (tci), from the same random state (registers,
//! tags, TOP, FCW with random rounding, precision and masks, condition codes, EFLAGS, a memory operand at
//! [rsi]); the full resulting state must match: the eight registers, FCW, FSW (TOP, C0-C3, exception and
//! summary bits), the abridged tag word, the memory operand and, for fcomi/fcmov, EFLAGS.
#![cfg(target_arch = "x86_64")]

mod harness;

use core::arch::asm;
use harness::{Machine, Outcome, DATA};

#[repr(C, align(16))]
struct Image([u8; 512]);

type HostFn = fn(&mut Image, *mut u8, u64) -> u64;

/// A host runner for the instruction `bytes` (memory operand at [rsi]).
macro_rules! case {
    ($name:literal, $($b:literal),+) => {{
        fn host(img: &mut Image, mem: *mut u8, flags: u64) -> u64 {
            let mut save = Image([0; 512]);
            let out: u64;
            // SAFETY: the caller's x87/SSE state is saved first and restored last; the instruction only
            // touches the x87 state, EFLAGS, rax (fnstsw ax) and the 128 bytes at `mem`.
            unsafe {
                asm!(
                    "fxsave64 [r9]",
                    "push r10",
                    "popfq",
                    "fxrstor64 [r8]",
                    concat!(".byte ", stringify!($($b),+)),
                    "fxsave64 [r8]",
                    "pushfq",
                    "pop r10",
                    "fxrstor64 [r9]",
                    in("r8") img.0.as_mut_ptr(),
                    in("r9") save.0.as_mut_ptr(),
                    inout("r10") flags => out,
                    in("rsi") mem,
                    out("rax") _,
                );
            }
            out
        }
        Case { name: $name, bytes: &[$($b),+], host }
    }};
}

struct Case {
    name: &'static str,
    bytes: &'static [u8],
    host: HostFn,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// An f80 (mant, se) biased toward the corners.
fn f80(r: &mut Rng) -> (u64, u16) {
    let sign = if r.chance(2) { 0x8000u16 } else { 0 };
    let int = 1u64 << 63;
    let (m, e): (u64, u16) = match r.below(20) {
        0 => (0, 0),
        1 => (int, 0x7fff),
        2 => (
            int | 1 << 62 | r.next() >> 2 & !(r.below(2) * 0x3fff_ffff_ffff_ffff),
            0x7fff,
        ), // QNaN
        3 => (int | (r.next() >> 2).max(1), 0x7fff),      // SNaN
        4 => (r.next() >> 1 >> r.below(63), 0),           // denormal
        5 => (int | r.next() >> r.below(64), 0),          // pseudo-denormal
        6 => (r.next() >> 1, 1 + r.below(0x7ffe) as u16), // unnormal
        7 => (int, 1),
        8 => (u64::MAX, 0x7ffe),
        9 => {
            // small integers
            let v = r.below(1000) + 1;
            let lz = v.leading_zeros();
            (v << lz, (16383 + 63 - lz) as u16)
        }
        10 => (int | r.next() >> 1, 0x3fff - 70 + r.below(140) as u16),
        11 => (int | r.next() >> 1, (0x3fff + 60 + r.below(10)) as u16),
        12 => (int | r.next() >> 1, r.below(80) as u16 + 1),
        13 => (int | r.next() >> 1, 0x7ffe - r.below(80) as u16),
        14 => (int, 0x3fff),
        15 => (int | r.next() >> 40 << 39, 0x3fff + r.below(20) as u16),
        _ => (int | r.next() >> 1, 0x3fff - 20 + r.below(40) as u16),
    };
    (m, e | sign)
}

/// 128 bytes of memory operand: corner values of every operand kind mixed with random bytes.
fn memory(r: &mut Rng) -> [u8; 128] {
    let mut m = [0u8; 128];
    for b in m.iter_mut() {
        *b = r.next() as u8;
    }
    let w: u64 = match r.below(14) {
        0 => 0,
        1 => 0x8000_0000,
        2 => 0x7f80_0000 | r.below(2) << 31,
        3 => 0x7fc0_0001 | r.below(2) << 22,
        4 => r.below(0x80_0000),
        5 => 0x7ff0_0000_0000_0000,
        6 => 0x7ff0_0000_0000_0001 | r.below(2) << 51,
        7 => r.next() >> 12,
        8 => 0x8000_0000_0000_0000,
        9 => 0x8000 | r.below(2) << 15,
        10 => 0x3ff0_0000_0000_0000 | r.next() >> 12 | r.below(2) << 63,
        11 => 0x3f80_0000 | r.below(0x80_0000) | r.below(2) << 31,
        12 => r.below(100000),
        _ => r.next(),
    };
    m[..8].copy_from_slice(&w.to_le_bytes());
    if r.chance(3) {
        let (mm, se) = f80(r);
        m[..8].copy_from_slice(&mm.to_le_bytes());
        m[8..10].copy_from_slice(&se.to_le_bytes());
    }
    if r.chance(4) {
        // Packed BCD digits.
        for b in m[..9].iter_mut() {
            *b = ((r.below(10) as u8) << 4) | r.below(10) as u8;
        }
        m[9] = (r.below(2) as u8) << 7;
    }
    m
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    fcw: u16,
    fsw: u16,
    ftw: u8,
    /// Physical registers, low 10 bytes.
    regs: [[u8; 10]; 8],
    mem: Vec<u8>,
    eflags: u64,
}

fn random_state(r: &mut Rng) -> (State, u64) {
    let rc = r.below(4) as u16;
    let pc = [0u16, 2, 3, 3][r.below(4) as usize];
    let masks = if r.chance(3) { r.below(64) as u16 } else { 0x3f };
    let fcw = 0x40 | rc << 10 | pc << 8 | masks;
    let top = r.below(8) as u16;
    // Exception flags only where masked, so no exception is pending.
    let flags = if r.chance(4) { r.below(64) as u16 & masks } else { 0 };
    let cc = (r.below(16) as u16) & 0b1111;
    let ccbits = (cc & 7) << 8 | (cc >> 3) << 14;
    let fsw = top << 11 | ccbits | flags;
    let ftw = match r.below(5) {
        0 => 0xff,
        1 => r.next() as u8,
        2 => 0,
        // Mostly in use, a few empty.
        _ => !(r.next() as u8 & r.next() as u8 & r.next() as u8),
    };
    let mut regs = [[0u8; 10]; 8];
    for reg in regs.iter_mut() {
        let (m, se) = f80(r);
        reg[..8].copy_from_slice(&m.to_le_bytes());
        reg[8..].copy_from_slice(&se.to_le_bytes());
    }
    let eflags = (r.next() & 0x8d5) | 2;
    (
        State {
            fcw,
            fsw,
            ftw,
            regs,
            mem: memory(r).to_vec(),
            eflags,
        },
        eflags,
    )
}

fn run_host(c: &Case, s: &State) -> State {
    let mut img = Image([0; 512]);
    img.0[0..2].copy_from_slice(&s.fcw.to_le_bytes());
    img.0[2..4].copy_from_slice(&s.fsw.to_le_bytes());
    img.0[4] = s.ftw;
    img.0[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    let top = usize::from(s.fsw >> 11) & 7;
    for i in 0..8 {
        img.0[32 + 16 * i..42 + 16 * i].copy_from_slice(&s.regs[(top + i) & 7]);
    }
    let mut mem = s.mem.clone();
    let fl = (c.host)(&mut img, mem.as_mut_ptr(), s.eflags);
    let fsw = u16::from_le_bytes([img.0[2], img.0[3]]);
    let top = usize::from(fsw >> 11) & 7;
    let mut regs = [[0u8; 10]; 8];
    for i in 0..8 {
        regs[(top + i) & 7].copy_from_slice(&img.0[32 + 16 * i..42 + 16 * i]);
    }
    State {
        fcw: u16::from_le_bytes([img.0[0], img.0[1]]),
        fsw,
        ftw: img.0[4],
        regs,
        mem,
        eflags: fl & 0x8d5,
    }
}

fn run_guest(c: &Case, s: &State) -> Result<State, Outcome> {
    let mut m = Machine::new(c.bytes);
    m.cpu.regs[6] = DATA;
    m.cpu.fpu.fcw = s.fcw;
    m.cpu.fpu.fsw = s.fsw;
    m.cpu.fpu.ftw = s.ftw;
    for (p, r) in s.regs.iter().enumerate() {
        m.cpu.fpu.regs[p][..10].copy_from_slice(r);
    }
    for (i, chunk) in s.mem.chunks(8).enumerate() {
        m.write_u64(DATA + 8 * i as u64, u64::from_le_bytes(chunk.try_into().unwrap()));
    }
    m.cpu.set_rflags(s.eflags);
    let out = m.run();
    if out != Outcome::End {
        return Err(out);
    }
    let mut regs = [[0u8; 10]; 8];
    for (p, r) in regs.iter_mut().enumerate() {
        r.copy_from_slice(&m.cpu.fpu.regs[p][..10]);
    }
    let mut mem = Vec::new();
    for i in 0..16 {
        mem.extend_from_slice(&m.read_u64(DATA + 8 * i).to_le_bytes());
    }
    Ok(State {
        fcw: m.cpu.fpu.fcw,
        fsw: m.cpu.fpu.fsw,
        ftw: m.cpu.fpu.ftw,
        regs,
        mem,
        eflags: m.cpu.rflags() & 0x8d5,
    })
}

/// The state in ST order, compactly.
fn show(s: &State) -> String {
    let top = usize::from(s.fsw >> 11) & 7;
    let mut out = format!(
        "fcw {:04x} fsw {:04x} ftw {:02x} fl {:03x} st:",
        s.fcw, s.fsw, s.ftw, s.eflags
    );
    for i in 0..8 {
        let p = (top + i) & 7;
        let r = &s.regs[p];
        let m = u64::from_le_bytes(r[..8].try_into().unwrap());
        let e = u16::from_le_bytes([r[8], r[9]]);
        let tag = if s.ftw & (1 << p) != 0 { "" } else { "E" };
        out += &format!(" {tag}{e:04x}:{m:016x}");
    }
    out += &format!(" mem {:02x?}", &s.mem[..28]);
    out
}

/// Blanks the fields that name host addresses (FIP/FCS/FOP/FDP/FDS) in a stored environment.
fn mask_env(c: &Case, mem: &mut [u8]) {
    let op = c.bytes[0];
    let reg = (c.bytes.get(1).copied().unwrap_or(0) >> 3) & 7;
    if (op == 0xd9 || op == 0xdd) && reg == 6 {
        mem[12..28].fill(0);
    }
}

fn check(cases: &[Case], n: usize, seed: u64) {
    let mut r = Rng(seed);
    let mut failures = Vec::new();
    for c in cases {
        let mut bad = 0;
        for _ in 0..n {
            let (s, _) = random_state(&mut r);
            let mut h = run_host(c, &s);
            let g = run_guest(c, &s);
            let mut g = match g {
                Ok(g) => g,
                Err(e) => {
                    failures.push(format!("{}: guest {e:?}", c.name));
                    break;
                }
            };
            mask_env(c, &mut h.mem);
            mask_env(c, &mut g.mem);
            if h != g {
                bad += 1;
                if bad <= 3 {
                    failures.push(format!(
                        "{}:\n  in   {}\n  host {}\n  rq   {}",
                        c.name,
                        show(&s),
                        show(&h),
                        show(&g)
                    ));
                }
            }
        }
        if bad > 0 {
            failures.push(format!("{}: {bad}/{n} mismatches", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const N: usize = 1000;

#[test]
fn loads_and_stores() {
    let cases = [
        case!("fld m32", 0xd9, 0x06),
        case!("fld m64", 0xdd, 0x06),
        case!("fld m80", 0xdb, 0x2e),
        case!("fld st3", 0xd9, 0xc3),
        case!("fst m32", 0xd9, 0x16),
        case!("fstp m32", 0xd9, 0x1e),
        case!("fst m64", 0xdd, 0x16),
        case!("fstp m64", 0xdd, 0x1e),
        case!("fstp m80", 0xdb, 0x3e),
        case!("fst st3", 0xdd, 0xd3),
        case!("fstp st3", 0xdd, 0xdb),
        case!("fstp st0", 0xdd, 0xd8),
        case!("fild m16", 0xdf, 0x06),
        case!("fild m32", 0xdb, 0x06),
        case!("fild m64", 0xdf, 0x2e),
        case!("fist m16", 0xdf, 0x16),
        case!("fistp m16", 0xdf, 0x1e),
        case!("fist m32", 0xdb, 0x16),
        case!("fistp m32", 0xdb, 0x1e),
        case!("fistp m64", 0xdf, 0x3e),
        case!("fisttp m16", 0xdf, 0x0e),
        case!("fisttp m32", 0xdb, 0x0e),
        case!("fisttp m64", 0xdd, 0x0e),
        case!("fbld", 0xdf, 0x26),
        case!("fbstp", 0xdf, 0x36),
        case!("fxch st2", 0xd9, 0xca),
        case!("fld1", 0xd9, 0xe8),
        case!("fldl2t", 0xd9, 0xe9),
        case!("fldl2e", 0xd9, 0xea),
        case!("fldpi", 0xd9, 0xeb),
        case!("fldlg2", 0xd9, 0xec),
        case!("fldln2", 0xd9, 0xed),
        case!("fldz", 0xd9, 0xee),
        case!("ffree st2", 0xdd, 0xc2),
        case!("ffreep st2", 0xdf, 0xc2),
        case!("fincstp", 0xd9, 0xf7),
        case!("fdecstp", 0xd9, 0xf6),
        case!("fnop", 0xd9, 0xd0),
        case!("fcmovb", 0xda, 0xc1),
        case!("fcmove", 0xda, 0xca),
        case!("fcmovbe", 0xda, 0xd3),
        case!("fcmovu", 0xda, 0xdc),
        case!("fcmovnb", 0xdb, 0xc1),
        case!("fcmovne", 0xdb, 0xca),
        case!("fcmovnbe", 0xdb, 0xd3),
        case!("fcmovnu", 0xdb, 0xdc),
    ];
    check(&cases, N, 0x1234_5678);
}

#[test]
fn arithmetic() {
    let cases = [
        case!("fadd st0,st2", 0xd8, 0xc2),
        case!("fmul st0,st2", 0xd8, 0xca),
        case!("fsub st0,st2", 0xd8, 0xe2),
        case!("fsubr st0,st2", 0xd8, 0xea),
        case!("fdiv st0,st2", 0xd8, 0xf2),
        case!("fdivr st0,st2", 0xd8, 0xfa),
        case!("fadd st2,st0", 0xdc, 0xc2),
        case!("fmul st2,st0", 0xdc, 0xca),
        case!("fsubr st2,st0", 0xdc, 0xe2),
        case!("fsub st2,st0", 0xdc, 0xea),
        case!("fdivr st2,st0", 0xdc, 0xf2),
        case!("fdiv st2,st0", 0xdc, 0xfa),
        case!("faddp st2", 0xde, 0xc2),
        case!("fmulp st2", 0xde, 0xca),
        case!("fsubrp st2", 0xde, 0xe2),
        case!("fsubp st2", 0xde, 0xea),
        case!("fdivrp st2", 0xde, 0xf2),
        case!("fdivp st2", 0xde, 0xfa),
        case!("fadd m32", 0xd8, 0x06),
        case!("fmul m32", 0xd8, 0x0e),
        case!("fsub m32", 0xd8, 0x26),
        case!("fsubr m32", 0xd8, 0x2e),
        case!("fdiv m32", 0xd8, 0x36),
        case!("fdivr m32", 0xd8, 0x3e),
        case!("fadd m64", 0xdc, 0x06),
        case!("fmul m64", 0xdc, 0x0e),
        case!("fsub m64", 0xdc, 0x26),
        case!("fsubr m64", 0xdc, 0x2e),
        case!("fdiv m64", 0xdc, 0x36),
        case!("fdivr m64", 0xdc, 0x3e),
        case!("fiadd m32", 0xda, 0x06),
        case!("fimul m32", 0xda, 0x0e),
        case!("fisub m32", 0xda, 0x26),
        case!("fisubr m32", 0xda, 0x2e),
        case!("fidiv m32", 0xda, 0x36),
        case!("fidivr m32", 0xda, 0x3e),
        case!("fiadd m16", 0xde, 0x06),
        case!("fimul m16", 0xde, 0x0e),
        case!("fisub m16", 0xde, 0x26),
        case!("fisubr m16", 0xde, 0x2e),
        case!("fidiv m16", 0xde, 0x36),
        case!("fidivr m16", 0xde, 0x3e),
        case!("fsqrt", 0xd9, 0xfa),
        case!("fabs", 0xd9, 0xe1),
        case!("fchs", 0xd9, 0xe0),
        case!("frndint", 0xd9, 0xfc),
        case!("fscale", 0xd9, 0xfd),
        case!("fxtract", 0xd9, 0xf4),
        case!("fprem", 0xd9, 0xf8),
        case!("fprem1", 0xd9, 0xf5),
    ];
    check(&cases, N, 0x9876_5432);
}

#[test]
fn compares() {
    let cases = [
        case!("fcom st2", 0xd8, 0xd2),
        case!("fcomp st2", 0xd8, 0xda),
        case!("fcompp", 0xde, 0xd9),
        case!("fucom st2", 0xdd, 0xe2),
        case!("fucomp st2", 0xdd, 0xea),
        case!("fucompp", 0xda, 0xe9),
        case!("fcom m32", 0xd8, 0x16),
        case!("fcomp m32", 0xd8, 0x1e),
        case!("fcom m64", 0xdc, 0x16),
        case!("fcomp m64", 0xdc, 0x1e),
        case!("ficom m16", 0xde, 0x16),
        case!("ficomp m16", 0xde, 0x1e),
        case!("ficom m32", 0xda, 0x16),
        case!("ficomp m32", 0xda, 0x1e),
        case!("fcomi st2", 0xdb, 0xf2),
        case!("fcomip st2", 0xdf, 0xf2),
        case!("fucomi st2", 0xdb, 0xea),
        case!("fucomip st2", 0xdf, 0xea),
        case!("ftst", 0xd9, 0xe4),
        case!("fxam", 0xd9, 0xe5),
    ];
    check(&cases, N, 0x5555_1234);
}

#[test]
fn control_and_environment() {
    let cases = [
        case!("fnclex", 0xdb, 0xe2),
        case!("fninit", 0xdb, 0xe3),
        case!("fnstsw ax", 0xdf, 0xe0),
        case!("fnstenv", 0xd9, 0x36),
        case!("fldenv", 0xd9, 0x26),
        case!("fnsave", 0xdd, 0x36),
        case!("frstor", 0xdd, 0x26),
        case!("fldcw", 0xd9, 0x2e),
        case!("fnstcw", 0xd9, 0x3e),
        case!("fneni", 0xdb, 0xe0),
        case!("fndisi", 0xdb, 0xe1),
        case!("fnsetpm", 0xdb, 0xe4),
    ];
    check(&cases, N, 0x7777_4321);
}

// ---- rqemu-only checks: what the host cannot show without faulting ----

fn guest(code: &[u8], setup: impl Fn(&mut Machine)) -> (Machine, Outcome) {
    let mut m = Machine::new(code);
    m.cpu.regs[6] = DATA;
    setup(&mut m);
    let out = m.run();
    (m, out)
}

const FLDZ: [u8; 2] = [0xd9, 0xee];
const FDIV_ST0_ST1: [u8; 2] = [0xd8, 0xf1];
const FADD_ST0_ST0: [u8; 2] = [0xd8, 0xc0];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn pending_exception_raises_mf_at_next_waiting_instruction() {
    use harness::CODE;
    // 0/0 with IE unmasked: ES and B set, the next waiting instruction raises #MF.
    let p = cat(&[&FLDZ, &FLDZ, &FDIV_ST0_ST1, &FADD_ST0_ST0]);
    let (m, out) = guest(&p, |m| m.cpu.fpu.fcw = 0x37e);
    assert_eq!(
        out,
        Outcome::Fault {
            rip: CODE + 6,
            vector: 16
        }
    );
    assert_eq!(m.cpu.fpu.fsw & 0x80ff, 0x8081);
    assert_eq!(m.cpu.fpu.fsw >> 11 & 7, 6, "the faulting fdiv popped nothing");
    assert_eq!(m.cpu.fpu.fip, CODE + 4, "FIP names the excepting fdiv");
    assert_eq!(m.cpu.fpu.fop, 0x0f1);
    // fwait also faults; the non-waiting fnstsw and fnclex do not.
    let p = cat(&[&FLDZ, &FLDZ, &FDIV_ST0_ST1, &[0x9b]]);
    assert_eq!(
        guest(&p, |m| m.cpu.fpu.fcw = 0x37e).1,
        Outcome::Fault {
            rip: CODE + 6,
            vector: 16
        }
    );
    let p = cat(&[
        &FLDZ,
        &FLDZ,
        &FDIV_ST0_ST1,
        &[0xdf, 0xe0],
        &[0xdb, 0xe2],
        &FADD_ST0_ST0,
        &[0x9b],
    ]);
    let (m, out) = guest(&p, |m| m.cpu.fpu.fcw = 0x37e);
    assert_eq!(out, Outcome::End);
    assert_eq!(m.cpu.regs[0] & 0xffff, 0xb081, "fnstsw ax: B, TOP 6, ES, IE");
    assert_eq!(m.cpu.fpu.fsw & 0x80ff, 0);
    // Masked: no fault; fldcw unmasking the flagged exception makes the next waiting instruction fault.
    let mut p = cat(&[&FLDZ, &FLDZ, &FDIV_ST0_ST1, &[0xd9, 0x2e]]); // fldcw [rsi]
    let fadd_at = p.len() as u64;
    p.extend_from_slice(&FADD_ST0_ST0);
    let (m, out) = guest(&p, |m| m.write_u64(DATA, 0x37e));
    assert_eq!(
        out,
        Outcome::Fault {
            rip: CODE + fadd_at,
            vector: 16
        }
    );
    assert_eq!(m.cpu.fpu.fsw & 0x80ff, 0x8081);
}

#[test]
fn cr0_em_ts_mp_raise_nm() {
    use harness::CODE;
    let fld1 = [0xd9, 0xe8];
    for (cr0_bits, code, expect) in [
        (4u64, &fld1[..], Some(7)),      // EM
        (8, &fld1[..], Some(7)),         // TS
        (8, &[0x9b][..], None),          // wait: TS alone does not fault
        (8 | 2, &[0x9b][..], Some(7)),   // wait: TS and MP
        (4, &[0x9b][..], None),          // wait ignores EM
        (8, &[0xdb, 0xe3][..], Some(7)), // fninit
    ] {
        let (_, out) = guest(code, |m| m.cpu.cr[0] |= cr0_bits);
        let want = match expect {
            Some(v) => Outcome::Fault { rip: CODE, vector: v },
            None => Outcome::End,
        };
        assert_eq!(out, want, "cr0 {cr0_bits:#x} {code:02x?}");
    }
}

#[test]
fn faulting_memory_operand_leaves_x87_state_unchanged() {
    use harness::CODE;
    for code in [
        &[0xdd, 0x1e][..], // fstp qword [rsi]
        &[0xdd, 0x06][..], // fld qword [rsi]
        &[0xdf, 0x3e][..], // fistp qword [rsi]
        &[0xdd, 0x36][..], // fnsave [rsi]
        &[0xd8, 0x06][..], // fadd dword [rsi]
    ] {
        let (m, out) = guest(code, |m| {
            m.cpu.regs[6] = 0x10_0000; // outside guest memory
            m.cpu.fpu.fsw = 0x3800; // TOP 7
            m.cpu.fpu.ftw = 0x80;
            m.cpu.fpu.regs[7][..10].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
        });
        assert_eq!(out, Outcome::Fault { rip: CODE, vector: 14 }, "{code:02x?}");
        assert_eq!(
            (m.cpu.fpu.fsw, m.cpu.fpu.ftw, m.cpu.fpu.fcw),
            (0x3800, 0x80, 0x37f),
            "{code:02x?}"
        );
        assert_eq!((m.cpu.fpu.fip, m.cpu.fpu.fop), (0, 0), "{code:02x?}");
    }
}

#[test]
fn fnstenv_records_fop_fip_fdp_and_fnsave_frstor_round_trip() {
    use harness::CODE;
    // fld1; fadd dword [rsi+8]; fnstenv [rsi+0x40]
    let p = cat(&[&[0xd9, 0xe8], &[0xd8, 0x46, 0x08], &[0xd9, 0x76, 0x40]]);
    let (m, out) = guest(&p, |m| m.write_u64(DATA + 8, 0x3f80_0000));
    assert_eq!(out, Outcome::End);
    let w = |o: u64| m.read_u64(DATA + 0x40 + o) as u32;
    assert_eq!(w(0), 0xffff_037f);
    assert_eq!(w(4) & 0xffff, 0x3800);
    assert_eq!(w(8), 0xffff_3fff, "tag: ST0 valid, the rest empty");
    assert_eq!(w(12), (CODE + 2) as u32, "FIP");
    assert_eq!(w(16) >> 16, 0x046, "FOP");
    assert_eq!(w(20), (DATA + 8) as u32, "FDP");
    assert_eq!(m.cpu.fpu.fcw, 0x37f | 0x3f, "fnstenv masks all exceptions");
    // fnsave reinitializes; frstor brings back registers in ST order with TOP != 0.
    let p = cat(&[&[0xdd, 0x36], &[0xd9, 0xe8], &[0xdd, 0x26]]); // fnsave [rsi]; fld1; frstor [rsi]
    let (m, out) = guest(&p, |m| {
        m.cpu.fpu.fsw = 0x2800; // TOP 5
        m.cpu.fpu.ftw = 0x60;
        m.cpu.fpu.fcw = 0x0b7f;
        m.cpu.fpu.regs[5][..10].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 0x88, 0x00, 0x40]);
        m.cpu.fpu.regs[6][..10].copy_from_slice(&[0; 10]);
    });
    assert_eq!(out, Outcome::End);
    assert_eq!((m.cpu.fpu.fsw, m.cpu.fpu.ftw, m.cpu.fpu.fcw), (0x2800, 0x60, 0x0b7f));
    assert_eq!(m.cpu.fpu.regs[5][..10], [1, 2, 3, 4, 5, 6, 7, 0x88, 0x00, 0x40]);
    assert_eq!(m.read_u64(DATA + 28), 0x8807_0605_0403_0201, "ST0 first in the image");
    assert_eq!(
        m.read_u64(DATA + 8) as u16,
        0xd3ff,
        "tags: 5 valid, 6 zero, others empty"
    );
}

#[test]
fn sixteen_bit_and_real_mode_environment_layouts() {
    use rqemu_target_i386::TbFlags;
    // 16-bit code: fnstenv [si] (14-byte real-mode image), then o32 fnstenv [si+0x20] (28 bytes).
    let p = cat(&[&[0xd9, 0xe8], &[0xd9, 0x34], &[0x66, 0xd9, 0x74, 0x20]]);
    let mut m = Machine::new(&p);
    m.flags = TbFlags::real16();
    m.cpu.regs[6] = DATA;
    m.cpu.segs[rqemu_target_i386::cpu::seg::CS].selector = 0x10; // FIP is linear: CS * 16 + IP
    m.cpu.fpu.fcw = 0x37e; // exceptions masked by the first fnstenv
    assert_eq!(m.run(), Outcome::End);
    let b = |o: u64| m.read_u64(DATA + o);
    assert_eq!(b(0) & 0xffff_ffff_ffff, 0x3fff_3800_037e);
    assert_eq!(b(6) as u16, 0x1100, "IP of fld1 (linear, 16 bits)");
    assert_eq!(b(8) as u16 & 0x7ff, 0x1e8, "FOP");
    assert_eq!(b(0x20) as u32, 0xffff_037f);
    assert_eq!(b(0x2c) as u32, 0xffff_1100, "FIP bits 0..15");
    assert_eq!(b(0x30) as u32, 0x1e8, "FOP, FIP bits 16..31 = 0");
}

// ---- transcendentals: within 1 ulp of the host ----

/// Distance in ulps between two 80-bit encodings (large for different signs or classes).
fn ulps(a: &[u8; 10], b: &[u8; 10]) -> u128 {
    let key = |r: &[u8; 10]| {
        let m = u64::from_le_bytes(r[..8].try_into().unwrap());
        let se = u16::from_le_bytes([r[8], r[9]]);
        ((se & 0x8000) != 0, u128::from(se & 0x7fff) << 64 | u128::from(m))
    };
    let (sa, ka) = key(a);
    let (sb, kb) = key(b);
    if sa != sb {
        return if ka == 0 && kb == 0 { 0 } else { u128::MAX };
    }
    // Across an exponent boundary the significand jumps from 0xffff.. to 0x8000..: count that step as 1.
    let norm = |k: u128| (k >> 64) * (1u128 << 63) + (k & u128::from(u64::MAX)) - ((k >> 64).min(1) << 63);
    norm(ka).abs_diff(norm(kb))
}

/// A finite value with biased exponent in `lo..=hi` and the given sign (random when None).
fn ranged(r: &mut Rng, lo: u16, hi: u16, neg: Option<bool>) -> [u8; 10] {
    let e = lo + r.below(u64::from(hi - lo) + 1) as u16;
    let m = 1u64 << 63 | r.next() >> 1;
    let s = neg.unwrap_or(r.chance(2));
    let se = e | if s { 0x8000 } else { 0 };
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&m.to_le_bytes());
    b[8..].copy_from_slice(&se.to_le_bytes());
    b
}

/// Makes (ST(0), ST(1)).
type Operands = dyn Fn(&mut Rng) -> ([u8; 10], [u8; 10]);

fn check_transcendental(c: &Case, n: usize, seed: u64, gen: &Operands) {
    let mut r = Rng(seed);
    let mut worst = 0u128;
    let mut exact = 0;
    let mut failures = Vec::new();
    for _ in 0..n {
        let (mut s, _) = random_state(&mut r);
        s.fcw = 0x37f | (r.below(4) as u16) << 10 | (r.below(4) as u16) << 8;
        s.fsw &= !0x3f;
        s.ftw = 0x7f; // ST(7) of TOP 0 empty: fsincos/fptan can push
        s.fsw &= !0x3800;
        let (x, y) = gen(&mut r);
        s.regs[0] = x;
        s.regs[1] = y;
        let h = run_host(c, &s);
        let g = run_guest(c, &s).expect("runs");
        let mut d = 0;
        for p in 0..8 {
            d = d.max(ulps(&h.regs[p], &g.regs[p]));
        }
        worst = worst.max(d);
        exact += usize::from(d == 0);
        // C1 (rounded up) refers to each implementation's own unrounded value: not compared.
        if (d > 1 || (h.fsw | 0x200) != (g.fsw | 0x200) || h.ftw != g.ftw) && failures.len() < 3 {
            failures.push(format!(
                "{}:\n  in   {}\n  host {}\n  rq   {}",
                c.name,
                show(&s),
                show(&h),
                show(&g)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{}: {exact}/{n} identical to the host, worst {worst} ulp", c.name);
    assert!(worst <= 1, "{}: {worst} ulps", c.name);
}

#[test]
fn transcendentals_within_one_ulp() {
    let n = 400;
    let one_arg = |lo: u16, hi: u16| move |r: &mut Rng| (ranged(r, lo, hi, None), ranged(r, 0x3fff, 0x3fff, None));
    // The whole domain |x| < 2^63: rqemu reduces against the host's 66-bit pi/2, so huge arguments agree too.
    let trig = one_arg(0x3fff - 30, 0x3fff + 62);
    check_transcendental(&case!("fsin", 0xd9, 0xfe), n, 1, &trig);
    check_transcendental(&case!("fcos", 0xd9, 0xff), n, 2, &trig);
    check_transcendental(&case!("fsincos", 0xd9, 0xfb), n, 3, &trig);
    check_transcendental(&case!("fptan", 0xd9, 0xf2), n, 4, &trig);
    check_transcendental(&case!("f2xm1", 0xd9, 0xf0), n, 5, &one_arg(0x3fff - 40, 0x3ffe));
    let pos = |r: &mut Rng| {
        (
            ranged(r, 0x3fff - 200, 0x3fff + 200, Some(false)),
            ranged(r, 0x3fff - 50, 0x3fff + 50, None),
        )
    };
    check_transcendental(&case!("fyl2x", 0xd9, 0xf1), n, 6, &pos);
    let small = |r: &mut Rng| {
        (
            ranged(r, 0x3fff - 60, 0x3ffd, None),
            ranged(r, 0x3fff - 50, 0x3fff + 50, None),
        )
    };
    check_transcendental(&case!("fyl2xp1", 0xd9, 0xf9), n, 7, &small);
    let any = |r: &mut Rng| {
        (
            ranged(r, 0x3fff - 100, 0x3fff + 100, None),
            ranged(r, 0x3fff - 100, 0x3fff + 100, None),
        )
    };
    check_transcendental(&case!("fpatan", 0xd9, 0xf3), n, 8, &any);
}

#[test]
fn transcendental_special_cases_exact() {
    // Zeros, infinities, NaNs, empty registers and out-of-range arguments: bit-exact with the host.
    let cases = [
        case!("fsin", 0xd9, 0xfe),
        case!("fcos", 0xd9, 0xff),
        case!("fsincos", 0xd9, 0xfb),
        case!("fptan", 0xd9, 0xf2),
        case!("f2xm1", 0xd9, 0xf0),
        case!("fyl2x", 0xd9, 0xf1),
        case!("fyl2xp1", 0xd9, 0xf9),
        case!("fpatan", 0xd9, 0xf3),
    ];
    let mut r = Rng(0x4242);
    let mut failures = Vec::new();
    for c in &cases {
        for _ in 0..300 {
            let (mut s, _) = random_state(&mut r);
            let top = usize::from(s.fsw >> 11) & 7;
            // Only special operands in ST(0) and ST(1).
            for i in 0..2 {
                let (m, se): (u64, u16) = match r.below(6) {
                    0 => (0, 0),
                    1 => (1 << 63, 0x7fff),
                    2 => (0xc000_0000_0000_0001, 0x7fff),
                    3 => (0xa000_0000_0000_0000, 0x7fff),
                    4 => (1 << 63 | r.next(), 0x3fff + 63 + r.below(100) as u16),
                    _ => (1 << 63, 0x3fff),
                };
                let se = se | if r.chance(2) { 0x8000 } else { 0 };
                let p = (top + i) & 7;
                s.regs[p][..8].copy_from_slice(&m.to_le_bytes());
                s.regs[p][8..].copy_from_slice(&se.to_le_bytes());
            }
            let h = run_host(c, &s);
            let g = run_guest(c, &s).expect("runs");
            // Large finite operands are computed: within 1 ulp there, C1 then not compared.
            let d = (0..8).map(|p| ulps(&h.regs[p], &g.regs[p])).max().unwrap_or(0);
            let same = if d == 0 {
                h == g
            } else {
                d == 1 && (h.fsw | 0x200) == (g.fsw | 0x200) && h.ftw == g.ftw
            };
            if !same && failures.len() < 6 {
                failures.push(format!(
                    "{}:\n  in   {}\n  host {}\n  rq   {}",
                    c.name,
                    show(&s),
                    show(&h),
                    show(&g)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fop_and_fdp_bookkeeping_and_lock_ud() {
    use harness::CODE;
    // Measured on the host: FDP keeps the last memory operand across register instructions, and fxch,
    // fincstp and ffree update FOP like the arithmetic does.
    let p = cat(&[&[0xd9, 0x06], &[0xd9, 0xc8], &[0xd9, 0x76, 0x20]]); // fld dword [rsi]; fxch st0; fnstenv [rsi+0x20]
    let (m, out) = guest(&p, |m| m.write_u64(DATA, 0x3f80_0000));
    assert_eq!(out, Outcome::End);
    let w = |o: u64| m.read_u64(DATA + 0x20 + o) as u32;
    assert_eq!(w(16) >> 16, 0x1c8, "FOP of fxch");
    assert_eq!(w(12), (CODE + 2) as u32, "FIP of fxch");
    assert_eq!(w(20), DATA as u32, "FDP of the earlier fld");
    // lock fld1: #UD.
    let (_, out) = guest(&[0xf0, 0xd9, 0xe8], |_| {});
    assert_eq!(out, Outcome::Fault { rip: CODE, vector: 6 });
}

/// An operand for the transcendentals' edges: denormals, pseudo-denormals, tiny and huge values, values near 1,
/// and the boundaries of the ranges.
fn edge_operand(r: &mut Rng) -> [u8; 10] {
    let int = 1u64 << 63;
    let (m, e): (u64, u16) = match r.below(12) {
        0 => (r.next() >> 1 >> r.below(64), 0),  // denormal
        1 => (int | r.next() >> r.below(64), 0), // pseudo-denormal
        2 => ([int >> 1, int - 1, 1, 3][r.below(4) as usize], 0),
        3 => (int | r.next() >> r.below(64) >> 1, 1 + r.below(100) as u16),
        4 => (int | r.next() >> r.below(64) >> 1, 0x7ffe - r.below(100) as u16),
        5 => (
            [int, int | 1, u64::MAX][r.below(3) as usize],
            [1, 0x7ffe, 0x3fff, 0x3ffe][r.below(4) as usize],
        ),
        6 => (int | r.next() >> r.below(64) >> 1, 0x3fff - 64 - r.below(200) as u16),
        7 => (int | r.next() >> r.below(64) >> 1, 0x3fff - 16000 - r.below(380) as u16),
        8 => (int | r.next() >> r.below(64) >> 1, 0x3ffe + r.below(3) as u16),
        _ => f80(r),
    };
    let se = e | if r.chance(2) { 0x8000 } else { 0 };
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&m.to_le_bytes());
    b[8..].copy_from_slice(&se.to_le_bytes());
    b
}

/// Whether two registers agree as the differential fuzzer requires after a transcendental: equal, or (the
/// host's result inexact) adjacent with the same sign and integer bit.
fn close_enough(h: &[u8; 10], g: &[u8; 10], inexact: bool) -> bool {
    let integer_bit = |r: &[u8; 10]| r[7] >> 7;
    h == g || (inexact && integer_bit(h) == integer_bit(g) && ulps(h, g) <= 1)
}

#[test]
fn transcendental_edges() {
    // Tiny, denormal, huge and boundary operands under every rounding mode with random exception masks
    // (unmasked underflow and overflow deliver exponent-wrapped results): the host's results within the
    // transcendental tolerance, and its flags bit for bit except C1.
    let cases = [
        case!("fsin", 0xd9, 0xfe),
        case!("fcos", 0xd9, 0xff),
        case!("fsincos", 0xd9, 0xfb),
        case!("fptan", 0xd9, 0xf2),
        case!("f2xm1", 0xd9, 0xf0),
        case!("fyl2x", 0xd9, 0xf1),
        case!("fyl2xp1", 0xd9, 0xf9),
        case!("fpatan", 0xd9, 0xf3),
    ];
    let n: usize = std::env::var("X87_EDGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let show_max: usize = std::env::var("X87_EDGES_SHOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed = std::env::var("X87_EDGES_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_ed6e);
    let mut r = Rng(seed);
    let mut failures = Vec::new();
    for c in &cases {
        let mut bad = 0;
        for _ in 0..n {
            let (mut s, _) = random_state(&mut r);
            let top = usize::from(s.fsw >> 11) & 7;
            s.ftw |= 1 << top | 1 << ((top + 1) & 7);
            if r.chance(2) {
                s.ftw &= !(1 << ((top + 7) & 7));
            }
            s.regs[top] = edge_operand(&mut r);
            s.regs[(top + 1) & 7] = edge_operand(&mut r);
            let h = run_host(c, &s);
            let g = run_guest(c, &s).expect("runs");
            let inexact = h.fsw & 0x20 != 0;
            let same = (0..8).all(|p| close_enough(&h.regs[p], &g.regs[p], inexact))
                && (h.fsw | 0x200) == (g.fsw | 0x200)
                && h.ftw == g.ftw
                && h.fcw == g.fcw;
            if !same {
                bad += 1;
                if bad <= show_max {
                    failures.push(format!(
                        "{}:\n  in   {}\n  host {}\n  rq   {}",
                        c.name,
                        show(&s),
                        show(&h),
                        show(&g)
                    ));
                }
            }
        }
        if bad > 0 {
            failures.push(format!("{}: {bad}/{n} mismatches", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn transcendental_fuzz_regressions() {
    // Differences the differential fuzzer found (FCW, ST(0), ST(1)), compared with the host like
    // `transcendental_edges`.
    let regs = |se: u16, m: u64| {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&m.to_le_bytes());
        b[8..].copy_from_slice(&se.to_le_bytes());
        b
    };
    let cases: [(Case, u16, [u8; 10], [u8; 10]); 9] = [
        // Unmasked underflow: the exponent-wrapped result, ES/B.
        (
            case!("f2xm1", 0xd9, 0xf0),
            0xd66,
            regs(0x8000, 0xb388_8e9f_7ec9_bd4e),
            regs(0x3fff, 1 << 63),
        ),
        (
            case!("fpatan", 0xd9, 0xf3),
            0xc40,
            regs(0x7ffe, u64::MAX),
            regs(0x0001, 1 << 63),
        ),
        // Unmasked overflow: wrapped too.
        (
            case!("fyl2xp1", 0xd9, 0xf9),
            0x973,
            regs(0x4000, 0xa << 60),
            regs(0x7ffe, u64::MAX),
        ),
        // A denormal's tangent rounds down (magnitude up) to the smallest normal, still with UE.
        (
            case!("fptan", 0xd9, 0xf2),
            0x67f,
            regs(0x8000, u64::MAX >> 1),
            regs(0x8001, 1 << 63),
        ),
        // Truncated: sin of the smallest negative denormal is -0, cos of it the largest value below 1.
        (
            case!("fsincos", 0xd9, 0xfb),
            0xd7f,
            regs(0x8000, 1),
            regs(0x3fff, 1 << 63),
        ),
        // Rounded down: sin of the smallest normal is the largest denormal.
        (
            case!("fsin", 0xd9, 0xfe),
            0x57f,
            regs(0x0001, 1 << 63),
            regs(0x3fff, 1 << 63),
        ),
        // |x| > 1 is returned unchanged.
        (
            case!("f2xm1", 0xd9, 0xf0),
            0x752,
            regs(0xbfff, 0x8000_0000_0000_08ce),
            regs(0x3fff, 1 << 63),
        ),
        // IE alone for a negative denormal (DE unmasked must not suppress the masked response).
        (
            case!("fyl2x", 0xd9, 0xf1),
            0x675,
            regs(0x8000, 0xdff6_b492_51b4_7068),
            regs(0xbffe, 1 << 63),
        ),
        // No DE from the rounding of a normal result just above 2^-16368.
        (
            case!("fyl2x", 0xd9, 0xf1),
            0x37f,
            regs(0x7ffe, u64::MAX),
            regs(0x0001, 1 << 63),
        ),
    ];
    let mut failures = Vec::new();
    for (c, fcw, x, y) in &cases {
        let (mut s, _) = random_state(&mut Rng(1));
        s.fcw = *fcw;
        s.fsw = 0;
        s.ftw = 0x7f;
        s.regs[0] = *x;
        s.regs[1] = *y;
        let h = run_host(c, &s);
        let g = run_guest(c, &s).expect("runs");
        let inexact = h.fsw & 0x20 != 0;
        let same = (0..8).all(|p| close_enough(&h.regs[p], &g.regs[p], inexact)) && (h.fsw | 0x200) == (g.fsw | 0x200);
        if !same {
            failures.push(format!(
                "{}:\n  in   {}\n  host {}\n  rq   {}",
                c.name,
                show(&s),
                show(&h),
                show(&g)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
