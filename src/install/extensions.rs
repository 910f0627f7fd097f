//! Extension updates: what the installed catalog says (`pg_extension` of
//! each database) against what a generation's files offer (the control
//! file's `default_version`, and the `name--a--b.sql` update scripts).
//! An update is planned only when the scripts chain from the installed
//! version to the new default; without such a chain the upgrade is refused
//! before anything is switched, never found by the user later.

use crate::error::{Classify, Kind, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// One extension installed in one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    pub database: String,
    pub name: String,
    pub version: String,
}

/// What a generation's files say about one extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// The control file's `default_version` (`None`: the control file has none).
    pub default_version: Option<String>,
    /// Update steps found among the scripts: from → [to].
    pub steps: BTreeMap<String, BTreeSet<String>>,
}

/// The plan for one database × extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Update {
    pub database: String,
    pub name: String,
    pub installed: String,
    /// The new files' default version (`None`: no control file there).
    pub target: Option<String>,
    /// The versions the update walks through, installed first; `None`
    /// when the scripts do not reach the target.
    pub update_path: Option<Vec<String>>,
}

impl Update {
    /// Whether `ALTER EXTENSION … UPDATE` has anything to do.
    pub fn needed(&self) -> bool {
        self.target.as_deref().is_some_and(|t| t != self.installed)
    }

    /// Whether the new files can serve this extension at all.
    pub fn possible(&self) -> bool {
        self.target.is_some() && (!self.needed() || self.update_path.is_some())
    }
}

/// Directories holding `*.control` files in a generation: the server's
/// `share/extension` and, from PostgreSQL 18, each extension's own tree.
pub fn control_dirs(gen_dir: &Path, sharedir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![gen_dir.join(sharedir).join("extension")];
    if let Ok(entries) = fs::read_dir(gen_dir.join("extensions")) {
        let mut own: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path().join("share").join("extension"))
            .filter(|p| p.is_dir())
            .collect();
        own.sort();
        dirs.extend(own);
    }
    dirs
}

/// Reads what `dirs` offer for extension `name` (the first directory
/// holding its control file wins, as the server's search does).
pub fn offered(dirs: &[PathBuf], name: &str) -> Option<Offered> {
    let dir = dirs
        .iter()
        .find(|d| d.join(format!("{name}.control")).exists())?;
    let control = fs::read_to_string(dir.join(format!("{name}.control"))).unwrap_or_default();
    let mut steps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let prefix = format!("{name}--");
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".sql"))
        else {
            continue;
        };
        // `name--a--b.sql` is an update; `name--a.sql` an install script.
        if let Some((from, to)) = rest.split_once("--") {
            if !from.is_empty() && !to.is_empty() && !to.contains("--") {
                steps
                    .entry(from.to_string())
                    .or_default()
                    .insert(to.to_string());
            }
        }
    }
    Some(Offered {
        default_version: control_setting(&control, "default_version"),
        steps,
    })
}

/// A `key = 'value'` setting of a control file (the last one wins).
pub fn control_setting(text: &str, key: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(v);
        found = Some(v.replace("''", "'"));
    }
    found
}

/// The shortest chain of update scripts from `from` to `to`, as the
/// server picks it (fewest steps), or `None`.
pub fn update_path(
    steps: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    if from == to {
        return Some(vec![from.to_string()]);
    }
    let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        for next in steps.get(at).into_iter().flatten() {
            if next == from || previous.contains_key(next.as_str()) {
                continue;
            }
            previous.insert(next, at);
            if next == to {
                let mut path = vec![to.to_string()];
                let mut cur = to;
                while let Some(p) = previous.get(cur) {
                    path.push(p.to_string());
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            queue.push_back(next);
        }
    }
    None
}

/// Extensions that are part of every server and never need a build of
/// their own.
pub fn built_in(name: &str) -> bool {
    name == "plpgsql"
}

/// Plans the update of every installed extension against `dirs`.
pub fn plan(installed: &[Installed], dirs: &[PathBuf]) -> Vec<Update> {
    let mut cache: BTreeMap<&str, Option<Offered>> = BTreeMap::new();
    installed
        .iter()
        .map(|i| {
            let offered = cache
                .entry(i.name.as_str())
                .or_insert_with(|| offered(dirs, &i.name));
            let target = offered.as_ref().and_then(|o| o.default_version.clone());
            let update_path = match (offered, &target) {
                (Some(o), Some(t)) => update_path(&o.steps, &i.version, t),
                _ => None,
            };
            Update {
                database: i.database.clone(),
                name: i.name.clone(),
                installed: i.version.clone(),
                target,
                update_path,
            }
        })
        .collect()
}

/// Extensions in use that new server files cannot carry on.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    /// No build of these (`name (database db)`) in the new set.
    #[error("{what} has no build of extension {} in use", missing.join(", "))]
    NoBuild { what: String, missing: Vec<String> },
    /// No chain of update scripts (`name from → to (database db)`).
    #[error("{what}: no update path for extension {}", stuck.join(", "))]
    NoUpdatePath { what: String, stuck: Vec<String> },
}

impl Classify for ExtensionError {
    fn kind(&self) -> Kind {
        Kind::Host
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ExtensionError::NoBuild { .. } => "add it to the new set (--ext), use a profile or bundle with a build for the new major, or DROP EXTENSION it first".into(),
            ExtensionError::NoUpdatePath { .. } => "the new files have no chain of update scripts from the installed version; pick a build that has one".into(),
        })
    }
}

/// Exit 6 naming every extension the new files cannot serve, with the
/// database it is used in: nothing is switched.
pub fn refuse_impossible(updates: &[Update], what: &str) -> Result<()> {
    let missing: Vec<String> = updates
        .iter()
        .filter(|u| u.target.is_none())
        .map(|u| format!("{} (database {})", u.name, u.database))
        .collect();
    if !missing.is_empty() {
        return Err(ExtensionError::NoBuild {
            what: what.to_string(),
            missing,
        }
        .into());
    }
    let stuck: Vec<String> = updates
        .iter()
        .filter(|u| !u.possible())
        .map(|u| {
            format!(
                "{} {} → {} (database {})",
                u.name,
                u.installed,
                u.target.as_deref().unwrap_or("?"),
                u.database
            )
        })
        .collect();
    if !stuck.is_empty() {
        return Err(ExtensionError::NoUpdatePath {
            what: what.to_string(),
            stuck,
        }
        .into());
    }
    Ok(())
}

/// The statement that updates one extension (the name quoted as an identifier).
pub fn alter_statement(update: &Update) -> String {
    format!(
        "ALTER EXTENSION {} UPDATE",
        crate::render::pg_ident(&update.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(pairs: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            m.entry(a.to_string()).or_default().insert(b.to_string());
        }
        m
    }

    #[test]
    fn shortest_chain_is_found_and_gaps_are_not_crossed() {
        let s = steps(&[
            ("0.4.1", "0.4.2"),
            ("0.4.2", "0.5.0"),
            ("0.5.0", "0.8.0"),
            ("0.4.1", "0.5.0"),
        ]);
        assert_eq!(
            update_path(&s, "0.4.1", "0.8.0").unwrap(),
            ["0.4.1", "0.5.0", "0.8.0"]
        );
        assert_eq!(update_path(&s, "0.8.0", "0.8.0").unwrap(), ["0.8.0"]);
        assert_eq!(update_path(&s, "0.3.0", "0.8.0"), None);
        let cyclic = steps(&[("1", "2"), ("2", "1")]);
        assert_eq!(update_path(&cyclic, "1", "3"), None);
    }

    #[test]
    fn control_files_and_scripts_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let ext = dir.path().join("extension");
        std::fs::create_dir(&ext).unwrap();
        std::fs::write(
            ext.join("vector.control"),
            "comment = 'x'\n# default_version = '9'\ndefault_version = '0.8.0'\nrelocatable = true\n",
        )
        .unwrap();
        for f in [
            "vector--0.8.0.sql",
            "vector--0.4.1--0.5.0.sql",
            "vector--0.5.0--0.8.0.sql",
        ] {
            std::fs::write(ext.join(f), "").unwrap();
        }
        std::fs::write(ext.join("stuck.control"), "default_version = '2.0'\n").unwrap();
        std::fs::write(ext.join("stuck--1.0--1.1.sql"), "").unwrap();
        let dirs = vec![ext];
        let installed = |name: &str, v: &str| Installed {
            database: "app".into(),
            name: name.into(),
            version: v.into(),
        };
        let plan = plan(
            &[
                installed("vector", "0.4.1"),
                installed("stuck", "1.0"),
                installed("postgis", "3.3.2"),
            ],
            &dirs,
        );
        assert_eq!(plan[0].target.as_deref(), Some("0.8.0"));
        assert_eq!(plan[0].update_path.as_ref().unwrap().len(), 3);
        assert!(plan[0].needed() && plan[0].possible());
        assert!(!plan[1].possible());
        assert!(plan[2].target.is_none());
        let err = refuse_impossible(&plan, "PostgreSQL 17").unwrap_err();
        assert_eq!(err.kind, crate::Kind::Host);
        assert!(
            err.message.contains("postgis (database app)"),
            "{}",
            err.message
        );
        let err = refuse_impossible(&plan[..2], "PostgreSQL 17").unwrap_err();
        assert!(
            err.message.contains("stuck 1.0 → 2.0 (database app)"),
            "{}",
            err.message
        );
        assert!(refuse_impossible(&plan[..1], "x").is_ok());
    }
}
