//! `bench-images DIR ROUNDS`: writes the benchmark guests of `rqemu_tests::bench` (`<name>.img`, and
//! `<name>.expect`: the exit status, 1, on the first line, then the debug console output a correct run gives,
//! as `guest-images` writes them) into DIR, for `cargo xtask bench guest`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(rounds)) = (args.first(), args.get(1).and_then(|r| r.parse::<u32>().ok())) else {
        eprintln!("usage: bench-images DIR ROUNDS");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the directory");
    let b = rqemu_tests::bench::compute(rounds);
    std::fs::write(dir.join(format!("{}.img", b.name)), &b.image).expect("write the image");
    std::fs::write(dir.join(format!("{}.expect", b.name)), format!("1\n{}", b.output)).expect("write the expectation");
}
