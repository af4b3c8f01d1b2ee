//! QEMU-style logging (`-d item,...` and `-D file`): which items are on ([`LogMask`]), the options a command
//! line gives ([`LogOptions`]), and the plumbing that carries the text through the `tracing` crate to a
//! sink ([`LogSink`]: stderr, a file, a buffer for tests, or a callback, which is how a wasm32 host gets it).
//!
//! Each item is a `tracing` target (`rqemu::in_asm`, `rqemu::exec`, ...); the text of one event is a whole
//! QEMU-like block (an `IN:` listing, a register dump), written as it is, without prefixes, so the log reads
//! like QEMU's. Any `tracing` subscriber sees these events; [`LogSubscriber`] is the small one `-D` uses.
//!
//! # Cost when off
//! Producers test [`enabled`] (a bit test on a thread-local word; the execution loop reads it once per
//! [`crate::CpuExec::run`]) before formatting anything, so with an empty mask logging costs one test per TB
//! and nothing else. The mask is per thread, like the one vCPU thread that runs the loop: tests that run in
//! parallel each get their own, and a command line installs it on the thread that runs the CPU
//! ([`LogOptions::install`]).
//!
//! Not here: what is logged and where it is produced (the execution loop in [`crate::cpu_exec`], the
//! translator loop in [`crate::translator`], the target's disassembly and register dump behind
//! [`crate::TranslatorOps::disas_log`] and [`crate::CpuOps::dump_state`]).

use core::cell::{Cell, RefCell};
use core::fmt;
use core::str::FromStr;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::{Backend, CompileError, CompiledTb, Func, Opcode, Type};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// A set of log items (QEMU's `qemu_loglevel`), parsed from the `-d` list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LogMask(u32);

impl LogMask {
    /// Nothing logged.
    pub const NONE: LogMask = LogMask(0);
    /// `in_asm`: the guest instructions of each translated TB.
    pub const IN_ASM: LogMask = LogMask(1 << 0);
    /// `op`: the IR of each TB as the frontend generated it.
    pub const OP: LogMask = LogMask(1 << 1);
    /// `op_opt`: the IR after `prepare` (optimization, lowering, liveness).
    pub const OP_OPT: LogMask = LogMask(1 << 2);
    /// `out_asm`: the code a backend generated.
    pub const OUT_ASM: LogMask = LogMask(1 << 3);
    /// `exec`: one line per TB the loop enters.
    pub const EXEC: LogMask = LogMask(1 << 4);
    /// `cpu`: the CPU state before each TB the loop enters.
    pub const CPU: LogMask = LogMask(1 << 5);
    /// `int`: exceptions and interrupts as they are handled.
    pub const INT: LogMask = LogMask(1 << 6);
    /// `nochain`: not a log item but a debug switch, as in QEMU: no TB chaining, so `exec` sees every TB.
    pub const NOCHAIN: LogMask = LogMask(1 << 7);

    /// Every item with its `-d` name and the line `-d help` prints.
    pub const ITEMS: &'static [(&'static str, LogMask, &'static str)] = &[
        (
            "out_asm",
            LogMask::OUT_ASM,
            "show generated host code (tci bytecode; others a summary)",
        ),
        (
            "in_asm",
            LogMask::IN_ASM,
            "show target assembly code for each compiled TB",
        ),
        ("op", LogMask::OP, "show micro ops for each compiled TB"),
        (
            "op_opt",
            LogMask::OP_OPT,
            "show micro ops after optimization and liveness analysis",
        ),
        ("int", LogMask::INT, "show interrupts/exceptions in short format"),
        (
            "exec",
            LogMask::EXEC,
            "show trace before each executed TB (lots of logs)",
        ),
        (
            "cpu",
            LogMask::CPU,
            "show CPU registers before entering a TB (lots of logs)",
        ),
        (
            "nochain",
            LogMask::NOCHAIN,
            "do not chain compiled TBs so that \"exec\" and \"cpu\" show complete traces",
        ),
    ];

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether nothing is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every item of `other` is set.
    pub const fn contains(self, other: LogMask) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any item of `other` is set.
    pub const fn intersects(self, other: LogMask) -> bool {
        self.0 & other.0 != 0
    }

    /// The `-d help` text: one line per item.
    pub fn help() -> String {
        let mut s = String::from("Log items (comma separated):\n");
        for (name, _, what) in LogMask::ITEMS {
            s.push_str(&format!("{name:<10} {what}\n"));
        }
        s
    }
}

impl core::ops::BitOr for LogMask {
    type Output = LogMask;
    fn bitor(self, rhs: LogMask) -> LogMask {
        LogMask(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for LogMask {
    fn bitor_assign(&mut self, rhs: LogMask) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for LogMask {
    /// The `-d` list that parses back to this mask.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, item, _) in LogMask::ITEMS {
            if self.contains(*item) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl FromStr for LogMask {
    type Err = LogError;

    /// QEMU's `qemu_str_to_log_mask`: comma-separated item names; empty items are skipped; `help` asks for
    /// the list ([`LogError::Help`]); an unknown name is an error naming it.
    fn from_str(s: &str) -> Result<LogMask, LogError> {
        let mut mask = LogMask::NONE;
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "help" || item == "?" {
                return Err(LogError::Help);
            }
            match LogMask::ITEMS.iter().find(|(name, _, _)| *name == item) {
                Some((_, m, _)) => mask |= *m,
                None => return Err(LogError::UnknownItem(item.to_string())),
            }
        }
        Ok(mask)
    }
}

/// Why `-d`/`-D` options were not accepted.
#[derive(Debug)]
pub enum LogError {
    /// `-d help`: not a failure; the caller prints [`LogMask::help`] (this error's text) and exits.
    Help,
    /// No item has this name.
    UnknownItem(String),
    /// The `-D` file could not be created (always so on wasm32, which has no file system).
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Help => f.write_str(&LogMask::help()),
            LogError::UnknownItem(item) => {
                write!(f, "-d: unknown log item `{item}` (try -d help)")
            }
            LogError::File { path, error } => write!(f, "-D {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for LogError {}

/// `-d items` and `-D file` as a command line gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// The items.
    pub mask: LogMask,
    /// Where the log goes; `None`: stderr.
    pub file: Option<PathBuf>,
}

impl LogOptions {
    /// Parses `-d items` (if given) and `-D file` (if given).
    pub fn parse(items: Option<&str>, file: Option<&str>) -> Result<LogOptions, LogError> {
        Ok(LogOptions {
            mask: items.map(str::parse).transpose()?.unwrap_or_default(),
            file: file.map(PathBuf::from),
        })
    }

    /// The sink these options name: the file (created now, truncated) or stderr.
    pub fn sink(&self) -> Result<LogSink, LogError> {
        match &self.file {
            None => Ok(LogSink::Stderr),
            Some(path) => std::fs::File::create(path)
                .map(LogSink::File)
                .map_err(|error| LogError::File {
                    path: path.clone(),
                    error,
                }),
        }
    }

    /// Turns logging on for the current thread (the one that runs the CPU) until the guard is dropped.
    pub fn install(&self) -> Result<LogGuard, LogError> {
        Ok(install(self.mask, self.sink()?))
    }
}

/// Text collected in memory, for tests and harnesses. Clones share the buffer.
#[derive(Clone, Debug, Default)]
pub struct LogBuffer(Arc<Mutex<String>>);

impl LogBuffer {
    /// An empty buffer.
    pub fn new() -> LogBuffer {
        LogBuffer::default()
    }

    /// Everything logged so far.
    pub fn contents(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Everything logged so far, emptying the buffer.
    pub fn take(&self) -> String {
        self.0.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default()
    }
}

/// A function that receives each log block (on wasm32 the host glue forwards it to `console.log`).
pub type LogCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// Where log text goes.
pub enum LogSink {
    /// Standard error (discarded on wasm32-unknown-unknown, which has none: use a callback there).
    Stderr,
    /// A file (`-D`).
    File(std::fs::File),
    /// Memory.
    Buffer(LogBuffer),
    /// A function.
    Callback(LogCallback),
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogSink::Stderr => f.write_str("Stderr"),
            LogSink::File(file) => f.debug_tuple("File").field(file).finish(),
            LogSink::Buffer(b) => f.debug_tuple("Buffer").field(b).finish(),
            LogSink::Callback(_) => f.write_str("Callback"),
        }
    }
}

impl LogSink {
    fn write(&mut self, text: &str) {
        // A log that cannot be written is not a reason to stop the guest: errors are dropped.
        match self {
            LogSink::Stderr => {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
            LogSink::File(file) => {
                let _ = file.write_all(text.as_bytes());
            }
            LogSink::Buffer(b) => {
                if let Ok(mut s) = b.0.lock() {
                    s.push_str(text);
                }
            }
            LogSink::Callback(f) => f(text),
        }
    }
}

/// A minimal `tracing` subscriber: it takes the events of the `rqemu::` targets and writes each one's
/// message, followed by a newline unless it ends with one, to its sink. No spans, levels or timestamps
/// (QEMU's log has none, and `std::time` is not available on wasm32-unknown-unknown).
#[derive(Debug)]
pub struct LogSubscriber {
    sink: Mutex<LogSink>,
}

impl LogSubscriber {
    /// A subscriber writing to `sink`.
    pub fn new(sink: LogSink) -> LogSubscriber {
        LogSubscriber { sink: Mutex::new(sink) }
    }
}

/// Collects an event's `message` field.
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            // `format_args!` messages arrive here; their Debug is their Display.
            self.0.push_str(&format!("{value:?}"));
        }
    }
}

impl Subscriber for LogSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with(TARGET_PREFIX)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        // Spans are not used; every span gets the same id (ids must be nonzero).
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        if !message.0.ends_with('\n') {
            message.0.push('\n');
        }
        if let Ok(mut sink) = self.sink.lock() {
            sink.write(&message.0);
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// The prefix of every rqemu log target.
pub const TARGET_PREFIX: &str = "rqemu::";

thread_local! {
    /// The mask producers test; a const initializer keeps the access a plain thread-local load.
    static MASK: Cell<u32> = const { Cell::new(0) };
}

/// The current thread's log items.
#[inline]
pub fn mask() -> LogMask {
    LogMask(MASK.with(Cell::get))
}

/// Sets the current thread's log items (the sink stays as installed). Returns the previous ones.
pub fn set_mask(mask: LogMask) -> LogMask {
    LogMask(MASK.with(|m| m.replace(mask.0)))
}

/// Whether any item of `item` is on for this thread: test it before formatting a log text.
#[inline]
pub fn enabled(item: LogMask) -> bool {
    mask().intersects(item)
}

/// Emits `text` as one event of `item`'s target (`rqemu::in_asm`, ...). Callers test [`enabled`] first;
/// the text is written whether or not the item is on.
pub fn log(item: LogMask, text: &str) {
    // The targets must be literals for `tracing`'s static callsites: one arm per item.
    macro_rules! ev {
        ($target:literal) => {
            tracing::event!(target: $target, Level::INFO, "{}", text)
        };
    }
    match item {
        LogMask::IN_ASM => ev!("rqemu::in_asm"),
        LogMask::OP => ev!("rqemu::op"),
        LogMask::OP_OPT => ev!("rqemu::op_opt"),
        LogMask::OUT_ASM => ev!("rqemu::out_asm"),
        LogMask::EXEC => ev!("rqemu::exec"),
        LogMask::CPU => ev!("rqemu::cpu"),
        LogMask::INT => ev!("rqemu::int"),
        _ => ev!("rqemu::log"),
    }
}

/// Logging turned on for one thread; dropping it restores the previous mask and subscriber.
#[must_use = "logging stops when the guard is dropped"]
pub struct LogGuard {
    previous: LogMask,
    _dispatch: tracing::subscriber::DefaultGuard,
}

impl fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogGuard")
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        set_mask(self.previous);
    }
}

/// Turns on `mask` for the current thread, with a [`LogSubscriber`] writing to `sink` as the thread's
/// `tracing` subscriber, until the guard is dropped.
pub fn install(mask: LogMask, sink: LogSink) -> LogGuard {
    let dispatch = tracing::subscriber::set_default(LogSubscriber::new(sink));
    LogGuard {
        previous: set_mask(mask),
        _dispatch: dispatch,
    }
}

/// Turns on `mask` for the current thread with a fresh [`LogBuffer`] as the sink (tests and harnesses).
pub fn capture(mask: LogMask) -> (LogGuard, LogBuffer) {
    let buffer = LogBuffer::new();
    (install(mask, LogSink::Buffer(buffer.clone())), buffer)
}

/// What the first-tier compile of the TB being translated left for the execution loop to log (`op_opt`,
/// `out_asm`), so the loop can print it in QEMU's order, under the TB's address and id.
#[derive(Debug, Default)]
pub(crate) struct CompileLog {
    /// The prepared IR (`op_opt`).
    pub op_opt: Option<String>,
    /// The generated code (`out_asm`).
    pub out_asm: Option<String>,
}

/// A backend with `-d op_opt,out_asm` around it: it hands every call to the backend it wraps, and when those
/// items are on, records (first tier) or logs (hot tier) what was compiled. The compiled code is returned
/// as is, so running it costs nothing more. The execution loop wraps both tiers in it, because `Tiering`
/// prepares and compiles out of the loop's sight.
pub(crate) struct LogBackend {
    inner: Box<dyn Backend>,
    /// `Some` for the first tier: the loop logs what is recorded there after `Tiering::add`.
    record: Option<Rc<RefCell<CompileLog>>>,
}

impl LogBackend {
    /// The first tier: what it compiles is recorded in `record`.
    pub fn cold(inner: Box<dyn Backend>, record: Rc<RefCell<CompileLog>>) -> LogBackend {
        LogBackend {
            inner,
            record: Some(record),
        }
    }

    /// The hot tier: what it compiles is logged at once (the loop is not at a translation then).
    pub fn hot(inner: Box<dyn Backend>) -> LogBackend {
        LogBackend { inner, record: None }
    }
}

/// `out_asm` for one TB: the backend's listing ([`CompiledTb::disassemble`]) or its size.
fn describe_code(backend: &str, code: &dyn CompiledTb) -> String {
    match code.disassemble() {
        Some(text) => format!("[{backend}] size={}\n{text}", code.code_size()),
        None => format!("[{backend}] size={} (no disassembler)\n", code.code_size()),
    }
}

/// The first `insn_start` word of a TB's IR (the guest pc on the targets rqemu has).
fn first_pc(func: &Func) -> Option<u64> {
    func.ops
        .iter()
        .find(|op| op.opc == Opcode::InsnStart)
        .map(|op| op.args[0])
}

impl Backend for LogBackend {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn supports(&self, opc: Opcode, ty: Type) -> bool {
        self.inner.supports(opc, ty)
    }

    fn compile(&mut self, func: &Func) -> Result<Box<dyn CompiledTb>, CompileError> {
        let code = self.inner.compile(func)?;
        let m = mask();
        if m.intersects(LogMask::OP_OPT | LogMask::OUT_ASM) {
            let op_opt = m.contains(LogMask::OP_OPT).then(|| func.dump());
            let out = m.contains(LogMask::OUT_ASM).then(|| describe_code(self.name(), &*code));
            match &self.record {
                Some(record) => {
                    if let Ok(mut r) = record.try_borrow_mut() {
                        *r = CompileLog { op_opt, out_asm: out };
                    }
                }
                None => {
                    if let Some(text) = out {
                        log(LogMask::OUT_ASM, &format!("OUT: {text}\n"));
                    }
                }
            }
        }
        Ok(code)
    }

    fn compile_group(&mut self, members: &[GroupMember<'_>]) -> Result<Vec<Box<dyn CompiledTb>>, CompileError> {
        let codes = self.inner.compile_group(members)?;
        if enabled(LogMask::OUT_ASM) {
            let mut text = format!("OUT: [{}] module of {} TBs\n", self.name(), codes.len());
            for (i, (m, code)) in members.iter().zip(&codes).enumerate() {
                let pc = first_pc(m.func).map_or_else(|| "?".to_string(), |pc| format!("0x{pc:016x}"));
                text.push_str(&format!("member {i} pc={pc}: {}", describe_code(self.name(), &**code)));
            }
            text.push('\n');
            log(LogMask::OUT_ASM, &text);
        }
        Ok(codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installed_subscriber_gets_the_text_and_the_guard_restores_the_mask() {
        assert_eq!(mask(), LogMask::NONE);
        let buffer = {
            let (_guard, buffer) = capture(LogMask::EXEC);
            assert!(enabled(LogMask::EXEC) && !enabled(LogMask::CPU));
            log(LogMask::EXEC, "Trace 0: one");
            log(LogMask::CPU, "RAX=0\n");
            buffer
        };
        assert_eq!(mask(), LogMask::NONE);
        // After the guard, events go nowhere.
        log(LogMask::EXEC, "lost");
        assert_eq!(buffer.contents(), "Trace 0: one\nRAX=0\n");
    }
}
