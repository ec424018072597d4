//! Starts a regtest node with some activity (a seeded scenario), then runs the given command
//! with the node's coordinates in its environment, and stops the node when the command ends.
//!
//!   regtest-demo [--blocks N] -- <command> [args...]
//!
//! The command sees FERRUM_NETWORK, FERRUM_DAEMON_RPC_ADDR, FERRUM_COOKIE_FILE,
//! FERRUM_DAEMON_P2P_ADDR and FERRUM_DB_DIR (a fresh directory).

use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use testkit::chain::scenario::{self, ScenarioOptions};
use testkit::{Node, NodeOptions};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("regtest-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args.iter().position(|a| a == "--").context("usage: regtest-demo [--blocks N] -- <command>")?;
    let (opts, command) = args.split_at(split);
    let command = &command[1..];
    if command.is_empty() {
        bail!("no command after --");
    }
    let mut height = 300;
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        match o.as_str() {
            "--blocks" => height = it.next().context("--blocks N")?.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    eprintln!("regtest-demo: starting bitcoind (regtest, REST on)");
    let node = Node::start(NodeOptions::rest())?;
    eprintln!("regtest-demo: building a seeded chain of {height} blocks with every transaction kind");
    let s = scenario::build(&node, &ScenarioOptions { seed: 1, height })?;
    eprintln!(
        "regtest-demo: node at {} (P2P {}), height {}, {} transactions sent by the harness",
        node.rpc_addr(),
        node.p2p_addr(),
        node.height()?,
        s.sent.len()
    );
    let db = tempfile::Builder::new().prefix("ferrum-demo-db-").tempdir()?;
    let status = Command::new(&command[0])
        .args(&command[1..])
        .env("FERRUM_NETWORK", "regtest")
        .env("FERRUM_DAEMON_RPC_ADDR", node.rpc_addr())
        .env("FERRUM_DAEMON_P2P_ADDR", node.p2p_addr())
        .env("FERRUM_COOKIE_FILE", node.cookie_file())
        .env("FERRUM_DB_DIR", db.path())
        .status()
        .with_context(|| format!("running {}", command[0]))?;
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
