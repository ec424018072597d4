//! `bench scale`: Ferrum's index alone on a synthetic mainnet-shaped chain, to a hundred million
//! transactions or more, and how every cost grows on the way.
//!
//! The generator runs as a child process (`bench synth`) writing blocks to a pipe; this process
//! runs Ferrum's indexer on them through [`SynthSource`], with Ferrum's default settings or the
//! `--cache-mb` it is given, so its CPU and memory are the indexer's (and the pipe's small
//! buffer). Every `--every` transactions (1M by default) it records: indexing rate over the
//! interval, CPU of the indexer and of the generator, memory (RSS, and its anonymous part, which
//! leaves out file pages such as the txid file's mapping: the figure the 1 GB target is about),
//! the index on disk (RocksDB by level and table, the txid file, pending compaction), bytes
//! written to disk so far against the index's size (write amplification), and the latency of a
//! full history read of fixed addresses. At the end it waits for the compaction that follows
//! initial sync, counting it in the sync time, and records the peak disk use during it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use ferrum::types::ScriptHash;
use ferrum::{
    share_cache_mb, Index, IndexConfig, Indexer, Network, PrevoutMode, Query, ScriptCacheConfig, StopSignal, Store,
    StoreConfig,
};
use serde::Serialize;

pub mod report;

use crate::measure::round;
use crate::servers::{dir_bytes, proc_field, process_usage, status_bytes};
use crate::synth::source::SynthSource;
use crate::synth::{Shape, Synth};

pub struct Options {
    pub seed: u64,
    /// Stop once the chain holds this many transactions.
    pub to: u64,
    /// Record a sample every this many transactions.
    pub every: u64,
    pub mode: PrevoutMode,
    /// Where the index is made (removed first; kept after the run).
    pub dir: PathBuf,
    /// The server's `--cache-mb`, shared as the server shares it.
    pub cache_mb: usize,
}

/// One point of the curves.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub txs: u64,
    pub height: u32,
    pub seconds: f64,
    /// Transactions a second since the previous sample.
    pub tx_per_sec: f64,
    /// CPU seconds since start: the indexer's process, and the generator's.
    pub cpu_seconds: f64,
    pub generator_cpu_seconds: f64,
    pub rss_bytes: u64,
    /// RSS without file pages (heap, RocksDB's caches and memtables).
    pub rss_anon_bytes: u64,
    pub peak_rss_bytes: u64,
    /// The index directory on disk, and its parts.
    pub disk_bytes: u64,
    pub sst_bytes: u64,
    pub txids_bytes: u64,
    pub levels: Vec<ferrum::Level>,
    pub tables: Vec<(&'static str, u64)>,
    pub pending_compaction_bytes: u64,
    /// RocksDB's own memory: memtables, block cache (and its pinned part), table readers.
    pub memtable_bytes: u64,
    pub block_cache_bytes: u64,
    pub block_cache_pinned_bytes: u64,
    pub table_readers_bytes: u64,
    /// Bytes this process has had written to disk, and that over the index's size.
    pub written_bytes: u64,
    pub write_amplification: f64,
    /// Milliseconds to read each probe address's whole history and balance (median of 3), and
    /// its transactions.
    pub probes: Vec<(u64, f64)>,
}

#[derive(Debug, Serialize)]
pub struct Run {
    pub seed: u64,
    pub mode: &'static str,
    pub cache_mb: usize,
    pub machine: String,
    pub samples: Vec<Sample>,
    /// Sync to the last block, and the compaction after it.
    pub index_seconds: f64,
    pub compaction_seconds: f64,
    pub peak_disk_bytes: u64,
    /// The highest RSS without file pages seen, sampled every 200 ms through sync and
    /// compaction (the kernel keeps no peak of it).
    pub peak_rss_anon_bytes: u64,
    /// After compaction.
    pub last: Sample,
}

/// Kills the generator if the run ends early.
struct Generator(Child);

impl Drop for Generator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(o: &Options) -> Result<Run> {
    if o.every == 0 || o.to == 0 {
        bail!("--to and --every must be positive");
    }
    let _ = std::fs::remove_dir_all(&o.dir);
    std::fs::create_dir_all(&o.dir).with_context(|| format!("creating {}", o.dir.display()))?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["synth", "--seed", &o.seed.to_string(), "--to", &o.to.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the block generator")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("the generator has no stdout"))?;
    let generator = Generator(child);
    let source = SynthSource::spawn(stdout, 64 << 20, o.mode == PrevoutMode::Spenttxouts);

    let (mut store_config, mut index_config) = (StoreConfig::default(), IndexConfig::default());
    share_cache_mb(o.cache_mb, &mut store_config, &mut index_config);
    let store = Store::open(&o.dir, Network::Regtest, &store_config)?;
    store.set_mode(o.mode)?;
    let index = Arc::new(Index::new(store)?);
    let probes: Vec<ScriptHash> = Synth::new(o.seed, Shape::mainnet())
        .probe_scripts()
        .iter()
        .map(|s| ScriptHash::of_script(s.as_bytes()))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut indexer = Indexer::new(index.clone(), source.clone(), o.mode, index_config, StopSignal::default());

    // `--mode both` runs the modes one after the other in this process: each run's CPU time,
    // bytes written and peak RSS count from its own start.
    let base = Baseline::now()?;
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let peak_disk = Arc::new(AtomicU64::new(0));
    let peak_anon = Arc::new(AtomicU64::new(0));
    let me = std::process::id();
    let sampler = {
        let (index, done, peak_disk, dir) = (index.clone(), done.clone(), peak_disk.clone(), o.dir.clone());
        let peak_anon = peak_anon.clone();
        let (every, generator_pid, probes) = (o.every, generator.0.id(), probes.clone());
        std::thread::spawn(move || {
            let mut samples: Vec<Sample> = Vec::new();
            let mut next = every;
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                let tip = index.tip();
                if tip.tx_count >= next {
                    // Reading the busiest address whole takes a second at 50M transactions, on
                    // the cores the indexer needs: every tenth sample only.
                    let probe = samples.len() % PROBE_EVERY == PROBE_EVERY - 1;
                    let probes = if probe { probes.as_slice() } else { &[] };
                    let s = sample(&index, &dir, &base, started, generator_pid, probes, samples.last());
                    eprintln!(
                        "scale: {} transactions, {:.0} tx/s, RSS {} MiB (anon {} MiB), disk {} MiB, write amp {:.1}",
                        s.txs,
                        s.tx_per_sec,
                        s.rss_bytes >> 20,
                        s.rss_anon_bytes >> 20,
                        s.disk_bytes >> 20,
                        s.write_amplification
                    );
                    samples.push(s);
                    next = (tip.tx_count / every + 1) * every;
                }
                peak_disk.fetch_max(dir_bytes(&dir), Ordering::SeqCst);
                peak_anon.fetch_max(status_bytes(me, "RssAnon"), Ordering::SeqCst);
            }
            samples
        })
    };
    runtime.block_on(async {
        loop {
            indexer.sync().await?;
            if let Some((height, _)) = source.ended() {
                if index.tip().height == Some(height) {
                    return Ok::<_, anyhow::Error>(());
                }
            }
        }
    })?;
    let index_seconds = started.elapsed().as_secs_f64();
    while index.compacting() {
        peak_disk.fetch_max(dir_bytes(&o.dir), Ordering::SeqCst);
        peak_anon.fetch_max(status_bytes(me, "RssAnon"), Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
    }
    let compaction_seconds = started.elapsed().as_secs_f64() - index_seconds;
    done.store(true, Ordering::SeqCst);
    let samples = sampler.join().map_err(|_| anyhow!("the sampler panicked"))?;
    let last = sample(&index, &o.dir, &base, started, generator.0.id(), &probes, samples.last());
    drop(generator);
    Ok(Run {
        seed: o.seed,
        mode: o.mode.name(),
        cache_mb: o.cache_mb,
        machine: crate::machine(),
        samples,
        index_seconds: round(index_seconds, 1),
        compaction_seconds: round(compaction_seconds, 1),
        peak_disk_bytes: peak_disk.load(Ordering::SeqCst).max(last.disk_bytes),
        peak_rss_anon_bytes: peak_anon.load(Ordering::SeqCst).max(last.rss_anon_bytes),
        last,
    })
}

/// What this process had used before a run: its CPU time and bytes written. Its peak RSS is
/// reset (`/proc/self/clear_refs`), so the kernel's peak is the run's.
#[derive(Clone, Copy)]
struct Baseline {
    cpu_seconds: f64,
    written_bytes: u64,
}

impl Baseline {
    fn now() -> Result<Baseline> {
        std::fs::write("/proc/self/clear_refs", "5").context("resetting the peak RSS")?;
        let (cpu_seconds, _) = process_usage(std::process::id())?;
        Ok(Baseline { cpu_seconds, written_bytes: proc_field("/proc/self/io", "write_bytes") })
    }
}

fn sample(
    index: &Arc<Index>,
    dir: &Path,
    base: &Baseline,
    started: Instant,
    generator: u32,
    probes: &[ScriptHash],
    prev: Option<&Sample>,
) -> Sample {
    let tip = index.tip();
    let seconds = started.elapsed().as_secs_f64();
    let me = std::process::id();
    let (cpu, peak_rss) = process_usage(me).unwrap_or_default();
    let cpu = cpu - base.cpu_seconds;
    let (generator_cpu, _) = process_usage(generator).unwrap_or_default();
    let usage = index.store().disk_usage().unwrap_or_default();
    let disk = dir_bytes(dir);
    // Bytes this process had written to storage in this run.
    let written = proc_field("/proc/self/io", "write_bytes").saturating_sub(base.written_bytes);
    let (prev_txs, prev_secs) = prev.map_or((0, 0.0), |p| (p.txs, p.seconds));
    Sample {
        txs: tip.tx_count,
        height: tip.height.unwrap_or(0),
        seconds: round(seconds, 1),
        tx_per_sec: round((tip.tx_count - prev_txs) as f64 / (seconds - prev_secs).max(1e-3), 0),
        cpu_seconds: round(cpu, 1),
        generator_cpu_seconds: round(generator_cpu, 1),
        rss_bytes: status_bytes(me, "VmRSS"),
        rss_anon_bytes: status_bytes(me, "RssAnon"),
        peak_rss_bytes: peak_rss,
        disk_bytes: disk,
        sst_bytes: usage.sst_bytes(),
        txids_bytes: usage.txids_bytes,
        write_amplification: round(written as f64 / disk.max(1) as f64, 2),
        levels: usage.levels,
        tables: usage.tables,
        pending_compaction_bytes: usage.pending_compaction_bytes,
        memtable_bytes: usage.memtable_bytes,
        block_cache_bytes: usage.block_cache_bytes,
        block_cache_pinned_bytes: usage.block_cache_pinned_bytes,
        table_readers_bytes: usage.table_readers_bytes,
        written_bytes: written,
        probes: probe_latencies(index, probes),
    }
}

/// Samples whose probes are read: one in this many, and the last.
const PROBE_EVERY: usize = 10;

/// For each probe: its transactions, and the median of three reads of its whole history,
/// unspent outputs and balance, in milliseconds. Without the cache of busy scripts' answers:
/// these are the reads the layout costs.
fn probe_latencies(index: &Arc<Index>, probes: &[ScriptHash]) -> Vec<(u64, f64)> {
    let query = Query::with_cache(index.clone(), ScriptCacheConfig { bytes: 0, min_rows: 0 });
    probes
        .iter()
        .map(|sh| {
            let mut times = Vec::new();
            let mut txs = 0;
            for _ in 0..3 {
                let t = Instant::now();
                if let Ok(summary) = query.script(sh, &HashMap::new()) {
                    txs = summary.history.len() as u64;
                }
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            (txs, round(times[1], 2))
        })
        .collect()
}
