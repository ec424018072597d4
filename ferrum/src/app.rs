//! Start-up and orchestration: wait for the node, open (or rebuild) the index, choose how to
//! read the node, and run the indexer with its block triggers until stopped.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::sync::Notify;

use crate::config::{Config, ModeArg};
use crate::daemon::{Daemon, DaemonError, NodeInfo};
use crate::index::{DaemonSource, Index, IndexConfig, Indexer, StopSignal};
use crate::store::{PrevoutMode, Store, StoreConfig, StoreError};

/// Waits until the node answers and is one Ferrum can use. Transient failures (down, warming
/// up) are logged once and retried; wrong network, pruning or refused credentials end start-up.
pub async fn wait_for_node(daemon: &Daemon, stop: &StopSignal) -> Result<Option<NodeInfo>> {
    let mut logged: Option<String> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        let attempt = async {
            if let Err(mismatch) = daemon.check_usable().await? {
                return Ok(Err(mismatch));
            }
            daemon.probe().await.map(Ok)
        };
        match attempt.await {
            Ok(Ok(info)) => {
                if logged.is_some() {
                    tracing::info!("bitcoind is up");
                }
                return Ok(Some(info));
            }
            Ok(Err(mismatch)) => bail!(mismatch),
            Err(e) if e.is_transient() => {
                let (kind, detail) = match &e {
                    DaemonError::WarmingUp(m) => ("warming up", m.clone()),
                    e => ("unreachable", e.to_string()),
                };
                if logged.as_deref() != Some(kind) {
                    tracing::warn!("bitcoind {kind} ({detail}); waiting for it");
                    logged = Some(kind.to_string());
                }
            }
            Err(e) => return Err(e.into()),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait() => return Ok(None),
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Opens the index, deleting it first for `--reindex`, or when its format is outdated and
/// `reindex_on_format_change` is set.
pub fn open_store(config: &Config) -> Result<Store> {
    let dir = config.index_dir();
    let store_config = StoreConfig { cache_mb: config.cache_mb / 2 };
    if config.reindex {
        tracing::info!(dir = %dir.display(), "--reindex: deleting the index");
        Store::destroy(&dir).with_context(|| format!("deleting {}", dir.display()))?;
    }
    match Store::open(&dir, config.network, &store_config) {
        Err(StoreError::Format { found, expected, .. }) if config.reindex_on_format_change => {
            tracing::warn!(found, expected, "index format changed; rebuilding the index");
            Store::destroy(&dir).with_context(|| format!("deleting {}", dir.display()))?;
            Ok(Store::open(&dir, config.network, &store_config)?)
        }
        r => Ok(r?),
    }
}

/// The prevout mode: the stored one for an existing index, else chosen from the node.
pub fn choose_mode(store: &Store, info: &NodeInfo, requested: ModeArg) -> Result<PrevoutMode> {
    if let Some(mode) = store.mode() {
        if mode == PrevoutMode::Spenttxouts && !info.spenttxouts {
            bail!(
                "the index in {} was built in spenttxouts mode, but bitcoind does not serve /rest/spenttxouts \
                 (Bitcoin Core 30+ with rest=1); enable it, or start with --reindex to rebuild in utxo mode",
                store.dir().display()
            );
        }
        let wanted = match requested {
            ModeArg::Auto => None,
            ModeArg::Spenttxouts => Some(PrevoutMode::Spenttxouts),
            ModeArg::Utxo => Some(PrevoutMode::Utxo),
        };
        if wanted.is_some_and(|w| w != mode) {
            tracing::warn!(
                "the index was built in {} mode; --prevout-mode is ignored (rebuild with --reindex)",
                mode.name()
            );
        }
        return Ok(mode);
    }
    let mode = match requested {
        ModeArg::Auto if info.spenttxouts => PrevoutMode::Spenttxouts,
        ModeArg::Auto | ModeArg::Utxo => PrevoutMode::Utxo,
        ModeArg::Spenttxouts if info.spenttxouts => PrevoutMode::Spenttxouts,
        ModeArg::Spenttxouts => {
            bail!("--prevout-mode spenttxouts needs bitcoind to serve /rest/spenttxouts (Bitcoin Core 30+ with rest=1)")
        }
    };
    store.set_mode(mode)?;
    Ok(mode)
}

pub fn index_config(config: &Config) -> IndexConfig {
    let mut c = IndexConfig { utxo_cache_bytes: (config.cache_mb / 2) << 20, ..IndexConfig::default() };
    if let Some(n) = config.index_chunk_blocks {
        c.chunk_blocks = n;
    }
    c
}

/// Runs the index until `stop`: returns after the current chunk is committed.
pub async fn run(config: Config, stop: StopSignal) -> Result<()> {
    let daemon = Arc::new(Daemon::new(&config.daemon));
    let Some(info) = wait_for_node(&daemon, &stop).await? else { return Ok(()) };
    tracing::info!(
        "bitcoind {} on {} at {}: height {}, REST {}, spenttxouts {}, txindex {}",
        info.version_string(),
        info.network,
        config.daemon.rpc_addr,
        info.blocks,
        info.rest,
        info.spenttxouts,
        info.txindex
    );
    let store = open_store(&config)?;
    let mode = choose_mode(&store, &info, config.prevout_mode)?;
    let index = Arc::new(Index::new(store).context("loading the index")?);
    tracing::info!(
        dir = %config.index_dir().display(),
        height = ?index.tip().height,
        transactions = index.tip().tx_count,
        "index opened, prevout mode {}",
        mode.name()
    );
    let source =
        Arc::new(DaemonSource { daemon: daemon.clone(), rest_blocks: info.rest, rest_spent: info.spenttxouts });
    let indexer = Indexer::new(index.clone(), source, mode, index_config(&config), stop.clone());
    let trigger = Arc::new(Notify::new());
    let p2p = config
        .p2p_addr
        .clone()
        .map(|addr| tokio::spawn(crate::daemon::p2p::listen(addr, config.network, trigger.clone())));
    let node_host = config.daemon.rpc_addr.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h).to_string();
    let zmq = info.zmq_address("pubhashblock").and_then(|a| crate::daemon::zmq::endpoint(a, &node_host)).map(|addr| {
        tracing::info!(%addr, "bitcoind publishes hashblock over ZMQ; subscribing");
        let trigger = trigger.clone();
        tokio::spawn(crate::daemon::zmq::listen(addr, "hashblock", move |_| trigger.notify_one()))
    });
    let result = indexer.run(trigger, config.poll_interval).await;
    for task in [p2p, zmq].into_iter().flatten() {
        task.abort();
    }
    result.context("indexing")?;
    tracing::info!(height = ?index.tip().height, "stopped");
    Ok(())
}
