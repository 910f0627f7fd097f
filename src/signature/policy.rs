//! Which signer each image of a request must have: the profile's
//! `signatures:` (for all images, overridden per image) or, above them,
//! the command line's `--require-signature-key`.
//!
//! ```yaml
//! signatures: {key: /etc/pgoci/cosign.pub}          # every image
//! server:
//!   signatures:                                    # the server only
//!     keyless: {issuer: https://token.actions.githubusercontent.com,
//!               subject: https://github.com/o/r/.github/workflows/release.yml@refs/heads/main,
//!               # or subject_regexp: "https://github.com/o/r/.+", matched whole
//!               trusted_root: /etc/pgoci/trusted_root.json}
//! extensions:
//!   pg_cron: {..., signatures: {key: keys/cron.pub}}
//! ```
//! Relative paths are relative to the profile file's directory.

use super::{Policy, SubjectMatch};
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A `signatures:` value as a profile writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SignatureSpec {
    /// A cosign public key (PEM).
    Key(PathBuf),
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
    pub trusted_root: PathBuf,
}

impl KeylessSpec {
    fn subject(&self) -> Result<SubjectMatch> {
        match (&self.subject, &self.subject_regexp) {
            (Some(s), None) => Ok(SubjectMatch::from(s.as_str())),
            (None, Some(p)) => SubjectMatch::pattern(p),
            _ => Err(Error::resolve(
                "signatures.keyless needs exactly one of subject and subject_regexp",
            )),
        }
    }
}

impl SignatureSpec {
    /// The policy, with files read relative to `base` (the profile's directory).
    pub fn load(&self, base: &Path) -> Result<Policy> {
        let at = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        match self {
            SignatureSpec::Key(path) => Policy::key_file(&at(path)),
            SignatureSpec::Keyless(k) => {
                Policy::keyless(&k.issuer, k.subject()?, &at(&k.trusted_root))
            }
        }
    }
}

/// The signer each image needs, if any.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// For every image without its own.
    pub all: Option<Policy>,
    pub server: Option<Policy>,
    /// By extension name.
    pub extensions: BTreeMap<String, Policy>,
}

impl Policies {
    /// One policy for every image (`--require-signature-key`).
    pub fn every(policy: Policy) -> Self {
        Policies {
            all: Some(policy),
            ..Default::default()
        }
    }

    /// From a profile's `signatures:` entries (`all`, the server's, and
    /// each extension's), reading key files relative to `base`.
    pub fn from_specs<'a>(
        all: Option<&SignatureSpec>,
        server: Option<&SignatureSpec>,
        extensions: impl IntoIterator<Item = (String, Option<&'a SignatureSpec>)>,
        base: &Path,
    ) -> Result<Self> {
        let mut policies = Policies {
            all: all.map(|s| s.load(base)).transpose()?,
            server: server.map(|s| s.load(base)).transpose()?,
            extensions: BTreeMap::new(),
        };
        for (name, spec) in extensions {
            if let Some(spec) = spec {
                policies.extensions.insert(
                    name.clone(),
                    spec.load(base)
                        .map_err(|e| e.context(format!("signatures of extension {name}")))?,
                );
            }
        }
        Ok(policies)
    }

    /// Whether any image needs a signature.
    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.server.is_none() && self.extensions.is_empty()
    }

    pub fn for_server(&self) -> Option<&Policy> {
        self.server.as_ref().or(self.all.as_ref())
    }

    pub fn for_extension(&self, name: &str) -> Option<&Policy> {
        self.extensions.get(name).or(self.all.as_ref())
    }
}

impl Policies {
    /// A profile's `signatures:` entries; relative paths are relative to
    /// the profile file's directory (the current one for an embedded
    /// profile).
    pub fn from_profile(profile: &crate::profile::Profile) -> Result<Self> {
        let base = match &profile.dir {
            Some(d) => d.clone(),
            None => std::env::current_dir()
                .map_err(|e| Error::host(format!("cannot read the current directory: {e}")))?,
        };
        Policies::from_specs(
            profile.signatures.as_ref(),
            profile.server.signatures.as_ref(),
            profile
                .extensions
                .iter()
                .map(|(n, e)| (n.to_string(), e.signatures.as_ref())),
            &base,
        )
        .map_err(|e| e.context(format!("profile {}", profile.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_in_both_forms() {
        let key: SignatureSpec = serde_saphyr::from_str("key: keys/cosign.pub").unwrap();
        assert_eq!(key, SignatureSpec::Key("keys/cosign.pub".into()));
        let keyless: SignatureSpec = serde_saphyr::from_str(
            "keyless: {issuer: https://i.example, subject: me@example.org, trusted_root: r.json}",
        )
        .unwrap();
        assert!(
            matches!(keyless, SignatureSpec::Keyless(k) if k.subject.as_deref() == Some("me@example.org"))
        );
        assert!(serde_saphyr::from_str::<SignatureSpec>("kee: x").is_err());
        assert!(serde_saphyr::from_str::<SignatureSpec>("keyless: {issuer: i}").is_err());
    }
}
