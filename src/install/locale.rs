//! Locales: which ones a host (or an image) provides, read from glibc's
//! files without running anything, so an install asking for a locale
//! nobody has stops before any change (exit 6) instead of failing in
//! initdb after the unpack.

use crate::error::{Classify, Kind, Result};
use crate::names::LocaleName;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// A locale the cluster needs that the host lacks.
#[derive(Debug, thiserror::Error)]
pub enum LocaleError {
    #[error("locale {name} is not available on this host{}", if *in_image { " (the server image has it, but PostgreSQL reads compiled locales from the host's /usr/lib/locale)" } else { "" })]
    Missing {
        name: LocaleName,
        /// The server image has it (which does not help initdb).
        in_image: bool,
    },
}

impl Classify for LocaleError {
    fn kind(&self) -> Kind {
        Kind::Host
    }

    fn hint(&self) -> Option<String> {
        match self {
            LocaleError::Missing { name, .. } => Some(install_hint(name)),
        }
    }
}

/// initdb's `--locale-provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LocaleProvider {
    /// The C library's locales (every major).
    #[default]
    Libc,
    /// ICU collations (PostgreSQL 15+; needs --icu-locale).
    Icu,
    /// PostgreSQL's own C and C.UTF-8 (17+): no collation version to track.
    Builtin,
}

impl LocaleProvider {
    /// The first major whose initdb has it.
    pub fn since(self) -> u32 {
        match self {
            LocaleProvider::Libc => 0,
            LocaleProvider::Icu => 15,
            LocaleProvider::Builtin => 17,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LocaleProvider::Libc => "libc",
            LocaleProvider::Icu => "icu",
            LocaleProvider::Builtin => "builtin",
        }
    }
}

impl fmt::Display for LocaleProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first major whose builtin provider has `locale` (PostgreSQL's
/// `builtin_validate_locale`: `C`, `C.UTF-8` or `C.UTF8` from 17,
/// `PG_UNICODE_FAST` from 18); `None`: not a builtin locale.
pub fn builtin_locale_since(locale: &str) -> Option<u32> {
    match locale {
        "C" | "C.UTF-8" | "C.UTF8" => Some(17),
        "PG_UNICODE_FAST" => Some(18),
        _ => None,
    }
}

/// glibc's `_nl_normalize_codeset`: letters lower-cased, digits kept,
/// everything else dropped; all digits gets `iso` in front (`UTF-8` →
/// `utf8`, `ISO-8859-1` → `iso88591`, `8859-1` → `iso88591`).
pub fn normalize_codeset(codeset: &str) -> String {
    let kept: String = codeset
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if !kept.is_empty() && kept.chars().all(|c| c.is_ascii_digit()) {
        format!("iso{kept}")
    } else {
        kept
    }
}

/// A locale name as glibc looks it up: `language[_territory][.codeset][@modifier]`
/// with the codeset normalised (`de_DE.UTF-8` and `de_DE.utf8` are one).
pub fn normalize(name: &str) -> String {
    let (base, modifier) = match name.split_once('@') {
        Some((b, m)) => (b, Some(m)),
        None => (name, None),
    };
    let mut out = match base.split_once('.') {
        Some((lang, codeset)) if !codeset.is_empty() => {
            format!("{lang}.{}", normalize_codeset(codeset))
        }
        _ => base.to_string(),
    };
    if let Some(m) = modifier {
        out.push('@');
        out.push_str(m);
    }
    out
}

/// Locales every host has: `C` and `POSIX` are built into every C
/// library, `C.UTF-8` into glibc from 2.35 (Debian's libc-bin ships it for
/// older ones).
pub fn always_available(name: &str) -> bool {
    matches!(normalize(name).as_str(), "C" | "POSIX" | "C.utf8")
}

/// glibc's locale archive, the header (locale/locarchive.h): magic, then
/// offset/used/size triples of the name hash, string, record and sum
/// tables, all `u32` in the byte order of the machine that wrote it.
const ARCHIVE_MAGIC: u32 = 0xde02_0109;
const HEADER_LEN: usize = 14 * 4;
/// A `namehashent`: hashval, name_offset, locrec_offset.
const NAMEHASH_ENTRY: usize = 3 * 4;
/// Bounds on what is read from an archive (locales-all has ~500 names).
const MAX_NAMEHASH: u64 = 1 << 20;
const MAX_NAME: usize = 256;

/// The locale names in a glibc locale archive (`locale -a`'s archive part):
/// every name-hash entry with a locale record. Reads the header, the name
/// table and the names only, never the locale data. A file that is not an
/// archive, or whose tables point outside it, is an error.
pub fn read_archive(path: &Path) -> std::io::Result<Vec<String>> {
    use std::io::{Error as IoError, ErrorKind};
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let bad = |what: &str| {
        IoError::new(
            ErrorKind::InvalidData,
            format!("not a locale archive: {what}"),
        )
    };
    let mut head = [0u8; HEADER_LEN];
    file.read_exact_at(&mut head, 0)
        .map_err(|_| bad("shorter than its header"))?;
    let word = |b: &[u8], i: usize| u32::from_ne_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
    let (magic, swapped) = match word(&head, 0) {
        ARCHIVE_MAGIC => (ARCHIVE_MAGIC, false),
        m if m.swap_bytes() == ARCHIVE_MAGIC => (ARCHIVE_MAGIC, true),
        _ => return Err(bad("wrong magic")),
    };
    debug_assert_eq!(magic, ARCHIVE_MAGIC);
    let field = |b: &[u8], i: usize| {
        let w = word(b, i);
        if swapped {
            w.swap_bytes()
        } else {
            w
        }
    };
    let (table_offset, table_size) = (u64::from(field(&head, 2)), u64::from(field(&head, 4)));
    if table_size > MAX_NAMEHASH || table_offset + table_size * NAMEHASH_ENTRY as u64 > len {
        return Err(bad("name table outside the file"));
    }
    let mut table = vec![0u8; table_size as usize * NAMEHASH_ENTRY];
    file.read_exact_at(&mut table, table_offset)?;
    let mut names = Vec::new();
    for entry in table.chunks_exact(NAMEHASH_ENTRY) {
        let (name_offset, locrec_offset) = (field(entry, 1), field(entry, 2));
        // An empty slot has no name; a removed locale keeps its name but
        // loses its record (glibc's `locale -a` skips both).
        if name_offset == 0 || locrec_offset == 0 {
            continue;
        }
        let offset = u64::from(name_offset);
        if offset >= len {
            return Err(bad("a name outside the file"));
        }
        let mut buf = vec![0u8; MAX_NAME.min((len - offset) as usize)];
        file.read_exact_at(&mut buf, offset)?;
        let end = buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| bad("a name without its end"))?;
        names.push(String::from_utf8_lossy(&buf[..end]).into_owned());
    }
    Ok(names)
}

/// The locales compiled into directories (`<dir>/<name>/LC_COLLATE`),
/// as glibc's `locale -a` lists them beside the archive.
pub fn read_locale_dirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().join("LC_COLLATE").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect()
}

/// glibc's compiled locales under a root: `usr/lib/locale` (its
/// `locale-archive` and its directories).
const LOCALE_DIR: &str = "usr/lib/locale";
/// glibc's alias file (`LOCALE_ALIAS_PATH`).
const ALIAS_FILE: &str = "usr/share/locale/locale.alias";

/// The locales a root (the host's `/`, or an image's unpacked root) has,
/// by normalised name, and its locale aliases.
#[derive(Debug, Clone, Default)]
pub struct Locales {
    names: BTreeSet<String>,
    /// `locale.alias`: alias (lower case) → name.
    aliases: BTreeMap<String, String>,
}

impl Locales {
    /// Reads a root's archive, locale directories and aliases. What cannot
    /// be read counts as absent (a damaged archive is glibc's problem too:
    /// it finds nothing in it either).
    pub fn of_root(root: &Path) -> Self {
        let dir = root.join(LOCALE_DIR);
        let archive = read_archive(&dir.join("locale-archive")).unwrap_or_else(|e| {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!("locale archive under {}: {e}", dir.display());
            }
            Vec::new()
        });
        let names = archive
            .into_iter()
            .chain(read_locale_dirs(&dir))
            .map(|n| normalize(&n))
            .collect();
        let aliases = std::fs::read_to_string(root.join(ALIAS_FILE))
            .map(|t| parse_aliases(&t))
            .unwrap_or_default();
        Locales { names, aliases }
    }

    /// Locales from a list of names (tests, and what a caller already knows).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Locales {
            names: names.into_iter().map(normalize).collect(),
            aliases: BTreeMap::new(),
        }
    }

    /// Whether `name` (or the name its alias stands for) is here, compared
    /// as glibc does: codeset normalised, the rest exactly.
    pub fn has(&self, name: &str) -> bool {
        self.names.contains(&normalize(name))
            || self
                .aliases
                .get(&name.to_ascii_lowercase())
                .is_some_and(|target| self.names.contains(&normalize(target)))
    }
}

/// `locale.alias`: `alias name` per line, `#` comments; the first
/// definition of an alias wins, as in glibc.
fn parse_aliases(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        if let (Some(alias), Some(name)) = (words.next(), words.next()) {
            map.entry(alias.to_ascii_lowercase())
                .or_insert_with(|| name.to_string());
        }
    }
    map
}

/// Where each libc locale an install asks for was found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocaleFacts {
    /// Each locale asked for, once, with whether the host has it and
    /// whether the server image does (`None`: the image is not in the
    /// store yet, so only the host was looked at).
    pub wanted: Vec<(LocaleName, bool, Option<bool>)>,
}

impl LocaleFacts {
    /// Looks for `wanted` under the host `root` and, when the server image
    /// is already unpacked in the store, under its root.
    pub fn gather(root: &Path, image_root: Option<&Path>, wanted: &[&LocaleName]) -> Self {
        let needs_reading = wanted.iter().any(|n| !always_available(n));
        let host = needs_reading.then(|| Locales::of_root(root));
        let image = image_root.filter(|_| needs_reading).map(Locales::of_root);
        let wanted = wanted
            .iter()
            .map(|&name| {
                let always = always_available(name);
                let on_host = always || host.as_ref().is_some_and(|h| h.has(name));
                let in_image = image.as_ref().map(|i| always || i.has(name));
                (name.clone(), on_host, in_image)
            })
            .collect();
        LocaleFacts { wanted }
    }

    /// Refuses (exit 6) a locale the host lacks, naming it, before any
    /// change. Only the host counts: initdb and the server find compiled
    /// locales by glibc's absolute path (`/usr/lib/locale`, no `LOCPATH`
    /// is set), whichever glibc runs them, so a locale only the image has
    /// would still fail initdb; the message says when the image has it.
    pub fn refuse_missing(&self) -> Result<()> {
        let Some((name, _, in_image)) = self.wanted.iter().find(|(_, host, _)| !host) else {
            return Ok(());
        };
        Err(LocaleError::Missing {
            name: name.clone(),
            in_image: *in_image == Some(true),
        }
        .into())
    }
}

/// How to add a locale to the host: `localedef`, or the distribution's way.
fn install_hint(name: &str) -> String {
    let (base, modifier) = match name.split_once('@') {
        Some((b, m)) => (b, Some(m)),
        None => (name, None),
    };
    let (lang, codeset) = match base.split_once('.') {
        Some((l, c)) => (l, Some(c)),
        None => (base, None),
    };
    let input = match modifier {
        Some(m) => format!("{lang}@{m}"),
        None => lang.to_string(),
    };
    let charmap = match codeset.map(normalize_codeset).as_deref() {
        Some("utf8") => " -f UTF-8".to_string(),
        Some(_) => format!(" -f {}", codeset.unwrap_or_default()),
        None => String::new(),
    };
    format!(
        "add it to the host: `localedef -i {input}{charmap} {name}` (Debian: enable it in /etc/locale.gen and run locale-gen, or install locales-all; Fedora/RHEL: a glibc-langpack package), or pick one `locale -a` lists"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A locale archive as glibc lays it out: the header, a name hash table
    /// of `slots` entries, then the names; `names` are (name, has a record).
    fn archive(names: &[(&str, bool)], slots: usize, swap: bool) -> Vec<u8> {
        let w = |v: u32| {
            if swap {
                v.swap_bytes().to_ne_bytes()
            } else {
                v.to_ne_bytes()
            }
        };
        let table_at = HEADER_LEN;
        let strings_at = table_at + slots * NAMEHASH_ENTRY;
        let mut strings = Vec::new();
        let mut table = vec![0u8; slots * NAMEHASH_ENTRY];
        for (i, (name, record)) in names.iter().enumerate() {
            // Every other slot, as a hash table leaves gaps.
            let slot = (i * 2 + 1) % slots;
            let entry = &mut table[slot * NAMEHASH_ENTRY..][..NAMEHASH_ENTRY];
            entry[..4].copy_from_slice(&w(0x1234 + i as u32));
            entry[4..8].copy_from_slice(&w((strings_at + strings.len()) as u32));
            entry[8..].copy_from_slice(&w(if *record { 0x100 } else { 0 }));
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
        }
        let mut head = Vec::new();
        for v in [
            ARCHIVE_MAGIC,
            0,
            table_at as u32,
            names.len() as u32,
            slots as u32,
            strings_at as u32,
            strings.len() as u32,
            strings.len() as u32,
            0,
            0,
            0,
            0,
            0,
            0,
        ] {
            head.extend_from_slice(&w(v));
        }
        assert_eq!(head.len(), HEADER_LEN);
        [head, table, strings].concat()
    }

    fn write(dir: &Path, rel: &str, bytes: &[u8]) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    #[test]
    fn reads_the_names_of_an_archive_in_either_byte_order() {
        let d = tempfile::tempdir().unwrap();
        let names = [
            ("de_DE.utf8", true),
            ("en_US", true),
            ("fr_FR.utf8", false), // removed: name kept, record gone
            ("sr_RS.utf8@latin", true),
        ];
        for swap in [false, true] {
            let path = d.path().join("locale-archive");
            std::fs::write(&path, archive(&names, 11, swap)).unwrap();
            let mut got = read_archive(&path).unwrap();
            got.sort();
            assert_eq!(
                got,
                ["de_DE.utf8", "en_US", "sr_RS.utf8@latin"],
                "swap {swap}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_an_archive() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("locale-archive");
        let check = |bytes: &[u8], says: &str| {
            std::fs::write(&path, bytes).unwrap();
            let err = read_archive(&path).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        };
        check(b"short", "shorter than its header");
        check(&[0u8; 64], "wrong magic");
        // A table bigger than the file.
        let mut big = archive(&[("de_DE.utf8", true)], 5, false);
        big[16..20].copy_from_slice(&1000u32.to_ne_bytes());
        check(&big, "name table outside the file");
        // A name offset past the end.
        let mut far = archive(&[("de_DE.utf8", true)], 5, false);
        let entry = HEADER_LEN + NAMEHASH_ENTRY; // slot 1
        far[entry + 4..entry + 8].copy_from_slice(&u32::MAX.to_ne_bytes());
        check(&far, "a name outside the file");
        // A name without its NUL.
        let mut open = archive(&[("de_DE.utf8", true)], 5, false);
        open.pop();
        check(&open, "a name without its end");
    }

    #[test]
    fn normalises_the_codeset_as_glibc_does() {
        assert_eq!(normalize("de_DE.UTF-8"), "de_DE.utf8");
        assert_eq!(normalize("de_DE.utf8"), "de_DE.utf8");
        assert_eq!(normalize("sr_RS.UTF-8@latin"), "sr_RS.utf8@latin");
        assert_eq!(normalize("en_US.ISO-8859-1"), "en_US.iso88591");
        assert_eq!(normalize("en_US.8859-1"), "en_US.iso88591");
        assert_eq!(normalize("sr_RS@latin"), "sr_RS@latin");
        assert_eq!(normalize("en_US"), "en_US");
        assert_eq!(normalize("C.UTF-8"), "C.utf8");
        for name in ["C", "POSIX", "C.UTF-8", "C.utf8", "C.UTF8"] {
            assert!(always_available(name), "{name}");
        }
        for name in ["c", "en_US.UTF-8", "C.ISO-8859-1", "C@x"] {
            assert!(!always_available(name), "{name}");
        }
    }

    #[test]
    fn a_root_has_its_archive_its_directories_and_its_aliases() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(
            root,
            "usr/lib/locale/locale-archive",
            &archive(&[("de_DE.utf8", true), ("en_US", true)], 7, false),
        );
        write(root, "usr/lib/locale/fr_FR.utf8/LC_COLLATE", b"");
        // A directory without LC_COLLATE is no locale.
        write(root, "usr/lib/locale/it_IT.utf8/LC_CTYPE", b"");
        write(
            root,
            "usr/share/locale/locale.alias",
            b"# aliases\ndeutsch\t\tde_DE.UTF-8\nitalian it_IT.UTF-8\ndeutsch en_US\n",
        );
        let l = Locales::of_root(root);
        for yes in [
            "de_DE.UTF-8",
            "de_DE.utf8",
            "de_DE.UTF8",
            "en_US",
            "fr_FR.UTF-8",
            "deutsch",
            "Deutsch",
        ] {
            assert!(l.has(yes), "{yes}");
        }
        for no in [
            "de_DE",
            "en_US.UTF-8",
            "it_IT.UTF-8",
            "italian",
            "xx_YY.UTF-8",
        ] {
            assert!(!l.has(no), "{no}");
        }
        // Nothing there: nothing found, no error.
        assert!(!Locales::of_root(&root.join("nowhere")).has("de_DE.UTF-8"));
        // A damaged archive counts as empty (glibc finds nothing in it).
        write(root, "usr/lib/locale/locale-archive", b"garbage");
        assert!(!Locales::of_root(root).has("de_DE.UTF-8"));
        assert!(Locales::of_root(root).has("fr_FR.utf8"));
    }

    #[test]
    fn facts_refuse_a_locale_the_host_lacks_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let (host, image) = (d.path().join("host"), d.path().join("image"));
        write(&host, "usr/lib/locale/fr_FR.utf8/LC_COLLATE", b"");
        write(
            &image,
            "usr/lib/locale/locale-archive",
            &archive(&[("de_DE.utf8", true)], 5, false),
        );
        let name = |s: &str| LocaleName::parse(s).unwrap();
        let (c, fr, de, xx) = (
            name("C.UTF-8"),
            name("fr_FR.UTF-8"),
            name("de_DE.UTF-8"),
            name("xx_YY.UTF-8"),
        );

        // C.UTF-8 needs nothing read, and fr_FR is on the host.
        LocaleFacts::gather(Path::new("/nonexistent"), None, &[&c])
            .refuse_missing()
            .unwrap();
        let f = LocaleFacts::gather(&host, Some(&image), &[&c, &fr]);
        assert_eq!(f.wanted[1], (fr.clone(), true, Some(false)));
        f.refuse_missing().unwrap();

        // Nowhere: exit 6 naming it, with the localedef line.
        let err = LocaleFacts::gather(&host, None, &[&fr, &xx])
            .refuse_missing()
            .unwrap_err();
        assert_eq!(err.kind.exit_code(), 6);
        assert_eq!(
            err.message,
            "locale xx_YY.UTF-8 is not available on this host"
        );
        let hint = err.hint.unwrap();
        assert!(
            hint.contains("`localedef -i xx_YY -f UTF-8 xx_YY.UTF-8`"),
            "{hint}"
        );

        // Only in the image: still refused (the server reads the host's),
        // and the message says the image has it.
        let f = LocaleFacts::gather(&host, Some(&image), &[&de]);
        assert_eq!(f.wanted, [(de.clone(), false, Some(true))]);
        let err = f.refuse_missing().unwrap_err();
        assert_eq!(err.kind.exit_code(), 6);
        assert!(
            err.message.contains("the server image has it"),
            "{}",
            err.message
        );
    }

    #[test]
    fn hints_name_the_localedef_input_and_charmap() {
        assert!(install_hint("sr_RS.UTF-8@latin")
            .contains("localedef -i sr_RS@latin -f UTF-8 sr_RS.UTF-8@latin"));
        assert!(install_hint("de_DE.utf8").contains("localedef -i de_DE -f UTF-8 de_DE.utf8"));
        assert!(install_hint("en_US.ISO-8859-1")
            .contains("localedef -i en_US -f ISO-8859-1 en_US.ISO-8859-1"));
        assert!(install_hint("en_US").contains("localedef -i en_US en_US`"));
    }

    #[test]
    fn builtin_locales_by_major() {
        assert_eq!(builtin_locale_since("C"), Some(17));
        assert_eq!(builtin_locale_since("C.UTF-8"), Some(17));
        assert_eq!(builtin_locale_since("C.UTF8"), Some(17));
        assert_eq!(builtin_locale_since("PG_UNICODE_FAST"), Some(18));
        assert_eq!(builtin_locale_since("C.utf8"), None);
        assert_eq!(builtin_locale_since("en_US.UTF-8"), None);
    }
}
