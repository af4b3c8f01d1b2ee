//! A reference interpreter for IR with or without globals, straight from `semantics`, and the check that
//! several versions of a function behave the same from several CPU states.

use std::collections::HashMap;

use rqemu_include::{MemOp, MmuIdx};
use rqemu_tcg::helper::HelperFlags;
use rqemu_tcg::liveness::{analyze, assign_slots};
use rqemu_tcg::opcodes::Opcode;
use rqemu_tcg::semantics::{eval, eval_cond};
use rqemu_tcg::temp::{Temp, TempKind};
use rqemu_tcg::{Func, HelperId};

use crate::target::{ENV_SIZE, FAULT_OFFSET};

/// How a run of the interpreter ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Exit(u64),
    GotoTb(u64),
    GotoPtr(u64),
    Fault(u32),
}

/// The CPU state and guest memory a run works on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Machine {
    env: Vec<u8>,
    mem: HashMap<u64, u8>,
}

impl Machine {
    fn new(seed: u64) -> Machine {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut env: Vec<u8> = (0..ENV_SIZE)
            .map(|i| match seed {
                0 => 0,
                1 => i as u8,
                _ => {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Small values make comparisons between fields come out both ways.
                    if i % 8 == 0 {
                        (x % 5) as u8
                    } else if seed.is_multiple_of(2) {
                        0
                    } else {
                        x as u8
                    }
                }
            })
            .collect();
        env[FAULT_OFFSET..FAULT_OFFSET + 4].fill(0);
        Machine {
            env,
            mem: HashMap::new(),
        }
    }

    fn guest_byte(&self, addr: u64) -> u8 {
        self.mem
            .get(&addr)
            .copied()
            .unwrap_or((addr as u8).wrapping_mul(7).wrapping_add(3))
    }
}

const POISON: u64 = 0x5a5a_5a5a_5a5a_5a5a;
const STEP_LIMIT: usize = 100_000;

struct Interp<'a> {
    f: &'a Func,
    m: &'a mut Machine,
    values: Vec<u64>,
    /// Where each temp's value lives in `values`: its own cell, or a slot shared with other temps.
    cell: Vec<usize>,
}

impl Interp<'_> {
    fn env_ptr(&mut self) -> *mut u8 {
        self.m.env.as_mut_ptr()
    }

    fn read_env(&self, offset: usize, bytes: usize) -> u64 {
        let mut b = [0u8; 8];
        b[..bytes].copy_from_slice(&self.m.env[offset..offset + bytes]);
        u64::from_le_bytes(b)
    }

    fn write_env(&mut self, offset: usize, bytes: usize, v: u64) {
        self.m.env[offset..offset + bytes].copy_from_slice(&v.to_le_bytes()[..bytes]);
    }

    fn read(&self, t: Temp) -> u64 {
        let info = self.f.temp(t);
        match info.kind {
            TempKind::Global { offset, .. } => self.read_env(offset as usize, info.ty.bits() as usize / 8),
            _ => self.values[self.cell[t.index()]],
        }
    }

    fn write(&mut self, t: Temp, v: u64) {
        let info = *self.f.temp(t);
        let v = v & info.ty.mask();
        match info.kind {
            TempKind::Global { offset, .. } => self.write_env(offset as usize, info.ty.bits() as usize / 8, v),
            _ => self.values[self.cell[t.index()]] = v,
        }
    }

    /// Host address `base + offset` as an offset into the CPU state.
    fn host_offset(&mut self, base: u64, offset: u64, bytes: usize) -> usize {
        let off = base.wrapping_add(offset).wrapping_sub(self.env_ptr() as u64) as usize;
        assert!(off + bytes <= ENV_SIZE, "host access outside the CPU state");
        off
    }

    fn run(mut self) -> Outcome {
        let f = self.f;
        let mut labels = HashMap::new();
        let mut insn_index = Vec::with_capacity(f.ops.len());
        let mut insns = 0u32;
        for (i, op) in f.ops.iter().enumerate() {
            if op.opc == Opcode::SetLabel {
                labels.insert(op.konst(0), i);
            }
            insn_index.push(insns.saturating_sub(1));
            if op.opc == Opcode::InsnStart {
                insns += 1;
            }
        }
        let mut pc = 0;
        for _ in 0..STEP_LIMIT {
            let op = &f.ops[pc];
            let fault = Outcome::Fault(insn_index[pc]);
            pc += 1;
            let ins: Vec<u64> = op.ins().map(|t| self.read(t)).collect();
            use Opcode::*;
            match op.opc {
                SetLabel | InsnStart | Mb | Discard => {}
                Br => pc = labels[&op.konst(0)],
                Brcond => {
                    if eval_cond(op.cond(), op.ty, ins[0], ins[1]) {
                        pc = labels[&op.konst(1)];
                    }
                }
                ExitTb => return Outcome::Exit(op.konst(0)),
                GotoTb => return Outcome::GotoTb(op.konst(0)),
                GotoPtr => return Outcome::GotoPtr(ins[0]),
                Call => {
                    let h = f.target.helpers.get(HelperId(op.konst(0) as u32)).unwrap();
                    let mut a = [0u64; 5];
                    a[..ins.len()].copy_from_slice(&ins);
                    let env = self.env_ptr();
                    // SAFETY: the test helpers only touch the ENV_SIZE-byte CPU state.
                    let r = unsafe { (h.func)(env, a[0], a[1], a[2], a[3], a[4]) };
                    if h.flags.contains(HelperFlags::MAY_FAULT) && self.read_env(FAULT_OFFSET, 4) != 0 {
                        return fault;
                    }
                    if op.nb_out > 0 {
                        self.write(op.out(0), r);
                    }
                }
                QemuLd | QemuSt => {
                    let memop = MemOp::from_raw(op.konst(0) as u32).unwrap();
                    let _mmu = MmuIdx::new(op.konst(1) as u8).unwrap();
                    let addr = *ins.last().unwrap();
                    if addr >> 63 != 0 {
                        return fault;
                    }
                    let size = memop.size_bytes() as u64;
                    if op.opc == QemuSt {
                        let bytes = if memop.is_bswap() {
                            ins[0].swap_bytes() >> (64 - 8 * size)
                        } else {
                            ins[0]
                        };
                        for i in 0..size {
                            self.m.mem.insert(addr.wrapping_add(i), (bytes >> (8 * i)) as u8);
                        }
                    } else {
                        let mut v = 0u64;
                        for i in 0..size {
                            v |= (self.m.guest_byte(addr.wrapping_add(i)) as u64) << (8 * i);
                        }
                        if memop.is_bswap() {
                            v = v.swap_bytes() >> (64 - 8 * size);
                        }
                        if memop.is_signed() && size < 8 {
                            let shift = 64 - 8 * size;
                            v = (((v << shift) as i64) >> shift) as u64;
                        }
                        self.write(op.out(0), v);
                    }
                }
                Ld8u | Ld8s | Ld16u | Ld16s | Ld32u | Ld32s | Ld => {
                    let (bytes, signed) = match op.opc {
                        Ld8u => (1, false),
                        Ld8s => (1, true),
                        Ld16u => (2, false),
                        Ld16s => (2, true),
                        Ld32u => (4, false),
                        Ld32s => (4, true),
                        _ => (op.ty.bits() as usize / 8, false),
                    };
                    let off = self.host_offset(ins[0], op.konst(0), bytes);
                    let mut v = self.read_env(off, bytes);
                    if signed {
                        let shift = 64 - 8 * bytes;
                        v = (((v << shift) as i64) >> shift) as u64;
                    }
                    self.write(op.out(0), v);
                }
                St8 | St16 | St32 | St => {
                    let bytes = match op.opc {
                        St8 => 1,
                        St16 => 2,
                        St32 => 4,
                        _ => op.ty.bits() as usize / 8,
                    };
                    let off = self.host_offset(ins[1], op.konst(0), bytes);
                    self.write_env(off, bytes, ins[0]);
                }
                opc => {
                    let out = eval(opc, op.ty, &ins, op.consts()).unwrap_or_else(|| panic!("cannot evaluate {opc:?}"));
                    for (i, t) in op.outs().enumerate() {
                        self.write(t, out[i]);
                    }
                }
            }
        }
        panic!("step limit reached");
    }
}

/// Runs `f`; with `share_slots`, temps live in the slots [`assign_slots`] gives them, so a live range that is
/// too short shows up as a clobbered value.
fn execute(f: &Func, m: &mut Machine, share_slots: bool) -> Outcome {
    let mut values: Vec<u64> = f
        .temps
        .iter()
        .map(|t| t.const_value().unwrap_or(POISON & t.ty.mask()))
        .collect();
    values[0] = m.env.as_mut_ptr() as u64;
    let mut cell: Vec<usize> = (0..f.temps.len()).collect();
    if share_slots {
        let slots = assign_slots(f, &analyze(f), false);
        for (t, slot) in slots.of_temp.iter().enumerate() {
            if let Some(s) = slot {
                cell[t] = f.temps.len() + *s as usize;
            }
        }
        values.resize(f.temps.len() + slots.count as usize, POISON);
    }
    Interp { f, m, values, cell }.run()
}

/// Byte ranges of globals the IR discards: their final value is allowed to differ.
fn discarded_bytes(f: &Func) -> Vec<usize> {
    let mut bytes = Vec::new();
    for op in f.ops.iter().filter(|op| op.opc == Opcode::Discard) {
        if let TempKind::Global { offset, .. } = f.temp(op.out(0)).kind {
            bytes.extend(offset as usize..offset as usize + f.temp(op.out(0)).ty.bits() as usize / 8);
        }
    }
    bytes
}

/// One way of running a function: a name for messages, the function, whether temps share slots.
type Stage<'a> = (&'a str, &'a Func, bool);

pub fn check_same_behaviour(name: &str, reference: &Func, others: &[Stage<'_>]) -> Result<(), String> {
    let ignored = discarded_bytes(reference);
    for seed in 0..6 {
        let mut want_m = Machine::new(seed);
        let want = execute(reference, &mut want_m, false);
        for &i in &ignored {
            want_m.env[i] = 0;
        }
        for &(stage, f, share_slots) in others {
            let mut m = Machine::new(seed);
            let got = execute(f, &mut m, share_slots);
            for &i in &ignored {
                m.env[i] = 0;
            }
            if got != want || m != want_m {
                return Err(format!(
                    "{name}: {stage} behaves differently from the input (seed {seed}): {got:?} vs {want:?}\n\
                     env {:02x?}\n  vs {:02x?}\nmem {:?}\n vs {:?}",
                    m.env, want_m.env, m.mem, want_m.mem
                ));
            }
        }
    }
    Ok(())
}
