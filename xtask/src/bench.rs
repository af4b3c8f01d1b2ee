//! `cargo xtask bench tci`: the tci benchmark natively (`tci-bench`) and on wasm32 under Node (the
//! `bench_tci` export of `tests/wasm`); `cargo xtask bench wasm32`: the wasm32 backend under Node (the
//! `bench_wasm32` export); `cargo xtask bench cpu`: issue 4's x86-64 guest kernels natively on tci (the
//! `cpu_bench` example of rqemu-target-i386) and under Node on tci and tci + wasm32 (the `bench_cpu`
//! export); `cargo xtask bench guest` (`bench_guest.rs`): a guest kernel against qemu-system-x86_64. All
//! print a header naming the machine, so reports can be compared.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::cmd::Cmd;
use crate::{failed, wasm, Result};

/// Runs both benchmarks, then fails if either failed.
pub fn tci() -> Result {
    let tc = wasm::toolchain();
    print_header("tci", tc.as_ref().ok());

    println!("\n== tci on x86_64-unknown-linux-gnu (native, release) ==");
    let native = Cmd::cargo()
        .args(["run", "--release", "-p", "rqemu-tcg-tci", "--bin", "tci-bench"])
        .run();

    println!("\n== tci on wasm32-unknown-unknown (Node, release) ==");
    let wasm32 = tc.and_then(|tc| wasm::node(&wasm::build_tests(&tc)?, "bench_tci").run());

    let errors: Vec<String> = [native, wasm32]
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(failed(errors.join("; ")))
    }
}

/// The wasm32 backend's benchmark under Node: tci vs tiered wasm32 on a hot loop, compile and instantiate
/// cost, bytes of Wasm per IR op, and the effect of the tier-up threshold.
pub fn wasm32() -> Result {
    let tc = wasm::toolchain()?;
    print_header("wasm32", Some(&tc));
    println!("\n== wasm32 backend on wasm32-unknown-unknown (Node, release) ==");
    wasm::node(&wasm::build_tests(&tc)?, "bench_wasm32").run()
}

/// The x86-64 guest kernels (`rqemu_target_i386::bench`): natively on tci, then under Node on tci and on tci
/// with the wasm32 backend as the hot tier; fails if either part failed.
pub fn cpu() -> Result {
    let tc = wasm::toolchain();
    print_header("cpu", tc.as_ref().ok());

    println!("\n### x86_64-unknown-linux-gnu (native, release): tci\n");
    let native = Cmd::cargo()
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "rqemu-target-i386",
            "--example",
            "cpu_bench",
            "--",
            "10",
        ])
        .run();

    println!("\n### wasm32-unknown-unknown (Node, release): tci and tci + wasm32\n");
    let wasm32 = tc.and_then(|tc| wasm::node(&wasm::build_tests(&tc)?, "bench_cpu").run());

    let errors: Vec<String> = [native, wasm32]
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(failed(errors.join("; ")))
    }
}

/// Prints the header as a Markdown list (the reports below it are Markdown too, for docs/PERF.md).
pub fn print_header(which: &str, tc: Option<&wasm::Toolchain>) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("## rqemu {which} benchmark\n");
    println!("- command: `cargo xtask bench {which}`");
    println!("- date:    {}", utc_now());
    println!("- host:    {}", read_trimmed("/proc/sys/kernel/hostname"));
    println!("- machine: {}, {cores} cores", cpu_model());
    println!("- kernel:  {}", read_trimmed("/proc/sys/kernel/osrelease"));
    println!("- load:    {} (1, 5, 15 min)", load_average());
    let native_rustc = Cmd::new("rustc").arg("-V").read().unwrap_or_default();
    println!("- native:  {native_rustc}");
    if let Some(tc) = tc {
        println!("- wasm32:  {}, node {}", tc.rustc_version, tc.node_version);
    }
}

/// The first three fields of /proc/loadavg.
fn load_average() -> String {
    let all = read_trimmed("/proc/loadavg");
    all.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
}

fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or_else(|| "unknown CPU".into(), |(_, model)| model.trim().to_string())
}

/// The current time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(super::civil_from_days(20_454), (2026, 1, 1));
    }
}
