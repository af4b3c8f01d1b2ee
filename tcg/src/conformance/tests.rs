//! Tests of the suite itself, on the reference backend.

use super::reference::{Bug, Reference};
use super::*;
use crate::opcodes::Opcode;
use crate::types::Type;

#[test]
fn summary_prints_exactly_one_line() {
    let s = Summary {
        backend: "tci".into(),
        host: "wasm32-node".into(),
        ops: 142,
        cases: 123456,
        failures: 0,
        failure_messages: vec!["ignored".into()],
    };
    assert_eq!(
        s.to_string(),
        "conformance: backend=tci host=wasm32-node ops=142 cases=123456 failures=0"
    );
}

#[test]
fn coverage_list_has_every_pair_of_the_table() {
    let list = coverage_list();
    let expected: usize = Opcode::ALL.iter().map(|o| o.valid_types().len()).sum();
    assert_eq!(list.len(), expected);
    assert!(list.contains(&(Opcode::ExtrhI64I32, Type::I32)));
    assert!(!list.contains(&(Opcode::Bswap64, Type::I32)));
}

#[test]
fn a_correct_backend_passes_and_covers_every_pair() {
    let mut b = Reference::default();
    let s = run_suite(&mut b, "test-host");
    assert_eq!(s.failures, 0, "{:#?}", s.failure_messages);
    assert_eq!(s.ops, coverage_list().len());
    assert!(s.cases > 100_000, "{s}");
    println!("{s} ({} TBs compiled)", b.compiled);
}

#[test]
fn a_wrong_result_is_a_failure_naming_op_inputs_and_values() {
    let mut b = Reference {
        bug: Some(Bug::Corrupt(Opcode::Rotr, Type::I32)),
        ..Reference::default()
    };
    let s = run_suite(&mut b, "test-host");
    assert!(s.failures > 0);
    let m = &s.failure_messages[0];
    assert!(
        m.starts_with("rotr_i32 [globals, optimized] inputs=[0x0, 0x0] expected=[0x0]: wo0: expected 0x0 got 0x1"),
        "{m}"
    );
    assert!(s.failure_messages.len() <= 20);
}

#[test]
fn unsupported_pairs_are_skipped_but_refusing_a_supported_one_fails() {
    let mut b = Reference {
        unsupported: vec![(Opcode::Clz, Type::I64)],
        ..Reference::default()
    };
    let s = run_suite(&mut b, "h");
    assert_eq!(s.failures, 0, "{:#?}", s.failure_messages);
    assert_eq!(s.ops, coverage_list().len() - 1);

    let mut b = Reference {
        refused: vec![(Opcode::Ctpop, Type::I32)],
        ..Reference::default()
    };
    let s = run_suite(&mut b, "h");
    assert!(s.failures > 0);
    assert!(
        s.failure_messages.iter().any(|m| m.contains("compile failed")),
        "{:#?}",
        s.failure_messages
    );
    assert!(s
        .failure_messages
        .iter()
        .any(|m| m == "ctpop_i32: supported but never reached the backend"));
}

#[test]
fn backend_mistakes_are_caught() {
    let cases = [
        (Bug::ConstOperand, "[constant inputs"),
        (Bug::WideI32Store, "the 4 bytes after this i32 field were overwritten"),
        (
            Bug::FaultInsnLate,
            "exit expected Fault { insn: 0 } got Fault { insn: 1 }",
        ),
        (Bug::HelperGarbage, "call mix0"),
        (Bug::HelperFaultIgnored, "MAY_FAULT helper"),
        (Bug::NoBswap, "qemu_ld_i32 beuw"),
        (Bug::TruncatedAddress, "qemu_ld_i32 ub"),
        (Bug::DirtyI32, "[globals, i32 results zero-extended, optimized]"),
    ];
    for (bug, needle) in cases {
        let mut b = Reference {
            bug: Some(bug),
            ..Reference::default()
        };
        let s = run_suite(&mut b, "h");
        assert!(s.failures > 0, "{bug:?} went unnoticed");
        let m = &s.failure_messages;
        assert!(m.iter().any(|m| m.contains(needle)), "{bug:?}: {m:#?}");
    }
}
