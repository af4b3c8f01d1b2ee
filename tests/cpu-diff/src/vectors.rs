//! The recorded-vector text format: cases with the oracle's results, recorded natively and replayed where there is
//! no x86-64 CPU (wasm32 under Node). The field syntax comes from `state.rs`.
//!
//! ```text
//! # rqemu cpu-diff vectors v1
//! code=4811d8 rax=ffffffffffffffff rbx=1 rsp=200000e0 rflags=203 => rip=3 fault=none rax=1 rflags=213 # adc rax,rbx
//! ```
//! One vector per line: `code=<hex bytes>`, `mode=32` or `mode=16` for 32- or 16-bit code (absent: 64-bit code), and the initial state as tokens differing from [`CpuState::default`],
//! then `=>`, then `rip=<hex> fault=<fault>` and the result state as tokens differing from the initial state.
//! `#` starts a comment (the recorder puts the disassembly there); blank lines are ignored.

use crate::compare::disassemble;
use crate::state::{parse_hex_bytes, parse_hex_u64, push_hex_bytes, split_token};
use crate::state::{Case, CpuSnapshot, CpuState, Fault, ParseError};

/// First line of a vector file.
pub const HEADER: &str = "# rqemu cpu-diff vectors v1";

/// One line for `case` and its result (no newline).
pub fn record_one(case: &Case, result: &CpuSnapshot) -> String {
    let mut line = String::from("code=");
    push_hex_bytes(&mut line, &case.code);
    if case.bitness != 64 {
        line.push_str(&format!(" mode={}", case.bitness));
    }
    let init = case.init.to_text_diff(&CpuState::default());
    if !init.is_empty() {
        line.push(' ');
        line.push_str(&init);
    }
    line.push_str(&format!(" => rip={:x} fault={}", result.rip, result.fault));
    let out = result.state.to_text_diff(&case.init);
    if !out.is_empty() {
        line.push(' ');
        line.push_str(&out);
    }
    line.push_str(" # ");
    line.push_str(&disassemble(case));
    line
}

/// The vector file for `cases` and their `results` (same length, same order).
pub fn record(cases: &[Case], results: &[CpuSnapshot]) -> String {
    assert_eq!(cases.len(), results.len(), "one result per case");
    let mut out = String::from(HEADER);
    out.push('\n');
    for (c, r) in cases.iter().zip(results) {
        out.push_str(&record_one(c, r));
        out.push('\n');
    }
    out
}

/// Parses one vector line (without comment handling beyond a trailing `# ...`).
pub fn parse_line(line: &str) -> Result<(Case, CpuSnapshot), ParseError> {
    let line = line.split_once(" #").map_or(line, |(l, _)| l);
    let (input, output) = line
        .split_once("=>")
        .ok_or_else(|| ParseError(format!("vector without `=>`: `{line}`")))?;
    let mut code = None;
    let mut bitness = 64;
    let mut init = CpuState::default();
    for token in input.split_ascii_whitespace() {
        let (name, value) = split_token(token)?;
        if name == "code" {
            code = Some(parse_hex_bytes(value)?);
        } else if name == "mode" {
            bitness = match value {
                "64" => 64,
                "32" => 32,
                "16" => 16,
                _ => return Err(ParseError(format!("bad mode `{value}`"))),
            };
        } else if !init.apply_token(name, value)? {
            return Err(ParseError(format!("unknown field `{name}`")));
        }
    }
    let code = code.ok_or_else(|| ParseError("vector without code=".into()))?;
    let mut state = init.clone();
    let (mut rip, mut fault) = (None, None);
    for token in output.split_ascii_whitespace() {
        let (name, value) = split_token(token)?;
        match name {
            "rip" => rip = Some(parse_hex_u64(value)?),
            "fault" => fault = Some(value.parse::<Fault>()?),
            _ => {
                if !state.apply_token(name, value)? {
                    return Err(ParseError(format!("unknown field `{name}`")));
                }
            }
        }
    }
    let rip = rip.ok_or_else(|| ParseError("vector without rip=".into()))?;
    let fault = fault.ok_or_else(|| ParseError("vector without fault=".into()))?;
    Ok((Case { init, code, bitness }, CpuSnapshot { state, rip, fault }))
}

/// Parses a vector file written by [`record`].
pub fn parse_vectors(text: &str) -> Result<Vec<(Case, CpuSnapshot)>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| parse_line(l).map_err(|e| ParseError(format!("line {}: {}", i + 1, e.0))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{GenOptions, Generator};
    use crate::state::flags;

    #[test]
    fn record_parse_round_trip() {
        let cases = Generator::new(GenOptions {
            max_insns: 2,
            ..GenOptions::default()
        })
        .cases(3, 300);
        // Synthetic results: something changed in every field kind, every fault kind.
        let faults = [
            Fault::None,
            Fault::De,
            Fault::Pf {
                addr: 0x3000_0000,
                write: true,
            },
            Fault::Other { signal: 5, trapno: 1 },
            Fault::Timeout,
        ];
        let results: Vec<CpuSnapshot> = cases
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut s = c.init.clone();
                s.gpr[i % 16] ^= i as u64;
                s.rflags ^= flags::CF;
                s.xmm[i % 16] = !s.xmm[i % 16];
                s.mem[i % 256] ^= 0x5a;
                CpuSnapshot {
                    state: s,
                    rip: c.end_offset(),
                    fault: faults[i % faults.len()],
                }
            })
            .collect();
        let text = record(&cases, &results);
        assert!(text.starts_with(HEADER));
        let parsed = parse_vectors(&text).unwrap();
        assert_eq!(parsed.len(), cases.len());
        for ((c, r), (pc, pr)) in cases.iter().zip(&results).zip(&parsed) {
            assert_eq!(c, pc);
            assert_eq!(r, pr);
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_vectors("code=90 => fault=none").is_err());
        assert!(parse_vectors("code=9 => rip=1 fault=none").is_err());
        assert!(parse_vectors("code=90 rzz=1 => rip=1 fault=none").is_err());
        assert!(parse_vectors("code=90 mode=8 => rip=1 fault=none").is_err());
        assert_eq!(
            parse_vectors("code=90 mode=16 => rip=1 fault=none").unwrap()[0]
                .0
                .bitness,
            16
        );
        assert_eq!(parse_vectors("code=90 => rip=1 fault=none").unwrap()[0].0.bitness, 64);
        assert_eq!(
            parse_vectors("code=90 mode=32 => rip=1 fault=none").unwrap()[0]
                .0
                .bitness,
            32
        );
    }
}
