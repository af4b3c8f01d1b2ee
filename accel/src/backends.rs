//! Backend selection: which TCG backends this build contains and how to get one by kind.
//!
//! Backends are compiled in by cargo features and by the host architecture (wasm32 only on a Wasm host,
//! native only on x86-64). Asking for one that is not built answers [`BackendError::NotBuilt`], never a panic,
//! so a command line naming a missing backend gets a clear error.

use rqemu_tcg::{Backend, BackendError, BackendKind};

/// Every backend kind this build can create, first-tier first.
pub fn available_backends() -> Vec<BackendKind> {
    [BackendKind::Tci, BackendKind::Wasm32, BackendKind::Native]
        .into_iter()
        .filter(|&k| create_backend(k).is_ok())
        .collect()
}

/// A fresh backend of `kind`, or why this build cannot provide one.
pub fn create_backend(kind: BackendKind) -> Result<Box<dyn Backend>, BackendError> {
    match kind {
        BackendKind::Tci => tci(),
        BackendKind::Wasm32 => wasm32(),
        // The native backend arrives with its own issue; until then it is not built.
        BackendKind::Native => Err(BackendError::NotBuilt(kind)),
    }
}

cfg_if::cfg_if! {
    if #[cfg(feature = "tci")] {
        fn tci() -> Result<Box<dyn Backend>, BackendError> {
            Ok(Box::new(rqemu_tcg_tci::Tci::new()))
        }
    } else {
        fn tci() -> Result<Box<dyn Backend>, BackendError> {
            Err(BackendError::NotBuilt(BackendKind::Tci))
        }
    }
}

cfg_if::cfg_if! {
    // Natively the wasm32 crate only has its code generator and embedded test engine: no backend to run.
    if #[cfg(all(feature = "wasm32", target_arch = "wasm32"))] {
        fn wasm32() -> Result<Box<dyn Backend>, BackendError> {
            Ok(Box::new(rqemu_tcg_wasm32::runtime::Wasm32::new()))
        }
    } else {
        fn wasm32() -> Result<Box<dyn Backend>, BackendError> {
            Err(BackendError::NotBuilt(BackendKind::Wasm32))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_backends_are_errors_not_panics() {
        assert_eq!(
            create_backend(BackendKind::Native).err(),
            Some(BackendError::NotBuilt(BackendKind::Native))
        );
        // Tests run natively, where the wasm32 backend is never built, whatever the features.
        assert_eq!(
            create_backend(BackendKind::Wasm32).err(),
            Some(BackendError::NotBuilt(BackendKind::Wasm32))
        );
        assert_eq!(
            "sparc".parse::<BackendKind>().err(),
            Some(BackendError::Unknown("sparc".into()))
        );
        assert_eq!(
            BackendError::NotBuilt(BackendKind::Wasm32).to_string(),
            "TCG backend `wasm32` is not built into this binary"
        );
    }

    #[cfg(feature = "tci")]
    #[test]
    fn tci_is_available() {
        assert_eq!(available_backends(), vec![BackendKind::Tci]);
        assert_eq!(create_backend(BackendKind::Tci).map(|b| b.name()).ok(), Some("tci"));
    }
}
