//! The OCI image-spec documents pgoci reads and writes — a layout's
//! `oci-layout` and `index.json`, image manifests and indexes — as the
//! types of the `oci-spec` crate, and what pgoci adds to them:
//!
//! - digests: oci-spec's accept any algorithm; [`digest`] turns one into
//!   pgoci's [`Digest`] (sha256, lower-case hex) or refuses it as that
//!   type's parser does, and nothing builds a path from a digest before;
//! - bytes: oci-spec keeps annotations in a `HashMap`, so [`to_json`]
//!   writes every object's keys in order and the same document is always
//!   the same bytes;
//! - [`Document`]: a manifest or an index as its own bytes say, for the
//!   places that read either.
//!
//! Documents are read size-capped by the caller ([`crate::limits`]).

use crate::digest::Digest;
use crate::error::Result;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

pub use oci_spec::image::{
    ArtifactManifest, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
    OciLayout, Platform,
};

/// The image-layout version pgoci writes and reads (`oci-layout`).
pub const LAYOUT_VERSION: &str = "1.0.0";

/// pgoci's digest of an oci-spec one: `sha256:` and 64 lower-case hex
/// characters, else refused with [`Digest`]'s own message.
pub fn digest(d: &oci_spec::image::Digest) -> Result<Digest> {
    d.as_ref().parse()
}

/// The digest of a descriptor, as pgoci's [`Digest`] (see [`digest`]).
pub fn digest_of(d: &Descriptor) -> Result<Digest> {
    digest(d.digest())
}

/// A descriptor of `size` bytes of `media_type` at `digest`.
pub fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    let digest: oci_spec::image::Digest = digest
        .to_string()
        .parse()
        .expect("a sha256 digest is an OCI digest");
    Descriptor::new(MediaType::from(media_type), size, digest)
}

/// Whether a descriptor is of `digest`.
pub fn describes(d: &Descriptor, digest: &Digest) -> bool {
    d.digest().as_ref() == digest.to_string()
}

/// One annotation of a descriptor.
pub fn annotation<'a>(d: &'a Descriptor, key: &str) -> Option<&'a str> {
    d.annotations().as_ref()?.get(key).map(String::as_str)
}

/// A descriptor's annotations, in order.
pub fn annotations(d: &Descriptor) -> BTreeMap<String, String> {
    sorted(d.annotations().as_ref())
}

/// Annotations as oci-spec keeps them, in order.
fn sorted(map: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The `oci-layout` file of a layout pgoci writes.
pub fn layout() -> OciLayout {
    oci_spec::image::OciLayoutBuilder::default()
        .image_layout_version(LAYOUT_VERSION)
        .build()
        .expect("the one field is set")
}

/// What is wrong with an `oci-layout` file.
#[derive(Debug)]
pub enum LayoutFault {
    /// It is not JSON.
    NotJson(serde_json::Error),
    /// JSON, but not of version [`LAYOUT_VERSION`]: another version, or
    /// none (no `imageLayoutVersion` string).
    Version(Option<String>),
}

/// Checks an `oci-layout` file: oci-spec's [`OciLayout`], of version
/// [`LAYOUT_VERSION`].
pub fn check_layout(bytes: &[u8]) -> std::result::Result<(), LayoutFault> {
    let layout: OciLayout = match serde_json::from_slice(bytes) {
        Ok(layout) => layout,
        // A JSON value without the version string has none.
        Err(e) if e.is_data() => return Err(LayoutFault::Version(None)),
        Err(e) => return Err(LayoutFault::NotJson(e)),
    };
    match layout.image_layout_version().as_str() {
        LAYOUT_VERSION => Ok(()),
        other => Err(LayoutFault::Version(Some(other.to_string()))),
    }
}

/// A document as JSON with the keys of every object in order, so that
/// the same document is always the same bytes (oci-spec's annotations
/// are a `HashMap`, whose order changes from one run to the next).
pub fn to_json<T: serde::Serialize>(doc: &T) -> serde_json::Result<Vec<u8>> {
    let mut value = serde_json::to_value(doc)?;
    value.sort_all_objects();
    serde_json::to_vec(&value)
}

/// Which keys a document has, and the media type it declares (the other
/// values are read once, as the document they make).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    media_type: Option<MediaType>,
    config: Option<serde::de::IgnoredAny>,
    manifests: Option<serde::de::IgnoredAny>,
    blobs: Option<serde::de::IgnoredAny>,
}

/// The media type a manifest declares (`mediaType`), else the one its
/// keys imply: an image index for one with `manifests`, an image manifest
/// for anything else (unreadable bytes too). Only the keys are read, so a
/// document refused later, when read as what it says, still says what it
/// claims to be.
pub fn media_type_of(bytes: &[u8]) -> MediaType {
    match serde_json::from_slice::<Shape>(bytes) {
        Ok(Shape {
            media_type: Some(declared),
            ..
        }) => declared,
        Ok(Shape {
            manifests: Some(_), ..
        }) => MediaType::ImageIndex,
        _ => MediaType::ImageManifest,
    }
}

/// A manifest or an index, as its own bytes say: a document with
/// `config` is an image manifest (OCI or Docker schema 2), one with
/// `manifests` an image index (or Docker manifest list), one with
/// `blobs` the OCI artifact manifest of image-spec 1.1's drafts; anything
/// else is read as an image manifest, and refused as one.
pub enum Document {
    Manifest(Box<ImageManifest>),
    Index(Box<ImageIndex>),
    Artifact(Box<ArtifactManifest>),
}

impl Document {
    pub fn parse(bytes: &[u8]) -> serde_json::Result<Document> {
        let shape: Shape = serde_json::from_slice(bytes)?;
        Ok(match shape {
            Shape {
                config: None,
                manifests: Some(_),
                ..
            } => Document::Index(serde_json::from_slice(bytes)?),
            Shape {
                config: None,
                manifests: None,
                blobs: Some(_),
                ..
            } => Document::Artifact(serde_json::from_slice(bytes)?),
            _ => Document::Manifest(serde_json::from_slice(bytes)?),
        })
    }

    /// Whether it is an index (it lists manifests, not blobs).
    pub fn is_index(&self) -> bool {
        matches!(self, Document::Index(_))
    }

    /// Its own `mediaType`, if it says one.
    pub fn media_type(&self) -> Option<&MediaType> {
        match self {
            Document::Manifest(m) => m.media_type().as_ref(),
            Document::Index(i) => i.media_type().as_ref(),
            Document::Artifact(a) => Some(a.media_type()),
        }
    }

    /// Its `artifactType`, if it says one.
    pub fn artifact_type(&self) -> Option<&MediaType> {
        match self {
            Document::Manifest(m) => m.artifact_type().as_ref(),
            Document::Index(i) => i.artifact_type().as_ref(),
            Document::Artifact(a) => Some(a.artifact_type()),
        }
    }

    /// The config of an image manifest.
    pub fn config(&self) -> Option<&Descriptor> {
        match self {
            Document::Manifest(m) => Some(m.config()),
            _ => None,
        }
    }

    /// The layers of an image manifest, the blobs of an artifact manifest.
    pub fn layers(&self) -> &[Descriptor] {
        match self {
            Document::Manifest(m) => m.layers(),
            Document::Index(_) => &[],
            Document::Artifact(a) => a.blobs(),
        }
    }

    /// What an index lists.
    pub fn manifests(&self) -> &[Descriptor] {
        match self {
            Document::Index(i) => i.manifests(),
            _ => &[],
        }
    }

    /// The manifest it is about (a referrer's subject).
    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Document::Manifest(m) => m.subject().as_ref(),
            Document::Index(i) => i.subject().as_ref(),
            Document::Artifact(a) => a.subject().as_ref(),
        }
    }

    /// Its own annotations, in order.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        sorted(match self {
            Document::Manifest(m) => m.annotations().as_ref(),
            Document::Index(i) => i.annotations().as_ref(),
            Document::Artifact(a) => a.annotations().as_ref(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_digests_become_pgoci_digests() {
        let good = Digest::of_bytes(b"x");
        let d = descriptor("application/x", &good, 1);
        assert_eq!(digest_of(&d).unwrap(), good);
        // oci-spec takes any algorithm; pgoci does not, and says so as
        // its own parser does.
        let other: oci_spec::image::Digest = format!("sha512:{}", "a".repeat(128)).parse().unwrap();
        let err = digest(&other).unwrap_err();
        assert_eq!(err.kind, crate::Kind::Integrity);
        assert!(err.message.contains("only sha256"), "{}", err.message);
        let odd: oci_spec::image::Digest = "md5:1".parse().unwrap();
        assert!(digest(&odd).is_err());
    }

    #[test]
    fn the_same_document_is_always_the_same_bytes() {
        let mut d = descriptor("application/x", &Digest::of_bytes(b"x"), 1);
        let many: HashMap<String, String> = (0..32)
            .map(|i| (format!("k{i:02}"), i.to_string()))
            .collect();
        d.set_annotations(Some(many));
        let text = String::from_utf8(to_json(&d).unwrap()).unwrap();
        let keys: Vec<usize> = (0..32)
            .map(|i| text.find(&format!("\"k{i:02}\"")).unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.starts_with(r#"{"annotations":"#), "{text}");
        assert_eq!(
            serde_json::to_vec(&layout()).unwrap(),
            br#"{"imageLayoutVersion":"1.0.0"}"#
        );
    }

    #[test]
    fn an_oci_layout_is_json_of_version_1_0_0() {
        assert!(check_layout(&serde_json::to_vec(&layout()).unwrap()).is_ok());
        assert!(matches!(
            check_layout(br#"{"imageLayoutVersion":"1.1.0"}"#),
            Err(LayoutFault::Version(Some(v))) if v == "1.1.0"
        ));
        for none in [&br#"{}"#[..], br#"{"imageLayoutVersion":1}"#, b"[]"] {
            assert!(matches!(
                check_layout(none),
                Err(LayoutFault::Version(None))
            ));
        }
        assert!(matches!(
            check_layout(b"{not json"),
            Err(LayoutFault::NotJson(_))
        ));
    }

    #[test]
    fn a_document_is_what_its_keys_say() {
        let d = Digest::of_bytes(b"c");
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d}","size":1}},"layers":[]}}"#
        );
        let doc = Document::parse(manifest.as_bytes()).unwrap();
        assert!(!doc.is_index());
        assert_eq!(doc.config().map(|c| c.size()), Some(1));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":1}}]}}"#
        );
        let doc = Document::parse(index.as_bytes()).unwrap();
        assert!(doc.is_index());
        assert_eq!(doc.manifests().len(), 1);
        assert!(doc.layers().is_empty());
        let artifact = format!(
            r#"{{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","artifactType":"application/spdx+json","blobs":[{{"mediaType":"application/spdx+json","digest":"{d}","size":1}}]}}"#
        );
        let doc = Document::parse(artifact.as_bytes()).unwrap();
        assert_eq!(doc.layers().len(), 1);
        assert_eq!(
            doc.artifact_type().map(ToString::to_string).as_deref(),
            Some("application/spdx+json")
        );
        assert!(Document::parse(b"{}").is_err());
        // What a document says it is, its values unread.
        assert_eq!(media_type_of(manifest.as_bytes()), MediaType::ImageManifest);
        assert_eq!(media_type_of(index.as_bytes()), MediaType::ImageIndex);
        assert_eq!(
            media_type_of(artifact.as_bytes()),
            MediaType::ArtifactManifest
        );
        let list = br#"{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":"not a list"}"#;
        assert_eq!(
            media_type_of(list).as_ref(),
            "application/vnd.docker.distribution.manifest.list.v2+json"
        );
        assert_eq!(
            media_type_of(br#"{"manifests":[{"digest":1}]}"#),
            MediaType::ImageIndex
        );
        for other in [
            &b"{}"[..],
            b"[]",
            b"{not json",
            br#"{"mediaType":1,"manifests":[]}"#,
        ] {
            assert_eq!(media_type_of(other), MediaType::ImageManifest);
        }
        assert!(Document::parse(b"[]").is_err());
    }
}
