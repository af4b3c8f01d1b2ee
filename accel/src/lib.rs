//! rqemu's execution layer. For now it holds backend selection ([`backends`]) and the tiering policy
//! ([`tiering`]); the CPU execution loop, the TB cache and chaining arrive with the x86-64 CPU issue.

pub mod backends;
pub mod tiering;

pub use backends::{available_backends, create_backend};
pub use tiering::{RunExit, TbId, TierConfig, TierStats, Tiering};
