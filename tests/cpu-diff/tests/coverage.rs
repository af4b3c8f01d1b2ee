//! Every mnemonic rqemu implements is fuzzed (or excluded with a reason), and the `## Differential coverage`
//! section of docs/target-i386.md is what `coverage::doc_section` generates. `RQEMU_BLESS=1 cargo test -p
//! rqemu-tests-cpu-diff --test coverage` (or `cargo xtask bless`) rewrites the section.

use rqemu_tests_cpu_diff::coverage::{self, Probe, EXCLUDED};
use rqemu_tests_cpu_diff::generate::PENDING_FAMILIES;
use std::path::PathBuf;
use std::sync::OnceLock;

fn probe() -> &'static Probe {
    static P: OnceLock<Probe> = OnceLock::new();
    P.get_or_init(coverage::probe)
}

#[test]
fn every_implemented_mnemonic_is_generated_or_excluded() {
    let p = probe();
    let uncovered = coverage::uncovered(p);
    // Newly implemented mnemonics of a pending family: name the family, whose removal from PENDING_FAMILIES
    // (once all of it is implemented) is the fix.
    let pending: Vec<String> = uncovered
        .iter()
        .filter_map(|m| {
            let f = PENDING_FAMILIES.iter().find(|f| f.mnemonics().contains(m))?;
            Some(format!("{m:?} ({f:?})"))
        })
        .collect();
    assert!(
        pending.is_empty(),
        "rqemu now implements these mnemonics of pending families: {pending:?}. When the whole family works, remove \
         it from generate::PENDING_FAMILIES (check with `cargo xtask fuzz-cpu --families <family>`), re-record the \
         vectors (tests/recorded_vectors.rs) and bless the docs"
    );
    assert!(
        uncovered.is_empty(),
        "rqemu implements these but no generator family draws them: {uncovered:?} (add them to a family in \
         generate.rs, or to coverage::EXCLUDED with a reason)"
    );
    // The other direction: fuzzing something rqemu does not implement would only produce mismatches.
    let unimplemented: Vec<_> = coverage::generated_mnemonics()
        .difference(&p.implemented)
        .copied()
        .collect();
    assert!(
        unimplemented.is_empty(),
        "generated but #UD in rqemu: {unimplemented:?}"
    );
    for (m, _) in EXCLUDED {
        assert!(
            p.implemented.contains(m),
            "{m:?} is excluded but not implemented: drop it from EXCLUDED"
        );
    }
}

#[test]
fn every_implemented_32_bit_only_mnemonic_is_generated_or_excluded() {
    let p32 = coverage::probe32();
    let uncovered = coverage::uncovered32(&p32);
    assert!(
        uncovered.is_empty(),
        "rqemu implements these 32-bit-only mnemonics but no family draws them in 32-bit code: {uncovered:?} (add \
         them to a family in generate.rs, or to coverage::EXCLUDED_32 with a reason)"
    );
    let gen32 = coverage::generated_mnemonics_32();
    for m in [
        iced_x86::Mnemonic::Aaa,
        iced_x86::Mnemonic::Pushad,
        iced_x86::Mnemonic::Into,
        iced_x86::Mnemonic::Bound,
        iced_x86::Mnemonic::Arpl,
    ] {
        assert!(p32.implemented.contains(&m), "{m:?} is 32-bit-only and implemented");
    }
    // Generated 32-bit-only mnemonics must be implemented (they would only produce mismatches otherwise).
    let only32: Vec<_> = gen32
        .difference(&coverage::generated_mnemonics())
        .filter(|m| !p32.implemented.contains(m))
        .copied()
        .collect();
    assert!(
        only32.is_empty(),
        "generated in 32-bit code but #UD in rqemu: {only32:?}"
    );
    for (m, _) in coverage::EXCLUDED_32 {
        assert!(p32.implemented.contains(m), "{m:?} is excluded but not implemented");
    }
}

#[test]
fn probing_tells_ud_from_translated() {
    let p = probe();
    for m in [
        iced_x86::Mnemonic::Add,
        iced_x86::Mnemonic::Movdqa,
        iced_x86::Mnemonic::Jmp,
        iced_x86::Mnemonic::Addps,
    ] {
        assert!(p.implemented.contains(&m), "{m:?}");
    }
    for m in [
        iced_x86::Mnemonic::Ud2,
        iced_x86::Mnemonic::Vaddps,
        iced_x86::Mnemonic::Pclmulqdq,
    ] {
        assert!(!p.implemented.contains(&m), "{m:?}");
    }
    assert!(p.probed > 1000, "only {} codes probed", p.probed);
}

#[test]
fn per_extension_coverage_is_consistent() {
    let p = probe();
    let rows = coverage::extension_coverage(p);
    assert_eq!(rows.len(), coverage::FP_SIMD.len());
    for e in &rows {
        // Everything fuzzed in the default mix is implemented (the whole-ISA test says so too, per mnemonic).
        assert!(
            e.fuzzed.is_subset(&e.implemented),
            "{:?}: fuzzed but not implemented",
            e.feature
        );
        assert!(e.implemented.is_subset(&e.all) && e.pending.is_subset(&e.all));
        assert!(e.fuzzed.is_disjoint(&e.pending), "{:?}", e.feature);
    }
    let row = |f| rows.iter().find(|e| e.feature == f).unwrap();
    use iced_x86::{CpuidFeature as F, Mnemonic as M};
    // Every family is in the default mix now: SSE arithmetic, pshufb, pcmpistri and x87 fadd are fuzzed.
    assert!(row(F::SSE).fuzzed.contains(&M::Addps));
    assert!(row(F::SSSE3).fuzzed.contains(&M::Pshufb));
    assert!(row(F::SSE4_2).fuzzed.contains(&M::Pcmpistri));
    assert!(row(F::FPU).fuzzed.contains(&M::Fadd));
    assert!(row(F::SSE).fuzzed.contains(&M::Movaps));
    assert!(rows.iter().all(|e| e.pending.is_empty()));
    // Every mnemonic of the SIMD extensions and of the x87 is drawn by some family, or is one of the few left
    // out on purpose (see generate/simd.rs) or a control instruction outside the families' scope.
    let left_out = [
        M::Maskmovq,
        M::Maskmovdqu,
        M::Monitor,
        M::Mwait,
        M::Fxsave,
        M::Fxrstor,
        M::Fxsave64,
        M::Fxrstor64,
        // 8087/287 controls that are no-ops since the 387 (feni, fdisi, fsetpm and their no-wait forms).
        M::Feni,
        M::Fneni,
        M::Fdisi,
        M::Fndisi,
        M::Fsetpm,
        M::Fnsetpm,
        // An undocumented alias encoding of fstp st(i) (D9 D8+i); fstp's documented forms are drawn.
        M::Fstpnce,
    ];
    let undrawn: Vec<_> = rows
        .iter()
        .flat_map(|e| e.all.iter().map(move |m| (e.feature, *m)))
        .filter(|(f, m)| {
            let e = row(*f);
            !(e.fuzzed.contains(m) || e.pending.contains(m) || left_out.contains(m))
        })
        .collect();
    assert!(undrawn.is_empty(), "drawn by no family: {undrawn:?}");
}

#[test]
fn docs_coverage_section_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/target-i386.md");
    let doc = std::fs::read_to_string(&path).expect("docs/target-i386.md exists");
    const HEADING: &str = "## Differential coverage\n";
    let want = coverage::doc_section(probe());
    let start = doc.find(HEADING);
    let end = start.map(|s| {
        doc[s + HEADING.len()..]
            .find("\n## ")
            .map_or(doc.len(), |e| s + HEADING.len() + e + 1)
    });
    if std::env::var("RQEMU_BLESS").is_ok_and(|v| !v.is_empty() && v != "0") {
        let updated = match (start, end) {
            (Some(s), Some(e)) => format!("{}{}{}", &doc[..s], want, &doc[e..]),
            _ => format!("{}\n{}", doc.trim_end_matches('\n').to_string() + "\n", want),
        };
        std::fs::write(&path, updated).expect("write docs/target-i386.md");
    } else {
        let (s, e) = (
            start.expect("docs/target-i386.md has a `## Differential coverage` section"),
            end.unwrap(),
        );
        let have = &doc[s..e];
        if have != want {
            let first = have.lines().zip(want.lines()).find(|(a, b)| a != b);
            panic!("docs/target-i386.md's coverage section is stale (run `cargo xtask bless`); first difference:\n{first:#?}");
        }
    }
}
