//! The PROXY protocol (HAProxy's, versions 1 and 2) on listeners that opt in: a load balancer
//! in front of several replicas puts a header before the client's bytes naming the client's
//! address, and that address, not the balancer's, is what the per-address limits and the cost
//! model count. Only a connection from a configured proxy address may send one; any other
//! connection to such a listener is closed unread.
//!
//! The header is read to its last byte and no further, so what follows (a TLS client hello
//! passed through, a WebSocket upgrade, the first request) reaches the transport untouched. The
//! `ppp` crate parses it; only the framing (how many bytes to take) is done here.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Version 2's signature, its first 12 bytes.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, `\r\n` included (the protocol's own bound).
const V1_MAX: usize = 107;
/// The longest version 2 header taken: 16 fixed bytes, Unix socket addresses (216) and room
/// for the TLVs a balancer adds (unique id, authority, TLS details).
const V2_MAX: usize = 4096;

/// Reads the PROXY header that starts `stream` and returns the client address it names, or
/// `proxy` (the connection's own peer) when it names none: version 2's LOCAL command (the
/// balancer's own health check), version 1's `UNKNOWN`, or an address family other than IP.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(stream: &mut S, proxy: SocketAddr) -> Result<SocketAddr> {
    let mut buf = vec![0u8; V2_SIGNATURE.len()];
    stream.read_exact(&mut buf).await.context("reading the PROXY protocol header")?;
    if buf == V2_SIGNATURE {
        let mut fixed = [0u8; 4];
        stream.read_exact(&mut fixed).await.context("reading the PROXY protocol v2 header")?;
        let [_, _, hi, lo] = fixed;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if 16 + len > V2_MAX {
            bail!("PROXY protocol v2 header of {} bytes (at most {V2_MAX} taken)", 16 + len);
        }
        let mut rest = vec![0u8; len];
        stream.read_exact(&mut rest).await.context("reading the PROXY protocol v2 addresses")?;
        buf.extend_from_slice(&fixed);
        buf.extend_from_slice(&rest);
        let header = ppp::v2::Header::try_from(buf.as_slice())
            .map_err(|e| anyhow::anyhow!("bad PROXY protocol v2 header: {e}"))?;
        return Ok(v2_client(&header, proxy));
    }
    if !buf.starts_with(b"PROXY ") {
        bail!("no PROXY protocol header (the listener expects one before the client's bytes)");
    }
    while !buf.ends_with(b"\r\n") {
        if buf.len() >= V1_MAX {
            bail!("PROXY protocol v1 header longer than {V1_MAX} bytes");
        }
        buf.push(stream.read_u8().await.context("reading the PROXY protocol v1 header")?);
    }
    let header = ppp::v1::Header::try_from(buf.as_slice())
        .map_err(|e| anyhow::anyhow!("bad PROXY protocol v1 header {:?}: {e}", String::from_utf8_lossy(&buf)))?;
    Ok(match header.addresses {
        ppp::v1::Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
        ppp::v1::Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
        ppp::v1::Addresses::Unknown => proxy,
    })
}

/// The client a version 2 header names.
fn v2_client(header: &ppp::v2::Header, proxy: SocketAddr) -> SocketAddr {
    if header.command == ppp::v2::Command::Local {
        return proxy;
    }
    match header.addresses {
        ppp::v2::Addresses::IPv4(a) => SocketAddr::from((a.source_address, a.source_port)),
        ppp::v2::Addresses::IPv6(a) => SocketAddr::from((a.source_address, a.source_port)),
        ppp::v2::Addresses::Unix(_) | ppp::v2::Addresses::Unspecified => proxy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const PROXY: &str = "127.0.0.1:40000";

    /// What `read_header` makes of `bytes`, and the bytes it left in the stream.
    async fn read(bytes: &[u8]) -> (Result<SocketAddr>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(8192);
        client.write_all(bytes).await.unwrap();
        drop(client);
        let got = read_header(&mut server, PROXY.parse().unwrap()).await;
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        (got, rest)
    }

    fn v2(command: u8, addresses: ppp::v2::Addresses) -> Vec<u8> {
        ppp::v2::Builder::with_addresses(0x20 | command, ppp::v2::Protocol::Stream, addresses).build().unwrap()
    }

    #[tokio::test]
    async fn version_1_names_the_client_and_leaves_the_clients_bytes() {
        let (got, rest) = read(b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 50001\r\n{\"id\":1}\n").await;
        assert_eq!(got.unwrap(), "203.0.113.7:51234".parse().unwrap());
        assert_eq!(rest, b"{\"id\":1}\n");
        let (got, _) = read(b"PROXY TCP6 2001:db8::9 ::1 443 50002\r\n").await;
        assert_eq!(got.unwrap(), "[2001:db8::9]:443".parse().unwrap());
        let (got, rest) = read(b"PROXY UNKNOWN\r\n\x16\x03\x01").await;
        assert_eq!(got.unwrap(), PROXY.parse().unwrap(), "UNKNOWN: the proxy's own address");
        assert_eq!(rest, b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn version_2_names_the_client_and_leaves_the_clients_bytes() {
        let client: SocketAddr = "198.51.100.4:60001".parse().unwrap();
        let mut bytes = v2(1, (client, "127.0.0.1:50002".parse::<SocketAddr>().unwrap()).into());
        bytes.extend_from_slice(b"\x16\x03\x01\x02\x00");
        let (got, rest) = read(&bytes).await;
        assert_eq!(got.unwrap(), client);
        assert_eq!(rest, b"\x16\x03\x01\x02\x00", "a TLS client hello passes through untouched");

        let client6: SocketAddr = "[2001:db8::1]:7".parse().unwrap();
        let (got, _) = read(&v2(1, (client6, "[::1]:50001".parse::<SocketAddr>().unwrap()).into())).await;
        assert_eq!(got.unwrap(), client6);

        // A health check: LOCAL, with or without addresses, is the proxy itself.
        let (got, rest) = read(&[v2(0, ppp::v2::Addresses::Unspecified), b"x".to_vec()].concat()).await;
        assert_eq!(got.unwrap(), PROXY.parse().unwrap());
        assert_eq!(rest, b"x");
        let (got, _) = read(&v2(0, (client, "127.0.0.1:1".parse::<SocketAddr>().unwrap()).into())).await;
        assert_eq!(got.unwrap(), PROXY.parse().unwrap());

        // TLVs (HAProxy's unique id) are skipped with the header.
        let tlv = ppp::v2::Builder::with_addresses(
            0x21,
            ppp::v2::Protocol::Stream,
            (client, "127.0.0.1:50002".parse::<SocketAddr>().unwrap()),
        )
        .write_tlv(ppp::v2::Type::UniqueId, b"abc-123")
        .unwrap()
        .build()
        .unwrap();
        let (got, rest) = read(&[tlv, b"{}\n".to_vec()].concat()).await;
        assert_eq!(got.unwrap(), client);
        assert_eq!(rest, b"{}\n");
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        for (bytes, why) in [
            (&b"{\"id\":1,\"method\":\"server.version\"}\n"[..], "no PROXY protocol header"),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00", "no PROXY protocol header"),
            (b"PROXY TCP4 1.2.3.4", "reading the PROXY protocol v1 header"),
            (b"PROXY TCP4 1.2.3.999 127.0.0.1 1 2\r\n", "bad PROXY protocol v1 header"),
            (&[b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat(), "longer than 107 bytes"),
            (b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x01\x02", "v2 addresses"),
            (b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff", "at most 4096 taken"),
            (b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02", "bad PROXY"),
            (b"PRO", "reading the PROXY protocol header"),
        ] {
            let (got, _) = read(bytes).await;
            let e = format!("{:#}", got.expect_err(why));
            assert!(e.contains(why), "{bytes:?}: {e}");
        }
    }
}
