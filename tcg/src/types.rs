//! IR value types and comparison conditions.

use core::fmt;

/// The type of an IR value. Values of type `I32` are kept zero-extended wherever a backend stores them wider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
}

impl Type {
    /// The type of a host pointer (the CPU-state base and `ld`/`st` bases): 32-bit on wasm32, 64-bit on x86-64.
    pub const PTR: Type = if cfg!(target_pointer_width = "64") {
        Type::I64
    } else {
        Type::I32
    };

    /// Width in bits.
    pub const fn bits(self) -> u32 {
        match self {
            Type::I32 => 32,
            Type::I64 => 64,
        }
    }

    /// Mask of the value bits, as a `u64`.
    pub const fn mask(self) -> u64 {
        match self {
            Type::I32 => u32::MAX as u64,
            Type::I64 => u64::MAX,
        }
    }

    /// Suffix used by the text dump (`i32` / `i64`).
    pub const fn name(self) -> &'static str {
        match self {
            Type::I32 => "i32",
            Type::I64 => "i64",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Comparison condition of `setcond`, `negsetcond`, `movcond` and `brcond`.
///
/// `Tsteq`/`Tstne` test `(a & b) == 0` / `!= 0`. `Always`/`Never` exist for the optimizer's benefit and are
/// accepted everywhere a condition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cond {
    /// Never true.
    Never = 0,
    /// Always true.
    Always = 1,
    /// Equal.
    Eq = 2,
    /// Not equal.
    Ne = 3,
    /// Signed less than.
    Lt = 4,
    /// Signed greater or equal.
    Ge = 5,
    /// Signed less or equal.
    Le = 6,
    /// Signed greater than.
    Gt = 7,
    /// Unsigned less than.
    Ltu = 8,
    /// Unsigned greater or equal.
    Geu = 9,
    /// Unsigned less or equal.
    Leu = 10,
    /// Unsigned greater than.
    Gtu = 11,
    /// `(a & b) == 0`.
    Tsteq = 12,
    /// `(a & b) != 0`.
    Tstne = 13,
}

impl Cond {
    /// Every condition, in encoding order.
    pub const ALL: [Cond; 14] = [
        Cond::Never,
        Cond::Always,
        Cond::Eq,
        Cond::Ne,
        Cond::Lt,
        Cond::Ge,
        Cond::Le,
        Cond::Gt,
        Cond::Ltu,
        Cond::Geu,
        Cond::Leu,
        Cond::Gtu,
        Cond::Tsteq,
        Cond::Tstne,
    ];

    /// Decodes a constant argument.
    pub fn from_raw(raw: u64) -> Option<Cond> {
        Cond::ALL.get(raw as usize).copied()
    }

    /// The condition that is true exactly when this one is false.
    pub const fn invert(self) -> Cond {
        match self {
            Cond::Never => Cond::Always,
            Cond::Always => Cond::Never,
            Cond::Eq => Cond::Ne,
            Cond::Ne => Cond::Eq,
            Cond::Lt => Cond::Ge,
            Cond::Ge => Cond::Lt,
            Cond::Le => Cond::Gt,
            Cond::Gt => Cond::Le,
            Cond::Ltu => Cond::Geu,
            Cond::Geu => Cond::Ltu,
            Cond::Leu => Cond::Gtu,
            Cond::Gtu => Cond::Leu,
            Cond::Tsteq => Cond::Tstne,
            Cond::Tstne => Cond::Tsteq,
        }
    }

    /// The condition with operands exchanged (`a < b` == `b > a`).
    pub const fn swap(self) -> Cond {
        match self {
            Cond::Lt => Cond::Gt,
            Cond::Gt => Cond::Lt,
            Cond::Le => Cond::Ge,
            Cond::Ge => Cond::Le,
            Cond::Ltu => Cond::Gtu,
            Cond::Gtu => Cond::Ltu,
            Cond::Leu => Cond::Geu,
            Cond::Geu => Cond::Leu,
            c => c,
        }
    }

    /// Name used by the text dump.
    pub const fn name(self) -> &'static str {
        match self {
            Cond::Never => "never",
            Cond::Always => "always",
            Cond::Eq => "eq",
            Cond::Ne => "ne",
            Cond::Lt => "lt",
            Cond::Ge => "ge",
            Cond::Le => "le",
            Cond::Gt => "gt",
            Cond::Ltu => "ltu",
            Cond::Geu => "geu",
            Cond::Leu => "leu",
            Cond::Gtu => "gtu",
            Cond::Tsteq => "tsteq",
            Cond::Tstne => "tstne",
        }
    }

    /// Parses a dump name.
    pub fn from_name(name: &str) -> Option<Cond> {
        Cond::ALL.iter().copied().find(|c| c.name() == name)
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
