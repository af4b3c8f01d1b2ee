//! Privilege guests (see `rqemu_tests::guests::privilege`).

rqemu_tests::guest_tests!(
    privilege_ring3_pm,
    privilege_sysenter,
    privilege_syscall,
    privilege_callgate64
);
