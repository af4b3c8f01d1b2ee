//! Bare-metal guest tests for rqemu: small multiboot programs assembled with iced-x86, each exercising
//! one area of the x86 system architecture, run on the PC machine of `rqemu-softmmu-vl` in-process.
//!
//! | module | holds |
//! |---|---|
//! | [`asm`] | the image layout, [`asm::Guest`] (sections of 16/32/64-bit code, data), the setup snippets |
//! | [`tables`] | the GDT, IDT, TSS and page tables every guest gets |
//! | [`run`] | [`run::run_guest`]: the machine in-process, with a wall-clock limit |
//! | [`guests`] | the guest programs, one module per area, with their expected output |
//! | [`bench`] | the benchmark kernels of `cargo xtask bench guest` (not tests) |
//!
//! The report convention: a guest writes text lines on the debug console (port 0xe9), one per check, and
//! ends through isa-debug-exit (port 0xf4): writing `v` ends the machine with status `(v << 1) | 1`; a
//! guest writes 0 when every check passed, so status 1 means pass.

pub mod asm;
pub mod bench;
pub mod guests;
pub mod run;
pub mod tables;

pub use run::{run_guest, run_guest_limited, Backend, GuestRun};

/// One guest test: its image and what running it must give.
#[derive(Clone, Debug)]
pub struct GuestTest {
    /// The test's name (the file name of its image).
    pub name: &'static str,
    /// The multiboot image.
    pub image: Vec<u8>,
    /// The expected exit status of the machine.
    pub status: i32,
    /// The expected debug console output, exactly.
    pub output: String,
}

impl GuestTest {
    /// The `.expect` file: the status on the first line, then the debug console output exactly.
    pub fn expect_file(&self) -> String {
        format!("{}\n{}", self.status, self.output)
    }
}

/// Every guest test of every area.
pub fn all() -> Vec<GuestTest> {
    guests::all()
}

/// Guests that show a gap in rqemu (their `#[test]`s are `#[ignore]`d with the same reason): the Node runner
/// does not get them, so that `cargo xtask test` stays a statement about what works. Remove an entry when the
/// gap closes.
pub const KNOWN_GAPS: &[(&str, &str)] = &[];

/// Why guest `name` is left out of the Node run, if it is.
pub fn known_gap(name: &str) -> Option<&'static str> {
    KNOWN_GAPS.iter().find(|(n, _)| *n == name).map(|(_, why)| *why)
}

/// Runs the guest test `name` on `backend` and panics with the output when status or output differ.
pub fn check(name: &str, backend: Backend) {
    let t = all()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no guest test {name}"));
    let r = run_guest(&t.image, backend);
    assert_eq!(
        (r.status, r.debugcon.as_str()),
        (t.status, t.output.as_str()),
        "guest {name}: fatal: {:?}\nserial: {:?}",
        r.fatal,
        r.serial
    );
}

/// Defines one `#[test]` per named guest test, run on tci.
#[macro_export]
macro_rules! guest_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::check(stringify!($name), $crate::Backend::Tci);
            }
        )*
    };
}
