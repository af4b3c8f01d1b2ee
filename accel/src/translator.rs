//! The translator loop (QEMU's `translator_loop`): the target-independent skeleton that turns guest
//! instructions into the IR of one TB by calling the target's hooks ([`TranslatorOps`]) in order, stops at
//! the instruction limit and at the end of the TB's first page, and adds the TB-start exit check.
//!
//! Not here: decoding (the target's `translate_insn`), finding or caching TBs ([`crate::tb_cache`]).

use rqemu_tcg::{Cond, Func, Opcode, Type};

use crate::cpu::{TbKey, TranslateError, EXIT_REQUESTED};
use crate::log::{self, LogMask};

/// Instructions per TB when the key does not say (QEMU's `TCG_MAX_INSNS`).
pub const DEFAULT_MAX_INSNS: u32 = 512;

/// Why translation stops after the current instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisasJump {
    /// Go on with the next instruction.
    Next,
    /// Stop; `tb_stop` must end the TB with a jump to `pc_next` (instruction limit or page end, set by the
    /// loop, or a target's choice).
    TooMany,
    /// The instruction already ended the TB (a branch, an exception); `tb_stop` adds nothing.
    NoReturn,
    /// A target-specific reason, for the target's `tb_stop`.
    Target(u32),
}

/// What the translator loop and the target share about the TB being translated (QEMU's
/// `DisasContextBase`); a target's own context keeps it beside its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisasBase {
    /// The TB's key; `key.pc` is the first instruction.
    pub key: TbKey,
    /// The address of the next instruction to translate; the target advances it in `translate_insn`.
    pub pc_next: u64,
    /// Why to stop.
    pub is_jmp: DisasJump,
    /// Instructions translated so far (counting the current one inside the hooks).
    pub num_insns: u32,
    /// Most instructions in this TB.
    pub max_insns: u32,
    /// log2 of the guest page size.
    pub page_bits: u32,
    /// The label of the TB-start exit check, when there is one.
    exit_label: Option<rqemu_tcg::Label>,
}

impl DisasBase {
    /// The context for a TB at `key`, at most `max_insns` instructions (at least 1).
    pub fn new(key: TbKey, max_insns: u32, page_bits: u32) -> DisasBase {
        DisasBase {
            key,
            pc_next: key.pc,
            is_jmp: DisasJump::Next,
            num_insns: 0,
            max_insns: max_insns.max(1),
            page_bits: page_bits.clamp(1, 63),
            exit_label: None,
        }
    }

    /// The first instruction's address.
    pub fn pc_first(&self) -> u64 {
        self.key.pc
    }

    /// Whether `addr` is on the guest page of the TB's first instruction.
    pub fn is_same_page(&self, addr: u64) -> bool {
        (addr ^ self.key.pc) >> self.page_bits == 0
    }

    /// Whether a direct jump to `dest` may use `goto_tb` (QEMU's `translator_use_goto_tb`): only inside the
    /// TB's first page, because a link is never revalidated against the guest's page mapping.
    pub fn use_goto_tb(&self, dest: u64) -> bool {
        self.is_same_page(dest)
    }

    /// Bytes translated so far.
    pub fn size(&self) -> u64 {
        self.pc_next.wrapping_sub(self.key.pc)
    }
}

/// The target's translation hooks (QEMU's `TranslatorOps`), called by [`translator_loop`] in this order:
/// `init_disas_context`, `tb_start`, then for each instruction `insn_start` and `translate_insn`, then
/// `tb_stop`.
pub trait TranslatorOps {
    /// Sets up the target's context from `db` (mode, privilege, ...); may lower `db.max_insns`.
    fn init_disas_context(&mut self, _db: &mut DisasBase, _f: &mut Func) {}

    /// Emits code at the start of the TB (after the loop's exit check).
    fn tb_start(&mut self, _db: &mut DisasBase, _f: &mut Func) {}

    /// Emits exactly one `insn_start` for the instruction at `db.pc_next`, with the words
    /// [`crate::CpuOps::restore_state_to_opc`] reads back.
    fn insn_start(&mut self, db: &mut DisasBase, f: &mut Func);

    /// Translates the instruction at `db.pc_next`, advances `pc_next` past it and sets `db.is_jmp` when it
    /// ends the TB. If fetching it faults: on the TB's first instruction, record the exception and return
    /// [`TranslateError::Fault`] (or emit code that raises it); on a later one, leave `pc_next` where it is
    /// and set `is_jmp` to [`DisasJump::TooMany`], so the TB ends before it and the next TB faults at its
    /// start.
    fn translate_insn(&mut self, db: &mut DisasBase, f: &mut Func) -> Result<(), TranslateError>;

    /// Ends the TB according to `db.is_jmp` (for `TooMany`: store `pc_next` as the pc and `goto_tb` or
    /// `exit_tb`).
    fn tb_stop(&mut self, db: &mut DisasBase, f: &mut Func);

    /// The guest instructions of the TB just translated (`db.key.pc`, `db.size()` bytes), one per line with
    /// its address, for `-d in_asm` (QEMU's `disas_log`). Called only when that item is on. `None` (the
    /// default) logs the TB's address and size only.
    fn disas_log(&mut self, _db: &DisasBase) -> Option<String> {
        None
    }
}

/// Translates one TB: calls the hooks, stops after `db.max_insns` instructions or when the next instruction
/// would start beyond the first page, and, when `exit_word` is the offset of the CPU state's exit word
/// ([`crate::CpuOps::exit_word_offset`]), starts the TB with the exit check: count the low half down and
/// leave with [`EXIT_REQUESTED`] when the word goes negative.
pub fn translator_loop(
    ops: &mut dyn TranslatorOps,
    db: &mut DisasBase,
    f: &mut Func,
    exit_word: Option<i32>,
) -> Result<(), TranslateError> {
    ops.init_disas_context(db, f);
    if let Some(offset) = exit_word {
        let (word, one, zero) = (
            f.new_temp(Type::I32),
            f.constant(Type::I32, 1),
            f.constant(Type::I32, 0),
        );
        let label = f.new_label();
        let env = f.env();
        f.load(Opcode::Ld, word, env, offset);
        f.sub(word, word, one);
        f.store(Opcode::St16, word, env, offset);
        f.brcond(Cond::Lt, word, zero, label);
        db.exit_label = Some(label);
    }
    ops.tb_start(db, f);
    loop {
        db.num_insns += 1;
        ops.insn_start(db, f);
        let before = db.pc_next;
        ops.translate_insn(db, f)?;
        if db.is_jmp != DisasJump::Next {
            break;
        }
        if db.pc_next == before {
            return Err(TranslateError::Other(format!(
                "translate_insn at {before:#x} did not advance pc_next"
            )));
        }
        if db.num_insns >= db.max_insns || !db.is_same_page(db.pc_next) {
            db.is_jmp = DisasJump::TooMany;
            break;
        }
    }
    ops.tb_stop(db, f);
    if let Some(label) = db.exit_label.take() {
        f.set_label(label);
        f.exit_tb(EXIT_REQUESTED);
    }
    if log::enabled(LogMask::IN_ASM) {
        log_in_asm(ops, db);
    }
    Ok(())
}

/// The `-d in_asm` block of a TB, QEMU's layout: a rule, `IN:`, the instructions, a blank line.
#[cold]
fn log_in_asm(ops: &mut dyn TranslatorOps, db: &DisasBase) {
    let listing = ops.disas_log(db).unwrap_or_else(|| {
        format!(
            "0x{:016x}:  {} bytes, {} instructions (no disassembler)\n",
            db.key.pc,
            db.size(),
            db.num_insns
        )
    });
    log::log(LogMask::IN_ASM, &format!("----------------\nIN:\n{listing}\n"));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rqemu_tcg::TargetDesc;

    use super::*;

    /// One-byte instructions that do nothing; `stuck` makes `translate_insn` forget to advance.
    struct Nops {
        stuck: bool,
        calls: Vec<&'static str>,
    }

    impl TranslatorOps for Nops {
        fn insn_start(&mut self, db: &mut DisasBase, f: &mut Func) {
            self.calls.push("insn_start");
            f.insn_start([db.pc_next, 0, 0]);
        }
        fn translate_insn(&mut self, db: &mut DisasBase, _f: &mut Func) -> Result<(), TranslateError> {
            self.calls.push("translate_insn");
            if !self.stuck {
                db.pc_next += 1;
            }
            Ok(())
        }
        fn tb_stop(&mut self, db: &mut DisasBase, f: &mut Func) {
            self.calls.push("tb_stop");
            assert_eq!(db.is_jmp, DisasJump::TooMany);
            f.exit_tb(0);
        }
    }

    fn run(
        pc: u64,
        max: u32,
        stuck: bool,
        exit_word: Option<i32>,
    ) -> (Result<(), TranslateError>, DisasBase, Nops, Func) {
        let mut f = Func::new(Arc::new(TargetDesc::new(0)));
        let mut db = DisasBase::new(TbKey { pc, ..TbKey::default() }, max, 12);
        let mut ops = Nops {
            stuck,
            calls: Vec::new(),
        };
        let r = translator_loop(&mut ops, &mut db, &mut f, exit_word);
        (r, db, ops, f)
    }

    #[test]
    fn the_loop_stops_at_the_limit_and_at_the_page_end() {
        let (r, db, ops, f) = run(0x1000, 3, false, None);
        assert_eq!((r, db.num_insns, db.size()), (Ok(()), 3, 3));
        assert_eq!(ops.calls.len(), 7);
        assert!(rqemu_tcg::verify::verify(&f).is_ok());
        let (_, db, _, _) = run(0x1ffe, 512, false, None);
        assert_eq!((db.num_insns, db.pc_next), (2, 0x2000));
        assert!(db.use_goto_tb(0x1000) && !db.use_goto_tb(0x2000));
    }

    #[test]
    fn the_exit_check_is_valid_ir_and_a_stuck_frontend_is_an_error() {
        let (r, _, _, mut f) = run(0x1000, 4, false, Some(8));
        assert_eq!(r, Ok(()));
        assert_eq!(f.ops.iter().filter(|o| o.opc == Opcode::ExitTb).count(), 2);
        assert!(rqemu_tcg::prepare::prepare(&mut f).is_ok());
        let (r, _, _, _) = run(0x1000, 4, true, None);
        assert!(matches!(r, Err(TranslateError::Other(m)) if m.contains("did not advance")));
    }
}
