//! `rqemu-system-x86_64`: QEMU's command line (QEMU's `vl.c`), the PC machine, and the main loop.
//!
//! | module | holds |
//! |---|---|
//! | [`options`] | the command-line parser: [`options::parse`] gives an [`options::Action`] |
//! | [`pc`] | the PC: RAM around the PCI hole, the `-bios` ROM, the CPU, the devices on the port-I/O space |
//! | [`boot`] | the CPU's start state: multiboot entry in 32-bit protected mode, or the reset vector |
//! | [`main_loop`] | running the CPU in slices, timers, host input, halt, isa-debug-exit, triple-fault reset, fatal stops |
//! | [`machine`] | the PC run from an in-memory multiboot image with captured output and virtual time (wasm32) |
//!
//! [`run_cli`] ties them together for the binary; docs/system.md describes the options and the machine.

pub mod boot;
pub mod machine;
pub mod main_loop;
pub mod options;
pub mod pc;

#[cfg(not(target_arch = "wasm32"))]
use std::io::Write;

#[cfg(not(target_arch = "wasm32"))]
use options::{Action, PROG};

/// Runs the emulator on `args` (without the program name) and returns the process exit status: the
/// isa-debug-exit status, 0 after help or version, 1 for any error (printed on stderr as `PROG: message`).
#[cfg(not(target_arch = "wasm32"))]
pub fn run_cli(args: Vec<String>) -> i32 {
    let opts = match options::parse(&args) {
        Ok(Action::Run(o)) => o,
        Ok(Action::Help(text) | Action::Version(text)) => {
            print!("{text}");
            let _ = std::io::stdout().flush();
            return 0;
        }
        Err(e) => return fail(&e),
    };
    let _log = match opts.log.install() {
        Ok(guard) => guard,
        Err(e) => return fail(&e),
    };
    let mut exec = match rqemu_accel::CpuExec::new(opts.accel) {
        Ok(ex) => ex,
        Err(e) => return fail(&format!("-accel: {e}")),
    };
    let clock = Box::new(rqemu_hw::HostClock::new());
    let mut pc = match pc::Pc::new(&opts, clock, exec.exit_request()) {
        Ok(pc) => pc,
        Err(e) => return fail(&e),
    };
    pc.cpu.attach_invalidate_queue(exec.invalidate_queue());
    let mut host = main_loop::NativeHost::new(pc.com1_stdin && pc.com1.is_some());
    match main_loop::run(&mut pc, &mut exec, &mut host) {
        main_loop::Outcome::Exit(status) => status,
        main_loop::Outcome::Fatal(msg) => fail(&msg),
    }
}

/// Prints `PROG: message` on stderr and gives status 1.
#[cfg(not(target_arch = "wasm32"))]
fn fail(msg: &dyn std::fmt::Display) -> i32 {
    let _ = std::io::stdout().flush();
    eprintln!("{PROG}: {msg}");
    1
}
