//! The local content-addressed blob cache: `<dir>/blobs/sha256/<hex>`.
//! A blob enters only through [`Cache::commit_verified`], after its digest
//! was checked while it was written, by an atomic rename from `<dir>/tmp/`; so a blob under its name
//! is always whole and correct, and two pgoci processes can share a cache.

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::lock::Blob;
use std::fs;
use std::path::{Path, PathBuf};

/// A blob cache rooted at a directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens (creating) the cache at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["blobs/sha256", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).with_path(&dir, "create cache directory")?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
        })
    }

    /// The default cache directory: `/var/cache/pgoci` for root, else the
    /// user's cache dir (`~/.cache/pgoci`).
    pub fn default_dir() -> PathBuf {
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/cache/pgoci");
        }
        directories::ProjectDirs::from("", "", "pgoci")
            .map(|d| d.cache_dir().to_path_buf())
            .unwrap_or_else(|| PathBuf::from(".pgoci-cache"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives once cached.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether a blob is cached (present with the expected size; its
    /// content was verified when it was committed).
    pub fn has(&self, blob: &Blob) -> bool {
        fs::metadata(self.path(&blob.digest)).is_ok_and(|m| m.len() == blob.size)
    }

    /// A private temporary file name (this process only).
    pub fn temp_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{}.{}.tmp", digest.hex(), std::process::id()))
    }

    /// The shared partial file of a blob being downloaded (locked while in use).
    pub fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{}.partial", digest.hex()))
    }

    /// Moves a file whose digest the caller already checked while writing
    /// it (hash-while-download) into place: fsync, then rename.
    pub fn commit_verified(&self, temp: &Path, digest: &Digest) -> Result<()> {
        let file = fs::File::open(temp).with_path(temp, "open")?;
        file.sync_all().with_path(temp, "sync")?;
        let dest = self.path(digest);
        fs::rename(temp, &dest).with_path(&dest, "move into cache")
    }

    /// Every cached blob digest (for gc).
    pub fn digests(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).with_path(&dir, "list")? {
            let entry = entry.with_path(&dir, "list")?;
            if let Ok(d) = format!("sha256:{}", entry.file_name().to_string_lossy()).parse() {
                out.push(d);
            }
        }
        Ok(out)
    }
}
