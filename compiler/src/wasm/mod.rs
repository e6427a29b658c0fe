//! IR → WebAssembly: the module the host (`weir-runtime`) runs on every order.
//!
//! The module follows docs/abi.md, "Calling a module":
//!
//! - exports `memory` (its only memory: one 64 KiB page to start, no maximum; the host
//!   caps growth), the immutable `i32` global `input_base` (0), its four mutable globals
//!   (`state_*`: the host resets them when it reuses an instance) and all five hooks,
//!   `promotions`, `route`, `constraints`, `risk` and `sop_triggers`, each
//!   `(input_ptr: i32, input_len: i32) -> i64` returning `output_ptr << 32 | output_len`
//!   (bytes); a hook the ruleset has nothing for returns an empty output;
//! - imports `weir.list_contains(list_id: i32, value: i64) -> i32` only when a rule tests
//!   a runtime list, and nothing else; no start function, no data;
//! - carries its `Manifest` in the custom section `weir.manifest` (see [`manifest`]).
//!
//! Each hook computes exactly the words `interp::run` computes for the same program and
//! input, and traps (`unreachable`, or the one division that traps only on an overflow
//! the interpreter reports too) exactly when the interpreter returns an error: every
//! load is checked against the input length (not memory), arithmetic is checked where
//! the interpreter checks it, and the fixed-point kernels of `numeric` are internal
//! functions that follow it step for step. The output words are written little-endian
//! from the first 8-aligned address after the input, growing memory as needed.
//!
//! Code is shared rather than repeated: kernels, checked arithmetic, the input load,
//! the output writer, list membership and absent-aware comparisons are internal
//! functions, emitted only when used; each hook function holds its rules' expression
//! trees as straight-line code.

mod body;
mod codegen;
mod helpers;
pub mod manifest;

use crate::interp::Hook;
use crate::ir::{ActionIr, Ir, Program};
use crate::{CompileError, Compiled};
use helpers::Helpers;
use wasm_encoder::{
    CodeSection, ConstExpr, CustomSection, EntityType, ExportKind, ExportSection, Function,
    FunctionSection, GlobalSection, GlobalType, ImportSection, MemorySection, MemoryType, Module,
    TypeSection, ValType,
};

pub use manifest::{read as read_manifest, ManifestError};

/// The address at which the host writes the input (the module has no static data).
pub const INPUT_BASE: i32 = 0;

/// Global indices.
mod globals {
    /// Exported, immutable: where the host writes the input.
    pub(super) const INPUT_BASE: u32 = 0;
    /// Where this call's input starts (`input_ptr`).
    pub(super) const IN_PTR: u32 = 1;
    /// `input_len - 8`: the largest offset a word can be read at.
    pub(super) const LIMIT: u32 = 2;
    /// Where the output starts.
    pub(super) const OUT_BASE: u32 = 3;
    /// Where the next output word goes.
    pub(super) const OUT_PTR: u32 = 4;
    /// The mutable globals, exported under these names.
    pub(super) const STATE: [(&str, u32); 4] = [
        ("state_in_ptr", IN_PTR),
        ("state_limit", LIMIT),
        ("state_out_base", OUT_BASE),
        ("state_out_ptr", OUT_PTR),
    ];
}

/// Every expression of a program, for whole-program questions.
fn roots(program: &Program) -> Vec<&Ir> {
    let mut out: Vec<&Ir> = Vec::new();
    for p in &program.promotions {
        out.extend(p.when.as_ref());
        for action in &p.actions {
            match action {
                ActionIr::DiscountOrder { amount, cap, .. } => {
                    out.push(amount);
                    out.extend(cap.as_ref());
                }
                ActionIr::DiscountItems {
                    filter,
                    amount,
                    cap,
                    ..
                } => {
                    out.extend(filter.as_ref());
                    out.push(amount);
                    out.extend(cap.as_ref());
                }
                ActionIr::Gift { sku, qty } => {
                    out.push(sku);
                    out.push(qty);
                }
                ActionIr::PointsMultiplier(m) => out.push(m),
            }
        }
    }
    if let Some(route) = &program.route {
        out.push(&route.eligible);
        out.push(&route.score);
    }
    out.extend(program.constraints.iter().flatten());
    for risk in &program.risks {
        out.extend(risk.when.as_ref());
        out.extend(risk.score.as_ref());
    }
    out.extend(program.decide.iter().flatten());
    out.extend(program.sops.iter().filter_map(|s| s.when.as_ref()));
    out
}

fn uses_host_lists(ir: &Ir) -> bool {
    matches!(ir, Ir::HostList { .. }) || ir.children().into_iter().any(uses_host_lists)
}

/// Function types, deduplicated.
#[derive(Default)]
struct Types {
    list: Vec<(Vec<ValType>, Vec<ValType>)>,
}

impl Types {
    fn index(&mut self, params: &[ValType], results: &[ValType]) -> u32 {
        let position = match self
            .list
            .iter()
            .position(|(p, r)| p.as_slice() == params && r.as_slice() == results)
        {
            Some(p) => p,
            None => {
                self.list.push((params.to_vec(), results.to_vec()));
                self.list.len() - 1
            }
        };
        position as u32
    }
}

/// Compiles a program to a validated WebAssembly module carrying its manifest.
pub fn emit(compiled: &Compiled) -> Result<Vec<u8>, CompileError> {
    let program = &compiled.program;
    let host_lists = roots(program).into_iter().any(uses_host_lists);
    let imports: u32 = u32::from(host_lists);
    let hook_count = Hook::ALL.len() as u32;
    let mut helpers = Helpers::new(imports + hook_count, host_lists.then_some(0));

    let mut types = Types::default();
    let hook_type = types.index(&[ValType::I32, ValType::I32], &[ValType::I64]);

    // Hooks first: they decide which helpers exist.
    let mut bodies: Vec<(u32, Function)> = Vec::new();
    for hook in Hook::ALL {
        let mut gen = codegen::FnGen::new(program, &mut helpers);
        gen.hook(program, hook);
        let (locals, code) = gen.finish();
        let mut f = Function::new(locals);
        f.raw(code);
        bodies.push((hook_type, f));
    }
    // Helpers may ask for further helpers; their indices were fixed on first request.
    let mut position = 0;
    while let Some(helper) = helpers.get(position) {
        let (locals, code) = helpers::body(helper, &mut helpers).map_err(CompileError::Internal)?;
        let (params, results) = helper.signature();
        let mut f = Function::new(locals);
        f.raw(code);
        bodies.push((types.index(params, results), f));
        position += 1;
    }

    let mut module = Module::new();
    let list_type = host_lists.then(|| types.index(&[ValType::I32, ValType::I64], &[ValType::I32]));
    let mut type_section = TypeSection::new();
    for (params, results) in &types.list {
        type_section
            .ty()
            .function(params.iter().copied(), results.iter().copied());
    }
    module.section(&type_section);

    if let Some(list_type) = list_type {
        let mut import_section = ImportSection::new();
        import_section.import("weir", "list_contains", EntityType::Function(list_type));
        module.section(&import_section);
    }

    let mut function_section = FunctionSection::new();
    for (ty, _) in &bodies {
        function_section.function(*ty);
    }
    module.section(&function_section);

    let mut memory_section = MemorySection::new();
    memory_section.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memory_section);

    let mut global_section = GlobalSection::new();
    let global = |val_type, mutable| GlobalType {
        val_type,
        mutable,
        shared: false,
    };
    global_section.global(
        global(ValType::I32, false),
        &ConstExpr::i32_const(INPUT_BASE),
    );
    global_section.global(global(ValType::I32, true), &ConstExpr::i32_const(0));
    global_section.global(global(ValType::I64, true), &ConstExpr::i64_const(0));
    global_section.global(global(ValType::I32, true), &ConstExpr::i32_const(0));
    global_section.global(global(ValType::I32, true), &ConstExpr::i32_const(0));
    module.section(&global_section);

    let mut export_section = ExportSection::new();
    export_section.export("memory", ExportKind::Memory, 0);
    export_section.export("input_base", ExportKind::Global, globals::INPUT_BASE);
    // The host resets exported mutable globals when it reuses an instance for the next
    // evaluation and refuses modules with hidden ones (docs/abi.md, "No state between
    // evaluations"). The hooks set these on entry anyway.
    for (name, index) in globals::STATE {
        export_section.export(name, ExportKind::Global, index);
    }
    for (i, hook) in Hook::ALL.iter().enumerate() {
        export_section.export(hook.export_name(), ExportKind::Func, imports + i as u32);
    }
    module.section(&export_section);

    let mut code_section = CodeSection::new();
    for (_, f) in &bodies {
        code_section.function(f);
    }
    module.section(&code_section);

    let manifest_bytes = manifest::encode(&compiled.manifest)
        .map_err(|e| CompileError::Internal(format!("manifest encoding: {e}")))?;
    module.section(&CustomSection {
        name: manifest::SECTION.into(),
        data: manifest_bytes.into(),
    });

    let bytes = module.finish();
    validate(&bytes)?;
    Ok(bytes)
}

/// Validates a module with `wasmparser`'s default features, as the host does.
pub fn validate(wasm: &[u8]) -> Result<(), CompileError> {
    wasmparser::Validator::new()
        .validate_all(wasm)
        .map(|_| ())
        .map_err(|e| CompileError::Internal(format!("emitted an invalid module: {e}")))
}
