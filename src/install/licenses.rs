//! Licence texts: every extension image's `licenses/` (CloudNativePG
//! extension images keep theirs as `licenses/<extension>/…`) is linked into
//! the generation as `licenses/<extension>/…`, so what a host runs carries
//! the terms it runs under; `status` lists them.

use crate::error::Result;
use serde::Serialize;
use std::path::Path;

/// The generation's directory of licence texts.
pub const DIR: &str = "licenses";

/// Links `image_root/licenses` of extension `name` into
/// `generation/licenses/<name>/`. The image's own `licenses/<name>/` level
/// is not repeated when it is all the directory holds.
pub fn gather(name: &str, image_root: &Path, generation: &Path) -> Result<()> {
    let from = image_root.join(DIR);
    // Only a real directory of the image (no symlink out of it).
    if !std::fs::symlink_metadata(&from).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let entries: Vec<_> = std::fs::read_dir(&from)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let own = from.join(name);
    let from = match entries.as_slice() {
        [only] if *only == *name && std::fs::symlink_metadata(&own).is_ok_and(|m| m.is_dir()) => {
            own
        }
        _ => from,
    };
    super::link::link_tree(image_root, &from, &generation.join(DIR).join(name))
}

/// One extension's licence files in a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Licenses {
    pub extension: String,
    /// Paths relative to the generation, sorted.
    pub files: Vec<String>,
}

/// Every extension's licence files in `generation`, by extension name.
pub fn list(generation: &Path) -> Vec<Licenses> {
    let dir = generation.join(DIR);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|r| {
            r.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let mut files = Vec::new();
            walk(&dir.join(&name), generation, &mut files, 0);
            files.sort();
            Licenses {
                extension: name,
                files,
            }
        })
        .collect()
}

fn walk(dir: &Path, generation: &Path, out: &mut Vec<String>, depth: usize) {
    if depth > 16 {
        return;
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&path, generation, out, depth + 1),
            Ok(_) => {
                if let Ok(rel) = path.strip_prefix(generation) {
                    out.push(rel.display().to_string());
                }
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_images_own_level_is_not_repeated_and_status_lists_the_files() {
        let t = tempfile::tempdir().unwrap();
        let (cron, other, gen) = (
            t.path().join("cron"),
            t.path().join("o"),
            t.path().join("g"),
        );
        std::fs::create_dir_all(cron.join("licenses/pg_cron")).unwrap();
        std::fs::write(cron.join("licenses/pg_cron/copyright"), "MIT").unwrap();
        std::fs::create_dir_all(other.join("licenses/a")).unwrap();
        std::fs::write(other.join("licenses/a/LICENSE"), "BSD").unwrap();
        std::fs::write(other.join("licenses/NOTICE"), "n").unwrap();
        gather("pg_cron", &cron, &gen).unwrap();
        gather("other", &other, &gen).unwrap();
        gather("none", t.path(), &gen).unwrap();
        assert_eq!(
            list(&gen),
            vec![
                Licenses {
                    extension: "other".into(),
                    files: vec![
                        "licenses/other/NOTICE".into(),
                        "licenses/other/a/LICENSE".into()
                    ],
                },
                Licenses {
                    extension: "pg_cron".into(),
                    files: vec!["licenses/pg_cron/copyright".into()],
                },
            ]
        );
    }
}
