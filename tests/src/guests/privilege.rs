//! Privilege: ring 3 and back via iret, int and a call gate; cli at CPL 3 (#GP); sysenter/sysexit in
//! protected mode; syscall/sysret, int, cli and a 64-bit call gate from ring 3 in long mode.

use iced_x86::code_asm::*;

use super::pass;
use crate::asm::*;
use crate::GuestTest;

/// The privilege guests.
pub fn tests() -> Vec<GuestTest> {
    vec![ring3_pm(), sysenter(), syscall(), callgate64()]
}

/// Protected mode: iret to ring 3 (IOPL 0); there cli raises #GP(0), int 0x80 goes through a DPL-3 gate
/// and returns, and a far call through the DPL-3 call gate comes back to ring 0.
fn ring3_pm() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| {
        // The #GP of cli resumes at the instruction after it (cli is one byte).
        a.mov(dword_ptr(RESUME), AUX + 1)?;
        iret_to_ring3(a, AUX)
    });
    g.code(AUX, 32, |a| {
        a.cli()?;
        a.mov(eax, cs)?;
        a.mov(dword_ptr(SCRATCH), eax)?;
        a.int(0x80)?;
        a.call_far(SEL_CALLGATE32 | 3, 0)
    });
    g.code(CALLGATE32_TARGET, 32, |a| {
        print(a, "user cs ")?;
        a.mov(eax, dword_ptr(SCRATCH))?;
        hex(a, 4)?;
        print(a, "\n")?;
        a.mov(eax, cs)?;
        a.cmp(eax, u32::from(SEL_CODE32))?;
        check_eq(a, "gate to ring 0")?;
        // The gate's frame: return eip, cs, then the ring-3 esp and ss.
        a.cmp(dword_ptr(esp + 4), u32::from(SEL_UCODE32 | 3))?;
        check_eq(a, "caller cs")?;
        a.cmp(dword_ptr(esp + 12), u32::from(SEL_UDATA | 3))?;
        check_eq(a, "caller ss")?;
        a.cmp(esp, STACK0 - 16)?;
        check_eq(a, "tss esp0")?;
        exit(a, 0)
    });
    pass(
        "privilege_ring3_pm",
        g,
        "#0d err=00000000\n#80\nuser cs 002b\nok gate to ring 0\nok caller cs\nok caller ss\nok tss esp0\n",
    )
}

/// Protected mode: sysexit to ring 3 and sysenter back.
fn sysenter() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| {
        for (msr, v) in [(0x174u32, u32::from(SEL_CODE32)), (0x175, STACK0), (0x176, AUX + 0x400)] {
            a.mov(ecx, msr)?;
            a.mov(eax, v)?;
            a.xor(edx, edx)?;
            a.wrmsr()?;
        }
        a.mov(ecx, USER_STACK)?;
        a.mov(edx, AUX)?;
        a.sysexit()
    });
    g.code(AUX, 32, |a| {
        a.mov(eax, cs)?;
        a.mov(dword_ptr(SCRATCH), eax)?;
        a.mov(eax, ss)?;
        a.mov(dword_ptr(SCRATCH + 4), eax)?;
        a.sysenter()
    });
    g.code(AUX + 0x400, 32, |a| {
        print(a, "user cs ")?;
        a.mov(eax, dword_ptr(SCRATCH))?;
        hex(a, 4)?;
        print(a, " ss ")?;
        a.mov(eax, dword_ptr(SCRATCH + 4))?;
        hex(a, 4)?;
        print(a, "\n")?;
        a.mov(eax, cs)?;
        a.cmp(eax, u32::from(SEL_CODE32))?;
        check_eq(a, "sysenter cs")?;
        a.cmp(esp, STACK0)?;
        check_eq(a, "sysenter esp")?;
        exit(a, 0)
    });
    pass(
        "privilege_sysenter",
        g,
        "user cs 001b ss 0023\nok sysenter cs\nok sysenter esp\n",
    )
}

/// Long mode: sysretq to 64-bit ring 3, int 0x80 from there (RSP0 from the TSS), syscall back.
fn syscall() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| enter_long(a, CODE64));
    g.code(CODE64, 64, |a| {
        long_prelude(a)?;
        // STAR: SYSRET base 0x28 (CS 0x3b, SS 0x33), SYSCALL CS 0x18 (SS 0x20); LSTAR; FMASK IF.
        for (msr, hi, lo) in [
            (0xc000_0081u32, 0x0028_0018u32, 0u32),
            (0xc000_0082, 0, AUX + 0x400),
            (0xc000_0084, 0, 0x200),
        ] {
            a.mov(ecx, msr)?;
            a.mov(edx, hi)?;
            a.mov(eax, lo)?;
            a.wrmsr()?;
        }
        a.mov(rcx, u64::from(AUX))?;
        a.mov(r11, 2u64)?;
        a.mov(rsp, u64::from(USER_STACK))?;
        a.sysretq()
    });
    g.code(AUX, 64, |a| {
        a.mov(eax, cs)?;
        a.mov(dword_ptr(u64::from(SCRATCH)), eax)?;
        a.mov(eax, ss)?;
        a.mov(dword_ptr(u64::from(SCRATCH + 4)), eax)?;
        a.int(0x80)?;
        a.syscall()
    });
    g.code(AUX + 0x400, 64, |a| {
        a.mov(r12, rsp)?;
        a.mov(rsp, u64::from(STACK))?;
        print(a, "#80 returned; user cs ")?;
        a.mov(eax, dword_ptr(u64::from(SCRATCH)))?;
        hex(a, 4)?;
        print(a, " ss ")?;
        a.mov(eax, dword_ptr(u64::from(SCRATCH + 4)))?;
        hex(a, 4)?;
        print(a, "\n")?;
        a.mov(eax, cs)?;
        a.cmp(eax, u32::from(SEL_CODE64))?;
        check_eq(a, "syscall cs")?;
        a.cmp(r12, USER_STACK as i32)?;
        check_eq(a, "rsp kept")?;
        a.cmp(r11, 2)?;
        check_eq(a, "r11 rflags")?;
        exit(a, 0)
    });
    pass(
        "privilege_syscall",
        g,
        "#80\n#80 returned; user cs 003b ss 0033\nok syscall cs\nok rsp kept\nok r11 rflags\n",
    )
}

/// Long mode: sysretq to ring 3, cli there (#GP(0)), then a far call through the 64-bit call gate.
fn callgate64() -> GuestTest {
    let mut g = Guest::new();
    // The far pointer the ring-3 code calls through: offset (ignored for a gate), selector RPL 3.
    g.data(SCRATCH + 0x20, &[0, 0, 0, 0, (SEL_CALLGATE64 | 3) as u8, 0]);
    g.entry(|a| enter_long(a, CODE64));
    g.code(CODE64, 64, |a| {
        long_prelude(a)?;
        a.mov(ecx, 0xc000_0081u32)?;
        a.mov(edx, 0x0028_0018u32)?;
        a.xor(eax, eax)?;
        a.wrmsr()?;
        a.mov(rcx, u64::from(AUX))?;
        a.mov(r11, 2u64)?;
        a.mov(rsp, u64::from(USER_STACK))?;
        a.sysretq()
    });
    g.code(AUX, 64, |a| {
        let mut after = a.create_label();
        set_resume(a, after)?;
        a.cli()?;
        a.set_label(&mut after)?;
        // call far [SCRATCH + 0x20] (m16:32).
        let mut insn = vec![0xff, 0x1c, 0x25];
        insn.extend_from_slice(&(SCRATCH + 0x20).to_le_bytes());
        a.db(&insn)
    });
    g.code(CALLGATE64_TARGET, 64, |a| {
        a.mov(eax, cs)?;
        a.cmp(eax, u32::from(SEL_CODE64))?;
        check_eq(a, "gate to ring 0")?;
        a.cmp(qword_ptr(rsp + 8), i32::from(SEL_UCODE64 | 3))?;
        check_eq(a, "caller cs")?;
        a.mov(rax, u64::from(STACK0 - 32))?;
        a.cmp(rsp, rax)?;
        check_eq(a, "rsp0 frame")?;
        exit(a, 0)
    });
    pass(
        "privilege_callgate64",
        g,
        "#0d err=00000000\nok gate to ring 0\nok caller cs\nok rsp0 frame\n",
    )
}
