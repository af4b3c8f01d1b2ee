//! The segmentation instructions through the translator and the execution loop (tci), in real mode, 32-bit
//! protected mode and long mode with a GDT in memory: mov to/from segment registers, push/pop of segment
//! registers, lds/les/lfs/lgs/lss, far jmp/call (direct and through memory), retf [imm16], iret, lar/lsl/
//! verr/verw, and segment bases in addressing (ADDSEG); each with a fault delivered through the IVT/IDT.

mod sysenv;

use iced_x86::code_asm::*;
use rqemu_accel::StopReason;
use rqemu_target_i386::cpu::{reg, seg};
use rqemu_target_i386::machine::tb_key_of;
use rqemu_target_i386::STOP_TRIPLE_FAULT;
use sysenv::*;

const ZF: u64 = 0x40;

fn r(s: &Sys, n: usize) -> u64 {
    s.s().regs[n]
}

#[test]
fn real_mode_segment_loads_and_bases() {
    let mut sys = Sys::new(Mode::Real, false);
    sys.code(|a| {
        a.mov(ax, 0x3000)?; // DS base 0x30000
        a.mov(ds, ax)?;
        a.mov(word_ptr(0x10), 0x1234)?;
        a.mov(bx, ds)?;
        a.push(ds)?;
        a.pop(es)?;
        a.mov(cx, es)?;
        a.mov(di, 0x20)?;
        a.mov(ax, 0x5678)?;
        a.stosw()?; // es:di = 0x30020
        a.push(0x4000)?;
        a.pop(fs)?;
        a.mov(word_ptr(0x30).fs(), 0x9abc)?; // 0x40030
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(sys.read_u16(0x30010), 0x1234);
    assert_eq!(sys.read_u16(0x30020), 0x5678);
    assert_eq!(sys.read_u16(0x40030), 0x9abc);
    assert_eq!(
        (r(&sys, reg::RBX) & 0xffff, r(&sys, reg::RCX) & 0xffff),
        (0x3000, 0x3000)
    );
    assert_eq!(sys.s().segs[seg::ES].base, 0x30000);
    assert_eq!(sys.s().segs[seg::FS].base, 0x40000);
}

#[test]
fn real_mode_far_transfers_lds_and_iret() {
    let mut sys = Sys::new(Mode::Real, false);
    // A far pointer 0x2000:0x0010 at 0x0100 (DS = 0), the handler segment's routine returns with retf.
    sys.write_u16(0x100, 0x0010);
    sys.write_u16(0x102, 0x2000);
    sys.handler(0x10, |a| {
        a.inc(si)?;
        a.retf()
    });
    // 0x2000:0x0020: retf 2 (drops a pushed word).
    sys.handler(0x20, |a| {
        a.add(si, 0x10)?;
        a.retf_1(2)
    });
    sys.code(|a| {
        let mut do_iret = a.create_label();
        a.xor(si, si)?;
        a.call_far(0x2000, 0x10)?; // ptr16:16
        a.call(dword_ptr(0x100))?; // m16:16
        a.push(0x7777)?;
        a.call_far(0x2000, 0x20)?;
        a.lds(bx, dword_ptr(0x100))?; // bx = 0x10, ds = 0x2000
        a.mov(cx, ds)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        // iret to the instruction after the call: FLAGS, CS, then the call pushes IP.
        a.pushf()?;
        a.push(cs)?;
        a.call(do_iret)?;
        a.inc(si)?;
        a.hlt()?;
        a.set_label(&mut do_iret)?;
        a.iret()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RSI) & 0xffff, 0x13);
    assert_eq!(r(&sys, reg::RBX) & 0xffff, 0x10);
    assert_eq!(r(&sys, reg::RCX) & 0xffff, 0x2000);
    assert_eq!(
        r(&sys, reg::RSP),
        REAL_SP,
        "balanced stack (retf 2 dropped the extra word)"
    );
    assert_eq!(sys.s().segs[seg::CS].selector, 0x1000);
}

#[test]
fn real_mode_lar_is_ud_through_the_ivt() {
    let mut sys = Sys::new(Mode::Real, false);
    sys.handler(0, |a| {
        a.mov(ax, 0x6666)?;
        a.hlt()
    });
    sys.gate(6, 0, 0);
    sys.code(|a| {
        a.mov(bx, 0x10)?;
        a.lar(ax, bx)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RAX) & 0xffff, 0x6666);
    // The frame: IP of the lar (3), CS, FLAGS.
    let top = r(&sys, reg::RSP);
    assert_eq!(top, REAL_SP - 6);
    assert_eq!(sys.read_u16(REAL_SS_BASE + top), 3);
    assert_eq!(sys.read_u16(REAL_SS_BASE + top + 2), 0x1000);
}

#[test]
fn protected_mode_segment_loads_push_pop_and_addseg() {
    let mut sys = Sys::new(Mode::Prot32, false);
    sys.code(|a| {
        a.mov(dword_ptr(0x10), 0x1111)?; // flat: 0x10
        a.mov(ax, DATA32_AT as u32)?;
        a.mov(ds, ax)?;
        a.mov(dword_ptr(0x10), 0x2222)?; // DS base DATA: DATA + 0x10
        a.push(ds)?;
        a.pop(es)?;
        a.mov(edi, 0x40)?;
        a.mov(eax, 0x3333)?;
        a.stosd()?; // DATA + 0x40
        a.mov(bx, es)?;
        a.mov(cx, DATA32 as u32)?;
        a.mov(ds, cx)?;
        a.mov(es, cx)?;
        a.mov(dword_ptr(0x20), 0x4444)?; // flat again
        a.push(DATA32_AT as u32)?;
        a.pop(gs)?;
        a.mov(dword_ptr(0x30).gs(), 0x5555)?; // DATA + 0x30
        a.mov(edx, gs)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(sys.read_u32(0x10), 0x1111);
    assert_eq!(sys.read_u32(DATA + 0x10), 0x2222);
    assert_eq!(sys.read_u32(DATA + 0x40), 0x3333);
    assert_eq!(sys.read_u32(0x20), 0x4444);
    assert_eq!(sys.read_u32(DATA + 0x30), 0x5555);
    assert_eq!(r(&sys, reg::RBX) & 0xffff, u64::from(DATA32_AT));
    assert_eq!(r(&sys, reg::RDX), u64::from(DATA32_AT), "mov r32, sreg zero-extends");
    assert_eq!(r(&sys, reg::RSP), STACK);
    // The accessed bit was already set; the caches came from the GDT.
    assert_eq!(sys.s().segs[seg::GS].base, DATA);
}

#[test]
fn addseg_is_a_tb_flag() {
    let mut sys = Sys::new(Mode::Prot32, false);
    assert_eq!(tb_key_of(sys.s()).flags & 0x100, 0, "flat: no ADDSEG");
    sys.s_mut().segs[seg::DS] = cache(DATA32_AT);
    assert_ne!(tb_key_of(sys.s()).flags & 0x100, 0, "DS base nonzero: ADDSEG");
    sys.s_mut().segs[seg::DS] = cache(DATA32);
    sys.s_mut().segs[seg::FS] = cache(DATA32_AT);
    assert_eq!(
        tb_key_of(sys.s()).flags & 0x100,
        0,
        "FS is always added, not a reason for ADDSEG"
    );
    let key = tb_key_of(sys.s());
    assert_eq!(key.flags & 0xff, 1 | 4 | 0x20, "32-bit code, 32-bit stack, CPL 0, PE");
}

#[test]
fn protected_mode_not_present_segment_is_np_with_the_selector() {
    let mut sys = Sys::new(Mode::Prot32, false);
    sys.handler(0, |a| {
        a.mov(eax, dword_ptr(esp))?; // error code
        a.mov(ebx, dword_ptr(esp + 4))?; // eip
        a.hlt()
    });
    sys.gate(11, 0, 0);
    let mut at = 0;
    sys.code(|a| {
        a.mov(cx, DATA_NP as u32)?;
        at = 4;
        a.mov(ds, cx)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RAX), u64::from(DATA_NP));
    assert_eq!(r(&sys, reg::RBX), CODE + at, "the faulting mov");
    assert_eq!(sys.s().segs[seg::DS].selector, DATA32, "DS unchanged");
}

#[test]
fn protected_mode_far_jmp_call_retf_lss_lfs() {
    let mut sys = Sys::new(Mode::Prot32, false);
    // Far pointers at DATA: m16:32 to `func` and to `target`; a stack pointer for lss.
    sys.handler(0, |a| {
        a.add(esi, 1)?;
        a.retf()
    });
    sys.handler(0x10, |a| {
        a.add(esi, 0x100)?;
        a.retf_1(4)
    });
    sys.write_u32(DATA, (HANDLERS) as u32);
    sys.write_u16(DATA + 4, CODE32);
    sys.write_u32(DATA + 8, 0x7_0000);
    sys.write_u16(DATA + 12, DATA32);
    let mut a = CodeAssembler::new(32).unwrap();
    a.xor(esi, esi).unwrap();
    a.call_far(CODE32, HANDLERS as u32).unwrap();
    a.call(fword_ptr(DATA)).unwrap();
    a.push(0x55).unwrap();
    a.call_far(CODE32, (HANDLERS + 0x10) as u32).unwrap();
    a.mov(eax, (CODE + 0x100) as u32).unwrap();
    a.mov(dword_ptr(DATA + 0x20), eax).unwrap();
    a.mov(word_ptr(DATA + 0x24), CODE32 as u32).unwrap();
    a.jmp(fword_ptr(DATA + 0x20)).unwrap();
    a.hlt().unwrap();
    let mut bytes = a.assemble(CODE).unwrap();
    bytes.resize(0x100, 0xf4);
    // At CODE + 0x100: lss and lfs, then a direct far jmp to the end.
    let mut b = CodeAssembler::new(32).unwrap();
    b.mov(ebx, esp).unwrap();
    b.lss(esp, fword_ptr(DATA + 8)).unwrap();
    b.lfs(edx, fword_ptr(DATA + 8)).unwrap();
    b.jmp_far(CODE32, (CODE + 0x200) as u32).unwrap();
    bytes.extend(b.assemble(CODE + 0x100).unwrap());
    bytes.resize(0x200, 0xf4);
    bytes.push(0xf4);
    sys.write(CODE, &bytes);
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RSI), 0x102);
    assert_eq!(r(&sys, reg::RBX), STACK, "balanced before lss");
    assert_eq!(r(&sys, reg::RSP), 0x7_0000);
    assert_eq!(r(&sys, reg::RDX), 0x7_0000);
    assert_eq!(sys.s().segs[seg::SS].selector, DATA32);
    assert_eq!(sys.s().segs[seg::FS].selector, DATA32);
    assert_eq!(sys.s().rip, CODE + 0x201);
}

#[test]
fn protected_mode_far_jmp_to_a_data_segment_is_gp() {
    let mut sys = Sys::new(Mode::Prot32, false);
    sys.handler(0, |a| {
        a.mov(eax, dword_ptr(esp))?;
        a.hlt()
    });
    sys.gate(13, 0, 0);
    sys.code(|a| {
        a.jmp_far(DATA32, 0x1000)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RAX), u64::from(DATA32));
}

#[test]
fn protected_mode_lar_lsl_verr_verw() {
    let mut sys = Sys::new(Mode::Prot32, false);
    sys.code(|a| {
        a.mov(cx, DATA32 as u32)?;
        a.mov(eax, 0xdead)?;
        a.lar(eax, ecx)?;
        a.pushfd()?;
        a.pop(ebp)?;
        a.lsl(ebx, ecx)?;
        a.mov(cx, 0)?;
        a.mov(edx, 0xbeef)?;
        a.lar(edx, ecx)?; // null: ZF = 0, edx unchanged
        a.pushfd()?;
        a.pop(esi)?;
        a.mov(cx, CODE32 as u32)?;
        a.verr(cx)?; // readable code
        a.pushfd()?;
        a.pop(edi)?;
        a.verw(cx)?; // not writable
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    // lar reports the high dword masked with 0x00f0ff00 (limit 19:16 cleared).
    assert_eq!(r(&sys, reg::RAX), 0x00c0_9300);
    assert_ne!(r(&sys, reg::RBP) & ZF, 0);
    assert_eq!(r(&sys, reg::RBX), 0xffff_ffff);
    assert_eq!(r(&sys, reg::RDX), 0xbeef);
    assert_eq!(r(&sys, reg::RSI) & ZF, 0);
    assert_ne!(r(&sys, reg::RDI) & ZF, 0);
    assert_eq!(sys.s().rflags() & ZF, 0);
}

#[test]
fn protected_mode_iretd_same_level() {
    let mut sys = Sys::new(Mode::Prot32, false);
    sys.code(|a| {
        let mut do_iret = a.create_label();
        a.pushfd()?;
        a.or(dword_ptr(esp), 0x1)?; // CF in the popped flags
        a.push(cs)?;
        a.call(do_iret)?;
        a.setc(bl)?;
        a.hlt()?;
        a.set_label(&mut do_iret)?;
        a.iretd()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(sys.s().regs[reg::RBX] & 0xff, 1);
    assert_eq!(sys.s().regs[reg::RSP], STACK);
}

#[test]
fn long_mode_far_call_m16_64_retfq_iretq_and_fs_gs() {
    let mut sys = Sys::new(Mode::Long, false);
    sys.handler(0, |a| {
        a.add(rsi, 1)?;
        a.db(&[0x48, 0xcb]) // retfq
    });
    sys.write_u64(DATA, HANDLERS);
    sys.write_u16(DATA + 8, CODE64);
    let mut a = CodeAssembler::new(64).unwrap();
    let mut back = a.create_label();
    a.xor(esi, esi).unwrap();
    a.mov(rax, DATA).unwrap();
    a.call(tword_ptr(rax)).unwrap(); // m16:64
    a.push(fs).unwrap();
    a.push(0i32).unwrap();
    a.pop(gs).unwrap();
    a.pop(fs).unwrap();
    a.mov(ax, DATA32 as u32).unwrap();
    a.mov(ds, ax).unwrap();
    a.mov(ss, ax).unwrap();
    // iretq: SS, RSP, RFLAGS, CS, RIP.
    a.mov(rcx, rsp).unwrap();
    a.push(DATA32 as i32).unwrap();
    a.push(rcx).unwrap();
    a.pushfq().unwrap();
    a.push(CODE64 as i32).unwrap();
    a.call(back).unwrap();
    a.inc(rsi).unwrap();
    a.hlt().unwrap();
    a.set_label(&mut back).unwrap();
    a.iretq().unwrap();
    sys.write(CODE, &a.assemble(CODE).unwrap());
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RSI), 2);
    assert_eq!(r(&sys, reg::RSP), STACK);
    assert_eq!(sys.s().segs[seg::GS].selector, 0);
    assert_eq!(sys.s().segs[seg::FS].selector, DATA32);
    assert_eq!(sys.s().segs[seg::CS].selector, CODE64);
}

#[test]
fn long_mode_bad_selector_is_gp_with_error_code() {
    let mut sys = Sys::new(Mode::Long, false);
    sys.handler(0, |a| {
        a.mov(rax, qword_ptr(rsp))?; // error code
        a.mov(rbx, qword_ptr(rsp + 8))?; // rip
        a.hlt()
    });
    sys.gate(13, 0, 0);
    let mut at = 0;
    sys.code(|a| {
        a.mov(cx, CODE64 as u32)?;
        at = 4;
        a.mov(ss, cx)?; // a code segment into SS
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(r(&sys, reg::RAX), u64::from(CODE64));
    assert_eq!(r(&sys, reg::RBX), CODE + at);
    assert_eq!(sys.s().segs[seg::SS].selector, DATA32);
}

#[test]
fn long_mode_gs_beyond_the_gdt_limit_without_an_idt_is_a_triple_fault() {
    let mut sys = Sys::new(Mode::Long, false);
    sys.s_mut().idt.limit = 0;
    sys.code(|a| {
        a.mov(cx, 0x800u32)?;
        a.mov(gs, cx)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Cpu(STOP_TRIPLE_FAULT));
}
