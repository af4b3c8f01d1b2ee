//! Paging guests (see `rqemu_tests::guests::paging`).

rqemu_tests::guest_tests!(paging_sizes, paging_protection, paging_user, paging_tlb, paging_pae);
