//! Tiering on the host: tci as the first tier and, as the hot tier, a fake backend (tci underneath) that
//! records the groups it was given and counts its live code, so promotion, grouping, eviction,
//! invalidation and flush are observable without a Wasm engine; and the real wasm32 code generator in the
//! embedded engine as the hot tier, where `goto_tb` between members of a module chains inside it, so exits
//! come from other members than the one entered.

use std::cell::RefCell;
use std::rc::Rc;

use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::{Backend, CompileError, CompiledTb, ExecContext, Func, Opcode, TbExit, Type};
use rqemu_tcg_tci::Tci;
use rqemu_tcg_wasm32::engine::EmbeddedWasm32;

use super::workload::{self, ENV_WORDS};
use super::*;

#[derive(Default)]
struct Log {
    /// Per compile_group call: the jump targets of each member.
    groups: Vec<Vec<[Option<usize>; 2]>>,
    live: usize,
    /// Refuse groups larger than this.
    max_group: Option<usize>,
}

struct FakeHot {
    tci: Tci,
    log: Rc<RefCell<Log>>,
}

struct FakeTb {
    inner: Box<dyn CompiledTb>,
    log: Rc<RefCell<Log>>,
}

impl CompiledTb for FakeTb {
    unsafe fn run(&self, ctx: &mut ExecContext<'_>) -> TbExit {
        // SAFETY: forwarded contract.
        unsafe { self.inner.run(ctx) }
    }
    fn code_size(&self) -> usize {
        10
    }
}

impl Drop for FakeTb {
    fn drop(&mut self) {
        self.log.borrow_mut().live -= 1;
    }
}

impl Backend for FakeHot {
    fn name(&self) -> &'static str {
        "fake-hot"
    }
    fn supports(&self, opc: Opcode, ty: Type) -> bool {
        self.tci.supports(opc, ty)
    }
    fn compile(&mut self, func: &Func) -> Result<Box<dyn CompiledTb>, CompileError> {
        let inner = self.tci.compile(func)?;
        self.log.borrow_mut().live += 1;
        Ok(Box::new(FakeTb {
            inner,
            log: self.log.clone(),
        }))
    }
    fn compile_group(&mut self, members: &[GroupMember<'_>]) -> Result<Vec<Box<dyn CompiledTb>>, CompileError> {
        if self.log.borrow().max_group.is_some_and(|m| members.len() > m) {
            return Err(CompileError::TooLarge("group".into()));
        }
        self.log
            .borrow_mut()
            .groups
            .push(members.iter().map(|m| m.jump_targets).collect());
        members.iter().map(|m| self.compile(m.func)).collect()
    }
}

/// Tiering over the workload, with the ids of A, B and C.
fn setup(config: TierConfig) -> (Tiering, Vec<(u64, TbId)>, Rc<RefCell<Log>>) {
    let log = Rc::new(RefCell::new(Log::default()));
    let hot = FakeHot {
        tci: Tci::new(),
        log: log.clone(),
    };
    let mut t = Tiering::new(Box::new(Tci::new()), Some(Box::new(hot)), config);
    let ids = workload::workload()
        .tbs
        .into_iter()
        .map(|(pc, f)| (pc, t.add(f).expect("the workload compiles on tci")))
        .collect();
    (t, ids, log)
}

/// Runs the workload for `iterations` and checks the CPU state and memory against the reference.
fn run_and_check(t: &mut Tiering, ids: &[(u64, TbId)], iterations: u64, mem: &mut rqemu_tcg::conformance::FlatMemory) {
    let mut env = workload::initial_env(iterations);
    let mut want = env;
    let mut want_mem = mem.bytes().to_vec();
    workload::reference(&mut want, &mut want_mem);
    let mut lookup = |env: *mut u8| {
        // SAFETY: `env` is the live CPU state below.
        let pc = unsafe { env.cast::<u64>().read() };
        ids.iter().find(|(p, _)| *p == pc).map(|(_, id)| *id)
    };
    let mut ctx = ExecContext {
        env: env.as_mut_ptr().cast(),
        mem,
    };
    // SAFETY: the workload's TBs use only the words of `env`.
    let (exit, _) = unsafe { t.run_until_exit(ids[0].1, &mut ctx, &mut lookup, u64::MAX) };
    assert_eq!(exit.map(|e| e.exit), Some(workload::EXIT));
    assert_eq!(env, want);
    assert_eq!(mem.bytes(), &want_mem[..]);
}

fn config(threshold: u32) -> TierConfig {
    TierConfig {
        threshold,
        ..TierConfig::default()
    }
}

#[test]
fn hot_tbs_are_compiled_as_one_group_and_give_identical_results() {
    let (mut t, ids, log) = setup(config(10));
    let mut mem = workload::memory();
    run_and_check(&mut t, &ids, 3, &mut mem);
    assert_eq!(t.tier(ids[0].1), Some(Tier::Cold));
    assert_eq!(t.stats().hot_runs, 0);
    run_and_check(&mut t, &ids, 50, &mut mem);
    // A crossed the threshold first and took B (one run behind) into its module; C ran once.
    assert_eq!(t.tier(ids[0].1), Some(Tier::Hot));
    assert_eq!(t.tier(ids[1].1), Some(Tier::Hot));
    assert_eq!(t.tier(ids[2].1), Some(Tier::Cold));
    assert_eq!(log.borrow().groups, vec![vec![[Some(1), None], [Some(0), None]]]);
    let s = t.stats();
    assert_eq!((s.modules, s.modules_live, s.hot_tbs, s.hot_bytes), (1, 1, 2, 20));
    assert!(s.hot_runs > 60, "{s}");
    run_and_check(&mut t, &ids, 1000, &mut mem);
    assert_eq!(log.borrow().live, 2);
}

#[test]
fn the_group_size_is_bounded_and_a_refused_group_falls_back_to_the_root() {
    let (mut t, ids, log) = setup(TierConfig {
        max_group: 1,
        ..config(5)
    });
    let mut mem = workload::memory();
    run_and_check(&mut t, &ids, 40, &mut mem);
    assert_eq!(log.borrow().groups.len(), 2, "A and B each in their own module");
    assert_eq!(t.stats().modules_live, 2);

    let (mut t, ids, log) = setup(config(5));
    log.borrow_mut().max_group = Some(1);
    run_and_check(&mut t, &ids, 40, &mut mem);
    assert_eq!(
        t.stats().failures,
        1,
        "A+B refused, then A alone; B, whose successor is hot, alone"
    );
    assert_eq!(t.tier(ids[0].1), Some(Tier::Hot));
    assert_eq!(t.tier(ids[1].1), Some(Tier::Hot));
}

#[test]
fn a_tb_the_hot_backend_refuses_stays_cold_and_correct() {
    let (mut t, ids, log) = setup(config(5));
    log.borrow_mut().max_group = Some(0);
    let mut mem = workload::memory();
    run_and_check(&mut t, &ids, 100, &mut mem);
    assert_eq!(t.tier(ids[0].1), Some(Tier::ColdForever));
    assert_eq!(t.stats().modules, 0);
    assert_eq!(t.stats().hot_runs, 0);
}

#[test]
fn eviction_drops_the_least_recently_used_module_and_tbs_come_back() {
    let (mut t, ids, log) = setup(TierConfig {
        max_modules: 1,
        max_group: 1,
        ..config(5)
    });
    let mut mem = workload::memory();
    // A is compiled, then B's module evicts A's; the results never change.
    run_and_check(&mut t, &ids, 30, &mut mem);
    let s = t.stats();
    assert!(s.evictions >= 1, "{s}");
    assert_eq!(s.modules_live, 1);
    assert_eq!(log.borrow().live, 1, "evicted code was dropped");
    run_and_check(&mut t, &ids, 500, &mut mem);
    assert_eq!(t.stats().modules_live, 1);
    assert_eq!(log.borrow().live, 1);
    assert!(t.stats().modules > 2, "evicted TBs were compiled again: {}", t.stats());
}

#[test]
fn invalidate_drops_the_whole_module_and_flush_drops_everything() {
    let (mut t, ids, log) = setup(config(5));
    let mut mem = workload::memory();
    run_and_check(&mut t, &ids, 30, &mut mem);
    assert_eq!(log.borrow().live, 2);
    t.invalidate(ids[1].1);
    assert_eq!(log.borrow().live, 0);
    assert_eq!(t.tier(ids[0].1), Some(Tier::Cold), "A lost its code with B");
    assert_eq!(t.tier(ids[1].1), None);
    let mut env = workload::initial_env(1);
    let mut ctx = ExecContext {
        env: env.as_mut_ptr().cast(),
        mem: &mut mem,
    };
    // SAFETY: B would only use the words of `env`.
    assert_eq!(unsafe { t.run(ids[1].1, &mut ctx) }, None);
    assert_eq!(t.stats().invalidations, 1);

    let (mut t, ids, log) = setup(config(5));
    run_and_check(&mut t, &ids, 30, &mut mem);
    t.flush();
    assert_eq!(log.borrow().live, 0);
    assert_eq!(t.tier(ids[0].1), None);
    let s = t.stats();
    assert_eq!((s.modules_live, s.hot_bytes, s.flushes), (0, 0, 1));
    // After a flush the loop translates again; the new TBs tier up as before.
    let ids: Vec<(u64, TbId)> = workload::workload()
        .tbs
        .into_iter()
        .map(|(pc, f)| (pc, t.add(f).expect("compiles")))
        .collect();
    let mut mem = workload::memory();
    run_and_check(&mut t, &ids, 30, &mut mem);
    assert_eq!(t.tier(ids[0].1), Some(Tier::Hot));
}

#[test]
fn without_a_hot_backend_everything_runs_cold() {
    let mut t = Tiering::new(Box::new(Tci::new()), None, config(1));
    let ids: Vec<(u64, TbId)> = workload::workload()
        .tbs
        .into_iter()
        .map(|(pc, f)| (pc, t.add(f).expect("compiles")))
        .collect();
    let mut mem = workload::memory();
    run_and_check(&mut t, &ids, 20, &mut mem);
    assert_eq!(t.tier(ids[0].1), Some(Tier::Cold));
    assert_eq!(t.pending(), 0);
    assert_eq!(workload::initial_env(0)[workload::I], 1);
    assert_eq!(ENV_WORDS, 8);
}

#[test]
fn the_register_only_workload_matches_its_reference() {
    let mut t = Tiering::new(Box::new(Tci::new()), None, config(1));
    let ids: Vec<(u64, TbId)> = workload::workload_with(false)
        .tbs
        .into_iter()
        .map(|(pc, f)| (pc, t.add(f).expect("compiles")))
        .collect();
    let mut env = workload::initial_env(77);
    let mut want = env;
    let mut mem = workload::memory();
    workload::reference_with(false, &mut want, &mut [0u8; 0]);
    let mut lookup = |env: *mut u8| {
        // SAFETY: `env` is the live CPU state below.
        let pc = unsafe { env.cast::<u64>().read() };
        ids.iter().find(|(p, _)| *p == pc).map(|(_, id)| *id)
    };
    let mut ctx = ExecContext {
        env: env.as_mut_ptr().cast(),
        mem: &mut mem,
    };
    // SAFETY: the workload's TBs use only the words of `env`.
    let (exit, runs) = unsafe { t.run_until_exit(ids[0].1, &mut ctx, &mut lookup, u64::MAX) };
    assert_eq!((exit.map(|e| e.exit), runs), (Some(workload::EXIT), 155));
    assert_eq!(env, want);
}

/// The chain workload through `t`: what the loop saw, the final CPU state and memory.
fn run_chain_on(t: &mut Tiering, iterations: u64) -> (workload::ChainRun, [u64; ENV_WORDS], Vec<u8>, Vec<TbId>) {
    let ids: Vec<(u64, TbId)> = workload::chain()
        .into_iter()
        .map(|(pc, f)| (pc, t.add(f).expect("the chain compiles on tci")))
        .collect();
    let mut env = workload::initial_env(iterations);
    let mut mem = workload::memory();
    for (i, b) in mem.bytes_mut().iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    let mut ctx = ExecContext {
        env: env.as_mut_ptr().cast(),
        mem: &mut mem,
    };
    // SAFETY: the chain's TBs use only the words of `env`.
    let run = unsafe { workload::run_chain(t, &ids, &mut ctx) };
    let ids = ids.into_iter().map(|(_, id)| id).collect();
    (run, env, mem.bytes().to_vec(), ids)
}

#[test]
fn exits_chained_inside_a_module_are_attributed_to_the_member_that_left() {
    const ITERATIONS: u64 = 300;
    let mut cold = Tiering::new(Box::new(Tci::new()), None, config(1));
    let (want, want_env, want_mem, ids) = run_chain_on(&mut cold, ITERATIONS);
    let c = ids[2];
    assert_eq!(want.exit, Some(workload::EXIT));
    assert_eq!(
        want.faults,
        vec![(c, workload::CHAIN_LOAD_PC); 4],
        "i = 256, 192, 128, 64"
    );

    for tail_calls in [true, false] {
        let mut hot = EmbeddedWasm32::new();
        hot.set_tail_calls(tail_calls);
        let mut t = Tiering::new(Box::new(Tci::new()), Some(Box::new(hot)), config(10));
        let (got, env, mem, ids) = run_chain_on(&mut t, ITERATIONS);
        let [a, b, c, _c2, d] = ids[..] else { unreachable!() };
        assert_eq!(
            (got.exit, &got.faults),
            (want.exit, &want.faults),
            "tail calls {tail_calls}"
        );
        assert_eq!(env, want_env, "tail calls {tail_calls}");
        assert_eq!(mem, want_mem, "tail calls {tail_calls}");
        // A took B and C into its module; C2 (4 runs) and D (1) stayed cold.
        let s = t.stats();
        assert_eq!((s.modules, s.hot_tbs), (1, 3), "{s}");
        for tb in [a, b, c] {
            assert_eq!(t.tier(tb), Some(Tier::Hot));
        }
        // The module's last exit is C's goto_tb 1: linked on C, never on A, the member entered.
        assert_eq!(t.links(c), Some([Some(a), Some(d)]));
        assert_eq!(t.links(a), Some([Some(b), None]));
        if tail_calls {
            // Hot, each entry at A runs up to 64 iterations inside the module.
            assert!(got.runs < 60, "{} entries: {s}", got.runs);
        } else {
            assert!(
                got.runs > 3 * (ITERATIONS - 10),
                "{} entries without chaining",
                got.runs
            );
        }
    }
}

#[test]
fn insn_start_words_are_found_by_instruction_index() {
    let mut t = Tiering::new(Box::new(Tci::new()), None, config(1));
    let ids: Vec<TbId> = workload::chain()
        .into_iter()
        .map(|(_, f)| t.add(f).expect("compiles"))
        .collect();
    assert_eq!(t.insn_start(ids[2], 0), Some([0x300, 0, 0]));
    assert_eq!(t.insn_start(ids[2], 1), Some([0x304, 0, 0]));
    assert_eq!(t.insn_start(ids[2], 2), None);
    assert_eq!(t.links(ids[0]), Some([None, None]));
    t.invalidate(ids[2]);
    assert_eq!(t.insn_start(ids[2], 0), None);
}
