//! The system tables every guest gets in its image: the GDT (flat 16/32/64-bit code and data for rings 0
//! and 3, the TSSs, call gates), the IDTs of protected and long mode pointing at the report handlers of
//! [`crate::asm`], the TSSs, and identity page tables for 4-level, PAE and 32-bit paging.

use crate::asm::*;

/// A code or data segment descriptor.
pub fn seg(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    let (base, limit) = (u64::from(base), u64::from(limit));
    (limit & 0xffff)
        | (base & 0xff_ffff) << 16
        | u64::from(access) << 40
        | ((limit >> 16) & 0xf) << 48
        | u64::from(flags) << 52
        | (base >> 24) << 56
}

/// A gate descriptor (call, interrupt): `type_attr` is the access byte (P, DPL, type); `ist` its IST slot.
pub fn gate(selector: u16, offset: u32, type_attr: u8, ist: u8) -> u64 {
    let o = u64::from(offset);
    (o & 0xffff) | u64::from(selector) << 16 | u64::from(ist) << 32 | u64::from(type_attr) << 40 | (o >> 16) << 48
}

/// Whether the CPU pushes an error code for exception `vector`.
pub fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// The DPL of the IDT gate of `vector`: 3 for int3, into and `int 0x80` (reachable from ring 3), else 0.
fn idt_dpl(vector: u8) -> u8 {
    if matches!(vector, 3 | 4 | 0x80) {
        3
    } else {
        0
    }
}

fn put(img: &mut Guest, addr: u32, words: &[u64]) {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    img.data(addr, &bytes);
}

/// Writes the GDT, IDTs, TSSs, pseudo-descriptors and page tables into `g`.
pub fn install(g: &mut Guest) {
    let gdt = [
        0,
        seg(0, 0xfffff, 0x9a, 0xc),                   // 0x08 code32
        seg(0, 0xfffff, 0x92, 0xc),                   // 0x10 data
        seg(0, 0xfffff, 0x9a, 0xa),                   // 0x18 code64
        seg(0, 0xfffff, 0x92, 0xc),                   // 0x20 data (SYSCALL's SS = CS + 8)
        seg(0, 0xfffff, 0xfa, 0xc),                   // 0x28 user code32 (STAR's SYSRET base)
        seg(0, 0xfffff, 0xf2, 0xc),                   // 0x30 user data
        seg(0, 0xfffff, 0xfa, 0xa),                   // 0x38 user code64
        seg(0, 0xffff, 0x9a, 0),                      // 0x40 code16
        seg(0, 0xffff, 0x92, 0),                      // 0x48 data16
        seg(TSS32, 0x67, 0x89, 0),                    // 0x50 32-bit TSS
        seg(TSS64, 0x67, 0x89, 0),                    // 0x58 64-bit TSS (low half)
        0,                                            // 0x60 (high half)
        gate(SEL_CODE32, CALLGATE32_TARGET, 0xec, 0), // 0x68 32-bit call gate, DPL 3
        gate(SEL_CODE64, CALLGATE64_TARGET, 0xec, 0), // 0x70 64-bit call gate, DPL 3 (low half)
        0,                                            // 0x78 (high half)
        seg(0, 0xfffff, 0x92, 0x4) & !(1u64 << 47),   // 0x80 data, not present (#NP)
    ];
    put(g, GDT, &gdt);
    let mut idt32 = Vec::new();
    let mut idt64 = Vec::new();
    for v in 0..=255u8 {
        let attr = 0x8e | idt_dpl(v) << 5;
        let stub32 = H32 + u32::from(v) * STUB_SIZE;
        let stub64 = H64 + u32::from(v) * STUB_SIZE;
        idt32.push(gate(SEL_CODE32, stub32, attr, 0));
        idt64.push(gate(SEL_CODE64, stub64, attr, 0));
        idt64.push(0);
    }
    put(g, IDT32, &idt32);
    put(g, IDT64, &idt64);
    // Pseudo-descriptors: limit, then the base (8 bytes so lgdt/lidt work in 64-bit mode too).
    let pseudo = |limit: u16, base: u32| {
        let mut v = limit.to_le_bytes().to_vec();
        v.extend_from_slice(&u64::from(base).to_le_bytes());
        v
    };
    g.data(GDTR, &pseudo((gdt.len() * 8 - 1) as u16, GDT));
    g.data(IDTR32, &pseudo(256 * 8 - 1, IDT32));
    g.data(IDTR64, &pseudo(256 * 16 - 1, IDT64));
    // 32-bit TSS: esp0/ss0. 64-bit TSS: rsp0 and ist1.
    let mut tss32 = vec![0u8; 0x68];
    tss32[4..8].copy_from_slice(&STACK0.to_le_bytes());
    tss32[8..10].copy_from_slice(&u32::from(SEL_DATA).to_le_bytes()[..2]);
    tss32[0x66..0x68].copy_from_slice(&0x68u16.to_le_bytes());
    g.data(TSS32, &tss32);
    let mut tss64 = vec![0u8; 0x68];
    tss64[4..12].copy_from_slice(&u64::from(STACK0).to_le_bytes());
    tss64[0x24..0x2c].copy_from_slice(&u64::from(IST1_STACK).to_le_bytes());
    tss64[0x66..0x68].copy_from_slice(&0x68u16.to_le_bytes());
    g.data(TSS64, &tss64);
    // 4-level: PML4[0] -> PDPT; PDPT[0] -> PD (2 MiB pages, but 4..6 MiB through PT), PDPT[1]: a 1 GiB
    // page mapping 1 GiB -> 0. All user, writable.
    put(g, PML4, &[u64::from(PDPT) | 7]);
    put(g, PDPT, &[u64::from(PD) | 7, 0x87]);
    let mut pd: Vec<u64> = (0..512u64).map(|i| (i << 21) | 0x87).collect();
    pd[2] = u64::from(PT) | 7;
    put(g, PD, &pd);
    let pt: Vec<u64> = (0..512u64).map(|j| (0x40_0000 + (j << 12)) | 7).collect();
    put(g, PT, &pt);
    // PAE: the PDPT's first entry shares the PD (present only: PAE PDPTEs have no RW/US).
    put(g, PAE_PDPT, &[u64::from(PD) | 1, 0, 0, 0]);
    // 32-bit: 4 MiB pages for the first GiB, but 4..8 MiB through PT32.
    let mut pd32: Vec<u32> = (0..256u32).map(|i| (i << 22) | 0x87).collect();
    pd32[1] = PT32 | 7;
    let b: Vec<u8> = pd32.iter().flat_map(|w| w.to_le_bytes()).collect();
    g.data(PD32, &b);
    let pt32: Vec<u8> = (0..1024u32)
        .flat_map(|j| ((0x40_0000 + (j << 12)) | 7).to_le_bytes())
        .collect();
    g.data(PT32, &pt32);
}
