//! rqemu's execution layer. For now it holds backend selection; the CPU execution loop, the TB cache,
//! chaining and tiering arrive with the x86-64 CPU issue.

pub mod backends;

pub use backends::{available_backends, create_backend};
