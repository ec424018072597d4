//! Values parsed and checked: listen addresses, service lists, `DAEMON_URL`, client subnets and
//! log filters, each refused with a [`ConfigError`] that names the setting it came from.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::electrum::ReportedService;
use crate::hostport;
use crate::network::Network;
use crate::server::{Protocol, Subnet};

/// Why a configuration is refused: a value, named by the setting it came from (its flag, or the
/// ElectrumX variable it was read from), or the config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{setting}: {reason}")]
    Invalid { setting: String, reason: String },
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
}

pub(super) fn invalid(setting: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { setting: setting.to_string(), reason: reason.into() }
}

/// ElectrumX's admin RPC port.
pub const DEFAULT_RPC_PORT: u16 = 8000;

/// The default port of a service on a network (ElectrumX's conventions).
pub(super) fn default_port(protocol: Protocol, network: Network) -> u16 {
    let (tcp, ssl) = network.default_electrum_ports();
    match protocol {
        Protocol::Tcp => tcp,
        Protocol::Ssl => ssl,
        Protocol::Ws => tcp + 2,
        Protocol::Wss => ssl + 2,
    }
}

/// `host:port`, `:port`, `port` or `host`; an empty host means all interfaces.
pub(super) fn bind(setting: &str, text: &str, default_port: u16) -> Result<SocketAddr, ConfigError> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), port));
    }
    let (host, port) = hostport::split(text).map_err(|e| invalid(setting, e))?;
    let port = match port {
        Some(p) if !p.is_empty() => {
            p.parse::<u16>().map_err(|_| invalid(setting, format!("{text:?}: bad port {p:?}")))?
        }
        _ => default_port,
    };
    let ip: IpAddr = match host {
        "" => IpAddr::from([0, 0, 0, 0]),
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        h => h.parse().map_err(|_| invalid(setting, format!("{text:?}: listen on an IP address, not {h:?}")))?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// `proto://host:port` entries, comma-separated.
pub(super) fn split_services(setting: &str, list: &str) -> Result<Vec<(String, String)>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (proto, rest) =
                s.split_once("://").ok_or_else(|| invalid(setting, format!("{s:?} is not protocol://host:port")))?;
            Ok((proto.to_ascii_lowercase(), rest.to_string()))
        })
        .collect()
}

/// The admin RPC address: the host defaults to loopback, not all interfaces (as ElectrumX).
pub(super) fn rpc_bind(setting: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    let text = text.trim();
    let addr = bind(setting, if text.is_empty() { "localhost" } else { text }, DEFAULT_RPC_PORT)?;
    let host_given = !(text.is_empty() || text.starts_with(':') || text.parse::<u16>().is_ok());
    Ok(if host_given { addr } else { SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port()) })
}

/// `REPORT_SERVICES`: `protocol://host:port` entries, comma-separated, each with a host name.
pub(super) fn report_services(list: &str) -> Result<Vec<ReportedService>, ConfigError> {
    split_services("REPORT_SERVICES", list)?
        .into_iter()
        .map(|(proto, rest)| {
            let protocol: Protocol = proto.parse().map_err(|e: String| invalid("REPORT_SERVICES", e))?;
            let (host, port) =
                hostport::split(&rest).ok().and_then(|(h, p)| Some((h, p?.parse::<u16>().ok()?))).ok_or_else(|| {
                    invalid("REPORT_SERVICES", format!("{rest:?} is not host:port (an IPv6 address in brackets)"))
                })?;
            if host.is_empty() {
                return Err(invalid(
                    "REPORT_SERVICES",
                    format!("{proto}://{rest}: a reported service needs a host name"),
                ));
            }
            Ok(ReportedService { protocol: protocol.name().to_string(), host: host.to_string(), port })
        })
        .collect()
}

/// A `DAEMON_URL` entry: `[http://][user:password@]host[:port][/]`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct DaemonUrl {
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    /// An IPv6 address without its brackets.
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
}

pub(super) fn daemon_url(url: &str) -> Result<DaemonUrl, String> {
    let rest = url.trim();
    let rest = match rest.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => return Err(format!("unsupported scheme {scheme:?} (only http)")),
        None => rest,
    };
    let rest = rest.trim_end_matches('/');
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(user.to_string()), Some(pass.to_string())),
            None => (Some(u.to_string()), None),
        },
        None => (None, None),
    };
    let (host, port) = hostport::split(hostport)?;
    let port = port.map(|p| p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))).transpose()?;
    if host.is_empty() {
        return Err("no host".into());
    }
    if !hostport.starts_with('[') && host.contains(':') {
        // `fd00::5:8332` would be read as a host with no port, silently the wrong address.
        return Err("an IPv6 address goes in brackets: [address]:port".into());
    }
    Ok(DaemonUrl { user, password, host: host.to_string(), port })
}

/// A list of subnets (`--session-limit-exempt`, `--proxy-from`), or `none` (or nothing) for none.
pub(super) fn subnets(setting: &str, list: &[String]) -> Result<Vec<Subnet>, ConfigError> {
    if list.iter().all(|s| s.trim().eq_ignore_ascii_case("none") || s.trim().is_empty()) {
        return Ok(Vec::new());
    }
    list.iter().filter(|s| !s.trim().is_empty()).map(|s| s.parse::<Subnet>().map_err(|e| invalid(setting, e))).collect()
}

/// A log filter: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`), or a list of
/// `target=level` directives with an optional bare level; returned normalised.
pub fn check_log_filter(filter: &str) -> Result<String, String> {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    let filter = filter.trim().to_ascii_lowercase();
    let mut out = Vec::new();
    for directive in filter.split(',').map(str::trim) {
        let (target, level) = match directive.rsplit_once('=') {
            Some((target, level)) if !target.is_empty() => (Some(target), level),
            _ => (None, directive),
        };
        // ElectrumX's LOG_LEVEL says "warning"; tracing says "warn".
        let level = if level == "warning" { "warn" } else { level };
        if !LEVELS.contains(&level) {
            return Err(format!("{directive:?} is not a level (error, warn, info, debug, trace, off) or target=level"));
        }
        out.push(target.map_or_else(|| level.to_string(), |t| format!("{t}={level}")));
    }
    Ok(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_url_forms() {
        assert_eq!(
            daemon_url("u:p@127.0.0.1").unwrap(),
            DaemonUrl { user: Some("u".into()), password: Some("p".into()), host: "127.0.0.1".into(), port: None }
        );
        assert_eq!(daemon_url("http://[::1]:8332").unwrap().host, "::1");
        assert!(daemon_url("http://u:p@fd00::5:8332").unwrap_err().contains("brackets"));
        assert_eq!(daemon_url("http://[fd00::5]").unwrap().port, None);
        assert!(daemon_url("https://x").unwrap_err().contains("https"));
        assert!(daemon_url("host:notaport").unwrap_err().contains("notaport"));
    }
}
