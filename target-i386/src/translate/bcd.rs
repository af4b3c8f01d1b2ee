//! The general-purpose instructions only 16- and 32-bit code has (all #UD in 64-bit mode): the BCD adjustments
//! aaa, aas, daa, das, aam, aad, and bound and arpl. The BCD adjustments work on AL (and AH) only, in IR,
//! following the SDM's pseudo-code:
//! - aaa/aas: when AL's low nibble is above 9 or AF is set, AX += 0x106 (aaa) or AX -= 6 and AH -= 1 (aas, the
//!   borrow out of AL reaching AH), and CF = AF = 1; otherwise CF = AF = 0; AL keeps its low nibble. OF, SF, ZF,
//!   PF are undefined: rqemu computes them from AL;
//! - daa/das: AL ± 6 when the low nibble is above 9 or AF is set (AF = 1, CF = old CF or the carry/borrow),
//!   then AL ± 0x60 when the old AL was above 0x99 or CF was set (CF = 1; daa clears CF otherwise). SF, ZF, PF from
//!   AL; OF is undefined (0 here);
//! - aam imm8: AH = AL / imm8, AL = AL % imm8 (#DE when imm8 is 0); aad imm8: AL = AL + AH * imm8, AH = 0. SF, ZF,
//!   PF from AL; OF, AF, CF are undefined (0 here).
//!
//! The flags are recorded as a logic operation on AL (SF, ZF, PF; CF = OF = AF = 0) and then, where CF or AF
//! are defined, materialized and OR-ed with them.
//!
//! bound r, m: #BR (a fault) when the register, signed, is below the first or above the second bound in memory;
//! no flags. arpl r/m16, r16: when the destination's RPL (bits 1:0) is below the source's, it is raised to it and
//! ZF set; ZF cleared otherwise; the other flags are kept.

use iced_x86::{Mnemonic, OpKind};
use rqemu_tcg::{Cond, Func, Temp, Type};

use super::operand::gen_ext;
use super::{DisasContext, DisasJump};
use crate::cc::{CcKind, CcOp, Size, CC_Z};
use crate::cpu::reg;

/// #BR's vector.
const EXCP_BR: u32 = 5;

impl DisasContext<'_> {
    /// aaa, aas, daa, das, aam, aad, bound, arpl; false (#UD) in 64-bit mode.
    pub(super) fn gen_bcd(&mut self, f: &mut Func) -> bool {
        if self.flags.bitness == 64 {
            return false;
        }
        match self.insn.mnemonic() {
            Mnemonic::Aaa | Mnemonic::Aas => self.gen_ascii_adjust(f),
            Mnemonic::Daa | Mnemonic::Das => self.gen_decimal_adjust(f),
            Mnemonic::Aam => self.gen_aam(f),
            Mnemonic::Aad => self.gen_aad(f),
            Mnemonic::Bound => return self.gen_bound(f),
            Mnemonic::Arpl => return self.gen_arpl(f),
            _ => return false,
        }
        true
    }

    /// bound r16/r32, m16&16/m32&32: #BR unless lower <= r <= upper (signed).
    fn gen_bound(&mut self, f: &mut Func) -> bool {
        if self.insn.op_kind(1) != OpKind::Memory {
            return false;
        }
        let Some(size) = self.op_size(0) else {
            return false;
        };
        let r = self.read_reg(f, self.insn.op_register(0));
        let r = gen_ext(f, size, true, r);
        let addr = self.gen_ea(f, 0);
        let lower = self.gen_ld(f, super::operand::Loc::Mem(addr), size);
        let lower = gen_ext(f, size, true, lower);
        let addr2 = f.new_ebb_temp(Type::I64);
        let step = f.constant(Type::I64, size.bytes() as u64);
        f.add(addr2, addr, step);
        if self.flags.bitness != 64 {
            f.ext32u(addr2, addr2);
        }
        let upper = self.gen_ld(f, super::operand::Loc::Mem(addr2), size);
        let upper = gen_ext(f, size, true, upper);
        let (below, above, out) = (
            f.new_ebb_temp(Type::I64),
            f.new_ebb_temp(Type::I64),
            f.new_ebb_temp(Type::I64),
        );
        f.setcond(Cond::Lt, below, r, lower);
        f.setcond(Cond::Gt, above, r, upper);
        f.or(out, below, above);
        let (zero, inside) = (f.constant(Type::I64, 0), f.new_label());
        f.brcond(Cond::Eq, out, zero, inside);
        self.gen_exception(f, EXCP_BR, 0);
        f.set_label(inside);
        self.is_jmp = DisasJump::Next;
        true
    }

    /// arpl r/m16, r16 (the register form of a 32-bit operand size changes the low 16 bits only).
    fn gen_arpl(&mut self, f: &mut Func) -> bool {
        let loc = self.op_loc(f, 0);
        let dest = self.gen_ld(f, loc, Size::W);
        let src = self.read_reg(f, self.insn.op_register(1));
        let (drpl, srpl) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        f.extract(drpl, dest, 0, 2);
        f.extract(srpl, src, 0, 2);
        let raise = f.new_ebb_temp(Type::I64);
        f.setcond(Cond::Ltu, raise, drpl, srpl);
        let (raised, new) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        f.deposit(raised, dest, srpl, 0, 2);
        let zero = f.constant(Type::I64, 0);
        f.movcond(Cond::Ne, new, raise, zero, raised, dest);
        match loc {
            // Memory is written either way (arpl is a read-modify-write of its destination).
            super::operand::Loc::Mem(_) => self.gen_st(f, loc, Size::W, new),
            super::operand::Loc::Reg(_) => {
                let n = super::operand::gpr(self.insn.op_register(0)).map(|g| g.n);
                let Some(n) = n else {
                    return false;
                };
                self.write_reg_n(f, n, Size::W, new);
            }
        }
        self.gen_update_eflags(f, |f, flags| {
            let (t, z) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
            let keep = f.constant(Type::I64, !CC_Z);
            let six = f.constant(Type::I64, 6);
            f.and(t, flags, keep);
            f.shl(z, raise, six);
            f.or(t, t, z);
            t
        });
        true
    }

    /// CF and AF of the current flags, each as 0 or 1.
    fn gen_cf_af(&mut self, f: &mut Func) -> (Temp, Temp) {
        let flags = self.gen_compute_eflags(f);
        let (cf, af) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        f.extract(cf, flags, 0, 1);
        f.extract(af, flags, 4, 1);
        (cf, af)
    }

    /// `(AL & 0xf) > 9 || af` as 0 or 1.
    fn gen_low_nibble_adjust(&mut self, f: &mut Func, al: Temp, af: Temp) -> Temp {
        let (nib, big, adj) = (
            f.new_ebb_temp(Type::I64),
            f.new_ebb_temp(Type::I64),
            f.new_ebb_temp(Type::I64),
        );
        let (fifteen, nine) = (f.constant(Type::I64, 0xf), f.constant(Type::I64, 9));
        f.and(nib, al, fifteen);
        f.setcond(Cond::Gtu, big, nib, nine);
        f.or(adj, big, af);
        adj
    }

    /// Records SF, ZF, PF of the byte `al` (CF = OF = AF = 0), then ORs in `cf` (0/1) and `af` (0/1) if given.
    fn gen_bcd_flags(&mut self, f: &mut Func, al: Temp, cf: Option<Temp>, af: Option<Temp>) {
        self.set_cc(f, CcOp::new(CcKind::Logic, Size::B), al, None, None);
        if cf.is_none() && af.is_none() {
            return;
        }
        self.gen_update_eflags(f, |f, flags| {
            let t = f.new_ebb_temp(Type::I64);
            f.mov(t, flags);
            if let Some(cf) = cf {
                f.or(t, t, cf);
            }
            if let Some(af) = af {
                let a = f.new_ebb_temp(Type::I64);
                let four = f.constant(Type::I64, 4);
                f.shl(a, af, four);
                f.or(t, t, a);
            }
            t
        });
    }

    /// aaa / aas.
    fn gen_ascii_adjust(&mut self, f: &mut Func) {
        let sub = self.insn.mnemonic() == Mnemonic::Aas;
        let (_, af) = self.gen_cf_af(f);
        let ax = self.read_reg_n(f, reg::RAX, Size::W);
        let al = self.read_reg_n(f, reg::RAX, Size::B);
        let adj = self.gen_low_nibble_adjust(f, al, af);
        // aaa: AX + 0x106; aas: AX - 6, then AH - 1 (= AX - 0x106).
        let (delta, adjusted) = (f.constant(Type::I64, 0x106), f.new_ebb_temp(Type::I64));
        if sub {
            f.sub(adjusted, ax, delta);
        } else {
            f.add(adjusted, ax, delta);
        }
        let (new_ax, zero) = (f.new_ebb_temp(Type::I64), f.constant(Type::I64, 0));
        f.movcond(Cond::Ne, new_ax, adj, zero, adjusted, ax);
        // AL keeps its low nibble.
        let mask = f.constant(Type::I64, 0xff0f);
        f.and(new_ax, new_ax, mask);
        self.write_reg_n(f, reg::RAX, Size::W, new_ax);
        let new_al = self.read_reg_n(f, reg::RAX, Size::B);
        self.gen_bcd_flags(f, new_al, Some(adj), Some(adj));
    }

    /// daa / das.
    fn gen_decimal_adjust(&mut self, f: &mut Func) {
        let sub = self.insn.mnemonic() == Mnemonic::Das;
        let (cf, af) = self.gen_cf_af(f);
        let al = self.read_reg_n(f, reg::RAX, Size::B);
        let zero = f.constant(Type::I64, 0);
        // Step 1: AL ± 6 when the low nibble needs it; CF = old CF | carry (daa: AL >= 0xfa) or borrow (das: AL < 6).
        let adj = self.gen_low_nibble_adjust(f, al, af);
        let (six, stepped) = (f.constant(Type::I64, 6), f.new_ebb_temp(Type::I64));
        let carry = f.new_ebb_temp(Type::I64);
        if sub {
            f.sub(stepped, al, six);
            f.setcond(Cond::Ltu, carry, al, six);
        } else {
            f.add(stepped, al, six);
            let limit = f.constant(Type::I64, 0xfa);
            f.setcond(Cond::Geu, carry, al, limit);
        }
        let byte = f.constant(Type::I64, 0xff);
        f.and(stepped, stepped, byte);
        let al1 = f.new_ebb_temp(Type::I64);
        f.movcond(Cond::Ne, al1, adj, zero, stepped, al);
        let cf1 = f.new_ebb_temp(Type::I64);
        f.or(cf1, cf, carry);
        f.movcond(Cond::Ne, cf1, adj, zero, cf1, cf);
        // Step 2: AL ± 0x60 when the old AL was above 0x99 or CF was set.
        let (high, big) = (f.new_ebb_temp(Type::I64), f.constant(Type::I64, 0x99));
        f.setcond(Cond::Gtu, high, al, big);
        f.or(high, high, cf);
        let (sixty, stepped2) = (f.constant(Type::I64, 0x60), f.new_ebb_temp(Type::I64));
        if sub {
            f.sub(stepped2, al1, sixty);
        } else {
            f.add(stepped2, al1, sixty);
        }
        f.and(stepped2, stepped2, byte);
        let al2 = f.new_ebb_temp(Type::I64);
        f.movcond(Cond::Ne, al2, high, zero, stepped2, al1);
        // daa: CF = the second condition; das: CF = step 1's CF, or 1 after the second step.
        let cf2 = f.new_ebb_temp(Type::I64);
        if sub {
            f.or(cf2, cf1, high);
        } else {
            f.mov(cf2, high);
        }
        self.write_reg_n(f, reg::RAX, Size::B, al2);
        self.gen_bcd_flags(f, al2, Some(cf2), Some(adj));
    }

    /// aam imm8: AH = AL / imm8, AL = AL % imm8; #DE for imm8 = 0 (through the divide helper with a zero divisor,
    /// which raises it and changes nothing).
    fn gen_aam(&mut self, f: &mut Func) {
        let base = self.insn.immediate(0) & 0xff;
        if base == 0 {
            let mode = f.constant(Type::I32, Size::B as u64);
            let zero = f.constant(Type::I64, 0);
            f.call(self.target.helpers.divide, None, &[mode, zero]);
            return;
        }
        let al = self.read_reg_n(f, reg::RAX, Size::B);
        let k = f.constant(Type::I64, base);
        let (q, r) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        f.divu(q, al, k);
        f.remu(r, al, k);
        let ax = f.new_ebb_temp(Type::I64);
        f.deposit(ax, r, q, 8, 8);
        self.write_reg_n(f, reg::RAX, Size::W, ax);
        self.gen_bcd_flags(f, r, None, None);
    }

    /// aad imm8: AL = (AL + AH * imm8) & 0xff, AH = 0.
    fn gen_aad(&mut self, f: &mut Func) {
        let base = self.insn.immediate(0) & 0xff;
        let ax = self.read_reg_n(f, reg::RAX, Size::W);
        let (al, ah) = (f.new_ebb_temp(Type::I64), f.new_ebb_temp(Type::I64));
        f.extract(al, ax, 0, 8);
        f.extract(ah, ax, 8, 8);
        let k = f.constant(Type::I64, base);
        let t = f.new_ebb_temp(Type::I64);
        f.mul(t, ah, k);
        f.add(t, t, al);
        let byte = f.constant(Type::I64, 0xff);
        f.and(t, t, byte);
        self.write_reg_n(f, reg::RAX, Size::W, t);
        self.gen_bcd_flags(f, t, None, None);
    }
}
