//! Paging in long mode: 4 KiB, 2 MiB and 1 GiB pages, the accessed and dirty bits the walk writes, NX
//! (#PF with the I/D bit), CR0.WP, U/S from ring 3, CR3 reloads against global pages, invlpg; and PAE
//! paging in protected mode.

use iced_x86::code_asm::*;

use super::pass;
use crate::asm::*;
use crate::GuestTest;

/// The paging guests.
pub fn tests() -> Vec<GuestTest> {
    vec![sizes(), protection(), user(), tlb(), pae()]
}

/// The PT entry (4-level) of the 4 KiB page at `va` (4..6 MiB).
fn pte(va: u32) -> u64 {
    u64::from(PT + ((va - 0x40_0000) >> 12) * 8)
}

/// Runs `fault` with [`RESUME`] just after it, after printing `what: `.
fn expect_fault(a: &mut CodeAssembler, what: &str, fault: impl FnOnce(&mut CodeAssembler) -> Asm) -> Asm {
    let mut after = a.create_label();
    print(a, &format!("{what}: "))?;
    set_resume(a, after)?;
    fault(a)?;
    a.set_label(&mut after)?;
    a.nop()
}

/// Checks `(qword [entry] & mask) == want`.
fn entry_bits(a: &mut CodeAssembler, entry: u64, mask: i32, want: i32, what: &str) -> Asm {
    a.mov(rax, qword_ptr(entry))?;
    a.and(rax, mask)?;
    a.cmp(rax, want)?;
    check_eq(a, what)
}

/// Page sizes and the A/D bits.
fn sizes() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| enter_long(a, CODE64));
    g.code(CODE64, 64, |a| {
        long_prelude(a)?;
        // 4 KiB: a read sets A only, a write then D.
        a.mov(rax, qword_ptr(0x40_2000u64))?;
        entry_bits(a, pte(0x40_2000), 0x60, 0x20, "4k accessed")?;
        a.mov(qword_ptr(0x40_2000u64), rax)?;
        entry_bits(a, pte(0x40_2000), 0x60, 0x60, "4k dirty")?;
        // 2 MiB (PD[1]).
        a.mov(rax, qword_ptr(0x20_0000u64))?;
        entry_bits(a, u64::from(PD + 8), 0x60, 0x20, "2m accessed")?;
        a.mov(qword_ptr(0x20_0000u64), rax)?;
        entry_bits(a, u64::from(PD + 8), 0x60, 0x60, "2m dirty")?;
        // 1 GiB: 1 GiB.. maps 0.., so SCRATCH is seen at 1 GiB + SCRATCH.
        a.mov(dword_ptr(u64::from(SCRATCH)), 0x1234_5678)?;
        a.mov(eax, dword_ptr(0x4000_0000u64 + u64::from(SCRATCH)))?;
        a.cmp(eax, 0x1234_5678)?;
        check_eq(a, "1g read")?;
        entry_bits(a, u64::from(PDPT + 8), 0x60, 0x20, "1g accessed")?;
        a.mov(dword_ptr(0x4000_0000u64 + u64::from(SCRATCH)), 0x3333_3333)?;
        a.cmp(dword_ptr(u64::from(SCRATCH)), 0x3333_3333)?;
        check_eq(a, "1g write")?;
        entry_bits(a, u64::from(PDPT + 8), 0x60, 0x60, "1g dirty")?;
        // The walk sets A in the upper levels too.
        entry_bits(a, u64::from(PML4), 0x20, 0x20, "pml4e accessed")?;
        exit(a, 0)
    });
    pass(
        "paging_sizes",
        g,
        "ok 4k accessed\nok 4k dirty\nok 2m accessed\nok 2m dirty\nok 1g read\nok 1g accessed\nok 1g write\n\
         ok 1g dirty\nok pml4e accessed\n",
    )
}

/// NX and WP.
fn protection() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| enter_long(a, CODE64));
    g.code(CODE64, 64, |a| {
        long_prelude(a)?;
        // NX: a `ret` on a page with XD set.
        a.mov(byte_ptr(0x40_3000u64), 0xc3)?;
        a.mov(rax, 0x8000_0000_0040_3007u64)?;
        a.mov(qword_ptr(pte(0x40_3000)), rax)?;
        a.invlpg(ptr(0x40_3000u64))?;
        expect_fault(a, "nx", |a| a.call(0x40_3000u64))?;
        // WP: a read-only page written from ring 0 faults with CR0.WP, not without it.
        a.mov(qword_ptr(pte(0x40_4000)), 0x40_4005)?;
        a.invlpg(ptr(0x40_4000u64))?;
        a.mov(rax, cr0)?;
        a.or(eax, 0x1_0000)?;
        a.mov(cr0, rax)?;
        expect_fault(a, "wp", |a| a.mov(dword_ptr(0x40_4010u64), 1))?;
        a.mov(rax, cr0)?;
        a.and(eax, !0x1_0000)?;
        a.mov(cr0, rax)?;
        a.mov(dword_ptr(0x40_4010u64), 7)?;
        a.cmp(dword_ptr(0x40_4010u64), 7)?;
        check_eq(a, "wp off write")?;
        exit(a, 0)
    });
    pass(
        "paging_protection",
        g,
        "nx: #0e err=00000011 cr2=0000000000403000\nwp: #0e err=00000003 cr2=0000000000404010\nok wp off write\n",
    )
}

/// U/S: ring 3 (entered with sysretq) reads a supervisor page: #PF with U set, and writes a read-only user
/// page: #PF with U and W.
fn user() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| enter_long(a, CODE64));
    g.code(CODE64, 64, |a| {
        long_prelude(a)?;
        a.mov(qword_ptr(pte(0x40_5000)), 0x40_5003)?;
        a.mov(qword_ptr(pte(0x40_6000)), 0x40_6005)?;
        for (msr, hi, lo) in [(0xc000_0081u32, 0x0028_0018u32, 0u32), (0xc000_0082, 0, AUX + 0x400)] {
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
        // Ring 3 cannot print (IOPL 0): the handler does, and resumes here.
        let mut r1 = a.create_label();
        let mut r2 = a.create_label();
        set_resume(a, r1)?;
        a.mov(eax, dword_ptr(0x40_5000u64))?;
        a.set_label(&mut r1)?;
        set_resume(a, r2)?;
        a.mov(dword_ptr(0x40_6000u64), eax)?;
        a.set_label(&mut r2)?;
        // A user page reads fine.
        a.mov(eax, dword_ptr(0x40_7000u64))?;
        a.syscall()
    });
    g.code(AUX + 0x400, 64, |a| {
        a.mov(rsp, u64::from(STACK))?;
        print(a, "back\n")?;
        exit(a, 0)
    });
    pass(
        "paging_user",
        g,
        "#0e err=00000005 cr2=0000000000405000\n#0e err=00000007 cr2=0000000000406000\nback\n",
    )
}

/// TLB maintenance: a changed non-global mapping is seen after a CR3 reload; a changed global mapping is
/// seen after invlpg, and after toggling CR4.PGE. (Whether a stale global entry survives a CR3 reload is
/// not architectural: a TLB may drop entries at any time, so it is not asserted.)
fn tlb() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| enter_long(a, CODE64));
    g.code(CODE64, 64, |a| {
        long_prelude(a)?;
        a.mov(rax, cr4)?;
        a.or(eax, 0x80)?;
        a.mov(cr4, rax)?;
        // Physical pages 0x408000 ("AAAA") and 0x409000 ("BBBB").
        a.mov(dword_ptr(0x40_8000u64), 0x4141_4141)?;
        a.mov(dword_ptr(0x40_9000u64), 0x4242_4242)?;
        // 0x40a000 -> 0x408000, not global; read, remap to 0x409000, reload CR3, read.
        a.mov(qword_ptr(pte(0x40_a000)), 0x40_8007)?;
        a.invlpg(ptr(0x40_a000u64))?;
        a.mov(eax, dword_ptr(0x40_a000u64))?;
        a.cmp(eax, 0x4141_4141)?;
        check_eq(a, "mapped")?;
        a.mov(qword_ptr(pte(0x40_a000)), 0x40_9007)?;
        a.mov(rax, cr3)?;
        a.mov(cr3, rax)?;
        a.cmp(dword_ptr(0x40_a000u64), 0x4242_4242)?;
        check_eq(a, "cr3 reload")?;
        // Global: remap and invlpg.
        a.mov(qword_ptr(pte(0x40_b000)), 0x40_8107)?;
        a.invlpg(ptr(0x40_b000u64))?;
        a.cmp(dword_ptr(0x40_b000u64), 0x4141_4141)?;
        check_eq(a, "global mapped")?;
        a.mov(qword_ptr(pte(0x40_b000)), 0x40_9107)?;
        a.invlpg(ptr(0x40_b000u64))?;
        a.cmp(dword_ptr(0x40_b000u64), 0x4242_4242)?;
        check_eq(a, "invlpg")?;
        // Global: remap and toggle PGE.
        a.mov(qword_ptr(pte(0x40_b000)), 0x40_8107)?;
        a.mov(rax, cr4)?;
        a.and(eax, !0x80)?;
        a.mov(cr4, rax)?;
        a.or(eax, 0x80)?;
        a.mov(cr4, rax)?;
        a.cmp(dword_ptr(0x40_b000u64), 0x4141_4141)?;
        check_eq(a, "pge toggle")?;
        exit(a, 0)
    });
    pass(
        "paging_tlb",
        g,
        "ok mapped\nok cr3 reload\nok global mapped\nok invlpg\nok pge toggle\n",
    )
}

/// PAE paging in protected mode (no long mode): 2 MiB and 4 KiB pages, a not-present #PF.
fn pae() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| {
        a.mov(dword_ptr(PT + 0xc * 8), 0)?;
        a.mov(dword_ptr(PT + 0xc * 8 + 4), 0)?;
        a.mov(eax, cr4)?;
        a.or(eax, 0x20)?;
        a.mov(cr4, eax)?;
        a.mov(eax, PAE_PDPT)?;
        a.mov(cr3, eax)?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0000u32)?;
        a.mov(cr0, eax)?;
        a.mov(dword_ptr(0x40_d000), 0x99)?;
        a.cmp(dword_ptr(0x40_d000), 0x99)?;
        check_eq(a, "pae 4k")?;
        a.mov(dword_ptr(0x20_0000), 0x98)?;
        a.cmp(dword_ptr(0x20_0000), 0x98)?;
        check_eq(a, "pae 2m")?;
        let mut after = a.create_label();
        set_resume(a, after)?;
        a.mov(eax, dword_ptr(0x40_c004))?;
        a.set_label(&mut after)?;
        exit(a, 0)
    });
    pass("paging_pae", g, "ok pae 4k\nok pae 2m\n#0e err=00000000 cr2=0040c004\n")
}
