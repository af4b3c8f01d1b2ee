//! Exports that exercise the wasm32 backend for real, under the engine running this module (Node's V8):
//! modules are compiled by `rqemu-tcg-wasm32`, instantiated by `tcg/wasm32/js/tb-host.mjs` against this
//! module's memory and table, and called through table slots.
//!
//! - `wasm32_smoke`: every TB of the tiering workload compiled alone, run to the end, checked against Rust;
//! - `conformance_wasm32`: the conformance suite on the backend;
//! - `tiering_wasm32`: tci to wasm32 tiering: promotion with identical results, a multi-TB module whose
//!   internal `goto_tb` stays inside it, eviction under a cap of one module, flush, the inlined TLB fast path
//!   on the workload's guest memory, and a three-TB module whose faults and last `goto_tb` come from its
//!   third member.
//!
//! The CPU state is a [`Cpu`]: the workload's registers followed by a software TLB ([`Cpu::fill_tlb`] maps
//! the workload's guest page onto the bytes of its [`FlatMemory`]), so a backend built by [`tiered_with`]
//! with `tlb: true` reaches guest memory without the slow path.

use core::mem::offset_of;

use rqemu_accel::tiering::workload::{self, ENV_WORDS};
use rqemu_accel::tiering::{TbId, Tier, TierConfig, Tiering};
use rqemu_include::tlb::{tlb_index, TlbEntry, TLB_ENTRIES};
use rqemu_include::{MmuIdx, NB_MMU_MODES, TARGET_PAGE_MASK};
use rqemu_tcg::conformance::FlatMemory;
use rqemu_tcg::{Backend, CompiledTb, ExecContext, TbExit};
use rqemu_tcg_tci::Tci;
use rqemu_tcg_wasm32::runtime::{StatsHandle, Wasm32};
use rqemu_tcg_wasm32::TlbAbi;

use crate::host::{self, outln};

/// A CPU state: `WORDS` registers, then one software-TLB table per MMU index, as the wasm32 code generator
/// reads it ([`CpuState::TLB_ABI`]).
#[repr(C)]
pub struct CpuState<const WORDS: usize> {
    /// The registers (and whatever else the TBs keep in the CPU state, the fault word among them).
    pub regs: [u64; WORDS],
    /// The TLB.
    pub tlb: [TlbEntry; TLB_ENTRIES * NB_MMU_MODES],
}

/// The workloads' CPU state.
pub type Cpu = CpuState<ENV_WORDS>;

const _: () = assert!(size_of::<[TlbEntry; TLB_ENTRIES * NB_MMU_MODES]>() == TlbAbi::TOTAL_BYTES);
const _: () = assert!(align_of::<TlbEntry>() <= 8 && offset_of!(Cpu, tlb) == 8 * ENV_WORDS);

impl<const WORDS: usize> CpuState<WORDS> {
    /// Where [`CpuState::tlb`] lies for the code generator (`repr(C)`: right after the u64 registers).
    pub const TLB_ABI: TlbAbi = TlbAbi {
        offset_from_env: (8 * WORDS) as i32,
    };

    /// A state with these registers and every TLB entry empty.
    pub fn new(regs: [u64; WORDS]) -> Box<Self> {
        Box::new(CpuState {
            regs,
            tlb: [TlbEntry::EMPTY; TLB_ENTRIES * NB_MMU_MODES],
        })
    }

    /// Maps `mem`'s guest page in the TLB (MMU index 0 as the workloads use, reads and writes) onto `mem`'s
    /// bytes: tag = the page address, addend = host address of the bytes minus the guest address of the
    /// first byte (on wasm32 a host address is a linear-memory address). Only accesses inside `mem` may
    /// follow: the rest of the page is not backed (the workloads stay inside).
    pub fn fill_tlb(&mut self, mem: &mut FlatMemory) {
        let base = mem.base();
        let mmu = MmuIdx::default().index();
        let entry = &mut self.tlb[mmu * TLB_ENTRIES + tlb_index(base)];
        entry.addr_read = base & TARGET_PAGE_MASK;
        entry.addr_write = base & TARGET_PAGE_MASK;
        entry.addend = (mem.bytes_mut().as_mut_ptr() as usize).wrapping_sub(base as usize);
    }

    /// The state as the `env` of an [`ExecContext`].
    pub fn env(&mut self) -> *mut u8 {
        (self as *mut Self).cast()
    }
}

impl Cpu {
    /// The workloads' state for a run of `iterations`, its TLB mapping `mem` ([`CpuState::fill_tlb`]).
    pub fn with_tlb(iterations: u64, mem: &mut FlatMemory) -> Box<Cpu> {
        let mut cpu = Cpu::new(workload::initial_env(iterations));
        cpu.fill_tlb(mem);
        cpu
    }
}

/// The workload's TBs on some backend, by pc.
type Tbs = Vec<(u64, Box<dyn CompiledTb>)>;

/// Runs the workload's TBs (compiled without tiering) from the entry until an exit that is not a `goto_tb`.
fn run_plain(tbs: &Tbs, cpu: &mut Cpu, mem: &mut FlatMemory) -> Option<TbExit> {
    let mut ctx = ExecContext { env: cpu.env(), mem };
    let mut pc = workload::ENTRY_PC;
    loop {
        let tb = &tbs.iter().find(|(p, _)| *p == pc)?.1;
        // SAFETY: the workload's TBs use only the words of `cpu`.
        let exit = unsafe { tb.run(&mut ctx) };
        if !matches!(exit, TbExit::GotoTb(_)) {
            return Some(exit);
        }
        // SAFETY: `ctx.env` is `env`, live.
        pc = unsafe { ctx.env.cast::<u64>().read() };
    }
}

/// Compares a run's CPU state and memory with the reference run from the same start (a state whose TLB maps
/// `mem`).
fn check_against_reference(
    iterations: u64,
    mem: &mut FlatMemory,
    run: impl FnOnce(&mut Cpu, &mut FlatMemory) -> Option<TbExit>,
) -> Result<(), String> {
    let mut cpu = Cpu::with_tlb(iterations, mem);
    let mut want = cpu.regs;
    let mut want_mem = mem.bytes().to_vec();
    workload::reference(&mut want, &mut want_mem);
    let exit = run(&mut cpu, mem);
    if exit != Some(workload::EXIT) {
        return Err(format!("exit {exit:?}, want {:?}", workload::EXIT));
    }
    if cpu.regs != want {
        return Err(format!("CPU state {:x?}, want {want:x?}", cpu.regs));
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
    let result = check_against_reference(100, &mut mem, |cpu, mem| run_plain(&tbs, cpu, mem));
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

/// Tiering from tci to a real wasm32 backend (guest accesses through the slow path), and a reader of that
/// backend's counters.
pub fn tiered(config: TierConfig) -> (Tiering, StatsHandle) {
    tiered_with(config, false)
}

/// Like [`tiered`]; with `tlb`, the backend inlines the TLB fast path for a TLB where [`Cpu::tlb`] is.
pub fn tiered_with(config: TierConfig, tlb: bool) -> (Tiering, StatsHandle) {
    let mut hot = Wasm32::new();
    hot.set_tlb(tlb.then_some(Cpu::TLB_ABI));
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
pub fn run_tiered(t: &mut Tiering, ids: &[(u64, TbId)], cpu: &mut Cpu, mem: &mut FlatMemory) -> (Option<TbExit>, u64) {
    let mut lookup = |env: *mut u8| {
        // SAFETY: `env` is the live CPU state passed below.
        let pc = unsafe { env.cast::<u64>().read() };
        ids.iter().find(|(p, _)| *p == pc).map(|(_, id)| *id)
    };
    let mut ctx = ExecContext { env: cpu.env(), mem };
    // SAFETY: the workload's TBs use only the words of `cpu` (and its TLB, which maps `mem`'s bytes).
    let (exit, runs) = unsafe { t.run_until_exit(ids[0].1, &mut ctx, &mut lookup, u64::MAX) };
    (exit.map(|e| e.exit), runs)
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
    check_against_reference(3, &mut mem, |cpu, mem| run_tiered(&mut t, &ids, cpu, mem).0)?;
    ensure(t.tier(ids[0].1) == Some(Tier::Cold) && wasm.get().modules == 0, || {
        format!("compiled too early: {}", t.stats())
    })?;
    check_against_reference(50, &mut mem, |cpu, mem| run_tiered(&mut t, &ids, cpu, mem).0)?;
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
    check_against_reference(1000, &mut mem, |cpu, mem| {
        let (exit, n) = run_tiered(&mut t, &ids, cpu, mem);
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
        check_against_reference(iterations, &mut mem, |cpu, mem| run_tiered(&mut t, &ids, cpu, mem).0)?;
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
    check_against_reference(40, &mut mem, |cpu, mem| run_tiered(&mut t, &ids, cpu, mem).0)?;
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
    check_against_reference(40, &mut mem, |cpu, mem| run_tiered(&mut t, &ids, cpu, mem).0)?;
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
    check_against_reference(40, &mut mem, |cpu, mem| run_tiered(&mut t, &ids, cpu, mem).0)?;
    t.invalidate(ids[1].1);
    let s = wasm.get();
    ensure(s.instances_live == 0 && t.tier(ids[0].1) == Some(Tier::Cold), || {
        format!("invalidating B must drop A+B's module: {s}")
    })?;
    // B is gone: the loop translates it again, and the workload still gives the reference results.
    let mut workload_tbs = workload::workload().tbs;
    let b = t.add(workload_tbs.remove(1).1).map_err(|e| e.to_string())?;
    let ids = vec![ids[0], (0x200, b), ids[2]];
    check_against_reference(300, &mut mem, |cpu, mem| run_tiered(&mut t, &ids, cpu, mem).0)?;
    Ok(format!("{}", wasm.get()))
}

fn tlb_fast_path() -> Result<String, String> {
    let (mut t, wasm) = tiered_with(
        TierConfig {
            threshold: 10,
            ..TierConfig::default()
        },
        true,
    );
    let ids = add_workload(&mut t, true)?;
    let mut mem = workload::memory();
    check_against_reference(50, &mut mem, |cpu, mem| run_tiered(&mut t, &ids, cpu, mem).0)?;
    ensure(t.tier(ids[0].1) == Some(Tier::Hot), || {
        format!("A not hot: {}", t.stats())
    })?;
    // Hot, A's load and store hit the TLB: the slow path (which records the MMU index) is never taken.
    mem.last_mmu = None;
    check_against_reference(1000, &mut mem, |cpu, mem| run_tiered(&mut t, &ids, cpu, mem).0)?;
    ensure(mem.last_mmu.is_none(), || {
        "a hot guest access took the slow path despite the TLB".to_string()
    })?;
    // An empty TLB sends the same code to the slow path, with the same results.
    check_against_reference(100, &mut mem, |cpu, mem| {
        cpu.tlb = [TlbEntry::EMPTY; TLB_ENTRIES * NB_MMU_MODES];
        run_tiered(&mut t, &ids, cpu, mem).0
    })?;
    ensure(mem.last_mmu.is_some(), || "an empty TLB still hit".to_string())?;
    Ok(format!("1000 hot iterations without the slow path; {}", wasm.get()))
}

/// What the loop saw, the final state and memory, and the TBs' ids.
type ChainResult = (workload::ChainRun, Box<Cpu>, Vec<u8>, Vec<TbId>);

/// Runs [`workload::chain`] for `iterations` through `t` on a state whose TLB maps the memory.
fn run_chain(t: &mut Tiering, iterations: u64) -> Result<ChainResult, String> {
    let ids: Vec<(u64, TbId)> = workload::chain()
        .into_iter()
        .map(|(pc, f)| t.add(f).map(|id| (pc, id)).map_err(|e| format!("TB {pc:#x}: {e}")))
        .collect::<Result<_, _>>()?;
    let mut mem = workload::memory();
    for (i, b) in mem.bytes_mut().iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    let mut cpu = Cpu::with_tlb(iterations, &mut mem);
    let mut ctx = ExecContext {
        env: cpu.env(),
        mem: &mut mem,
    };
    // SAFETY: the chain's TBs use the words of `cpu`, and its TLB maps `mem`'s bytes.
    let run = unsafe { workload::run_chain(t, &ids, &mut ctx) };
    Ok((
        run,
        cpu,
        mem.bytes().to_vec(),
        ids.into_iter().map(|(_, id)| id).collect(),
    ))
}

fn chained_exits() -> Result<String, String> {
    const ITERATIONS: u64 = 300;
    let mut cold = Tiering::new(Box::new(Tci::new()), None, TierConfig::default());
    let (want, want_cpu, want_mem, _) = run_chain(&mut cold, ITERATIONS)?;
    let tail_calls = Wasm32::new().tail_calls();
    let mut notes = Vec::new();
    for tlb in [false, true] {
        let (mut t, wasm) = tiered_with(
            TierConfig {
                threshold: 10,
                ..TierConfig::default()
            },
            tlb,
        );
        let (got, cpu, mem, ids) = run_chain(&mut t, ITERATIONS)?;
        ensure(got.faults == want.faults && got.exit == want.exit, || {
            format!(
                "tlb {tlb}: faults {:?} and exit {:?}, want {:?} and {:?}",
                got.faults, got.exit, want.faults, want.exit
            )
        })?;
        ensure(cpu.regs == want_cpu.regs && mem == want_mem, || {
            format!("tlb {tlb}: CPU state {:x?}, want {:x?}", cpu.regs, want_cpu.regs)
        })?;
        let s = wasm.get();
        ensure(s.modules == 1 && s.tbs_compiled == 3, || {
            format!("tlb {tlb}: A, B and C should share one module: {s}")
        })?;
        let (a, c, d) = (ids[0], ids[2], ids[4]);
        ensure(
            t.links(c) == Some([Some(a), Some(d)]) && t.links(a).is_some_and(|l| l[1].is_none()),
            || {
                format!(
                    "tlb {tlb}: C's goto_tb 1 linked on the wrong TB: A {:?}, C {:?}",
                    t.links(a),
                    t.links(c)
                )
            },
        )?;
        if tail_calls {
            ensure(got.runs < 60, || {
                format!("tlb {tlb}: {} entries, the module did not loop inside", got.runs)
            })?;
        }
        notes.push(format!(
            "tlb {tlb}: {} faults from C, {} entries",
            got.faults.len(),
            got.runs
        ));
    }
    Ok(notes.join("; "))
}

/// Runs the tiering scenarios on tci + wasm32; returns how many failed.
#[no_mangle]
pub extern "C" fn tiering_wasm32() -> u32 {
    host::install_panic_hook();
    let scenarios: [(&str, Scenario); 6] = [
        ("promotion-and-chaining", promotion_and_chaining),
        ("eviction", eviction),
        ("flush", flush),
        ("invalidation", invalidation),
        ("tlb-fast-path", tlb_fast_path),
        ("chained-exits", chained_exits),
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
