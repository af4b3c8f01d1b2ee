//! I/O guests: the debug console, COM1 (whose output is checked here too) and the TSS I/O bitmap at ring 3.

use rqemu_tests::{all, run_guest, Backend};

rqemu_tests::guest_tests!(io_debugcon, io_bitmap);

#[test]
fn io_serial() {
    rqemu_tests::check("io_serial", Backend::Tci);
    let t = all().into_iter().find(|t| t.name == "io_serial").unwrap();
    assert_eq!(run_guest(&t.image, Backend::Tci).serial, "hello com1\n");
}
