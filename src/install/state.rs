//! `instances/<name>/state.json`: what pgoci created for an instance, so
//! status, re-runs, upgrade and uninstall know what is theirs to change.
//! Written to a temporary file and renamed: never half-written.

use super::collation::CollationLibs;
use super::generation::ServerDirs;
use crate::digest::Digest;
use crate::error::{Classify, Error, Kind, Result};
use crate::names::InstanceName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What pgoci recorded of an instance cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{} is corrupt: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot record instance {instance}: {source}")]
    Unrecordable {
        instance: InstanceName,
        source: serde_json::Error,
    },
}

impl Classify for StateError {
    fn kind(&self) -> Kind {
        match self {
            StateError::Corrupt { .. } => Kind::Host,
            StateError::Unrecordable { .. } => Kind::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            StateError::Corrupt { .. } => {
                "restore it, or remove the instance directory and install again".into()
            }
            StateError::Unrecordable { .. } => {
                "paths given to pgoci (--data-dir, --prefix, --root) must be UTF-8".into()
            }
        })
    }
}

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
    /// The PostgreSQL major (recorded from this field's introduction on;
    /// older states are read from `server_version`, see [`Self::major`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<u32>,
    /// The collation libraries this generation runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<CollationLibs>,
}

impl GenerationState {
    /// The PostgreSQL major of the generation.
    pub fn major(&self) -> Option<u32> {
        self.major
            .or_else(|| self.server_version.split('.').next()?.parse().ok())
    }
}

pub use super::service::ServiceKind;

/// Everything pgoci knows about an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceState {
    pub instance: InstanceName,
    pub major: u32,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Whether pgoci initialised the data directory (only then may `--purge` delete it).
    pub data_dir_created: bool,
    /// Whether initdb finished in it (only then may `--purge` delete it,
    /// and a missing `PG_VERSION` is an alarm rather than a fresh start).
    #[serde(default = "initialised_before_this_field")]
    pub data_dir_complete: bool,
    pub user: String,
    pub service: ServiceKind,
    pub socket_dir: PathBuf,
    pub settings: BTreeMap<crate::names::ConfigParam, String>,
    pub generations: Vec<GenerationState>,
    pub current: String,
    /// The collation libraries the data was last used with (the gate
    /// compares every change against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<CollationLibs>,
    /// A major upgrade in progress, or done and not yet finalized (its old
    /// data directory is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major_upgrade: Option<MajorRecord>,
}

/// States written before `data_dir_complete` existed were written after
/// initdb succeeded.
fn initialised_before_this_field() -> bool {
    true
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
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path, source }.into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, "read", e)),
        }
    }

    /// Writes the state atomically.
    pub fn write(&self, instance_dir: &Path) -> Result<()> {
        crate::fsutil::write_atomic(&Self::path(instance_dir), &self.to_bytes()?)
    }

    /// The state as written to `state.json`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|source| {
            StateError::Unrecordable {
                instance: self.instance.clone(),
                source,
            }
            .into()
        })
    }

    /// The current generation.
    pub fn current_generation(&self) -> Option<&GenerationState> {
        self.generations.iter().find(|g| g.name == self.current)
    }
}

/// How far a major upgrade got; each phase is recorded before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The new generation is composed; the new data directory is being made.
    Prepared,
    /// The new cluster is initialised; the old server still runs.
    Initialised,
    /// The old server is being stopped and `pg_upgrade` runs.
    Stopping,
    /// `pg_upgrade` finished: the new data directory is the upgraded cluster.
    Upgraded,
    /// `current` points at the new generation, the state at the new data.
    Switched,
    /// The new server was started (after `link`, the old data is gone).
    Started,
    /// Extensions updated, statistics rebuilt.
    Done,
}

/// A major upgrade in progress, or done and not yet finalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MajorRecord {
    pub from_major: u32,
    pub to_major: u32,
    pub from_generation: String,
    pub to_generation: String,
    pub old_data_dir: PathBuf,
    pub new_data_dir: PathBuf,
    pub method: super::cluster::Method,
    pub phase: Phase,
    /// The collation libraries the old data was used with.
    #[serde(default)]
    pub old_collation: Option<CollationLibs>,
    /// What the user chose for a collation change (applied after start).
    #[serde(default)]
    pub collation_change: Option<CollationChange>,
}

/// A collation change the upgrade crosses, and the user's choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollationChange {
    pub from: CollationLibs,
    pub to: CollationLibs,
    pub reindex: bool,
}
