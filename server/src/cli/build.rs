//! `weir build`: compile a ruleset to a WebAssembly module (`--emit wasm`, the
//! default), its text form (`--emit wat`), or a precompiled artifact for this machine
//! (`--emit cwasm`, what servers load without compiling).

use crate::cli::render::{Human, HumanStyle};
use crate::cli::sources;
use crate::cli::{BuildArgs, Emit, Error, Status};
use std::io::Write;
use weir_dsl::{Severity, SourceText};

pub fn run(
    args: &BuildArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    style: &HumanStyle,
) -> Result<Status, Error> {
    let groups = sources::discover(std::slice::from_ref(&args.ruleset))?;
    if groups.len() != 1 {
        writeln!(
            err,
            "weir: error: {} holds {} rulesets; build one at a time",
            args.ruleset.display(),
            groups.len()
        )?;
        return Ok(Status::Failure);
    }
    let files = sources::load(&groups)?;
    let sources: Vec<SourceText> = files
        .iter()
        .map(|f| SourceText {
            name: f.name.clone(),
            text: f.text.clone(),
        })
        .collect();
    let checked = weir_dsl::check(&sources);
    let Some(ruleset) = checked.ruleset else {
        let human = Human::new(style);
        for diagnostic in checked
            .diagnostics
            .iter()
            .filter(|d| d.severity() == Severity::Error)
        {
            human.render(err, &files, diagnostic)?;
        }
        writeln!(err, "weir: error: the ruleset has errors; nothing built")?;
        return Ok(Status::Problems);
    };
    let wasm = match weir_compiler::build(&ruleset) {
        Ok((_, wasm)) => wasm,
        Err(e) => {
            writeln!(err, "weir: error: cannot compile `{}`: {e}", ruleset.name)?;
            return Ok(Status::Problems);
        }
    };
    let bytes = match args.emit {
        Emit::Wasm => wasm,
        Emit::Wat => match wasmprinter::print_bytes(&wasm) {
            Ok(text) => text.into_bytes(),
            Err(e) => {
                writeln!(err, "weir: error: cannot print the module: {e}")?;
                return Ok(Status::Problems);
            }
        },
        Emit::Cwasm => {
            let engine = match weir_runtime::Engine::new(&weir_runtime::EngineConfig::default()) {
                Ok(engine) => engine,
                Err(e) => {
                    writeln!(err, "weir: error: {e}")?;
                    return Ok(Status::Failure);
                }
            };
            match engine.precompile(&wasm) {
                Ok(artifact) => artifact.as_bytes().to_vec(),
                Err(e) => {
                    writeln!(err, "weir: error: cannot precompile: {e}")?;
                    return Ok(Status::Problems);
                }
            }
        }
    };
    match &args.output {
        Some(path) => {
            crate::cli::write::write_file(path, &bytes).map_err(|e| {
                // Name the file: "No such file or directory" alone does not say which.
                Error::Output(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                ))
            })?;
            writeln!(err, "wrote {} ({} bytes)", path.display(), bytes.len())?;
        }
        None if args.emit == Emit::Wat => out.write_all(&bytes)?,
        None => {
            writeln!(err, "weir: error: binary output needs `-o FILE`")?;
            return Ok(Status::Failure);
        }
    }
    Ok(Status::Success)
}
