//! Running PostgreSQL's own tools as the service user: `initdb`, `pg_ctl`
//! start/stop/status, version probing, and waiting until the server
//! accepts connections.

use super::users::Account;
use crate::error::{Error, Result};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A command that runs as `account` with a clean environment.
fn as_user(program: &Path, account: &Account) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C.UTF-8")
        .current_dir("/")
        .uid(account.uid)
        .gid(account.gid);
    cmd
}

fn run(mut cmd: Command, what: &str) -> Result<Output> {
    cmd.output()
        .map_err(|e| Error::service(format!("cannot run {what}: {e}")))
}

/// How a new data directory is initialised (`initdb` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitdbSettings {
    pub locale: String,
    pub encoding: String,
    /// Host (TCP) authentication method; local connections use peer.
    pub auth_host: String,
}

impl InitdbSettings {
    pub const DEFAULT_LOCALE: &'static str = "C.UTF-8";
    pub const DEFAULT_ENCODING: &'static str = "UTF8";
    pub const DEFAULT_AUTH_HOST: &'static str = "scram-sha-256";
}

impl Default for InitdbSettings {
    fn default() -> Self {
        InitdbSettings {
            locale: Self::DEFAULT_LOCALE.into(),
            encoding: Self::DEFAULT_ENCODING.into(),
            auth_host: Self::DEFAULT_AUTH_HOST.into(),
        }
    }
}

/// Runs initdb on an empty data directory.
pub fn initdb(
    bin: &Path,
    data: &Path,
    account: &Account,
    opts: &InitdbSettings,
    env: &super::generation::RuntimeEnv,
) -> Result<()> {
    let mut cmd = as_user(&bin.join("initdb"), account);
    // initdb runs the server binary too: the same libraries as the server.
    if let Some(p) = &env.ld_library_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    cmd.envs(&env.vars);
    cmd.arg("-D")
        .arg(data)
        .arg(format!("--locale={}", opts.locale))
        .arg(format!("--encoding={}", opts.encoding))
        .arg("--auth-local=peer")
        .arg(format!("--auth-host={}", opts.auth_host))
        .arg(format!("--username={}", account.name));
    let out = run(cmd, "initdb")?;
    if !out.status.success() {
        return Err(Error::service(format!(
            "initdb failed: {}",
            last_lines(&String::from_utf8_lossy(&out.stderr), 5)
        )));
    }
    Ok(())
}

/// Whether a server is running on this data directory (`pg_ctl status`).
pub fn is_running(bin: &Path, data: &Path, account: &Account) -> bool {
    let mut cmd = as_user(&bin.join("pg_ctl"), account);
    cmd.arg("status").arg("-D").arg(data);
    run(cmd, "pg_ctl status").is_ok_and(|o| o.status.success())
}

/// Starts the server with pg_ctl and waits until it accepts connections.
pub fn start(
    bin: &Path,
    data: &Path,
    log: &Path,
    account: &Account,
    env: &super::generation::RuntimeEnv,
) -> Result<()> {
    let mut cmd = as_user(&bin.join("pg_ctl"), account);
    if let Some(p) = &env.ld_library_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    cmd.envs(&env.vars);
    cmd.arg("start")
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(log)
        .args(["-w", "-t", "60"]);
    let out = run(cmd, "pg_ctl start")?;
    if !out.status.success() {
        let log_tail = std::fs::read_to_string(log).unwrap_or_default();
        return Err(Error::service(format!(
            "PostgreSQL did not start: {} | log: {}",
            last_lines(&String::from_utf8_lossy(&out.stderr), 3),
            last_lines(&log_tail, 5)
        ))
        .hint(format!("see {}", log.display())));
    }
    wait_ready(data, Duration::from_secs(30))
}

/// Stops the server (fast mode) and waits.
pub fn stop(bin: &Path, data: &Path, account: &Account) -> Result<()> {
    let mut cmd = as_user(&bin.join("pg_ctl"), account);
    cmd.arg("stop")
        .arg("-D")
        .arg(data)
        .args(["-m", "fast", "-w", "-t", "60"]);
    let out = run(cmd, "pg_ctl stop")?;
    if !out.status.success() {
        return Err(Error::service(format!(
            "PostgreSQL did not stop: {}",
            last_lines(&String::from_utf8_lossy(&out.stderr), 3)
        )));
    }
    Ok(())
}

/// Waits until `postmaster.pid` says `ready` (line 8).
pub fn wait_ready(data: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let pid_file = data.join("postmaster.pid");
    loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            if text.lines().nth(7).map(str::trim) == Some("ready") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(Error::service(format!(
                "PostgreSQL in {} did not become ready within {}s",
                data.display(),
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The version a `postgres` binary reports ("17.10"), read from the
/// `postgres (PostgreSQL) 17.10` string in the file: nothing from an
/// artifact is run to inspect it.
pub fn version_of_binary(postgres: &Path) -> Option<String> {
    const MARKER: &[u8] = b"(PostgreSQL) ";
    let bytes = std::fs::read(postgres).ok()?;
    let at = bytes.windows(MARKER.len()).position(|w| w == MARKER)? + MARKER.len();
    let version: String = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'.')
        .map(|&b| b as char)
        .collect();
    (!version.is_empty() && version.as_bytes()[0].is_ascii_digit()).then_some(version)
}

/// Whether a server binary links libsystemd (then it sends sd_notify
/// READY=1 and the unit can be `Type=notify`): its name is among the
/// dynamic section's strings.
pub fn links_libsystemd(postgres: &Path) -> bool {
    std::fs::read(postgres).is_ok_and(|bytes| {
        bytes
            .windows(b"libsystemd.so".len())
            .any(|w| w == b"libsystemd.so")
    })
}

/// The major of an existing data directory (`PG_VERSION`).
pub fn data_major(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("PG_VERSION"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The last `n` non-empty lines of a text, joined on one line.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
