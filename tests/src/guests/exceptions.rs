//! Exceptions: #DE, #UD, #GP with its error code, #NP, #SS, #BP, #OF, #PF with error code and CR2 (in
//! protected and long mode), #DF, the triple fault, and IST stacks in long mode.

use iced_x86::code_asm::*;

use super::pass;
use crate::asm::*;
use crate::GuestTest;

/// The exception guests.
pub fn tests() -> Vec<GuestTest> {
    vec![pm(), segment_limit(), pf_pm(), long(), double_fault(), triple_fault()]
}

/// Runs `fault` with [`RESUME`] set just after it, after printing `what: `.
fn expect_fault(a: &mut CodeAssembler, what: &str, fault: impl FnOnce(&mut CodeAssembler) -> Asm) -> Asm {
    let mut after = a.create_label();
    print(a, &format!("{what}: "))?;
    set_resume(a, after)?;
    fault(a)?;
    a.set_label(&mut after)?;
    a.nop()
}

/// The protected-mode exceptions without paging.
fn pm() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| {
        expect_fault(a, "de", |a| {
            a.xor(ecx, ecx)?;
            a.div(ecx)
        })?;
        expect_fault(a, "ud", |a| a.ud2())?;
        expect_fault(a, "gp", |a| {
            a.mov(ax, 0x1234u32)?;
            a.mov(ds, ax)
        })?;
        expect_fault(a, "np", |a| {
            a.mov(ax, u32::from(SEL_NOTPRESENT))?;
            a.mov(es, ax)
        })?;
        expect_fault(a, "ss", |a| {
            a.mov(ax, u32::from(SEL_NOTPRESENT))?;
            a.mov(ss, ax)
        })?;
        expect_fault(a, "bp", |a| a.int3())?;
        expect_fault(a, "of", |a| {
            a.mov(al, 0x7fu32)?;
            a.add(al, 1)?;
            a.into()
        })?;
        exit(a, 0)
    });
    pass(
        "exceptions_pm",
        g,
        "de: #00\nud: #06\ngp: #0d err=00001234\nnp: #0b err=00000080\nss: #0c err=00000080\nbp: #03\n\
         of: #04\n",
    )
}

/// #GP(0) for an access beyond a data segment's limit (a 16-bit data segment ends at 0xffff).
fn segment_limit() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| {
        // #GP for a segment limit: a 16-bit data segment ends at 0xffff. The last dword inside it reads
        // fine; a dword beyond it and a word straddling the limit fault.
        a.mov(ax, u32::from(SEL_DATA16))?;
        a.mov(fs, ax)?;
        a.mov(eax, dword_ptr(0xfffc).fs())?;
        expect_fault(a, "limit", |a| a.mov(eax, dword_ptr(0x1_0000).fs()))?;
        expect_fault(a, "straddle", |a| a.mov(ax, word_ptr(0xffff).fs()))?;
        exit(a, 0)
    });
    pass(
        "exceptions_segment_limit",
        g,
        "limit: #0d err=00000000\nstraddle: #0d err=00000000\n",
    )
}

/// #PF under 32-bit paging: a write and a read of a not-present page, a write to a read-only page.
fn pf_pm() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| {
        // 32-bit paging with 4 MiB pages (PSE); 0x401000 not present, 0x402000 read-only.
        a.mov(dword_ptr(PT32 + 4), 0)?;
        a.mov(dword_ptr(PT32 + 8), 0x40_2005)?;
        a.mov(eax, cr4)?;
        a.or(eax, 0x10)?;
        a.mov(cr4, eax)?;
        a.mov(eax, PD32)?;
        a.mov(cr3, eax)?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8001_0000u32)?; // PG, WP
        a.mov(cr0, eax)?;
        expect_fault(a, "write", |a| a.mov(dword_ptr(0x40_1000), 1))?;
        expect_fault(a, "read", |a| a.mov(eax, dword_ptr(0x40_1ffc)))?;
        expect_fault(a, "wp", |a| a.mov(dword_ptr(0x40_2010), 1))?;
        exit(a, 0)
    });
    pass(
        "exceptions_pf_pm",
        g,
        "write: #0e err=00000002 cr2=00401000\nread: #0e err=00000000 cr2=00401ffc\n\
         wp: #0e err=00000003 cr2=00402010\n",
    )
}

/// Long mode: #PF, #GP, #UD through the 64-bit IDT, and IST1 for int3.
fn long() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| enter_long(a, CODE64));
    g.code(CODE64, 64, |a| {
        long_prelude(a)?;
        a.mov(qword_ptr(u64::from(PT + 8)), 0)?;
        a.invlpg(ptr(0x40_1000u64))?;
        expect_fault(a, "pf", |a| a.mov(qword_ptr(0x40_1008u64), rax))?;
        expect_fault(a, "gp", |a| {
            a.mov(ax, 0x1234u32)?;
            a.mov(ds, ax)
        })?;
        expect_fault(a, "ud", |a| a.ud2())?;
        // Non-canonical address: #GP(0).
        expect_fault(a, "canonical", |a| {
            a.mov(rax, 0x8000_0000_0000u64)?;
            a.mov(rax, qword_ptr(rax))
        })?;
        // int3 on IST1: the frame lands at the top of the IST stack (SS at IST1_STACK - 8).
        a.mov(byte_ptr(u64::from(IDT64 + 3 * 16 + 4)), 1)?;
        a.mov(qword_ptr(u64::from(IST1_STACK - 8)), 0)?;
        expect_fault(a, "ist", |a| a.int3())?;
        a.cmp(qword_ptr(u64::from(IST1_STACK - 8)), i32::from(SEL_DATA64))?;
        check_eq(a, "ist stack")?;
        exit(a, 0)
    });
    pass(
        "exceptions_long",
        g,
        "pf: #0e err=00000002 cr2=0000000000401008\ngp: #0d err=00001234\nud: #06\ncanonical: #0d err=00000000\n\
         ist: #03\nok ist stack\n",
    )
}

/// #DF: #GP whose gate is not present (#NP while delivering a contributory fault).
fn double_fault() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| {
        a.and(byte_ptr(IDT32 + 13 * 8 + 5), 0x7f)?;
        expect_fault(a, "df", |a| {
            a.mov(ax, 0x1234u32)?;
            a.mov(ds, ax)
        })?;
        exit(a, 0)
    });
    pass("exceptions_double_fault", g, "df: #08 err=00000000\n")
}

/// A triple fault: an empty IDT and ud2. A triple fault is a machine reset request; the guest runners pass
/// `-no-reboot` (as QEMU's test setups do), which turns it into a shutdown: status 0 (not a status
/// isa-debug-exit can give), before the guest can print more. Without `-no-reboot` the guest would boot
/// again and print "before" forever.
fn triple_fault() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| {
        print(a, "before\n")?;
        a.mov(dword_ptr(SCRATCH), 0)?;
        a.mov(word_ptr(SCRATCH + 4), 0)?;
        a.lidt(ptr(SCRATCH))?;
        a.ud2()?;
        print(a, "after\n")?;
        exit(a, 0x55)
    });
    GuestTest {
        status: 0,
        ..pass("exceptions_triple_fault", g, "before\n")
    }
}
