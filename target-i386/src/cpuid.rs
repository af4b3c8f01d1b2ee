//! The CPUID model: one table of leaves, advertising exactly what the frontend implements and nothing more.
//!
//! A feature bit is set here in the same change that makes the instructions behind it translate correctly
//! (and the differential test cover them). Today the frontend implements the base integer instruction set in
//! 64-bit mode (see `translate/mod.rs` for the exact list); of the CPUID feature bits only these hold:
//!
//! | leaf | register | bit | feature | why it is true |
//! |---|---|---|---|---|
//! | 1 | edx | 0 | FPU | the x87 FPU (`translate/x87.rs`, `fpu_helper.rs`, `fpu_trans.rs`) |
//! | 1 | edx | 24 | FXSR | fxsave/fxrstor (`translate/x87_state.rs`) |
//! | 1 | edx | 15 | CMOV | cmovcc is translated (and fcmovcc, with FPU) |
//! | 1 | edx | 8 | CX8 | cmpxchg8b is translated |
//! | 1 | edx | 4 | TSC | rdtsc is translated (CR4.TSD checked; IA32_TSC is an MSR) |
//! | 1 | edx | 3 | PSE | 4 MiB pages in 32-bit paging (the walker; CR4.PSE accepted) |
//! | 1 | edx | 5 | MSR | rdmsr/wrmsr (`translate/sysregs.rs`) |
//! | 1 | edx | 6 | PAE | PAE paging, PDPTE loads at `mov cr3`/paging enable |
//! | 1 | edx | 11 | SEP | sysenter/sysexit and the SYSENTER MSRs |
//! | 1 | edx | 13 | PGE | CR4.PGE and global pages (they survive CR3 loads) |
//! | 1 | edx | 16 | PAT | IA32_PAT (checked, stored; memory types are not modelled: all write-back) |
//! | 1 | edx | 17 | PSE-36 | 4 MiB pages above 4 GiB in 32-bit paging |
//! | 7.0 | ebx | 7 | SMEP | the supervisor code-fetch MMU index walks with SMEP |
//! | 7.0 | ebx | 20 | SMAP | supervisor data MMU indexes per EFLAGS.AC; stac/clac |
//! | 0x8000_0001 | edx | 11 | SYSCALL | syscall/sysret in long mode (EFER.SCE) |
//! | 0x8000_0001 | edx | 20 | NX | EFER.NXE and the XD bit |
//! | 0x8000_0001 | edx | 26 | Page1GB | 1 GiB pages in 4-level paging |
//! | 1 | ecx | 13 | CX16 | cmpxchg16b is translated |
//! | 1 | edx | 23 | MMX | every MMX instruction is translated (`translate/sse_int.rs`, `sse_moves.rs`) |
//! | 1 | ecx | 9 | SSSE3 | pshufb, phadd/phsub(s), pmaddubsw, pmulhrsw, psign, pabs, palignr (XMM and MMX) |
//! | 1 | ecx | 19 | SSE4.1 | the integer half (`translate/sse_int.rs`: blends, pmin/pmax, pmovsx/zx, ptest, pinsr/pextr, insertps/extractps, pmuldq, pmulld, packusdw, pcmpeqq, phminposuw, mpsadbw, movntdqa) and the floating-point half (round, dpps/dppd) |
//! | 1 | ecx | 20 | SSE4.2 | pcmpgtq, crc32, pcmpestri/pcmpestrm/pcmpistri/pcmpistrm |
//! | 1 | ecx | 22 | MOVBE | movbe (load and store, 16/32/64) is translated |
//! | 1 | ecx | 23 | POPCNT | popcnt is translated |
//! | 1 | edx | 25 | SSE | SSE floating point (`translate/sse_fp.rs`), moves and MXCSR (`sse_moves.rs`, `x87_state.rs`) |
//! | 1 | edx | 26 | SSE2 | SSE2 floating point and conversions (`translate/sse_fp.rs`) |
//! | 1 | ecx | 0 | SSE3 | addsub, hadd/hsub, movddup/movshdup/movsldup, lddqu (`translate/sse_fp.rs`) |
//! | 7.0 | ebx | 3 | BMI1 | andn, bextr, blsi, blsmsk, blsr, tzcnt are translated |
//! | 7.0 | ebx | 8 | BMI2 | bzhi, mulx, pdep, pext, rorx, sarx, shlx, shrx are translated |
//! | 7.0 | ecx | 22 | RDPID | rdpid is translated |
//! | 0x8000_0001 | ecx | 5 | ABM (LZCNT) | lzcnt is translated |
//! | 0x8000_0001 | ecx | 0 | LAHF-SAHF | lahf and sahf are translated in 64-bit mode |
//! | 0x8000_0001 | edx | 27 | RDTSCP | rdtscp is translated (TSC_AUX from the MSR file) |
//! | 0x8000_0001 | edx | 29 | LM | 64-bit code is decoded and translated |
//!
//! FPU and FXSR (edx bits 0 and 24) cover the x87 FPU (`translate/x87.rs`) and fxsave/fxrstor.
//!
//! Everything else reads as 0: no AVX, XSAVE, PCLMULQDQ or AES-NI, no APIC (none is emulated), no MTRR (no
//! MTRR MSRs), no VME/DE/MCE/PCID, no hypervisor bit. Leaves 2..6
//! read as 0. Leaves above the maxima (0x7 basic, 0x8000_0008 extended) return the highest basic leaf (subleaf
//! as given), as Intel CPUs do.

/// The result of one CPUID query.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidResult {
    /// eax
    pub eax: u32,
    /// ebx
    pub ebx: u32,
    /// ecx
    pub ecx: u32,
    /// edx
    pub edx: u32,
}

/// Vendor string, as returned in ebx, edx, ecx of leaf 0.
pub const VENDOR: &[u8; 12] = b"RqemuTCG x86";

/// Leaf 1 edx: x87 FPU on chip.
pub const CPUID_1_EDX_FPU: u32 = 1 << 0;
/// Leaf 1 edx: fxsave/fxrstor.
pub const CPUID_1_EDX_FXSR: u32 = 1 << 24;
/// Leaf 1 edx: CMOV.
pub const CPUID_1_EDX_CMOV: u32 = 1 << 15;
/// Leaf 1 edx: cmpxchg8b.
pub const CPUID_1_EDX_CX8: u32 = 1 << 8;
/// Leaf 1 edx: time-stamp counter (rdtsc).
pub const CPUID_1_EDX_TSC: u32 = 1 << 4;
/// Leaf 1 edx: 4 MiB pages (CR4.PSE).
pub const CPUID_1_EDX_PSE: u32 = 1 << 3;
/// Leaf 1 edx: rdmsr/wrmsr.
pub const CPUID_1_EDX_MSR: u32 = 1 << 5;
/// Leaf 1 edx: PAE paging.
pub const CPUID_1_EDX_PAE: u32 = 1 << 6;
/// Leaf 1 edx: sysenter/sysexit.
pub const CPUID_1_EDX_SEP: u32 = 1 << 11;
/// Leaf 1 edx: global pages (CR4.PGE).
pub const CPUID_1_EDX_PGE: u32 = 1 << 13;
/// Leaf 1 edx: IA32_PAT.
pub const CPUID_1_EDX_PAT: u32 = 1 << 16;
/// Leaf 1 edx: 36-bit physical addresses in 4 MiB pages.
pub const CPUID_1_EDX_PSE36: u32 = 1 << 17;
/// Leaf 7 subleaf 0 ebx: SMEP.
pub const CPUID_7_0_EBX_SMEP: u32 = 1 << 7;
/// Leaf 7 subleaf 0 ebx: SMAP (and stac/clac).
pub const CPUID_7_0_EBX_SMAP: u32 = 1 << 20;
/// Leaf 0x8000_0001 edx: syscall/sysret.
pub const CPUID_80000001_EDX_SYSCALL: u32 = 1 << 11;
/// Leaf 0x8000_0001 edx: execute disable (EFER.NXE).
pub const CPUID_80000001_EDX_NX: u32 = 1 << 20;
/// Leaf 0x8000_0001 edx: 1 GiB pages.
pub const CPUID_80000001_EDX_PAGE1GB: u32 = 1 << 26;

/// Leaf 1 edx as advertised.
pub const CPUID_1_EDX: u32 = CPUID_1_EDX_FPU
    | CPUID_1_EDX_FXSR
    | CPUID_1_EDX_TSC
    | CPUID_1_EDX_CX8
    | CPUID_1_EDX_CMOV
    | CPUID_1_EDX_PSE
    | CPUID_1_EDX_MSR
    | CPUID_1_EDX_PAE
    | CPUID_1_EDX_SEP
    | CPUID_1_EDX_PGE
    | CPUID_1_EDX_PAT
    | CPUID_1_EDX_PSE36
    | CPUID_1_EDX_MMX
    | CPUID_1_EDX_SSE
    | CPUID_1_EDX_SSE2;
/// Leaf 1 edx: SSE (the floating-point instructions are `translate/sse_fp.rs`).
pub const CPUID_1_EDX_SSE: u32 = 1 << 25;
/// Leaf 1 edx: SSE2.
pub const CPUID_1_EDX_SSE2: u32 = 1 << 26;
/// Leaf 1 ecx: SSE3 (addsub, hadd/hsub, movddup/movshdup/movsldup, lddqu).
pub const CPUID_1_ECX_SSE3: u32 = 1 << 0;
/// Leaf 7.0 ebx as advertised.
pub const CPUID_7_0_EBX: u32 = CPUID_7_0_EBX_BMI1 | CPUID_7_0_EBX_BMI2 | CPUID_7_0_EBX_SMEP | CPUID_7_0_EBX_SMAP;
/// Leaf 0x8000_0001 edx as advertised.
pub const CPUID_80000001_EDX: u32 = CPUID_80000001_EDX_RDTSCP
    | CPUID_80000001_EDX_LM
    | CPUID_80000001_EDX_SYSCALL
    | CPUID_80000001_EDX_NX
    | CPUID_80000001_EDX_PAGE1GB;

/// Leaf 1 ecx: movbe.
pub const CPUID_1_ECX_MOVBE: u32 = 1 << 22;
/// Leaf 1 edx: MMX.
pub const CPUID_1_EDX_MMX: u32 = 1 << 23;
/// Leaf 1 ecx: SSSE3.
pub const CPUID_1_ECX_SSSE3: u32 = 1 << 9;
/// Leaf 1 ecx: SSE4.2.
pub const CPUID_1_ECX_SSE42: u32 = 1 << 20;
/// Leaf 1 ecx: SSE4.1.
pub const CPUID_1_ECX_SSE41: u32 = 1 << 19;
/// Leaf 7 subleaf 0 ebx: BMI1.
pub const CPUID_7_0_EBX_BMI1: u32 = 1 << 3;
/// Leaf 7 subleaf 0 ebx: BMI2.
pub const CPUID_7_0_EBX_BMI2: u32 = 1 << 8;
/// Leaf 7 subleaf 0 ecx: rdpid.
pub const CPUID_7_0_ECX_RDPID: u32 = 1 << 22;
/// Leaf 0x8000_0001 edx: rdtscp.
pub const CPUID_80000001_EDX_RDTSCP: u32 = 1 << 27;
/// Leaf 1 ecx: cmpxchg16b.
pub const CPUID_1_ECX_CX16: u32 = 1 << 13;
/// Leaf 1 ecx: popcnt.
pub const CPUID_1_ECX_POPCNT: u32 = 1 << 23;
/// Leaf 0x8000_0001 ecx: lzcnt (AMD's ABM bit, which Intel uses for LZCNT).
pub const CPUID_80000001_ECX_ABM: u32 = 1 << 5;
/// Leaf 0x8000_0001 ecx: lahf/sahf in 64-bit mode.
pub const CPUID_80000001_ECX_LAHF_LM: u32 = 1 << 0;
/// Leaf 0x8000_0001 edx: long mode.
pub const CPUID_80000001_EDX_LM: u32 = 1 << 29;

const fn word(b: &[u8; 12], i: usize) -> u32 {
    u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// Leaf, subleaf (`None`: any) and the registers it returns.
pub const LEAVES: &[(u32, Option<u32>, CpuidResult)] = &[
    (
        0,
        None,
        CpuidResult {
            eax: 7,
            ebx: word(VENDOR, 0),
            edx: word(VENDOR, 1),
            ecx: word(VENDOR, 2),
        },
    ),
    (
        // family 6, model 0, stepping 0; one logical processor.
        1,
        None,
        CpuidResult {
            eax: 0x0000_0600,
            ebx: 0x0001_0000,
            ecx: CPUID_1_ECX_CX16
                | CPUID_1_ECX_MOVBE
                | CPUID_1_ECX_POPCNT
                | CPUID_1_ECX_SSE3
                | CPUID_1_ECX_SSSE3
                | CPUID_1_ECX_SSE41
                | CPUID_1_ECX_SSE42,
            edx: CPUID_1_EDX,
        },
    ),
    (
        // Structured extended features, subleaf 0 (eax: the highest subleaf, 0); other subleaves read as 0.
        7,
        Some(0),
        CpuidResult {
            eax: 0,
            ebx: CPUID_7_0_EBX,
            ecx: CPUID_7_0_ECX_RDPID,
            edx: 0,
        },
    ),
    (
        0x8000_0000,
        None,
        CpuidResult {
            eax: 0x8000_0008,
            ebx: 0,
            ecx: 0,
            edx: 0,
        },
    ),
    (
        0x8000_0001,
        None,
        CpuidResult {
            eax: 0,
            ebx: 0,
            ecx: CPUID_80000001_ECX_LAHF_LM | CPUID_80000001_ECX_ABM,
            edx: CPUID_80000001_EDX,
        },
    ),
    (
        // 48 physical address bits, 48 linear.
        0x8000_0008,
        None,
        CpuidResult {
            eax: 0x3030,
            ebx: 0,
            ecx: 0,
            edx: 0,
        },
    ),
];

/// CPUID with `eax = leaf`, `ecx = subleaf`.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let find = |l: u32| {
        LEAVES
            .iter()
            .find(|(x, s, _)| *x == l && s.is_none_or(|s| s == subleaf))
            .map(|(_, _, r)| *r)
    };
    let max_basic = find(0).map_or(0, |r| r.eax);
    let max_ext = find(0x8000_0000).map_or(0, |r| r.eax);
    let in_range = if leaf >= 0x8000_0000 {
        leaf <= max_ext
    } else {
        leaf <= max_basic
    };
    if !in_range {
        return find(max_basic).unwrap_or_default();
    }
    find(leaf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_and_features() {
        let r = cpuid(0, 0);
        let mut v = Vec::new();
        for w in [r.ebx, r.edx, r.ecx] {
            v.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(&v, VENDOR);
        assert_eq!(
            cpuid(1, 0).edx,
            0x0783_a979,
            "FPU TSC PSE MSR PAE CX8 SEP PGE CMOV PAT PSE36 MMX FXSR SSE SSE2"
        );
        assert_eq!(
            cpuid(1, 0).ecx,
            CPUID_1_ECX_CX16
                | CPUID_1_ECX_MOVBE
                | CPUID_1_ECX_POPCNT
                | CPUID_1_ECX_SSE3
                | CPUID_1_ECX_SSSE3
                | CPUID_1_ECX_SSE41
                | CPUID_1_ECX_SSE42,
            "SSE3, SSSE3, SSE4.1, SSE4.2"
        );
        assert_eq!(cpuid(0x8000_0001, 0).edx, 0x2c10_0800, "SYSCALL NX Page1GB RDTSCP LM");
        let l7 = cpuid(7, 0);
        assert_eq!(
            (l7.eax, l7.ebx, l7.ecx, l7.edx),
            (0, 0x0010_0188, CPUID_7_0_ECX_RDPID, 0)
        );
        assert_eq!(cpuid(7, 1), CpuidResult::default(), "only subleaf 0");
        assert_eq!(cpuid(4, 0), CpuidResult::default(), "leaves 2..6 are empty");
        assert_eq!(
            cpuid(0x4000_0000, 0),
            cpuid(7, 0),
            "out of range gives the highest basic leaf"
        );
        assert_eq!(cpuid(0x8000_0002, 0), CpuidResult::default());
    }
}
