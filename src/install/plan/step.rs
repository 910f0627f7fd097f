//! The step vocabulary of every plan: what an apply does, with a stable
//! `kind` for `--json` and a sentence for people.

use crate::digest::Digest;
use crate::install::service::ServiceKind;
use serde::Serialize;
use std::path::PathBuf;

/// Which part of a lock an artifact plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Extension,
}

/// One thing an apply does. Serialized with a stable `kind` for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// Unpack an artifact into the store (its blobs verified as they stream).
    Unpack {
        role: Role,
        name: String,
        version: String,
        digest: Digest,
        bytes: u64,
    },
    /// Compose a generation from store entries.
    Compose { generation: String },
    /// Create the service user as a system user.
    CreateUser { user: String },
    /// Create the data directory and run initdb as the service user.
    InitDataDir { data_dir: PathBuf },
    /// Write `pgoci.conf` (and the include line in `postgresql.conf`).
    WriteConfig { path: PathBuf },
    /// Write the service manager's files (the systemd unit).
    WriteServiceFiles {
        service: ServiceKind,
        files: Vec<PathBuf>,
    },
    /// Point `current` at a generation.
    Switch { from: Option<String>, to: String },
    /// Start the server.
    Start { service: ServiceKind },
    /// Restart the server on what changed.
    Restart { service: ServiceKind },
    /// Stop the server.
    Stop { service: ServiceKind },
    /// Remove the service manager's files.
    RemoveServiceFiles { files: Vec<PathBuf> },
    /// Remove the instance's directory (generations, state).
    RemoveInstance { dir: PathBuf },
    /// Delete the data directory (only one pgoci created and completed).
    PurgeData { data_dir: PathBuf },
    /// Remove a store entry no generation uses.
    RemoveStoreEntry { entry: String, bytes: u64 },
    /// Remove a cache blob no lock needs.
    RemoveCacheBlob { digest: Digest, bytes: u64 },
}

impl Step {
    /// A stable name for the kind of step (the JSON `kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Unpack { .. } => "unpack",
            Step::Compose { .. } => "compose",
            Step::CreateUser { .. } => "create_user",
            Step::InitDataDir { .. } => "init_data_dir",
            Step::WriteConfig { .. } => "write_config",
            Step::WriteServiceFiles { .. } => "write_service_files",
            Step::Switch { .. } => "switch",
            Step::Start { .. } => "start",
            Step::Restart { .. } => "restart",
            Step::Stop { .. } => "stop",
            Step::RemoveServiceFiles { .. } => "remove_service_files",
            Step::RemoveInstance { .. } => "remove_instance",
            Step::PurgeData { .. } => "purge_data",
            Step::RemoveStoreEntry { .. } => "remove_store_entry",
            Step::RemoveCacheBlob { .. } => "remove_cache_blob",
        }
    }

    /// What the step does, for a person: `done` in the past tense (after
    /// apply), else as a plan line.
    pub fn describe(&self, done: bool) -> String {
        let (plan, past) = match self {
            Step::Unpack {
                role,
                name,
                version,
                digest,
                ..
            } => {
                let what = match role {
                    Role::Server => format!("server {version} ({})", digest.short()),
                    Role::Extension => format!("extension {name} {version} ({})", digest.short()),
                };
                (format!("unpack {what}"), format!("unpacked {what}"))
            }
            Step::Compose { generation } => (
                format!("compose generation {generation}"),
                format!("composed generation {generation}"),
            ),
            Step::CreateUser { user } => (
                format!("create system user {user}"),
                format!("created system user {user}"),
            ),
            Step::InitDataDir { data_dir } => (
                format!("initialise {}", data_dir.display()),
                format!("initialised {}", data_dir.display()),
            ),
            Step::WriteConfig { path } => (
                format!("write {}", path.display()),
                format!("wrote {}", path.display()),
            ),
            Step::WriteServiceFiles { files, .. } => {
                let list = join_paths(files);
                (format!("write {list}"), format!("wrote {list}"))
            }
            Step::Switch { from: Some(f), to } => (
                format!("switch current from {f} to {to}"),
                format!("switched current from {f} to {to}"),
            ),
            Step::Switch { from: None, to } => (
                format!("switch current to {to}"),
                format!("switched current to {to}"),
            ),
            Step::Start { service } => (
                format!("start the server ({})", service.describe()),
                format!("started the server ({})", service.describe()),
            ),
            Step::Restart { service } => (
                format!("restart the server ({})", service.describe()),
                format!("restarted the server ({})", service.describe()),
            ),
            Step::Stop { service } => (
                format!("stop the server ({})", service.describe()),
                format!("stopped the server ({})", service.describe()),
            ),
            Step::RemoveServiceFiles { files } => {
                let list = join_paths(files);
                (format!("remove {list}"), format!("removed {list}"))
            }
            Step::RemoveInstance { dir } => (
                format!("remove {}", dir.display()),
                format!("removed {}", dir.display()),
            ),
            Step::PurgeData { data_dir } => (
                format!("delete data dir {}", data_dir.display()),
                format!("purged data dir {}", data_dir.display()),
            ),
            Step::RemoveStoreEntry { entry, .. } => (
                format!("remove store entry {entry}"),
                format!("removed store entry {entry}"),
            ),
            Step::RemoveCacheBlob { digest, .. } => (
                format!("remove cache blob {}", digest.short()),
                format!("removed cache blob {}", digest.short()),
            ),
        };
        if done {
            past
        } else {
            plan
        }
    }

    /// The step as a `--json` action object: its fields, `kind` and `text`.
    pub fn to_json(&self, done: bool) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["text"] = self.describe(done).into();
        v
    }
}

fn join_paths(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
