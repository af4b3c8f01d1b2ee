//! The execution loop on the toy target (`toy/`): TB reuse, chaining, `goto_ptr`, invalidation, the
//! `tb-size` bound, precise restore after faults, fetch faults, exit requests, budget, halt and
//! interrupts, the page and instruction limits of the translator loop; through tci alone and with the
//! wasm32 code generator (embedded engine) as the hot tier.

mod toy;

use rqemu_accel::{AccelOptions, CpuExec, StopReason, TierConfig};
use rqemu_tcg_tci::Tci;
use rqemu_tcg_wasm32::engine::EmbeddedWasm32;

use toy::*;

fn exec() -> CpuExec {
    CpuExec::with_backends(Box::new(Tci::new()), None, AccelOptions::default())
}

fn exec_with(opts: AccelOptions) -> CpuExec {
    CpuExec::with_backends(Box::new(Tci::new()), None, opts)
}

fn hot_exec(threshold: u32, tail_calls: bool) -> CpuExec {
    let mut hot = EmbeddedWasm32::new();
    hot.set_tail_calls(tail_calls);
    // wasmi's interpreter, built at opt-level 1, uses host stack for every instruction it runs between two
    // returns to the loop: keep chained runs short.
    let opts = AccelOptions {
        chain_limit: 256,
        tier: TierConfig {
            threshold,
            ..TierConfig::default()
        },
        ..AccelOptions::default()
    };
    CpuExec::with_backends(Box::new(Tci::new()), Some(Box::new(hot)), opts)
}

/// `r2 += step` `n` times in a loop of one TB that jumps to itself, then halts.
fn counting_loop(n: u16, step: i8) -> Vec<u32> {
    vec![
        li(1, n),         // 0
        addi(2, 2, step), // 4: loop
        addi(1, 1, -1),   // 8
        bnz(1, -3),       // 12: -> 4
        hlt(),            // 16
    ]
}

fn setup(program: &[u32]) -> (ToyCpu, ToyMem) {
    let mut mem = ToyMem::new();
    mem.load_program(0, program);
    (ToyCpu::new(), mem)
}

#[test]
fn tbs_are_translated_once_and_chained() {
    let (mut cpu, mut mem) = setup(&counting_loop(100, 3));
    let mut ex = exec();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], 300);
    assert_eq!(cpu.state.pc, 20);
    let s = ex.stats();
    // 0..16 (li, addi, addi, bnz), the loop at 4, the hlt at 16.
    assert_eq!(s.translations, 3, "{s}");
    assert_eq!(s.tbs_run, 101, "{s}");
    // The loop's back edge was linked on its first pass and followed 98 times without a lookup.
    assert_eq!(s.links, 3, "{s}");
    assert_eq!(s.chained, 97, "{s}");
    // The only lookup: the loop's second pass, before its back edge was linked.
    assert_eq!((s.jc_hits, s.hash_hits), (1, 0), "{s}");

    // Again from the start: nothing is translated, the entry TB is found in the jump cache.
    cpu.state.pc = 0;
    cpu.state.halted = 0;
    cpu.state.regs = [0; 8];
    let translated = cpu.insns_translated;
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], 300);
    let s2 = ex.stats();
    assert_eq!((s2.translations, cpu.insns_translated), (3, translated));
    assert_eq!(s2.jc_hits, 2, "the entry TB: {s2}");
    assert_eq!(s2.chained - s.chained, 100, "every successor now follows a link: {s2}");
}

#[test]
fn the_hash_table_finds_what_the_jump_cache_lost() {
    let (mut cpu, mut mem) = setup(&counting_loop(5, 1));
    let mut ex = exec();
    ex.run(&mut cpu, &mut mem, u64::MAX);
    ex.jump_cache().flush();
    cpu.state.pc = 0;
    cpu.state.halted = 0;
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    let s = ex.stats();
    assert_eq!((s.translations, s.hash_hits), (3, 1), "{s}");
}

#[test]
fn goto_ptr_continues_at_the_tb_the_lookup_helper_found() {
    let program = [
        li(1, 50),      // 0
        li(6, 12),      // 4
        brk(),          // 8
        addi(1, 1, -1), // 12: head
        bnz(1, 1),      // 16: -> 24
        hlt(),          // 20
        addi(2, 2, 1),  // 24
        jr(6),          // 28: -> 12
    ];
    let (mut cpu, mut mem) = setup(&program);
    let mut ex = exec();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], 49);
    let s = ex.stats();
    assert_eq!(s.goto_ptr, 49, "{s}");
    assert_eq!(s.translations, 4, "{s}");

    // Without a key function the helper answers 0 and the loop looks the TB up itself: same result.
    let (mut cpu, mut mem) = setup(&program);
    cpu.use_lookup_fn = false;
    let mut ex = exec();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], 49);
    assert_eq!(ex.stats().goto_ptr, 0);
}

#[test]
fn invalidating_a_page_retranslates_its_tbs_and_removes_links_to_them() {
    let (mut cpu, mut mem) = setup(&counting_loop(100, 3));
    let mut ex = exec();
    ex.run(&mut cpu, &mut mem, u64::MAX);
    assert_eq!(ex.cache().len(), 3);
    // Self-modifying code: the loop's step becomes 5.
    mem.load_program(4, &[addi(2, 2, 5)]);
    // The byte range of that instruction: the entry TB (0..16) and the loop (4..16) hold it, not 16..20.
    assert_eq!(ex.invalidate_phys_range(4, 8), 2);
    assert_eq!(ex.cache().len(), 1);
    assert_eq!(ex.invalidate_phys_range(0x1000, 0x2000), 0);
    for id in (0..3).filter_map(rqemu_accel::TbId::from_index) {
        if let Some(tb) = ex.cache().get(id) {
            assert_eq!(tb.key.pc, 16);
            assert!(
                tb.jmp_incoming.is_empty(),
                "links into the survivor went with their sources"
            );
        }
    }
    *cpu.state = ToyState::default();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], 500);
    let s = ex.stats();
    assert_eq!((s.translations, s.invalidated), (5, 2), "{s}");
}

/// Code that rewrites an instruction it ran before, then runs it again; the store reaches the loop
/// through an [`rqemu_accel::InvalidateQueue`] while the writing TB still runs.
#[test]
fn code_written_from_inside_a_tb_is_invalidated_at_the_next_boundary() {
    let program = [
        li(3, 64),     // 0
        li(5, 0x1000), // 4
        li(6, 20),     // 8
        li(7, 64),     // 12
        jr(7),         // 16: -> 64, back to 20
        ld(4, 5, 0),   // 20: the new code
        st(4, 3, 0),   // 24: over 64..72
        li(6, 36),     // 28
        jr(7),         // 32: -> 64 (its handle is looked up before the loop sees the store)
        hlt(),         // 36
    ];
    let new_code = (u64::from(jr(6)) << 32) | u64::from(addi(2, 2, 50));
    for smc in [true, false] {
        let (mut cpu, mut mem) = setup(&program);
        mem.load_program(64, &[addi(2, 2, 1), jr(6)]);
        mem.ram.bytes_mut()[0x1000..0x1008].copy_from_slice(&new_code.to_le_bytes());
        let mut ex = exec();
        mem.smc = smc.then(|| ex.invalidate_queue());
        assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
        let want = if smc { 51 } else { 2 };
        assert_eq!(cpu.state.regs[2], want, "invalidation {smc}: {}", ex.stats());
        assert_eq!(ex.stats().invalidated, u64::from(smc));
    }
}

#[test]
fn invalidation_drops_hot_code_and_the_result_follows_the_new_code() {
    let (mut cpu, mut mem) = setup(&counting_loop(1000, 3));
    let mut ex = hot_exec(10, true);
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], 3000);
    assert!(ex.tier_stats().modules_live >= 1, "{}", ex.tier_stats());
    mem.load_program(4, &[addi(2, 2, -2)]);
    ex.invalidate_phys_range(0, 0x100);
    assert_eq!(ex.tier_stats().modules_live, 0, "{}", ex.tier_stats());
    *cpu.state = ToyState::default();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], (-2000i64) as u64);
}

#[test]
fn the_tb_size_bound_flushes_everything_and_execution_goes_on() {
    // 16 TBs of one `addi; brk` pair each, run 20 times round.
    let mut program = vec![li(1, 20)];
    for _ in 0..16 {
        program.extend([addi(2, 2, 1), brk()]);
    }
    program.extend([addi(1, 1, -1), bnz(1, -34), hlt()]);
    let (mut cpu, mut mem) = setup(&program);
    let mut ex = exec();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], 320);
    let unbounded = ex.code_bytes();
    assert!(unbounded > 0);
    assert_eq!(ex.stats().size_flushes, 0);

    let (mut cpu, mut mem) = setup(&program);
    let mut ex = exec_with(AccelOptions {
        tb_size_bytes: unbounded / 3,
        ..AccelOptions::default()
    });
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], 320);
    let s = ex.stats();
    assert!(s.size_flushes >= 20, "about three flushes per round: {s}");
    assert!(
        ex.code_bytes() <= unbounded / 3 + unbounded / 8,
        "{} of {unbounded}",
        ex.code_bytes()
    );
    assert_eq!(ex.tier_stats().flushes, s.size_flushes);
}

#[test]
fn a_fault_mid_tb_restores_the_state_before_the_faulting_instruction() {
    let program = [
        li(3, 0x1000), // 0
        li(4, 0x9000), // 4: outside memory
        addi(1, 0, 7), // 8
        st(1, 3, 0),   // 12: mem[0x1000] = 7
        ld(2, 4, 8),   // 16: faults at 0x9008
        addi(5, 0, 9), // 20: never runs
        hlt(),         // 24
    ];
    let (mut cpu, mut mem) = setup(&program);
    mem.load_program(0x200, &[addi(6, 6, 1), hlt()]);
    cpu.state.evec = 0x200;
    let mut ex = exec();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    let s = &cpu.state;
    assert_eq!(
        (s.regs[1], mem.read64(0x1000)),
        (7, 7),
        "earlier instructions' effects are kept"
    );
    assert_eq!((s.regs[2], s.regs[5]), (0, 0));
    assert_eq!((s.last_exc, s.last_exc_pc, s.exc_addr), (EXC_PAGE_FAULT, 16, 0x9008));
    assert_eq!((s.exc_count, s.regs[6], s.fault), (1, 1, 0));
    assert_eq!(ex.stats().translations, 2, "one TB with the fault, one handler");
    assert_eq!(ex.stats().faults, 1);
}

#[test]
fn a_faulting_helper_is_restored_the_same_way_on_both_tiers() {
    // The loop counts r1 down; on each pass r2 += 1, then `raise 33` faults; the handler counts and
    // returns (pc = r7 + 4 would need more ISA: it jumps back to the loop head via r6).
    let program = [
        li(1, 300),     // 0
        li(6, 12),      // 4
        brk(),          // 8
        addi(1, 1, -1), // 12: head
        bnz(1, 1),      // 16: -> 24
        hlt(),          // 20
        addi(2, 2, 1),  // 24
        raise(33),      // 28
        addi(3, 3, 1),  // 32: never runs
    ];
    let handler = [addi(4, 4, 1), jr(6)];
    let mut results = Vec::new();
    for hot in [None, Some(true), Some(false)] {
        let (mut cpu, mut mem) = setup(&program);
        mem.load_program(0x300, &handler);
        cpu.state.evec = 0x300;
        let mut ex = match hot {
            None => exec(),
            Some(tail_calls) => hot_exec(5, tail_calls),
        };
        assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
        let s = &cpu.state;
        assert_eq!((s.regs[2], s.regs[3], s.regs[4]), (299, 0, 299), "{hot:?}");
        assert_eq!((s.last_exc, s.last_exc_pc, s.exc_count), (33, 28, 299), "{hot:?}");
        if hot.is_some() {
            assert!(ex.tier_stats().hot_runs > 100, "{}", ex.tier_stats());
        }
        // The exit word's countdown depends on how much ran chained.
        results.push(ToyState {
            exit_word: 0,
            ..*cpu.state
        });
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn fetch_faults_are_delivered_before_translation() {
    let (mut cpu, mut mem) = setup(&[li(1, 0x5000), jr(1)]);
    let mut ex = exec();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Cpu(STOP_NO_HANDLER));
    assert_eq!((cpu.state.last_exc, cpu.state.last_exc_pc), (EXC_PAGE_FAULT, 0x5000));
    assert_eq!(ex.stats().fetch_faults, 1);

    // An undefined opcode (zeroed memory) raises #UD at its own pc.
    let (mut cpu, mut mem) = setup(&[addi(1, 1, 1)]);
    let mut ex = exec();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Cpu(STOP_NO_HANDLER));
    assert_eq!(
        (cpu.state.regs[1], cpu.state.last_exc, cpu.state.last_exc_pc),
        (1, EXC_UD, 4)
    );
}

#[test]
fn an_instruction_fetch_that_faults_after_the_first_ends_the_tb_before_it() {
    // Straight-line code up to the last word of memory: the TB stops there and the next one faults.
    let (mut cpu, mut mem) = setup(&[]);
    let end = MEM_SIZE as u64;
    mem.load_program(end - 8, &[addi(1, 1, 1), addi(1, 1, 1)]);
    cpu.state.pc = end - 8;
    let mut ex = exec();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Cpu(STOP_NO_HANDLER));
    assert_eq!(cpu.state.regs[1], 2);
    assert_eq!((cpu.state.last_exc_pc, cpu.state.exc_count), (end, 1));
}

#[test]
fn an_exit_request_is_honoured_at_the_next_tb_boundary() {
    let program = [
        addi(1, 1, 1), // 0
        li(3, 0xf000), // 4
        st(1, 3, 0),   // 8: MMIO: requests an exit
        addi(1, 1, 1), // 12: same TB: still runs
        brk(),         // 16
        addi(2, 2, 1), // 20: the next TB: not before the main loop ran
        hlt(),         // 24
    ];
    let (mut cpu, mut mem) = setup(&program);
    let mut ex = exec();
    mem.exit = Some(ex.exit_request());
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::ExitRequested);
    assert_eq!((cpu.state.regs[1], cpu.state.regs[2], cpu.state.pc), (2, 0, 20));
    assert!(!ex.exit_request().is_set(), "honouring a request clears it");
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], 1);

    // A request made before the run stops it before any TB.
    let (mut cpu, mut mem) = setup(&program);
    let mut ex = exec();
    ex.exit_request().set();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::ExitRequested);
    assert_eq!((ex.stats().tbs_run, cpu.state.pc), (0, 0));
}

/// `kick` requests an exit through the exit word inside a loop of TBs that chain: on tci the loop sees it
/// at the boundary, hot (one module, tail calls) the next TB start leaves the module.
#[test]
fn an_exit_word_request_stops_chained_hot_code() {
    let program = [
        li(1, 2000),    // 0
        addi(2, 2, 1),  // 4: A
        bnz(2, 0),      // 8: -> 12, a separate TB (B)
        addi(1, 1, -1), // 12: B
        bnz(1, -4),     // 16: -> A
        kick(),         // 20
        addi(3, 3, 1),  // 24
        bnz(3, -7),     // 28: -> 4 (A)
    ];
    for hot in [None, Some(true), Some(false)] {
        let (mut cpu, mut mem) = setup(&program);
        let mut ex = match hot {
            None => exec(),
            Some(tail_calls) => hot_exec(10, tail_calls),
        };
        assert_eq!(
            ex.run(&mut cpu, &mut mem, u64::MAX),
            StopReason::ExitRequested,
            "{hot:?}"
        );
        let s = &cpu.state;
        assert_eq!((s.regs[1], s.regs[2], s.regs[3], s.pc), (0, 2000, 1, 4), "{hot:?}");
        assert_eq!(s.exit_word >> 16, 0, "the request half is cleared");
    }
}

#[test]
fn hot_code_that_chains_comes_back_to_the_loop_every_chain_limit_tb_starts() {
    let program = [
        li(1, 20000),   // 0
        addi(2, 2, 1),  // 4: A
        bnz(2, 0),      // 8: -> B
        addi(1, 1, -1), // 12: B
        bnz(1, -4),     // 16: -> A
        hlt(),          // 20
    ];
    let (mut cpu, mut mem) = setup(&program);
    let mut ex = hot_exec(10, true);
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], 20000);
    let entries = ex.stats().tbs_run;
    // 40000 TB starts, 256 per entry once hot (`chain-limit`), plus the cold warm-up.
    assert!((150..300).contains(&entries), "{entries} entries: {}", ex.stats());
    // Enough to stop a spinning loop: with a budget the run returns even though the loop never ends.
    let (mut cpu, mut mem) = setup(&[li(1, 1), addi(2, 2, 1), bnz(1, -2)]);
    let mut ex = hot_exec(10, true);
    assert_eq!(ex.run(&mut cpu, &mut mem, 100), StopReason::Budget);
    assert!(cpu.state.regs[2] > 5_000, "{}", cpu.state.regs[2]);
}

#[test]
fn the_budget_stops_the_run_and_the_next_run_goes_on() {
    let (mut cpu, mut mem) = setup(&[li(1, 1), addi(2, 2, 1), bnz(1, -2)]);
    let mut ex = exec();
    assert_eq!(ex.run(&mut cpu, &mut mem, 10), StopReason::Budget);
    assert_eq!((ex.stats().tbs_run, cpu.state.regs[2]), (10, 10));
    assert_eq!(ex.run(&mut cpu, &mut mem, 5), StopReason::Budget);
    assert_eq!(cpu.state.regs[2], 15);
    assert_eq!(ex.run(&mut cpu, &mut mem, 0), StopReason::Budget);
    assert_eq!(cpu.state.regs[2], 15);
}

#[test]
fn halt_waits_for_an_interrupt_which_runs_its_handler() {
    let (mut cpu, mut mem) = setup(&[addi(1, 1, 1), hlt(), addi(1, 1, 1), hlt()]);
    mem.load_program(0x100, &[addi(3, 3, 1), jr(7)]);
    cpu.state.ivec = 0x100;
    let mut ex = exec();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!((cpu.state.regs[1], cpu.state.pc), (1, 8));
    assert_eq!(
        ex.run(&mut cpu, &mut mem, u64::MAX),
        StopReason::Halted,
        "still nothing to do"
    );
    cpu.state.irq_pending = 1;
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    let s = &cpu.state;
    assert_eq!((s.regs[1], s.regs[3], s.irq_count, s.pc), (2, 1, 1, 16));
    assert_eq!(ex.stats().interrupts, 1);
}

#[test]
fn tbs_stop_at_the_page_end_and_at_the_instruction_limit() {
    // 80 `addi` from 0x80: the first TB ends at the page boundary 0x100 (32 instructions).
    let mut program = vec![addi(1, 1, 1); 80];
    program.push(hlt());
    let (mut cpu, mut mem) = setup(&[]);
    mem.load_program(0x80, &program);
    cpu.state.pc = 0x80;
    let mut ex = exec();
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[1], 80);
    let first = rqemu_accel::TbId::from_index(0)
        .and_then(|id| ex.cache().get(id))
        .cloned();
    let first = first.expect("the first TB is cached");
    assert_eq!((first.key.pc, first.icount, first.size), (0x80, 32, 128));
    assert_eq!(first.pages, [Some(0), None]);
    assert_eq!(ex.stats().translations, 2);

    let (mut cpu, mut mem) = setup(&[]);
    mem.load_program(0x80, &program);
    cpu.state.pc = 0x80;
    let mut ex = exec_with(AccelOptions::parse("tcg,one-insn-per-tb=on").unwrap());
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[1], 80);
    assert_eq!(ex.stats().translations, 81);
}

#[test]
fn the_loop_runs_without_an_exit_word() {
    let (mut cpu, mut mem) = setup(&counting_loop(50, 2));
    cpu.use_exit_word = false;
    let mut ex = hot_exec(5, true);
    assert_eq!(ex.run(&mut cpu, &mut mem, u64::MAX), StopReason::Halted);
    assert_eq!(cpu.state.regs[2], 100);
}

#[test]
fn backends_are_selected_from_options() {
    let ex = CpuExec::new(AccelOptions::parse("tcg,hot-backend=none").unwrap());
    assert!(ex.is_ok());
    let err = CpuExec::new(AccelOptions::parse("tcg,hot-backend=native").unwrap()).err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("TCG backend `native` is not built into this binary")
    );
}
