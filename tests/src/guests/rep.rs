//! Faults in the middle of a string instruction: `rep movsb` running into an unmapped page stops with
//! #PF at the exact iteration (RCX, RSI, RDI of the bytes done) and resumes after the page is mapped.

use iced_x86::code_asm::*;

use super::pass;
use crate::asm::*;
use crate::GuestTest;

/// The string-instruction guests.
pub fn tests() -> Vec<GuestTest> {
    vec![rep_movsb()]
}

fn rep_movsb() -> GuestTest {
    const SRC: u64 = 0x30_0000;
    const HOLE: u64 = 0x40_8000;
    let mut g = Guest::new();
    g.entry(|a| enter_long(a, CODE64));
    g.code(CODE64, 64, |a| {
        long_prelude(a)?;
        // Source bytes 0..16; the destination page 0x408000 not present.
        for i in 0..16u64 {
            a.mov(byte_ptr(SRC + i), i as u32)?;
        }
        a.mov(qword_ptr(u64::from(PT + 8 * 8)), 0)?;
        a.invlpg(ptr(HOLE))?;
        let mut after = a.create_label();
        set_resume(a, after)?;
        a.mov(rsi, SRC)?;
        a.mov(rdi, HOLE - 5)?;
        a.mov(rcx, 16u64)?;
        a.cld()?;
        a.rep().movsb()?;
        print(a, "no fault\n")?;
        exit(a, 1)?;
        a.set_label(&mut after)?;
        a.cmp(rcx, 11)?;
        check_eq(a, "rcx")?;
        a.cmp(rsi, (SRC + 5) as i32)?;
        check_eq(a, "rsi")?;
        a.mov(rax, HOLE)?;
        a.cmp(rdi, rax)?;
        check_eq(a, "rdi")?;
        a.cmp(byte_ptr(HOLE - 1), 4)?;
        check_eq(a, "bytes before the fault")?;
        // Map the page and resume the same instruction from where it stopped.
        a.mov(qword_ptr(u64::from(PT + 8 * 8)), 0x40_8007)?;
        a.rep().movsb()?;
        a.cmp(rcx, 0)?;
        check_eq(a, "done")?;
        a.cmp(byte_ptr(HOLE + 10), 15)?;
        check_eq(a, "last byte")?;
        exit(a, 0)
    });
    pass(
        "rep_movsb_fault",
        g,
        "#0e err=00000002 cr2=0000000000408000\nok rcx\nok rsi\nok rdi\nok bytes before the fault\nok done\n\
         ok last byte\n",
    )
}
