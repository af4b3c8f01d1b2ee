//! Records the target triple this crate is built for, so test summaries can name their host.

fn main() {
    let triple = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=RQEMU_TARGET_TRIPLE={triple}");
    println!("cargo:rerun-if-changed=build.rs");
}
