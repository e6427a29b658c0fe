//! weir-compiler: a checked ruleset → IR → (WebAssembly, issue #3), plus the reference
//! interpreter over the same IR and the host-side combination of raw rule results into
//! decisions. Pure: no I/O.
//!
//! Stages: `lower` (typed AST → `ir` + `manifest`), `fold` (constant folding and
//! dead-rule elimination), `interp` (the reference engine over `abi`-encoded facts),
//! `outcome` (raw output words → decisions, the semantics of docs/semantics.md).

pub mod abi;
pub mod evaluate;
pub mod explain;
pub mod facts;
pub mod fold;
pub mod interp;
pub mod ir;
pub mod lists;
pub mod lower;
pub mod manifest;
pub mod numeric;
pub mod outcome;
pub mod testing;
pub mod wasm;

pub use lower::CompileError;

/// A ruleset ready to run: its IR and its manifest.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub program: ir::Program,
    pub manifest: manifest::Manifest,
    /// The manifest's string table as interner ids, built once.
    pub strings: std::sync::Arc<abi::InternTable>,
}

impl Compiled {
    pub fn new(program: ir::Program, manifest: manifest::Manifest) -> Compiled {
        let strings = std::sync::Arc::new(abi::InternTable::new(&manifest.strings));
        Compiled {
            program,
            manifest,
            strings,
        }
    }

    /// An interner for one evaluation, over the prebuilt string table.
    pub fn interner(&self) -> abi::Interner {
        abi::Interner::with_table(self.strings.clone())
    }
}

/// Lowers and optimises a checked ruleset.
pub fn compile(ruleset: &weir_dsl::checked::Ruleset) -> Result<Compiled, CompileError> {
    let (program, manifest) = lower::lower(ruleset)?;
    Ok(Compiled::new(fold::optimise(program), manifest))
}

/// Lowers, optimises and compiles a checked ruleset to a validated WebAssembly module
/// (docs/abi.md) carrying its manifest.
pub fn build(ruleset: &weir_dsl::checked::Ruleset) -> Result<(Compiled, Vec<u8>), CompileError> {
    let compiled = compile(ruleset)?;
    let wasm = wasm::emit(&compiled)?;
    Ok((compiled, wasm))
}
