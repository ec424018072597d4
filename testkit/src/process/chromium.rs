//! Headless Chromium (Debian's `chromium`, which scripts/deps.sh installs), to see a page as a
//! browser renders it, scripts run.

use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::process::spawn::run;

/// Runs `chromium --headless ... ARGS` in a fresh profile and returns its output, whatever its
/// status; an error if it cannot start or does not finish within 120 s.
pub fn chromium(args: &[&str]) -> Result<Output> {
    let profile = tempfile::tempdir()?;
    let mut cmd = Command::new("chromium");
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args);
    run(&mut cmd, Duration::from_secs(120)).context("running chromium (scripts/deps.sh installs it)")
}
