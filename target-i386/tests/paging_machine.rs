//! Paging on the real TLB path: programs on `CpuExec` (tci, and tci with the embedded wasm32 engine as the hot
//! tier, whose inlined TLB probe uses each access's MMU index) that enable 4-level paging from 32-bit
//! protected mode, access memory through 4 KiB, 2 MiB and 1 GiB pages, take #PF with the walker's error code
//! and CR2, set A/D bits, honour NX, CR0.WP and U/S (CPL 3), see stale TLB entries until invlpg or a CR3
//! reload (global pages survive the reload), and run PAE and 32-bit (PSE) paging.

mod sysenv;

use iced_x86::code_asm::*;
use rqemu_accel::StopReason;
use rqemu_target_i386::cpu::{reg, seg};
use rqemu_target_i386::{ExceptionMode, STOP_EXCEPTION};
use sysenv::*;

/// The test's own 4-level tables (inside the first 2 MiB, which they identity-map).
const T_PML4: u64 = 0x10_0000;
const T_PDPT: u64 = 0x10_1000;
const T_PD: u64 = 0x10_2000;
const T_PT: u64 = 0x10_3000;
/// Virtual 0x20_0000.. is mapped by 4 KiB pages of `T_PT`.
const V4K: u64 = 0x20_0000;
/// Physical frames behind them.
const P4K: u64 = 0x30_0000;
/// A 1 GiB page at virtual 1 GiB maps physical 0.
const V1G: u64 = 0x4000_0000;

const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;
const A: u64 = 0x20;
const D: u64 = 0x40;
const PS: u64 = 0x80;
const XD: u64 = 1 << 63;

/// PT entries: page 0 RW, 1 read-only, 2 NX (holds `hlt`), 3 not present, 4 user RW, 5 supervisor-only.
fn build_tables(sys: &Sys) {
    sys.write_u64(T_PML4, T_PDPT | P | RW | US);
    sys.write_u64(T_PDPT, T_PD | P | RW | US);
    sys.write_u64(T_PDPT + 8, PS | P | RW | US); // 1 GiB page at 1 GiB -> physical 0
    sys.write_u64(T_PD, PS | P | RW | US); // 2 MiB identity page: code, tables, GDT, IDT, stacks
    sys.write_u64(T_PD + 8, T_PT | P | RW | US);
    sys.write_u64(T_PT, P4K | P | RW);
    sys.write_u64(T_PT + 8, (P4K + 0x1000) | P);
    sys.write_u64(T_PT + 16, (P4K + 0x2000) | P | RW | XD);
    sys.write_u64(T_PT + 24, 0);
    sys.write_u64(T_PT + 32, (P4K + 0x4000) | P | RW | US);
    sys.write_u64(T_PT + 40, (P4K + 0x5000) | P | RW);
    sys.write(P4K + 0x2000, &[0xf4]); // hlt, on the NX page
}

fn pte(sys: &Sys, i: u64) -> u64 {
    sys.read_u64(T_PT + 8 * i)
}

/// Enables PAE, loads CR3, sets EFER.LME|NXE and CR0.PG|WP from 32-bit protected mode, then far-returns into
/// the 64-bit code at `CODE + 0x800`, which `body` fills.
fn long_mode_from_protected(hot: bool, body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Sys {
    let sys = Sys::new(Mode::Prot32, hot);
    build_tables(&sys);
    sys.code(|a| {
        a.mov(eax, cr4)?;
        a.or(eax, 0x20)?; // PAE
        a.mov(cr4, eax)?;
        a.mov(eax, T_PML4 as u32)?;
        a.mov(cr3, eax)?;
        a.mov(ecx, 0xc000_0080u32)?;
        a.rdmsr()?;
        a.or(eax, 0x900)?; // LME | NXE
        a.wrmsr()?;
        a.mov(eax, cr0)?;
        a.or(eax, 0x8001_0000u32)?; // PG | WP
        a.mov(cr0, eax)?;
        a.push(u32::from(CODE64))?;
        a.push((CODE + 0x800) as u32)?;
        a.retf()
    });
    sys.asm_at(64, CODE + 0x800, CODE + 0x800, body);
    sys
}

#[test]
fn long_mode_from_protected_mode_through_4k_2m_and_1g_pages() {
    for hot in [false, true] {
        let mut sys = long_mode_from_protected(hot, |a| {
            a.mov(rax, 0x1122_3344_5566_7788u64)?;
            a.mov(qword_ptr(V4K), rax)?; // 4 KiB page -> P4K
            a.mov(rbx, qword_ptr(V1G + P4K))?; // 1 GiB page -> physical P4K
            a.mov(rcx, qword_ptr(V4K + 0x1000))?; // read-only page: reads work
            a.mov(rdx, qword_ptr(DATA))?; // 2 MiB identity page
            a.hlt()
        });
        sys.write_u64(DATA, 0xdada);
        sys.write_u64(P4K + 0x1000, 0x5151);
        assert_eq!(sys.run(), StopReason::Halted, "hot={hot}");
        let s = sys.s();
        assert_eq!(s.efer & 0xd00, 0xd00, "LME, LMA and NXE");
        assert_eq!(s.cr[0] & 0x8001_0001, 0x8001_0001);
        assert_eq!(s.segs[seg::CS].selector, CODE64);
        assert_eq!(sys.read_u64(P4K), 0x1122_3344_5566_7788);
        assert_eq!(s.regs[reg::RBX], 0x1122_3344_5566_7788);
        assert_eq!((s.regs[reg::RCX], s.regs[reg::RDX]), (0x5151, 0xdada));
        // A and D of the written page, only A of the page that was read.
        assert_eq!(pte(&sys, 0) & (A | D), A | D);
        assert_eq!(pte(&sys, 1) & (A | D), A);
        assert_eq!(sys.read_u64(T_PDPT + 8) & A, A, "1 GiB leaf accessed");
        assert_eq!(sys.read_u64(T_PML4) & A, A);
        let walks = sys.cpu.memory().with(|m| m.fill().walks);
        assert!(walks > 0, "the fill walked the tables");
    }
}

/// Runs a 64-bit `body` after enabling paging, in the exception STOP mode: the vector, error code and
/// fault address of the exception that stopped it.
fn fault_of(hot: bool, body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> (u32, u32, u64) {
    let mut sys = long_mode_from_protected(hot, body);
    sys.cpu.set_exception_mode(ExceptionMode::Stop);
    let stop = sys.run();
    let e = sys.cpu.last_exception.expect("an exception");
    assert_eq!(stop, StopReason::Cpu(STOP_EXCEPTION | u64::from(e.vector)));
    (e.vector, e.error_code, e.fault_addr)
}

#[test]
fn page_faults_carry_the_walkers_error_code() {
    for hot in [false, true] {
        // Not present, read: P = 0, W = 0.
        let r = fault_of(hot, |a| {
            a.mov(rax, qword_ptr(V4K + 0x3008))?;
            a.hlt()
        });
        assert_eq!(r, (14, 0, V4K + 0x3008));
        // Not present, write.
        let r = fault_of(hot, |a| {
            a.mov(qword_ptr(V4K + 0x3000), rax)?;
            a.hlt()
        });
        assert_eq!(r, (14, 2, V4K + 0x3000));
        // Write to a read-only page under CR0.WP: P | W.
        let r = fault_of(hot, |a| {
            a.mov(byte_ptr(V4K + 0x1010), 1)?;
            a.hlt()
        });
        assert_eq!(r, (14, 3, V4K + 0x1010));
        // Fetch from an NX page (PAE + NXE: I is set): P | I.
        let r = fault_of(hot, |a| {
            a.mov(rax, V4K + 0x2000)?;
            a.jmp(rax)
        });
        assert_eq!(r, (14, 0x11, V4K + 0x2000));
        // Non-canonical: #GP(0).
        let r = fault_of(hot, |a| {
            a.mov(rax, 0x8000_0000_0000u64)?;
            a.mov(rbx, qword_ptr(rax))?;
            a.hlt()
        });
        assert_eq!((r.0, r.1), (13, 0));
    }
}

#[test]
fn page_fault_delivered_with_cr2() {
    // Long mode as the environment sets it up (its own tables), then CR3 switched to the test's tables; the
    // #PF handler reads CR2 and pops the error code.
    let mut sys = Sys::new(Mode::Long, false);
    build_tables(&sys);
    sys.gate(14, 0, 0);
    sys.handler(0, |a| {
        a.mov(r8, cr2)?;
        a.pop(r9)?;
        a.hlt()
    });
    sys.code(|a| {
        a.mov(rax, T_PML4)?;
        a.mov(cr3, rax)?;
        a.mov(qword_ptr(V4K + 0x3010), rax)?;
        a.hlt()
    });
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!((sys.s().regs[8], sys.s().regs[9]), (V4K + 0x3010, 2));
    assert_eq!(sys.s().cr[2], V4K + 0x3010);
}

#[test]
fn wp_clear_lets_the_supervisor_write_read_only_pages() {
    let mut sys = long_mode_from_protected(false, |a| {
        a.mov(rax, cr0)?;
        a.and(eax, !0x1_0000u32 as i32)?;
        a.mov(cr0, rax)?;
        a.mov(byte_ptr(V4K + 0x1010), 0x42)?;
        a.hlt()
    });
    sys.cpu.set_exception_mode(ExceptionMode::Stop);
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(sys.read_u64(P4K + 0x1010) & 0xff, 0x42);
}

#[test]
fn user_mode_sees_only_user_pages() {
    for hot in [false, true] {
        let mut sys = Sys::new(Mode::Long, hot);
        build_tables(&sys);
        sys.cpu.set_exception_mode(ExceptionMode::Stop);
        sys.s_mut().cr[3] = T_PML4;
        // CPL 3 code (the 2 MiB identity page is a user page): a user page works, a supervisor page faults
        // with P | U.
        sys.asm_at(64, USER_CODE, USER_CODE, |a| {
            a.mov(qword_ptr(V4K + 0x4000), rsp)?;
            a.mov(rax, qword_ptr(V4K + 0x5000))?;
            a.hlt()
        });
        sys.enter_user64(USER_CODE, STACK, 2);
        let stop = sys.run();
        let e = sys.cpu.last_exception.expect("#PF");
        assert_eq!(stop, StopReason::Cpu(STOP_EXCEPTION | 14), "hot={hot}");
        assert_eq!((e.vector, e.error_code, e.fault_addr), (14, 5, V4K + 0x5000));
        assert_eq!(sys.read_u64(P4K + 0x4000), STACK);
        // The same page read at CPL 0 works (different MMU index, different rights).
        assert_eq!(sys.s().segs[seg::CS].selector & 3, 3);
    }
}

#[test]
fn supervisor_pages_are_readable_at_cpl0_after_a_user_fault() {
    let mut sys = long_mode_from_protected(false, |a| {
        a.mov(rax, qword_ptr(V4K + 0x5000))?;
        a.hlt()
    });
    sys.write_u64(P4K + 0x5000, 0x5555);
    assert_eq!(sys.run(), StopReason::Halted);
    assert_eq!(sys.s().regs[reg::RAX], 0x5555);
}

#[test]
fn invlpg_and_cr3_reload_drop_stale_translations() {
    for hot in [false, true] {
        let mut sys = long_mode_from_protected(hot, |a| {
            a.mov(r8, qword_ptr(V4K))?; // fills the TLB: P4K
            a.mov(rax, (P4K + 0x6000) | P | RW)?;
            a.mov(qword_ptr(T_PT), rax)?; // remap page 0 in memory only
            a.mov(r9, qword_ptr(V4K))?; // stale: still P4K
            a.invlpg(byte_ptr(V4K))?;
            a.mov(r10, qword_ptr(V4K))?; // P4K + 0x6000
            a.mov(rax, P4K | P | RW)?;
            a.mov(qword_ptr(T_PT), rax)?;
            a.mov(r11, qword_ptr(V4K))?; // stale again
            a.mov(rax, cr3)?;
            a.mov(cr3, rax)?;
            a.mov(r12, qword_ptr(V4K))?; // reloaded: P4K
            a.hlt()
        });
        sys.write_u64(P4K, 0xaaaa);
        sys.write_u64(P4K + 0x6000, 0xbbbb);
        assert_eq!(sys.run(), StopReason::Halted, "hot={hot}");
        let r = &sys.s().regs;
        assert_eq!(
            [r[8], r[9], r[10], r[11], r[12]],
            [0xaaaa, 0xaaaa, 0xbbbb, 0xbbbb, 0xaaaa],
            "hot={hot}"
        );
    }
}

#[test]
fn global_pages_survive_cr3_loads() {
    // Pages 0 (global) and 1 (not) of the 4 KiB table are read, both remapped in memory, CR3 reloaded: the
    // global page's stale translation survives, the other is walked again. invlpg drops the global one;
    // clearing CR4.PGE flushes everything.
    for hot in [false, true] {
        let mut sys = long_mode_from_protected(hot, |a| {
            a.mov(rax, cr4)?;
            a.or(eax, 0x80)?; // PGE
            a.mov(cr4, rax)?;
            a.mov(r8, qword_ptr(V4K))?;
            a.mov(r9, qword_ptr(V4K + 0x1000))?;
            a.mov(rax, (P4K + 0x6000) | P | RW | 0x100)?;
            a.mov(qword_ptr(T_PT), rax)?;
            a.mov(rax, (P4K + 0x7000) | P)?;
            a.mov(qword_ptr(T_PT + 8), rax)?;
            a.mov(rax, cr3)?;
            a.mov(cr3, rax)?;
            a.mov(r10, qword_ptr(V4K))?; // global: stale
            a.mov(r11, qword_ptr(V4K + 0x1000))?; // walked again
            a.invlpg(byte_ptr(V4K))?;
            a.mov(r12, qword_ptr(V4K))?;
            a.mov(rax, P4K | P | RW | 0x100)?;
            a.mov(qword_ptr(T_PT), rax)?;
            a.mov(rax, cr4)?;
            a.and(eax, !0x80)?;
            a.mov(cr4, rax)?;
            a.mov(r13, qword_ptr(V4K))?;
            a.hlt()
        });
        sys.write_u64(T_PT, P4K | P | RW | 0x100);
        // The identity 2 MiB page (code, tables) global too: softmmu flushes a whole MMU index when a page to
        // drop lies in the range of a large page filled into it, which would drop the global page as well
        // (conservative, not wrong).
        sys.write_u64(T_PD, PS | P | RW | US | 0x100);
        sys.write_u64(P4K, 0x6161);
        sys.write_u64(P4K + 0x1000, 0x7171);
        sys.write_u64(P4K + 0x6000, 0x6262);
        sys.write_u64(P4K + 0x7000, 0x7272);
        assert_eq!(sys.run(), StopReason::Halted, "hot={hot}");
        let r = &sys.s().regs;
        assert_eq!(
            [r[8], r[9], r[10], r[11], r[12], r[13]],
            [0x6161, 0x7171, 0x6161, 0x7272, 0x6262, 0x6161],
            "hot={hot}"
        );
    }
}

/// Physical address of the MMIO pages of the hot-tier test (above the 4 MiB of RAM).
const SLOW: u64 = 0x80_0000;

#[test]
fn hot_loops_at_cpl0_and_cpl3_use_their_own_tlb_entries() {
    // Loops run often enough for the embedded wasm32 engine to take them over (threshold 10): its inlined
    // probes use the MMU index of each access (supervisor for the first loop, user for the second), so the
    // user loop must miss the supervisor entries and fault on the supervisor-only page.
    let mut results = Vec::new();
    for hot in [false, true] {
        let mut sys = Sys::new(Mode::Long, hot);
        build_tables(&sys);
        sys.cpu.set_exception_mode(ExceptionMode::Stop);
        sys.s_mut().cr[3] = T_PML4;
        // The embedded engine cannot use native RAM addends from its inlined probe, so the loops' data is an
        // MMIO region (every probe that hits still checks the MMU index; the access itself takes the slow path).
        sys.cpu.memory().with(|m| {
            let space = m.space_mut();
            space
                .map_mmio(SLOW, 0x2000, Box::new(sysenv::SlowRam(vec![0; 0x2000])))
                .unwrap();
            for i in 0..8u64 {
                space.write(SLOW + 8 * i, 8, i + 1);
                space.write(SLOW + 0x1000 + 8 * i, 8, 0x100 * (i + 1));
            }
        });
        sys.write_u64(T_PT + 32, SLOW | P | RW | US);
        sys.write_u64(T_PT + 40, (SLOW + 0x1000) | P | RW);
        sys.asm_at(64, USER_CODE, USER_CODE, |a| {
            let mut top = a.create_label();
            a.xor(ebx, ebx)?;
            a.mov(ecx, 40)?;
            a.set_label(&mut top)?;
            a.mov(eax, ecx)?;
            a.and(eax, 7)?;
            a.add(rbx, qword_ptr(rax * 8 + (V4K + 0x4000)))?;
            a.dec(ecx)?;
            a.jnz(top)?;
            a.mov(rax, qword_ptr(V4K + 0x5000))?; // supervisor-only: #PF
            a.hlt()
        });
        sys.code(|a| {
            let mut top = a.create_label();
            a.xor(edx, edx)?;
            a.mov(ecx, 40)?;
            a.set_label(&mut top)?;
            a.mov(eax, ecx)?;
            a.and(eax, 7)?;
            a.add(rdx, qword_ptr(rax * 8 + (V4K + 0x5000)))?;
            a.dec(ecx)?;
            a.jnz(top)?;
            a.hlt()
        });
        assert_eq!(sys.run(), StopReason::Halted, "hot={hot}");
        let kernel_sum = sys.s().regs[reg::RDX];
        sys.s_mut().halted = 0;
        sys.enter_user64(USER_CODE, STACK, 2);
        assert_eq!(sys.run(), StopReason::Cpu(STOP_EXCEPTION | 14), "hot={hot}");
        let e = sys.cpu.last_exception.unwrap();
        assert_eq!((e.error_code, e.fault_addr), (5, V4K + 0x5000));
        results.push((kernel_sum, sys.s().regs[reg::RBX]));
    }
    // 40 iterations over indexes 0..8: each index 5 times.
    assert_eq!(results[0], (5 * 0x100 * 36, 5 * 36));
    assert_eq!(results[0], results[1]);
}

#[test]
fn pae_and_32_bit_paging_from_protected_mode() {
    for hot in [false, true] {
        // PAE paging: a PDPT (PDPTEs have no R/W or U/S bits), 2 MiB pages: virtual 2 MiB -> physical 0.
        let mut sys = Sys::new(Mode::Prot32, hot);
        sys.write_u64(T_PML4, T_PDPT | P);
        sys.write_u64(T_PDPT, PS | P | RW);
        sys.write_u64(T_PDPT + 8, PS | P | RW);
        sys.write_u64(DATA, 0x1234_5678);
        sys.code(|a| {
            a.mov(eax, cr4)?;
            a.or(eax, 0x20)?;
            a.mov(cr4, eax)?;
            a.mov(eax, T_PML4 as u32)?;
            a.mov(cr3, eax)?;
            a.mov(eax, cr0)?;
            a.or(eax, 0x8000_0000u32)?;
            a.mov(cr0, eax)?;
            a.mov(ebx, dword_ptr((0x20_0000 + DATA) as u32))?;
            a.hlt()
        });
        assert_eq!(sys.run(), StopReason::Halted, "hot={hot}");
        assert_eq!(sys.s().regs[reg::RBX], 0x1234_5678);
        assert_eq!(sys.s().efer & 0x400, 0, "not long mode");
        assert_eq!(sys.read_u64(T_PDPT + 8) & A, A);

        // 32-bit paging with CR4.PSE: 4 MiB pages, virtual 4 MiB -> physical 0.
        let mut sys = Sys::new(Mode::Prot32, hot);
        sys.write_u32(T_PD, (PS | P | RW) as u32);
        sys.write_u32(T_PD + 4, (PS | P | RW) as u32);
        sys.write_u64(DATA, 0x8765_4321);
        sys.code(|a| {
            a.mov(eax, cr4)?;
            a.or(eax, 0x10)?;
            a.mov(cr4, eax)?;
            a.mov(eax, T_PD as u32)?;
            a.mov(cr3, eax)?;
            a.mov(eax, cr0)?;
            a.or(eax, 0x8000_0000u32)?;
            a.mov(cr0, eax)?;
            a.mov(ebx, dword_ptr((0x40_0000 + DATA) as u32))?;
            a.mov(dword_ptr((0x40_0000 + DATA + 4) as u32), 0x55)?;
            a.hlt()
        });
        assert_eq!(sys.run(), StopReason::Halted, "hot={hot}");
        assert_eq!(sys.s().regs[reg::RBX], 0x8765_4321);
        assert_eq!(sys.read_u32(DATA + 4), 0x55);
        assert_eq!(u64::from(sys.read_u32(T_PD + 4)) & (A | D), A | D);
    }
}

#[test]
fn a_flat_loader_state_walks_page_tables_after_its_first_cr3_load() {
    // `X86CpuState::new_long_mode` has CR0.PG set without page tables: the fill runs flat (identity) until the
    // guest loads CR3; the identity entries are flushed then.
    let s = rqemu_target_i386::X86CpuState::new_long_mode(0x1000);
    let mut space = rqemu_softmmu::AddressSpace::new();
    let ram = space.add_ram(rqemu_softmmu::RamBlock::new(RAM).unwrap());
    space.map_ram(0, RAM, ram, 0).unwrap();
    let mut cpu = rqemu_target_i386::X86Cpu::new(space, s);
    cpu.set_exception_mode(ExceptionMode::Stop);
    assert!(cpu.memory().with(|m| m.fill().flat));
    let mem = cpu.memory();
    let sys = Sys {
        cpu,
        ex: exec(false),
        mode: Mode::Long,
    };
    build_tables(&sys);
    sys.write_u64(V4K, 0x1d1d);
    sys.write_u64(P4K, 0x4b4b);
    sys.asm_at(64, 0x1000, 0x1000, |a| {
        a.mov(r8, qword_ptr(V4K))?; // identity
        a.mov(rax, T_PML4)?;
        a.mov(cr3, rax)?;
        a.mov(r9, qword_ptr(V4K))?; // the tables: P4K
        a.ud2()
    });
    let mut sys = sys;
    assert_eq!(sys.run(), StopReason::Cpu(STOP_EXCEPTION | 6));
    assert_eq!((sys.s().regs[8], sys.s().regs[9]), (0x1d1d, 0x4b4b));
    assert!(!mem.with(|m| m.fill().flat));
}
