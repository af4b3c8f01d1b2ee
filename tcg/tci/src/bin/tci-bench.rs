//! `tci-bench`: runs the tci benchmark natively with `std::time::Instant` as its clock and prints the report.
//! `cargo xtask bench tci` runs it in release mode next to the wasm32 build.

use std::time::Instant;

fn main() {
    let origin = Instant::now();
    let report = rqemu_tcg_tci::bench::run(&mut || origin.elapsed().as_secs_f64());
    println!("{report}");
}
