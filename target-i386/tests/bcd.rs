//! The instructions only 16/32-bit code has, in 32-bit code: the BCD adjustments (aaa, aas, daa, das, aam, aad),
//! pusha/popa, bound and arpl; and their #UD in 64-bit code. Expected values were taken from this machine's CPU (`cargo xtask fuzz-cpu --mode 32` compares them on
//! random inputs); undefined flags are not checked.

mod harness;

use harness::{Machine, Outcome, CODE, STACK_TOP};
use rqemu_target_i386::TbFlags;

const CF: u64 = 1;
const PF: u64 = 1 << 2;
const AF: u64 = 1 << 4;
const ZF: u64 = 1 << 6;
const SF: u64 = 1 << 7;

/// Runs `code` as 32-bit code with EAX = `eax` and the status flags `flags`; returns (EAX, RFLAGS).
fn run32(code: &[u8], eax: u64, flags: u64) -> (u64, u64) {
    let m = run32_machine(code, |m| {
        m.cpu.regs[0] = eax;
        m.cpu.set_rflags(0x202 | flags);
    });
    (m.cpu.regs[0], m.cpu.rflags())
}

fn run32_machine(code: &[u8], setup: impl Fn(&mut Machine)) -> Machine {
    let mut m = Machine::new(code);
    m.flags = TbFlags {
        bitness: 32,
        ss32: true,
        cs_base: 0,
        ..TbFlags::LONG
    };
    setup(&mut m);
    assert_eq!(m.run(), Outcome::End);
    m
}

#[test]
fn aaa_and_aas_adjust_ax() {
    // (AX in, flags in) -> (AX out, CF = AF)
    for (ax, fl, out, carry) in [
        (0x0009u64, 0, 0x0009u64, false),
        (0x000a, 0, 0x0100, true),
        (0x00fa, 0, 0x0200, true), // AX + 0x106: the carry out of AL reaches AH
        (0x0105, AF, 0x020b, true),
        (0x12f3, 0, 0x1203, false),
    ] {
        let (eax, f) = run32(&[0x37], 0x5555_0000 | ax, fl);
        assert_eq!(eax, 0x5555_0000 | out, "aaa {ax:#x}");
        assert_eq!(f & (CF | AF), if carry { CF | AF } else { 0 }, "aaa {ax:#x} flags");
    }
    for (ax, fl, out, carry) in [
        (0x0109u64, 0, 0x0109u64, false),
        (0x010a, 0, 0x0004, true),
        (0x0105, AF, 0xff0f, true), // AX - 6 borrows from AH, then AH - 1
        (0x0000, AF, 0xfe0a, true),
    ] {
        let (eax, f) = run32(&[0x3f], ax, fl);
        assert_eq!(eax, out, "aas {ax:#x}");
        assert_eq!(f & (CF | AF), if carry { CF | AF } else { 0 }, "aas {ax:#x} flags");
    }
}

#[test]
fn daa_and_das_adjust_al() {
    // (AL in, flags in) -> (AL out, flags out among CF AF ZF SF PF)
    for (al, fl, out, fout) in [
        (0x79u64, 0, 0x79u64, 0),
        (0x7a, 0, 0x80, AF | SF),
        (0x9a, 0, 0x00, CF | AF | ZF | PF),
        (0xfa, 0, 0x60, CF | AF | PF), // AL + 6 wraps, then + 0x60 since the old AL > 0x99
        (0x00, CF, 0x60, CF | PF),
        (0x12, AF, 0x18, AF | PF),
    ] {
        let (eax, f) = run32(&[0x27], al, fl);
        assert_eq!(eax, out, "daa {al:#x}");
        assert_eq!(f & (CF | AF | ZF | SF | PF), fout, "daa {al:#x} flags {f:#x}");
    }
    for (al, fl, out, fout) in [
        (0x79u64, 0, 0x79u64, 0),
        (0x7a, 0, 0x74, AF | PF),
        (0x03, AF, 0xfd, CF | AF | SF), // AL - 6 borrows: CF; no - 0x60 (old AL <= 0x99, old CF clear)
        (0x00, CF, 0xa0, CF | SF | PF),
        (0x9a, 0, 0x34, CF | AF),
    ] {
        let (eax, f) = run32(&[0x2f], al, fl);
        assert_eq!(eax, out, "das {al:#x}");
        assert_eq!(f & (CF | AF | ZF | SF | PF), fout, "das {al:#x} flags {f:#x}");
    }
}

#[test]
fn aam_and_aad_convert_bases() {
    // aam 10: AH = AL / 10, AL = AL % 10.
    let (eax, f) = run32(&[0xd4, 0x0a], 0xff, 0);
    assert_eq!(eax, 0x1905);
    assert_eq!(f & (ZF | SF | PF), PF);
    // aam 16 on 0x30: AX = 0x0300, ZF.
    let (eax, f) = run32(&[0xd4, 0x10], 0x30, 0);
    assert_eq!(eax, 0x0300);
    assert_eq!(f & (ZF | SF | PF), ZF | PF);
    // aad 10: AL = AL + AH * 10, AH = 0.
    let (eax, f) = run32(&[0xd5, 0x0a], 0x0907, 0);
    assert_eq!(eax, 0x61);
    assert_eq!(f & (ZF | SF | PF), 0);
    let (eax, f) = run32(&[0xd5, 0x07], 0xf0f0, 0);
    assert_eq!(eax, (0xf0 + 0xf0 * 7) & 0xff);
    assert_eq!(f & SF, SF);
    // aam 0 raises #DE and changes nothing.
    let mut m = Machine::new(&[0xd4, 0x00]);
    m.flags = TbFlags {
        bitness: 32,
        ss32: true,
        cs_base: 0,
        ..TbFlags::LONG
    };
    m.cpu.regs[0] = 0x1234;
    assert_eq!(m.run(), Outcome::Fault { rip: CODE, vector: 0 });
    assert_eq!(m.cpu.regs[0], 0x1234);
}

#[test]
fn pushad_and_popad_round_trip() {
    // pushad; mov eax, esp; popad  => every register back, EAX = ESP - 32 was overwritten by popad.
    let code = [0x60, 0x89, 0xe0, 0x61];
    let m = run32_machine(&code, |m| {
        for n in 0..8 {
            if n != 4 {
                m.cpu.regs[n] = 0x1111_1111 * (n as u64 + 1);
            }
        }
    });
    for n in 0..8 {
        let want = if n == 4 {
            STACK_TOP
        } else {
            0x1111_1111 * (n as u64 + 1)
        };
        assert_eq!(m.cpu.regs[n], want, "register {n}");
    }
    // The image: EDI at the lowest address, ESP as it was before pushad.
    let sp = STACK_TOP - 32;
    let o = |k: u64| m.read_u64(sp + 4 * k) & 0xffff_ffff;
    assert_eq!(o(0), 0x8888_8888);
    assert_eq!(o(3), STACK_TOP);
    assert_eq!(o(7), 0x1111_1111);
    // popaw (66 61) pops 16 bytes and leaves the upper halves alone.
    let m = run32_machine(&[0x66, 0x60, 0x66, 0x61], |m| m.cpu.regs[0] = 0xdead_beef);
    assert_eq!(m.cpu.regs[0], 0xdead_beef);
    assert_eq!(m.cpu.regs[4], STACK_TOP);
}

#[test]
fn bcd_and_pusha_are_ud_in_64_bit_code() {
    // iced-x86 decodes these bytes as invalid in 64-bit mode; rqemu raises #UD either way.
    // A nop after each, so the decoder has the bytes a valid instruction would have.
    for code in [
        [0x37u8, 0x90],
        [0x3f, 0x90],
        [0x27, 0x90],
        [0x2f, 0x90],
        [0x60, 0x90],
        [0x61, 0x90],
    ] {
        let mut m = Machine::new(&code);
        assert_eq!(m.run(), Outcome::Fault { rip: CODE, vector: 6 }, "{code:02x?}");
    }
}

#[test]
fn bound_raises_br_outside_the_signed_range() {
    // bound eax, [ebx] with the bounds -2..5 at DATA.
    let code = [0x62, 0x03];
    for (eax, inside) in [
        (0u64, true),
        (5, true),
        (0xffff_fffe, true),
        (6, false),
        (0xffff_fffd, false),
    ] {
        let mut m = Machine::new(&code);
        m.flags = TbFlags {
            bitness: 32,
            ss32: true,
            cs_base: 0,
            ..TbFlags::LONG
        };
        m.cpu.regs[0] = eax;
        m.cpu.regs[3] = harness::DATA;
        m.write_u64(harness::DATA, 0x0000_0005_ffff_fffe);
        let want = if inside {
            Outcome::End
        } else {
            Outcome::Fault { rip: CODE, vector: 5 }
        };
        assert_eq!(m.run(), want, "eax={eax:#x}");
    }
}

#[test]
fn arpl_raises_the_rpl_and_sets_zf() {
    // arpl cx, dx (63 d1): RPL 1 < 3 -> CX's RPL becomes 3, ZF; upper half of ECX kept.
    let m = run32_machine(&[0x63, 0xd1], |m| {
        m.cpu.regs[1] = 0xabcd_0011;
        m.cpu.regs[2] = 0x0003;
    });
    assert_eq!(m.cpu.regs[1], 0xabcd_0013);
    assert_eq!(m.cpu.rflags() & ZF, ZF);
    // RPL 3 >= 2: unchanged, ZF cleared.
    let m = run32_machine(&[0x63, 0xd1], |m| {
        m.cpu.regs[1] = 0x13;
        m.cpu.regs[2] = 0x2;
        m.cpu.set_rflags(0x202 | ZF);
    });
    assert_eq!(m.cpu.regs[1], 0x13);
    assert_eq!(m.cpu.rflags() & ZF, 0);
}
