//! A blocking JSON-RPC client for bitcoind, on one keep-alive connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};

/// An RPC error object returned by bitcoind.
#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bitcoind error {}: {}", self.code, self.message)
    }
}

impl std::error::Error for RpcError {}

pub struct Rpc {
    addr: String,
    cookie: PathBuf,
    conn: Mutex<Option<BufReader<TcpStream>>>,
    timeout: Duration,
}

impl Rpc {
    pub fn new(addr: String, cookie: PathBuf) -> Rpc {
        Rpc { addr, cookie, conn: Mutex::new(None), timeout: Duration::from_secs(300) }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Calls a method; an RPC error object becomes an `RpcError` inside the `anyhow::Error`.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        let body = serde_json::to_vec(&json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params}))?;
        let (status, reply) = self.post(&body).with_context(|| format!("RPC {method}"))?;
        let mut reply: Value = serde_json::from_slice(&reply)
            .with_context(|| format!("RPC {method}: HTTP {status}, body {:?}", String::from_utf8_lossy(&reply)))?;
        let error = reply.get_mut("error").map(Value::take).unwrap_or(Value::Null);
        if !error.is_null() {
            let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
            let message = error.get("message").and_then(Value::as_str).unwrap_or_default().to_string();
            return Err(anyhow::Error::new(RpcError { code, message }).context(format!("RPC {method}")));
        }
        reply.get_mut("result").map(Value::take).ok_or_else(|| anyhow!("RPC {method}: no result"))
    }

    /// GETs a REST path; returns the HTTP status and body.
    pub fn rest(&self, path: &str) -> Result<(u16, Vec<u8>)> {
        self.exchange("GET", path, &[], None)
    }

    fn post(&self, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let cookie = std::fs::read_to_string(&self.cookie)
            .with_context(|| format!("reading cookie {}", self.cookie.display()))?;
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(cookie.trim()));
        self.exchange("POST", "/", body, Some(&auth))
    }

    fn exchange(&self, method: &str, path: &str, body: &[u8], auth: Option<&str>) -> Result<(u16, Vec<u8>)> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        // A kept-alive connection may have been closed by the node: retry once on a fresh one.
        for attempt in 0..2 {
            if guard.is_none() {
                let stream = TcpStream::connect(&self.addr).with_context(|| format!("connecting to {}", self.addr))?;
                stream.set_read_timeout(Some(self.timeout))?;
                stream.set_nodelay(true)?;
                *guard = Some(BufReader::new(stream));
            }
            let Some(conn) = guard.as_mut() else { unreachable!() };
            match roundtrip(conn, method, path, &self.addr, body, auth) {
                Ok((status, reply, keep)) => {
                    if !keep {
                        *guard = None;
                    }
                    return Ok((status, reply));
                }
                Err(e) => {
                    *guard = None;
                    if attempt == 1 {
                        return Err(e);
                    }
                }
            }
        }
        bail!("unreachable")
    }
}

fn roundtrip(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    host: &str,
    body: &[u8],
    auth: Option<&str>,
) -> Result<(u16, Vec<u8>, bool)> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n", body.len());
    if let Some(auth) = auth {
        head.push_str(&format!("Authorization: {auth}\r\nContent-Type: application/json\r\n"));
    }
    head.push_str("\r\n");
    let stream = conn.get_mut();
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut line = String::new();
    conn.read_line(&mut line)?;
    if line.is_empty() {
        bail!("connection closed");
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {line:?}"))?;
    let mut length = None;
    let mut keep = true;
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = Some(v.trim().parse::<usize>()?),
                "connection" => keep = !v.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut reply = Vec::new();
    match length {
        Some(n) => {
            reply.resize(n, 0);
            conn.read_exact(&mut reply)?;
        }
        None => {
            conn.read_to_end(&mut reply)?;
            keep = false;
        }
    }
    Ok((status, reply, keep))
}
