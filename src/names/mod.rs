//! The trust boundary for strings. pgoci runs as root and acts on what a
//! lock, bundle, profile or flag says; every name that becomes a path
//! component, a config key or an environment variable goes through one of
//! these types, which cannot hold a bad value. Free text that is rendered
//! into a file goes through [`check_text`].
//!
//! Parsing returns [`Invalid`]; the caller picks the exit code by where the
//! string came from: [`Invalid::resolve`] for profiles (3),
//! [`Invalid::integrity`] for locks and bundles (5), [`Invalid::usage`] for
//! flags (2).

use crate::error::{Error, Kind};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::fmt;
use std::path::Path;

/// A string refused by one of the rules of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// What the string was meant to be (`extension name`, `settings key`…).
    pub what: String,
    /// The refused value (shown escaped, shortened when long).
    pub value: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 80;
        let shown: String = self.value.chars().take(SHOWN).collect();
        let more = if self.value.chars().count() > SHOWN {
            "…"
        } else {
            ""
        };
        write!(f, "invalid {} {:?}{more}: {}", self.what, shown, self.rule)
    }
}

impl std::error::Error for Invalid {}

impl Invalid {
    pub(crate) fn new(what: impl Into<String>, value: &str, rule: &'static str) -> Self {
        Invalid {
            what: what.into(),
            value: value.to_string(),
            rule,
        }
    }

    /// The error with the kind for its origin.
    pub fn into_error(self, kind: Kind) -> Error {
        Error::new(kind, self.to_string())
    }
    /// From a flag: exit 2.
    pub fn usage(self) -> Error {
        self.into_error(Kind::Usage)
    }
    /// From a profile: exit 3.
    pub fn resolve(self) -> Error {
        self.into_error(Kind::Resolve)
    }
    /// From a lock or bundle: exit 5.
    pub fn integrity(self) -> Error {
        self.into_error(Kind::Integrity)
    }
}

/// Refuses control characters (newline, CR, NUL, tab, DEL, C1) in a value
/// rendered into a config file, a unit or a terminal; `field` names it.
pub fn check_text(field: &str, value: &str) -> Result<(), Invalid> {
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            value,
            "control characters (newline, CR, NUL, tab, DEL) are not allowed",
        ));
    }
    Ok(())
}

/// The `--prefix` directory: absolute, without `..`, and without the
/// characters that separate path lists (`:` in `extension_control_path`,
/// `dynamic_library_path` and `LD_LIBRARY_PATH`; `;` in the last too) or
/// control characters, since generation paths under it are written into
/// such lists. Used as clap's value parser (a bad prefix is exit 2).
pub fn host_prefix(value: &str) -> Result<std::path::PathBuf, Invalid> {
    let path = Path::new(value);
    let bad = |rule| Err(Invalid::new("--prefix", value, rule));
    if !path.is_absolute() {
        return bad("must be an absolute directory");
    }
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return bad("must not contain `..`");
    }
    if value
        .chars()
        .any(|c| c == ':' || c == ';' || c.is_control())
    {
        return bad(
            "must not contain `:`, `;` or control characters (paths under it go into path lists)",
        );
    }
    Ok(path.to_path_buf())
}

/// `[a-z0-9][a-z0-9_-]{0,62}`: safe as a path component, a unit name part
/// and a PostgreSQL name (63 = NAMEDATALEN - 1).
fn is_short_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn is_env_key(s: &str) -> bool {
    s.len() <= 255 && is_identifier(s)
}

/// PostgreSQL's configuration-file lexer (guc-file.l) reads a parameter
/// name as `ID` or `QUALIFIED_ID` = `ID "." ID`, with `ID` =
/// `{LETTER}{LETTER_OR_DIGIT}*` and no `$`: SET accepts more (several dots,
/// `$`) but such a name written into pgoci.conf would stop the server.
fn is_config_param(s: &str) -> bool {
    if s.len() > 255 {
        return false;
    }
    match s.split_once('.') {
        None => is_identifier(s),
        Some((a, b)) => is_identifier(a) && is_identifier(b),
    }
}

/// A library name for `shared_preload_libraries`: no separators, no path.
fn is_library(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// A locale name as initdb, glibc and ICU take it (`C`, `POSIX`,
/// `C.UTF-8`, `de_DE.UTF-8`, `de_DE.utf8`, `sr_RS@latin`, `en_US`, an ICU
/// tag such as `und-u-ks-level2`): ASCII letters, digits, `_`, `.`, `-`
/// and `@`, starting with a letter, digit or `_`, at most 127 bytes — no
/// spaces, quotes, `;`, `=` or `/` (a name is never a path).
fn is_locale_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 127
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'@'))
}

/// A path inside an image: `/` in front is allowed (and ignored), one `/`
/// at the end too; every component is a plain name (no `.`, `..`, empty).
fn is_image_path(s: &str) -> bool {
    if s.len() > 4096 || s.chars().any(char::is_control) {
        return false;
    }
    let rel = image_relative(s);
    !rel.is_empty()
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fn image_relative(s: &str) -> &str {
    let s = s.trim_start_matches('/');
    s.strip_suffix('/').unwrap_or(s)
}

macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $what:literal, $rule:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// What this is, in error messages.
            pub const WHAT: &'static str = $what;
            /// The rule a value must follow.
            pub const RULE: &'static str = $rule;

            /// Checks and wraps `value`.
            pub fn parse(value: &str) -> Result<Self, Invalid> {
                Self::try_from(value.to_string())
            }

            /// The value as given.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(value: String) -> Result<Self, Invalid> {
                let check: fn(&str) -> bool = $check;
                if check(&value) {
                    Ok($name(value))
                } else {
                    Err(Invalid::new($what, &value, $rule))
                }
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Invalid;
            fn try_from(value: &str) -> Result<Self, Invalid> {
                Self::try_from(value.to_string())
            }
        }

        impl std::str::FromStr for $name {
            type Err = Invalid;
            fn from_str(value: &str) -> Result<Self, Invalid> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

/// Adds `Deref<Target=str>`, `AsRef<str>`, `AsRef<Path>`, `Borrow<str>`:
/// for names whose string is safe to use as is (one path component).
macro_rules! str_like {
    ($name:ident) => {
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<Path> for $name {
            fn as_ref(&self) -> &Path {
                Path::new(&self.0)
            }
        }
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

checked_string!(
    /// An instance name: `[a-z0-9][a-z0-9_-]{0,62}`. It names a directory
    /// under `/var/lib/pgoci`, the unit and the socket directory.
    InstanceName,
    "instance name",
    "must match [a-z0-9][a-z0-9_-]{0,62}",
    is_short_name
);
str_like!(InstanceName);

checked_string!(
    /// An extension name: `[a-z0-9][a-z0-9_-]{0,62}` (pg_cron, vector,
    /// postgis, postgis_topology, pg_stat_statements, hstore, pg_trgm,
    /// pgaudit, uuid-ossp all fit). It names directories of a generation.
    ExtensionName,
    "extension name",
    "must match [a-z0-9][a-z0-9_-]{0,62}",
    is_short_name
);
str_like!(ExtensionName);

checked_string!(
    /// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`, at most 255.
    EnvKey,
    "environment variable name",
    "must match [A-Za-z_][A-Za-z0-9_]* (at most 255 characters)",
    is_env_key
);
str_like!(EnvKey);

checked_string!(
    /// A PostgreSQL parameter name as the config file reads it:
    /// `ID` or `ID.ID` with `ID` = `[A-Za-z_][A-Za-z0-9_]*` (guc-file.l;
    /// `cron.database_name` is an extension-qualified custom option).
    ConfigParam,
    "settings key",
    "must be a PostgreSQL parameter name: [A-Za-z_][A-Za-z0-9_]* with at most one `.`",
    is_config_param
);
str_like!(ConfigParam);

checked_string!(
    /// A library for `shared_preload_libraries`: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}`
    /// (no `,`, quote, space or `/`, so one entry loads one library from
    /// the server's own library path).
    LibraryName,
    "preload library",
    "must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,62}",
    is_library
);
str_like!(LibraryName);

checked_string!(
    /// A locale name (`--locale`, `--lc-collate`, `--lc-ctype`,
    /// `--icu-locale`, `--builtin-locale`): see [`is_locale_name`].
    LocaleName,
    "locale name",
    "must be 1-127 of A-Z, a-z, 0-9, _, ., - and @, starting with a letter, digit or _ (like de_DE.UTF-8, sr_RS@latin, C.UTF-8)",
    is_locale_name
);
str_like!(LocaleName);

checked_string!(
    /// A path inside an image (`/usr/lib/postgresql/17/bin`, `system`): a
    /// leading `/` is allowed and means the image root, every component
    /// is a plain name (no `.`, `..` or empty one), no control characters.
    /// It keeps the text as given (so documents keep their bytes); use
    /// [`ImagePath::as_relative`] (also `AsRef<Path>`) to join it under a
    /// directory. There is deliberately no `Deref<Target=str>`: joining the
    /// string form with a leading `/` would replace the base path.
    ImagePath,
    "image path",
    "must be a path inside the image: no `..`, `.` or empty components, no control characters",
    is_image_path
);

impl ImagePath {
    /// The path relative to the image root, safe to `join` under it.
    pub fn as_relative(&self) -> &Path {
        Path::new(image_relative(&self.0))
    }
}

impl AsRef<Path> for ImagePath {
    fn as_ref(&self) -> &Path {
        self.as_relative()
    }
}

/// A repository name as the OCI distribution spec allows it:
/// path components of `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` separated by
/// single `/`, at most 255 bytes. No component can be `.` or `..`, empty,
/// or hold anything percent-encoded.
fn is_repository(s: &str) -> bool {
    s.len() <= 255 && !s.is_empty() && s.split('/').all(is_repository_component)
}

fn is_repository_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    // Separators between alphanumeric runs: `.`, `_`, `__` or `-`+.
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

checked_string!(
    /// A repository of a registry (`pgoci/postgresql`,
    /// `cloudnative-pg/postgresql`), as a request path names it: see
    /// [`is_repository`]. Never a path on disk: `pgoci serve` looks
    /// repositories up in what it read from a bundle's `index.json`.
    RepositoryName,
    "repository name",
    "must be lowercase path components [a-z0-9]+ joined by `.`, `_`, `__` or `-`, separated by `/` (at most 255 characters)",
    is_repository
);
str_like!(RepositoryName);

checked_string!(
    /// A tag of a repository (`17`, `1.4.2-15`, `sha256-<hex>.sig`).
    TagName,
    "tag",
    "must match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}",
    is_tag
);
str_like!(TagName);

#[cfg(test)]
mod tests;
