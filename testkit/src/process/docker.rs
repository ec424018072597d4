//! Docker and Docker Compose from tests: a compose project that is taken down with its volumes
//! when it is dropped (also when the test panics), a container removed likewise, and the few
//! commands the deployment tests run, each with a deadline.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::process::spawn::{checked, run};

/// `docker ARGS...`, which must succeed.
pub fn docker(args: &[&str]) -> Result<String> {
    checked(Command::new("docker").args(args), Duration::from_secs(300))
}

/// A Compose project from one file, as BTCPay runs it (`docker compose -f FILE ...` from the
/// directory of its `.env`). `down -v` on drop.
pub struct Compose {
    file: PathBuf,
    env: Vec<(String, String)>,
}

impl Compose {
    /// The project of `file`: its name is that of the file's directory, lower-cased
    /// (`Generated` → `generated`), as BTCPay's.
    pub fn new(file: &Path, env: &[(&str, &str)]) -> Compose {
        Compose { file: file.to_path_buf(), env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("compose").arg("-f").arg(&self.file).args(args);
        if let Some(dir) = self.file.parent() {
            cmd.current_dir(dir);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// `docker compose ARGS...`, which must succeed within `timeout`.
    pub fn run(&self, args: &[&str], timeout: Duration) -> Result<String> {
        checked(&mut self.command(args), timeout)
    }

    /// `docker compose ARGS...`: its output, whatever its status.
    pub fn output(&self, args: &[&str], timeout: Duration) -> Result<Output> {
        run(&mut self.command(args), timeout)
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(out) = self.output(&["logs", "--no-color", "--tail", "60"], Duration::from_secs(60)) {
                eprintln!("--- docker compose logs\n{}", String::from_utf8_lossy(&out.stdout));
            }
        }
        let _ = self.output(&["down", "-v", "--remove-orphans", "-t", "30"], Duration::from_secs(180));
    }
}

/// `docker exec CONTAINER ARGS...`: its standard output, which must succeed.
pub fn exec(container: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["exec", container];
    all.extend_from_slice(args);
    docker(&all)
}

/// The IP address of a running container on its (first) network.
pub fn container_ip(container: &str) -> Result<String> {
    let ip = docker(&["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container])?;
    ip.split_whitespace().next().map(str::to_string).ok_or_else(|| anyhow!("{container} has no IP address"))
}

/// A container started by a test, and the named volumes it made: removed when dropped, also
/// when the test panics.
pub struct Container {
    pub name: String,
    volumes: Vec<String>,
}

impl Container {
    /// `docker run -d --name NAME ARGS...`; `volumes` are removed with the container.
    pub fn run(name: &str, args: &[&str], volumes: &[&str]) -> Result<Container> {
        let container = Container { name: name.to_string(), volumes: volumes.iter().map(|v| v.to_string()).collect() };
        let mut all = vec!["run", "-d", "--name", name];
        all.extend_from_slice(args);
        docker(&all)?;
        Ok(container)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(out) =
                run(Command::new("docker").args(["logs", "--tail", "40", &self.name]), Duration::from_secs(60))
            {
                eprintln!(
                    "--- docker logs {}\n{}{}",
                    self.name,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let _ = run(Command::new("docker").args(["rm", "-f", &self.name]), Duration::from_secs(120));
        for v in &self.volumes {
            let _ = run(Command::new("docker").args(["volume", "rm", v]), Duration::from_secs(60));
        }
    }
}
