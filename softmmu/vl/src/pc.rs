//! The PC: guest RAM, the `-bios` ROM, the CPU in its start state, and the devices on the port-I/O space.
//!
//! # Memory
//! One RAM block of `-m` bytes. Up to [`LOW_RAM_MAX`] (3.5 GiB) of it is mapped at 0; the rest, if any, at
//! 4 GiB, leaving 3.5..4 GiB for the PCI hole and the firmware (QEMU splits at 3 or 3.5 GiB depending on the
//! machine version; rqemu keeps one rule). The memory map given to a multiboot kernel ([`RamLayout::memory_map`])
//! is RAM 0..0x9fc00, reserved 0x9fc00..0xa0000 (where [`crate::boot`] puts its GDT, like a BIOS's extended
//! data area), reserved 0xf0000..1 MiB (the BIOS), RAM from 1 MiB to the end of low RAM, and RAM above 4 GiB.
//! 640 KiB..1 MiB has no VGA or option ROMs: RAM shows through, except where a `-bios` image is mirrored.
//!
//! # Firmware
//! `-bios file` is mapped read-only ending at 4 GiB and its last 128 KiB again ending at 1 MiB
//! (`rqemu_hw::loader::bios`). rqemu ships no firmware: without `-bios` and `-kernel` there is nothing to run,
//! which is an error. With `-kernel`, the CPU starts at the kernel directly (the firmware, if given, is mapped
//! but not run).
//!
//! # Ports
//! | ports | device | IRQ |
//! |---|---|---|
//! | 0x20–0x21, 0xa0–0xa1 | 8259 PIC pair | cascade on 2 |
//! | 0x4d0–0x4d1 | ELCR | |
//! | 0x40–0x43 | 8254 PIT | 0 |
//! | 0x61 | port B (PIT channel 2 gate and output) | |
//! | 0x3f8–0x3ff | COM1, 16550A (`-serial`, unless `none`) | 4 |
//! | 0xe9 | debug console (`-debugcon`; on stdout by default, which QEMU does not do) | |
//! | `iobase`.. | isa-debug-exit, with `-device isa-debug-exit` | |
//!
//! Unclaimed ports read all ones and ignore writes. The PIC pair is the CPU's interrupt controller: the CPU
//! asks it for requests at TB boundaries and acknowledges the vectors it delivers.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rqemu_accel::ExitRequest;
use rqemu_hw::loader::bios::{place_bios, BiosLayout};
use rqemu_hw::loader::multiboot::{E820Entry, E820Kind, MultibootBoot};
use rqemu_hw::loader::PhysWriter;
use rqemu_hw::{
    CharInput, CharSink, ClockSource, DebugCon, DualPic, ElcrPort, IsaDebugExit, MachineExit, PicPort, Pit, PortB,
    Serial, Timers, VirtualClock, WriteSink,
};
use rqemu_softmmu::{AddressSpace, Backing, MmioDevice, OutOfRange, RamBlock, RamId};
use rqemu_target_i386::{InterruptController, X86Cpu};

use crate::boot;
use crate::options::{CharTarget, DeviceSpec, Options};

/// RAM mapped at 0 ends at most here (3.5 GiB); the rest goes above 4 GiB.
pub const LOW_RAM_MAX: u64 = 0xe000_0000;
/// Where RAM above the PCI hole starts.
pub const HIGH_RAM_START: u64 = 1 << 32;
/// Conventional memory ends here; the last KiB below it is reserved (the boot GDT lives there).
pub const EBDA_START: u64 = 0x9_fc00;
/// End of conventional memory.
pub const LOW_MEM_END: u64 = 0xa_0000;
/// The BIOS area reported as reserved.
pub const BIOS_AREA: u64 = 0xf_0000;
/// Start of extended memory.
pub const EXT_MEM_START: u64 = 0x10_0000;
/// COM1's ports.
pub const COM1_IOBASE: u16 = 0x3f8;
/// COM1's interrupt line.
pub const COM1_IRQ: u32 = 4;
/// The debug console's port.
pub const DEBUGCON_IOBASE: u16 = 0xe9;
/// Priority of the BIOS mirror below 1 MiB over the RAM it covers.
const ROM_PRIORITY: i32 = 1;

/// Why the machine could not be built; the message names the file or option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartError(pub String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// How `-m` is split around the PCI hole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamLayout {
    /// Bytes mapped at 0.
    pub below_4g: u64,
    /// Bytes mapped at 4 GiB.
    pub above_4g: u64,
}

impl RamLayout {
    /// The split of `size` bytes.
    pub fn new(size: u64) -> RamLayout {
        let below_4g = size.min(LOW_RAM_MAX);
        RamLayout {
            below_4g,
            above_4g: size - below_4g,
        }
    }

    /// The e820 map a multiboot kernel gets (see the module doc).
    pub fn memory_map(&self) -> Vec<E820Entry> {
        let reserved = |base: u64, end: u64| E820Entry {
            base,
            length: end - base,
            kind: E820Kind::Reserved,
        };
        let mut map = vec![
            E820Entry::ram(0, EBDA_START.min(self.below_4g)),
            reserved(EBDA_START, LOW_MEM_END),
            reserved(BIOS_AREA, EXT_MEM_START),
        ];
        if self.below_4g > EXT_MEM_START {
            map.push(E820Entry::ram(EXT_MEM_START, self.below_4g - EXT_MEM_START));
        }
        if self.above_4g > 0 {
            map.push(E820Entry::ram(HIGH_RAM_START, self.above_4g));
        }
        map
    }
}

/// The RAM block as guest-physical memory: addresses below 4 GiB are block offsets, addresses from 4 GiB
/// follow the low part (the loaders write through this, much faster than byte-wise dispatch).
pub struct RamWriter<'a> {
    /// The block.
    pub ram: &'a RamBlock,
    /// Its split.
    pub layout: RamLayout,
}

impl PhysWriter for RamWriter<'_> {
    fn write_phys(&mut self, addr: u64, bytes: &[u8]) -> Result<(), OutOfRange> {
        let len = bytes.len() as u64;
        let end = addr.checked_add(len).ok_or(OutOfRange)?;
        let offset = if end <= self.layout.below_4g {
            addr
        } else if addr >= HIGH_RAM_START && end - HIGH_RAM_START <= self.layout.above_4g {
            self.layout.below_4g + (addr - HIGH_RAM_START)
        } else {
            return Err(OutOfRange);
        };
        self.ram.write(offset, bytes)
    }
}

/// A sink that drops everything (`null`).
struct NullSink;

impl CharSink for NullSink {
    fn write(&mut self, _bytes: &[u8]) {}
}

/// The sink a character backend names; `option` names it in errors.
fn sink(option: &str, target: &CharTarget) -> Result<Option<Box<dyn CharSink>>, StartError> {
    Ok(match target {
        CharTarget::None => None,
        CharTarget::Null => Some(Box::new(NullSink)),
        CharTarget::Stdio => Some(Box::new(WriteSink(std::io::stdout()))),
        CharTarget::File(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| StartError(format!("{option} file:{}: cannot create: {e}", path.display())))?;
            Some(Box::new(WriteSink(file)))
        }
    })
}

/// isa-debug-exit that also stops the CPU loop: the status alone would only be seen at the next slice, so
/// the write raises the accel's exit request too, honoured at the next TB boundary (`out` ends its TB).
struct StoppingDebugExit {
    dev: IsaDebugExit,
    exit: MachineExit,
    request: ExitRequest,
}

impl MmioDevice for StoppingDebugExit {
    fn read(&mut self, offset: u64, size: u32) -> u64 {
        self.dev.read(offset, size)
    }

    fn write(&mut self, offset: u64, size: u32, value: u64) {
        self.dev.write(offset, size, value);
        if self.exit.get().is_some() {
            self.request.set();
        }
    }
}

/// The PIC pair as the CPU's interrupt controller: the CPU asks it at TB boundaries (and when halted) and
/// acknowledges the vector it delivers through the IDT.
struct PicController(Rc<RefCell<DualPic>>);

impl InterruptController for PicController {
    fn has_interrupt(&self) -> bool {
        self.0.try_borrow().is_ok_and(|p| p.has_interrupt())
    }

    fn acknowledge(&mut self) -> u8 {
        match self.0.try_borrow_mut() {
            Ok(mut p) => p.acknowledge(),
            // Not reached (the CPU asks between TBs, when no device holds the PIC); IRQ 7's spurious vector.
            Err(_) => 0x0f,
        }
    }
}

/// Reads a whole file for `option`, with an error naming both.
pub fn read_file(option: &str, path: &Path) -> Result<Vec<u8>, StartError> {
    std::fs::read(path).map_err(|e| StartError(format!("{option} {}: cannot read: {e}", path.display())))
}

/// Finds a `-bios` file: as given, else (a relative name) in the `-L` directories in order.
pub fn find_data_file(path: &Path, dirs: &[PathBuf]) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    dirs.iter()
        .map(|d| d.join(path))
        .find(|p| p.exists())
        .unwrap_or_else(|| path.to_path_buf())
}

/// How the CPU was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootPath {
    /// At a multiboot kernel's entry, in 32-bit protected mode.
    Multiboot(MultibootBoot),
    /// At the reset vector, in the `-bios` image.
    Reset,
}

/// The built machine.
pub struct Pc {
    /// The CPU, with the address space and the port space inside its `SoftMmu`.
    pub cpu: X86Cpu,
    /// Virtual time.
    pub clock: Rc<VirtualClock>,
    /// Device timers (the PIT).
    pub timers: Rc<Timers>,
    /// The interrupt controllers.
    pub pic: Rc<RefCell<DualPic>>,
    /// The interval timer.
    pub pit: Rc<RefCell<Pit>>,
    /// COM1, unless `-serial none`.
    pub com1: Option<Rc<RefCell<Serial>>>,
    /// Bytes waiting for COM1's receiver (the main loop fills it from stdin).
    pub com1_input: CharInput,
    /// Whether COM1 reads the host's stdin.
    pub com1_stdin: bool,
    /// The isa-debug-exit status, once written.
    pub exit: MachineExit,
    /// RAM around the PCI hole.
    pub layout: RamLayout,
    /// How the CPU starts.
    pub boot: BootPath,
    /// The multiboot kernel (with its command line and modules) a reset boots again; `None` with `-bios`.
    pub kernel: Option<boot::KernelImage>,
    /// `-no-reboot`: a reset request (a triple fault) ends the emulator instead.
    pub no_reboot: bool,
    /// The guest RAM block.
    ram_id: RamId,
}

/// Maps the firmware image: whole at 4 GiB − size, its tail again below 1 MiB (over RAM).
fn map_bios(space: &mut AddressSpace, image: &[u8], name: &str) -> Result<BiosLayout, StartError> {
    let bad = |what: String| StartError(format!("-bios {name}: {what}"));
    let layout = place_bios(image.len() as u64).map_err(|e| bad(e.to_string()))?;
    let block = RamBlock::new(layout.size).map_err(|e| bad(e.to_string()))?;
    block.write(0, image).map_err(|_| bad("cannot fill the ROM".into()))?;
    let id = space.add_ram(block);
    space
        .map_rom(layout.high_base, layout.size, id, 0)
        .map_err(|e| bad(format!("cannot map: {e:?}")))?;
    space
        .map(
            layout.isa_base,
            layout.isa_size,
            Backing::Rom {
                block: id,
                offset: layout.isa_offset,
            },
            ROM_PRIORITY,
        )
        .map_err(|e| bad(format!("cannot map below 1 MiB: {e:?}")))?;
    Ok(layout)
}

/// The two character sinks, COM1's then the debug console's (`None`: that device is absent).
pub type Sinks = (Option<Box<dyn CharSink>>, Option<Box<dyn CharSink>>);

/// Maps the RAM block around the hole.
fn map_ram(space: &mut AddressSpace, id: RamId, layout: RamLayout) -> Result<(), StartError> {
    let fail = |e| StartError(format!("cannot map guest RAM: {e:?}"));
    space.map_ram(0, layout.below_4g, id, 0).map_err(fail)?;
    if layout.above_4g > 0 {
        space
            .map_ram(HIGH_RAM_START, layout.above_4g, id, layout.below_4g)
            .map_err(fail)?;
    }
    Ok(())
}

impl Pc {
    /// Builds the PC `opts` describes: reserves RAM, loads the firmware and kernel files, sets the CPU's start
    /// state and maps the devices. `clock` is the host's time source; `request` is the CPU loop's exit request,
    /// raised when isa-debug-exit is written.
    pub fn new(opts: &Options, clock: Box<dyn ClockSource>, request: ExitRequest) -> Result<Pc, StartError> {
        if opts.kernel.is_none() && opts.bios.is_none() {
            return Err(StartError(
                "no bios or kernel: nothing to run (rqemu ships no firmware yet: give -kernel or -bios)".into(),
            ));
        }
        let bios = match &opts.bios {
            Some(bios) => {
                let path = find_data_file(bios, &opts.data_dirs);
                Some((read_file("-bios", &path)?, path.display().to_string()))
            }
            None => None,
        };
        let bios = bios.as_ref().map(|(image, name)| (image.as_slice(), name.as_str()));
        let kernel = match opts.kernel.as_deref() {
            Some(path) => Some(boot::KernelImage::read(opts, path)?),
            None => None,
        };
        let sinks = || Ok((sink("-serial", &opts.serial)?, sink("-debugcon", &opts.debugcon)?));
        Pc::build(opts, bios, kernel, sinks, clock, request)
    }

    /// Builds the PC around a multiboot `image` in memory (no files are read: the wasm32 build has none),
    /// with `cmdline` as its multiboot command line and `name` naming it in errors. `opts` gives the RAM size
    /// and the devices (its `kernel`, `initrd`, `append`, `bios`, `serial` and `debugcon` are not used);
    /// COM1 and the debug console write to `sinks`.
    pub fn from_multiboot_image(
        opts: &Options,
        image: &[u8],
        name: &str,
        cmdline: &str,
        sinks: Sinks,
        clock: Box<dyn ClockSource>,
        request: ExitRequest,
    ) -> Result<Pc, StartError> {
        let kernel = boot::KernelImage {
            image: image.to_vec(),
            name: name.to_string(),
            cmdline: cmdline.to_string(),
            modules: Vec::new(),
        };
        Pc::build(opts, None, Some(kernel), || Ok(sinks), clock, request)
    }

    /// Builds the machine from loaded images; `sinks` makes COM1's and the debug console's sinks once the
    /// images are in (so a bad kernel is reported before an output file is created).
    fn build(
        opts: &Options,
        bios: Option<(&[u8], &str)>,
        kernel: Option<boot::KernelImage>,
        sinks: impl FnOnce() -> Result<Sinks, StartError>,
        clock: Box<dyn ClockSource>,
        request: ExitRequest,
    ) -> Result<Pc, StartError> {
        let layout = RamLayout::new(opts.ram_size);
        let ram = RamBlock::new(opts.ram_size)
            .map_err(|e| StartError(format!("-m {}: {e}", crate::options::format_size(opts.ram_size))))?;
        let mut space = AddressSpace::new();
        let ram_id = space.add_ram(ram);
        map_ram(&mut space, ram_id, layout)?;
        if let Some((image, name)) = bios {
            map_bios(&mut space, image, name)?;
        }

        let ram = space
            .ram(ram_id)
            .ok_or_else(|| StartError("guest RAM vanished".into()))?;
        let mut writer = RamWriter { ram, layout };
        let (boot, state) = match &kernel {
            Some(kernel) => {
                let mb = kernel.load(&layout.memory_map(), &mut writer)?;
                let state = boot::multiboot_state(&mb, &mut writer)?;
                (BootPath::Multiboot(mb), state)
            }
            None => (BootPath::Reset, boot::reset_state()),
        };

        // Exceptions are delivered through the IDT (target-i386's default mode); the main loop resets the
        // machine on a triple fault ([`Pc::reset`]), or ends the emulator with `-no-reboot`.
        let mut cpu = X86Cpu::new(space, state);
        let clock = VirtualClock::new(clock);
        let timers = Timers::new();
        let pic = DualPic::new_shared();
        cpu.set_interrupt_controller(Box::new(PicController(pic.clone())));
        let pit = Pit::new(clock.clone(), timers.clone(), DualPic::irq_line(&pic, 0));
        let exit = MachineExit::new();
        let com1_input = CharInput::new();
        let (serial, debugcon) = sinks()?;
        let com1 = serial.map(|s| {
            Rc::new(RefCell::new(Serial::new(
                s,
                com1_input.clone(),
                DualPic::irq_line(&pic, COM1_IRQ),
            )))
        });

        let mem = cpu.memory();
        mem.with(|m| -> Result<(), StartError> {
            let io = m.io();
            let mut map = |base: u16, count: u32, dev: Box<dyn MmioDevice>, what: &str| {
                io.map(base, count, dev)
                    .map(|_| ())
                    .map_err(|e| StartError(format!("cannot map {what} at port {base:#x}: {e:?}")))
            };
            map(0x20, 2, Box::new(PicPort::master(pic.clone())), "the master PIC")?;
            map(0xa0, 2, Box::new(PicPort::slave(pic.clone())), "the slave PIC")?;
            map(0x4d0, 2, Box::new(ElcrPort::new(pic.clone())), "the ELCR")?;
            map(0x40, 4, Box::new(pit.clone()), "the PIT")?;
            map(0x61, 1, Box::new(PortB::new(pit.clone(), clock.clone())), "port B")?;
            if let Some(uart) = &com1 {
                map(COM1_IOBASE, 8, Box::new(uart.clone()), "COM1")?;
            }
            if let Some(s) = debugcon {
                map(DEBUGCON_IOBASE, 1, Box::new(DebugCon::new(s)), "the debug console")?;
            }
            for d in &opts.devices {
                match *d {
                    DeviceSpec::IsaDebugExit { iobase, iosize } => map(
                        iobase,
                        iosize,
                        Box::new(StoppingDebugExit {
                            dev: IsaDebugExit::new(exit.clone()),
                            exit: exit.clone(),
                            request: request.clone(),
                        }),
                        "isa-debug-exit",
                    )?,
                }
            }
            Ok(())
        })?;
        Ok(Pc {
            cpu,
            clock,
            timers,
            pic,
            pit,
            com1,
            com1_input,
            com1_stdin: opts.serial == CharTarget::Stdio,
            exit,
            layout,
            boot,
            kernel,
            no_reboot: opts.no_reboot,
            ram_id,
        })
    }

    /// A machine reset (QEMU's `qemu_system_reset`, for a triple fault): the CPU to its RESET state, the PIC
    /// pair, the PIT and COM1 reset, then the machine boots again as it booted at start. With `-bios` the CPU
    /// starts at the reset vector (the RESET state itself); with `-kernel` the multiboot image and its
    /// modules (as read at start) are loaded again and the CPU is put at the kernel's entry again: QEMU
    /// reboots through its firmware, which loads the image again; rqemu has no firmware, so it runs its boot
    /// setup again. RAM is not cleared (as on real hardware), except what that boot setup rewrites. The
    /// caller flushes the translated code (the accel's `CpuExec::flush`). An error (not expected: the image
    /// loaded at start) means the machine cannot boot again.
    pub fn reset(&mut self) -> Result<(), StartError> {
        self.cpu.reset();
        self.pic.borrow_mut().reset();
        self.pit.borrow_mut().reset();
        if let Some(uart) = &self.com1 {
            uart.borrow_mut().reset();
        }
        let Some(kernel) = &self.kernel else {
            self.boot = BootPath::Reset;
            return Ok(());
        };
        let (layout, ram_id) = (self.layout, self.ram_id);
        let mb = self.cpu.memory().with(|m| -> Result<MultibootBoot, StartError> {
            let ram = m
                .space_mut()
                .ram(ram_id)
                .ok_or_else(|| StartError("guest RAM vanished".into()))?;
            let mut writer = RamWriter { ram, layout };
            let mb = kernel.load(&layout.memory_map(), &mut writer)?;
            boot::write_boot_gdt(&mut writer)?;
            Ok(mb)
        })?;
        boot::set_multiboot_entry(&mb, self.cpu.state_mut());
        self.boot = BootPath::Multiboot(mb);
        Ok(())
    }

    /// Reads guest-physical memory (tests and diagnostics).
    pub fn read_phys(&self, addr: u64, buf: &mut [u8]) {
        self.cpu.memory().with(|m| m.space_mut().read_bytes(addr, buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ram_stays_below_the_hole() {
        let l = RamLayout::new(128 << 20);
        assert_eq!((l.below_4g, l.above_4g), (128 << 20, 0));
        let map = l.memory_map();
        assert_eq!(map[0], E820Entry::ram(0, EBDA_START));
        assert_eq!(map[1].kind, E820Kind::Reserved);
        assert_eq!(
            map.last(),
            Some(&E820Entry::ram(EXT_MEM_START, (128 << 20) - EXT_MEM_START))
        );
    }

    #[test]
    fn large_ram_continues_above_4g() {
        let l = RamLayout::new(6 << 30);
        assert_eq!(l.below_4g, LOW_RAM_MAX);
        assert_eq!(l.above_4g, (6 << 30) - LOW_RAM_MAX);
        assert_eq!(l.memory_map().last(), Some(&E820Entry::ram(HIGH_RAM_START, l.above_4g)));
    }

    #[test]
    fn ram_writer_follows_the_split() {
        let layout = RamLayout {
            below_4g: 0x2000,
            above_4g: 0x1000,
        };
        let ram = RamBlock::new(0x3000).unwrap();
        let mut w = RamWriter { ram: &ram, layout };
        w.write_phys(0x1ffe, b"ab").unwrap();
        w.write_phys(HIGH_RAM_START + 0xffe, b"cd").unwrap();
        assert!(w.write_phys(0x1fff, b"xy").is_err());
        assert!(w.write_phys(HIGH_RAM_START + 0xfff, b"xy").is_err());
        assert!(w.write_phys(u64::MAX, b"x").is_err());
        let mut b = [0u8; 2];
        ram.read(0x1ffe, &mut b).unwrap();
        assert_eq!(&b, b"ab");
        ram.read(0x2ffe, &mut b).unwrap();
        assert_eq!(&b, b"cd");
    }

    #[test]
    fn data_files_are_found_in_l_dirs() {
        let dir = std::env::temp_dir().join(format!("rqemu-vl-ldir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("fw.bin"), b"x").unwrap();
        assert_eq!(
            find_data_file(Path::new("fw.bin"), &[PathBuf::from("/nonexistent"), dir.clone()]),
            dir.join("fw.bin")
        );
        assert_eq!(
            find_data_file(Path::new("nope.bin"), std::slice::from_ref(&dir)),
            PathBuf::from("nope.bin")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
