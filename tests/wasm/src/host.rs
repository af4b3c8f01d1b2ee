//! The module's window on its host: text output, a clock and the panic hook.
//!
//! On wasm32 these are the functions `tests/wasm/run.mjs` passes in the `env` import module:
//! `host_write(ptr, len)` writes UTF-8 bytes to stdout and `host_now()` returns seconds from
//! `performance.now()`. Natively (unit tests, `cargo check`) they fall back to stdout and
//! `std::time::Instant`, so the exports can be exercised without Node.

use core::fmt;

#[cfg(target_arch = "wasm32")]
mod imports {
    #[link(wasm_import_module = "env")]
    extern "C" {
        /// Writes `len` bytes of UTF-8 at `ptr` (in this module's memory) to stdout.
        pub fn host_write(ptr: *const u8, len: usize);
        /// Seconds since an arbitrary origin, with sub-millisecond resolution.
        pub fn host_now() -> f64;
    }
}

/// Writes `s` to the host's stdout.
pub fn write(s: &str) {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the pointer and length describe a live `str` in linear memory, which the host only reads.
    unsafe {
        imports::host_write(s.as_ptr(), s.len())
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::io::Write;
        let _ = std::io::stdout().write_all(s.as_bytes());
    }
}

/// The host clock in seconds, for benchmarks.
pub fn now() -> f64 {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: the import takes no arguments and only reads the host's clock.
    unsafe {
        imports::host_now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64()
    }
}

/// A `fmt::Write` sink for [`write`]; used by the `outln!` macro.
pub struct Out;

impl fmt::Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write(s);
        Ok(())
    }
}

/// Prints one line through the host.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::host::Out, $($arg)*);
    }};
}
pub(crate) use outln;

/// On wasm32, makes a panic print its message and location through the host before the module aborts
/// (the abort is a Wasm trap, which `run.mjs` reports). Natively the default hook is kept.
pub fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| outln!("panic: {info}")));
        });
    }
}
