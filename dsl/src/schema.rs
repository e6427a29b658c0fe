//! The built-in fact schema.
