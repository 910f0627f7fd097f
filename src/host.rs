//! Host facts for `pgoci doctor`: will an install work here? Platform,
//! glibc, the shared libraries each server binary needs (found by
//! unpacking the server into a scratch directory and asking `ldd` with the
//! artifact's own library directories first), systemd, disk, port, user.

use crate::blobs::BlobSource;
use crate::error::{Error, Result};
use crate::install::layout::HostLayout;
use crate::lock::Lock;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::install::preflight::Check;

fn check(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check::new(name, ok, detail)
}

/// The host's glibc version, as `getconf` reports it.
pub fn glibc_version() -> Option<String> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
}

/// Free bytes on the filesystem holding `path` (or its nearest existing parent).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let mut p = path.to_path_buf();
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    let st = nix::sys::statvfs::statvfs(&p).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Runs every check; with a lock and its blobs, also the library check.
pub fn doctor(
    layout: &HostLayout,
    lock: Option<(&Lock, &dyn BlobSource)>,
    port: Option<u16>,
    reporter: &dyn crate::progress::Reporter,
) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    checks.push(check(
        "root",
        nix::unistd::geteuid().is_root(),
        "install needs root (user, chown, service)",
    ));
    checks.push(check(
        "systemd",
        true,
        if crate::install::service::systemd::is_running() {
            "running: instances get a systemd unit"
        } else {
            "not running: pgoci will start servers with pg_ctl"
        },
    ));
    let glibc = glibc_version();
    checks.push(check(
        "glibc",
        glibc.is_some(),
        glibc
            .map(|v| format!("glibc {v}"))
            .unwrap_or_else(|| "no glibc found (getconf)".into()),
    ));
    let preflight = crate::install::preflight::PreflightFacts::gather(&layout.prefix, "postgres");
    if lock.is_none() {
        let free = preflight.free_bytes.unwrap_or(0);
        checks.push(check(
            "disk",
            free > 512 << 20,
            format!("{} MiB free under {}", free >> 20, layout.prefix.display()),
        ));
        checks.push(check(
            "useradd",
            preflight.useradd || preflight.user_exists,
            "can create the service user (or it exists)",
        ));
    }
    if let Some(p) = port {
        let free = std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        checks.push(check(
            "port",
            free,
            format!("port {p} {}", if free { "is free" } else { "is taken" }),
        ));
    }
    if let Some((lock, source)) = lock {
        // The same checks install runs before it changes anything.
        let preflight = crate::install::preflight::checks(lock, &preflight);
        let ok = preflight.iter().all(|c| c.name != "platform" || c.ok);
        checks.extend(preflight);
        for blob in lock.blobs() {
            if let Err(e) = source.verify(&blob, reporter) {
                checks.push(check("integrity", false, e.message));
                return Ok(checks);
            }
        }
        checks.push(check(
            "integrity",
            true,
            format!("{} blobs verified", lock.blobs().len()),
        ));
        if ok {
            checks.push(libraries(lock, source)?);
        }
    }
    Ok(checks)
}

/// A program on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Unpacks the server into a scratch dir and asks ldd what the binaries lack.
fn libraries(lock: &Lock, source: &dyn BlobSource) -> Result<Check> {
    let scratch = tempfile::tempdir().map_err(|e| Error::host(format!("no temp dir: {e}")))?;
    let layout = HostLayout::new(scratch.path(), Path::new("/"));
    let select = crate::install::generation::server_selector(lock);
    let (dir, _) = crate::install::store::ensure(
        &layout,
        &lock.server.pinned,
        source,
        &*select,
        &crate::progress::Silent,
    )?;
    let dirs = crate::install::generation::server_dirs(lock, &dir)?;
    let bin = dir.join(&dirs.bin);
    let lib_dirs = [dir.join("lib"), dir.join(&dirs.pkglibdir)];
    let ld_path = lib_dirs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut missing = std::collections::BTreeSet::new();
    let mut checked = 0;
    for name in ["postgres", "initdb", "pg_ctl"] {
        let exe = bin.join(name);
        if !exe.exists() {
            continue;
        }
        checked += 1;
        let out = Command::new("ldd")
            .arg(&exe)
            .env("LD_LIBRARY_PATH", &ld_path)
            .output()
            .map_err(|e| Error::host(format!("cannot run ldd: {e}")))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line.contains("not found") {
                missing.insert(line.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    }
    Ok(if missing.is_empty() {
        check(
            "libraries",
            true,
            format!("{checked} server binaries find every shared library"),
        )
    } else {
        check(
            "libraries",
            false,
            format!(
                "missing on this host: {} (install them, or use artifacts that carry them)",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}
