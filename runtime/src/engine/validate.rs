//! The guest contract (`docs/abi.md`, "Calling a module"), checked twice:
//!
//! - [`check_wasm`] on the WebAssembly bytes with `wasmparser`, before anything is
//!   compiled, and
//! - [`check_module`] on the compiled `wasmtime::Module` when an artifact is loaded, so an
//!   artifact can never link anything but the ABI's host functions either.

use wasmparser::types::{EntityType, TypesRef};
use wasmparser::{CompositeInnerType, Parser, Payload, Validator};

use super::config::WASM_PAGE;
use super::error::EngineError;
use super::Hook;

/// Module name of the host functions.
pub(crate) const HOST_MODULE: &str = "weir";
/// The only host function: `list_contains(list_id: i32, value: i64) -> i32`.
pub(crate) const LIST_CONTAINS: &str = "list_contains";
const LIST_CONTAINS_TYPE: &str = "func (param i32 i64) (result i32)";
const HOOK_TYPE: &str = "func (param i32 i32) (result i64)";
/// Export holding the guest's linear memory.
pub(crate) const MEMORY_EXPORT: &str = "memory";
/// Export holding the address the host writes the input at.
pub(crate) const INPUT_BASE_EXPORT: &str = "input_base";

/// Validates `wasm` (wasmparser, default features) and checks the guest contract.
pub(crate) fn check_wasm(wasm: &[u8], memory_limit_bytes: usize) -> Result<(), EngineError> {
    let types = Validator::new().validate_all(wasm).map_err(invalid_wasm)?;
    let types = types.as_ref();

    // The validator's type information has no start section and does not say which
    // globals are exported; one pass over the section headers (function bodies are not
    // decoded) finds both.
    let mut exported_globals = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid_wasm)? {
            Payload::StartSection { .. } => return Err(EngineError::StartFunction),
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(invalid_wasm)?;
                    if export.kind == wasmparser::ExternalKind::Global {
                        exported_globals.push(export.index);
                    }
                }
            }
            _ => {}
        }
    }

    for (module, name, ty) in types.core_imports().into_iter().flatten() {
        check_import(module, name, describe_entity(&types, &ty).as_deref())?;
    }
    // Only globals the host can see can be reset when it reuses an instance for the
    // next evaluation.
    if let Some(hidden) = (0..types.global_count())
        .find(|index| types.global_at(*index).mutable && !exported_globals.contains(index))
    {
        return Err(EngineError::HiddenGlobal { index: hidden });
    }

    let found = types.memory_count();
    if found != 1 {
        return Err(EngineError::MemoryCount { found });
    }
    let memory = types.memory_at(0);
    if memory.memory64 {
        return Err(EngineError::UnsupportedMemory(
            "64-bit memories are not supported".to_owned(),
        ));
    }
    if memory.shared {
        return Err(EngineError::UnsupportedMemory(
            "shared memories are not supported".to_owned(),
        ));
    }
    if memory.page_size_log2.is_some_and(|log2| log2 != 16) {
        return Err(EngineError::UnsupportedMemory(
            "only 64 KiB pages are supported".to_owned(),
        ));
    }
    check_initial_memory(memory.initial, memory_limit_bytes)?;

    let mut has_memory = false;
    let mut has_input_base = false;
    for (name, ty) in types.core_exports().into_iter().flatten() {
        match name {
            MEMORY_EXPORT => {
                if !matches!(ty, EntityType::Memory(_)) {
                    return Err(bad_export(name, "must be a memory"));
                }
                has_memory = true;
            }
            INPUT_BASE_EXPORT => {
                match ty {
                    EntityType::Global(g)
                        if g.content_type == wasmparser::ValType::I32 && !g.mutable => {}
                    _ => return Err(bad_export(name, "must be an immutable i32 global")),
                }
                has_input_base = true;
            }
            _ => {
                if Hook::from_export_name(name).is_some()
                    && describe_entity(&types, &ty).as_deref() != Some(HOOK_TYPE)
                {
                    return Err(bad_export(name, &format!("must be a {HOOK_TYPE}")));
                }
            }
        }
    }
    if !has_memory {
        return Err(EngineError::MissingExport(MEMORY_EXPORT));
    }
    if !has_input_base {
        return Err(EngineError::MissingExport(INPUT_BASE_EXPORT));
    }
    Ok(())
}

/// Re-checks imports and the ABI exports on a compiled module (used at load).
pub(crate) fn check_module(
    module: &wasmtime::Module,
    memory_limit_bytes: usize,
) -> Result<(), EngineError> {
    use wasmtime::{ExternType, Mutability, ValType};

    for import in module.imports() {
        let found = match import.ty() {
            ExternType::Func(f) => Some(describe_func(
                f.params().map(|t| t.to_string()),
                f.results().map(|t| t.to_string()),
            )),
            _ => None,
        };
        check_import(import.module(), import.name(), found.as_deref())?;
    }
    match module.get_export(MEMORY_EXPORT) {
        Some(ExternType::Memory(m)) => {
            if m.is_64() || m.is_shared() || m.page_size() != WASM_PAGE as u64 {
                return Err(EngineError::UnsupportedMemory(
                    "memory must be 32-bit, unshared, with 64 KiB pages".to_owned(),
                ));
            }
            check_initial_memory(m.minimum(), memory_limit_bytes)?;
        }
        Some(_) => return Err(bad_export(MEMORY_EXPORT, "must be a memory")),
        None => return Err(EngineError::MissingExport(MEMORY_EXPORT)),
    }
    match module.get_export(INPUT_BASE_EXPORT) {
        Some(ExternType::Global(g))
            if matches!(g.content(), ValType::I32) && g.mutability() == Mutability::Const => {}
        Some(_) => {
            return Err(bad_export(
                INPUT_BASE_EXPORT,
                "must be an immutable i32 global",
            ))
        }
        None => return Err(EngineError::MissingExport(INPUT_BASE_EXPORT)),
    }
    for hook in Hook::ALL {
        let ok = match module.get_export(hook.export_name()) {
            None => true,
            Some(ExternType::Func(f)) => {
                describe_func(
                    f.params().map(|t| t.to_string()),
                    f.results().map(|t| t.to_string()),
                ) == HOOK_TYPE
            }
            Some(_) => false,
        };
        if !ok {
            return Err(bad_export(
                hook.export_name(),
                &format!("must be a {HOOK_TYPE}"),
            ));
        }
    }
    Ok(())
}

fn check_import(module: &str, name: &str, found: Option<&str>) -> Result<(), EngineError> {
    if module != HOST_MODULE || name != LIST_CONTAINS {
        return Err(EngineError::ForbiddenImport {
            module: module.to_owned(),
            name: name.to_owned(),
        });
    }
    if found != Some(LIST_CONTAINS_TYPE) {
        return Err(EngineError::ImportType {
            module: module.to_owned(),
            name: name.to_owned(),
            found: found.unwrap_or("a non-function").to_owned(),
            expected: LIST_CONTAINS_TYPE,
        });
    }
    Ok(())
}

fn check_initial_memory(initial_pages: u64, limit_bytes: usize) -> Result<(), EngineError> {
    let initial_bytes = initial_pages.saturating_mul(WASM_PAGE as u64);
    if initial_bytes > limit_bytes as u64 {
        return Err(EngineError::MemoryTooLarge {
            initial_bytes,
            limit_bytes,
        });
    }
    Ok(())
}

/// One line: some wasmparser messages pretty-print byte arrays over several lines.
fn invalid_wasm(error: wasmparser::BinaryReaderError) -> EngineError {
    let message = error.to_string();
    EngineError::InvalidWasm(message.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn bad_export(name: &str, problem: &str) -> EngineError {
    EngineError::BadExport {
        name: name.to_owned(),
        problem: problem.to_owned(),
    }
}

/// `func (param ..) (result ..)` for a function entity, `None` for anything else.
fn describe_entity(types: &TypesRef<'_>, ty: &EntityType) -> Option<String> {
    let (EntityType::Func(id) | EntityType::FuncExact(id)) = ty else {
        return None;
    };
    match &types.get(*id)?.composite_type.inner {
        CompositeInnerType::Func(f) => Some(describe_func(
            f.params().iter().map(|t| t.to_string()),
            f.results().iter().map(|t| t.to_string()),
        )),
        _ => None,
    }
}

fn describe_func(
    params: impl Iterator<Item = String>,
    results: impl Iterator<Item = String>,
) -> String {
    let mut out = String::from("func");
    for (keyword, types) in [
        ("param", params.collect::<Vec<_>>()),
        ("result", results.collect()),
    ] {
        if !types.is_empty() {
            out.push_str(&format!(" ({keyword} {})", types.join(" ")));
        }
    }
    out
}
