//! A real regtest `bitcoind` in a temporary directory, on free loopback ports, killed on drop:
//! its process, its RPC and REST, and what it says of its chain. Mining and reorgs are in
//! [`chain::surgery`](crate::chain::surgery).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bitcoin::{Address, BlockHash, Network, Txid};
use serde_json::{json, Value};

use crate::client::rpc::{Rpc, RpcError};
use crate::keys::burn_address;
use crate::process::core29::Core29Proxy;
use crate::process::spawn::{die_with_parent, free_port, locate_exe};

/// The `bitcoind` binary: `$BITCOIND_EXE`, or the one `scripts/bitcoind.sh` builds and caches
/// (building it on first use). Fails loudly: a test never runs without a node.
pub fn bitcoind_exe() -> Result<PathBuf> {
    static EXE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    EXE.get_or_init(|| locate_bitcoind().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow!(e))
}

/// `bitcoin-cli`, next to `bitcoind`.
pub fn bitcoin_cli_exe() -> Result<PathBuf> {
    let exe = bitcoind_exe()?;
    Ok(exe.with_file_name("bitcoin-cli"))
}

fn locate_bitcoind() -> Result<PathBuf> {
    locate_exe("BITCOIND_EXE", "bitcoind.sh", |dir| dir.join("bitcoind"))
}

/// How to start the node.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// `-rest=1`.
    pub rest: bool,
    /// `-txindex=1`.
    pub txindex: bool,
    /// Anything else, e.g. `-prune=550`.
    pub extra_args: Vec<String>,
    /// Answer RPC and REST as Bitcoin Core 29 does (BTCPay Server's version): behind a
    /// [`Core29Proxy`], REST on but without `spenttxouts` and `blockpart`. [`Node::rpc_addr`]
    /// is then the proxy's address.
    pub core29: bool,
}

impl NodeOptions {
    pub fn rest() -> Self {
        NodeOptions { rest: true, ..Default::default() }
    }

    /// A node that answers as Bitcoin Core 29.2 with `rest=1` does.
    pub fn core29() -> Self {
        NodeOptions { rest: true, core29: true, ..Default::default() }
    }
}

/// Where a node keeps its data: removed with the node, or kept.
enum NodeDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl NodeDir {
    fn path(&self) -> &Path {
        match self {
            NodeDir::Temp(d) => d.path(),
            NodeDir::Kept(p) => p,
        }
    }
}

/// A running regtest node. Dropping it kills the process and removes its directory; the process
/// is also killed by the kernel if the test process dies (parent-death signal). Its chain
/// surgery (mining, reorgs, sending) is in [`chain::surgery`](crate::chain::surgery).
pub struct Node {
    child: Option<Child>,
    dir: NodeDir,
    options: NodeOptions,
    pub rpc_port: u16,
    pub p2p_port: u16,
    /// In front of the RPC port when the node plays Core 29.
    proxy: Option<Core29Proxy>,
    rpc: Rpc,
    /// Where `generatetoaddress` pays when a test does not say.
    pub mining_address: Address,
    /// Counter for coinbase addresses of re-mined heights (see [`Node::reorg`]).
    pub(crate) branch: std::sync::atomic::AtomicU32,
}

impl Node {
    pub fn start(options: NodeOptions) -> Result<Node> {
        let dir = tempfile::Builder::new().prefix("ferrum-node-").tempdir()?;
        Node::start_with_dir(NodeDir::Temp(dir), options)
    }

    /// A node on a data directory that outlives it (a cached chain): the directory is kept when
    /// the node is dropped. The process is still killed then.
    pub fn start_in(datadir: &Path, options: NodeOptions) -> Result<Node> {
        std::fs::create_dir_all(datadir).with_context(|| format!("creating {}", datadir.display()))?;
        Node::start_with_dir(NodeDir::Kept(datadir.to_path_buf()), options)
    }

    fn start_with_dir(dir: NodeDir, options: NodeOptions) -> Result<Node> {
        let cookie = dir.path().join("regtest/.cookie");
        let mut node = Node {
            child: None,
            dir,
            options,
            rpc_port: 0,
            p2p_port: 0,
            proxy: None,
            rpc: Rpc::new(String::new(), cookie.clone()),
            mining_address: burn_address(),
            branch: std::sync::atomic::AtomicU32::new(0),
        };
        let mut attempt = 0;
        loop {
            node.rpc_port = free_port();
            node.p2p_port = free_port();
            if node.options.core29 {
                let upstream = node.bitcoind_rpc_addr().parse().context("the node's RPC address")?;
                node.proxy = Some(Core29Proxy::start(upstream)?);
            }
            node.rpc = Rpc::new(node.rpc_addr(), cookie.clone());
            match node.launch() {
                Ok(()) => return Ok(node),
                // Another process may take a port between our check and bitcoind's bind.
                Err(e) if attempt < 2 && format!("{e:#}").contains("bind") => {
                    node.kill();
                    if matches!(node.dir, NodeDir::Temp(_)) {
                        let _ = std::fs::remove_dir_all(node.dir.path().join("regtest"));
                    }
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "-regtest".to_string(),
            format!("-datadir={}", self.dir.path().display()),
            format!("-rpcport={}", self.rpc_port),
            "-rpcbind=127.0.0.1".to_string(),
            "-rpcallowip=127.0.0.1".to_string(),
            format!("-bind=127.0.0.1:{}", self.p2p_port),
            format!("-port={}", self.p2p_port),
            "-listen=1".to_string(),
            "-listenonion=0".to_string(),
            "-discover=0".to_string(),
            "-dnsseed=0".to_string(),
            "-fixedseeds=0".to_string(),
            "-natpmp=0".to_string(),
            "-server=1".to_string(),
            "-printtoconsole=0".to_string(),
            "-whitelist=noban,relay@127.0.0.1".to_string(),
            "-par=1".to_string(),
            "-dbcache=64".to_string(),
            "-maxconnections=16".to_string(),
            format!("-rest={}", u8::from(self.options.rest || self.options.core29)),
            format!("-txindex={}", u8::from(self.options.txindex)),
        ];
        args.extend(self.options.extra_args.iter().cloned());
        args
    }

    fn launch(&mut self) -> Result<()> {
        self.spawn(&[])?;
        self.wait_ready()
    }

    fn spawn(&mut self, extra: &[&str]) -> Result<()> {
        let exe = bitcoind_exe()?;
        let mut cmd = Command::new(&exe);
        cmd.args(self.args()).args(extra).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("starting {}", exe.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Starts the stopped node with `extra` arguments for this start only, and returns at once,
    /// before the node is ready (to observe its warm-up). Remove the old cookie first so
    /// readiness can be told from the new one.
    pub fn spawn_again_with(&mut self, extra: &[&str]) -> Result<()> {
        if self.child.is_some() {
            bail!("node is running");
        }
        let _ = std::fs::remove_file(self.cookie_file());
        self.spawn(extra)
    }

    /// Waits until the node answers RPC (after its warm-up).
    pub fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    let mut stderr = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut stderr);
                    }
                    bail!("bitcoind exited with {status}: {} {}", stderr.trim(), self.log_tail(20));
                }
            }
            match self.rpc.call("getblockchaininfo", json!([])) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    bail!("bitcoind not ready after 120 s: {e:#}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The last `n` lines of the node's debug.log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("regtest/debug.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn datadir(&self) -> &Path {
        self.dir.path()
    }

    pub fn cookie_file(&self) -> PathBuf {
        self.dir.path().join("regtest/.cookie")
    }

    /// Where clients reach the node's RPC and REST: the Core 29 proxy when there is one.
    pub fn rpc_addr(&self) -> String {
        match &self.proxy {
            Some(p) => p.addr().to_string(),
            None => self.bitcoind_rpc_addr(),
        }
    }

    /// The node's own RPC and REST port, bypassing a Core 29 proxy.
    pub fn bitcoind_rpc_addr(&self) -> String {
        format!("127.0.0.1:{}", self.rpc_port)
    }

    pub fn p2p_addr(&self) -> String {
        format!("127.0.0.1:{}", self.p2p_port)
    }

    pub fn options(&self) -> &NodeOptions {
        &self.options
    }

    /// `bitcoin-cli`-like: calls a method with JSON params.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.rpc.call(method, params)
    }

    /// REST GET (the node must run with `-rest`).
    pub fn rest(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        self.rpc.rest(path)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the node cleanly (RPC `stop`) and waits for the process to exit.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = self.rpc.call("stop", json!([]));
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("bitcoind did not stop within 60 s; killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the stopped node again with the same data and ports.
    pub fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("node is running");
        }
        self.launch()
    }

    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// SIGKILL, no clean shutdown.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn height(&self) -> Result<u32> {
        Ok(serde_json::from_value(self.call("getblockcount", json!([]))?)?)
    }

    pub fn tip(&self) -> Result<BlockHash> {
        parse_hash(&self.call("getbestblockhash", json!([]))?)
    }

    pub fn block_hash(&self, height: u32) -> Result<BlockHash> {
        parse_hash(&self.call("getblockhash", json!([height]))?)
    }

    pub fn block(&self, hash: &BlockHash) -> Result<bitcoin::Block> {
        let hex = self.call("getblock", json!([hash.to_string(), 0]))?;
        let bytes = hex::decode(hex.as_str().ok_or_else(|| anyhow!("getblock: not a string"))?)?;
        Ok(bitcoin::consensus::deserialize(&bytes)?)
    }

    /// Raw block bytes, as the node stores them.
    pub fn block_bytes(&self, hash: &BlockHash) -> Result<Vec<u8>> {
        let hex = self.call("getblock", json!([hash.to_string(), 0]))?;
        Ok(hex::decode(hex.as_str().ok_or_else(|| anyhow!("getblock: not a string"))?)?)
    }

    pub fn mempool(&self) -> Result<Vec<Txid>> {
        let v = self.call("getrawmempool", json!([]))?;
        v.as_array()
            .ok_or_else(|| anyhow!("getrawmempool: not an array"))?
            .iter()
            .map(|t| Ok(t.as_str().ok_or_else(|| anyhow!("txid not a string"))?.parse()?))
            .collect()
    }

    /// Confirmations of a transaction: `Some(0)` in the mempool, `None` if unknown to the node.
    /// Needs the block hash hint without `-txindex`.
    pub fn confirmations(&self, txid: &Txid, block: Option<&BlockHash>) -> Result<Option<u32>> {
        let params = match block {
            Some(b) => json!([txid.to_string(), true, b.to_string()]),
            None => json!([txid.to_string(), true]),
        };
        match self.call("getrawtransaction", params) {
            Ok(v) => Ok(Some(v.get("confirmations").and_then(Value::as_u64).unwrap_or(0) as u32)),
            Err(e) if e.downcast_ref::<RpcError>().is_some_and(|r| r.code == -5) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Network the node runs on, for address encoding.
    pub fn network(&self) -> Network {
        Network::Regtest
    }
}

pub(crate) fn parse_hash(v: &Value) -> Result<BlockHash> {
    Ok(v.as_str().ok_or_else(|| anyhow!("expected a hash, got {v}"))?.parse()?)
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An `rpcauth` value (`user:salt$hmac`) for `password`, as Bitcoin Core's
/// share/rpcauth/rpcauth.py writes it: HMAC-SHA256 keyed by the salt's text.
pub fn rpcauth(user: &str, salt: &str, password: &str) -> String {
    use bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
    let mut engine = hmac::HmacEngine::<sha256::Hash>::new(salt.as_bytes());
    engine.input(password.as_bytes());
    let mac = hmac::Hmac::<sha256::Hash>::from_engine(engine);
    format!("{user}:{salt}${}", hex::encode(mac.to_byte_array()))
}
