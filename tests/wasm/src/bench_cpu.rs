//! `bench_cpu`: issue 4's x86-64 guest kernels ([`rqemu_target_i386::bench`]) on the execution loop and
//! softmmu under the engine running this module (Node's V8): tci alone, and tci with the real wasm32 backend
//! as the hot tier, the TLB inlined (on a wasm32 host the TLB addends are linear-memory addresses, so the
//! fast path hits). Prints a Markdown table of guest MIPS and translation ns per guest instruction.

use rqemu_accel::{AccelOptions, CpuExec};
use rqemu_target_i386::bench;
use rqemu_tcg_tci::Tci;
use rqemu_tcg_wasm32::runtime::Wasm32;
use rqemu_tcg_wasm32::TlbAbi;

use crate::host::{self, outln};

/// The kernels' scale (10: about 140, 25, 25 and 98 million guest instructions).
pub const SCALE: u64 = 10;

/// Runs the kernels on tci and on tci + wasm32; returns the number of runs that ended wrong.
#[no_mangle]
pub extern "C" fn bench_cpu() -> u32 {
    host::install_panic_hook();
    let mut tci = || CpuExec::with_backends(Box::new(Tci::new()), None, AccelOptions::default());
    let mut tiered = || {
        let mut hot = Wasm32::new();
        hot.set_tlb(Some(TlbAbi {
            offset_from_env: rqemu_target_i386::cpu::TLB_OFFSET as i32,
        }));
        CpuExec::with_backends(Box::new(Tci::new()), Some(Box::new(hot)), AccelOptions::default())
    };
    outln!(
        "Kernels at scale {SCALE}, each run once on a fresh execution loop and machine (the tiered run includes \
         tier-up); wasm32 with the TLB inlined, default tier threshold; Wasm tail calls: {}.\n",
        Wasm32::new().tail_calls()
    );
    let (table, wrong) = bench::report(
        &mut [("tci", &mut tci), ("tci+wasm32", &mut tiered)],
        SCALE,
        &mut host::now,
    );
    outln!("{table}");
    wrong
}
