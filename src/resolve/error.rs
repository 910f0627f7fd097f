//! Why a request cannot be resolved.

use super::*;

/// Why a request cannot be resolved: something the profile does not
/// offer (exit 3, naming what it does), or an image that is not what
/// pgoci can install (its index, manifest or config).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A major the profile has no server for.
    #[error(
        "major {major} is not in profile {profile}; it offers: {}",
        joined(offered)
    )]
    UnknownMajor {
        major: u32,
        profile: String,
        offered: Vec<u32>,
    },
    /// A platform the profile does not list.
    #[error(
        "platform {platform} is not in profile {profile}; it offers: {}",
        joined(offered)
    )]
    PlatformNotInProfile {
        platform: Platform,
        profile: String,
        offered: Vec<String>,
    },
    /// An extension the profile does not have; `nearest` are the names
    /// built for `major` closest to it.
    #[error(
        "unknown extension `{name}` for PostgreSQL {major}; nearest: {}",
        nearest_or_none(nearest)
    )]
    UnknownExtension {
        name: String,
        major: u32,
        nearest: Vec<String>,
    },
    /// An extension the profile has, but not built for `major`.
    #[error(
        "extension {extension} is not built for PostgreSQL {major}; it is for: {}",
        joined(built_for)
    )]
    NotBuiltFor {
        extension: ExtensionName,
        major: u32,
        built_for: Vec<u32>,
    },
    /// `name@version` with a version the profile does not offer.
    #[error(
        "extension {extension} has no version {version} for PostgreSQL {major}; versions: {}",
        joined(versions)
    )]
    UnknownVersion {
        extension: ExtensionName,
        version: String,
        major: u32,
        versions: Vec<String>,
    },
    /// An extension built for `major` with no image given for it.
    #[error("profile gives no image of {extension} for major {major}")]
    NoImage {
        extension: ExtensionName,
        major: u32,
    },
    /// An image index that is not JSON of an index.
    #[error("image index of {reference} is malformed: {source}")]
    IndexMalformed {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
    /// An index whose entry for the platform is an index again.
    #[error("{reference}: nested image indexes are not supported")]
    NestedIndex { reference: String },
    /// An image manifest that is not JSON of a manifest.
    #[error("manifest of {reference} is malformed: {source}")]
    ManifestMalformed {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
    /// A layer of a media type pgoci cannot unpack.
    #[error("{reference} has a layer of unsupported media type {media_type}")]
    UnsupportedLayer {
        reference: String,
        media_type: String,
    },
    /// A config blob declared larger than any config is.
    #[error("config {digest} is {size} bytes, more than a config can be")]
    ConfigTooLarge { digest: Digest, size: u64 },
    /// The config blob's stream broke.
    #[error("reading config {digest}: {source}")]
    ConfigUnreadable {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    /// The config blob's bytes are not what its digest says.
    #[error("config blob {digest} does not match its digest")]
    ConfigDigest { digest: Digest },
}

impl Classify for ResolveError {
    fn kind(&self) -> Kind {
        use ResolveError::*;
        match self {
            IndexMalformed { .. }
            | ManifestMalformed { .. }
            | ConfigTooLarge { .. }
            | ConfigDigest { .. } => Kind::Integrity,
            ConfigUnreadable { .. } => Kind::Registry,
            _ => Kind::Resolve,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            ResolveError::UnknownMajor { .. } => {
                Some("pass --major with one of those, or another --profile".into())
            }
            ResolveError::UnknownExtension { major, .. } => {
                Some(format!("`pgoci catalog --major {major}` lists them all"))
            }
            _ => None,
        }
    }
}

/// `a, b, c`.
fn joined<T: Display>(items: &[T]) -> String {
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn nearest_or_none(nearest: &[String]) -> String {
    if nearest.is_empty() {
        "(none)".into()
    } else {
        nearest.join(", ")
    }
}
