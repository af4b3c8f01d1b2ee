//! The x86-64 CPU state (`X86CpuState`), laid out `#[repr(C)]` because generated code reads and writes it by
//! byte offset, and the exception words helpers fill in.
//!
//! What lives elsewhere: the IR view of these fields (globals and helpers) in `desc.rs`, the lazy-flags
//! encoding in `cc.rs`, CPUID in `cpuid.rs`.

use core::mem::offset_of;

use rqemu_softmmu::TlbTables;

use crate::cc::{self, CcOp};

/// Number of general-purpose registers.
pub const NB_REGS: usize = 16;

/// Register numbers as x86 encodes them (`rax` = 0 ... `r15` = 15).
pub mod reg {
    /// rax
    pub const RAX: usize = 0;
    /// rcx
    pub const RCX: usize = 1;
    /// rdx
    pub const RDX: usize = 2;
    /// rbx
    pub const RBX: usize = 3;
    /// rsp
    pub const RSP: usize = 4;
    /// rbp
    pub const RBP: usize = 5;
    /// rsi
    pub const RSI: usize = 6;
    /// rdi
    pub const RDI: usize = 7;
}

/// Segment register numbers as x86 encodes them.
pub mod seg {
    /// es
    pub const ES: usize = 0;
    /// cs
    pub const CS: usize = 1;
    /// ss
    pub const SS: usize = 2;
    /// ds
    pub const DS: usize = 3;
    /// fs
    pub const FS: usize = 4;
    /// gs
    pub const GS: usize = 5;
}

/// RFLAGS bits kept in [`X86CpuState::eflags`] (the arithmetic ones are lazy, see [`crate::cc`]).
pub mod eflags {
    /// Bit 1, always set.
    pub const FIXED: u64 = 1 << 1;
    /// Trap flag.
    pub const TF: u64 = 1 << 8;
    /// Interrupt enable.
    pub const IF: u64 = 1 << 9;
    /// Direction flag.
    pub const DF: u64 = 1 << 10;
    /// I/O privilege level (2 bits).
    pub const IOPL: u64 = 3 << 12;
    /// Nested task.
    pub const NT: u64 = 1 << 14;
    /// Resume flag.
    pub const RF: u64 = 1 << 16;
    /// Virtual-8086 mode.
    pub const VM: u64 = 1 << 17;
    /// Alignment check.
    pub const AC: u64 = 1 << 18;
    /// CPUID is available (toggleable).
    pub const ID: u64 = 1 << 21;
}

/// Exception vectors.
pub mod excp {
    /// Divide error.
    pub const DE: u32 = 0;
    /// Debug (int1/icebp raises it as a trap).
    pub const DB: u32 = 1;
    /// Breakpoint (int3).
    pub const BP: u32 = 3;
    /// Overflow (into with OF set).
    pub const OF: u32 = 4;
    /// Invalid opcode.
    pub const UD: u32 = 6;
    /// Device not available.
    pub const NM: u32 = 7;
    /// General protection.
    pub const GP: u32 = 13;
    /// Page fault.
    pub const PF: u32 = 14;
    /// x87 floating-point error (an unmasked exception pending at a waiting instruction).
    pub const MF: u32 = 16;
    /// Not an x86 vector: a store from generated code into the code of a running multi-instruction TB was
    /// refused; the loop re-runs the storing instruction alone (QEMU's `cpu_loop_exit_noexc` after
    /// `tb_invalidate_phys_page_fast` found the current TB modified). Never delivered to the guest.
    pub const SMC_RESTART: u32 = 0x100;
}

/// A segment register: the visible selector and the hidden descriptor cache loaded with it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentCache {
    /// Linear base address.
    pub base: u64,
    /// Limit in bytes (already scaled by the granularity bit).
    pub limit: u32,
    /// Descriptor attribute bits as in the descriptor's high word (type, S, DPL, P, AVL, L, D/B, G), bits 8..24.
    pub flags: u32,
    /// The selector.
    pub selector: u16,
    _pad: [u16; 3],
}

impl SegmentCache {
    /// A flat segment with `selector` and `flags`.
    pub const fn flat(selector: u16, flags: u32) -> SegmentCache {
        SegmentCache {
            base: 0,
            limit: u32::MAX,
            flags,
            selector,
            _pad: [0; 3],
        }
    }
}

/// Descriptor flag: long-mode code segment (in [`SegmentCache::flags`]).
pub const DESC_L: u32 = 1 << 21;
/// Descriptor flag: default operand size 32 (code) / big stack (data).
pub const DESC_B: u32 = 1 << 22;
/// Descriptor flag: present.
pub const DESC_P: u32 = 1 << 15;
/// Cache flags of CS after RESET: present, code/data, execute/read, accessed.
const RESET_CODE_FLAGS: u32 = 0x9b00;
/// Cache flags of the data segments after RESET: present, code/data, read/write, accessed.
const RESET_DATA_FLAGS: u32 = 0x9300;

/// The MSRs rqemu keeps (the rest are in other fields: EFER, or not implemented).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsrFile {
    /// IA32_SYSENTER_CS, ESP, EIP.
    pub sysenter: [u64; 3],
    /// STAR.
    pub star: u64,
    /// LSTAR.
    pub lstar: u64,
    /// CSTAR.
    pub cstar: u64,
    /// SFMASK.
    pub fmask: u64,
    /// KERNEL_GS_BASE.
    pub kernel_gs_base: u64,
    /// TSC_AUX.
    pub tsc_aux: u64,
    /// IA32_PAT.
    pub pat: u64,
    /// IA32_APIC_BASE.
    pub apic_base: u64,
    /// IA32_MISC_ENABLE.
    pub misc_enable: u64,
}

/// Index of the EFER MSR.
pub const MSR_EFER: u32 = 0xc000_0080;

type MsrSlot = fn(&mut MsrFile) -> &mut u64;

/// The MSR table: index, name and field. `rdmsr`/`wrmsr` of an index not listed (and not EFER) raise #GP.
pub const MSRS: &[(u32, &str, MsrSlot)] = &[
    (0x174, "IA32_SYSENTER_CS", |m| &mut m.sysenter[0]),
    (0x175, "IA32_SYSENTER_ESP", |m| &mut m.sysenter[1]),
    (0x176, "IA32_SYSENTER_EIP", |m| &mut m.sysenter[2]),
    (0x1b, "IA32_APIC_BASE", |m| &mut m.apic_base),
    (0x1a0, "IA32_MISC_ENABLE", |m| &mut m.misc_enable),
    (0x277, "IA32_PAT", |m| &mut m.pat),
    (0xc000_0081, "STAR", |m| &mut m.star),
    (0xc000_0082, "LSTAR", |m| &mut m.lstar),
    (0xc000_0083, "CSTAR", |m| &mut m.cstar),
    (0xc000_0084, "SFMASK", |m| &mut m.fmask),
    (0xc000_0102, "KERNEL_GS_BASE", |m| &mut m.kernel_gs_base),
    (0xc000_0103, "TSC_AUX", |m| &mut m.tsc_aux),
];

impl MsrFile {
    /// The field of MSR `index`, if rqemu implements it.
    pub fn slot(&mut self, index: u32) -> Option<&mut u64> {
        MSRS.iter().find(|(i, _, _)| *i == index).map(|(_, _, f)| f(self))
    }
}

/// x87/MMX state: eight 80-bit registers stored in 16-byte slots (the FXSAVE layout), with control, status and
/// (abridged) tag words.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpuState {
    /// ST0-ST7 / MM0-MM7 as in FXSAVE: the 80-bit value in the low 10 bytes of each slot.
    pub regs: [[u8; 16]; 8],
    /// Control word.
    pub fcw: u16,
    /// Status word (TOP in bits 11..14).
    pub fsw: u16,
    /// Abridged tag word (one bit per register, 1 = valid), as FXSAVE stores it.
    pub ftw: u8,
    _pad: [u8; 1],
    /// Last opcode.
    pub fop: u16,
    /// Last instruction pointer.
    pub fip: u64,
    /// Last data pointer.
    pub fdp: u64,
    /// Last instruction's CS selector (fnstenv/fnsave's FCS).
    pub fcs: u16,
    /// Last data operand's segment selector (fnstenv/fnsave's FDS).
    pub fds: u16,
    _pad2: [u8; 4],
}

impl Default for FpuState {
    /// The state after `fninit`.
    fn default() -> Self {
        FpuState {
            regs: [[0; 16]; 8],
            fcw: 0x37f,
            fsw: 0,
            ftw: 0,
            _pad: [0],
            fop: 0,
            fip: 0,
            fdp: 0,
            fcs: 0,
            fds: 0,
            _pad2: [0; 4],
        }
    }
}

/// The whole architectural state of one x86-64 CPU, plus the words the execution loop and helpers exchange,
/// and the software TLB tables generated code probes (last, at [`TLB_OFFSET`]).
#[repr(C)]
#[derive(Clone)]
pub struct X86CpuState {
    /// rax ... r15, in encoding order.
    pub regs: [u64; NB_REGS],
    /// The instruction pointer; exact only between TBs and after a fault is restored (see `docs`).
    pub rip: u64,
    /// RFLAGS without the six arithmetic flags (those are lazy: see [`X86CpuState::rflags`]).
    pub eflags: u64,
    /// Lazy flags: see [`crate::cc`].
    pub cc_dst: u64,
    /// Lazy flags.
    pub cc_src: u64,
    /// Lazy flags.
    pub cc_src2: u64,
    /// The [`CcOp`] encoding of the last flag-setting operation.
    pub cc_op: u32,
    /// Nonzero when a helper or memory access recorded a fault ([`rqemu_tcg::TargetDesc::fault_offset`]).
    pub fault: u32,
    /// The vector of the pending exception when `fault` is set.
    pub exception_index: u32,
    /// Its error code.
    pub error_code: u32,
    /// Faulting linear address for #PF (becomes CR2 when delivered).
    pub fault_addr: u64,
    /// Nonzero when the pending exception is a software interrupt (int n, int3, into): delivery checks the
    /// gate's DPL against the CPL and pushes no error code (QEMU's `exception_is_int`).
    pub exception_is_int: u32,
    /// Nonzero when the pending exception is a trap (software interrupts and int1): the instruction completed
    /// and the exception returns to [`X86CpuState::exception_next_rip`], not to the instruction's own rip.
    pub exception_is_trap: u32,
    /// For a trap, the rip of the next instruction (QEMU's `exception_next_eip`).
    pub exception_next_rip: u64,
    /// The TSC source: rdtsc reads `tsc_clock(self) + tsc_offset` (see [`X86CpuState::read_tsc`]). The
    /// machine may replace it with a function of its virtual clock; the default is [`default_tsc_clock`].
    pub tsc_clock: TscClock,
    /// Added to the clock: what a guest write of the TSC (IA32_TSC, not implemented yet) will adjust.
    pub tsc_offset: u64,
    /// The last TSC value read: reads never repeat or go backwards (see [`X86CpuState::read_tsc`]). Whoever
    /// sets the TSC backwards on purpose resets it too.
    pub tsc_last: u64,
    /// How helpers reach the CPU's memory and I/O ports: the address of the [`crate::machine::SysCell`]
    /// behind the CPU's [`crate::machine::MmuHandle`], set by [`crate::machine::X86Cpu::new`]; 0 for a state
    /// run without one (the differential tester's). Helpers use [`crate::machine::with_sys`]. An address, not
    /// a pointer type, so that the state stays `Send` for tests that move it between threads.
    pub sys: usize,
    /// es, cs, ss, ds, fs, gs.
    pub segs: [SegmentCache; 6],
    /// LDTR.
    pub ldt: SegmentCache,
    /// TR.
    pub tr: SegmentCache,
    /// GDTR (base and limit only).
    pub gdt: SegmentCache,
    /// IDTR (base and limit only).
    pub idt: SegmentCache,
    /// CR0 to CR4 (CR1 unused).
    pub cr: [u64; 5],
    /// CR8 (task priority).
    pub cr8: u64,
    /// EFER.
    pub efer: u64,
    /// The other MSRs.
    pub msrs: MsrFile,
    /// DR0 to DR7.
    pub dr: [u64; 8],
    /// x87/MMX.
    pub fpu: FpuState,
    /// MXCSR.
    pub mxcsr: u32,
    _pad: u32,
    /// XMM0 to XMM15.
    pub xmm: [u128; 16],
    /// Scratch XMM-sized slot of the SSE/MMX helpers (`translate/sse_int.rs`, `translate/sse_fp.rs`): a memory
    /// (or general-register) source operand is stored here by generated code first (precise faults), so the
    /// helpers always read their operands by state offset. Not architectural.
    pub xmm_t0: u128,
    /// Staging area of the x87 memory operands (`fpu_helper`): generated code loads an operand here before
    /// the `x87` helper runs and stores a result from here after it, so faults happen with the x87 state
    /// untouched. Up to the 108-byte fsave image and the first 160 bytes of the fxsave image.
    pub fp_scratch: [u8; 160],
    /// The execution loop's exit word ([`rqemu_accel::CpuOps::exit_word_offset`]): low half counts TB starts
    /// down, high half nonzero requests an exit.
    pub exit_word: u32,
    /// Nonzero while the CPU is halted (`hlt`, once it exists; the loop's `check_halted`).
    pub halted: u32,
    /// Nonzero for one instruction after sti (enabling IF), mov ss and pop ss: no external interrupt (nor
    /// NMI) is taken before that instruction completes. Set by those instructions (which end their TB); the
    /// next TB is looked up with `TbFlags::inhibit_irq`, holds one instruction and clears it as it starts.
    pub interrupt_shadow: u32,
    /// Nonzero from the delivery of an NMI until the next iret: no other NMI is taken meanwhile (it stays
    /// pending in the controller).
    pub nmi_blocked: u32,
    /// The software TLB, one table per MMU index (see [`crate::machine`] for what each index means). Owned by
    /// the CPU's [`rqemu_softmmu::SoftMmu`] (`SoftMmu::with_tables`): only its slow path writes it; generated
    /// code reads it at [`TLB_OFFSET`] from `env`. It stays the last field.
    pub tlb: TlbTables,
}

/// Byte offset of the TLB tables in [`X86CpuState`] (the wasm32 backend's `TlbAbi::offset_from_env`).
pub const TLB_OFFSET: usize = offset_of!(X86CpuState, tlb);

impl core::fmt::Debug for X86CpuState {
    /// Everything but the TLB tables (64 KiB of entries).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("X86CpuState")
            .field("regs", &self.regs)
            .field("rip", &self.rip)
            .field("eflags", &self.eflags)
            .field("cc_dst", &self.cc_dst)
            .field("cc_src", &self.cc_src)
            .field("cc_src2", &self.cc_src2)
            .field("cc_op", &self.cc_op)
            .field("fault", &self.fault)
            .field("exception_index", &self.exception_index)
            .field("error_code", &self.error_code)
            .field("fault_addr", &self.fault_addr)
            .field("exception_is_int", &self.exception_is_int)
            .field("exception_is_trap", &self.exception_is_trap)
            .field("exception_next_rip", &self.exception_next_rip)
            .field("tsc_offset", &self.tsc_offset)
            .field("tsc_last", &self.tsc_last)
            .field("segs", &self.segs)
            .field("ldt", &self.ldt)
            .field("tr", &self.tr)
            .field("gdt", &self.gdt)
            .field("idt", &self.idt)
            .field("cr", &self.cr)
            .field("cr8", &self.cr8)
            .field("efer", &self.efer)
            .field("msrs", &self.msrs)
            .field("dr", &self.dr)
            .field("fpu", &self.fpu)
            .field("mxcsr", &self.mxcsr)
            .field("xmm", &self.xmm)
            .field("exit_word", &self.exit_word)
            .field("halted", &self.halted)
            .field("interrupt_shadow", &self.interrupt_shadow)
            .finish_non_exhaustive()
    }
}

impl Default for X86CpuState {
    fn default() -> Self {
        X86CpuState::new()
    }
}

impl X86CpuState {
    /// The architectural state after RESET (SDM vol. 3 table 10-1): real mode at F000:FFF0 with the CS base
    /// 0xFFFF_0000 (the first fetch is at 0xFFFF_FFF0), EDX = the CPUID family/model/stepping signature,
    /// CR0 = 0x6000_0010 (CD, NW, ET), EFLAGS = 2, DS/ES/SS/FS/GS selector 0 base 0 limit 0xFFFF (read/write
    /// data), GDTR/IDTR base 0 limit 0xFFFF, LDTR and TR selector 0 limit 0xFFFF, DR6/DR7 and MXCSR at their
    /// reset values, EFER 0. A loader's 64-bit state is [`X86CpuState::new_long_mode`].
    pub fn new() -> X86CpuState {
        let mut regs = [0; NB_REGS];
        regs[reg::RDX] = u64::from(crate::cpuid::cpuid(1, 0).eax);
        let sys_seg = |flags: u32| SegmentCache {
            limit: 0xffff,
            ..SegmentCache::flat(0, flags)
        };
        let mut cs = sys_seg(RESET_CODE_FLAGS);
        cs.selector = 0xf000;
        cs.base = 0xffff_0000;
        let data = sys_seg(RESET_DATA_FLAGS);
        X86CpuState {
            regs,
            rip: 0xfff0,
            eflags: eflags::FIXED,
            cc_dst: 0,
            cc_src: 0,
            cc_src2: 0,
            cc_op: CcOp::EFLAGS.raw(),
            fault: 0,
            exception_index: 0,
            error_code: 0,
            fault_addr: 0,
            exception_is_int: 0,
            exception_is_trap: 0,
            exception_next_rip: 0,
            tsc_clock: default_tsc_clock,
            tsc_offset: 0,
            tsc_last: 0,
            sys: 0,
            segs: [data, cs, data, data, data, data],
            // Present LDT (type 2) and busy 16-bit TSS (type 3) descriptors with limit 0xFFFF.
            ldt: sys_seg(DESC_P | 0x200),
            tr: sys_seg(DESC_P | 0x300),
            gdt: sys_seg(0),
            idt: sys_seg(0),
            cr: [0x6000_0010, 0, 0, 0, 0],
            cr8: 0,
            efer: 0,
            msrs: MsrFile::default(),
            dr: [0, 0, 0, 0, 0, 0, 0xffff_0ff0, 0x400],
            fpu: FpuState::default(),
            mxcsr: 0x1f80,
            _pad: 0,
            xmm: [0; 16],
            xmm_t0: 0,
            fp_scratch: [0; 160],
            exit_word: 0,
            halted: 0,
            interrupt_shadow: 0,
            nmi_blocked: 0,
            tlb: TlbTables::EMPTY,
        }
    }

    /// A 64-bit flat CPU (CR0.PE|PG, EFER.LME|LMA, long-mode CS) starting at `rip`, as the tests and the
    /// differential harness use it.
    pub fn new_long_mode(rip: u64) -> X86CpuState {
        let mut s = X86CpuState::new();
        s.regs = [0; NB_REGS];
        // No descriptor tables: the loader's flat caches are all there is.
        s.ldt = SegmentCache::default();
        s.tr = SegmentCache::default();
        s.gdt = SegmentCache::default();
        s.idt = SegmentCache::default();
        s.rip = rip;
        s.cr[0] = 0x8000_0011;
        // PAE, and OSFXSR|OSXMMEXCPT: the OS has enabled SSE (as any 64-bit OS does).
        s.cr[4] = 0x620;
        s.efer = 0x500;
        s.segs[seg::CS] = SegmentCache::flat(0x08, DESC_P | DESC_L);
        for i in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
            s.segs[i] = SegmentCache::flat(0x10, DESC_P | DESC_B);
        }
        s
    }

    /// The full RFLAGS: the stored bits with the lazy arithmetic flags materialized.
    pub fn rflags(&self) -> u64 {
        (self.eflags & !cc::CC_MASK) | cc::compute_eflags(self.cc_op, self.cc_dst, self.cc_src, self.cc_src2)
    }

    /// Sets RFLAGS, arithmetic flags included (`cc_op` becomes `Eflags`).
    pub fn set_rflags(&mut self, value: u64) {
        self.eflags = (value & !cc::CC_MASK) | eflags::FIXED;
        self.cc_src = value & cc::CC_MASK;
        self.cc_op = CcOp::EFLAGS.raw();
    }

    /// Records exception `vector` with `error_code` and sets the fault word: a fault, which returns to the
    /// instruction that raised it.
    pub fn raise(&mut self, vector: u32, error_code: u32) {
        self.exception_index = vector;
        self.error_code = error_code;
        self.exception_is_int = 0;
        self.exception_is_trap = 0;
        self.fault = 1;
    }

    /// Records the trap `vector` raised by an instruction that completed and sets the fault word; `is_int` for
    /// software interrupts (int n, int3, into), false for int1. `next_rip` is where the exception returns.
    /// Generated code still exits as for a fault (the loop restores `rip` to the instruction's own); the loop
    /// then takes `exception_next_rip` because `exception_is_trap` is set.
    pub fn raise_trap(&mut self, vector: u32, is_int: bool, next_rip: u64) {
        self.exception_index = vector;
        self.error_code = 0;
        self.exception_is_int = u32::from(is_int);
        self.exception_is_trap = 1;
        self.exception_next_rip = next_rip;
        self.fault = 1;
    }

    /// For a pending trap, moves `rip` (restored by the loop to the trapping instruction) to
    /// `exception_next_rip`, where the exception returns; nothing for a fault. The loop's `handle_exception`
    /// calls it before recording or delivering the exception.
    pub fn complete_trap(&mut self) {
        if self.exception_is_trap != 0 {
            self.rip = self.exception_next_rip;
        }
    }

    /// The time-stamp counter as rdtsc/rdtscp read it: `tsc_clock(self) + tsc_offset`, but always above the
    /// previous read, so a coarse clock (or the wasm32 default, which does not advance) still gives strictly
    /// increasing values.
    pub fn read_tsc(&mut self) -> u64 {
        let now = (self.tsc_clock)(self).wrapping_add(self.tsc_offset);
        let v = if now > self.tsc_last {
            now
        } else {
            self.tsc_last.wrapping_add(1)
        };
        self.tsc_last = v;
        v
    }
}

/// A TSC source: ticks of the guest's time-stamp counter (before [`X86CpuState::tsc_offset`]).
pub type TscClock = fn(&X86CpuState) -> u64;

/// Frequency of the default TSC clock on native hosts, in Hz: one tick per nanosecond of host monotonic time.
pub const TSC_FREQ_HZ: u64 = 1_000_000_000;

/// The default TSC clock. Natively: nanoseconds of the host's monotonic clock since the first read in the
/// process (so [`TSC_FREQ_HZ`], 1 GHz). On wasm32 `std::time::Instant` panics, so there it returns 0 and
/// [`X86CpuState::read_tsc`] makes the TSC count reads (+1 each): a known gap until the machine drives the TSC
/// from its virtual clock by setting [`X86CpuState::tsc_clock`].
pub fn default_tsc_clock(_: &X86CpuState) -> u64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    #[cfg(target_arch = "wasm32")]
    {
        0
    }
}

/// Byte offset of `regs[i]`.
pub const fn reg_offset(i: usize) -> usize {
    offset_of!(X86CpuState, regs) + 8 * i
}

/// Byte offset of the base of segment `i`.
pub const fn seg_base_offset(i: usize) -> usize {
    offset_of!(X86CpuState, segs) + i * core::mem::size_of::<SegmentCache>() + offset_of!(SegmentCache, base)
}

/// Byte offset of the fault word.
pub const FAULT_OFFSET: usize = offset_of!(X86CpuState, fault);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rflags_round_trip() {
        let mut s = X86CpuState::new_long_mode(0);
        s.set_rflags(0x8d5 | eflags::DF | eflags::IF);
        assert_eq!(s.rflags(), 0x8d5 | eflags::DF | eflags::IF | eflags::FIXED);
    }

    #[test]
    fn msr_table() {
        let mut m = MsrFile::default();
        *m.slot(0xc000_0082).unwrap() = 5;
        assert_eq!(m.lstar, 5);
        assert!(m.slot(0x10).is_none());
    }

    #[test]
    fn layout_is_stable_where_generated_code_looks() {
        assert_eq!(reg_offset(0), 0);
        assert_eq!(offset_of!(X86CpuState, rip), 128);
        assert_eq!(FAULT_OFFSET % 4, 0);
        assert_eq!(offset_of!(X86CpuState, xmm) % 16, 0);
        // The tables come last (only the alignment padding of the xmm registers' u128 may follow them).
        let end = TLB_OFFSET + core::mem::size_of::<TlbTables>();
        assert!(end <= core::mem::size_of::<X86CpuState>() && core::mem::size_of::<X86CpuState>() - end < 16);
    }
}
