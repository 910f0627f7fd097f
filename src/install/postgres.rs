//! Running PostgreSQL's own tools as the service user: `initdb`, `pg_ctl`
//! start/stop/status, version probing, and waiting until the server
//! accepts connections.

use super::locale::LocaleProvider;
use super::users::Account;
use crate::error::{Classify, Kind, Result};
use crate::names::LocaleName;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A command that runs as `account` with a clean environment.
pub(crate) fn as_user(program: &Path, account: &Account) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C.UTF-8")
        .current_dir("/")
        .uid(account.uid)
        .gid(account.gid);
    cmd
}

pub(crate) fn run(mut cmd: Command, what: &str) -> Result<Output> {
    cmd.output().map_err(|source| {
        PostgresError::Spawn {
            program: what.to_string(),
            source,
        }
        .into()
    })
}

/// PostgreSQL's own tools refused or failed, or the initdb settings do
/// not fit the major.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{what} needs PostgreSQL {since} or later; this is PostgreSQL {major}")]
    TooOld {
        what: String,
        since: u32,
        major: u32,
    },
    #[error("--icu-locale is for the icu locale provider only")]
    IcuLocaleWithoutIcu,
    #[error("--builtin-locale is for the builtin locale provider only")]
    BuiltinLocaleWithoutBuiltin,
    #[error("--locale-provider icu needs --icu-locale")]
    IcuWithoutLocale,
    #[error("--builtin-locale {builtin}: the builtin provider has C and C.UTF-8 (and PG_UNICODE_FAST from PostgreSQL 18)")]
    UnknownBuiltinLocale { builtin: LocaleName },
    #[error("--builtin-locale {builtin} needs --encoding UTF8, not {encoding}")]
    BuiltinNeedsUtf8 {
        builtin: LocaleName,
        encoding: String,
    },
    #[error("WAL segment size {mb} MB: must be a power of two from 1 to 1024")]
    WalSegmentSize { mb: u32 },
    #[error("cannot read the PostgreSQL version of {}", postgres.display())]
    VersionUnreadable { postgres: PathBuf },
    #[error("initdb failed: {output}")]
    InitdbFailed { output: String },
    #[error("PostgreSQL did not start: {output} | log: {log_tail}")]
    NotStarted {
        output: String,
        log_tail: String,
        log: PathBuf,
    },
    #[error("PostgreSQL did not start for maintenance: {output}")]
    NotStartedPrivately { output: String, log: PathBuf },
    #[error("PostgreSQL did not stop: {output}")]
    NotStopped { output: String },
    #[error("PostgreSQL in {} did not become ready within {secs}s", data.display())]
    NotReady { data: PathBuf, secs: u64 },
}

impl Classify for PostgresError {
    fn kind(&self) -> Kind {
        match self {
            PostgresError::TooOld { .. }
            | PostgresError::IcuLocaleWithoutIcu
            | PostgresError::BuiltinLocaleWithoutBuiltin
            | PostgresError::IcuWithoutLocale
            | PostgresError::UnknownBuiltinLocale { .. }
            | PostgresError::BuiltinNeedsUtf8 { .. }
            | PostgresError::WalSegmentSize { .. } => Kind::Usage,
            _ => Kind::Service,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            PostgresError::TooOld { what, since, .. } => Some(format!(
                "install PostgreSQL {since}+ (--major {since}), or leave {what} out"
            )),
            PostgresError::IcuLocaleWithoutIcu => {
                Some("add --locale-provider icu, or leave --icu-locale out".into())
            }
            PostgresError::BuiltinLocaleWithoutBuiltin => {
                Some("add --locale-provider builtin, or leave --builtin-locale out".into())
            }
            PostgresError::IcuWithoutLocale => {
                Some("name the ICU locale, e.g. --icu-locale und or --icu-locale de-DE".into())
            }
            PostgresError::UnknownBuiltinLocale { .. } => {
                Some("pass --builtin-locale C.UTF-8".into())
            }
            PostgresError::NotStarted { log, .. }
            | PostgresError::NotStartedPrivately { log, .. } => {
                Some(format!("see {}", log.display()))
            }
            _ => None,
        }
    }
}

/// How a new data directory is initialised (`initdb` options). A major
/// upgrade initialises the new cluster with the old cluster's settings, so
/// every option that must match for `pg_upgrade` is here; [`Self::args`]
/// renders them for one major and refuses what that major's initdb lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitdbSettings {
    /// `--locale`: the default of every LC_* category (libc locale).
    pub locale: LocaleName,
    /// `--lc-collate`, when it differs from `locale`.
    pub lc_collate: Option<LocaleName>,
    /// `--lc-ctype`, when it differs from `locale`.
    pub lc_ctype: Option<LocaleName>,
    /// `--encoding` (`UTF8`).
    pub encoding: String,
    /// `--locale-provider` (icu from PostgreSQL 15, builtin from 17).
    pub provider: LocaleProvider,
    /// `--icu-locale` (15+; provider icu only, which needs it).
    pub icu_locale: Option<LocaleName>,
    /// `--builtin-locale` (17+; provider builtin only; `None`: `locale`).
    pub builtin_locale: Option<LocaleName>,
    /// `--data-checksums`; rendered either way (`--no-data-checksums` on
    /// 18+, where checksums are initdb's default).
    pub data_checksums: bool,
    /// `--wal-segsize` in MiB (a power of two, 1 to 1024; 11+); `None`:
    /// initdb's default (16).
    pub wal_segsize_mb: Option<u32>,
    /// Host (TCP) authentication method; local connections use peer.
    pub auth_host: String,
}

impl InitdbSettings {
    pub const DEFAULT_LOCALE: &'static str = "C.UTF-8";
    pub const DEFAULT_ENCODING: &'static str = "UTF8";
    pub const DEFAULT_AUTH_HOST: &'static str = "scram-sha-256";

    /// The libc locales initdb and the server need from the host:
    /// `locale` and the LC_COLLATE/LC_CTYPE overrides (ICU and builtin
    /// locales are not libc's).
    pub fn libc_locales(&self) -> Vec<&LocaleName> {
        let mut v = vec![&self.locale];
        for l in [&self.lc_collate, &self.lc_ctype].into_iter().flatten() {
            if !v.contains(&l) {
                v.push(l);
            }
        }
        v
    }

    /// initdb's arguments for PostgreSQL `major` (without `-D` and
    /// `--username`): every setting rendered explicitly. A provider, locale
    /// or option that major's initdb lacks is exit 2 naming the major.
    pub fn args(&self, major: u32) -> Result<Vec<String>> {
        let too_old = |what: String, since: u32| PostgresError::TooOld { what, since, major };
        let mut args = vec![format!("--locale={}", self.locale)];
        if let Some(l) = &self.lc_collate {
            args.push(format!("--lc-collate={l}"));
        }
        if let Some(l) = &self.lc_ctype {
            args.push(format!("--lc-ctype={l}"));
        }
        args.push(format!("--encoding={}", self.encoding));
        if self.icu_locale.is_some() && self.provider != LocaleProvider::Icu {
            return Err(PostgresError::IcuLocaleWithoutIcu.into());
        }
        if self.builtin_locale.is_some() && self.provider != LocaleProvider::Builtin {
            return Err(PostgresError::BuiltinLocaleWithoutBuiltin.into());
        }
        let since = self.provider.since();
        if major < since {
            return Err(too_old(format!("--locale-provider {}", self.provider), since).into());
        }
        if major >= 15 {
            args.push(format!("--locale-provider={}", self.provider));
        }
        match self.provider {
            LocaleProvider::Libc => {}
            LocaleProvider::Icu => {
                let icu = self
                    .icu_locale
                    .as_ref()
                    .ok_or(PostgresError::IcuWithoutLocale)?;
                args.push(format!("--icu-locale={icu}"));
            }
            LocaleProvider::Builtin => {
                let builtin = self.builtin_locale.as_ref().unwrap_or(&self.locale);
                let needs = super::locale::builtin_locale_since(builtin).ok_or_else(|| {
                    PostgresError::UnknownBuiltinLocale {
                        builtin: builtin.clone(),
                    }
                })?;
                if major < needs {
                    return Err(too_old(format!("--builtin-locale {builtin}"), needs).into());
                }
                let utf8 = super::locale::normalize_codeset(&self.encoding) == "utf8";
                if builtin.as_str() != "C" && !utf8 {
                    return Err(PostgresError::BuiltinNeedsUtf8 {
                        builtin: builtin.clone(),
                        encoding: self.encoding.clone(),
                    }
                    .into());
                }
                args.push(format!("--builtin-locale={builtin}"));
            }
        }
        if self.data_checksums {
            args.push("--data-checksums".into());
        } else if major >= 18 {
            args.push("--no-data-checksums".into());
        }
        if let Some(mb) = self.wal_segsize_mb {
            if !(mb.is_power_of_two() && mb <= 1024) {
                return Err(PostgresError::WalSegmentSize { mb }.into());
            }
            if major < 11 {
                return Err(too_old("--wal-segsize".into(), 11).into());
            }
            args.push(format!("--wal-segsize={mb}"));
        }
        args.push("--auth-local=peer".into());
        args.push(format!("--auth-host={}", self.auth_host));
        Ok(args)
    }
}

impl Default for InitdbSettings {
    fn default() -> Self {
        InitdbSettings {
            locale: LocaleName::parse(Self::DEFAULT_LOCALE).expect("a locale name"),
            lc_collate: None,
            lc_ctype: None,
            encoding: Self::DEFAULT_ENCODING.into(),
            provider: LocaleProvider::Libc,
            icu_locale: None,
            builtin_locale: None,
            data_checksums: true,
            wal_segsize_mb: None,
            auth_host: Self::DEFAULT_AUTH_HOST.into(),
        }
    }
}

/// Runs initdb on an empty data directory, with `opts` rendered for the
/// major of the `postgres` in `bin` (read from the file, not run).
pub fn initdb(
    bin: &Path,
    data: &Path,
    account: &Account,
    opts: &InitdbSettings,
    env: &super::runtime::RuntimeEnv,
) -> Result<()> {
    let postgres = bin.join("postgres");
    let major = version_of_binary(&postgres)
        .and_then(|v| major_of_version(&v))
        .ok_or_else(|| PostgresError::VersionUnreadable {
            postgres: postgres.clone(),
        })?;
    let args = opts.args(major)?;
    let mut cmd = as_user(&bin.join("initdb"), account);
    // initdb runs the server binary too: the same libraries as the server.
    if let Some(p) = &env.ld_library_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    cmd.envs(&env.vars);
    cmd.arg("-D")
        .arg(data)
        .args(&args)
        .arg(format!("--username={}", account.name));
    let out = run(cmd, "initdb")?;
    if !out.status.success() {
        return Err(PostgresError::InitdbFailed {
            output: last_lines(&String::from_utf8_lossy(&out.stderr), 5),
        }
        .into());
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
    env: &super::runtime::RuntimeEnv,
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
        return Err(PostgresError::NotStarted {
            output: last_lines(&String::from_utf8_lossy(&out.stderr), 3),
            log_tail: last_lines(&log_tail, 5),
            log: log.to_path_buf(),
        }
        .into());
    }
    wait_ready(data, Duration::from_secs(30))
}

/// Starts the server for pgoci alone: no TCP, its socket on `port` in
/// `socket_dir` (a port clients do not use), waiting until it is ready.
pub fn start_private(
    bin: &Path,
    data: &Path,
    log: &Path,
    account: &Account,
    env: &super::runtime::RuntimeEnv,
    socket_dir: &Path,
    port: u16,
) -> Result<()> {
    let mut cmd = as_user(&bin.join("pg_ctl"), account);
    if let Some(p) = &env.ld_library_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    cmd.envs(&env.vars);
    // pg_ctl hands -o to a shell: the directory is quoted for it.
    let dir = socket_dir.display().to_string().replace('\'', "'\\''");
    cmd.arg("start")
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(log)
        .arg("-o")
        .arg(format!(
            "-c listen_addresses= -p {port} -c unix_socket_directories='{dir}'"
        ))
        .args(["-w", "-t", "60"]);
    let out = run(cmd, "pg_ctl start")?;
    if !out.status.success() {
        return Err(PostgresError::NotStartedPrivately {
            output: last_lines(&String::from_utf8_lossy(&out.stderr), 3),
            log: log.to_path_buf(),
        }
        .into());
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
        return Err(PostgresError::NotStopped {
            output: last_lines(&String::from_utf8_lossy(&out.stderr), 3),
        }
        .into());
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
            return Err(PostgresError::NotReady {
                data: data.to_path_buf(),
                secs: timeout.as_secs(),
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The version a `postgres` binary reports ("17.10"), read from the
/// `postgres (PostgreSQL) 17.10` string in the file: nothing from an
/// artifact is run to inspect it.
pub fn version_of_binary(postgres: &Path) -> Option<String> {
    let version = crate::fsutil::text_after_marker(postgres, b"(PostgreSQL) ", |b| {
        b.is_ascii_alphanumeric() || b == b'.'
    })?;
    (!version.is_empty() && version.as_bytes()[0].is_ascii_digit()).then_some(version)
}

/// The major of a version string: `17` of `17.10`, `18` of `18beta1`.
pub fn major_of_version(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether a server binary links libsystemd (then it sends sd_notify
/// READY=1 and the unit can be `Type=notify`): a `DT_NEEDED` entry, read
/// from its ELF dynamic section.
pub fn links_libsystemd(postgres: &Path) -> bool {
    crate::elf::inspect::inspect(postgres)
        .ok()
        .flatten()
        .is_some_and(|info| info.needed.iter().any(|n| n.starts_with("libsystemd.so")))
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

#[cfg(test)]
mod tests;
