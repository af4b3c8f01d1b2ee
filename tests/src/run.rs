//! Running a guest image on the PC machine in-process, through `rqemu-softmmu-vl`'s library (the same
//! options, machine and main loop as the binary), with a wall-clock limit so a broken guest fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rqemu_hw::MachineExit;
use rqemu_softmmu_vl::main_loop::{self, Host, Outcome};
use rqemu_softmmu_vl::options::{self, Action};
use rqemu_softmmu_vl::pc::Pc;

/// How long a guest may run before it is stopped (with [`TIMEOUT_STATUS`]).
pub const TIME_LIMIT: Duration = Duration::from_secs(20);
/// The status a guest stopped by the time limit gets (not a status isa-debug-exit can give: it is even).
pub const TIMEOUT_STATUS: i32 = -2;
/// The status of a fatal stop (an exception a CPU in `ExceptionMode::Stop` does not deliver), as the binary
/// gives it. A triple fault is not one: under the runner's `-no-reboot` it ends the machine with status 0.
pub const FATAL_STATUS: i32 = 1;

/// The backend running the guest code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Everything on the tci interpreter. The wasm32 hot tier cannot be chosen natively: softmmu/vl only
    /// enables it on wasm32 hosts, where tests/wasm runs the images of the `guest-images` binary.
    Tci,
}

/// What a guest run gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestRun {
    /// The exit status: isa-debug-exit's, 0 after a triple fault (`-no-reboot`), [`FATAL_STATUS`] or [`TIMEOUT_STATUS`].
    pub status: i32,
    /// The debug console output.
    pub debugcon: String,
    /// The COM1 output.
    pub serial: String,
    /// The fatal message when the machine stopped on one.
    pub fatal: Option<String>,
}

/// A host with no input that ends the machine once the time limit is over.
struct LimitHost {
    deadline: Instant,
    exit: MachineExit,
    timed_out: bool,
}

impl LimitHost {
    fn check(&mut self) {
        if Instant::now() >= self.deadline && self.exit.get().is_none() {
            self.timed_out = true;
            self.exit.request(TIMEOUT_STATUS);
        }
    }
}

impl Host for LimitHost {
    fn poll_input(&mut self) -> Vec<u8> {
        self.check();
        Vec::new()
    }

    fn wait(&mut self, timeout: Duration) -> Vec<u8> {
        std::thread::sleep(timeout.min(Duration::from_millis(5)));
        self.check();
        Vec::new()
    }
}

/// A scratch directory for one run.
fn scratch() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rqemu-tests-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `image` (a multiboot image) on the PC with isa-debug-exit at 0xf4, the debug console and COM1 in
/// files and `-no-reboot` (as QEMU's test setups: a triple fault ends the run with status 0 instead of
/// booting the guest again), and returns what it gave; a guest still running after [`TIME_LIMIT`] is stopped.
pub fn run_guest(image: &[u8], backend: Backend) -> GuestRun {
    run_guest_limited(image, backend, TIME_LIMIT)
}

/// [`run_guest`] with the time limit `limit`.
pub fn run_guest_limited(image: &[u8], backend: Backend, limit: Duration) -> GuestRun {
    let Backend::Tci = backend;
    let dir = scratch();
    let (kernel, con, com1) = (dir.join("guest.img"), dir.join("debugcon.txt"), dir.join("com1.txt"));
    std::fs::write(&kernel, image).unwrap();
    let args: Vec<String> = [
        "-kernel".to_string(),
        kernel.display().to_string(),
        "-device".into(),
        "isa-debug-exit,iobase=0xf4,iosize=0x04".into(),
        "-debugcon".into(),
        format!("file:{}", con.display()),
        "-serial".into(),
        format!("file:{}", com1.display()),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
    ]
    .into();
    let opts = match options::parse(&args).expect("options") {
        Action::Run(o) => o,
        other => panic!("{other:?}"),
    };
    let mut exec = rqemu_accel::CpuExec::new(opts.accel).expect("accel");
    let clock = Box::new(rqemu_hw::HostClock::new());
    let mut pc = Pc::new(&opts, clock, exec.exit_request()).expect("machine");
    pc.cpu.attach_invalidate_queue(exec.invalidate_queue());
    let mut host = LimitHost {
        deadline: Instant::now() + limit,
        exit: pc.exit.clone(),
        timed_out: false,
    };
    let outcome = main_loop::run(&mut pc, &mut exec, &mut host);
    drop(pc);
    let read = |p: &PathBuf| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let (debugcon, serial) = (read(&con), read(&com1));
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Outcome::Exit(status) => GuestRun {
            status: if host.timed_out { TIMEOUT_STATUS } else { status },
            debugcon,
            serial,
            fatal: None,
        },
        Outcome::Fatal(msg) => GuestRun {
            status: FATAL_STATUS,
            debugcon,
            serial,
            fatal: Some(msg),
        },
    }
}
