//! A `ferrum` serving one node on every transport, each on its own free loopback port, as most
//! tests want it: started, synced to the node's tip, restarted on the same index.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::json;

use crate::client::electrum::{wait_for_height, Client};
use crate::process::ferrum::{test_node_args, Ferrum};
use crate::process::node::Node;
use crate::process::spawn::free_port;

/// A serving ferrum on one node. The addresses are fixed at launch, so a restart serves on the
/// same ones; the index lives in `db` as long as this does.
pub struct Served {
    pub ferrum: Ferrum,
    pub tcp: String,
    pub ssl: String,
    pub ws: String,
    pub wss: String,
    /// Status page and metrics.
    pub http: Option<String>,
    pub db: tempfile::TempDir,
    exe: PathBuf,
    args: Vec<String>,
}

impl Served {
    /// Starts `exe` on `node` with `extra` arguments and waits until it has indexed the node's
    /// chain and listens.
    pub fn start(exe: &Path, node: &Node, extra: &[&str]) -> Result<Served> {
        Served::start_in(exe, node, tempfile::tempdir()?, extra)
    }

    /// [`Served::start`] with a given data directory (to start again on an index).
    pub fn start_in(exe: &Path, node: &Node, db: tempfile::TempDir, extra: &[&str]) -> Result<Served> {
        let served = Served::launch(exe, node, db, extra)?;
        served.wait_synced(node)?;
        Ok(served)
    }

    /// Starts `exe` without waiting for anything.
    pub fn launch(exe: &Path, node: &Node, db: tempfile::TempDir, extra: &[&str]) -> Result<Served> {
        let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
        let addr = |p: u16| format!("127.0.0.1:{p}");
        let mut args = test_node_args(node, db.path());
        for (flag, port) in ["--tcp", "--ssl", "--ws", "--wss", "--http"].iter().zip(&ports) {
            args.push((*flag).to_string());
            args.push(addr(*port));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let ferrum = Ferrum::start(exe, &args, db.path())?;
        Ok(Served {
            ferrum,
            tcp: addr(ports[0]),
            ssl: addr(ports[1]),
            ws: addr(ports[2]),
            wss: addr(ports[3]),
            http: Some(addr(ports[4])),
            db,
            exe: exe.to_path_buf(),
            args,
        })
    }

    /// Kills ferrum (SIGKILL) and starts it again on the same index and ports.
    pub fn restart(&mut self, node: &Node) -> Result<()> {
        self.ferrum.kill9();
        self.ferrum = Ferrum::start(&self.exe, &self.args, self.db.path())?;
        self.wait_synced(node)
    }

    /// Waits until the server answers with the node's tip height; the error carries its log.
    pub fn wait_synced(&self, node: &Node) -> Result<()> {
        wait_for_height(&self.tcp, node.height()?, Duration::from_secs(60))
            .map_err(|e| anyhow!("{e}\n{}", self.ferrum.log_text()))
    }

    /// A session on the TCP port, [`PROTOCOL_VERSION`](crate::client::electrum::PROTOCOL_VERSION)
    /// negotiated.
    pub fn client(&self) -> Result<Client> {
        Client::connect(&self.tcp)
    }

    /// A session on the TCP port with `version` negotiated.
    pub fn client_with(&self, version: &str) -> Result<Client> {
        Client::connect_with(&self.tcp, json!(version))
    }
}
