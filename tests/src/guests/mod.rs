//! The guest programs, one module per area; each gives its [`GuestTest`]s.

use crate::GuestTest;

pub mod exceptions;
pub mod io;
pub mod irq;
pub mod modes;
pub mod paging;
pub mod privilege;
pub mod rep;
pub mod smc;

/// Every guest test.
pub fn all() -> Vec<GuestTest> {
    let mut v = Vec::new();
    for area in [
        io::tests(),
        modes::tests(),
        paging::tests(),
        exceptions::tests(),
        privilege::tests(),
        smc::tests(),
        rep::tests(),
        irq::tests(),
    ] {
        v.extend(area);
    }
    v
}

/// A passing guest test: status 1 (isa-debug-exit value 0) and `output`.
pub(crate) fn pass(name: &'static str, g: crate::asm::Guest, output: &str) -> GuestTest {
    GuestTest {
        name,
        image: g.image(),
        status: 1,
        output: output.to_string(),
    }
}
