//! A minimal execution loop for tests: translate a TB with `translate_tb`, prepare it, compile it with tci, run
//! it on an `X86CpuState` over a flat guest memory, follow its exit, until `rip` reaches the end of the
//! program or a fault stops it (the state is then restored from the faulting instruction's `insn_start`).

#![allow(dead_code)]

use rqemu_tcg::conformance::FlatMemory;
use rqemu_tcg::prepare::{prepare_with, PrepareOptions};
use rqemu_tcg::{CompiledTb, ExecContext, Func, Opcode, TbExit};
use rqemu_tcg_tci::Tci;

use rqemu_target_i386::{translate_tb, CodeFetch, I386Target, TbFlags, X86CpuState};

/// Guest memory: [MEM_BASE, MEM_BASE + MEM_LEN).
pub const MEM_BASE: u64 = 0x1000;
pub const MEM_LEN: usize = 0x8000;
/// Where programs are loaded.
pub const CODE: u64 = 0x1000;
/// Scratch data.
pub const DATA: u64 = 0x5000;
/// Initial stack pointer.
pub const STACK_TOP: u64 = 0x8000;

/// Fetches code from the flat memory, up to the end of the program (so TBs stop there).
struct MemFetch<'a>(&'a FlatMemory, u64);

impl CodeFetch for MemFetch<'_> {
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> usize {
        let end = (self.1 - MEM_BASE) as usize;
        let mem = &self.0.bytes()[..end];
        let Some(off) = addr.checked_sub(MEM_BASE) else {
            return 0;
        };
        let off = off as usize;
        if off >= mem.len() {
            return 0;
        }
        let n = buf.len().min(mem.len() - off);
        buf[..n].copy_from_slice(&mem[off..off + n]);
        n
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `rip` reached the end of the program.
    End,
    /// Exception `vector` at `rip`.
    Fault { rip: u64, vector: u32 },
    /// The first instruction of a TB could not be fetched.
    FetchFault { addr: u64 },
}

pub struct Machine {
    pub cpu: Box<X86CpuState>,
    pub mem: FlatMemory,
    pub end: u64,
    pub tbs: usize,
    pub target: I386Target,
    pub optimize: bool,
    pub max_insns: u32,
    /// Code mode.
    pub flags: TbFlags,
    /// The IR of the last TB, prepared.
    pub last_ir: String,
}

impl Machine {
    pub fn new(code: &[u8]) -> Machine {
        let mut mem = FlatMemory::new(MEM_BASE, MEM_LEN);
        let off = (CODE - MEM_BASE) as usize;
        mem.bytes_mut()[off..off + code.len()].copy_from_slice(code);
        let mut cpu = Box::new(X86CpuState::new_long_mode(CODE));
        cpu.regs[4] = STACK_TOP;
        Machine {
            cpu,
            mem,
            end: CODE + code.len() as u64,
            tbs: 0,
            target: I386Target::new(),
            optimize: true,
            max_insns: 512,
            flags: TbFlags::LONG,
            last_ir: String::new(),
        }
    }

    pub fn run(&mut self) -> Outcome {
        let mut f = Func::new(self.target.desc.clone());
        for _ in 0..10_000 {
            if self.cpu.rip == self.end {
                return Outcome::End;
            }
            let rip = self.cpu.rip;
            if let Err(e) = translate_tb(
                &self.target,
                &mut f,
                rip,
                self.flags,
                self.max_insns,
                &mut MemFetch(&self.mem, self.end),
            ) {
                return Outcome::FetchFault { addr: e.addr };
            }
            let opts = PrepareOptions {
                optimize: self.optimize,
                verify_result: true,
            };
            prepare_with(&mut f, opts).unwrap_or_else(|e| panic!("{e:?}\n{}", f.dump()));
            self.last_ir = f.dump();
            let tb = Tci::new().compile_tb(&f).expect("tci compiles every prepared TB");
            self.tbs += 1;
            let mut ctx = ExecContext {
                env: (&mut *self.cpu as *mut X86CpuState).cast(),
                mem: &mut self.mem,
            };
            // SAFETY: the TB was built for X86CpuState and runs on one.
            let exit = unsafe { tb.run(&mut ctx) };
            match exit {
                TbExit::GotoTb(_) | TbExit::Exit(0) => {}
                TbExit::Fault { insn } => {
                    let start = f
                        .ops
                        .iter()
                        .filter(|op| op.opc == Opcode::InsnStart)
                        .nth(insn as usize)
                        .expect("the faulting instruction has an insn_start");
                    self.cpu.rip = start.konst(0);
                    if start.konst(1) != 0 {
                        self.cpu.cc_op = start.konst(1) as u32;
                    }
                    let vector = if self.cpu.fault != 0 {
                        self.cpu.exception_index
                    } else {
                        14 // a failing guest access: #PF once softmmu reports it
                    };
                    self.cpu.fault = 0;
                    return Outcome::Fault {
                        rip: self.cpu.rip,
                        vector,
                    };
                }
                other => panic!("unexpected exit {other:?}"),
            }
        }
        panic!("program did not end");
    }

    /// Byte `i` of the data area.
    pub fn data(&self, i: usize) -> u8 {
        self.mem.bytes()[(DATA - MEM_BASE) as usize + i]
    }

    /// Little-endian u64 at `addr`.
    pub fn read_u64(&self, addr: u64) -> u64 {
        let o = (addr - MEM_BASE) as usize;
        u64::from_le_bytes(self.mem.bytes()[o..o + 8].try_into().unwrap())
    }

    pub fn write_u64(&mut self, addr: u64, v: u64) {
        let o = (addr - MEM_BASE) as usize;
        self.mem.bytes_mut()[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
}

/// Runs `code` to its end with `setup` applied first, through the optimized and the unoptimized pipeline,
/// checks both agree, and returns the optimized run.
pub fn run_with(code: &[u8], setup: impl Fn(&mut Machine)) -> Machine {
    let mut results = Vec::new();
    for optimize in [true, false] {
        let mut m = Machine::new(code);
        m.optimize = optimize;
        setup(&mut m);
        let out = m.run();
        assert_eq!(out, Outcome::End, "optimize={optimize}\n{}", m.last_ir);
        results.push(m);
    }
    let (a, b) = (&results[0], &results[1]);
    assert_eq!(a.cpu.regs, b.cpu.regs, "optimized and unoptimized runs differ");
    assert_eq!(a.cpu.rflags(), b.cpu.rflags(), "optimized and unoptimized flags differ");
    assert_eq!(a.mem.bytes(), b.mem.bytes(), "optimized and unoptimized memory differs");
    results.swap_remove(0)
}

pub fn run(code: &[u8]) -> Machine {
    run_with(code, |_| {})
}

/// `mov r64, imm64` for register number `r`.
pub fn mov_imm64(r: u8, v: u64) -> Vec<u8> {
    let mut b = vec![0x48 | ((r >> 3) & 1), 0xb8 + (r & 7)];
    b.extend_from_slice(&v.to_le_bytes());
    b
}

/// The value of x86 condition `cc` (0..16) given RFLAGS.
pub fn eval_cc(cc: u8, fl: u64) -> bool {
    let (c, p, z, s, o) = (
        fl & 1 != 0,
        fl & 4 != 0,
        fl & 0x40 != 0,
        fl & 0x80 != 0,
        fl & 0x800 != 0,
    );
    let base = match cc >> 1 {
        0 => o,
        1 => c,
        2 => z,
        3 => c || z,
        4 => s,
        5 => p,
        6 => s != o,
        _ => z || (s != o),
    };
    base ^ (cc & 1 == 1)
}
