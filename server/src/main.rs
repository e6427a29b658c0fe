//! The `weir` binary: parse arguments, run the subcommand, turn its outcome into an exit code.

use anyhow::Result;
use clap::Parser as _;
use std::io::Write as _;
use std::process::ExitCode;
use weir_server::cli::{self, render::HumanStyle, Cli, Command, Status};

// The order API allocates many small, short-lived objects from several threads, where
// mimalloc is measurably faster than the system allocator (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // clap exits with 2 on usage errors and 0 for --help/--version on its own.
    let args = Cli::parse();
    match run(args) {
        Ok(status) => status.into(),
        Err(error) => {
            // Nothing else can be reported if stderr itself is gone.
            let _ = writeln!(std::io::stderr(), "weir: error: {error:#}");
            Status::Failure.into()
        }
    }
}

fn run(args: Cli) -> Result<Status> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let style = HumanStyle::detect();
    let status = match args.command {
        Command::Check(check) => cli::check::run(&check, &mut out, &mut err, &style)?,
        Command::Fmt(fmt) => cli::fmt::run(&fmt, &mut out, &mut err, &style)?,
        Command::Explain(explain) => cli::explain::run(&explain, &mut out, &mut err)?,
        Command::Test(test) => cli::test::run(&test, &mut out, &mut err, &style)?,
        Command::Build(build) => cli::build::run(&build, &mut out, &mut err, &style)?,
        Command::Eval(eval) => cli::eval::run(&eval, &mut out, &mut err, &style)?,
        Command::Serve(serve) => {
            // The server writes to stdout and stderr from its worker threads (banner,
            // logs); holding either lock here would block them forever.
            drop(out);
            drop(err);
            return Ok(cli::serve::run(&serve));
        }
        Command::Tenant(tenant) => cli::serve::tenant(&tenant, &mut out)?,
    };
    out.flush()?;
    Ok(status)
}
