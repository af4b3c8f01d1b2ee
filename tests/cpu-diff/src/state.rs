//! The data a differential case is made of: the register and scratch-memory state ([`CpuState`]), a case (initial
//! state + instruction bytes, [`Case`]), the outcome of running it ([`CpuSnapshot`] with its [`Fault`]) and the
//! fixed guest-visible addresses both worlds (the native oracle and rqemu) map.
//!
//! Also the hand-written text form of all three (no serde): a state is a list of `name=hex` tokens written as the
//! difference against a base state, so recorded vectors stay short and need no dependency on wasm32. The vector
//! file format built from these lives in `vectors.rs`. Running cases lives in `native.rs`, generating them in
//! `generate.rs`.

use std::fmt::{self, Write};

/// Guest address of the code page: a case's instruction bytes start here, followed by the terminator.
pub const CODE_ADDR: u64 = 0x1000_0000;
/// Size of the code page (a case plus its terminator must fit).
pub const CODE_SIZE: usize = 4096;
/// Guest address of the scratch buffer that memory operands and the stack point into.
pub const SCRATCH_ADDR: u64 = 0x2000_0000;
/// Bytes of the scratch buffer that are set from the case and captured after it (the rest of the page is zero).
pub const SCRATCH_LEN: usize = 256;
/// Memory operands of generated cases stay inside `[SCRATCH_ADDR, SCRATCH_ADDR + SCRATCH_DATA_LEN)`.
pub const SCRATCH_DATA_LEN: usize = 0xc0;
/// Initial RSP of generated cases: the top `SCRATCH_LEN - SCRATCH_DATA_LEN` bytes of the buffer are its stack.
pub const SCRATCH_STACK_TOP: u64 = SCRATCH_ADDR + 0xe0;
/// An address that is never mapped in either world (loads from it raise #PF).
pub const UNMAPPED_ADDR: u64 = 0x3000_0000;
/// The instruction appended after every case: `int3`. Reaching it ends the case without a fault.
pub const TERMINATOR: [u8; 1] = [0xcc];

/// General-purpose register names in x86 encoding order (the index is the register number).
pub const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
];
/// Register number of RSP.
pub const RSP: usize = 4;

/// RFLAGS bits.
pub mod flags {
    pub const CF: u64 = 1 << 0;
    pub const FIXED1: u64 = 1 << 1;
    pub const PF: u64 = 1 << 2;
    pub const AF: u64 = 1 << 4;
    pub const ZF: u64 = 1 << 6;
    pub const SF: u64 = 1 << 7;
    pub const TF: u64 = 1 << 8;
    pub const DF: u64 = 1 << 10;
    pub const IF: u64 = 1 << 9;
    pub const OF: u64 = 1 << 11;
    pub const RF: u64 = 1 << 16;
    pub const AC: u64 = 1 << 18;
    /// The six arithmetic status flags.
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
}

/// Default MXCSR (all exceptions masked, round to nearest).
pub const MXCSR_DEFAULT: u32 = 0x1f80;
/// FCW after `fninit` (all exceptions masked, 64-bit precision, round to nearest).
pub const FCW_DEFAULT: u16 = 0x37f;
/// The 80 bits of an x87 register image (the rest of its 16-byte FXSAVE slot is reserved and not compared).
pub const ST_MASK: u128 = (1u128 << 80) - 1;

/// FSW bits.
pub mod fsw {
    /// The six exception flags (IE DE ZE OE UE PE), in the same positions as the FCW masks.
    pub const EXCEPTIONS: u16 = 0x3f;
    /// Precision (inexact result) flag.
    pub const PE: u16 = 1 << 5;
    /// Stack fault.
    pub const SF: u16 = 1 << 6;
    /// Exception summary: an unmasked exception is pending (the next waiting x87 instruction raises #MF).
    pub const ES: u16 = 1 << 7;
    /// Condition code C0 (carry-like result of comparisons, fprem quotient bit 2).
    pub const C0: u16 = 1 << 8;
    /// Condition code C1 (round-up indicator, stack overflow vs underflow, fprem quotient bit 0).
    pub const C1: u16 = 1 << 9;
    /// Condition code C2 (unordered, incomplete fprem, operand out of range).
    pub const C2: u16 = 1 << 10;
    /// Condition code C3 (zero-like result of comparisons, fprem quotient bit 1).
    pub const C3: u16 = 1 << 14;
    /// Busy: mirrors ES on every CPU since the 387.
    pub const B: u16 = 1 << 15;
    /// TOP, bits 11..13.
    pub const TOP_SHIFT: u32 = 11;
}

/// Registers and scratch memory: what a case starts from and what is compared after it.
///
/// The x87/MMX state is kept as FXSAVE holds it: `st[i]` is ST(i) in *stack* order (ST0 = the register TOP
/// points at; MMi aliases physical register i, i.e. `st[(i - TOP) & 7]`), the 80-bit image in the low bits;
/// `ftw` is the abridged tag word in *physical* order (bit i set = physical register i is valid). This is exactly
/// what FXSAVE/FXRSTOR exchange, so the native side needs no conversion, and it is architecturally complete for
/// what a program can observe: the full tag word FNSTENV shows is derived from `ftw` and the register contents.
/// The last-instruction pointers (FIP/FDP/FOP) are not part of the state: they hold host addresses natively and
/// AMD CPUs store them only when an exception is pending.
#[derive(Clone, PartialEq, Eq)]
pub struct CpuState {
    pub gpr: [u64; 16],
    pub rflags: u64,
    pub xmm: [u128; 16],
    pub mxcsr: u32,
    /// x87 control word.
    pub fcw: u16,
    /// x87 status word, TOP and C0..C3 included.
    pub fsw: u16,
    /// Abridged tag word, physical order (see the type's doc).
    pub ftw: u8,
    /// ST0..ST7 (stack order), 80 bits each.
    pub st: [u128; 8],
    /// Contents of `[SCRATCH_ADDR, SCRATCH_ADDR + SCRATCH_LEN)`.
    pub mem: [u8; SCRATCH_LEN],
}

/// The default state: all zero, RFLAGS = IF and the fixed bit 1 (a user process always runs with IF set), MXCSR
/// at its reset value.
impl Default for CpuState {
    fn default() -> Self {
        CpuState {
            gpr: [0; 16],
            rflags: flags::FIXED1 | flags::IF,
            xmm: [0; 16],
            mxcsr: MXCSR_DEFAULT,
            fcw: FCW_DEFAULT,
            fsw: 0,
            ftw: 0,
            st: [0; 8],
            mem: [0; SCRATCH_LEN],
        }
    }
}

impl fmt::Debug for CpuState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text_diff(&CpuState::default()))
    }
}

/// The exception a case raised, as the host reported it (signal, si_code, trap number), or how it failed to finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The case reached its terminator.
    None,
    /// #DE (SIGFPE from an integer divide).
    De,
    /// #UD (SIGILL).
    Ud,
    /// #GP (SIGSEGV with trap number 13: misaligned SSE access, non-canonical address, privileged instruction).
    Gp,
    /// #SS (SIGBUS/SIGSEGV with trap number 12: non-canonical stack access).
    Ss,
    /// #PF at `addr`; `write` is bit 1 of the error code.
    Pf { addr: u64, write: bool },
    /// #AC (SIGBUS with trap number 17: misaligned access with RFLAGS.AC set).
    Ac,
    /// #BR (SIGSEGV with trap number 5: `bound` out of range; 32-bit code).
    Br,
    /// #OF (SIGSEGV with trap number 4: `into` with OF set; 32-bit code). A trap: RIP is after the `into`.
    Of,
    /// #NM (device not available). A user process never sees it (the kernel handles CR0.TS lazily); here so
    /// that rqemu raising it is reported by name.
    Nm,
    /// #MF (SIGFPE with trap number 16): a waiting x87 instruction found an unmasked exception pending (FSW.ES).
    /// The state is the one at that instruction: FSW keeps ES and the flags (the kernel does not clear them).
    Mf,
    /// #XM (SIGFPE with trap number 19): an SSE instruction raised an unmasked SIMD floating-point exception.
    /// The destination is unchanged and MXCSR has the exception's flag set.
    Xm,
    /// Any other signal, with the trap number the kernel reported.
    Other { signal: i32, trapno: u64 },
    /// The case did not reach its terminator in time (the child was killed).
    Timeout,
    /// The child died while running the case without a catchable signal (e.g. a `syscall` under seccomp).
    Crashed { signal: i32 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::None => f.write_str("none"),
            Fault::De => f.write_str("de"),
            Fault::Ud => f.write_str("ud"),
            Fault::Gp => f.write_str("gp"),
            Fault::Ss => f.write_str("ss"),
            Fault::Pf { addr, write } => write!(f, "pf:{addr:x}:{}", if write { "w" } else { "r" }),
            Fault::Ac => f.write_str("ac"),
            Fault::Br => f.write_str("br"),
            Fault::Of => f.write_str("of"),
            Fault::Nm => f.write_str("nm"),
            Fault::Mf => f.write_str("mf"),
            Fault::Xm => f.write_str("xm"),
            Fault::Other { signal, trapno } => write!(f, "sig:{signal}:{trapno}"),
            Fault::Timeout => f.write_str("timeout"),
            Fault::Crashed { signal } => write!(f, "crash:{signal}"),
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError(format!("bad fault `{s}`"));
        let mut parts = s.split(':');
        let kind = parts.next().ok_or_else(bad)?;
        let mut next = || parts.next().ok_or_else(bad);
        Ok(match kind {
            "none" => Fault::None,
            "de" => Fault::De,
            "ud" => Fault::Ud,
            "gp" => Fault::Gp,
            "ss" => Fault::Ss,
            "ac" => Fault::Ac,
            "br" => Fault::Br,
            "of" => Fault::Of,
            "nm" => Fault::Nm,
            "mf" => Fault::Mf,
            "xm" => Fault::Xm,
            "timeout" => Fault::Timeout,
            "pf" => {
                let addr = parse_hex_u64(next()?)?;
                let write = match next()? {
                    "w" => true,
                    "r" => false,
                    _ => return Err(bad()),
                };
                Fault::Pf { addr, write }
            }
            "sig" => {
                let signal = next()?.parse().map_err(|_| bad())?;
                let trapno = next()?.parse().map_err(|_| bad())?;
                Fault::Other { signal, trapno }
            }
            "crash" => Fault::Crashed {
                signal: next()?.parse().map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        })
    }
}

/// One differential case: an initial state and the instruction bytes to run at [`CODE_ADDR`] (the runner appends
/// [`TERMINATOR`]), in 64-bit mode or 32-bit compatibility mode ([`Case::bitness`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Case {
    pub init: CpuState,
    pub code: Vec<u8>,
    /// Code size: 64 (64-bit mode), 32 (32-bit code: compatibility mode natively, flat 32-bit protected mode
    /// with EFER.LMA set on rqemu) or 16 (16-bit code: CS based at [`CODE_ADDR`], DS/ES/SS at [`SCRATCH_ADDR`],
    /// 64 KiB limits, see [`Case::ip_base`]). The vector format writes `mode=32`/`mode=16` and reads a missing
    /// field as 64.
    pub bitness: u32,
}

/// Bits of the GPRs that are compared in 32- and 16-bit code: the low halves of EAX..EDI. The upper halves are
/// architecturally undefined across the switch between 64-bit and compatibility mode, and R8-R15 are not
/// reachable from 32-bit code. In 16-bit code (a 16-bit stack) only SP of ESP: natively, returning from an
/// interrupt to a 16-bit stack segment (espfix64) may change ESP's bits 16..31.
pub fn gpr_mask(bitness: u32, n: usize) -> u64 {
    match (bitness, n) {
        (64, _) => u64::MAX,
        (16, RSP) => 0xffff,
        (_, 0..=7) => 0xffff_ffff,
        _ => 0,
    }
}

impl CpuState {
    /// The state as seen from code of `bitness` bits: GPR bits outside [`gpr_mask`] cleared (identity for 64).
    pub fn normalized(mut self, bitness: u32) -> CpuState {
        for (n, g) in self.gpr.iter_mut().enumerate() {
            *g &= gpr_mask(bitness, n);
        }
        self
    }
}

impl Case {
    /// A 64-bit-mode case.
    pub fn new64(init: CpuState, code: Vec<u8>) -> Case {
        Case {
            init,
            code,
            bitness: 64,
        }
    }

    /// The IP of the case's first byte: [`CODE_ADDR`] for 64- and 32-bit code (flat segments); 0 for 16-bit code,
    /// whose code segment is based at [`CODE_ADDR`] (and whose data and stack segments at [`SCRATCH_ADDR`]: data
    /// offsets, not addresses, there).
    pub fn ip_base(&self) -> u64 {
        if self.bitness == 16 {
            0
        } else {
            CODE_ADDR
        }
    }

    /// Offset of the terminator from [`CODE_ADDR`]: where RIP stands when the case finishes without a fault.
    pub fn end_offset(&self) -> u64 {
        self.code.len() as u64
    }
}

/// The state after running a case: registers and scratch memory, RIP as an offset from [`CODE_ADDR`], and the
/// fault. After a fault the state is the one at the faulting instruction (RIP points at it; after the trap #OF,
/// past the `into`); after a normal finish RIP is [`Case::end_offset`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CpuSnapshot {
    pub state: CpuState,
    pub rip: u64,
    pub fault: Fault,
}

/// A malformed line or token in the text forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

pub(crate) fn parse_hex_u64(s: &str) -> Result<u64, ParseError> {
    u64::from_str_radix(s, 16).map_err(|_| ParseError(format!("bad hex `{s}`")))
}

pub(crate) fn parse_hex_bytes(s: &str) -> Result<Vec<u8>, ParseError> {
    if !s.len().is_multiple_of(2) {
        return Err(ParseError(format!("odd-length hex `{s}`")));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| ParseError(format!("bad hex `{s}`"))))
        .collect()
}

pub(crate) fn push_hex_bytes(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

impl CpuState {
    /// Writes the tokens for every field that differs from `base` (space-separated, no leading space): `rax=..`
    /// ... `r15=..`, `rflags=..`, `xmm0=..` ... `xmm15=..`, `mxcsr=..`, `fcw=..`, `fsw=..`, `ftw=..`, `st0=..` ...
    /// `st7=..` (80-bit images), and `m<off>=<hex>` for each run of changed
    /// scratch bytes (`off` in hex). Parsing the tokens onto `base` gives `self` back.
    pub fn to_text_diff(&self, base: &CpuState) -> String {
        let mut out = String::new();
        let sep = |out: &mut String| {
            if !out.is_empty() {
                out.push(' ');
            }
        };
        for (i, name) in GPR_NAMES.iter().enumerate() {
            if self.gpr[i] != base.gpr[i] {
                sep(&mut out);
                let _ = write!(out, "{name}={:x}", self.gpr[i]);
            }
        }
        if self.rflags != base.rflags {
            sep(&mut out);
            let _ = write!(out, "rflags={:x}", self.rflags);
        }
        for i in 0..16 {
            if self.xmm[i] != base.xmm[i] {
                sep(&mut out);
                let _ = write!(out, "xmm{i}={:x}", self.xmm[i]);
            }
        }
        if self.mxcsr != base.mxcsr {
            sep(&mut out);
            let _ = write!(out, "mxcsr={:x}", self.mxcsr);
        }
        if self.fcw != base.fcw {
            sep(&mut out);
            let _ = write!(out, "fcw={:x}", self.fcw);
        }
        if self.fsw != base.fsw {
            sep(&mut out);
            let _ = write!(out, "fsw={:x}", self.fsw);
        }
        if self.ftw != base.ftw {
            sep(&mut out);
            let _ = write!(out, "ftw={:x}", self.ftw);
        }
        for i in 0..8 {
            if self.st[i] != base.st[i] {
                sep(&mut out);
                let _ = write!(out, "st{i}={:x}", self.st[i]);
            }
        }
        let mut i = 0;
        while i < SCRATCH_LEN {
            if self.mem[i] == base.mem[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i < SCRATCH_LEN && self.mem[i] != base.mem[i] {
                i += 1;
            }
            sep(&mut out);
            let _ = write!(out, "m{start:x}=");
            push_hex_bytes(&mut out, &self.mem[start..i]);
        }
        out
    }

    /// Applies one `name=hex` token written by [`CpuState::to_text_diff`]; `Ok(false)` if the name is not a
    /// state field (the caller may know it).
    pub fn apply_token(&mut self, name: &str, value: &str) -> Result<bool, ParseError> {
        if let Some(i) = GPR_NAMES.iter().position(|n| *n == name) {
            self.gpr[i] = parse_hex_u64(value)?;
        } else if name == "rflags" {
            self.rflags = parse_hex_u64(value)?;
        } else if name == "mxcsr" {
            self.mxcsr = u32::from_str_radix(value, 16).map_err(|_| ParseError(format!("bad mxcsr `{value}`")))?;
        } else if let Some(field) = match name {
            "fcw" => Some(&mut self.fcw),
            "fsw" => Some(&mut self.fsw),
            _ => None,
        } {
            *field = u16::from_str_radix(value, 16).map_err(|_| ParseError(format!("bad {name} `{value}`")))?;
        } else if name == "ftw" {
            self.ftw = u8::from_str_radix(value, 16).map_err(|_| ParseError(format!("bad ftw `{value}`")))?;
        } else if let Some(i) = name.strip_prefix("st").and_then(|n| n.parse::<usize>().ok()) {
            if i >= 8 {
                return Err(ParseError(format!("bad register `{name}`")));
            }
            let v = u128::from_str_radix(value, 16).map_err(|_| ParseError(format!("bad hex `{value}`")))?;
            if v & !ST_MASK != 0 {
                return Err(ParseError(format!("`{name}` wider than 80 bits")));
            }
            self.st[i] = v;
        } else if let Some(n) = name.strip_prefix("xmm") {
            let i: usize = n.parse().map_err(|_| ParseError(format!("bad register `{name}`")))?;
            if i >= 16 {
                return Err(ParseError(format!("bad register `{name}`")));
            }
            self.xmm[i] = u128::from_str_radix(value, 16).map_err(|_| ParseError(format!("bad hex `{value}`")))?;
        } else if let Some(off) = name.strip_prefix('m') {
            let off = parse_hex_u64(off)? as usize;
            let bytes = parse_hex_bytes(value)?;
            if off + bytes.len() > SCRATCH_LEN {
                return Err(ParseError(format!("memory token `{name}` out of range")));
            }
            self.mem[off..off + bytes.len()].copy_from_slice(&bytes);
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// Parses the output of [`CpuState::to_text_diff`] against the same `base`.
    pub fn from_text_diff(text: &str, base: &CpuState) -> Result<CpuState, ParseError> {
        let mut state = base.clone();
        for token in text.split_ascii_whitespace() {
            let (name, value) = split_token(token)?;
            if !state.apply_token(name, value)? {
                return Err(ParseError(format!("unknown field `{name}`")));
            }
        }
        Ok(state)
    }
}

pub(crate) fn split_token(token: &str) -> Result<(&str, &str), ParseError> {
    token
        .split_once('=')
        .ok_or_else(|| ParseError(format!("token `{token}` is not name=value")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_diff_round_trip() {
        let base = CpuState::default();
        let mut s = base.clone();
        s.gpr[3] = u64::MAX;
        s.gpr[15] = 1;
        s.rflags = 0x8d7;
        s.xmm[9] = u128::MAX - 5;
        s.mxcsr = 0x7f80;
        s.fsw = 0x3800;
        s.ftw = 0x81;
        s.st[7] = 0xffff_8000_0000_0000_0001;
        s.mem[0] = 1;
        s.mem[1] = 2;
        s.mem[SCRATCH_LEN - 1] = 0xff;
        let text = s.to_text_diff(&base);
        assert_eq!(
            text,
            "rbx=ffffffffffffffff r15=1 rflags=8d7 xmm9=fffffffffffffffffffffffffffffffa mxcsr=7f80 fsw=3800 ftw=81 \
             st7=ffff8000000000000001 m0=0102 mff=ff"
        );
        // Old vector files have no x87 tokens: the fields keep their defaults.
        let old = CpuState::from_text_diff("rax=1 mxcsr=1f80", &base).unwrap();
        assert_eq!((old.fcw, old.fsw, old.ftw, old.st), (FCW_DEFAULT, 0, 0, [0; 8]));
        assert!(CpuState::from_text_diff("st8=1", &base).is_err());
        assert!(CpuState::from_text_diff("st0=1ffffffffffffffffffff", &base).is_err());
        assert_eq!(CpuState::from_text_diff(&text, &base).unwrap(), s);
        assert_eq!(s.to_text_diff(&s), "");
    }

    #[test]
    fn fault_round_trip() {
        for f in [
            Fault::None,
            Fault::De,
            Fault::Ud,
            Fault::Gp,
            Fault::Ss,
            Fault::Pf {
                addr: UNMAPPED_ADDR,
                write: true,
            },
            Fault::Pf { addr: 0, write: false },
            Fault::Ac,
            Fault::Br,
            Fault::Of,
            Fault::Nm,
            Fault::Mf,
            Fault::Xm,
            Fault::Other { signal: 5, trapno: 1 },
            Fault::Timeout,
            Fault::Crashed { signal: 31 },
        ] {
            assert_eq!(f.to_string().parse::<Fault>().unwrap(), f);
        }
        assert!("pf:zz:w".parse::<Fault>().is_err());
        assert!("what".parse::<Fault>().is_err());
    }
}
