//! String-instruction fault guests (see `rqemu_tests::guests::rep`).

rqemu_tests::guest_tests!(rep_movsb_fault);
