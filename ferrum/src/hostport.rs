//! `host:port` text, read and written one way for every place that has it: listen addresses,
//! the node's URL and address, reported services, the node's ZMQ endpoints, a wallet's host.

use std::fmt::Display;

/// Splits `[v6]:port`, `[v6]`, `host:port` or `host` into the host (an IPv6 address without
/// its brackets) and the port's text, if any. A bare IPv6 address (two colons or more) is a host
/// alone: its port needs the brackets.
pub(crate) fn split(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("{text:?}: unterminated ["))?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("{text:?}: unexpected {after:?} after the host")),
        };
    }
    Ok(match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (text, None),
    })
}

/// `host:port`, an IPv6 address in brackets.
pub(crate) fn join(host: &str, port: impl Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_splits_and_joins_back() {
        for (text, host, port) in [
            ("node.lan:8332", "node.lan", Some("8332")),
            ("node.lan", "node.lan", None),
            ("127.0.0.1:", "127.0.0.1", Some("")),
            (":50001", "", Some("50001")),
            ("[::1]:8332", "::1", Some("8332")),
            ("[fd00::1]", "fd00::1", None),
            ("fd00::1", "fd00::1", None),
            ("", "", None),
        ] {
            assert_eq!(split(text).unwrap(), (host, port), "{text:?}");
            if let Some(p) = port.filter(|p| !p.is_empty() && !host.is_empty()) {
                assert_eq!(join(host, p), text);
            }
        }
        assert!(split("[::1").unwrap_err().contains("unterminated"));
        assert!(split("[::1]8332").unwrap_err().contains("\"8332\""));
        assert_eq!(join("::1", 50002), "[::1]:50002");
    }
}
