//! Regressions found by the differential tester (tests/cpu-diff): each test is a case where rqemu disagreed with
//! the host CPU, reduced to the instruction and the inputs that showed it, with the host's result as expected.

mod harness;

use harness::{mov_imm64, run_with, Machine, Outcome, CODE, DATA};

/// `addr32 loop*` counts in ECX: the branch depends on ECX alone and the decrement zero-extends into RCX.
/// Found as `67 e1 04` (addr32 loope) with rcx=0x39f4_4c32_0000_0001: the host falls through with rcx=0.
#[test]
fn addr32_loop_counts_in_ecx() {
    // addr32 loop +2; ud2; (end)
    let code = [0x67, 0xe2, 0x02, 0x0f, 0x0b];
    // ECX 1 -> 0: not taken (the upper half of RCX does not count), falls into ud2, RCX zero-extended.
    let mut m = Machine::new(&code);
    m.cpu.regs[1] = 0x39f4_4c32_0000_0001;
    assert_eq!(
        m.run(),
        Outcome::Fault {
            rip: CODE + 3,
            vector: 6
        }
    );
    assert_eq!(m.cpu.regs[1], 0);
    // ECX 4 -> 3: taken over the ud2, upper half cleared.
    let m = run_with(&code, |m| m.cpu.regs[1] = 0x7c35_f51a_0000_0004);
    assert_eq!(m.cpu.regs[1], 3);
}

/// fldcw keeps the defined FCW bits only: bit 6 reads back as 1, bits 7 and 13..15 as 0. Found as
/// `fninit; fldcw [m]; fnstcw [m]` with the image 0x0680: the host stores 0x0640.
#[test]
fn fldcw_masks_reserved_bits() {
    let mut code = mov_imm64(7, DATA);
    code.extend([0xdb, 0xe3]); // fninit
    code.extend([0xd9, 0x2f]); // fldcw [rdi]
    code.extend([0xd9, 0x7f, 0x08]); // fnstcw [rdi+8]
    for (image, expected) in [
        (0x0680u64, 0x0640u64),
        (0xffff, 0x1f7f),
        (0x1500, 0x1540),
        (0x037f, 0x037f),
    ] {
        let m = run_with(&code, |m| m.write_u64(DATA, image));
        assert_eq!(m.read_u64(DATA + 8) & 0xffff, expected, "fldcw {image:#x}");
    }
}

/// Machine for 32-bit code (compatibility mode: flat 32-bit CS, EFER.LMA kept).
fn machine32(code: &[u8]) -> Machine {
    let mut m = Machine::new(code);
    m.flags = rqemu_target_i386::TbFlags {
        bitness: 32,
        ss32: true,
        cs_base: 0,
        ..rqemu_target_i386::TbFlags::LONG
    };
    m
}

/// `jcxz` (0x67 E3 in 32-bit code) tests CX and decrements nothing. Found by `cpu-diff --mode 32` as
/// `67 e3 02 0f 0b` (jcxz over ud2) with ecx=0x0001_0000: the host jumps over the ud2 with ECX unchanged; rqemu
/// raised #UD (jcxz was not dispatched), then, dispatched, decremented CX like loop.
#[test]
fn jcxz_tests_cx_in_32_bit_code() {
    let code = [0x67, 0xe3, 0x02, 0x0f, 0x0b];
    // CX = 0 (ECX is not): taken, ECX unchanged.
    let mut m = machine32(&code);
    m.cpu.regs[1] = 0x0001_0000;
    assert_eq!(m.run(), Outcome::End);
    assert_eq!(m.cpu.regs[1], 0x0001_0000);
    // CX = 1: not taken, falls into ud2, ECX unchanged.
    let mut m = machine32(&code);
    m.cpu.regs[1] = 0xaee6_0001;
    assert_eq!(
        m.run(),
        Outcome::Fault {
            rip: CODE + 3,
            vector: 6
        }
    );
    assert_eq!(m.cpu.regs[1], 0xaee6_0001);
}

/// emms, like every MMX instruction, sets TOP to 0 before it empties the tags. Found by a multi-instruction
/// case `fld st(0); emms`: with TOP 3 before, the host ends with FSW.TOP = 0 (and so a different ST view of the
/// registers), rqemu kept TOP 3.
#[test]
fn emms_sets_top_to_zero() {
    let m = run_with(&[0x0f, 0x77], |m| {
        m.cpu.fpu.fsw = 3 << 11 | 0x45;
        m.cpu.fpu.ftw = 0x81;
    });
    assert_eq!((m.cpu.fpu.fsw, m.cpu.fpu.ftw), (0x45, 0));
}
