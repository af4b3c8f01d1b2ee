//! The IR of one translation block: its temps, its ops and its labels.

use std::collections::HashMap;
use std::sync::Arc;

use crate::op::Op;
use crate::target::TargetDesc;
use crate::temp::{Label, Temp, TempInfo, TempKind};
use crate::Type;

/// The IR of one TB. Temp 0 is `env`; temps `1..=globals` are the target's globals; the rest are TB temps,
/// EBB temps and constants created by the builder.
#[derive(Clone, Debug)]
pub struct Func {
    /// The target this IR was built for.
    pub target: Arc<TargetDesc>,
    /// Every temp, indexed by [`Temp`].
    pub temps: Vec<TempInfo>,
    /// The ops in program order.
    pub ops: Vec<Op>,
    /// Number of labels allocated; labels are `0..nb_labels`.
    pub nb_labels: u32,
    consts: HashMap<(Type, u64), Temp>,
}

impl Func {
    /// An empty function for `target`, with `env` and the target's globals in place.
    pub fn new(target: Arc<TargetDesc>) -> Func {
        let mut temps = Vec::with_capacity(target.globals.len() + 64);
        temps.push(TempInfo {
            ty: Type::PTR,
            kind: TempKind::Env,
        });
        for (index, g) in target.globals.iter().enumerate() {
            temps.push(TempInfo {
                ty: g.ty,
                kind: TempKind::Global {
                    offset: g.offset,
                    index: index as u32,
                },
            });
        }
        Func {
            target,
            temps,
            ops: Vec::with_capacity(256),
            nb_labels: 0,
            consts: HashMap::new(),
        }
    }

    /// Clears ops, labels and non-global temps so the function can be reused for the next TB.
    pub fn reset(&mut self) {
        self.temps.truncate(self.target.globals.len() + 1);
        self.ops.clear();
        self.nb_labels = 0;
        self.consts.clear();
    }

    /// The CPU-state pointer.
    pub fn env(&self) -> Temp {
        Temp::ENV
    }

    /// The temp of global number `index` (in [`TargetDesc::globals`] order).
    pub fn global(&self, index: usize) -> Temp {
        assert!(index < self.target.globals.len(), "no global {index}");
        Temp(index as u32 + 1)
    }

    /// The temp of the global called `name`.
    pub fn global_by_name(&self, name: &str) -> Option<Temp> {
        self.target
            .globals
            .iter()
            .position(|g| g.name == name)
            .map(|i| Temp(i as u32 + 1))
    }

    /// Number of temps that are `env` or globals.
    pub fn nb_fixed_temps(&self) -> usize {
        self.target.globals.len() + 1
    }

    /// Information about `t`.
    pub fn temp(&self, t: Temp) -> &TempInfo {
        &self.temps[t.index()]
    }

    /// A new temp living for the whole TB.
    pub fn new_temp(&mut self, ty: Type) -> Temp {
        self.push_temp(TempInfo { ty, kind: TempKind::Tb })
    }

    /// A new temp living until the next label.
    pub fn new_ebb_temp(&mut self, ty: Type) -> Temp {
        self.push_temp(TempInfo {
            ty,
            kind: TempKind::Ebb,
        })
    }

    /// The constant `value` of type `ty` (truncated to the type); one temp per distinct value.
    pub fn constant(&mut self, ty: Type, value: u64) -> Temp {
        let value = value & ty.mask();
        if let Some(&t) = self.consts.get(&(ty, value)) {
            return t;
        }
        let t = self.push_temp(TempInfo {
            ty,
            kind: TempKind::Const(value),
        });
        self.consts.insert((ty, value), t);
        t
    }

    /// A new label.
    pub fn new_label(&mut self) -> Label {
        self.nb_labels += 1;
        Label(self.nb_labels - 1)
    }

    /// Appends an op.
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// The constant value of `t`, if it is a constant.
    pub fn const_value(&self, t: Temp) -> Option<u64> {
        self.temps[t.index()].const_value()
    }

    fn push_temp(&mut self, info: TempInfo) -> Temp {
        self.temps.push(info);
        Temp(self.temps.len() as u32 - 1)
    }
}
