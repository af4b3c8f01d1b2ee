//! The native oracle (x86-64 Linux only): runs [`Case`]s on this machine's CPU in a sandboxed child process and
//! captures the state after each one. Generating cases lives in `generate.rs`; what is compared, in `compare.rs`.
//!
//! # How a case runs
//! The parent `fork()`s one child per batch. The child maps, at fixed addresses, a harness page
//! ([`HARNESS_ADDR`], RWX: prologue, recovery stub, state block), the code page [`CODE_ADDR`] (RWX) and the scratch
//! page [`SCRATCH_ADDR`] (RW), installs its signal handlers on an alternate stack, enters seccomp strict mode (only
//! `read`, `write`, `exit` and `rt_sigreturn` remain, so a stray `syscall` kills the child instead of touching the
//! machine), and then for each case:
//! 1. writes the initial state into the state block, the case's bytes followed by [`TERMINATOR`] (`int3`) into the
//!    code page, and the case's memory into the scratch page;
//! 2. calls the prologue (assembled with iced-x86's CodeAssembler): it saves the callee-saved registers and the host
//!    RSP, loads the x87/MMX state with `fxrstor64` from an FXSAVE image in the state block, XMM0-15 and MXCSR, RFLAGS (`popfq` from the state block) and all 16 GPRs including RSP, and jumps
//!    to the case;
//! 3. the case ends in a signal either way: `int3` (SIGTRAP, the normal end) or a fault (SIGILL, SIGFPE, SIGSEGV,
//!    SIGBUS, ...). The handler copies the registers, RIP, RFLAGS, XMM, MXCSR and the x87 state (FCW, FSW, FTW,
//!    ST0-7: the FXSAVE-format head of the signal frame's FPU area) out of the `ucontext`, with the
//!    signal, trap number, error code and fault address, into the case's result slot in shared memory; then it
//!    rewrites the `ucontext` so that returning from the handler lands in the recovery stub with the host RSP, clean
//!    RFLAGS, MXCSR and x87 state (FCW default, FSW and FTW zero: no pending #MF, an empty stack), and the stub pops the callee-saved registers and returns to the child's loop;
//! 4. the loop copies the scratch memory into the slot and advances the shared `done` counter.
//!
//! A 32-bit case ([`Case::bitness`] 32) enters through a second prologue that ends in a far jump to
//! `USER32_CS:CODE_ADDR` (Linux's flat 32-bit user code segment, selector 0x23), so the case runs in
//! compatibility mode with DS/ES/SS = 0x2b (flat; the prologue loads them: a 64-bit process has DS = ES = 0).
//! Its signals still reach the 64-bit handler with a 64-bit `ucontext` (RIP = EIP); the handler puts CS = 0x33
//! into the context so that the return lands in the 64-bit recovery stub. Only the low halves of EAX..EDI are
//! kept from a 32-bit case (the upper halves are undefined across the mode switch). A 16-bit case (16) enters
//! through a third prologue: DS/ES/SS get the 16-bit data segment the child installed in its LDT (selector 0x0f,
//! base `SCRATCH_ADDR`) and the far jump goes to the 16-bit code segment (0x07, base `CODE_ADDR`), so RIP in the
//! `ucontext` is an offset (`Case::ip_base` 0).
//!
//! One capture path (the `ucontext`) serves normal ends and faults alike, so both are captured identically and no
//! epilogue has to save registers without clobbering them. Redirecting through the `ucontext` rather than
//! `siglongjmp` keeps Rust frames out of the jump and lets the kernel's `rt_sigreturn` restore the signal mask.
//!
//! # Robustness
//! The parent polls `done` and the child's exit status. A child that dies while running case `i` (a signal the
//! handler does not catch, seccomp, a corrupted harness) gives case `i` [`Fault::Crashed`]; a case that makes no
//! progress within [`NativeOptions::timeout`] gets the child killed and [`Fault::Timeout`]. Either way a new child
//! resumes at case `i + 1`. Since the child is forked from a possibly multi-threaded parent, it allocates nothing
//! and calls only async-signal-safe functions (raw syscalls); everything it needs is prepared before the fork.

use crate::state::{Case, CpuSnapshot, CpuState, Fault, CODE_ADDR, CODE_SIZE, SCRATCH_ADDR, SCRATCH_LEN, TERMINATOR};
use iced_x86::IcedError;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use std::{fmt, io, mem, ptr};

/// Fixed address of the harness page (native only; rqemu does not map it).
pub const HARNESS_ADDR: u64 = 0x0f00_0000;
const HARNESS_SIZE: usize = 0x2000;
/// The state block lives in the second harness page.
const BLOCK_ADDR: u64 = HARNESS_ADDR + 0x1000;
const BLOCK_GPR: u64 = BLOCK_ADDR;
const BLOCK_RFLAGS: u64 = BLOCK_ADDR + 0x80;
const BLOCK_HOST_RSP: u64 = BLOCK_ADDR + 0x88;
const BLOCK_MXCSR: u64 = BLOCK_ADDR + 0x90;
const BLOCK_XMM: u64 = BLOCK_ADDR + 0xa0;
/// The FXSAVE image (512 bytes, 16-byte aligned) the prologue loads with `fxrstor64` first: the x87/MMX state
/// (FCW, FSW, abridged FTW, ST0-7) comes only from it; XMM and MXCSR are in it too but loaded again below.
const BLOCK_FX: u64 = BLOCK_ADDR + 0x200;
/// The far pointer (m16:32: offset, then selector) the 32-bit prologue jumps through.
const BLOCK_FAR32: u64 = BLOCK_ADDR + 0x1a0;
/// The far pointer the 16-bit prologue jumps through.
const BLOCK_FAR16: u64 = BLOCK_ADDR + 0x1a8;
/// Offset of the 32-bit prologue in the harness page (the 64-bit one is at 0).
const PROLOGUE32_OFFSET: u64 = 0x400;
/// Offset of the 16-bit prologue.
const PROLOGUE16_OFFSET: u64 = 0x600;
/// LDT selectors (TI = 1, RPL 3) of the 16-bit code segment (entry 0, base `CODE_ADDR`) and of the 16-bit data
/// and stack segment (entry 1, base `SCRATCH_ADDR`) the child installs with modify_ldt(2).
const LDT_CODE16: u16 = 0x07;
const LDT_DATA16: u16 = 0x0f;
/// Linux's flat 32-bit user code segment in the GDT (`__USER32_CS`): code with it runs in compatibility mode.
const USER32_CS: u16 = 0x23;
/// Linux's flat user data segment (`__USER_DS`).
const USER_DS: u16 = 0x2b;
/// Linux's 64-bit user code segment (`__USER_CS`): the handler puts it back into the context it returns to.
const USER64_CS: u16 = 0x33;
/// Offset of the recovery stub in the harness page.
const RECOVER_OFFSET: u64 = 0x800;
const SCRATCH_PAGE: usize = 0x1000;
const ALT_STACK_SIZE: usize = 64 * 1024;
/// Cases per shared result mapping (about 45 MB of results); longer lists run chunk after chunk.
const CHUNK: usize = 1 << 16;
/// Exit code of a child whose setup (mappings, handlers, seccomp) failed.
const SETUP_FAILED: i32 = 3;
/// Signals the child catches.
const CAUGHT_SIGNALS: [i32; 5] = [libc::SIGTRAP, libc::SIGILL, libc::SIGFPE, libc::SIGSEGV, libc::SIGBUS];
/// Where the general-purpose registers sit in `mcontext_t.gregs`, in x86 encoding order.
const GREG_INDEX: [i32; 16] = [
    libc::REG_RAX,
    libc::REG_RCX,
    libc::REG_RDX,
    libc::REG_RBX,
    libc::REG_RSP,
    libc::REG_RBP,
    libc::REG_RSI,
    libc::REG_RDI,
    libc::REG_R8,
    libc::REG_R9,
    libc::REG_R10,
    libc::REG_R11,
    libc::REG_R12,
    libc::REG_R13,
    libc::REG_R14,
    libc::REG_R15,
];
/// Trap numbers (exception vectors) as the kernel reports them in `REG_TRAPNO`.
mod trap {
    pub const DE: u64 = 0;
    pub const OF: u64 = 4;
    pub const BR: u64 = 5;
    pub const BP: u64 = 3;
    pub const UD: u64 = 6;
    pub const SS: u64 = 12;
    pub const GP: u64 = 13;
    pub const PF: u64 = 14;
    pub const AC: u64 = 17;
    pub const NM: u64 = 7;
    pub const MF: u64 = 16;
    pub const XM: u64 = 19;
}

/// Settings of a native run.
#[derive(Clone, Debug)]
pub struct NativeOptions {
    /// How long one case may run before the child is killed and the case reported as [`Fault::Timeout`].
    pub timeout: Duration,
    /// Run cases under seccomp strict mode (on by default; a case that makes a system call then crashes the child).
    pub seccomp: bool,
}

impl Default for NativeOptions {
    fn default() -> Self {
        NativeOptions {
            timeout: Duration::from_secs(2),
            seccomp: true,
        }
    }
}

/// Why the native runner could not run at all (individual cases never fail this way).
#[derive(Debug)]
pub enum NativeError {
    /// A host call in the parent failed (mmap, fork, waitpid).
    Host(&'static str, io::Error),
    /// The child could not map the fixed addresses or install its handlers.
    ChildSetup,
    /// A case's code does not fit the code page.
    CaseTooLong(usize),
    /// Assembling the prologue failed.
    Assemble(String),
}

impl fmt::Display for NativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NativeError::Host(what, e) => write!(f, "{what} failed: {e}"),
            NativeError::ChildSetup => {
                f.write_str("the oracle child could not set up its fixed mappings, signal handlers or seccomp")
            }
            NativeError::CaseTooLong(i) => write!(f, "case {i} does not fit the {CODE_SIZE}-byte code page"),
            NativeError::Assemble(e) => write!(f, "assembling the harness: {e}"),
        }
    }
}

impl std::error::Error for NativeError {}

/// `# host: <CPUID vendor> <brand string>`: the comment line `cpu-diff-record` writes after the vector file's
/// header, so recorded results name the CPU they come from (rcpps/rsqrtps approximations and x87 transcendental
/// last bits differ between vendors).
pub fn host_line() -> String {
    use std::arch::x86_64::__cpuid;
    // CPUID exists on every x86-64 CPU (the intrinsic is safe there); leaf 0 and the extended leaves it reports.
    let (vendor, brand) = {
        let l0 = __cpuid(0);
        let mut vendor = Vec::new();
        for r in [l0.ebx, l0.edx, l0.ecx] {
            vendor.extend_from_slice(&r.to_le_bytes());
        }
        let mut brand = Vec::new();
        if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
            for leaf in 0x8000_0002u32..=0x8000_0004 {
                let r = __cpuid(leaf);
                for v in [r.eax, r.ebx, r.ecx, r.edx] {
                    brand.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        (vendor, brand)
    };
    let text = |b: Vec<u8>| {
        String::from_utf8_lossy(&b)
            .trim_matches(char::from(0))
            .trim()
            .to_string()
    };
    format!("# host: {} {}", text(vendor), text(brand))
}

/// Runs `cases` on the host CPU with default options. Panics only if the runner itself cannot work (see
/// [`try_run_native`]); whatever a case does is reported in its snapshot.
pub fn run_native(cases: &[Case]) -> Vec<CpuSnapshot> {
    try_run_native(cases, &NativeOptions::default()).unwrap_or_else(|e| panic!("native oracle: {e}"))
}

/// One result slot in the shared mapping, written by the child's signal handler and loop.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawResult {
    xmm: [u128; 16],
    gpr: [u64; 16],
    rip: u64,
    rflags: u64,
    trapno: u64,
    err: u64,
    addr: u64,
    signal: i32,
    mxcsr: u32,
    st: [u128; 8],
    fcw: u16,
    fsw: u16,
    ftw: u8,
    mem: [u8; SCRATCH_LEN],
}

/// Head of the shared mapping.
#[repr(C)]
struct SharedHeader {
    /// Number of cases the current child has finished (an index into the whole batch).
    done: AtomicU64,
    /// Set by the child once its setup succeeded.
    ready: AtomicU64,
}

/// The shared mapping: a header, then one [`RawResult`] per case.
struct Shared {
    base: *mut u8,
    len: usize,
}

impl Shared {
    fn new(count: usize) -> Result<Shared, NativeError> {
        let len = Self::results_offset() + count.max(1) * mem::size_of::<RawResult>();
        // SAFETY: an anonymous shared mapping; the result is checked.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(NativeError::Host("mmap (shared results)", io::Error::last_os_error()));
        }
        Ok(Shared { base: base.cast(), len })
    }

    fn results_offset() -> usize {
        mem::size_of::<SharedHeader>().next_multiple_of(64)
    }

    fn header(&self) -> &SharedHeader {
        // SAFETY: the mapping starts with a zero-initialised header, whose fields are atomics.
        unsafe { &*(self.base as *const SharedHeader) }
    }

    fn slot(&self, i: usize) -> *mut RawResult {
        // SAFETY: `i` is below the count the mapping was sized for (callers index cases).
        unsafe { self.base.add(Self::results_offset()).cast::<RawResult>().add(i) }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Machine code of the harness page: the 64-bit prologue at offset 0, the 32-bit one at [`PROLOGUE32_OFFSET`]
/// and the recovery stub at [`RECOVER_OFFSET`].
fn assemble_harness() -> Result<Vec<u8>, IcedError> {
    let mut code = assemble_prologue(64)?;
    assert!(code.len() <= PROLOGUE32_OFFSET as usize, "64-bit prologue too long");
    code.resize(PROLOGUE32_OFFSET as usize, 0xcc);
    code.extend(assemble_prologue(32)?);
    assert!(code.len() <= PROLOGUE16_OFFSET as usize, "32-bit prologue too long");
    code.resize(PROLOGUE16_OFFSET as usize, 0xcc);
    code.extend(assemble_prologue(16)?);
    assert!(
        code.len() <= RECOVER_OFFSET as usize,
        "prologue overlaps the recovery stub"
    );
    code.resize(RECOVER_OFFSET as usize, 0xcc);
    code.extend(assemble_recovery()?);
    Ok(code)
}

/// The prologue that loads the state block and enters the case as code of `bitness` bits: a near jump for 64,
/// a far jump through [`BLOCK_FAR32`] (selector [`USER32_CS`]) into compatibility mode for 32.
fn assemble_prologue(bitness: u32) -> Result<Vec<u8>, IcedError> {
    use iced_x86::code_asm::*;
    let gprs = [
        rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15,
    ];
    let xmms = [
        xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15,
    ];
    let callee_saved = [rbx, rbp, r12, r13, r14, r15];

    let mut a = CodeAssembler::new(64)?;
    for r in callee_saved {
        a.push(r)?;
    }
    a.mov(qword_ptr(BLOCK_HOST_RSP), rsp)?;
    a.fxrstor64(zmmword_ptr(BLOCK_FX))?;
    for (i, x) in xmms.into_iter().enumerate() {
        a.movdqu(x, xmmword_ptr(BLOCK_XMM + 16 * i as u64))?;
    }
    a.ldmxcsr(dword_ptr(BLOCK_MXCSR))?;
    if bitness == 32 {
        // A 64-bit Linux process runs with DS = ES = 0, which compatibility mode cannot address through (#GP):
        // load the flat user data selector. SS usually holds it already, but not after a 16-bit case (which
        // loads its own). 64-bit code ignores DS/ES/SS bases.
        a.mov(eax, USER_DS as u32)?;
        a.mov(ds, eax)?;
        a.mov(es, eax)?;
        a.mov(ss, eax)?;
    } else if bitness == 16 {
        // DS, ES and SS: the 16-bit data segment based at SCRATCH_ADDR. 64-bit code ignores their bases, so the
        // rest of the prologue (and the recovery stub after the case) still works.
        a.mov(eax, LDT_DATA16 as u32)?;
        a.mov(ds, eax)?;
        a.mov(es, eax)?;
        a.mov(ss, eax)?;
    }
    a.mov(rsp, BLOCK_RFLAGS)?;
    a.popfq()?;
    // RSP last: every other load addresses the state block absolutely.
    for (i, r) in gprs.into_iter().enumerate() {
        if i != crate::state::RSP {
            a.mov(r, qword_ptr(BLOCK_GPR + 8 * i as u64))?;
        }
    }
    a.mov(rsp, qword_ptr(BLOCK_GPR + 8 * crate::state::RSP as u64))?;
    if bitness == 64 {
        a.jmp(CODE_ADDR)?;
        return a.assemble(HARNESS_ADDR);
    }
    // jmp far [BLOCK_FAR32 or BLOCK_FAR16] (FF /5, m16:32, absolute disp32): flags and GPRs are untouched by
    // the switch.
    let (far, at) = if bitness == 32 {
        (BLOCK_FAR32, PROLOGUE32_OFFSET)
    } else {
        (BLOCK_FAR16, PROLOGUE16_OFFSET)
    };
    a.db(&[0xff, 0x2c, 0x25])?;
    a.db(&(far as u32).to_le_bytes())?;
    a.assemble(HARNESS_ADDR + at)
}

/// The recovery stub the signal handler returns to: restores the host's callee-saved registers and returns to the
/// child's loop.
fn assemble_recovery() -> Result<Vec<u8>, IcedError> {
    use iced_x86::code_asm::*;
    let callee_saved = [rbx, rbp, r12, r13, r14, r15];
    let mut b = CodeAssembler::new(64)?;
    b.cld()?;
    for r in callee_saved.into_iter().rev() {
        b.pop(r)?;
    }
    b.ret()?;
    b.assemble(HARNESS_ADDR + RECOVER_OFFSET)
}

/// Runs `cases` on the host CPU. Each case yields one snapshot, in order; see the module doc for the sandbox.
pub fn try_run_native(cases: &[Case], opts: &NativeOptions) -> Result<Vec<CpuSnapshot>, NativeError> {
    if let Some(i) = cases.iter().position(|c| c.code.len() + TERMINATOR.len() > CODE_SIZE) {
        return Err(NativeError::CaseTooLong(i));
    }
    let harness = assemble_harness().map_err(|e| NativeError::Assemble(e.to_string()))?;
    let mut out = Vec::with_capacity(cases.len());
    for chunk in cases.chunks(CHUNK) {
        out.extend(run_chunk(chunk, &harness, opts)?);
    }
    Ok(out)
}

/// Runs up to [`CHUNK`] cases (the shared result mapping is sized for one chunk).
fn run_chunk(cases: &[Case], harness: &[u8], opts: &NativeOptions) -> Result<Vec<CpuSnapshot>, NativeError> {
    let shared = Shared::new(cases.len())?;
    // Allocated before the fork: the child must not allocate (another parent thread may hold the malloc lock).
    let mut alt_stack = vec![0u8; ALT_STACK_SIZE];
    let mut outcome: Vec<Option<Fault>> = vec![None; cases.len()];

    let mut start = 0;
    while start < cases.len() {
        shared.header().done.store(start as u64, Ordering::SeqCst);
        shared.header().ready.store(0, Ordering::SeqCst);
        // SAFETY: the child runs only `child_main`, which never returns and uses async-signal-safe calls only.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(NativeError::Host("fork", io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: in the freshly forked child.
            unsafe { child_main(cases, start, &shared, harness, &mut alt_stack, opts.seccomp) }
        }
        let (stopped_at, fault) = supervise(pid, &shared, cases.len(), opts.timeout)?;
        match fault {
            None => break,
            Some(f) => {
                outcome[stopped_at] = Some(f);
                start = stopped_at + 1;
            }
        }
    }

    Ok(cases
        .iter()
        .enumerate()
        .map(|(i, case)| match outcome[i] {
            Some(fault) => CpuSnapshot {
                state: case.init.clone(),
                rip: 0,
                fault,
            },
            // SAFETY: the slot was filled by the child before it advanced `done` past `i`.
            None => decode(case, unsafe { &*shared.slot(i) }),
        })
        .collect())
}

/// Waits for the child `pid`: returns `(count, None)` once it finished every case, or `(i, Some(fault))` when case
/// `i` killed it or timed out (the child is reaped either way).
fn supervise(
    pid: libc::pid_t,
    shared: &Shared,
    count: usize,
    timeout: Duration,
) -> Result<(usize, Option<Fault>), NativeError> {
    let header = shared.header();
    let mut last = header.done.load(Ordering::Acquire);
    let mut last_progress = Instant::now();
    let mut nap = Duration::from_micros(20);
    loop {
        let mut status = 0;
        // SAFETY: plain waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r < 0 {
            let e = io::Error::last_os_error();
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Err(NativeError::Host("waitpid", e));
        }
        let done = header.done.load(Ordering::Acquire) as usize;
        if r == pid {
            if header.ready.load(Ordering::Acquire) == 0 {
                return Err(NativeError::ChildSetup);
            }
            if done >= count {
                return Ok((count, None));
            }
            let signal = if libc::WIFSIGNALED(status) {
                libc::WTERMSIG(status)
            } else {
                0
            };
            return Ok((done, Some(Fault::Crashed { signal })));
        }
        if done as u64 != last {
            last = done as u64;
            last_progress = Instant::now();
            nap = Duration::from_micros(20);
        } else if last_progress.elapsed() > timeout {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            if header.ready.load(Ordering::Acquire) == 0 {
                return Err(NativeError::ChildSetup);
            }
            let done = header.done.load(Ordering::Acquire) as usize;
            if done >= count {
                return Ok((count, None));
            }
            return Ok((done, Some(Fault::Timeout)));
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(1));
    }
}

/// Turns a raw slot into a snapshot: classifies the signal and makes RIP an offset from [`CODE_ADDR`].
fn decode(case: &Case, raw: &RawResult) -> CpuSnapshot {
    // The CPU sets RF in the RFLAGS image it saves when it delivers a fault; that is an artifact of delivery, not
    // the register's value at the faulting instruction (which rqemu reports), so it is dropped.
    // 32-bit cases: the upper halves of the GPRs are undefined after compatibility mode (normalized away).
    let state = CpuState {
        gpr: raw.gpr,
        rflags: raw.rflags & !crate::state::flags::RF,
        xmm: raw.xmm,
        mxcsr: raw.mxcsr,
        fcw: raw.fcw,
        fsw: raw.fsw,
        ftw: raw.ftw,
        st: raw.st.map(|v| v & crate::state::ST_MASK),
        mem: raw.mem,
    }
    .normalized(case.bitness);
    let mut rip = raw.rip.wrapping_sub(case.ip_base());
    let fault = match (raw.signal, raw.trapno) {
        (libc::SIGTRAP, trap::BP) if rip == case.end_offset() + TERMINATOR.len() as u64 => {
            rip = case.end_offset();
            Fault::None
        }
        (libc::SIGFPE, trap::DE) => Fault::De,
        (libc::SIGFPE, trap::MF) => Fault::Mf,
        (libc::SIGFPE, trap::XM) => Fault::Xm,
        (_, trap::NM) => Fault::Nm,
        (libc::SIGILL, trap::UD) => Fault::Ud,
        (libc::SIGSEGV, trap::GP) => Fault::Gp,
        (libc::SIGSEGV | libc::SIGBUS, trap::SS) => Fault::Ss,
        (libc::SIGSEGV, trap::PF) => Fault::Pf {
            addr: raw.addr,
            write: raw.err & 2 != 0,
        },
        (libc::SIGBUS, trap::AC) => Fault::Ac,
        (libc::SIGSEGV, trap::BR) => Fault::Br,
        (libc::SIGSEGV, trap::OF) => Fault::Of,
        (signal, trapno) => Fault::Other { signal, trapno },
    };
    CpuSnapshot { state, rip, fault }
}

// ---- the child ------------------------------------------------------------------------------------------------

/// The result slot of the case being run; read by the signal handler.
static CURRENT_SLOT: AtomicPtr<RawResult> = AtomicPtr::new(ptr::null_mut());

/// Leaves the child with `code` through the raw `exit` system call (allowed under seccomp strict, unlike
/// `exit_group`; the child has a single thread).
fn child_exit(code: i32) -> ! {
    loop {
        // SAFETY: terminates the calling thread, the child's only one.
        unsafe { libc::syscall(libc::SYS_exit, code) };
    }
}

/// Maps `len` bytes at the fixed `addr` with `prot`, refusing to replace an existing mapping.
unsafe fn map_fixed(addr: u64, len: usize, prot: i32) -> bool {
    let p = libc::mmap(
        addr as *mut libc::c_void,
        len,
        prot,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
        -1,
        0,
    );
    p as u64 == addr
}

/// The child's whole life: set up, run cases `start..`, exit. Uses raw syscalls only, allocates nothing.
unsafe fn child_main(
    cases: &[Case],
    start: usize,
    shared: &Shared,
    harness: &[u8],
    alt_stack: &mut [u8],
    seccomp: bool,
) -> ! {
    let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
    if !map_fixed(HARNESS_ADDR, HARNESS_SIZE, rwx)
        || !map_fixed(CODE_ADDR, CODE_SIZE, rwx)
        || !map_fixed(SCRATCH_ADDR, SCRATCH_PAGE, libc::PROT_READ | libc::PROT_WRITE)
    {
        child_exit(SETUP_FAILED);
    }
    ptr::copy_nonoverlapping(harness.as_ptr(), HARNESS_ADDR as *mut u8, harness.len());
    ptr::write_bytes(CODE_ADDR as *mut u8, TERMINATOR[0], CODE_SIZE);
    *(BLOCK_FAR32 as *mut u32) = CODE_ADDR as u32;
    *((BLOCK_FAR32 + 4) as *mut u16) = USER32_CS;
    *(BLOCK_FAR16 as *mut u32) = 0;
    *((BLOCK_FAR16 + 4) as *mut u16) = LDT_CODE16;
    // The 16-bit segments (only 16-bit cases use them; a kernel without modify_ldt fails them with #GP).
    install_ldt_entry(0, CODE_ADDR as u32, true);
    install_ldt_entry(1, SCRATCH_ADDR as u32, false);

    let ss = libc::stack_t {
        ss_sp: alt_stack.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: alt_stack.len(),
    };
    if libc::sigaltstack(&ss, ptr::null_mut()) != 0 {
        child_exit(SETUP_FAILED);
    }
    for sig in CAUGHT_SIGNALS {
        let mut sa: libc::sigaction = mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, ptr::null_mut()) != 0 {
            child_exit(SETUP_FAILED);
        }
    }
    // The forking thread's signal mask is inherited: a blocked synchronous signal would kill the child.
    let mut unblock: libc::sigset_t = mem::zeroed();
    libc::sigemptyset(&mut unblock);
    for sig in CAUGHT_SIGNALS {
        libc::sigaddset(&mut unblock, sig);
    }
    libc::sigprocmask(libc::SIG_UNBLOCK, &unblock, ptr::null_mut());
    // A parent that dies should not leave the child spinning in a case.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    if seccomp && libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_STRICT) != 0 {
        child_exit(SETUP_FAILED);
    }
    let header = shared.header();
    header.ready.store(1, Ordering::Release);

    let prologue64: extern "C" fn() = mem::transmute(HARNESS_ADDR as usize);
    let prologue32: extern "C" fn() = mem::transmute((HARNESS_ADDR + PROLOGUE32_OFFSET) as usize);
    let prologue16: extern "C" fn() = mem::transmute((HARNESS_ADDR + PROLOGUE16_OFFSET) as usize);
    let mut prev_len = 0;
    for (i, case) in cases.iter().enumerate().skip(start) {
        let slot = shared.slot(i);
        ptr::write_bytes(slot, 0, 1);
        let init = &case.init;
        let block = BLOCK_ADDR as *mut u8;
        ptr::copy_nonoverlapping(init.gpr.as_ptr(), BLOCK_GPR as *mut u64, 16);
        *(BLOCK_RFLAGS as *mut u64) = init.rflags;
        // Reserved MXCSR bits would make the prologue's ldmxcsr fault.
        *(BLOCK_MXCSR as *mut u32) = init.mxcsr & 0xffff;
        ptr::copy_nonoverlapping(init.xmm.as_ptr().cast::<u8>(), block.add(0xa0), 16 * 16);
        write_fx_image(BLOCK_FX as *mut u8, init);
        ptr::write_bytes(CODE_ADDR as *mut u8, TERMINATOR[0], prev_len);
        ptr::copy_nonoverlapping(case.code.as_ptr(), CODE_ADDR as *mut u8, case.code.len());
        ptr::copy_nonoverlapping(
            TERMINATOR.as_ptr(),
            (CODE_ADDR as *mut u8).add(case.code.len()),
            TERMINATOR.len(),
        );
        prev_len = case.code.len() + TERMINATOR.len();
        ptr::write_bytes(SCRATCH_ADDR as *mut u8, 0, SCRATCH_PAGE);
        ptr::copy_nonoverlapping(init.mem.as_ptr(), SCRATCH_ADDR as *mut u8, SCRATCH_LEN);

        CURRENT_SLOT.store(slot, Ordering::SeqCst);
        match case.bitness {
            32 => prologue32(),
            16 => prologue16(),
            _ => prologue64(),
        }
        CURRENT_SLOT.store(ptr::null_mut(), Ordering::SeqCst);

        ptr::copy_nonoverlapping(SCRATCH_ADDR as *const u8, (*slot).mem.as_mut_ptr(), SCRATCH_LEN);
        header.done.store(i as u64 + 1, Ordering::Release);
    }
    child_exit(0)
}

/// Fills the FXSAVE image at `fx` (512 bytes) from `init`: FCW, FSW, abridged FTW, FOP/FIP/FDP zero, MXCSR,
/// ST0-7 (stack order, as FXSAVE stores them) and XMM0-15. Reserved bytes are zero.
unsafe fn write_fx_image(fx: *mut u8, init: &CpuState) {
    ptr::write_bytes(fx, 0, 512);
    ptr::copy_nonoverlapping(init.fcw.to_le_bytes().as_ptr(), fx, 2);
    ptr::copy_nonoverlapping(init.fsw.to_le_bytes().as_ptr(), fx.add(2), 2);
    *fx.add(4) = init.ftw;
    // Reserved MXCSR bits would make fxrstor fault.
    ptr::copy_nonoverlapping((init.mxcsr & 0xffff).to_le_bytes().as_ptr(), fx.add(24), 4);
    for (i, v) in init.st.iter().enumerate() {
        ptr::copy_nonoverlapping(
            (v & crate::state::ST_MASK).to_le_bytes().as_ptr(),
            fx.add(32 + 16 * i),
            16,
        );
    }
    for (i, v) in init.xmm.iter().enumerate() {
        ptr::copy_nonoverlapping(v.to_le_bytes().as_ptr(), fx.add(160 + 16 * i), 16);
    }
}

/// Writes entry `entry` of the process's LDT (modify_ldt(2), func 1): a present 16-bit segment with `base` and a
/// 64 KiB limit, code (readable, non-conforming) or data (writable, expand-up, 16-bit stack). Errors are ignored:
/// 16-bit cases then fault with #GP, which the comparison reports.
unsafe fn install_ldt_entry(entry: u32, base: u32, code: bool) {
    // struct user_desc: entry_number, base_addr, limit, then the flags word (seg_32bit bit 0, contents bits
    // 1..3: 0 data, 2 code; read_exec_only bit 3, limit_in_pages bit 4, seg_not_present bit 5, useable bit 6).
    let desc: [u32; 4] = [entry, base, 0xffff, if code { 2 << 1 } else { 0 }];
    libc::syscall(libc::SYS_modify_ldt, 1, desc.as_ptr(), mem::size_of_val(&desc));
}

/// The child's handler for every caught signal: records the state at the signal into the current slot and sends
/// the case's thread back to the recovery stub (see the module doc). A signal outside a case kills the child.
extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let slot = CURRENT_SLOT.load(Ordering::SeqCst);
    if slot.is_null() {
        // A fault in the harness itself: let the parent see a crash.
        child_exit(100 + signal);
    }
    // SAFETY: the kernel passes a valid siginfo and ucontext; `slot` points into the shared mapping.
    unsafe {
        let uc = &mut *(ctx as *mut libc::ucontext_t);
        let gregs = &mut uc.uc_mcontext.gregs;
        let out = &mut *slot;
        for (i, g) in GREG_INDEX.iter().enumerate() {
            out.gpr[i] = gregs[*g as usize] as u64;
        }
        out.rip = gregs[libc::REG_RIP as usize] as u64;
        out.rflags = gregs[libc::REG_EFL as usize] as u64;
        out.trapno = gregs[libc::REG_TRAPNO as usize] as u64;
        out.err = gregs[libc::REG_ERR as usize] as u64;
        out.addr = (*info).si_addr() as u64;
        out.signal = signal;
        let fp = uc.uc_mcontext.fpregs;
        if !fp.is_null() {
            out.mxcsr = (*fp).mxcsr;
            for (i, x) in (*fp)._xmm.iter().enumerate() {
                let e = x.element;
                out.xmm[i] = e[0] as u128 | (e[1] as u128) << 32 | (e[2] as u128) << 64 | (e[3] as u128) << 96;
            }
            // The frame's FPU area starts with the FXSAVE layout (also when the kernel uses XSAVE).
            let raw = fp as *mut u8;
            let word = |off: usize| u16::from_le_bytes([*raw.add(off), *raw.add(off + 1)]);
            out.fcw = word(0);
            out.fsw = word(2);
            out.ftw = *raw.add(4);
            for i in 0..8 {
                let mut b = [0u8; 16];
                ptr::copy_nonoverlapping(raw.add(32 + 16 * i), b.as_mut_ptr(), 10);
                out.st[i] = u128::from_le_bytes(b);
            }
            (*fp).mxcsr = crate::state::MXCSR_DEFAULT;
            // A clean x87 state for the harness: no pending exception (which would raise #MF at the next waiting
            // x87 instruction, or at the next fxrstor's successor) and an empty stack.
            (*fp).cwd = crate::state::FCW_DEFAULT;
            (*fp).swd = 0;
            (*fp).ftw = 0;
        }
        gregs[libc::REG_RIP as usize] = (HARNESS_ADDR + RECOVER_OFFSET) as i64;
        gregs[libc::REG_RSP as usize] = *(BLOCK_HOST_RSP as *const u64) as i64;
        gregs[libc::REG_EFL as usize] = crate::state::flags::FIXED1 as i64;
        // A 32- or 16-bit case was interrupted in compatibility mode: return to the stub in 64-bit mode (the low
        // 16 bits of the CS/GS/FS/SS word are CS; rt_sigreturn loads it). SS is left alone: rewriting it here
        // made the kernel kill the child after `popfd` had set AC; a 16-bit case's SS (based at SCRATCH_ADDR)
        // is harmless in 64-bit mode, and the 32-bit prologue loads its own.
        let csgsfs = &mut gregs[libc::REG_CSGSFS as usize];
        *csgsfs = (*csgsfs & !0xffff) | i64::from(USER64_CS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_line_names_the_vendor() {
        let line = host_line();
        // "# host: " and a 12-character vendor at least.
        assert!(line.starts_with("# host: ") && line.len() >= 20, "{line}");
        assert!(crate::parse_vectors(&format!("{}\n{line}\n", crate::vectors::HEADER))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn harness_assembles() {
        let code = assemble_harness().unwrap();
        assert!(code.len() > RECOVER_OFFSET as usize);
        assert!(code.len() <= 0x1000);
    }
}
