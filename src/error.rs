//! One error type for the whole library. Every error carries a [`Kind`], and
//! the kind alone decides the process exit code (docs/exit-codes.md),
//! so callers can never drift from the contract.

use std::fmt;
use std::path::Path;

/// What went wrong, in the terms of the exit-code contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bug in pgoci (exit 1).
    Internal,
    /// Bad flag, or a choice missing with no terminal to ask on (exit 2).
    Usage,
    /// Unknown major, extension, version or platform (exit 3).
    Resolve,
    /// Network, TLS, auth or "not found" upstream (exit 4).
    Registry,
    /// Digest or size mismatch, bad bundle, unsafe archive entry (exit 5).
    Integrity,
    /// The host cannot take the install: permissions, ports, data dir (exit 6).
    Host,
    /// The server failed to start or stop (exit 7).
    Service,
}

impl Kind {
    /// The process exit code for this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Internal => 1,
            Kind::Usage => 2,
            Kind::Resolve => 3,
            Kind::Registry => 4,
            Kind::Integrity => 5,
            Kind::Host => 6,
            Kind::Service => 7,
        }
    }

    /// The stable name used in `--json` error documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Internal => "internal",
            Kind::Usage => "usage",
            Kind::Resolve => "resolve",
            Kind::Registry => "registry",
            Kind::Integrity => "integrity",
            Kind::Host => "host",
            Kind::Service => "service",
        }
    }
}

/// A failure with its kind, a one-line message, an optional hint and the
/// error that caused it (printed as a chain with `-v`).
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
    /// The same request may succeed later (network cut, 5xx, 429).
    pub transient: bool,
    /// What else went wrong while handling this error (an undo that
    /// failed, with its path): printed as `warning:` lines after it.
    pub warnings: Vec<String>,
    cause: Option<Cause>,
}

/// Type-erased error, as kept for a cause.
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What lies behind an [`Error`].
#[derive(Debug)]
enum Cause {
    /// A lower-level error that caused this one (the first in the chain).
    Source(BoxError),
    /// The module error this one was made from ([`Classify::into_error`]):
    /// its message is this error's, so the chain goes on at *its* source;
    /// kept whole so callers and tests can look at the variant.
    Typed(BoxError),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            transient: false,
            warnings: Vec::new(),
            cause: None,
        }
    }

    /// Keeps the lower-level error that caused this one.
    pub fn caused_by(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.cause = Some(Cause::Source(source.into()));
        self
    }

    /// The module error this one was made from, if it is an `E`.
    pub fn typed<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match &self.cause {
            Some(Cause::Typed(e)) => e.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// The causes below this error, outermost first.
    pub fn causes(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        let mut next = std::error::Error::source(self);
        std::iter::from_fn(move || {
            let here = next?;
            next = here.source();
            Some(here)
        })
    }

    /// Puts `context: ` in front of the message, keeping kind, hint and cause.
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Marks the error as worth retrying.
    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    /// Adds a `hint:` line telling the user what to do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }
    pub fn resolve(message: impl Into<String>) -> Self {
        Self::new(Kind::Resolve, message)
    }
    pub fn registry(message: impl Into<String>) -> Self {
        Self::new(Kind::Registry, message)
    }
    pub fn integrity(message: impl Into<String>) -> Self {
        Self::new(Kind::Integrity, message)
    }
    pub fn host(message: impl Into<String>) -> Self {
        Self::new(Kind::Host, message)
    }
    pub fn service(message: impl Into<String>) -> Self {
        Self::new(Kind::Service, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Kind::Internal, message)
    }

    /// An I/O failure on a named path: a host problem unless told otherwise.
    pub fn io(path: &Path, action: &str, err: std::io::Error) -> Self {
        let kind = match err.kind() {
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => Kind::Integrity,
            _ => Kind::Host,
        };
        let kind = match err.raw_os_error() {
            Some(code) if code == libc::ENOSPC || code == libc::EDQUOT => Kind::Host,
            _ => kind,
        };
        Self::new(kind, format!("cannot {action} {}: {err}", path.display())).caused_by(err)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Some(Cause::Source(e)) => Some(e.as_ref()),
            Some(Cause::Typed(e)) => e.source(),
            None => None,
        }
    }
}

/// Module error enums say which exit-code kind they are and what to do.
pub trait Classify: std::error::Error + Send + Sync + Sized + 'static {
    /// The exit-code kind.
    fn kind(&self) -> Kind;
    /// A `hint:` line, when there is something the user can do.
    fn hint(&self) -> Option<String> {
        None
    }
    /// Whether the same request may succeed later.
    fn transient(&self) -> bool {
        false
    }
    /// The library-wide error: this one's message, kind and hint, with
    /// this error kept whole so its `#[source]` chain runs to the end.
    fn into_error(self) -> Error {
        let mut e = Error::new(self.kind(), self.to_string());
        e.hint = self.hint();
        e.transient = self.transient();
        e.cause = Some(Cause::Typed(Box::new(self)));
        e
    }
}

impl<E: Classify> From<E> for Error {
    fn from(e: E) -> Self {
        e.into_error()
    }
}

/// Adds path context to `std::io::Result`s, the most common failure here.
pub trait IoContext<T> {
    fn with_path(self, path: &Path, action: &str) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn with_path(self, path: &Path, action: &str) -> Result<T> {
        self.map_err(|e| Error::io(path, action, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Probe {
        #[error("cannot read the probe")]
        Read(#[source] Error),
    }

    impl Classify for Probe {
        fn kind(&self) -> Kind {
            Kind::Integrity
        }
        fn transient(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_typed_error_keeps_its_variant_and_its_whole_chain() {
        let inner = Error::host("the disk below").caused_by(std::io::Error::other("EIO"));
        let err: Error = Probe::Read(inner).into();
        assert_eq!(err.kind, Kind::Integrity);
        assert!(err.transient);
        assert_eq!(err.to_string(), "cannot read the probe");
        assert!(matches!(err.typed::<Probe>(), Some(Probe::Read(_))));
        // The chain starts below the typed error (its message is ours) and
        // runs to the end, two levels down.
        let causes: Vec<String> = err.causes().map(|c| c.to_string()).collect();
        assert_eq!(causes, ["the disk below", "EIO"]);
        assert!(err.typed::<std::io::Error>().is_none());
    }
}
