//! The MMX and SSE families (SSE through SSE4.2, integer/shuffle and floating point): their mnemonic lists,
//! derived from iced-x86's CPUID feature of each instruction form rather than typed by hand, and the per-case
//! inputs of their forms (XMM and MMX registers and memory filled with float edge values by element type, a
//! random MXCSR for the FP forms, small string lengths for pcmpestri/pcmpestrm).
//!
//! How a mnemonic is assigned: by its legacy-encoded forms valid in 64-bit mode whose only CPUID feature is
//! one of the extensions'. A mnemonic with a form that has an MMX register operand is [`Family::Mmx`]'s (plus
//! emms); a mnemonic with a form that has none belongs to the family of that form's extension. So paddb is in
//! both, and `Family::owns` gives the MMX forms to `Mmx` and the XMM forms to `Sse2Int`. SSE2 and SSE4.1 split
//! into integer and FP families by name: not starting with `p`, and `..pd`, `..sd`, `cvt..`, `..ps`, `..ss`,
//! `round..`, `dpp..`, `blend..`, `comisd`/`ucomisd`. Left out: the mnemonics the existing
//! families already draw (SSE moves, pxor/xorps/xorpd, ldmxcsr/stmxcsr), maskmovq/maskmovdqu (they store
//! through an implicit RDI the generator does not aim into the scratch area), monitor/mwait (not user-mode
//! data instructions) and fisttp (SSE3 by CPUID, drawn by the x87 load/store family).

use super::fp_edges::{fp_edge, random_mxcsr, FpFormat};
use super::{edge_value, Family, SplitMix64};
use iced_x86::{Code, CpuidFeature, EncodingKind, Mnemonic, OpCodeOperandKind as K};
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// Whether `code` has an MMX register operand.
pub(crate) fn has_mm_operand(code: Code) -> bool {
    code.op_code()
        .op_kinds()
        .iter()
        .any(|k| matches!(k, K::mm_reg | K::mm_rm | K::mm_or_mem))
}

/// Whether `code` has an MMX or XMM register operand.
pub(crate) fn has_simd_operand(code: Code) -> bool {
    has_mm_operand(code)
        || code
            .op_code()
            .op_kinds()
            .iter()
            .any(|k| matches!(k, K::xmm_reg | K::xmm_rm | K::xmm_or_mem))
}

/// Whether an SSE mnemonic is a floating-point one (the split of SSE2 and SSE4.1 described in the module doc).
fn is_fp_name(m: Mnemonic) -> bool {
    let n = format!("{m:?}").to_lowercase();
    if n.starts_with('p') {
        return false;
    }
    n.starts_with("cvt")
        || ["pd", "sd", "ps", "ss"].iter().any(|s| n.ends_with(s))
        || n.starts_with("round")
        || n.starts_with("dpp")
        || n.starts_with("blend")
        || matches!(m, Mnemonic::Comisd | Mnemonic::Ucomisd)
}

/// Mnemonics no SIMD family draws (see the module doc).
fn left_out(m: Mnemonic) -> bool {
    use Mnemonic as M;
    matches!(m, M::Maskmovq | M::Maskmovdqu | M::Monitor | M::Mwait | M::Fisttp)
        || Family::SseMove.mnemonics().contains(&m) && !matches!(m, M::Movd | M::Movq)
}

/// The derived lists, in [`Family`] order of [`SIMD_FAMILIES`].
fn lists() -> &'static [Vec<Mnemonic>; 9] {
    static LISTS: OnceLock<[Vec<Mnemonic>; 9]> = OnceLock::new();
    LISTS.get_or_init(|| {
        // Per mnemonic: its single-feature forms (feature, has an MMX operand).
        let mut forms: std::collections::BTreeMap<Mnemonic, Vec<(CpuidFeature, bool)>> = Default::default();
        for code in Code::values() {
            let op = code.op_code();
            if !op.is_instruction() || !op.mode64() || op.encoding() != EncodingKind::Legacy {
                continue;
            }
            if let [f] = code.cpuid_features() {
                forms
                    .entry(code.mnemonic())
                    .or_default()
                    .push((*f, has_mm_operand(code)));
            }
        }
        let mut out: [BTreeSet<Mnemonic>; 9] = Default::default();
        for (m, fs) in forms {
            if left_out(m) {
                continue;
            }
            let simd: Vec<_> = fs
                .iter()
                .filter(|(f, _)| {
                    matches!(
                        f,
                        CpuidFeature::MMX
                            | CpuidFeature::SSE
                            | CpuidFeature::SSE2
                            | CpuidFeature::SSE3
                            | CpuidFeature::SSSE3
                            | CpuidFeature::SSE4_1
                            | CpuidFeature::SSE4_2
                    )
                })
                .collect();
            if simd.is_empty() {
                continue;
            }
            if simd.iter().any(|(_, mm)| *mm) || m == Mnemonic::Emms {
                out[0].insert(m);
            }
            // movd/movq: the XMM forms are the SseMove family's.
            if matches!(m, Mnemonic::Movd | Mnemonic::Movq) {
                continue;
            }
            // The extension of the mnemonic's XMM (or MMX-less) forms.
            let Some((f, _)) = simd.iter().find(|(_, mm)| !*mm) else {
                continue;
            };
            let slot = match f {
                CpuidFeature::SSE => 5,
                CpuidFeature::SSE2 if is_fp_name(m) => 6,
                CpuidFeature::SSE2 => 1,
                CpuidFeature::SSE3 => 7,
                CpuidFeature::SSSE3 => 2,
                CpuidFeature::SSE4_1 if is_fp_name(m) => 8,
                CpuidFeature::SSE4_1 => 3,
                CpuidFeature::SSE4_2 => 4,
                _ => continue,
            };
            out[slot].insert(m);
        }
        out.map(|s| s.into_iter().collect())
    })
}

/// The SIMD families in the order of [`lists`].
const SIMD_FAMILIES: [Family; 9] = [
    Family::Mmx,
    Family::Sse2Int,
    Family::Ssse3,
    Family::Sse41Int,
    Family::Sse42,
    Family::Sse1Fp,
    Family::Sse2Fp,
    Family::Sse3,
    Family::Sse41Fp,
];

/// The mnemonics of SIMD family `f` (empty for any other family).
pub(crate) fn mnemonics(f: Family) -> &'static [Mnemonic] {
    match SIMD_FAMILIES.iter().position(|x| *x == f) {
        Some(i) => &lists()[i],
        None => &[],
    }
}

/// Whether `f` is one of the SSE floating-point families (their cases get a random MXCSR).
pub(crate) fn is_fp_family(f: Family) -> bool {
    matches!(f, Family::Sse1Fp | Family::Sse2Fp | Family::Sse3 | Family::Sse41Fp)
}

/// The float format of the elements of an operand of `code` (from the form's memory operand type; `None` for
/// integer data).
pub(crate) fn element_format(code: Code) -> Option<FpFormat> {
    use iced_x86::MemorySize as S;
    let ms = super::bare_instruction(code).memory_size();
    match ms.element_type() {
        S::Float32 => Some(FpFormat::F32),
        S::Float64 => Some(FpFormat::F64),
        S::Float80 => Some(FpFormat::F80),
        _ => None,
    }
}

/// A 64-bit lane of packed `f` edge values (or an integer edge value).
fn lane64(rng: &mut SplitMix64, f: Option<FpFormat>) -> u64 {
    match f {
        Some(FpFormat::F32) => fp_edge(rng, FpFormat::F32) as u64 | (fp_edge(rng, FpFormat::F32) as u64) << 32,
        Some(FpFormat::F64) => fp_edge(rng, FpFormat::F64) as u64,
        _ => edge_value(rng, 64),
    }
}

/// A 128-bit XMM value for an operand of an FP form `code`: float edge values per element (by the form's
/// element type), or for integer-typed operands (cvtdq2ps's source) an integer edge value in the low half and
/// random bits above.
pub(crate) fn xmm_value(rng: &mut SplitMix64, code: Code) -> u128 {
    match element_format(code) {
        f @ Some(_) => lane64(rng, f) as u128 | (lane64(rng, f) as u128) << 64,
        None => (rng.next_u64() as u128) << 64 | edge_value(rng, 64) as u128,
    }
}

/// Bytes for a memory operand of `bytes` bytes of `code`: float edge values per element for FP forms.
pub(crate) fn fp_memory(rng: &mut SplitMix64, code: Code, bytes: usize) -> Option<Vec<u8>> {
    let f = element_format(code)?;
    let mut out = Vec::with_capacity(bytes + 10);
    while out.len() < bytes {
        out.extend_from_slice(&fp_edge(rng, f).to_le_bytes()[..f.bytes()]);
    }
    out.truncate(bytes);
    Some(out)
}

/// A random MXCSR for a case of an SSE FP form.
pub(crate) fn mxcsr(rng: &mut SplitMix64) -> u32 {
    random_mxcsr(rng)
}
