// Outside input never panics the server (the workspace's Cargo.toml says why here).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use ferrum::{Cli, Command, Config, Daemon, DaemonError, LogControl, NodeInfo, ProcessEnv, StopSignal};

/// jemalloc, not the C library's allocator: RocksDB's threads fragment glibc's arenas, which
/// doubled the index's memory during initial sync (docs/architecture.md, "Memory").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long `ferrum snapshot` waits for the server's answer.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(6 * 3600);

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::ConfigReference) = cli.command {
        print!("{}", ferrum::config_reference());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(&cli.options, &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferrum: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Config) = cli.command {
        println!("{config:#?}");
        for notice in &config.notices {
            println!("note: {notice}");
        }
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Connect { host, json }) = &cli.command {
        return match ferrum::connect_report(&config, host.as_deref(), *json) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferrum: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Rpc { port, json, command, args }) = &cli.command {
        // A snapshot copies the txid file: tens of GB on mainnet.
        let wait = if command == "snapshot" { SNAPSHOT_WAIT } else { Duration::from_secs(120) };
        return rpc(&config, *port, *json, command, args, wait);
    }
    if let Some(Command::Snapshot { dir, port, json }) = &cli.command {
        // The server resolves nothing against its own working directory.
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        return rpc(&config, *port, *json, "snapshot", &[dir.display().to_string()], SNAPSHOT_WAIT);
    }
    let log = init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrum: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::NodeInfo { json }) => runtime.block_on(node_info(&config, json)),
        Some(Command::Index { what, json }) => ferrum::inspect(&config, &what, json).map(|out| print!("{out}")),
        None => runtime.block_on(serve(config, log)),
        Some(
            Command::Rpc { .. }
            | Command::Snapshot { .. }
            | Command::Connect { .. }
            | Command::Config
            | Command::ConfigReference,
        ) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrum: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr with `filter`; returns what changes the filter while running.
fn init_logging(filter: &str) -> LogControl {
    use tracing_subscriber::{prelude::*, reload, EnvFilter};
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(ferrum::DEFAULT_LOG));
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
    Arc::new(move |text: &str| {
        let text = ferrum::check_log_filter(text)?;
        let filter = EnvFilter::try_new(&text).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    })
}

async fn serve(config: Config, log: LogControl) -> anyhow::Result<()> {
    tracing::info!("ferrum {} starting: {config:?}", env!("CARGO_PKG_VERSION"));
    for notice in &config.notices {
        tracing::info!("{notice}");
    }
    let files = raise_open_file_limit();
    // Each session is a socket; RocksDB and the node connections need some too.
    if files < config.server.limits.max_sessions as u64 + 256 {
        tracing::warn!(
            "the open-file limit ({files}) is too low for --max-sessions {}; raise it (ulimit -n, LimitNOFILE=)",
            config.server.limits.max_sessions
        );
    }
    let stop = StopSignal::default();
    tokio::spawn(stop_on_signals(stop.clone()));
    ferrum::run(config, stop, Some(log)).await
}

/// Raises the soft open-file limit to the hard one; returns the limit in effect.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// `ferrum rpc`: one admin command against a running server.
fn rpc(config: &Config, port: Option<u16>, json: bool, command: &str, args: &[String], wait: Duration) -> ExitCode {
    let addr = match (port, config.monitor.admin_rpc) {
        (Some(port), _) => SocketAddr::from(([127, 0, 0, 1], port)),
        // A wildcard listener is reached over loopback.
        (None, Some(addr)) if addr.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        (None, Some(addr)) => addr,
        (None, None) => SocketAddr::from(([127, 0, 0, 1], ferrum::DEFAULT_RPC_PORT)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrum: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ferrum::admin_call_waiting(addr, command, args, wait)) {
        Ok(result) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
            } else {
                print!("{}", ferrum::admin_render(&result));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferrum rpc {command}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM: finish the current chunk and exit 0. A second one exits at once.
async fn stop_on_signals(stop: StopSignal) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    for n in 0.. {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        if n > 0 {
            eprintln!("ferrum: second signal, exiting now");
            std::process::exit(130);
        }
        tracing::info!("stopping: finishing the current chunk");
        stop.stop();
    }
}

async fn node_info(config: &Config, json: bool) -> anyhow::Result<()> {
    let daemon = Daemon::new(&config.daemon.rpc);
    if let Err(mismatch) = daemon.check_usable().await.map_err(explain)? {
        anyhow::bail!(mismatch);
    }
    let info = daemon.probe().await.map_err(explain)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{}", report(&info, &config.daemon.rpc.rpc_addr));
    }
    Ok(())
}

fn explain(e: DaemonError) -> anyhow::Error {
    match e {
        DaemonError::WarmingUp(msg) => {
            anyhow::anyhow!("bitcoind is warming up ({msg}); try again when it has finished loading")
        }
        e => anyhow::Error::new(e),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn report(info: &NodeInfo, addr: &str) -> String {
    let zmq = if info.zmq.is_empty() {
        "none".to_string()
    } else {
        info.zmq.iter().map(|z| format!("{} {}", z.kind, z.address)).collect::<Vec<_>>().join(", ")
    };
    let prevouts = if info.spenttxouts {
        "spenttxouts mode (from the node, no reads while indexing)"
    } else {
        "utxo mode (Ferrum's own unspent-output table)"
    };
    let blocks = if info.rest { "REST /rest/block/<hash>.bin" } else { "JSON-RPC getblock <hash> 0" };
    format!(
        "bitcoind {version} ({sub}) on {net} at {addr}\n\
         \x20 height            {height} (headers {headers})\n\
         \x20 best block        {best}\n\
         \x20 initial download  {ibd}\n\
         \x20 REST              {rest}\n\
         \x20 spenttxouts       {spent} (Core 30+, needs REST)\n\
         \x20 blockpart         {part} (Core 31+, needs REST)\n\
         \x20 txindex           {txindex}\n\
         \x20 ZMQ               {zmq}\n\
         Ferrum will read blocks with {blocks} and resolve spent outputs in {prevouts}.\n",
        version = info.version_string(),
        sub = info.subversion,
        net = info.network,
        height = info.blocks,
        headers = info.headers,
        best = info.best_block_hash,
        ibd = if info.initial_block_download {
            format!(
                "yes, {:.1}% verified (wallets are answered once it has finished)",
                info.verification_progress * 100.0
            )
        } else {
            "no".to_string()
        },
        rest = yes_no(info.rest),
        spent = yes_no(info.spenttxouts),
        part = yes_no(info.blockpart),
        txindex = yes_no(info.txindex),
    )
}
