//! Platforms (`linux/amd64`) and picking a platform manifest out of an
//! image index. Attestation entries (`unknown/unknown`) are never picked.

use crate::error::{Classify, Kind};
use crate::oci::Descriptor;
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

    /// The platform of an index entry, as oci-spec read it (its os and
    /// architecture as the strings they were, but for oci-spec's one
    /// lossy name: `armbe` reads as `arm64be`).
    fn of_entry(entry: &crate::oci::Platform) -> Self {
        Platform {
            os: entry.os().to_string(),
            arch: entry.architecture().to_string(),
            variant: entry.variant().clone(),
        }
    }

    /// Whether an index entry's platform fits this one. A variant on our
    /// side must match; an entry's variant is accepted when we name none.
    fn accepts(&self, entry: &Platform) -> bool {
        entry.os == self.os
            && entry.arch == self.arch
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

/// Picks the entry for `want` from an index; an error lists what is offered.
pub fn pick<'a>(
    entries: &'a [Descriptor],
    want: &Platform,
    reference: &str,
) -> Result<&'a Descriptor, PlatformError> {
    let platforms = || {
        entries
            .iter()
            .filter_map(|e| Some((e, Platform::of_entry(e.platform().as_ref()?))))
    };
    if let Some((hit, _)) = platforms().find(|(_, p)| want.accepts(p)) {
        return Ok(hit);
    }
    Err(PlatformError::NotInIndex {
        reference: reference.to_string(),
        want: want.clone(),
        offered: platforms()
            .filter(|(_, p)| p.os != "unknown")
            .map(|(_, p)| p.to_string())
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

    fn entry(os: &str, arch: &str, variant: Option<&str>, seed: &[u8]) -> Descriptor {
        let mut d = crate::oci::descriptor(
            "application/vnd.oci.image.manifest.v1+json",
            &crate::digest::Digest::of_bytes(seed),
            1,
        );
        let mut platform = crate::oci::Platform::default();
        platform.set_os(os.into());
        platform.set_architecture(arch.into());
        platform.set_variant(variant.map(String::from));
        d.set_platform(Some(platform));
        d
    }

    fn digest(d: &Descriptor) -> crate::digest::Digest {
        crate::oci::digest_of(d).unwrap()
    }

    #[test]
    fn skips_attestations_and_lists_offers() {
        let entries = vec![
            entry("unknown", "unknown", None, b"a"),
            entry("linux", "arm64", None, b"b"),
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
        assert_eq!(
            digest(pick(&entries, &arm, "r").unwrap()),
            crate::digest::Digest::of_bytes(b"b")
        );
    }

    #[test]
    fn a_variant_asked_for_must_match_one_not_asked_for_need_not() {
        let mut entries = vec![
            entry("linux", "arm", Some("v6"), b"v6"),
            entry("linux", "arm", Some("v7"), b"v7"),
        ];
        let of = |d: &Descriptor| digest(d);
        let v7: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(of(pick(&entries, &v7, "r").unwrap()), digest(&entries[1]));
        let any: Platform = "linux/arm".parse().unwrap();
        assert_eq!(of(pick(&entries, &any, "r").unwrap()), digest(&entries[0]));
        let v8: Platform = "linux/arm/v8".parse().unwrap();
        let err = pick(&entries, &v8, "r").unwrap_err();
        assert_eq!(
            err.to_string(),
            "r has no image for platform linux/arm/v8; it offers: linux/arm/v6, linux/arm/v7"
        );
        // An entry without a platform is never picked, nor offered.
        entries[0].set_platform(None);
        entries[1].set_platform(None);
        assert_eq!(
            pick(&entries, &any, "r").unwrap_err().to_string(),
            "r has no image for platform linux/arm; it offers: none"
        );
    }

    #[test]
    fn index_entries_read_as_oci_descriptors_keep_their_platform_names() {
        // A Docker manifest list entry, with the keys Docker adds.
        const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
        let d = crate::digest::Digest::of_bytes(b"m");
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{d}","size":7,"platform":{{"architecture":"386","os":"linux","os.features":["x"],"features":["sse4"]}}}},{{"mediaType":"{}","digest":"{d}","size":7,"platform":{{"architecture":"riscv64","os":"freebsd"}}}}]}}"#,
            "application/vnd.docker.distribution.manifest.list.v2+json",
            DOCKER_MANIFEST,
            DOCKER_MANIFEST,
        );
        let index: crate::oci::ImageIndex = serde_json::from_str(&list).unwrap();
        let want: Platform = "linux/amd64".parse().unwrap();
        let err = pick(index.manifests(), &want, "r").unwrap_err();
        assert_eq!(
            err.to_string(),
            "r has no image for platform linux/amd64; it offers: linux/386, freebsd/riscv64"
        );
        let want: Platform = "linux/386".parse().unwrap();
        let hit = pick(index.manifests(), &want, "r").unwrap();
        assert_eq!(hit.media_type().as_ref(), DOCKER_MANIFEST);
        assert_eq!(digest(hit), d);
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
