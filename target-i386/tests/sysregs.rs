//! System instructions on `CpuExec` (tci): control and debug registers, clts/lmsw/smsw, descriptor-table
//! registers, lldt/ltr/sldt/str, rdmsr/wrmsr, syscall/sysret, sysenter/sysexit, swapgs, invd/wbinvd and rdtsc
//! under CR4.TSD, each with its #GP/#UD cases. Exceptions are observed in the loop's STOP mode; CPL 3 comes
//! from `Sys::enter_user64` (the state set directly) or from sysret/sysexit themselves.

mod sysenv;

use iced_x86::code_asm::*;
use rqemu_accel::StopReason;
use rqemu_target_i386::cpu::DESC_P;
use rqemu_target_i386::cpu::{reg, seg};
use rqemu_target_i386::seg_helper::{sys_type, Descriptor, DESC_TYPE_SHIFT};
use rqemu_target_i386::{ExceptionMode, STOP_EXCEPTION};
use sysenv::*;

const GP: u32 = 13;
const UD: u32 = 6;
const NP: u32 = 11;

/// Runs `body` (the mode's code at CODE) in STOP mode: `Ok(())` when it halts, `Err((vector, error code))`.
fn run(sys: &mut Sys) -> Result<(), (u32, u32)> {
    sys.cpu.set_exception_mode(ExceptionMode::Stop);
    match sys.run() {
        StopReason::Halted => Ok(()),
        StopReason::Cpu(c) if c & STOP_EXCEPTION != 0 => {
            let e = sys.cpu.last_exception.unwrap();
            Err((e.vector, e.error_code))
        }
        other => panic!("stopped with {other:?}"),
    }
}

fn long(body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> (Sys, Result<(), (u32, u32)>) {
    let mut sys = Sys::new(Mode::Long, false);
    sys.code(body);
    let r = run(&mut sys);
    (sys, r)
}

fn prot32(body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> (Sys, Result<(), (u32, u32)>) {
    let mut sys = Sys::new(Mode::Prot32, false);
    sys.code(body);
    let r = run(&mut sys);
    (sys, r)
}

/// Runs `body` as 64-bit CPL 3 code.
fn user(body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Result<(), (u32, u32)> {
    let mut sys = Sys::new(Mode::Long, false);
    sys.asm_at(64, USER_CODE, USER_CODE, body);
    sys.enter_user64(USER_CODE, STACK, 2);
    run(&mut sys)
}

fn r(sys: &Sys, n: usize) -> u64 {
    sys.s().regs[n]
}

#[test]
fn control_registers_read_back_and_reject_reserved_bits() {
    let (sys, res) = long(|a| {
        a.mov(rax, 0x1234_5678_9abcu64)?;
        a.mov(cr2, rax)?;
        a.mov(rbx, cr2)?;
        a.mov(rax, 5u64)?;
        a.mov(cr8, rax)?;
        a.mov(rcx, cr8)?;
        a.mov(rdx, cr0)?;
        a.mov(rsi, cr4)?;
        a.hlt()
    });
    assert_eq!(res, Ok(()));
    assert_eq!((r(&sys, reg::RBX), r(&sys, reg::RCX)), (0x1234_5678_9abc, 5));
    assert_eq!(r(&sys, reg::RDX), sys.s().cr[0]);
    assert_eq!(r(&sys, reg::RSI), 0x620); // PAE, OSFXSR, OSXMMEXCPT (tests/sysenv)
    for value in [
        1u64 << 32,
        1 << 17, /* PCIDE */
        1 << 12, /* LA57 */
        0,       /* PAE off in long mode */
    ] {
        let (_, res) = long(|a| {
            a.mov(rax, value)?;
            a.mov(cr4, rax)?;
            a.hlt()
        });
        assert_eq!(res, Err((GP, 0)), "cr4 = {value:#x}");
    }
    let (_, res) = long(|a| {
        a.mov(rax, 0x10u64)?;
        a.mov(cr8, rax)?;
        a.hlt()
    });
    assert_eq!(res, Err((GP, 0)), "cr8 bits 63:4");
    let (_, res) = long(|a| {
        a.mov(rax, 1u64 << 52)?;
        a.mov(cr3, rax)?;
        a.hlt()
    });
    assert_eq!(res, Err((GP, 0)), "cr3 above MAXPHYADDR");
    let (_, res) = long(|a| {
        a.mov(rax, cr0)?;
        a.btr(rax, 31)?;
        a.mov(cr0, rax)?;
        a.hlt()
    });
    assert_eq!(res, Err((GP, 0)), "paging off in 64-bit mode");
}

#[test]
fn cr0_rules_in_protected_mode() {
    // PG without PE, NW without CD: #GP(0).
    for value in [0x8000_0000u32, 0x2000_0001] {
        let (_, res) = prot32(|a| {
            a.mov(eax, value)?;
            a.mov(cr0, eax)?;
            a.hlt()
        });
        assert_eq!(res, Err((GP, 0)), "cr0 = {value:#x}");
    }
    // EFER.LME with CR4.PAE clear: enabling paging is #GP(0).
    let (_, res) = prot32(|a| {
        a.mov(ecx, 0xc000_0080u32)?;
        a.rdmsr()?;
        a.or(eax, 0x100)?;
        a.wrmsr()?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0000u32)?;
        a.mov(cr0, eax)?;
        a.hlt()
    });
    assert_eq!(res, Err((GP, 0)));
    // ET always reads 1; clts clears TS; lmsw sets MP/TS but cannot clear PE; smsw reads the low word.
    let (sys, res) = prot32(|a| {
        a.mov(eax, 0x11u32 | 8)?;
        a.mov(cr0, eax)?; // PE | ET | TS
        a.clts()?;
        a.mov(ebx, cr0)?;
        a.mov(ax, 0xa)?; // MP | TS, PE clear
        a.lmsw(ax)?;
        a.smsw(ecx)?;
        a.smsw(word_ptr(DATA))?;
        a.hlt()
    });
    assert_eq!(res, Ok(()));
    assert_eq!(r(&sys, reg::RBX), 0x11);
    assert_eq!(r(&sys, reg::RCX) & 0xffff, 0x1b);
    assert_eq!(sys.read_u16(DATA), 0x1b);
}

#[test]
fn pae_paging_checks_the_pdptes() {
    // 32-bit protected mode: PAE on, CR3 at a PDPT whose entry 0 has a reserved bit: enabling paging is
    // #GP(0). Then a valid PDPT loads.
    let pdpt = 0x10_0000u64;
    let mut sys = Sys::new(Mode::Prot32, false);
    sys.write_u64(pdpt, 0x10_1000 | 1 | 1 << 1); // RW is reserved in a PAE PDPTE
    sys.code(|a| {
        a.mov(eax, cr4)?;
        a.or(eax, 0x20)?;
        a.mov(cr4, eax)?;
        a.mov(eax, pdpt as u32)?;
        a.mov(cr3, eax)?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8000_0000u32)?;
        a.mov(cr0, eax)?;
        a.hlt()
    });
    assert_eq!(run(&mut sys), Err((GP, 0)));
    assert_eq!(sys.s().cr[0] & 0x8000_0000, 0);
}

#[test]
fn debug_registers_are_stored() {
    let (sys, res) = long(|a| {
        a.mov(rax, 0xdead_beefu64)?;
        a.mov(dr0, rax)?;
        a.mov(rbx, dr0)?;
        a.mov(rax, 0x1u64)?;
        a.mov(dr7, rax)?;
        a.mov(rcx, dr7)?;
        a.mov(rdx, dr6)?;
        a.hlt()
    });
    assert_eq!(res, Ok(()));
    assert_eq!(r(&sys, reg::RBX), 0xdead_beef);
    assert_eq!(r(&sys, reg::RCX), 0x401);
    assert_eq!(r(&sys, reg::RDX), 0xffff_0ff0);
    let (_, res) = long(|a| {
        a.mov(rax, 1u64 << 32)?;
        a.mov(dr7, rax)?;
        a.hlt()
    });
    assert_eq!(res, Err((GP, 0)), "DR7 bits 63:32");
    // DR4 aliases DR6 without CR4.DE, and is #UD with it.
    let (sys, res) = long(|a| {
        a.mov(rax, dr4)?;
        a.hlt()
    });
    assert_eq!((res, r(&sys, reg::RAX)), (Ok(()), 0xffff_0ff0));
    let (_, res) = long(|a| {
        a.mov(rax, cr4)?;
        a.or(eax, 8)?;
        a.mov(cr4, rax)?;
        a.mov(rax, dr5)?;
        a.hlt()
    });
    assert_eq!(res, Err((UD, 0)));
}

#[test]
fn descriptor_table_registers() {
    let (sys, res) = long(|a| {
        a.sgdt(ptr(DATA))?;
        a.mov(word_ptr(DATA + 0x10), 0x1ff)?;
        a.mov(rax, 0x1234_5678_9abc_def0u64)?;
        a.mov(qword_ptr(DATA + 0x12), rax)?;
        a.lidt(ptr(DATA + 0x10))?;
        a.sidt(ptr(DATA + 0x20))?;
        a.hlt()
    });
    assert_eq!(res, Ok(()));
    assert_eq!(sys.read_u16(DATA), 0xff);
    assert_eq!(sys.read_u64(DATA + 2), GDT);
    assert_eq!((sys.s().idt.base, sys.s().idt.limit), (0x1234_5678_9abc_def0, 0x1ff));
    assert_eq!(sys.read_u16(DATA + 0x20), 0x1ff);
    assert_eq!(sys.read_u64(DATA + 0x22), 0x1234_5678_9abc_def0);
    // 32-bit code: a 32-bit base; with a 16-bit operand size only 24 bits of it.
    let (sys, res) = prot32(|a| {
        a.mov(word_ptr(DATA), 0x3ff)?;
        a.mov(dword_ptr(DATA + 2), 0x1234_5678)?;
        a.lidt(ptr(DATA))?;
        a.db(&[0x66, 0x0f, 0x01, 0x15])?; // o16 lgdt [disp32]
        a.dd(&[DATA as u32])?;
        a.sidt(ptr(DATA + 0x10))?;
        a.hlt()
    });
    assert_eq!(res, Ok(()));
    assert_eq!((sys.s().idt.base, sys.s().idt.limit), (0x1234_5678, 0x3ff));
    assert_eq!((sys.s().gdt.base, sys.s().gdt.limit), (0x34_5678, 0x3ff));
    assert_eq!(sys.read_u32(DATA + 0x12), 0x1234_5678);
    // CPL 3: lgdt/lidt #GP(0); sgdt works (no UMIP).
    assert_eq!(
        user(|a| {
            a.lgdt(ptr(DATA))?;
            a.hlt()
        }),
        Err((GP, 0))
    );
    assert_eq!(
        user(|a| {
            a.sgdt(ptr(DATA))?;
            a.lidt(ptr(DATA))
        }),
        Err((GP, 0))
    );
}

/// GDT selectors the tests add: an LDT (16 bytes in long mode), an available TSS (16 bytes) and a
/// not-present TSS.
const LDT_SEL: u16 = 0x70;
const TSS2_SEL: u16 = 0x80;
const TSS_NP_SEL: u16 = 0x90;

fn add_system_descriptors(sys: &Sys) {
    let ldt = Descriptor::encode_segment(0x6000, 0xff, DESC_P | (sys_type::LDT << DESC_TYPE_SHIFT));
    let tss = Descriptor::encode_segment(0x6100, 0x67, DESC_P | (sys_type::TSS_AVAIL << DESC_TYPE_SHIFT));
    let np = Descriptor::encode_segment(0x6100, 0x67, sys_type::TSS_AVAIL << DESC_TYPE_SHIFT);
    for (sel, d) in [(LDT_SEL, ldt), (TSS2_SEL, tss), (TSS_NP_SEL, np)] {
        sys.write_u64(GDT + u64::from(sel), d);
        sys.write_u64(GDT + u64::from(sel) + 8, 0);
    }
}

#[test]
fn lldt_ltr_sldt_str() {
    let mut sys = Sys::new(Mode::Long, false);
    add_system_descriptors(&sys);
    sys.code(|a| {
        a.mov(ax, LDT_SEL as u32)?;
        a.lldt(ax)?;
        a.mov(ax, TSS2_SEL as u32)?;
        a.ltr(ax)?;
        a.sldt(ebx)?;
        a.str(rcx)?;
        a.str(word_ptr(DATA))?;
        a.hlt()
    });
    assert_eq!(run(&mut sys), Ok(()));
    assert_eq!(
        (r(&sys, reg::RBX), r(&sys, reg::RCX)),
        (LDT_SEL.into(), TSS2_SEL.into())
    );
    assert_eq!(sys.read_u16(DATA), TSS2_SEL);
    assert_eq!((sys.s().ldt.base, sys.s().ldt.limit), (0x6000, 0xff));
    assert_eq!(sys.s().tr.base, 0x6100);
    // The busy bit, in the GDT and in the cache.
    let hi = sys.read_u32(GDT + u64::from(TSS2_SEL) + 4);
    assert_eq!((hi >> 8) & 0xf, sys_type::TSS_BUSY);
    assert_eq!((sys.s().tr.flags >> 8) & 0xf, sys_type::TSS_BUSY);
    // Errors: ltr of the now-busy TSS and of an LDT #GP(sel); not present #NP(sel); null #GP(0); lldt of a
    // TSS #GP(sel); LDT selectors (TI) #GP(sel).
    for (insn, sel, want) in [
        (0, TSS2_SEL, (GP, u32::from(TSS2_SEL))),
        (0, LDT_SEL, (GP, u32::from(LDT_SEL))),
        (0, TSS_NP_SEL, (NP, u32::from(TSS_NP_SEL))),
        (0, 0, (GP, 0)),
        (1, TSS2_SEL, (GP, u32::from(TSS2_SEL))),
        (1, LDT_SEL | 4, (GP, u32::from(LDT_SEL | 4))),
    ] {
        let mut sys = Sys::new(Mode::Long, false);
        add_system_descriptors(&sys);
        if sel == TSS2_SEL && insn == 0 {
            let busy = Descriptor::encode_segment(0x6100, 0x67, DESC_P | (sys_type::TSS_BUSY << DESC_TYPE_SHIFT));
            sys.write_u64(GDT + u64::from(TSS2_SEL), busy);
        }
        sys.code(|a| {
            a.mov(ax, u32::from(sel))?;
            if insn == 0 {
                a.ltr(ax)?;
            } else {
                a.lldt(ax)?;
            }
            a.hlt()
        });
        assert_eq!(run(&mut sys), Err(want), "insn {insn} sel {sel:#x}");
    }
    // A null selector makes the LDT unusable; real mode has no lldt/sldt (#UD); CPL 3: #GP(0).
    let (sys, res) = long(|a| {
        a.xor(eax, eax)?;
        a.lldt(ax)?;
        a.hlt()
    });
    assert_eq!((res, sys.s().ldt.selector), (Ok(()), 0));
    let mut sys = Sys::new(Mode::Real, false);
    sys.code(|a| {
        a.sldt(ax)?;
        a.hlt()
    });
    assert_eq!(run(&mut sys), Err((UD, 0)));
    assert_eq!(
        user(|a| {
            a.lldt(ax)?;
            a.hlt()
        }),
        Err((GP, 0))
    );
}

/// rdmsr of `index` then wrmsr of `value` (edx:eax) and rdmsr again: (before, after).
fn msr_roundtrip(index: u32, value: u64) -> (Sys, Result<(), (u32, u32)>) {
    long(|a| {
        a.mov(ecx, index)?;
        a.rdmsr()?;
        a.mov(r8d, eax)?;
        a.mov(r9d, edx)?;
        a.mov(eax, value as u32)?;
        a.mov(edx, (value >> 32) as u32)?;
        a.wrmsr()?;
        a.xor(eax, eax)?;
        a.xor(edx, edx)?;
        a.rdmsr()?;
        a.hlt()
    })
}

fn msr_after(sys: &Sys) -> u64 {
    r(sys, reg::RDX) << 32 | r(sys, reg::RAX)
}

#[test]
fn msrs() {
    for (index, value) in [
        (0xc000_0081u32, 0x0023_0010_0000_0000u64), // STAR
        (0xc000_0082, 0xffff_8000_1234_0000),       // LSTAR
        (0xc000_0083, 0x1000),                      // CSTAR
        (0xc000_0084, 0x4700),                      // SFMASK
        (0xc000_0102, 0xffff_8800_0000_0000),       // KERNEL_GS_BASE
        (0xc000_0103, 7),                           // TSC_AUX
        (0x174, 0x10),                              // SYSENTER_CS
        (0x175, 0x9000),                            // SYSENTER_ESP
        (0x176, 0xffff_ffff_8000_0000),             // SYSENTER_EIP
        (0x277, 0x0007_0406_0007_0406),             // PAT
        (0x1a0, 1),                                 // MISC_ENABLE
        (0x1b, 0xfee0_0900),                        // APIC_BASE
    ] {
        let (sys, res) = msr_roundtrip(index, value);
        assert_eq!(res, Ok(()), "msr {index:#x}");
        assert_eq!(msr_after(&sys), value, "msr {index:#x}");
    }
    // EFER: LMA stays, NXE and SCE are written.
    let (sys, res) = msr_roundtrip(0xc000_0080, 0x901);
    assert_eq!(res, Ok(()));
    assert_eq!((r(&sys, 8), msr_after(&sys)), (0x500, 0xd01));
    // FS_BASE is the FS segment's base, used by fs: accesses.
    let (sys, res) = long(|a| {
        a.mov(ecx, 0xc000_0100u32)?;
        a.mov(eax, DATA as u32)?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
        a.mov(qword_ptr(0x10).fs(), 0x77)?;
        a.hlt()
    });
    assert_eq!(res, Ok(()));
    assert_eq!((sys.s().segs[seg::FS].base, sys.read_u64(DATA + 0x10)), (DATA, 0x77));
    // The TSC: a write sets what the next reads count from.
    let (sys, res) = msr_roundtrip(0x10, 1 << 40);
    assert_eq!(res, Ok(()));
    assert!(msr_after(&sys) >= 1 << 40 && msr_after(&sys) < (1 << 40) + (1 << 36));
    // #GP(0): unknown MSR, non-canonical bases, TSC_AUX bits 63:32, bad PAT types, EFER reserved bits or LME
    // while paging.
    for (index, value) in [
        (0x1234u32, 0u64),
        (0xc000_0082, 0x8000_0000_0000),
        (0xc000_0100, 0x8000_0000_0000),
        (0xc000_0103, 1 << 32),
        (0x277, 2),
        (0xc000_0080, 0x501 | 1 << 12),
        (0xc000_0080, 0x400),
    ] {
        let (_, res) = msr_roundtrip(index, value);
        assert_eq!(res, Err((GP, 0)), "msr {index:#x} = {value:#x}");
    }
    // CPL 3.
    assert_eq!(
        user(|a| {
            a.mov(ecx, 0xc000_0080u32)?;
            a.rdmsr()
        }),
        Err((GP, 0))
    );
}

#[test]
fn syscall_and_sysret() {
    // Kernel entry (LSTAR): counts entries in r13, records RFLAGS in r10, returns with sysretq the first
    // time and halts the second.
    let mut sys = Sys::new(Mode::Long, false);
    let entry = HANDLERS + 0x100;
    sys.asm_at(64, entry, entry, |a| {
        let mut done = a.create_label();
        a.pushfq()?;
        a.pop(r10)?;
        a.mov(r12, rcx)?;
        a.inc(r13)?;
        a.cmp(r13, 2)?;
        a.je(done)?;
        a.sysretq()?;
        a.set_label(&mut done)?;
        a.hlt()
    });
    sys.asm_at(64, USER_CODE, USER_CODE, |a| {
        a.std()?;
        a.syscall()?;
        a.mov(r15, 0x77u64)?;
        a.mov(r14, cs)?;
        a.syscall()?;
        a.hlt()
    });
    // STAR: kernel CS 0x18 (SS 0x20), user base 0x30 (sysretq: CS 0x43, SS 0x3b).
    let s = sys.s_mut();
    s.msrs.star = 0x0030_0018u64 << 32;
    s.msrs.lstar = entry;
    s.msrs.fmask = 0x400; // DF
    s.efer |= 1;
    sys.enter_user64(USER_CODE, STACK, 2);
    assert_eq!(run(&mut sys), Ok(()));
    let s = sys.s();
    assert_eq!(r(&sys, 13), 2);
    assert_eq!(r(&sys, 15), 0x77, "user code ran after sysret");
    assert_eq!(r(&sys, 14), 0x43, "sysretq: STAR[63:48] + 16 | 3");
    assert_eq!(
        r(&sys, 12),
        USER_CODE + 18,
        "rcx: after the second syscall (std, syscall, movabs, mov r14 cs, syscall)"
    );
    assert_eq!(r(&sys, 10) & 0x400, 0, "SFMASK cleared DF");
    assert_ne!(r(&sys, 11) & 0x400, 0, "r11 kept the user DF");
    assert_eq!((s.segs[seg::CS].selector, s.segs[seg::SS].selector), (0x18, 0x20));

    // #UD without EFER.SCE; #UD in 32-bit (legacy) mode; sysret at CPL 3 #GP(0); non-canonical rcx #GP(0).
    let (_, res) = long(|a| a.syscall());
    assert_eq!(res, Err((UD, 0)));
    let (_, res) = prot32(|a| a.syscall());
    assert_eq!(res, Err((UD, 0)));
    let mut sys = Sys::new(Mode::Long, false);
    sys.s_mut().efer |= 1;
    sys.asm_at(64, USER_CODE, USER_CODE, |a| a.sysretq());
    sys.enter_user64(USER_CODE, STACK, 2);
    assert_eq!(run(&mut sys), Err((GP, 0)));
    let mut sys = Sys::new(Mode::Long, false);
    sys.s_mut().efer |= 1;
    sys.code(|a| {
        a.mov(rcx, 0x8000_0000_0000u64)?;
        a.sysretq()
    });
    assert_eq!(run(&mut sys), Err((GP, 0)));
}

#[test]
fn sysenter_and_sysexit() {
    let mut sys = Sys::new(Mode::Long, false);
    let entry = HANDLERS + 0x200;
    sys.asm_at(64, entry, entry, |a| {
        let mut done = a.create_label();
        a.mov(r12, rsp)?;
        a.inc(r13)?;
        a.cmp(r13, 2)?;
        a.je(done)?;
        a.mov(rdx, USER_CODE + 0x10)?;
        a.mov(rcx, STACK - 0x100)?;
        a.sysexitq()?;
        a.set_label(&mut done)?;
        a.hlt()
    });
    sys.asm_at(64, USER_CODE, USER_CODE, |a| a.sysenter());
    sys.asm_at(64, USER_CODE + 0x10, USER_CODE + 0x10, |a| {
        a.mov(r14, cs)?;
        a.mov(r15, rsp)?;
        a.sysenter()
    });
    let s = sys.s_mut();
    s.msrs.sysenter = [u64::from(CODE64), STACK0, entry];
    sys.enter_user64(USER_CODE, STACK, 2);
    assert_eq!(run(&mut sys), Ok(()));
    assert_eq!(r(&sys, 13), 2);
    assert_eq!(r(&sys, 12), STACK0);
    assert_eq!(r(&sys, 14), u64::from(CODE64 + 32) | 3);
    assert_eq!(r(&sys, 15), STACK - 0x100);
    assert_eq!(sys.s().segs[seg::CS].selector, CODE64);
    // SYSENTER_CS = 0: #GP(0) for both; sysexit at CPL 3: #GP(0).
    let (_, res) = long(|a| a.sysenter());
    assert_eq!(res, Err((GP, 0)));
    let (_, res) = long(|a| a.sysexitq());
    assert_eq!(res, Err((GP, 0)));
    let mut sys = Sys::new(Mode::Long, false);
    sys.s_mut().msrs.sysenter[0] = u64::from(CODE64);
    sys.asm_at(64, USER_CODE, USER_CODE, |a| a.sysexitq());
    sys.enter_user64(USER_CODE, STACK, 2);
    assert_eq!(run(&mut sys), Err((GP, 0)));
    // 32-bit sysenter: flat 32-bit code at SYSENTER_EIP.
    let mut sys = Sys::new(Mode::Prot32, false);
    sys.s_mut().msrs.sysenter = [u64::from(CODE32), STACK0, HANDLERS];
    sys.asm_at(32, HANDLERS, HANDLERS, |a| {
        a.mov(ebx, esp)?;
        a.hlt()
    });
    sys.code(|a| a.sysenter());
    assert_eq!(run(&mut sys), Ok(()));
    assert_eq!(r(&sys, reg::RBX), STACK0);
}

#[test]
fn swapgs_invd_wbinvd_invlpg() {
    let (sys, res) = long(|a| {
        a.mov(ecx, 0xc000_0102u32)?;
        a.mov(eax, 0x5000u32)?;
        a.xor(edx, edx)?;
        a.wrmsr()?;
        a.swapgs()?;
        a.mov(rbx, qword_ptr(0).gs())?;
        a.invd()?;
        a.wbinvd()?;
        a.invlpg(byte_ptr(DATA))?;
        a.hlt()
    });
    sys.write_u64(0x5000, 0);
    assert_eq!(res, Ok(()));
    assert_eq!((sys.s().segs[seg::GS].base, sys.s().msrs.kernel_gs_base), (0x5000, 0));
    for f in [
        (|a: &mut CodeAssembler| a.swapgs()) as fn(&mut CodeAssembler) -> Result<(), IcedError>,
        |a| a.invd(),
        |a| a.wbinvd(),
        |a| a.invlpg(byte_ptr(DATA)),
        |a| a.clts(),
        |a| a.mov(cr0, rax),
        |a| a.mov(rax, dr7),
    ] {
        assert_eq!(user(f), Err((GP, 0)));
    }
    let (_, res) = prot32(|a| a.db(&[0x0f, 0x01, 0xf8])); // swapgs (the assembler refuses it here)
    assert_eq!(res, Err((UD, 0)), "swapgs outside 64-bit mode");
}

#[test]
fn rdtsc_honours_cr4_tsd() {
    let mut sys = Sys::new(Mode::Long, false);
    sys.s_mut().cr[4] |= 4;
    sys.asm_at(64, USER_CODE, USER_CODE, |a| {
        a.rdtsc()?;
        a.hlt()
    });
    sys.enter_user64(USER_CODE, STACK, 2);
    assert_eq!(run(&mut sys), Err((GP, 0)));
    let mut sys = Sys::new(Mode::Long, false);
    sys.s_mut().cr[4] |= 4;
    sys.asm_at(64, USER_CODE, USER_CODE, |a| {
        a.rdtscp()?;
        a.hlt()
    });
    sys.enter_user64(USER_CODE, STACK, 2);
    assert_eq!(run(&mut sys), Err((GP, 0)));
    // CPL 0 with TSD, and CPL 3 without.
    let mut sys = Sys::new(Mode::Long, false);
    sys.s_mut().cr[4] |= 4;
    sys.code(|a| {
        a.rdtsc()?;
        a.hlt()
    });
    assert_eq!(run(&mut sys), Ok(()));
    let mut sys = Sys::new(Mode::Long, false);
    sys.asm_at(64, USER_CODE, USER_CODE, |a| {
        a.rdtsc()?;
        a.mov(rax, cr0)
    });
    sys.enter_user64(USER_CODE, STACK, 2);
    assert_eq!(run(&mut sys), Err((GP, 0)), "rdtsc ran, then mov from cr0 faulted");
    assert_ne!(sys.s().regs[reg::RAX] | sys.s().regs[reg::RDX], 0);
}

#[test]
fn stac_clac_toggle_ac_and_the_smap_override() {
    let (sys, res) = long(|a| {
        a.stac()?;
        a.pushfq()?;
        a.pop(rbx)?;
        a.clac()?;
        a.pushfq()?;
        a.pop(rcx)?;
        a.hlt()
    });
    assert_eq!(res, Ok(()));
    assert_eq!(
        (r(&sys, reg::RBX) & 0x4_0000, r(&sys, reg::RCX) & 0x4_0000),
        (0x4_0000, 0)
    );
    assert_eq!(user(|a| a.stac()), Err((UD, 0)));
    // SMAP: with CR4.SMAP a supervisor read of a user page faults (P | 0: supervisor read) unless AC is set.
    // The environment's identity pages are user pages.
    let mut sys = Sys::new(Mode::Long, false);
    sys.s_mut().cr[4] |= 1 << 21;
    sys.code(|a| {
        a.stac()?;
        a.mov(rax, qword_ptr(DATA))?;
        a.clac()?;
        a.mov(rbx, qword_ptr(DATA))?;
        a.hlt()
    });
    assert_eq!(run(&mut sys), Err((14, 1)));
    // At the second load (stac 3 bytes, movabs 10, clac 3): the first one, under AC, worked.
    assert_eq!(sys.cpu.last_exception.unwrap().rip, CODE + 16);
}
