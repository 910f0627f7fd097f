//! What stops `pgoci serve` from serving: options it cannot use (exit 2)
//! and a host that will not let it listen (exit 6). Failures of single
//! requests are answers, not errors: see [`super::Server::respond`].

use crate::error::{Classify, Kind};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `--creds-file` cannot be read.
    #[error("--creds-file {}: {source}", path.display())]
    CredsFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--creds-file {}: not UTF-8", path.display())]
    CredsFileNotUtf8 { path: PathBuf },
    /// A line that is not `user:password` (the line is a secret: only its
    /// number is kept).
    #[error("--creds-file {}: line {line} is not `user:password`", path.display())]
    CredsFileBadLine { path: PathBuf, line: usize },
    #[error("--creds-file {}: it holds no `user:password` line", path.display())]
    CredsFileEmpty { path: PathBuf },
    /// `--tls-cert` cannot be read as PEM.
    #[error("--tls-cert {}: {source}", path.display())]
    TlsCert {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("--tls-cert {} holds no PEM certificate", path.display())]
    TlsCertEmpty { path: PathBuf },
    /// `--tls-key` cannot be read as a PEM private key.
    #[error("--tls-key {}: {source}", path.display())]
    TlsKey {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate and key do not make a server configuration.
    #[error("--tls-cert and --tls-key cannot be used: {source}")]
    TlsPair { source: rustls::Error },
    /// The TLS stack refuses its own default versions: a bug.
    #[error("TLS versions: {source}")]
    TlsVersions { source: rustls::Error },
    #[error("cannot start the async runtime: {source}")]
    Runtime { source: std::io::Error },
    /// A stop signal cannot be taken over.
    #[error("cannot take over {signal}: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    /// The bound socket cannot say its address.
    #[error("cannot listen on {address}: {source}")]
    LocalAddress {
        address: SocketAddr,
        source: std::io::Error,
    },
}

impl Classify for ServeError {
    fn kind(&self) -> Kind {
        use ServeError::*;
        match self {
            TlsVersions { .. } => Kind::Internal,
            Runtime { .. } | Signal { .. } | Listen { .. } | LocalAddress { .. } => Kind::Host,
            _ => Kind::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        use ServeError::*;
        match self {
            CredsFileUnreadable { .. }
            | CredsFileNotUtf8 { .. }
            | CredsFileBadLine { .. }
            | CredsFileEmpty { .. } => Some("write one `user:password` per line".into()),
            TlsPair { .. } => {
                Some("pass a certificate chain and the private key of its first certificate".into())
            }
            Listen { source, .. } => Some(
                match source.kind() {
                    std::io::ErrorKind::AddrInUse => {
                        "another process listens there: pick another port"
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        "ports below 1024 need root (or CAP_NET_BIND_SERVICE)"
                    }
                    _ => "pass --listen IP:PORT of this host",
                }
                .into(),
            ),
            _ => None,
        }
    }
}
