//! Bare-metal guests on this host: the `guest_*` exports build the PC of `rqemu-softmmu-vl` from a multiboot
//! image the runner copied into linear memory and run it ([`rqemu_softmmu_vl::machine`]: virtual time, the
//! debug console and COM1 captured). On wasm32 the accel's default backends are tci as the first tier and the
//! wasm32 backend as the hot tier, so hot guest code runs as WebAssembly compiled by V8.
//!
//! The protocol (`tests/wasm/run.mjs guest <dir>`):
//! 1. `guest_alloc(len) -> ptr` reserves `len` bytes; the runner copies the image (and the command line)
//!    there;
//! 2. `guest_run(ptr, len, cmdline_ptr, cmdline_len) -> i32` runs the image to its end, at most
//!    [`SLICE_BUDGET`] slices, and returns the exit status: isa-debug-exit's `(v << 1) | 1`, 1 for a fatal
//!    stop, [`STATUS_BUDGET`] when the budget ran out, [`STATUS_START_ERROR`] when the machine could not
//!    be built;
//! 3. `guest_output_ptr(kind)` / `guest_output_len(kind)` give the last run's output: kind 0 the debug
//!    console, 1 COM1, 2 the fatal or start error (empty after an exit), 3 the tiering counters
//!    (`tbs=.. cold_runs=.. hot_runs=.. hot_tbs=.. modules=..`);
//! 4. `guest_free(ptr, len)` releases what `guest_alloc` gave.

use std::cell::RefCell;

use rqemu_softmmu_vl::machine::{Machine, MachineConfig, RunEnd};

use crate::host;

/// Slices a guest may run (each up to 8192 TBs, or one jump of virtual time while halted): far more than
/// the guest tests need, small enough that a guest that never ends fails in seconds.
pub const SLICE_BUDGET: u64 = 20_000;
/// The status of a guest that did not end within [`SLICE_BUDGET`] (even: isa-debug-exit cannot give it).
pub const STATUS_BUDGET: i32 = -2;
/// The status when the image could not be loaded.
pub const STATUS_START_ERROR: i32 = -1;

/// The last run's outputs, by kind.
#[derive(Default)]
struct Outputs {
    kinds: [Vec<u8>; 4],
}

thread_local! {
    static LAST: RefCell<Outputs> = RefCell::new(Outputs::default());
}

/// Reserves `len` bytes for the runner to fill; released by [`guest_free`] with the same `len`.
#[no_mangle]
pub extern "C" fn guest_alloc(len: usize) -> *mut u8 {
    host::install_panic_hook();
    let mut buf = std::mem::ManuallyDrop::new(vec![0u8; len.max(1)]);
    buf.as_mut_ptr()
}

/// Releases a buffer of [`guest_alloc`].
///
/// # Safety
/// `ptr` and `len` must be a pair `guest_alloc` returned and not released yet.
#[no_mangle]
pub unsafe extern "C" fn guest_free(ptr: *mut u8, len: usize) {
    let len = len.max(1);
    // SAFETY: the caller gives back what guest_alloc leaked: a Vec of exactly this length and capacity.
    drop(unsafe { Vec::from_raw_parts(ptr, len, len) });
}

/// Runs the multiboot image at `ptr..ptr + len` with the command line at `cmdline_ptr..+cmdline_len`
/// (UTF-8; invalid bytes are replaced) and returns its status (see the module doc).
///
/// # Safety
/// Both ranges must be readable memory of this module (buffers of [`guest_alloc`]).
#[no_mangle]
pub unsafe extern "C" fn guest_run(ptr: *const u8, len: usize, cmdline_ptr: *const u8, cmdline_len: usize) -> i32 {
    host::install_panic_hook();
    // SAFETY: the caller passes buffers it filled in this module's memory.
    let image = unsafe { std::slice::from_raw_parts(ptr, len) };
    // SAFETY: as above.
    let cmdline = unsafe { std::slice::from_raw_parts(cmdline_ptr, cmdline_len) };
    let config = MachineConfig {
        cmdline: String::from_utf8_lossy(cmdline).into_owned(),
        // As the native guest runner passes -no-reboot: a triple fault ends the run with status 0.
        no_reboot: true,
        ..MachineConfig::default()
    };
    let (status, outputs) = run(image, &config);
    LAST.with(|l| *l.borrow_mut() = outputs);
    status
}

/// Builds and runs one machine; the status and the outputs.
fn run(image: &[u8], config: &MachineConfig) -> (i32, Outputs) {
    let mut machine = match Machine::from_multiboot_bytes(image, config) {
        Ok(m) => m,
        Err(e) => {
            return (
                STATUS_START_ERROR,
                Outputs {
                    kinds: [Vec::new(), Vec::new(), e.0.into_bytes(), Vec::new()],
                },
            )
        }
    };
    let r = machine.run(SLICE_BUDGET);
    let tiers = machine.exec().tier_stats();
    let message = match &r.end {
        RunEnd::Fatal(msg) => msg.clone(),
        RunEnd::Budget => format!("did not end within {SLICE_BUDGET} slices"),
        RunEnd::Exit(_) => String::new(),
    };
    let tiers = format!(
        "tbs={} cold_runs={} hot_runs={} hot_tbs={} modules={}",
        tiers.tbs, tiers.cold_runs, tiers.hot_runs, tiers.hot_tbs, tiers.modules
    );
    let status = r.exit_status().unwrap_or(STATUS_BUDGET);
    (
        status,
        Outputs {
            kinds: [r.debugcon, r.serial, message.into_bytes(), tiers.into_bytes()],
        },
    )
}

/// The last run's output of `kind` (0 debug console, 1 COM1, 2 error message, 3 tier counters): its address
/// (null for an unknown kind).
#[no_mangle]
pub extern "C" fn guest_output_ptr(kind: u32) -> *const u8 {
    LAST.with(|l| {
        l.borrow()
            .kinds
            .get(kind as usize)
            .map_or(std::ptr::null(), |v| v.as_ptr())
    })
}

/// The last run's output of `kind`: its length in bytes (0 for an unknown kind).
#[no_mangle]
pub extern "C" fn guest_output_len(kind: u32) -> usize {
    LAST.with(|l| l.borrow().kinds.get(kind as usize).map_or(0, Vec::len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_run_an_image_and_keep_its_output() {
        // Multiboot header (a.out kludge at 1 MiB), then "ok\n" on port 0xe9 and 0x2a to isa-debug-exit.
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
        img.extend_from_slice(&[
            0x66, 0xba, 0xe9, 0x00, 0xb0, b'o', 0xee, 0xb0, b'k', 0xee, 0xb0, b'\n', 0xee, 0xb0, 0x2a, 0xe6, 0xf4, 0xf4,
        ]);
        let p = guest_alloc(img.len());
        // SAFETY: p has img.len() bytes; the buffer is released below with the same length.
        unsafe {
            std::ptr::copy_nonoverlapping(img.as_ptr(), p, img.len());
            assert_eq!(guest_run(p, img.len(), b"ok.img".as_ptr(), 6), 85);
            let out = std::slice::from_raw_parts(guest_output_ptr(0), guest_output_len(0));
            assert_eq!(out, b"ok\n");
            guest_free(p, img.len());
            assert_eq!(guest_run(b"junk".as_ptr(), 4, b"x".as_ptr(), 1), STATUS_START_ERROR);
        }
        assert_eq!(guest_output_len(0), 0);
        assert!(guest_output_len(2) > 0);
        assert_eq!(guest_output_len(7), 0);
    }
}
