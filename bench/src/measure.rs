//! The measurements: the node's block-serving ceiling, query latency, wallet-sync throughput and
//! notification latency. Each returns plain figures; `report` turns them into tables.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::chaingen::Probe;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use testkit::client::electrum::Client;
use testkit::client::rpc::Rpc;
use testkit::Node;

/// The protocol versions the benchmark's clients offer, as Electrum 4.7 does: electrs speaks
/// 1.4 only, Ferrum and ElectrumX up to 1.6.
pub const VERSIONS: [&str; 2] = ["1.4", "1.6"];

/// Time spent sampling one method for one address, beyond the first three samples.
const SAMPLING_BUDGET: Duration = Duration::from_secs(10);

/// Percentiles of a set of samples, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        (samples[i].as_secs_f64() * 1e5).round() / 100.0
    };
    Percentiles { samples: samples.len(), p50_ms: at(0.5), p99_ms: at(0.99) }
}

/// One way of fetching every block from the node, timed.
#[derive(Clone, Debug, Serialize)]
pub struct Ceiling {
    pub method: String,
    pub seconds: f64,
    pub blocks_per_s: f64,
    /// Megabytes of blocks (not of the answers) per second.
    pub block_mb_per_s: f64,
    /// Megabytes of the answers per second.
    pub answer_mb_per_s: f64,
}

/// How fast the node serves every block of the chain with `threads` requests in flight: REST
/// blocks, REST blocks with their spent outputs, and JSON-RPC hex.
pub fn node_ceiling(node: &Node, threads: usize, block_bytes: u64) -> Result<Vec<Ceiling>> {
    let height = node.height()?;
    let hashes: Vec<String> = (0..=height).map(|h| Ok(node.block_hash(h)?.to_string())).collect::<Result<_>>()?;
    let mut out = Vec::new();
    for method in ["REST block", "REST block + spenttxouts", "RPC getblock hex"] {
        let started = Instant::now();
        let answer_bytes: u64 = std::thread::scope(|s| -> Result<u64> {
            let chunk = hashes.len().div_ceil(threads);
            let workers: Vec<_> = hashes
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || -> Result<u64> {
                        let rpc = Rpc::new(node.rpc_addr(), node.cookie_file());
                        let mut bytes = 0u64;
                        for hash in part {
                            bytes += fetch(&rpc, method, hash)?;
                        }
                        Ok(bytes)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().map_err(|_| anyhow!("fetch thread panicked"))?).sum()
        })?;
        let seconds = started.elapsed().as_secs_f64();
        out.push(Ceiling {
            method: method.to_string(),
            seconds: round(seconds, 2),
            blocks_per_s: round(hashes.len() as f64 / seconds, 0),
            block_mb_per_s: round(block_bytes as f64 / 1e6 / seconds, 1),
            answer_mb_per_s: round(answer_bytes as f64 / 1e6 / seconds, 1),
        });
    }
    Ok(out)
}

fn fetch(rpc: &Rpc, method: &str, hash: &str) -> Result<u64> {
    let rest = |path: String| -> Result<u64> {
        let (status, body) = rpc.rest(&path)?;
        if status != 200 {
            bail!("GET {path}: HTTP {status}");
        }
        Ok(body.len() as u64)
    };
    match method {
        "REST block" => rest(format!("/rest/block/{hash}.bin")),
        "REST block + spenttxouts" => {
            Ok(rest(format!("/rest/block/{hash}.bin"))? + rest(format!("/rest/spenttxouts/{hash}.bin"))?)
        }
        _ => {
            let hex = rpc.call("getblock", json!([hash, 0]))?;
            Ok(hex.as_str().map_or(0, |h| h.len() as u64 / 2))
        }
    }
}

/// Latency of one method for one probe address.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub probe_txs: u64,
    pub method: String,
    pub result: Result<Percentiles, String>,
}

pub const METHODS: [&str; 5] = [
    "blockchain.scripthash.get_history",
    "blockchain.scripthash.get_balance",
    "blockchain.scripthash.listunspent",
    "blockchain.transaction.get",
    "blockchain.transaction.get_merkle",
];

/// `samples` calls of each method for each probe, one after the other on one connection, after
/// one call that is not counted. Addresses with more than 20,000 transactions get a fifth of the
/// samples (each answer is megabytes), and sampling one method for one address stops after 10 s
/// (at least 3 samples): the count is in the results. The time is from writing the request to having read the
/// whole answer line; the answer is parsed and checked after the clock stops, so that the
/// client's JSON parsing is not counted as the server's time.
pub fn latencies(addr: &str, probes: &[Probe], samples: usize) -> Result<Vec<Latency>> {
    let mut out = Vec::new();
    for probe in probes {
        let mut client = RawClient::connect(addr)?;
        // Wallets subscribe to an address before asking about it (electrs serves unsubscribed
        // addresses by a slow path, and says so in its log).
        client.call("blockchain.scripthash.subscribe", json!([probe.scripthash]))?;
        let history = client.call(METHODS[0], json!([probe.scripthash])).map(|(_, v)| v);
        // A transaction of the address, from the middle of its history, for the two tx methods.
        let tx = history.as_ref().ok().and_then(|h| h.as_array()).and_then(|items| {
            let confirmed: Vec<&Value> = items.iter().filter(|i| i["height"].as_i64().unwrap_or(0) > 0).collect();
            confirmed.get(confirmed.len() / 2).map(|i| (i["tx_hash"].clone(), i["height"].clone()))
        });
        let n = if probe.txs > 20_000 { (samples / 5).max(5) } else { samples };
        for method in METHODS {
            let params = match (method, &tx) {
                ("blockchain.transaction.get", Some((txid, _))) => json!([txid]),
                ("blockchain.transaction.get_merkle", Some((txid, height))) => json!([txid, height]),
                ("blockchain.transaction.get" | "blockchain.transaction.get_merkle", None) => {
                    let why = match &history {
                        Err(e) => format!("no history to take a transaction from: {e:#}"),
                        Ok(_) => "no confirmed transaction in the history".to_string(),
                    };
                    out.push(Latency { probe_txs: probe.txs, method: method.into(), result: Err(why) });
                    continue;
                }
                _ => json!([probe.scripthash]),
            };
            let result = (|| -> Result<Percentiles> {
                client.call(method, params.clone())?;
                let mut times = Vec::with_capacity(n);
                let started = Instant::now();
                // At least 3 samples; past 10 s for one method and address, no more.
                while times.len() < n && (times.len() < 3 || started.elapsed() < SAMPLING_BUDGET) {
                    times.push(client.call(method, params.clone())?.0);
                }
                Ok(percentiles(times))
            })()
            .map_err(|e| format!("{e:#}"));
            if result.is_err() {
                // The connection may be closed after an error: start again for the next method.
                client = RawClient::connect(addr)?;
                client.call("blockchain.scripthash.subscribe", json!([probe.scripthash]))?;
            }
            out.push(Latency { probe_txs: probe.txs, method: method.into(), result });
        }
    }
    Ok(out)
}

/// A session that times each request from writing it to having its whole answer line.
///
/// The answer is read into a buffer kept from one request to the next, in reads of up to
/// [`READ_CHUNK`]: a 16 MB history read line by line into a new string (8 KiB reads, the string
/// doubling as it grows, each doubling a copy into pages never touched before) cost the client
/// about as long as the server took to answer, and was counted as the server's time.
struct RawClient {
    stream: TcpStream,
    /// Bytes read and not yet taken: `buf[..filled]`.
    buf: Vec<u8>,
    filled: usize,
    next_id: u64,
}

/// The most one read asks for.
const READ_CHUNK: usize = 1 << 20;

impl RawClient {
    fn connect(addr: &str) -> Result<RawClient> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        stream.set_nodelay(true)?;
        let mut c = RawClient { stream, buf: vec![0; READ_CHUNK], filled: 0, next_id: 0 };
        c.call("server.version", json!(["ferrum-bench", VERSIONS]))?;
        Ok(c)
    }

    /// Reads up to the next newline; returns the line's length (the line is `buf[..len]`, to
    /// be taken with [`RawClient::consume`]).
    fn read_line(&mut self) -> Result<usize> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..self.filled].iter().position(|&b| b == b'\n') {
                return Ok(scanned + i);
            }
            scanned = self.filled;
            if self.buf.len() - self.filled < READ_CHUNK {
                self.buf.resize((self.buf.len() * 2).max(self.filled + READ_CHUNK), 0);
            }
            let n = self.stream.read(&mut self.buf[self.filled..self.filled + READ_CHUNK])?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            self.filled += n;
        }
    }

    /// Drops the line of `len` bytes (and its newline) from the buffer.
    fn consume(&mut self, len: usize) {
        self.buf.copy_within(len + 1..self.filled, 0);
        self.filled -= len + 1;
    }

    /// The time to the answer, and its result (an error answer is an error).
    fn call(&mut self, method: &str, params: Value) -> Result<(Duration, Value)> {
        self.next_id += 1;
        let id = self.next_id;
        let line = format!("{}\n", json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let started = Instant::now();
        self.stream.write_all(line.as_bytes())?;
        loop {
            let len = self.read_line().with_context(|| format!("reading the answer to {method}"))?;
            let took = started.elapsed();
            let parsed: Result<Value, _> = serde_json::from_slice(&self.buf[..len]);
            self.consume(len);
            let mut v = parsed.with_context(|| format!("{method}: bad answer"))?;
            // A notification names a method and has no id; any other line answers us.
            if v.get("method").is_some() && v.get("id").is_none_or(Value::is_null) {
                continue;
            }
            if v["id"].as_u64() != Some(id) {
                bail!("{method}: answer to another request: {}", v["id"]);
            }
            if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
                bail!("{method}: {e}");
            }
            return Ok((took, v["result"].take()));
        }
    }
}

/// Wallet sync: `clients` wallets at once, each subscribing its addresses and fetching the
/// history of every address that has one, pipelined as Electrum does.
#[derive(Clone, Debug, Serialize)]
pub struct WalletSync {
    pub clients: usize,
    pub addresses_per_client: usize,
    pub histories_fetched: usize,
    pub seconds: f64,
    pub addresses_per_s: f64,
    /// Each client's time from connecting to having every history.
    pub per_client: Percentiles,
}

pub fn wallet_sync(addr: &str, wallets: &[Vec<String>], clients: usize) -> Result<WalletSync> {
    if wallets.is_empty() {
        bail!("the chain has no wallets to sync");
    }
    let started = Instant::now();
    let results: Vec<Result<(Duration, usize)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|i| {
                let wallet = &wallets[i % wallets.len()];
                s.spawn(move || sync_wallet(addr, wallet))
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err(anyhow!("wallet thread panicked")))).collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut times = Vec::new();
    let mut histories = 0;
    for r in results {
        let (t, h) = r?;
        times.push(t);
        histories += h;
    }
    let addresses = wallets.iter().cycle().take(clients).map(Vec::len).sum::<usize>();
    Ok(WalletSync {
        clients,
        addresses_per_client: addresses / clients,
        histories_fetched: histories,
        seconds: round(seconds, 3),
        addresses_per_s: round(addresses as f64 / seconds, 0),
        per_client: percentiles(times),
    })
}

/// One wallet: `server.version`, every `scripthash.subscribe` written at once, then
/// `get_history` for each address whose status is not null, likewise. Returns the time taken
/// and how many histories were fetched.
fn sync_wallet(addr: &str, scripthashes: &[String]) -> Result<(Duration, usize)> {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let version = json!({"id": 0, "method": "server.version", "params": ["ferrum-bench", VERSIONS]});
    writer.write_all(format!("{version}\n").as_bytes())?;
    read_answers(&mut reader, 1)?;
    let statuses = pipeline(&mut writer, &mut reader, "blockchain.scripthash.subscribe", scripthashes)?;
    let used: Vec<String> =
        scripthashes.iter().zip(&statuses).filter(|(_, s)| !s.is_null()).map(|(h, _)| h.clone()).collect();
    let histories = pipeline(&mut writer, &mut reader, "blockchain.scripthash.get_history", &used)?;
    if histories.iter().any(|h| !h.is_array()) {
        bail!("a history was not a list");
    }
    Ok((started.elapsed(), used.len()))
}

/// Sends one request per scripthash without waiting, then reads every answer; returns the
/// results in request order.
fn pipeline(
    writer: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    method: &str,
    scripthashes: &[String],
) -> Result<Vec<Value>> {
    let mut text = String::new();
    for (i, h) in scripthashes.iter().enumerate() {
        text.push_str(&json!({"id": i + 1, "method": method, "params": [h]}).to_string());
        text.push('\n');
    }
    // Written from another thread so that a server answering before it has read everything
    // cannot deadlock us both on full socket buffers.
    let mut w = writer.try_clone()?;
    let sender = std::thread::spawn(move || w.write_all(text.as_bytes()));
    let answers = read_answers(reader, scripthashes.len())?;
    sender.join().map_err(|_| anyhow!("writer panicked"))??;
    let mut results = vec![Value::Null; scripthashes.len()];
    for a in answers {
        let id = a["id"].as_u64().ok_or_else(|| anyhow!("answer without id: {a}"))? as usize;
        if let Some(e) = a.get("error").filter(|e| !e.is_null()) {
            bail!("{method}: {e}");
        }
        if id == 0 || id > results.len() {
            bail!("answer with unknown id {id}");
        }
        results[id - 1] = a["result"].clone();
    }
    Ok(results)
}

/// Reads `n` answers (lines with an id), skipping notifications.
fn read_answers(reader: &mut BufReader<TcpStream>, n: usize) -> Result<Vec<Value>> {
    let mut answers = Vec::with_capacity(n);
    let mut line = String::new();
    while answers.len() < n {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("the server closed the connection after {} of {n} answers", answers.len());
        }
        let v: Value = serde_json::from_str(&line).with_context(|| format!("bad answer {line:?}"))?;
        if v.get("id").is_some_and(|id| !id.is_null()) {
            answers.push(v);
        }
    }
    Ok(answers)
}

/// From `submitblock` returning to the `scripthash.subscribe` notification for the script the
/// block pays, `rounds` times, each with a new script.
pub fn notification_latency(addr: &str, node: &Node, rounds: usize, first_script: u32) -> Result<Percentiles> {
    let mut times = Vec::new();
    for i in 0..rounds {
        // Blocks come one at a time, not back to back.
        std::thread::sleep(Duration::from_millis(500));
        let script = testkit::keys::burn_address_n(first_script + i as u32).script_pubkey();
        let mut client = Client::connect_with(addr, json!(VERSIONS))?;
        client.call("blockchain.scripthash.subscribe", json!([testkit::scripthash(&script)]))?;
        let block = crate::chaingen::block_on_tip(node, script)?;
        let started = Instant::now();
        crate::chaingen::submit(node, &block)?;
        client.notification("blockchain.scripthash.subscribe", Duration::from_secs(60))?;
        times.push(started.elapsed());
    }
    Ok(percentiles(times))
}

pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}
