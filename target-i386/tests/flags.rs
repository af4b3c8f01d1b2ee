//! Flags of every ALU family at every width, checked against this machine's own CPU: the result register, the
//! materialized RFLAGS (`compute_eflags` through `X86CpuState::rflags`), and all 16 conditions read by setcc,
//! both on the translator's lazy fast path (setcc in the same TB as the operation, `cc_op` known) and through
//! the `compute_eflags` helper (the TB ends between them, `cc_op` is dynamic).

#![cfg(target_arch = "x86_64")]

mod harness;

use harness::{eval_cc, mov_imm64, run, DATA};

/// (name, opcode of the r/m8 form, /digit for unary ops, whether it writes rax, flags the manual leaves undefined)
#[derive(Clone, Copy)]
struct Alu {
    name: &'static str,
    opcode: u8,
    unary_digit: Option<u8>,
    undefined: u64,
}

const AF: u64 = 0x10;
const ALUS: &[Alu] = &[
    Alu {
        name: "add",
        opcode: 0x00,
        unary_digit: None,
        undefined: 0,
    },
    Alu {
        name: "or",
        opcode: 0x08,
        unary_digit: None,
        undefined: AF,
    },
    Alu {
        name: "adc",
        opcode: 0x10,
        unary_digit: None,
        undefined: 0,
    },
    Alu {
        name: "sbb",
        opcode: 0x18,
        unary_digit: None,
        undefined: 0,
    },
    Alu {
        name: "and",
        opcode: 0x20,
        unary_digit: None,
        undefined: AF,
    },
    Alu {
        name: "sub",
        opcode: 0x28,
        unary_digit: None,
        undefined: 0,
    },
    Alu {
        name: "xor",
        opcode: 0x30,
        unary_digit: None,
        undefined: AF,
    },
    Alu {
        name: "cmp",
        opcode: 0x38,
        unary_digit: None,
        undefined: 0,
    },
    Alu {
        name: "test",
        opcode: 0x84,
        unary_digit: None,
        undefined: AF,
    },
    Alu {
        name: "inc",
        opcode: 0xfe,
        unary_digit: Some(0),
        undefined: 0,
    },
    Alu {
        name: "dec",
        opcode: 0xfe,
        unary_digit: Some(1),
        undefined: 0,
    },
    Alu {
        name: "neg",
        opcode: 0xf6,
        unary_digit: Some(3),
        undefined: 0,
    },
    Alu {
        name: "not",
        opcode: 0xf6,
        unary_digit: Some(2),
        undefined: 0,
    },
];

macro_rules! native_bin {
    ($op:literal, $a:ident, $b:ident, $fl:ident, $w:expr) => {
        match $w {
            0 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:l}, {b:l}"), "pushfq", "pop {fl}",
                a = inout(reg) $a, b = in(reg) $b, fl = inout(reg) $fl),
            1 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:x}, {b:x}"), "pushfq", "pop {fl}",
                a = inout(reg) $a, b = in(reg) $b, fl = inout(reg) $fl),
            2 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:e}, {b:e}"), "pushfq", "pop {fl}",
                a = inout(reg) $a, b = in(reg) $b, fl = inout(reg) $fl),
            _ => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:r}, {b:r}"), "pushfq", "pop {fl}",
                a = inout(reg) $a, b = in(reg) $b, fl = inout(reg) $fl),
        }
    };
}

macro_rules! native_un {
    ($op:literal, $a:ident, $fl:ident, $w:expr) => {
        match $w {
            0 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:l}"), "pushfq", "pop {fl}",
                a = inout(reg) $a, fl = inout(reg) $fl),
            1 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:x}"), "pushfq", "pop {fl}",
                a = inout(reg) $a, fl = inout(reg) $fl),
            2 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:e}"), "pushfq", "pop {fl}",
                a = inout(reg) $a, fl = inout(reg) $fl),
            _ => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:r}"), "pushfq", "pop {fl}",
                a = inout(reg) $a, fl = inout(reg) $fl),
        }
    };
}

/// Runs `op` on the host CPU: returns (rax after, RFLAGS after).
fn native(op: &str, w: usize, a: u64, b: u64, cf: bool) -> (u64, u64) {
    let (mut a, mut fl) = (a, 0x202 | cf as u64);
    // SAFETY: the asm touches only its operands, and the stack through push/pop.
    unsafe {
        match op {
            "add" => native_bin!("add", a, b, fl, w),
            "or" => native_bin!("or", a, b, fl, w),
            "adc" => native_bin!("adc", a, b, fl, w),
            "sbb" => native_bin!("sbb", a, b, fl, w),
            "and" => native_bin!("and", a, b, fl, w),
            "sub" => native_bin!("sub", a, b, fl, w),
            "xor" => native_bin!("xor", a, b, fl, w),
            "cmp" => native_bin!("cmp", a, b, fl, w),
            "test" => native_bin!("test", a, b, fl, w),
            "inc" => native_un!("inc", a, fl, w),
            "dec" => native_un!("dec", a, fl, w),
            "neg" => native_un!("neg", a, fl, w),
            _ => native_un!("not", a, fl, w),
        }
    }
    (a, fl)
}

/// The guest program: rax = a, rcx = b, CF = cf, the operation on rax/al..., then setcc for all 16 conditions
/// into DATA[0..16], optionally ending the TB between them.
fn program(alu: Alu, w: usize, a: u64, b: u64, cf: bool, split: bool) -> Vec<u8> {
    let mut p = mov_imm64(0, a);
    p.extend(mov_imm64(1, b));
    p.extend(mov_imm64(7, DATA));
    p.push(if cf { 0xf9 } else { 0xf8 });
    match w {
        1 => p.push(0x66),
        3 => p.push(0x48),
        _ => {}
    }
    let opcode = alu.opcode + (w != 0) as u8;
    let modrm = match alu.unary_digit {
        Some(d) => 0xc0 | (d << 3),
        None => 0xc8, // r/m = rax, reg = rcx
    };
    p.extend([opcode, modrm]);
    if split {
        p.extend([0xeb, 0x00]); // jmp to the next instruction: ends the TB
    }
    for cc in 0..16u8 {
        p.extend([0x0f, 0x90 + cc, 0x47, cc]); // setcc [rdi + cc]
    }
    p
}

fn edges(w: usize) -> Vec<u64> {
    let bits = 8u32 << w;
    let mask = u64::MAX >> (64 - bits);
    let sign = 1u64 << (bits - 1);
    // High garbage above the width checks partial-register merging.
    let garbage = 0xdead_beef_cafe_f00d & !mask;
    [0, 1, 0xf, sign - 1, sign, sign + 1, mask - 1, mask]
        .into_iter()
        .map(|v| v | garbage)
        .collect()
}

#[test]
fn every_alu_family_every_width_against_the_host() {
    let mut checked = 0;
    for &alu in ALUS {
        for w in 0..4 {
            for &a in &edges(w) {
                let bs = if alu.unary_digit.is_some() {
                    vec![0x1234]
                } else {
                    edges(w)
                };
                for &b in &bs {
                    for cf in [false, true] {
                        let (want_rax, want_fl) = native(alu.name, w, a, b, cf);
                        let mask = 0x8d5 & !alu.undefined;
                        for split in [false, true] {
                            let m = run(&program(alu, w, a, b, cf, split));
                            let what = format!("{} w={w} a={a:#x} b={b:#x} cf={cf} split={split}", alu.name);
                            assert_eq!(m.cpu.regs[0], want_rax, "rax after {what}");
                            assert_eq!(m.cpu.rflags() & mask, want_fl & mask, "rflags after {what}");
                            for cc in 0..16u8 {
                                let want = eval_cc(cc, want_fl);
                                if want != eval_cc(cc, want_fl ^ alu.undefined) {
                                    continue; // depends on an undefined flag (none of the 16 read AF)
                                }
                                assert_eq!(m.data(cc as usize), want as u8, "setcc {cc} after {what}");
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 2000, "{checked}");
}

#[test]
fn xor_and_sub_of_a_register_with_itself() {
    for (opcode, name) in [(0x31u8, "xor"), (0x29, "sub")] {
        let mut p = mov_imm64(0, 0x1234_5678_9abc_def0);
        p.extend(mov_imm64(7, DATA));
        p.extend([opcode, 0xc0]); // op eax, eax: clears all of rax
        for cc in 0..16u8 {
            p.extend([0x0f, 0x90 + cc, 0x47, cc]);
        }
        let m = run(&p);
        assert_eq!(m.cpu.regs[0], 0, "{name}");
        assert_eq!(m.cpu.rflags() & 0x8d5, 0x44, "{name}: ZF and PF");
        for cc in 0..16u8 {
            assert_eq!(m.data(cc as usize), eval_cc(cc, 0x44) as u8, "{name} setcc {cc}");
        }
    }
}

macro_rules! native_shift {
    ($op:literal, $a:ident, $c:ident, $fl:ident, $w:expr) => {
        match $w {
            0 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:l}, cl"), "pushfq", "pop {fl}",
                a = inout(reg) $a, in("cl") $c, fl = inout(reg) $fl),
            1 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:x}, cl"), "pushfq", "pop {fl}",
                a = inout(reg) $a, in("cl") $c, fl = inout(reg) $fl),
            2 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:e}, cl"), "pushfq", "pop {fl}",
                a = inout(reg) $a, in("cl") $c, fl = inout(reg) $fl),
            _ => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:r}, cl"), "pushfq", "pop {fl}",
                a = inout(reg) $a, in("cl") $c, fl = inout(reg) $fl),
        }
    };
}

/// Whether condition `cc` depends on any flag in `undefined`, given `fl`.
fn depends(cc: u8, fl: u64, undefined: u64) -> bool {
    let bits: Vec<u64> = (0..12).map(|b| 1u64 << b).filter(|b| undefined & b != 0).collect();
    (0..1u64 << bits.len()).any(|combo| {
        let mut g = fl;
        for (i, b) in bits.iter().enumerate() {
            if combo >> i & 1 == 1 {
                g ^= b;
            }
        }
        eval_cc(cc, g) != eval_cc(cc, fl)
    })
}

#[test]
fn shifts_by_immediate_and_cl_against_the_host() {
    // (name, /digit)
    let ops = [("shl", 4u8), ("shr", 5), ("sar", 7)];
    let mut checked = 0;
    for (name, digit) in ops {
        for w in 0..4usize {
            let bits = 8u32 << w;
            for &a in &edges(w) {
                for count in [0u8, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 0x41] {
                    let (mut ra, mut fl) = (a, 0x202 | 0x801u64); // CF and OF set before
                                                                  // SAFETY: register-only asm with push/pop of flags.
                    unsafe {
                        match name {
                            "shl" => native_shift!("shl", ra, count, fl, w),
                            "shr" => native_shift!("shr", ra, count, fl, w),
                            _ => native_shift!("sar", ra, count, fl, w),
                        }
                    }
                    let masked = count as u32 & if w == 3 { 63 } else { 31 };
                    let mut undefined = 0;
                    if masked != 0 {
                        undefined |= AF;
                        if masked != 1 {
                            undefined |= 0x800;
                        }
                        if masked >= bits && name != "sar" {
                            undefined |= 1;
                        }
                    }
                    let mask = 0x8d5 & !undefined;
                    for by_cl in [false, true] {
                        let mut p = mov_imm64(0, a);
                        p.extend(mov_imm64(1, count as u64));
                        p.extend(mov_imm64(7, DATA));
                        p.extend([0xf9]); // stc
                        p.extend([0x48, 0x83, 0xc9, 0x00]); // or rcx, 0: clears OF and CF ...
                        p.extend([0xf9]); // ... stc again; OF stays clear
                        match w {
                            1 => p.push(0x66),
                            3 => p.push(0x48),
                            _ => {}
                        }
                        let wide = (w != 0) as u8;
                        if by_cl {
                            p.extend([0xd2 + wide, 0xc0 | (digit << 3)]);
                        } else {
                            p.extend([0xc0 + wide, 0xc0 | (digit << 3), count]);
                        }
                        for cc in 0..16u8 {
                            p.extend([0x0f, 0x90 + cc, 0x47, cc]);
                        }
                        // With a zero count the flags stay as `or rcx, 0; stc` left them.
                        let m = run(&p);
                        let what = format!("{name} w={w} a={a:#x} count={count} cl={by_cl}");
                        assert_eq!(m.cpu.regs[0], ra, "rax after {what}");
                        let want_fl = if masked == 0 {
                            let c = count as u64;
                            let zf = if c == 0 { 0x40 } else { 0 };
                            let pf = if (c as u8).count_ones() & 1 == 0 { 4 } else { 0 };
                            zf | pf | 1
                        } else {
                            fl
                        };
                        let mask = if masked == 0 { 0x8d5 & !AF } else { mask };
                        assert_eq!(m.cpu.rflags() & mask, want_fl & mask, "rflags after {what}");
                        for cc in 0..16u8 {
                            if depends(cc, want_fl, undefined) {
                                continue;
                            }
                            assert_eq!(
                                m.data(cc as usize),
                                eval_cc(cc, want_fl) as u8,
                                "setcc {cc} after {what}"
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 500);
}

#[test]
fn count_zero_keeps_the_flags_of_the_previous_operation() {
    // cmp rax, rcx (sets CF: 1 < 2); shl rbx, cl with cl = 0; setb dl; jmp +0; setb sil
    let mut p = mov_imm64(0, 1);
    p.extend(mov_imm64(1, 0));
    p.extend(mov_imm64(2, 0));
    p.extend(mov_imm64(3, 2));
    p.extend([0x48, 0x39, 0xd8]); // cmp rax, rbx
    p.extend([0x48, 0xd3, 0xe3]); // shl rbx, cl
    p.extend([0x0f, 0x92, 0xc2]); // setb dl
    p.extend([0x48, 0x39, 0xd8]); // cmp rax, rbx
    p.extend([0x48, 0xc1, 0xe3, 0x00]); // shl rbx, 0
    p.extend([0xeb, 0x00]);
    p.extend([0x40, 0x0f, 0x92, 0xc6]); // setb sil
    let m = run(&p);
    assert_eq!((m.cpu.regs[2], m.cpu.regs[6]), (1, 1));
}

#[test]
fn pushf_lahf_sahf_materialize_the_lazy_flags() {
    for &alu in &ALUS[..9] {
        for (a, b) in [(0u64, 0u64), (0x7f, 1), (0x80, 0x80), (0xffff_ffff, 1), (5, 7)] {
            let (_, want) = native(alu.name, 2, a, b, true);
            let mut p = mov_imm64(0, a);
            p.extend(mov_imm64(1, b));
            p.push(0xf9);
            p.extend([alu.opcode + 1, 0xc8]); // op eax, ecx
            p.push(0x9c); // pushfq
            p.push(0x9f); // lahf
            p.extend([0x88, 0xe3]); // mov bl, ah
            p.extend([0xb4, 0x01]); // mov ah, 1 (CF only)
            p.push(0x9e); // sahf
            p.extend([0x0f, 0x92, 0xc2]); // setb dl
            p.extend([0x0f, 0x90, 0xc6]); // seto dh
            let m = run(&p);
            let mask = 0x8d5 & !alu.undefined;
            let pushed = m.read_u64(harness::STACK_TOP - 8);
            let what = format!("{} {a:#x}, {b:#x}", alu.name);
            assert_eq!(pushed & mask, want & mask, "pushf after {what}");
            assert_eq!(pushed & 0x2, 2, "bit 1 of the pushed image");
            assert_eq!(
                m.cpu.regs[3] & 0xff & mask,
                ((want & 0xd5) | 2) & mask,
                "lahf after {what}"
            );
            assert_eq!(m.cpu.regs[2] & 0xff, 1, "sahf set CF");
            assert_eq!(
                (m.cpu.regs[2] >> 8) & 0xff,
                (want >> 11) & 1,
                "sahf kept OF after {what}"
            );
        }
    }
}

macro_rules! native_muldiv {
    ($op:literal, $a:ident, $d:ident, $b:ident, $fl:ident, $w:expr) => {
        match $w {
            0 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {b:l}"), "pushfq", "pop {fl}",
                inout("rax") $a, inout("rdx") $d, b = in(reg) $b, fl = inout(reg) $fl),
            1 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {b:x}"), "pushfq", "pop {fl}",
                inout("rax") $a, inout("rdx") $d, b = in(reg) $b, fl = inout(reg) $fl),
            2 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {b:e}"), "pushfq", "pop {fl}",
                inout("rax") $a, inout("rdx") $d, b = in(reg) $b, fl = inout(reg) $fl),
            _ => core::arch::asm!("push {fl}", "popfq", concat!($op, " {b:r}"), "pushfq", "pop {fl}",
                inout("rax") $a, inout("rdx") $d, b = in(reg) $b, fl = inout(reg) $fl),
        }
    };
}

/// Whether div/idiv of rdx:rax by `b` at width `w` raises #DE.
fn divide_faults(signed: bool, w: usize, a: u64, d: u64, b: u64) -> bool {
    let bits = 8u32 << w;
    let mask = u64::MAX >> (64 - bits);
    let n: u128 = if w == 0 {
        (a & 0xffff) as u128
    } else {
        ((d & mask) as u128) << bits | (a & mask) as u128
    };
    let b = b & mask;
    if b == 0 {
        return true;
    }
    if signed {
        let wide = 2 * bits;
        let n = ((n << (128 - wide)) as i128) >> (128 - wide);
        let bs = ((b << (64 - bits)) as i64 >> (64 - bits)) as i128;
        let Some(q) = n.checked_div(bs) else {
            return true;
        };
        q < -(1i128 << (bits - 1)) || q > (1i128 << (bits - 1)) - 1
    } else {
        (n / b as u128) >> bits != 0
    }
}

#[test]
fn mul_imul_div_idiv_against_the_host() {
    // (name, /digit of F6/F7)
    let ops = [("mul", 4u8), ("imul", 5), ("div", 6), ("idiv", 7)];
    let mut faults = 0;
    for (name, digit) in ops {
        for w in 0..4usize {
            for &a in &edges(w) {
                for &b in &edges(w) {
                    for d in [0u64, 1, u64::MAX, 0x8000_0000_0000_0000] {
                        let divides = name.ends_with("div");
                        let mut p = mov_imm64(0, a);
                        p.extend(mov_imm64(2, d));
                        p.extend(mov_imm64(1, b));
                        match w {
                            1 => p.push(0x66),
                            3 => p.push(0x48),
                            _ => {}
                        }
                        p.extend([0xf6 + (w != 0) as u8, 0xc1 | (digit << 3)]); // op cl/cx/ecx/rcx
                        let what = format!("{name} w={w} rdx:rax={d:#x}:{a:#x} b={b:#x}");
                        if divides && divide_faults(name == "idiv", w, a, d, b) {
                            let mut m = harness::Machine::new(&p);
                            let out = m.run();
                            assert_eq!(
                                out,
                                harness::Outcome::Fault {
                                    rip: harness::CODE + 30,
                                    vector: 0
                                },
                                "{what}"
                            );
                            assert_eq!((m.cpu.regs[0], m.cpu.regs[2]), (a, d), "#DE changes nothing: {what}");
                            faults += 1;
                            continue;
                        }
                        let (mut ra, mut rd, mut fl) = (a, d, 0x202u64);
                        // SAFETY: register-only asm; the inputs were checked not to fault.
                        unsafe {
                            match name {
                                "mul" => native_muldiv!("mul", ra, rd, b, fl, w),
                                "imul" => native_muldiv!("imul", ra, rd, b, fl, w),
                                "div" => native_muldiv!("div", ra, rd, b, fl, w),
                                _ => native_muldiv!("idiv", ra, rd, b, fl, w),
                            }
                        }
                        let m = run(&p);
                        assert_eq!((m.cpu.regs[0], m.cpu.regs[2]), (ra, rd), "rax, rdx after {what}");
                        if !divides {
                            assert_eq!(m.cpu.rflags() & 0x801, fl & 0x801, "CF, OF after {what}");
                        }
                    }
                }
            }
        }
    }
    assert!(faults > 50);
}

#[test]
fn imul_two_and_three_operands_against_the_host() {
    for w in 1..4usize {
        for &a in &edges(w) {
            for &b in &edges(w) {
                let (mut ra, mut fl) = (a, 0x202u64);
                // SAFETY: register-only asm.
                unsafe {
                    match w {
                        1 => core::arch::asm!("push {fl}", "popfq", "imul {a:x}, {b:x}", "pushfq", "pop {fl}",
                            a = inout(reg) ra, b = in(reg) b, fl = inout(reg) fl),
                        2 => core::arch::asm!("push {fl}", "popfq", "imul {a:e}, {b:e}", "pushfq", "pop {fl}",
                            a = inout(reg) ra, b = in(reg) b, fl = inout(reg) fl),
                        _ => core::arch::asm!("push {fl}", "popfq", "imul {a:r}, {b:r}", "pushfq", "pop {fl}",
                            a = inout(reg) ra, b = in(reg) b, fl = inout(reg) fl),
                    }
                }
                let mut p = mov_imm64(0, a);
                p.extend(mov_imm64(1, b));
                match w {
                    1 => p.push(0x66),
                    3 => p.push(0x48),
                    _ => {}
                }
                p.extend([0x0f, 0xaf, 0xc1]); // imul eax, ecx
                let m = run(&p);
                let what = format!("imul w={w} {a:#x}, {b:#x}");
                assert_eq!(m.cpu.regs[0], ra, "{what}");
                assert_eq!(m.cpu.rflags() & 0x801, fl & 0x801, "CF, OF after {what}");
            }
        }
    }
    // imul rax, rcx, -3 and imul edx, [rdi], 0x10000
    let mut p = mov_imm64(1, 0x4000_0000_0000_0001);
    p.extend(mov_imm64(7, DATA));
    p.extend([0x48, 0x6b, 0xc1, 0xfd]);
    p.extend([0xc7, 0x07, 0x00, 0x80, 0x00, 0x00]); // mov dword [rdi], 0x8000
    p.extend([0x69, 0x17, 0x00, 0x00, 0x01, 0x00]);
    let m = run(&p);
    assert_eq!(m.cpu.regs[0], 0x4000_0000_0000_0001u64.wrapping_mul(-3i64 as u64));
    assert_eq!(m.cpu.regs[2], 0x8000_0000);
    assert_eq!(m.cpu.rflags() & 0x801, 0x801, "0x8000 * 0x10000 overflows 32 bits");
}

macro_rules! native_wide {
    ($op:literal, $a:ident, $b:ident, $fl:ident, $w:expr) => {
        match $w {
            1 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:x}, {b:x}"), "pushfq", "pop {fl}",
                a = inout(reg) $a, b = in(reg) $b, fl = inout(reg) $fl),
            2 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:e}, {b:e}"), "pushfq", "pop {fl}",
                a = inout(reg) $a, b = in(reg) $b, fl = inout(reg) $fl),
            _ => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:r}, {b:r}"), "pushfq", "pop {fl}",
                a = inout(reg) $a, b = in(reg) $b, fl = inout(reg) $fl),
        }
    };
}

/// Runs `op_bytes` (operating on rax and rcx, width prefix added) after `rax = a, rcx = b` and RFLAGS set to
/// `init` in the CPU state, and compares rax, rcx and the flags outside `undefined` with
/// the host's.
fn check_host(what: &str, w: usize, op_bytes: &[u8], inputs: (u64, u64, u64), host: (u64, u64, u64), undefined: u64) {
    let (a, b, init) = inputs;
    let m = harness::run_with(
        &{
            let mut q = Vec::new();
            match w {
                1 => q.push(0x66),
                3 => q.push(0x48),
                _ => {}
            }
            q.extend_from_slice(op_bytes);
            q
        },
        |m| {
            m.cpu.regs[0] = a;
            m.cpu.regs[1] = b;
            m.cpu.set_rflags(init);
        },
    );
    let (ra, rc, fl) = host;
    assert_eq!((m.cpu.regs[0], m.cpu.regs[1]), (ra, rc), "rax, rcx after {what}");
    let mask = 0x8d5 & !undefined;
    assert_eq!(m.cpu.rflags() & mask, fl & mask, "flags after {what}");
}

#[test]
fn rotates_bit_tests_scans_bswap_xadd_cmpxchg_against_the_host() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    // The counting instructions are compared only on hosts that have them.
    let host_counts = ["popcnt", "bmi1", "abm"].iter().all(|f| cpuinfo.contains(f));
    let inits = [0x202u64, 0x202 | 0x8d5];
    for w in 0..4usize {
        for &a in &edges(w) {
            for &init in &inits {
                // rol/ror by cl, counts 0..=65 (a selection).
                for count in [0u64, 1, 2, 7, 8, 9, 16, 31, 32, 33, 63, 64, 65] {
                    for (name, digit) in [("rol", 0u8), ("ror", 1)] {
                        let (mut ra, c, mut fl) = (a, count as u8, init);
                        // SAFETY: register-only asm.
                        unsafe {
                            if name == "rol" {
                                native_shift!("rol", ra, c, fl, w)
                            } else {
                                native_shift!("ror", ra, c, fl, w)
                            }
                        }
                        let masked = count & if w == 3 { 63 } else { 31 };
                        let undefined = if masked > 1 { 0x800 } else { 0 };
                        let code = [0xd2 + (w != 0) as u8, 0xc0 | (digit << 3)];
                        let what = format!("{name} w={w} {a:#x}, {count} init={init:#x}");
                        check_host(&what, w, &code, (a, count, init), (ra, count, fl), undefined);
                    }
                }
                if w == 0 {
                    continue; // bit tests and scans have no 8-bit form; xadd/cmpxchg are checked at 16-64 bits
                }
                for &b in &edges(w) {
                    let host_bin = |name: &str| {
                        let (mut ra, mut fl) = (a, init);
                        // SAFETY: register-only asm.
                        unsafe {
                            match name {
                                "bt" => native_wide!("bt", ra, b, fl, w),
                                "bts" => native_wide!("bts", ra, b, fl, w),
                                "btr" => native_wide!("btr", ra, b, fl, w),
                                "btc" => native_wide!("btc", ra, b, fl, w),
                                "bsf" => native_wide!("bsf", ra, b, fl, w),
                                _ => native_wide!("bsr", ra, b, fl, w),
                            }
                        }
                        (ra, b, fl)
                    };
                    // bt* rax, rcx: 0f a3/ab/b3/bb c8 (r/m = rax, reg = rcx).
                    for (name, op) in [("bt", 0xa3u8), ("bts", 0xab), ("btr", 0xb3), ("btc", 0xbb)] {
                        let what = format!("{name} w={w} {a:#x}, {b:#x}");
                        check_host(&what, w, &[0x0f, op, 0xc8], (a, b, init), host_bin(name), 0x894);
                    }
                    // popcnt/tzcnt/lzcnt rax, rcx: f3 (66/48) 0f b8/bc/bd c1; the width prefix goes after f3.
                    let counts: &[(&str, u8)] = if host_counts {
                        &[("popcnt", 0xb8), ("tzcnt", 0xbc), ("lzcnt", 0xbd)]
                    } else {
                        &[]
                    };
                    for &(name, op) in counts {
                        let (mut ra, mut fl) = (a, init);
                        // SAFETY: register-only asm; the host has popcnt, bmi1 and abm (checked above).
                        unsafe {
                            match name {
                                "popcnt" => native_wide!("popcnt", ra, b, fl, w),
                                "tzcnt" => native_wide!("tzcnt", ra, b, fl, w),
                                _ => native_wide!("lzcnt", ra, b, fl, w),
                            }
                        }
                        let mut q = vec![0xf3];
                        match w {
                            1 => q.insert(0, 0x66),
                            3 => q.push(0x48),
                            _ => {}
                        }
                        q.extend([0x0f, op, 0xc1]);
                        let m = harness::run_with(&q, |m| {
                            m.cpu.regs[0] = a;
                            m.cpu.regs[1] = b;
                            m.cpu.set_rflags(init);
                        });
                        let what = format!("{name} w={w} {b:#x}");
                        let undefined = if name == "popcnt" { 0 } else { 0x894 };
                        assert_eq!(m.cpu.regs[0], ra, "{what}");
                        assert_eq!(m.cpu.rflags() & 0x8d5 & !undefined, fl & 0x8d5 & !undefined, "{what}");
                    }
                    // bsf/bsr rax, rcx: 0f bc/bd c1 (reg = rax, r/m = rcx).
                    for (name, op) in [("bsf", 0xbcu8), ("bsr", 0xbd)] {
                        let what = format!("{name} w={w} {a:#x}, {b:#x}");
                        let mut host = host_bin(name);
                        if b & (u64::MAX >> (64 - (8 << w))) == 0 {
                            host.0 = a; // destination unchanged for a zero source (documented by AMD)
                        }
                        check_host(&what, w, &[0x0f, op, 0xc1], (a, b, init), host, 0x895);
                    }
                    // xadd rax, rcx: 0f c1 c8.
                    let (mut ra, mut rc, mut fl) = (a, b, init);
                    // SAFETY: register-only asm.
                    unsafe {
                        match w {
                            1 => core::arch::asm!("push {fl}", "popfq", "xadd ax, cx", "pushfq", "pop {fl}",
                                inout("rax") ra, inout("rcx") rc, fl = inout(reg) fl),
                            2 => core::arch::asm!("push {fl}", "popfq", "xadd eax, ecx", "pushfq", "pop {fl}",
                                inout("rax") ra, inout("rcx") rc, fl = inout(reg) fl),
                            _ => core::arch::asm!("push {fl}", "popfq", "xadd rax, rcx", "pushfq", "pop {fl}",
                                inout("rax") ra, inout("rcx") rc, fl = inout(reg) fl),
                        }
                    }
                    check_host(
                        &format!("xadd w={w} {a:#x}, {b:#x}"),
                        w,
                        &[0x0f, 0xc1, 0xc8],
                        (a, b, init),
                        (ra, rc, fl),
                        0,
                    );
                    for same in [false, true] {
                        // cmpxchg rcx, rdx with rax = a or rax = rcx (success).
                        let (mut ra, mut rc, mut fl) = (if same { b } else { a }, b, init);
                        let rd = 0x5555_6666_7777_8888u64;
                        // SAFETY: register-only asm.
                        unsafe {
                            match w {
                                1 => core::arch::asm!("push {fl}", "popfq", "cmpxchg cx, dx", "pushfq", "pop {fl}",
                                    inout("rax") ra, inout("rcx") rc, in("rdx") rd, fl = inout(reg) fl),
                                2 => core::arch::asm!("push {fl}", "popfq", "cmpxchg ecx, edx", "pushfq", "pop {fl}",
                                    inout("rax") ra, inout("rcx") rc, in("rdx") rd, fl = inout(reg) fl),
                                _ => core::arch::asm!("push {fl}", "popfq", "cmpxchg rcx, rdx", "pushfq", "pop {fl}",
                                    inout("rax") ra, inout("rcx") rc, in("rdx") rd, fl = inout(reg) fl),
                            }
                        }
                        let mut q = Vec::new();
                        match w {
                            1 => q.push(0x66),
                            3 => q.push(0x48),
                            _ => {}
                        }
                        q.extend([0x0f, 0xb1, 0xd1]);
                        let rax0 = if same { b } else { a };
                        let m = harness::run_with(&q, |m| {
                            m.cpu.regs[0] = rax0;
                            m.cpu.regs[1] = b;
                            m.cpu.regs[2] = rd;
                            m.cpu.set_rflags(init);
                        });
                        let what = format!("cmpxchg w={w} rax={rax0:#x} rcx={b:#x}");
                        assert_eq!((m.cpu.regs[0], m.cpu.regs[1]), (ra, rc), "{what}");
                        assert_eq!(m.cpu.rflags() & 0x8d5, fl & 0x8d5, "{what}");
                    }
                }
            }
        }
    }
}

#[test]
fn bswap_and_cpuid() {
    let p = [0x48, 0x0f, 0xc8, 0x0f, 0xcb]; // bswap rax; bswap ebx
    let m = harness::run_with(&p, |m| {
        m.cpu.regs[0] = 0x0102_0304_0506_0708;
        m.cpu.regs[3] = 0xffff_ffff_1122_3344;
    });
    assert_eq!((m.cpu.regs[0], m.cpu.regs[3]), (0x0807_0605_0403_0201, 0x4433_2211));
    let m = harness::run_with(&[0x0f, 0xa2], |m| {
        m.cpu.regs[0] = 0xffff_ffff_0000_0000;
        m.cpu.regs[3] = u64::MAX;
    });
    let mut vendor = Vec::new();
    for r in [3, 2, 1] {
        vendor.extend_from_slice(&(m.cpu.regs[r] as u32).to_le_bytes());
    }
    assert_eq!(&vendor, rqemu_target_i386::cpuid::VENDOR);
    // The highest basic leaf, as the CPUID model reports it (zero-extended into rax).
    assert_eq!(m.cpu.regs[0], u64::from(rqemu_target_i386::cpuid::cpuid(0, 0).eax));
    assert!(m.cpu.regs[0] >= 7, "leaf 7 (BMI1/BMI2) is advertised");
}

macro_rules! native_shxd {
    ($op:literal, $a:ident, $b:ident, $c:ident, $fl:ident, $w:expr) => {
        match $w {
            1 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:x}, {b:x}, cl"), "pushfq", "pop {fl}",
                a = inout(reg) $a, b = in(reg) $b, in("cl") $c, fl = inout(reg) $fl),
            2 => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:e}, {b:e}, cl"), "pushfq", "pop {fl}",
                a = inout(reg) $a, b = in(reg) $b, in("cl") $c, fl = inout(reg) $fl),
            _ => core::arch::asm!("push {fl}", "popfq", concat!($op, " {a:r}, {b:r}, cl"), "pushfq", "pop {fl}",
                a = inout(reg) $a, b = in(reg) $b, in("cl") $c, fl = inout(reg) $fl),
        }
    };
}

#[test]
fn shld_shrd_against_the_host() {
    for w in 1..4usize {
        let bits = 8u64 << w;
        for &a in &edges(w) {
            for &b in &[0u64, u64::MAX, 0x8000_0000_0000_0001, 0x0123_4567_89ab_cdef] {
                for count in [0u64, 1, 2, 7, 15, 16, 17, 31, 32, 33, 63] {
                    let masked = count & if w == 3 { 63 } else { 31 };
                    if masked > bits {
                        continue; // result and flags undefined (16-bit operands)
                    }
                    for (name, op) in [("shld", 0xa5u8), ("shrd", 0xad)] {
                        for init in [0x202u64, 0x202 | 0x8d5] {
                            let (mut ra, c, mut fl) = (a, count as u8, init);
                            // SAFETY: register-only asm.
                            unsafe {
                                if name == "shld" {
                                    native_shxd!("shld", ra, b, c, fl, w)
                                } else {
                                    native_shxd!("shrd", ra, b, c, fl, w)
                                }
                            }
                            let mut q = Vec::new();
                            match w {
                                1 => q.push(0x66),
                                3 => q.push(0x48),
                                _ => {}
                            }
                            q.extend([0x0f, op, 0xd0]); // shxd rax, rdx, cl
                            let m = harness::run_with(&q, |m| {
                                m.cpu.regs[0] = a;
                                m.cpu.regs[1] = count;
                                m.cpu.regs[2] = b;
                                m.cpu.set_rflags(init);
                            });
                            let mut undefined = 0;
                            if masked != 0 {
                                undefined |= AF;
                                if masked != 1 {
                                    undefined |= 0x800;
                                }
                                if masked == bits {
                                    undefined |= 0x8d5; // count == width: everything but the result
                                }
                            }
                            let what = format!("{name} w={w} {a:#x}, {b:#x}, {count}");
                            assert_eq!(m.cpu.regs[0], ra, "{what}");
                            let mask = 0x8d5 & !undefined;
                            assert_eq!(m.cpu.rflags() & mask, fl & mask, "flags after {what}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn rcl_rcr_against_the_host() {
    for w in 0..4usize {
        for &a in &edges(w) {
            for count in [0u64, 1, 2, 7, 8, 9, 10, 16, 17, 18, 31, 32, 33, 63, 64] {
                for init in [0x202u64, 0x202 | 0x8d5] {
                    for (name, digit) in [("rcl", 2u8), ("rcr", 3)] {
                        let (mut ra, c, mut fl) = (a, count as u8, init);
                        // SAFETY: register-only asm.
                        unsafe {
                            if name == "rcl" {
                                native_shift!("rcl", ra, c, fl, w)
                            } else {
                                native_shift!("rcr", ra, c, fl, w)
                            }
                        }
                        let masked = count & if w == 3 { 63 } else { 31 };
                        let undefined = if masked > 1 { 0x800 } else { 0 };
                        let code = [0xd2 + (w != 0) as u8, 0xc0 | (digit << 3)];
                        let what = format!("{name} w={w} {a:#x}, {count} init={init:#x}");
                        check_host(&what, w, &code, (a, count, init), (ra, count, fl), undefined);
                    }
                }
            }
        }
    }
}
