//! Exports that exercise the wasm32 backend for real, under the engine running this module (Node's V8):
//! modules are compiled by `rqemu-tcg-wasm32`, instantiated by `tcg/wasm32/js/tb-host.mjs` against this
//! module's memory and table, and called through table slots.
//!
//! - `wasm32_smoke`: every TB of the tiering workload compiled alone, run to the end, checked against Rust;
//! - `conformance_wasm32`: the conformance suite on the backend;
//! - `tiering_wasm32`: tci to wasm32 tiering: promotion with identical results, a multi-TB module whose
//!   internal `goto_tb` stays inside it, eviction under a cap of one module, flush.

use rqemu_accel::tiering::workload::{self, ENV_WORDS};
use rqemu_accel::tiering::{TbId, Tier, TierConfig, Tiering};
use rqemu_tcg::conformance::FlatMemory;
use rqemu_tcg::{Backend, CompiledTb, ExecContext, TbExit};
use rqemu_tcg_tci::Tci;
use rqemu_tcg_wasm32::runtime::{StatsHandle, Wasm32};

use crate::host::{self, outln};

/// The workload's TBs on some backend, by pc.
type Tbs = Vec<(u64, Box<dyn CompiledTb>)>;

/// Runs the workload's TBs (compiled without tiering) from the entry until an exit that is not a `goto_tb`.
fn run_plain(tbs: &Tbs, env: &mut [u64; ENV_WORDS], mem: &mut FlatMemory) -> Option<TbExit> {
    let mut ctx = ExecContext {
        env: env.as_mut_ptr().cast(),
        mem,
    };
    let mut pc = workload::ENTRY_PC;
    loop {
        let tb = &tbs.iter().find(|(p, _)| *p == pc)?.1;
        // SAFETY: the workload's TBs use only the words of `env`.
        let exit = unsafe { tb.run(&mut ctx) };
        if !matches!(exit, TbExit::GotoTb(_)) {
            return Some(exit);
        }
        // SAFETY: `ctx.env` is `env`, live.
        pc = unsafe { ctx.env.cast::<u64>().read() };
    }
}

/// Compares a run's CPU state and memory with the reference run from the same start.
fn check_against_reference(
    iterations: u64,
    mem: &mut FlatMemory,
    run: impl FnOnce(&mut [u64; ENV_WORDS], &mut FlatMemory) -> Option<TbExit>,
) -> Result<(), String> {
    let mut env = workload::initial_env(iterations);
    let mut want = env;
    let mut want_mem = mem.bytes().to_vec();
    workload::reference(&mut want, &mut want_mem);
    let exit = run(&mut env, mem);
    if exit != Some(workload::EXIT) {
        return Err(format!("exit {exit:?}, want {:?}", workload::EXIT));
    }
    if env != want {
        return Err(format!("CPU state {env:x?}, want {want:x?}"));
    }
    if mem.bytes() != &want_mem[..] {
        return Err("guest memory differs from the reference".into());
    }
    Ok(())
}

/// Compiles each workload TB alone with the wasm32 backend and runs the workload.
#[no_mangle]
pub extern "C" fn wasm32_smoke() -> u32 {
    host::install_panic_hook();
    let mut backend = Wasm32::new();
    let mut tbs = Tbs::new();
    for (pc, mut f) in workload::workload().tbs {
        if let Err(e) = rqemu_tcg::prepare::prepare(&mut f) {
            outln!("wasm32-smoke: FAILED: TB {pc:#x} does not prepare: {e}");
            return 1;
        }
        match backend.compile(&f) {
            Ok(tb) => tbs.push((pc, tb)),
            Err(e) => {
                outln!("wasm32-smoke: FAILED: TB {pc:#x} does not compile: {e}");
                return 1;
            }
        }
    }
    let mut mem = workload::memory();
    let result = check_against_reference(100, &mut mem, |env, mem| run_plain(&tbs, env, mem));
    outln!("wasm32-smoke: tail calls {}, {}", backend.tail_calls(), backend.stats());
    match result {
        Ok(()) => {
            outln!("wasm32-smoke: ok: 3 TBs compiled alone ran 100 iterations as the reference");
            0
        }
        Err(e) => {
            outln!("wasm32-smoke: FAILED: {e}");
            1
        }
    }
}

/// Runs the conformance suite on the wasm32 backend; returns the failure count.
#[no_mangle]
pub extern "C" fn conformance_wasm32() -> u32 {
    host::install_panic_hook();
    let mut backend = Wasm32::new();
    let summary = rqemu_tcg::conformance::run_suite(&mut backend, "wasm32-node");
    outln!("{summary}");
    for message in summary.failure_messages.iter().take(40) {
        outln!("  failure: {message}");
    }
    outln!("  {}", backend.stats());
    u32::try_from(summary.failures).unwrap_or(u32::MAX)
}

/// Tiering from tci to a real wasm32 backend, and a reader of that backend's counters.
pub fn tiered(config: TierConfig) -> (Tiering, StatsHandle) {
    let hot = Wasm32::new();
    let stats = hot.stats_handle();
    (Tiering::new(Box::new(Tci::new()), Some(Box::new(hot)), config), stats)
}

/// Adds the TBs of [`workload::workload_with`]`(guest_memory)` to `t`.
pub fn add_workload(t: &mut Tiering, guest_memory: bool) -> Result<Vec<(u64, TbId)>, String> {
    workload::workload_with(guest_memory)
        .tbs
        .into_iter()
        .map(|(pc, f)| t.add(f).map(|id| (pc, id)).map_err(|e| format!("TB {pc:#x}: {e}")))
        .collect()
}

/// Runs the workload through `t`'s minimal loop: the exit and the TB runs the loop saw.
pub fn run_tiered(
    t: &mut Tiering,
    ids: &[(u64, TbId)],
    env: &mut [u64; ENV_WORDS],
    mem: &mut FlatMemory,
) -> (Option<TbExit>, u64) {
    let mut lookup = |env: *mut u8| {
        // SAFETY: `env` is the live CPU state passed below.
        let pc = unsafe { env.cast::<u64>().read() };
        ids.iter().find(|(p, _)| *p == pc).map(|(_, id)| *id)
    };
    let mut ctx = ExecContext {
        env: env.as_mut_ptr().cast(),
        mem,
    };
    // SAFETY: the workload's TBs use only the words of `env`.
    unsafe { t.run_until_exit(ids[0].1, &mut ctx, &mut lookup, u64::MAX) }
}

/// One tiering scenario; returns what went wrong.
type Scenario = fn() -> Result<String, String>;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn promotion_and_chaining() -> Result<String, String> {
    let (mut t, wasm) = tiered(TierConfig {
        threshold: 10,
        ..TierConfig::default()
    });
    let ids = add_workload(&mut t, true)?;
    let mut mem = workload::memory();
    check_against_reference(3, &mut mem, |env, mem| run_tiered(&mut t, &ids, env, mem).0)?;
    ensure(t.tier(ids[0].1) == Some(Tier::Cold) && wasm.get().modules == 0, || {
        format!("compiled too early: {}", t.stats())
    })?;
    check_against_reference(50, &mut mem, |env, mem| run_tiered(&mut t, &ids, env, mem).0)?;
    let s = wasm.get();
    ensure(
        t.tier(ids[0].1) == Some(Tier::Hot) && t.tier(ids[1].1) == Some(Tier::Hot),
        || format!("A and B not hot: {}", t.stats()),
    )?;
    ensure(s.modules == 1 && s.tbs_compiled == 2 && s.instances_live == 1, || {
        format!("A and B should share one module: {s}")
    })?;
    // Hot now: a long run enters the module once and loops inside it (A -> B -> A through goto_tb).
    let mut runs = 0;
    check_against_reference(1000, &mut mem, |env, mem| {
        let (exit, n) = run_tiered(&mut t, &ids, env, mem);
        runs = n;
        exit
    })?;
    ensure(runs <= 4, || {
        format!("1000 iterations took {runs} TB runs from the loop: goto_tb inside the module left it")
    })?;
    Ok(format!(
        "A+B in one module, 1000 iterations in {runs} entries; {}",
        t.stats()
    ))
}

fn eviction() -> Result<String, String> {
    let (mut t, wasm) = tiered(TierConfig {
        threshold: 5,
        max_modules: 1,
        max_group: 1,
    });
    let ids = add_workload(&mut t, true)?;
    let mut mem = workload::memory();
    for iterations in [30, 200, 7, 500] {
        check_against_reference(iterations, &mut mem, |env, mem| run_tiered(&mut t, &ids, env, mem).0)?;
        let s = wasm.get();
        ensure(s.instances_live <= 1, || format!("cap of one module exceeded: {s}"))?;
    }
    let (s, ts) = (wasm.get(), t.stats());
    ensure(ts.evictions >= 1 && s.instances_released >= 1, || {
        format!("nothing was evicted: {ts}; {s}")
    })?;
    ensure(s.instances_live == ts.modules_live, || {
        format!("live modules disagree: {ts}; {s}")
    })?;
    Ok(format!(
        "{} evictions, {} modules compiled, {} live",
        ts.evictions, s.modules, s.instances_live
    ))
}

fn flush() -> Result<String, String> {
    let (mut t, wasm) = tiered(TierConfig {
        threshold: 5,
        ..TierConfig::default()
    });
    let ids = add_workload(&mut t, true)?;
    let mut mem = workload::memory();
    check_against_reference(40, &mut mem, |env, mem| run_tiered(&mut t, &ids, env, mem).0)?;
    ensure(wasm.get().instances_live >= 1, || {
        "nothing compiled before the flush".to_string()
    })?;
    t.flush();
    let s = wasm.get();
    ensure(s.instances_live == 0 && t.stats().modules_live == 0, || {
        format!("instances survived the flush: {s}")
    })?;
    ensure(t.tier(ids[0].1).is_none(), || "a TB survived the flush".to_string())?;
    let ids = add_workload(&mut t, true)?;
    check_against_reference(40, &mut mem, |env, mem| run_tiered(&mut t, &ids, env, mem).0)?;
    ensure(t.tier(ids[0].1) == Some(Tier::Hot), || {
        "no tier-up after the flush".to_string()
    })?;
    Ok(format!("flush released every instance; {}", wasm.get()))
}

fn invalidation() -> Result<String, String> {
    let (mut t, wasm) = tiered(TierConfig {
        threshold: 5,
        ..TierConfig::default()
    });
    let ids = add_workload(&mut t, true)?;
    let mut mem = workload::memory();
    check_against_reference(40, &mut mem, |env, mem| run_tiered(&mut t, &ids, env, mem).0)?;
    t.invalidate(ids[1].1);
    let s = wasm.get();
    ensure(s.instances_live == 0 && t.tier(ids[0].1) == Some(Tier::Cold), || {
        format!("invalidating B must drop A+B's module: {s}")
    })?;
    // B is gone: the loop translates it again, and the workload still gives the reference results.
    let mut workload_tbs = workload::workload().tbs;
    let b = t.add(workload_tbs.remove(1).1).map_err(|e| e.to_string())?;
    let ids = vec![ids[0], (0x200, b), ids[2]];
    check_against_reference(300, &mut mem, |env, mem| run_tiered(&mut t, &ids, env, mem).0)?;
    Ok(format!("{}", wasm.get()))
}

/// Runs the tiering scenarios on tci + wasm32; returns how many failed.
#[no_mangle]
pub extern "C" fn tiering_wasm32() -> u32 {
    host::install_panic_hook();
    let scenarios: [(&str, Scenario); 4] = [
        ("promotion-and-chaining", promotion_and_chaining),
        ("eviction", eviction),
        ("flush", flush),
        ("invalidation", invalidation),
    ];
    let mut failures = 0;
    for (name, scenario) in scenarios {
        match scenario() {
            Ok(note) => outln!("tiering-wasm32: {name} ok: {note}"),
            Err(e) => {
                failures += 1;
                outln!("tiering-wasm32: {name} FAILED: {e}");
            }
        }
    }
    outln!("tiering-wasm32: {} scenarios, failures={failures}", scenarios.len());
    failures
}
