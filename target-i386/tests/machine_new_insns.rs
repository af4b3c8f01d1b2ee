//! The instructions of the BMI/movbe/enter/TSC/trap change on the real execution loop (`rqemu_accel::CpuExec`)
//! and softmmu, on tci and with the wasm32 backend (embedded engine) as the hot tier: a loop using every BMI1
//! and BMI2 instruction, movbe, enter/leave, rdtsc, rdtscp and rdpid gives the same registers on every
//! configuration and counts strictly increasing TSC reads; int3, int n and int1 (64-bit code) and into (32-bit
//! code) stop the loop as traps (rip after them) and the program resumes from there, also once their TB is hot.

mod sysenv;

use iced_x86::code_asm::*;
use rqemu_accel::{CpuExec, StopReason};
use rqemu_target_i386::cpu::excp;
use rqemu_target_i386::{X86Cpu, STOP_EXCEPTION};

const RAM_SIZE: u64 = 0x10_0000;
const CODE: u64 = 0x1000;
const DATA: u64 = 0x1_0000;
const DATA_SIZE: u64 = 0x1_0000;
/// The stack lives in the data area, so hot code on the embedded engine reaches it through the slow path.
const STACK_TOP: u64 = DATA + DATA_SIZE - 0x100;

fn machine(slow_data: bool) -> X86Cpu {
    sysenv::flat_long_mode(CODE, RAM_SIZE, (DATA, DATA_SIZE), slow_data, STACK_TOP)
}

fn write(cpu: &X86Cpu, addr: u64, bytes: &[u8]) {
    cpu.memory().with(|m| m.space_mut().write_bytes(addr, bytes));
}

fn asm(at: u64, build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    build(&mut a).unwrap();
    a.assemble(at).unwrap()
}

fn run(ex: &mut CpuExec, cpu: &mut X86Cpu) -> StopReason {
    let mut mem = cpu.memory();
    ex.run(cpu, &mut mem, u64::MAX)
}

const UD: StopReason = StopReason::Cpu(STOP_EXCEPTION | excp::UD as u64);
const N: u64 = 300;

/// The loop: rbx accumulates every BMI result (with a CF consumer after bzhi and a ZF consumer after blsr),
/// movbe through [rsi], a call to a function with `enter 16, 2` / `leave`; r13 counts TSC reads above the
/// previous one (r14 for rdtsc), r12 sums TSC_AUX from rdtscp and rdpid.
fn program() -> Vec<u8> {
    let func = CODE + 0x400;
    let mut code = asm(CODE, |a| {
        let mut top = a.create_label();
        a.mov(rsi, DATA)?;
        a.mov(r8, N)?;
        a.mov(rbx, 0x0123_4567_89ab_cdefu64)?;
        a.mov(rbp, STACK_TOP - 0x40)?;
        a.xor(r12d, r12d)?;
        a.xor(r13d, r13d)?;
        a.xor(r14d, r14d)?;
        a.xor(r15d, r15d)?;
        a.set_label(&mut top)?;
        a.rorx(r9, rbx, 13)?;
        a.andn(r10, r9, r8)?;
        a.add(rbx, r10)?;
        a.mov(ecx, 0x0a04u32)?;
        a.bextr(r10, rbx, rcx)?;
        a.xor(rbx, r10)?;
        a.blsr(r10, rbx)?;
        a.setz(al)?;
        a.movzx(eax, al)?;
        a.add(rbx, rax)?;
        a.add(rbx, r10)?;
        a.blsi(r10d, ebx)?;
        a.xor(rbx, r10)?;
        a.blsmsk(r10, r9)?;
        a.add(rbx, r10)?;
        a.bzhi(r10, rbx, r8)?;
        a.adc(rbx, r10)?;
        a.mov(rdx, r8)?;
        a.mulx(r11, r10, rbx)?;
        a.add(rbx, r11)?;
        a.xor(rbx, r10)?;
        a.pdep(r10, rbx, r9)?;
        a.add(rbx, r10)?;
        a.pext(r10d, ebx, r9d)?;
        a.xor(rbx, r10)?;
        a.mov(ecx, r8d)?;
        a.shlx(r10, rbx, rcx)?;
        a.add(rbx, r10)?;
        a.shrx(r10d, ebx, ecx)?;
        a.xor(rbx, r10)?;
        a.sarx(r10, rbx, rcx)?;
        a.add(rbx, r10)?;
        a.movbe(qword_ptr(rsi), rbx)?;
        a.movbe(r10d, dword_ptr(rsi + 2))?;
        a.add(rbx, r10)?;
        a.movbe(word_ptr(rsi + 8), bx)?;
        a.call(func)?;
        a.add(rbx, rax)?;
        a.rdtscp()?;
        a.shl(rdx, 32u32)?;
        a.or(rax, rdx)?;
        a.cmp(r15, rax)?;
        a.adc(r13, 0)?;
        a.mov(r15, rax)?;
        a.add(r12, rcx)?;
        a.rdtsc()?;
        a.shl(rdx, 32u32)?;
        a.or(rax, rdx)?;
        a.cmp(r15, rax)?;
        a.adc(r14, 0)?;
        a.mov(r15, rax)?;
        a.rdpid(rax)?;
        a.add(r12, rax)?;
        a.dec(r8)?;
        a.jne(top)?;
        a.ud2()
    });
    code.resize((func - CODE) as usize, 0x90);
    code.extend(asm(func, |a| {
        a.enter(16u32, 2u32)?;
        a.mov(qword_ptr(rbp - 24), rbx)?;
        a.mov(rax, qword_ptr(rbp - 8))?; // the enclosing frame pointer enter copied
        a.xor(rax, qword_ptr(rbp - 24))?;
        a.leave()?;
        a.ret()
    }));
    code
}

#[test]
fn bmi_movbe_enter_and_rdtscp_on_tci_and_the_wasm32_hot_tier() {
    let mut results = Vec::new();
    let configs: &[(bool, bool)] = if cfg!(target_arch = "wasm32") {
        &[(false, false), (false, true)]
    } else {
        &[(false, false), (false, true), (true, true)]
    };
    for &(hot, slow_data) in configs {
        let mut cpu = machine(slow_data);
        write(&cpu, CODE, &program());
        cpu.state_mut().msrs.tsc_aux = 3;
        let mut ex = sysenv::exec(hot);
        assert_eq!(run(&mut ex, &mut cpu), UD, "hot {hot}: {}", ex.stats());
        if hot {
            let t = ex.tier_stats();
            assert!(t.hot_tbs >= 1 && t.hot_runs >= 1 && t.failures == 0, "{t}");
        }
        let s = cpu.state();
        assert_eq!(s.regs[13], N, "every rdtscp above the rdtsc before (hot {hot})");
        assert_eq!(s.regs[14], N, "every rdtsc above the rdtscp before (hot {hot})");
        assert_eq!(s.regs[12], 6 * N, "rdtscp's ecx and rdpid are TSC_AUX");
        assert_eq!(s.regs[4], STACK_TOP, "enter/leave/call/ret balance the stack");
        results.push((s.regs[3], s.regs[9], s.regs[10], s.regs[11], s.rflags() & 0x8d5));
    }
    for r in &results[1..] {
        assert_eq!(*r, results[0], "every configuration computes the same");
    }
}

#[test]
fn int3_and_int_n_stop_the_loop_as_traps_and_resume_after_them_also_when_hot() {
    for hot in [false, true] {
        let mut int3_at = 0;
        let code = asm(CODE, |a| {
            let mut top = a.create_label();
            let mut trap = a.create_label();
            a.mov(ecx, 40u32)?;
            a.xor(ebx, ebx)?;
            a.set_label(&mut top)?;
            a.inc(rbx)?;
            a.set_label(&mut trap)?;
            a.int3()?;
            a.add(rbx, 2i32)?;
            a.int(0x80u32)?;
            a.int1()?;
            a.dec(rcx)?;
            a.jne(top)?;
            a.ud2()
        });
        // mov ecx (5) + xor (2) + inc rbx (3).
        int3_at += CODE + 10;
        let mut cpu = machine(true);
        write(&cpu, CODE, &code);
        let mut ex = sysenv::exec(hot);
        let mut stops = 0;
        loop {
            match run(&mut ex, &mut cpu) {
                StopReason::Cpu(c) if c == STOP_EXCEPTION | excp::BP as u64 => {
                    let e = cpu.last_exception.unwrap();
                    assert_eq!(e.rip, int3_at + 1, "#BP returns after the int3");
                    assert_eq!(cpu.state().rip, int3_at + 1);
                    assert_eq!(cpu.state().exception_is_int, 1);
                }
                StopReason::Cpu(c) if c == STOP_EXCEPTION | 0x80 => {
                    let e = cpu.last_exception.unwrap();
                    assert_eq!(e.rip, int3_at + 1 + 4 + 2, "int 0x80 returns after itself");
                }
                StopReason::Cpu(c) if c == STOP_EXCEPTION | excp::DB as u64 => {
                    let e = cpu.last_exception.unwrap();
                    assert_eq!(e.rip, int3_at + 1 + 4 + 2 + 1, "int1 returns after itself");
                    assert_eq!(cpu.state().exception_is_int, 0, "int1 is not a software interrupt");
                }
                other => {
                    assert_eq!(other, UD);
                    break;
                }
            }
            stops += 1;
            assert!(stops <= 120, "too many stops");
        }
        assert_eq!(stops, 120);
        assert_eq!(
            cpu.state().regs[3],
            3 * 40,
            "every instruction between the traps ran once"
        );
        if hot && !cfg!(target_arch = "wasm32") {
            let t = ex.tier_stats();
            assert!(t.hot_tbs >= 1 && t.hot_runs >= 1 && t.failures == 0, "{t}");
        }
    }
}

#[test]
fn into_in_32_bit_code_traps_only_on_overflow_also_when_hot() {
    // mov ecx, 20; top: mov eax, 0x4000_0000; add eax, eax; into; mov eax, 1; add eax, eax; into; dec ecx;
    // jnz top; ud2
    let code = [
        0xb9, 0x14, 0, 0, 0, 0xb8, 0, 0, 0, 0x40, 0x01, 0xc0, 0xce, 0xb8, 1, 0, 0, 0, 0x01, 0xc0, 0xce, 0x49, 0x75,
        0xed, 0x0f, 0x0b,
    ];
    for hot in [false, true] {
        let mut cpu = machine(true);
        write(&cpu, CODE, &code);
        // 32-bit code segment (compatibility mode).
        cpu.state_mut().segs[rqemu_target_i386::cpu::seg::CS] = rqemu_target_i386::cpu::SegmentCache::flat(
            0x08,
            rqemu_target_i386::cpu::DESC_P | rqemu_target_i386::cpu::DESC_B,
        );
        let mut ex = sysenv::exec(hot);
        let mut stops = 0;
        loop {
            match run(&mut ex, &mut cpu) {
                StopReason::Cpu(c) if c == STOP_EXCEPTION | excp::OF as u64 => {
                    assert_eq!(cpu.last_exception.unwrap().rip, CODE + 13, "only the first into traps");
                    assert_eq!(cpu.state().exception_is_int, 1);
                }
                other => {
                    assert_eq!(other, UD, "hot {hot}");
                    break;
                }
            }
            stops += 1;
            assert!(stops <= 20, "too many stops");
        }
        assert_eq!(stops, 20, "hot {hot}");
        assert_eq!(cpu.state().regs[1], 0);
    }
}
