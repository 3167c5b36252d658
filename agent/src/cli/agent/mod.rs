//! `podiam agent`: the DaemonSet process. Attaches (or adopts) the eBPF datapath, starts the
//! inventory, and serves IMDS and container credentials on the node address until SIGTERM;
//! the pinned programs stay attached after exit (fail closed across restarts).
mod args;
mod background;
mod build;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

pub use args::{Args, IdentityKind, InventoryKind, LogFormat};

use crate::server::{self, OpsState};

/// Runs the agent until SIGTERM/SIGINT.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(args: &Args) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("bad --log-level {:?}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("initialising logging: {e}"))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let parts = build::Parts::build(&args, shutdown.clone()).await?;
    let build::Parts {
        config,
        state,
        metrics,
        readiness,
        cache,
        inventory,
        policy,
    } = parts;

    let proxy = server::bind_listeners(&config.proxy_addrs).await?;
    let ops = tokio::net::TcpListener::bind(config.ops_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.ops_addr))?;
    tracing::info!(proxy = ?config.proxy_addrs, ops = %config.ops_addr, "serving");

    let keeper =
        background::spawn_session_keeper(inventory, policy, cache, args.prefetch, shutdown.clone());

    tokio::spawn(wait_for_signal(shutdown.clone()));
    let ops_state = Arc::new(OpsState { metrics, readiness });
    let limits = config.limits.clone();
    let result = tokio::try_join!(
        server::serve_proxy(proxy, state, shutdown.clone()),
        server::serve_ops(ops, ops_state, &limits, shutdown.clone()),
    );
    shutdown.cancel();
    let _ = keeper.await;
    result?;
    tracing::info!(
        "stopped; eBPF programs stay pinned (pods get connection refused until the next start)"
    );
    Ok(())
}

async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
    shutdown.cancel();
}
