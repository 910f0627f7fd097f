//! The trust store and settings of the HTTP clients: the system's CA roots
//! (looked for, not read, until a TLS registry is used), `--ca-file`, and
//! the placeholder a host without roots gets.

use super::{RegistryError, RegistryOptions};
use crate::error::Result;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use std::path::PathBuf;

/// A CA certificate that signed nothing and whose key no one has: the
/// trust store of a host that has none, so plain-HTTP registries work.
pub(super) const NO_SYSTEM_ROOTS: &[u8] = include_bytes!("no-system-roots.pem");

/// Whether the system's CA roots are there to be read, found as the TLS
/// stack looks for them (`SSL_CERT_FILE` / `SSL_CERT_DIR` when either is
/// set, else the usual places), without reading them.
pub(super) fn system_roots_present() -> bool {
    let file = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let dirs: Vec<PathBuf> = std::env::var_os("SSL_CERT_DIR")
        .map(|d| std::env::split_paths(&d).collect())
        .unwrap_or_default();
    let (file, dirs) = if file.is_none() && dirs.is_empty() {
        let found = openssl_probe::probe();
        (found.cert_file, found.cert_dir)
    } else {
        (file, dirs)
    };
    let file_has = |f: &PathBuf| std::fs::metadata(f).is_ok_and(|m| m.len() > 0);
    let dir_has = |d: &PathBuf| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some());
    file.as_ref().is_some_and(file_has) || dirs.iter().any(dir_has)
}

/// Runs `build` with `SSL_CERT_FILE` naming a file that holds `roots` and
/// `SSL_CERT_DIR` unset, then puts both back as they were. `oci-client`
/// builds a default HTTP client inside every client it makes, whatever the
/// settings, and that one reads the system's CA roots (from these
/// variables when set) and panics when it finds none: this keeps it to
/// one small file. Only while one thread runs (before the async runtime):
/// the environment is the whole process's.
pub(super) fn with_roots_env<T>(roots: &[u8], build: impl FnOnce() -> T) -> Result<T> {
    let file = tempfile::NamedTempFile::new()
        .and_then(|mut f| std::io::Write::write_all(&mut f, roots).map(|_| f))
        .map_err(|source| RegistryError::TempCaFile { source })?;
    let saved = ["SSL_CERT_FILE", "SSL_CERT_DIR"].map(|k| (k, std::env::var_os(k)));
    std::env::set_var("SSL_CERT_FILE", file.path());
    std::env::remove_var("SSL_CERT_DIR");
    let built = build();
    for (key, value) in saved {
        match value {
            Some(v) => std::env::set_var(key, v),
            None => std::env::remove_var(key),
        }
    }
    Ok(built)
}

/// The client settings of pgoci: `extra` roots beside the system's, or
/// `only` these roots.
pub(super) fn client_config(
    options: &RegistryOptions,
    extra: Vec<Certificate>,
    only: Vec<Certificate>,
) -> ClientConfig {
    ClientConfig {
        protocol: ClientProtocol::HttpsExcept(options.insecure.clone()),
        extra_root_certificates: extra,
        tls_certs_only: only,
        platform_resolver: None,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(60)),
        user_agent: concat!("pgoci/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    }
}

pub(super) fn pem(data: &[u8]) -> Certificate {
    Certificate {
        encoding: CertificateEncoding::Pem,
        data: data.to_vec(),
    }
}

pub(super) fn setup_failed(source: OciDistributionError) -> RegistryError {
    RegistryError::ClientSetup { source }
}
