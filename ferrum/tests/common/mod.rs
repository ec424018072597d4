//! Shared by the integration tests: Ferrum as a real process (killed on drop), Ferrum's indexer
//! in-process against a real node, and the truth check of an index against the node's data.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::{Amount, TxOut};
use ferrum::daemon::{Auth, Daemon, DaemonConfig};
use ferrum::index::{DaemonSource, Index, IndexConfig, Indexer, StopSignal};
use ferrum::merkle;
use ferrum::network::Network;
use ferrum::query::Query;
use ferrum::store::{PrevoutMode, RawRow, Store, StoreConfig, ALL_CFS, CF_META, CF_UNDO, CF_UTXO};
use ferrum::types::{ScriptHash, Txid};
use serde_json::Value;
use testkit::chain::scenario::{self, ScenarioOptions};
use testkit::chain::truth::Truth;
pub use testkit::Ferrum;
use testkit::{Inputs, Kind, Node, NodeOptions, TxSpec, Wallet};

/// How a ferrum reaches `node` (through its Core 29 front when it has one).
pub fn daemon_config(node: &Node) -> DaemonConfig {
    DaemonConfig { rpc_addr: node.rpc_addr(), ..direct_daemon_config(node) }
}

/// The node's own RPC port, bypassing a Core 29 front.
pub fn direct_daemon_config(node: &Node) -> DaemonConfig {
    DaemonConfig {
        network: Network::Regtest,
        rpc_addr: node.bitcoind_rpc_addr(),
        auth: Auth::Cookie(node.cookie_file()),
        fallbacks: Vec::new(),
        timeout: Duration::from_secs(60),
    }
}

/// Ferrum's indexer, in this process, on a real node.
pub struct InProcess {
    pub runtime: tokio::runtime::Runtime,
    pub index: Arc<Index>,
    pub indexer: Indexer<DaemonSource>,
}

impl InProcess {
    /// `rest`: read blocks and spent outputs over REST (the node must have it); otherwise RPC.
    /// Reads the node directly, bypassing a Core 29 front.
    pub fn new(node: &Node, dir: &Path, mode: PrevoutMode, rest: bool, config: IndexConfig) -> InProcess {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let store = Store::open(dir, Network::Regtest, &StoreConfig { cache_mb: 64 }).unwrap();
        if store.mode().is_none() {
            store.set_mode(mode).unwrap();
        }
        let index = Arc::new(Index::new(store).unwrap());
        let daemon = Arc::new(Daemon::new(&direct_daemon_config(node)));
        let source = Arc::new(DaemonSource { daemon, rest_blocks: rest, rest_spent: rest });
        let indexer = Indexer::new(index.clone(), source, mode, config, StopSignal::default());
        InProcess { runtime, index, indexer }
    }

    /// Set up as `ferrum` sets itself up: the node probed, the prevout mode chosen from what it
    /// offers (`--prevout-mode auto`), blocks and spent outputs read over the interfaces it has.
    pub fn probed(node: &Node, dir: &Path, config: IndexConfig) -> InProcess {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let daemon = Arc::new(Daemon::new(&daemon_config(node)));
        let info = runtime.block_on(daemon.probe()).unwrap();
        let store = Store::open(dir, Network::Regtest, &StoreConfig { cache_mb: 64 }).unwrap();
        let mode = ferrum::app::choose_mode(&store, &info, ferrum::config::ModeArg::Auto).unwrap();
        let index = Arc::new(Index::new(store).unwrap());
        let source = Arc::new(DaemonSource { daemon, rest_blocks: info.rest, rest_spent: info.spenttxouts });
        let indexer = Indexer::new(index.clone(), source, mode, config, StopSignal::default());
        InProcess { runtime, index, indexer }
    }

    pub fn sync(&mut self) {
        let indexer = &mut self.indexer;
        self.runtime.block_on(indexer.sync()).unwrap();
    }

    pub fn query(&self) -> Query {
        Query::new(self.index.clone())
    }
}

/// Checks every answer of the index against the node's own data.
pub fn check_truth(query: &Query, truth: &Truth) {
    let tip = query.index().tip();
    assert_eq!(tip.height, truth.blocks.last().map(|b| b.height), "index height");
    assert_eq!(tip.hash.map(|h| h.to_hex()), truth.blocks.last().map(|b| b.hash.to_string()), "index tip");
    for (sh_hex, expected) in &truth.scripts {
        let sh = ScriptHash::from_hex(sh_hex).unwrap();
        let got = query.script(&sh, &HashMap::new()).unwrap();
        assert!(got.ambiguous.is_empty());
        let history: Vec<(u32, String)> = got.history.iter().map(|h| (h.height, h.txid.to_hex())).collect();
        let want: Vec<(u32, String)> = expected.history.iter().map(|h| (h.height, h.txid.to_string())).collect();
        assert_eq!(history, want, "history of {sh_hex} ({})", truth.script_hex[sh_hex]);
        let mut unspent: Vec<(u32, String, u32, u64)> =
            got.unspent.iter().map(|u| (u.height, u.txid.to_hex(), u.vout, u.value)).collect();
        unspent.sort();
        let mut want: Vec<(u32, String, u32, u64)> =
            expected.unspent.iter().map(|u| (u.height, u.txid.to_string(), u.vout, u.value)).collect();
        want.sort();
        assert_eq!(unspent, want, "unspent outputs of {sh_hex}");
        assert_eq!(got.balance, expected.balance, "balance of {sh_hex}");
    }
    // A script nobody used.
    let nobody = query.script(&ScriptHash::of_script(b"never used"), &HashMap::new()).unwrap();
    assert!(nobody.history.is_empty() && nobody.unspent.is_empty());

    let hashes: Vec<[u8; 32]> =
        truth.blocks.iter().map(|b| ferrum::types::BlockHash::from_hex(&b.hash.to_string()).unwrap().0).collect();
    for block in &truth.blocks {
        let txids = query.block_txids(block.height).unwrap().unwrap();
        let want: Vec<String> = block.txids.iter().map(|t| t.to_string()).collect();
        assert_eq!(txids.iter().map(|t| t.to_hex()).collect::<Vec<_>>(), want, "txids of block {}", block.height);
        let leaves: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
        assert_eq!(
            merkle::hex_display(&merkle::root(&leaves).unwrap()),
            block.merkle_root,
            "merkle root {}",
            block.height
        );
        assert_eq!(hex::encode(query.header(block.height).unwrap()), block.header_hex, "header {}", block.height);
        for (pos, txid) in block.txids.iter().enumerate() {
            let id = Txid::from_hex(&txid.to_string()).unwrap();
            let found = query.tx_position(&id).unwrap();
            if block.height == 0 {
                assert_eq!(found, None, "the genesis coinbase is not indexed");
                continue;
            }
            let (height, p, _) = found.unwrap_or_else(|| panic!("{txid} not found"));
            assert_eq!((height, p), (block.height, pos as u32), "position of {txid}");
            let branch: Vec<[u8; 32]> = query
                .merkle_branch(height, p)
                .unwrap()
                .unwrap()
                .iter()
                .map(|h| ferrum::types::Txid::from_hex(h).unwrap().0)
                .collect();
            let root = merkle::root_from_branch(id.0, pos, &branch);
            assert_eq!(merkle::hex_display(&root), block.merkle_root, "branch of {txid}");
        }
    }
    // Header proofs against roots computed here from the node's hashes.
    let tip_height = truth.blocks.len() as u32 - 1;
    for (height, cp) in
        [(0, 0), (0, tip_height), (tip_height / 2, tip_height), (tip_height, tip_height), (5, 77.min(tip_height))]
    {
        let (branch, root) = query.header_proof(height, cp).unwrap();
        let expected_root = merkle::root(&hashes[..=cp as usize]).unwrap();
        assert_eq!(root, merkle::hex_display(&expected_root));
        let branch: Vec<[u8; 32]> = branch.iter().map(|h| ferrum::types::BlockHash::from_hex(h).unwrap().0).collect();
        assert_eq!(merkle::root_from_branch(hashes[height as usize], height as usize, &branch), expected_root);
    }
    assert!(query.header_proof(tip_height, tip_height + 1).is_none());
}

/// Every table of an index, by name.
pub type Dump = Vec<(&'static str, Vec<RawRow>)>;

/// The rows of an index that must not depend on how it was built (the `utxo` and `undo`
/// tables exist in one mode only; `meta` records the mode).
pub fn dump_rows(dir: &Path) -> Dump {
    let store = Store::open_read_only(dir, Network::Regtest, &StoreConfig { cache_mb: 16 }).unwrap();
    let mut out: Dump = ALL_CFS
        .iter()
        .filter(|cf| ![CF_META, CF_UTXO, CF_UNDO].contains(cf))
        .map(|cf| (*cf, store.dump(cf).unwrap()))
        .collect();
    let tip = store.tip().unwrap();
    let txids: Vec<RawRow> =
        (0..tip.tx_count).map(|n| (n.to_be_bytes().to_vec(), store.txids().get(n).unwrap().0.to_vec())).collect();
    out.push(("txids", txids));
    out
}

/// Like [`dump_rows`] but with the mode-specific tables too, for comparing two indexes of
/// the same mode.
pub fn dump_all(dir: &Path) -> Dump {
    let store = Store::open_read_only(dir, Network::Regtest, &StoreConfig { cache_mb: 16 }).unwrap();
    let mut out = dump_rows(dir);
    for cf in [CF_UTXO, CF_UNDO] {
        out.push((cf, store.dump(cf).unwrap()));
    }
    out
}

/// An index of the node's chain built in this process from scratch, for comparisons.
pub fn clean_index(node: &Node, mode: PrevoutMode) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    let mut ix = if node.options().core29 && mode == PrevoutMode::Utxo {
        // Over the interfaces Core 29 has.
        InProcess::probed(node, &path, IndexConfig::default())
    } else {
        InProcess::new(node, &path, mode, true, IndexConfig::default())
    };
    assert_eq!(ix.index.store().mode(), Some(mode));
    ix.sync();
    dir
}

/// Compares two dumps table by table with a readable failure.
pub fn assert_same_rows(a: &[(&'static str, Vec<RawRow>)], b: &[(&'static str, Vec<RawRow>)]) {
    assert_eq!(a.len(), b.len());
    for ((name, ra), (_, rb)) in a.iter().zip(b) {
        if ra != rb {
            let first = ra.iter().zip(rb.iter()).position(|(x, y)| x != y).unwrap_or(ra.len().min(rb.len()));
            panic!(
                "table {name} differs: {} vs {} rows, first difference at row {first}: {:?} vs {:?}",
                ra.len(),
                rb.len(),
                ra.get(first).map(|(k, v)| (hex::encode(k), hex::encode(v))),
                rb.get(first).map(|(k, v)| (hex::encode(k), hex::encode(v)))
            );
        }
    }
}

/// Arguments for a ferrum on `node` with its index in `db_dir`, serving on one ephemeral port
/// (the default ports would collide between tests running at once).
pub fn ferrum_args(node: &Node, db_dir: &Path) -> Vec<String> {
    let mut args = node_args(node, db_dir);
    args.extend(["--tcp".into(), "127.0.0.1:0".into()]);
    args
}

/// Arguments for a ferrum on `node` with its index in `db_dir`, without any service.
pub fn node_args(node: &Node, db_dir: &Path) -> Vec<String> {
    let mut args = testkit::process::ferrum::node_args(node, db_dir);
    args.extend(["--cache-mb".into(), "64".into()]);
    args
}

/// This build's `ferrum`.
pub fn ferrum_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferrum"))
}

/// Starts this build's `ferrum` with `args`, its log in `db_dir`.
pub fn start_ferrum(args: &[String], db_dir: &Path) -> Ferrum {
    Ferrum::start(ferrum_exe(), args, db_dir).unwrap()
}

/// `ferrum rpc -p PORT --json COMMAND ARGS...`: the parsed answer, or the error text.
pub fn rpc(port: u16, command: &str, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(ferrum_exe())
        .args(["rpc", "-p", &port.to_string(), "--json", command])
        .args(args)
        .output()
        .expect("running ferrum rpc");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("ferrum rpc {command}: not JSON: {e}")))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Headless Chromium (Debian's `chromium`, installed by scripts/deps.sh), with a deadline.
pub fn chromium(args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("chromium");
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("chromium is not installed: run scripts/deps.sh");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The index height as a read-only opener sees it now (`None`: empty or not there yet).
pub fn stored_height(db_dir: &Path) -> Option<u32> {
    let store = Store::open_read_only(&db_dir.join("index"), Network::Regtest, &StoreConfig { cache_mb: 16 }).ok()?;
    store.tip().map(|t| t.height)
}

/// A serving ferrum on one node: every transport on its own free loopback port.
pub struct Served {
    pub ferrum: Ferrum,
    pub tcp: String,
    pub ssl: String,
    pub ws: String,
    pub wss: String,
    /// Status page and metrics.
    pub http: Option<String>,
    pub db: tempfile::TempDir,
    args: Vec<String>,
}

impl Served {
    /// Starts ferrum and waits until it has indexed the node's chain and listens.
    pub fn start(node: &Node, extra: &[&str]) -> Served {
        let db = tempfile::tempdir().unwrap();
        Served::start_in(node, db, extra)
    }

    /// Like [`Served::start`] with a given data directory (to restart on the same index).
    pub fn start_in(node: &Node, db: tempfile::TempDir, extra: &[&str]) -> Served {
        let served = Served::launch(node, db, extra);
        served.wait_synced(node);
        served
    }

    /// Starts ferrum without waiting for anything.
    pub fn launch(node: &Node, db: tempfile::TempDir, extra: &[&str]) -> Served {
        let ports: Vec<u16> = (0..5).map(|_| testkit::free_port()).collect();
        let addr = |p: u16| format!("127.0.0.1:{p}");
        let mut args = node_args(node, db.path());
        for (flag, port) in ["--tcp", "--ssl", "--ws", "--wss", "--http"].iter().zip(&ports) {
            args.push((*flag).to_string());
            args.push(addr(*port));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let ferrum = start_ferrum(&args, db.path());
        Served {
            ferrum,
            tcp: addr(ports[0]),
            ssl: addr(ports[1]),
            ws: addr(ports[2]),
            wss: addr(ports[3]),
            http: Some(addr(ports[4])),
            db,
            args,
        }
    }

    /// Kills ferrum (SIGKILL) and starts it again on the same index and ports.
    pub fn restart(&mut self, node: &Node) {
        self.ferrum.kill9();
        self.ferrum = start_ferrum(&self.args, self.db.path());
        self.wait_synced(node);
    }

    /// Waits until the server answers with the node's tip height.
    pub fn wait_synced(&self, node: &Node) {
        testkit::client::electrum::wait_for_height(&self.tcp, node.height().unwrap(), Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}\n{}", self.ferrum.log_text()));
    }

    pub fn client(&self) -> testkit::client::electrum::Client {
        testkit::client::electrum::Client::connect(&self.tcp).unwrap()
    }

    pub fn client_with(&self, version: &str) -> testkit::client::electrum::Client {
        testkit::client::electrum::Client::connect_with(&self.tcp, serde_json::json!(version)).unwrap()
    }
}

/// One HTTP request (GET, HEAD, POST...): status code, head and body.
pub fn http(addr: &str, method: &str, path: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Raises this process's open-file limit to its hard limit (tests that open thousands of
/// sockets); returns the limit in effect.
pub fn more_files() -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        limit.rlim_cur
    }
}

/// A session on `addr` negotiated with `version`, once the server accepts one (after a
/// limit was reached and freed).
pub fn connect_when_served(addr: &str, version: &str) -> testkit::client::electrum::Client {
    testkit::wait_for("the server to take a session again", Duration::from_secs(10), || {
        testkit::client::electrum::Client::connect_with(addr, serde_json::json!(version)).ok()
    })
    .unwrap()
}

/// The Electrum status of a history as returned by `get_history` (what a client recomputes).
pub fn status_of_history(history: &serde_json::Value) -> serde_json::Value {
    use sha2::{Digest, Sha256};
    let items = history.as_array().unwrap();
    if items.is_empty() {
        return serde_json::Value::Null;
    }
    let mut s = String::new();
    for i in items {
        s.push_str(&format!("{}:{}:", i["tx_hash"].as_str().unwrap(), i["height"].as_i64().unwrap()));
    }
    serde_json::json!(hex::encode(Sha256::digest(s.as_bytes())))
}

/// A seeded chain of `height` blocks whose mempool holds, besides the scenario's unconfirmed
/// transactions, a payment and a replaceable child of it (height -1 for its scripts).
pub fn busy_chain(options: NodeOptions, seed: u64, height: u32) -> (Node, Wallet) {
    let node = Node::start(options).unwrap();
    let mut wallet = scenario::build(&node, &ScenarioOptions { seed, height }).unwrap().wallet;
    let a = wallet.receiver(Kind::P2wpkh);
    let parent = wallet.pay(&node, &a.script_pubkey, Amount::from_sat(5_000_000)).unwrap();
    let b = wallet.receiver(Kind::P2tr);
    wallet
        .send_spec(
            &node,
            &TxSpec {
                inputs: Inputs::Exactly(vec![bitcoin::OutPoint::new(parent.compute_txid(), 0)]),
                outputs: vec![TxOut { value: Amount::from_sat(1_000_000), script_pubkey: b.script_pubkey.clone() }],
                change: Kind::P2wpkh,
                fee_rate: 3.0,
                rbf: true,
            },
        )
        .unwrap();
    (node, wallet)
}

/// The SHA-256 of a PEM certificate's DER bytes, by OpenSSL, as docs/wallets.md tells users to
/// check the certificate their wallet pinned.
pub fn openssl_sha256(pem: &std::path::Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("openssl x509 -in '{}' -outform DER | sha256sum", pem.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}
