//! `weir-diff`: the differential property test for long runs. Generates `--cases`
//! random well-typed rulesets, evaluates `--facts` random fact sets against each
//! through the reference interpreter and the compiled WebAssembly module, and stops at
//! the first disagreement with its ruleset seed (exit 1). `--replay SEED` runs one
//! ruleset seed again; `--print SEED` prints its ruleset.
//!
//! `cargo run --release -p weir-tests --bin weir-diff -- --cases 20000`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Parser;
use weir_runtime::{Engine, EngineConfig};
use weir_tests::differential::{check_ruleset, ruleset_seed, ruleset_text, Config, Tally};

#[derive(Parser)]
#[command(about = "Compare weir's interpreter and WebAssembly engines on random rulesets")]
struct Args {
    /// Random rulesets to generate.
    #[arg(long, default_value_t = Config::default().rulesets)]
    cases: u64,
    /// Random fact sets evaluated against each ruleset.
    #[arg(long, default_value_t = Config::default().facts_per_ruleset)]
    facts: u64,
    /// Base seed: ruleset n is generated from a seed derived from it and n.
    #[arg(long, default_value_t = Config::default().seed)]
    seed: u64,
    /// Run only the ruleset of this seed (as printed by a failure).
    #[arg(long, conflicts_with_all = ["cases", "seed"])]
    replay: Option<u64>,
    /// Print the ruleset of this seed and stop (to read a failure's ruleset, or edit it).
    #[arg(long, conflicts_with_all = ["cases", "seed", "replay"])]
    print: Option<u64>,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    jobs: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(seed) = args.print {
        print!("{}", ruleset_text(seed));
        return Ok(());
    }
    let engine = Engine::new(&EngineConfig::default()).context("starting the engine")?;
    if let Some(seed) = args.replay {
        let tally = check_ruleset(&engine, seed, args.facts)?;
        println!(
            "ruleset seed {seed}: {} evaluations agree ({} without a trap)",
            tally.compared, tally.both_ok
        );
        return Ok(());
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let results: Vec<anyhow::Result<Tally>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Tally> {
                    let mut tally = Tally::default();
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= args.cases {
                            break;
                        }
                        match check_ruleset(&engine, ruleset_seed(args.seed, n), args.facts) {
                            Ok(t) => tally.add(t),
                            Err(failure) => {
                                stop.store(true, Ordering::Relaxed);
                                return Err(failure.into());
                            }
                        }
                        if (n + 1).is_multiple_of(1000) {
                            eprintln!("{} rulesets in {:.0?}", n + 1, started.elapsed());
                        }
                    }
                    Ok(tally)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| bail!("a worker panicked")))
            .collect()
    });
    let mut tally = Tally::default();
    for result in results {
        tally.add(result?);
    }
    println!(
        "{} rulesets, {} evaluations compared, {} without a trap, all agree ({:.1?}, {jobs} jobs)",
        args.cases,
        tally.compared,
        tally.both_ok,
        started.elapsed()
    );
    Ok(())
}
