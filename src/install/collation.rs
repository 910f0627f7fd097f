//! The collation gate. A text index is sorted by the collation library
//! that built it (glibc for libc locales, ICU for ICU ones); run the same
//! data on another version and the order may differ, so lookups miss rows
//! and unique indexes admit duplicates. PostgreSQL only warns. pgoci
//! treats the library as part of the data's contract: each generation
//! records the versions it runs on, each instance the versions its data
//! was last used with, and any change that would run existing data on
//! another version is refused unless the user chose what to do
//! ([`Choice`]). C, POSIX, glibc's C.UTF-8 (code-point order since glibc
//! 2.35) and the builtin provider are not affected.

use super::cluster::Server;
use super::generation::{ServerDirs, DEPS_DIR};
use super::runtime::RuntimeEnv;
use crate::error::{Classify, Kind, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A collation library changes under existing data and nobody said what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CollationError {
    /// A change (an upgrade, a rollback) would switch the library.
    #[error("{what} would run existing data on another collation library ({}): {affected}", libs.join(", "))]
    Unchosen {
        what: String,
        /// Each library that changes, `glibc 2.36 → 2.41`.
        libs: Vec<String>,
        /// The databases, collations and indexes it touches, as shown.
        affected: String,
    },
    /// The server's library changed since the data was last used (the
    /// unit's start gate).
    #[error("instance {instance}: its data was last used with {from}, its server now runs on {to} (did the host's C library change?); text indexes may be out of order")]
    Changed {
        instance: crate::names::InstanceName,
        from: CollationLibs,
        to: CollationLibs,
    },
}

impl Classify for CollationError {
    fn kind(&self) -> Kind {
        Kind::Host
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            CollationError::Unchosen { .. } => "text indexes built under the old version may be wrong: pass --collation-change reindex (rebuild them, then refresh the versions) or --collation-change accept (refresh only)".into(),
            CollationError::Changed { instance, .. } => format!(
                "pgoci collation --instance {instance} --collation-change reindex (rebuild what is affected) or accept (refresh only); `pgoci collation --instance {instance}` lists what is affected"
            ),
        })
    }
}

/// The collation libraries a server runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollationLibs {
    /// glibc's release (`2.36`), the host's or the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glibc: Option<String>,
    /// ICU's major version (`72`), from the server's `libicui18n.so.N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icu: Option<String>,
}

impl std::fmt::Display for CollationLibs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "glibc {}, ICU {}",
            self.glibc.as_deref().unwrap_or("?"),
            self.icu.as_deref().unwrap_or("none")
        )
    }
}

/// What the user chose for data whose collation library changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// Rebuild every index that uses an affected collation, then refresh.
    Reindex,
    /// Refresh the recorded versions only: the user vouches for the data.
    Accept,
}

/// Where a host's libc lives, by Debian's multiarch and the usual others.
const LIBC_PATHS: &[&str] = &[
    "lib/x86_64-linux-gnu/libc.so.6",
    "usr/lib/x86_64-linux-gnu/libc.so.6",
    "lib/aarch64-linux-gnu/libc.so.6",
    "usr/lib/aarch64-linux-gnu/libc.so.6",
    "lib64/libc.so.6",
    "usr/lib64/libc.so.6",
];

/// glibc's release as its `libc.so.6` states it ("… release version
/// 2.36."), read from the file: nothing is run.
pub fn glibc_release(libc: &Path) -> Option<String> {
    let version = crate::fsutil::text_after_marker(libc, b"release version ", |b| {
        b.is_ascii_digit() || b == b'.'
    })?;
    let version = version.trim_end_matches('.').to_string();
    (version.contains('.')).then_some(version)
}

/// The glibc release of the machine the server runs on (this one, under
/// `--root` too).
pub fn host_glibc() -> Option<String> {
    LIBC_PATHS
        .iter()
        .map(|p| Path::new("/").join(p))
        .find(|p| p.exists())
        .and_then(|p| glibc_release(&p))
}

/// ICU's major version a server binary links (`libicui18n.so.72` → 72).
pub fn icu_of(postgres: &Path) -> Option<String> {
    let info = crate::elf::inspect::inspect(postgres).ok()??;
    info.needed.iter().find_map(|n| {
        let v = n
            .strip_prefix("libicui18n.so.")
            .or_else(|| n.strip_prefix("libicuuc.so."))?;
        let major = v.split('.').next()?;
        (!major.is_empty() && major.chars().all(|c| c.is_ascii_digit())).then(|| major.to_string())
    })
}

/// The libraries a composed generation runs on: the image's glibc when
/// its executables were patched to the image's loader, else the host's —
/// this machine's, under `--root` too: the server runs here.
pub fn of_generation(gen_dir: &Path, dirs: &ServerDirs, env: &RuntimeEnv) -> CollationLibs {
    let glibc = match &env.rewritten {
        Some(_) => glibc_release(&gen_dir.join(DEPS_DIR).join("libc.so.6")),
        None => host_glibc(),
    };
    CollationLibs {
        glibc,
        icu: icu_of(&gen_dir.join(&dirs.bin).join("postgres")),
    }
}

fn parse_version(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// What changes between the data's libraries and the new ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub from: CollationLibs,
    pub to: CollationLibs,
    pub glibc_changed: bool,
    pub icu_changed: bool,
}

impl Change {
    /// `None` when nothing a collation depends on changes.
    pub fn between(from: &CollationLibs, to: &CollationLibs) -> Option<Change> {
        let glibc_changed = from.glibc.is_some() && to.glibc.is_some() && from.glibc != to.glibc;
        let icu_changed = from.icu.is_some() && to.icu.is_some() && from.icu != to.icu;
        (glibc_changed || icu_changed).then(|| Change {
            from: from.clone(),
            to: to.clone(),
            glibc_changed,
            icu_changed,
        })
    }

    /// Whether a libc locale sorts differently across this change. `C.*`
    /// is code-point order from glibc 2.35 on both sides.
    fn libc_locale_affected(&self, locale: &str) -> bool {
        if !self.glibc_changed {
            return false;
        }
        let upper = locale.to_ascii_uppercase();
        if upper == "C" || upper == "POSIX" {
            return false;
        }
        let stable = |v: &Option<String>| v.as_deref().is_some_and(|v| parse_version(v) >= (2, 35));
        !(upper.starts_with("C.") && stable(&self.from.glibc) && stable(&self.to.glibc))
    }

    /// SQL: whether a collation row (`prov`, `loc`) is affected.
    fn affected_sql(&self, prov: &str, loc: &str) -> String {
        let mut arms = vec!["false".to_string()];
        if self.glibc_changed {
            let c_stable = !self.libc_locale_affected("C.UTF-8");
            arms.push(format!(
                "({prov} = 'c' AND upper({loc}) NOT IN ('C', 'POSIX'){})",
                if c_stable {
                    format!(" AND upper({loc}) NOT LIKE 'C.%'")
                } else {
                    String::new()
                }
            ));
        }
        if self.icu_changed {
            arms.push(format!("{prov} = 'i'"));
        }
        format!("({})", arms.join(" OR "))
    }
}

/// A database the change affects, and its indexes that use an affected
/// collation (with their sizes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Affected {
    pub database: String,
    /// Its default collation is affected (`datcollate`, or its ICU locale).
    pub default_collation: Option<String>,
    pub indexes: Vec<AffectedIndex>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AffectedIndex {
    pub name: String,
    pub bytes: u64,
}

/// Asks a running server which databases and indexes the change affects.
pub fn affected(server: &Server, major: u32, change: &Change) -> Result<Vec<Affected>> {
    let (prov, loc) = if major >= 15 {
        (
            "d.datlocprovider::text",
            if major >= 17 {
                "CASE d.datlocprovider WHEN 'c' THEN d.datcollate ELSE coalesce(d.datlocale, '') END"
            } else {
                "CASE d.datlocprovider WHEN 'c' THEN d.datcollate ELSE coalesce(d.daticulocale, '') END"
            },
        )
    } else {
        ("'c'", "d.datcollate")
    };
    let rows = server.query(
        "postgres",
        &format!(
            "SELECT d.datname, {loc}, {} FROM pg_database d WHERE d.datallowconn ORDER BY 1",
            change.affected_sql(prov, loc)
        ),
    )?;
    let coll_prov = "c.collprovider::text";
    let coll_loc = if major >= 17 {
        "coalesce(c.collcollate, c.colllocale, '')"
    } else if major >= 15 {
        "coalesce(c.collcollate, c.colliculocale, '')"
    } else {
        "coalesce(c.collcollate, '')"
    };
    let mut out = Vec::new();
    for row in rows {
        let [db, locale, default_affected] = row.as_slice() else {
            continue;
        };
        let default_affected = default_affected == "t";
        let sql = format!(
            "SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid) FROM pg_index i \
             WHERE EXISTS (SELECT 1 FROM unnest(i.indcollation::oid[]) AS k(coll) \
               JOIN pg_collation c ON c.oid = k.coll \
               WHERE (c.oid = 100 AND {default_affected}) OR (c.oid <> 100 AND {})) \
             ORDER BY 1",
            change.affected_sql(coll_prov, coll_loc)
        );
        let indexes: Vec<AffectedIndex> = server
            .query(db, &sql)?
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [name, bytes] => Some(AffectedIndex {
                    name: name.clone(),
                    bytes: bytes.parse().unwrap_or(0),
                }),
                _ => None,
            })
            .collect();
        if default_affected || !indexes.is_empty() {
            out.push(Affected {
                database: db.clone(),
                default_collation: default_affected.then(|| locale.clone()),
                indexes,
            });
        }
    }
    Ok(out)
}

/// The gate's verdict before a change.
#[derive(Debug, Clone, Serialize)]
pub struct Gate {
    pub change: Change,
    /// `None`: no server was running to ask; treated as affected.
    pub affected: Option<Vec<Affected>>,
    pub choice: Option<Choice>,
}

impl Gate {
    /// Whether the data is touched at all by the change.
    pub fn touches_data(&self) -> bool {
        self.affected.as_ref().is_none_or(|a| !a.is_empty())
    }

    /// Exit 6 when the data is affected and nothing was chosen.
    pub fn refuse_unchosen(&self, what: &str) -> Result<()> {
        if self.choice.is_some() || !self.touches_data() {
            return Ok(());
        }
        let c = &self.change;
        let mut libs = Vec::new();
        if c.glibc_changed {
            libs.push(format!(
                "glibc {} → {}",
                c.from.glibc.as_deref().unwrap_or("?"),
                c.to.glibc.as_deref().unwrap_or("?")
            ));
        }
        if c.icu_changed {
            libs.push(format!(
                "ICU {} → {}",
                c.from.icu.as_deref().unwrap_or("?"),
                c.to.icu.as_deref().unwrap_or("?")
            ));
        }
        let what_affected = match &self.affected {
            None => "the server is not running, so every database counts as affected".to_string(),
            Some(list) => list
                .iter()
                .map(|a| {
                    let mut parts = Vec::new();
                    if let Some(l) = &a.default_collation {
                        parts.push(format!("default collation {l}"));
                    }
                    if !a.indexes.is_empty() {
                        let names: Vec<&str> =
                            a.indexes.iter().take(5).map(|i| i.name.as_str()).collect();
                        parts.push(format!(
                            "{} index(es): {}{}",
                            a.indexes.len(),
                            names.join(", "),
                            if a.indexes.len() > 5 { ", …" } else { "" }
                        ));
                    }
                    format!("database {} ({})", a.database, parts.join("; "))
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        Err(CollationError::Unchosen {
            what: what.to_string(),
            libs,
            affected: what_affected,
        }
        .into())
    }
}

/// After the switch: reindex what the change affects (when chosen), then
/// refresh every recorded collation version. Returns the indexes rebuilt.
pub fn apply(
    server: &Server,
    major: u32,
    gate: Option<&Gate>,
    on_index: &mut dyn FnMut(&str, &str),
) -> Result<Vec<String>> {
    let mut rebuilt = Vec::new();
    if let Some(gate) = gate.filter(|g| g.choice == Some(Choice::Reindex)) {
        // Asked again now: the server runs the new library.
        for a in affected(server, major, &gate.change)? {
            for idx in &a.indexes {
                on_index(&a.database, &idx.name);
                server.execute(&a.database, &format!("REINDEX INDEX {}", idx.name))?;
                rebuilt.push(format!("{}:{}", a.database, idx.name));
            }
        }
    }
    server.refresh_collation_versions(major)?;
    Ok(rebuilt)
}

#[cfg(test)]
fn fake_libc(dir: &Path, version: &str) -> std::path::PathBuf {
    let p = dir.join("libc.so.6");
    std::fs::write(
        &p,
        format!("\x7fELF junk GNU C Library (Debian GLIBC {version}-1) stable release version {version}.\nmore"),
    )
    .unwrap();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn libs(glibc: &str, icu: &str) -> CollationLibs {
        CollationLibs {
            glibc: Some(glibc.into()),
            icu: Some(icu.into()),
        }
    }

    #[test]
    fn the_release_is_read_from_libc_bytes() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            glibc_release(&fake_libc(dir.path(), "2.41")).as_deref(),
            Some("2.41")
        );
    }

    #[test]
    fn c_utf8_is_stable_only_from_235_on_both_sides() {
        let c = Change::between(&libs("2.36", "72"), &libs("2.41", "72")).unwrap();
        assert!(c.glibc_changed && !c.icu_changed);
        assert!(!c.libc_locale_affected("C.UTF-8"));
        assert!(!c.libc_locale_affected("POSIX"));
        assert!(c.libc_locale_affected("de_DE.UTF-8"));
        let old = Change::between(&libs("2.31", "67"), &libs("2.36", "72")).unwrap();
        assert!(old.libc_locale_affected("C.UTF-8"));
        assert!(Change::between(&libs("2.36", "72"), &libs("2.36", "72")).is_none());
    }

    #[test]
    fn an_unchosen_change_is_refused_naming_versions_and_databases() {
        let change = Change::between(&libs("2.36", "72"), &libs("2.41", "76")).unwrap();
        let gate = Gate {
            change,
            affected: Some(vec![Affected {
                database: "app".into(),
                default_collation: Some("de_DE.UTF-8".into()),
                indexes: vec![AffectedIndex {
                    name: "t_name_idx".into(),
                    bytes: 8192,
                }],
            }]),
            choice: None,
        };
        let e = gate.refuse_unchosen("upgrade").unwrap_err();
        assert_eq!(e.kind, crate::Kind::Host);
        for want in [
            "glibc 2.36 → 2.41",
            "ICU 72 → 76",
            "database app",
            "de_DE.UTF-8",
            "t_name_idx",
        ] {
            assert!(e.message.contains(want), "{want}: {}", e.message);
        }
        let chosen = Gate {
            choice: Some(Choice::Accept),
            ..gate.clone()
        };
        assert!(chosen.refuse_unchosen("upgrade").is_ok());
        let untouched = Gate {
            affected: Some(Vec::new()),
            ..gate
        };
        assert!(untouched.refuse_unchosen("upgrade").is_ok());
    }
}
