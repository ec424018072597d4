//! Certificates through the `openssl` command (scripts/electrumx.sh installs it when missing):
//! a self-signed one for a server under test, and the fingerprint docs/wallets.md tells users to
//! compare with the one their wallet pinned.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

/// A self-signed certificate for 127.0.0.1 and localhost: `cert.pem` and `key.pem` in `dir`.
pub fn self_signed(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-batch"])
        .args(["-days", "3650", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .context("running openssl (scripts/electrumx.sh installs it)")?;
    if !out.status.success() {
        bail!("openssl req failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok((cert, key))
}

/// The SHA-256 of a PEM certificate's DER bytes (hex), computed by the very pipeline
/// docs/wallets.md gives users: `openssl x509 -in FILE -outform DER | sha256sum`.
pub fn sha256_fingerprint(pem: &Path) -> Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("openssl x509 -in '{}' -outform DER | sha256sum", pem.display()))
        .output()
        .context("running openssl x509 | sha256sum")?;
    if !out.status.success() {
        bail!("fingerprint of {} failed: {}", pem.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout)?
        .split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("sha256sum printed nothing for {}", pem.display()))
}
