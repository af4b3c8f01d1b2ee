//! Link arguments for the wasm32 build: the emulator's function table must be exported
//! (`__indirect_function_table`) and growable, because `tcg/wasm32/js/tb-host.mjs` places the functions of
//! compiled TB modules in it. Passed here rather than through RUSTFLAGS so that only this cdylib's link
//! changes and the `-Zbuild-std` build of std is not invalidated.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-cdylib-link-arg=--export-table");
        println!("cargo:rustc-cdylib-link-arg=--growable-table");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
