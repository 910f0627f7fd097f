//! Platforms (`linux/amd64`) and picking a platform manifest out of an
//! image index. Attestation entries (`unknown/unknown`) are never picked.

use crate::error::{Error, Result};
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
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
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
            _ => Err(Error::usage(format!(
                "--platform `{s}` is not OS/ARCH (for example linux/amd64)"
            ))),
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
) -> Result<&'a IndexEntry> {
    if let Some(hit) = entries
        .iter()
        .find(|e| e.platform.as_ref().is_some_and(|p| want.accepts(p)))
    {
        return Ok(hit);
    }
    let offered: Vec<String> = entries
        .iter()
        .filter_map(|e| e.platform.as_ref())
        .filter(|p| p.os != "unknown")
        .map(|p| p.to_string())
        .collect();
    Err(Error::resolve(format!(
        "{reference} has no image for platform {want}; it offers: {}",
        if offered.is_empty() {
            "none".into()
        } else {
            offered.join(", ")
        }
    ))
    .hint("pass --platform with one of those"))
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
            err.message.contains("offers: linux/arm64"),
            "{}",
            err.message
        );
        let arm: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(pick(&entries, &arm, "r").unwrap().digest, "b");
    }
}
