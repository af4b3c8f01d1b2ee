//! BMI1 and BMI2 (andn, bextr, blsi, blsmsk, blsr, bzhi, mulx, pdep, pext, rorx, sarx, shlx, shrx) at 32 and 64
//! bits against this machine's CPU (inline asm): the destination registers, the materialized RFLAGS (the
//! undefined flags included: they are AMD's), and all 16 conditions through setcc, on the lazy fast path and
//! after a TB end. Also memory sources, VEX decoded from raw bytes in 16-, 32- and 64-bit code, and zero
//! extension of 32-bit destinations.

#![cfg(target_arch = "x86_64")]

mod harness;

use harness::{eval_cc, mov_imm64, run_with, Machine, DATA};
use iced_x86::code_asm::*;
use rqemu_target_i386::TbFlags;

/// The flags a test compares (all six: nothing is left out, the undefined ones are AMD's).
const ARITH: u64 = 0x8d5;

/// An instruction of the form `op d, a, b` (three registers) or `op d, a` (two).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Andn,
    Bextr,
    Bzhi,
    Pdep,
    Pext,
    Sarx,
    Shlx,
    Shrx,
    Blsi,
    Blsr,
    Blsmsk,
}

const OPS: [Op; 11] = [
    Op::Andn,
    Op::Bextr,
    Op::Bzhi,
    Op::Pdep,
    Op::Pext,
    Op::Sarx,
    Op::Shlx,
    Op::Shrx,
    Op::Blsi,
    Op::Blsr,
    Op::Blsmsk,
];

macro_rules! host3 {
    ($ins:literal, $w:expr, $d:ident, $a:expr, $b:expr, $fl:ident) => {
        if $w == 64 {
            core::arch::asm!("push {fl}", "popfq", concat!($ins, " {d}, {a}, {b}"), "pushfq", "pop {fl}",
                d = inout(reg) $d, a = in(reg) $a, b = in(reg) $b, fl = inout(reg) $fl)
        } else {
            core::arch::asm!("push {fl}", "popfq", concat!($ins, " {d:e}, {a:e}, {b:e}"), "pushfq", "pop {fl}",
                d = inout(reg) $d, a = in(reg) $a, b = in(reg) $b, fl = inout(reg) $fl)
        }
    };
}

macro_rules! host2 {
    ($ins:literal, $w:expr, $d:ident, $a:expr, $fl:ident) => {
        if $w == 64 {
            core::arch::asm!("push {fl}", "popfq", concat!($ins, " {d}, {a}"), "pushfq", "pop {fl}",
                d = inout(reg) $d, a = in(reg) $a, fl = inout(reg) $fl)
        } else {
            core::arch::asm!("push {fl}", "popfq", concat!($ins, " {d:e}, {a:e}"), "pushfq", "pop {fl}",
                d = inout(reg) $d, a = in(reg) $a, fl = inout(reg) $fl)
        }
    };
}

/// Runs `op d, a, b` on the host with RFLAGS = `fl` before: (d, RFLAGS after). `d` starts as garbage, so a
/// 32-bit destination shows its zero extension.
fn host(op: Op, w: u32, a: u64, b: u64, fl: u64) -> (u64, u64) {
    let (mut d, mut fl) = (0xdead_beef_dead_beefu64, fl);
    // SAFETY: register-only asm; the stack is used by push/pop of the flags only.
    unsafe {
        match op {
            Op::Andn => host3!("andn", w, d, a, b, fl),
            Op::Bextr => host3!("bextr", w, d, a, b, fl),
            Op::Bzhi => host3!("bzhi", w, d, a, b, fl),
            Op::Pdep => host3!("pdep", w, d, a, b, fl),
            Op::Pext => host3!("pext", w, d, a, b, fl),
            Op::Sarx => host3!("sarx", w, d, a, b, fl),
            Op::Shlx => host3!("shlx", w, d, a, b, fl),
            Op::Shrx => host3!("shrx", w, d, a, b, fl),
            Op::Blsi => host2!("blsi", w, d, a, fl),
            Op::Blsr => host2!("blsr", w, d, a, fl),
            Op::Blsmsk => host2!("blsmsk", w, d, a, fl),
        }
    }
    (d, fl)
}

/// Assembles with iced-x86's code assembler at `bitness`.
fn asm(bitness: u32, build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(bitness).unwrap();
    build(&mut a).unwrap();
    a.assemble(0x1000).unwrap()
}

/// `op rdx, rax, rcx` (or `op edx, eax, ecx`; `op rdx, rax` for the two-operand ones) in 64-bit code.
fn encode(op: Op, w: u32) -> Vec<u8> {
    asm(64, |c| {
        if w == 64 {
            match op {
                Op::Andn => c.andn(rdx, rax, rcx),
                Op::Bextr => c.bextr(rdx, rax, rcx),
                Op::Bzhi => c.bzhi(rdx, rax, rcx),
                Op::Pdep => c.pdep(rdx, rax, rcx),
                Op::Pext => c.pext(rdx, rax, rcx),
                Op::Sarx => c.sarx(rdx, rax, rcx),
                Op::Shlx => c.shlx(rdx, rax, rcx),
                Op::Shrx => c.shrx(rdx, rax, rcx),
                Op::Blsi => c.blsi(rdx, rax),
                Op::Blsr => c.blsr(rdx, rax),
                Op::Blsmsk => c.blsmsk(rdx, rax),
            }
        } else {
            match op {
                Op::Andn => c.andn(edx, eax, ecx),
                Op::Bextr => c.bextr(edx, eax, ecx),
                Op::Bzhi => c.bzhi(edx, eax, ecx),
                Op::Pdep => c.pdep(edx, eax, ecx),
                Op::Pext => c.pext(edx, eax, ecx),
                Op::Sarx => c.sarx(edx, eax, ecx),
                Op::Shlx => c.shlx(edx, eax, ecx),
                Op::Shrx => c.shrx(edx, eax, ecx),
                Op::Blsi => c.blsi(edx, eax),
                Op::Blsr => c.blsr(edx, eax),
                Op::Blsmsk => c.blsmsk(edx, eax),
            }
        }
    })
}

/// The guest program: rax = a, rcx = b, rdx = garbage, rdi = DATA, the instruction, optionally a TB end, then
/// setcc for all 16 conditions into DATA[0..16].
fn program(insn: &[u8], a: u64, b: u64, split: bool) -> Vec<u8> {
    let mut p = mov_imm64(0, a);
    p.extend(mov_imm64(1, b));
    p.extend(mov_imm64(2, 0xdead_beef_dead_beef));
    p.extend(mov_imm64(7, DATA));
    p.extend(insn);
    if split {
        p.extend([0xeb, 0x00]);
    }
    for cc in 0..16u8 {
        p.extend([0x0f, 0x90 + cc, 0x47, cc]);
    }
    p
}

/// Whether the host can run BMI1 and BMI2 (the tests compare against it; without them they are skipped).
fn host_has_bmi() -> bool {
    let ok = std::is_x86_feature_detected!("bmi1") && std::is_x86_feature_detected!("bmi2");
    if !ok {
        eprintln!("host without BMI1/BMI2: skipped");
    }
    ok
}

fn run_flags(code: &[u8], fl: u64) -> Machine {
    run_with(code, |m| m.cpu.set_rflags(fl))
}

/// Edge values at width `w` (with garbage above a 32-bit width, which the instructions must ignore).
fn values(w: u32) -> Vec<u64> {
    let m = if w == 64 { u64::MAX } else { 0xffff_ffff };
    let sign = 1u64 << (w - 1);
    let garbage = if w == 64 { 0 } else { 0x5a5a_0000_0000_0000 };
    [
        0,
        1,
        2,
        3,
        0x80,
        0xff,
        sign - 1,
        sign,
        sign + 1,
        m - 1,
        m,
        0x1234_5678_9abc_def0 & m,
    ]
    .into_iter()
    .map(|v| v | garbage)
    .collect()
}

/// Second operands: index and length fields for bextr/bzhi (0, 1, w-1, w, w+1, 255 in each byte), counts, masks.
fn seconds(w: u64) -> Vec<u64> {
    let fields = [0u64, 1, 4, w - 1, w, w + 1, 255];
    let mut v = Vec::new();
    for &start in &fields {
        for &len in &fields {
            v.push(start | len << 8);
        }
    }
    v.extend([
        0xffff_0000_0000_0000 | 0x0810,
        0x5555_5555_5555_5555,
        0xf0f0_0f0f_ff00_00ff,
        u64::MAX,
    ]);
    v
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn check(op: Op, w: u32, a: u64, b: u64, fl: u64, split: bool) {
    let (want_d, want_fl) = host(op, w, a, b, fl);
    let m = run_flags(&program(&encode(op, w), a, b, split), fl);
    let what = format!("{op:?}{w} a={a:#x} b={b:#x} fl={fl:#x} split={split}");
    assert_eq!(m.cpu.regs[2], want_d, "result of {what}");
    assert_eq!(m.cpu.rflags() & ARITH, want_fl & ARITH, "flags after {what}");
    for cc in 0..16u8 {
        assert_eq!(
            m.data(cc as usize),
            eval_cc(cc, want_fl) as u8,
            "setcc {cc} after {what}"
        );
    }
}

#[test]
fn bmi_register_forms_over_edge_values_against_the_host() {
    if !host_has_bmi() {
        return;
    }
    let mut checked = 0;
    for op in OPS {
        for w in [32u32, 64] {
            let bs = match op {
                Op::Blsi | Op::Blsr | Op::Blsmsk => vec![0],
                Op::Bextr | Op::Bzhi | Op::Sarx | Op::Shlx | Op::Shrx => seconds(w as u64),
                _ => values(w),
            };
            for &a in &values(w) {
                for &b in &bs {
                    // Flags all clear, then all set: flags-preserving ops must keep them.
                    for fl in [0x202, 0x202 | ARITH] {
                        check(op, w, a, b, fl, false);
                        checked += 1;
                    }
                }
            }
            // The setcc consumers after a TB end (cc_op dynamic), on fewer values.
            for &a in &values(w)[..6] {
                check(op, w, a, bs[bs.len() / 2], 0x202, true);
            }
        }
    }
    assert!(checked > 4000, "{checked}");
}

#[test]
fn bmi_random_values_and_pdep_pext_random_masks_against_the_host() {
    if !host_has_bmi() {
        return;
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for op in OPS {
        for w in [32u32, 64] {
            for i in 0..40 {
                let a = rng.next();
                // Sparse and dense masks for pdep/pext; random controls for the rest.
                let b = match i % 3 {
                    0 => rng.next() & rng.next(),
                    1 => rng.next() | rng.next(),
                    _ => rng.next(),
                };
                check(op, w, a, b, if i % 2 == 0 { 0x202 } else { 0x202 | ARITH }, i % 5 == 0);
            }
        }
    }
}

fn host_mulx(w: u32, src: u64, rdx_in: u64) -> (u64, u64) {
    let (mut hi, mut lo) = (0xdead_beef_dead_beefu64, 0xdead_beef_dead_beefu64);
    // SAFETY: register-only asm.
    unsafe {
        if w == 64 {
            core::arch::asm!("mulx {hi}, {lo}, {s}", hi = inout(reg) hi, lo = inout(reg) lo, s = in(reg) src,
                in("rdx") rdx_in);
        } else {
            core::arch::asm!("mulx {hi:e}, {lo:e}, {s:e}", hi = inout(reg) hi, lo = inout(reg) lo, s = in(reg) src,
                in("rdx") rdx_in);
        }
    }
    (hi, lo)
}

#[test]
fn mulx_against_the_host_and_flags_untouched() {
    if !host_has_bmi() {
        return;
    }
    for w in [32u32, 64] {
        for &a in &values(w) {
            for &b in &values(w) {
                let (hi, lo) = host_mulx(w, b, a);
                // mulx rsi, rdi, rcx (edx/rdx = a)
                let insn = asm(64, |c| {
                    if w == 64 {
                        c.mulx(rsi, rdi, rcx)
                    } else {
                        c.mulx(esi, edi, ecx)
                    }
                });
                let mut p = mov_imm64(2, a);
                p.extend(mov_imm64(1, b));
                p.extend(mov_imm64(6, 0xdead_beef_dead_beef));
                p.extend(mov_imm64(7, 0xdead_beef_dead_beef));
                p.extend(&insn);
                for fl in [0x202, 0x202 | ARITH] {
                    let m = run_flags(&p, fl);
                    let what = format!("mulx{w} {a:#x} * {b:#x}");
                    assert_eq!((m.cpu.regs[6], m.cpu.regs[7]), (hi, lo), "{what}");
                    assert_eq!(m.cpu.regs[2], a, "rdx is a source only: {what}");
                    assert_eq!(m.cpu.rflags() & ARITH, fl & ARITH, "flags untouched: {what}");
                }
            }
        }
    }
    // Both destinations the same register: the host keeps the high half.
    let (mut r, src, d) = (0u64, 0xffff_ffff_ffff_fff0u64, 0x10u64);
    // SAFETY: register-only asm.
    unsafe { core::arch::asm!("mulx {r}, {r}, {s}", r = out(reg) r, s = in(reg) src, in("rdx") d) };
    let mut p = mov_imm64(2, d);
    p.extend(mov_imm64(1, src));
    p.extend(asm(64, |c| c.mulx(rsi, rsi, rcx)));
    assert_eq!(run_with(&p, |_| {}).cpu.regs[6], r);
}

macro_rules! host_rorx {
    ($w:expr, $a:expr, $($n:literal),*) => {{
        let mut out = Vec::new();
        $(
            let mut d = 0xdead_beef_dead_beefu64;
            // SAFETY: register-only asm.
            unsafe {
                if $w == 64 {
                    core::arch::asm!(concat!("rorx {d}, {a}, ", $n), d = inout(reg) d, a = in(reg) $a);
                } else {
                    core::arch::asm!(concat!("rorx {d:e}, {a:e}, ", $n), d = inout(reg) d, a = in(reg) $a);
                }
            }
            out.push(($n as u32, d));
        )*
        out
    }};
}

#[test]
fn rorx_against_the_host_every_interesting_immediate() {
    if !host_has_bmi() {
        return;
    }
    for w in [32u32, 64] {
        for &a in &values(w) {
            for (n, want) in host_rorx!(w, a, 0, 1, 7, 8, 31, 32, 33, 63, 64, 200, 255) {
                let insn = asm(64, |c| {
                    if w == 64 {
                        c.rorx(rdx, rax, n)
                    } else {
                        c.rorx(edx, eax, n)
                    }
                });
                let mut p = mov_imm64(0, a);
                p.extend(mov_imm64(2, 0xdead_beef_dead_beef));
                p.extend(&insn);
                let m = run_flags(&p, 0x202 | ARITH);
                assert_eq!(m.cpu.regs[2], want, "rorx{w} {a:#x}, {n}");
                assert_eq!(m.cpu.rflags() & ARITH, ARITH, "flags untouched");
            }
        }
    }
}

#[test]
fn memory_sources_give_the_register_results() {
    let (a, b) = (0x8765_4321_0fed_cba9u64, 0x0000_0000_0000_1c04u64);
    let mem = 0xf0f0_1234_5678_0ff1u64;
    // (guest instruction reading [rdi + 8], the same with registers: rbx = the memory value)
    type Build = fn(&mut CodeAssembler) -> Result<(), IcedError>;
    let pairs: [(Build, Build); 12] = [
        (|c| c.andn(rdx, rax, qword_ptr(rdi + 8)), |c| c.andn(rdx, rax, rbx)),
        (|c| c.bextr(rdx, qword_ptr(rdi + 8), rcx), |c| c.bextr(rdx, rbx, rcx)),
        (|c| c.bzhi(edx, dword_ptr(rdi + 8), ecx), |c| c.bzhi(edx, ebx, ecx)),
        (|c| c.blsi(rdx, qword_ptr(rdi + 8)), |c| c.blsi(rdx, rbx)),
        (|c| c.blsr(edx, dword_ptr(rdi + 8)), |c| c.blsr(edx, ebx)),
        (|c| c.blsmsk(rdx, qword_ptr(rdi + 8)), |c| c.blsmsk(rdx, rbx)),
        (|c| c.pdep(rdx, rax, qword_ptr(rdi + 8)), |c| c.pdep(rdx, rax, rbx)),
        (|c| c.pext(edx, eax, dword_ptr(rdi + 8)), |c| c.pext(edx, eax, ebx)),
        (|c| c.rorx(rdx, qword_ptr(rdi + 8), 13), |c| c.rorx(rdx, rbx, 13)),
        (|c| c.sarx(edx, dword_ptr(rdi + 8), ecx), |c| c.sarx(edx, ebx, ecx)),
        (|c| c.shlx(rdx, qword_ptr(rdi + 8), rcx), |c| c.shlx(rdx, rbx, rcx)),
        (|c| c.mulx(rdx, rsi, qword_ptr(rdi + 8)), |c| c.mulx(rdx, rsi, rbx)),
    ];
    for (i, (mem_form, reg_form)) in pairs.iter().enumerate() {
        let results: Vec<_> = [mem_form, reg_form]
            .iter()
            .map(|build| {
                let mut p = mov_imm64(0, a);
                p.extend(mov_imm64(1, b));
                p.extend(mov_imm64(2, a ^ b));
                p.extend(mov_imm64(3, mem));
                p.extend(mov_imm64(7, DATA));
                p.extend(asm(64, |c| build(c)));
                let m = run_with(&p, |m| m.write_u64(DATA + 8, mem));
                (m.cpu.regs[2], m.cpu.regs[6], m.cpu.rflags() & ARITH)
            })
            .collect();
        assert_eq!(results[0], results[1], "pair {i}");
    }
}

#[test]
fn vex_is_decoded_from_raw_bytes_in_64_32_and_16_bit_code() {
    // andn rdx, rcx, rax = C4 E2 F0 F2 D0 (VEX.W1, vvvv = rcx); rdx = !rcx & rax.
    let mut p = mov_imm64(0, 0xff00_ff00_ff00_ff00);
    p.extend(mov_imm64(1, 0x0ff0_0ff0_0ff0_0ff0));
    p.extend([0xc4, 0xe2, 0xf0, 0xf2, 0xd0]);
    let m = run_with(&p, |_| {});
    assert_eq!(m.cpu.regs[2], !0x0ff0_0ff0_0ff0_0ff0u64 & 0xff00_ff00_ff00_ff00);
    // 2-byte VEX can't encode the 0F38 map, so BMI is always C4; shlx r/m form: C4 E2 F1 F7 D0 is
    // shlx edx, eax, ecx (pp = 01: 66).
    for bitness in [32u32, 16] {
        // mov eax, imm32; mov ecx, imm32 (a 66 prefix in 16-bit code); shlx edx, eax, ecx (W ignored outside
        // 64-bit mode).
        let o32: &[u8] = if bitness == 16 { &[0x66] } else { &[] };
        let mut p = Vec::new();
        p.extend(o32);
        p.extend([0xb8, 0x01, 0x00, 0x00, 0x80]);
        p.extend(o32);
        p.extend([0xb9, 0x21, 0x00, 0x00, 0x00]);
        p.extend([0xc4, 0xe2, 0x71, 0xf7, 0xd0]);
        let m = run_with(&p, |m| {
            m.flags = TbFlags {
                bitness,
                ss32: bitness == 32,
                cs_base: 0,
                ..TbFlags::LONG
            };
        });
        assert_eq!(m.cpu.regs[2], 2, "{bitness}-bit: 0x80000001 << (33 & 31)");
    }
}
