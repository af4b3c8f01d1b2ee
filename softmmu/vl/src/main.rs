//! `rqemu-system-x86_64`: the emulator binary; everything is in the library (`rqemu_softmmu_vl::run_cli`).

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    // Arguments that are not UTF-8 are an error, not a panic (std::env::args would panic).
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(bad) => {
                eprintln!(
                    "{}: {}: argument is not valid UTF-8",
                    rqemu_softmmu_vl::options::PROG,
                    bad.to_string_lossy()
                );
                std::process::exit(1);
            }
        }
    }
    std::process::exit(rqemu_softmmu_vl::run_cli(args));
}

/// On wasm32 the JS host drives the library; there is no process to run.
#[cfg(target_arch = "wasm32")]
fn main() {}
