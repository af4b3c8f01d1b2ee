//! Exception guests (see `rqemu_tests::guests::exceptions`).

use rqemu_tests::{all, run_guest, Backend};

rqemu_tests::guest_tests!(
    exceptions_pm,
    exceptions_pf_pm,
    exceptions_long,
    exceptions_double_fault,
    exceptions_segment_limit
);

/// A triple fault is a reset request; under the runner's `-no-reboot` it ends the machine with status 0
/// (QEMU's), quietly: no fatal stop.
#[test]
fn exceptions_triple_fault() {
    rqemu_tests::check("exceptions_triple_fault", Backend::Tci);
    let t = all().into_iter().find(|t| t.name == "exceptions_triple_fault").unwrap();
    assert_eq!(t.status, 0);
    let r = run_guest(&t.image, Backend::Tci);
    assert_eq!((r.status, r.fatal), (0, None));
}
