//! The TCG conformance suite on tci, natively.

#[test]
fn conformance() {
    let summary = rqemu_tcg::conformance::run_suite(&mut rqemu_tcg_tci::Tci::new(), rqemu_tcg::HOST_TRIPLE);
    println!("{summary}");
    assert_eq!(summary.failures, 0, "{:#?}", summary.failure_messages);
}
