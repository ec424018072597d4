//! `bench`: Ferrum side by side with ElectrumX and electrs, on one node and one generated chain,
//! in one run.
//!
//! ```text
//! bench [--preset tiny|small|large] [--seed N] [--servers LIST] [--samples N] [--clients N]
//!       [--rounds N] [--results DIR] [--markdown FILE] [--no-chart] [--chain-only] [--report-only]
//! ```
//!
//! - The chain ([`chaingen`]) is built on the first run of a preset and seed, and cached.
//! - Each run works on a copy of the cached node, with `-rest`, `-txindex` and
//!   `-txospenderindex` (the last two for ElectrumX).
//! - It measures the node's own block-serving ceiling, then for each server in turn, alone on
//!   the machine: initial sync (wall and CPU time, peak RSS, index size), query latency for the
//!   chain's probe addresses, wallet-sync throughput, and new-block notification latency.
//! - `--servers` is a comma-separated list of `ferrum`, `ferrum-utxo`, `ferrum-core29` (Ferrum
//!   behind a front that answers as Bitcoin Core 29 does, BTCPay's version), `electrumx`,
//!   `electrs-0.12.0`, `electrs-0.11.1` (default: all), and `baseline`, `baseline-utxo`,
//!   `baseline-core29`: the Ferrum kinds run with another build, `$FERRUM_BASELINE_EXE`, to
//!   compare two builds in one run. Executables come from `$FERRUM_EXE` or
//!   `target/release/ferrum`, `$ELECTRUMX_EXE` or `scripts/electrumx.sh`, and
//!   `$ELECTRS_EXE_0_12_0` or `scripts/electrs.sh 0.12.0` (likewise for 0.11.1).
//! - Results go to `<results>/<preset>.json` and `<results>/<preset>.png` (unless `--no-chart`),
//!   and `BENCHMARKS.md` (or `--markdown`) is written from every preset's JSON in the results
//!   directory.

mod chaingen;
mod measure;
mod report;
mod scale;
mod servers;
mod synth;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chaingen::{Manifest, Preset};
use serde::Serialize;
use serde_json::json;
use testkit::Node;

use measure::{Ceiling, Latency, Percentiles, WalletSync};
use servers::{Kind, Server};

/// The server's allocator, so that `bench scale` measures the indexer as the server runs it.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Options {
    preset: Preset,
    seed: u64,
    servers: Vec<String>,
    samples: usize,
    clients: usize,
    rounds: usize,
    results: PathBuf,
    markdown: PathBuf,
    chart: bool,
    chain_only: bool,
    report_only: bool,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const ALL_SERVERS: [&str; 6] =
    ["ferrum", "ferrum-utxo", "ferrum-core29", "electrumx", "electrs-0.12.0", "electrs-0.11.1"];

/// The Ferrum kinds again with the binary of `$FERRUM_BASELINE_EXE`, to compare two builds in
/// one run; never in the default list.
const BASELINE_SERVERS: [&str; 3] = ["baseline", "baseline-utxo", "baseline-core29"];

fn parse_options() -> Result<Options> {
    let mut o = Options {
        preset: Preset::small(),
        seed: 1,
        servers: ALL_SERVERS.map(String::from).to_vec(),
        samples: 20,
        clients: 8,
        rounds: 5,
        results: root().join("bench/results"),
        markdown: root().join("BENCHMARKS.md"),
        chart: true,
        chain_only: false,
        report_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--preset" => o.preset = Preset::by_name(&value()?)?,
            "--seed" => o.seed = value()?.parse().context("--seed")?,
            "--servers" => o.servers = value()?.split(',').map(|s| s.trim().to_string()).collect(),
            "--samples" => o.samples = value()?.parse().context("--samples")?,
            "--clients" => o.clients = value()?.parse().context("--clients")?,
            "--rounds" => o.rounds = value()?.parse().context("--rounds")?,
            "--results" => o.results = PathBuf::from(value()?),
            "--markdown" => o.markdown = PathBuf::from(value()?),
            "--no-chart" => o.chart = false,
            "--chain-only" => o.chain_only = true,
            "--report-only" => o.report_only = true,
            other => bail!("unknown argument {other}; see bench/README.md"),
        }
    }
    let known = |s: &str| ALL_SERVERS.contains(&s) || BASELINE_SERVERS.contains(&s);
    if let Some(bad) = o.servers.iter().find(|s| !known(s)) {
        bail!("unknown server {bad:?}: one of {}, {}", ALL_SERVERS.join(", "), BASELINE_SERVERS.join(", "));
    }
    if o.samples == 0 || o.clients == 0 || o.rounds == 0 {
        bail!("--samples, --clients and --rounds must be positive");
    }
    Ok(o)
}

/// This build's Ferrum (`$FERRUM_EXE`, else `target/release/ferrum`), or the baseline's
/// (`$FERRUM_BASELINE_EXE`).
fn ferrum_exe(baseline: bool) -> Result<PathBuf> {
    let exe = if baseline {
        std::env::var_os("FERRUM_BASELINE_EXE")
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("the baseline servers run $FERRUM_BASELINE_EXE, which is not set"))?
    } else {
        std::env::var_os("FERRUM_EXE").map_or_else(|| root().join("target/release/ferrum"), PathBuf::from)
    };
    if !exe.is_file() {
        let var = if baseline { "FERRUM_BASELINE_EXE" } else { "FERRUM_EXE" };
        bail!("{} does not exist: run `cargo build --release -p ferrum` or set {var}", exe.display());
    }
    Ok(exe)
}

fn kind_of(name: &str) -> Result<Kind> {
    // `baseline-X` is `ferrum-X` with the baseline's binary.
    let ferrum =
        name.strip_prefix("ferrum").map(|v| (v, false)).or_else(|| name.strip_prefix("baseline").map(|v| (v, true)));
    if let Some((variant, baseline)) = ferrum {
        let (mode, core29) = match variant {
            "" => ("spenttxouts", false),
            "-utxo" => ("utxo", false),
            // What BTCPay users get: the mode Ferrum chooses behind Core 29.
            "-core29" => ("auto", true),
            other => bail!("unknown Ferrum variant {other:?} in {name:?}"),
        };
        return Ok(Kind::Ferrum { exe: ferrum_exe(baseline)?, mode: mode.into(), core29, baseline });
    }
    Ok(match name {
        "electrumx" => {
            testkit::process::electrumx::electrumx_exe()?;
            Kind::ElectrumX
        }
        other => {
            let version = other.trim_start_matches("electrs-").to_string();
            let var = format!("ELECTRS_EXE_{}", version.replace('.', "_"));
            let exe = match std::env::var_os(&var) {
                Some(p) => PathBuf::from(p),
                None => script_output(&root().join("scripts/electrs.sh"), &[&version])?,
            };
            Kind::Electrs { exe, version }
        }
    })
}

/// Runs an install script and takes the path it prints.
fn script_output(script: &Path, args: &[&str]) -> Result<PathBuf> {
    let out = Command::new(script).args(args).output().with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed:\n{}", script.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// One server's figures.
#[derive(Debug, Serialize)]
pub struct ServerRun {
    pub server: String,
    pub version: String,
    pub sync_seconds: f64,
    /// Ferrum: from serving the tip to the end of the compaction that follows initial sync
    /// (the queries are measured after it).
    pub compaction_seconds: Option<f64>,
    pub sync_cpu_seconds: f64,
    pub sync_peak_rss_mb: f64,
    /// The RSS without file pages, its peak sampled every 200 ms from the start to the end of
    /// the compaction after initial sync (the memory target's measure).
    pub sync_peak_rss_anon_mib: f64,
    pub txs_per_s: f64,
    pub block_mb_per_s: f64,
    pub index_bytes: u64,
    /// The node-side indexes the server needs (`txindex`, `txospenderindex`).
    pub node_index_bytes: u64,
    pub index_bytes_per_tx: f64,
    pub latency: Vec<Latency>,
    pub wallet_sync: Option<Result<WalletSync, String>>,
    pub notification: Option<Result<Percentiles, String>>,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Run {
    pub date: String,
    pub machine: String,
    pub bitcoind: String,
    pub chain: Manifest,
    pub node_blocks_bytes: u64,
    pub node_indexes: Vec<(String, u64)>,
    pub ceiling: Vec<Ceiling>,
    pub servers: Vec<ServerRun>,
    pub samples: usize,
    pub clients: usize,
    pub rounds: usize,
    pub seconds: f64,
}

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("synth") => return synth_command(),
        Some("scale") => return scale_command(),
        _ => {}
    }
    let o = parse_options()?;
    if o.report_only {
        return report::write_markdown(&o.results, &o.markdown);
    }
    let started = Instant::now();
    let kinds: Vec<Kind> = o.servers.iter().map(|s| kind_of(s)).collect::<Result<_>>()?;
    eprintln!("bench: chain {} seed {}", o.preset.name, o.seed);
    let chain = chaingen::cached(&o.preset, o.seed)?;
    let m = &chain.manifest;
    eprintln!(
        "bench: chain at {}: height {}, {} transactions, {:.1} MB of blocks",
        chain.dir.display(),
        m.height,
        m.txs,
        m.block_bytes as f64 / 1e6
    );
    if o.chain_only {
        println!("{}", serde_json::to_string_pretty(m)?);
        return Ok(());
    }

    // A copy of the cached node: the run mines blocks, and must leave the cache as it was.
    let work = tempfile::Builder::new().prefix("ferrum-bench-node-").tempdir()?;
    let status = Command::new("cp").arg("-a").arg(chain.datadir()).arg(work.path().join("node")).status()?;
    if !status.success() {
        bail!("copying the cached node failed");
    }
    let node = Node::start_in(
        &work.path().join("node"),
        chaingen::node_options(true, true, &["-txospenderindex=1", "-rpcthreads=16", "-rpcworkqueue=256"]),
    )?;
    chaingen::wait_indexes_synced(&node)?;
    let height = node.height()?;
    if height != m.height {
        bail!("the cached node is at height {height}, its manifest says {}", m.height);
    }
    let regtest = work.path().join("node/regtest");
    let node_indexes: Vec<(String, u64)> = ["txindex", "txospenderindex"]
        .iter()
        .map(|i| (i.to_string(), servers::dir_bytes(&regtest.join("indexes").join(i))))
        .collect();
    let node_blocks_bytes = servers::dir_bytes(&regtest.join("blocks"));

    eprintln!("bench: the node's block-serving ceiling");
    let ceiling = measure::node_ceiling(&node, 4, m.block_bytes)?;
    for c in &ceiling {
        eprintln!(
            "bench:   {}: {:.2} s, {} blocks/s, {} MB/s of blocks",
            c.method, c.seconds, c.blocks_per_s, c.block_mb_per_s
        );
    }

    let mut runs = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        eprintln!("bench: {}: initial sync", kind.label());
        let t0 = Instant::now();
        let mut server = Server::start(kind, &node)?;
        let anon = servers::PeakSampler::start(server.pid()?, "RssAnon");
        server.wait_height(height, Duration::from_secs(6 * 3600))?;
        let sync = t0.elapsed().as_secs_f64();
        let (cpu, rss) = servers::process_usage(server.pid()?)?;
        eprintln!("bench:   {sync:.2} s, {cpu:.2} s CPU, {:.0} MB peak RSS", rss as f64 / 1e6);
        let compaction = server.wait_compaction(Duration::from_secs(6 * 3600))?;
        if let Some(c) = compaction {
            eprintln!("bench:   then {c:.2} s compacting");
        }
        let peak_anon = anon.stop();
        eprintln!("bench:   {:.0} MiB peak RSS without file pages", peak_anon as f64 / 1048576.0);
        let index_bytes = server.index_bytes();
        let full = !kind.sync_only();
        let latency = if full {
            eprintln!("bench: {}: query latency", kind.label());
            measure::latencies(&server.addr, &m.probes, o.samples)?
        } else {
            Vec::new()
        };
        let wallet_sync = full.then(|| {
            eprintln!("bench: {}: wallet sync, {} clients", kind.label(), o.clients);
            measure::wallet_sync(&server.addr, &m.wallets, o.clients).map_err(|e| format!("{e:#}"))
        });
        let notification = full.then(|| {
            eprintln!("bench: {}: notification latency, {} blocks", kind.label(), o.rounds);
            let first_script = 100_000 + 1_000 * i as u32;
            measure::notification_latency(&server.addr, &node, o.rounds, first_script).map_err(|e| format!("{e:#}"))
        });
        server.stop();
        // Back to the cached chain's tip, so that every server syncs the same chain.
        if node.height()? > height {
            let first = node.block_hash(height + 1)?;
            node.call("invalidateblock", json!([first.to_string()]))?;
        }
        let node_index_bytes: u64 =
            node_indexes.iter().filter(|(n, _)| kind.node_indexes().contains(&n.as_str())).map(|(_, b)| b).sum();
        runs.push(ServerRun {
            server: kind.label(),
            version: version_of(kind),
            sync_seconds: measure::round(sync, 2),
            compaction_seconds: compaction.map(|c| measure::round(c, 2)),
            sync_cpu_seconds: measure::round(cpu, 2),
            sync_peak_rss_mb: measure::round(rss as f64 / 1e6, 0),
            sync_peak_rss_anon_mib: measure::round(peak_anon as f64 / 1048576.0, 0),
            txs_per_s: measure::round(m.txs as f64 / sync, 0),
            block_mb_per_s: measure::round(m.block_bytes as f64 / 1e6 / sync, 2),
            index_bytes,
            node_index_bytes,
            index_bytes_per_tx: measure::round(index_bytes as f64 / m.txs as f64, 1),
            latency,
            wallet_sync,
            notification,
        });
    }

    let run = Run {
        date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        machine: machine(),
        bitcoind: command_line(&testkit::bitcoind_exe()?.display().to_string(), &["--version"]),
        // The wallets' addresses are in the cache's manifest; the results keep only the figures.
        chain: Manifest { wallets: Vec::new(), ..m.clone() },
        node_blocks_bytes,
        node_indexes,
        ceiling,
        servers: runs,
        samples: o.samples,
        clients: o.clients,
        rounds: o.rounds,
        seconds: measure::round(started.elapsed().as_secs_f64(), 0),
    };
    std::fs::create_dir_all(&o.results)?;
    let json_path = o.results.join(format!("{}.json", o.preset.name));
    std::fs::write(&json_path, serde_json::to_string_pretty(&run)?)?;
    eprintln!("bench: results in {}", json_path.display());
    if o.chart {
        report::chart(&json_path, &o.results.join(format!("{}.png", o.preset.name)))?;
    }
    report::write_markdown(&o.results, &o.markdown)?;
    eprintln!("bench: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn version_of(kind: &Kind) -> String {
    match kind {
        // The baseline's path tells the two builds apart when their versions are the same.
        Kind::Ferrum { exe, baseline: true, .. } => {
            format!("{} ({})", command_line(&exe.display().to_string(), &["--version"]), exe.display())
        }
        Kind::Ferrum { exe, .. } => command_line(&exe.display().to_string(), &["--version"]),
        Kind::ElectrumX => "ElectrumX 2.0.0 (PyPI e-x, LevelDB)".into(),
        Kind::Electrs { exe, version } => {
            let v = command_line(&exe.display().to_string(), &["--version"]);
            if v.is_empty() {
                format!("electrs {version}")
            } else {
                v
            }
        }
    }
}

/// The first line a command prints, or an empty string.
fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model =
        cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).map(|v| v.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    format!("{cores} cores ({}), {:.0} GiB RAM", model.unwrap_or("unknown CPU"), mem_kib as f64 / 1048576.0)
}

/// `bench synth --seed N --to TXS`: the scale benchmark's block generator, writing to stdout.
fn synth_command() -> Result<()> {
    let (mut seed, mut to) = (1, 0);
    let mut args = std::env::args().skip(2);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seed" => seed = value.parse().context("--seed")?,
            "--to" => to = parse_count(&value).context("--to")?,
            other => bail!("unknown argument {other}"),
        }
    }
    synth::stream::generate(seed, to)
}

/// `bench scale [--to N] [--every N] [--mode spenttxouts|utxo|both] [--seed N] [--dir DIR]
/// [--cache-mb MB] [--results DIR] [--markdown FILE] [--no-chart]`: the index alone on a
/// synthetic chain (`scale/`).
fn scale_command() -> Result<()> {
    let mut o = scale::Options {
        seed: 1,
        to: 100_000_000,
        every: 1_000_000,
        mode: ferrum::PrevoutMode::Spenttxouts,
        dir: chaingen::cache_root().join("scale-index"),
        cache_mb: ferrum::DEFAULT_CACHE_MB,
    };
    let mut modes = vec![ferrum::PrevoutMode::Spenttxouts, ferrum::PrevoutMode::Utxo];
    let mut results = root().join("bench/results");
    let mut markdown = root().join("BENCHMARKS.md");
    let mut chart = true;
    let mut args = std::env::args().skip(2);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--no-chart" => chart = false,
            "--seed" => o.seed = value()?.parse().context("--seed")?,
            "--to" => o.to = parse_count(&value()?).context("--to")?,
            "--every" => o.every = parse_count(&value()?).context("--every")?,
            "--dir" => o.dir = PathBuf::from(value()?),
            "--cache-mb" => o.cache_mb = value()?.parse().context("--cache-mb")?,
            "--results" => results = PathBuf::from(value()?),
            "--markdown" => markdown = PathBuf::from(value()?),
            "--mode" => {
                modes = match value()?.as_str() {
                    "spenttxouts" => vec![ferrum::PrevoutMode::Spenttxouts],
                    "utxo" => vec![ferrum::PrevoutMode::Utxo],
                    "both" => modes,
                    other => bail!("--mode {other}: spenttxouts, utxo or both"),
                }
            }
            other => bail!("unknown argument {other}; see bench/README.md"),
        }
    }
    let dir = results.join("scale");
    std::fs::create_dir_all(&dir)?;
    for mode in modes {
        o.mode = mode;
        eprintln!("scale: {} mode, to {} transactions, index in {}", mode.name(), o.to, o.dir.display());
        let run = scale::run(&o)?;
        let json = dir.join(format!("{}.json", mode.name()));
        std::fs::write(&json, serde_json::to_vec_pretty(&run)?)?;
        if chart {
            report::chart(&json, &json.with_extension("png"))?;
        }
    }
    report::write_markdown(&results, &markdown)
}

/// A count with an optional `k`, `M` or `G` suffix: `250k`, `10M`.
fn parse_count(text: &str) -> Result<u64> {
    let (digits, factor) = match text.chars().last() {
        Some('k') => (&text[..text.len() - 1], 1_000),
        Some('M') => (&text[..text.len() - 1], 1_000_000),
        Some('G') => (&text[..text.len() - 1], 1_000_000_000),
        _ => (text, 1),
    };
    Ok(digits.parse::<u64>().with_context(|| format!("{text:?} is not a count"))? * factor)
}
