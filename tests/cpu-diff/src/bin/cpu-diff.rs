//! The differential run `cargo xtask fuzz-cpu` drives: `cpu-diff [--cases N] [--seed S] [--backend tci|wasm32]
//! [--mode 64|32|16] [--max-insns K] [--show N] [--families a,b]` generates N cases of 64-bit (default) or 32-bit code
//! from seed S, runs them on this machine's CPU (the oracle) and on
//! rqemu, prints the first mismatches (default 20) and the `cpu-diff:` summary line, and exits 1 if any case
//! mismatched (2 on a usage error). `--families` (or `--family`) chooses the families (names as in
//! `generate::Family`, case-insensitive, `-`/`_` ignored, plus the groups `default`, `pending`, `all`, `sse-int`,
//! `sse-fp`, `x87`: see `Family::parse_list`; default `Family::default_mix()`, which leaves out
//! `generate::PENDING_FAMILIES`; e.g. `--families string,bmi` or `--family x87-arith`). x86-64 Linux only.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn main() {
    use rqemu_tests_cpu_diff::compare::run_diff;
    use rqemu_tests_cpu_diff::generate::{GenOptions, Generator};
    use rqemu_tests_cpu_diff::rqemu::Rqemu;
    use rqemu_tests_cpu_diff::run_native;

    let mut cases = 1000usize;
    let mut seed = 1u64;
    let mut max_insns = 1usize;
    let mut show = 20usize;
    let mut backend = String::from("tci");
    let mut bitness = 64u32;
    let mut families = rqemu_tests_cpu_diff::generate::Family::default_mix();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let parse = |v: &str| v.parse::<u64>().unwrap_or_else(|_| usage(&format!("bad number `{v}`")));
        match flag.as_str() {
            "--cases" => cases = parse(&value) as usize,
            "--seed" => seed = parse(&value),
            "--max-insns" => max_insns = parse(&value).max(1) as usize,
            "--show" => show = parse(&value) as usize,
            "--backend" => backend = value,
            "--mode" => {
                bitness = match value.as_str() {
                    "64" => 64,
                    "32" => 32,
                    "16" => 16,
                    _ => usage(&format!("bad mode `{value}` (64, 32 or 16)")),
                }
            }
            "--families" | "--family" => {
                families = rqemu_tests_cpu_diff::generate::Family::parse_list(&value).unwrap_or_else(|e| usage(&e))
            }
            _ => usage(&format!("unknown flag `{flag}`")),
        }
    }
    let mut cpu = match backend.as_str() {
        "tci" => Rqemu::tci(),
        #[cfg(feature = "wasm32")]
        "wasm32" => Rqemu::wasm32(),
        #[cfg(not(feature = "wasm32"))]
        "wasm32" => usage("this build has no wasm32 backend (feature `wasm32`)"),
        other => usage(&format!("unknown backend `{other}` (tci or wasm32)")),
    };
    let generator = Generator::new(GenOptions {
        max_insns,
        families,
        bitness,
        ..GenOptions::default()
    });
    let list = generator.cases(seed, cases);
    let results = run_native(&list);
    let vectors: Vec<_> = list.into_iter().zip(results).collect();
    let report = run_diff(&vectors, &mut cpu);
    for m in report.mismatches.iter().take(show) {
        print!("{m}");
    }
    if report.mismatches.len() > show {
        println!("... {} more mismatches not shown", report.mismatches.len() - show);
    }
    if report.skipped > 0 {
        println!("skipped {} cases the oracle could not finish", report.skipped);
    }
    println!("{}", report.summary(cpu.backend_name()));
    std::process::exit(if report.mismatches.is_empty() { 0 } else { 1 });
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn usage(problem: &str) -> ! {
    eprintln!(
        "cpu-diff: {problem}\nusage: cpu-diff [--cases N] [--seed S] [--backend tci|wasm32] [--mode 64|32|16] [--max-insns K] [--show N] [--families a,b]"
    );
    std::process::exit(2)
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn main() {
    eprintln!("cpu-diff: the native oracle needs an x86-64 Linux host");
    std::process::exit(1)
}
