//! [`ProfileError`]: why a profile (or a CloudNativePG image catalog read
//! as one) cannot be found, read or used. A profile that breaks a rule is
//! a resolve failure (exit 3), naming the profile and what is wrong.

use crate::error::{Classify, Kind};
use crate::names::{ExtensionName, Invalid};
use std::path::PathBuf;

/// Why a profile cannot be loaded. `origin` names it as given: an
/// embedded profile's name, or a path.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No embedded profile of that name, and none under `etc/pgoci/profiles`.
    #[error("no profile named `{name}` (embedded: {}; also looked in {})", embedded.join(", "), looked_in.display())]
    NotFound {
        name: String,
        embedded: Vec<&'static str>,
        looked_in: PathBuf,
    },
    /// The profile file cannot be opened or read.
    #[error("cannot read profile {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Larger than any profile is.
    #[error("profile {} is larger than the {limit}-byte limit", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("profile {} is not UTF-8", path.display())]
    NotUtf8 {
        path: PathBuf,
        #[source]
        source: std::string::FromUtf8Error,
    },
    /// Not YAML, or not the shape of a profile: an unknown field, a value
    /// of the wrong type, a name or path a rule refuses (the parser's
    /// words, on one line).
    #[error("profile {origin} is not valid: {}", one_line(&source.to_string()))]
    Malformed {
        origin: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// A CloudNativePG `ImageCatalog` that is not the shape of one.
    #[error("image catalog {origin} is not valid: {}", one_line(&source.to_string()))]
    CatalogMalformed {
        origin: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// A free-text field with what no profile may hold (control characters).
    #[error("profile {origin}: {source}")]
    Field {
        origin: String,
        #[source]
        source: Invalid,
    },
    /// A major in `server.majors` without a `server.image`.
    #[error("profile {origin}: server.image has no entry for major {major}")]
    NoServerImage { origin: String, major: u32 },
    /// A `rootfs` server without `server.paths` for that major.
    #[error("profile {origin}: major {major} has layout rootfs but no server.paths")]
    RootfsWithoutPaths { origin: String, major: u32 },
    /// An extension built for a major, with no version for it.
    #[error("profile {origin}: extension {extension} lists no versions for major {major}")]
    NoVersions {
        origin: String,
        extension: ExtensionName,
        major: u32,
    },
    /// `requires:` naming an extension the profile does not have.
    #[error("profile {origin}: extension {extension} requires unknown extension {requires}")]
    UnknownRequirement {
        origin: String,
        extension: ExtensionName,
        requires: ExtensionName,
    },
}

impl Classify for ProfileError {
    fn kind(&self) -> Kind {
        match self {
            ProfileError::NotFound { .. } | ProfileError::Unreadable { .. } => Kind::Usage,
            _ => Kind::Resolve,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ProfileError::NotFound { .. } => {
                Some("pass --profile PATH to a profile YAML file".into())
            }
            ProfileError::Malformed { .. } => {
                Some("see docs/formats.md for the profile format".into())
            }
            _ => None,
        }
    }
}

/// Keeps parser errors to one line, as every pgoci error is.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
