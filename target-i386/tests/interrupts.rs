//! Interrupt and exception delivery on the execution loop (`CpuExec` + `X86Cpu` in
//! `ExceptionMode::Deliver`): int n through the IVT (real mode) and the IDT (32-bit protected and long mode);
//! #UD, #PF (CR2, error code) and #GP (error code) delivered to handlers that iret back; a triple fault;
//! external interrupts from a fake controller (after sti's and mov ss's one-instruction shadow; waking hlt);
//! NMIs (taken with IF clear, blocked until the handler's iret);
//! the CPL 3 rules of cli/sti/popf/hlt/int n; and int n on the embedded wasm32 engine as the hot tier.

mod sysenv;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use iced_x86::code_asm::*;
use rqemu_accel::StopReason;
use rqemu_target_i386::cpu::{reg, seg};
use rqemu_target_i386::{InterruptController, STOP_TRIPLE_FAULT};
use sysenv::*;

/// A controller whose pending vectors the test queues.
#[derive(Clone, Default)]
struct FakePic(Rc<RefCell<Vec<u8>>>);

impl FakePic {
    fn raise(&self, v: u8) {
        self.0.borrow_mut().push(v);
    }
}

impl InterruptController for FakePic {
    fn has_interrupt(&self) -> bool {
        !self.0.borrow().is_empty()
    }

    fn acknowledge(&mut self) -> u8 {
        let mut p = self.0.borrow_mut();
        if p.is_empty() {
            0xff
        } else {
            p.remove(0)
        }
    }
}

/// A controller with only an NMI line; `raise` makes one more NMI pending.
#[derive(Clone, Default)]
struct NmiLine(Rc<Cell<u32>>);

impl NmiLine {
    fn raise(&self) {
        self.0.set(self.0.get() + 1);
    }
}

impl InterruptController for NmiLine {
    fn has_interrupt(&self) -> bool {
        false
    }

    fn acknowledge(&mut self) -> u8 {
        0xff
    }

    fn nmi_pending(&self) -> bool {
        self.0.get() > 0
    }

    fn acknowledge_nmi(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

fn r(s: &Sys, n: usize) -> u64 {
    s.s().regs[n]
}

const IF: u64 = 0x200;

#[test]
fn int_n_in_real_mode_through_the_ivt() {
    let mut sys = Sys::new(Mode::Real, false);
    sys.handler(0x40, |a| {
        a.inc(si)?;
        a.pushf()?;
        a.pop(di)?; // FLAGS in the handler: IF and TF clear
        a.iret()
    });
    sys.gate(0x21, 0x40, 0);
    sys.code(|a| {
        a.sti()?;
        a.xor(si, si)?;
        a.int(0x21)?;
        a.int(0x21)?;
        a.pushf()?;
        a.pop(bx)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RSI) & 0xffff, 2);
    assert_eq!(r(&sys, reg::RDI) & IF, 0, "IF cleared by delivery");
    assert_ne!(r(&sys, reg::RBX) & IF, 0, "IF restored by iret");
    assert_eq!(r(&sys, reg::RSP), REAL_SP);
}

#[test]
fn int_n_in_protected_mode_through_a_32_bit_gate() {
    let mut sys = Sys::new(Mode::Prot32, false);
    sys.handler(0, |a| {
        a.inc(esi)?;
        a.mov(edi, dword_ptr(esp))?; // the return eip
        a.iretd()
    });
    sys.gate(0x80, 0, 0);
    let mut after = 0;
    sys.code(|a| {
        a.xor(esi, esi)?;
        a.int(0x80)?;
        after = 4;
        a.int(0x80)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RSI), 2);
    assert_eq!(r(&sys, reg::RDI), CODE + after + 2);
    assert_eq!(r(&sys, reg::RSP), STACK);
}

#[test]
fn int_n_in_long_mode_through_a_64_bit_gate() {
    let mut sys = Sys::new(Mode::Long, false);
    sys.handler(0, |a| {
        a.inc(rsi)?;
        a.iretq()
    });
    sys.gate(0x80, 0, 0);
    sys.code(|a| {
        a.xor(esi, esi)?;
        a.int(0x80)?;
        a.int(0x80)?;
        a.int(0x80)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RSI), 3);
    assert_eq!(r(&sys, reg::RSP), STACK);
    assert_eq!(sys.cpu.last_exception.map(|e| e.vector), Some(0x80));
}

#[test]
fn ud_is_delivered_and_the_handler_skips_the_instruction() {
    let mut sys = Sys::new(Mode::Long, false);
    sys.handler(0, |a| {
        a.add(qword_ptr(rsp), 2)?; // past the ud2
        a.inc(rsi)?;
        a.iretq()
    });
    sys.gate(6, 0, 0);
    sys.code(|a| {
        a.xor(esi, esi)?;
        a.ud2()?;
        a.ud2()?;
        a.mov(ebx, 7)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!((r(&sys, reg::RSI), r(&sys, reg::RBX)), (2, 7));
    assert_eq!(r(&sys, reg::RSP), STACK);
}

#[test]
fn page_fault_sets_cr2_and_pushes_the_error_code() {
    let mut sys = Sys::new(Mode::Long, false);
    sys.handler(0, |a| {
        a.pop(rax)?; // the error code
        a.mov(rbx, qword_ptr(rsp))?; // the faulting rip
        a.hlt()
    });
    sys.gate(14, 0, 0);
    let mut at = 0;
    sys.code(|a| {
        a.mov(ecx, 0x80_0000)?;
        at = 5;
        a.mov(dword_ptr(rcx), eax)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(sys.s().cr[2], 0x80_0000);
    assert_eq!(r(&sys, reg::RAX), 2, "not present, write, supervisor");
    assert_eq!(r(&sys, reg::RBX), CODE + at);
}

#[test]
fn general_protection_pushes_its_error_code_and_iret_resumes() {
    let mut sys = Sys::new(Mode::Prot32, false);
    sys.handler(0, |a| {
        a.pop(eax)?; // the error code
        a.add(dword_ptr(esp), 3)?; // past `mov es, cx` (8e c1) + 1: see below
        a.iretd()
    });
    sys.gate(13, 0, 0);
    sys.code(|a| {
        a.mov(cx, CODE32 as u32 + 0x800)?; // beyond the GDT limit
        a.mov(es, cx)?; // 2 bytes
        a.nop()?; // skipped together with the mov
        a.mov(ebx, 9)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RAX), u64::from(CODE32) + 0x800);
    assert_eq!(r(&sys, reg::RBX), 9);
    assert_eq!(r(&sys, reg::RSP), STACK);
}

#[test]
fn a_fault_without_an_idt_is_a_triple_fault_and_reset_restarts_at_the_reset_vector() {
    let mut sys = Sys::new(Mode::Prot32, false);
    sys.s_mut().idt.limit = 0;
    sys.code(|a| a.ud2());
    assert_eq!(sys.run(), StopReason::Cpu(STOP_TRIPLE_FAULT));
    sys.cpu.reset();
    let s = sys.s();
    assert_eq!(
        (s.rip, s.segs[seg::CS].selector, s.segs[seg::CS].base),
        (0xfff0, 0xf000, 0xffff_0000)
    );
    assert_eq!((s.cr[0], s.rflags()), (0x6000_0010, 2));
    assert_ne!(s.regs[reg::RDX], 0, "EDX holds the CPUID signature");
    assert_ne!(s.sys, 0, "memory still attached");
}

#[test]
fn external_interrupt_waits_for_the_instruction_after_sti() {
    let mut sys = Sys::new(Mode::Long, false);
    let pic = FakePic::default();
    sys.cpu.set_interrupt_controller(Box::new(pic.clone()));
    pic.raise(0x20);
    sys.handler(0, |a| {
        a.mov(rbx, qword_ptr(rsp))?; // the interrupted rip
        a.mov(rdx, rax)?;
        a.inc(rsi)?;
        a.iretq()
    });
    sys.gate(0x20, 0, 0);
    let mut after = 0;
    sys.code(|a| {
        a.xor(esi, esi)?;
        a.xor(eax, eax)?;
        a.sti()?;
        a.mov(eax, 1)?; // in the shadow
        after = 2 + 2 + 1 + 5;
        a.mov(ecx, 2)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RSI), 1, "delivered once");
    assert_eq!(r(&sys, reg::RBX), CODE + after, "after the shadowed instruction");
    assert_eq!(r(&sys, reg::RDX), 1, "the shadowed instruction completed first");
    assert_eq!(r(&sys, reg::RCX), 2);
    assert_eq!(sys.s().interrupt_shadow, 0);
}

#[test]
fn mov_ss_blocks_interrupts_for_one_instruction() {
    let mut sys = Sys::new(Mode::Long, false);
    let pic = FakePic::default();
    sys.cpu.set_interrupt_controller(Box::new(pic.clone()));
    sys.handler(0, |a| {
        a.mov(rbx, qword_ptr(rsp))?;
        a.iretq()
    });
    sys.gate(0x21, 0, 0);
    let mut after = 0;
    sys.code(|a| {
        a.mov(eax, DATA32 as u32)?;
        a.mov(ss, ax)?; // ends the TB
        a.mov(ecx, 5)?; // shadowed
        after = 5 + 3 + 5;
        a.nop()?;
        a.hlt()
    });
    assert_eq!(sys.run_budget(1), StopReason::Budget);
    assert_eq!(sys.s().interrupt_shadow, 1);
    pic.raise(0x21);
    let rf = sys.s().rflags() | IF;
    sys.s_mut().set_rflags(rf);
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RBX), CODE + after);
    assert_eq!(r(&sys, reg::RCX), 5);
}

#[test]
fn hlt_sleeps_until_an_interrupt_wakes_it() {
    let mut sys = Sys::new(Mode::Long, false);
    let pic = FakePic::default();
    sys.cpu.set_interrupt_controller(Box::new(pic.clone()));
    sys.handler(0, |a| {
        a.inc(rsi)?;
        a.iretq()
    });
    sys.gate(0x30, 0, 0);
    sys.code(|a| {
        a.xor(esi, esi)?;
        a.sti()?;
        a.hlt()?;
        a.mov(ebx, 2)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(sys.s().halted, 1);
    assert_eq!(sys.run(), StopReason::Halted, "still nothing to do");
    pic.raise(0x30);
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!((r(&sys, reg::RSI), r(&sys, reg::RBX)), (1, 2));
}

#[test]
fn cpl3_cli_faults_and_popf_keeps_if_and_iopl() {
    let mut sys = Sys::new(Mode::Long, false);
    sys.handler(0, |a| {
        a.mov(rdx, qword_ptr(rsp))?; // error code
        a.mov(rdi, qword_ptr(rsp + 16))?; // CS of the interrupted code
        a.mov(rbp, rsp)?;
        a.hlt()
    });
    sys.gate(13, 0, 0);
    sys.asm_at(64, USER_CODE, USER_CODE, |a| {
        a.pushfq()?;
        a.pop(rax)?;
        a.mov(rbx, rax)?;
        a.and(rbx, !0x200i32)?;
        a.or(rbx, 0x3000)?;
        a.push(rbx)?;
        a.popfq()?; // IF and IOPL silently kept at CPL 3
        a.pushfq()?;
        a.pop(rcx)?;
        a.cli()?; // CPL 3 > IOPL 0: #GP(0)
        a.hlt()
    });
    sys.enter_user64(USER_CODE, 0x6_0000, 0x202);
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RCX) & 0x3200, 0x200, "IF still set, IOPL still 0");
    assert_eq!(r(&sys, reg::RDX), 0, "#GP(0)");
    assert_eq!(r(&sys, reg::RDI), u64::from(CODE64_3));
    assert_eq!(r(&sys, reg::RBP), STACK0 - 48, "the ring-0 stack from the TSS");
    assert_eq!(sys.s().segs[seg::CS].selector, CODE64);
}

#[test]
fn cpl3_with_iopl3_may_cli_but_hlt_and_int_to_a_dpl0_gate_fault() {
    let mut sys = Sys::new(Mode::Long, false);
    // #GP handler: keeps the previous error code in r8, the new one in rdx; the first time (int 0x80) it
    // skips the 2-byte instruction and returns, the second time (hlt) it stops.
    sys.handler(0, |a| {
        let mut stop = a.create_label();
        a.mov(r8, rdx)?;
        a.mov(rdx, qword_ptr(rsp))?;
        a.inc(rsi)?;
        a.cmp(rsi, 2)?;
        a.je(stop)?;
        a.add(qword_ptr(rsp + 8), 2)?;
        a.add(rsp, 8)?;
        a.iretq()?;
        a.set_label(&mut stop)?;
        a.hlt()
    });
    sys.gate(13, 0, 0);
    sys.gate(0x80, 0x100, 0); // DPL 0: int 0x80 from CPL 3 is #GP(0x80 * 8 + 2)
    sys.asm_at(64, USER_CODE, USER_CODE, |a| {
        a.cli()?; // IOPL 3: allowed
        a.pushfq()?;
        a.pop(rax)?;
        a.int(0x80)?;
        a.hlt()
    });
    sys.enter_user64(USER_CODE, 0x6_0000, 0x3202);
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RAX) & IF, 0, "cli at CPL 3 with IOPL 3");
    assert_eq!(r(&sys, reg::RSI), 2);
    assert_eq!(r(&sys, 8), 0x80 * 8 + 2, "int n through a DPL 0 gate");
    assert_eq!(r(&sys, reg::RDX), 0, "hlt at CPL 3");
}

#[test]
fn int_n_loop_on_the_hot_tier() {
    for hot in [false, true] {
        let mut sys = Sys::new(Mode::Long, hot);
        sys.handler(0, |a| {
            a.inc(rsi)?;
            a.iretq()
        });
        sys.gate(0x80, 0, 0);
        sys.code(|a| {
            let mut top = a.create_label();
            a.xor(esi, esi)?;
            a.mov(ecx, 200)?;
            a.set_label(&mut top)?;
            a.int(0x80)?;
            a.dec(ecx)?;
            a.jnz(top)?;
            a.hlt()
        });
        assert_eq!(sys.run(), StopReason::Halted, "hot = {hot}");
        assert_eq!(r(&sys, reg::RSI), 200, "hot = {hot}");
        assert_eq!(r(&sys, reg::RSP), STACK);
    }
}

#[test]
fn vm86_entered_by_iretd_addresses_with_segment_bases_and_int_n_returns_to_ring_0() {
    let mut sys = Sys::new(Mode::Prot32, false);
    // Ring-0 handler through a DPL 3 gate (int n from vm86 runs at CPL 3): the vm86 frame is EIP, CS, EFLAGS,
    // ESP, SS, ES, DS, FS, GS on the ring-0 stack from the TSS.
    sys.handler(0, |a| {
        a.mov(eax, dword_ptr(esp + 8))?; // EFLAGS (VM set)
        a.mov(ebx, dword_ptr(esp + 24))?; // DS of the vm86 code
        a.mov(ecx, dword_ptr(esp + 4))?; // CS
        a.hlt()
    });
    sys.gate(0x80, 0, 3);
    sys.asm_at(16, USER_CODE, 0, |a| {
        a.mov(word_ptr(0x10), 0x4242)?; // DS base 0x30000
        a.pushf()?;
        a.pop(dx)?;
        a.int(0x80)?;
        a.hlt()
    });
    sys.code(|a| {
        for v in [
            0u32,
            0,
            (DATA >> 4) as u32,
            0,
            0x6000,
            0x100,
            0x2_3002,
            (USER_CODE >> 4) as u32,
            0,
        ] {
            a.push(v)?;
        }
        a.iretd()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(sys.read_u16(DATA + 0x10), 0x4242);
    assert_ne!(r(&sys, reg::RAX) & 0x2_0000, 0, "VM in the pushed EFLAGS");
    assert_eq!(r(&sys, reg::RBX), DATA >> 4);
    assert_eq!(r(&sys, reg::RCX), USER_CODE >> 4);
    assert_eq!(r(&sys, reg::RDX) & 0x3000, 0x3000, "pushf in vm86 with IOPL 3");
    assert_eq!(sys.s().segs[seg::CS].selector, CODE32);
    assert_eq!(
        sys.s().segs[seg::DS].selector,
        0,
        "data segments nulled on the way to ring 0"
    );
    assert_eq!(r(&sys, reg::RSP), STACK0 - 36);
}

#[test]
fn nmi_ignores_if_and_the_next_waits_for_iret() {
    let mut sys = Sys::new(Mode::Long, false);
    let nmi = NmiLine::default();
    sys.cpu.set_interrupt_controller(Box::new(nmi.clone()));
    // The handler notes how deep it is nested when it starts and crosses a TB boundary (where the loop
    // would deliver a second NMI if it were not blocked) before its iret.
    sys.handler(0, |a| {
        a.inc(rsi)?;
        a.add(rdx, rdi)?;
        a.inc(rdi)?;
        let mut next = a.create_label();
        a.jmp(next)?;
        a.set_label(&mut next)?;
        a.dec(rdi)?;
        a.iretq()
    });
    sys.gate(2, 0, 0);
    sys.code(|a| {
        a.cli()?;
        a.mov(ecx, 7)?;
        let mut sleep = a.create_label();
        a.set_label(&mut sleep)?;
        a.hlt()?;
        a.jmp(sleep)
    });
    for n in [reg::RSI, reg::RDI, reg::RDX] {
        sys.s_mut().regs[n] = 0;
    }
    nmi.raise();
    nmi.raise();
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RSI), 2, "both delivered with IF clear");
    assert_eq!(r(&sys, reg::RDX), 0, "the second only after the first handler's iret");
    assert_eq!(r(&sys, reg::RCX), 7);
    assert_eq!(sys.s().nmi_blocked, 0);
    // An NMI wakes hlt even with IF clear.
    nmi.raise();
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RSI), 3);
}
