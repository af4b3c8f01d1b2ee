//! int3, int n, int1/icebp and into: the vector, trap semantics (the recorded return rip is the next
//! instruction's, `exception_is_trap`), `exception_is_int` (software interrupts only), registers and flags as
//! left by the instructions before, into only when OF is set (in 32-bit code; #UD in 64-bit mode), and a fault
//! after a trap forgetting the trap bits.

mod harness;

use harness::{mov_imm64, Machine, Outcome, CODE};
use rqemu_target_i386::cpu::excp;
use rqemu_target_i386::TbFlags;

/// Runs `code` (64-bit unless `bits` says otherwise) and returns the machine and how it ended.
fn run_in(code: &[u8], bits: u32) -> (Machine, Outcome) {
    let mut m = Machine::new(code);
    m.flags = TbFlags {
        bitness: bits,
        ss32: true,
        cs_base: 0,
        ..TbFlags::LONG
    };
    let out = m.run();
    (m, out)
}

/// Asserts a trap with `vector` raised by the instruction at `at`, returning to `next`.
fn assert_trap(m: &Machine, out: Outcome, vector: u32, at: u64, next: u64, is_int: bool) {
    assert_eq!(
        out,
        Outcome::Fault { rip: at, vector },
        "the loop restores the trapping instruction"
    );
    assert_eq!(m.cpu.exception_is_trap, 1, "a trap");
    assert_eq!(m.cpu.exception_next_rip, next, "returns to the next instruction");
    assert_eq!(m.cpu.exception_is_int, is_int as u32, "software interrupt or not");
    assert_eq!(m.cpu.error_code, 0);
}

#[test]
fn int3_int_n_and_int1_trap_to_the_next_instruction() {
    let prefix = mov_imm64(0, 0x1234);
    let at = CODE + prefix.len() as u64;
    // (bytes, vector, software interrupt)
    let cases: [(&[u8], u32, bool); 5] = [
        (&[0xcc], excp::BP, true),
        (&[0xcd, 0x03], excp::BP, true),
        (&[0xcd, 0x80], 0x80, true),
        (&[0xcd, 0xff], 0xff, true),
        (&[0xf1], excp::DB, false),
    ];
    for (bytes, vector, is_int) in cases {
        for bits in [64u32, 32, 16] {
            let mut p = if bits == 64 {
                prefix.clone()
            } else {
                vec![0x90; prefix.len()]
            };
            p.extend(bytes);
            p.extend([0x90, 0x90]);
            let (m, out) = run_in(&p, bits);
            assert_trap(&m, out, vector, at, at + bytes.len() as u64, is_int);
            if bits == 64 {
                assert_eq!(m.cpu.regs[0], 0x1234, "the instruction before ran");
            }
        }
    }
}

#[test]
fn a_trap_mid_tb_keeps_the_lazy_flags_of_the_instruction_before() {
    // add eax, eax (0x8000_0000 * 2: CF, ZF, PF, OF); int3
    let mut p = mov_imm64(0, 0x8000_0000);
    p.extend([0x01, 0xc0, 0xcc]);
    let (m, out) = run_in(&p, 64);
    let at = CODE + p.len() as u64 - 1;
    assert_trap(&m, out, excp::BP, at, at + 1, true);
    assert_eq!(m.cpu.rflags() & 0x8d5, 0x845);
}

#[test]
fn into_traps_only_when_of_is_set_and_is_ud_in_64_bit_mode() {
    // 32-bit code: mov eax, imm32; add eax, eax; into; nop
    for (a, overflow) in [
        (0x4000_0000u32, true),
        (0x1000_0000, false),
        (0x8000_0000, true),
        (1, false),
    ] {
        for split in [false, true] {
            let mut p = vec![0xb8];
            p.extend(a.to_le_bytes());
            p.extend([0x01, 0xc0]);
            if split {
                p.extend([0xeb, 0x00]); // the TB ends: into reads OF through compute_eflags
            }
            let at = CODE + p.len() as u64;
            p.extend([0xce, 0x90]);
            let (m, out) = run_in(&p, 32);
            if overflow {
                assert_trap(&m, out, excp::OF, at, at + 1, true);
            } else {
                assert_eq!(out, Outcome::End, "{a:#x}: no overflow, no trap");
            }
        }
    }
    // 16-bit code: mov ax, 0x4000; add ax, ax; into.
    let p = [0xb8, 0x00, 0x40, 0x01, 0xc0, 0xce];
    let (m, out) = run_in(&p, 16);
    assert_trap(&m, out, excp::OF, CODE + 5, CODE + 6, true);
    // 64-bit mode: CE is not an instruction.
    let (m, out) = run_in(&[0xce, 0x90, 0x90], 64);
    assert_eq!(
        out,
        Outcome::Fault {
            rip: CODE,
            vector: excp::UD
        }
    );
    assert_eq!(m.cpu.exception_is_trap, 0);
}

#[test]
fn a_fault_after_a_trap_is_a_fault() {
    let mut m = Machine::new(&[0xcc, 0x0f, 0x0b]); // int3; ud2
    assert_eq!(
        m.run(),
        Outcome::Fault {
            rip: CODE,
            vector: excp::BP
        }
    );
    assert_eq!(m.cpu.exception_is_trap, 1);
    // Continue where the trap returns.
    m.cpu.rip = m.cpu.exception_next_rip;
    assert_eq!(
        m.run(),
        Outcome::Fault {
            rip: CODE + 1,
            vector: excp::UD
        }
    );
    assert_eq!((m.cpu.exception_is_trap, m.cpu.exception_is_int), (0, 0));
}
