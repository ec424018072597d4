//! One HTTP/1.1 request written by hand on a fresh connection, to see exactly what a server
//! answers: the status code, the head as sent, and the body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result};

/// `METHOD PATH` (GET, HEAD, POST...) to `addr`, read until the server closes: the status code
/// (0 when the status line has none), the head and the body.
pub fn request(addr: &str, method: &str, path: &str) -> Result<(u16, String, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n")?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).with_context(|| format!("reading the answer to {method} {path}"))?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, head.to_string(), body.to_string()))
}
