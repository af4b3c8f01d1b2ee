//! Issue 4's x86-64 guest CPU benchmark, natively (the native half of `cargo xtask bench cpu`): the kernels
//! of [`rqemu_target_i386::bench`] on the execution loop with tci, as a Markdown table of guest MIPS and
//! translation cost (frontend + optimizer, ns per guest instruction).
//!
//! `cargo run --release -p rqemu-target-i386 --example cpu_bench [-- <scale>]`

use std::time::Instant;

use rqemu_accel::{AccelOptions, CpuExec};
use rqemu_target_i386::bench;
use rqemu_tcg_tci::Tci;

fn main() {
    let scale: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let origin = Instant::now();
    let mut clock = || origin.elapsed().as_secs_f64();
    let mut tci = || CpuExec::with_backends(Box::new(Tci::new()), None, AccelOptions::default());
    println!("Kernels at scale {scale}, each run once on a fresh execution loop and machine.\n");
    let (table, wrong) = bench::report(&mut [("tci", &mut tci)], scale, &mut clock);
    println!("{table}");
    if wrong > 0 {
        eprintln!("cpu_bench: {wrong} kernel run(s) ended wrong");
        std::process::exit(1);
    }
}
