//! rqemu's execution layer (QEMU's accel/tcg): the CPU execution loop ([`cpu_exec`]), the TB cache with
//! its jump cache, hash table, links, size bound and invalidation ([`tb_cache`], [`tb`]), the translator
//! loop that drives a target's hooks ([`translator`]), the interface a guest CPU implements ([`cpu`]),
//! `-accel tcg,...` options ([`accel_options`]), `-d`/`-D` logging ([`log`]), backend selection
//! ([`backends`]) and the tiering policy ([`tiering`]), which owns the TBs' code.

pub mod accel_options;
pub mod backends;
pub mod cpu;
pub mod cpu_exec;
pub mod log;
pub mod tb;
pub mod tb_cache;
pub mod tiering;
pub mod translator;

pub use accel_options::{AccelOptionError, AccelOptions};
pub use backends::{available_backends, create_backend};
pub use cpu::{CodeFault, CpuAction, CpuOps, TbKey, TbKeyFn, TranslateError};
pub use cpu_exec::{
    helper_lookup_tb_ptr, lookup_tb_ptr_helper, request_exit_in_env, CpuExec, ExecError, ExecStats, ExitRequest,
    InvalidateQueue, StopReason,
};
pub use log::{LogBuffer, LogError, LogGuard, LogMask, LogOptions, LogSink, LogSubscriber};
pub use tb_cache::JumpCacheHandle;
pub use tiering::{RunExit, TbId, TierConfig, TierStats, Tiering};
pub use translator::{translator_loop, DisasBase, DisasJump, TranslatorOps};
