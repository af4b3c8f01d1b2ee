//! Which RFLAGS bits (and, in a few cases, which destination) the Intel SDM vol. 2 and the AMD APM vol. 3 leave
//! undefined, per instruction: the one table the comparison masks with. Comparing lives in `compare.rs`.
//!
//! "Undefined" means a real CPU may leave any value there, so the emulator's value is not compared; "unaffected"
//! is *not* undefined (the flag must keep its value and is compared).
//!
//! | mnemonics | undefined | notes |
//! |---|---|---|
//! | ADD ADC SUB SBB CMP NEG XADD CMPXCHG | none | all six status flags defined |
//! | AND OR XOR TEST | AF | OF, CF cleared; SF, ZF, PF from the result |
//! | INC DEC | none | CF unaffected |
//! | NOT, MOVZX MOVSX MOVSXD, SETcc CMOVcc, LEA, BSWAP, XCHG | none | no flag affected |
//! | SHL SHR SAR | masked count 0: none (flags unaffected); otherwise AF, plus OF if the masked count is > 1, plus CF (SHL, SHR only) if the masked count >= the operand width | count masked to 5 bits (6 with REX.W) |
//! | ROL ROR RCL RCR | masked count 0: none; otherwise OF if the masked count is > 1 | SF ZF AF PF unaffected |
//! | SHLD SHRD | masked count 0: none; masked count >= width (16-bit forms only): all six and the destination; otherwise AF, plus OF if the count is > 1 | |
//! | MUL IMUL | SF ZF AF PF | CF, OF defined |
//! | DIV IDIV | CF OF SF ZF AF PF | all six |
//! | BT BTS BTR BTC | OF SF AF PF | CF defined, ZF unaffected |
//! | BSF BSR | CF OF SF AF PF; the destination too when the source is 0 | ZF defined |
//! | SAL | as SHL | D0-D3 /6, an alias of SHL |
//! | POPCNT | none | all six defined (ZF from the source, the rest cleared) |
//! | LZCNT TZCNT | OF SF AF PF | CF, ZF defined |
//! | ANDN BLSI BLSMSK BLSR BZHI | AF PF | |
//! | BEXTR | AF SF PF | |
//! | AAA AAS (32-bit code) | OF SF ZF PF | CF, AF defined |
//! | DAA DAS (32-bit code) | OF | |
//! | AAM AAD (32-bit code) | OF AF CF | SF, ZF, PF from AL; AAM 0 raises #DE |
//! | BOUND INTO (32-bit code) | none | no flag affected |
//! | ARPL (32-bit code) | none | ZF defined, the rest unaffected |
//! | CMPXCHG8B CMPXCHG16B, SAHF, POPF, CLC STC CMC CLD STD, CMPS SCAS | none | |
//! | MULX PDEP PEXT RORX SARX SHLX SHRX, MOVBE, moves, stack, branches, x87 control | none | no flag affected |
//! | COMISS UCOMISS COMISD UCOMISD, FCOMI FCOMIP FUCOMI FUCOMIP | none | ZF PF CF from the comparison, OF SF AF cleared |
//! | PTEST | none | ZF CF defined, the rest cleared |
//! | PCMPESTRI PCMPESTRM PCMPISTRI PCMPISTRM | none | CF ZF SF OF defined, AF PF cleared |
//! | the other MMX, SSE and x87 instructions | none | no RFLAGS bit affected (x87 C0..C3 are FSW bits, compared exactly) |
//!
//! For SHLD/SHRD the manuals say "greater than the operand size"; a count equal to 16 on a 16-bit form is treated
//! as undefined too, conservatively. For BSF/BSR with a zero source Intel says the destination is undefined
//! (AMD: unchanged); the whole 64-bit register is then masked.

use crate::state::{flags::*, CpuState, SCRATCH_ADDR, SCRATCH_LEN};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};

/// How an instruction's undefined flags are decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagRule {
    /// The same undefined set whatever the operands.
    Fixed(u64),
    /// SHL SHR SAR; `cf_at_width`: CF is undefined when the count reaches the width (SHL, SHR).
    Shift { cf_at_width: bool },
    /// ROL ROR RCL RCR.
    Rotate,
    /// SHLD SHRD.
    DoubleShift,
    /// BSF BSR.
    BitScan,
}

/// The table (see the module doc), one row per mnemonic the generator produces.
pub const TABLE: &[(Mnemonic, FlagRule)] = {
    use FlagRule::*;
    use Mnemonic as M;
    &[
        (M::Add, Fixed(0)),
        (M::Adc, Fixed(0)),
        (M::Sub, Fixed(0)),
        (M::Sbb, Fixed(0)),
        (M::Cmp, Fixed(0)),
        (M::Neg, Fixed(0)),
        (M::Xadd, Fixed(0)),
        (M::Cmpxchg, Fixed(0)),
        (M::And, Fixed(AF)),
        (M::Or, Fixed(AF)),
        (M::Xor, Fixed(AF)),
        (M::Test, Fixed(AF)),
        (M::Inc, Fixed(0)),
        (M::Dec, Fixed(0)),
        (M::Not, Fixed(0)),
        (M::Shl, Shift { cf_at_width: true }),
        (M::Shr, Shift { cf_at_width: true }),
        (M::Sar, Shift { cf_at_width: false }),
        (M::Rol, Rotate),
        (M::Ror, Rotate),
        (M::Rcl, Rotate),
        (M::Rcr, Rotate),
        (M::Shld, DoubleShift),
        (M::Shrd, DoubleShift),
        (M::Mul, Fixed(SF | ZF | AF | PF)),
        (M::Imul, Fixed(SF | ZF | AF | PF)),
        (M::Div, Fixed(STATUS)),
        (M::Idiv, Fixed(STATUS)),
        (M::Bt, Fixed(OF | SF | AF | PF)),
        (M::Bts, Fixed(OF | SF | AF | PF)),
        (M::Btr, Fixed(OF | SF | AF | PF)),
        (M::Btc, Fixed(OF | SF | AF | PF)),
        (M::Bsf, BitScan),
        (M::Bsr, BitScan),
        (M::Sal, Shift { cf_at_width: true }),
        (M::Popcnt, Fixed(0)),
        (M::Lzcnt, Fixed(OF | SF | AF | PF)),
        (M::Tzcnt, Fixed(OF | SF | AF | PF)),
        (M::Andn, Fixed(AF | PF)),
        (M::Bextr, Fixed(AF | SF | PF)),
        (M::Blsi, Fixed(AF | PF)),
        (M::Blsmsk, Fixed(AF | PF)),
        (M::Blsr, Fixed(AF | PF)),
        (M::Bzhi, Fixed(AF | PF)),
        (M::Cmpxchg8b, Fixed(0)),
        (M::Cmpxchg16b, Fixed(0)),
        (M::Sahf, Fixed(0)),
        (M::Popf, Fixed(0)),
        (M::Popfq, Fixed(0)),
        (M::Clc, Fixed(0)),
        (M::Stc, Fixed(0)),
        (M::Cmc, Fixed(0)),
        (M::Cld, Fixed(0)),
        (M::Std, Fixed(0)),
        (M::Cmpsb, Fixed(0)),
        (M::Cmpsw, Fixed(0)),
        (M::Cmpsd, Fixed(0)),
        (M::Cmpsq, Fixed(0)),
        (M::Scasb, Fixed(0)),
        (M::Scasw, Fixed(0)),
        (M::Scasd, Fixed(0)),
        (M::Scasq, Fixed(0)),
        (M::Popfd, Fixed(0)),
        (M::Aaa, Fixed(OF | SF | ZF | PF)),
        (M::Aas, Fixed(OF | SF | ZF | PF)),
        (M::Daa, Fixed(OF)),
        (M::Das, Fixed(OF)),
        (M::Aam, Fixed(OF | AF | CF)),
        (M::Aad, Fixed(OF | AF | CF)),
        (M::Bound, Fixed(0)),
        (M::Arpl, Fixed(0)),
        (M::Into, Fixed(0)),
        (M::Comiss, Fixed(0)),
        (M::Ucomiss, Fixed(0)),
        (M::Comisd, Fixed(0)),
        (M::Ucomisd, Fixed(0)),
        (M::Fcomi, Fixed(0)),
        (M::Fcomip, Fixed(0)),
        (M::Fucomi, Fixed(0)),
        (M::Fucomip, Fixed(0)),
        (M::Ptest, Fixed(0)),
        (M::Pcmpestri, Fixed(0)),
        (M::Pcmpestri64, Fixed(0)),
        (M::Pcmpestrm, Fixed(0)),
        (M::Pcmpestrm64, Fixed(0)),
        (M::Pcmpistri, Fixed(0)),
        (M::Pcmpistrm, Fixed(0)),
    ]
};

/// The rule for `m`; mnemonics not in the table (moves, SETcc, CMOVcc, LEA, BSWAP, XCHG, ...) define everything.
pub fn rule(m: Mnemonic) -> FlagRule {
    TABLE
        .iter()
        .find(|(n, _)| *n == m)
        .map_or(FlagRule::Fixed(0), |(_, r)| *r)
}

/// What is not compared after one instruction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Undefined {
    /// RFLAGS bits.
    pub flags: u64,
    /// A general-purpose register (by number) whose whole value is undefined.
    pub gpr: Option<usize>,
    /// The memory destination is undefined (SHLD/SHRD with a bad count on memory).
    pub mem_dest: bool,
}

impl Undefined {
    pub fn union(self, other: Undefined) -> Undefined {
        Undefined {
            flags: self.flags | other.flags,
            gpr: self.gpr.or(other.gpr),
            mem_dest: self.mem_dest || other.mem_dest,
        }
    }
}

/// Width in bits of operand `op` of `insn` (register or memory).
fn operand_width(insn: &Instruction, op: u32) -> u32 {
    match insn.op_kind(op) {
        OpKind::Register => crate::generate::reg_width(insn.op_register(op)),
        OpKind::Memory => insn.memory_size().size() as u32 * 8,
        _ => 0,
    }
}

/// The 64-bit register number holding `r` and the bit position of its low bit (8 for AH..BH); `None` if `r` is
/// not a general-purpose register.
fn gpr_slot(r: Register) -> Option<(usize, u32)> {
    use Register::*;
    let shift = if matches!(r, AH | CH | DH | BH) { 8 } else { 0 };
    crate::generate::gpr_number(r).map(|n| (n, shift))
}

/// The general-purpose register (by number) operand 0 of `insn` names, if any.
fn dest_register(insn: &Instruction) -> Option<usize> {
    if insn.op_count() > 0 && insn.op_kind(0) == OpKind::Register {
        gpr_slot(insn.op_register(0)).map(|(n, _)| n)
    } else {
        None
    }
}

/// The value of operand `op` of `insn` in `state` (zero-extended to 64 bits); memory outside the scratch area
/// reads as 0.
pub fn operand_value(insn: &Instruction, op: u32, state: &CpuState) -> u64 {
    let width = operand_width(insn, op);
    let mask = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
    match insn.op_kind(op) {
        OpKind::Register => match gpr_slot(insn.op_register(op)) {
            Some((n, shift)) => (state.gpr[n] >> shift) & mask,
            None => 0,
        },
        OpKind::Memory => {
            let reg = |r: Register| gpr_slot(r).map_or(0, |(n, _)| state.gpr[n]);
            let ea = reg(insn.memory_base())
                .wrapping_add(reg(insn.memory_index()).wrapping_mul(insn.memory_index_scale() as u64))
                .wrapping_add(insn.memory_displacement64());
            // 32-bit addresses (32-bit code, or a 0x67 prefix in 64-bit code) wrap at 4 GiB; 16-bit ones (16-bit
            // code, whose data segments are based at SCRATCH_ADDR) at 64 KiB.
            let (base, index) = (insn.memory_base(), insn.memory_index());
            let addr16 = insn.code_size() == iced_x86::CodeSize::Code16 && !base.is_gpr32() && !index.is_gpr32();
            let addr32 = insn.code_size() == iced_x86::CodeSize::Code32 || base.is_gpr32() || index.is_gpr32();
            let ea = if addr16 {
                SCRATCH_ADDR + (ea & 0xffff)
            } else if addr32 {
                ea & 0xffff_ffff
            } else {
                ea
            };
            let off = ea.wrapping_sub(SCRATCH_ADDR) as usize;
            let bytes = (width / 8) as usize;
            if off.checked_add(bytes).is_some_and(|end| end <= SCRATCH_LEN) {
                state.mem[off..off + bytes]
                    .iter()
                    .rev()
                    .fold(0, |acc, b| acc << 8 | *b as u64)
            } else {
                0
            }
        }
        OpKind::Immediate8 | OpKind::Immediate8_2nd => insn.immediate8() as u64,
        _ => insn.immediate(op) & mask,
    }
}

/// The undefined flags (and destination) of `insn` executed on `before`.
pub fn undefined(insn: &Instruction, before: &CpuState) -> Undefined {
    let width = operand_width(insn, 0);
    let count_mask = if width == 64 { 0x3f } else { 0x1f };
    let dest_gpr = || dest_register(insn);
    let flags_only = |flags| Undefined {
        flags,
        ..Undefined::default()
    };
    match rule(insn.mnemonic()) {
        FlagRule::Fixed(f) => flags_only(f),
        FlagRule::Shift { cf_at_width } => {
            let count = operand_value(insn, 1, before) & count_mask;
            match count {
                0 => flags_only(0),
                1 => flags_only(AF),
                c => flags_only(AF | OF | if cf_at_width && c >= width as u64 { CF } else { 0 }),
            }
        }
        FlagRule::Rotate => {
            let count = operand_value(insn, 1, before) & count_mask;
            flags_only(if count > 1 { OF } else { 0 })
        }
        FlagRule::DoubleShift => {
            let count = operand_value(insn, 2, before) & count_mask;
            match count {
                0 => flags_only(0),
                c if c >= width as u64 => Undefined {
                    flags: STATUS,
                    gpr: dest_gpr(),
                    mem_dest: insn.op_kind(0) == OpKind::Memory,
                },
                1 => flags_only(AF),
                _ => flags_only(AF | OF),
            }
        }
        FlagRule::BitScan => {
            let flags = CF | OF | SF | AF | PF;
            if operand_value(insn, 1, before) == 0 {
                Undefined {
                    flags,
                    gpr: dest_gpr(),
                    mem_dest: false,
                }
            } else {
                flags_only(flags)
            }
        }
    }
}

/// The most that `insn` can leave undefined whatever its operands (used for instructions after the first of a
/// sequence, whose input state is not known).
pub fn worst_case(insn: &Instruction) -> Undefined {
    let dest_gpr = dest_register(insn);
    match rule(insn.mnemonic()) {
        FlagRule::Fixed(f) => Undefined {
            flags: f,
            ..Undefined::default()
        },
        FlagRule::Shift { .. } => Undefined {
            flags: AF | OF | CF,
            ..Undefined::default()
        },
        FlagRule::Rotate => Undefined {
            flags: OF,
            ..Undefined::default()
        },
        FlagRule::DoubleShift => {
            let bad_count = operand_width(insn, 0) == 16;
            Undefined {
                flags: if bad_count { STATUS } else { AF | OF },
                gpr: if bad_count { dest_gpr } else { None },
                mem_dest: bad_count && insn.op_kind(0) == OpKind::Memory,
            }
        }
        FlagRule::BitScan => Undefined {
            flags: CF | OF | SF | AF | PF,
            gpr: dest_gpr,
            mem_dest: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::Family;
    use crate::state::CODE_ADDR;
    use iced_x86::Decoder;

    fn decode(bytes: &[u8]) -> Instruction {
        Decoder::with_ip(64, bytes, CODE_ADDR, 0).decode()
    }

    #[test]
    fn every_generated_flag_writer_has_a_row() {
        use Mnemonic as M;
        let flagless = [M::Not, M::Movzx, M::Movsx, M::Movsxd, M::Lea, M::Bswap, M::Xchg];
        // Families whose mnemonics write no status flag except those with a row (checked below by name).
        let no_flags: Vec<Family> = [
            Family::Stack,
            Family::String,
            Family::Branch,
            Family::SseMove,
            Family::X87Control,
        ]
        .into_iter()
        .chain(crate::generate::FP_SIMD_FAMILIES)
        .collect();
        let writers = [
            M::Popcnt,
            M::Lzcnt,
            M::Tzcnt,
            M::Cmpxchg8b,
            M::Cmpxchg16b,
            M::Sahf,
            M::Popf,
            M::Popfq,
        ];
        for w in writers
            .iter()
            .chain(&[M::Andn, M::Bextr, M::Blsi, M::Blsmsk, M::Blsr, M::Bzhi, M::Sal])
            .chain(&[
                M::Comiss,
                M::Ucomisd,
                M::Fcomi,
                M::Fucomip,
                M::Ptest,
                M::Pcmpistri,
                M::Pcmpestrm64,
            ])
        {
            assert!(TABLE.iter().any(|(n, _)| n == w), "{w:?} has no row");
        }
        for f in Family::ALL
            .iter()
            .filter(|f| !no_flags.contains(f) && ![Family::Misc, Family::Bmi].contains(f))
        {
            for m in f.mnemonics() {
                let in_table = TABLE.iter().any(|(n, _)| n == m);
                let conditional = format!("{m:?}").starts_with("Set") || format!("{m:?}").starts_with("Cmov");
                assert!(in_table || flagless.contains(m) || conditional, "{m:?} has no row");
            }
        }
    }

    #[test]
    fn shift_rules_follow_the_count() {
        let mut s = CpuState::default();
        // shl eax, cl
        let shl = decode(&[0xd3, 0xe0]);
        s.gpr[1] = 0;
        assert_eq!(undefined(&shl, &s).flags, 0);
        s.gpr[1] = 1;
        assert_eq!(undefined(&shl, &s).flags, AF);
        s.gpr[1] = 33; // masked to 1
        assert_eq!(undefined(&shl, &s).flags, AF);
        s.gpr[1] = 5;
        assert_eq!(undefined(&shl, &s).flags, AF | OF);
        // shl al, 9: count >= width, CF undefined too
        let shl8 = decode(&[0xc0, 0xe0, 0x09]);
        assert_eq!(undefined(&shl8, &s).flags, AF | OF | CF);
        // shld ax, bx, 17: destination and all flags undefined
        let shld = decode(&[0x66, 0x0f, 0xa4, 0xd8, 0x11]);
        assert_eq!(
            undefined(&shld, &s),
            Undefined {
                flags: STATUS,
                gpr: Some(0),
                mem_dest: false
            }
        );
        // rcl eax, 1
        assert_eq!(undefined(&decode(&[0xd1, 0xd0]), &s).flags, 0);
    }

    #[test]
    fn bit_scan_destination_undefined_only_for_zero_source() {
        let mut s = CpuState::default();
        let bsf = decode(&[0x48, 0x0f, 0xbc, 0xc3]); // bsf rax, rbx
        assert_eq!(undefined(&bsf, &s).gpr, Some(0));
        s.gpr[3] = 8;
        assert_eq!(undefined(&bsf, &s).gpr, None);
        assert_eq!(undefined(&bsf, &s).flags, CF | OF | SF | AF | PF);
    }
}
