//! Records test vectors on this machine's CPU: `cpu-diff-record [--cases N] [--seed S] [--max-insns K] [--mode
//! 64|32] [--compact]` writes the vector file (`vectors.rs` format; after the header a `# host: <vendor> <brand>`
//! comment line naming the CPU, see `native::host_line`) to stdout and a one-line summary to stderr. x86-64 Linux only.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn main() {
    use rqemu_tests_cpu_diff::generate::{GenOptions, Generator};
    use rqemu_tests_cpu_diff::{record, run_native};
    use std::io::Write;

    let mut cases = 1000usize;
    let mut seed = 1u64;
    let mut max_insns = 1usize;
    let mut compact = false;
    let mut bitness = 64u32;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--compact" {
            compact = true;
            continue;
        }
        let value = args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let parse = |v: &str| v.parse::<u64>().unwrap_or_else(|_| usage(&format!("bad number `{v}`")));
        match flag.as_str() {
            "--cases" => cases = parse(&value) as usize,
            "--seed" => seed = parse(&value),
            "--max-insns" => max_insns = parse(&value) as usize,
            "--mode" => {
                bitness = match value.as_str() {
                    "64" => 64,
                    "32" => 32,
                    "16" => 16,
                    _ => usage(&format!("bad mode `{value}` (64, 32 or 16)")),
                }
            }
            _ => usage(&format!("unknown flag `{flag}`")),
        }
    }
    let generator = Generator::new(GenOptions {
        max_insns,
        compact,
        bitness,
        ..GenOptions::default()
    });
    let list = generator.cases(seed, cases);
    let results = run_native(&list);
    // Which CPU the results come from, after the header: rcpps & co. and the transcendentals are vendor-specific.
    let text = record(&list, &results).replacen('\n', &format!("\n{}\n", rqemu_tests_cpu_diff::native::host_line()), 1);
    std::io::stdout().write_all(text.as_bytes()).expect("writing stdout");
    let faulted = results
        .iter()
        .filter(|r| r.fault != rqemu_tests_cpu_diff::Fault::None)
        .count();
    eprintln!(
        "cpu-diff-record: seed={seed} cases={cases} forms={} faulted={faulted}",
        generator.forms().len()
    );
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn usage(problem: &str) -> ! {
    eprintln!("cpu-diff-record: {problem}\nusage: cpu-diff-record [--cases N] [--seed S] [--max-insns K] [--mode 64|32|16] [--compact]");
    std::process::exit(2)
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn main() {
    eprintln!("cpu-diff-record: the native oracle needs an x86-64 Linux host");
    std::process::exit(1)
}
