//! Modes: 32-bit protected mode to real mode and back through a 16-bit segment; protected mode to long
//! mode (PAE, LME, PG); compatibility-mode code and far jumps between them.

use iced_x86::code_asm::*;

use super::pass;
use crate::asm::*;
use crate::GuestTest;

/// The mode-switching guests.
pub fn tests() -> Vec<GuestTest> {
    vec![long(), compat(), real()]
}

/// Protected mode -> long mode: 64-bit arithmetic works and EFER.LMA is set.
fn long() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| {
        print(a, "pm\n")?;
        enter_long(a, CODE64)
    });
    g.code(CODE64, 64, |a| {
        long_prelude(a)?;
        a.mov(rax, 0x1_0000_0000u64)?;
        a.shr(rax, 32)?;
        a.cmp(rax, 1)?;
        check_eq(a, "64-bit")?;
        a.mov(ecx, 0xc000_0080u32)?;
        a.rdmsr()?;
        a.and(eax, 0x500)?;
        a.cmp(eax, 0x500)?;
        check_eq(a, "lma")?;
        exit(a, 0)
    });
    pass("modes_long", g, "pm\nok 64-bit\nok lma\n")
}

/// Long mode -> compatibility mode (selector 0x08, L=0) -> 64-bit again, by far returns and far jumps.
fn compat() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| enter_long(a, CODE64));
    g.code(CODE64, 64, |a| {
        long_prelude(a)?;
        print(a, "long\n")?;
        a.push(i32::from(SEL_CODE32))?;
        a.push(AUX as i32)?;
        a.db(&[0x48, 0xcb]) // retfq
    });
    g.code(AUX, 32, |a| {
        // 0x48 is `dec eax` in compatibility mode (a REX prefix in 64-bit mode).
        a.xor(eax, eax)?;
        a.db(&[0x48])?;
        a.nop()?;
        a.cmp(eax, -1)?;
        check_eq(a, "compat dec")?;
        a.jmp_far(SEL_CODE64, CODE64 + 0x800)
    });
    g.code(CODE64 + 0x800, 64, |a| {
        a.xor(eax, eax)?;
        a.db(&[0x48, 0xff, 0xc8])?; // dec rax
        a.cmp(rax, -1)?;
        check_eq(a, "back in 64-bit")?;
        exit(a, 0)
    });
    pass("modes_compat", g, "long\nok compat dec\nok back in 64-bit\n")
}

/// Protected mode -> 16-bit protected mode -> real mode (CR0.PE clear) -> protected mode again.
fn real() -> GuestTest {
    const REAL: u32 = LOW_CODE + 0x100;
    const BACK: u32 = AUX + 0x800;
    let mut g = Guest::new();
    g.entry(|a| {
        print(a, "pm32\n")?;
        // Copy the 16-bit code below 1 MiB.
        a.mov(esi, AUX)?;
        a.mov(edi, LOW_CODE)?;
        a.mov(ecx, 0x800u32)?;
        a.cld()?;
        a.rep().movsb()?;
        a.jmp_far(SEL_CODE16, LOW_CODE)
    });
    // 16-bit protected mode: 16-bit data segments, then PE off and a far jump to load a real-mode CS.
    g.code(AUX, 16, |a| {
        a.mov(ax, u32::from(SEL_DATA16))?;
        for s in [ds, es, ss] {
            a.mov(s, ax)?;
        }
        a.mov(eax, cr0)?;
        a.and(eax, !1i32)?;
        a.mov(cr0, eax)?;
        a.jmp_far(0, REAL)
    });
    g.code(AUX + 0x100, 16, |a| {
        a.xor(ax, ax)?;
        for s in [ds, es, ss] {
            a.mov(s, ax)?;
        }
        a.mov(sp, 0x7000u32)?;
        print(a, "real\n")?;
        a.mov(eax, cr0)?;
        a.and(eax, 1)?;
        a.cmp(eax, 0)?;
        check_eq(a, "pe clear")?;
        // A real-mode segment: 0x10 << 4 = 0x100 is the base.
        a.mov(ax, 0x10u32)?;
        a.mov(es, ax)?;
        a.mov(word_ptr(0x200), 0x5a5au32)?;
        a.cmp(word_ptr(0x100).es(), 0x5a5au32)?;
        check_eq(a, "segment base")?;
        a.mov(eax, cr0)?;
        a.or(eax, 1)?;
        a.mov(cr0, eax)?;
        // jmp far dword 0x08:BACK (o32 ljmp).
        let mut far = vec![0x66, 0xea];
        far.extend_from_slice(&BACK.to_le_bytes());
        far.extend_from_slice(&SEL_CODE32.to_le_bytes());
        a.db(&far)
    });
    g.code(BACK, 32, |a| {
        a.mov(eax, u32::from(SEL_DATA))?;
        for s in [ds, es, ss] {
            a.mov(s, ax)?;
        }
        a.mov(esp, STACK)?;
        print(a, "pm32 again\n")?;
        exit(a, 0)
    });
    pass(
        "modes_real",
        g,
        "pm32\nreal\nok pe clear\nok segment base\npm32 again\n",
    )
}
