//! IR -> WebAssembly: one module per group of TBs, one function per member.
//!
//! - `locals`: temps in locals, scratch locals, constants as immediates;
//! - `control`: labels and branches as structured Wasm, TB exits and intra-module chaining;
//! - `ops`: the computational ops;
//! - `memory`: host `ld`/`st`, guest `qemu_ld`/`qemu_st` (inlined TLB fast path or slow-path helper);
//! - `calls`: helper calls (direct calls of function imports), and the fault check after `MAY_FAULT` ones.
//!
//! Instructions are buffered per function because the locals must be declared before the body and are only
//! known once the body is generated.

mod calls;
mod control;
mod locals;
mod memory;
mod ops;

use rqemu_tcg::backend::GroupMember;
use rqemu_tcg::{CompileError, Func, Opcode, Temp, Type};
use wasm_encoder::{
    CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, ImportSection, Instruction as I,
    MemoryType, Module, TypeSection, ValType,
};

use crate::abi::{self, WasmAbi};
use crate::WasmModule;

use calls::FnImports;
use control::{Frame, Layout};
use locals::{classify, konst, Locals, TempUse, PARAM_ENV};

/// Type index of a TB function: `(env: i32, out: i32) -> kind: i32`.
const TYPE_TB: u32 = 0;
/// Type index of a helper: `(env: i32, a0..a4: i64) -> i64`, declared only when the module imports one.
const TYPE_HELPER: u32 = 1;

/// Most members in one module (function indices and the member field of payloads stay small).
const MAX_MEMBERS: usize = 1 << 16;

/// Compiles a group of prepared TBs into one module whose export `tb{i}` runs member `i`.
pub fn compile_module(members: &[GroupMember<'_>], abi: &WasmAbi) -> Result<WasmModule, CompileError> {
    if members.len() > MAX_MEMBERS {
        return Err(CompileError::TooLarge(format!("{} TBs in one module", members.len())));
    }
    let fn_imports = FnImports::scan(members, abi);
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32, ValType::I32], [ValType::I32]);
    if fn_imports.len() > 0 {
        let helper_params = [
            ValType::I32,
            ValType::I64,
            ValType::I64,
            ValType::I64,
            ValType::I64,
            ValType::I64,
        ];
        types.ty().function(helper_params, [ValType::I64]);
    }

    let mut imports = ImportSection::new();
    let memory = MemoryType {
        minimum: 0,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    };
    imports.import(abi::IMPORT_MEMORY.0, abi::IMPORT_MEMORY.1, EntityType::Memory(memory));
    for &slot in &fn_imports.slots {
        imports.import(
            abi::IMPORT_FN_MODULE,
            &abi::import_name(slot),
            EntityType::Function(TYPE_HELPER),
        );
    }
    let first_member = fn_imports.len();

    let mut functions = FunctionSection::new();
    let mut exports = ExportSection::new();
    let mut code = CodeSection::new();
    let mut stats = ModuleStats::default();
    let mut names = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let body = FnGen::generate(m, i, members.len(), abi, &fn_imports, &mut stats)?;
        functions.function(TYPE_TB);
        let name = abi::export_name(i);
        exports.export(&name, ExportKind::Func, first_member + i as u32);
        code.function(&body);
        names.push(name);
        stats.ir_ops += m.func.ops.len();
    }

    let mut module = Module::new();
    module
        .section(&types)
        .section(&imports)
        .section(&functions)
        .section(&exports)
        .section(&code);
    Ok(WasmModule {
        bytes: module.finish(),
        exports: names,
        stats,
    })
}

/// What went into a module, for statistics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModuleStats {
    /// IR ops compiled.
    pub ir_ops: usize,
    /// `goto_tb`s compiled to a tail call of another member.
    pub chained_jumps: usize,
    /// Guest accesses with the TLB fast path inlined.
    pub inlined_accesses: usize,
    /// Backward branches that go through the dispatch loop (functions whose loops do not nest, see
    /// `codegen/control.rs`).
    pub dispatched_branches: usize,
    /// Loops emitted as a Wasm `loop` with direct back edges.
    pub structured_loops: usize,
}

/// The generator of one member's function.
pub(crate) struct FnGen<'a> {
    func: &'a Func,
    abi: &'a WasmAbi,
    /// The module's function imports (member `k` is function `imports.len() + k`).
    imports: &'a FnImports,
    /// This member's index in the group.
    member: usize,
    nb_members: usize,
    jump_targets: [Option<usize>; 2],
    code: Vec<I<'static>>,
    locals: Locals,
    /// Whether the IR's `env` is an i64 (`Type::PTR` of a 64-bit build host).
    env_is_i64: bool,
    /// Local holding `env` widened to i64, allocated when an op first uses `env` as a value (most ops use it
    /// only as an address, which is the i32 parameter); the prologue then fills it.
    env64: Option<u32>,
    layout: Layout,
    /// Region the code being emitted belongs to (see `control`).
    region: usize,
    /// The open region blocks and loops, innermost last.
    frames: Vec<Frame>,
    /// Blocks and ifs opened inside the current op, between the code and the region blocks.
    depth: u32,
    /// Guest instruction the current op belongs to (counting `insn_start` from 0).
    insn: u32,
    seen_insn_start: bool,
    /// Index of the op being compiled, for errors.
    op_index: usize,
    stats: &'a mut ModuleStats,
}

impl<'a> FnGen<'a> {
    /// Generates member `member`'s function.
    fn generate(
        m: &'a GroupMember<'a>,
        member: usize,
        nb_members: usize,
        abi: &'a WasmAbi,
        imports: &'a FnImports,
        stats: &'a mut ModuleStats,
    ) -> Result<Function, CompileError> {
        let func = m.func;
        let layout = Layout::analyse(func)?;
        let mut g = FnGen {
            func,
            abi,
            imports,
            member,
            nb_members,
            jump_targets: m.jump_targets,
            code: Vec::with_capacity(func.ops.len() * 4),
            locals: Locals::new(func),
            env_is_i64: func.temps.first().map(|t| t.ty) == Some(Type::I64),
            env64: None,
            layout,
            region: 0,
            frames: Vec::new(),
            depth: 0,
            insn: 0,
            seen_insn_start: false,
            op_index: 0,
            stats,
        };
        g.open_regions();
        for (i, op) in func.ops.iter().enumerate() {
            g.op_index = i;
            g.locals.release_scratch();
            g.op(op)?;
            if g.depth != 0 {
                return Err(g.invalid("unbalanced blocks after the op (code generator bug)"));
            }
        }
        g.close_regions()?;
        if let Some(l) = g.env64 {
            // The IR computes with 64-bit host pointers; Wasm addresses are the low 32 bits.
            g.code
                .splice(0..0, [I::LocalGet(PARAM_ENV), I::I64ExtendI32U, I::LocalSet(l)]);
        }
        // The verifier guarantees that the last op does not fall through; Wasm still wants the function's
        // result on every path it cannot prove dead.
        g.code.push(I::Unreachable);
        g.code.push(I::End);
        let mut f = Function::new(g.locals.declarations());
        for ins in &g.code {
            f.instruction(ins);
        }
        Ok(f)
    }

    /// Compiles one op.
    fn op(&mut self, op: &rqemu_tcg::Op) -> Result<(), CompileError> {
        use Opcode::*;
        match op.opc {
            SetLabel => self.set_label(op),
            Br | Brcond => self.branch(op),
            ExitTb | GotoTb | GotoPtr => self.exit(op),
            InsnStart => {
                if self.seen_insn_start {
                    self.insn += 1;
                }
                self.seen_insn_start = true;
                Ok(())
            }
            // One vCPU per host thread: barriers order nothing. A discarded temp keeps its local.
            Mb | Discard => Ok(()),
            Call => self.call(op),
            Ld8u | Ld8s | Ld16u | Ld16s | Ld32u | Ld32s | Ld | St8 | St16 | St32 | St => self.host_access(op),
            QemuLd => self.qemu_ld(op),
            QemuSt => self.qemu_st(op),
            _ => self.compute(op),
        }
    }

    /// A [`CompileError::Invalid`] at the current op.
    fn invalid(&self, why: impl Into<String>) -> CompileError {
        CompileError::Invalid {
            op_index: self.op_index,
            why: why.into(),
        }
    }

    /// A [`CompileError::Unsupported`] for `op`.
    fn unsupported(&self, op: &rqemu_tcg::Op) -> CompileError {
        CompileError::Unsupported {
            op_index: self.op_index,
            opc: op.opc,
            ty: op.ty,
        }
    }

    /// Pushes the value of `t`, in its own type.
    fn get(&mut self, t: Temp) -> Result<Type, CompileError> {
        let (u, ty) = classify(self.func, t, self.op_index)?;
        let ins = match u {
            TempUse::Const(v) => konst(ty, v),
            TempUse::Env if self.env_is_i64 => {
                let l = match self.env64 {
                    Some(l) => l,
                    None => *self.env64.insert(self.locals.of(Temp::ENV, Type::I64)),
                };
                I::LocalGet(l)
            }
            TempUse::Env => I::LocalGet(PARAM_ENV),
            TempUse::Local => I::LocalGet(self.locals.of(t, ty)),
        };
        self.code.push(ins);
        Ok(ty)
    }

    /// Pushes the value of `t` as type `want`: an i32 zero-extended, an i64 truncated. The verifier makes the
    /// types agree; converting keeps a mismatch from producing an invalid module.
    fn get_as(&mut self, t: Temp, want: Type) -> Result<(), CompileError> {
        let have = self.get(t)?;
        self.convert(have, want);
        Ok(())
    }

    /// Converts the value on the stack from `have` to `want` (zero-extending).
    fn convert(&mut self, have: Type, want: Type) {
        match (have, want) {
            (Type::I32, Type::I64) => self.code.push(I::I64ExtendI32U),
            (Type::I64, Type::I32) => self.code.push(I::I32WrapI64),
            _ => {}
        }
    }

    /// Pushes a host pointer temp as a 32-bit linear-memory address.
    fn get_addr32(&mut self, t: Temp) -> Result<(), CompileError> {
        if t == Temp::ENV {
            self.code.push(I::LocalGet(PARAM_ENV));
            return Ok(());
        }
        self.get_as(t, Type::I32)
    }

    /// Pops the value on the stack (of type `have`) into temp `t`.
    fn set(&mut self, t: Temp, have: Type) -> Result<(), CompileError> {
        let (u, ty) = classify(self.func, t, self.op_index)?;
        if !matches!(u, TempUse::Local) {
            return Err(self.invalid(format!("temp {} cannot be written", t.0)));
        }
        self.convert(have, ty);
        let l = self.locals.of(t, ty);
        self.code.push(I::LocalSet(l));
        Ok(())
    }

    /// Appends instructions.
    fn emit<const N: usize>(&mut self, ins: [I<'static>; N]) {
        self.code.extend(ins);
    }
}
