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

use super::error::SignatureError;
use super::{Policy, SubjectMatch};
use crate::error::Result;
use std::collections::BTreeMap;
use std::path::Path;

pub use crate::profile::{KeylessSpec, SignatureSpec};

/// The certificate subject a keyless spec asks for.
fn keyless_subject(k: &KeylessSpec) -> Result<SubjectMatch> {
    match (&k.subject, &k.subject_regexp) {
        (Some(s), None) => Ok(SubjectMatch::from(s.as_str())),
        (None, Some(p)) => SubjectMatch::pattern(p),
        _ => Err(SignatureError::AmbiguousSubject.into()),
    }
}

/// The policy a profile's spec names, with files read relative to `base`
/// (the profile's directory).
pub fn load(spec: &SignatureSpec, base: &Path) -> Result<Policy> {
    let at = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    match spec {
        SignatureSpec::Key(path) => Policy::key_file(&at(path)),
        SignatureSpec::Keyless(k) => {
            Policy::keyless(&k.issuer, keyless_subject(k)?, &at(&k.trusted_root))
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
            all: all.map(|s| load(s, base)).transpose()?,
            server: server.map(|s| load(s, base)).transpose()?,
            extensions: BTreeMap::new(),
        };
        for (name, spec) in extensions {
            if let Some(spec) = spec {
                policies.extensions.insert(
                    name.clone(),
                    load(spec, base)
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
            None => {
                std::env::current_dir().map_err(|source| SignatureError::CurrentDir { source })?
            }
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
