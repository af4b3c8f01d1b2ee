//! The framework itself: a guest whose output or status differs from its expectation fails the check,
//! and a guest that never ends is stopped by the time limit.

use std::time::Duration;

use rqemu_tests::asm::{exit, print, Guest};
use rqemu_tests::run::TIMEOUT_STATUS;
use rqemu_tests::{run_guest, run_guest_limited, Backend};

fn failing() -> Vec<u8> {
    let mut g = Guest::new();
    g.entry(|a| {
        print(a, "FAIL something\n")?;
        exit(a, 1)
    });
    g.image()
}

#[test]
fn a_failing_guest_reports_its_status_and_output() {
    let r = run_guest(&failing(), Backend::Tci);
    assert_eq!((r.status, r.debugcon.as_str()), (3, "FAIL something\n"));
}

#[test]
#[should_panic(expected = "guest")]
fn a_check_with_the_wrong_output_fails() {
    let mut t = rqemu_tests::all()
        .into_iter()
        .find(|t| t.name == "io_debugcon")
        .unwrap();
    t.output.push('x');
    let r = run_guest(&t.image, Backend::Tci);
    assert_eq!((r.status, r.debugcon.as_str()), (t.status, t.output.as_str()), "guest");
}

#[test]
fn a_guest_that_never_ends_is_stopped() {
    let mut g = Guest::new();
    g.entry(|a| {
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.jmp(l)
    });
    let r = run_guest_limited(&g.image(), Backend::Tci, Duration::from_millis(300));
    assert_eq!(r.status, TIMEOUT_STATUS);
}

#[test]
fn every_guest_has_a_unique_name() {
    let mut names: Vec<_> = rqemu_tests::all().iter().map(|t| t.name).collect();
    let n = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n);
}

#[test]
fn every_known_gap_names_a_guest() {
    let names: Vec<&str> = rqemu_tests::all().iter().map(|t| t.name).collect();
    for (gap, _) in rqemu_tests::KNOWN_GAPS {
        assert!(names.contains(gap), "KNOWN_GAPS names {gap}, which is not a guest");
    }
}
