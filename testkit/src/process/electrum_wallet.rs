//! The real Electrum wallet, headless: Debian's package (4.3.4, protocol 1.4) or Electrum 4.8.1
//! from its release source (protocol 1.4–1.6), its daemon in a temporary directory, configured
//! the way a user following a setup guide configures it (one server, no auto-connect), driven
//! through its command line. Killed on drop, and by the kernel if the process running it dies;
//! its logs are printed when a test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use crate::process::spawn::{die_with_parent, locate_exe};
use crate::wait::wait_for;

/// Which Electrum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Debian bookworm's package `electrum`, 4.3.4: protocol 1.4 only.
    Debian,
    /// Electrum 4.8.1, the current release: protocol 1.4 to 1.6, `server.features` checked,
    /// `mempool.get_info`, the mempool order enforced.
    V4_8_1,
}

impl Release {
    /// The `electrum` launcher: Debian's on the PATH (`scripts/deps.sh` installs it), or
    /// `$ELECTRUM_481_EXE`, else what `scripts/electrum.sh` installs.
    pub fn exe(self) -> Result<PathBuf> {
        match self {
            Release::Debian => {
                let path = std::env::var_os("PATH").unwrap_or_default();
                std::env::split_paths(&path).map(|d| d.join("electrum")).find(|p| p.is_file()).ok_or_else(|| {
                    anyhow!("no `electrum` on the PATH: install the Debian package electrum (scripts/deps.sh does)")
                })
            }
            Release::V4_8_1 => {
                static EXE: std::sync::OnceLock<std::result::Result<PathBuf, String>> = std::sync::OnceLock::new();
                EXE.get_or_init(|| locate_exe("ELECTRUM_481_EXE", "electrum.sh", |p| p).map_err(|e| format!("{e:#}")))
                    .clone()
                    .map_err(|e| anyhow!(e))
            }
        }
    }

    /// The version it reports, and its client name in `server.version`.
    pub fn version(self) -> &'static str {
        match self {
            Release::Debian => "4.3.4",
            Release::V4_8_1 => "4.8.1",
        }
    }

    /// The highest protocol version it asks for.
    pub fn protocol_max(self) -> &'static str {
        match self {
            Release::Debian => "1.4",
            Release::V4_8_1 => "1.6",
        }
    }
}

/// A running Electrum daemon in regtest mode.
pub struct ElectrumWallet {
    release: Release,
    exe: PathBuf,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// A wallet transaction as `onchain_history` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryItem {
    pub txid: String,
    /// 0 while unconfirmed (and, in 4.8, until its merkle proof was checked).
    pub height: i64,
    pub confirmations: u64,
    pub fee_sat: Option<u64>,
}

impl ElectrumWallet {
    /// Writes the wallet's config before its first start (`server` as Electrum writes it, e.g.
    /// `127.0.0.1:50002:s`), then starts its daemon and waits until it answers. `extra` keys
    /// are added to the config (e.g. `serverfingerprint`).
    pub fn start(release: Release, server: &str, extra: &[(&str, Value)]) -> Result<ElectrumWallet> {
        // Without `config_version`, Electrum takes the file for a version-1 config and rewrites
        // every server to `:s` (SSL), which breaks a `:t` server. With `oneserver` and
        // `auto_connect` missing (it defaults to on), 4.8 clears `server`.
        let mut config = json!({
            "config_version": 3,
            "auto_connect": false,
            "oneserver": true,
            "server": server,
            "log_to_file": true,
        });
        for (k, v) in extra {
            config[*k] = v.clone();
        }
        Self::start_with(release, &config, &[])
    }

    /// Started as `electrum --oneserver --server SERVER`, with no server in its config.
    pub fn start_with_flags(release: Release, server: &str) -> Result<ElectrumWallet> {
        Self::start_with_args(release, &["--oneserver", "--server", server])
    }

    /// Started as `electrum --regtest daemon ARGS...`, with no server in its config: `args` as
    /// a user would type them (e.g. the command line Ferrum's `/connect` page shows).
    pub fn start_with_args(release: Release, args: &[&str]) -> Result<ElectrumWallet> {
        Self::start_with(release, &json!({"config_version": 3, "log_to_file": true}), args)
    }

    fn start_with(release: Release, config: &Value, flags: &[&str]) -> Result<ElectrumWallet> {
        let exe = release.exe()?;
        let dir = tempfile::Builder::new().prefix("ferrum-electrum-").tempdir()?;
        let net_dir = dir.path().join("regtest");
        std::fs::create_dir_all(&net_dir)?;
        // The daemon's RPC credentials, set before its first start. Unset, the daemon and each
        // command make one and save it into the config file they share, and a command that
        // read the file between two saves sends a password the daemon does not have: its RPC
        // answers "Forbidden" (seen once, `load_wallet` right after `restore` in 4.8.1).
        let mut config = config.clone();
        config["rpcuser"] = json!("ferrum-test");
        config["rpcpassword"] =
            json!(dir.path().file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()));
        std::fs::write(net_dir.join("config"), serde_json::to_vec_pretty(&config)?)?;
        let mut wallet = ElectrumWallet { release, exe, child: None, dir };
        wallet.spawn(flags)?;
        Ok(wallet)
    }

    pub fn release(&self) -> Release {
        self.release
    }

    fn spawn(&mut self, flags: &[&str]) -> Result<()> {
        let out = std::fs::File::create(self.dir.path().join("daemon.out"))?;
        let exe = &self.exe;
        let mut cmd = Command::new(exe);
        cmd.args(["--regtest", "-D"])
            .arg(self.dir.path())
            .arg("daemon")
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out));
        die_with_parent(&mut cmd);
        self.child = Some(cmd.spawn().with_context(|| format!("starting {}", exe.display()))?);
        wait_for("the Electrum daemon answering", Duration::from_secs(60), || self.run(&["getinfo"]).ok())
            .map_err(|e| anyhow!("{e}\n{}", self.log_tail(40)))?;
        Ok(())
    }

    /// The wallet's data directory (`<dir>/regtest/...`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where Electrum keeps the certificate it pinned for `host` on first contact.
    pub fn pinned_cert_path(&self, host: &str) -> PathBuf {
        self.dir.path().join("regtest/certs").join(host)
    }

    /// Runs one command against the daemon; its output as JSON (a bare word or hex string
    /// comes back as a JSON string).
    pub fn run(&self, args: &[&str]) -> Result<Value> {
        let out = Command::new(&self.exe)
            .args(["--regtest", "-D"])
            .arg(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running electrum {}", args.join(" ")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "electrum {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = stdout.trim();
        Ok(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
    }

    /// Restores the default wallet from an Electrum seed and loads it.
    pub fn restore_and_load(&self, seed: &str) -> Result<()> {
        self.run(&["restore", seed])?;
        let loaded = self.run(&["load_wallet"])?;
        // 4.3 answers `true`, 4.8 the wallet's path.
        let ok = match self.release {
            Release::Debian => loaded == json!(true),
            Release::V4_8_1 => loaded.as_str().is_some_and(|p| p.ends_with("default_wallet")),
        };
        if !ok {
            bail!("load_wallet answered {loaded}");
        }
        Ok(())
    }

    /// The wallet's transactions, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryItem>> {
        let h = self.run(&["onchain_history"])?;
        // 4.3 wraps the list in {"transactions": [...], "summary": ...}; 4.8 returns the list.
        let list = match (&h, self.release) {
            (Value::Array(list), Release::V4_8_1) => list,
            (Value::Object(o), Release::Debian) => {
                o.get("transactions").and_then(Value::as_array).ok_or_else(|| anyhow!("onchain_history: {h}"))?
            }
            _ => bail!("onchain_history of {:?}: {h}", self.release),
        };
        list.iter()
            .map(|t| {
                Ok(HistoryItem {
                    txid: t["txid"].as_str().ok_or_else(|| anyhow!("no txid in {t}"))?.to_string(),
                    height: t["height"].as_i64().ok_or_else(|| anyhow!("no height in {t}"))?,
                    confirmations: t["confirmations"].as_u64().ok_or_else(|| anyhow!("no confirmations in {t}"))?,
                    fee_sat: t["fee_sat"].as_u64(),
                })
            })
            .collect()
    }

    /// The last `n` lines of the daemon's output and of its newest log file.
    pub fn log_tail(&self, n: usize) -> String {
        let tail = |text: String| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        let mut out = format!(
            "--- electrum daemon output\n{}\n",
            tail(std::fs::read_to_string(self.dir.path().join("daemon.out")).unwrap_or_default())
        );
        let logs = self.dir.path().join("regtest/logs");
        let newest = std::fs::read_dir(&logs)
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path()).max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok()));
        if let Some(log) = newest {
            out.push_str(&format!(
                "--- {}\n{}\n",
                log.display(),
                tail(std::fs::read_to_string(&log).unwrap_or_default())
            ));
        }
        out
    }
}

impl Drop for ElectrumWallet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(60));
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Satoshis of an amount as Electrum prints it ("48.499746", "50.", "0.0003").
pub fn btc_to_sat(text: &str) -> Result<u64> {
    let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if frac.len() > 8 || !frac.chars().all(|c| c.is_ascii_digit()) {
        bail!("not a bitcoin amount: {text:?}");
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().with_context(|| format!("amount {text:?}"))? };
    let frac: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<8}").parse()? };
    Ok(whole * 100_000_000 + frac)
}

#[cfg(test)]
mod tests {
    use super::btc_to_sat;

    #[test]
    fn amounts() {
        assert_eq!(btc_to_sat("50.").unwrap(), 5_000_000_000);
        assert_eq!(btc_to_sat("48.499746").unwrap(), 4_849_974_600);
        assert_eq!(btc_to_sat("0.00000001").unwrap(), 1);
        assert_eq!(btc_to_sat("3").unwrap(), 300_000_000);
        assert!(btc_to_sat("1.000000001").is_err());
        assert!(btc_to_sat("x").is_err());
    }
}
