//! Profiles (catalogs): the human-written YAML that maps a PostgreSQL major
//! and extension names to OCI references, plus the facts install needs about
//! each extension (preload, settings, library paths). Shipped profiles from
//! `profiles/` are embedded in the binary; others are read from
//! `/etc/pgoci/profiles` or a path.

use crate::digest::Digest;
use crate::error::Result;
use crate::limits::{read_file_capped, ReadError, DOCUMENT_CAP};
use crate::names::{
    check_text, ConfigParam, EnvKey, ExtensionName, ImagePath, Invalid, LibraryName,
};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Profiles compiled into the binary: (name, YAML text).
const EMBEDDED: &[(&str, &str)] = &[
    (
        "cnpg-trixie",
        include_str!("../../profiles/cnpg-trixie.yaml"),
    ),
    (
        "cnpg-bookworm",
        include_str!("../../profiles/cnpg-bookworm.yaml"),
    ),
];

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "cnpg-trixie";

/// A value given once for all majors, or per major (`{17: a, 18: b}`).
#[derive(Debug, Clone)]
pub enum PerMajor<T> {
    PerMajor(BTreeMap<u32, T>),
    All(T),
}

/// A map whose keys are all majors is per major; anything else is one
/// value for all. Decided by hand (not `untagged`) so that an error inside
/// the value (a bad path, an unknown key) keeps its message.
impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for PerMajor<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        let per_major = match &value {
            serde_json::Value::Object(map) if !map.is_empty() => map
                .keys()
                .map(|k| k.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>(),
            _ => None,
        };
        match (per_major, value) {
            (Some(majors), serde_json::Value::Object(map)) => {
                let mut out = BTreeMap::new();
                for (major, (_, v)) in majors.into_iter().zip(map) {
                    let v = T::deserialize(v)
                        .map_err(|e| D::Error::custom(format!("major {major}: {e}")))?;
                    out.insert(major, v);
                }
                Ok(PerMajor::PerMajor(out))
            }
            (_, value) => T::deserialize(value)
                .map(PerMajor::All)
                .map_err(D::Error::custom),
        }
    }
}

impl<T> PerMajor<T> {
    /// The value for `major`, if the profile gives one.
    pub fn get(&self, major: u32) -> Option<&T> {
        match self {
            PerMajor::All(v) => Some(v),
            PerMajor::PerMajor(map) => map.get(&major),
        }
    }

    /// Every value given, for checks that apply to all majors.
    pub fn values(&self) -> Box<dyn Iterator<Item = &T> + '_> {
        match self {
            PerMajor::All(v) => Box::new(std::iter::once(v)),
            PerMajor::PerMajor(map) => Box::new(map.values()),
        }
    }
}

impl<T: Default> Default for PerMajor<T> {
    fn default() -> Self {
        PerMajor::All(T::default())
    }
}

/// How a server artifact lays out its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// The layer root is a relocatable install prefix (`bin/`, `lib/`, `share/`).
    Tree,
    /// A full OS image; only `server.paths` are taken from it.
    Rootfs,
}

/// For `rootfs` servers: where the server lives inside the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootfsPaths {
    pub bin: ImagePath,
    pub lib: ImagePath,
    pub share: ImagePath,
}

/// The `server:` stanza.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub image: PerMajor<String>,
    pub majors: Vec<u32>,
    #[serde(default = "default_layout")]
    pub layout: PerMajor<Layout>,
    #[serde(default)]
    pub paths: Option<PerMajor<RootfsPaths>>,
    /// Who must have signed the server image (overrides the profile's).
    #[serde(default)]
    pub signatures: Option<SignatureSpec>,
}

fn default_layout() -> PerMajor<Layout> {
    PerMajor::All(Layout::Rootfs)
}

/// One entry of `extensions:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionSpec {
    pub image: PerMajor<String>,
    /// Versions offered (for all majors or per major); the first is the
    /// default.
    pub versions: PerMajor<Vec<String>>,
    pub majors: Vec<u32>,
    #[serde(default)]
    pub preload: Option<LibraryName>,
    #[serde(default)]
    pub settings: BTreeMap<ConfigParam, String>,
    #[serde(default)]
    pub requires: Vec<ExtensionName>,
    #[serde(default)]
    pub ld_library_path: PerMajor<Vec<ImagePath>>,
    #[serde(default)]
    pub env: PerMajor<BTreeMap<EnvKey, String>>,
    #[serde(default)]
    pub bin_path: PerMajor<Vec<ImagePath>>,
    /// Who must have signed this extension's image (overrides the profile's).
    #[serde(default)]
    pub signatures: Option<SignatureSpec>,
}

impl ExtensionSpec {
    /// The versions offered for `major`, the default first.
    pub fn versions(&self, major: u32) -> &[String] {
        self.versions.get(major).map_or(&[], Vec::as_slice)
    }

    /// The library directories of the image built for `major`.
    pub fn ld_library_path(&self, major: u32) -> Vec<ImagePath> {
        self.ld_library_path.get(major).cloned().unwrap_or_default()
    }

    /// The environment the image built for `major` needs.
    pub fn env(&self, major: u32) -> BTreeMap<EnvKey, String> {
        self.env.get(major).cloned().unwrap_or_default()
    }

    /// The program directories of the image built for `major`.
    pub fn bin_path(&self, major: u32) -> Vec<ImagePath> {
        self.bin_path.get(major).cloned().unwrap_or_default()
    }
}

/// A parsed profile, with the digest of the bytes it was read from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_platforms")]
    pub platforms: Vec<String>,
    pub server: ServerSpec,
    #[serde(default)]
    pub extensions: BTreeMap<ExtensionName, ExtensionSpec>,
    /// Who must have signed every image (`signatures: {key: PATH}` or
    /// `{keyless: {issuer, subject, trusted_root}}`).
    #[serde(default)]
    pub signatures: Option<SignatureSpec>,
    #[serde(skip)]
    pub digest: Option<Digest>,
    /// The directory of the profile file, for its relative paths (none
    /// for embedded profiles).
    #[serde(skip)]
    pub dir: Option<std::path::PathBuf>,
}

fn default_platforms() -> Vec<String> {
    vec!["linux/amd64".into(), "linux/arm64".into()]
}

impl Profile {
    /// Parses YAML text; `origin` names the source in errors. A
    /// CloudNativePG `ImageCatalog`/`ClusterImageCatalog` is read too.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        if text.lines().any(|l| {
            let l = l.trim();
            l == "kind: ImageCatalog" || l == "kind: ClusterImageCatalog"
        }) {
            return cnpg::parse(text, origin);
        }
        let mut profile: Profile =
            serde_saphyr::from_str(text).map_err(|source| ProfileError::Malformed {
                origin: origin.to_string(),
                source: Box::new(source),
            })?;
        profile.digest = Some(Digest::of_bytes(text.as_bytes()));
        profile.validate(origin)?;
        Ok(profile)
    }

    /// Loads a profile by name (embedded, then `<root>/etc/pgoci/profiles`) or path.
    pub fn load(name_or_path: &str, root: &Path) -> Result<Self> {
        let as_path = Path::new(name_or_path);
        if name_or_path.contains('/') || name_or_path.ends_with(".yaml") || as_path.is_file() {
            return Self::parse(&read_profile(as_path)?, &as_path.display().to_string())
                .map(|p| p.in_dir(as_path.parent()));
        }
        if let Some((_, text)) = EMBEDDED.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(text, name_or_path);
        }
        let etc = root
            .join("etc/pgoci/profiles")
            .join(format!("{name_or_path}.yaml"));
        if etc.is_file() {
            return Self::parse(&read_profile(&etc)?, &etc.display().to_string())
                .map(|p| p.in_dir(etc.parent()));
        }
        Err(ProfileError::NotFound {
            name: name_or_path.to_string(),
            embedded: EMBEDDED.iter().map(|(n, _)| *n).collect(),
            looked_in: etc,
        }
        .into())
    }

    fn in_dir(self, dir: Option<&Path>) -> Self {
        Profile {
            dir: dir.map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".").to_path_buf()
                } else {
                    d.to_path_buf()
                }
            }),
            ..self
        }
    }

    fn validate(&self, origin: &str) -> Result<(), ProfileError> {
        let origin = || origin.to_string();
        self.check_text().map_err(|source| ProfileError::Field {
            origin: origin(),
            source,
        })?;
        for &major in &self.server.majors {
            if self.server.image.get(major).is_none() {
                return Err(ProfileError::NoServerImage {
                    origin: origin(),
                    major,
                });
            }
            if self.server_layout(major) == Layout::Rootfs && self.server_paths(major).is_none() {
                return Err(ProfileError::RootfsWithoutPaths {
                    origin: origin(),
                    major,
                });
            }
        }
        for (name, ext) in &self.extensions {
            if let Some(&major) = ext.majors.iter().find(|m| ext.versions(**m).is_empty()) {
                return Err(ProfileError::NoVersions {
                    origin: origin(),
                    extension: name.clone(),
                    major,
                });
            }
            if let Some(req) = ext
                .requires
                .iter()
                .find(|r| !self.extensions.contains_key(*r))
            {
                return Err(ProfileError::UnknownRequirement {
                    origin: origin(),
                    extension: name.clone(),
                    requires: req.clone(),
                });
            }
        }
        Ok(())
    }

    /// Refuses control characters in every free-text field, naming it.
    fn check_text(&self) -> Result<(), Invalid> {
        check_text("name", &self.name)?;
        check_text("description", &self.description)?;
        for p in &self.platforms {
            check_text("platforms", p)?;
        }
        let images = |at: &str, image: &PerMajor<String>| -> Result<(), Invalid> {
            match image {
                PerMajor::All(i) => check_text(at, i),
                PerMajor::PerMajor(m) => m.values().try_for_each(|i| check_text(at, i)),
            }
        };
        images("server.image", &self.server.image)?;
        for (name, e) in &self.extensions {
            let at = format!("extensions.{name}");
            images(&format!("{at}.image"), &e.image)?;
            for v in e.versions.values().flatten() {
                check_text(&format!("{at}.versions"), v)?;
            }
            for (k, v) in &e.settings {
                check_text(&format!("{at}.settings.{k}"), v)?;
            }
            for (k, v) in e.env.values().flatten() {
                check_text(&format!("{at}.env.{k}"), v)?;
            }
        }
        Ok(())
    }

    /// The server layout for a major.
    pub fn server_layout(&self, major: u32) -> Layout {
        self.server
            .layout
            .get(major)
            .copied()
            .unwrap_or(Layout::Rootfs)
    }

    /// The rootfs paths for a major, with `{major}` substituted.
    pub fn server_paths(&self, major: u32) -> Option<RootfsPaths> {
        let p = self.server.paths.as_ref()?.get(major)?;
        // `{major}` becomes digits, so a valid template stays valid.
        let sub = |s: &ImagePath| ImagePath::parse(&substitute(s.as_str(), major, "")).ok();
        Some(RootfsPaths {
            bin: sub(&p.bin)?,
            lib: sub(&p.lib)?,
            share: sub(&p.share)?,
        })
    }

    /// Extensions built for a major, by name.
    pub fn extensions_for(
        &self,
        major: u32,
    ) -> impl Iterator<Item = (&ExtensionName, &ExtensionSpec)> {
        self.extensions
            .iter()
            .filter(move |(_, e)| e.majors.contains(&major))
    }
}

mod cnpg;
mod error;
pub use error::ProfileError;

/// Reads a profile file of at most [`DOCUMENT_CAP`] bytes (exit 3 beyond).
fn read_profile(path: &Path) -> Result<String, ProfileError> {
    let bytes = read_file_capped(path, DOCUMENT_CAP).map_err(|e| match e {
        ReadError::Io(source) => ProfileError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
        ReadError::TooLarge(limit) => ProfileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        },
    })?;
    String::from_utf8(bytes).map_err(|source| ProfileError::NotUtf8 {
        path: path.to_path_buf(),
        source,
    })
}

/// Substitutes `{major}` and `{version}` in a profile string.
pub fn substitute(template: &str, major: u32, version: &str) -> String {
    template
        .replace("{major}", &major.to_string())
        .replace("{version}", version)
}

/// A `signatures:` value as a profile writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SignatureSpec {
    /// A cosign public key (PEM).
    Key(std::path::PathBuf),
    /// A keyless identity and the roots its certificates chain to.
    Keyless(KeylessSpec),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeylessSpec {
    pub issuer: String,
    /// The certificate's SAN exactly…
    #[serde(default)]
    pub subject: Option<String>,
    /// …or any SAN this pattern matches whole (one of the two).
    #[serde(default)]
    pub subject_regexp: Option<String>,
    /// A PEM CA bundle or a Sigstore `trusted_root.json`.
    pub trusted_root: std::path::PathBuf,
}

#[cfg(test)]
mod tests;
