//! Host loads and stores (`ld*`, `st*`) on the CPU state: every width and signedness at both types, at
//! aligned and unaligned offsets, from `env` itself, from a pointer computed with `add` on [`Type::PTR`] (with
//! negative offsets), and from a pointer held in a global.

use crate::backend::TbExit;
use crate::func::Func;
use crate::opcodes::Opcode;
use crate::temp::Temp;
use crate::types::Type;

use super::harness::{Harness, Pipeline};
use super::state::{self, P_IN, SCRATCH, SCRATCH_LEN};
use super::values::Rng;

/// Byte offset of the middle of the scratch area, where computed base pointers point.
const MID: usize = SCRATCH + SCRATCH_LEN / 2;

/// Where a load or store takes its base pointer from.
#[derive(Clone, Copy, Debug)]
enum Base {
    /// `env` itself.
    Env,
    /// A TB temp `env + MID`, computed with `add` at [`Type::PTR`].
    Computed,
    /// The pointer global `p0`, set to `env + MID` before each run.
    Global,
}

impl Base {
    /// Offsets tried from this base, all inside the scratch area.
    fn offsets(self) -> &'static [i32] {
        const S: i32 = SCRATCH as i32;
        match self {
            Base::Env => &[S, S + 1, S + 3, S + 8, S + 13],
            Base::Computed => &[-128, -9, -1, 0, 5, 64],
            Base::Global => &[-16, 3, 32],
        }
    }

    /// Byte offset from `env` that `offset` from this base addresses.
    fn absolute(self, offset: i32) -> usize {
        match self {
            Base::Env => offset as usize,
            Base::Computed | Base::Global => (MID as i32 + offset) as usize,
        }
    }
}

const LOADS: [(Opcode, usize, bool); 7] = [
    (Opcode::Ld8u, 1, false),
    (Opcode::Ld8s, 1, true),
    (Opcode::Ld16u, 2, false),
    (Opcode::Ld16s, 2, true),
    (Opcode::Ld32u, 4, false),
    (Opcode::Ld32s, 4, true),
    (Opcode::Ld, 0, false),
];

const STORES: [(Opcode, usize); 4] = [(Opcode::St8, 1), (Opcode::St16, 2), (Opcode::St32, 4), (Opcode::St, 0)];

/// Runs every host load and store program.
pub(super) fn run(h: &mut Harness) {
    let mut rng = Rng::new(0x1d_57);
    for (opc, size, signed) in LOADS {
        for &ty in opc.valid_types() {
            let size = if size == 0 { ty.bits() as usize / 8 } else { size };
            for_each_site(h, |h, base, off, pipe| {
                let f = access_func(h, base, |f, b| {
                    f.load(opc, state::global(state::output_slot(ty, 0)), b, off)
                });
                let what = || format!("{}_{ty} from {base:?}{off:+}", opc.def().name);
                let Some(tb) = h.build(f, pipe, &what) else { return };
                for _ in 0..3 {
                    prepare_run(h, &mut rng, base);
                    let at = base.absolute(off);
                    let mut raw = [0u8; 8];
                    for (i, b) in raw[..size].iter_mut().enumerate() {
                        *b = h.state.byte(at + i);
                    }
                    let v = extend(u64::from_ne_bytes(raw), size, signed, cfg!(target_endian = "big")) & ty.mask();
                    h.want.set(state::output_slot(ty, 0), ty, v);
                    let what = || {
                        format!(
                            "{}_{ty} from {base:?}{off:+} [{}] bytes={:02x?} expected=0x{v:x}",
                            opc.def().name,
                            pipe.name(),
                            &raw[..size]
                        )
                    };
                    h.check_run(&tb, TbExit::Exit(0), &what);
                }
            });
        }
    }
    for (opc, size) in STORES {
        for &ty in opc.valid_types() {
            let size = if size == 0 { ty.bits() as usize / 8 } else { size };
            for_each_site(h, |h, base, off, pipe| {
                let v = state::global(state::input_slot(ty, 0));
                let f = access_func(h, base, |f, b| f.store(opc, v, b, off));
                let what = || format!("{}_{ty} to {base:?}{off:+}", opc.def().name);
                let Some(tb) = h.build(f, pipe, &what) else { return };
                for _ in 0..3 {
                    prepare_run(h, &mut rng, base);
                    let value = rng.value(ty);
                    h.set(state::input_slot(ty, 0), ty, value);
                    let bytes = stored_bytes(value, size);
                    let at = base.absolute(off);
                    for (i, &b) in bytes[..size].iter().enumerate() {
                        h.want.set_byte(at + i, b);
                    }
                    let what = || {
                        format!(
                            "{}_{ty} to {base:?}{off:+} [{}] value=0x{value:x}",
                            opc.def().name,
                            pipe.name()
                        )
                    };
                    h.check_run(&tb, TbExit::Exit(0), &what);
                }
            });
        }
    }
}

/// Calls `body` for every base, offset and pipeline.
fn for_each_site(h: &mut Harness, mut body: impl FnMut(&mut Harness, Base, i32, Pipeline)) {
    for base in [Base::Env, Base::Computed, Base::Global] {
        for &off in base.offsets() {
            for pipe in Pipeline::ALL {
                body(h, base, off, pipe);
            }
        }
    }
}

/// `insn_start; [base = ...]; access(base); exit_tb 0`.
fn access_func(h: &Harness, base: Base, access: impl FnOnce(&mut Func, Temp)) -> Func {
    let mut f = h.func();
    f.insn_start([0x2000, 0, 0]);
    let b = match base {
        Base::Env => f.env(),
        Base::Computed => {
            let t = f.new_temp(Type::PTR);
            let mid = f.constant(Type::PTR, MID as u64);
            let env = f.env();
            f.add(t, env, mid);
            t
        }
        Base::Global => state::global(P_IN),
    };
    access(&mut f, b);
    f.exit_tb(0);
    f
}

/// Resets the state, fills the scratch area with random bytes and points `p0` at its middle.
fn prepare_run(h: &mut Harness, rng: &mut Rng, base: Base) {
    h.reset();
    for i in 0..SCRATCH_LEN {
        h.set_byte(SCRATCH + i, rng.next_u64() as u8);
    }
    if let Base::Global = base {
        let p = h.env_addr() + MID as u64;
        h.set(P_IN, Type::PTR, p);
    }
}

/// The value a `size`-byte load of `raw` (host byte order, in the first bytes) gives, before masking.
fn extend(raw: u64, size: usize, signed: bool, big_endian: bool) -> u64 {
    let shift = 64 - 8 * size as u32;
    let v = if big_endian {
        raw >> shift
    } else {
        raw << shift >> shift
    };
    if signed {
        (((v << shift) as i64) >> shift) as u64
    } else {
        v
    }
}

/// The bytes a `size`-byte host store of `value` writes, in address order.
fn stored_bytes(value: u64, size: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    let b = value.to_ne_bytes();
    if cfg!(target_endian = "big") {
        out[..size].copy_from_slice(&b[8 - size..]);
    } else {
        out[..size].copy_from_slice(&b[..size]);
    }
    out
}
