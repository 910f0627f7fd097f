//! Where things live on the host (docs/host-layout.md), in one place. Every host
//! path goes through here so `--root` and `--prefix` move all of them.

use crate::names::InstanceName;
use std::path::{Path, PathBuf};

/// The lock a generation was composed from, kept inside it.
pub const GENERATION_LOCK: &str = ".pgoci.lock";

/// The runtime environment a generation needs, kept inside it.
pub const RUNTIME_ENV: &str = ".pgoci-env.json";

/// Host locations for one run: a root (normally `/`) and the prefix.
#[derive(Debug, Clone)]
pub struct HostLayout {
    pub root: PathBuf,
    /// The instances prefix, already under `root` (`/opt/pgoci`).
    pub prefix: PathBuf,
}

impl HostLayout {
    /// `prefix` is as the user wrote it (absolute, host view); it is placed under `root`.
    pub fn new(root: &Path, prefix: &Path) -> Self {
        HostLayout {
            root: root.to_path_buf(),
            prefix: under(root, prefix),
        }
    }

    /// A host path under the root.
    pub fn host(&self, path: impl AsRef<Path>) -> PathBuf {
        under(&self.root, path.as_ref())
    }

    /// `store/`: unpacked artifacts by manifest digest.
    pub fn store(&self) -> PathBuf {
        self.prefix.join("store")
    }

    /// `instances/`.
    pub fn instances(&self) -> PathBuf {
        self.prefix.join("instances")
    }

    /// `instances/<name>/`.
    pub fn instance(&self, name: &InstanceName) -> PathBuf {
        self.instances().join(name)
    }

    /// The default data directory of an instance.
    pub fn default_data_dir(&self, instance: &InstanceName) -> PathBuf {
        self.host(format!("var/lib/pgoci/{instance}/data"))
    }

    /// The systemd unit file of an instance.
    pub fn unit_file(&self, instance: &InstanceName) -> PathBuf {
        self.host(format!("etc/systemd/system/{}", unit_name(instance)))
    }

    /// The socket directory of an instance (systemd's `RuntimeDirectory`).
    pub fn socket_dir(&self, instance: &InstanceName) -> PathBuf {
        self.host(format!("run/pgoci/{instance}"))
    }

    /// Where pgoci-started servers log.
    pub fn log_dir(&self, instance: &InstanceName) -> PathBuf {
        self.host(format!("var/log/pgoci/{instance}"))
    }

    /// `instances/<name>/generations/`.
    pub fn generations(&self, instance: &InstanceName) -> PathBuf {
        self.instance(instance).join("generations")
    }

    /// One generation of an instance.
    pub fn generation(&self, instance: &InstanceName, generation: &str) -> PathBuf {
        self.generations(instance).join(generation)
    }
}

/// The systemd unit name of an instance.
pub fn unit_name(instance: &InstanceName) -> String {
    format!("pgoci-{instance}.service")
}

/// `path` placed under `root` (absolute paths lose their leading `/`).
pub fn under(root: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix("/") {
        Ok(rel) => root.join(rel),
        Err(_) => root.join(path),
    }
}
