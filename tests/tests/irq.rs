//! Interrupt guests (see `rqemu_tests::guests::irq`). `irq_mov_ss_shadow`: `popfd` sets TF, so the single-step
//! trap is due after `mov ss`, which holds it over the next `nop` (the #DB frame's EIP is after that nop).

rqemu_tests::guest_tests!(irq_hlt, irq_sti_shadow, irq_mov_ss_shadow, irq_single_step);
