//! `pgoci doctor`: will an install work here? Platform, glibc, the shared
//! libraries each server binary needs (its artifacts unpacked into a
//! scratch store and their ELF files read: nothing is run), systemd, disk,
//! port, user. A consumer of `install`, as the commands are.

use crate::blobs::BlobSource;
use crate::error::Result;
use crate::install::layout::HostLayout;
use crate::lock::Lock;

pub use crate::install::preflight::Check;
pub use crate::system::{free_bytes, glibc_version, which};

fn check(name: &str, ok: bool, detail: impl Into<String>) -> Check {
    Check::new(name, ok, detail)
}

/// Runs every check; with a lock and its blobs, also the library check.
/// What doctor found: every check, and the library table when a bundle
/// was given.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DoctorReport {
    pub checks: Vec<Check>,
    pub libraries: Option<crate::install::libraries::LibraryReport>,
}

pub fn run(
    layout: &HostLayout,
    lock: Option<(&Lock, &dyn BlobSource)>,
    port: Option<u16>,
    libraries_mode: crate::install::libraries::LibraryMode,
    reporter: &dyn crate::progress::Reporter,
) -> Result<DoctorReport> {
    let mut table = None;
    let mut checks = Vec::new();
    checks.push(check(
        "root",
        rustix::process::geteuid().is_root(),
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
                return Ok(DoctorReport {
                    checks,
                    libraries: None,
                });
            }
        }
        checks.push(check(
            "integrity",
            true,
            format!("{} blobs verified", lock.blobs().len()),
        ));
        if ok {
            // A failure to read the artifacts is this check failing, not
            // the end of the report: every other check still shows.
            match libraries(lock, source, libraries_mode, reporter) {
                Ok((c, report)) => {
                    checks.push(c);
                    table = Some(report);
                }
                Err(e) => checks.push(check("libraries", false, e.message)),
            }
        }
    }
    Ok(DoctorReport {
        checks,
        libraries: table,
    })
}

/// [`crate::install::scratch::library_report`] as a doctor check.
fn libraries(
    lock: &Lock,
    source: &dyn BlobSource,
    mode: crate::install::libraries::LibraryMode,
    reporter: &dyn crate::progress::Reporter,
) -> Result<(Check, crate::install::libraries::LibraryReport)> {
    let report = crate::install::scratch::library_report(lock, source, mode, reporter)?;
    let check = match report.failures.is_empty() && report.broken.is_empty() {
        true => Check::new(
            "libraries",
            true,
            format!(
                "{} ELF files find every library ({} from the image); glibc {} needed, host has {}{}",
                report.files_checked,
                report.from_image.len(),
                report.glibc_required.as_deref().unwrap_or("?"),
                report.glibc_host.as_deref().unwrap_or("?"),
                match report.image_loader {
                    Some(_) => "; the server runs on the image's glibc and loader (its executables patched)",
                    None => "",
                },
            ),
        ),
        false => Check::new(
            "libraries",
            false,
            report
                .broken
                .iter()
                .chain(&report.failures)
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    Ok((check, report))
}
