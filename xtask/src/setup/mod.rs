//! Getting the machine ready: the system packages xtask needs beyond rustup's toolchain ([`deps`]).

pub mod deps;
