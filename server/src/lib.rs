//! The `weir` command line as a library: argument types, file discovery, rendering and the
//! subcommands. `main.rs` only parses arguments and maps the outcome to an exit code, so
//! everything here can be unit tested without spawning a process.

pub mod cli;
pub mod serve;
