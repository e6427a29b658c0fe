//! weir-compiler lowers a checked ruleset to IR and WebAssembly (issue #3). Until that
//! lands the crate exists so the workspace has the layout of `docs/architecture.md`;
//! it exports nothing.
