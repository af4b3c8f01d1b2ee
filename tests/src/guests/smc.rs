//! Self-modifying code: patching an instruction on the same page (another TB), in the same TB a few bytes
//! after the store, and on another page already run.
//!
//! x86 makes a store to code visible to the next instruction fetched after it (the processor snoops its
//! prefetch queue); docs/accel.md says a write into the running TB may only take effect at the next TB.

use iced_x86::code_asm::*;

use super::pass;
use crate::asm::*;
use crate::GuestTest;

/// The self-modifying code guests.
pub fn tests() -> Vec<GuestTest> {
    vec![same_page(), same_tb(), cross_page()]
}

/// `mov eax, imm32` whose immediate a store earlier on the page patches; a jump separates them (another TB).
fn same_page() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| {
        let mut patch = a.create_label();
        let mut l = a.create_label();
        // Run the instruction once so its TB exists.
        a.mov(ebx, 0u32)?;
        a.set_label(&mut l)?;
        a.call(patch)?;
        a.cmp(ebx, 1)?;
        let mut second = a.create_label();
        a.je(second)?;
        a.cmp(eax, 0x11)?;
        check_eq(a, "before")?;
        // Patch the immediate (one byte after the opcode) and call it again.
        a.call(AUX as u64)?; // returns the patch address in edx
        a.mov(byte_ptr(edx + 1), 0x22)?;
        a.mov(ebx, 1u32)?;
        a.jmp(l)?;
        a.set_label(&mut second)?;
        a.cmp(eax, 0x22)?;
        check_eq(a, "patched")?;
        exit(a, 0)?;
        a.set_label(&mut patch)?;
        a.mov(eax, 0x11u32)?;
        a.ret()
    });
    // The patch address: the target of the first call in the entry (after the prelude).
    g.code(AUX, 32, |a| {
        a.mov(edx, ENTRY)?;
        a.ret()
    });
    let mut img = g;
    fix_patch_address(&mut img);
    pass("smc_same_page", img, "ok before\nok patched\n")
}

/// Finds the `mov eax, 0x11` (b8 11 00 00 00) in the entry code and makes the AUX helper return it.
fn fix_patch_address(g: &mut Guest) {
    let img = std::mem::take(g).image();
    let at = img
        .windows(5)
        .position(|w| w == [0xb8, 0x11, 0, 0, 0])
        .expect("the patched instruction") as u32
        + LOAD;
    *g = Guest::from_image(img);
    g.code(AUX, 32, |a| {
        a.mov(edx, at)?;
        a.ret()
    });
}

/// The store and the patched instruction in one TB, without a branch between.
fn same_tb() -> GuestTest {
    let mut g = Guest::new();
    g.entry(|a| {
        a.call(AUX as u64)?;
        a.mov(byte_ptr(edx + 1), 0x22)?;
        a.nop()?;
        a.nop()?;
        a.mov(eax, 0x11u32)?;
        a.cmp(eax, 0x22)?;
        check_eq(a, "patched in the same tb")?;
        exit(a, 0)
    });
    g.code(AUX, 32, |a| a.ret());
    fix_patch_address(&mut g);
    pass("smc_same_tb", g, "ok patched in the same tb\n")
}

/// A function on another page, run once, then patched.
fn cross_page() -> GuestTest {
    const FUNC: u32 = 0x10_f000;
    let mut g = Guest::new();
    g.entry(|a| {
        a.call(u64::from(FUNC))?;
        a.cmp(eax, 0x11)?;
        check_eq(a, "before")?;
        a.mov(byte_ptr(FUNC + 1), 0x33)?;
        a.call(u64::from(FUNC))?;
        a.cmp(eax, 0x33)?;
        check_eq(a, "patched on another page")?;
        exit(a, 0)
    });
    g.code(FUNC, 32, |a| {
        a.mov(eax, 0x11u32)?;
        a.ret()
    });
    pass("smc_cross_page", g, "ok before\nok patched on another page\n")
}
