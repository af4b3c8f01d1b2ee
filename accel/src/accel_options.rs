//! `-accel tcg,...` options: `tb-size=<MiB>` (the TB cache bound), `hot-backend=wasm32|native|none`,
//! `one-insn-per-tb=on|off`, `thread=single`, `chain-limit=N` and the tiering options of
//! [`TierConfig::apply_option`] (`tier-threshold`, `tier-max-modules`, `tier-group`). Unknown keys and bad
//! values are errors that name the item.
//!
//! Not here: what the options do ([`crate::cpu_exec`], [`crate::tiering`]).

use core::fmt;

use rqemu_tcg::BackendKind;

use crate::tiering::TierConfig;

/// Default TB cache bound in MiB: QEMU's default is 1 GiB on 64-bit hosts; a wasm32 host has 4 GiB of
/// address space in all, so it gets less.
pub const DEFAULT_TB_SIZE_MIB: u64 = if cfg!(target_pointer_width = "64") { 512 } else { 64 };

/// Largest `tb-size` accepted, in MiB.
pub const MAX_TB_SIZE_MIB: u64 = if cfg!(target_pointer_width = "64") {
    1 << 20
} else {
    2048
};

/// Default `chain-limit`: TB starts hot code may chain through before it must come back to the loop.
pub const DEFAULT_CHAIN_LIMIT: u16 = 4096;

/// The keys `-accel tcg` accepts, for error messages.
pub const KNOWN_KEYS: &str =
    "tb-size, hot-backend, one-insn-per-tb, thread, chain-limit, tier-threshold, tier-max-modules, tier-group";

/// The execution layer's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccelOptions {
    /// Bytes of TB code (first-tier bytecode and hot code) before the whole cache is flushed.
    pub tb_size_bytes: usize,
    /// The backend hot TBs are compiled by; `None` runs everything on tci.
    pub hot_backend: Option<BackendKind>,
    /// One guest instruction per TB (QEMU's `one-insn-per-tb`), for debugging.
    pub one_insn_per_tb: bool,
    /// Low half of the exit word, refilled before each TB the loop enters (1..=32767).
    pub chain_limit: u16,
    /// The tiering policy.
    pub tier: TierConfig,
}

impl Default for AccelOptions {
    fn default() -> Self {
        AccelOptions {
            tb_size_bytes: (DEFAULT_TB_SIZE_MIB << 20) as usize,
            hot_backend: if cfg!(target_arch = "wasm32") {
                Some(BackendKind::Wasm32)
            } else {
                None
            },
            one_insn_per_tb: false,
            chain_limit: DEFAULT_CHAIN_LIMIT,
            tier: TierConfig::default(),
        }
    }
}

/// An option that did not parse; the message names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccelOptionError(pub String);

impl fmt::Display for AccelOptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AccelOptionError {}

impl AccelOptions {
    /// Parses the argument of `-accel`: `tcg` optionally followed by `,key=value` items.
    pub fn parse(arg: &str) -> Result<AccelOptions, AccelOptionError> {
        let mut items = arg.split(',');
        match items.next() {
            Some("tcg") => {}
            Some(other) => {
                return Err(AccelOptionError(format!(
                    "-accel {arg}: unknown accelerator `{other}` (only `tcg`)"
                )))
            }
            None => return Err(AccelOptionError("-accel: missing accelerator".into())),
        }
        let mut opts = AccelOptions::default();
        for item in items.filter(|i| !i.is_empty()) {
            opts.apply(item)?;
        }
        Ok(opts)
    }

    /// Applies one `key=value` item.
    pub fn apply(&mut self, item: &str) -> Result<(), AccelOptionError> {
        if self.tier.apply_option(item).map_err(|e| AccelOptionError(e.0))? {
            return Ok(());
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(AccelOptionError(format!(
                "-accel tcg,{item}: expected key=value (known keys: {KNOWN_KEYS})"
            )));
        };
        let bad = |want: &str| AccelOptionError(format!("-accel tcg,{key}={value}: expected {want}"));
        match key {
            "tb-size" => {
                let mib = value
                    .parse::<u64>()
                    .ok()
                    .filter(|&m| m <= MAX_TB_SIZE_MIB)
                    .ok_or_else(|| bad(&format!("a size in MiB from 0 (default) to {MAX_TB_SIZE_MIB}")))?;
                let mib = if mib == 0 { DEFAULT_TB_SIZE_MIB } else { mib };
                self.tb_size_bytes = usize::try_from(mib << 20).unwrap_or(usize::MAX);
            }
            "hot-backend" => {
                self.hot_backend = match value {
                    "none" => None,
                    other => Some(
                        other
                            .parse::<BackendKind>()
                            .map_err(|_| bad("wasm32, native or none"))?,
                    ),
                };
                if self.hot_backend == Some(BackendKind::Tci) {
                    return Err(bad("wasm32, native or none (tci is always the first tier)"));
                }
            }
            "one-insn-per-tb" => self.one_insn_per_tb = parse_bool(value).ok_or_else(|| bad("on or off"))?,
            "thread" => {
                if value != "single" {
                    return Err(bad("single (rqemu runs one vCPU thread)"));
                }
            }
            "chain-limit" => {
                self.chain_limit = value
                    .parse::<u16>()
                    .ok()
                    .filter(|n| (1..=0x7fff).contains(n))
                    .ok_or_else(|| bad("an integer from 1 to 32767"))?;
            }
            _ => {
                return Err(AccelOptionError(format!(
                    "-accel tcg,{item}: unknown option `{key}` (known: {KNOWN_KEYS})"
                )))
            }
        }
        Ok(())
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "on" | "yes" | "true" => Some(true),
        "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_options_parse() {
        let o = AccelOptions::parse("tcg,tb-size=500,tier-threshold=7,one-insn-per-tb=on,thread=single").unwrap();
        assert_eq!(o.tb_size_bytes, 500 << 20);
        assert_eq!(o.tier.threshold, 7);
        assert!(o.one_insn_per_tb);
        assert_eq!(AccelOptions::parse("tcg").unwrap(), AccelOptions::default());
        assert_eq!(AccelOptions::parse("tcg,,").unwrap(), AccelOptions::default());
        let o = AccelOptions::parse("tcg,tb-size=0,hot-backend=none,chain-limit=9").unwrap();
        assert_eq!(o.tb_size_bytes, (DEFAULT_TB_SIZE_MIB << 20) as usize);
        assert_eq!((o.hot_backend, o.chain_limit), (None, 9));
        let o = AccelOptions::parse("tcg,hot-backend=wasm32").unwrap();
        assert_eq!(o.hot_backend, Some(BackendKind::Wasm32));
    }

    #[test]
    fn bad_options_are_clear_errors() {
        for (arg, needle) in [
            ("kvm", "unknown accelerator `kvm`"),
            ("", "unknown accelerator ``"),
            ("tcg,tb-size=x", "tb-size=x: expected a size in MiB"),
            ("tcg,tb-size=-1", "tb-size=-1"),
            ("tcg,tb-size=99999999999999", "tb-size=99999999999999"),
            ("tcg,bogus=1", "unknown option `bogus` (known: tb-size"),
            ("tcg,tb-size", "tb-size: expected key=value"),
            ("tcg,hot-backend=sparc", "expected wasm32, native or none"),
            ("tcg,hot-backend=tci", "tci is always the first tier"),
            ("tcg,one-insn-per-tb=maybe", "expected on or off"),
            ("tcg,thread=multi", "expected single"),
            ("tcg,chain-limit=0", "from 1 to 32767"),
            ("tcg,chain-limit=40000", "from 1 to 32767"),
            ("tcg,tier-threshold=0", "tier-threshold=0: expected an integer"),
        ] {
            let err = AccelOptions::parse(arg).expect_err(arg).to_string();
            assert!(err.contains(needle), "{arg}: {err}");
        }
    }
}
