//! `bench_wasm32`: the wasm32 backend measured under the engine running this module (Node's V8), against tci.
//!
//! - **hot loop**: the tiering workload (two TBs chained by `goto_tb`, guest memory, a branch) for
//!   [`HOT_ITERATIONS`] iterations through the tiering loop, tci alone vs tiered (measured once hot); and
//!   tci's own dispatch TB (a loop inside one TB) on tci vs wasm32, which isolates code quality;
//! - **compile**: a frontend-like ~200-op TB compiled [`COMPILE_MODULES`] times as one-TB modules, and in
//!   four-TB modules: codegen and instantiate time per module and per TB, bytes of Wasm per IR op;
//! - **threshold**: total time (compiles included) of three mixes of short- and long-lived loops, for each
//!   threshold in [`THRESHOLDS`], and on tci alone.

use rqemu_accel::tiering::workload;
use rqemu_accel::tiering::{TierConfig, Tiering};
use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::{Backend, CompiledTb, ExecContext, TbExit};
use rqemu_tcg_tci::Tci;
use rqemu_tcg_wasm32::runtime::Wasm32;

use crate::host::{self, outln};
use crate::wasm32::{add_workload, run_tiered, tiered};

/// Iterations of the hot-loop measurement.
pub const HOT_ITERATIONS: u64 = 1_000_000;
/// Modules compiled per compile measurement.
pub const COMPILE_MODULES: usize = 500;
/// Thresholds compared.
pub const THRESHOLDS: [u32; 8] = [2, 10, 50, 100, 200, 500, 1000, 1500];
/// Each measurement takes the fastest of this many runs.
const REPEATS: usize = 3;

fn fastest(mut work: impl FnMut() -> f64) -> f64 {
    (0..REPEATS).map(|_| work()).fold(f64::INFINITY, f64::min)
}

/// Seconds for one workload run of `iterations` through `t`, checked to reach the exit.
fn time_workload(t: &mut Tiering, ids: &[(u64, rqemu_accel::TbId)], iterations: u64) -> f64 {
    let mut env = workload::initial_env(iterations);
    let mut mem = workload::memory();
    let start = host::now();
    let (exit, _) = run_tiered(t, ids, &mut env, &mut mem);
    let secs = host::now() - start;
    assert_eq!(exit, Some(workload::EXIT), "the workload ran to its end");
    secs
}

fn hot_loop() {
    for guest_memory in [true, false] {
        let per_iteration = workload::workload_with(guest_memory).ops_per_iteration;
        let ops = per_iteration * HOT_ITERATIONS;
        let mut cold = Tiering::new(Box::new(Tci::new()), None, TierConfig::default());
        let ids = add_workload(&mut cold, guest_memory).expect("the workload compiles on tci");
        let tci_secs = fastest(|| time_workload(&mut cold, &ids, HOT_ITERATIONS));

        let (mut hot, stats) = tiered(TierConfig::default());
        let ids = add_workload(&mut hot, guest_memory).expect("the workload compiles on tci");
        let first = time_workload(&mut hot, &ids, HOT_ITERATIONS);
        let wasm_secs = fastest(|| time_workload(&mut hot, &ids, HOT_ITERATIONS));
        let mops = |secs: f64| ops as f64 / secs / 1e6;
        let what = if guest_memory {
            "guest load + store per iteration, slow path (no TLB yet)"
        } else {
            "registers and env only"
        };
        outln!("hot loop (2 chained TBs, {per_iteration} IR ops/iteration, {HOT_ITERATIONS} iterations, {what}):");
        outln!("  tci alone        {:8.1} Mops/s  ({:.4} s)", mops(tci_secs), tci_secs);
        outln!(
            "  tiered wasm32    {:8.1} Mops/s  ({:.4} s hot; {:.4} s for the first run, tier-up included)  \
             {:.1}x tci",
            mops(wasm_secs),
            wasm_secs,
            first,
            tci_secs / wasm_secs
        );
        outln!("  {}", hot.stats());
        outln!("  {}", stats.get());
    }

    // tci's dispatch TB: one TB looping on itself, no loop overhead: code quality alone.
    let (mut f, body_ops) = rqemu_tcg_tci::bench::dispatch_tb();
    rqemu_tcg::prepare::prepare(&mut f).expect("the dispatch TB prepares");
    let iterations = 1_000_000u64;
    let run_one = |tb: &dyn CompiledTb| {
        let mut mem = rqemu_tcg::conformance::FlatMemory::new(0x10_0000, 0x1000);
        let mut env = [0u64; 64];
        env[0] = iterations;
        let mut ctx = ExecContext {
            env: env.as_mut_ptr().cast(),
            mem: &mut mem,
        };
        let start = host::now();
        // SAFETY: `env` covers every offset of the dispatch TB.
        let exit = unsafe { tb.run(&mut ctx) };
        assert_eq!(exit, TbExit::Exit(0));
        host::now() - start
    };
    let tci_tb = Tci::new().compile(&f).expect("tci compiles the dispatch TB");
    let wasm_tb = Wasm32::new().compile(&f).expect("wasm32 compiles the dispatch TB");
    let (t, w) = (fastest(|| run_one(&*tci_tb)), fastest(|| run_one(&*wasm_tb)));
    let ops = body_ops * iterations;
    outln!("single-TB loop (tci's dispatch TB, {body_ops} ops/iteration):");
    outln!("  tci              {:8.1} Mops/s", ops as f64 / t / 1e6);
    outln!(
        "  wasm32           {:8.1} Mops/s  {:.1}x tci",
        ops as f64 / w / 1e6,
        t / w
    );
}

fn compile_cost() {
    let mut f = rqemu_tcg_tci::bench::frontend_tb();
    rqemu_tcg::prepare::prepare(&mut f).expect("the frontend TB prepares");
    outln!(
        "compile (frontend-like TB: {} prepared ops; {COMPILE_MODULES} modules per row):",
        f.ops.len()
    );
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
            "  {per_module} TB/module: {:.3} ms/module ({:.3} codegen + {:.3} instantiate), {:.3} ms/TB, \
             {:.0} bytes/module, {:.1} bytes/IR op",
            total_ms / modules,
            s.codegen_ms / modules,
            s.instantiate_ms / modules,
            total_ms / s.tbs_compiled as f64,
            s.wasm_bytes as f64 / modules,
            s.wasm_bytes as f64 / s.ir_ops as f64
        );
        drop(kept);
    }
}

/// Total seconds (fastest of [`REPEATS`], each on fresh TBs) for `loops` copies of the workload, each run
/// `runs` times for `iterations`.
fn mix(threshold: Option<u32>, loops: usize, runs: usize, iterations: u64) -> f64 {
    fastest(|| {
        let config = TierConfig {
            threshold: threshold.unwrap_or(1),
            ..TierConfig::default()
        };
        let mut t = match threshold {
            Some(_) => tiered(config).0,
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
    let mixes: [(&str, usize, usize, u64); 4] = [
        ("hot: 8 loops x 1 run x 20000 it", 8, 1, 20_000),
        ("medium: 64 loops x 4 runs x 500 it", 64, 4, 500),
        ("warm: 128 loops x 4 runs x 100 it", 128, 4, 100),
        ("lukewarm: 512 loops x 10 runs x 4 it", 512, 10, 4),
    ];
    outln!("threshold (total ms, compiles included; tier-threshold=N):");
    let mut header = String::from("  mix                                        tci");
    for th in THRESHOLDS {
        header += &format!(" {th:>8}");
    }
    outln!("{header}");
    // Warm the engine's code for tci and the tiering loop first, so the first column is not penalised.
    mix(None, 64, 1, 100);
    for (name, loops, runs, iterations) in mixes {
        let mut row = format!("  {name:38} {:8.1}", mix(None, loops, runs, iterations) * 1e3);
        for th in THRESHOLDS {
            row += &format!(" {:8.1}", mix(Some(th), loops, runs, iterations) * 1e3);
        }
        outln!("{row}");
    }
}

/// Runs the wasm32 benchmarks and prints the report.
#[no_mangle]
pub extern "C" fn bench_wasm32() {
    host::install_panic_hook();
    outln!("wasm32 benchmark (Node), tail calls: {}", Wasm32::new().tail_calls());
    hot_loop();
    compile_cost();
    thresholds();
}
