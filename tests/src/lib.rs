//! Shared code of the end-to-end tests (`tests/tests/`) and of the `weir-diff` binary,
//! which runs the differential property test for as long as you like.

pub mod differential;
