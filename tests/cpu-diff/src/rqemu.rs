//! The CPU under test: rqemu's x86-64 frontend (`rqemu-target-i386`) on a TCG backend (tci, or the wasm32
//! backend's embedded engine with feature `embedded`), implementing [`CpuUnderTest`] as `compare.rs` describes.
//!
//! Each case runs on a fresh flat [`X86CpuState`] in 64-bit mode (or, for 32-bit cases, with a flat 32-bit CS and
//! EFER.LMA set: compatibility mode, translated with `TbFlags { bitness: 32, ..TbFlags::LONG }`) over [`CaseMemory`]: the code page at [`CODE_ADDR`]
//! (the case's bytes, then [`TERMINATOR`]) and the scratch page at [`SCRATCH_ADDR`]; every other address faults
//! with #PF at the first unmapped byte. TBs are translated, prepared and run until RIP reaches the terminator
//! (code fetch stops there, so the `int3` itself is never translated) or a fault is raised.

use rqemu_include::{MemOp, MmuIdx};
use rqemu_target_i386::cpu::{excp, seg, SegmentCache, DESC_B, DESC_P};
use rqemu_target_i386::{translate_tb, CodeFetch, I386Target, TbFlags, X86CpuState};
use rqemu_tcg::prepare::{prepare_with, PrepareOptions};
use rqemu_tcg::{Backend, ExecContext, Func, GuestMemory, MemFault, Opcode, TbExit};

use crate::compare::CpuUnderTest;
use crate::state::{Case, CpuSnapshot, CpuState, Fault, CODE_ADDR, CODE_SIZE, SCRATCH_ADDR, SCRATCH_LEN, TERMINATOR};

/// Size of the scratch page (only its first [`SCRATCH_LEN`] bytes are set and compared).
const SCRATCH_PAGE: usize = 4096;
/// #AC's vector (the frontend has no constant for it yet).
const EXCP_AC: u32 = 17;
/// #SS's vector.
const EXCP_SS: u32 = 12;
/// #BR's vector.
const EXCP_BR: u32 = 5;
/// #NM's, #MF's and #XM's vectors.
const EXCP_NM: u32 = 7;
const EXCP_MF: u32 = 16;
const EXCP_XM: u32 = 19;
/// TBs one case may run before it counts as a timeout.
const MAX_TBS: usize = 1000;

/// The two mapped pages of a case; the last failing access is remembered for the #PF it becomes.
pub struct CaseMemory {
    pub code: Vec<u8>,
    pub scratch: Vec<u8>,
    /// Address of the first unmapped byte and whether it was a store, for the last access that failed.
    pub last_fault: Option<(u64, bool)>,
}

impl CaseMemory {
    fn new(case: &Case) -> CaseMemory {
        let mut code = vec![0; CODE_SIZE];
        code[..case.code.len()].copy_from_slice(&case.code);
        code[case.code.len()..case.code.len() + TERMINATOR.len()].copy_from_slice(&TERMINATOR);
        let mut scratch = vec![0; SCRATCH_PAGE];
        scratch[..SCRATCH_LEN].copy_from_slice(&case.init.mem);
        CaseMemory {
            code,
            scratch,
            last_fault: None,
        }
    }

    /// The region holding byte `addr`: its bytes and the offset.
    fn byte(&mut self, addr: u64) -> Option<&mut u8> {
        if let Some(off) = addr.checked_sub(CODE_ADDR).filter(|&o| o < CODE_SIZE as u64) {
            return Some(&mut self.code[off as usize]);
        }
        if let Some(off) = addr.checked_sub(SCRATCH_ADDR).filter(|&o| o < SCRATCH_PAGE as u64) {
            return Some(&mut self.scratch[off as usize]);
        }
        None
    }

    /// Checks every byte of an access is mapped; records the first that is not.
    fn check(&mut self, addr: u64, size: u64, write: bool) -> Result<(), MemFault> {
        for i in 0..size {
            let a = addr.wrapping_add(i);
            if self.byte(a).is_none() {
                self.last_fault = Some((a, write));
                return Err(MemFault);
            }
        }
        Ok(())
    }
}

impl GuestMemory for CaseMemory {
    fn load(&mut self, _env: *mut u8, addr: u64, memop: MemOp, _mmu: MmuIdx) -> Result<u64, MemFault> {
        let size = memop.size_bytes() as u64;
        self.check(addr, size, false)?;
        let mut raw = [0u8; 8];
        for (i, b) in raw.iter_mut().enumerate().take(size as usize) {
            *b = *self.byte(addr.wrapping_add(i as u64)).expect("checked");
        }
        if memop.is_bswap() {
            raw[..size as usize].reverse();
        }
        let v = u64::from_le_bytes(raw);
        let shift = 64 - 8 * size as u32;
        Ok(if memop.is_signed() {
            (((v << shift) as i64) >> shift) as u64
        } else {
            v
        })
    }

    fn store(&mut self, _env: *mut u8, addr: u64, value: u64, memop: MemOp, _mmu: MmuIdx) -> Result<(), MemFault> {
        let size = memop.size_bytes() as usize;
        self.check(addr, size as u64, true)?;
        let mut raw = value.to_le_bytes();
        if memop.is_bswap() {
            raw[..size].reverse();
        }
        for (i, b) in raw.iter().enumerate().take(size) {
            *self.byte(addr.wrapping_add(i as u64)).expect("checked") = *b;
        }
        Ok(())
    }
}

/// Code fetch from the code page up to the terminator (so a TB ends there and the loop sees RIP reach it).
struct Fetch<'a> {
    code: &'a [u8],
    end: u64,
}

impl CodeFetch for Fetch<'_> {
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> usize {
        if addr < CODE_ADDR || addr >= self.end {
            return 0;
        }
        let off = (addr - CODE_ADDR) as usize;
        let end = (self.end - CODE_ADDR) as usize;
        let n = buf.len().min(end - off);
        buf[..n].copy_from_slice(&self.code[off..off + n]);
        n
    }
}

/// rqemu on one backend.
pub struct Rqemu {
    backend: Box<dyn Backend>,
    target: I386Target,
    func: Func,
}

impl Rqemu {
    /// rqemu on `backend`.
    pub fn new(backend: Box<dyn Backend>) -> Rqemu {
        let target = I386Target::new();
        let func = Func::new(target.desc.clone());
        Rqemu { backend, target, func }
    }

    /// rqemu on the TCG interpreter.
    pub fn tci() -> Rqemu {
        Rqemu::new(Box::new(rqemu_tcg_tci::Tci::new()))
    }

    /// rqemu on the wasm32 backend run by its embedded engine.
    #[cfg(feature = "wasm32")]
    pub fn wasm32() -> Rqemu {
        Rqemu::new(Box::new(rqemu_tcg_wasm32::engine::EmbeddedWasm32::new()))
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Runs TBs from the state's RIP until it reaches `end` or a fault; `Fault::None` at the end.
    fn execute(&mut self, cpu: &mut X86CpuState, mem: &mut CaseMemory, end: u64, flags: TbFlags) -> Fault {
        // `end` is an IP; code fetch works on linear addresses.
        let fetch_end = flags.cs_base + end;
        for _ in 0..MAX_TBS {
            if cpu.rip == end {
                return Fault::None;
            }
            let rip = cpu.rip;
            let mut fetch = Fetch {
                code: &mem.code,
                end: fetch_end,
            };
            if let Err(e) = translate_tb(&self.target, &mut self.func, rip, flags, 512, &mut fetch) {
                return Fault::Pf {
                    addr: e.addr,
                    write: false,
                };
            }
            let opts = PrepareOptions {
                optimize: true,
                verify_result: false,
            };
            if let Err(e) = prepare_with(&mut self.func, opts) {
                panic!("prepare failed at {rip:#x}: {e:?}\n{}", self.func.dump());
            }
            let tb = match self.backend.compile(&self.func) {
                Ok(tb) => tb,
                Err(e) => panic!("{} cannot compile the TB at {rip:#x}: {e:?}", self.backend.name()),
            };
            mem.last_fault = None;
            let mut ctx = ExecContext {
                env: (cpu as *mut X86CpuState).cast(),
                mem,
            };
            // SAFETY: the TB was translated for X86CpuState and runs on one.
            let exit = unsafe { tb.run(&mut ctx) };
            match exit {
                TbExit::GotoTb(_) | TbExit::Exit(_) | TbExit::GotoPtr(_) => {}
                TbExit::Fault { insn } => {
                    let start = self
                        .func
                        .ops
                        .iter()
                        .filter(|op| op.opc == Opcode::InsnStart)
                        .nth(insn as usize)
                        .expect("the faulting instruction has an insn_start");
                    cpu.rip = start.konst(0);
                    if start.konst(1) != 0 {
                        cpu.cc_op = start.konst(1) as u32;
                    }
                    let fault = if cpu.fault != 0 {
                        match cpu.exception_index {
                            excp::DE => Fault::De,
                            excp::UD => Fault::Ud,
                            excp::GP => Fault::Gp,
                            EXCP_SS => Fault::Ss,
                            EXCP_AC => Fault::Ac,
                            EXCP_BR => Fault::Br,
                            excp::OF => Fault::Of,
                            EXCP_NM => Fault::Nm,
                            EXCP_MF => Fault::Mf,
                            EXCP_XM => Fault::Xm,
                            excp::PF => Fault::Pf {
                                addr: cpu.fault_addr,
                                write: cpu.error_code & 2 != 0,
                            },
                            v => Fault::Other {
                                signal: 0,
                                trapno: u64::from(v),
                            },
                        }
                    } else {
                        match mem.last_fault {
                            Some((addr, write)) => Fault::Pf { addr, write },
                            None => Fault::Other { signal: 0, trapno: 14 },
                        }
                    };
                    // A trap (#OF from into) returns past its instruction.
                    if cpu.fault != 0 && cpu.exception_is_trap != 0 {
                        cpu.rip = cpu.exception_next_rip;
                    }
                    cpu.fault = 0;
                    return fault;
                }
            }
        }
        Fault::Timeout
    }
}

impl CpuUnderTest for Rqemu {
    fn run(&mut self, case: &Case) -> CpuSnapshot {
        let init = &case.init;
        let mut cpu = Box::new(X86CpuState::new_long_mode(case.ip_base()));
        let flags = if case.bitness == 16 {
            // 16-bit code in compatibility mode as the native harness runs it: CS based at CODE_ADDR, DS/ES/SS
            // based at SCRATCH_ADDR, 64 KiB limits, 16-bit default sizes (D/B clear).
            let mut code = SegmentCache::flat(0x07, DESC_P);
            code.base = CODE_ADDR;
            code.limit = 0xffff;
            cpu.segs[seg::CS] = code;
            let mut data = SegmentCache::flat(0x0f, DESC_P);
            data.base = SCRATCH_ADDR;
            data.limit = 0xffff;
            for i in [seg::DS, seg::ES, seg::SS] {
                cpu.segs[i] = data;
            }
            TbFlags {
                bitness: 16,
                ss32: false,
                cs_base: CODE_ADDR,
                // DS/ES/SS have a nonzero base: memory operands add it.
                addseg: true,
                ..TbFlags::LONG
            }
        } else if case.bitness == 32 {
            // Compatibility mode as Linux runs 32-bit user code: EFER.LMA stays set, CS is a flat 32-bit code
            // segment (D set, L clear), SS/DS/ES are the flat 32-bit data segments new_long_mode already loads.
            cpu.segs[seg::CS] = SegmentCache::flat(0x23, DESC_P | DESC_B);
            TbFlags {
                bitness: 32,
                ss32: true,
                cs_base: 0,
                ..TbFlags::LONG
            }
        } else {
            TbFlags::LONG
        };
        cpu.regs = init.gpr;
        cpu.set_rflags(init.rflags);
        cpu.xmm = init.xmm;
        cpu.mxcsr = init.mxcsr;
        // CpuState has FXSAVE's layout (ST0-7 in stack order); FpuState keeps the registers in physical order
        // (ST(i) is physical register TOP + i, MMi is physical register i). Both tag words are abridged and
        // physical.
        cpu.fpu.fcw = init.fcw;
        cpu.fpu.fsw = init.fsw;
        cpu.fpu.ftw = init.ftw;
        let top = usize::from(init.fsw >> 11 & 7);
        for (i, v) in init.st.into_iter().enumerate() {
            cpu.fpu.regs[(top + i) & 7] = (v & crate::state::ST_MASK).to_le_bytes();
        }
        let mut mem = CaseMemory::new(case);
        let end = case.ip_base() + case.end_offset();
        let fault = self.execute(&mut cpu, &mut mem, end, flags);
        let mut state = CpuState {
            gpr: cpu.regs,
            rflags: cpu.rflags(),
            xmm: cpu.xmm,
            mxcsr: cpu.mxcsr,
            fcw: cpu.fpu.fcw,
            fsw: cpu.fpu.fsw,
            ftw: cpu.fpu.ftw,
            st: core::array::from_fn(|i| {
                let top = usize::from(cpu.fpu.fsw >> 11 & 7);
                u128::from_le_bytes(cpu.fpu.regs[(top + i) & 7]) & crate::state::ST_MASK
            }),
            mem: [0; SCRATCH_LEN],
        }
        .normalized(case.bitness);
        state.mem.copy_from_slice(&mem.scratch[..SCRATCH_LEN]);
        CpuSnapshot {
            state,
            rip: cpu.rip.wrapping_sub(case.ip_base()),
            fault,
        }
    }
}
