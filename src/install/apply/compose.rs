//! Composing a generation: what the store lacks unpacked, the server and
//! its extensions linked into a new tree renamed into place, and what the
//! state records of it. Used by install, upgrade and the major upgrade.

use crate::blobs::BlobSource;
use crate::error::Result;
use crate::install::generation::{self, ExtensionInput};
use crate::install::layout::HostLayout;
use crate::install::state::{ExtensionState, GenerationState};
use crate::install::{postgres, store};
use crate::lock::Lock;
use crate::names::InstanceName;
use crate::progress::Reporter;
use crate::unpack;

/// What composing a generation needs.
pub struct GenerationInput<'a> {
    pub layout: &'a HostLayout,
    pub instance: &'a InstanceName,
    pub lock: &'a Lock,
    pub lock_digest: &'a crate::digest::Digest,
    pub source: &'a dyn BlobSource,
    /// The library check of the artifacts (which loader, which image libraries).
    pub libraries: Option<&'a crate::install::libraries::LibraryReport>,
}

/// Unpacks what the store lacks and composes generation `name` (renamed
/// into place whole: one already there was left by a killed run and is
/// taken as it is). Returns the generation and whether this call made it.
pub fn compose_generation(
    input: &GenerationInput,
    name: &str,
    reporter: &dyn Reporter,
) -> Result<(GenerationState, bool)> {
    let layout = input.layout;
    let lock = input.lock;
    let (server_dir, _) = store::ensure(
        layout,
        &lock.server.pinned,
        input.source,
        &unpack::keep_all,
        reporter,
    )?;
    let mut ext_dirs = Vec::new();
    for ext in &lock.extensions {
        let (dir, _) = store::ensure(
            layout,
            &ext.pinned,
            input.source,
            &unpack::keep_all,
            reporter,
        )?;
        ext_dirs.push(dir);
    }
    let dirs = generation::server_dirs(lock, &server_dir)?;
    let dest = layout.generation(input.instance, name);
    let inputs: Vec<ExtensionInput> = lock
        .extensions
        .iter()
        .zip(&ext_dirs)
        .map(|(e, d)| ExtensionInput {
            name: &e.name,
            store_dir: d,
            ld_library_path: &e.ld_library_path,
            env: &e.env,
        })
        .collect();
    // A generation appears by rename, so one already there is whole: a
    // run killed after composing it left it for us.
    let created = !dest.is_dir();
    if created {
        let image_libs = input
            .libraries
            .map(|l| l.from_image.as_slice())
            .unwrap_or_default();
        let image_loader = input.libraries.and_then(|l| l.image_loader.as_deref());
        generation::compose(
            lock,
            &dirs,
            &server_dir,
            &inputs,
            image_libs,
            image_loader,
            &dest,
        )?;
    }
    let version = if lock.server.version == "unknown" {
        postgres::version_of_binary(&dest.join(&dirs.bin).join("postgres"))
            .unwrap_or_else(|| "unknown".into())
    } else {
        lock.server.version.clone()
    };
    let env = generation::read_runtime_env(&dest);
    let collation = crate::install::collation::of_generation(&dest, &dirs, &env);
    let gen = GenerationState {
        name: name.to_string(),
        lock_digest: input.lock_digest.clone(),
        server_version: version,
        server_digest: lock.server.pinned.digest.clone(),
        extensions: lock
            .extensions
            .iter()
            .map(|e| ExtensionState {
                name: e.name.to_string(),
                version: e.version.clone(),
                digest: e.pinned.digest.clone(),
            })
            .collect(),
        dirs,
        store: lock
            .artifacts()
            .map(|a| a.digest.hex().to_string())
            .collect(),
        major: Some(lock.major()),
        collation: Some(collation),
    };
    Ok((gen, created))
}
