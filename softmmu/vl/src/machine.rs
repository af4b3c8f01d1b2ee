//! The PC run from memory: a multiboot image given as bytes, the debug console and COM1 captured into
//! buffers, and virtual time — what the wasm32 build (driven from JS, with no files, no stdio and no host
//! clock it may block on) and in-process tests use.
//!
//! # Time
//! The machine's clock is a [`ManualClock`] that only this module moves: by [`MachineConfig::time_step_ns`]
//! before each slice of execution, and, when the CPU halts, straight to the next timer deadline (at most
//! [`main_loop::MAX_HALT_WAIT`] ahead). Nothing sleeps and nothing reads the host's clock, so a run is
//! deterministic and [`Machine::run`] never blocks: it returns after its budget of slices, and the caller
//! may call it again.

use rqemu_accel::{AccelOptions, CpuExec};
use rqemu_hw::{ManualClock, MemSink};

use crate::main_loop::{self, Host};
use crate::options::{self, Action, CharTarget, DeviceSpec};
use crate::pc::{Pc, StartError};

/// The isa-debug-exit ports every guest test uses (QEMU's `iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_IOBASE: u16 = 0xf4;
/// The number of isa-debug-exit ports.
pub const DEBUG_EXIT_IOSIZE: u32 = 4;
/// Virtual nanoseconds per slice by default: a slice is up to [`main_loop::SLICE_TBS`] TBs, about what tci
/// runs in a millisecond.
pub const DEFAULT_TIME_STEP_NS: u64 = 1_000_000;

/// How to build a [`Machine`].
#[derive(Clone, Debug)]
pub struct MachineConfig {
    /// Guest RAM in bytes (a multiple of 4 KiB, at least 1 MiB).
    pub ram_size: u64,
    /// The multiboot command line the kernel sees (QEMU gives the kernel's file name, then `-append`).
    pub cmdline: String,
    /// The accelerator: on wasm32 its default hot tier is the wasm32 backend, natively none (tci alone).
    pub accel: AccelOptions,
    /// Whether isa-debug-exit is at [`DEBUG_EXIT_IOBASE`].
    pub debug_exit: bool,
    /// Virtual time added before each slice.
    pub time_step_ns: u64,
    /// The binary's `-no-reboot`: a triple fault (a reset request) ends the machine with status 0 instead of
    /// resetting it and booting the image again.
    pub no_reboot: bool,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            ram_size: options::DEFAULT_RAM_SIZE,
            cmdline: "kernel".into(),
            accel: AccelOptions::default(),
            debug_exit: true,
            time_step_ns: DEFAULT_TIME_STEP_NS,
            no_reboot: false,
        }
    }
}

/// Where a [`Machine::run`] stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// isa-debug-exit was written: the machine ends with this status.
    Exit(i32),
    /// The guest or the emulator cannot go on (the binary prints this and exits with status 1).
    Fatal(String),
    /// The budget ran out; the machine can run on.
    Budget,
}

/// What a run gave: how it ended and the output so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// How the run ended.
    pub end: RunEnd,
    /// Everything the debug console (port 0xe9) received since the machine started.
    pub debugcon: Vec<u8>,
    /// Everything COM1 transmitted since the machine started.
    pub serial: Vec<u8>,
}

impl RunResult {
    /// The process exit status the binary would give: isa-debug-exit's, 1 for a fatal stop; `None` while
    /// the machine has not ended.
    pub fn exit_status(&self) -> Option<i32> {
        match self.end {
            RunEnd::Exit(status) => Some(status),
            RunEnd::Fatal(_) => Some(1),
            RunEnd::Budget => None,
        }
    }
}

/// The main loop's host here: no input, and waiting is moving virtual time (never sleeping).
struct VirtualTimeHost {
    clock: ManualClock,
    step_ns: u64,
}

impl Host for VirtualTimeHost {
    fn poll_input(&mut self) -> Vec<u8> {
        // Called once per slice: time passes as the guest runs.
        self.clock.advance(self.step_ns);
        Vec::new()
    }

    fn wait(&mut self, timeout: std::time::Duration) -> Vec<u8> {
        // The loop asks to wait until the next timer deadline: jump there.
        self.clock
            .advance(u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX));
        Vec::new()
    }
}

/// A PC booted from an in-memory multiboot image, with its execution loop and captured output.
pub struct Machine {
    pc: Pc,
    exec: CpuExec,
    host: VirtualTimeHost,
    debugcon: MemSink,
    serial: MemSink,
    ended: Option<RunEnd>,
}

impl Machine {
    /// Builds the machine around `image` (a multiboot v1 kernel) as `config` says. A bad image, RAM size or
    /// accelerator is an error, never a panic.
    pub fn from_multiboot_bytes(image: &[u8], config: &MachineConfig) -> Result<Machine, StartError> {
        // The options the binary would get for `-kernel x -display none -m <size>`; files are never read.
        let args: Vec<String> = ["-kernel", "image", "-display", "none"].map(String::from).into();
        let mut opts = match options::parse(&args) {
            Ok(Action::Run(o)) => *o,
            Ok(_) => return Err(StartError("unexpected options".into())),
            Err(e) => return Err(StartError(e.to_string())),
        };
        if config.ram_size < options::MIN_RAM_SIZE
            || config.ram_size > options::MAX_RAM_SIZE
            || !config.ram_size.is_multiple_of(4096)
        {
            return Err(StartError(format!("RAM size {:#x} is not supported", config.ram_size)));
        }
        opts.ram_size = config.ram_size;
        opts.accel = config.accel;
        opts.no_reboot = config.no_reboot;
        opts.serial = CharTarget::Null;
        opts.debugcon = CharTarget::Null;
        if config.debug_exit {
            opts.devices.push(DeviceSpec::IsaDebugExit {
                iobase: DEBUG_EXIT_IOBASE,
                iosize: DEBUG_EXIT_IOSIZE,
            });
        }
        let exec = CpuExec::new(opts.accel).map_err(|e| StartError(format!("-accel: {e}")))?;
        let clock = ManualClock::new();
        let (debugcon, serial) = (MemSink::new(), MemSink::new());
        let name = config.cmdline.split(' ').next().unwrap_or("image");
        let mut pc = Pc::from_multiboot_image(
            &opts,
            image,
            name,
            &config.cmdline,
            (Some(Box::new(serial.clone())), Some(Box::new(debugcon.clone()))),
            Box::new(clock.clone()),
            exec.exit_request(),
        )?;
        pc.cpu.attach_invalidate_queue(exec.invalidate_queue());
        Ok(Machine {
            pc,
            exec,
            host: VirtualTimeHost {
                clock,
                step_ns: config.time_step_ns,
            },
            debugcon,
            serial,
            ended: None,
        })
    }

    /// Runs at most `slices` slices of the main loop (each up to [`main_loop::SLICE_TBS`] TBs, or one jump
    /// of virtual time while halted) and returns how it stopped with all output so far. Never blocks. Once
    /// the machine has ended, further calls give the same end without running.
    pub fn run(&mut self, slices: u64) -> RunResult {
        if self.ended.is_none() {
            self.ended = match main_loop::run_for(&mut self.pc, &mut self.exec, &mut self.host, slices) {
                Some(main_loop::Outcome::Exit(status)) => Some(RunEnd::Exit(status)),
                Some(main_loop::Outcome::Fatal(msg)) => Some(RunEnd::Fatal(msg)),
                None => None,
            };
        }
        RunResult {
            end: self.ended.clone().unwrap_or(RunEnd::Budget),
            debugcon: self.debugcon.contents(),
            serial: self.serial.contents(),
        }
    }

    /// The machine, for inspection.
    pub fn pc(&self) -> &Pc {
        &self.pc
    }

    /// The execution loop, for its statistics (TBs run on each tier).
    pub fn exec(&self) -> &CpuExec {
        &self.exec
    }

    /// The virtual time in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.pc.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A multiboot image (a.out kludge, loaded at 1 MiB, entry after the 32-byte header) around `code`.
    fn image(code: &[u8]) -> Vec<u8> {
        let (magic, flags) = (0x1bad_b002u32, 0x0001_0003u32);
        let mut img = Vec::new();
        for w in [
            magic,
            flags,
            0u32.wrapping_sub(magic).wrapping_sub(flags),
            0x10_0000,
            0x10_0000,
            0,
            0,
            0x10_0020,
        ] {
            img.extend_from_slice(&w.to_le_bytes());
        }
        img.extend_from_slice(code);
        img
    }

    /// `mov dx, 0xe9`, "ok\n" with `mov al, c; out dx, al`, then `mov al, 0x2a; out 0xf4, al; hlt`.
    const OK: &[u8] = &[
        0x66, 0xba, 0xe9, 0x00, 0xb0, b'o', 0xee, 0xb0, b'k', 0xee, 0xb0, b'\n', 0xee, 0xb0, 0x2a, 0xe6, 0xf4, 0xf4,
    ];

    #[test]
    fn runs_from_bytes_and_captures_the_debug_console() {
        let mut m = Machine::from_multiboot_bytes(&image(OK), &MachineConfig::default()).unwrap();
        let r = m.run(1000);
        assert_eq!(r.end, RunEnd::Exit(85));
        assert_eq!(r.exit_status(), Some(85));
        assert_eq!(r.debugcon, b"ok\n");
        assert!(r.serial.is_empty());
        // An ended machine stays ended.
        assert_eq!(m.run(1).end, RunEnd::Exit(85));
    }

    #[test]
    fn a_halted_guest_uses_its_budget_and_virtual_time_never_blocks() {
        // cli; hlt: nothing can wake it; each slice jumps virtual time instead of sleeping.
        let mut m = Machine::from_multiboot_bytes(&image(&[0xfa, 0xf4]), &MachineConfig::default()).unwrap();
        let r = m.run(50);
        assert_eq!((r.exit_status(), r.end), (None, RunEnd::Budget));
        assert!(m.now_ns() >= 25 * main_loop::MAX_HALT_WAIT.as_nanos() as u64);
    }

    #[test]
    fn bad_images_are_errors() {
        let e = Machine::from_multiboot_bytes(b"not a kernel", &MachineConfig::default()).err();
        assert!(e.is_some_and(|e| e.0.starts_with("-kernel kernel: ")));
        let config = MachineConfig {
            ram_size: 12345,
            ..MachineConfig::default()
        };
        assert!(Machine::from_multiboot_bytes(&image(OK), &config).is_err());
    }

    #[test]
    fn a_triple_fault_resets_or_ends_with_status_0_under_no_reboot() {
        // ud2 with no IDT: a triple fault. With no_reboot (the binary's -no-reboot): status 0.
        let config = MachineConfig {
            no_reboot: true,
            ..MachineConfig::default()
        };
        let mut m = Machine::from_multiboot_bytes(&image(&[0x0f, 0x0b]), &config).unwrap();
        let r = m.run(100);
        assert_eq!((r.end.clone(), r.exit_status()), (RunEnd::Exit(0), Some(0)));
        // Without: the machine resets and boots the image again. This one counts its boots at 0x500
        // (inc dword [0x500]; cmp dword [0x500], 3; jne ud2; out 0xf4, al with al = 5) and exits on the third.
        let code = [
            0xff, 0x05, 0x00, 0x05, 0x00, 0x00, // inc dword [0x500]
            0x83, 0x3d, 0x00, 0x05, 0x00, 0x00, 0x03, // cmp dword [0x500], 3
            0x75, 0x04, // jne +4
            0xb0, 0x05, // mov al, 5
            0xe6, 0xf4, // out 0xf4, al
            0x0f, 0x0b, // ud2
        ];
        let mut m = Machine::from_multiboot_bytes(&image(&code), &MachineConfig::default()).unwrap();
        let r = m.run(100);
        assert_eq!(r.end, RunEnd::Exit(11));
        let mut count = [0u8; 4];
        m.pc().read_phys(0x500, &mut count);
        assert_eq!(u32::from_le_bytes(count), 3);
    }
}
