//! The guest image: its memory layout, [`Guest`] (a multiboot image built from sections of 16/32/64-bit
//! code assembled with iced-x86 and data), the run-time library every image carries (hex printing, the
//! exception and interrupt report handlers) and the setup snippets guests are written with.
//!
//! The image is loaded at 1 MiB by the multiboot a.out kludge and entered at [`ENTRY`] in 32-bit
//! protected mode with paging off. The entry prelude loads the guest's own GDT ([`crate::tables`]), the
//! protected-mode IDT and the 32-bit TSS. Code placed elsewhere is reached through the fixed addresses
//! below (iced labels do not cross sections, which need assemblers of different bitness).
//!
//! The handlers print `#vv` (the vector in hex), ` err=xxxxxxxx` for exceptions with an error code,
//! ` cr2=...` for #PF (8 digits in protected mode, 16 in long mode), then a newline. An exception handler
//! then resumes at the address in [`RESUME`] (clearing it), or ends the guest with status 0x7f when it is
//! 0. Vectors from 32 up (interrupts) send the master PIC an EOI and return where they interrupted unless
//! [`RESUME`] is set.

use iced_x86::code_asm::*;

use crate::tables::has_error_code;

/// Where the image (and its multiboot header) is loaded.
pub const LOAD: u32 = 0x10_0000;
/// The 32-bit entry point, right after the 32-byte header.
pub const ENTRY: u32 = LOAD + 32;
/// Where guests put their 64-bit code.
pub const CODE64: u32 = 0x10_4000;
/// `puthex32`: prints the low `ecx` hex digits of `eax` on the debug console; keeps every register.
pub const PUTHEX32: u32 = 0x10_8000;
/// `puthex64`: prints the low `ecx` hex digits of `rax` on the debug console; keeps every register.
pub const PUTHEX64: u32 = 0x10_8800;
/// The protected-mode handler stubs ([`STUB_SIZE`] bytes per vector), then their common part.
pub const H32: u32 = 0x10_9000;
/// The long-mode handler stubs.
pub const H64: u32 = 0x10_b000;
/// Bytes per handler stub.
pub const STUB_SIZE: u32 = 16;
/// Where the 32-bit call gate at [`SEL_CALLGATE32`] goes (guest code).
pub const CALLGATE32_TARGET: u32 = 0x10_d000;
/// Where the 64-bit call gate at [`SEL_CALLGATE64`] goes (guest code).
pub const CALLGATE64_TARGET: u32 = 0x10_d800;
/// Free for a guest's further code (syscall targets, ring-3 code, ...).
pub const AUX: u32 = 0x10_e000;
/// The GDT.
pub const GDT: u32 = 0x11_0000;
/// The GDT's pseudo-descriptor.
pub const GDTR: u32 = 0x11_0f00;
/// The protected-mode IDT's pseudo-descriptor.
pub const IDTR32: u32 = 0x11_0f10;
/// The long-mode IDT's pseudo-descriptor.
pub const IDTR64: u32 = 0x11_0f20;
/// Where an exception handler resumes (8 bytes; 0: end the guest with 0x7f).
pub const RESUME: u32 = 0x11_0f40;
/// Free scratch memory for guests (256 bytes).
pub const SCRATCH: u32 = 0x11_0f80;
/// The protected-mode IDT.
pub const IDT32: u32 = 0x11_1000;
/// The long-mode IDT.
pub const IDT64: u32 = 0x11_2000;
/// The 32-bit TSS.
pub const TSS32: u32 = 0x11_3000;
/// The 64-bit TSS.
pub const TSS64: u32 = 0x11_3100;
/// 4-level paging: PML4, PDPT, PD, PT (4..6 MiB in 4 KiB pages).
pub const PML4: u32 = 0x12_0000;
/// The PDPT of [`PML4`].
pub const PDPT: u32 = 0x12_1000;
/// The PD of [`PDPT`] and [`PAE_PDPT`].
pub const PD: u32 = 0x12_2000;
/// The PT of 4..6 MiB.
pub const PT: u32 = 0x12_3000;
/// The PAE PDPT (CR3 in PAE mode).
pub const PAE_PDPT: u32 = 0x12_4000;
/// The 32-bit paging PD (4 MiB pages).
pub const PD32: u32 = 0x12_5000;
/// The 32-bit paging PT of 4..8 MiB.
pub const PT32: u32 = 0x12_6000;
/// The end of the image.
pub const IMAGE_END: u32 = 0x12_7000;
/// Where real-mode code is copied to (below 1 MiB, reachable with 16-bit segments).
pub const LOW_CODE: u32 = 0x8000;
/// The ring-0 stack top.
pub const STACK: u32 = 0x8_0000;
/// The ring-3 stack top.
pub const USER_STACK: u32 = 0x7_0000;
/// The stack the TSSs give ring 0 when an interrupt comes from ring 3.
pub const STACK0: u32 = 0x9_0000;
/// The 64-bit TSS's IST1 stack.
pub const IST1_STACK: u32 = 0x9_8000;

/// 32-bit ring-0 code.
pub const SEL_CODE32: u16 = 0x08;
/// Ring-0 data.
pub const SEL_DATA: u16 = 0x10;
/// 64-bit ring-0 code.
pub const SEL_CODE64: u16 = 0x18;
/// Ring-0 data after [`SEL_CODE64`] (SYSCALL's SS).
pub const SEL_DATA64: u16 = 0x20;
/// 32-bit ring-3 code (RPL 0; or in 3).
pub const SEL_UCODE32: u16 = 0x28;
/// Ring-3 data.
pub const SEL_UDATA: u16 = 0x30;
/// 64-bit ring-3 code.
pub const SEL_UCODE64: u16 = 0x38;
/// 16-bit code (base 0, limit 64 KiB).
pub const SEL_CODE16: u16 = 0x40;
/// 16-bit data.
pub const SEL_DATA16: u16 = 0x48;
/// The 32-bit TSS.
pub const SEL_TSS32: u16 = 0x50;
/// The 64-bit TSS.
pub const SEL_TSS64: u16 = 0x58;
/// The 32-bit call gate (DPL 3) to [`CALLGATE32_TARGET`].
pub const SEL_CALLGATE32: u16 = 0x68;
/// The 64-bit call gate (DPL 3) to [`CALLGATE64_TARGET`].
pub const SEL_CALLGATE64: u16 = 0x70;
/// A data segment that is not present.
pub const SEL_NOTPRESENT: u16 = 0x80;

/// The assembler closures' result.
pub type Asm = Result<(), IcedError>;

/// A multiboot image under construction: bytes from [`LOAD`] to [`IMAGE_END`].
pub struct Guest {
    mem: Vec<u8>,
}

impl Default for Guest {
    fn default() -> Self {
        Guest::new()
    }
}

impl Guest {
    /// An image with the header, the tables, the run-time library and handlers, and no entry code yet.
    pub fn new() -> Guest {
        let mut g = Guest {
            mem: vec![0; (IMAGE_END - LOAD) as usize],
        };
        let (magic, flags) = (0x1bad_b002u32, 0x0001_0003u32);
        let header = [
            magic,
            flags,
            0u32.wrapping_sub(magic).wrapping_sub(flags),
            LOAD,
            LOAD,
            0,
            0,
            ENTRY,
        ];
        let bytes: Vec<u8> = header.iter().flat_map(|w| w.to_le_bytes()).collect();
        g.data(LOAD, &bytes);
        crate::tables::install(&mut g);
        g.code(PUTHEX32, 32, |a| puthex(a, 32));
        g.code(PUTHEX64, 64, |a| puthex(a, 64));
        for v in 0..=255u8 {
            g.code(H32 + u32::from(v) * STUB_SIZE, 32, |a| {
                stub(a, v, H32 + 256 * STUB_SIZE)
            });
            g.code(H64 + u32::from(v) * STUB_SIZE, 64, |a| {
                stub(a, v, H64 + 256 * STUB_SIZE)
            });
        }
        g.code(H32 + 256 * STUB_SIZE, 32, |a| handler_common(a, 32));
        g.code(H64 + 256 * STUB_SIZE, 64, |a| handler_common(a, 64));
        g
    }

    /// A guest from the bytes of an image (as [`Guest::image`] gives them).
    pub fn from_image(mem: Vec<u8>) -> Guest {
        Guest { mem }
    }

    /// Places `bytes` at guest-physical `addr` (inside the image).
    pub fn data(&mut self, addr: u32, bytes: &[u8]) {
        let at = (addr - LOAD) as usize;
        self.mem[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Assembles `build` as `bits`-bit code placed at `addr`, and returns its size.
    pub fn code(&mut self, addr: u32, bits: u32, build: impl FnOnce(&mut CodeAssembler) -> Asm) -> usize {
        let bytes = assemble(addr, bits, build);
        self.data(addr, &bytes);
        bytes.len()
    }

    /// The 32-bit entry code: the prelude (stack, the guest's GDT, IDT and TSS), then `build`.
    pub fn entry(&mut self, build: impl FnOnce(&mut CodeAssembler) -> Asm) {
        self.code(ENTRY, 32, |a| {
            a.mov(esp, STACK)?;
            a.lgdt(ptr(GDTR))?;
            a.lidt(ptr(IDTR32))?;
            // CS 0x08 is flat 32-bit code in the boot GDT and in ours: its cached descriptor stays right.
            a.mov(eax, u32::from(SEL_DATA))?;
            for s in [ds, es, fs, gs, ss] {
                a.mov(s, ax)?;
            }
            a.mov(ax, u32::from(SEL_TSS32))?;
            a.ltr(ax)?;
            build(a)
        });
    }

    /// The multiboot image.
    pub fn image(self) -> Vec<u8> {
        self.mem
    }
}

/// Assembles `build` as `bits`-bit code at `addr`.
pub fn assemble(addr: u32, bits: u32, build: impl FnOnce(&mut CodeAssembler) -> Asm) -> Vec<u8> {
    let mut a = CodeAssembler::new(bits).unwrap();
    build(&mut a).unwrap();
    a.assemble(u64::from(addr)).unwrap()
}

/// Writes `text` on the debug console (`out dx, al` per byte; clobbers al and dx; any bitness).
pub fn print(a: &mut CodeAssembler, text: &str) -> Asm {
    a.mov(dx, 0xe9u32)?;
    for &b in text.as_bytes() {
        a.mov(al, u32::from(b))?;
        a.out(dx, al)?;
    }
    Ok(())
}

/// Writes `text` on COM1's transmit register (clobbers al and dx).
pub fn print_serial(a: &mut CodeAssembler, text: &str) -> Asm {
    a.mov(dx, 0x3f8u32)?;
    for &b in text.as_bytes() {
        a.mov(al, u32::from(b))?;
        a.out(dx, al)?;
    }
    Ok(())
}

/// Ends the guest through isa-debug-exit with `value` (status `(value << 1) | 1`), any bitness.
pub fn exit(a: &mut CodeAssembler, value: u8) -> Asm {
    a.mov(al, u32::from(value))?;
    a.out(0xf4u32, al)?;
    let mut l = a.create_label();
    a.set_label(&mut l)?;
    a.hlt()?;
    a.jmp(l)
}

/// Prints the low `digits` hex digits of eax (32-bit code) or rax (64-bit code).
pub fn hex(a: &mut CodeAssembler, digits: u32) -> Asm {
    a.mov(ecx, digits)?;
    if a.bitness() == 64 {
        a.call(u64::from(PUTHEX64))
    } else {
        a.call(u64::from(PUTHEX32))
    }
}

/// Prints `ok <what>` when the flags say equal, else `FAIL <what>` and ends with status 3 (value 1).
pub fn check_eq(a: &mut CodeAssembler, what: &str) -> Asm {
    let mut bad = a.create_label();
    let mut done = a.create_label();
    a.jne(bad)?;
    print(a, &format!("ok {what}\n"))?;
    a.jmp(done)?;
    a.set_label(&mut bad)?;
    print(a, &format!("FAIL {what}\n"))?;
    exit(a, 1)?;
    a.set_label(&mut done)?;
    a.nop()
}

/// Sets [`RESUME`] to `label` (the handler of the next exception resumes there). 32- or 64-bit code.
pub fn set_resume(a: &mut CodeAssembler, label: CodeLabel) -> Asm {
    // iced has no label immediates in 32-bit code: `call` gives the address of a `jmp label`.
    let mut over = a.create_label();
    a.call(over)?;
    a.jmp(label)?;
    a.set_label(&mut over)?;
    if a.bitness() == 64 {
        a.pop(rax)?;
        a.mov(qword_ptr(u64::from(RESUME)), rax)
    } else {
        a.pop(eax)?;
        a.mov(dword_ptr(RESUME), eax)
    }
}

/// From 32-bit protected mode at CPL 0: iretd to `target` in the 32-bit ring-3 code segment, on
/// [`USER_STACK`], with EFLAGS = 2 (IF clear, IOPL 0). DS and ES get the ring-3 data segment first: iret
/// to ring 3 leaves a DPL-0 data segment unusable (null), and accesses through it raise #GP.
pub fn iret_to_ring3(a: &mut CodeAssembler, target: u32) -> Asm {
    a.mov(ax, u32::from(SEL_UDATA | 3))?;
    a.mov(ds, ax)?;
    a.mov(es, ax)?;
    a.push(u32::from(SEL_UDATA | 3))?;
    a.push(USER_STACK)?;
    a.push(0x2u32)?;
    a.push(u32::from(SEL_UCODE32 | 3))?;
    a.push(target)?;
    a.iretd()
}

/// From 32-bit protected mode with paging off: enables PAE, loads [`PML4`], sets EFER.LME, NXE and SCE,
/// enables paging and jumps to `target` in 64-bit code, where [`long_prelude`] should run first.
pub fn enter_long(a: &mut CodeAssembler, target: u32) -> Asm {
    a.mov(eax, cr4)?;
    a.or(eax, 0x20)?;
    a.mov(cr4, eax)?;
    a.mov(eax, PML4)?;
    a.mov(cr3, eax)?;
    a.mov(ecx, 0xc000_0080u32)?;
    a.rdmsr()?;
    a.or(eax, 0x901)?;
    a.wrmsr()?;
    a.mov(eax, cr0)?;
    a.or(eax, 0x8000_0001u32)?;
    a.mov(cr0, eax)?;
    a.jmp_far(SEL_CODE64, target)
}

/// The first thing in 64-bit code: the long-mode IDT, the 64-bit TSS, SS and a 64-bit stack.
pub fn long_prelude(a: &mut CodeAssembler) -> Asm {
    a.lidt(ptr(u64::from(IDTR64)))?;
    a.mov(ax, u32::from(SEL_TSS64))?;
    a.ltr(ax)?;
    a.mov(eax, u32::from(SEL_DATA64))?;
    a.mov(ss, ax)?;
    a.mov(rsp, u64::from(STACK))
}

/// The `puthex` routine for `bits` (32 or 64).
fn puthex(a: &mut CodeAssembler, bits: u32) -> Asm {
    let mut lp = a.create_label();
    let mut digit = a.create_label();
    if bits == 64 {
        for r in [rax, rbx, rcx, rdx] {
            a.push(r)?;
        }
        a.mov(rbx, rax)?;
        a.set_label(&mut lp)?;
        a.dec(ecx)?;
        a.mov(rax, rbx)?;
        a.push(rcx)?;
        a.shl(ecx, 2)?;
        a.shr(rax, cl)?;
        a.pop(rcx)?;
    } else {
        a.pushad()?;
        a.mov(ebx, eax)?;
        a.set_label(&mut lp)?;
        a.dec(ecx)?;
        a.mov(eax, ebx)?;
        a.push(ecx)?;
        a.shl(ecx, 2)?;
        a.shr(eax, cl)?;
        a.pop(ecx)?;
    }
    a.and(eax, 0xf)?;
    a.cmp(al, 10)?;
    a.jb(digit)?;
    a.add(al, i32::from(b'a' - 10 - b'0'))?;
    a.set_label(&mut digit)?;
    a.add(al, i32::from(b'0'))?;
    a.mov(dx, 0xe9u32)?;
    a.out(dx, al)?;
    a.test(ecx, ecx)?;
    a.jnz(lp)?;
    if bits == 64 {
        for r in [rdx, rcx, rbx, rax] {
            a.pop(r)?;
        }
    } else {
        a.popad()?;
    }
    a.ret()
}

/// A handler stub: a dummy error code where the CPU pushes none, then the vector with bit 8 set when
/// the error code is real, then the common handler.
fn stub(a: &mut CodeAssembler, v: u8, common: u32) -> Asm {
    if !has_error_code(v) {
        a.push(0i32)?;
    }
    let tag = i32::from(v) | if has_error_code(v) { 0x100 } else { 0 };
    a.push(tag)?;
    a.jmp(u64::from(common))
}

/// The common handler (see the module doc).
fn handler_common(a: &mut CodeAssembler, bits: u32) -> Asm {
    let long = bits == 64;
    // Saved: 32-bit pushad (32 bytes); 64-bit rax, rcx, rdx (24 bytes).
    let (tag, err, ip): (u32, u32, u32) = if long { (24, 32, 40) } else { (32, 36, 40) };
    let at = |off: u32| {
        if long {
            qword_ptr(rsp + off)
        } else {
            dword_ptr(esp + off)
        }
    };
    let at32 = |off: u32| {
        if long {
            dword_ptr(rsp + off)
        } else {
            dword_ptr(esp + off)
        }
    };
    let mut no_err = a.create_label();
    let mut no_cr2 = a.create_label();
    let mut no_eoi = a.create_label();
    let mut no_resume = a.create_label();
    let mut ret = a.create_label();
    if long {
        a.push(rax)?;
        a.push(rcx)?;
        a.push(rdx)?;
    } else {
        a.pushad()?;
    }
    print(a, "#")?;
    a.movzx(eax, byte_ptr(if long { rsp + tag } else { esp + tag }))?;
    hex(a, 2)?;
    a.test(at32(tag), 0x100)?;
    a.jz(no_err)?;
    print(a, " err=")?;
    a.mov(eax, at32(err))?;
    hex(a, 8)?;
    a.set_label(&mut no_err)?;
    a.cmp(at32(tag), 0x10e)?;
    a.jne(no_cr2)?;
    print(a, " cr2=")?;
    if long {
        a.mov(rax, cr2)?;
        hex(a, 16)?;
    } else {
        a.mov(eax, cr2)?;
        hex(a, 8)?;
    }
    a.set_label(&mut no_cr2)?;
    print(a, "\n")?;
    let vec = || if long { byte_ptr(rsp + tag) } else { byte_ptr(esp + tag) };
    a.cmp(vec(), 32)?;
    a.jb(no_eoi)?;
    a.mov(al, 0x20u32)?;
    a.out(0x20u32, al)?;
    a.set_label(&mut no_eoi)?;
    if long {
        a.mov(rax, qword_ptr(u64::from(RESUME)))?;
        a.test(rax, rax)?;
        a.jz(no_resume)?;
        a.mov(at(ip), rax)?;
        a.mov(qword_ptr(u64::from(RESUME)), 0)?;
    } else {
        a.mov(eax, dword_ptr(RESUME))?;
        a.test(eax, eax)?;
        a.jz(no_resume)?;
        a.mov(at(ip), eax)?;
        a.mov(dword_ptr(RESUME), 0)?;
    }
    a.jmp(ret)?;
    a.set_label(&mut no_resume)?;
    a.cmp(vec(), 32)?;
    a.jae(ret)?;
    print(a, "unexpected exception\n")?;
    exit(a, 0x7f)?;
    a.set_label(&mut ret)?;
    if long {
        a.pop(rdx)?;
        a.pop(rcx)?;
        a.pop(rax)?;
        a.add(rsp, 16)?;
        a.iretq()
    } else {
        a.popad()?;
        a.add(esp, 8)?;
        a.iretd()
    }
}
