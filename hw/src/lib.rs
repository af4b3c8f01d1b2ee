//! rqemu's PC devices and boot loaders.
//!
//! Every device is a plain state machine behind softmmu's [`MmioDevice`](rqemu_softmmu::MmioDevice): an access
//! arrives as `read(offset, size)` / `write(offset, size, value)`; interrupts leave through [`IrqLine`]
//! handles; bytes leave through a [`CharSink`]; time comes from the [`VirtualClock`] and deadlines go to
//! [`Timers`]. No device does I/O of its own or exits the process: the machine wires sinks to stdio or files
//! and polls [`MachineExit`].
//!
//! | module | holds |
//! |---|---|
//! | [`irq`] | [`IrqLine`]: a device's output connected to one interrupt-controller input |
//! | [`chardev`] | [`CharSink`] (bytes out) and [`CharInput`] (bytes in) between devices and the host |
//! | [`clock`] | [`VirtualClock`] over a [`ClockSource`], and the [`Timers`] deadline list |
//! | [`serial`] | the 16550A UART |
//! | [`i8259`] | the cascaded 8259A interrupt controllers and the ELCR |
//! | [`i8254`] | the 8254 interval timer |
//! | [`pcspk`] | port 0x61: PIT channel 2 gate and output, speaker enable, refresh toggle |
//! | [`isa_debug_exit`] | QEMU's `isa-debug-exit`: a port write requests a machine exit |
//! | [`debugcon`] | QEMU's `isa-debugcon` on port 0xe9 |
//! | [`loader`] | multiboot v1 kernels and `-bios` flat images |
//!
//! Nothing here panics on what a guest or an image does: bad images are errors naming the problem, and
//! register accesses of any offset or size are answered.

#![warn(missing_docs)]

pub mod chardev;
pub mod clock;
pub mod debugcon;
pub mod i8254;
pub mod i8259;
pub mod irq;
pub mod isa_debug_exit;
pub mod loader;
pub mod pcspk;
pub mod serial;

pub use chardev::{CharInput, CharSink, MemSink, WriteSink};
#[cfg(not(target_arch = "wasm32"))]
pub use clock::HostClock;
pub use clock::{ClockSource, ManualClock, TimerCallback, TimerId, Timers, VirtualClock};
pub use debugcon::DebugCon;
pub use i8254::Pit;
pub use i8259::{DualPic, ElcrPort, PicPort};
pub use irq::{IrqHandler, IrqLine, IrqRecorder};
pub use isa_debug_exit::{IsaDebugExit, MachineExit};
pub use pcspk::PortB;
pub use serial::Serial;
