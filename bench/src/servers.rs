//! The servers under test, started on one node the same way, one at a time, and what the
//! operating system says of their processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use testkit::{ElectrumX, Ferrum, Node};

/// Which server, and how it is run.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// Ferrum in a prevout mode (`spenttxouts`, `utxo` or `auto`), on the node itself or
    /// behind a front that answers as Bitcoin Core 29 does (BTCPay's version: REST blocks, no
    /// spent outputs, no block parts). `baseline`: the binary is the one compared against
    /// (`FERRUM_BASELINE_EXE`), run exactly as this build's.
    Ferrum {
        exe: PathBuf,
        mode: String,
        core29: bool,
        baseline: bool,
    },
    ElectrumX,
    Electrs {
        exe: PathBuf,
        version: String,
    },
}

impl Kind {
    pub fn label(&self) -> String {
        match self {
            Kind::Ferrum { mode, core29, baseline, .. } => {
                let name = if *baseline { "Ferrum baseline" } else { "Ferrum" };
                if *core29 {
                    format!("{name} (utxo, behind Core 29)")
                } else {
                    format!("{name} ({mode})")
                }
            }
            Kind::ElectrumX => "ElectrumX 2.0.0".into(),
            Kind::Electrs { version, .. } => format!("electrs {version}"),
        }
    }

    /// Whether only the initial sync is measured: Ferrum's utxo mode on the node itself writes
    /// the same rows as spenttxouts and answers from them alike. Behind Core 29 single
    /// transactions are read differently (no blockpart): everything is measured there.
    pub fn sync_only(&self) -> bool {
        matches!(self, Kind::Ferrum { mode, core29: false, .. } if mode == "utxo")
    }

    /// The node-side indexes the server needs, which count in its footprint.
    pub fn node_indexes(&self) -> &'static [&'static str] {
        match self {
            Kind::ElectrumX => &["txindex", "txospenderindex"],
            _ => &[],
        }
    }
}

enum Process {
    Ferrum(Ferrum),
    ElectrumX(ElectrumX),
    Electrs { child: Child, log: PathBuf },
}

/// A running server with its data directory.
pub struct Server {
    pub kind: Kind,
    pub addr: String,
    process: Process,
    db: PathBuf,
    /// In front of the node for a server that must see Core 29.
    _proxy: Option<testkit::process::core29::Core29Proxy>,
    _dir: tempfile::TempDir,
}

/// Bytes of answer any server may send: large enough for the history of the busiest address.
const MAX_SEND: &str = "500000000";

impl Server {
    pub fn start(kind: &Kind, node: &Node) -> Result<Server> {
        let dir = tempfile::Builder::new().prefix("ferrum-bench-").tempdir()?;
        let port = testkit::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut proxy = None;
        let (process, db) = match kind {
            Kind::Ferrum { exe, mode, core29, .. } => {
                let db = dir.path().join("db");
                let mut args = testkit::process::ferrum::node_args(node, &db);
                if *core29 {
                    let front = testkit::process::core29::Core29Proxy::start(node.bitcoind_rpc_addr().parse()?)?;
                    for a in &mut args {
                        if *a == node.rpc_addr() {
                            *a = front.addr().to_string();
                        }
                    }
                    proxy = Some(front);
                }
                args.extend(["--prevout-mode", mode, "--tcp", &addr, "--max-send", MAX_SEND].map(String::from));
                // With a service given, Ferrum starts only that one: no TLS, admin or HTTP.
                (Process::Ferrum(Ferrum::start(exe, &args, &db)?), db)
            }
            Kind::ElectrumX => {
                let x = ElectrumX::start_with_env(node, &[("MAX_SEND", MAX_SEND)])?;
                let db = x.dir().join("db");
                let addr_x = x.tcp_addr();
                return Ok(Server {
                    kind: kind.clone(),
                    addr: addr_x,
                    process: Process::ElectrumX(x),
                    db,
                    _proxy: None,
                    _dir: dir,
                });
            }
            Kind::Electrs { exe, version } => {
                let db = dir.path().join("db");
                let log = dir.path().join("electrs.log");
                let file = std::fs::File::create(&log)?;
                let mut cmd = Command::new(exe);
                cmd.args(["--network", "regtest", "--skip-block-download-wait", "--log-filters", "INFO"])
                    .arg("--db-dir")
                    .arg(&db)
                    .arg("--daemon-dir")
                    .arg(node.datadir())
                    .args(["--daemon-rpc-addr", &node.rpc_addr()]);
                // 0.12 reads blocks over REST and dropped its P2P connection and that option.
                if version.starts_with("0.11") {
                    cmd.args(["--daemon-p2p-addr", &node.p2p_addr()]);
                }
                cmd.args(["--electrum-rpc-addr", &addr])
                    .args(["--monitoring-addr", &format!("127.0.0.1:{}", testkit::free_port())])
                    .env_remove("RUST_LOG")
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(file.try_clone()?))
                    .stderr(Stdio::from(file));
                testkit::process::die_with_parent(&mut cmd);
                let child = cmd.spawn().with_context(|| format!("starting {}", exe.display()))?;
                (Process::Electrs { child, log }, db)
            }
        };
        Ok(Server { kind: kind.clone(), addr, process, db, _proxy: proxy, _dir: dir })
    }

    pub fn pid(&self) -> Result<u32> {
        match &self.process {
            Process::Ferrum(f) => f.pid(),
            Process::ElectrumX(x) => x.pid(),
            Process::Electrs { child, .. } => Some(child.id()),
        }
        .ok_or_else(|| anyhow!("{} is not running", self.kind.label()))
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = match &self.process {
            Process::Ferrum(f) => f.log_text(),
            Process::ElectrumX(x) => return x.log_tail(30),
            Process::Electrs { log, .. } => std::fs::read_to_string(log).unwrap_or_default(),
        };
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// For Ferrum, once serving: waits for the compaction that follows its initial sync, if one
    /// runs, and returns how long it took from now. Queries measured during it would measure
    /// the compaction's load (notifications took 90–200 ms instead of 30 on the 10m preset).
    pub fn wait_compaction(&self, timeout: Duration) -> Result<Option<f64>> {
        let Process::Ferrum(f) = &self.process else { return Ok(None) };
        let started = std::time::Instant::now();
        loop {
            let log = f.log_text();
            // The tip's line comes after the line that says whether a compaction runs (in older
            // builds, a baseline's, just after it: allowed two seconds).
            if log.contains("index at the node's tip") {
                if !log.contains("compacting the index in the background") {
                    if started.elapsed() > Duration::from_secs(2) {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                if log.contains("compaction done in") {
                    return Ok(Some(started.elapsed().as_secs_f64()));
                }
                if log.contains("compaction failed") {
                    bail!("Ferrum's compaction failed:\n{}", self.log_tail());
                }
            }
            if started.elapsed() > timeout {
                bail!("Ferrum's compaction did not end in {timeout:?}:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the server answers `blockchain.headers.subscribe` with `height`.
    pub fn wait_height(&mut self, height: u32, timeout: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let reached = testkit::client::electrum::Client::connect_with(
                &self.addr,
                serde_json::json!(crate::measure::VERSIONS),
            )
            .and_then(|mut c| c.call("blockchain.headers.subscribe", serde_json::json!([])))
            .map(|tip| tip["height"].as_u64() == Some(u64::from(height)))
            .unwrap_or(false);
            if reached {
                return Ok(());
            }
            if let Process::Electrs { child, .. } = &mut self.process {
                if let Some(status) = child.try_wait()? {
                    bail!("electrs exited with {status}:\n{}", self.log_tail());
                }
            }
            if std::time::Instant::now() > deadline {
                bail!("{} did not reach height {height} in {timeout:?}:\n{}", self.kind.label(), self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Bytes of the server's own index on disk.
    pub fn index_bytes(&self) -> u64 {
        dir_bytes(&self.db)
    }

    pub fn stop(self) {
        match self.process {
            Process::Ferrum(mut f) => {
                let _ = f.interrupt();
            }
            Process::ElectrumX(mut x) => x.kill(),
            Process::Electrs { mut child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// CPU seconds (user and system) and peak resident memory in bytes of a running process.
pub fn process_usage(pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it are plain.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| anyhow!("bad /proc stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11)
        .zip(fields.get(12))
        .map_or(Ok(0.0), |(u, s)| -> Result<f64> { Ok(u.parse::<f64>()? + s.parse::<f64>()?) })?;
    // SAFETY: sysconf only reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((ticks / hz, status_bytes(pid, "VmHWM")))
}

/// The highest value of a memory field of `/proc/PID/status` (`RssAnon`: the RSS without file
/// pages), sampled every 200 ms until [`PeakSampler::stop`]: the kernel keeps a peak only of
/// the RSS with file pages (`VmHWM`), which counts the pages of files a server maps.
pub struct PeakSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PeakSampler {
    pub fn start(pid: u32, field: &'static str) -> PeakSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            loop {
                peak = peak.max(status_bytes(pid, field));
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    return peak;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        PeakSampler { stop, thread }
    }

    /// The peak, in bytes.
    pub fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap_or(0)
    }
}

/// A memory figure of `/proc/PID/status` (`VmRSS`, `RssAnon`, `VmHWM`...) in bytes; 0 if absent.
pub fn status_bytes(pid: u32, field: &str) -> u64 {
    proc_field(&format!("/proc/{pid}/status"), field) * 1024
}

/// The number after `field:` in a `/proc` file of `name: value [unit]` lines; 0 if absent.
pub fn proc_field(path: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Bytes of the files under `path`.
pub fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
