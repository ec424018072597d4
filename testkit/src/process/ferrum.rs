//! A `ferrum` process, for tests and benchmarks: its log in a file, killed on drop and by the
//! kernel if the process running it dies; the arguments that point it at a node, and its admin
//! command line (`ferrum rpc`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::process::node::Node;
use crate::process::spawn::die_with_parent;

/// The arguments that reach `node`'s RPC: network, address, cookie (what `node-info` needs).
pub fn rpc_args(node: &Node) -> Vec<String> {
    vec![
        "--network".into(),
        "regtest".into(),
        "--daemon-rpc-addr".into(),
        node.rpc_addr(),
        "--cookie-file".into(),
        node.cookie_file().display().to_string(),
    ]
}

/// The arguments that point a `ferrum` at `node` (regtest, RPC, cookie, P2P) with its data in
/// `db_dir`.
pub fn node_args(node: &Node, db_dir: &Path) -> Vec<String> {
    let mut args = rpc_args(node);
    args.extend(["--daemon-p2p-addr".into(), node.p2p_addr(), "--db-dir".into(), db_dir.display().to_string()]);
    args
}

/// [`node_args`] with the small cache tests run with (many run at once), without any service.
pub fn test_node_args(node: &Node, db_dir: &Path) -> Vec<String> {
    let mut args = node_args(node, db_dir);
    args.extend(["--cache-mb".into(), "64".into()]);
    args
}

/// [`test_node_args`] serving TCP on one ephemeral port (the default ports would collide
/// between tests running at once).
pub fn test_args(node: &Node, db_dir: &Path) -> Vec<String> {
    let mut args = test_node_args(node, db_dir);
    args.extend(["--tcp".into(), "127.0.0.1:0".into()]);
    args
}

/// `EXE rpc -p PORT --json COMMAND ARGS...`, Ferrum's admin command line: the parsed answer, or
/// the command's error output when it fails (and why, when it could not run or did not print
/// JSON).
pub fn admin_rpc(exe: &Path, port: u16, command: &str, args: &[&str]) -> std::result::Result<Value, String> {
    let out = Command::new(exe)
        .args(["rpc", "-p", &port.to_string(), "--json", command])
        .args(args)
        .output()
        .map_err(|e| format!("running {} rpc: {e}", exe.display()))?;
    if out.status.success() {
        serde_json::from_slice(&out.stdout).map_err(|e| format!("ferrum rpc {command}: not JSON: {e}"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A running `ferrum`.
pub struct Ferrum {
    child: Option<Child>,
    pub db_dir: PathBuf,
    pub log: PathBuf,
}

impl Ferrum {
    /// Starts `exe` with `args`; the log goes to a new file in `db_dir`.
    pub fn start(exe: &Path, args: &[String], db_dir: &Path) -> Result<Ferrum> {
        Self::start_with_env(exe, args, &[], db_dir)
    }

    /// [`Ferrum::start`] with environment variables added to the inherited ones.
    pub fn start_with_env(exe: &Path, args: &[String], env: &[(&str, &str)], db_dir: &Path) -> Result<Ferrum> {
        std::fs::create_dir_all(db_dir).with_context(|| format!("creating {}", db_dir.display()))?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let log = db_dir.join(format!("ferrum-{stamp}.log"));
        let file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(exe);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(file);
        // Debug logs unless the caller sets the level its own way (ElectrumX's LOG_LEVEL).
        if !env.iter().any(|(k, _)| *k == "LOG_LEVEL") {
            cmd.env("FERRUM_LOG", "info,ferrum=debug");
        }
        cmd.envs(env.iter().copied());
        die_with_parent(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("starting {}", exe.display()))?;
        Ok(Ferrum { child: Some(child), db_dir: db_dir.to_path_buf(), log })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGINT, then waits for the exit status.
    pub fn interrupt(&mut self) -> Result<ExitStatus> {
        let Some(mut c) = self.child.take() else { bail!("ferrum is not running") };
        // SAFETY: sending a signal to our own child.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGINT);
        }
        Ok(c.wait()?)
    }

    /// Waits for the process to exit on its own; kills it after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let Some(mut c) = self.child.take() else { bail!("ferrum is not running") };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = c.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                bail!("ferrum did not exit within {timeout:?}; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Ferrum {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- {}\n{}", self.log.display(), lines[lines.len().saturating_sub(40)..].join("\n"));
        }
        self.kill9();
    }
}
