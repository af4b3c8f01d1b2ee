//! A small system environment for the segmentation and interrupt tests: an [`X86Cpu`] on `CpuExec` (tci, or
//! tci with the embedded wasm32 engine as the hot tier) over 4 MiB of RAM holding a GDT, an IDT (or the
//! real-mode IVT), a TSS and identity page tables, in real mode, 32-bit protected mode or long mode.
//!
//! Layout: IVT at 0, GDT at [`GDT`], IDT at [`IDT`], TSS at [`TSS`], page tables at 0x4000..0x7000, code at
//! [`CODE`], handlers at [`HANDLERS`], data at [`DATA`], the stack below [`STACK`] and the ring-0 stack of
//! privilege changes below [`STACK0`]. Programs end with `hlt` (the loop returns `StopReason::Halted`).

#![allow(dead_code)]

use iced_x86::code_asm::{CodeAssembler, IcedError};
use rqemu_accel::{AccelOptions, CpuExec, StopReason, TierConfig};
use rqemu_softmmu::{AddressSpace, MmioDevice, RamBlock};
use rqemu_target_i386::cpu::{reg, seg, SegmentCache, DESC_B, DESC_L, DESC_P};
use rqemu_target_i386::seg_helper::{
    sys_type, Descriptor, DESC_A, DESC_CS, DESC_DPL_SHIFT, DESC_G, DESC_R, DESC_S, DESC_TYPE_SHIFT, DESC_W,
};
use rqemu_target_i386::{X86Cpu, X86CpuState};
use rqemu_tcg_tci::Tci;

pub const RAM: u64 = 0x40_0000;
pub const GDT: u64 = 0x1000;
pub const IDT: u64 = 0x2000;
pub const TSS: u64 = 0x3000;
pub const PML4: u64 = 0x4000;
pub const CODE: u64 = 0x1_0000;
pub const HANDLERS: u64 = 0x2_0000;
pub const DATA: u64 = 0x3_0000;
pub const STACK: u64 = 0x8_0000;
pub const STACK0: u64 = 0x9_0000;
/// Real mode: SS base (SS = 0x7000) and the initial SP (just below [`STACK`]).
pub const REAL_SS_BASE: u64 = 0x7_0000;
pub const REAL_SP: u64 = 0xfff0;
/// Where user-mode code runs (long-mode CPL 3 tests).
pub const USER_CODE: u64 = 0x5_0000;

pub const CODE32: u16 = 0x08;
pub const DATA32: u16 = 0x10;
pub const CODE64: u16 = 0x18;
pub const CODE16: u16 = 0x20;
/// A 16-bit data segment based at [`DATA`] (limit 0xffff).
pub const DATA_AT: u16 = 0x28;
pub const CODE32_3: u16 = 0x33;
pub const DATA32_3: u16 = 0x3b;
pub const CODE64_3: u16 = 0x43;
pub const TSS_SEL: u16 = 0x48;
/// A data segment that is not present.
pub const DATA_NP: u16 = 0x58;
/// A 32-bit data segment based at [`DATA`] (limit 4 GiB).
pub const DATA32_AT: u16 = 0x60;

pub const CODE_FLAGS: u32 = DESC_P | DESC_S | DESC_CS | DESC_R | DESC_A;
pub const DATA_FLAGS: u32 = DESC_P | DESC_S | DESC_W | DESC_A;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Real,
    Prot32,
    Long,
}

impl Mode {
    pub fn bitness(self) -> u32 {
        match self {
            Mode::Real => 16,
            Mode::Prot32 => 32,
            Mode::Long => 64,
        }
    }
}

pub const fn dpl(d: u32) -> u32 {
    d << DESC_DPL_SHIFT
}

/// The GDT: selector and descriptor (8 bytes; the TSS's upper half is written separately).
pub fn gdt_entries() -> Vec<(u16, u64)> {
    vec![
        (
            CODE32,
            Descriptor::encode_segment(0, 0xfffff, CODE_FLAGS | DESC_B | DESC_G),
        ),
        (
            DATA32,
            Descriptor::encode_segment(0, 0xfffff, DATA_FLAGS | DESC_B | DESC_G),
        ),
        (
            CODE64,
            Descriptor::encode_segment(0, 0xfffff, CODE_FLAGS | DESC_L | DESC_G),
        ),
        (CODE16, Descriptor::encode_segment(0, 0xffff, CODE_FLAGS)),
        (DATA_AT, Descriptor::encode_segment(DATA as u32, 0xffff, DATA_FLAGS)),
        (
            CODE32_3,
            Descriptor::encode_segment(0, 0xfffff, CODE_FLAGS | DESC_B | DESC_G | dpl(3)),
        ),
        (
            DATA32_3,
            Descriptor::encode_segment(0, 0xfffff, DATA_FLAGS | DESC_B | DESC_G | dpl(3)),
        ),
        (
            CODE64_3,
            Descriptor::encode_segment(0, 0xfffff, CODE_FLAGS | DESC_L | DESC_G | dpl(3)),
        ),
        (DATA_NP, Descriptor::encode_segment(0, 0xffff, DATA_FLAGS & !DESC_P)),
        (
            DATA32_AT,
            Descriptor::encode_segment(DATA as u32, 0xfffff, DATA_FLAGS | DESC_B | DESC_G),
        ),
    ]
}

/// The descriptor cache of GDT selector `sel`.
pub fn cache(sel: u16) -> SegmentCache {
    let raw = gdt_entries()
        .into_iter()
        .find(|&(s, _)| s & !3 == sel & !3)
        .map(|(_, r)| r)
        .expect("a GDT selector");
    Descriptor::from_raw(raw).cache(sel)
}

pub struct Sys {
    pub cpu: X86Cpu,
    pub ex: CpuExec,
    pub mode: Mode,
}

/// tci alone, or tci with the embedded wasm32 engine as the hot tier (TLB inlined, threshold 10).
pub fn exec(hot: bool) -> CpuExec {
    if !hot {
        return CpuExec::with_backends(Box::new(Tci::new()), None, AccelOptions::default());
    }
    use rqemu_tcg_wasm32::engine::EmbeddedWasm32;
    use rqemu_tcg_wasm32::TlbAbi;
    let mut engine = EmbeddedWasm32::new();
    engine.set_tlb(Some(TlbAbi {
        offset_from_env: rqemu_target_i386::cpu::TLB_OFFSET as i32,
    }));
    let opts = AccelOptions {
        chain_limit: 64,
        tier: TierConfig {
            threshold: 10,
            ..TierConfig::default()
        },
        ..AccelOptions::default()
    };
    CpuExec::with_backends(Box::new(Tci::new()), Some(Box::new(engine)), opts)
}

impl Sys {
    /// A CPU in `mode` at the start of [`CODE`] (real mode: CS = 0x1000, IP = 0), CPL 0, IF clear.
    pub fn new(mode: Mode, hot: bool) -> Sys {
        let mut space = AddressSpace::new();
        let ram = space.add_ram(RamBlock::new(RAM).unwrap());
        space.map_ram(0, RAM, ram, 0).unwrap();
        let mut s = X86CpuState::new();
        s.regs = [0; 16];
        s.regs[reg::RSP] = STACK;
        match mode {
            Mode::Real => {
                s.cr[0] = 0x10;
                s.segs[seg::SS].selector = (REAL_SS_BASE >> 4) as u16;
                s.segs[seg::SS].base = REAL_SS_BASE;
                s.regs[reg::RSP] = REAL_SP;
                s.segs[seg::CS].selector = (CODE >> 4) as u16;
                s.segs[seg::CS].base = CODE;
                s.rip = 0;
                s.idt.base = 0;
                s.idt.limit = 0x3ff;
            }
            Mode::Prot32 => {
                s.cr[0] = 0x11;
                s.segs[seg::CS] = cache(CODE32);
                for r in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
                    s.segs[r] = cache(DATA32);
                }
                s.rip = CODE;
                s.idt.base = IDT;
                s.idt.limit = 0x7ff;
            }
            Mode::Long => {
                s.cr[0] = 0x8000_0011;
                s.cr[3] = PML4;
                s.cr[4] = 0x620; // PAE, OSFXSR, OSXMMEXCPT
                s.efer = 0x500;
                s.segs[seg::CS] = cache(CODE64);
                for r in [seg::ES, seg::SS, seg::DS, seg::FS, seg::GS] {
                    s.segs[r] = cache(DATA32);
                }
                s.rip = CODE;
                s.idt.base = IDT;
                s.idt.limit = 0xfff;
            }
        }
        s.gdt.base = GDT;
        s.gdt.limit = 0xff;
        // A busy TSS: the 32-bit type, which in long mode means the 64-bit TSS.
        let tss_type = sys_type::TSS_BUSY;
        let tss = Descriptor::encode_segment(TSS as u32, 0x67, DESC_P | (tss_type << DESC_TYPE_SHIFT));
        s.tr = Descriptor::from_raw(tss).cache(TSS_SEL);
        let cpu = X86Cpu::new(space, s);
        let sys = Sys {
            cpu,
            ex: exec(hot),
            mode,
        };
        for (sel, raw) in gdt_entries() {
            sys.write_u64(GDT + u64::from(sel & !7), raw);
        }
        sys.write_u64(GDT + u64::from(TSS_SEL), tss);
        sys.write_u64(GDT + u64::from(TSS_SEL) + 8, 0);
        if mode == Mode::Long {
            sys.write_u64(TSS + 4, STACK0); // RSP0
                                            // Identity map of the first 4 MiB with 2 MiB user-accessible writable pages.
            sys.write_u64(PML4, (PML4 + 0x1000) | 7);
            sys.write_u64(PML4 + 0x1000, (PML4 + 0x2000) | 7);
            for i in 0..RAM / 0x20_0000 {
                sys.write_u64(PML4 + 0x2000 + 8 * i, (i * 0x20_0000) | 0x87);
            }
        } else {
            sys.write_u32(TSS + 4, STACK0 as u32); // ESP0
            sys.write_u32(TSS + 8, u32::from(DATA32)); // SS0
        }
        // Addresses past RAM raise #PF (paging off in the fill) like unmapped pages of the tables above.
        sys.cpu.memory().with(|m| m.fill_mut().identity.limit = RAM);
        sys
    }

    pub fn s(&self) -> &X86CpuState {
        self.cpu.state()
    }

    pub fn s_mut(&mut self) -> &mut X86CpuState {
        self.cpu.state_mut()
    }

    pub fn write(&self, addr: u64, bytes: &[u8]) {
        self.cpu.memory().with(|m| m.space_mut().write_bytes(addr, bytes));
    }

    pub fn write_u64(&self, addr: u64, v: u64) {
        self.write(addr, &v.to_le_bytes());
    }

    pub fn write_u32(&self, addr: u64, v: u32) {
        self.write(addr, &v.to_le_bytes());
    }

    pub fn write_u16(&self, addr: u64, v: u16) {
        self.write(addr, &v.to_le_bytes());
    }

    pub fn read_u64(&self, addr: u64) -> u64 {
        self.cpu.memory().with(|m| m.space_mut().read(addr, 8))
    }

    pub fn read_u32(&self, addr: u64) -> u32 {
        self.cpu.memory().with(|m| m.space_mut().read(addr, 4)) as u32
    }

    pub fn read_u16(&self, addr: u64) -> u16 {
        self.cpu.memory().with(|m| m.space_mut().read(addr, 2)) as u16
    }

    /// Assembles code for `bitness` at linear `at` (with IP/EIP/RIP values starting at `ip`) and writes it.
    pub fn asm_at(
        &self,
        bitness: u32,
        at: u64,
        ip: u64,
        build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
    ) -> u64 {
        let mut a = CodeAssembler::new(bitness).unwrap();
        build(&mut a).unwrap();
        let bytes = a.assemble(ip).unwrap();
        self.write(at, &bytes);
        bytes.len() as u64
    }

    /// The main program at [`CODE`] in the mode's code size.
    pub fn code(&self, build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> u64 {
        let ip = if self.mode == Mode::Real { 0 } else { CODE };
        self.asm_at(self.mode.bitness(), CODE, ip, build)
    }

    /// A handler at `HANDLERS + off` in the mode's code size; returns its IVT/IDT target offset.
    pub fn handler(&self, off: u64, build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> u64 {
        let ip = if self.mode == Mode::Real { off } else { HANDLERS + off };
        self.asm_at(self.mode.bitness(), HANDLERS + off, ip, build);
        ip
    }

    /// Points vector `v` at the handler at `HANDLERS + off`: an IVT entry (segment HANDLERS >> 4), or an
    /// interrupt gate with `gate_dpl` to the mode's ring-0 code segment.
    pub fn gate(&self, v: u8, off: u64, gate_dpl: u8) {
        let v = u64::from(v);
        match self.mode {
            Mode::Real => self.write_u32(v * 4, ((HANDLERS >> 4) << 16 | off) as u32),
            Mode::Prot32 => {
                let g = Descriptor::encode_gate(sys_type::INT_GATE, gate_dpl, CODE32, (HANDLERS + off) as u32, 0);
                self.write_u64(IDT + v * 8, g);
            }
            Mode::Long => {
                let g = Descriptor::encode_gate(sys_type::INT_GATE, gate_dpl, CODE64, (HANDLERS + off) as u32, 0);
                self.write_u64(IDT + v * 16, g);
                self.write_u64(IDT + v * 16 + 8, 0);
            }
        }
    }

    /// Runs until the loop stops (at most `budget` TBs).
    pub fn run(&mut self) -> StopReason {
        let mut mem = self.cpu.memory();
        self.ex.run(&mut self.cpu, &mut mem, 100_000)
    }

    /// Runs at most `budget` TBs.
    pub fn run_budget(&mut self, budget: u64) -> StopReason {
        let mut mem = self.cpu.memory();
        self.ex.run(&mut self.cpu, &mut mem, budget)
    }

    /// Continues in 64-bit user mode (CPL 3) at `rip` with `rsp` and `rflags` (long mode only).
    pub fn enter_user64(&mut self, rip: u64, rsp: u64, rflags: u64) {
        let s = self.s_mut();
        s.segs[seg::CS] = cache(CODE64_3);
        s.segs[seg::SS] = cache(DATA32_3);
        s.rip = rip;
        s.regs[reg::RSP] = rsp;
        s.set_rflags(rflags);
    }

    /// The linear address of the state's rip.
    pub fn linear_rip(&self) -> u64 {
        self.s().segs[seg::CS].base + self.s().rip
    }
}

/// Memory as an MMIO device: every access takes the slow path (the embedded wasm32 engine cannot use a native
/// addend from the inlined TLB fast path, so data that hot code reads must be flagged).
pub struct SlowRam(pub Vec<u8>);

impl MmioDevice for SlowRam {
    fn read(&mut self, offset: u64, size: u32) -> u64 {
        let mut b = [0u8; 8];
        let o = offset as usize;
        b[..size as usize].copy_from_slice(&self.0[o..o + size as usize]);
        u64::from_le_bytes(b)
    }
    fn write(&mut self, offset: u64, size: u32, value: u64) {
        let o = offset as usize;
        self.0[o..o + size as usize].copy_from_slice(&value.to_le_bytes()[..size as usize]);
    }
}

/// The 64-bit flat machine of the loop tests: a CPU as a loader leaves it at `code`, RSP = `stack_top`, over
/// `ram_size` bytes of RAM, with `[data, data + data_size)` a [`SlowRam`] when `slow_data`; exceptions stop the
/// loop (`STOP_EXCEPTION | vector`: no IDT).
pub fn flat_long_mode(code: u64, ram_size: u64, data: (u64, u64), slow_data: bool, stack_top: u64) -> X86Cpu {
    let (data, data_size) = data;
    let mut space = AddressSpace::new();
    let ram = space.add_ram(RamBlock::new(ram_size).unwrap());
    if slow_data {
        space.map_ram(0, data, ram, 0).unwrap();
        space
            .map_mmio(data, data_size, Box::new(SlowRam(vec![0; data_size as usize])))
            .unwrap();
        let rest = data + data_size;
        space.map_ram(rest, ram_size - rest, ram, rest).unwrap();
    } else {
        space.map_ram(0, ram_size, ram, 0).unwrap();
    }
    let mut state = X86CpuState::new_long_mode(code);
    state.regs[reg::RSP] = stack_top;
    let mut cpu = X86Cpu::new(space, state);
    cpu.set_exception_mode(rqemu_target_i386::ExceptionMode::Stop);
    cpu
}
