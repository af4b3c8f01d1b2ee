//! Hand-built cases for the families whose instructions need more than operand filling: the stack (push/pop,
//! pushf/popf, leave, enter, call/ret), string instructions, branches and loops, xlat, and the x87 control
//! instructions. Each snippet starts the case and ends it (a sequence never continues after one), so the state it
//! sets up (RSP, RBP, RSI, RDI, RCX, RBX, the stack bytes) cannot be disturbed by an earlier instruction.
//!
//! Invariants every snippet keeps, on top of the generator's (see `generate.rs`):
//! - RSP starts at `SCRATCH_STACK_TOP` and stays inside the scratch page: at most a few pushes below it, pops and
//!   `ret imm16` at most 0x20 bytes above it; `leave`/`enter` get an RBP inside the stack area;
//! - control flow only goes forward to a later instruction of the case or exactly to the terminator; skipped
//!   bytes are `ud2`, so a wrongly taken or not-taken branch shows as #UD at a different RIP. The only backward
//!   branches are `loop`/`loope`/`loopne` over a one-instruction body with a count of 1..=8 (never 0, which would
//!   run 2^64 times natively);
//! - string instructions get RCX 0..=8 with rep (ECX with 0x67, random upper half) and RSI/RDI such that every
//!   element they may touch, in either direction, lies in the scratch data area;
//! - x87 snippets start and end with `fninit`, so the x87 state (not part of a case's compared state) is the same
//!   default on both sides before and after;
//! - `popf` never sets TF (a trap after every instruction) and never changes IF or IOPL (user mode natively cannot,
//!   rqemu acts as CPL 0).

use super::{bare_instruction, edge_value, Fill};
use crate::state::{flags, CODE_ADDR, SCRATCH_ADDR, SCRATCH_DATA_LEN, SCRATCH_LEN, SCRATCH_STACK_TOP};
use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Mnemonic, OpCodeOperandKind as K, Register};

/// `ud2`: the filler skipped by forward branches.
const UD2: [u8; 2] = [0x0f, 0x0b];
/// Offset of the stack top in the scratch buffer.
const STACK_OFF: usize = (SCRATCH_STACK_TOP - SCRATCH_ADDR) as usize;

/// Whether `m` is generated only by a snippet (never by operand filling).
pub(super) fn is_snippet_mnemonic(m: Mnemonic) -> bool {
    use super::Family;
    [Family::Stack, Family::String, Family::Branch, Family::X87Control]
        .iter()
        .any(|f| f.mnemonics().contains(&m))
        || m == Mnemonic::Xlatb
}

/// Whether a snippet can be built around `code` (a code of a snippet mnemonic) in code of `bitness` bits. 16-bit
/// branch forms (66-prefixed jcc/jmp/call/ret/loop) are left out: Intel ignores the prefix in 64-bit mode, AMD
/// truncates RIP to 16 bits (in 32-bit code they truncate EIP, leaving the code page). Far forms and
/// segment-register push/pop raise #UD in rqemu (segmentation is the system issue). In 32-bit code jcxz and the CX
/// forms of loop (address-size prefix: the count is CX) are generated; string instructions get no address-size
/// prefix there (it would mean 16-bit SI/DI).
pub(super) fn handles(code: Code, bitness: u32) -> bool {
    if bitness == 32 {
        return handles32(code);
    }
    use Code as C;
    let name = format!("{code:?}");
    match code.mnemonic() {
        Mnemonic::Push | Mnemonic::Pop => {
            !["ES", "CS", "SS", "DS", "FS", "GS"].iter().any(|s| name.ends_with(s)) && !name.contains("imm8")
                || matches!(code, C::Pushq_imm8 | C::Pushw_imm8)
        }
        Mnemonic::Pushf | Mnemonic::Pushfq | Mnemonic::Popf | Mnemonic::Popfq => !name.ends_with('d'),
        Mnemonic::Leave => matches!(code, C::Leavew | C::Leaveq),
        Mnemonic::Enter => matches!(code, C::Enterw_imm16_imm8 | C::Enterq_imm16_imm8),
        Mnemonic::Call => matches!(code, C::Call_rel32_64 | C::Call_rm64),
        Mnemonic::Ret => matches!(code, C::Retnq | C::Retnq_imm16),
        Mnemonic::Jmp => matches!(code, C::Jmp_rel8_64 | C::Jmp_rel32_64 | C::Jmp_rm64),
        Mnemonic::Jrcxz | Mnemonic::Jecxz => name.contains("_64"),
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne => name.contains("_64_"),
        Mnemonic::Xlatb => code == C::Xlat_m8,
        // The string forms only: movsd/cmpsd are also SSE2 mnemonics (movsd xmm, xmm/m64).
        m if super::Family::String.mnemonics().contains(&m) => code
            .op_code()
            .op_kinds()
            .iter()
            .any(|k| matches!(k, K::es_rDI | K::seg_rSI)),
        m if super::Family::X87Control.mnemonics().contains(&m) => true,
        // jcc
        _ => name.ends_with("_rel8_64") || name.ends_with("_rel32_64"),
    }
}

/// [`handles`] for 32-bit code.
fn handles32(code: Code) -> bool {
    use Code as C;
    let name = format!("{code:?}");
    match code.mnemonic() {
        Mnemonic::Push | Mnemonic::Pop => {
            !["ES", "CS", "SS", "DS", "FS", "GS"].iter().any(|s| name.ends_with(s)) && !name.contains("imm8")
                || matches!(code, C::Pushd_imm8 | C::Pushw_imm8)
        }
        Mnemonic::Pushf | Mnemonic::Pushfd | Mnemonic::Popf | Mnemonic::Popfd => true,
        Mnemonic::Pusha | Mnemonic::Pushad | Mnemonic::Popa | Mnemonic::Popad => true,
        Mnemonic::Leave => matches!(code, C::Leavew | C::Leaved),
        Mnemonic::Enter => matches!(code, C::Enterw_imm16_imm8 | C::Enterd_imm16_imm8),
        Mnemonic::Call => matches!(code, C::Call_rel32_32 | C::Call_rm32),
        Mnemonic::Ret => matches!(code, C::Retnd | C::Retnd_imm16),
        Mnemonic::Jmp => matches!(code, C::Jmp_rel8_32 | C::Jmp_rel32_32 | C::Jmp_rm32),
        Mnemonic::Jecxz => code == C::Jecxz_rel8_32,
        // 0x67 E3 / 0x67 E2..E0: the count is CX, the target still 32-bit.
        Mnemonic::Jcxz => code == C::Jcxz_rel8_32,
        Mnemonic::Jrcxz => false,
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne => name.ends_with("_32_ECX") || name.ends_with("_32_CX"),
        Mnemonic::Xlatb => code == C::Xlat_m8,
        m if super::Family::String.mnemonics().contains(&m) => code
            .op_code()
            .op_kinds()
            .iter()
            .any(|k| matches!(k, K::es_rDI | K::seg_rSI)),
        m if super::Family::X87Control.mnemonics().contains(&m) => true,
        // jcc
        _ => name.ends_with("_rel8_32") || name.ends_with("_rel32_32"),
    }
}

/// The code of `bitness` bits: `c64` in 64-bit code, `c32` in 32-bit code.
fn by_mode(fill: &Fill, c64: Code, c32: Code) -> Code {
    if fill.bitness == 64 {
        c64
    } else {
        c32
    }
}

/// Instruction bytes placed from `CODE_ADDR` on, encoded for code of `bitness` bits.
struct Asm {
    bytes: Vec<u8>,
    bitness: u32,
}

impl Asm {
    fn ip(&self) -> u64 {
        CODE_ADDR + self.bytes.len() as u64
    }

    fn emit(&mut self, insn: &Instruction) -> Option<()> {
        let mut e = Encoder::new(self.bitness);
        e.encode(insn, self.ip()).ok()?;
        self.bytes.extend(e.take_buffer());
        Some(())
    }

    /// The encoded length of `insn` at the current position.
    fn len_of(&self, insn: &Instruction) -> Option<u64> {
        let mut e = Encoder::new(self.bitness);
        e.encode(insn, self.ip()).ok().map(|n| n as u64)
    }

    fn ud2s(&mut self, k: u64) {
        for _ in 0..k {
            self.bytes.extend(UD2);
        }
    }
}

/// Builds the snippet for `code`; `None` if this draw cannot be encoded (the caller retries).
pub(super) fn build(fill: &mut Fill, code: Code) -> Option<Vec<u8>> {
    let mut asm = Asm {
        bytes: Vec::new(),
        bitness: fill.bitness,
    };
    let m = code.mnemonic();
    match m {
        Mnemonic::Push | Mnemonic::Pop => push_pop(fill, &mut asm, code)?,
        Mnemonic::Pushf | Mnemonic::Pushfq | Mnemonic::Pushfd => {
            if fill.rng.one_in(4) {
                fill.state.rflags |= flags::DF;
            }
            asm.emit(&bare_instruction(code))?;
        }
        Mnemonic::Popf | Mnemonic::Popfq | Mnemonic::Popfd => {
            let v = popf_value(fill);
            fill.state.mem[STACK_OFF..STACK_OFF + 8].copy_from_slice(&v.to_le_bytes());
            asm.emit(&bare_instruction(code))?;
        }
        Mnemonic::Leave | Mnemonic::Enter => frame(fill, &mut asm, code)?,
        Mnemonic::Pusha | Mnemonic::Pushad | Mnemonic::Popa | Mnemonic::Popad => {
            // popa reads the 16 or 32 bytes above the stack top (up to the end of the scratch bytes).
            random_bytes(fill, STACK_OFF, SCRATCH_LEN - STACK_OFF);
            asm.emit(&bare_instruction(code))?;
        }
        Mnemonic::Call => call(fill, &mut asm, code)?,
        Mnemonic::Ret => ret(fill, &mut asm, code)?,
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne if fill.rng.one_in(2) => {
            backward_loop(fill, &mut asm, code)?
        }
        Mnemonic::Xlatb => xlat(fill, &mut asm)?,
        _ if super::Family::String.mnemonics().contains(&m) => string(fill, &mut asm, code)?,
        _ if super::Family::X87Control.mnemonics().contains(&m) => x87(fill, &mut asm, code)?,
        _ => forward_branch(fill, &mut asm, code)?,
    }
    Some(asm.bytes)
}

fn random_bytes(fill: &mut Fill, off: usize, len: usize) {
    for i in off..(off + len).min(SCRATCH_LEN) {
        fill.state.mem[i] = fill.rng.next_u64() as u8;
    }
}

/// A register of the pool (not RSP, not reserved for addressing), other than `avoid`.
fn pool_reg(fill: &mut Fill, avoid: &[usize]) -> usize {
    loop {
        let n = fill.rng.pick(&fill.pool);
        if !avoid.contains(&n) {
            return n;
        }
    }
}

/// push/pop of a register, memory or immediate; sometimes `push rsp` / `pop rsp`.
fn push_pop(fill: &mut Fill, asm: &mut Asm, code: Code) -> Option<()> {
    random_bytes(fill, STACK_OFF, 8);
    let insn = match code {
        // RSP-relative memory: push reads its operand before RSP moves, pop writes it with RSP already moved.
        Code::Push_rm16 | Code::Push_rm32 | Code::Push_rm64 | Code::Pop_rm16 | Code::Pop_rm32 | Code::Pop_rm64
            if fill.rng.one_in(4) =>
        {
            random_bytes(fill, 0xc0, SCRATCH_LEN - 0xc0);
            let d = fill.rng.pick(&[-16i64, -8, -2, 0, 1, 2, 8, 16]);
            let sp = super::gpr(fill.bitness, crate::state::RSP);
            Instruction::with1(code, MemoryOperand::with_base_displ(sp, d)).ok()?
        }
        Code::Push_r64 | Code::Pop_r64 if fill.rng.one_in(8) => Instruction::with1(code, Register::RSP).ok()?,
        Code::Push_r32 | Code::Pop_r32 if fill.rng.one_in(8) => Instruction::with1(code, Register::ESP).ok()?,
        Code::Push_r16 | Code::Pop_r16 if fill.rng.one_in(8) => Instruction::with1(code, Register::SP).ok()?,
        _ => fill.instruction(code, true)?,
    };
    asm.emit(&insn)
}

/// The value `popf` pops: random, with TF clear, IF set and IOPL 0 (see the module doc); the fixed bit 1 and the
/// reserved bits are whatever the random value has, since both CPUs must ignore them.
fn popf_value(fill: &mut Fill) -> u64 {
    let iopl = 3 << 12;
    let v = match fill.rng.below(3) {
        0 => fill.rng.next_u64(),
        1 => fill.rng.next_u64() & (flags::STATUS | flags::DF),
        _ => fill.rng.next_u64() & (flags::STATUS | flags::DF | flags::AC),
    };
    (v & !(flags::TF | iopl)) | flags::IF
}

/// leave / enter with RBP inside the stack area.
fn frame(fill: &mut Fill, asm: &mut Asm, code: Code) -> Option<()> {
    let rbp_off = 0xc0 + fill.rng.below(0x31) as usize;
    fill.state.gpr[5] = SCRATCH_ADDR + rbp_off as u64;
    random_bytes(fill, 0x98, SCRATCH_LEN - 0x98);
    let insn = if code.mnemonic() == Mnemonic::Enter {
        let any = fill.rng.below(0x21) as u32;
        let size = fill.rng.pick(&[0u32, 1, 8, 0x10, 0x20, any]);
        let level = fill.rng.pick(&[0u32, 0, 1, 2, 3, 33]);
        Instruction::with2(code, size, level).ok()?
    } else {
        bare_instruction(code)
    };
    asm.emit(&insn)
}

/// call rel32 (over 0..=2 `ud2`, or to the next instruction followed by `pop reg`) and call r/m64 (the target in
/// a register, in scratch memory or on the stack).
fn call(fill: &mut Fill, asm: &mut Asm, code: Code) -> Option<()> {
    let k = fill.rng.below(3);
    if matches!(code, Code::Call_rel32_64 | Code::Call_rel32_32) {
        let target = asm.ip() + 5 + 2 * k;
        asm.emit(&Instruction::with_branch(code, target).ok()?)?;
        asm.ud2s(k);
        if fill.rng.one_in(3) {
            let r = pool_reg(fill, &[]);
            let pop = by_mode(fill, Code::Pop_r64, Code::Pop_r32);
            asm.emit(&Instruction::with1(pop, super::gpr(fill.bitness, r)).ok()?)?;
        }
        return Some(());
    }
    let (insn, store) = indirect(fill, code)?;
    let target = asm.ip() + asm.len_of(&insn)? + 2 * k;
    store.store(fill, target);
    asm.emit(&insn)?;
    asm.ud2s(k);
    Some(())
}

/// Where an indirect call/jmp finds its target: a register (by number) or memory (a scratch offset).
#[derive(Clone, Copy)]
enum TargetSlot {
    Reg(usize),
    Mem(usize),
}

impl TargetSlot {
    fn store(self, fill: &mut Fill, target: u64) {
        match self {
            TargetSlot::Reg(n) => fill.state.gpr[n] = target,
            TargetSlot::Mem(off) => {
                let n = (fill.bitness / 8) as usize;
                fill.state.mem[off..off + n].copy_from_slice(&target.to_le_bytes()[..n])
            }
        }
    }
}

/// An indirect call/jmp r/m64 and where its target goes: a register, a scratch data operand, or the stack
/// (`[rsp+d]`: call reads it before pushing).
fn indirect(fill: &mut Fill, code: Code) -> Option<(Instruction, TargetSlot)> {
    if fill.rng.one_in(4) {
        let d = fill.rng.pick(&[-8i64, 0, 8]);
        let off = (STACK_OFF as i64 + d) as usize;
        let mem = MemoryOperand::with_base_displ(super::gpr(fill.bitness, crate::state::RSP), d);
        Some((Instruction::with1(code, mem).ok()?, TargetSlot::Mem(off)))
    } else if fill.rng.one_in(2) {
        let n = pool_reg(fill, &[]);
        Some((
            Instruction::with1(code, super::gpr(fill.bitness, n)).ok()?,
            TargetSlot::Reg(n),
        ))
    } else {
        let (mem, off) = fill.memory(fill.bitness / 8)?;
        Some((Instruction::with1(code, mem).ok()?, TargetSlot::Mem(off)))
    }
}

/// ret / ret imm16: to a return address preloaded on the stack, pushed by `push imm32`, or after a call.
fn ret(fill: &mut Fill, asm: &mut Asm, code: Code) -> Option<()> {
    let any = fill.rng.below(0x19) as u32;
    let imm = fill.rng.pick(&[0u32, 1, 2, 8, 0x10, 0x18, any]);
    let with_imm = matches!(code, Code::Retnq_imm16 | Code::Retnd_imm16);
    let ret = || {
        if with_imm {
            Instruction::with1(code, imm).ok()
        } else {
            Some(bare_instruction(code))
        }
    };
    let ret_len = if with_imm { 3 } else { 1 };
    let k = fill.rng.below(3);
    random_bytes(fill, STACK_OFF, SCRATCH_LEN - STACK_OFF);
    match fill.rng.below(3) {
        0 => {
            let target = asm.ip() + ret_len + 2 * k;
            let n = (fill.bitness / 8) as usize;
            fill.state.mem[STACK_OFF..STACK_OFF + n].copy_from_slice(&target.to_le_bytes()[..n]);
            asm.emit(&ret()?)?;
            asm.ud2s(k);
        }
        1 => {
            let target = asm.ip() + 5 + ret_len + 2 * k;
            let push = by_mode(fill, Code::Pushq_imm32, Code::Pushd_imm32);
            asm.emit(&Instruction::with1(push, target as i32).ok()?)?;
            asm.emit(&ret()?)?;
            asm.ud2s(k);
        }
        _ => {
            // call L; jmp END; L: ret; END:
            let l = asm.ip() + 5 + 2;
            let end = l + ret_len;
            let call = by_mode(fill, Code::Call_rel32_64, Code::Call_rel32_32);
            let jmp = by_mode(fill, Code::Jmp_rel8_64, Code::Jmp_rel8_32);
            asm.emit(&Instruction::with_branch(call, l).ok()?)?;
            asm.emit(&Instruction::with_branch(jmp, end).ok()?)?;
            asm.emit(&ret()?)?;
        }
    }
    Some(())
}

/// A branch forward over 0..=2 `ud2` (target: the next instruction, a later one, or the terminator).
fn forward_branch(fill: &mut Fill, asm: &mut Asm, code: Code) -> Option<()> {
    let k = fill.rng.below(3);
    set_count(fill, code, false);
    if matches!(code, Code::Jmp_rm64 | Code::Jmp_rm32) {
        let (insn, store) = indirect(fill, code)?;
        let target = asm.ip() + asm.len_of(&insn)? + 2 * k;
        store.store(fill, target);
        asm.emit(&insn)?;
    } else {
        let probe = Instruction::with_branch(code, asm.ip()).ok()?;
        let target = asm.ip() + asm.len_of(&probe)? + 2 * k;
        asm.emit(&Instruction::with_branch(code, target).ok()?)?;
    }
    asm.ud2s(k);
    Some(())
}

/// RCX for jrcxz/jecxz/jcxz/loop*: zero half the time for jrcxz/jecxz/jcxz, a bounded count for a backward loop, an edge
/// value otherwise; the ECX forms get a random upper half.
fn set_count(fill: &mut Fill, code: Code, backward: bool) {
    let ecx = format!("{code:?}").contains("ECX") || code.mnemonic() == Mnemonic::Jecxz;
    let v = if backward {
        1 + fill.rng.below(8)
    } else if matches!(code.mnemonic(), Mnemonic::Jrcxz | Mnemonic::Jecxz | Mnemonic::Jcxz) && fill.rng.one_in(2) {
        0
    } else {
        edge_value(fill.rng, 64)
    };
    fill.state.gpr[1] = if ecx {
        (fill.rng.next_u64() & !0xffff_ffff) | (v & 0xffff_ffff)
    } else {
        v
    };
    if ecx && backward {
        fill.state.gpr[1] = (fill.state.gpr[1] & !0xffff_ffff) | v;
    }
}

/// `L: body; loop* L` with a count of 1..=8; the body (dec/add/cmp on a small value) sets ZF for loope/loopne.
fn backward_loop(fill: &mut Fill, asm: &mut Asm, code: Code) -> Option<()> {
    set_count(fill, code, true);
    let r = pool_reg(fill, &[0, 1, 2]);
    fill.state.gpr[r] = fill.rng.below(5);
    let reg = super::gpr(fill.bitness, r);
    let imm = fill.rng.below(4) as i32 - 1;
    let body = match fill.rng.below(3) {
        0 => Instruction::with1(by_mode(fill, Code::Dec_rm64, Code::Dec_rm32), reg).ok()?,
        1 => Instruction::with2(by_mode(fill, Code::Add_rm64_imm8, Code::Add_rm32_imm8), reg, imm).ok()?,
        _ => Instruction::with2(by_mode(fill, Code::Cmp_rm64_imm8, Code::Cmp_rm32_imm8), reg, imm).ok()?,
    };
    let top = asm.ip();
    asm.emit(&body)?;
    asm.emit(&Instruction::with_branch(code, top).ok()?)
}

/// xlat with RBX anywhere in the first 0xc0 bytes of the scratch page (the table may run past the compared bytes
/// into the rest of the page, which is zero on both sides).
fn xlat(fill: &mut Fill, asm: &mut Asm) -> Option<()> {
    let k = fill.rng.below(SCRATCH_DATA_LEN as u64 + 1) as usize;
    fill.state.gpr[3] = SCRATCH_ADDR + k as u64;
    random_bytes(fill, k, SCRATCH_LEN - k);
    fill.state.gpr[0] = (fill.state.gpr[0] & !0xff) | fill.rng.below(256);
    // D7 (iced-x86's encoder wants the implicit [rbx+al] operand spelled out; the byte is simpler).
    asm.bytes.push(0xd7);
    Some(())
}

/// One string instruction with random width-specific prefixes, direction and count.
fn string(fill: &mut Fill, asm: &mut Asm, code: Code) -> Option<()> {
    let m = code.mnemonic();
    let name = format!("{m:?}");
    let e = bare_instruction(code).memory_size().size();
    // (reads/writes [RSI], [RDI], compares: sets flags from the elements)
    let (uses_si, uses_di, compares) = match &name[..4] {
        "Movs" => (true, true, false),
        "Cmps" => (true, true, true),
        "Stos" => (false, true, false),
        "Lods" => (true, false, false),
        _ => (false, true, true),
    };
    let opcode: u8 = match &name[..4] {
        "Movs" => 0xa4,
        "Cmps" => 0xa6,
        "Stos" => 0xaa,
        "Lods" => 0xac,
        _ => 0xae,
    } + u8::from(e > 1);
    // In 32-bit code the address-size prefix would mean 16-bit addressing (SI/DI/CX): not generated.
    let addr32 = fill.rng.one_in(4) && fill.bitness == 64;
    // No prefix, rep/repe (F3) or, less often, repne (F2; on movs/stos/lods it repeats like F3).
    let rep = match fill.rng.below(8) {
        0..=2 => None,
        3..=6 => Some(0xf3u8),
        _ => Some(0xf2u8),
    };
    let n = if rep.is_some() { fill.rng.below(9) as usize } else { 1 };
    let df = fill.rng.one_in(2);
    if df {
        fill.state.rflags |= flags::DF;
    }
    let span = n.max(1) * e;
    let src_lo = fill.rng.below((SCRATCH_DATA_LEN - span + 1) as u64) as usize;
    let dst_lo = if fill.rng.one_in(3) {
        let d = src_lo as i64 + fill.rng.below(17) as i64 - 8;
        d.clamp(0, (SCRATCH_DATA_LEN - span) as i64) as usize
    } else {
        fill.rng.below((SCRATCH_DATA_LEN - span + 1) as u64) as usize
    };
    let ptr = |lo: usize| (if df { lo + (n.max(1) - 1) * e } else { lo }) as u64 + SCRATCH_ADDR;
    let upper = |f: &mut Fill| if addr32 { f.rng.next_u64() & !0xffff_ffff } else { 0 };
    random_bytes(fill, src_lo, span);
    random_bytes(fill, dst_lo, span);
    let acc = edge_value(fill.rng, (e * 8) as u32);
    fill.set_reg(0, (e * 8) as u32, acc);
    if compares && fill.rng.one_in(2) {
        // Mostly equal elements, so repe runs on and repne stops; then maybe one difference.
        for i in 0..span {
            fill.state.mem[dst_lo + i] = if uses_si {
                fill.state.mem[src_lo + i]
            } else {
                acc.to_le_bytes()[i % e]
            };
        }
        if fill.rng.one_in(2) {
            let i = fill.rng.below(span as u64) as usize;
            fill.state.mem[dst_lo + i] ^= 1 << fill.rng.below(8);
        }
    }
    if uses_si {
        fill.state.gpr[6] = upper(fill) | ptr(src_lo);
    }
    if uses_di {
        fill.state.gpr[7] = upper(fill) | ptr(dst_lo);
    }
    fill.state.gpr[1] = if rep.is_some() {
        upper(fill) | n as u64
    } else {
        fill.rng.next_u64()
    };
    let mut bytes = Vec::new();
    if addr32 {
        bytes.push(0x67);
    }
    if e == 2 {
        bytes.push(0x66);
    }
    bytes.extend(rep);
    if e == 8 {
        bytes.push(0x48);
    }
    bytes.push(opcode);
    asm.bytes.extend(bytes);
    Some(())
}

/// `fninit|finit; [fldcw m16]; <the instruction>; fninit`. Control words keep to the defined bits (and bit 6,
/// which reads as 1 on every CPU).
fn x87(fill: &mut Fill, asm: &mut Asm, code: Code) -> Option<()> {
    use Code as C;
    asm.emit(&bare_instruction(if code == C::Finit { C::Finit } else { C::Fninit }))?;
    if code == C::Fldcw_m2byte || fill.rng.one_in(2) {
        let (mem, off) = fill.memory(2)?;
        let cw = (fill.rng.next_u64() as u16 & 0x1f3f) | 0x40;
        fill.state.mem[off..off + 2].copy_from_slice(&cw.to_le_bytes());
        asm.emit(&Instruction::with1(C::Fldcw_m2byte, mem).ok()?)?;
    }
    let middle = match code {
        C::Fnstcw_m2byte
        | C::Fstcw_m2byte
        | C::Fnstsw_m2byte
        | C::Fstsw_m2byte
        | C::Fnstsw_AX
        | C::Fstsw_AX
        | C::Wait => code,
        _ => fill.rng.pick(&[
            C::Fnstcw_m2byte,
            C::Fstcw_m2byte,
            C::Fnstsw_m2byte,
            C::Fnstsw_AX,
            C::Wait,
        ]),
    };
    let insn = match middle {
        C::Fnstsw_AX | C::Fstsw_AX => Instruction::with1(middle, Register::AX).ok()?,
        C::Wait => bare_instruction(middle),
        _ => {
            let (mem, _) = fill.memory(2)?;
            Instruction::with1(middle, mem).ok()?
        }
    };
    asm.emit(&insn)?;
    asm.emit(&bare_instruction(C::Fninit))
}
