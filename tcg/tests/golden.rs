//! Golden tests of the passes between a frontend and a backend.
//!
//! Each `tests/golden/NAME.ir` is IR in the text format. The test parses it, runs `optimize` and `prepare`
//! (verifying the result) and compares both dumps with `NAME.out`; `RQEMU_BLESS=1 cargo test -p rqemu-tcg
//! --test golden` rewrites the `.out` files instead. Every case is also run by a small reference interpreter
//! as written, optimized, prepared and prepared without the optimizer, from several CPU states, and all runs
//! must end the same way with the same CPU state and guest memory.

#[path = "golden/interp.rs"]
mod interp;
#[path = "golden/random.rs"]
mod random;
#[path = "golden/target.rs"]
mod target;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rqemu_tcg::parse::parse;
use rqemu_tcg::prepare::{prepare_with, PrepareOptions};
use rqemu_tcg::{optimize, Func};

use interp::check_same_behaviour;
use random::ProgramGen;
use target::target;

fn no_globals(f: &Func) -> bool {
    f.ops
        .iter()
        .all(|op| op.outs().chain(op.ins()).all(|t| !f.temp(t).is_global()))
}

fn run_case(path: &Path, bless: bool) -> Result<(), String> {
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let input = parse(target(), &text).map_err(|e| format!("{name}.ir: {e}"))?;

    let mut optimized = input.clone();
    optimize::optimize(&mut optimized);
    let checked = PrepareOptions {
        verify_result: true,
        ..PrepareOptions::OPTIMIZED
    };
    let mut prepared = input.clone();
    prepare_with(&mut prepared, checked).map_err(|e| format!("{name}: prepare: {e}"))?;
    let mut unoptimized = input.clone();
    prepare_with(
        &mut unoptimized,
        PrepareOptions {
            verify_result: true,
            ..PrepareOptions::UNOPTIMIZED
        },
    )
    .map_err(|e| format!("{name}: unoptimized prepare: {e}"))?;
    if !no_globals(&prepared) || !no_globals(&unoptimized) {
        return Err(format!("{name}: a global survived prepare"));
    }
    check_same_behaviour(
        &name,
        &input,
        &[
            ("optimize", &optimized, false),
            ("prepare", &prepared, false),
            ("prepare with shared slots", &prepared, true),
            ("unoptimized prepare", &unoptimized, false),
            ("unoptimized prepare with shared slots", &unoptimized, true),
        ],
    )?;

    let mut actual = String::new();
    let _ = write!(
        actual,
        "# optimize\n{}\n# prepare\n{}",
        optimized.dump(),
        prepared.dump()
    );
    let out_path = path.with_extension("out");
    if bless {
        std::fs::write(&out_path, &actual).map_err(|e| format!("{name}: {e}"))?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&out_path).unwrap_or_default();
    if expected != actual {
        return Err(format!(
            "{name}: output differs from {name}.out\n--- expected\n{expected}--- actual\n{actual}"
        ));
    }
    Ok(())
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn golden() {
    let bless = std::env::var("RQEMU_BLESS").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ir"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "only {} golden cases", cases.len());
    let failures: Vec<String> = cases.iter().filter_map(|p| run_case(p, bless).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_expected_output_has_an_input() {
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "out") {
            assert!(p.with_extension("ir").exists(), "{} has no .ir", p.display());
        }
    }
}

#[test]
fn random_programs_keep_their_meaning() {
    let checked = PrepareOptions {
        verify_result: true,
        ..PrepareOptions::OPTIMIZED
    };
    let unoptimized = PrepareOptions {
        verify_result: true,
        ..PrepareOptions::UNOPTIMIZED
    };
    for seed in 0..3000 {
        let input = ProgramGen::new(seed).program();
        if let Err(e) = rqemu_tcg::verify::verify(&input) {
            panic!("generator bug (seed {seed}): {e}\n{}", input.dump());
        }
        let text = input.dump();
        let reparsed = parse(target(), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(reparsed.dump(), text, "dump, parse, dump changed the text");
        let mut optimized = input.clone();
        optimize::optimize(&mut optimized);
        let mut prepared = input.clone();
        let mut plain = input.clone();
        let result = prepare_with(&mut prepared, checked)
            .and_then(|_| prepare_with(&mut plain, unoptimized))
            .map_err(|e| e.to_string())
            .and_then(|_| {
                check_same_behaviour(
                    &format!("random program {seed}"),
                    &input,
                    &[
                        ("optimize", &optimized, false),
                        ("prepare", &prepared, false),
                        ("prepare with shared slots", &prepared, true),
                        ("unoptimized prepare", &plain, false),
                        ("unoptimized prepare with shared slots", &plain, true),
                    ],
                )
            });
        if let Err(e) = result {
            panic!(
                "{e}\n--- input\n{}--- optimized\n{}--- prepared\n{}",
                input.dump(),
                optimized.dump(),
                prepared.dump()
            );
        }
    }
}
