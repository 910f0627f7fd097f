//! `instances/<name>/state.json`: what pgoci created for an instance, so
//! status, re-runs, upgrade and uninstall know what is theirs to change.
//! Written to a temporary file and renamed: never half-written.

use super::generation::ServerDirs;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One extension of a generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionState {
    pub name: String,
    pub version: String,
    pub digest: Digest,
}

/// One generation of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationState {
    pub name: String,
    pub lock_digest: Digest,
    pub server_version: String,
    pub server_digest: Digest,
    pub extensions: Vec<ExtensionState>,
    pub dirs: ServerDirs,
    /// Store entries (manifest hex) this generation links to.
    pub store: Vec<String>,
}

/// How the server of an instance is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Systemd,
    None,
}

/// Everything pgoci knows about an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceState {
    pub instance: String,
    pub major: u32,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Whether pgoci initialised the data directory (only then may `--purge` delete it).
    pub data_dir_created: bool,
    pub user: String,
    pub service: ServiceKind,
    pub socket_dir: PathBuf,
    pub settings: BTreeMap<String, String>,
    pub generations: Vec<GenerationState>,
    pub current: String,
}

impl InstanceState {
    /// The state file of an instance directory.
    pub fn path(instance_dir: &Path) -> PathBuf {
        instance_dir.join("state.json")
    }

    /// Reads the state, `None` if the instance does not exist.
    pub fn read(instance_dir: &Path) -> Result<Option<Self>> {
        let path = Self::path(instance_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::host(format!("{} is corrupt: {e}", path.display()))
                    .hint("restore it, or remove the instance directory and install again")
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, "read", e)),
        }
    }

    /// Writes the state atomically.
    pub fn write(&self, instance_dir: &Path) -> Result<()> {
        let path = Self::path(instance_dir);
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::internal(format!("state.json: {e}")))?;
        write_atomic(&path, &bytes)
    }

    /// The current generation.
    pub fn current_generation(&self) -> Option<&GenerationState> {
        self.generations.iter().find(|g| g.name == self.current)
    }
}

/// Writes a file by temp + fsync + rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).with_path(&tmp, "create")?;
    f.write_all(bytes).with_path(&tmp, "write")?;
    f.sync_all().with_path(&tmp, "sync")?;
    std::fs::rename(&tmp, path).with_path(path, "write")
}

/// Points `link` at `target` atomically (new symlink, then rename over).
pub fn switch_symlink(link: &Path, target: &Path) -> Result<()> {
    let tmp = link.with_file_name(format!(".current.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).with_path(&tmp, "create symlink")?;
    std::fs::rename(&tmp, link).with_path(link, "switch")
}
