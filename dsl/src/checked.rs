//! The checked, typed ruleset: what the compiler consumes.

#[derive(Debug, Clone)]
pub struct Ruleset {}
