//! Blocks over a pipe: the generator runs as a process of its own (`bench synth`), so the
//! indexer's process measures the indexer alone (its RSS, its CPU), and the two use both cores.
//!
//! A frame: height (u32), hash (32 bytes), transactions (u32), then the block and its spent
//! outputs, each as a u32 length and the bytes; little-endian. The stream ends when the pipe
//! closes after a whole frame.

use std::io::{self, BufWriter, Read, Write};

use anyhow::{Context, Result};
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

use super::{Frame, Shape, Synth};

/// Bigger than any block the generator makes, so a corrupt length is an error, not an allocation.
const MAX_PART: usize = 64 << 20;

pub fn write_frame(w: &mut impl Write, f: &Frame) -> io::Result<()> {
    w.write_all(&f.height.to_le_bytes())?;
    w.write_all(f.hash.as_byte_array())?;
    w.write_all(&f.txs.to_le_bytes())?;
    for part in [&f.block, &f.spent] {
        w.write_all(&(part.len() as u32).to_le_bytes())?;
        w.write_all(part)?;
    }
    Ok(())
}

/// The next frame, or `None` when the stream ended cleanly between frames.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 4];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let height = u32::from_le_bytes(head);
    let mut hash = [0u8; 32];
    r.read_exact(&mut hash)?;
    r.read_exact(&mut head)?;
    let txs = u32::from_le_bytes(head);
    let mut part = || -> io::Result<Vec<u8>> {
        r.read_exact(&mut head)?;
        let len = u32::from_le_bytes(head) as usize;
        if len > MAX_PART {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a frame part of {len} bytes")));
        }
        let mut bytes = vec![0u8; len];
        r.read_exact(&mut bytes)?;
        Ok(bytes)
    };
    let block = part()?;
    let spent = part()?;
    Ok(Some(Frame { height, hash: BlockHash::from_byte_array(hash), block, spent, txs }))
}

/// `bench synth --seed N --to TXS`: writes mainnet-shaped blocks to stdout until the chain holds
/// `to` transactions, then the last partial block; a closed pipe ends it quietly.
pub fn generate(seed: u64, to: u64) -> Result<()> {
    let mut synth = Synth::new(seed, Shape::mainnet());
    let mut out = BufWriter::with_capacity(4 << 20, io::stdout().lock());
    let mut report = 10_000_000;
    while synth.transactions() < to {
        let frame = synth.next_block()?;
        if synth.transactions() >= report {
            eprintln!("synth: {} transactions, {} unspent outputs", synth.transactions(), synth.unspent());
            report += 10_000_000;
        }
        match write_frame(&mut out, &frame) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            r => r.context("writing a block")?,
        }
    }
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("writing the last blocks"),
    }
}
