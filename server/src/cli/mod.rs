//! Command-line arguments (their doc comments are the `--help` text), the outcome of a
//! subcommand, and the errors that end one early.

pub mod build;
pub mod check;
pub mod eval;
pub mod explain;
pub mod fmt;
pub mod render;
pub mod serve;
pub mod sources;
pub mod test;
pub mod write;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::fmt as stdfmt;
use std::path::PathBuf;
use std::process::ExitCode;

pub use sources::SourceError;

/// Check, test, compile and run weir rule files, and serve the order API.
///
/// weir is a declarative rule language for retail promotions, risk, routing, fulfilment
/// constraints and SOPs. `weir check` validates rule files (in CI, or before you commit),
/// `weir fmt` puts them in the canonical layout, `weir explain` describes a diagnostic
/// code, `weir test` runs a ruleset's `test` blocks in both engines, `weir eval` decides
/// one order from a JSON file, `weir build` emits the WebAssembly module, and
/// `weir serve` runs the order API.
///
/// Exit codes: 0 success, 1 problems found (errors, files that need formatting, failed
/// tests), 2 usage or I/O error (bad arguments, a path that does not exist or cannot be
/// read).
#[derive(Debug, Parser)]
#[command(name = "weir", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Check(CheckArgs),
    Fmt(FmtArgs),
    Explain(ExplainArgs),
    /// Run the `test` blocks of rulesets through the reference interpreter and the
    /// compiled WebAssembly module; exit 1 when a test fails or coverage is too low.
    Test(TestArgs),
    /// Compile one ruleset to a WebAssembly module, its text form, or a precompiled
    /// artifact.
    Build(BuildArgs),
    /// Evaluate one ruleset over facts from a JSON file and print the decisions.
    Eval(EvalArgs),
    /// Run the order API: SQLite `./weir.db`, the rulesets under `rulesets/` active for
    /// a demo merchant, a fresh API key printed once.
    Serve(ServeArgs),
    /// Create a merchant (tenant) and print its first API key.
    Tenant(TenantArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  weir serve\n  weir serve --db postgres://postgres@127.0.0.1:5432/weir --listen 0.0.0.0:8080\n  weir serve --no-demo"
)]
pub struct ServeArgs {
    /// Database: `sqlite://PATH` (created if missing) or `postgres://…`.
    #[arg(long, env = "WEIR_DATABASE_URL", default_value = "sqlite://weir.db")]
    pub db: String,
    /// Address to listen on.
    #[arg(long, env = "WEIR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Folder of example rulesets (one per subfolder) to make active for the demo
    /// merchant, with the stock in each folder's demo.json.
    #[arg(long, default_value = "rulesets")]
    pub rulesets: PathBuf,
    /// Do not set up the demo merchant.
    #[arg(long)]
    pub no_demo: bool,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest a request may take (ms), waiting for a slot included.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Requests answered at once; more wait for a slot.
    #[arg(long, default_value_t = 512)]
    pub concurrency: usize,
    /// Fuel per hook call (about one WebAssembly instruction each).
    #[arg(long, default_value_t = 1_000_000)]
    pub fuel: u64,
    /// Database connections (PostgreSQL; SQLite readers).
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// Relay the outbox (order, stock and SOP events) to this NATS JetStream server.
    #[arg(long, env = "WEIR_NATS_URL")]
    pub nats: Option<String>,
}

#[derive(Debug, Args)]
pub struct TenantArgs {
    /// Database: `sqlite://PATH` or `postgres://…`.
    #[arg(long, env = "WEIR_DATABASE_URL", default_value = "sqlite://weir.db")]
    pub db: String,
    /// The merchant's id (used in every record).
    pub id: String,
    /// A display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Scopes of the first key: orders, rules, admin.
    #[arg(long, value_delimiter = ',', default_value = "admin")]
    pub scopes: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// The WebAssembly module (with its manifest in a custom section).
    Wasm,
    /// The module as WebAssembly text.
    Wat,
    /// A wasmtime artifact precompiled for this machine.
    Cwasm,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  weir build rulesets/beauty -o beauty.wasm\n  weir build rulesets/beauty --emit wat"
)]
pub struct BuildArgs {
    /// The ruleset: a folder of .weir files or one file.
    #[arg(value_name = "RULESET")]
    pub ruleset: PathBuf,

    #[arg(long, value_enum, default_value_t = Emit::Wasm)]
    pub emit: Emit,

    /// Where to write the output (required for wasm and cwasm; wat goes to stdout without it).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EvalEngine {
    /// The compiled WebAssembly module (what the order API runs).
    Wasm,
    /// The reference interpreter.
    Interpreter,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  weir eval --ruleset rulesets/beauty --input order.json --explain"
)]
pub struct EvalArgs {
    /// The ruleset: a folder of .weir files or one file.
    #[arg(long, value_name = "PATH")]
    pub ruleset: PathBuf,

    /// Facts as JSON (see docs/cli.md for the format).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,

    /// Also show every rule, whether it fired, and the fact values its conditions read.
    #[arg(long)]
    pub explain: bool,

    #[arg(long, value_enum, default_value_t = EvalEngine::Wasm)]
    pub engine: EvalEngine,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  weir test rulesets/\n  weir test --coverage --coverage-min 100 rulesets/beauty"
)]
pub struct TestArgs {
    /// List the rules that no test made fire.
    #[arg(long)]
    pub coverage: bool,

    /// Fail (exit 1) when fewer than N percent of the rules fire in some test.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=100))]
    pub coverage_min: Option<u8>,

    /// Files or folders, found as `weir check` finds them.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Check rule files for errors and warnings.
///
/// Each PATH is a `.weir` file or a directory. A file is checked as a ruleset of its own.
/// In a directory, the `.weir` files directly inside it form one ruleset (read in name
/// order), and every subdirectory is searched the same way, so `weir check rulesets/`
/// checks each business folder as its own ruleset. Hidden files and directories (names
/// starting with `.`) are skipped when searching a directory.
///
/// Exit codes: 0 no errors (warnings allowed), 1 at least one error (or warning, with
/// --deny-warnings), 2 usage or I/O error, or a directory without any `.weir` file.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  weir check rulesets/\n  weir check --format github --deny-warnings rulesets/\n  weir check rulesets/beauty/rules.weir"
)]
pub struct CheckArgs {
    /// Output format: `human` draws each problem under its source line on stderr (colored
    /// only when stderr is a terminal and NO_COLOR is not set); `json` prints one JSON
    /// document on stdout; `github` prints GitHub Actions workflow commands on stdout, so
    /// problems show up as annotations on the pull request.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Treat warnings as errors for the exit code (they are still reported as warnings).
    #[arg(long)]
    pub deny_warnings: bool,

    /// Rule files and directories to check.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// How `weir check` reports what it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Source snippets with the problem underlined, on stderr.
    Human,
    /// One JSON document on stdout (`"version": 1`).
    Json,
    /// GitHub Actions `::error`/`::warning` commands on stdout.
    Github,
}

/// Rewrite rule files in the canonical layout.
///
/// PATHs are found as for `weir check`: every `.weir` file named or found under a named
/// directory is formatted. Files are replaced atomically (written next to the original,
/// then renamed over it), so an interrupted run never leaves a half-written rule file.
/// A file that does not parse is reported and left untouched.
///
/// Exit codes: 0 success (with --check: every file is already formatted), 1 a file does
/// not parse (or, with --check, some file would be reformatted), 2 usage or I/O error.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  weir fmt rulesets/\n  weir fmt --check rulesets/   # in CI")]
pub struct FmtArgs {
    /// Do not write anything: list each file that would change (`would reformat: PATH` on
    /// stdout) and exit with 1 if there is any.
    #[arg(long)]
    pub check: bool,

    /// Rule files and directories to format.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Explain a diagnostic code, or list them all.
///
/// Codes look like `E0101` (errors) or `W0001` (warnings); case does not matter.
///
/// Exit codes: 0 success, 2 unknown code.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  weir explain E0101\n  weir explain --list")]
pub struct ExplainArgs {
    /// The code to explain, as printed by `weir check` (for example `E0101`).
    #[arg(
        required_unless_present = "list",
        conflicts_with = "list",
        value_name = "CODE"
    )]
    pub code: Option<String>,

    /// Print a table of every code with its severity and title.
    #[arg(long)]
    pub list: bool,
}

/// How a subcommand went; each variant is one exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Exit 0: nothing to report (warnings allowed).
    Success,
    /// Exit 1: the rule files have problems (errors, denied warnings, unformatted files).
    Problems,
    /// Exit 2: the command itself could not do its job (usage, I/O).
    Failure,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Problems => 1,
            Status::Failure => 2,
        }
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> ExitCode {
        ExitCode::from(status.code())
    }
}

/// What stops a subcommand before it has a result: reading the inputs or writing the output.
#[derive(Debug)]
pub enum Error {
    Source(SourceError),
    Output(std::io::Error),
}

impl stdfmt::Display for Error {
    fn fmt(&self, f: &mut stdfmt::Formatter<'_>) -> stdfmt::Result {
        match self {
            Error::Source(error) => error.fmt(f),
            // The io::Error itself is the `source`, which `{:#}` appends.
            Error::Output(_) => f.write_str("cannot write output"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Transparent: the SourceError's own message is already this error's message.
            Error::Source(error) => error.source(),
            Error::Output(error) => Some(error),
        }
    }
}

impl From<SourceError> for Error {
    fn from(error: SourceError) -> Error {
        Error::Source(error)
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Error {
        Error::Output(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn statuses_map_to_documented_exit_codes() {
        assert_eq!(Status::Success.code(), 0);
        assert_eq!(Status::Problems.code(), 1);
        assert_eq!(Status::Failure.code(), 2);
        assert!(Status::Failure > Status::Problems && Status::Problems > Status::Success);
    }
}
