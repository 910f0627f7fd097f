//! What a generation's server needs from its environment (library path,
//! extension variables, readiness notification, patched executables),
//! recorded in the generation when it is composed and read by everything
//! that starts its tools. A leaf: the composer writes it, the rest read it.

use super::layout::RUNTIME_ENV;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// What the server's environment needs for a generation's extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeEnv {
    /// `LD_LIBRARY_PATH`, when an extension brought libraries the host lacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ld_library_path: Option<PathBuf>,
    /// Extension variables (`GDAL_DATA`, …), resolved to absolute paths.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, String>,
    /// The server links libsystemd, so it reports readiness (`Type=notify`);
    /// read once when the generation is composed.
    #[serde(default)]
    pub notify: bool,
    /// The executables patched to run on the image's own loader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewritten: Option<super::loader::Rewritten>,
}

/// The runtime environment recorded in a composed generation.
pub fn read_runtime_env(gen: &Path) -> RuntimeEnv {
    fs::read(gen.join(RUNTIME_ENV))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}
