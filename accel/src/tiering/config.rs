//! Tiering parameters and their `-accel tcg,...` options (`tier-threshold=N`, `tier-max-modules=N`,
//! `tier-group=N`).

use core::fmt;

/// Executions on the first tier after which a TB is queued for the hot backend. Chosen with
/// `cargo xtask bench wasm32` (its threshold table, docs/PERF.md; measured with the TLB fast path and
/// helper imports instead of an imported table, where a module of two small TBs costs ~15 us to build and
/// instantiate, about 150 tci runs of those TBs). 50 was at least as fast as 100 on every mix (hot 0.7 vs
/// 0.8 ms, medium 1.7 vs 2.1, warm 2.8 vs 3.4, cool 5.3 vs 6.4, lukewarm 2.9 vs 3.0) and within ~20% of the
/// best threshold on the mixes that tier up. Lower thresholds gain a little more on warm loops but compile
/// TBs that run only a few dozen times (25: 3.3x slower than tci on the lukewarm mix, 40 runs per TB); higher
/// ones stop losing on TBs run ~100 times (200 ties tci on the cool mix, where 50 is 1.9x slower) but leave
/// 50-65% on medium and warm loops. TBs run just past the threshold are the worst case (one module build
/// each); revisit with a guest's distribution of TB execution counts.
pub const DEFAULT_THRESHOLD: u32 = 50;

/// Live hot modules kept before the least recently used one is evicted. Engines keep every instance's
/// machine code, so this bounds memory; 2048 modules of a few TBs cover the hot code of a Linux boot.
pub const DEFAULT_MAX_MODULES: usize = 2048;

/// Most TBs compiled into one module: the hot TB and hot successors reachable by `goto_tb`.
pub const DEFAULT_MAX_GROUP: usize = 8;

/// How the tiering policy behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierConfig {
    /// First-tier executions before a TB is compiled hot (at least 1).
    pub threshold: u32,
    /// Live modules before eviction (at least 1).
    pub max_modules: usize,
    /// TBs per module (at least 1).
    pub max_group: usize,
}

impl Default for TierConfig {
    fn default() -> Self {
        TierConfig {
            threshold: DEFAULT_THRESHOLD,
            max_modules: DEFAULT_MAX_MODULES,
            max_group: DEFAULT_MAX_GROUP,
        }
    }
}

/// A tiering option that did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierOptionError(pub String);

impl fmt::Display for TierOptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TierOptionError {}

impl TierConfig {
    /// Applies one `key=value` item of `-accel tcg,...`. Returns `Ok(false)` when the key is not a tiering
    /// option (the caller handles it), an error when it is one with a bad value.
    pub fn apply_option(&mut self, item: &str) -> Result<bool, TierOptionError> {
        let Some((key, value)) = item.split_once('=') else {
            return Ok(false);
        };
        let slot = match key {
            "tier-threshold" => {
                self.threshold = parse_positive(key, value, u32::MAX as u64)? as u32;
                return Ok(true);
            }
            "tier-max-modules" => &mut self.max_modules,
            "tier-group" => &mut self.max_group,
            _ => return Ok(false),
        };
        *slot = parse_positive(key, value, 1 << 20)? as usize;
        Ok(true)
    }

    /// Applies every tiering item of a comma-separated option string and returns the items it did not
    /// recognise, in order.
    pub fn apply_options<'a>(&mut self, list: &'a str) -> Result<Vec<&'a str>, TierOptionError> {
        let mut rest = Vec::new();
        for item in list.split(',').filter(|i| !i.is_empty()) {
            if !self.apply_option(item)? {
                rest.push(item);
            }
        }
        Ok(rest)
    }
}

fn parse_positive(key: &str, value: &str, max: u64) -> Result<u64, TierOptionError> {
    match value.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(TierOptionError(format!(
            "-accel tcg,{key}={value}: expected an integer from 1 to {max}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject() {
        let mut c = TierConfig::default();
        assert_eq!(
            c.apply_options("tb-size=500,tier-threshold=7,tier-max-modules=3,tier-group=2"),
            Ok(vec!["tb-size=500"])
        );
        assert_eq!((c.threshold, c.max_modules, c.max_group), (7, 3, 2));
        for bad in [
            "tier-threshold=0",
            "tier-threshold=x",
            "tier-threshold=-1",
            "tier-group=",
            "tier-max-modules=99999999999",
        ] {
            assert!(c.apply_option(bad).is_err(), "{bad}");
        }
        assert_eq!(c.apply_option("thread=single"), Ok(false));
        assert_eq!(c.apply_option("tier-threshold"), Ok(false));
    }
}
