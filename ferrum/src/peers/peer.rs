//! One peer server as the protocol describes it: its host, ports, protocol version and pruning,
//! read from a "real name" (`host v1.4 s t50001`, the form of `server.peers.subscribe` and of
//! the seed lists) or from its `server.features`, and written back in that form.

use std::net::IpAddr;

use serde_json::{json, Value};

/// A peer server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    /// As given, compared without case.
    pub(crate) host: String,
    pub(crate) tcp_port: Option<u16>,
    pub(crate) ssl_port: Option<u16>,
    /// The highest protocol version it speaks, as it writes it (`1.4` when not said).
    pub(crate) protocol_max: String,
    pub(crate) pruning: Option<u64>,
    /// The address it was last reached at (not for onion peers).
    pub(crate) ip_addr: Option<IpAddr>,
}

impl Peer {
    pub(crate) fn new(host: &str) -> Peer {
        Peer {
            host: host.to_string(),
            tcp_port: None,
            ssl_port: None,
            protocol_max: "1.4".into(),
            pruning: None,
            ip_addr: None,
        }
    }

    /// A real name: the host, then `v<version>`, `p<pruning>`, and `s`/`t` with a port or none
    /// for the network's default (`default_ports`: TCP, then TLS). Unknown parts are skipped.
    pub(crate) fn from_real_name(real_name: &str, default_ports: (u16, u16)) -> Option<Peer> {
        let mut parts = real_name.split_whitespace();
        let mut peer = Peer::new(parts.next()?);
        for part in parts {
            let (kind, rest) = part.split_at(part.chars().next()?.len_utf8());
            match kind {
                "v" if !rest.is_empty() => peer.protocol_max = rest.to_string(),
                "p" => peer.pruning = rest.parse().ok(),
                "t" => peer.tcp_port = port_or(rest, default_ports.0),
                "s" => peer.ssl_port = port_or(rest, default_ports.1),
                _ => {}
            }
        }
        Some(peer)
    }

    /// Its real name, default ports written as the bare letter.
    pub(crate) fn real_name(&self, default_ports: (u16, u16)) -> String {
        let mut parts = vec![self.host.clone(), format!("v{}", self.protocol_max)];
        if let Some(p) = self.pruning {
            parts.push(format!("p{p}"));
        }
        for (letter, port, default) in [("s", self.ssl_port, default_ports.1), ("t", self.tcp_port, default_ports.0)] {
            match port {
                Some(p) if p == default => parts.push(letter.to_string()),
                Some(p) => parts.push(format!("{letter}{p}")),
                None => {}
            }
        }
        parts.join(" ")
    }

    /// Its entry in `server.peers.subscribe`: `[address, host, [version, ports...]]`.
    pub(crate) fn to_tuple(&self, default_ports: (u16, u16)) -> Value {
        let name = self.real_name(default_ports);
        let details: Vec<&str> = name.split(' ').skip(1).collect();
        let address = self.ip_addr.map_or_else(|| self.host.clone(), |ip| ip.to_string());
        json!([address, self.host, details])
    }

    /// The peers a `server.features` answer (or `server.add_peer` argument) names: one per
    /// host of its `hosts`, with that host's ports.
    pub(crate) fn from_features(features: &Value) -> Vec<Peer> {
        let Some(hosts) = features.get("hosts").and_then(Value::as_object) else { return Vec::new() };
        hosts
            .iter()
            .map(|(host, ports)| {
                let mut peer = Peer::new(host);
                peer.update_from_features(features, ports);
                peer
            })
            .collect()
    }

    /// Takes the ports `ports` (its entry in `hosts`), the version and the pruning from a
    /// `server.features` answer.
    pub(crate) fn update_from_features(&mut self, features: &Value, ports: &Value) {
        let port = |key: &str| ports.get(key).and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok());
        self.tcp_port = port("tcp_port");
        self.ssl_port = port("ssl_port");
        if let Some(v) = features.get("protocol_max").and_then(Value::as_str) {
            self.protocol_max = v.chars().filter(|c| c.is_ascii_digit() || *c == '.').take(16).collect();
        }
        self.pruning = features.get("pruning").and_then(Value::as_u64);
    }

    pub(crate) fn is_tor(&self) -> bool {
        self.host.to_ascii_lowercase().ends_with(".onion")
    }

    /// A host other servers and wallets can reach: a public IP address, or a valid host name
    /// other than `localhost` (onion names included).
    pub(crate) fn is_public(&self) -> bool {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => is_public_ip(ip),
            Err(_) => valid_hostname(&self.host) && !self.host.eq_ignore_ascii_case("localhost"),
        }
    }

    pub(crate) fn key(&self) -> String {
        self.host.to_ascii_lowercase()
    }
}

fn port_or(text: &str, default: u16) -> Option<u16> {
    if text.is_empty() {
        Some(default)
    } else {
        text.parse().ok().filter(|p| *p != 0)
    }
}

/// An address of the public internet: not private, loopback, link-local, multicast,
/// unspecified, documentation or shared.
pub(crate) fn is_public_ip(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0xdb8)
        }
    }
}

/// A DNS host name: dot-separated labels of letters, digits and hyphens, none empty, longer
/// than 63 or starting or ending with a hyphen, 253 characters in all at most.
pub(crate) fn valid_hostname(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAINNET: (u16, u16) = (50001, 50002);

    #[test]
    fn real_names_read_and_written() {
        let p = Peer::from_real_name("electrum.example.org v1.4.2 s t50011 p10000", MAINNET).unwrap();
        assert_eq!((p.ssl_port, p.tcp_port, p.pruning), (Some(50002), Some(50011), Some(10000)));
        assert_eq!(p.protocol_max, "1.4.2");
        assert_eq!(p.real_name(MAINNET), "electrum.example.org v1.4.2 p10000 s t50011");
        let onion = Peer::from_real_name("abcdefghij.onion s51002", (51001, 51002)).unwrap();
        assert_eq!((onion.ssl_port, onion.tcp_port, onion.protocol_max.as_str()), (Some(51002), None, "1.4"));
        assert!(onion.is_tor() && onion.is_public());
        assert_eq!(onion.to_tuple((51001, 51002)), json!(["abcdefghij.onion", "abcdefghij.onion", ["v1.4", "s"]]));
        assert!(Peer::from_real_name("", MAINNET).is_none());
        let junk = Peer::from_real_name("host.example sX t0 vx q1", MAINNET).unwrap();
        assert_eq!((junk.ssl_port, junk.tcp_port), (None, None));
    }

    #[test]
    fn features_name_hosts_and_ports() {
        let f = json!({"hosts": {"a.example": {"ssl_port": 50002, "tcp_port": 50001}, "b.onion": {"tcp_port": 50011}},
                       "protocol_max": "1.7.0", "pruning": null});
        let mut peers = Peer::from_features(&f);
        peers.sort_by(|a, b| a.host.cmp(&b.host));
        assert_eq!(peers.len(), 2);
        assert_eq!(
            (peers[0].ssl_port, peers[0].tcp_port, peers[0].protocol_max.as_str()),
            (Some(50002), Some(50001), "1.7.0")
        );
        assert_eq!((peers[1].ssl_port, peers[1].tcp_port), (None, Some(50011)));
        assert!(Peer::from_features(&json!({"hosts": []})).is_empty());
        assert!(Peer::from_features(&json!("x")).is_empty());
    }

    #[test]
    fn only_public_hosts() {
        for host in ["electrum.example.org", "8.8.8.8", "2a01:4f8::1", "x.onion"] {
            assert!(Peer::new(host).is_public(), "{host}");
        }
        for host in [
            "localhost",
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "0.0.0.0",
            "bad_host",
            "-a.example",
            "a..b",
            "100.64.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!Peer::new(host).is_public(), "{host}");
        }
    }
}
