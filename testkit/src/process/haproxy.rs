//! Debian's HAProxy (scripts/deps.sh installs it) in TCP mode in front of several servers, as a
//! public Electrum service runs it: every frontend spreads connections over its backends
//! round-robin, tells each backend the client's address with the PROXY protocol, checks
//! the backends' health (Ferrum's `/health`, or a connection), and sends new connections
//! elsewhere when one is down.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use crate::process::spawn::{die_with_parent, free_port};
use crate::wait::wait_for;

/// The `haproxy` binary: `HAPROXY_EXE`, else Debian's.
pub fn haproxy_exe() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("HAPROXY_EXE") {
        return Ok(PathBuf::from(p));
    }
    ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| anyhow!("haproxy is not installed (scripts/deps.sh installs Debian's)"))
}

/// A frontend: where clients connect, and the servers behind it.
pub struct Frontend {
    pub name: &'static str,
    pub backends: Vec<Backend>,
    /// The PROXY protocol version sent to the backends, 1 or 2.
    pub proxy_version: u8,
}

/// A server behind a frontend.
pub struct Backend {
    pub addr: SocketAddr,
    /// Checked with `GET /health` on this port (Ferrum's HTTP listener: 200 when caught up with
    /// a reachable node), instead of by connecting to `addr`. All of a frontend's backends
    /// have one or none.
    pub health_port: Option<u16>,
}

/// A running `haproxy`, stopped on drop.
pub struct Haproxy {
    child: Child,
    dir: tempfile::TempDir,
    /// Each frontend's listening address, in the order given.
    pub frontends: Vec<SocketAddr>,
}

impl Haproxy {
    /// Starts HAProxy with one loopback listener per frontend and waits until each accepts.
    /// Backends are checked every 200 ms and taken out at the first failed check; a connection
    /// a backend refuses is retried on another.
    pub fn start(frontends: &[Frontend]) -> Result<Haproxy> {
        let dir = tempfile::tempdir()?;
        let mut config = String::from(
            "global\n    maxconn 2000\n\
             defaults\n    mode tcp\n    log stderr format raw local0 info\n    option tcplog\n\
             \x20   timeout connect 2s\n    timeout client 10m\n    timeout server 10m\n\
             \x20   retries 3\n    option redispatch\n",
        );
        let mut listening = Vec::new();
        for f in frontends {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            listening.push(addr);
            config.push_str(&format!(
                "frontend {0}\n    bind {addr}\n    default_backend {0}_replicas\n\
                 backend {0}_replicas\n    balance roundrobin\n\
                 \x20   default-server {1} check inter 200ms fall 1 rise 2\n",
                f.name,
                if f.proxy_version == 1 { "send-proxy" } else { "send-proxy-v2" }
            ));
            if f.backends.iter().any(|b| b.health_port.is_some()) {
                config.push_str("    option httpchk GET /health\n");
            }
            for (i, b) in f.backends.iter().enumerate() {
                let port = b.health_port.map(|p| format!(" port {p}")).unwrap_or_default();
                config.push_str(&format!("    server replica{i} {}{port}\n", b.addr));
            }
        }
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, &config)?;
        let log = std::fs::File::create(dir.path().join("haproxy.log"))?;
        let exe = haproxy_exe()?;
        let mut cmd = Command::new(&exe);
        cmd.arg("-db").arg("-f").arg(&file).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("starting {}", exe.display()))?;
        let mut haproxy = Haproxy { child, dir, frontends: listening };
        for addr in haproxy.frontends.clone() {
            let up = wait_for(&format!("haproxy listening on {addr}"), Duration::from_secs(20), || {
                TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()
            });
            if let Err(e) = up {
                let _ = haproxy.child.try_wait();
                return Err(anyhow!("{e}\n{}", haproxy.log_text()));
            }
        }
        Ok(haproxy)
    }

    /// What HAProxy logged: its start-up, each connection, backends going up and down.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- haproxy\n{}", lines[lines.len().saturating_sub(40)..].join("\n"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
