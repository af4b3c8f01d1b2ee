//! `bench_wasm32`: the wasm32 backend measured under the engine running this module (Node's V8), against tci.
//! The report is Markdown (tables under `###` headings), to paste into docs/PERF.md below the header that
//! `cargo xtask bench wasm32` prints.
//!
//! - **hot loops**: the tiering workload (two TBs chained by `goto_tb`, a branch) for [`HOT_ITERATIONS`]
//!   iterations through the tiering loop, tci alone vs tiered (measured once hot), three ways: guest memory
//!   through the inlined TLB fast path (the CPU state carries a TLB mapping the workload's page, see
//!   [`crate::wasm32::CpuState`]), guest memory through the slow path (no TLB), and registers only; then tci's
//!   own dispatch TB (a loop inside one TB), with and without the TLB, which isolates code quality from the
//!   loop;
//! - **compile**: a frontend-like ~200-op TB compiled [`COMPILE_MODULES`] times as one-TB modules, and in
//!   four-TB modules: codegen and instantiate time per module and per TB, bytes of Wasm per IR op;
//! - **threshold**: total time (compiles included) of five mixes of short- and long-lived loops, for each
//!   threshold in [`THRESHOLDS`], and on tci alone.

use rqemu_accel::tiering::workload;
use rqemu_accel::tiering::{TierConfig, Tiering, DEFAULT_THRESHOLD};
use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::conformance::FlatMemory;
use rqemu_tcg::{Backend, CompiledTb, ExecContext, TbExit};
use rqemu_tcg_tci::Tci;
use rqemu_tcg_wasm32::runtime::Wasm32;

use crate::host::{self, outln};
use crate::wasm32::{add_workload, run_tiered, tiered_with, Cpu, CpuState};

/// Iterations of the hot-loop measurement.
pub const HOT_ITERATIONS: u64 = 1_000_000;
/// Modules compiled per compile measurement.
pub const COMPILE_MODULES: usize = 500;
/// Thresholds compared.
pub const THRESHOLDS: [u32; 9] = [2, 10, 25, 50, 100, 200, 500, 1000, 1500];
/// Each measurement takes the fastest of this many runs.
const REPEATS: usize = 3;
/// Iterations of tci's dispatch TB.
const DISPATCH_ITERATIONS: u64 = 1_000_000;
/// Words of the dispatch TB's CPU state, and its guest memory (`rqemu_tcg_tci::bench`'s layout).
const DISPATCH_WORDS: usize = 64;
const DISPATCH_MEM: (u64, usize) = (0x10_0000, 0x1000);

fn fastest(mut work: impl FnMut() -> f64) -> f64 {
    (0..REPEATS).map(|_| work()).fold(f64::INFINITY, f64::min)
}

/// Seconds for one workload run of `iterations` through `t`, checked to reach the exit. The CPU state's TLB
/// maps the run's memory (used only by code compiled with the TLB).
fn time_workload(t: &mut Tiering, ids: &[(u64, rqemu_accel::TbId)], iterations: u64) -> f64 {
    let mut mem = workload::memory();
    let mut cpu = Cpu::with_tlb(iterations, &mut mem);
    let start = host::now();
    let (exit, _) = run_tiered(t, ids, &mut cpu, &mut mem);
    let secs = host::now() - start;
    assert_eq!(exit, Some(workload::EXIT), "the workload ran to its end");
    secs
}

/// One hot-loop row: `(tci s, wasm32 s hot, wasm32 s first run)`, and the tiering and backend counters.
fn hot_row(guest_memory: bool, tlb: bool) -> (f64, f64, f64, String) {
    let mut cold = Tiering::new(Box::new(Tci::new()), None, TierConfig::default());
    let ids = add_workload(&mut cold, guest_memory).expect("the workload compiles on tci");
    let tci_secs = fastest(|| time_workload(&mut cold, &ids, HOT_ITERATIONS));

    let (mut hot, stats) = tiered_with(TierConfig::default(), tlb);
    let ids = add_workload(&mut hot, guest_memory).expect("the workload compiles on tci");
    let first = time_workload(&mut hot, &ids, HOT_ITERATIONS);
    let wasm_secs = fastest(|| time_workload(&mut hot, &ids, HOT_ITERATIONS));
    (tci_secs, wasm_secs, first, format!("{}; {}", hot.stats(), stats.get()))
}

/// Seconds for one run of tci's dispatch TB.
fn time_dispatch(tb: &dyn CompiledTb) -> f64 {
    let mut mem = FlatMemory::new(DISPATCH_MEM.0, DISPATCH_MEM.1);
    let mut regs = [0u64; DISPATCH_WORDS];
    regs[0] = DISPATCH_ITERATIONS;
    let mut cpu = CpuState::new(regs);
    cpu.fill_tlb(&mut mem);
    let mut ctx = ExecContext {
        env: cpu.env(),
        mem: &mut mem,
    };
    let start = host::now();
    // SAFETY: the state covers every offset of the dispatch TB, and its TLB maps `mem`, whose bytes cover
    // the page.
    let exit = unsafe { tb.run(&mut ctx) };
    assert_eq!(exit, TbExit::Exit(0));
    host::now() - start
}

fn hot_loops() {
    outln!("### Hot loops: IR ops per second, tci alone vs tiered wasm32\n");
    let per_iteration = |guest_memory| workload::workload_with(guest_memory).ops_per_iteration;
    outln!(
        "Tiering workload: 2 TBs chained by `goto_tb` (one module when hot), {HOT_ITERATIONS} iterations \
         through `Tiering::run_until_exit`, tier-threshold={DEFAULT_THRESHOLD}; wasm32 timed once hot \
         (fastest of {REPEATS}), \"first run\" includes tier-up.\n"
    );
    outln!("| loop | IR ops/iteration | tci Mops/s | wasm32 Mops/s | wasm32 / tci | first run |");
    outln!("|---|---|---|---|---|---|");
    let rows = [
        ("guest load + store, TLB fast path", true, true),
        ("guest load + store, slow path (no TLB)", true, false),
        ("registers and env only", false, false),
    ];
    let mut notes = Vec::new();
    for (what, guest_memory, tlb) in rows {
        let (tci, wasm, first, note) = hot_row(guest_memory, tlb);
        let ops = (per_iteration(guest_memory) * HOT_ITERATIONS) as f64;
        outln!(
            "| {what} | {} | {:.1} | {:.1} | **{:.1}x** | {:.1} ms |",
            per_iteration(guest_memory),
            ops / tci / 1e6,
            ops / wasm / 1e6,
            tci / wasm,
            first * 1e3
        );
        notes.push(format!("{what}: {note}"));
    }

    // tci's dispatch TB: one TB looping on itself, no loop overhead: code quality alone.
    let (mut f, body_ops) = rqemu_tcg_tci::bench::dispatch_tb();
    rqemu_tcg::prepare::prepare(&mut f).expect("the dispatch TB prepares");
    let ops = (body_ops * DISPATCH_ITERATIONS) as f64;
    let tci_tb = Tci::new().compile(&f).expect("tci compiles the dispatch TB");
    let tci = fastest(|| time_dispatch(&*tci_tb));
    for tlb in [true, false] {
        let mut backend = Wasm32::new();
        backend.set_tlb(tlb.then_some(CpuState::<DISPATCH_WORDS>::TLB_ABI));
        let wasm_tb = backend.compile(&f).expect("wasm32 compiles the dispatch TB");
        let wasm = fastest(|| time_dispatch(&*wasm_tb));
        let path = if tlb { "TLB fast path" } else { "slow path" };
        outln!(
            "| single-TB loop (tci's dispatch TB, 1 guest load + store, {path}) | {body_ops} | {:.1} | {:.1} | \
             **{:.1}x** | |",
            ops / tci / 1e6,
            ops / wasm / 1e6,
            tci / wasm
        );
    }
    outln!();
    for note in notes {
        outln!("- {note}");
    }
    outln!();
}

fn compile_cost() {
    let mut f = rqemu_tcg_tci::bench::frontend_tb();
    rqemu_tcg::prepare::prepare(&mut f).expect("the frontend TB prepares");
    outln!("### Compile + instantiate\n");
    outln!(
        "A frontend-like TB ({} prepared ops), {COMPILE_MODULES} modules per row, all kept alive.\n",
        f.ops.len()
    );
    outln!(
        "| TBs/module | ms/module | codegen ms/module | instantiate ms/module | ms/TB | bytes/module | bytes/IR op |"
    );
    outln!("|---|---|---|---|---|---|---|");
    for per_module in [1usize, 4] {
        let mut backend = Wasm32::new();
        let members: Vec<GroupMember<'_>> = (0..per_module)
            .map(|_| GroupMember {
                func: &f,
                jump_targets: [None, None],
            })
            .collect();
        let start = host::now();
        let mut kept = Vec::new();
        for _ in 0..COMPILE_MODULES {
            kept.push(
                backend
                    .compile_group(&members)
                    .expect("wasm32 compiles the frontend TB"),
            );
        }
        let total_ms = (host::now() - start) * 1e3;
        let s = backend.stats();
        let modules = s.modules as f64;
        outln!(
            "| {per_module} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.1} |",
            total_ms / modules,
            s.codegen_ms / modules,
            s.instantiate_ms / modules,
            total_ms / s.tbs_compiled as f64,
            s.wasm_bytes as f64 / modules,
            s.wasm_bytes as f64 / s.ir_ops as f64
        );
        drop(kept);
    }
    outln!();
}

/// Total seconds (fastest of [`REPEATS`], each on fresh TBs) for `loops` copies of the workload, each run
/// `runs` times for `iterations`; tiered with the TLB when `threshold` is given.
fn mix(threshold: Option<u32>, loops: usize, runs: usize, iterations: u64) -> f64 {
    fastest(|| {
        let config = TierConfig {
            threshold: threshold.unwrap_or(1),
            ..TierConfig::default()
        };
        let mut t = match threshold {
            Some(_) => tiered_with(config, true).0,
            None => Tiering::new(Box::new(Tci::new()), None, config),
        };
        let copies: Vec<_> = (0..loops)
            .map(|_| add_workload(&mut t, true).expect("the workload compiles on tci"))
            .collect();
        let mut total = 0.0;
        for ids in &copies {
            for _ in 0..runs {
                total += time_workload(&mut t, ids, iterations);
            }
        }
        total
    })
}

fn thresholds() {
    let mixes: [(&str, usize, usize, u64); 5] = [
        ("hot: 8 loops x 1 run x 20000 it", 8, 1, 20_000),
        ("medium: 64 loops x 4 runs x 500 it", 64, 4, 500),
        ("warm: 128 loops x 4 runs x 100 it", 128, 4, 100),
        ("cool: 256 loops x 4 runs x 25 it", 256, 4, 25),
        ("lukewarm: 512 loops x 10 runs x 4 it", 512, 10, 4),
    ];
    outln!("### Tier-up threshold\n");
    outln!(
        "Total ms (compiles included, fastest of {REPEATS}) for mixes of copies of the guest-memory workload \
         (TLB fast path), each copy its own TBs; a TB runs ~once per iteration. Columns: tci alone, then \
         tier-threshold=N (default {DEFAULT_THRESHOLD}).\n"
    );
    let mut header = String::from("| mix | tci |");
    let mut rule = String::from("|---|---|");
    for th in THRESHOLDS {
        header += &format!(" {th} |");
        rule += "---|";
    }
    outln!("{header}");
    outln!("{rule}");
    // Warm the engine's code for tci and the tiering loop first, so the first column is not penalised.
    mix(None, 64, 1, 100);
    for (name, loops, runs, iterations) in mixes {
        let mut row = format!("| {name} | {:.1} |", mix(None, loops, runs, iterations) * 1e3);
        for th in THRESHOLDS {
            row += &format!(" {:.1} |", mix(Some(th), loops, runs, iterations) * 1e3);
        }
        outln!("{row}");
    }
    outln!();
}

/// Runs the wasm32 benchmarks and prints the report.
#[no_mangle]
pub extern "C" fn bench_wasm32() {
    host::install_panic_hook();
    outln!("Wasm tail calls: {}\n", Wasm32::new().tail_calls());
    hot_loops();
    compile_cost();
    thresholds();
}
