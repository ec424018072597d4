//! A SOCKS5 proxy standing in for Tor: servers on loopback are given onion names, and a client
//! asking the proxy for `name.onion:port` is connected to `127.0.0.1:port` when `name.onion` is
//! one of its names. Anything else is refused with SOCKS5's "host unreachable", as Tor refuses
//! a name it cannot reach. A thread rather than a process, stopped on drop; it counts the
//! connections made to each name.
//!
//! (Off-the-shelf SOCKS servers resolve names through DNS, which cannot map onion names to
//! loopback without changing the machine's configuration; this one only maps names.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The proxy. Stopped on drop.
pub struct Socks5Proxy {
    addr: SocketAddr,
    connections: Arc<Mutex<HashMap<String, usize>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Socks5Proxy {
    /// Starts a proxy that reaches each of `names` (lower case) on loopback.
    pub fn start(names: &[&str]) -> Result<Socks5Proxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("socks5-proxy")
            .enable_all()
            .build()
            .context("starting the SOCKS5 proxy's runtime")?;
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).context("binding the SOCKS5 proxy")?;
        let addr = listener.local_addr()?;
        let names: Arc<Vec<String>> = Arc::new(names.iter().map(|n| n.to_ascii_lowercase()).collect());
        let connections: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counts = connections.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (names, counts) = (names.clone(), counts.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &names, &counts).await;
                });
            }
        });
        Ok(Socks5Proxy { addr, connections, runtime: Some(runtime) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections made through the proxy to `name` so far.
    pub fn connections(&self, name: &str) -> usize {
        let counts = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&name.to_ascii_lowercase()).copied().unwrap_or(0)
    }
}

impl Drop for Socks5Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// One client: no authentication, CONNECT to a known name only, then bytes both ways.
async fn serve(mut client: TcpStream, names: &[String], counts: &Mutex<HashMap<String, usize>>) -> Result<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await?;
    anyhow::ensure!(head[0] == 5 && methods.contains(&0), "not a SOCKS5 client without authentication");
    client.write_all(&[5, 0]).await?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let len = client.read_u8().await?;
            let mut name = vec![0u8; usize::from(len)];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).to_ascii_lowercase()
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            std::net::Ipv6Addr::from(ip).to_string()
        }
        other => anyhow::bail!("address type {other}"),
    };
    let port = client.read_u16().await?;
    let reply = |code: u8| [5, code, 0, 1, 0, 0, 0, 0, 0, 0];
    if request[1] != 1 || !names.contains(&host) {
        client.write_all(&reply(4)).await?;
        return Ok(());
    }
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
        client.write_all(&reply(5)).await?;
        return Ok(());
    };
    *counts.lock().unwrap_or_else(|e| e.into_inner()).entry(host).or_default() += 1;
    client.write_all(&reply(0)).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
