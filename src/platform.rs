//! Platforms (`linux/amd64`) and picking a platform manifest out of an
//! image index. Attestation entries (`unknown/unknown`) are never picked.

use crate::error::{Classify, Kind};
use serde::Deserialize;
use std::fmt;
use std::str::FromStr;

/// An OS/architecture pair, with an optional variant (`arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: None,
        }
    }

    /// Whether an index entry's platform fits this one. A variant on our
    /// side must match; an entry's variant is accepted when we name none.
    fn accepts(&self, entry: &IndexPlatform) -> bool {
        entry.os == self.os
            && entry.architecture == self.arch
            && (self.variant.is_none() || self.variant == entry.variant)
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(PlatformError::Malformed(s.to_string())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The `platform` object of an image index entry.
#[derive(Debug, Clone, Deserialize)]
pub struct IndexPlatform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl fmt::Display for IndexPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Platform {
            os: self.os.clone(),
            arch: self.architecture.clone(),
            variant: self.variant.clone(),
        }
        .fmt(f)
    }
}

/// One entry of an image index's `manifests` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<IndexPlatform>,
}

/// Picks the entry for `want` from an index; an error lists what is offered.
pub fn pick<'a>(
    entries: &'a [IndexEntry],
    want: &Platform,
    reference: &str,
) -> Result<&'a IndexEntry, PlatformError> {
    if let Some(hit) = entries
        .iter()
        .find(|e| e.platform.as_ref().is_some_and(|p| want.accepts(p)))
    {
        return Ok(hit);
    }
    Err(PlatformError::NotInIndex {
        reference: reference.to_string(),
        want: want.clone(),
        offered: entries
            .iter()
            .filter_map(|e| e.platform.as_ref())
            .filter(|p| p.os != "unknown")
            .map(|p| p.to_string())
            .collect(),
    })
}

/// A platform that is not one, or that an image does not offer.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// `--platform` given as something other than `OS/ARCH[/VARIANT]`.
    #[error("--platform `{0}` is not OS/ARCH (for example linux/amd64)")]
    Malformed(String),
    /// An image index with no manifest for the platform wanted; `offered`
    /// are the platforms it has (attestations left out).
    #[error(
        "{reference} has no image for platform {want}; it offers: {}",
        list_or_none(offered)
    )]
    NotInIndex {
        reference: String,
        want: Platform,
        offered: Vec<String>,
    },
}

fn list_or_none(offered: &[String]) -> String {
    if offered.is_empty() {
        "none".into()
    } else {
        offered.join(", ")
    }
}

impl Classify for PlatformError {
    fn kind(&self) -> Kind {
        match self {
            PlatformError::Malformed(_) => Kind::Usage,
            PlatformError::NotInIndex { .. } => Kind::Resolve,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            PlatformError::Malformed(_) => None,
            PlatformError::NotInIndex { .. } => Some("pass --platform with one of those".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, digest: &str) -> IndexEntry {
        IndexEntry {
            media_type: None,
            digest: digest.into(),
            size: 1,
            platform: Some(IndexPlatform {
                os: os.into(),
                architecture: arch.into(),
                variant: None,
            }),
        }
    }

    #[test]
    fn skips_attestations_and_lists_offers() {
        let entries = vec![
            entry("unknown", "unknown", "a"),
            entry("linux", "arm64", "b"),
        ];
        let amd: Platform = "linux/amd64".parse().unwrap();
        let err = pick(&entries, &amd, "r/x:1").unwrap_err();
        assert!(
            matches!(&err, PlatformError::NotInIndex { offered, .. } if offered == &["linux/arm64"]),
            "{err:?}"
        );
        let err = crate::error::Error::from(err);
        assert_eq!(err.kind, Kind::Resolve);
        assert_eq!(
            err.message,
            "r/x:1 has no image for platform linux/amd64; it offers: linux/arm64"
        );
        assert_eq!(
            err.hint.as_deref(),
            Some("pass --platform with one of those")
        );
        let arm: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(pick(&entries, &arm, "r").unwrap().digest, "b");
    }

    #[test]
    fn a_platform_that_is_not_os_arch_is_a_usage_error() {
        let err = "linux".parse::<Platform>().unwrap_err();
        assert!(matches!(&err, PlatformError::Malformed(s) if s == "linux"));
        let err = crate::error::Error::from(err);
        assert_eq!(err.kind, Kind::Usage);
        assert_eq!(
            err.message,
            "--platform `linux` is not OS/ARCH (for example linux/amd64)"
        );
    }
}
