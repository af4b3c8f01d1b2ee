//! Mode-switching guests (see `rqemu_tests::guests::modes`).

rqemu_tests::guest_tests!(modes_long, modes_compat, modes_real);
