//! A toy guest for the execution loop's tests: eight 64-bit registers and a pc, fixed 4-byte instructions
//! `[op, a, b, imm8]` (little-endian) in a flat memory at address 0, 256-byte pages, and an MMIO byte
//! whose store requests an exit.
//!
//! | op | name | effect |
//! |---|---|---|
//! | 1 | `addi a, b, imm` | `r[a] = r[b] + sext(imm)` |
//! | 2 | `ld a, b, imm` | `r[a] = mem64[r[b] + sext(imm)]` (faults outside memory: exception 14) |
//! | 3 | `st a, b, imm` | `mem64[r[b] + sext(imm)] = r[a]` |
//! | 4 | `bnz a, imm` | `pc = r[a] != 0 ? pc + 4 + 4 * sext(imm) : pc + 4` (ends the TB, `goto_tb`) |
//! | 5 | `jr a` | `pc = r[a]` (ends the TB, `lookup_tb_ptr` + `goto_ptr`) |
//! | 6 | `hlt` | halts (ends the TB, `exit_tb` with a target value) |
//! | 7 | `raise imm` | exception `imm` through a faulting helper |
//! | 8 | `li a, imm16` | `r[a] = imm16` (bytes 2..4) |
//! | 9 | `brk` | ends the TB (`exit_tb 0`) |
//! | 10 | `kick` | requests an exit through the CPU state's exit word |
//! | other | | exception 6 (#UD) |
//!
//! Exceptions go to `evec` (the pc of the faulting instruction is kept in `last_exc_pc`); an interrupt
//! saves the pc in `r7` and goes to `ivec`.

#![allow(dead_code)]

use std::mem::offset_of;
use std::sync::Arc;

use rqemu_accel::cpu::EXIT_TARGET_BASE;
use rqemu_accel::{
    lookup_tb_ptr_helper, request_exit_in_env, translator_loop, CodeFault, CpuAction, CpuOps, DisasBase, DisasJump,
    ExitRequest, InvalidateQueue, TbKey, TbKeyFn, TranslateError, TranslatorOps,
};
use rqemu_include::{MemOp, MmuIdx};
use rqemu_tcg::conformance::FlatMemory;
use rqemu_tcg::opcodes::INSN_START_WORDS;
use rqemu_tcg::{Cond, Func, GuestMemory, HelperFlags, HelperId, HelperInfo, MemFault, TargetDesc, Temp, Type};

pub const PAGE_BITS: u32 = 8;
pub const MEM_SIZE: usize = 0x4000;
pub const MMIO_EXIT: u64 = 0xf000;
pub const EXC_PAGE_FAULT: u64 = 14;
pub const EXC_UD: u64 = 6;
pub const EXIT_HLT: u64 = EXIT_TARGET_BASE;
/// What `run` returns when an exception arrives and `evec` is 0.
pub const STOP_NO_HANDLER: u64 = 0xdead;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ToyState {
    pub regs: [u64; 8],
    pub pc: u64,
    pub exc_code: u64,
    pub exc_addr: u64,
    pub fault: u32,
    pub exit_word: u32,
    pub halted: u32,
    pub irq_pending: u32,
    pub evec: u64,
    pub ivec: u64,
    pub exc_count: u64,
    pub last_exc: u64,
    pub last_exc_pc: u64,
    pub irq_count: u64,
}

const PC_OFFSET: usize = offset_of!(ToyState, pc);

unsafe extern "C" fn helper_raise(env: *mut u8, code: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    let s = env.cast::<ToyState>();
    // SAFETY: `env` is a ToyState (the helper is registered only by the toy target).
    unsafe {
        (*s).exc_code = code;
        (*s).fault = 1;
    }
    0
}

unsafe extern "C" fn helper_kick(env: *mut u8, _: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: `env` is a ToyState.
    unsafe { request_exit_in_env(env, offset_of!(ToyState, exit_word) as i32) };
    0
}

unsafe fn toy_key(env: *const u8) -> TbKey {
    TbKey {
        // SAFETY: `env` is a ToyState (the loop's promise to `tb_key_fn`).
        pc: unsafe { env.add(PC_OFFSET).cast::<u64>().read() },
        ..TbKey::default()
    }
}

/// The toy's guest memory: RAM at 0..MEM_SIZE and the exit-requesting MMIO byte; faults record exception
/// 14 in the CPU state, as softmmu will.
pub struct ToyMem {
    pub ram: FlatMemory,
    pub exit: Option<ExitRequest>,
    /// Every RAM store is queued for invalidation (self-modifying code), when set.
    pub smc: Option<InvalidateQueue>,
    pub mmio_writes: u64,
}

impl ToyMem {
    pub fn new() -> ToyMem {
        ToyMem {
            ram: FlatMemory::new(0, MEM_SIZE),
            exit: None,
            smc: None,
            mmio_writes: 0,
        }
    }

    /// Writes `program` at `addr`.
    pub fn load_program(&mut self, addr: u64, program: &[u32]) {
        for (i, insn) in program.iter().enumerate() {
            let at = addr as usize + 4 * i;
            self.ram.bytes_mut()[at..at + 4].copy_from_slice(&insn.to_le_bytes());
        }
    }

    pub fn read64(&self, addr: u64) -> u64 {
        let a = addr as usize;
        u64::from_le_bytes(self.ram.bytes()[a..a + 8].try_into().unwrap())
    }

    fn fault(env: *mut u8, addr: u64) -> MemFault {
        if !env.is_null() {
            let s = env.cast::<ToyState>();
            // SAFETY: `env` is the toy's state whenever it is not null.
            unsafe {
                (*s).exc_code = EXC_PAGE_FAULT;
                (*s).exc_addr = addr;
            }
        }
        MemFault
    }
}

impl GuestMemory for ToyMem {
    fn load(&mut self, env: *mut u8, addr: u64, memop: MemOp, mmu: MmuIdx) -> Result<u64, MemFault> {
        self.ram.load(env, addr, memop, mmu).map_err(|_| Self::fault(env, addr))
    }

    fn store(&mut self, env: *mut u8, addr: u64, value: u64, memop: MemOp, mmu: MmuIdx) -> Result<(), MemFault> {
        if addr == MMIO_EXIT {
            self.mmio_writes += 1;
            if let Some(e) = &self.exit {
                e.set();
            }
            return Ok(());
        }
        self.ram
            .store(env, addr, value, memop, mmu)
            .map_err(|_| Self::fault(env, addr))?;
        if let Some(q) = &self.smc {
            q.push(addr, addr + memop.size_bytes() as u64);
        }
        Ok(())
    }
}

struct Ids {
    regs: [usize; 8],
    pc: usize,
    raise: HelperId,
    kick: HelperId,
    lookup: HelperId,
}

pub struct ToyCpu {
    pub state: Box<ToyState>,
    desc: Arc<TargetDesc>,
    ids: Arc<Ids>,
    pub use_exit_word: bool,
    pub use_lookup_fn: bool,
    /// Instructions translated, to check retranslation.
    pub insns_translated: u64,
}

impl ToyCpu {
    pub fn new() -> ToyCpu {
        let mut t = TargetDesc::new(offset_of!(ToyState, fault) as i32);
        t.env_size = std::mem::size_of::<ToyState>();
        let regs = core::array::from_fn(|i| t.add_global(&format!("r{i}"), Type::I64, (8 * i) as i32));
        let pc = t.add_global("pc", Type::I64, PC_OFFSET as i32);
        let raise = t.helpers.register(HelperInfo {
            name: "raise",
            func: helper_raise,
            flags: HelperFlags::MAY_FAULT,
            args: &[Type::I64],
            ret: None,
        });
        let kick = t.helpers.register(HelperInfo {
            name: "kick",
            func: helper_kick,
            flags: HelperFlags::empty(),
            args: &[],
            ret: None,
        });
        let lookup = t.helpers.register(lookup_tb_ptr_helper());
        ToyCpu {
            state: Box::default(),
            desc: Arc::new(t),
            ids: Arc::new(Ids {
                regs,
                pc,
                raise,
                kick,
                lookup,
            }),
            use_exit_word: true,
            use_lookup_fn: true,
            insns_translated: 0,
        }
    }
}

impl CpuOps for ToyCpu {
    fn target_desc(&self) -> Arc<TargetDesc> {
        self.desc.clone()
    }

    fn env(&mut self) -> *mut u8 {
        (&mut *self.state as *mut ToyState).cast()
    }

    fn page_bits(&self) -> u32 {
        PAGE_BITS
    }

    fn exit_word_offset(&self) -> Option<i32> {
        self.use_exit_word.then_some(offset_of!(ToyState, exit_word) as i32)
    }

    fn tb_key(&self) -> TbKey {
        TbKey {
            pc: self.state.pc,
            ..TbKey::default()
        }
    }

    fn tb_key_fn(&self) -> Option<TbKeyFn> {
        self.use_lookup_fn.then_some(toy_key as TbKeyFn)
    }

    fn code_phys_addr(&mut self, _mem: &mut dyn GuestMemory, pc: u64) -> Result<u64, CodeFault> {
        if pc < MEM_SIZE as u64 {
            Ok(pc)
        } else {
            self.state.exc_code = EXC_PAGE_FAULT;
            self.state.exc_addr = pc;
            Err(CodeFault)
        }
    }

    fn gen_code(
        &mut self,
        mem: &mut dyn GuestMemory,
        db: &mut DisasBase,
        func: &mut Func,
    ) -> Result<(), TranslateError> {
        let exit_word = self.exit_word_offset();
        let env = self.env();
        let mut tr = ToyTranslator {
            mem,
            env,
            ids: self.ids.clone(),
            regs: [Temp::ENV; 8],
            pc: Temp::ENV,
        };
        let r = translator_loop(&mut tr, db, func, exit_word);
        self.insns_translated += u64::from(db.num_insns);
        r
    }

    fn restore_state_to_opc(&mut self, _key: &TbKey, words: &[u64; INSN_START_WORDS]) {
        self.state.pc = words[0];
    }

    fn handle_exception(&mut self) -> CpuAction {
        let s = &mut self.state;
        s.exc_count += 1;
        s.last_exc = std::mem::take(&mut s.exc_code);
        s.last_exc_pc = s.pc;
        if s.evec == 0 {
            return CpuAction::Stop(STOP_NO_HANDLER);
        }
        s.pc = s.evec;
        CpuAction::Continue
    }

    fn handle_interrupt(&mut self) -> Option<CpuAction> {
        let s = &mut self.state;
        if s.irq_pending == 0 {
            return None;
        }
        s.irq_pending = 0;
        s.irq_count += 1;
        s.regs[7] = s.pc;
        s.pc = s.ivec;
        Some(CpuAction::Continue)
    }

    fn check_halted(&mut self) -> bool {
        let s = &mut self.state;
        if s.halted != 0 && s.irq_pending != 0 {
            s.halted = 0;
        }
        s.halted != 0
    }

    fn handle_exit(&mut self, value: u64) -> CpuAction {
        if value == EXIT_HLT {
            self.state.halted = 1;
            CpuAction::Halt
        } else {
            CpuAction::Stop(value)
        }
    }
}

struct ToyTranslator<'a> {
    mem: &'a mut dyn GuestMemory,
    env: *mut u8,
    ids: Arc<Ids>,
    regs: [Temp; 8],
    pc: Temp,
}

impl ToyTranslator<'_> {
    /// Stores `dest` as the pc and leaves through `goto_tb slot` when it may, else `exit_tb 0`.
    fn jump(&self, db: &DisasBase, f: &mut Func, slot: u32, dest: u64) {
        f.movi(self.pc, dest);
        if db.use_goto_tb(dest) {
            f.goto_tb(slot);
        } else {
            f.exit_tb(0);
        }
    }
}

impl TranslatorOps for ToyTranslator<'_> {
    fn init_disas_context(&mut self, _db: &mut DisasBase, f: &mut Func) {
        self.regs = core::array::from_fn(|i| f.global(self.ids.regs[i]));
        self.pc = f.global(self.ids.pc);
    }

    fn insn_start(&mut self, db: &mut DisasBase, f: &mut Func) {
        f.insn_start([db.pc_next, 0, 0]);
    }

    fn translate_insn(&mut self, db: &mut DisasBase, f: &mut Func) -> Result<(), TranslateError> {
        let pc = db.pc_next;
        let insn = match self.mem.load(self.env, pc, MemOp::LEUL, MmuIdx::default()) {
            Ok(v) => v as u32,
            Err(_) if db.num_insns == 1 => return Err(TranslateError::Fault),
            Err(_) => {
                // SAFETY: `env` is the toy's state; undo what the failed fetch recorded.
                unsafe { (*self.env.cast::<ToyState>()).exc_code = 0 };
                db.is_jmp = DisasJump::TooMany;
                return Ok(());
            }
        };
        let [op, a, b, imm] = insn.to_le_bytes();
        let (ra, rb) = (self.regs[(a & 7) as usize], self.regs[(b & 7) as usize]);
        let simm = imm as i8 as i64 as u64;
        let next = pc.wrapping_add(4);
        db.pc_next = next;
        let mmu = MmuIdx::default();
        match op {
            1 => {
                let k = f.constant(Type::I64, simm);
                f.add(ra, rb, k);
            }
            2 | 3 => {
                let addr = f.new_temp(Type::I64);
                let k = f.constant(Type::I64, simm);
                f.add(addr, rb, k);
                if op == 2 {
                    f.qemu_ld(ra, addr, MemOp::LEUQ, mmu);
                } else {
                    f.qemu_st(ra, addr, MemOp::LEUQ, mmu);
                }
            }
            4 => {
                let (zero, taken) = (f.constant(Type::I64, 0), f.new_label());
                f.brcond(Cond::Ne, ra, zero, taken);
                self.jump(db, f, 1, next);
                f.set_label(taken);
                self.jump(db, f, 0, next.wrapping_add(simm.wrapping_mul(4)));
                db.is_jmp = DisasJump::NoReturn;
            }
            5 => {
                let handle = f.new_temp(Type::PTR);
                f.mov(self.pc, ra);
                f.call(self.ids.lookup, Some(handle), &[]);
                f.goto_ptr(handle);
                db.is_jmp = DisasJump::NoReturn;
            }
            6 => {
                f.movi(self.pc, next);
                f.exit_tb(EXIT_HLT);
                db.is_jmp = DisasJump::NoReturn;
            }
            8 => {
                f.movi(ra, u64::from(insn >> 16));
            }
            9 => {
                f.movi(self.pc, next);
                f.exit_tb(0);
                db.is_jmp = DisasJump::NoReturn;
            }
            10 => f.call(self.ids.kick, None, &[]),
            _ => {
                let code = f.constant(Type::I64, if op == 7 { u64::from(imm) } else { EXC_UD });
                f.call(self.ids.raise, None, &[code]);
                f.movi(self.pc, next);
                f.exit_tb(0);
                db.is_jmp = DisasJump::NoReturn;
            }
        }
        Ok(())
    }

    fn tb_stop(&mut self, db: &mut DisasBase, f: &mut Func) {
        if db.is_jmp != DisasJump::NoReturn {
            self.jump(db, f, 0, db.pc_next);
        }
    }
}

/// The assembler.
pub fn insn(op: u8, a: u8, b: u8, imm: i8) -> u32 {
    u32::from_le_bytes([op, a, b, imm as u8])
}
pub fn addi(a: u8, b: u8, imm: i8) -> u32 {
    insn(1, a, b, imm)
}
pub fn ld(a: u8, b: u8, imm: i8) -> u32 {
    insn(2, a, b, imm)
}
pub fn st(a: u8, b: u8, imm: i8) -> u32 {
    insn(3, a, b, imm)
}
pub fn bnz(a: u8, imm: i8) -> u32 {
    insn(4, a, 0, imm)
}
pub fn jr(a: u8) -> u32 {
    insn(5, a, 0, 0)
}
pub fn hlt() -> u32 {
    insn(6, 0, 0, 0)
}
pub fn raise(code: u8) -> u32 {
    insn(7, 0, 0, code as i8)
}
pub fn li(a: u8, imm: u16) -> u32 {
    u32::from(8u8) | (u32::from(a) << 8) | (u32::from(imm) << 16)
}
pub fn brk() -> u32 {
    insn(9, 0, 0, 0)
}
pub fn kick() -> u32 {
    insn(10, 0, 0, 0)
}
