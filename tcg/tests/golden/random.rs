//! Random programs that the verifier accepts, built from the opcode table: every computational op at every
//! type, host and guest memory accesses, helper calls, forward branches, counted loops, exits and discards.

use rqemu_include::{MemOp, MmuIdx};
use rqemu_tcg::opcodes::Opcode;
use rqemu_tcg::temp::Temp;
use rqemu_tcg::{Func, Type};

use crate::target::target;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Builds random verifiable programs from the opcode table.
pub struct ProgramGen {
    f: Func,
    rng: Rng,
    /// TB temps written in the prologue, free to read and write anywhere.
    tb: Vec<Temp>,
    /// EBB temps (written or not in the current extended basic block).
    ebb: Vec<Temp>,
    /// EBB temps written since the last label.
    ebb_written: Vec<Temp>,
    /// Labels branched to and not placed yet.
    pending: Vec<rqemu_tcg::Label>,
    in_loop: bool,
}

const INTERESTING: [u64; 12] = [0, 1, 2, 3, 7, 31, 32, 63, 0x80, 0xff, 0x8000_0000, u64::MAX];

impl ProgramGen {
    pub fn new(seed: u64) -> ProgramGen {
        let mut g = ProgramGen {
            f: Func::new(target()),
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            tb: Vec::new(),
            ebb: Vec::new(),
            ebb_written: Vec::new(),
            pending: Vec::new(),
            in_loop: false,
        };
        for ty in [Type::I32, Type::I64, Type::I32, Type::I64, Type::I64] {
            let t = g.f.new_temp(ty);
            let v = g.constant_value();
            g.f.movi(t, v);
            g.tb.push(t);
            let e = g.f.new_ebb_temp(ty);
            g.ebb.push(e);
        }
        g
    }

    fn constant_value(&mut self) -> u64 {
        if self.rng.chance(70) {
            let v = self.rng.pick(&INTERESTING);
            if self.rng.chance(30) {
                v.wrapping_neg()
            } else {
                v
            }
        } else {
            self.rng.next()
        }
    }

    fn globals_of(&self, ty: Type) -> Vec<Temp> {
        (0..self.f.target.globals.len())
            .map(|i| self.f.global(i))
            .filter(|&g| self.f.temp(g).ty == ty)
            .collect()
    }

    fn input(&mut self, ty: Type) -> Temp {
        if self.rng.chance(25) {
            let v = self.constant_value();
            return self.f.constant(ty, v);
        }
        let mut pool = self.globals_of(ty);
        pool.extend(
            self.tb
                .iter()
                .chain(&self.ebb_written)
                .copied()
                .filter(|&t| self.f.temp(t).ty == ty),
        );
        self.rng.pick(&pool)
    }

    fn output(&mut self, ty: Type, not: Option<Temp>) -> Temp {
        let mut pool = self.globals_of(ty);
        pool.extend(
            self.tb
                .iter()
                .chain(&self.ebb)
                .copied()
                .filter(|&t| self.f.temp(t).ty == ty),
        );
        pool.retain(|&t| Some(t) != not);
        let t = self.rng.pick(&pool);
        if self.ebb.contains(&t) && !self.ebb_written.contains(&t) {
            self.ebb_written.push(t);
        }
        t
    }

    fn computational_op(&mut self) {
        use rqemu_tcg::opcodes::{ArgKind, ConstKind};
        let ops: Vec<Opcode> = Opcode::ALL
            .iter()
            .copied()
            .filter(|&o| rqemu_tcg::semantics::is_computational(o) && o != Opcode::Discard)
            .collect();
        let opc = self.rng.pick(&ops);
        let ty = self.rng.pick(opc.valid_types());
        let def = opc.def();
        let kind_ty = |k: ArgKind| k.type_in(ty);
        let ins: Vec<Temp> = def.ins.iter().map(|&k| self.input(kind_ty(k))).collect();
        let bits = ty.bits() as u64;
        let mut consts = Vec::new();
        for &k in def.consts {
            let c = match k {
                ConstKind::Imm => self.constant_value() & ty.mask(),
                ConstKind::Cond => self.rng.pick(&rqemu_tcg::Cond::ALL) as u64,
                ConstKind::Pos => self.rng.below(bits as usize) as u64,
                ConstKind::Len => 1 + self.rng.below((bits - consts[0]) as usize) as u64,
                ConstKind::Shift => self.rng.below(bits as usize + 1) as u64,
                other => panic!("{other:?} in a computational op"),
            };
            consts.push(c);
        }
        let mut outs = Vec::new();
        for &k in def.outs {
            let t = self.output(kind_ty(k), outs.first().copied());
            outs.push(t);
        }
        self.f.emit(opc, ty, &outs, &ins, &consts);
    }

    /// A guest address that rarely faults.
    fn address(&mut self) -> Temp {
        let a = self.input(Type::I64);
        if self.rng.chance(10) {
            return a;
        }
        let e = self.output_ebb(Type::I64);
        let mask = self.f.constant(Type::I64, 0xfff8);
        self.f.and(e, a, mask);
        e
    }

    fn output_ebb(&mut self, ty: Type) -> Temp {
        let pool: Vec<Temp> = self.ebb.iter().copied().filter(|&t| self.f.temp(t).ty == ty).collect();
        let t = self.rng.pick(&pool);
        if !self.ebb_written.contains(&t) {
            self.ebb_written.push(t);
        }
        t
    }

    fn memory_op(&mut self) {
        let ty = self.rng.pick(&[Type::I32, Type::I64]);
        let max_size = if ty == Type::I32 { 3 } else { 4 };
        match self.rng.below(4) {
            0 | 1 => {
                let size = self.rng.below(max_size) as u32;
                let mut memop = MemOp::from_bits_retain(size);
                if self.rng.chance(30) && size < ty.bits().trailing_zeros() - 3 {
                    memop |= MemOp::SIGN;
                }
                if self.rng.chance(20) && size > 0 {
                    memop |= MemOp::BSWAP;
                }
                let addr = self.address();
                let mmu = MmuIdx::new(0).unwrap();
                if self.rng.chance(50) {
                    let d = self.output(ty, None);
                    self.f.qemu_ld(d, addr, memop, mmu);
                } else {
                    let v = self.input(ty);
                    self.f.qemu_st(v, addr, memop, mmu);
                }
            }
            _ => {
                // Offsets over globals and over plain fields, never over the fault word.
                let offset = self.rng.pick(&[
                    0x0, 0x4, 0x8, 0x10, 0x18, 0x1c, 0x20, 0x28, 0x2c, 0x38, 0x40, 0x48, 0x50,
                ]);
                let (ld, st) = match (ty, self.rng.below(4)) {
                    (_, 0) => ([Opcode::Ld8u, Opcode::Ld8s], Opcode::St8),
                    (_, 1) => ([Opcode::Ld16u, Opcode::Ld16s], Opcode::St16),
                    (Type::I64, 2) => ([Opcode::Ld32u, Opcode::Ld32s], Opcode::St32),
                    _ => ([Opcode::Ld, Opcode::Ld], Opcode::St),
                };
                if self.rng.chance(50) {
                    let d = self.output(ty, None);
                    let opc = self.rng.pick(&ld);
                    self.f.load(opc, d, Temp::ENV, offset);
                } else {
                    let v = self.input(ty);
                    self.f.store(st, v, Temp::ENV, offset);
                }
            }
        }
    }

    fn call(&mut self) {
        let id = rqemu_tcg::HelperId(self.rng.below(self.f.target.helpers.len()) as u32);
        let info = self.f.target.helpers.get(id).unwrap().clone();
        let args: Vec<Temp> = info.args.iter().map(|&ty| self.input(ty)).collect();
        let ret = info.ret.map(|ty| self.output(ty, None));
        self.f.call(id, ret, &args);
    }

    fn branch(&mut self) {
        let ty = self.rng.pick(&[Type::I32, Type::I64]);
        let (a, b) = (self.input(ty), self.input(ty));
        let l = self.f.new_label();
        let cond = self.rng.pick(&rqemu_tcg::Cond::ALL);
        self.f.brcond(cond, a, b, l);
        self.pending.push(l);
    }

    fn place_label(&mut self, from: usize) {
        if self.pending.len() > from {
            let i = from + self.rng.below(self.pending.len() - from);
            let l = self.pending.remove(i);
            self.f.set_label(l);
            self.ebb_written.clear();
        }
    }

    fn statement(&mut self, pending_from: usize) {
        match self.rng.below(100) {
            0..=54 => self.computational_op(),
            55..=69 => self.memory_op(),
            70..=79 => self.call(),
            80..=87 => self.branch(),
            88..=94 => self.place_label(pending_from),
            95..=96 => {
                if self.rng.chance(50) {
                    self.f.exit_tb(self.rng.below(4) as u64);
                } else {
                    self.f.goto_tb(self.rng.below(2) as u32);
                }
            }
            97 => {
                let t = self.rng.pick(&self.tb);
                // Inside a loop the next iteration could read the discarded value.
                if self.tb.len() > 2 && !self.in_loop {
                    self.f.discard(t);
                    self.tb.retain(|&x| x != t);
                }
            }
            _ => self.f.insn_start([0x1000 + self.f.ops.len() as u64, 0, 0]),
        }
    }

    /// A loop that runs 1 to 3 times; branches inside it stay inside it.
    fn counted_loop(&mut self) {
        let counter = self.f.new_temp(Type::I64);
        self.f.movi(counter, 1 + self.rng.below(3) as u64);
        let top = self.f.new_label();
        self.f.set_label(top);
        self.ebb_written.clear();
        let from = self.pending.len();
        self.in_loop = true;
        for _ in 0..self.rng.below(12) {
            self.statement(from);
        }
        self.in_loop = false;
        while self.pending.len() > from {
            self.place_label(from);
        }
        let one = self.f.constant(Type::I64, 1);
        let zero = self.f.constant(Type::I64, 0);
        self.f.sub(counter, counter, one);
        self.f.brcond(rqemu_tcg::Cond::Ne, counter, zero, top);
    }

    pub fn program(mut self) -> Func {
        self.f.insn_start([0x1000, 0, 0]);
        for _ in 0..self.rng.below(60) {
            if self.rng.chance(4) {
                self.counted_loop();
            } else {
                self.statement(0);
            }
        }
        while !self.pending.is_empty() {
            self.place_label(0);
        }
        self.f.exit_tb(7);
        self.f
    }
}
