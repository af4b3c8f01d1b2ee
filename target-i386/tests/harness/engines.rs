//! Helpers for tests that need more than `harness/mod.rs`: running a [`Machine`] on any TCG backend (the
//! embedded wasm32 engine besides tci), and running instruction bytes on the host CPU itself.
//! Include it next to the harness: `mod harness; #[path = "harness/engines.rs"] mod engines;`.

#![allow(dead_code)]

use rqemu_tcg::prepare::{prepare_with, PrepareOptions};
use rqemu_tcg::{Backend, ExecContext, Func, TbExit};

use rqemu_target_i386::{translate_tb, CodeFetch, X86CpuState};

use crate::harness::{Machine, Outcome, MEM_BASE};

/// Code fetch from the machine's flat memory up to the end of its program.
struct Fetch<'a>(&'a [u8]);

impl CodeFetch for Fetch<'_> {
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> usize {
        let Some(off) = addr.checked_sub(MEM_BASE) else {
            return 0;
        };
        let off = off as usize;
        if off >= self.0.len() {
            return 0;
        }
        let n = buf.len().min(self.0.len() - off);
        buf[..n].copy_from_slice(&self.0[off..off + n]);
        n
    }
}

/// [`Machine::run`] with TBs compiled by `backend` instead of tci (optimized pipeline). Faults are not
/// restored: a fault is reported with the rip of the TB that raised it.
pub fn run_on(m: &mut Machine, backend: &mut dyn Backend) -> Outcome {
    let mut f = Func::new(m.target.desc.clone());
    for _ in 0..10_000 {
        if m.cpu.rip == m.end {
            return Outcome::End;
        }
        let rip = m.cpu.rip;
        let code = m.mem.bytes()[..(m.end - MEM_BASE) as usize].to_vec();
        if let Err(e) = translate_tb(&m.target, &mut f, rip, m.flags, m.max_insns, &mut Fetch(&code)) {
            return Outcome::FetchFault { addr: e.addr };
        }
        let opts = PrepareOptions {
            optimize: true,
            verify_result: true,
        };
        prepare_with(&mut f, opts).unwrap_or_else(|e| panic!("{e:?}\n{}", f.dump()));
        m.last_ir = f.dump();
        let tb = backend
            .compile(&f)
            .unwrap_or_else(|e| panic!("{} rejects the TB: {e}\n{}", backend.name(), m.last_ir));
        m.tbs += 1;
        let mut ctx = ExecContext {
            env: (&mut *m.cpu as *mut X86CpuState).cast(),
            mem: &mut m.mem,
        };
        // SAFETY: the TB was built for X86CpuState and runs on one.
        match unsafe { tb.run(&mut ctx) } {
            TbExit::GotoTb(_) | TbExit::Exit(0) => {}
            TbExit::Fault { .. } => {
                return Outcome::Fault {
                    rip: m.cpu.rip,
                    vector: m.cpu.exception_index,
                }
            }
            other => panic!("unexpected exit {other:?} on {}", backend.name()),
        }
    }
    panic!("program did not end");
}

/// The host CPU: runs instruction bytes between a prologue that loads every general register but rsp and
/// RFLAGS from a [`HostRegs`], and an epilogue that stores them back (x86-64 Linux only).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod host {
    use iced_x86::code_asm::*;

    /// The registers (rsp, index 4, is neither loaded nor stored) and RFLAGS around the host's run.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct HostRegs {
        pub regs: [u64; 16],
        pub rflags: u64,
    }

    const LEN: usize = 0x1_0000;

    /// An executable page of this process and the fixed prologue/epilogue.
    pub struct HostCpu {
        page: *mut u8,
        prologue: Vec<u8>,
        epilogue: Vec<u8>,
    }

    // SAFETY: raw Linux system calls with the documented argument registers; rcx and r11 are clobbered.
    unsafe fn syscall6(n: u64, a: [u64; 6]) -> i64 {
        let ret: i64;
        // SAFETY: the caller's promise.
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") n as i64 => ret, in("rdi") a[0], in("rsi") a[1],
                in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    fn assemble(build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
        let mut a = CodeAssembler::new(64).unwrap();
        build(&mut a).unwrap();
        a.assemble(0).unwrap()
    }

    const LOADS: [(usize, AsmRegister64); 14] = [
        (0, rax),
        (1, rcx),
        (2, rdx),
        (3, rbx),
        (5, rbp),
        (6, rsi),
        (8, r8),
        (9, r9),
        (10, r10),
        (11, r11),
        (12, r12),
        (13, r13),
        (14, r14),
        (15, r15),
    ];

    impl HostCpu {
        pub fn new() -> HostCpu {
            // SAFETY: mmap(NULL, LEN, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0).
            let p = unsafe { syscall6(9, [0, LEN as u64, 7, 0x22, u64::MAX, 0]) };
            assert!(p > 0, "mmap of an executable page failed: {p}");
            let callee_saved = [rbx, rbp, r12, r13, r14, r15];
            let prologue = assemble(|a| {
                for r in callee_saved {
                    a.push(r)?;
                }
                a.push(rdi)?;
                a.push(qword_ptr(rdi + 128))?;
                a.popfq()?;
                for (i, r) in LOADS {
                    a.mov(r, qword_ptr(rdi + 8 * i as i32))?;
                }
                a.mov(rdi, qword_ptr(rdi + 56))
            });
            let epilogue = assemble(|a| {
                a.pushfq()?;
                a.push(rdi)?;
                a.mov(rdi, qword_ptr(rsp + 16))?;
                for (i, r) in LOADS {
                    a.mov(qword_ptr(rdi + 8 * i as i32), r)?;
                }
                a.pop(rax)?;
                a.mov(qword_ptr(rdi + 56), rax)?;
                a.pop(rax)?;
                a.mov(qword_ptr(rdi + 128), rax)?;
                a.pop(rax)?;
                a.cld()?;
                for r in callee_saved.iter().rev() {
                    a.pop(*r)?;
                }
                a.ret()
            });
            HostCpu {
                page: p as *mut u8,
                prologue,
                epilogue,
            }
        }

        /// Runs `code` on the host CPU with `state` in and out.
        ///
        /// # Safety
        /// `code` must be position independent, fall through its end, leave rsp as it found it, set no flag
        /// outside the six arithmetic ones and DF (no TF, AC), and access memory only where `state`'s pointers
        /// point to live memory.
        pub unsafe fn run(&mut self, code: &[u8], state: &mut HostRegs) {
            let all = [&self.prologue[..], code, &self.epilogue[..]].concat();
            assert!(all.len() <= LEN);
            // SAFETY: the page is ours, LEN bytes, writable and executable; the stub follows the SysV ABI
            // (callee-saved registers restored, DF clear at return) and the caller vouches for `code`.
            unsafe {
                core::ptr::copy_nonoverlapping(all.as_ptr(), self.page, all.len());
                let f: extern "sysv64" fn(*mut HostRegs) = core::mem::transmute(self.page);
                f(state);
            }
        }
    }

    impl Drop for HostCpu {
        fn drop(&mut self) {
            // SAFETY: munmap of the mapping made in `new`.
            unsafe { syscall6(11, [self.page as u64, LEN as u64, 0, 0, 0, 0]) };
        }
    }
}
