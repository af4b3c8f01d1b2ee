//! Starting the CPU: a multiboot kernel (`-kernel`, with `-append` and `-initrd` modules) entered in 32-bit
//! protected mode, or the `-bios` image at the reset vector.
//!
//! # Multiboot entry state
//! What the multiboot (v1) specification promises, plus segment registers a kernel can reload:
//! - a GDT of three descriptors at [`GDT_ADDR`] (0x9fc00, in the 1 KiB below 640 KiB that the memory map
//!   reports as reserved, so a kernel that honours the map does not overwrite it before it loads its own):
//!   null, a flat 4 GiB 32-bit code segment (selector [`CODE_SEL`] = 0x08) and a flat 4 GiB writable data
//!   segment (selector [`DATA_SEL`] = 0x10); GDTR points at it (limit 0x17);
//! - CS = 0x08; DS, ES, FS, GS, SS = 0x10, their hidden caches loaded from those descriptors (the accessed bit
//!   is set in the table already, so nothing is written back);
//! - CR0 = PE | ET, paging off, EFLAGS = 2 (interrupts off), IDTR limit 0 (no IDT: the kernel loads one);
//! - EAX = 0x2BADB002, EBX = the information structure, EIP = the entry; other registers 0.
//!
//! # Reset state (`-bios` without `-kernel`)
//! Real mode at 0xf000:0xfff0, CS base 0xffff_0000, so the first fetch is at 0xffff_fff0, in the image's
//! last 16 bytes.

use std::path::Path;

use rqemu_hw::loader::multiboot::{self, BootConfig, E820Entry, Module, MultibootBoot};
use rqemu_hw::loader::PhysWriter;
use rqemu_target_i386::cpu::{reg, seg, SegmentCache};
use rqemu_target_i386::X86CpuState;

use crate::options::Options;
use crate::pc::{read_file, StartError, EBDA_START};

/// Where the boot GDT is written.
pub const GDT_ADDR: u64 = EBDA_START;
/// The code segment's selector.
pub const CODE_SEL: u16 = 0x08;
/// The data segments' selector.
pub const DATA_SEL: u16 = 0x10;
/// The boot GDT: null; code: base 0, limit 0xfffff pages, present, DPL 0, execute/read, accessed, 32-bit
/// (D), 4 KiB granularity; data: the same with read/write.
pub const GDT: [u64; 3] = [0, 0x00cf_9b00_0000_ffff, 0x00cf_9300_0000_ffff];
/// CR0.PE | CR0.ET.
const CR0_PE_ET: u64 = 0x11;
/// The name multiboot kernels see in `boot_loader_name`.
pub const BOOT_LOADER_NAME: &str = "rqemu";

/// The hidden-cache flags of a descriptor: bits 8..24 of its high word, as the CPU keeps them (type, S, DPL,
/// P, AVL, L, D/B, G).
pub fn descriptor_flags(desc: u64) -> u32 {
    ((desc >> 32) as u32) & 0x00f0_ff00
}

/// The segment cache a flat descriptor of [`GDT`] loads.
fn flat_cache(selector: u16) -> SegmentCache {
    SegmentCache::flat(selector, descriptor_flags(GDT[usize::from(selector >> 3)]))
}

/// The GDT's bytes.
pub fn gdt_bytes() -> Vec<u8> {
    GDT.iter().flat_map(|d| d.to_le_bytes()).collect()
}

/// Whether an image has the Linux boot protocol's header ("HdrS" at 0x202), for a better error.
fn is_linux_bzimage(image: &[u8]) -> bool {
    image.get(0x202..0x206) == Some(b"HdrS")
}

/// A multiboot kernel with its command line and modules, as read at start: kept so that a machine reset boots
/// it again ([`KernelImage::load`]) the way QEMU's firmware loads the image it was given at start again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelImage {
    /// The image's bytes.
    pub image: Vec<u8>,
    /// The name in errors (the file name).
    pub name: String,
    /// The multiboot command line.
    pub cmdline: String,
    /// The modules: contents and command line.
    pub modules: Vec<(Vec<u8>, String)>,
}

impl KernelImage {
    /// Reads `-kernel` and its `-initrd` modules as `opts` gives them.
    pub fn read(opts: &Options, kernel: &Path) -> Result<KernelImage, StartError> {
        let image = read_file("-kernel", kernel)?;
        // QEMU's module syntax: comma-separated, each a file name optionally followed by arguments; the
        // whole item is the module's command line.
        let mut modules = Vec::new();
        for item in opts
            .initrd
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|i| !i.is_empty())
        {
            let file = item.split(' ').next().unwrap_or(item);
            modules.push((read_file("-initrd", Path::new(file))?, item.to_string()));
        }
        let name = kernel.display().to_string();
        let cmdline = match &opts.append {
            Some(a) => format!("{name} {a}"),
            None => name.clone(),
        };
        Ok(KernelImage {
            image,
            name,
            cmdline,
            modules,
        })
    }

    /// Loads the kernel and its modules through `mem` as multiboot asks (at start and at every reset).
    pub fn load(&self, memory_map: &[E820Entry], mem: &mut dyn PhysWriter) -> Result<MultibootBoot, StartError> {
        let modules: Vec<Module> = self
            .modules
            .iter()
            .map(|(data, cmdline)| Module { data, cmdline })
            .collect();
        load_multiboot_image(&self.image, &self.name, &self.cmdline, &modules, memory_map, mem)
    }
}

/// Reads the kernel and the modules, and loads them through `mem` as multiboot asks.
pub fn load_multiboot(
    opts: &Options,
    kernel: &Path,
    memory_map: &[E820Entry],
    mem: &mut dyn PhysWriter,
) -> Result<MultibootBoot, StartError> {
    KernelImage::read(opts, kernel)?.load(memory_map, mem)
}

/// Loads a multiboot `image` already in memory (the wasm32 build has no files) with its command line and
/// modules; `name` names the image in errors.
pub fn load_multiboot_image(
    image: &[u8],
    name: &str,
    cmdline: &str,
    modules: &[Module],
    memory_map: &[E820Entry],
    mem: &mut dyn PhysWriter,
) -> Result<MultibootBoot, StartError> {
    let bad = |what: String| StartError(format!("-kernel {name}: {what}"));
    if let Err(e) = multiboot::parse(image) {
        if is_linux_bzimage(image) {
            return Err(bad(
                "a Linux kernel: the Linux boot protocol is not supported yet (only multiboot v1 kernels)".into(),
            ));
        }
        return Err(bad(e.to_string()));
    }
    let config = BootConfig {
        memory_map,
        cmdline,
        boot_loader_name: BOOT_LOADER_NAME,
        modules,
    };
    multiboot::load(image, &config, mem).map_err(|e| bad(e.to_string()))
}

/// Writes the boot GDT and returns the CPU state at the kernel's entry (see the module doc).
pub fn multiboot_state(boot: &MultibootBoot, mem: &mut dyn PhysWriter) -> Result<X86CpuState, StartError> {
    let mut s = X86CpuState::new();
    enter_multiboot(boot, &mut s, mem)?;
    Ok(s)
}

/// Writes the boot GDT and puts `s` (a CPU just after RESET) at the kernel's entry (see the module doc).
pub fn enter_multiboot(boot: &MultibootBoot, s: &mut X86CpuState, mem: &mut dyn PhysWriter) -> Result<(), StartError> {
    write_boot_gdt(mem)?;
    set_multiboot_entry(boot, s);
    Ok(())
}

/// Writes the boot GDT at [`GDT_ADDR`].
pub fn write_boot_gdt(mem: &mut dyn PhysWriter) -> Result<(), StartError> {
    mem.write_phys(GDT_ADDR, &gdt_bytes())
        .map_err(|_| StartError(format!("cannot write the boot GDT at {GDT_ADDR:#x}: not in RAM")))
}

/// Puts `s` (a CPU just after RESET) at the kernel's entry, its segments loaded from the boot GDT (which
/// [`write_boot_gdt`] writes).
pub fn set_multiboot_entry(boot: &MultibootBoot, s: &mut X86CpuState) {
    s.regs = [0; 16];
    s.regs[reg::RAX] = u64::from(boot.magic);
    s.regs[reg::RBX] = u64::from(boot.info_addr);
    s.rip = u64::from(boot.entry);
    s.set_rflags(0x2);
    s.cr[0] = CR0_PE_ET;
    s.segs[seg::CS] = flat_cache(CODE_SEL);
    for i in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
        s.segs[i] = flat_cache(DATA_SEL);
    }
    s.gdt = SegmentCache::flat(0, 0);
    s.gdt.base = GDT_ADDR;
    s.gdt.limit = (GDT.len() * 8 - 1) as u32;
    s.idt = SegmentCache::flat(0, 0);
    s.idt.limit = 0;
}

/// Real-mode flags of a code segment after reset: present, code/data, execute/read, accessed.
const RESET_CODE_FLAGS: u32 = 0x9b00;
/// Real-mode flags of a data segment after reset: present, code/data, read/write, accessed.
const RESET_DATA_FLAGS: u32 = 0x9300;

/// The CPU state after reset: real mode at 0xf000:0xfff0 with CS base 0xffff_0000.
pub fn reset_state() -> X86CpuState {
    let mut s = X86CpuState::new();
    s.rip = 0xfff0;
    let mut cs = SegmentCache::flat(0xf000, RESET_CODE_FLAGS);
    cs.base = 0xffff_0000;
    cs.limit = 0xffff;
    s.segs[seg::CS] = cs;
    for i in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
        let mut d = SegmentCache::flat(0, RESET_DATA_FLAGS);
        d.limit = 0xffff;
        s.segs[i] = d;
    }
    s.gdt.limit = 0xffff;
    s.idt.limit = 0xffff;
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rqemu_target_i386::cpu::{DESC_B, DESC_L, DESC_P};
    use rqemu_target_i386::machine::tb_key_of;

    fn boot() -> MultibootBoot {
        MultibootBoot {
            entry: 0x10_0000,
            info_addr: 0x9000,
            magic: multiboot::BOOTLOADER_MAGIC,
            kernel: 0x10_0000..0x10_1000,
            info: 0x9000..0x9100,
            modules: vec![],
        }
    }

    #[test]
    fn multiboot_state_is_flat_32_bit_protected_mode() {
        let mut mem = vec![0u8; 0xa_0000];
        let s = multiboot_state(&boot(), &mut mem).unwrap();
        assert_eq!(s.regs[reg::RAX], 0x2bad_b002);
        assert_eq!(s.regs[reg::RBX], 0x9000);
        assert_eq!(s.rip, 0x10_0000);
        assert_eq!(s.rflags(), 2);
        assert_eq!(s.cr[0] & 0x8000_0001, 1);
        let cs = s.segs[seg::CS];
        assert_eq!((cs.selector, cs.base, cs.limit), (CODE_SEL, 0, u32::MAX));
        assert!(cs.flags & DESC_B != 0 && cs.flags & DESC_P != 0 && cs.flags & DESC_L == 0);
        assert_eq!(s.segs[seg::SS].selector, DATA_SEL);
        assert!(s.segs[seg::SS].flags & DESC_B != 0);
        let key = tb_key_of(&s);
        // 32-bit code (bits 0..2 = 1), 32-bit stack (bit 2), CPL 0 (bits 3..5).
        assert_eq!((key.pc, key.cs_base, key.flags & 0x1f), (0x10_0000, 0, 1 | 4));
        // The GDT the caches came from is in memory.
        let at = GDT_ADDR as usize;
        assert_eq!(&mem[at + 8..at + 16], &GDT[1].to_le_bytes());
        assert_eq!((s.gdt.base, s.gdt.limit), (GDT_ADDR, 23));
    }

    #[test]
    fn descriptor_flags_keep_type_through_granularity() {
        assert_eq!(descriptor_flags(GDT[1]), 0x00c0_9b00);
        assert_eq!(descriptor_flags(GDT[2]), 0x00c0_9300);
    }

    #[test]
    fn reset_state_fetches_below_4g() {
        let s = reset_state();
        let key = tb_key_of(&s);
        assert_eq!(key.cs_base.wrapping_add(key.pc), 0xffff_fff0);
        assert_eq!(key.flags & 3, 0, "16-bit code");
    }

    #[test]
    fn bzimage_is_recognised() {
        let mut img = vec![0u8; 0x300];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        assert!(is_linux_bzimage(&img));
        assert!(!is_linux_bzimage(&img[..0x204]));
    }
}
