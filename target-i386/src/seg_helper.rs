//! x86 segmentation (Intel SDM vol. 3 ch. 3 and 5, AMD APM vol. 2 ch. 4): descriptors, segment-register
//! loads with their protection checks, far jmp/call/ret through code segments and call gates, iret, and
//! lar/lsl/verr/verw. Self-contained: every function takes the CPU state and a [`SysMem`] and either
//! completes (state updated) or returns the [`Fault`] to raise with the state untouched (memory written by
//! pushes before a fault stays written, as on hardware). Nothing here panics on guest values: selectors,
//! descriptor contents, limits and stack pointers use wrapping arithmetic as the architecture defines.
//!
//! # Descriptor cache layout
//! [`SegmentCache::flags`] holds the descriptor's high dword masked with [`DESC_FLAGS_MASK`] (type, S, DPL, P,
//! AVL, L, D/B, G: bits 8..24), `limit` is the byte limit after G scaling, `base` the linear base (64 bits for
//! the 16-byte system descriptors of long mode).
//!
//! # Modes
//! - real mode (CR0.PE = 0): a segment load sets the selector and `base = selector << 4`, keeping limit and
//!   flags (so "unreal mode" limits survive);
//! - virtual-8086 mode (EFLAGS.VM): the same base, limit 0xffff, a present writable data segment of DPL 3;
//! - protected and long mode: the checks of the manuals, each with its exception and error code (listed per
//!   function). CPL is [`cpl`]: 0 in real mode, 3 in vm86, else the RPL of CS (which every CS load sets).
//!
//! # Not emulated
//! Task switches: a far jmp/call to a TSS or through a task gate raises #GP(selector), an iret with
//! EFLAGS.NT = 1 outside long mode raises #GP(back-link selector) (in long mode the architecture's #GP(0)).
//! The busy bit, I/O bitmap and other TSS fields. Stack accesses are checked against the SS limit
//! (expand-up and expand-down) with #SS, but data-segment limits of ordinary accesses are the translator's.

use crate::cpu::{eflags, reg, seg, SegmentCache, X86CpuState};
use crate::paging::{Privilege, EFER_LMA};
use crate::sysmem::{Fault, SysMem};

pub use crate::cpu::{DESC_B, DESC_L, DESC_P};

/// CR0.PE: protected mode.
pub const CR0_PE: u64 = 1;

/// Descriptor flag: accessed (type bit 0 of code and data segments).
pub const DESC_A: u32 = 1 << 8;
/// Descriptor flag: writable (data segments).
pub const DESC_W: u32 = 1 << 9;
/// Descriptor flag: readable (code segments; same bit as [`DESC_W`]).
pub const DESC_R: u32 = 1 << 9;
/// Descriptor flag: expand-down (data segments).
pub const DESC_E: u32 = 1 << 10;
/// Descriptor flag: conforming (code segments; same bit as [`DESC_E`]).
pub const DESC_C: u32 = 1 << 10;
/// Descriptor flag: code segment (type bit 3 when S = 1).
pub const DESC_CS: u32 = 1 << 11;
/// Descriptor flag: code or data segment (S = 1) rather than a system descriptor.
pub const DESC_S: u32 = 1 << 12;
/// Shift of the DPL field.
pub const DESC_DPL_SHIFT: u32 = 13;
/// The DPL field.
pub const DESC_DPL_MASK: u32 = 3 << DESC_DPL_SHIFT;
/// Descriptor flag: available for software.
pub const DESC_AVL: u32 = 1 << 20;
/// Descriptor flag: granularity (limit in 4 KiB units).
pub const DESC_G: u32 = 1 << 23;
/// Shift of the 4-bit type field.
pub const DESC_TYPE_SHIFT: u32 = 8;
/// The 4-bit type field.
pub const DESC_TYPE_MASK: u32 = 0xf << DESC_TYPE_SHIFT;
/// The bits of the high dword kept in [`SegmentCache::flags`].
pub const DESC_FLAGS_MASK: u32 = 0x00f0_ff00;

/// Types of system descriptors (S = 0). In long mode only [`sys_type::LDT`], the 32-bit TSS, call, interrupt
/// and trap gate types are valid, and they mean the 64-bit (16-byte) forms.
pub mod sys_type {
    /// Available 16-bit TSS.
    pub const TSS16_AVAIL: u32 = 1;
    /// LDT.
    pub const LDT: u32 = 2;
    /// Busy 16-bit TSS.
    pub const TSS16_BUSY: u32 = 3;
    /// 16-bit call gate.
    pub const CALL_GATE16: u32 = 4;
    /// Task gate.
    pub const TASK_GATE: u32 = 5;
    /// 16-bit interrupt gate.
    pub const INT_GATE16: u32 = 6;
    /// 16-bit trap gate.
    pub const TRAP_GATE16: u32 = 7;
    /// Available 32-bit (64-bit in long mode) TSS.
    pub const TSS_AVAIL: u32 = 9;
    /// Busy 32-bit (64-bit) TSS.
    pub const TSS_BUSY: u32 = 0xb;
    /// 32-bit (64-bit) call gate.
    pub const CALL_GATE: u32 = 0xc;
    /// 32-bit (64-bit) interrupt gate.
    pub const INT_GATE: u32 = 0xe;
    /// 32-bit (64-bit) trap gate.
    pub const TRAP_GATE: u32 = 0xf;
}

/// Selector bits.
pub mod selector {
    /// Requested privilege level.
    pub const RPL: u16 = 3;
    /// Table indicator: LDT when set.
    pub const TI: u16 = 4;
    /// Index and TI: what an error code holds (bits 1 and 0 are IDT and EXT there).
    pub const ERR_MASK: u16 = 0xfffc;
    /// The index, as a byte offset into the table.
    pub const INDEX: u16 = 0xfff8;
}

/// EFLAGS.VIF (virtual interrupt flag).
const VIF: u64 = 1 << 19;
/// EFLAGS.VIP (virtual interrupt pending).
const VIP: u64 = 1 << 20;
/// The six arithmetic flags (CF, PF, AF, ZF, SF, OF).
const ARITH_FLAGS: u64 = 0x8d5;
/// The EFLAGS bits a real-mode `iretd` loads (SDM: tempEFLAGS AND 257FD5H): everything but VM, VIF, VIP.
const REAL_IRET_MASK: u64 = 0x25_7fd5;
/// Bits of RFLAGS that exist (the rest read as 0).
const RFLAGS_DEFINED: u64 = 0x3f_7fd5;
/// Byte offset of a 64-bit TSS's RSP0 (RSPn at 4 + 8n).
pub const TSS64_RSP0: u64 = 4;
/// Byte offset of a 64-bit TSS's IST1 (ISTn at 0x24 + 8(n - 1)).
pub const TSS64_IST1: u64 = 0x24;
/// Byte offset of a 32-bit TSS's ESP0 (ESPn at 4 + 8n, SSn at 8 + 8n).
pub const TSS32_ESP0: u64 = 4;
/// Byte offset of a 16-bit TSS's SP0 (SPn at 2 + 4n, SSn at 4 + 4n).
pub const TSS16_SP0: u64 = 2;

/// The error code naming `sel`: its index and TI bit.
pub const fn sel_err(sel: u16) -> u32 {
    (sel & selector::ERR_MASK) as u32
}

/// Whether data accesses through segment `seg_reg` need [`check_data_access`] (its bit in
/// `TbFlags::seg_checks`): outside 64-bit mode, any segment but a present, expand-up one with a 4 GiB limit.
pub fn needs_data_check(s: &X86CpuState, seg_reg: usize) -> bool {
    let c = &s.segs[seg_reg];
    let unusable = is_protected(s) && !is_vm86(s) && c.flags & DESC_P == 0;
    unusable || is_expand_down(c.flags) || c.limit != u32::MAX
}

/// Whether descriptor attributes `flags` are those of an expand-down data segment.
fn is_expand_down(flags: u32) -> bool {
    flags & (DESC_S | DESC_CS | DESC_E) == DESC_S | DESC_E
}

/// The checks of a data access of `len` (>= 1) bytes at `offset` through segment `seg_reg` outside 64-bit
/// mode: #GP(0), or #SS(0) through SS, when the segment is unusable (loaded with a null selector in
/// protected mode) or a byte of the access lies outside its limit: above it for an expand-up segment, at or
/// below it (or above 0xffff, or 0xffffffff with the B bit) for an expand-down one. Read/write rights are
/// not checked here.
pub fn check_data_access(s: &X86CpuState, seg_reg: usize, offset: u64, len: u64) -> Result<(), Fault> {
    let c = &s.segs[seg_reg];
    let fault = if seg_reg == seg::SS { Fault::ss(0) } else { Fault::gp(0) };
    if is_protected(s) && !is_vm86(s) && c.flags & DESC_P == 0 {
        return Err(fault);
    }
    let last = offset.wrapping_add(len.max(1) - 1);
    let limit = u64::from(c.limit);
    let inside = if is_expand_down(c.flags) {
        let upper = if c.flags & DESC_B != 0 { 0xffff_ffff } else { 0xffff };
        offset > limit && last >= offset && last <= upper
    } else {
        last >= offset && last <= limit
    };
    if inside {
        Ok(())
    } else {
        Err(fault)
    }
}

/// Whether `sel` is a null selector (index 0 in the GDT; the RPL does not matter).
pub const fn is_null(sel: u16) -> bool {
    sel & selector::ERR_MASK == 0
}

/// Whether CR0.PE is set.
pub fn is_protected(s: &X86CpuState) -> bool {
    s.cr[0] & CR0_PE != 0
}

/// Whether the CPU is in virtual-8086 mode (CR0.PE and EFLAGS.VM).
pub fn is_vm86(s: &X86CpuState) -> bool {
    is_protected(s) && s.eflags & eflags::VM != 0
}

/// Whether long mode is active (EFER.LMA): 64-bit descriptor tables, 16-byte system descriptors.
pub fn is_long_active(s: &X86CpuState) -> bool {
    s.efer & EFER_LMA != 0
}

/// Whether the CPU runs 64-bit code (EFER.LMA and CS.L).
pub fn is_code64(s: &X86CpuState) -> bool {
    is_long_active(s) && s.segs[seg::CS].flags & DESC_L != 0
}

/// The current privilege level: 0 in real mode, 3 in vm86 mode, otherwise the RPL of CS (every CS load in
/// protected mode sets it to the new CPL). The machine's TB flags should use this rather than the raw CS RPL,
/// which is arbitrary in real mode.
pub fn cpl(s: &X86CpuState) -> u8 {
    if !is_protected(s) {
        0
    } else if s.eflags & eflags::VM != 0 {
        3
    } else {
        (s.segs[seg::CS].selector & selector::RPL) as u8
    }
}

/// The privilege of an explicit data (stack) access at `cpl`: user at CPL 3, supervisor with EFLAGS.AC (the
/// SMAP override) below.
pub fn data_privilege(cpl: u8, rflags: u64) -> Privilege {
    if cpl == 3 {
        Privilege::User
    } else {
        Privilege::Supervisor {
            ac: rflags & eflags::AC != 0,
        }
    }
}

/// Whether `addr` is canonical (48-bit linear addresses).
pub fn is_canonical(addr: u64) -> bool {
    ((addr as i64) << 16 >> 16) as u64 == addr
}

/// `base + offset` as a linear address: 64 bits in long mode (descriptor tables, 64-bit stacks), 32 bits
/// otherwise.
fn linear(long: bool, base: u64, offset: u64) -> u64 {
    let a = base.wrapping_add(offset);
    if long {
        a
    } else {
        a & 0xffff_ffff
    }
}

/// A segment or gate descriptor as read from a descriptor table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Bytes 0..4 (limit 15:0, base 15:0; for gates offset 15:0 and the selector).
    pub lo: u32,
    /// Bytes 4..8 (base 23:16, type, S, DPL, P, limit 19:16, AVL, L, D/B, G, base 31:24; for gates the
    /// parameter count or IST, type, DPL, P, offset 31:16).
    pub hi: u32,
    /// Bytes 8..16 of a 16-byte system descriptor (long mode: LDT, TSS, call/interrupt/trap gates): base or
    /// offset 63:32 in the low dword; 0 for 8-byte descriptors.
    pub upper: u64,
}

impl Descriptor {
    /// An 8-byte descriptor from its little-endian quadword.
    pub const fn from_raw(raw: u64) -> Descriptor {
        Descriptor {
            lo: raw as u32,
            hi: (raw >> 32) as u32,
            upper: 0,
        }
    }

    /// A 16-byte descriptor from its two quadwords.
    pub const fn from_raw16(raw: u64, upper: u64) -> Descriptor {
        Descriptor {
            lo: raw as u32,
            hi: (raw >> 32) as u32,
            upper,
        }
    }

    /// Encodes a code, data or system segment descriptor (the low 8 bytes): `base` bits 31:0, the raw 20-bit
    /// `limit` (bits above 19 are dropped; G in `flags` scales it), and `flags` in the cache layout (type, S,
    /// DPL, P, AVL, L, D/B, G; other bits are ignored). For firmware, loaders and tests.
    pub const fn encode_segment(base: u32, limit: u32, flags: u32) -> u64 {
        let lo = (limit & 0xffff) | (base << 16);
        let hi = ((base >> 16) & 0xff) | (base & 0xff00_0000) | (limit & 0xf_0000) | (flags & DESC_FLAGS_MASK);
        lo as u64 | (hi as u64) << 32
    }

    /// Encodes a gate (the low 8 bytes): `typ` (a [`sys_type`]), `dpl`, present, the target `sel:offset`
    /// (offset bits 31:0; bits 63:32 go in the upper quadword of a 16-byte gate), and `extra` in bits 4:0 of
    /// the high dword (call gates: parameter count; 64-bit interrupt gates: IST index).
    pub const fn encode_gate(typ: u32, dpl: u8, sel: u16, offset: u32, extra: u32) -> u64 {
        let lo = (offset & 0xffff) | (sel as u32) << 16;
        let hi = (offset & 0xffff_0000)
            | DESC_P
            | (dpl as u32 & 3) << DESC_DPL_SHIFT
            | (typ & 0xf) << DESC_TYPE_SHIFT
            | (extra & 0x1f);
        lo as u64 | (hi as u64) << 32
    }

    /// An 8-byte descriptor from its bytes.
    pub fn from_bytes(b: [u8; 8]) -> Descriptor {
        Descriptor::from_raw(u64::from_le_bytes(b))
    }

    /// The base address (bits 63:32 from [`Descriptor::upper`], 0 for 8-byte descriptors).
    pub const fn base(&self) -> u64 {
        let low = (self.lo >> 16) | ((self.hi & 0xff) << 16) | (self.hi & 0xff00_0000);
        low as u64 | (self.upper & 0xffff_ffff) << 32
    }

    /// The limit in bytes: the 20-bit field, scaled to 4 KiB units with the low 12 bits set when G = 1.
    pub const fn limit(&self) -> u32 {
        let raw = (self.lo & 0xffff) | (self.hi & 0xf_0000);
        if self.hi & DESC_G != 0 {
            (raw << 12) | 0xfff
        } else {
            raw
        }
    }

    /// The attribute bits as [`SegmentCache::flags`] keeps them.
    pub const fn flags(&self) -> u32 {
        self.hi & DESC_FLAGS_MASK
    }

    /// The 4-bit type field.
    pub const fn typ(&self) -> u32 {
        (self.hi & DESC_TYPE_MASK) >> DESC_TYPE_SHIFT
    }

    /// The descriptor privilege level.
    pub const fn dpl(&self) -> u8 {
        ((self.hi & DESC_DPL_MASK) >> DESC_DPL_SHIFT) as u8
    }

    /// The present bit.
    pub const fn present(&self) -> bool {
        self.hi & DESC_P != 0
    }

    /// A code or data segment (S = 1), not a system descriptor.
    pub const fn is_segment(&self) -> bool {
        self.hi & DESC_S != 0
    }

    /// A code segment.
    pub const fn is_code(&self) -> bool {
        self.is_segment() && self.hi & DESC_CS != 0
    }

    /// A conforming code segment.
    pub const fn is_conforming(&self) -> bool {
        self.is_code() && self.hi & DESC_C != 0
    }

    /// A data segment, or a readable code segment.
    pub const fn is_readable(&self) -> bool {
        self.is_segment() && (self.hi & DESC_CS == 0 || self.hi & DESC_R != 0)
    }

    /// A writable data segment.
    pub const fn is_writable_data(&self) -> bool {
        self.is_segment() && self.hi & DESC_CS == 0 && self.hi & DESC_W != 0
    }

    /// A 64-bit code segment (L = 1, D = 0).
    pub const fn is_code64(&self) -> bool {
        self.is_code() && self.hi & DESC_L != 0 && self.hi & DESC_B == 0
    }

    /// Gates: the target code-segment selector.
    pub const fn gate_selector(&self) -> u16 {
        (self.lo >> 16) as u16
    }

    /// Gates: the target offset (16 bits for 16-bit gates, 32 for 32-bit gates, 64 with [`Descriptor::upper`]
    /// for 16-byte gates; the caller keeps the width its gate type has).
    pub const fn gate_offset(&self) -> u64 {
        ((self.lo & 0xffff) | (self.hi & 0xffff_0000)) as u64 | (self.upper & 0xffff_ffff) << 32
    }

    /// Call gates: the number of stack parameters to copy (bits 4:0).
    pub const fn param_count(&self) -> u32 {
        self.hi & 0x1f
    }

    /// 64-bit interrupt and trap gates: the interrupt-stack-table index (0 = none).
    pub const fn ist(&self) -> u32 {
        self.hi & 7
    }

    /// The type field of the upper 8 bytes of a 16-byte descriptor, which must be 0 for call gates.
    pub const fn upper_type(&self) -> u32 {
        ((self.upper >> 40) & 0x1f) as u32
    }

    /// The descriptor cache loaded with `selector`.
    pub fn cache(&self, selector: u16) -> SegmentCache {
        let mut c = SegmentCache::flat(selector, self.flags());
        c.base = self.base();
        c.limit = self.limit();
        c
    }
}

/// A descriptor read from a table, with its linear address (for the accessed-bit write-back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The descriptor.
    pub desc: Descriptor,
    /// Linear address of its first byte.
    pub addr: u64,
}

/// Whether a system descriptor of type `typ` takes 16 bytes in long mode.
const fn is_wide_system(typ: u32) -> bool {
    matches!(
        typ,
        sys_type::LDT | sys_type::TSS_AVAIL | sys_type::TSS_BUSY | sys_type::CALL_GATE
    )
}

/// Reads the descriptor `sel` names from the GDT or (TI = 1) the LDT, with implicit supervisor accesses.
/// `Ok(None)` when the selector is beyond the table limit (for a 16-byte system descriptor in long mode, when
/// its 16 bytes are not all inside) or names the LDT while none is loaded; callers turn that into their
/// exception (usually #GP(selector)). A null selector is not special here: callers check it first.
pub fn fetch_descriptor<M: SysMem + ?Sized>(s: &X86CpuState, mem: &mut M, sel: u16) -> Result<Option<Fetched>, Fault> {
    let table = if sel & selector::TI != 0 {
        if is_null(s.ldt.selector) {
            return Ok(None);
        }
        &s.ldt
    } else {
        &s.gdt
    };
    let long = is_long_active(s);
    let index = u64::from(sel & selector::INDEX);
    if index + 7 > u64::from(table.limit) {
        return Ok(None);
    }
    let addr = linear(long, table.base, index);
    let raw = mem.read(addr, 8, Privilege::Implicit)?;
    let mut desc = Descriptor::from_raw(raw);
    if long && !desc.is_segment() && is_wide_system(desc.typ()) {
        if index + 15 > u64::from(table.limit) {
            return Ok(None);
        }
        desc.upper = mem.read(linear(long, addr, 8), 8, Privilege::Implicit)?;
    }
    Ok(Some(Fetched { desc, addr }))
}

/// Sets the accessed bit of a code or data descriptor in memory (and in `f`) if it is clear.
pub(crate) fn set_accessed<M: SysMem + ?Sized>(s: &X86CpuState, mem: &mut M, f: &mut Fetched) -> Result<(), Fault> {
    if f.desc.hi & DESC_A == 0 {
        f.desc.hi |= DESC_A;
        let addr = linear(is_long_active(s), f.addr, 4);
        mem.write(addr, 4, u64::from(f.desc.hi), Privilege::Implicit)?;
    }
    Ok(())
}

/// The cache of a segment register loaded in vm86 mode: base `sel << 4`, limit 0xffff, a present, accessed,
/// writable data segment of DPL 3.
pub fn vm86_cache(sel: u16) -> SegmentCache {
    let mut c = SegmentCache::flat(sel, DESC_P | DESC_S | DESC_W | DESC_A | (3 << DESC_DPL_SHIFT));
    c.base = u64::from(sel) << 4;
    c.limit = 0xffff;
    c
}

/// The cache of a data segment register loaded with a null selector in protected mode (unusable: P = 0).
fn null_cache(sel: u16) -> SegmentCache {
    let mut c = SegmentCache::flat(sel, 0);
    c.limit = 0;
    c
}

/// The cache of SS loaded with a null selector in 64-bit mode (allowed at CPL < 3): DPL = CPL, so the
/// stack's privilege stays readable from the cache.
pub(crate) fn null_ss_cache(sel: u16, cpl: u8) -> SegmentCache {
    let mut c = SegmentCache::flat(sel, u32::from(cpl) << DESC_DPL_SHIFT);
    c.limit = 0;
    c
}

/// Sets segment register `r` in real mode: selector and base; limit and flags are kept.
fn load_real(s: &mut X86CpuState, r: usize, sel: u16) {
    s.segs[r].selector = sel;
    s.segs[r].base = u64::from(sel) << 4;
}

/// `mov sreg, r/m`, `pop sreg`, `lds`/`les`/`lfs`/`lgs`/`lss`: loads data segment register `seg_reg` (ES, SS,
/// DS, FS, GS) with `sel`.
///
/// - real mode: selector and `base = sel << 4`, limit and flags kept; vm86: [`vm86_cache`];
/// - protected mode, DS/ES/FS/GS: a null selector loads an unusable segment; beyond the table limit,
///   a system descriptor, an execute-only code segment, or (data and non-conforming code) DPL < CPL or
///   DPL < RPL: #GP(sel); not present: #NP(sel);
/// - SS: a null selector is #GP(0), except in 64-bit mode at CPL < 3 with RPL = CPL; beyond the limit, not a
///   writable data segment, RPL ≠ CPL or DPL ≠ CPL: #GP(sel); not present: #SS(sel);
/// - the descriptor's accessed bit is set in memory.
///
/// CS cannot be loaded this way (`mov cs` is #UD): `seg_reg` = CS or out of range gives #UD.
pub fn load_seg<M: SysMem + ?Sized>(s: &mut X86CpuState, mem: &mut M, seg_reg: usize, sel: u16) -> Result<(), Fault> {
    if seg_reg == seg::CS || seg_reg > seg::GS {
        return Err(Fault::ud());
    }
    if !is_protected(s) {
        load_real(s, seg_reg, sel);
        return Ok(());
    }
    if is_vm86(s) {
        s.segs[seg_reg] = vm86_cache(sel);
        return Ok(());
    }
    let cpl = cpl(s);
    let rpl = (sel & selector::RPL) as u8;
    if is_null(sel) {
        if seg_reg == seg::SS {
            if !(is_code64(s) && cpl != 3 && rpl == cpl) {
                return Err(Fault::gp(0));
            }
            s.segs[seg::SS] = null_ss_cache(sel, cpl);
        } else {
            s.segs[seg_reg] = null_cache(sel);
        }
        return Ok(());
    }
    let err = sel_err(sel);
    let mut f = fetch_descriptor(s, mem, sel)?.ok_or(Fault::gp(err))?;
    let d = f.desc;
    if !d.is_segment() {
        return Err(Fault::gp(err));
    }
    if seg_reg == seg::SS {
        if !d.is_writable_data() || rpl != cpl || d.dpl() != cpl {
            return Err(Fault::gp(err));
        }
        if !d.present() {
            return Err(Fault::ss(err));
        }
    } else {
        if !d.is_readable() {
            return Err(Fault::gp(err));
        }
        if !d.is_conforming() && (d.dpl() < cpl || d.dpl() < rpl) {
            return Err(Fault::gp(err));
        }
        if !d.present() {
            return Err(Fault::np(err));
        }
    }
    set_accessed(s, mem, &mut f)?;
    s.segs[seg_reg] = f.desc.cache(sel);
    Ok(())
}

/// Operand size of a far transfer, iret, or the width of a gate's pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpSize {
    /// 16 bits.
    Word,
    /// 32 bits.
    Dword,
    /// 64 bits.
    Qword,
}

impl OpSize {
    /// The size in bytes.
    pub const fn bytes(self) -> u8 {
        match self {
            OpSize::Word => 2,
            OpSize::Dword => 4,
            OpSize::Qword => 8,
        }
    }

    /// The mask of a value of this size.
    pub const fn mask(self) -> u64 {
        match self {
            OpSize::Word => 0xffff,
            OpSize::Dword => 0xffff_ffff,
            OpSize::Qword => u64::MAX,
        }
    }
}

/// A stack being pushed or popped: SS base and limit, the stack pointer (only the bits under `mask` are used
/// for addressing), and the privilege of the accesses. Every access is checked against the SS limit outside
/// 64-bit mode (expand-up: the last byte ≤ limit; expand-down: the first byte > limit and the last ≤ 0xffff or
/// 0xffff_ffff per SS.B), raising #SS(`err`); in 64-bit mode the address must be canonical (#SS(`err`)). Writes
/// reach the CPU state only through [`Stack::rsp_value`] when the whole operation succeeded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stack {
    /// SS base (ignored on a 64-bit stack).
    pub base: u64,
    /// The stack pointer.
    pub sp: u64,
    /// 0xffff (SS.B = 0), 0xffff_ffff (SS.B = 1) or all ones (64-bit mode).
    pub mask: u64,
    /// The privilege of the accesses.
    pub privilege: Privilege,
    /// SS limit (ignored on a 64-bit stack).
    pub limit: u32,
    /// SS is an expand-down data segment.
    pub expand_down: bool,
    /// The error code of the #SS a limit violation raises: 0 for the current stack, the new SS selector
    /// (with EXT during event delivery) for a stack switch.
    pub err: u32,
}

/// The stack-pointer mask for SS flags `ss_flags`, or 64 bits in 64-bit mode.
pub(crate) fn sp_mask(ss_flags: u32, code64: bool) -> u64 {
    if code64 {
        u64::MAX
    } else if ss_flags & DESC_B != 0 {
        0xffff_ffff
    } else {
        0xffff
    }
}

impl Stack {
    /// The stack `ss` describes at `sp` (64-bit when `code64`), accessed with `privilege`; a limit violation is
    /// #SS(`err`).
    pub fn on(ss: &SegmentCache, sp: u64, code64: bool, privilege: Privilege, err: u32) -> Stack {
        Stack {
            base: ss.base,
            sp,
            mask: sp_mask(ss.flags, code64),
            privilege,
            limit: ss.limit,
            expand_down: ss.flags & (DESC_S | DESC_CS | DESC_E) == DESC_S | DESC_E,
            err,
        }
    }

    /// A 64-bit stack at `sp` (no base, no limit), accessed with `privilege`; a non-canonical address is
    /// #SS(`err`).
    pub fn flat64(sp: u64, privilege: Privilege, err: u32) -> Stack {
        Stack {
            base: 0,
            sp,
            mask: u64::MAX,
            privilege,
            limit: u32::MAX,
            expand_down: false,
            err,
        }
    }

    /// The current stack of `s`, accessed with `privilege`; limit violations are #SS(0).
    pub fn current(s: &X86CpuState, privilege: Privilege) -> Stack {
        Stack::on(&s.segs[seg::SS], s.regs[reg::RSP], is_code64(s), privilege, 0)
    }

    /// The linear address of the `size` bytes at stack offset `sp`, after the limit (or canonical) check.
    fn addr(&self, sp: u64, size: u8) -> Result<u64, Fault> {
        if self.mask == u64::MAX {
            if !is_canonical(sp) {
                return Err(Fault::ss(self.err));
            }
            return Ok(sp);
        }
        let first = sp & self.mask;
        let last = first + u64::from(size.max(1)) - 1;
        let limit = u64::from(self.limit);
        let ok = if self.expand_down {
            first > limit && last <= self.mask
        } else {
            last <= limit
        };
        if !ok {
            return Err(Fault::ss(self.err));
        }
        Ok(linear(false, self.base, first))
    }

    /// Pushes the low `size` bytes of `value`.
    pub fn push<M: SysMem + ?Sized>(&mut self, mem: &mut M, size: u8, value: u64) -> Result<(), Fault> {
        let sp = self.sp.wrapping_sub(u64::from(size));
        let a = self.addr(sp, size)?;
        mem.write(a, size, value, self.privilege)?;
        self.sp = sp;
        Ok(())
    }

    /// Pops `size` bytes.
    pub fn pop<M: SysMem + ?Sized>(&mut self, mem: &mut M, size: u8) -> Result<u64, Fault> {
        let a = self.addr(self.sp, size)?;
        let v = mem.read(a, size, self.privilege)?;
        self.sp = self.sp.wrapping_add(u64::from(size));
        Ok(v)
    }

    /// Reads `size` bytes at `offset` above the stack pointer (call-gate parameters).
    pub fn read_at<M: SysMem + ?Sized>(&self, mem: &mut M, offset: u64, size: u8) -> Result<u64, Fault> {
        let a = self.addr(self.sp.wrapping_add(offset), size)?;
        mem.read(a, size, self.privilege)
    }

    /// The new RSP: a 16-bit stack changes only SP (bits 63:16 of `old_rsp` kept), a 32-bit one zero-extends
    /// ESP (as any 32-bit register write), a 64-bit one is the whole value.
    pub fn rsp_value(&self, old_rsp: u64) -> u64 {
        match self.mask {
            0xffff => (old_rsp & !0xffff) | (self.sp & 0xffff),
            m => self.sp & m,
        }
    }
}

/// Where an inner-level stack comes from: the TSS entry for privilege `dpl` (legacy: SSn:ESPn of a 32-bit
/// TSS or SSn:SPn of a 16-bit one). Faults: TR unusable or the entry beyond its limit: #TS(TR selector + ext).
pub(crate) fn tss_legacy_stack<M: SysMem + ?Sized>(
    s: &X86CpuState,
    mem: &mut M,
    dpl: u8,
    ext: u32,
) -> Result<(u16, u64), Fault> {
    let tr = &s.tr;
    let err = Fault::ts(sel_err(tr.selector) | ext);
    if tr.flags & DESC_P == 0 {
        return Err(err);
    }
    let is32 = (tr.flags & DESC_TYPE_MASK) >> DESC_TYPE_SHIFT & 8 != 0;
    let (off, sp_size, ss_off) = if is32 {
        (TSS32_ESP0 + 8 * u64::from(dpl), 4, 4)
    } else {
        (TSS16_SP0 + 4 * u64::from(dpl), 2, 2)
    };
    if off + ss_off + 1 > u64::from(tr.limit) {
        return Err(err);
    }
    let sp = mem.read(linear(false, tr.base, off), sp_size, Privilege::Implicit)?;
    let ss = mem.read(linear(false, tr.base, off + ss_off), 2, Privilege::Implicit)? as u16;
    Ok((ss, sp))
}

/// A 64-bit TSS's quadword at `offset` (RSPn, ISTn). Faults: TR unusable or beyond its limit: #TS(TR + ext).
pub(crate) fn tss64_read<M: SysMem + ?Sized>(
    s: &X86CpuState,
    mem: &mut M,
    offset: u64,
    ext: u32,
) -> Result<u64, Fault> {
    let tr = &s.tr;
    if tr.flags & DESC_P == 0 || offset + 7 > u64::from(tr.limit) {
        return Err(Fault::ts(sel_err(tr.selector) | ext));
    }
    mem.read(tr.base.wrapping_add(offset), 8, Privilege::Implicit)
}

/// Checks the SS selector read from a TSS for a stack switch to privilege `dpl` (call gates, interrupts):
/// null: #TS(ext); beyond the limit, RPL ≠ `dpl`, DPL ≠ `dpl`, not a writable data segment: #TS(ss + ext);
/// not present: #SS(ss + ext). Sets the accessed bit; returns the cache.
pub(crate) fn check_tss_ss<M: SysMem + ?Sized>(
    s: &X86CpuState,
    mem: &mut M,
    ss: u16,
    dpl: u8,
    ext: u32,
) -> Result<SegmentCache, Fault> {
    if is_null(ss) {
        return Err(Fault::ts(ext));
    }
    let err = sel_err(ss) | ext;
    let mut f = fetch_descriptor(s, mem, ss)?.ok_or(Fault::ts(err))?;
    let d = f.desc;
    if (ss & selector::RPL) as u8 != dpl || d.dpl() != dpl || !d.is_writable_data() {
        return Err(Fault::ts(err));
    }
    if !d.present() {
        return Err(Fault::ss(err));
    }
    set_accessed(s, mem, &mut f)?;
    Ok(f.desc.cache(ss))
}

/// Checks the new RIP against the new code segment: canonical for a 64-bit segment in long mode, else within
/// the limit. Fault: #GP(`err`).
pub(crate) fn check_rip(long: bool, cs: &SegmentCache, rip: u64, err: u32) -> Result<(), Fault> {
    let ok = if long && cs.flags & DESC_L != 0 {
        is_canonical(rip)
    } else {
        rip <= u64::from(cs.limit)
    };
    if ok {
        Ok(())
    } else {
        Err(Fault::gp(err))
    }
}

/// How a code segment is entered, for `check_code_target`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Direct far jmp or call (no privilege change).
    Direct,
    /// Far jmp through a call gate (no privilege change).
    GateJmp,
    /// Far call through a call gate (may go inward).
    GateCall,
}

/// The checks of a far jmp/call target code segment `d` named by `sel` at `cpl` (SDM JMP/CALL): not code:
/// #GP(sel); conforming with DPL > CPL: #GP(sel); non-conforming: direct transfers need RPL ≤ CPL and
/// DPL = CPL, gate jumps DPL = CPL, gate calls DPL ≤ CPL (#GP(sel)); not present: #NP(sel); in long mode
/// L = D = 1 is reserved (#GP(sel)), and a call-gate target must be 64-bit code (#GP(sel)).
fn check_code_target(d: &Descriptor, sel: u16, cpl: u8, long: bool, entry: Entry) -> Result<(), Fault> {
    let err = Fault::gp(sel_err(sel));
    if !d.is_code() {
        return Err(err);
    }
    let rpl = (sel & selector::RPL) as u8;
    if d.is_conforming() {
        if d.dpl() > cpl {
            return Err(err);
        }
    } else {
        let ok = match entry {
            Entry::Direct => rpl <= cpl && d.dpl() == cpl,
            Entry::GateJmp => d.dpl() == cpl,
            Entry::GateCall => d.dpl() <= cpl,
        };
        if !ok {
            return Err(err);
        }
    }
    if !d.present() {
        return Err(Fault::np(sel_err(sel)));
    }
    if long && d.hi & DESC_L != 0 && d.hi & DESC_B != 0 {
        return Err(err);
    }
    if long && entry != Entry::Direct && !d.is_code64() {
        return Err(err);
    }
    Ok(())
}

/// Sets CS in real or vm86 mode for a far transfer: real mode keeps limit and flags, vm86 loads
/// [`vm86_cache`].
fn load_cs_real(s: &mut X86CpuState, sel: u16) {
    if is_vm86(s) {
        s.segs[seg::CS] = vm86_cache(sel);
    } else {
        load_real(s, seg::CS, sel);
    }
}

/// What a call gate resolves to: the target code segment and offset, and the gate's push width.
struct GateTarget {
    /// The target code segment (accessed bit set).
    code: Fetched,
    /// Its selector.
    sel: u16,
    /// The target offset, at the gate's width.
    offset: u64,
    /// The gate's width (2, 4 or 8 bytes).
    size: OpSize,
    /// Stack parameters to copy (32- and 16-bit gates).
    params: u32,
}

/// Resolves the call gate `gate` named by `gate_sel` for a far jmp or call at `cpl`: gate DPL < CPL or < RPL:
/// #GP(gate); not present: #NP(gate); in long mode the upper type must be 0 (#GP(gate)); null target:
/// #GP(0); target beyond its table: #GP(target); then `check_code_target`.
fn resolve_call_gate<M: SysMem + ?Sized>(
    s: &X86CpuState,
    mem: &mut M,
    gate: &Descriptor,
    gate_sel: u16,
    cpl: u8,
    entry: Entry,
) -> Result<GateTarget, Fault> {
    let long = is_long_active(s);
    let gerr = sel_err(gate_sel);
    let rpl = (gate_sel & selector::RPL) as u8;
    if gate.dpl() < cpl || gate.dpl() < rpl {
        return Err(Fault::gp(gerr));
    }
    if !gate.present() {
        return Err(Fault::np(gerr));
    }
    if long && gate.upper_type() != 0 {
        return Err(Fault::gp(gerr));
    }
    let tsel = gate.gate_selector();
    if is_null(tsel) {
        return Err(Fault::gp(0));
    }
    let code = fetch_descriptor(s, mem, tsel)?.ok_or(Fault::gp(sel_err(tsel)))?;
    check_code_target(&code.desc, tsel, cpl, long, entry)?;
    let (size, offset) = if long {
        (OpSize::Qword, gate.gate_offset())
    } else if gate.typ() == sys_type::CALL_GATE16 {
        (OpSize::Word, gate.gate_offset() & 0xffff)
    } else {
        (OpSize::Dword, gate.gate_offset() & 0xffff_ffff)
    };
    Ok(GateTarget {
        code,
        sel: tsel,
        offset,
        size,
        params: if long { 0 } else { gate.param_count() },
    })
}

/// Whether `typ` is a call gate in the current mode (long mode: only the 64-bit form).
fn is_call_gate(long: bool, typ: u32) -> bool {
    typ == sys_type::CALL_GATE || (!long && typ == sys_type::CALL_GATE16)
}

/// `jmp ptr16:16/32`, `jmp m16:16/32/64`: far jump to `sel:offset` (`offset` already at the operand size).
///
/// - real and vm86 mode: CS = `sel` (base `sel << 4`), RIP = `offset`; beyond the CS limit: #GP(0);
/// - protected/long mode, to a code segment: null: #GP(0); beyond the table: #GP(sel); the checks of a direct
///   transfer (conforming: DPL ≤ CPL; non-conforming: RPL ≤ CPL and DPL = CPL; #GP(sel), not present
///   #NP(sel)); the offset beyond the limit (or non-canonical for 64-bit code): #GP(0). CS.RPL = CPL;
/// - through a call gate (16/32-bit; 64-bit in long mode): the gate checks (`resolve_call_gate`), the target
///   must be non-conforming with DPL = CPL or conforming with DPL ≤ CPL (a jump never changes privilege);
/// - TSS or task gate: task switches are not emulated, #GP(sel); any other system type: #GP(sel).
pub fn far_jmp<M: SysMem + ?Sized>(s: &mut X86CpuState, mem: &mut M, sel: u16, offset: u64) -> Result<(), Fault> {
    if !is_protected(s) || is_vm86(s) {
        let limit = if is_vm86(s) { 0xffff } else { s.segs[seg::CS].limit };
        if offset > u64::from(limit) {
            return Err(Fault::gp(0));
        }
        load_cs_real(s, sel);
        s.rip = offset;
        return Ok(());
    }
    if is_null(sel) {
        return Err(Fault::gp(0));
    }
    let cpl = cpl(s);
    let long = is_long_active(s);
    let mut f = fetch_descriptor(s, mem, sel)?.ok_or(Fault::gp(sel_err(sel)))?;
    let (target_sel, offset) = if f.desc.is_segment() {
        check_code_target(&f.desc, sel, cpl, long, Entry::Direct)?;
        (sel, offset)
    } else if is_call_gate(long, f.desc.typ()) {
        let g = resolve_call_gate(s, mem, &f.desc, sel, cpl, Entry::GateJmp)?;
        f = g.code;
        (g.sel, g.offset)
    } else {
        return Err(Fault::gp(sel_err(sel)));
    };
    let new_sel = (target_sel & selector::ERR_MASK) | u16::from(cpl);
    let cs = f.desc.cache(new_sel);
    check_rip(long, &cs, offset, 0)?;
    set_accessed(s, mem, &mut f)?;
    s.segs[seg::CS] = f.desc.cache(new_sel);
    s.rip = offset;
    Ok(())
}

/// `call ptr16:16/32`, `call m16:16/32/64`: far call to `sel:offset` with operand size `size`; `next_rip` is
/// the return address.
///
/// - real and vm86 mode: pushes CS and IP/EIP (`size`), then as [`far_jmp`];
/// - protected/long mode to a code segment: the checks of [`far_jmp`], then pushes CS and RIP (`size`) on the
///   current stack;
/// - through a call gate: the gate checks (`resolve_call_gate`); a non-conforming target with DPL < CPL
///   switches to the inner stack: legacy gates take SS:ESP for the new CPL from the TSS (`check_tss_ss`
///   errors: #TS/#SS), push the old SS and ESP, copy the gate's parameter count of words/dwords from the old
///   stack, then push CS and EIP, all at the gate's width; 64-bit gates take RSP from the TSS, load a null
///   SS with RPL = new CPL, and push SS, RSP, CS, RIP as quadwords (no parameters). Otherwise the gate pushes
///   CS and the return address on the current stack at its width;
/// - TSS, task gate or another system type: #GP(sel).
pub fn far_call<M: SysMem + ?Sized>(
    s: &mut X86CpuState,
    mem: &mut M,
    sel: u16,
    offset: u64,
    size: OpSize,
    next_rip: u64,
) -> Result<(), Fault> {
    let cpl = cpl(s);
    let rflags = s.rflags();
    let old_cs = s.segs[seg::CS].selector;
    if !is_protected(s) || is_vm86(s) {
        let limit = if is_vm86(s) { 0xffff } else { s.segs[seg::CS].limit };
        if offset > u64::from(limit) {
            return Err(Fault::gp(0));
        }
        let mut st = Stack::current(s, data_privilege(cpl, rflags));
        st.push(mem, size.bytes(), u64::from(old_cs))?;
        st.push(mem, size.bytes(), next_rip)?;
        s.regs[reg::RSP] = st.rsp_value(s.regs[reg::RSP]);
        load_cs_real(s, sel);
        s.rip = offset;
        return Ok(());
    }
    if is_null(sel) {
        return Err(Fault::gp(0));
    }
    let long = is_long_active(s);
    let f = fetch_descriptor(s, mem, sel)?.ok_or(Fault::gp(sel_err(sel)))?;
    if f.desc.is_segment() {
        let mut f = f;
        check_code_target(&f.desc, sel, cpl, long, Entry::Direct)?;
        let new_sel = (sel & selector::ERR_MASK) | u16::from(cpl);
        check_rip(long, &f.desc.cache(new_sel), offset, 0)?;
        let mut st = Stack::current(s, data_privilege(cpl, rflags));
        st.push(mem, size.bytes(), u64::from(old_cs))?;
        st.push(mem, size.bytes(), next_rip)?;
        set_accessed(s, mem, &mut f)?;
        s.regs[reg::RSP] = st.rsp_value(s.regs[reg::RSP]);
        s.segs[seg::CS] = f.desc.cache(new_sel);
        s.rip = offset;
        return Ok(());
    }
    if !is_call_gate(long, f.desc.typ()) {
        return Err(Fault::gp(sel_err(sel)));
    }
    let mut g = resolve_call_gate(s, mem, &f.desc, sel, cpl, Entry::GateCall)?;
    let width = g.size.bytes();
    let d = g.code.desc;
    if !d.is_conforming() && d.dpl() < cpl {
        // Inner privilege: a stack switch.
        let dpl = d.dpl();
        let new_sel = (g.sel & selector::ERR_MASK) | u16::from(dpl);
        let new_cs = d.cache(new_sel);
        check_rip(long, &new_cs, g.offset, 0)?;
        let old_ss = s.segs[seg::SS].selector;
        let old_rsp = s.regs[reg::RSP];
        let new_priv = data_privilege(dpl, rflags);
        let (ss_cache, mut st) = if long {
            let rsp = tss64_read(s, mem, TSS64_RSP0 + 8 * u64::from(dpl), 0)?;
            let ss = null_ss_cache(u16::from(dpl), dpl);
            (ss, Stack::flat64(rsp, new_priv, 0))
        } else {
            let (ss_sel, sp) = tss_legacy_stack(s, mem, dpl, 0)?;
            let ss = check_tss_ss(s, mem, ss_sel, dpl, 0)?;
            let st = Stack::on(&ss, sp, false, new_priv, sel_err(ss.selector));
            (ss, st)
        };
        st.push(mem, width, u64::from(old_ss))?;
        st.push(mem, width, old_rsp)?;
        if g.params > 0 {
            let old = Stack::current(s, data_privilege(cpl, rflags));
            for i in (0..g.params).rev() {
                let v = old.read_at(mem, u64::from(i) * u64::from(width), width)?;
                st.push(mem, width, v)?;
            }
        }
        st.push(mem, width, u64::from(old_cs))?;
        st.push(mem, width, next_rip)?;
        set_accessed(s, mem, &mut g.code)?;
        // The new RSP: ESP from the TSS is a fresh value (a 16-bit SS keeps bits 31:16 of the old ESP, as
        // SP-only writes do).
        s.regs[reg::RSP] = st.rsp_value(old_rsp);
        s.segs[seg::SS] = ss_cache;
        s.segs[seg::CS] = g.code.desc.cache(new_sel);
        s.rip = g.offset;
        return Ok(());
    }
    // Same privilege through the gate.
    let new_sel = (g.sel & selector::ERR_MASK) | u16::from(cpl);
    check_rip(long, &d.cache(new_sel), g.offset, 0)?;
    let mut st = Stack::current(s, data_privilege(cpl, rflags));
    st.push(mem, width, u64::from(old_cs))?;
    st.push(mem, width, next_rip)?;
    set_accessed(s, mem, &mut g.code)?;
    s.regs[reg::RSP] = st.rsp_value(s.regs[reg::RSP]);
    s.segs[seg::CS] = g.code.desc.cache(new_sel);
    s.rip = g.offset;
    Ok(())
}

/// The checks of the CS popped by retf/iret (SDM RET/IRET, protected mode): null: #GP(0); beyond the table:
/// #GP(sel); not code, RPL < CPL, conforming with DPL > RPL, non-conforming with DPL ≠ RPL: #GP(sel); not
/// present: #NP(sel); in long mode L = D = 1: #GP(sel).
fn check_return_cs<M: SysMem + ?Sized>(s: &X86CpuState, mem: &mut M, sel: u16, cpl: u8) -> Result<Fetched, Fault> {
    if is_null(sel) {
        return Err(Fault::gp(0));
    }
    let err = Fault::gp(sel_err(sel));
    let f = fetch_descriptor(s, mem, sel)?.ok_or(err)?;
    let d = &f.desc;
    let rpl = (sel & selector::RPL) as u8;
    if !d.is_code() || rpl < cpl {
        return Err(err);
    }
    if d.is_conforming() {
        if d.dpl() > rpl {
            return Err(err);
        }
    } else if d.dpl() != rpl {
        return Err(err);
    }
    if !d.present() {
        return Err(Fault::np(sel_err(sel)));
    }
    if is_long_active(s) && d.hi & DESC_L != 0 && d.hi & DESC_B != 0 {
        return Err(err);
    }
    Ok(f)
}

/// The checks of the SS popped by a return to privilege `rpl` (retf/iret to an outer level, and every iret
/// in 64-bit mode): null is allowed only in long mode, returning to 64-bit code (`to64`) at RPL < 3
/// (otherwise #GP(0); the null SS gets DPL = `rpl`); beyond the table, RPL ≠ `rpl`, not a writable data segment, DPL ≠ `rpl`: #GP(sel); not
/// present: #SS(sel). Sets the accessed bit.
fn check_return_ss<M: SysMem + ?Sized>(
    s: &X86CpuState,
    mem: &mut M,
    sel: u16,
    rpl: u8,
    to64: bool,
) -> Result<SegmentCache, Fault> {
    if is_null(sel) {
        if is_long_active(s) && to64 && rpl != 3 {
            return Ok(null_ss_cache(sel, rpl));
        }
        return Err(Fault::gp(0));
    }
    let err = Fault::gp(sel_err(sel));
    let mut f = fetch_descriptor(s, mem, sel)?.ok_or(err)?;
    let d = f.desc;
    if (sel & selector::RPL) as u8 != rpl || !d.is_writable_data() || d.dpl() != rpl {
        return Err(err);
    }
    if !d.present() {
        return Err(Fault::ss(sel_err(sel)));
    }
    set_accessed(s, mem, &mut f)?;
    Ok(f.desc.cache(sel))
}

/// After a return to the outer level `new_cpl`: ES, DS, FS, GS that hold a data or non-conforming code
/// segment with DPL < `new_cpl` are made unusable (selector 0, P cleared; base and limit kept), so the outer
/// level cannot use the inner level's segments.
fn drop_inner_data_segments(s: &mut X86CpuState, new_cpl: u8) {
    for r in [seg::ES, seg::DS, seg::FS, seg::GS] {
        let c = &mut s.segs[r];
        if is_null(c.selector) {
            continue;
        }
        let conforming_code = c.flags & DESC_CS != 0 && c.flags & DESC_C != 0;
        let dpl = ((c.flags & DESC_DPL_MASK) >> DESC_DPL_SHIFT) as u8;
        if !conforming_code && dpl < new_cpl {
            c.selector = 0;
            c.flags &= !DESC_P;
        }
    }
}

/// `retf [imm16]` with operand size `size`: pops RIP and CS, then releases `imm` bytes.
///
/// - real and vm86 mode: CS = popped selector (base `sel << 4`), RIP = popped offset;
/// - protected/long mode: `check_return_cs`; same privilege (RPL = CPL): RSP += 2·size + imm; outer
///   privilege (RPL > CPL): pops RSP and SS after the imm16 bytes (`check_return_ss`), RSP = popped + imm,
///   CPL = RPL, and ES/DS/FS/GS not accessible at the new CPL become unusable. The new RIP beyond the new CS
///   limit (non-canonical for 64-bit code): #GP(0).
pub fn far_ret<M: SysMem + ?Sized>(s: &mut X86CpuState, mem: &mut M, size: OpSize, imm: u16) -> Result<(), Fault> {
    let cpl = cpl(s);
    let rflags = s.rflags();
    let n = size.bytes();
    let mut st = Stack::current(s, data_privilege(cpl, rflags));
    let new_rip = st.pop(mem, n)? & size.mask();
    let cs_sel = st.pop(mem, n)? as u16;
    st.sp = st.sp.wrapping_add(u64::from(imm));
    if !is_protected(s) || is_vm86(s) {
        let limit = if is_vm86(s) { 0xffff } else { s.segs[seg::CS].limit };
        if new_rip > u64::from(limit) {
            return Err(Fault::gp(0));
        }
        s.regs[reg::RSP] = st.rsp_value(s.regs[reg::RSP]);
        load_cs_real(s, cs_sel);
        s.rip = new_rip;
        return Ok(());
    }
    let long = is_long_active(s);
    let mut f = check_return_cs(s, mem, cs_sel, cpl)?;
    let rpl = (cs_sel & selector::RPL) as u8;
    let new_cs = f.desc.cache(cs_sel);
    check_rip(long, &new_cs, new_rip, 0)?;
    if rpl == cpl {
        set_accessed(s, mem, &mut f)?;
        s.regs[reg::RSP] = st.rsp_value(s.regs[reg::RSP]);
        s.segs[seg::CS] = f.desc.cache(cs_sel);
        s.rip = new_rip;
        return Ok(());
    }
    let new_rsp = st.pop(mem, n)?;
    let ss_sel = st.pop(mem, n)? as u16;
    let ss = check_return_ss(s, mem, ss_sel, rpl, long && f.desc.is_code64())?;
    set_accessed(s, mem, &mut f)?;
    let to64 = long && f.desc.hi & DESC_L != 0;
    let new_st = Stack::on(
        &ss,
        new_rsp.wrapping_add(u64::from(imm)),
        to64,
        data_privilege(rpl, rflags),
        0,
    );
    s.regs[reg::RSP] = new_st.rsp_value(s.regs[reg::RSP]);
    s.segs[seg::SS] = ss;
    s.segs[seg::CS] = f.desc.cache(cs_sel);
    s.rip = new_rip;
    drop_inner_data_segments(s, rpl);
    Ok(())
}

/// The RFLAGS bits an iret at privilege `cpl` with IOPL `iopl` may change (SDM IRET): the arithmetic flags,
/// TF, DF, NT, RF, AC, ID always; IOPL, VIF and VIP only at CPL 0; IF only when CPL ≤ IOPL; a 16-bit iret
/// only the low 16 bits.
fn iret_flags_mask(cpl: u8, iopl: u8, size: OpSize) -> u64 {
    let mut m = ARITH_FLAGS | eflags::TF | eflags::DF | eflags::NT | eflags::RF | eflags::AC | eflags::ID;
    if cpl == 0 {
        m |= eflags::IOPL | VIF | VIP;
    }
    if cpl <= iopl {
        m |= eflags::IF;
    }
    if size == OpSize::Word {
        m &= 0xffff;
    }
    m
}

/// `iret` / `iretd` / `iretq` with operand size `size`.
///
/// - real mode: pops IP, CS, FLAGS; a 16-bit iret loads FLAGS' 16 bits, iretd the bits of 0x257FD5 (VM,
///   VIF, VIP unchanged);
/// - vm86 mode: IOPL < 3: #GP(0) (no VME); else as real mode with IOPL unchanged;
/// - protected mode with EFLAGS.NT = 1: a task return, not emulated: #GP(back link read from the current TSS);
///   in long mode NT = 1 is #GP(0) as the architecture says;
/// - protected mode: pops RIP, CS, RFLAGS; at CPL 0 a 32-bit iret with VM set in the popped EFLAGS returns to
///   vm86 (pops ESP, SS, ES, DS, FS, GS; every segment gets a [`vm86_cache`]); otherwise
///   `check_return_cs`; to an outer level (RPL > CPL), and always in 64-bit mode, pops RSP and SS
///   (`check_return_ss`) and makes inaccessible data segments unusable (outer level only); the RFLAGS
///   bits loaded are `iret_flags_mask` at the old CPL; the new RIP beyond the limit (non-canonical): #GP(0).
pub fn iret<M: SysMem + ?Sized>(s: &mut X86CpuState, mem: &mut M, size: OpSize) -> Result<(), Fault> {
    // Any iret ends NMI blocking, also one that faults (as the SDM describes for the VMX case).
    s.nmi_blocked = 0;
    let cpl = cpl(s);
    let old = s.rflags();
    let n = size.bytes();
    let iopl = ((old & eflags::IOPL) >> 12) as u8;
    if is_vm86(s) && iopl < 3 {
        return Err(Fault::gp(0));
    }
    if is_protected(s) && !is_vm86(s) && old & eflags::NT != 0 {
        if is_long_active(s) {
            return Err(Fault::gp(0));
        }
        // Task return: the back link is the TSS's first word. Not emulated.
        let back = mem.read(linear(false, s.tr.base, 0), 2, Privilege::Implicit)? as u16;
        return Err(Fault::gp(sel_err(back)));
    }
    let mut st = Stack::current(s, data_privilege(cpl, old));
    let new_rip = st.pop(mem, n)? & size.mask();
    let cs_sel = st.pop(mem, n)? as u16;
    let popped = st.pop(mem, n)?;
    if !is_protected(s) || is_vm86(s) {
        let limit = if is_vm86(s) { 0xffff } else { s.segs[seg::CS].limit };
        if new_rip > u64::from(limit) {
            return Err(Fault::gp(0));
        }
        let mut mask = match size {
            OpSize::Word => 0xffff,
            _ => REAL_IRET_MASK,
        };
        if is_vm86(s) {
            mask &= !eflags::IOPL;
        }
        s.regs[reg::RSP] = st.rsp_value(s.regs[reg::RSP]);
        load_cs_real(s, cs_sel);
        s.rip = new_rip;
        s.set_rflags(((old & !mask) | (popped & mask)) & RFLAGS_DEFINED);
        return Ok(());
    }
    let long = is_long_active(s);
    if popped & eflags::VM != 0 && cpl == 0 && !long && size == OpSize::Dword {
        return iret_to_vm86(s, mem, st, new_rip, cs_sel, popped);
    }
    let mut f = check_return_cs(s, mem, cs_sel, cpl)?;
    let rpl = (cs_sel & selector::RPL) as u8;
    let new_cs = f.desc.cache(cs_sel);
    check_rip(long, &new_cs, new_rip, 0)?;
    let mask = iret_flags_mask(cpl, iopl, size);
    let new_flags = ((old & !mask) | (popped & mask)) & RFLAGS_DEFINED;
    if is_code64(s) || rpl > cpl {
        let new_rsp = st.pop(mem, n)?;
        let ss_sel = st.pop(mem, n)? as u16;
        let to64 = long && f.desc.is_code64();
        let ss = check_return_ss(s, mem, ss_sel, rpl, to64)?;
        set_accessed(s, mem, &mut f)?;
        let new_st = Stack::on(&ss, new_rsp, to64, data_privilege(rpl, old), 0);
        s.regs[reg::RSP] = new_st.rsp_value(s.regs[reg::RSP]);
        s.segs[seg::SS] = ss;
    } else {
        set_accessed(s, mem, &mut f)?;
        s.regs[reg::RSP] = st.rsp_value(s.regs[reg::RSP]);
    }
    s.segs[seg::CS] = f.desc.cache(cs_sel);
    s.rip = new_rip;
    s.set_rflags(new_flags);
    if rpl > cpl {
        drop_inner_data_segments(s, rpl);
    }
    Ok(())
}

/// The rest of an iretd at CPL 0 to vm86 mode: pops ESP, SS, ES, DS, FS, GS (dwords), loads EFLAGS whole
/// and every segment as vm86 does; RIP is the popped EIP's low 16 bits.
fn iret_to_vm86<M: SysMem + ?Sized>(
    s: &mut X86CpuState,
    mem: &mut M,
    mut st: Stack,
    new_rip: u64,
    cs_sel: u16,
    popped: u64,
) -> Result<(), Fault> {
    let esp = st.pop(mem, 4)?;
    let ss = st.pop(mem, 4)? as u16;
    let es = st.pop(mem, 4)? as u16;
    let ds = st.pop(mem, 4)? as u16;
    let fs = st.pop(mem, 4)? as u16;
    let gs = st.pop(mem, 4)? as u16;
    s.set_rflags(popped & RFLAGS_DEFINED & 0xffff_ffff);
    for (r, sel) in [
        (seg::CS, cs_sel),
        (seg::SS, ss),
        (seg::ES, es),
        (seg::DS, ds),
        (seg::FS, fs),
        (seg::GS, gs),
    ] {
        s.segs[r] = vm86_cache(sel);
    }
    s.regs[reg::RSP] = esp & 0xffff_ffff;
    s.rip = new_rip & 0xffff;
    Ok(())
}

/// The descriptor `sel` names for lar/lsl/verr/verw, or `None` (ZF = 0) for a null selector or one beyond
/// its table. Only memory faults are errors.
fn probe<M: SysMem + ?Sized>(s: &X86CpuState, mem: &mut M, sel: u16) -> Result<Option<Descriptor>, Fault> {
    if is_null(sel) {
        return Ok(None);
    }
    Ok(fetch_descriptor(s, mem, sel)?.map(|f| f.desc))
}

/// Whether a code/data segment is visible to lar/lsl/verr at `cpl`: conforming code always, otherwise
/// DPL ≥ CPL and DPL ≥ RPL.
fn visible(d: &Descriptor, sel: u16, cpl: u8) -> bool {
    let rpl = (sel & selector::RPL) as u8;
    d.is_conforming() || (d.dpl() >= cpl && d.dpl() >= rpl)
}

/// `lar`: the access rights of `sel` (the high dword masked with [`DESC_FLAGS_MASK`]; ZF = 1), or `None`
/// (ZF = 0, destination unchanged) for a null selector, one beyond its table, a segment not visible at the
/// CPL/RPL (`visible`), or a system type lar does not report (legacy: TSSs, LDT, call and task gates;
/// long mode: LDT, 64-bit TSSs and call gates). Presence is not checked. Real and vm86 mode: #UD.
pub fn lar<M: SysMem + ?Sized>(s: &X86CpuState, mem: &mut M, sel: u16) -> Result<Option<u32>, Fault> {
    if !is_protected(s) || is_vm86(s) {
        return Err(Fault::ud());
    }
    let Some(d) = probe(s, mem, sel)? else {
        return Ok(None);
    };
    let ok = if d.is_segment() {
        true
    } else if is_long_active(s) {
        matches!(
            d.typ(),
            sys_type::LDT | sys_type::TSS_AVAIL | sys_type::TSS_BUSY | sys_type::CALL_GATE
        )
    } else {
        matches!(
            d.typ(),
            sys_type::TSS16_AVAIL
                | sys_type::LDT
                | sys_type::TSS16_BUSY
                | sys_type::CALL_GATE16
                | sys_type::TASK_GATE
                | sys_type::TSS_AVAIL
                | sys_type::TSS_BUSY
                | sys_type::CALL_GATE
        )
    };
    if !ok || !visible(&d, sel, cpl(s)) {
        return Ok(None);
    }
    Ok(Some(d.hi & DESC_FLAGS_MASK))
}

/// `lsl`: the scaled limit of `sel` (ZF = 1), or `None` (ZF = 0) as for [`lar`], with the system types that
/// have a limit (legacy: TSSs and LDT; long mode: LDT and 64-bit TSSs). Real and vm86 mode: #UD.
pub fn lsl<M: SysMem + ?Sized>(s: &X86CpuState, mem: &mut M, sel: u16) -> Result<Option<u32>, Fault> {
    if !is_protected(s) || is_vm86(s) {
        return Err(Fault::ud());
    }
    let Some(d) = probe(s, mem, sel)? else {
        return Ok(None);
    };
    let ok = if d.is_segment() {
        true
    } else if is_long_active(s) {
        matches!(d.typ(), sys_type::LDT | sys_type::TSS_AVAIL | sys_type::TSS_BUSY)
    } else {
        matches!(
            d.typ(),
            sys_type::TSS16_AVAIL | sys_type::LDT | sys_type::TSS16_BUSY | sys_type::TSS_AVAIL | sys_type::TSS_BUSY
        )
    };
    if !ok || !visible(&d, sel, cpl(s)) {
        return Ok(None);
    }
    Ok(Some(d.limit()))
}

/// `verr`: ZF = whether `sel` is a readable segment (data, or readable code) accessible at the CPL and RPL
/// (conforming code: any privilege). Real and vm86 mode: #UD.
pub fn verr<M: SysMem + ?Sized>(s: &X86CpuState, mem: &mut M, sel: u16) -> Result<bool, Fault> {
    if !is_protected(s) || is_vm86(s) {
        return Err(Fault::ud());
    }
    Ok(match probe(s, mem, sel)? {
        Some(d) => d.is_readable() && visible(&d, sel, cpl(s)),
        None => false,
    })
}

/// `verw`: ZF = whether `sel` is a writable data segment with DPL ≥ CPL and DPL ≥ RPL. Real and vm86
/// mode: #UD.
pub fn verw<M: SysMem + ?Sized>(s: &X86CpuState, mem: &mut M, sel: u16) -> Result<bool, Fault> {
    if !is_protected(s) || is_vm86(s) {
        return Err(Fault::ud());
    }
    Ok(match probe(s, mem, sel)? {
        Some(d) => d.is_writable_data() && visible(&d, sel, cpl(s)),
        None => false,
    })
}
