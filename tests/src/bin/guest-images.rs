//! `guest-images DIR`: writes every guest test's image (`<name>.img`) and expectation (`<name>.expect`:
//! the exit status on the first line, then the debug console output exactly) into DIR, for the Node runner
//! of tests/wasm. Guests listed in `rqemu_tests::KNOWN_GAPS` are left out.

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: guest-images DIR");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the directory");
    for t in rqemu_tests::all() {
        if let Some(why) = rqemu_tests::known_gap(t.name) {
            println!("guest-images: {} left out (known gap: {why})", t.name);
            continue;
        }
        std::fs::write(dir.join(format!("{}.img", t.name)), &t.image).expect("write the image");
        std::fs::write(dir.join(format!("{}.expect", t.name)), t.expect_file()).expect("write the expectation");
    }
}
