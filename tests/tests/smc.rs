//! Self-modifying code guests (see `rqemu_tests::guests::smc`). `smc_same_tb` stores the new immediate of
//! `mov eax, 0x11` (0x22) two nops before it, in the same TB: x86 runs the patched instruction (eax = 0x22).

rqemu_tests::guest_tests!(smc_same_page, smc_cross_page, smc_same_tb);
