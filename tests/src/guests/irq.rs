//! Interrupts: the PIT's IRQ 0 through the 8259 to the CPU waking a `hlt`, and the interrupt shadow of
//! `sti` (the instruction after it runs before a pending interrupt is taken) and of `mov ss` (a single-step
//! trap is held over the next instruction), and single-stepping with EFLAGS.TF.

use iced_x86::code_asm::*;

use super::pass;
use crate::asm::*;
use crate::tables::gate;
use crate::GuestTest;

/// The interrupt guests.
pub fn tests() -> Vec<GuestTest> {
    vec![hlt(), sti_shadow(), mov_ss_shadow(), single_step()]
}

/// Where the IRQ 0 handler counts.
const COUNT: u32 = SCRATCH + 0x40;
/// The counting IRQ 0 handler.
const HANDLER: u32 = AUX + 0x800;

/// A guest with the counting handler on vector 0x20, the PICs remapped to 0x20/0x28 with only IRQ 0
/// unmasked and the PIT's channel 0 at about 1 kHz (mode 2), then `build`.
fn with_timer(build: impl FnOnce(&mut CodeAssembler) -> Asm) -> Guest {
    let mut g = Guest::new();
    g.data(IDT32 + 0x20 * 8, &gate(SEL_CODE32, HANDLER, 0x8e, 0).to_le_bytes());
    g.code(HANDLER, 32, |a| {
        a.push(eax)?;
        a.inc(dword_ptr(COUNT))?;
        a.mov(al, 0x20u32)?;
        a.out(0x20u32, al)?;
        a.pop(eax)?;
        a.iretd()
    });
    g.entry(|a| {
        a.mov(dword_ptr(COUNT), 0)?;
        for (port, v) in [
            (0x20u32, 0x11u32),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x01),
            (0x21, 0xfe),
            (0xa0, 0x11),
            (0xa1, 0x28),
            (0xa1, 0x02),
            (0xa1, 0x01),
            (0xa1, 0xff),
            (0x43, 0x34),
            (0x40, 1193 & 0xff),
            (0x40, 1193 >> 8),
        ] {
            a.mov(al, v)?;
            a.out(port, al)?;
        }
        build(a)
    });
    g
}

/// `sti; hlt` wakes on IRQ 0 and continues after the hlt.
fn hlt() -> GuestTest {
    let g = with_timer(|a| {
        a.sti()?;
        a.hlt()?;
        a.cli()?;
        a.cmp(dword_ptr(COUNT), 1)?;
        check_eq(a, "hlt woke on irq0")?;
        // In-service cleared by the EOI: a second hlt wakes again.
        a.sti()?;
        a.hlt()?;
        a.cli()?;
        a.cmp(dword_ptr(COUNT), 2)?;
        check_eq(a, "second irq0")?;
        exit(a, 0)
    });
    pass("irq_hlt", g, "ok hlt woke on irq0\nok second irq0\n")
}

/// With IRQ 0 pending at the PIC and IF clear: `sti` lets one more instruction run before the interrupt.
fn sti_shadow() -> GuestTest {
    let g = with_timer(|a| {
        let mut wait = a.create_label();
        a.set_label(&mut wait)?;
        // OCW3: read the IRR.
        a.mov(al, 0x0au32)?;
        a.out(0x20u32, al)?;
        a.in_(al, 0x20u32)?;
        a.test(al, 1)?;
        a.jz(wait)?;
        a.sti()?;
        a.mov(eax, dword_ptr(COUNT))?;
        a.mov(ebx, dword_ptr(COUNT))?;
        a.cli()?;
        a.cmp(eax, 0)?;
        check_eq(a, "shadow")?;
        a.cmp(ebx, 1)?;
        check_eq(a, "taken after one instruction")?;
        exit(a, 0)
    });
    pass("irq_sti_shadow", g, "ok shadow\nok taken after one instruction\n")
}

/// `popfd` sets TF, so a single-step trap is due after the next instruction, `mov ss`, which holds it
/// over one more instruction: the #DB frame's EIP is after the `nop` following `mov ss`.
fn mov_ss_shadow() -> GuestTest {
    const DB: u32 = AUX + 0x900;
    const SEQ: u32 = AUX + 0xa00;
    const EIP: u32 = SCRATCH + 0x60;
    let mut g = Guest::new();
    g.data(IDT32 + 8, &gate(SEL_CODE32, DB, 0x8e, 0).to_le_bytes());
    // The #DB handler records the EIP and clears TF in the frame.
    g.code(DB, 32, |a| {
        a.push(eax)?;
        a.mov(eax, dword_ptr(esp + 4))?;
        a.mov(dword_ptr(EIP), eax)?;
        a.and(dword_ptr(esp + 12), !0x100)?;
        a.pop(eax)?;
        a.iretd()
    });
    g.entry(|a| a.jmp(u64::from(SEQ)));
    g.code(SEQ, 32, |a| {
        a.mov(eax, ss)?;
        a.pushfd()?;
        a.or(dword_ptr(esp), 0x100)?;
        // SEQ + 10: popfd (1 byte), mov ss, ax (3: the assembler adds an operand-size prefix), nop (1).
        a.popfd()?;
        a.mov(ss, ax)?;
        a.nop()?;
        a.nop()?;
        print(a, "#db eip ")?;
        a.mov(eax, dword_ptr(EIP))?;
        hex(a, 8)?;
        print(a, "\n")?;
        a.cmp(dword_ptr(EIP), SEQ + 15)?;
        check_eq(a, "mov ss holds the trap")?;
        exit(a, 0)
    });
    pass(
        "irq_mov_ss_shadow",
        g,
        &format!("#db eip {:08x}\nok mov ss holds the trap\n", SEQ + 15),
    )
}

/// `popfd` sets TF: a #DB trap follows each next instruction, with DR6.BS set and the frame's EIP at the
/// instruction after it (after a jump: its target). The handler clears TF in the frame at the third trap.
fn single_step() -> GuestTest {
    const DB: u32 = AUX + 0x900;
    const SEQ: u32 = AUX + 0xa00;
    const TARGET: u32 = SEQ + 0x40;
    const TRAPS: u32 = SCRATCH + 0x60;
    const LAST: u32 = SCRATCH + 0x64;
    const BS: u32 = SCRATCH + 0x68;
    let mut g = Guest::new();
    g.data(IDT32 + 8, &gate(SEL_CODE32, DB, 0x8e, 0).to_le_bytes());
    g.code(DB, 32, |a| {
        a.push(eax)?;
        a.mov(eax, dr6)?;
        a.and(eax, 0x4000)?;
        a.or(dword_ptr(BS), eax)?;
        a.inc(dword_ptr(TRAPS))?;
        a.mov(eax, dword_ptr(esp + 4))?;
        a.mov(dword_ptr(LAST), eax)?;
        let keep = a.create_label();
        a.cmp(dword_ptr(TRAPS), 3)?;
        a.jb(keep)?;
        a.and(dword_ptr(esp + 12), !0x100)?;
        a.set_label(&mut { keep })?;
        a.nop()?;
        a.pop(eax)?;
        a.iretd()
    });
    g.entry(|a| a.jmp(u64::from(SEQ)));
    g.code(SEQ, 32, |a| {
        a.mov(dword_ptr(TRAPS), 0)?;
        a.pushfd()?;
        a.or(dword_ptr(esp), 0x100)?;
        a.popfd()?;
        a.nop()?;
        a.jmp(u64::from(TARGET))
    });
    g.code(TARGET, 32, |a| {
        // TARGET + 5: after this mov, where the third trap returns.
        a.mov(ecx, 5u32)?;
        a.nop()?;
        a.nop()?;
        a.cmp(dword_ptr(TRAPS), 3)?;
        check_eq(a, "three traps")?;
        a.cmp(dword_ptr(LAST), TARGET + 5)?;
        check_eq(a, "eip after the stepped instruction")?;
        a.cmp(dword_ptr(BS), 0x4000)?;
        check_eq(a, "dr6.bs")?;
        exit(a, 0)
    });
    pass(
        "irq_single_step",
        g,
        "ok three traps\nok eip after the stepped instruction\nok dr6.bs\n",
    )
}
