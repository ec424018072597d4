//! Configuration: one typed [`Config`] built from command-line flags, environment variables
//! (Ferrum's `FERRUM_*` names and ElectrumX's names) and a TOML file, in that order of precedence,
//! validated into clear errors that name the offending setting.
//!
//! `cli` defines the options, `electrumx` reads ElectrumX's variables into them, this module
//! layers the sources, `settings` builds one settings struct per subsystem from the result (with
//! `parse` for the values), and `reference` writes the documentation from the same definitions.

mod cli;
mod electrumx;
mod parse;
mod reference;
mod settings;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::electrum::ElectrumConfig;
use crate::network::Network;
use crate::server::tls::CertSource;

pub(crate) use cli::IndexCommand;
pub use cli::{Cli, Command, Options};
pub(crate) use parse::ConfigError;
pub use parse::{check_log_filter, DEFAULT_RPC_PORT};
pub use reference::reference;
pub(crate) use settings::{DaemonSettings, IndexSettings, MonitorSettings, ServerSettings};

use parse::invalid;

/// The log filter when none is given.
pub const DEFAULT_LOG: &str = "info";

/// Environment variables: a seam so tests can pass their own.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
    /// The names of every variable set.
    fn names(&self) -> Vec<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn names(&self) -> Vec<String> {
        std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// The validated configuration: one settings struct per subsystem, each complete (defaults
/// applied, values checked), so that start-up only hands them out.
#[derive(Clone)]
pub struct Config {
    pub(crate) network: Network,
    /// The data directory: the index, the self-signed certificate, perhaps `ferrum.toml`.
    pub db_dir: PathBuf,
    pub daemon: DaemonSettings,
    pub(crate) index: IndexSettings,
    pub electrum: ElectrumConfig,
    pub server: ServerSettings,
    pub monitor: MonitorSettings,
    /// The log filter, normalised by [`check_log_filter`].
    pub log: String,
    /// What start-up should log about the configuration (ignored or unknown variables).
    pub notices: Vec<String>,
}

impl Config {
    /// Where the index lives inside the data directory.
    pub(crate) fn index_dir(&self) -> PathBuf {
        self.db_dir.join("index")
    }
}

impl fmt::Debug for Config {
    /// What `ferrum config` prints and start-up logs: the settings an operator gives, by the
    /// names they are given by, in one flat list. `DaemonConfig`'s `Auth` redacts the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ssl_files = match &self.server.tls {
            CertSource::Files { cert, key } => Some((cert, key)),
            CertSource::SelfSigned { .. } => None,
        };
        // `None` is `auto`, printed as the modes are (`Auto`, `Spenttxouts`, `Utxo`).
        let prevout_mode = self.index.prevout_mode.map_or_else(|| "Auto".to_string(), |mode| format!("{mode:?}"));
        f.debug_struct("Config")
            .field("network", &self.network)
            .field("db_dir", &self.db_dir)
            .field("daemon", &self.daemon.rpc)
            .field("p2p_addr", &self.daemon.p2p_addr)
            .field("prevout_mode", &format_args!("{prevout_mode}"))
            .field("cache_mb", &self.index.cache_mb)
            .field("reindex", &self.index.reindex)
            .field("reindex_on_format_change", &self.index.reindex_on_format_change)
            .field("poll_interval", &self.index.poll_interval)
            .field("services", &self.server.services)
            .field("admin_rpc", &self.monitor.admin_rpc)
            .field("http", &self.monitor.http)
            .field("report_services", &self.electrum.report_services)
            .field("ssl_files", &ssl_files)
            .field("banner_file", &self.electrum.banner_file)
            .field("donation_address", &self.electrum.donation_address)
            .field("max_send", &self.electrum.max_send)
            .field("history_cache_mb", &(self.electrum.script_cache.bytes >> 20))
            .field("peers", &self.electrum.peers)
            .field("limits", &self.server.limits)
            .field("log", &self.log)
            .finish()
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

impl Config {
    /// Layers the sources (command line and `FERRUM_*` environment, then ElectrumX's variable
    /// names, then the config file), then builds each subsystem's settings from the result.
    pub fn load(cli: &Options, env: &dyn Env) -> Result<Config, ConfigError> {
        let mut opts = cli.clone();
        opts.daemon_password = env.var("FERRUM_DAEMON_PASSWORD");
        let daemon_url = electrumx::fill_options(&mut opts, env)?;
        let mut notices = electrumx::notices(env)?;

        let file_path = opts.config.clone().or_else(|| {
            let mut candidates: Vec<PathBuf> = opts.db_dir.iter().map(|d| d.join("ferrum.toml")).collect();
            candidates.push(home_dir().join(".ferrum").join("ferrum.toml"));
            candidates.push(PathBuf::from("/etc/ferrum/ferrum.toml"));
            candidates.into_iter().find(|p| p.exists())
        });
        if let Some(path) = &file_path {
            let file = read_file(path)?;
            merge(&mut opts, file)?;
        }

        let network = opts.network.unwrap_or(Network::Mainnet);
        let db_dir = opts.db_dir.clone().unwrap_or_else(|| home_dir().join(".ferrum").join(network.name()));
        let daemon = DaemonSettings::new(&opts, daemon_url.as_deref(), network)?;
        let index = IndexSettings::new(&opts)?;
        let (services, monitor) = settings::listeners(&opts, network)?;
        let electrum = settings::electrum(&opts, network)?;
        let server = ServerSettings::new(&opts, services, &db_dir, &electrum.report_services)?;
        let log = match &opts.log {
            Some(filter) => check_log_filter(filter).map_err(|e| invalid("--log", e))?,
            None => DEFAULT_LOG.to_string(),
        };
        if let Some(path) = &file_path {
            notices.push(format!("configuration file {}", path.display()));
        }
        Ok(Config { network, db_dir, daemon, index, electrum, server, monitor, log, notices })
    }
}

fn read_file(path: &Path) -> Result<Options, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::File { path: path.to_path_buf(), reason: e.to_string() })?;
    toml::from_str(&text).map_err(|e| ConfigError::File { path: path.to_path_buf(), reason: e.to_string() })
}

/// Fills every unset option from the file's value.
fn merge(opts: &mut Options, file: Options) -> Result<(), ConfigError> {
    let to_map = |o: &Options| match serde_json::to_value(o) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(invalid("config", "options do not serialize")),
    };
    let mut merged = to_map(opts)?;
    for (k, v) in to_map(&file)? {
        if merged.get(&k).is_none_or(serde_json::Value::is_null) {
            merged.insert(k, v);
        }
    }
    let mut out: Options =
        serde_json::from_value(serde_json::Value::Object(merged)).map_err(|e| invalid("config", e.to_string()))?;
    // Command-line-only settings are not in the file.
    out.config = opts.config.clone();
    out.reindex = opts.reindex;
    *opts = out;
    Ok(())
}
