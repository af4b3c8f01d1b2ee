//! The emulator's imports from `tcg/wasm32/js/tb-host.mjs` (import module `rqemu_tb`), wrapped in safe
//! functions. Only the JS host can compile and instantiate a module; everything else (what to compile, when
//! to evict) is decided in Rust.

#[link(wasm_import_module = "rqemu_tb")]
extern "C" {
    /// Compiles and instantiates a module, writes the table slot of export `tb{i}` at `out[i]`; returns a
    /// handle > 0, or -1 (see `last_error`).
    fn instantiate(bytes: *const u8, len: usize, nexports: u32, out: *mut u32) -> i32;
    /// Nulls the module's slots and drops its instance.
    fn release(handle: i32);
    /// 1 when the engine validates `return_call`.
    fn tail_calls_supported() -> i32;
    /// Copies the last failure message to `ptr` (at most `cap` bytes); returns its full length.
    fn last_error(ptr: *mut u8, cap: usize) -> usize;
    /// Milliseconds from `performance.now()`.
    fn now() -> f64;
}

/// A live instance in the JS host; dropping it releases the instance and frees its table slots.
#[derive(Debug)]
pub struct Instance {
    handle: i32,
}

impl Instance {
    /// Instantiates `bytes`, whose exports `tb0..tb{n}` are placed in the table; returns the instance and the
    /// table slot of each export (on wasm32 a table slot is a function pointer).
    pub fn new(bytes: &[u8], nexports: usize) -> Result<(Instance, Vec<u32>), String> {
        let n = u32::try_from(nexports).map_err(|_| format!("{nexports} exports"))?;
        let mut slots = vec![0u32; nexports];
        // SAFETY: `bytes` and `slots` are live buffers of the stated lengths in this module's memory; the
        // host reads the first and writes exactly `nexports` u32s to the second.
        let handle = unsafe { instantiate(bytes.as_ptr(), bytes.len(), n, slots.as_mut_ptr()) };
        if handle <= 0 {
            return Err(error_message());
        }
        Ok((Instance { handle }, slots))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: the handle came from `instantiate` and is released once; nobody calls its slots after this
        // (every `CompiledTb` holding one keeps the `Instance` alive through an `Rc`).
        unsafe { release(self.handle) }
    }
}

/// Whether the engine has Wasm tail calls (`return_call`), as the JS host detected at start-up.
pub fn tail_calls() -> bool {
    // SAFETY: no arguments, no memory access.
    unsafe { tail_calls_supported() != 0 }
}

/// Milliseconds on the host's monotonic clock.
pub fn now_ms() -> f64 {
    // SAFETY: no arguments, no memory access.
    unsafe { now() }
}

fn error_message() -> String {
    let mut buf = vec![0u8; 512];
    // SAFETY: the host writes at most `buf.len()` bytes into the live buffer.
    let len = unsafe { last_error(buf.as_mut_ptr(), buf.len()) };
    buf.truncate(len.min(512));
    String::from_utf8_lossy(&buf).into_owned()
}
