//! Golden tests of generated Wasm.
//!
//! Each `tests/golden/NAME.ir` is IR in the text format (`rqemu_tcg::parse`) for the small target below. The
//! test prepares it, compiles it with [`compile_module`] under the ABI its first line names (`# abi: tlb` for
//! an inlined TLB, `# abi: chain` for a two-member module whose member 0 jumps to member 1 with tail calls;
//! default: no TLB), validates the module with wasmparser and compares its text form (wasmprinter) with
//! `NAME.wat`. `RQEMU_BLESS=1 cargo test -p rqemu-tcg-wasm32 --test golden` rewrites the `.wat` files.

mod common;

use std::path::Path;
use std::sync::Arc;

use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::parse::parse;
use rqemu_tcg::prepare::prepare;
use rqemu_tcg::{HelperFlags, HelperInfo, TargetDesc, Type};
use rqemu_tcg_wasm32::{compile_module, TlbAbi, WasmAbi};

unsafe extern "C" fn nop_helper(_: *mut u8, a: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    a
}

/// Globals `x0`, `x1` (i64), `w0` (i32); fault word at 0; helpers `h` (one i64 argument, may fault) and
/// `p` (pure).
fn target() -> Arc<TargetDesc> {
    let mut t = TargetDesc::new(0);
    t.add_global("x0", Type::I64, 8);
    t.add_global("x1", Type::I64, 16);
    t.add_global("w0", Type::I32, 24);
    t.env_size = 64;
    t.helpers.register(HelperInfo {
        name: "h",
        func: nop_helper,
        flags: HelperFlags::MAY_FAULT,
        args: &[Type::I64],
        ret: Some(Type::I64),
    });
    Arc::new(t)
}

fn abi(kind: &str) -> WasmAbi {
    WasmAbi {
        helpers: vec![7],
        ld_slow: 1,
        st_slow: 2,
        tail_calls: kind == "chain",
        tlb: (kind == "tlb").then_some(TlbAbi { offset_from_env: 0x100 }),
    }
}

fn run_case(path: &Path, bless: bool) -> Result<(), String> {
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let kind = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# abi: "))
        .unwrap_or("plain")
        .trim()
        .to_string();
    let mut f = parse(target(), &text).map_err(|e| format!("{name}.ir: {e}"))?;
    prepare(&mut f).map_err(|e| format!("{name}.ir: {e}"))?;
    let mut members = vec![GroupMember {
        func: &f,
        jump_targets: [None, None],
    }];
    let exit = parse(target(), "exit_tb 0x1\n").map_err(|e| e.to_string())?;
    if kind == "chain" {
        members[0].jump_targets = [Some(1), None];
        members.push(GroupMember {
            func: &exit,
            jump_targets: [None, None],
        });
    }
    let module = compile_module(&members, &abi(&kind)).map_err(|e| format!("{name}: {e}"))?;
    common::validate(&module.bytes).map_err(|e| format!("{name}: invalid module: {e}"))?;
    let wat = wasmprinter::print_bytes(&module.bytes).map_err(|e| format!("{name}: {e}"))?;
    let out = path.with_extension("wat");
    if bless {
        std::fs::write(&out, &wat).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let want =
        std::fs::read_to_string(&out).map_err(|e| format!("{}: {e} (bless with RQEMU_BLESS=1)", out.display()))?;
    if want != wat {
        return Err(format!("{name}: generated Wasm differs from {}:\n{wat}", out.display()));
    }
    Ok(())
}

#[test]
fn golden() {
    let bless = std::env::var_os("RQEMU_BLESS").is_some_and(|v| v == "1");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/golden exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ir"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    let errors: Vec<String> = paths.iter().filter_map(|p| run_case(p, bless).err()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
}
