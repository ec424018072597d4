//! Start-up and orchestration: wait for the node, open (or rebuild) the index, choose how to
//! read the node, and run the indexer with its block triggers until stopped.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::daemon::{p2p, zmq, Daemon, DaemonError, NodeInfo};
use crate::electrum::{events, Electrum};
use crate::index::{DaemonSource, Index, Indexer};
use crate::mempool::Mempool;
use crate::monitor::{LogControl, Monitor, Watched};
use crate::server::tls::{CertSource, Tls};
use crate::server::{self, Server};
use crate::shutdown::StopSignal;
use crate::store::{PrevoutMode, Store, StoreError};
use crate::sync::Backoff;

/// Waits until the node answers and is one Ferrum can use. Transient failures (down, warming
/// up) are logged once and retried; wrong network, pruning or refused credentials end start-up.
pub(crate) async fn wait_for_node(daemon: &Daemon, stop: &StopSignal) -> Result<Option<NodeInfo>> {
    let mut logged: Option<String> = None;
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
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
            _ = tokio::time::sleep(backoff.next_wait()) => {}
            _ = stop.wait() => return Ok(None),
        }
    }
}

/// Opens the index, deleting it first for `--reindex`, or when its format is outdated and
/// `reindex_on_format_change` is set.
pub(crate) fn open_store(config: &Config) -> Result<Store> {
    let dir = config.index_dir();
    let settings = &config.index;
    if settings.reindex {
        tracing::info!(dir = %dir.display(), "--reindex: deleting the index");
        Store::destroy(&dir).with_context(|| format!("deleting {}", dir.display()))?;
    }
    match Store::open(&dir, config.network, &settings.store) {
        Err(StoreError::Format { found, expected, .. }) if settings.reindex_on_format_change => {
            tracing::warn!(found, expected, "index format changed; rebuilding the index");
            Store::destroy(&dir).with_context(|| format!("deleting {}", dir.display()))?;
            Ok(Store::open(&dir, config.network, &settings.store)?)
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            Err(match electrumx_index_in(&dir) {
                Some(hint) => e.context(hint),
                None => e,
            })
        }
        Ok(store) => Ok(store),
    }
}

/// ElectrumX's index where Ferrum's should go (a BTCPay host that ran ElectrumX keeps its index
/// volume, which Ferrum's fragment reuses): named, with what to do.
fn electrumx_index_in(dir: &std::path::Path) -> Option<String> {
    ["hist", "utxo", "meta"].iter().all(|d| dir.join(d).is_dir()).then(|| {
        format!(
            "{} holds ElectrumX's index (hist, utxo, meta), which Ferrum cannot use or replace: remove it \
             (on BTCPay Server, the volume generated_electrumx_datadir: see deploy/btcpay/README.md)",
            dir.display()
        )
    })
}

/// The prevout mode: the stored one for an existing index, else chosen from the node. An index
/// built in `utxo` mode (Core 29 and older) moves to `spenttxouts` mode, without a reindex, once
/// the node serves spent outputs (Core 30+ with REST) and `--prevout-mode` is `auto` or
/// `spenttxouts`. `requested` is `--prevout-mode`, `None` for `auto`.
pub fn choose_mode(store: &Store, info: &NodeInfo, requested: Option<PrevoutMode>) -> Result<PrevoutMode> {
    let upgrade = store.mode() == Some(PrevoutMode::Utxo) && info.spenttxouts && requested != Some(PrevoutMode::Utxo);
    if upgrade {
        tracing::info!(
            "bitcoind now serves /rest/spenttxouts: moving the index from utxo to spenttxouts mode, without a \
             reindex (the rows both modes write are the same; the utxo and undo tables are dropped)"
        );
    }
    if upgrade || store.mode() == Some(PrevoutMode::Spenttxouts) {
        // At every start in spenttxouts mode: also finishes a move that a crash interrupted.
        let freed = store.drop_utxo_tables()?;
        if freed > 0 {
            tracing::info!("dropped the utxo and undo tables ({:.1} MB)", freed as f64 / 1e6);
        }
    }
    if let Some(mode) = store.mode() {
        if mode == PrevoutMode::Spenttxouts && !info.spenttxouts {
            bail!(
                "the index in {} was built in spenttxouts mode, but bitcoind does not serve /rest/spenttxouts \
                 (Bitcoin Core 30+ with rest=1); enable it, or start with --reindex to rebuild in utxo mode",
                store.dir().display()
            );
        }
        if requested.is_some_and(|r| r != mode) {
            tracing::warn!(
                "the index was built in {} mode; --prevout-mode is ignored (rebuild with --reindex)",
                mode.name()
            );
        }
        return Ok(mode);
    }
    let mode = match requested {
        None if info.spenttxouts => PrevoutMode::Spenttxouts,
        None | Some(PrevoutMode::Utxo) => PrevoutMode::Utxo,
        Some(PrevoutMode::Spenttxouts) if info.spenttxouts => PrevoutMode::Spenttxouts,
        Some(PrevoutMode::Spenttxouts) => {
            bail!("--prevout-mode spenttxouts needs bitcoind to serve /rest/spenttxouts (Bitcoin Core 30+ with rest=1)")
        }
    };
    store.set_mode(mode)?;
    Ok(mode)
}

/// The TLS certificate for the TLS services: the operator's, or the kept self-signed one.
fn tls_for(config: &Config) -> Result<Option<Tls>> {
    if !config.server.services.iter().any(|s| s.protocol.needs_tls()) {
        return Ok(None);
    }
    Ok(Some(Tls::new(&config.server.tls).context("TLS certificate")?))
}

/// Runs the index until `stop`: returns after the current chunk is committed. `log` changes
/// the log filter (the admin RPC's `log` command).
pub async fn run(config: Config, stop: StopSignal, log: Option<LogControl>) -> Result<()> {
    let daemon = Arc::new(Daemon::new(&config.daemon.rpc));
    let Some(info) = wait_for_node(&daemon, &stop).await? else { return Ok(()) };
    tracing::info!(
        "bitcoind {} on {} at {}: height {}{}, REST {}, spenttxouts {}, blockpart {}, txindex {}",
        info.version_string(),
        info.network,
        config.daemon.rpc.rpc_addr,
        info.blocks,
        if info.initial_block_download { " (in initial block download)" } else { "" },
        info.rest,
        info.spenttxouts,
        info.blockpart,
        info.txindex
    );
    let tls = tls_for(&config)?;
    if let Some(tls) = &tls {
        // What a user compares with the certificate their wallet pinned.
        tracing::info!(cert = %tls.cert_path.display(), "TLS certificate SHA-256 fingerprint {}", tls.fingerprint());
    }
    let listeners = server::bind(config.server.services.iter().map(|s| (s.addr, s.protocol.name()))).await?;
    let bound: Vec<_> = config.server.services.iter().cloned().zip(listeners).collect();
    let admin_listeners = server::bind(config.monitor.admin_rpc.iter().map(|a| (*a, "admin RPC"))).await?;
    let http_listeners = server::bind(config.monitor.http.iter().map(|a| (*a, "HTTP"))).await?;
    let store = open_store(&config)?;
    let mode = choose_mode(&store, &info, config.index.prevout_mode)?;
    let index = Arc::new(Index::new(store).context("loading the index")?);
    tracing::info!(
        dir = %config.index_dir().display(),
        height = ?index.tip().height,
        transactions = index.tip().tx_count,
        "index opened, prevout mode {}",
        mode.name()
    );
    let mempool = Arc::new(Mempool::new(daemon.clone()));
    let electrum =
        Arc::new(Electrum::new(config.electrum.clone(), index.clone(), mempool.clone(), daemon.clone(), info.clone()));
    let server = Server::new(electrum.clone(), tls.clone(), config.server.limits.clone());
    let monitor = Monitor::new(Watched {
        electrum: electrum.clone(),
        server: server.clone(),
        daemon: daemon.clone(),
        mempool: mempool.clone(),
        mode,
        index_dir: config.index_dir(),
        services: bound
            .iter()
            .map(|(s, l)| crate::server::Service { addr: l.local_addr().unwrap_or(s.addr), ..s.clone() })
            .collect(),
        self_signed_cert: config.server.tls.is_self_signed(),
        stop: stop.clone(),
        log,
    });
    let mut tasks = vec![
        tokio::spawn(server.clone().serve(bound)),
        tokio::spawn(events::coordinate(electrum.clone(), mempool.clone(), stop.clone())),
        tokio::spawn(monitor.clone().sample()),
    ];
    for listener in admin_listeners {
        tasks.push(tokio::spawn(crate::admin::serve(listener, monitor.clone())));
    }
    tasks.push(tokio::spawn(start_peers(electrum.clone(), stop.clone())));
    for listener in http_listeners {
        tasks.push(tokio::spawn(crate::web::serve(listener, monitor.clone())));
    }
    if let (Some(tls), CertSource::Files { .. }) = (tls, &config.server.tls) {
        tasks.push(tokio::spawn(tls.watch(Duration::from_secs(10))));
    }
    let source =
        Arc::new(DaemonSource { daemon: daemon.clone(), rest_blocks: info.rest, rest_spent: info.spenttxouts });
    let indexer = Indexer::new(index.clone(), source, mode, config.index.indexer.clone(), stop.clone());
    let trigger = Arc::new(p2p::Announcements::default());
    if let Some(addr) = config.daemon.p2p_addr.clone() {
        let tip_of = index.clone();
        let triggers = p2p::Triggers {
            blocks: trigger.clone(),
            txs: Some(electrum.mempool_trigger.clone()),
            tip: Arc::new(move || tip_of.chain().tip_hash()),
        };
        tasks.push(tokio::spawn(p2p::listen(addr, config.network, triggers)));
    }
    if let Some(addr) = info.zmq_address("pubhashblock").and_then(|a| zmq::endpoint(a, config.daemon.rpc.host())) {
        tracing::info!(%addr, "bitcoind publishes hashblock over ZMQ; subscribing");
        let trigger = trigger.clone();
        tasks.push(tokio::spawn(zmq::listen(addr, "hashblock", move |_| trigger.block(None))));
    }
    let result = indexer.run(trigger, config.index.poll_interval).await;
    for task in &tasks {
        task.abort();
    }
    result.context("indexing")?;
    tracing::info!(height = ?index.tip().height, "stopped");
    Ok(())
}

/// Starts peer discovery once the index has reached the node's tip: a peer compares tips, so a
/// server still indexing would find every peer on "another chain", and its own services would
/// answer only "still indexing".
async fn start_peers(electrum: Arc<Electrum>, stop: StopSignal) {
    if electrum.peers.discovery() == crate::peers::Discovery::Off {
        return;
    }
    let mut settled = electrum.index.settled();
    while !electrum.index.status().caught_up {
        tokio::select! {
            _ = settled.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait() => return,
        }
    }
    electrum.peers.start();
}
