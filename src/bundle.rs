//! Bundles: a lock and every blob it needs, as an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`, plus `pgoci.lock`), either
//! a directory or one uncompressed `.tar` with entries in a fixed order so
//! the same lock always gives the same bytes. skopeo and oras read both.

use crate::blobs::BlobSource;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::limits::{read_capped, ReadError, DOCUMENT_CAP};
use crate::lock::{Blob, Lock};
use crate::registry::OCI_INDEX;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "pgoci.lock";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LOCK_DIGEST: &str = "io.pgoci.lock.digest";

/// `index.json` of a bundle.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexJson {
    pub schema_version: u32,
    /// Optional in the image-spec (skopeo leaves it out).
    #[serde(default = "index_media_type")]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn index_media_type() -> String {
    OCI_INDEX.into()
}

/// A descriptor in `index.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Builds the `index.json` for a lock: one descriptor per artifact.
fn index_for(lock: &Lock, lock_digest: &Digest) -> IndexJson {
    let major = lock.major().to_string();
    let describe = |pinned: &crate::lock::Pinned, role: &str, ext: Option<(&str, &str)>| {
        let mut annotations = BTreeMap::from([
            (REF_NAME.to_string(), pinned.reference.clone()),
            ("io.pgoci.role".to_string(), role.to_string()),
            ("io.pgoci.major".to_string(), major.clone()),
        ]);
        if let Some((name, version)) = ext {
            annotations.insert("io.pgoci.extension".into(), name.into());
            annotations.insert("io.pgoci.version".into(), version.into());
        }
        Descriptor {
            media_type: pinned.media_type.clone(),
            digest: pinned.digest.clone(),
            size: pinned.size,
            annotations,
        }
    };
    let mut manifests = vec![describe(&lock.server.pinned, "server", None)];
    for ext in &lock.extensions {
        manifests.push(describe(
            &ext.pinned,
            "extension",
            Some((&ext.name, &ext.version)),
        ));
    }
    IndexJson {
        schema_version: 2,
        media_type: OCI_INDEX.into(),
        manifests,
        annotations: BTreeMap::from([(LOCK_DIGEST.to_string(), lock_digest.to_string())]),
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub path: PathBuf,
    pub format: &'static str,
    pub size: u64,
    pub blobs: usize,
    pub lock_digest: Digest,
}

/// Writes a bundle of `lock` with blobs from `source` to `path`: a `.tar`
/// file if the name ends so, else a directory. Written under a temporary
/// name and renamed, so a bundle at `path` is always complete.
pub fn export(lock: &Lock, source: &dyn BlobSource, path: &Path) -> Result<ExportReport> {
    let lock_text = lock.to_yaml()?;
    let lock_digest = Digest::of_bytes(lock_text.as_bytes());
    let index = serde_json::to_vec(&index_for(lock, &lock_digest))
        .map_err(|e| Error::internal(format!("index.json: {e}")))?;
    let blobs = lock.blobs();
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let is_tar = path.extension().is_some_and(|e| e == "tar");
    let result = if is_tar {
        write_tar(&tmp, &index, lock_text.as_bytes(), &blobs, source)
    } else {
        write_dir(&tmp, &index, lock_text.as_bytes(), &blobs, source)
    };
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp).or_else(|_| fs::remove_file(&tmp));
        return Err(e);
    }
    if path.exists() {
        let old = path.with_file_name(format!(
            ".{}.old-{}",
            path.file_name().unwrap().to_string_lossy(),
            std::process::id()
        ));
        fs::rename(path, &old).with_path(path, "replace")?;
        fs::rename(&tmp, path).with_path(path, "write bundle")?;
        let _ = fs::remove_dir_all(&old).or_else(|_| fs::remove_file(&old));
    } else {
        fs::rename(&tmp, path).with_path(path, "write bundle")?;
    }
    let size = if is_tar {
        fs::metadata(path).with_path(path, "stat")?.len()
    } else {
        index.len() as u64
            + lock_text.len() as u64
            + LAYOUT_CONTENT.len() as u64
            + blobs.iter().map(|b| b.size).sum::<u64>()
    };
    Ok(ExportReport {
        path: path.to_path_buf(),
        format: if is_tar { "tar" } else { "directory" },
        size,
        blobs: blobs.len(),
        lock_digest,
    })
}

fn write_dir(
    dir: &Path,
    index: &[u8],
    lock: &[u8],
    blobs: &[Blob],
    source: &dyn BlobSource,
) -> Result<()> {
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).with_path(&blob_dir, "create")?;
    for (name, bytes) in [
        (LAYOUT_FILE, LAYOUT_CONTENT),
        ("index.json", index),
        (LOCK_FILE, lock),
    ] {
        let p = dir.join(name);
        fs::write(&p, bytes).with_path(&p, "write")?;
    }
    for blob in blobs {
        let dest = blob_dir.join(blob.digest.hex());
        let mut out = fs::File::create(&dest).with_path(&dest, "create")?;
        std::io::copy(&mut source.open(blob)?, &mut out)
            .map_err(|e| Error::integrity(format!("{e}")))?;
        out.sync_all().with_path(&dest, "sync")?;
    }
    Ok(())
}

/// A tar header with fixed metadata, so output depends on content only.
fn fixed_header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn write_tar(
    file: &Path,
    index: &[u8],
    lock: &[u8],
    blobs: &[Blob],
    source: &dyn BlobSource,
) -> Result<()> {
    let out = fs::File::create(file).with_path(file, "create")?;
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, out));
    let tar_err = |e: std::io::Error| Error::io(file, "write", e);
    for (name, bytes) in [
        (LAYOUT_FILE, LAYOUT_CONTENT),
        ("index.json", index),
        (LOCK_FILE, lock),
    ] {
        let mut h = fixed_header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
        tar.append_data(&mut h, name, bytes).map_err(tar_err)?;
    }
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = fixed_header(tar::EntryType::Directory, 0, 0o755);
        tar.append_data(&mut h, dir, std::io::empty())
            .map_err(tar_err)?;
    }
    let mut sorted: Vec<&Blob> = blobs.iter().collect();
    sorted.sort_by(|a, b| a.digest.cmp(&b.digest));
    for blob in sorted {
        let mut h = fixed_header(tar::EntryType::Regular, blob.size, 0o644);
        let name = format!("blobs/sha256/{}", blob.digest.hex());
        tar.append_data(&mut h, name, source.open(blob)?)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    Error::integrity(e.to_string())
                } else {
                    tar_err(e)
                }
            })?;
    }
    let buf = tar.into_inner().map_err(tar_err)?;
    buf.into_inner()
        .map_err(|e| Error::io(file, "write", e.into_error()))?
        .sync_all()
        .map_err(tar_err)?;
    Ok(())
}

/// An opened bundle: its lock, index and blob source.
pub struct Bundle {
    pub path: PathBuf,
    pub lock: Lock,
    pub lock_digest: Digest,
    pub index: IndexJson,
    storage: Storage,
}

enum Storage {
    Dir(PathBuf),
    /// Blob name → (offset, size) inside the tar file.
    Tar(PathBuf, HashMap<String, (u64, u64)>),
}

impl Storage {
    /// Reads a small document of the layout, refusing one over [`DOCUMENT_CAP`].
    fn read_file(&self, name: &str) -> std::io::Result<Vec<u8>> {
        read_capped(self.open_name(name)?, DOCUMENT_CAP).map_err(|e| match e {
            ReadError::Io(e) => e,
            ReadError::TooLarge(_) => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{name} is {e}"))
            }
        })
    }

    fn open_name(&self, name: &str) -> std::io::Result<Box<dyn Read + Send + '_>> {
        match self {
            Storage::Dir(dir) => Ok(Box::new(std::io::BufReader::with_capacity(
                256 << 10,
                open_regular(&dir.join(name))?,
            ))),
            Storage::Tar(file, entries) => {
                let &(offset, size) = entries.get(name).ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, name.to_string())
                })?;
                let mut f = fs::File::open(file)?;
                f.seek(SeekFrom::Start(offset))?;
                Ok(Box::new(std::io::BufReader::with_capacity(
                    256 << 10,
                    f.take(size),
                )))
            }
        }
    }
}

impl Bundle {
    /// Opens a bundle directory or `.tar`, checking layout, index and lock
    /// (not yet the blobs: see [`Bundle::verify`]).
    /// Opens the OCI layout itself (directory or tar) and checks `oci-layout`.
    fn open_layout(path: &Path) -> Result<(Storage, impl Fn(String) -> Error + '_)> {
        let bad = move |why: String| {
            Error::integrity(format!(
                "{} is not a valid pgoci bundle: {why}",
                path.display()
            ))
        };
        let meta = fs::metadata(path)
            .map_err(|e| Error::usage(format!("cannot open bundle {}: {e}", path.display())))?;
        let storage = if meta.is_dir() {
            Storage::Dir(path.to_path_buf())
        } else {
            Storage::Tar(
                path.to_path_buf(),
                scan_tar(path).map_err(|e| bad(e.to_string()))?,
            )
        };
        let layout = storage
            .read_file(LAYOUT_FILE)
            .map_err(|e| bad(format!("oci-layout: {e}")))?;
        let layout: serde_json::Value =
            serde_json::from_slice(&layout).map_err(|e| bad(format!("oci-layout: {e}")))?;
        if layout.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(bad("oci-layout is not version 1.0.0".into()));
        }
        Ok((storage, bad))
    }

    /// Opens the layout and parses its `index.json`.
    fn open_indexed(path: &Path) -> Result<(Storage, IndexJson, impl Fn(String) -> Error + '_)> {
        let (storage, bad) = Self::open_layout(path)?;
        let index = storage
            .read_file("index.json")
            .map_err(|e| bad(format!("index.json: {e}")))?;
        let index: IndexJson =
            serde_json::from_slice(&index).map_err(|e| bad(format!("index.json: {e}")))?;
        Ok((storage, index, bad))
    }

    /// Opens any OCI image layout (one skopeo or oras wrote, say) as the
    /// blob source for `lock`: the lock says what to take, the layout only
    /// has to hold those blobs (each verified when read).
    pub fn open_with_lock(path: &Path, lock: Lock) -> Result<Self> {
        let (storage, index, _) = Self::open_indexed(path)?;
        Ok(Bundle {
            path: path.to_path_buf(),
            lock_digest: lock.digest()?,
            lock,
            index,
            storage,
        })
    }

    /// Opens a pgoci bundle: layout, index and the lock it carries.
    pub fn open(path: &Path) -> Result<Self> {
        let (storage, index, bad) = Self::open_indexed(path)?;
        let lock_text = storage
            .read_file(LOCK_FILE)
            .map_err(|e| bad(format!("{LOCK_FILE}: {e}")))?;
        let lock_digest = Digest::of_bytes(&lock_text);
        if let Some(want) = index.annotations.get(LOCK_DIGEST) {
            if *want != lock_digest.to_string() {
                return Err(bad(format!(
                    "pgoci.lock has digest {lock_digest} but index.json says {want}"
                )));
            }
        }
        let text =
            String::from_utf8(lock_text).map_err(|_| bad("pgoci.lock is not UTF-8".into()))?;
        let lock = Lock::parse(&text, &format!("{}/pgoci.lock", path.display()))
            .map_err(|e| bad(e.message))?;
        for pinned in lock.artifacts() {
            if !index.manifests.iter().any(|d| d.digest == pinned.digest) {
                return Err(bad(format!("index.json does not list {}", pinned.digest)));
            }
        }
        Ok(Bundle {
            path: path.to_path_buf(),
            lock,
            lock_digest,
            index,
            storage,
        })
    }

    /// Checks every blob of the lock: present, right size, right digest.
    /// Fails on the first bad one, naming it.
    pub fn verify(&self) -> Result<usize> {
        let blobs = self.lock.blobs();
        for blob in &blobs {
            self.verify_blob(blob)?;
        }
        self.verify_manifests()?;
        Ok(blobs.len())
    }

    /// Checks that every manifest blob of the lock is an image manifest
    /// listing the lock's config and layers (its hash alone is not enough).
    pub fn verify_manifests(&self) -> Result<()> {
        for pinned in self.lock.artifacts() {
            self.verify_manifest(pinned)?;
        }
        Ok(())
    }

    /// A manifest blob must be an OCI or Docker image manifest, not just
    /// bytes with the right hash: its `config` and `layers` descriptors.
    fn verify_manifest(&self, pinned: &crate::lock::Pinned) -> Result<()> {
        #[derive(Deserialize)]
        struct ManifestProbe {
            #[serde(rename = "schemaVersion")]
            schema_version: u32,
            config: Descriptor,
            layers: Vec<Descriptor>,
        }
        let blob = Blob {
            digest: pinned.digest.clone(),
            size: pinned.size,
            media_type: pinned.media_type.clone(),
        };
        let bytes = self.read_small(&blob).map_err(|e| {
            Error::integrity(format!("bundle {}: {}", self.path.display(), e.message))
        })?;
        let probe: ManifestProbe = serde_json::from_slice(&bytes).map_err(|e| {
            Error::integrity(format!(
                "bundle {}: manifest blob {} is not an image manifest: {e}",
                self.path.display(),
                pinned.digest
            ))
        })?;
        if probe.schema_version != 2 {
            return Err(Error::integrity(format!(
                "bundle {}: manifest blob {} has schemaVersion {}, not 2",
                self.path.display(),
                pinned.digest,
                probe.schema_version
            )));
        }
        let listed: Vec<&Digest> = probe.layers.iter().map(|d| &d.digest).collect();
        let locked: Vec<&Digest> = pinned.layers.iter().map(|b| &b.digest).collect();
        if probe.config.digest != pinned.config.digest || listed != locked {
            return Err(Error::integrity(format!(
                "bundle {}: manifest blob {} lists other blobs than the lock",
                self.path.display(),
                pinned.digest
            )));
        }
        Ok(())
    }

    fn verify_blob(&self, blob: &Blob) -> Result<()> {
        BlobSource::verify(self, blob).map_err(|e| {
            Error::integrity(format!("bundle {}: {}", self.path.display(), e.message))
                .hint("export the bundle again from a good cache")
        })
    }

    /// Total size of the blobs of the lock.
    pub fn blob_bytes(&self) -> u64 {
        self.lock.download_size()
    }
}

impl BlobSource for Bundle {
    fn open_raw(&self, blob: &Blob) -> Result<Box<dyn Read + Send + '_>> {
        let name = format!("blobs/sha256/{}", blob.digest.hex());
        self.storage.open_name(&name).map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::InvalidData {
                e.to_string()
            } else {
                "missing".to_string()
            };
            Error::integrity(format!(
                "bundle {}: blob {}: {why}",
                self.path.display(),
                blob.digest
            ))
        })
    }
}

/// Opens a file of a bundle directory: a regular file only, never
/// following a symlink (it could point out of the bundle).
fn open_regular(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is a symlink", path.display()),
                )
            } else {
                e
            }
        })?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// Maps each regular file of a tar to its data offset and size.
fn scan_tar(path: &Path) -> std::io::Result<HashMap<String, (u64, u64)>> {
    let file = fs::File::open(path)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut entries = HashMap::new();
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        entries.insert(name, (entry.raw_file_position(), entry.size()));
    }
    Ok(entries)
}
