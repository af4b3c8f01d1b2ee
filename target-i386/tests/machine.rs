//! x86-64 guest programs on the real execution loop (`rqemu_accel::CpuExec`) and softmmu: chaining and the
//! jump cache, call/ret through `goto_ptr`, a precise fault in the middle of a TB, page-crossing stores,
//! self-modifying code, and the wasm32 backend (embedded engine) as the hot tier with the TLB inlined.
//! Programs end with `ud2`, which stops the loop with `STOP_EXCEPTION | #UD` (no IDT delivery yet).

mod sysenv;

use iced_x86::code_asm::*;
use rqemu_accel::{AccelOptions, CpuExec, StopReason, TierConfig};
use rqemu_include::MemOp;
use rqemu_target_i386::cpu::excp;
use rqemu_target_i386::machine::MMU_KERNEL;
use rqemu_target_i386::{X86Cpu, X86CpuState, X86Exception, STOP_EXCEPTION};
use rqemu_tcg_tci::Tci;

const RAM_SIZE: u64 = 0x10_0000;
const CODE: u64 = 0x1000;
const DATA: u64 = 0x1_0000;
const DATA_SIZE: u64 = 0x1_0000;
const STACK_TOP: u64 = 0x8_0000;

/// A CPU in 64-bit flat mode at `CODE` over 1 MiB of RAM (the data area an MMIO device when `slow_data`).
fn machine(slow_data: bool) -> X86Cpu {
    sysenv::flat_long_mode(CODE, RAM_SIZE, (DATA, DATA_SIZE), slow_data, STACK_TOP)
}

fn write(cpu: &X86Cpu, addr: u64, bytes: &[u8]) {
    cpu.memory().with(|m| m.space_mut().write_bytes(addr, bytes));
}

fn read64(cpu: &X86Cpu, addr: u64) -> u64 {
    cpu.memory().with(|m| m.load(addr, MemOp::LEUQ, MMU_KERNEL)).unwrap()
}

fn asm(at: u64, build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    build(&mut a).unwrap();
    a.assemble(at).unwrap()
}

fn tci() -> CpuExec {
    CpuExec::with_backends(Box::new(Tci::new()), None, AccelOptions::default())
}

fn run(ex: &mut CpuExec, cpu: &mut X86Cpu) -> StopReason {
    let mut mem = cpu.memory();
    ex.run(cpu, &mut mem, u64::MAX)
}

const UD: StopReason = StopReason::Cpu(STOP_EXCEPTION | excp::UD as u64);

/// `rax = checksum of n qwords at DATA`: rax = rol(rax + q, 5) ^ rcx, counting rcx down; then `ud2`.
fn checksum_program(n: u64) -> Vec<u8> {
    asm(CODE, |a| {
        let mut top = a.create_label();
        a.mov(rsi, DATA)?;
        a.mov(rcx, n)?;
        a.xor(eax, eax)?;
        a.set_label(&mut top)?;
        a.mov(rdx, qword_ptr(rsi))?;
        a.add(rax, rdx)?;
        a.rol(rax, 5u32)?;
        a.xor(rax, rcx)?;
        a.add(rsi, 8i32)?;
        a.dec(rcx)?;
        a.jne(top)?;
        a.ud2()
    })
}

fn checksum_data(n: u64) -> (Vec<u8>, u64) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut bytes = Vec::new();
    let mut sum = 0u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
        sum = sum.wrapping_add(x).rotate_left(5) ^ (n - i);
    }
    (bytes, sum)
}

fn load_checksum(cpu: &X86Cpu, n: u64) -> u64 {
    let (data, sum) = checksum_data(n);
    write(cpu, CODE, &checksum_program(n));
    write(cpu, DATA, &data);
    sum
}

#[test]
fn a_checksum_loop_chains_and_reruns_from_the_jump_cache() {
    let n = 500;
    let mut cpu = machine(false);
    let sum = load_checksum(&cpu, n);
    let mut ex = tci();
    assert_eq!(run(&mut ex, &mut cpu), UD);
    assert_eq!(cpu.state().regs[0], sum);
    assert_eq!(cpu.state().regs[1], 0);
    let ud2_at = CODE + checksum_program(n).len() as u64 - 2;
    assert_eq!(cpu.last_exception.map(|e| e.rip), Some(ud2_at));
    let s = ex.stats();
    // The entry TB (up to the jne), the loop body, the ud2.
    assert_eq!(s.translations, 3, "{s}");
    assert!(s.chained >= n - 3, "the back edge is followed as a link: {s}");

    // Again from the start: nothing is translated, the entry TB comes from the jump cache.
    *cpu.state_mut() = {
        let mut st = X86CpuState::new_long_mode(CODE);
        st.regs[4] = STACK_TOP;
        st
    };
    assert_eq!(run(&mut ex, &mut cpu), UD);
    assert_eq!(cpu.state().regs[0], sum);
    let s2 = ex.stats();
    assert_eq!(s2.translations, 3, "{s2}");
    assert!(s2.jc_hits > s.jc_hits, "{s2}");
}

#[test]
fn call_and_ret_continue_through_goto_ptr() {
    let func = CODE + 0x100;
    let mut cpu = machine(false);
    write(
        &cpu,
        CODE,
        &asm(CODE, |a| {
            let mut top = a.create_label();
            a.mov(ecx, 50u32)?;
            a.xor(eax, eax)?;
            a.set_label(&mut top)?;
            a.call(func)?;
            a.dec(rcx)?;
            a.jne(top)?;
            a.ud2()
        }),
    );
    write(
        &cpu,
        func,
        &asm(func, |a| {
            a.add(rax, 3i32)?;
            a.ret()
        }),
    );
    let mut ex = tci();
    assert_eq!(run(&mut ex, &mut cpu), UD);
    assert_eq!(cpu.state().regs[0], 150);
    assert_eq!(cpu.state().regs[4], STACK_TOP);
    let s = ex.stats();
    assert!(
        s.goto_ptr >= 48,
        "every ret after the first finds its TB through lookup_tb_ptr: {s}"
    );
}

#[test]
fn a_fault_mid_tb_restores_rip_flags_and_registers_and_keeps_earlier_stores() {
    let unmapped = 0x9_0000;
    let mut cpu = machine(false);
    cpu.memory().with(|m| m.fill_mut().identity.limit = unmapped);
    let mut fault_at = 0;
    let code = asm(CODE, |a| {
        let mut faulting = a.create_label();
        a.mov(eax, 1u32)?;
        a.mov(rdi, DATA)?;
        a.mov(qword_ptr(rdi), rax)?;
        a.mov(ebx, 2u32)?;
        a.add(rax, rbx)?;
        a.mov(rsi, unmapped + 8)?;
        a.set_label(&mut faulting)?;
        a.mov(rdx, qword_ptr(rsi))?;
        a.mov(ecx, 3u32)?;
        a.ud2()
    });
    // The faulting load is 3 bytes, then mov ecx (5) and ud2 (2).
    fault_at += CODE + code.len() as u64 - 10;
    write(&cpu, CODE, &code);
    let mut ex = tci();
    assert_eq!(
        run(&mut ex, &mut cpu),
        StopReason::Cpu(STOP_EXCEPTION | excp::PF as u64)
    );
    assert_eq!(
        cpu.last_exception,
        Some(X86Exception {
            vector: excp::PF,
            error_code: 0,
            fault_addr: unmapped + 8,
            rip: fault_at,
        })
    );
    let s = cpu.state();
    assert_eq!(s.rip, fault_at);
    assert_eq!((s.regs[0], s.regs[3], s.regs[1], s.regs[2]), (3, 2, 0, 0));
    // The flags of `add rax, rbx` (3: PF set, nothing else), restored from the lazy state.
    assert_eq!(s.rflags() & 0x8d5, 0x4);
    assert_eq!(s.fault, 0);
    assert_eq!(read64(&cpu, DATA), 1, "the store before the fault is kept");
    assert_eq!(ex.stats().faults, 1);
}

#[test]
fn page_crossing_stores_write_both_pages_or_nothing() {
    let unmapped = 0x9_0000;
    let mut cpu = machine(false);
    cpu.memory().with(|m| m.fill_mut().identity.limit = unmapped);
    write(
        &cpu,
        CODE,
        &asm(CODE, |a| {
            a.mov(rax, 0x1122_3344_5566_7788u64)?;
            a.mov(rdi, DATA + 0xffc)?;
            a.mov(qword_ptr(rdi), rax)?;
            a.mov(rbx, qword_ptr(rdi))?;
            a.mov(rdi, unmapped - 4)?;
            a.mov(qword_ptr(rdi), rax)?;
            a.ud2()
        }),
    );
    write(&cpu, unmapped - 8, &[0xee; 8]);
    let mut ex = tci();
    assert_eq!(
        run(&mut ex, &mut cpu),
        StopReason::Cpu(STOP_EXCEPTION | excp::PF as u64)
    );
    assert_eq!(cpu.state().regs[3], 0x1122_3344_5566_7788);
    assert_eq!(read64(&cpu, DATA + 0xff8), 0x5566_7788_0000_0000);
    assert_eq!(read64(&cpu, DATA + 0x1000), 0x1122_3344);
    let e = cpu.last_exception.unwrap();
    assert_eq!(
        (e.fault_addr, e.error_code),
        (unmapped, 2),
        "#PF on the second page, a write"
    );
    assert_eq!(
        read64(&cpu, unmapped - 8),
        0xeeee_eeee_eeee_eeee,
        "nothing of the faulting store"
    );
}

#[test]
fn code_written_by_the_guest_is_retranslated() {
    let func = CODE + 0x100;
    for smc in [true, false] {
        let mut cpu = machine(false);
        write(
            &cpu,
            CODE,
            &asm(CODE, |a| {
                let mut top = a.create_label();
                a.mov(ecx, 2u32)?;
                a.mov(rdi, func + 1)?;
                a.xor(ebx, ebx)?;
                a.set_label(&mut top)?;
                a.call(func)?;
                a.add(rbx, rax)?;
                a.mov(dword_ptr(rdi), 100u32)?;
                a.dec(rcx)?;
                a.jne(top)?;
                a.ud2()
            }),
        );
        // mov eax, 5 (its immediate at func + 1); ret
        write(&cpu, func, &[0xb8, 5, 0, 0, 0, 0xc3]);
        let mut ex = tci();
        if smc {
            cpu.attach_invalidate_queue(ex.invalidate_queue());
        }
        assert_eq!(run(&mut ex, &mut cpu), UD);
        let want = if smc { 105 } else { 10 };
        assert_eq!(cpu.state().regs[3], want, "invalidation {smc}: {}", ex.stats());
        assert_eq!(ex.stats().invalidated > 0, smc, "{}", ex.stats());
    }
}

#[test]
fn an_unfetchable_first_instruction_faults_at_its_address() {
    let unmapped = 0x9_0000;
    let mut cpu = machine(false);
    cpu.memory().with(|m| m.fill_mut().identity.limit = unmapped);
    // mov rax, imm64 (10 bytes) starting 4 bytes before the unmapped page, reached by a jump.
    let start = unmapped - 4;
    write(&cpu, start, &[0x48, 0xb8, 1, 2]);
    write(
        &cpu,
        CODE,
        &asm(CODE, |a| {
            a.mov(rdi, start)?;
            a.jmp(rdi)
        }),
    );
    let mut ex = tci();
    assert_eq!(
        run(&mut ex, &mut cpu),
        StopReason::Cpu(STOP_EXCEPTION | excp::PF as u64)
    );
    let e = cpu.last_exception.unwrap();
    assert_eq!((e.rip, e.fault_addr, e.error_code), (start, unmapped, 0x10));
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn the_wasm32_hot_tier_with_the_tlb_inlined_gives_the_same_results() {
    use rqemu_tcg_wasm32::engine::EmbeddedWasm32;
    use rqemu_tcg_wasm32::TlbAbi;

    let n = 600;
    let mut results = Vec::new();
    for (hot, slow_data) in [(false, false), (false, true), (true, true)] {
        let mut cpu = machine(slow_data);
        let sum = load_checksum(&cpu, n);
        let mut ex = if hot {
            let mut engine = EmbeddedWasm32::new();
            engine.set_tlb(Some(TlbAbi {
                offset_from_env: rqemu_target_i386::cpu::TLB_OFFSET as i32,
            }));
            let opts = AccelOptions {
                // wasmi uses host stack for every TB it chains through: keep chained runs short.
                chain_limit: 64,
                tier: TierConfig {
                    threshold: 10,
                    ..TierConfig::default()
                },
                ..AccelOptions::default()
            };
            CpuExec::with_backends(Box::new(Tci::new()), Some(Box::new(engine)), opts)
        } else {
            tci()
        };
        assert_eq!(run(&mut ex, &mut cpu), UD, "hot {hot}: {}", ex.stats());
        assert_eq!(cpu.state().regs[0], sum, "hot {hot}");
        if hot {
            let t = ex.tier_stats();
            assert!(t.hot_tbs >= 1 && t.hot_runs >= 1 && t.failures == 0, "{t}");
        }
        let s = cpu.state();
        results.push((s.regs, s.rip, s.rflags(), read64(&cpu, DATA + 8 * (n - 1))));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}
