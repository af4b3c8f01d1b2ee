//! Linear-address memory as the segmentation and interrupt-delivery helpers ([`crate::seg_helper`],
//! [`crate::excp_helper`]) see it: the [`SysMem`] trait, the [`Fault`] every helper returns, and [`FlatMem`], a
//! flat `Vec<u8>` implementation for tests.
//!
//! The helpers address memory by *linear* address (segment base already added) and say with what
//! [`Privilege`] the access is made, so the machine can run the same page walk as for generated code:
//! - descriptor tables (GDT, LDT, IDT) and the TSS are read, and accessed bits written, with
//!   [`Privilege::Implicit`] (supervisor rights whatever the CPL, U = 0 in a #PF error code);
//! - stack pushes and pops use the privilege of the CPL they are made at: [`Privilege::User`] at CPL 3,
//!   [`Privilege::Supervisor`] (with EFLAGS.AC) below (see [`crate::seg_helper::data_privilege`]).
//!
//! The machine implements [`SysMem`] over its `SoftMmu` (a TLB lookup or `paging::translate` with that
//! privilege, then the access); a failed translation comes back as a [`Fault`] holding the #PF (vector 14, the
//! walk's error code and the faulting address for CR2), which the helper returns unchanged. [`PagedMem`] is a
//! ready implementation without the TLB: a page walk ([`paging::translate`]) per access over the physical
//! [`AddressSpace`], usable by the machine as it is (see its doc for what it does not do).

use rqemu_softmmu::{Access, AddressSpace, SoftMmu, TlbFill};

use crate::cpu::{excp, X86CpuState};
use crate::paging::{self, pf_err, PageFault, PagingMode, PagingRegs, PhysMem, Privilege};

/// Vector of #DF (double fault).
pub const EXCP_DF: u32 = 8;
/// Vector of #TS (invalid TSS).
pub const EXCP_TS: u32 = 10;
/// Vector of #NP (segment not present).
pub const EXCP_NP: u32 = 11;
/// Vector of #SS (stack-segment fault).
pub const EXCP_SS: u32 = 12;

/// An exception a helper raises instead of completing: the vector, its error code (0 when the vector has
/// none) and, for #PF, the faulting linear address (CR2 when delivered; 0 otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The exception vector.
    pub vector: u32,
    /// The error code.
    pub error_code: u32,
    /// The faulting linear address (#PF only).
    pub addr: u64,
}

impl Fault {
    /// Exception `vector` with `error_code`.
    pub const fn new(vector: u32, error_code: u32) -> Fault {
        Fault {
            vector,
            error_code,
            addr: 0,
        }
    }

    /// #GP(`error_code`).
    pub const fn gp(error_code: u32) -> Fault {
        Fault::new(excp::GP, error_code)
    }

    /// #NP(`error_code`).
    pub const fn np(error_code: u32) -> Fault {
        Fault::new(EXCP_NP, error_code)
    }

    /// #SS(`error_code`).
    pub const fn ss(error_code: u32) -> Fault {
        Fault::new(EXCP_SS, error_code)
    }

    /// #TS(`error_code`).
    pub const fn ts(error_code: u32) -> Fault {
        Fault::new(EXCP_TS, error_code)
    }

    /// #UD.
    pub const fn ud() -> Fault {
        Fault::new(excp::UD, 0)
    }

    /// #DF(0).
    pub const fn df() -> Fault {
        Fault::new(EXCP_DF, 0)
    }

    /// #PF from a page walk.
    pub const fn page(pf: PageFault) -> Fault {
        Fault {
            vector: excp::PF,
            error_code: pf.error_code,
            addr: pf.addr,
        }
    }

    /// Records the fault as the pending exception of `s` (what a helper called from generated code does
    /// before it exits: vector, error code, fault word and, for #PF, `fault_addr`).
    pub fn record(&self, s: &mut X86CpuState) {
        s.raise(self.vector, self.error_code);
        if self.vector == excp::PF {
            s.fault_addr = self.addr;
        }
    }
}

impl From<PageFault> for Fault {
    fn from(pf: PageFault) -> Fault {
        Fault::page(pf)
    }
}

/// Linear-address memory for the system helpers. `size` is 1, 2, 4 or 8 bytes, little-endian; a read
/// returns the value zero-extended, a write stores the low `size` bytes of `value`.
pub trait SysMem {
    /// Reads `size` bytes at `linear` with `privilege`.
    fn read(&mut self, linear: u64, size: u8, privilege: Privilege) -> Result<u64, Fault>;
    /// Writes the low `size` bytes of `value` at `linear` with `privilege`.
    fn write(&mut self, linear: u64, size: u8, value: u64, privilege: Privilege) -> Result<(), Fault>;
}

/// One access [`FlatMem`] logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Logged {
    /// A write (else a read).
    pub write: bool,
    /// The linear address.
    pub linear: u64,
    /// The size in bytes.
    pub size: u8,
    /// The value read or written.
    pub value: u64,
    /// With what privilege.
    pub privilege: Privilege,
}

/// A flat linear memory (linear = offset into `bytes`, no paging) for tests: an access that does not fit
/// entirely inside `bytes` is a not-present #PF at its first byte (W for writes, U for [`Privilege::User`]),
/// so tests can provoke page faults during delivery. Every access is logged in `log`.
#[derive(Clone, Debug, Default)]
pub struct FlatMem {
    /// The memory.
    pub bytes: Vec<u8>,
    /// Every access made, in order.
    pub log: Vec<Logged>,
}

impl FlatMem {
    /// `size` bytes of zeros.
    pub fn new(size: usize) -> FlatMem {
        FlatMem {
            bytes: vec![0; size],
            log: Vec::new(),
        }
    }

    /// The byte range of an access, or the #PF it raises.
    fn range(
        &self,
        linear: u64,
        size: u8,
        write: bool,
        privilege: Privilege,
    ) -> Result<core::ops::Range<usize>, Fault> {
        let start = usize::try_from(linear).ok();
        let end = start.and_then(|s| s.checked_add(usize::from(size)));
        match (start, end) {
            (Some(s), Some(e)) if e <= self.bytes.len() => Ok(s..e),
            _ => {
                let mut code = 0;
                if write {
                    code |= pf_err::W;
                }
                if privilege == Privilege::User {
                    code |= pf_err::U;
                }
                Err(Fault::page(PageFault {
                    addr: linear,
                    error_code: code,
                }))
            }
        }
    }

    /// Reads `size` bytes (no log, no fault: out of range reads as 0), for test assertions.
    pub fn peek(&self, linear: u64, size: u8) -> u64 {
        let mut v = 0u64;
        for i in 0..u64::from(size) {
            let b = usize::try_from(linear.wrapping_add(i))
                .ok()
                .and_then(|a| self.bytes.get(a))
                .copied()
                .unwrap_or(0);
            v |= u64::from(b) << (8 * i);
        }
        v
    }

    /// Writes `size` bytes (no log; out of range bytes are dropped), to set memory up.
    pub fn poke(&mut self, linear: u64, size: u8, value: u64) {
        for i in 0..u64::from(size) {
            if let Some(b) = usize::try_from(linear.wrapping_add(i))
                .ok()
                .and_then(|a| self.bytes.get_mut(a))
            {
                *b = (value >> (8 * i)) as u8;
            }
        }
    }
}

impl SysMem for FlatMem {
    fn read(&mut self, linear: u64, size: u8, privilege: Privilege) -> Result<u64, Fault> {
        self.range(linear, size, false, privilege)?;
        let value = self.peek(linear, size);
        self.log.push(Logged {
            write: false,
            linear,
            size,
            value,
            privilege,
        });
        Ok(value)
    }

    fn write(&mut self, linear: u64, size: u8, value: u64, privilege: Privilege) -> Result<(), Fault> {
        self.range(linear, size, true, privilege)?;
        self.poke(linear, size, value);
        let value = if size >= 8 {
            value
        } else {
            value & ((1u64 << (8 * u32::from(size))) - 1)
        };
        self.log.push(Logged {
            write: true,
            linear,
            size,
            value,
            privilege,
        });
        Ok(())
    }
}

/// Page size the split of page-crossing accesses works with (the smallest page: a larger page only makes the
/// split unnecessary, never wrong).
const PAGE: u64 = 0x1000;

/// [`SysMem`] over physical memory with a page walk per access: linear address → [`paging::translate`] with the
/// access's privilege under `regs` (A/D flags set as the walk does) → [`AddressSpace::read`]/`write`. An access
/// that crosses a page boundary translates both pages before touching either, then goes byte by byte. In
/// 4-level paging a non-canonical address is #GP(0) (the helpers check their stack addresses first and raise
/// #SS there).
///
/// It does not use or fill the softmmu TLB: a walk per access is fine for descriptor loads and event delivery,
/// which are rare next to generated code. Over a [`SoftMmu`] (the machine's case) data writes go through
/// [`SoftMmu::write_phys`], so a push into a page holding translated code invalidates those TBs; over a bare
/// [`AddressSpace`] (tests) nothing tracks code.
pub struct PagedMem<'a, B: PhysBus + ?Sized = AddressSpace> {
    /// The physical memory: an [`AddressSpace`], or the CPU's [`SoftMmu`].
    pub space: &'a mut B,
    /// CR0, CR3, CR4, EFER at the time of the access ([`PagingRegs::from_state`]).
    pub regs: PagingRegs,
}

impl<B: PhysBus + ?Sized> PagedMem<'_, B> {
    /// The physical address of `linear` for `access`, or the fault.
    fn translate(&mut self, linear: u64, access: Access, privilege: Privilege) -> Result<u64, Fault> {
        if self.regs.mode() == PagingMode::Long4 && !crate::seg_helper::is_canonical(linear) {
            return Err(Fault::gp(0));
        }
        let walk = paging::translate(self.space, &self.regs, linear, access, privilege)?;
        Ok(walk.paddr)
    }

    /// The physical address of each byte of the access (`size` ≤ 8), both pages translated first.
    fn bytes(&mut self, linear: u64, size: u8, access: Access, privilege: Privilege) -> Result<[u64; 8], Fault> {
        let last = linear.wrapping_add(u64::from(size).saturating_sub(1));
        let first_page = self.translate(linear, access, privilege)?;
        let second_page = if (linear ^ last) & !(PAGE - 1) != 0 {
            Some(self.translate(last & !(PAGE - 1), access, privilege)?)
        } else {
            None
        };
        let mut out = [0u64; 8];
        for (i, p) in out.iter_mut().enumerate().take(usize::from(size)) {
            let a = linear.wrapping_add(i as u64);
            *p = match second_page {
                Some(second) if (a ^ linear) & !(PAGE - 1) != 0 => second + (a & (PAGE - 1)),
                _ => first_page.wrapping_add(i as u64),
            };
        }
        Ok(out)
    }
}

impl<B: PhysBus + ?Sized> SysMem for PagedMem<'_, B> {
    fn read(&mut self, linear: u64, size: u8, privilege: Privilege) -> Result<u64, Fault> {
        let size = size.min(8);
        let last = linear.wrapping_add(u64::from(size).saturating_sub(1));
        if (linear ^ last) & !(PAGE - 1) == 0 {
            let p = self.translate(linear, Access::Read, privilege)?;
            return Ok(self.space.read_phys(p, u32::from(size)));
        }
        let bytes = self.bytes(linear, size, Access::Read, privilege)?;
        let mut v = 0u64;
        for (i, p) in bytes.iter().enumerate().take(usize::from(size)) {
            v |= (self.space.read_phys(*p, 1) & 0xff) << (8 * i);
        }
        Ok(v)
    }

    fn write(&mut self, linear: u64, size: u8, value: u64, privilege: Privilege) -> Result<(), Fault> {
        let size = size.min(8);
        let last = linear.wrapping_add(u64::from(size).saturating_sub(1));
        if (linear ^ last) & !(PAGE - 1) == 0 {
            let p = self.translate(linear, Access::Write, privilege)?;
            self.space.write_phys(p, u32::from(size), value);
            return Ok(());
        }
        let bytes = self.bytes(linear, size, Access::Write, privilege)?;
        for (i, p) in bytes.iter().enumerate().take(usize::from(size)) {
            self.space.write_phys(*p, 1, (value >> (8 * i)) & 0xff);
        }
        Ok(())
    }
}

/// Physical memory as [`PagedMem`] reaches it: page-table entries through [`PhysMem`] (the walk), data through
/// `read_phys`/`write_phys`.
pub trait PhysBus: PhysMem {
    /// Reads `size` bytes (1 to 8) at `paddr`, little-endian.
    fn read_phys(&mut self, paddr: u64, size: u32) -> u64;
    /// Writes the low `size` bytes (1 to 8) of `value` at `paddr`.
    fn write_phys(&mut self, paddr: u64, size: u32, value: u64);
}

/// Plain dispatch: no code tracking (tests, loaders).
impl PhysBus for AddressSpace {
    fn read_phys(&mut self, paddr: u64, size: u32) -> u64 {
        self.read(paddr, size)
    }

    fn write_phys(&mut self, paddr: u64, size: u32, value: u64) {
        self.write(paddr, size, value)
    }
}

/// The CPU's memory: writes to pages holding translated code call the code-write hook.
impl<F: TlbFill> PhysBus for SoftMmu<F> {
    fn read_phys(&mut self, paddr: u64, size: u32) -> u64 {
        self.space_mut().read(paddr, size)
    }

    fn write_phys(&mut self, paddr: u64, size: u32, value: u64) {
        SoftMmu::write_phys(self, paddr, size, value)
    }
}

/// Page walks over the CPU's memory: entries are read and their A/D bits written through the address space.
impl<F: TlbFill> PhysMem for SoftMmu<F> {
    fn read_u32(&mut self, paddr: u64) -> u32 {
        self.space_mut().read_u32(paddr)
    }

    fn read_u64(&mut self, paddr: u64) -> u64 {
        self.space_mut().read_u64(paddr)
    }

    fn write_u32(&mut self, paddr: u64, value: u32) {
        SoftMmu::write_phys(self, paddr, 4, u64::from(value))
    }

    fn write_u64(&mut self, paddr: u64, value: u64) {
        SoftMmu::write_phys(self, paddr, 8, value)
    }
}
