//! `weir serve` and `weir tenant`: start the order API; create a merchant.

use std::io::Write;
use std::time::Duration;

use weir_runtime::engine::EngineConfig;
use weir_runtime::store::{self, StoreConfig};

use crate::cli::{ServeArgs, Status, TenantArgs};
use crate::serve::{self, demo, AppState, Limits, Options, ServeError};

fn runtime() -> Result<tokio::runtime::Runtime, ServeError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs the server until Ctrl-C; the exit code says how it ended.
pub fn run(args: &ServeArgs) -> Status {
    init_tracing();
    let outcome = runtime().and_then(|rt| rt.block_on(serve_until_stopped(args)));
    match outcome {
        Ok(()) => Status::Success,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "weir serve: error: {error}");
            Status::Failure
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,weir_server=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn serve_until_stopped(args: &ServeArgs) -> Result<(), ServeError> {
    let store = store::open(
        &args.db,
        StoreConfig {
            max_connections: args.connections,
            ..StoreConfig::default()
        },
    )
    .await?;
    let engine = serve::engine(&EngineConfig {
        fuel_per_call: args.fuel,
        ..EngineConfig::default()
    })?;
    let state = AppState::new(store, engine);
    let demo = if args.no_demo {
        None
    } else if args.rulesets.is_dir() {
        Some(demo::prepare(&state, &args.rulesets).await?)
    } else {
        return Err(ServeError::Demo(format!(
            "no rulesets folder at {} (give --rulesets DIR, or --no-demo)",
            args.rulesets.display()
        )));
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let options = Options {
        limits: Limits {
            body_bytes: args.max_body_bytes,
            timeout: Duration::from_millis(args.timeout_ms),
            concurrency: args.concurrency,
        },
        listen_url: args.db.starts_with("postgres").then(|| args.db.clone()),
        nats_url: args.nats.clone(),
        ..Options::default()
    };
    let running = serve::start(state, listener, options).await?;
    let base = format!("http://{}", running.addr);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "weir serve: listening on {base} ({})", args.db);
    if let Some(demo) = &demo {
        let names: Vec<&str> = demo.rulesets.iter().map(|(n, _)| n.as_str()).collect();
        let _ = writeln!(
            out,
            "demo merchant `{}`: rulesets {} active{}",
            demo.tenant,
            names.join(", "),
            if demo.created {
                ", demo stock received"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "API key (scope admin; shown once, replaced at every start):\n  export WEIR_KEY={}",
            demo.key
        );
        if let Some((_, dir)) = demo
            .rulesets
            .iter()
            .find(|(_, dir)| dir.join("examples/api-order.json").is_file())
        {
            let _ = writeln!(
                out,
                "place an order:\n  curl -s {base}/v1/orders -H \"Authorization: Bearer $WEIR_KEY\" -H 'Content-Type: application/json' -d @{}",
                dir.join("examples/api-order.json").display()
            );
        }
    }
    let _ = writeln!(out, "API description: {base}/openapi.json; Ctrl-C stops");
    let _ = out.flush();
    drop(out);
    let stop = running.shutdown_handle();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop.send(true);
        }
    });
    running.wait().await?;
    Ok(())
}

/// `weir tenant ID`: creates the merchant and prints its first key.
pub fn tenant(
    args: &TenantArgs,
    out: &mut dyn Write,
) -> Result<crate::cli::Status, crate::cli::Error> {
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let store = store::open(&args.db, StoreConfig::default()).await?;
            let name = args.name.clone().unwrap_or_else(|| args.id.clone());
            store.create_tenant(&args.id, &name).await?;
            let (key, secret) =
                serve::auth::issue_key(store.as_ref(), &args.id, "weir tenant", &args.scopes)
                    .await?;
            Ok::<_, ServeError>((key, secret))
        })
    });
    match result {
        Ok((key, secret)) => {
            writeln!(
                out,
                "tenant `{}` created; key {} (scopes {}):",
                args.id,
                key.id,
                key.scopes.join(",")
            )
            .map_err(crate::cli::Error::Output)?;
            writeln!(out, "{secret}").map_err(crate::cli::Error::Output)?;
            Ok(crate::cli::Status::Success)
        }
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "weir tenant: error: {error}");
            Ok(crate::cli::Status::Failure)
        }
    }
}
