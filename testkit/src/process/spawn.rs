//! Starting child processes: finding their executables, tying their lives to the test
//! process's, free loopback ports for them, and running a command to completion with a
//! deadline.

use std::collections::HashSet;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// An executable the project's scripts provide: `$var` when set (it must exist), else what
/// `scripts/<script>` prints (installing or building it on first use), mapped by `from_script`.
pub fn locate_exe(var: &str, script: &str, from_script: impl Fn(PathBuf) -> PathBuf) -> Result<PathBuf> {
    if let Some(exe) = std::env::var_os(var) {
        let exe = PathBuf::from(exe);
        if !exe.is_file() {
            bail!("{var}={} does not exist", exe.display());
        }
        return Ok(exe);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(script);
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({}); see its output above", script.display(), out.status);
    }
    let printed = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    let exe = from_script(printed.clone());
    if !exe.is_file() {
        bail!("{} printed {}, but {} is not a file", script.display(), printed.display(), exe.display());
    }
    Ok(exe)
}

/// Makes a child started with `cmd` get SIGKILL when the process that started it dies, so no
/// node or server outlives a test that crashed or was killed.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A loopback port nobody in this process has been handed yet and that is free right now.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    loop {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0);
        if port != 0 && given.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// Runs a command to completion within `timeout`; its output, or an error with its stderr.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    // Drain the pipes while waiting, so a chatty command cannot block on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut b);
        }
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut b);
        }
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output =
        Output { status, stdout: out_reader.join().unwrap_or_default(), stderr: err_reader.join().unwrap_or_default() };
    Ok(output)
}

/// Runs a command that must succeed; its standard output.
pub fn checked(cmd: &mut Command, timeout: Duration) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = run(cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
