//! Multiboot (version 1) kernels for `-kernel`: find and check the header, lay the kernel out in guest
//! memory, build the boot information structure, and describe the state the machine must enter.
//!
//! The header is a 32-bit aligned `magic, flags, checksum` triple in the first 8192 bytes of the file, with
//! `magic + flags + checksum == 0`. With flags bit 16 (the "a.out kludge") the header's address fields say
//! where the file goes (`header_addr`, `load_addr`, `load_end_addr`, `bss_end_addr`, `entry_addr`); without
//! it the file must be ELF: ELF32 for i386, or — as QEMU accepts — ELF64 for x86-64 whose loadable
//! segments and entry have 32-bit physical addresses. Segments load at their physical address (`p_paddr`);
//! the entry is translated from virtual to physical through the segment holding it (as GRUB does), so a
//! higher-half kernel linked at 0xc010_0000 and loaded at 0x10_0000 enters at its physical address.
//!
//! The information structure (flags, `mem_lower`/`mem_upper`, command line, boot loader name, memory map,
//! modules) goes at 0x9000, below 1 MiB like QEMU's, or right after the kernel when the kernel covers that
//! spot; modules follow the kernel, each page-aligned. Header flags bits 0 (page-aligned modules: always
//! done) and 1 (memory information: always given) are honoured; bit 2 (video mode) is accepted and ignored:
//! there is no framebuffer, the guest gets text mode. Other bits in 0–15 mean "a loader that does not know
//! this must refuse", so they are an error.
//!
//! The CPU state the kernel expects — 32-bit protected mode, flat 4 GiB code and data segments, paging and
//! interrupts off, `EAX` = [`BOOTLOADER_MAGIC`], `EBX` = [`MultibootBoot::info_addr`], `EIP` =
//! [`MultibootBoot::entry`] — is set by the machine. Every malformed image is a [`MultibootError`] naming
//! the problem; nothing here panics on image contents.

use std::fmt;
use std::ops::Range;

use super::PhysWriter;

/// The header's magic.
pub const HEADER_MAGIC: u32 = 0x1bad_b002;
/// What the loader leaves in `EAX`.
pub const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;
/// The header must start within this many bytes of the file.
pub const HEADER_SEARCH_LIMIT: usize = 8192;
/// Header flag: align modules on 4 KiB pages.
pub const HEADER_PAGE_ALIGN: u32 = 1 << 0;
/// Header flag: the kernel wants memory information.
pub const HEADER_MEMORY_INFO: u32 = 1 << 1;
/// Header flag: the kernel wants a video mode (ignored: see the module doc).
pub const HEADER_VIDEO_MODE: u32 = 1 << 2;
/// Header flag: the address fields are valid (the "a.out kludge").
pub const HEADER_AOUT_KLUDGE: u32 = 1 << 16;
/// Header flags 0–15 this loader understands.
const HEADER_KNOWN_REQUIRED: u32 = HEADER_PAGE_ALIGN | HEADER_MEMORY_INFO | HEADER_VIDEO_MODE;
/// Header flags a loader must refuse when it does not know them.
const HEADER_REQUIRED_MASK: u32 = 0xffff;

/// Info flag: `mem_lower` and `mem_upper` are valid.
pub const INFO_MEMORY: u32 = 1 << 0;
/// Info flag: `cmdline` is valid.
pub const INFO_CMDLINE: u32 = 1 << 2;
/// Info flag: `mods_count` and `mods_addr` are valid.
pub const INFO_MODS: u32 = 1 << 3;
/// Info flag: `mmap_length` and `mmap_addr` are valid.
pub const INFO_MMAP: u32 = 1 << 6;
/// Info flag: `boot_loader_name` is valid.
pub const INFO_BOOT_LOADER_NAME: u32 = 1 << 9;

/// Offsets in the information structure.
pub mod info {
    /// `flags`.
    pub const FLAGS: usize = 0;
    /// `mem_lower`: KiB of RAM from 0.
    pub const MEM_LOWER: usize = 4;
    /// `mem_upper`: KiB of RAM from 1 MiB.
    pub const MEM_UPPER: usize = 8;
    /// `cmdline`: address of a NUL-terminated string.
    pub const CMDLINE: usize = 16;
    /// `mods_count`.
    pub const MODS_COUNT: usize = 20;
    /// `mods_addr`.
    pub const MODS_ADDR: usize = 24;
    /// `mmap_length` in bytes.
    pub const MMAP_LENGTH: usize = 44;
    /// `mmap_addr`.
    pub const MMAP_ADDR: usize = 48;
    /// `boot_loader_name`.
    pub const BOOT_LOADER_NAME: usize = 64;
    /// Size of the structure with every field of the specification (through the framebuffer colour info).
    pub const SIZE: usize = 116;
    /// Bytes of one memory-map entry (`size` field included).
    pub const MMAP_ENTRY_SIZE: usize = 24;
    /// Value of a memory-map entry's `size` field (the bytes after it).
    pub const MMAP_ENTRY_SIZE_FIELD: u32 = 20;
    /// Bytes of one module entry.
    pub const MOD_ENTRY_SIZE: usize = 16;
}

/// Where the information structure goes when that memory is free (QEMU uses the same page).
pub const LOW_INFO_ADDR: u64 = 0x9000;
/// Module and post-kernel placement granule.
pub const PAGE_SIZE: u64 = 4096;
/// Everything a multiboot v1 kernel sees must be below 4 GiB (the structure holds 32-bit addresses).
pub const LIMIT_4G: u64 = 0x1_0000_0000;
/// Conventional memory ends here; `mem_lower` counts at most this much.
const LOW_MEMORY_END: u64 = 0xa_0000;
/// `mem_upper` counts from here.
const HIGH_MEMORY_START: u64 = 0x10_0000;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const ELF32_EHDR_SIZE: usize = 52;
const ELF64_EHDR_SIZE: usize = 64;
const ELF32_PHDR_SIZE: usize = 32;
const ELF64_PHDR_SIZE: usize = 56;

/// An e820 memory type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Kind {
    /// Usable RAM.
    Ram = 1,
    /// Reserved (firmware, MMIO holes).
    Reserved = 2,
    /// ACPI tables, reclaimable.
    Acpi = 3,
    /// ACPI non-volatile storage.
    Nvs = 4,
    /// Bad memory.
    Unusable = 5,
}

/// One range of the guest's physical memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub length: u64,
    /// What the range is.
    pub kind: E820Kind,
}

impl E820Entry {
    /// A RAM range.
    pub fn ram(base: u64, length: u64) -> E820Entry {
        E820Entry {
            base,
            length,
            kind: E820Kind::Ram,
        }
    }

    fn end(&self) -> u64 {
        self.base.saturating_add(self.length)
    }
}

/// A module (QEMU's `-initrd a,b` for multiboot kernels): its bytes and its command line.
#[derive(Clone, Copy, Debug)]
pub struct Module<'a> {
    /// The file's contents.
    pub data: &'a [u8],
    /// The module's command line (QEMU gives the file name followed by its arguments).
    pub cmdline: &'a str,
}

/// What the machine tells the loader.
#[derive(Clone, Copy, Debug)]
pub struct BootConfig<'a> {
    /// The guest's memory map; segments, modules and the structure must lie in its RAM ranges.
    pub memory_map: &'a [E820Entry],
    /// The kernel command line (QEMU passes the kernel file name, a space, then `-append`).
    pub cmdline: &'a str,
    /// The `boot_loader_name` string.
    pub boot_loader_name: &'a str,
    /// Modules, in order.
    pub modules: &'a [Module<'a>],
}

/// How the kernel's layout was described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// The header's address fields (flags bit 16).
    AoutKludge,
    /// ELF32 program headers.
    Elf32,
    /// ELF64 program headers with 32-bit physical addresses.
    Elf64,
}

/// A piece of the file placed in guest memory; the bytes past `file_size` up to `mem_size` are zeroed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest physical address of the first byte.
    pub addr: u64,
    /// Where its bytes start in the file.
    pub file_offset: u64,
    /// Bytes taken from the file.
    pub file_size: u64,
    /// Bytes occupied in memory (file bytes plus zeroed bss).
    pub mem_size: u64,
}

impl Segment {
    fn range(&self) -> Range<u64> {
        self.addr..self.addr + self.mem_size
    }
}

/// A checked multiboot kernel, not yet loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultibootKernel {
    /// File offset of the header.
    pub header_offset: usize,
    /// The header's flags.
    pub flags: u32,
    /// Where the layout came from.
    pub format: KernelFormat,
    /// What to load, sorted by address, not overlapping, all below 4 GiB.
    pub segments: Vec<Segment>,
    /// Physical entry point.
    pub entry: u32,
}

/// A loaded kernel: what the machine puts in the CPU, and where things went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultibootBoot {
    /// `EIP`: the physical entry point.
    pub entry: u32,
    /// `EBX`: the information structure's address.
    pub info_addr: u32,
    /// `EAX`: always [`BOOTLOADER_MAGIC`].
    pub magic: u32,
    /// The kernel's memory, lowest segment start to highest segment end (bss included).
    pub kernel: Range<u64>,
    /// The information structure with its memory map, module list and strings.
    pub info: Range<u64>,
    /// Each module's memory, in order.
    pub modules: Vec<Range<u64>>,
}

/// Why a multiboot image cannot be booted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultibootError {
    /// No header magic in the first 8192 bytes.
    NoHeader,
    /// The magic was found but `magic + flags + checksum` is not 0.
    BadChecksum {
        /// File offset of the magic.
        offset: usize,
    },
    /// The header's fields run past the end of the file.
    HeaderTruncated {
        /// File offset of the magic.
        offset: usize,
    },
    /// The header requires features (flags bits 0–15) this loader does not know.
    UnsupportedFlags {
        /// The header's flags.
        flags: u32,
    },
    /// The a.out kludge's address fields contradict each other.
    BadAddresses(String),
    /// Without the a.out kludge the file must be ELF, and this one is not, or not a usable one.
    BadElf(String),
    /// Part of the file that must be loaded lies past its end.
    Truncated {
        /// What is cut.
        what: String,
        /// Bytes the image would need.
        needed: u64,
        /// Bytes the file has.
        len: u64,
    },
    /// Something would reach at or above 4 GiB.
    TooLarge {
        /// What.
        what: String,
        /// Its guest-physical range.
        range: Range<u64>,
    },
    /// Nothing to load.
    NoSegments,
    /// Two segments occupy the same memory.
    Overlap {
        /// The first segment's range.
        first: Range<u64>,
        /// The second segment's range.
        second: Range<u64>,
    },
    /// The entry point is in no loaded segment.
    EntryOutside {
        /// The entry address from the image.
        entry: u64,
    },
    /// A piece of the kernel, a module or the boot information is not in RAM.
    OutsideRam {
        /// What.
        what: String,
        /// Its guest-physical range.
        range: Range<u64>,
    },
    /// Writing guest memory failed (the memory map promised RAM the writer does not have).
    Write {
        /// The range written.
        range: Range<u64>,
    },
}

impl fmt::Display for MultibootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MultibootError::*;
        match self {
            NoHeader => write!(
                f,
                "not a multiboot image: no header magic {HEADER_MAGIC:#x} in the first {HEADER_SEARCH_LIMIT} bytes"
            ),
            BadChecksum { offset } => write!(f, "multiboot header at {offset:#x}: bad checksum"),
            HeaderTruncated { offset } => write!(f, "multiboot header at {offset:#x}: cut off by the end of the file"),
            UnsupportedFlags { flags } => write!(
                f,
                "multiboot header flags {flags:#x} require features this loader lacks (unknown bits {:#x})",
                flags & HEADER_REQUIRED_MASK & !HEADER_KNOWN_REQUIRED
            ),
            BadAddresses(why) => write!(f, "multiboot header address fields: {why}"),
            BadElf(why) => write!(
                f,
                "multiboot kernel without address fields is not a loadable ELF: {why}"
            ),
            Truncated { what, needed, len } => {
                write!(
                    f,
                    "multiboot image truncated: {what} needs {needed} bytes, the file has {len}"
                )
            }
            TooLarge { what, range } => write!(
                f,
                "multiboot {what} at {:#x}..{:#x} does not fit below 4 GiB",
                range.start, range.end
            ),
            NoSegments => write!(f, "multiboot kernel has nothing to load"),
            Overlap { first, second } => write!(
                f,
                "multiboot kernel segments overlap: {:#x}..{:#x} and {:#x}..{:#x}",
                first.start, first.end, second.start, second.end
            ),
            EntryOutside { entry } => write!(f, "multiboot entry point {entry:#x} is outside the loaded kernel"),
            OutsideRam { what, range } => write!(
                f,
                "multiboot {what} at {:#x}..{:#x} is not in guest RAM (give the guest more memory?)",
                range.start, range.end
            ),
            Write { range } => write!(f, "writing guest memory {:#x}..{:#x} failed", range.start, range.end),
        }
    }
}

impl std::error::Error for MultibootError {}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    Some(v.checked_add(a - 1)? & !(a - 1))
}

fn bad_elf(why: impl Into<String>) -> MultibootError {
    MultibootError::BadElf(why.into())
}

/// Finds the header: its offset and flags.
fn find_header(image: &[u8]) -> Result<(usize, u32), MultibootError> {
    let mut bad_checksum = None;
    for off in (0..image.len().min(HEADER_SEARCH_LIMIT)).step_by(4) {
        if le32(image, off) != Some(HEADER_MAGIC) {
            continue;
        }
        let (Some(flags), Some(sum)) = (le32(image, off + 4), le32(image, off + 8)) else {
            bad_checksum.get_or_insert(MultibootError::HeaderTruncated { offset: off });
            continue;
        };
        if HEADER_MAGIC.wrapping_add(flags).wrapping_add(sum) == 0 {
            return Ok((off, flags));
        }
        bad_checksum.get_or_insert(MultibootError::BadChecksum { offset: off });
    }
    Err(bad_checksum.unwrap_or(MultibootError::NoHeader))
}

/// Checks an image and works out its layout, without touching guest memory.
pub fn parse(image: &[u8]) -> Result<MultibootKernel, MultibootError> {
    let (offset, flags) = find_header(image)?;
    if flags & HEADER_REQUIRED_MASK & !HEADER_KNOWN_REQUIRED != 0 {
        return Err(MultibootError::UnsupportedFlags { flags });
    }
    let (format, mut segments, entry) = if flags & HEADER_AOUT_KLUDGE != 0 {
        aout_layout(image, offset)?
    } else {
        elf_layout(image)?
    };
    if segments.is_empty() {
        return Err(MultibootError::NoSegments);
    }
    segments.sort_by_key(|s| s.addr);
    for pair in segments.windows(2) {
        if pair[0].range().end > pair[1].addr {
            return Err(MultibootError::Overlap {
                first: pair[0].range(),
                second: pair[1].range(),
            });
        }
    }
    Ok(MultibootKernel {
        header_offset: offset,
        flags,
        format,
        segments,
        entry,
    })
}

fn aout_layout(image: &[u8], off: usize) -> Result<(KernelFormat, Vec<Segment>, u32), MultibootError> {
    let field = |i: usize| le32(image, off + 12 + 4 * i).ok_or(MultibootError::HeaderTruncated { offset: off });
    let (header_addr, load_addr, load_end, bss_end, entry) = (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
    let bad = |why: String| Err(MultibootError::BadAddresses(why));
    if load_addr > header_addr {
        return bad(format!(
            "load_addr {load_addr:#x} is above header_addr {header_addr:#x}"
        ));
    }
    let before_header = u64::from(header_addr - load_addr);
    let Some(file_offset) = (off as u64).checked_sub(before_header) else {
        return bad(format!(
            "load_addr {load_addr:#x} is {before_header:#x} bytes before the header, which is only {off:#x} bytes into the file"
        ));
    };
    let len = image.len() as u64;
    let file_size = if load_end == 0 {
        len - file_offset
    } else if load_end < load_addr {
        return bad(format!("load_end_addr {load_end:#x} is below load_addr {load_addr:#x}"));
    } else {
        u64::from(load_end - load_addr)
    };
    if file_offset + file_size > len {
        return Err(MultibootError::Truncated {
            what: format!("load_addr..load_end_addr ({load_addr:#x}..{load_end:#x})"),
            needed: file_offset + file_size,
            len,
        });
    }
    let load_top = u64::from(load_addr) + file_size;
    let mem_size = if bss_end == 0 {
        file_size
    } else if u64::from(bss_end) < load_top {
        return bad(format!(
            "bss_end_addr {bss_end:#x} is below the end of the loaded bytes {load_top:#x}"
        ));
    } else {
        u64::from(bss_end) - u64::from(load_addr)
    };
    let seg = Segment {
        addr: u64::from(load_addr),
        file_offset,
        file_size,
        mem_size,
    };
    if seg.range().end > LIMIT_4G {
        return Err(MultibootError::TooLarge {
            what: "kernel".into(),
            range: seg.range(),
        });
    }
    if !seg.range().contains(&u64::from(entry)) {
        return Err(MultibootError::EntryOutside { entry: entry.into() });
    }
    Ok((KernelFormat::AoutKludge, vec![seg], entry))
}

/// One program header, widened to 64 bits.
struct Phdr {
    kind: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

fn elf_layout(image: &[u8]) -> Result<(KernelFormat, Vec<Segment>, u32), MultibootError> {
    if image.get(..4) != Some(ELF_MAGIC.as_slice()) {
        return Err(bad_elf("no ELF magic (and no a.out kludge in the header)"));
    }
    let class = image.get(4).copied();
    if image.get(5).copied() != Some(ELFDATA2LSB) {
        return Err(bad_elf("not little-endian"));
    }
    let is64 = match class {
        Some(ELFCLASS32) => false,
        Some(ELFCLASS64) => true,
        _ => return Err(bad_elf("unknown ELF class")),
    };
    let ehdr_size = if is64 { ELF64_EHDR_SIZE } else { ELF32_EHDR_SIZE };
    let len = image.len() as u64;
    if image.len() < ehdr_size {
        return Err(MultibootError::Truncated {
            what: "ELF header".into(),
            needed: ehdr_size as u64,
            len,
        });
    }
    let h16 = |at| le16(image, at).unwrap_or(0);
    let (etype, machine) = (h16(16), h16(18));
    if etype != ET_EXEC {
        return Err(bad_elf(format!("type {etype} is not an executable")));
    }
    let want = if is64 { EM_X86_64 } else { EM_386 };
    if machine != want {
        return Err(bad_elf(format!("machine {machine} (expected {want})")));
    }
    let (entry, phoff, phentsize, phnum, phdr_size) = if is64 {
        (
            le64(image, 24).unwrap_or(0),
            le64(image, 32).unwrap_or(0),
            h16(54),
            h16(56),
            ELF64_PHDR_SIZE,
        )
    } else {
        (
            u64::from(le32(image, 24).unwrap_or(0)),
            u64::from(le32(image, 28).unwrap_or(0)),
            h16(42),
            h16(44),
            ELF32_PHDR_SIZE,
        )
    };
    if usize::from(phentsize) < phdr_size {
        return Err(bad_elf(format!(
            "program header size {phentsize} (expected {phdr_size})"
        )));
    }
    let table_end = phoff.saturating_add(u64::from(phentsize) * u64::from(phnum));
    if table_end > len {
        return Err(MultibootError::Truncated {
            what: "ELF program headers".into(),
            needed: table_end,
            len,
        });
    }
    let mut segments = Vec::new();
    let mut phys_entry = None;
    for i in 0..usize::from(phnum) {
        // In bounds: the whole table was checked against the file length.
        let at = phoff as usize + i * usize::from(phentsize);
        let p = if is64 {
            Phdr {
                kind: le32(image, at).unwrap_or(0),
                offset: le64(image, at + 8).unwrap_or(0),
                vaddr: le64(image, at + 16).unwrap_or(0),
                paddr: le64(image, at + 24).unwrap_or(0),
                filesz: le64(image, at + 32).unwrap_or(0),
                memsz: le64(image, at + 40).unwrap_or(0),
            }
        } else {
            let w = |o| u64::from(le32(image, at + o).unwrap_or(0));
            Phdr {
                kind: w(0) as u32,
                offset: w(4),
                vaddr: w(8),
                paddr: w(12),
                filesz: w(16),
                memsz: w(20),
            }
        };
        if p.kind != PT_LOAD || p.memsz == 0 {
            continue;
        }
        if p.filesz > p.memsz {
            return Err(bad_elf(format!(
                "segment {i}: file size {:#x} exceeds memory size {:#x}",
                p.filesz, p.memsz
            )));
        }
        let file_end = p.offset.saturating_add(p.filesz);
        if file_end > len {
            return Err(MultibootError::Truncated {
                what: format!("ELF segment {i}"),
                needed: file_end,
                len,
            });
        }
        let end = p.paddr.saturating_add(p.memsz);
        if end > LIMIT_4G {
            return Err(MultibootError::TooLarge {
                what: format!("ELF segment {i}"),
                range: p.paddr..end,
            });
        }
        if phys_entry.is_none() && entry >= p.vaddr && entry - p.vaddr < p.memsz {
            phys_entry = Some(p.paddr + (entry - p.vaddr));
        }
        segments.push(Segment {
            addr: p.paddr,
            file_offset: p.offset,
            file_size: p.filesz,
            mem_size: p.memsz,
        });
    }
    // An entry given as a physical address (vaddr != paddr, entry already physical) is accepted too.
    let phys_entry = phys_entry
        .or_else(|| segments.iter().any(|s| s.range().contains(&entry)).then_some(entry))
        .ok_or(MultibootError::EntryOutside { entry })?;
    let format = if is64 { KernelFormat::Elf64 } else { KernelFormat::Elf32 };
    // Below 4 GiB: it lies in a segment checked above.
    Ok((format, segments, phys_entry as u32))
}

/// The RAM range of the map that holds all of `range`, if one does.
fn ram_holds(map: &[E820Entry], range: &Range<u64>) -> bool {
    map.iter()
        .any(|e| e.kind == E820Kind::Ram && e.base <= range.start && range.end <= e.end())
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// KiB of RAM in the map's RAM range containing `addr`, from `addr` up to `limit`.
fn ram_kib_from(map: &[E820Entry], addr: u64, limit: u64) -> u32 {
    map.iter()
        .find(|e| e.kind == E820Kind::Ram && e.base <= addr && addr < e.end())
        .map(|e| u32::try_from((e.end().min(limit) - addr) / 1024).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// The information structure's bytes, built for address `base`.
struct InfoLayout {
    size: u64,
    mmap: usize,
    mods: usize,
    strings: usize,
}

impl InfoLayout {
    fn new(config: &BootConfig) -> InfoLayout {
        let mmap = align8(info::SIZE);
        let mods = mmap + config.memory_map.len() * info::MMAP_ENTRY_SIZE;
        let strings = mods + config.modules.len() * info::MOD_ENTRY_SIZE;
        let text: usize = config.cmdline.len()
            + config.boot_loader_name.len()
            + config.modules.iter().map(|m| m.cmdline.len()).sum::<usize>()
            + 2
            + config.modules.len();
        InfoLayout {
            size: (strings + text) as u64,
            mmap,
            mods,
            strings,
        }
    }
}

fn align8(v: usize) -> usize {
    (v + 7) & !7
}

/// Loads `image` into guest memory through `mem` as [`BootConfig`] says, and returns the entry state.
/// Nothing is written unless the whole layout checks out.
pub fn load(image: &[u8], config: &BootConfig, mem: &mut dyn PhysWriter) -> Result<MultibootBoot, MultibootError> {
    let kernel = parse(image)?;
    let map = config.memory_map;
    for (i, s) in kernel.segments.iter().enumerate() {
        if !ram_holds(map, &s.range()) {
            return Err(MultibootError::OutsideRam {
                what: format!("kernel segment {i}"),
                range: s.range(),
            });
        }
    }
    // Sorted and non-empty (checked by parse).
    let kernel_range = kernel.segments[0].addr..kernel.segments.iter().map(|s| s.range().end).max().unwrap_or(0);

    let layout = InfoLayout::new(config);
    let too_large = |what: &str, range: Range<u64>| MultibootError::TooLarge {
        what: what.into(),
        range,
    };
    let after_kernel =
        align_up(kernel_range.end, PAGE_SIZE).ok_or_else(|| too_large("kernel", kernel_range.clone()))?;
    let low = LOW_INFO_ADDR..LOW_INFO_ADDR + layout.size;
    let low_free = ram_holds(map, &low) && !kernel.segments.iter().any(|s| overlaps(&s.range(), &low));
    let info_range = if low_free {
        low
    } else {
        let r = after_kernel..after_kernel + layout.size;
        if !ram_holds(map, &r) {
            return Err(MultibootError::OutsideRam {
                what: "boot information".into(),
                range: r,
            });
        }
        r
    };
    if info_range.end > LIMIT_4G {
        return Err(too_large("boot information", info_range));
    }

    let mut next = if low_free { after_kernel } else { info_range.end };
    let mut modules = Vec::with_capacity(config.modules.len());
    for (i, m) in config.modules.iter().enumerate() {
        let mut start = align_up(next, PAGE_SIZE).ok_or_else(|| too_large("module", next..next))?;
        let size = m.data.len() as u64;
        if overlaps(&(start..start.saturating_add(size)), &info_range) {
            // A kernel below 0x9000 leaves the structure in the modules' way: go past it.
            start = align_up(info_range.end, PAGE_SIZE).ok_or_else(|| too_large("module", next..next))?;
        }
        let r = start..start.saturating_add(size);
        if r.end > LIMIT_4G {
            return Err(too_large(&format!("module {i}"), r));
        }
        if !ram_holds(map, &r) {
            return Err(MultibootError::OutsideRam {
                what: format!("module {i}"),
                range: r,
            });
        }
        next = r.end;
        modules.push(r);
    }

    // Everything checks out: write.
    let write = |mem: &mut dyn PhysWriter, addr: u64, bytes: &[u8]| {
        mem.write_phys(addr, bytes).map_err(|_| MultibootError::Write {
            range: addr..addr + bytes.len() as u64,
        })
    };
    const ZEROS: [u8; 4096] = [0; 4096];
    for s in &kernel.segments {
        // In bounds: checked by parse.
        let from = s.file_offset as usize;
        write(mem, s.addr, &image[from..from + s.file_size as usize])?;
        let mut at = s.addr + s.file_size;
        while at < s.range().end {
            let n = (s.range().end - at).min(ZEROS.len() as u64);
            write(mem, at, &ZEROS[..n as usize])?;
            at += n;
        }
    }
    for (m, r) in config.modules.iter().zip(&modules) {
        write(mem, r.start, m.data)?;
    }
    let info_bytes = build_info(config, &layout, info_range.start, &modules);
    write(mem, info_range.start, &info_bytes)?;

    Ok(MultibootBoot {
        entry: kernel.entry,
        info_addr: info_range.start as u32,
        magic: BOOTLOADER_MAGIC,
        kernel: kernel_range,
        info: info_range,
        modules,
    })
}

fn build_info(config: &BootConfig, layout: &InfoLayout, base: u64, modules: &[Range<u64>]) -> Vec<u8> {
    let mut b = vec![0u8; layout.size as usize];
    // Addresses below 4 GiB: checked by the caller.
    let addr = |off: usize| (base + off as u64) as u32;
    let put32 = |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    let mut strings = layout.strings;
    let mut put_str = |b: &mut Vec<u8>, s: &str| {
        let at = strings;
        b[at..at + s.len()].copy_from_slice(s.as_bytes());
        strings += s.len() + 1; // the NUL is already there
        addr(at)
    };

    let map = config.memory_map;
    let flags = INFO_MEMORY | INFO_CMDLINE | INFO_MODS | INFO_MMAP | INFO_BOOT_LOADER_NAME;
    put32(&mut b, info::FLAGS, flags);
    put32(&mut b, info::MEM_LOWER, ram_kib_from(map, 0, LOW_MEMORY_END));
    put32(&mut b, info::MEM_UPPER, ram_kib_from(map, HIGH_MEMORY_START, u64::MAX));
    let cmdline = put_str(&mut b, config.cmdline);
    put32(&mut b, info::CMDLINE, cmdline);
    let name = put_str(&mut b, config.boot_loader_name);
    put32(&mut b, info::BOOT_LOADER_NAME, name);

    for (i, e) in map.iter().enumerate() {
        let at = layout.mmap + i * info::MMAP_ENTRY_SIZE;
        put32(&mut b, at, info::MMAP_ENTRY_SIZE_FIELD);
        put64(&mut b, at + 4, e.base);
        put64(&mut b, at + 12, e.length);
        put32(&mut b, at + 20, e.kind as u32);
    }
    put32(&mut b, info::MMAP_LENGTH, (map.len() * info::MMAP_ENTRY_SIZE) as u32);
    put32(&mut b, info::MMAP_ADDR, addr(layout.mmap));

    for (i, (m, r)) in config.modules.iter().zip(modules).enumerate() {
        let at = layout.mods + i * info::MOD_ENTRY_SIZE;
        put32(&mut b, at, r.start as u32);
        put32(&mut b, at + 4, r.end as u32);
        let s = put_str(&mut b, m.cmdline);
        put32(&mut b, at + 8, s);
    }
    put32(&mut b, info::MODS_COUNT, modules.len() as u32);
    put32(&mut b, info::MODS_ADDR, addr(layout.mods));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    const FILL: u8 = 0xaa;

    /// A header with `flags` and the given address fields, checksum right.
    fn header(flags: u32, fields: &[u32]) -> Vec<u8> {
        let sum = 0u32.wrapping_sub(HEADER_MAGIC.wrapping_add(flags));
        [HEADER_MAGIC, flags, sum]
            .iter()
            .chain(fields)
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    /// A PC memory map: 639 KiB low, the EBDA and BIOS reserved, RAM from 1 MiB to `ram`.
    fn pc_map(ram: u64) -> Vec<E820Entry> {
        let reserved = |base, length| E820Entry {
            base,
            length,
            kind: E820Kind::Reserved,
        };
        vec![
            E820Entry::ram(0, 0x9_fc00),
            reserved(0x9_fc00, 0x400),
            reserved(0xf_0000, 0x1_0000),
            E820Entry::ram(MIB, ram - MIB),
        ]
    }

    fn config<'a>(map: &'a [E820Entry], modules: &'a [Module<'a>]) -> BootConfig<'a> {
        BootConfig {
            memory_map: map,
            cmdline: "kernel.elf console=ttyS0",
            boot_loader_name: "rqemu",
            modules,
        }
    }

    fn memory(size: u64) -> Vec<u8> {
        vec![FILL; size as usize]
    }

    fn rd32(mem: &[u8], addr: u64) -> u32 {
        le32(mem, addr as usize).unwrap()
    }

    fn cstr(mem: &[u8], addr: u32) -> String {
        let s = &mem[addr as usize..];
        String::from_utf8(s[..s.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap()
    }

    /// An a.out-kludge kernel loaded at 1 MiB: header, then code; `bss` bytes of bss.
    fn aout_kernel(bss: u32) -> Vec<u8> {
        let base = 0x10_0000u32;
        let code = [0xf4u8; 20]; // hlt
        let file_len = 32 + code.len() as u32;
        let mut img = header(
            HEADER_AOUT_KLUDGE | HEADER_MEMORY_INFO,
            &[base, base, base + file_len, base + file_len + bss, base + 32],
        );
        img.extend_from_slice(&code);
        img
    }

    /// An ELF file: `segs` are (vaddr, paddr, bytes, memsz); a class-64 file when `is64`.
    fn elf(is64: bool, entry: u64, segs: &[(u64, u64, Vec<u8>, u64)]) -> Vec<u8> {
        let (ehdr, phdr) = if is64 {
            (ELF64_EHDR_SIZE, ELF64_PHDR_SIZE)
        } else {
            (ELF32_EHDR_SIZE, ELF32_PHDR_SIZE)
        };
        let mut f = vec![0u8; ehdr + phdr * segs.len()];
        f[..4].copy_from_slice(ELF_MAGIC);
        f[4] = if is64 { ELFCLASS64 } else { ELFCLASS32 };
        f[5] = ELFDATA2LSB;
        f[6] = 1;
        f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        let machine = if is64 { EM_X86_64 } else { EM_386 };
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        let mut offsets = Vec::new();
        let mut data = Vec::new();
        for (_, _, bytes, _) in segs {
            offsets.push((f.len() + data.len()) as u64);
            data.extend_from_slice(bytes);
            data.resize(align8(data.len()), 0);
        }
        let put = |f: &mut Vec<u8>, at: usize, v: u64, wide: bool| {
            if wide {
                f[at..at + 8].copy_from_slice(&v.to_le_bytes());
            } else {
                f[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
            }
        };
        if is64 {
            put(&mut f, 24, entry, true);
            put(&mut f, 32, ehdr as u64, true);
            f[54..56].copy_from_slice(&(phdr as u16).to_le_bytes());
            f[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        } else {
            put(&mut f, 24, entry, false);
            put(&mut f, 28, ehdr as u64, false);
            f[42..44].copy_from_slice(&(phdr as u16).to_le_bytes());
            f[44..46].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        }
        for (i, ((vaddr, paddr, bytes, memsz), off)) in segs.iter().zip(&offsets).enumerate() {
            let at = ehdr + i * phdr;
            put(&mut f, at, u64::from(PT_LOAD), false);
            if is64 {
                for (j, v) in [*off, *vaddr, *paddr, bytes.len() as u64, *memsz].iter().enumerate() {
                    put(&mut f, at + 8 + 8 * j, *v, true);
                }
            } else {
                for (j, v) in [*off, *vaddr, *paddr, bytes.len() as u64, *memsz].iter().enumerate() {
                    put(&mut f, at + 4 + 4 * j, *v, false);
                }
            }
        }
        f.extend_from_slice(&data);
        f
    }

    /// A text segment with the multiboot header (ELF layout: no address fields) followed by `hlt`s.
    fn text() -> Vec<u8> {
        let mut t = header(HEADER_PAGE_ALIGN | HEADER_MEMORY_INFO, &[]);
        t.extend_from_slice(&[0xf4; 52]);
        t
    }

    #[test]
    fn aout_kludge_kernel_loads_at_load_addr_with_bss_zeroed() {
        let img = aout_kernel(0x100);
        let map = pc_map(4 * MIB);
        let mut mem = memory(4 * MIB);
        let boot = load(&img, &config(&map, &[]), &mut mem).unwrap();
        assert_eq!(boot.entry, 0x10_0020);
        assert_eq!(boot.magic, BOOTLOADER_MAGIC);
        assert_eq!(&mem[0x10_0000..0x10_0000 + img.len()], &img[..]);
        let bss = 0x10_0000 + img.len();
        assert!(mem[bss..bss + 0x100].iter().all(|&b| b == 0));
        assert_eq!(mem[bss + 0x100], FILL, "nothing past bss_end_addr");
        assert_eq!(boot.kernel, 0x10_0000..bss as u64 + 0x100);
    }

    #[test]
    fn info_structure_has_memory_cmdline_name_and_mmap() {
        let img = aout_kernel(0);
        let map = pc_map(4 * MIB);
        let mut mem = memory(4 * MIB);
        let boot = load(&img, &config(&map, &[]), &mut mem).unwrap();
        assert_eq!(u64::from(boot.info_addr), LOW_INFO_ADDR);
        let i = u64::from(boot.info_addr);
        let flags = rd32(&mem, i);
        assert_eq!(
            flags,
            INFO_MEMORY | INFO_CMDLINE | INFO_MODS | INFO_MMAP | INFO_BOOT_LOADER_NAME
        );
        assert_eq!(rd32(&mem, i + info::MEM_LOWER as u64), 639);
        assert_eq!(rd32(&mem, i + info::MEM_UPPER as u64), 3 * 1024);
        assert_eq!(
            cstr(&mem, rd32(&mem, i + info::CMDLINE as u64)),
            "kernel.elf console=ttyS0"
        );
        assert_eq!(cstr(&mem, rd32(&mem, i + info::BOOT_LOADER_NAME as u64)), "rqemu");
        assert_eq!(rd32(&mem, i + info::MODS_COUNT as u64), 0);
        let mmap = u64::from(rd32(&mem, i + info::MMAP_ADDR as u64));
        assert_eq!(rd32(&mem, i + info::MMAP_LENGTH as u64), 4 * 24);
        // The last entry: RAM from 1 MiB.
        let e = mmap + 3 * 24;
        assert_eq!(rd32(&mem, e), 20);
        assert_eq!(le64(&mem, e as usize + 4), Some(MIB));
        assert_eq!(le64(&mem, e as usize + 12), Some(3 * MIB));
        assert_eq!(rd32(&mem, e + 20), E820Kind::Ram as u32);
    }

    #[test]
    fn elf32_segments_load_at_paddr_and_higher_half_entry_is_translated() {
        let data = vec![0x11u8; 16];
        let img = elf(
            false,
            0xc010_0010,
            &[
                (0xc010_0000, 0x10_0000, text(), 0x1000),
                (0xc020_0000, 0x20_0000, data.clone(), 0x40),
            ],
        );
        let map = pc_map(4 * MIB);
        let mut mem = memory(4 * MIB);
        let boot = load(&img, &config(&map, &[]), &mut mem).unwrap();
        assert_eq!(parse(&img).unwrap().format, KernelFormat::Elf32);
        assert_eq!(boot.entry, 0x10_0010);
        assert_eq!(&mem[0x10_0000..0x10_0000 + text().len()], &text()[..]);
        assert!(mem[0x10_0000 + text().len()..0x10_1000].iter().all(|&b| b == 0));
        assert_eq!(&mem[0x20_0000..0x20_0010], &data[..]);
        assert!(mem[0x20_0010..0x20_0040].iter().all(|&b| b == 0));
        assert_eq!(boot.kernel, 0x10_0000..0x20_0040);
    }

    #[test]
    fn elf64_with_32bit_physical_addresses_loads() {
        let img = elf(true, 0x10_0000, &[(0x10_0000, 0x10_0000, text(), 0x100)]);
        let map = pc_map(2 * MIB);
        let mut mem = memory(2 * MIB);
        let boot = load(&img, &config(&map, &[]), &mut mem).unwrap();
        assert_eq!(parse(&img).unwrap().format, KernelFormat::Elf64);
        assert_eq!(boot.entry, 0x10_0000);
    }

    #[test]
    fn modules_follow_the_kernel_page_aligned_with_cmdlines() {
        let img = aout_kernel(0x10);
        let map = pc_map(4 * MIB);
        let mut mem = memory(4 * MIB);
        let a = vec![1u8; 5000];
        let b = vec![2u8; 10];
        let mods = [
            Module {
                data: &a,
                cmdline: "initrd.img arg",
            },
            Module { data: &b, cmdline: "b" },
        ];
        let boot = load(&img, &config(&map, &mods), &mut mem).unwrap();
        assert_eq!(boot.modules, vec![0x10_1000..0x10_1000 + 5000, 0x10_3000..0x10_300a]);
        assert_eq!(&mem[0x10_1000..0x10_1000 + 5000], &a[..]);
        assert_eq!(&mem[0x10_3000..0x10_300a], &b[..]);
        let i = u64::from(boot.info_addr);
        assert_eq!(rd32(&mem, i + info::MODS_COUNT as u64), 2);
        let m = u64::from(rd32(&mem, i + info::MODS_ADDR as u64));
        assert_eq!(rd32(&mem, m), 0x10_1000);
        assert_eq!(rd32(&mem, m + 4), 0x10_1000 + 5000);
        assert_eq!(cstr(&mem, rd32(&mem, m + 8)), "initrd.img arg");
        assert_eq!(cstr(&mem, rd32(&mem, m + 16 + 8)), "b");
    }

    #[test]
    fn info_moves_after_the_kernel_when_the_low_page_is_taken() {
        // A kernel loaded at 0x8000 covers 0x9000.
        let base = 0x8000u32;
        let mut img = header(HEADER_AOUT_KLUDGE, &[base, base, 0, base + 0x2000, base + 32]);
        img.extend_from_slice(&[0x90; 64]);
        let map = pc_map(2 * MIB);
        let mut mem = memory(2 * MIB);
        let boot = load(&img, &config(&map, &[]), &mut mem).unwrap();
        assert_eq!(boot.info_addr, 0xa000);
        assert_eq!(rd32(&mem, 0xa000 + info::MEM_LOWER as u64), 639);
    }

    #[test]
    fn modules_skip_the_info_structure_of_a_low_kernel() {
        let base = 0x1000u32;
        let mut img = header(HEADER_AOUT_KLUDGE, &[base, base, 0, 0, base + 32]);
        img.extend_from_slice(&[0x90; 64]);
        let map = pc_map(2 * MIB);
        let mut mem = memory(2 * MIB);
        let data = vec![3u8; 0x9000];
        let mods = [Module {
            data: &data,
            cmdline: "m",
        }];
        let boot = load(&img, &config(&map, &mods), &mut mem).unwrap();
        assert_eq!(u64::from(boot.info_addr), LOW_INFO_ADDR);
        assert!(!overlaps(&boot.modules[0], &boot.info));
        assert_eq!(boot.modules[0].start, 0xa000);
        assert!(mem[0xa000..0x1_3000].iter().all(|&b| b == 3));
        assert_eq!(
            cstr(&mem, rd32(&mem, LOW_INFO_ADDR + info::BOOT_LOADER_NAME as u64)),
            "rqemu"
        );
    }

    #[test]
    fn header_found_at_an_aligned_offset_inside_8k() {
        let mut img = vec![0u8; 4096];
        let base = 0x10_0000u32;
        img.extend(header(HEADER_AOUT_KLUDGE, &[base + 4096, base, 0, 0, base]));
        img.extend_from_slice(&[0xf4; 8]);
        let k = parse(&img).unwrap();
        assert_eq!(k.header_offset, 4096);
        assert_eq!(k.segments[0].file_offset, 0);
    }

    fn err(img: &[u8]) -> MultibootError {
        let map = pc_map(4 * MIB);
        let mut mem = memory(4 * MIB);
        load(img, &config(&map, &[]), &mut mem).unwrap_err()
    }

    #[test]
    fn image_without_header_is_rejected() {
        assert_eq!(err(&[0u8; 100]), MultibootError::NoHeader);
        assert_eq!(err(&[]), MultibootError::NoHeader);
        // A header past the first 8 KiB does not count.
        let mut img = vec![0u8; HEADER_SEARCH_LIMIT];
        img.extend(aout_kernel(0));
        assert_eq!(err(&img), MultibootError::NoHeader);
    }

    #[test]
    fn bad_checksum_is_rejected_by_offset() {
        let mut img = aout_kernel(0);
        img[8] ^= 1;
        assert_eq!(err(&img), MultibootError::BadChecksum { offset: 0 });
        assert!(err(&img).to_string().contains("checksum"));
    }

    #[test]
    fn truncated_header_and_file_are_rejected() {
        let img = aout_kernel(0);
        assert_eq!(err(&img[..20]), MultibootError::HeaderTruncated { offset: 0 });
        assert_eq!(err(&img[..10]), MultibootError::HeaderTruncated { offset: 0 });
        // load_end_addr promises more bytes than the file has.
        assert!(matches!(err(&img[..40]), MultibootError::Truncated { .. }));
    }

    #[test]
    fn contradictory_aout_addresses_are_rejected() {
        let b = 0x10_0000u32;
        let with = |fields: &[u32]| {
            let mut img = header(HEADER_AOUT_KLUDGE, fields);
            img.extend_from_slice(&[0; 64]);
            err(&img)
        };
        assert!(matches!(
            with(&[b, b + 4, 0, 0, b + 4]),
            MultibootError::BadAddresses(_)
        ));
        assert!(matches!(with(&[b + 64, b, 0, 0, b]), MultibootError::BadAddresses(_)));
        assert!(matches!(with(&[b, b, b - 1, 0, b]), MultibootError::BadAddresses(_)));
        assert!(matches!(
            with(&[b, b, b + 16, b + 8, b]),
            MultibootError::BadAddresses(_)
        ));
        assert_eq!(
            with(&[b, b, 0, 0, b + 0x1000]),
            MultibootError::EntryOutside { entry: 0x10_1000 }
        );
    }

    #[test]
    fn unknown_required_flags_are_rejected() {
        let mut img = header(1 << 3, &[]);
        img.extend_from_slice(&[0; 64]);
        assert_eq!(err(&img), MultibootError::UnsupportedFlags { flags: 1 << 3 });
    }

    #[test]
    fn non_elf_without_kludge_and_wrong_machine_are_rejected() {
        assert!(matches!(err(&text()), MultibootError::BadElf(_)));
        let mut img = elf(false, 0x10_0000, &[(0x10_0000, 0x10_0000, text(), 0x100)]);
        img[18] = EM_X86_64 as u8;
        assert!(matches!(err(&img), MultibootError::BadElf(_)));
    }

    #[test]
    fn truncated_elf_segment_and_program_headers_are_rejected() {
        let img = elf(false, 0x10_0000, &[(0x10_0000, 0x10_0000, text(), 0x100)]);
        assert!(matches!(err(&img[..img.len() - 8]), MultibootError::Truncated { .. }));
        let mut img2 = img.clone();
        img2[44] = 200; // phnum past the file
        assert!(matches!(err(&img2), MultibootError::Truncated { .. }));
    }

    #[test]
    fn segment_outside_ram_is_rejected() {
        let img = elf(false, 0x10_0000, &[(0x10_0000, 0x10_0000, text(), 8 * MIB)]);
        assert!(matches!(err(&img), MultibootError::OutsideRam { .. }));
        // Into the reserved BIOS area.
        let img = elf(false, 0xf_0000, &[(0xf_0000, 0xf_0000, text(), 0x100)]);
        assert!(matches!(err(&img), MultibootError::OutsideRam { .. }));
    }

    #[test]
    fn overlapping_segments_are_rejected() {
        let img = elf(
            false,
            0x10_0000,
            &[
                (0x10_0000, 0x10_0000, text(), 0x2000),
                (0x10_1000, 0x10_1000, vec![1; 8], 0x10),
            ],
        );
        assert_eq!(
            err(&img),
            MultibootError::Overlap {
                first: 0x10_0000..0x10_2000,
                second: 0x10_1000..0x10_1010
            }
        );
    }

    #[test]
    fn segments_reaching_4g_are_too_large() {
        let img = elf(true, 0x10_0000, &[(0x10_0000, 0x1_0000_0000, text(), 0x100)]);
        assert!(matches!(err(&img), MultibootError::TooLarge { .. }));
        let b = 0xffff_f000u32;
        let mut img = header(HEADER_AOUT_KLUDGE, &[b, b, 0, 0xffff_ffff, b]);
        img.extend_from_slice(&[0; 16]);
        assert!(matches!(err(&img), MultibootError::OutsideRam { .. }));
    }

    #[test]
    fn module_outside_ram_is_rejected_before_anything_is_written() {
        let img = aout_kernel(0);
        let map = pc_map(2 * MIB);
        let mut mem = memory(2 * MIB);
        let big = vec![0u8; 2 * MIB as usize];
        let mods = [Module {
            data: &big,
            cmdline: "",
        }];
        let e = load(&img, &config(&map, &mods), &mut mem).unwrap_err();
        assert!(matches!(e, MultibootError::OutsideRam { .. }), "{e}");
        assert!(mem.iter().all(|&b| b == FILL));
    }

    #[test]
    fn writer_failure_is_an_error() {
        let img = aout_kernel(0);
        let map = pc_map(4 * MIB);
        let mut mem = memory(MIB); // smaller than the map says
        assert!(matches!(
            load(&img, &config(&map, &[]), &mut mem),
            Err(MultibootError::Write { .. })
        ));
    }

    #[test]
    fn mutated_images_never_panic() {
        let seeds = [
            aout_kernel(0x40),
            elf(false, 0xc010_0010, &[(0xc010_0000, 0x10_0000, text(), 0x1000)]),
            elf(true, 0x10_0000, &[(0x10_0000, 0x10_0000, text(), 0x100)]),
        ];
        let map = pc_map(4 * MIB);
        let mut mem = memory(4 * MIB);
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut rand = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for seed in &seeds {
            for _ in 0..2000 {
                let mut img = seed.clone();
                for _ in 0..1 + rand() % 4 {
                    let at = (rand() % img.len() as u64) as usize;
                    img[at] = rand() as u8;
                }
                if rand() % 8 == 0 {
                    img.truncate((rand() % img.len() as u64) as usize);
                }
                let _ = load(&img, &config(&map, &[]), &mut mem);
            }
        }
    }
}
