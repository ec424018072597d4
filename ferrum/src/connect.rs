//! How a wallet connects: each Electrum service with the host and port a wallet uses, the TLS
//! certificate's fingerprint to pin, Electrum's command line and config lines (one server,
//! auto-connect off), and a QR code of the TLS server for Electrum on Android. Served at
//! `/connect` on the HTTP listener and printed by `ferrum connect`.
//!
//! The hosts are the reported services' (`REPORT_SERVICES`) when there are any: the names the
//! operator says the world uses. Otherwise each listener's address, with a listener on every
//! interface (`0.0.0.0`, `::`) named by the host the reader came by: the page's `Host` header
//! (checked to be a plain host name or address; anything else is not echoed) or `ferrum connect
//! --host`.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use qrcode::render::{svg, unicode};
use qrcode::QrCode;
use serde_json::{json, Value};

use anyhow::{anyhow, Result};

use crate::config::Config;
use crate::electrum::ReportedService;
use crate::hostport;
use crate::network::Network;
use crate::server::{Protocol, Service};

/// One way in: `protocol://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) protocol: Protocol,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Endpoint {
    /// `host:port`, an IPv6 address in brackets.
    fn host_port(&self) -> String {
        hostport::join(&self.host, self.port)
    }
}

/// Everything a person needs to point a wallet at this server.
#[derive(Clone, Debug)]
pub(crate) struct Details {
    pub(crate) network: Network,
    pub(crate) endpoints: Vec<Endpoint>,
    /// The SHA-256 fingerprint of the TLS certificate, when there is one.
    pub(crate) fingerprint: Option<String>,
    /// Whether Electrum should pin it: a self-signed certificate, which Electrum pins anyway on
    /// first contact. An authority's certificate is renewed, and a pin would break at renewal.
    pub(crate) pin: bool,
    /// Whether the hosts are the reported services' rather than guessed from the listeners.
    pub(crate) reported: bool,
}

/// `host` if it is a plain host name or IP address (a `Host` header is the client's to write),
/// without a port.
pub(crate) fn plain_host(host: &str) -> Option<String> {
    let host = host.trim();
    // `[v6]:port`, `[v6]`, `name:port`, `name`.
    let (bare, port) = hostport::split(host).ok()?;
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return None;
    }
    if bare.parse::<IpAddr>().is_ok() {
        return Some(bare.to_string());
    }
    let name_ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    name_ok.then(|| bare.to_ascii_lowercase())
}

impl Details {
    /// The details of a server listening on `services` (their bound addresses), reporting
    /// `reported`, its certificate's `fingerprint`; `host` names a listener on every interface.
    /// A listener behind a proxy (`+proxy`) is not one a wallet reaches: only the reported
    /// services name the proxy's address.
    pub(crate) fn new(
        network: Network,
        services: &[Service],
        reported: &[ReportedService],
        fingerprint: Option<String>,
        pin: bool,
        host: Option<&str>,
    ) -> Details {
        let from_reported: Vec<Endpoint> = reported
            .iter()
            .filter_map(|r| Some(Endpoint { protocol: r.protocol.parse().ok()?, host: r.host.clone(), port: r.port }))
            .collect();
        if !from_reported.is_empty() {
            return Details { network, endpoints: from_reported, fingerprint, pin, reported: true };
        }
        let endpoints = services
            .iter()
            .filter(|s| !s.proxied)
            .map(|s| Endpoint { protocol: s.protocol, host: listener_host(s.addr, host), port: s.addr.port() })
            .collect();
        Details { network, endpoints, fingerprint, pin, reported: false }
    }

    /// The endpoint Electrum should use: the first TLS one, else the first plain TCP one.
    fn electrum_endpoint(&self) -> Option<&Endpoint> {
        let first = |p: Protocol| self.endpoints.iter().find(|e| e.protocol == p);
        first(Protocol::Ssl).or_else(|| first(Protocol::Tcp))
    }

    /// Electrum's server string, `host:port:s` (TLS) or `host:port:t`, the form its server
    /// dialog and its QR scanner take.
    pub(crate) fn server_string(&self) -> Option<String> {
        self.electrum_endpoint().map(|e| {
            let kind = if e.protocol == Protocol::Ssl { "s" } else { "t" };
            format!("{}:{kind}", e.host_port())
        })
    }

    /// The fingerprint to pin, when Electrum is to use TLS.
    fn pinned(&self) -> Option<&str> {
        let tls = self.electrum_endpoint().is_some_and(|e| e.protocol == Protocol::Ssl);
        self.fingerprint.as_deref().filter(|_| tls && self.pin)
    }

    /// Electrum's network flag (`--testnet4`, ...), empty on mainnet.
    fn electrum_flag(&self) -> &'static str {
        match self.network {
            Network::Mainnet => "",
            Network::Testnet => " --testnet",
            Network::Testnet4 => " --testnet4",
            Network::Signet => " --signet",
            Network::Regtest => " --regtest",
        }
    }

    /// `electrum --oneserver --server ...`: one start against this server alone.
    pub(crate) fn electrum_command(&self) -> Option<String> {
        let server = self.server_string()?;
        let mut line = format!("electrum{} --oneserver --server {server}", self.electrum_flag());
        if let Some(fp) = self.pinned() {
            let _ = write!(line, " --serverfingerprint {fp}");
        }
        Some(line)
    }

    /// `electrum --offline setconfig ...` lines: every later start uses this server alone.
    pub(crate) fn electrum_config(&self) -> Vec<String> {
        let Some(server) = self.server_string() else { return Vec::new() };
        let set = |k: &str, v: &str| format!("electrum{} --offline setconfig {k} {v}", self.electrum_flag());
        let mut lines = vec![set("oneserver", "true"), set("auto_connect", "false"), set("server", &server)];
        if let Some(fp) = self.pinned() {
            lines.push(set("serverfingerprint", fp));
        }
        lines
    }

    /// The QR code of the server string, as an SVG image.
    fn qr_svg(&self) -> Option<String> {
        let code = QrCode::new(self.server_string()?.as_bytes()).ok()?;
        Some(code.render::<svg::Color>().min_dimensions(240, 240).quiet_zone(true).build())
    }

    /// The QR code of the server string, in text blocks for a terminal.
    fn qr_text(&self) -> Option<String> {
        let code = QrCode::new(self.server_string()?.as_bytes()).ok()?;
        Some(
            code.render::<unicode::Dense1x2>()
                .dark_color(unicode::Dense1x2::Light)
                .light_color(unicode::Dense1x2::Dark)
                .quiet_zone(true)
                .build(),
        )
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "network": self.network.name(),
            "services": self.endpoints.iter().map(|e| json!({
                "protocol": e.protocol.name(), "host": e.host, "port": e.port,
            })).collect::<Vec<_>>(),
            "hosts_reported": self.reported,
            "tls_sha256": self.fingerprint,
            "electrum_server": self.server_string(),
            "electrum_command": self.electrum_command(),
            "electrum_config": self.electrum_config(),
        })
    }

    /// What `ferrum connect` prints.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Ferrum on {}", self.network.name());
        let _ = writeln!(out, "\nServices{}:", if self.reported { " (REPORT_SERVICES)" } else { "" });
        for e in &self.endpoints {
            let _ = writeln!(out, "  {:<4} {}", e.protocol.name(), e.host_port());
        }
        if self.endpoints.is_empty() {
            let _ = writeln!(out, "  none configured");
        }
        match &self.fingerprint {
            Some(fp) => {
                let _ = writeln!(out, "\nTLS certificate SHA-256 fingerprint:\n  {fp}");
            }
            None => {
                let _ = writeln!(out, "\nNo TLS certificate (no ssl or wss service, or not made yet: the server makes one on its first start).");
            }
        }
        if let Some(command) = self.electrum_command() {
            let _ = writeln!(out, "\nElectrum, this server only:\n  {command}");
            let _ = writeln!(out, "\nOr once, for every later start:");
            for line in self.electrum_config() {
                let _ = writeln!(out, "  {line}");
            }
        }
        if let (Some(server), Some(qr)) = (self.server_string(), self.qr_text()) {
            let _ = writeln!(out, "\nElectrum on Android: Network > Server, scan {server}:\n\n{qr}");
        }
        out
    }

    /// The `/connect` page: self-contained, nothing fetched.
    pub(crate) fn to_html(&self) -> String {
        let e = html_escape;
        let mut rows = String::new();
        for ep in &self.endpoints {
            let _ =
                write!(rows, "<tr><td>{}</td><td class=\"mono\">{}</td></tr>", ep.protocol.name(), e(&ep.host_port()));
        }
        if rows.is_empty() {
            rows.push_str("<tr><td colspan=\"2\">none configured</td></tr>");
        }
        let fingerprint = match &self.fingerprint {
            Some(fp) => format!("<p class=\"mono\" id=\"fingerprint\">{}</p>", e(fp)),
            None => "<p id=\"fingerprint\">no TLS service</p>".to_string(),
        };
        let mut electrum = String::new();
        if let (Some(server), Some(command)) = (self.server_string(), self.electrum_command()) {
            let config: Vec<String> = self.electrum_config().iter().map(|l| e(l)).collect();
            let _ = write!(
                electrum,
                "<h2>Electrum</h2><p>Server <span class=\"mono\" id=\"server\">{}</span>, this server only, \
                 auto-connect off{}.</p><p>One start:</p><pre id=\"command\">{}</pre>\
                 <p>Or once, for every later start (with Electrum stopped):</p><pre id=\"config\">{}</pre>",
                e(&server),
                if self.pinned().is_some() { ", its certificate pinned" } else { "" },
                e(&command),
                config.join("\n")
            );
            if let Some(svg) = self.qr_svg() {
                let _ = write!(
                    electrum,
                    "<h2>Electrum on Android</h2><p>Network, Server: scan this code, or type \
                     <span class=\"mono\">{}</span>.</p><div id=\"qr\">{svg}</div>",
                    e(&server)
                );
            }
        }
        let note = if self.reported {
            "The hosts are the ones the server reports (REPORT_SERVICES)."
        } else {
            "The hosts are the listeners' addresses; a listener on every interface is named by the \
             address this page was opened at. Set REPORT_SERVICES to the names wallets use."
        };
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Connect a wallet to Ferrum</title><style>{CSS}</style></head><body><main>\
             <h1>Connect a wallet</h1><p>Ferrum on <b>{network}</b>.</p>\
             <h2>Services</h2><table>{rows}</table><p class=\"note\">{note}</p>\
             <h2>TLS certificate</h2><p>SHA-256 fingerprint, to compare with the one your wallet \
             pinned:</p>{fingerprint}{electrum}<p class=\"note\"><a href=\"/\">Status</a></p>\
             </main></body></html>",
            network = self.network.name(),
        )
    }
}

/// What `ferrum connect` prints for `config`: text, or JSON with `json`. `host` names the
/// listeners on every interface. Nothing is started: the certificate is read from disk.
pub fn report(config: &Config, host: Option<&str>, json: bool) -> Result<String> {
    let tls = config.server.services.iter().any(|s| s.protocol.needs_tls());
    let fingerprint = if tls { crate::server::tls::fingerprint_on_disk(&config.server.tls)? } else { None };
    let host = match host {
        Some(h) => Some(plain_host(h).ok_or_else(|| anyhow!("--host {h:?} is not a host name or an IP address"))?),
        None => None,
    };
    let details = Details::new(
        config.network,
        &config.server.services,
        &config.electrum.report_services,
        fingerprint,
        config.server.tls.is_self_signed(),
        host.as_deref(),
    );
    Ok(if json { format!("{:#}\n", details.to_json()) } else { details.to_text() })
}

/// The host a wallet uses for a listener at `addr`: its address, or `host` (else `localhost`)
/// when it listens on every interface.
fn listener_host(addr: SocketAddr, host: Option<&str>) -> String {
    if addr.ip().is_unspecified() {
        host.map_or_else(|| "localhost".to_string(), str::to_string)
    } else {
        addr.ip().to_string()
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}\
main{max-width:46rem;margin:0 auto;padding:1.5rem}h1{font-size:1.6rem}h2{font-size:1.15rem;margin-top:1.6rem}\
table{border-collapse:collapse}td{padding:.2rem 1.2rem .2rem 0}.mono,pre{font-family:ui-monospace,monospace}\
pre{background:#fff;border:1px solid #d7dbe0;padding:.7rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}\
#fingerprint{word-break:break-all}#qr svg{width:240px;height:240px;background:#fff}.note{color:#57606a;font-size:.9rem}";

#[cfg(test)]
mod tests {
    use super::*;

    fn service(protocol: Protocol, addr: &str) -> Service {
        Service { protocol, addr: addr.parse().unwrap(), proxied: false }
    }

    #[test]
    fn a_host_header_is_used_only_when_it_is_a_plain_host() {
        assert_eq!(plain_host("Node.Local:8080").as_deref(), Some("node.local"));
        assert_eq!(plain_host("192.168.1.5:80").as_deref(), Some("192.168.1.5"));
        assert_eq!(plain_host("[fd00::1]:80").as_deref(), Some("fd00::1"));
        assert_eq!(plain_host("btcpay.example.com").as_deref(), Some("btcpay.example.com"));
        for bad in
            ["", "a b", "<script>", "x\"y", "-a.com", "a..b", "[::1", "[::1]x", "a.com:port", "evil.com/x", "é.com"]
        {
            assert_eq!(plain_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lines_for_electrum_pin_the_certificate_of_the_tls_service() {
        let services = [service(Protocol::Tcp, "0.0.0.0:50001"), service(Protocol::Ssl, "0.0.0.0:50002")];
        let d = Details::new(Network::Mainnet, &services, &[], Some("ab".repeat(32)), true, Some("node.lan"));
        assert_eq!(d.server_string().as_deref(), Some("node.lan:50002:s"));
        let fp = "ab".repeat(32);
        assert_eq!(
            d.electrum_command().unwrap(),
            format!("electrum --oneserver --server node.lan:50002:s --serverfingerprint {fp}")
        );
        assert_eq!(
            d.electrum_config(),
            [
                "electrum --offline setconfig oneserver true".to_string(),
                "electrum --offline setconfig auto_connect false".to_string(),
                "electrum --offline setconfig server node.lan:50002:s".to_string(),
                format!("electrum --offline setconfig serverfingerprint {fp}"),
            ]
        );
        // Plain TCP only: `:t`, nothing to pin; a listener on one address is named by it.
        let d =
            Details::new(Network::Testnet4, &[service(Protocol::Tcp, "10.0.0.2:50001")], &[], None, true, Some("x"));
        assert_eq!(d.electrum_command().unwrap(), "electrum --testnet4 --oneserver --server 10.0.0.2:50001:t");
        // An authority's certificate is shown, not pinned: it is renewed.
        let d = Details::new(Network::Mainnet, &services, &[], Some("cd".repeat(32)), false, Some("node.lan"));
        assert_eq!(d.electrum_command().unwrap(), "electrum --oneserver --server node.lan:50002:s");
        assert!(d.electrum_config().iter().all(|l| !l.contains("serverfingerprint")));
        assert!(d.to_text().contains(&"cd".repeat(32)));
        // IPv6 in brackets.
        let d = Details::new(Network::Regtest, &[service(Protocol::Ssl, "[::1]:60002")], &[], None, true, None);
        assert_eq!(d.server_string().as_deref(), Some("[::1]:60002:s"));
    }

    #[test]
    fn reported_services_name_the_hosts() {
        let reported = [
            ReportedService { protocol: "ssl".into(), host: "electrum.example.org".into(), port: 443 },
            ReportedService { protocol: "tcp".into(), host: "electrum.example.org".into(), port: 50001 },
        ];
        let services = [service(Protocol::Ssl, "0.0.0.0:50002")];
        let d = Details::new(Network::Mainnet, &services, &reported, None, true, Some("10.1.1.1"));
        assert!(d.reported);
        assert_eq!(d.server_string().as_deref(), Some("electrum.example.org:443:s"));
        let text = d.to_text();
        assert!(text.contains("ssl  electrum.example.org:443") && text.contains("tcp  electrum.example.org:50001"));
        assert!(!text.contains("10.1.1.1"));
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let reported = [ReportedService { protocol: "ssl".into(), host: "a<b>\"c".into(), port: 1 }];
        let html = Details::new(Network::Mainnet, &[], &reported, None, true, None).to_html();
        assert!(html.contains("a&lt;b&gt;&quot;c:1:s") && !html.contains("a<b>"), "{html}");
    }
}
