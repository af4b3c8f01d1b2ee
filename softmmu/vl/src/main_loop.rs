//! The main loop: runs the CPU in slices on the accel's [`CpuExec`], and between slices services the
//! machine: host input for COM1, expired device timers, the isa-debug-exit status, and a halted CPU.
//!
//! - **Exit.** isa-debug-exit raises the loop's exit request as it records a status, and `out` ends its TB,
//!   so the CPU stops at the next TB boundary; the loop then returns [`Outcome::Exit`] with the status.
//! - **Halt.** A halted CPU sleeps on the host ([`Host::wait`]) until the next timer deadline or host input,
//!   never spinning; the CPU wakes when the PIC (its interrupt controller, see [`crate::pc`]) has a request
//!   it takes.
//! - **Exceptions.** target-i386 delivers them through the IDT. A triple fault is a machine reset request, as
//!   in QEMU: the machine is reset and boots again ([`Pc::reset`], then the translated code is flushed), or
//!   with `-no-reboot` ([`Pc::no_reboot`]) the loop ends with [`Outcome::Exit`]`(0)`, QEMU's status for a
//!   guest reset under `-no-reboot` (the reset becomes a shutdown, which ends QEMU with status 0). Both are
//!   silent, as in QEMU, unless `-d int` is on: then "Triple fault" and the register dump are logged. A guest
//!   that triple-faults forever reboots forever, as in QEMU. For a CPU in `ExceptionMode::Stop`, any
//!   exception ends the emulator with a fatal message and the register dump ([`Outcome::Fatal`], status 1).
//!
//! The host side (sleeping, stdin) is behind the [`Host`] trait so tests and the wasm32 page can drive it.
//! [`run_for`] runs a bounded number of slices, for callers that must return to their host (on wasm32 the
//! loop must never block: [`crate::machine`] drives it with virtual time and a host that never sleeps).

use std::time::Duration;

use rqemu_accel::log::{self, LogMask};
use rqemu_accel::{CpuExec, StopReason};
use rqemu_target_i386::cpu::seg;
use rqemu_target_i386::dump::format_exception;
use rqemu_target_i386::{STOP_EXCEPTION, STOP_TRIPLE_FAULT};

use crate::pc::Pc;

/// TBs per slice between services: small enough that timers and input are seen within well under a
/// millisecond on tci, large enough that the services cost nothing measurable.
pub const SLICE_TBS: u64 = 8192;
/// The longest a halted CPU sleeps without a timer deadline (it checks for host input and exit again).
pub const MAX_HALT_WAIT: Duration = Duration::from_millis(100);

/// What ended the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// isa-debug-exit was written: exit with this status.
    Exit(i32),
    /// The guest or the emulator cannot go on: print this and exit with status 1.
    Fatal(String),
}

/// The host's side of the loop.
pub trait Host {
    /// Bytes the host has for COM1 now (stdin), without waiting.
    fn poll_input(&mut self) -> Vec<u8>;
    /// Waits up to `timeout` for host input and returns what arrived (possibly nothing).
    fn wait(&mut self, timeout: Duration) -> Vec<u8>;
}

/// The native host: stdin read by a thread (only when COM1 is on stdio), sleeps with a timeout on its
/// channel.
#[cfg(not(target_arch = "wasm32"))]
pub struct NativeHost {
    input: Option<std::sync::mpsc::Receiver<Vec<u8>>>,
}

#[cfg(not(target_arch = "wasm32"))]
impl NativeHost {
    /// A host reading stdin when `stdin` is set. The terminal stays in its normal (line) mode: input reaches
    /// the guest a line at a time.
    pub fn new(stdin: bool) -> NativeHost {
        let input = stdin.then(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buf = [0u8; 256];
                let mut stdin = std::io::stdin();
                loop {
                    match stdin.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tx.send(buf[..n].to_vec()).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
            rx
        });
        NativeHost { input }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Host for NativeHost {
    fn poll_input(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(rx) = &self.input {
            while let Ok(bytes) = rx.try_recv() {
                out.extend_from_slice(&bytes);
            }
        }
        out
    }

    fn wait(&mut self, timeout: Duration) -> Vec<u8> {
        use std::sync::mpsc::RecvTimeoutError;
        match &self.input {
            Some(rx) => match rx.recv_timeout(timeout) {
                Ok(mut bytes) => {
                    bytes.extend(self.poll_input());
                    bytes
                }
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => {
                    // stdin closed: no more input, just sleep.
                    self.input = None;
                    std::thread::sleep(timeout);
                    Vec::new()
                }
            },
            None => {
                std::thread::sleep(timeout);
                Vec::new()
            }
        }
    }
}

/// Hands host input to COM1.
fn feed_input(pc: &mut Pc, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if let Some(uart) = &pc.com1 {
        pc.com1_input.push(bytes);
        uart.borrow_mut().poll_input();
    }
}

/// The fatal message of an exception the CPU stopped on instead of delivering it: the vector and where,
/// then QEMU's `-d int` block (exception line and register dump).
fn exception_message(pc: &Pc, vector: u64) -> String {
    let s = pc.cpu.state();
    format!(
        "fatal: CPU exception {vector:#x} at {:04x}:{:08x} was not delivered\n{}",
        s.segs[seg::CS].selector,
        s.rip,
        format_exception(s)
    )
}

/// A triple fault: QEMU's reset request. Logged with `-d int`; then `-no-reboot` ends the machine with
/// status 0, else the machine is reset and the translated code dropped (`None`: run on).
fn triple_fault(pc: &mut Pc, exec: &mut CpuExec) -> Option<Outcome> {
    if log::enabled(LogMask::INT) {
        log::log(
            LogMask::INT,
            &format!(
                "Triple fault: {}\n{}",
                if pc.no_reboot {
                    "shutting down (-no-reboot)"
                } else {
                    "resetting the machine"
                },
                pc.cpu.state()
            ),
        );
    }
    if pc.no_reboot {
        return Some(Outcome::Exit(0));
    }
    if let Err(e) = pc.reset() {
        return Some(Outcome::Fatal(format!(
            "fatal: the machine cannot boot again after a reset: {e}"
        )));
    }
    exec.flush();
    None
}

/// Runs the machine until it ends.
pub fn run(pc: &mut Pc, exec: &mut CpuExec, host: &mut dyn Host) -> Outcome {
    loop {
        if let Some(outcome) = run_for(pc, exec, host, u64::MAX) {
            return outcome;
        }
    }
}

/// Runs the machine for at most `slices` slices (of up to [`SLICE_TBS`] TBs, or one halt each); `None` when
/// it has not ended by then. A caller that must never block (the wasm32 build, driven from JS) gives a
/// budget and a [`Host`] whose `wait` does not sleep.
pub fn run_for(pc: &mut Pc, exec: &mut CpuExec, host: &mut dyn Host, slices: u64) -> Option<Outcome> {
    let mut mem = pc.cpu.memory();
    for _ in 0..slices {
        if let Some(status) = pc.exit.get() {
            return Some(Outcome::Exit(status));
        }
        let input = host.poll_input();
        feed_input(pc, &input);
        pc.timers.run_expired(pc.clock.now());
        match exec.run(&mut pc.cpu, &mut mem, SLICE_TBS) {
            StopReason::ExitRequested | StopReason::Budget => {}
            StopReason::Halted => {
                if pc.exit.get().is_some() {
                    continue;
                }
                let now = pc.clock.now();
                let wait = pc
                    .timers
                    .next_deadline()
                    .map(|d| Duration::from_nanos(d.saturating_sub(now)))
                    .unwrap_or(MAX_HALT_WAIT)
                    .min(MAX_HALT_WAIT);
                let input = host.wait(wait);
                feed_input(pc, &input);
            }
            StopReason::Cpu(STOP_TRIPLE_FAULT) => {
                if let Some(outcome) = triple_fault(pc, exec) {
                    return Some(outcome);
                }
            }
            StopReason::Cpu(code) if code & STOP_EXCEPTION != 0 => {
                return Some(Outcome::Fatal(exception_message(pc, code & !STOP_EXCEPTION)));
            }
            StopReason::Cpu(code) => {
                return Some(Outcome::Fatal(format!(
                    "fatal: the CPU stopped with code {code:#x}\n{}",
                    pc.cpu.state()
                )))
            }
            StopReason::Error(e) => {
                return Some(Outcome::Fatal(format!("fatal: {e}\n{}", pc.cpu.state())));
            }
        }
    }
    pc.exit.get().map(Outcome::Exit)
}
