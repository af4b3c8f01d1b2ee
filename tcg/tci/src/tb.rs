//! A compiled TB: bytecode, frame template and side tables, checked once when built, and the entry that
//! sets up a frame and runs the dispatch loop.

use core::fmt::Write;
use core::mem::{size_of, MaybeUninit};

use rqemu_tcg::{CompileError, CompiledTb, ExecContext, TbExit};

use crate::bytecode::{CallSite, Insn, Slot};
use crate::interp;

/// Frames up to this many slots live on the host stack; bigger ones (rare) are allocated per run.
const STACK_FRAME_SLOTS: usize = 256;

/// One TB compiled to tci bytecode.
pub struct TciTb {
    pub(crate) code: Box<[Insn]>,
    /// Initial frame: slot 0 is replaced by `env` at entry, constants have their values, the rest is zero.
    template: Box<[u64]>,
    pub(crate) calls: Box<[CallSite]>,
    pub(crate) exits: Box<[u64]>,
    pub(crate) fault_offset: i32,
    /// Where the target keeps its softmmu TLB in `env` (`TargetDesc::tlb_offset`): guest accesses that hit
    /// it are made here without calling the guest memory.
    pub(crate) tlb_offset: Option<i32>,
}

impl TciTb {
    /// Checks everything the interpreter relies on instead of bounds checks, so a compiler bug becomes an
    /// error here rather than memory corruption at run time.
    pub(crate) fn new(
        code: Box<[Insn]>,
        template: Box<[u64]>,
        calls: Box<[CallSite]>,
        exits: Box<[u64]>,
        fault_offset: i32,
        tlb_offset: Option<i32>,
    ) -> Result<TciTb, CompileError> {
        let bug = |why: String| Err(CompileError::Host(format!("tci bytecode check failed: {why}")));
        let frame_len = template.len();
        if frame_len == 0 || frame_len > Slot::LIMIT {
            return bug(format!("frame of {frame_len} slots"));
        }
        if !code.last().is_some_and(Insn::is_terminator) {
            return bug("the last instruction falls through".into());
        }
        let mut bad_slot = None;
        let mut check = |s: Slot| {
            if s.index() >= frame_len {
                bad_slot = Some(s);
            }
        };
        for site in calls.iter() {
            site.args.iter().for_each(|&s| check(s));
            site.ret.iter().for_each(|&(s, _)| check(s));
        }
        for (i, insn) in code.iter().enumerate() {
            insn.for_each_slot(&mut check);
            let in_range = match *insn {
                Insn::Call { site } => (site as usize) < calls.len(),
                Insn::ExitTb { exit } => (exit as usize) < exits.len(),
                mut branch => branch.target_mut().is_none_or(|t| (*t as usize) < code.len()),
            };
            if !in_range {
                return bug(format!("instruction {i} ({insn:?}) refers outside the TB"));
            }
        }
        if let Some(s) = bad_slot {
            return bug(format!("slot {s:?} outside a frame of {frame_len}"));
        }
        Ok(TciTb {
            code,
            template,
            calls,
            exits,
            fault_offset,
            tlb_offset,
        })
    }

    /// Number of bytecode instructions.
    pub fn insn_count(&self) -> usize {
        self.code.len()
    }

    /// Number of `u64` slots in the frame (`env`, constants, temps).
    pub fn frame_len(&self) -> usize {
        self.template.len()
    }

    /// The bytecode as text, one instruction per line, for debugging and golden tests.
    pub fn disassemble(&self) -> String {
        let mut s = String::new();
        for (i, insn) in self.code.iter().enumerate() {
            let _ = writeln!(s, "{i:4}: {insn:?}");
        }
        for (i, site) in self.calls.iter().enumerate() {
            let _ = writeln!(
                s,
                "call {i}: args {:?} ret {:?} may_fault {} insn {}",
                site.args, site.ret, site.may_fault, site.insn
            );
        }
        s
    }
}

impl CompiledTb for TciTb {
    unsafe fn run(&self, ctx: &mut ExecContext<'_>) -> TbExit {
        let n = self.template.len();
        let env = ctx.env;
        // Exposing `env` lets `ld`/`st` turn the integer in slot 0 back into a pointer.
        let env_bits = env.expose_provenance() as u64;
        if n <= STACK_FRAME_SLOTS {
            let mut buf = MaybeUninit::<[u64; STACK_FRAME_SLOTS]>::uninit();
            let frame = buf.as_mut_ptr().cast::<u64>();
            // SAFETY: `n` slots fit the buffer; the template initialises all of them (`n >= 1` since
            // `TciTb::new`), then slot 0 gets `env`. `exec`'s other requirements are `run`'s own.
            unsafe {
                core::ptr::copy_nonoverlapping(self.template.as_ptr(), frame, n);
                *frame = env_bits;
                interp::exec(self, frame, env, &mut *ctx.mem)
            }
        } else {
            let mut frame = self.template.to_vec();
            frame[0] = env_bits;
            // SAFETY: the vector holds the whole initialised frame.
            unsafe { interp::exec(self, frame.as_mut_ptr(), env, &mut *ctx.mem) }
        }
    }

    /// Bytes of bytecode, frame template and side tables.
    fn code_size(&self) -> usize {
        size_of::<Insn>() * self.code.len()
            + size_of::<u64>() * (self.template.len() + self.exits.len())
            + size_of::<CallSite>() * self.calls.len()
    }

    /// The bytecode listing ([`TciTb::disassemble`]), for `-d out_asm`.
    fn disassemble(&self) -> Option<String> {
        Some(TciTb::disassemble(self))
    }
}
