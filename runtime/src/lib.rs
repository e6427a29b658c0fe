//! weir-runtime hosts compiled rulesets and the core services (issues #3 and #6). Until
//! those land the crate exists so the workspace has the layout of
//! `docs/architecture.md`; it exports nothing.
