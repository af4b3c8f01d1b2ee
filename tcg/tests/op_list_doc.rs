//! Keeps the op x type list in docs/backends.md identical to the opcode table.
//! `RQEMU_BLESS=1 cargo test -p rqemu-tcg --test op_list_doc` rewrites the list.

use std::path::PathBuf;

use rqemu_tcg::opcodes::{Opcode, Types, OPDEFS};

const BEGIN: &str = "<!-- op-list:begin (generated from tcg/src/opcodes.rs; bless with RQEMU_BLESS=1) -->\n";
const END: &str = "<!-- op-list:end -->";

fn generated_list() -> String {
    let mut s = String::from("| op | types | outputs | inputs | constants |\n|---|---|---|---|---|\n");
    for op in Opcode::ALL {
        let d = &OPDEFS[*op as usize];
        let types: Vec<&str> = match d.types {
            Types::None => vec!["-"],
            _ => op.valid_types().iter().map(|t| t.name()).collect(),
        };
        let consts: Vec<String> = d.consts.iter().map(|c| format!("{c:?}").to_lowercase()).collect();
        let (outs, ins) = if *op == Opcode::Call {
            ("0-1".into(), "0-5".into())
        } else {
            (d.outs.len().to_string(), d.ins.len().to_string())
        };
        s += &format!(
            "| `{}` | {} | {outs} | {ins} | {} |\n",
            d.name,
            types.join(", "),
            consts.join(", ")
        );
    }
    let pairs: usize = Opcode::ALL.iter().map(|o| o.valid_types().len()).sum();
    s += &format!("\n{} opcodes, {pairs} op x type pairs.\n", Opcode::ALL.len());
    s
}

#[test]
fn backends_doc_lists_every_op() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/backends.md");
    let doc = std::fs::read_to_string(&path).expect("docs/backends.md exists");
    let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = doc.find(END).expect("end marker");
    let want = generated_list();
    if std::env::var_os("RQEMU_BLESS").is_some() {
        let updated = format!("{}{}{}", &doc[..start], want, &doc[end..]);
        std::fs::write(&path, updated).expect("write docs/backends.md");
    } else {
        assert_eq!(
            &doc[start..end],
            want,
            "docs/backends.md is stale: run `cargo xtask bless`"
        );
    }
}
