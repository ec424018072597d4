//! The reference Electrum server, ElectrumX 2.0 (PyPI package `e-x`), run against a testkit
//! [`Node`] in a temporary directory, on free loopback ports, killed on drop.
//!
//! ElectrumX 2.0 refuses a node older than Bitcoin Core 31.0 and one without `-txindex=1` and
//! `-txospenderindex=1`; [`ElectrumX::start`] checks the indexes first and says so plainly.
//!
//! ElectrumX serves nothing until it has caught up with the node and synchronised the mempool:
//! its ports open only then. Its TCP transport pads every message with spaces to 1 KiB packets
//! and, once a session has been sent 1 KiB, may hold a small reply up to one second to batch it
//! with others: time requests on fresh connections or with that in mind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::client::electrum::Client;
use crate::process::node::Node;
use crate::process::openssl;
use crate::process::spawn::{die_with_parent, free_port, locate_exe};
use crate::wait::wait_for;

/// The `electrumx_server` executable: `$ELECTRUMX_EXE`, or the one `scripts/electrumx.sh`
/// installs and caches (installing it on first use). Fails loudly: nothing is skipped.
pub fn electrumx_exe() -> Result<PathBuf> {
    static EXE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    EXE.get_or_init(|| locate_electrumx().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow!(e))
}

fn locate_electrumx() -> Result<PathBuf> {
    locate_exe("ELECTRUMX_EXE", "electrumx.sh", |exe| exe)
}

/// A running ElectrumX indexing one [`Node`]. Dropping it kills the process and removes its
/// directory; the process is also killed by the kernel if the test process dies.
pub struct ElectrumX {
    child: Mutex<Option<Child>>,
    dir: tempfile::TempDir,
    tcp_port: u16,
    ssl_port: u16,
    /// The node's cookie password, scrubbed from anything the harness shows.
    secret: String,
}

impl ElectrumX {
    /// Starts ElectrumX on `node` (which must run with `-txindex=1 -txospenderindex=1`) and
    /// returns at once; see [`ElectrumX::wait_synced`].
    pub fn start(node: &Node) -> Result<ElectrumX> {
        ElectrumX::start_with_env(node, &[])
    }

    /// [`ElectrumX::start`] with more environment variables, set after the harness's own (so
    /// they can override them).
    pub fn start_with_env(node: &Node, extra: &[(&str, &str)]) -> Result<ElectrumX> {
        ElectrumX::start_reporting(node, None, extra)
    }

    /// [`ElectrumX::start_with_env`], announcing its services under `host` (`REPORT_SERVICES`
    /// with its own ports) when given.
    pub fn start_reporting(node: &Node, host: Option<&str>, extra: &[(&str, &str)]) -> Result<ElectrumX> {
        check_indexes(node)?;
        let exe = electrumx_exe()?;
        let (user, password) = read_cookie(&node.cookie_file())?;
        let dir = tempfile::Builder::new().prefix("ferrum-electrumx-").tempdir()?;
        let db = dir.path().join("db");
        std::fs::create_dir(&db)?;
        let (cert, key) = openssl::self_signed(dir.path()).context("making ElectrumX's certificate")?;
        let tcp_port = free_port();
        let ssl_port = free_port();
        let log_path = dir.path().join("electrumx.log");
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

        let mut cmd = Command::new(&exe);
        // Only what is set here: ElectrumX reads its whole configuration from the environment,
        // and a developer's shell may hold ElectrumX-style settings for Ferrum (DAEMON_URL, NET...).
        cmd.env_clear();
        for var in ["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        let url =
            format!("http://{}:{}@127.0.0.1:{}/", userinfo_escape(&user), userinfo_escape(&password), node.rpc_port);
        cmd.env("DAEMON_URL", url)
            .env("DB_DIRECTORY", &db)
            // Mandatory since 2.0 (no default); plyvel is what scripts/electrumx.sh installs.
            .env("DB_ENGINE", "leveldb")
            .env("COIN", "Bitcoin")
            .env("NET", "regtest")
            .env("SERVICES", format!("tcp://127.0.0.1:{tcp_port},ssl://127.0.0.1:{ssl_port}"))
            .env("SSL_CERTFILE", &cert)
            .env("SSL_KEYFILE", &key)
            .env("PEER_DISCOVERY", "off")
            .env("PEER_ANNOUNCE", "")
            .env("COST_SOFT_LIMIT", "0")
            .env("COST_HARD_LIMIT", "0")
            .env("ALLOW_ROOT", "1")
            .env("LOG_LEVEL", "info")
            // The defaults poll the node every 5 s; a test mines and expects to see it.
            .env("DAEMON_POLL_INTERVAL_BLOCKS", "200")
            .env("DAEMON_POLL_INTERVAL_MEMPOOL", "200")
            .env("PYTHONUNBUFFERED", "1")
            .envs(host.map(|h| ("REPORT_SERVICES", format!("tcp://{h}:{tcp_port},ssl://{h}:{ssl_port}"))))
            .envs(extra.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        die_with_parent(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("starting {}", exe.display()))?;
        Ok(ElectrumX { child: Mutex::new(Some(child)), dir, tcp_port, ssl_port, secret: password })
    }

    /// The TCP and TLS ports.
    pub fn ports(&self) -> (u16, u16) {
        (self.tcp_port, self.ssl_port)
    }

    /// `127.0.0.1:<port>` of the plain TCP service.
    pub fn tcp_addr(&self) -> String {
        format!("127.0.0.1:{}", self.tcp_port)
    }

    /// `127.0.0.1:<port>` of the SSL service (a self-signed certificate, see [`ElectrumX::cert_file`]).
    pub fn ssl_addr(&self) -> String {
        format!("127.0.0.1:{}", self.ssl_port)
    }

    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("electrumx.log")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(Child::id)
    }

    /// The last `n` lines of ElectrumX's log (its stdout and stderr), for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        if self.secret.is_empty() {
            tail
        } else {
            tail.replace(&self.secret, "<cookie>")
        }
    }

    /// Fails if the process has exited.
    fn check_running(&self) -> Result<()> {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(child) = guard.as_mut() else {
            bail!("ElectrumX was killed");
        };
        if let Some(status) = child.try_wait()? {
            guard.take();
            drop(guard);
            bail!("ElectrumX exited with {status}:\n{}", self.log_tail(30));
        }
        Ok(())
    }

    /// Waits until ElectrumX serves and reports the node's height in `blockchain.headers.subscribe`,
    /// polling over TCP; fails at once if the process exits or cannot listen.
    pub fn wait_synced(&self, node: &Node, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            self.check_running()?;
            let target = node.height()?;
            match self.headers_height() {
                Ok(height) if height == target => return Ok(()),
                Ok(height) => last = format!("at height {height}, node at {target}"),
                Err(e) => last = format!("{e:#}"),
            }
            let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
            if log.contains("failed to listen") {
                bail!("ElectrumX could not listen on its ports:\n{}", self.log_tail(30));
            }
            if Instant::now() > deadline {
                bail!("ElectrumX not synced after {timeout:?} ({last}):\n{}", self.log_tail(30));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn headers_height(&self) -> Result<u32> {
        let tip = self.call("blockchain.headers.subscribe", json!([]))?;
        let height = tip.get("height").and_then(Value::as_u64).ok_or_else(|| anyhow!("no height in {tip}"))?;
        Ok(u32::try_from(height)?)
    }

    /// A new session on the TCP service (version negotiated), for several calls in a row.
    pub fn connect(&self) -> Result<Client> {
        Client::connect(&self.tcp_addr())
    }

    /// One call on a fresh session: `server.version`, then `method`; returns the `result`, or an
    /// error holding the server's JSON-RPC error object ([`ServerError`](crate::client::electrum::ServerError)).
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.connect()?.call(method, params)
    }

    /// SIGKILL, no clean shutdown.
    pub fn kill(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ElectrumX {
    fn drop(&mut self) {
        self.kill();
    }
}

/// ElectrumX 2.0 checks `getindexinfo` at start and exits without both indexes; say so here,
/// with the fix, and wait for the indexes to catch up so that answers do not depend on timing.
fn check_indexes(node: &Node) -> Result<()> {
    let info = node.call("getindexinfo", json!([]))?;
    let missing: Vec<&str> = ["txindex", "txospenderindex"].into_iter().filter(|i| info.get(i).is_none()).collect();
    if !missing.is_empty() {
        bail!(
            "ElectrumX 2.0 needs a node with -txindex=1 -txospenderindex=1, and this node lacks {}: start it \
             with NodeOptions {{ txindex: true, extra_args: vec![\"-txospenderindex=1\".into()], .. }}",
            missing.join(" and ")
        );
    }
    wait_for("the node's txindex and txospenderindex to sync", Duration::from_secs(60), || {
        let info = node.call("getindexinfo", json!([])).ok()?;
        let synced = |i: &str| info.get(i).and_then(|v| v.get("synced")).and_then(Value::as_bool) == Some(true);
        (synced("txindex") && synced("txospenderindex")).then_some(())
    })
}

/// `user:password` from a bitcoind cookie file (`__cookie__:<hex>`).
fn read_cookie(path: &Path) -> Result<(String, String)> {
    let cookie = std::fs::read_to_string(path).with_context(|| format!("reading cookie {}", path.display()))?;
    let (user, password) =
        cookie.trim().split_once(':').ok_or_else(|| anyhow!("cookie {} is not user:password", path.display()))?;
    Ok((user.to_string(), password.to_string()))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for a URL's user info.
fn userinfo_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn userinfo_is_escaped() {
        assert_eq!(super::userinfo_escape("__cookie__"), "__cookie__");
        assert_eq!(super::userinfo_escape("a:b@c/d%"), "a%3Ab%40c%2Fd%25");
    }
}
