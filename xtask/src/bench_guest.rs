//! `cargo xtask bench guest`: one x86-64 guest kernel (`rqemu_tests::bench::compute`, a multiboot image)
//! run to its end by `qemu-system-x86_64 -accel tcg` (Debian's qemu-system-x86, installed when missing),
//! by `rqemu-system-x86_64` natively (tci), and by rqemu on wasm32 under Node (tci + the wasm32 hot tier,
//! `tests/wasm/run.mjs guest`), with the same command line for both system emulators. Every run must print
//! the checksum the host computed; the report gives the best wall time of each and its ratio to QEMU's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::cmd::{which, Cmd};
use crate::setup::deps::{self, Dep};
use crate::{failed, wasm, Result};

/// Rounds of the kernel (about 1.5 million guest instructions each).
const ROUNDS: u32 = 400;
/// Runs per emulator; the best time counts.
const RUNS: usize = 3;
/// Where the image and its expectation go.
const DIR: &str = "target/bench-guest";
/// The image's base name.
const NAME: &str = "bench_compute";

/// QEMU, the reference every figure is divided by.
const QEMU: Dep = Dep {
    packages: &["qemu-system-x86"],
    check: check_qemu,
};

fn check_qemu() -> std::result::Result<(), String> {
    which("qemu-system-x86_64")
        .map(|_| ())
        .ok_or_else(|| "no qemu-system-x86_64 on PATH".to_string())
}

/// The benchmark (see the module doc); fails when a run gives the wrong answer or cannot run.
pub fn guest() -> Result {
    deps::ensure(&[QEMU])?;
    let tc = wasm::toolchain();
    super::bench::print_header("guest", tc.as_ref().ok());
    Cmd::cargo()
        .args(["build", "--release", "-q", "-p", "rqemu-tests", "--bin", "bench-images"])
        .args(["-p", "rqemu-softmmu-vl", "--bin", "rqemu-system-x86_64"])
        .run()?;
    let _ = std::fs::remove_dir_all(DIR);
    Cmd::new("target/release/bench-images")
        .args([DIR, &ROUNDS.to_string()])
        .run()?;
    let image = Path::new(DIR).join(format!("{NAME}.img"));
    let expect = std::fs::read_to_string(Path::new(DIR).join(format!("{NAME}.expect")))
        .map_err(|e| failed(format!("{DIR}/{NAME}.expect: {e}")))?;
    let want = expect.split_once('\n').map_or("", |(_, out)| out).to_string();
    let version = Cmd::new("qemu-system-x86_64").arg("--version").read()?;
    println!("- qemu:    {}", version.lines().next().unwrap_or("unknown"));
    println!("- guest:   `{NAME}` ({ROUNDS} rounds of sieve + CRC-32 + recursive fib, 64-bit, paging on)");
    println!(
        "- timing:  wall clock of the whole process (QEMU, rqemu native) or of `guest_run` (Node), best of {RUNS}"
    );

    let qemu = best_of(|| time_system("qemu-system-x86_64", &image, &want))?;
    let native = best_of(|| time_system("target/release/rqemu-system-x86_64", &image, &want))?;
    println!("\n| emulator | backend | seconds | time / QEMU's |");
    println!("|---|---|---|---|");
    let row = |who: &str, backend: &str, s: f64| {
        println!("| {who} | {backend} | {s:.3} | {:.2}x |", s / qemu);
    };
    row("qemu-system-x86_64 -accel tcg", "x86-64 host code", qemu);
    row("rqemu-system-x86_64 (native)", "tci", native);
    match tc.and_then(|tc| node_time(&tc)) {
        Ok(s) => row("rqemu on wasm32 (Node)", "tci + wasm32 hot tier", s),
        Err(e) => {
            println!("| rqemu on wasm32 (Node) | tci + wasm32 | failed: {e} | |");
            return Err(e);
        }
    }
    Ok(())
}

/// The best of [`RUNS`] timings.
fn best_of(mut run: impl FnMut() -> Result<f64>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..RUNS {
        best = best.min(run()?);
    }
    Ok(best)
}

/// Runs `program` (QEMU or rqemu: the same options) on `image`; the wall time in seconds. The guest must
/// exit with status 1 (isa-debug-exit 0) and print `want` on the debug console.
fn time_system(program: &str, image: &Path, want: &str) -> Result<f64> {
    let start = Instant::now();
    let out = Command::new(program)
        .args(["-accel", "tcg", "-nodefaults", "-display", "none", "-no-reboot"])
        .args([
            "-debugcon",
            "stdio",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ])
        .arg("-kernel")
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(format!("{program}: {e}")))?;
    let took = start.elapsed().as_secs_f64();
    let got = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(1) || got != want {
        return Err(failed(format!(
            "{program}: status {:?}, output {got:?}; expected status 1 and {want:?}",
            out.status.code()
        )));
    }
    Ok(took)
}

/// Runs the image under Node [`RUNS`] times (the runner checks status and output); the best `guest_run`
/// time in seconds.
fn node_time(tc: &wasm::Toolchain) -> Result<f64> {
    let module = wasm::build_tests(tc)?;
    best_of(|| {
        let out = wasm::node(&module, "guest").arg(DIR).read()?;
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("guest {NAME}: ok")))
            .ok_or_else(|| failed(format!("the Node run did not pass: {out}")))?;
        line.rsplit_once("ms=")
            .and_then(|(_, ms)| ms.trim_end_matches(')').parse::<f64>().ok())
            .map(|ms| ms / 1000.0)
            .ok_or_else(|| failed(format!("no time in `{line}`")))
    })
}
