//! Bundles: one or more locks and every blob they need, each blob once, as
//! an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`, plus
//! `pgoci.lock`), either a directory or one uncompressed `.tar` with entries
//! in a fixed order so the same locks always give the same bytes. skopeo and
//! oras read both.
//!
//! `pgoci.lock` is the first lock. A bundle for a whole site (say
//! PostgreSQL 15 and 17) keeps every further lock as a blob named by its
//! digest, listed in the index's `io.pgoci.locks` annotation; a one-lock
//! bundle is byte-for-byte what it always was.

use crate::blobs::BlobSource;
use crate::companions::{Companion, Role};
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
/// The largest lock a bundle may carry (real ones are a few KiB).
const MAX_LOCK_BYTES: u64 = 4 << 20;
/// Every lock of a bundle holding more than one, comma-separated digests.
const LOCKS: &str = "io.pgoci.locks";
/// The role of a descriptor that only gives a short name.
const ALIAS: &str = "alias";
/// The repository a companion manifest is published in.
const REPOSITORY: &str = "io.pgoci.repository";
/// The manifest a referrer is about.
const REFERS: &str = "io.pgoci.refers";

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
    /// What an artifact manifest (an SBOM, an attestation) holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Builds the `index.json` for locks: one descriptor per artifact (each
/// once, described by the first lock that uses it), then one per
/// companion (see [`crate::companions`]). A reference whose tag named an
/// index that travels names that index; the platform manifest is then
/// listed without a name.
fn index_for(locks: &[(Lock, Digest)], companions: &[Companion]) -> IndexJson {
    let tagged_index = |pinned: &crate::lock::Pinned| {
        pinned.index.as_ref().is_some_and(|i| {
            companions
                .iter()
                .any(|c| c.role == Role::Index && c.manifest.digest == *i && c.tag.is_some())
        })
    };
    let describe =
        |lock: &Lock, pinned: &crate::lock::Pinned, role: &str, ext: Option<(&str, &str)>| {
            let mut annotations = BTreeMap::from([
                ("io.pgoci.role".to_string(), role.to_string()),
                ("io.pgoci.major".to_string(), lock.major().to_string()),
            ]);
            if !tagged_index(pinned) {
                annotations.insert(REF_NAME.to_string(), pinned.reference.clone());
            }
            if let Some((name, version)) = ext {
                annotations.insert("io.pgoci.extension".into(), name.into());
                annotations.insert("io.pgoci.version".into(), version.into());
            }
            Descriptor {
                media_type: pinned.media_type.clone(),
                digest: pinned.digest.clone(),
                size: pinned.size,
                artifact_type: None,
                annotations,
            }
        };
    let mut manifests: Vec<Descriptor> = Vec::new();
    for (lock, _) in locks {
        let mut add = |d: Descriptor| {
            if !manifests.iter().any(|m| m.digest == d.digest) {
                manifests.push(d);
            }
        };
        add(describe(lock, &lock.server.pinned, "server", None));
        for ext in &lock.extensions {
            add(describe(
                lock,
                &ext.pinned,
                "extension",
                Some((&ext.name, &ext.version)),
            ));
        }
        for pinned in lock.artifacts() {
            if let Some(d) = signature_descriptor(pinned) {
                add(d);
            }
        }
    }
    for c in companions {
        if let Some(known) = manifests.iter_mut().find(|m| m.digest == c.manifest.digest) {
            // A signature the lock records: also where it is published.
            known
                .annotations
                .insert(REPOSITORY.to_string(), c.repository.clone());
            continue;
        }
        let mut annotations = BTreeMap::from([
            ("io.pgoci.role".to_string(), c.role.as_str().to_string()),
            (REPOSITORY.to_string(), c.repository.clone()),
        ]);
        if c.tag.is_some() {
            annotations.insert(REF_NAME.to_string(), c.reference());
        }
        if let Some(subject) = &c.subject {
            annotations.insert(REFERS.to_string(), subject.to_string());
        }
        manifests.push(Descriptor {
            media_type: c.manifest.media_type.clone(),
            digest: c.manifest.digest.clone(),
            size: c.manifest.size,
            artifact_type: c.artifact_type.clone(),
            annotations,
        });
    }
    // Short names for tools that take `LAYOUT:TAG` and split it at the last
    // colon (oras): `postgresql-17` for `reg/pgoci/postgresql:17`, naming
    // what the tag names (the index, when it travels).
    let mut aliases: Vec<Descriptor> = Vec::new();
    for (lock, _) in locks {
        for pinned in lock.artifacts() {
            let Some(alias) = alias_of(&pinned.reference) else {
                continue;
            };
            let target = manifests.iter().find(|m| {
                m.annotations.get(REF_NAME) == Some(&pinned.reference)
                    && m.annotations.get("io.pgoci.role").map(String::as_str) != Some(ALIAS)
            });
            let taken = aliases
                .iter()
                .any(|a| a.annotations.get(REF_NAME) == Some(&alias));
            if let (Some(target), false) = (target, taken) {
                aliases.push(Descriptor {
                    media_type: target.media_type.clone(),
                    digest: target.digest.clone(),
                    size: target.size,
                    artifact_type: None,
                    annotations: BTreeMap::from([
                        (REF_NAME.to_string(), alias),
                        ("io.pgoci.role".to_string(), ALIAS.to_string()),
                    ]),
                });
            }
        }
    }
    manifests.extend(aliases);
    let mut annotations = BTreeMap::from([(LOCK_DIGEST.to_string(), locks[0].1.to_string())]);
    if locks.len() > 1 {
        let all: Vec<String> = locks.iter().map(|(_, d)| d.to_string()).collect();
        annotations.insert(LOCKS.to_string(), all.join(","));
    }
    IndexJson {
        schema_version: 2,
        media_type: OCI_INDEX.into(),
        manifests,
        annotations,
    }
}

/// The short name of a reference in a bundle: the repository's last
/// component and the tag, as a valid tag (`pg_cron-1.4.2-15`).
fn alias_of(reference: &str) -> Option<String> {
    let parsed = crate::registry::Registry::parse_reference(reference).ok()?;
    let tag = parsed.tag()?;
    let name = parsed.repository().rsplit('/').next()?;
    let alias: String = format!("{name}-{tag}")
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '_',
        })
        .take(128)
        .collect();
    Some(alias)
}

/// The cosign signature manifest of an artifact, named as cosign tags it
/// (`REPO:sha256-<hex>.sig`), with what it signs and who signed.
fn signature_descriptor(pinned: &crate::lock::Pinned) -> Option<Descriptor> {
    let sig = pinned.signature.as_ref()?;
    let repo = pinned
        .reference
        .rsplit_once('@')
        .map(|(r, _)| r)
        .unwrap_or(&pinned.reference);
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    Some(Descriptor {
        media_type: sig.manifest.media_type.clone(),
        digest: sig.manifest.digest.clone(),
        size: sig.manifest.size,
        artifact_type: None,
        annotations: BTreeMap::from([
            (
                REF_NAME.to_string(),
                format!(
                    "{repo}:{}",
                    crate::signature::cosign::signature_tag(&sig.signed)
                ),
            ),
            ("io.pgoci.role".to_string(), "signature".to_string()),
            ("io.pgoci.signs".to_string(), sig.signed.to_string()),
            ("io.pgoci.signer".to_string(), sig.signer.clone()),
        ]),
    })
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Manifests carried beside the locked ones (indexes, referrers).
    pub companions: usize,
    pub path: PathBuf,
    pub format: &'static str,
    pub size: u64,
    pub blobs: usize,
    /// The first lock's digest (the one in `pgoci.lock`).
    pub lock_digest: Digest,
    /// Every lock's digest.
    pub locks: Vec<Digest>,
}

/// A lock as it is stored in a bundle: a blob of its canonical text.
fn lock_blob(text: &str, digest: &Digest) -> Blob {
    Blob {
        digest: digest.clone(),
        size: text.len() as u64,
        media_type: LOCK_MEDIA_TYPE.into(),
    }
}

/// The media type of lock blobs (further locks of a bundle).
pub const LOCK_MEDIA_TYPE: &str = "application/vnd.pgoci.lock.v1+yaml";

/// Writes a bundle of `locks` (at least one) with blobs from `source` to
/// `path`: a `.tar` file if the name ends so, else a directory. Each blob
/// is written once however many locks need it. Written under a temporary
/// name and renamed, so a bundle at `path` is always complete.
pub fn export(locks: &[Lock], source: &dyn BlobSource, path: &Path) -> Result<ExportReport> {
    export_with(locks, &[], source, path)
}

/// What is at an export's `-o PATH` now, once [`check_target`] let it be
/// replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Nothing: the bundle is renamed into place.
    Absent,
    /// An empty directory (a directory bundle replaces it in one rename).
    EmptyDir,
    /// A previous pgoci bundle (a `.tar` file or a directory layout).
    Bundle,
}

/// Whether an export may write to `path`: it replaces only nothing, an
/// empty directory (for a directory bundle) or a previous pgoci bundle;
/// anything else — the user's own files, `.`, `..`, `/`, a symlink — is
/// exit 2 and left untouched. Called before anything is fetched or written.
pub fn check_target(path: &Path) -> Result<Target> {
    let refuse = |why: &str| {
        Error::usage(format!(
            "bundle export will not write to {}: {why}",
            path.display()
        ))
        .hint("pass -o a new name (or a previous pgoci bundle to replace it)")
    };
    let text = path.as_os_str().as_encoded_bytes();
    let last = text
        .rsplit(|b| *b == b'/')
        .find(|c| !c.is_empty())
        .unwrap_or(b"");
    if text.is_empty() || last.is_empty() || last == b"." || last == b".." {
        return Err(refuse("it names a directory, not a bundle to write"));
    }
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Target::Absent),
        Err(e) => return Err(Error::io(path, "read", e)),
    };
    let is_tar = path.extension().is_some_and(|e| e == "tar");
    if meta.file_type().is_symlink() {
        return Err(refuse("it is a symlink"));
    }
    if meta.is_file() {
        return match is_bundle_file(path) {
            true => Ok(Target::Bundle),
            false => Err(refuse("it is a file that is not a pgoci bundle")),
        };
    }
    if !meta.is_dir() {
        return Err(refuse("it is not a regular file or directory"));
    }
    let mut entries = fs::read_dir(path).with_path(path, "read")?.peekable();
    if entries.peek().is_none() {
        return match is_tar {
            true => Err(refuse("it is a directory, and a .tar bundle is a file")),
            false => Ok(Target::EmptyDir),
        };
    }
    match bundle_dir_stranger(path) {
        None => Ok(Target::Bundle),
        Some(why) => Err(refuse(&format!(
            "it is a directory that is not a pgoci bundle ({why})"
        ))),
    }
}

/// A `.tar` pgoci wrote: an OCI layout holding `pgoci.lock`.
fn is_bundle_file(path: &Path) -> bool {
    let Ok(entries) = scan_tar(path) else {
        return false;
    };
    [LAYOUT_FILE, "index.json", LOCK_FILE]
        .iter()
        .all(|n| entries.contains_key(*n))
}

/// Why a directory is not a pgoci bundle directory (`None`: it is one,
/// and nothing of the user's is inside). A bundle holds `oci-layout`,
/// `index.json`, `pgoci.lock` and `blobs/sha256/<hex>`, each a regular
/// file, and nothing else.
fn bundle_dir_stranger(dir: &Path) -> Option<String> {
    let regular = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    let is_dir = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    let list = |d: &Path| -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        for e in fs::read_dir(d).map_err(|e| format!("cannot list it: {e}"))? {
            let e = e.map_err(|e| format!("cannot list it: {e}"))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    };
    let names = match list(dir) {
        Ok(n) => n,
        Err(why) => return Some(why),
    };
    for name in &names {
        let p = dir.join(name);
        let ours = match name.as_str() {
            LAYOUT_FILE | "index.json" | LOCK_FILE => regular(&p),
            "blobs" => is_dir(&p),
            _ => false,
        };
        if !ours {
            return Some(format!("it holds {name}"));
        }
    }
    for name in [LAYOUT_FILE, LOCK_FILE] {
        if !names.iter().any(|n| n == name) {
            return Some(format!("it has no {name}"));
        }
    }
    if !names.iter().any(|n| n == "blobs") {
        return None;
    }
    let blobs = dir.join("blobs");
    match list(&blobs) {
        Err(why) => return Some(why),
        Ok(sub) => {
            if let Some(other) = sub
                .iter()
                .find(|n| *n != "sha256" || !is_dir(&blobs.join(n)))
            {
                return Some(format!("it holds blobs/{other}"));
            }
        }
    }
    let sha = blobs.join("sha256");
    if !is_dir(&sha) {
        return None;
    }
    match list(&sha) {
        Err(why) => Some(why),
        Ok(sub) => sub
            .iter()
            .find(|n| {
                n.len() != 64 || !n.bytes().all(|c| c.is_ascii_hexdigit()) || !regular(&sha.join(n))
            })
            .map(|n| format!("it holds blobs/sha256/{n}")),
    }
}

/// A temporary file or directory beside the target, removed on drop
/// unless it was renamed into place.
struct Temp {
    path: PathBuf,
    keep: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.keep {
            remove_any(&self.path);
        }
    }
}

/// Removes a file or a directory tree; what is gone already is fine.
fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// An I/O failure while writing a bundle to `target`: a full disk (or
/// quota) names the file system as the install does, and is the host's
/// (exit 6); bytes that do not match their digest are integrity (exit 5);
/// anything else is the host's, naming the target.
fn write_error(target: &Path, action: &str, e: std::io::Error) -> Error {
    let full = matches!(
        e.raw_os_error(),
        Some(c) if c == nix::libc::ENOSPC || c == nix::libc::EDQUOT
    );
    if full {
        let dir = std::path::absolute(target)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        return Error::host(format!(
            "cannot {action} bundle {}: the file system mounted at {} is full ({e})",
            target.display(),
            crate::unpack::mount_point(&dir).display()
        ))
        .hint("free space (or raise the quota) there, or export to another file system, then run again")
        .caused_by(e);
    }
    match e.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
            Error::integrity(e.to_string())
        }
        _ => Error::io(target, &format!("{action} bundle"), e),
    }
}

/// [`export`], with manifests that travel beside the locked ones and
/// whose blobs `source` holds too (see [`crate::companions::discover`]).
/// The same lock given twice is exported once.
pub fn export_with(
    locks: &[Lock],
    companions: &[Companion],
    source: &dyn BlobSource,
    path: &Path,
) -> Result<ExportReport> {
    check_target(path)?;
    if locks.is_empty() {
        return Err(Error::usage("bundle export needs at least one lock"));
    }
    // Each lock once, by its digest, in the order given: the text, the
    // digest and the lock stay together (they label index.json).
    let mut described: Vec<(Lock, Digest)> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    for l in locks {
        let text = l.to_yaml()?;
        let digest = Digest::of_bytes(text.as_bytes());
        if !described.iter().any(|(_, d)| *d == digest) {
            described.push((l.clone(), digest));
            texts.push(text);
        }
    }
    let lock_text = texts[0].clone();
    let lock_digest = described[0].1.clone();
    let index = serde_json::to_vec(&index_for(&described, companions))
        .map_err(|e| Error::internal(format!("index.json: {e}")))?;
    let mut blobs: Vec<Blob> = Vec::new();
    for (l, _) in &described {
        for b in l.blobs() {
            if !blobs.iter().any(|x| x.digest == b.digest) {
                blobs.push(b);
            }
        }
    }
    for c in companions {
        for b in std::iter::once(&c.manifest).chain(&c.blobs) {
            if !blobs.iter().any(|x| x.digest == b.digest) {
                blobs.push(b.clone());
            }
        }
    }
    // Further locks travel as blobs named by their digest.
    let extra_locks: Vec<(Blob, &str)> = texts
        .iter()
        .zip(&described)
        .skip(1)
        .map(|(t, (_, d))| (lock_blob(t, d), t.as_str()))
        .collect();
    let source = WithLocks {
        source,
        locks: &extra_locks,
    };
    blobs.extend(extra_locks.iter().map(|(b, _)| b.clone()));
    let name = path
        .file_name()
        .ok_or_else(|| Error::usage(format!("{} names no file", path.display())))?
        .to_string_lossy()
        .into_owned();
    let beside = |what: &str| path.with_file_name(format!(".{name}.{what}-{}", std::process::id()));
    let mut tmp = Temp {
        path: beside("tmp"),
        keep: false,
    };
    // A leftover of an earlier run of this pid (never the user's name).
    remove_any(&tmp.path);
    let is_tar = path.extension().is_some_and(|e| e == "tar");
    if is_tar {
        write_tar(
            &tmp.path,
            path,
            &index,
            lock_text.as_bytes(),
            &blobs,
            &source,
        )?;
    } else {
        write_dir(
            &tmp.path,
            path,
            &index,
            lock_text.as_bytes(),
            &blobs,
            &source,
        )?;
    }
    // Checked again just before the rename: what appeared at the target
    // meanwhile is not replaced unless it is a bundle too.
    match check_target(path)? {
        Target::Absent | Target::EmptyDir => {
            fs::rename(&tmp.path, path).map_err(|e| write_error(path, "write", e))?;
        }
        Target::Bundle => {
            let old = Temp {
                path: beside("old"),
                keep: false,
            };
            remove_any(&old.path);
            fs::rename(path, &old.path).map_err(|e| write_error(path, "replace", e))?;
            if let Err(e) = fs::rename(&tmp.path, path) {
                // Put the previous bundle back; nothing else was touched.
                let _ = fs::rename(&old.path, path);
                return Err(write_error(path, "write", e));
            }
            drop(old);
        }
    }
    tmp.keep = true;
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
        companions: companions.len(),
        lock_digest,
        locks: described.into_iter().map(|(_, d)| d).collect(),
    })
}

/// A blob source that also serves the lock blobs of an export.
struct WithLocks<'a> {
    source: &'a dyn BlobSource,
    locks: &'a [(Blob, &'a str)],
}

impl BlobSource for WithLocks<'_> {
    fn open_raw(&self, blob: &Blob) -> Result<Box<dyn Read + Send + '_>> {
        match self.locks.iter().find(|(b, _)| b.digest == blob.digest) {
            Some((_, text)) => Ok(Box::new(text.as_bytes())),
            None => self.source.open_raw(blob),
        }
    }
}

/// Writes a directory bundle at `dir` (a temporary name beside `target`,
/// which errors name).
fn write_dir(
    dir: &Path,
    target: &Path,
    index: &[u8],
    lock: &[u8],
    blobs: &[Blob],
    source: &dyn BlobSource,
) -> Result<()> {
    let fail = |e| write_error(target, "write", e);
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).map_err(fail)?;
    for (name, bytes) in [
        (LAYOUT_FILE, LAYOUT_CONTENT),
        ("index.json", index),
        (LOCK_FILE, lock),
    ] {
        fs::write(dir.join(name), bytes).map_err(fail)?;
    }
    for blob in blobs {
        let dest = blob_dir.join(blob.digest.hex());
        let out = fs::File::create(&dest).map_err(fail)?;
        let mut out = crate::fsutil::Writeback::new(out);
        let mut from = source.open(blob)?;
        // Reading (a blob that does not match: integrity) and writing (a
        // full disk: the host's) fail apart, each said as what it is.
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::integrity(format!("blob {}: {e}", blob.digest))
                        .hint("pull again: the cache's copy is not what the lock names"))
                }
            };
            std::io::Write::write_all(&mut out, &buf[..n]).map_err(fail)?;
        }
        out.file().sync_all().map_err(fail)?;
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

/// Writes a `.tar` bundle at `file` (a temporary name beside `target`,
/// which errors name).
fn write_tar(
    file: &Path,
    target: &Path,
    index: &[u8],
    lock: &[u8],
    blobs: &[Blob],
    source: &dyn BlobSource,
) -> Result<()> {
    let tar_err = |e: std::io::Error| write_error(target, "write", e);
    let out = fs::File::create(file).map_err(tar_err)?;
    let out = crate::fsutil::Writeback::new(out);
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, out));
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
            .map_err(tar_err)?;
    }
    let buf = tar.into_inner().map_err(tar_err)?;
    buf.into_inner()
        .map_err(|e| tar_err(e.into_error()))?
        .into_file()
        .sync_all()
        .map_err(tar_err)?;
    Ok(())
}

/// An opened bundle: its locks (one of them chosen), index and blob source.
pub struct Bundle {
    pub path: PathBuf,
    /// The chosen lock ([`Bundle::choose`]); the first one until then.
    pub lock: Lock,
    pub lock_digest: Digest,
    /// Every lock of the bundle, the first one first.
    pub locks: Vec<(Lock, Digest)>,
    pub index: IndexJson,
    storage: Storage,
}

/// Which lock of a bundle to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockChoice {
    /// The only one (refused when there are several).
    Only,
    /// The one for this PostgreSQL major.
    Major(u32),
    /// The one whose digest starts with this (`sha256:` optional).
    Digest(String),
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
        let lock_digest = lock.digest()?;
        Ok(Bundle {
            path: path.to_path_buf(),
            locks: vec![(lock.clone(), lock_digest.clone())],
            lock_digest,
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
        let mut locks = vec![(lock.clone(), lock_digest.clone())];
        let more = index.annotations.get(LOCKS).cloned().unwrap_or_default();
        for want in more.split(',').filter(|d| !d.is_empty()).skip(1) {
            let digest: Digest = want
                .parse()
                .map_err(|_| bad(format!("{LOCKS} lists {want:?}, not a digest")))?;
            // Bounded read, then the digest: a swapped lock is refused.
            let mut text = Vec::new();
            storage
                .open_name(&format!("blobs/sha256/{}", digest.hex()))
                .map_err(|_| bad(format!("lock {digest} is missing")))?
                .take(MAX_LOCK_BYTES + 1)
                .read_to_end(&mut text)
                .map_err(|e| bad(format!("lock {digest}: {e}")))?;
            if text.len() as u64 > MAX_LOCK_BYTES || Digest::of_bytes(&text) != digest {
                return Err(bad(format!("lock {digest} does not match its digest")));
            }
            let text =
                String::from_utf8(text).map_err(|_| bad(format!("lock {digest} is not UTF-8")))?;
            let origin = format!("{} lock {}", path.display(), digest.short());
            let parsed = Lock::parse(&text, &origin).map_err(|e| bad(e.message))?;
            locks.push((parsed, digest));
        }
        for (lock, _) in &locks {
            for pinned in lock.artifacts() {
                if !index.manifests.iter().any(|d| d.digest == pinned.digest) {
                    return Err(bad(format!("index.json does not list {}", pinned.digest)));
                }
            }
        }
        Ok(Bundle {
            path: path.to_path_buf(),
            lock,
            lock_digest,
            locks,
            index,
            storage,
        })
    }

    /// Picks the lock to install; several locks need a choice.
    pub fn choose(&mut self, choice: &LockChoice) -> Result<()> {
        let list = || {
            self.locks
                .iter()
                .map(|(l, d)| format!("PostgreSQL {} ({})", l.major(), d.short()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let matching: Vec<&(Lock, Digest)> = self
            .locks
            .iter()
            .filter(|(l, d)| match choice {
                LockChoice::Only => true,
                LockChoice::Major(m) => l.major() == *m,
                LockChoice::Digest(p) => {
                    let p = p.trim_start_matches("sha256:");
                    !p.is_empty() && d.hex().starts_with(p)
                }
            })
            .collect();
        match matching.as_slice() {
            [(lock, digest)] => {
                self.lock = lock.clone();
                self.lock_digest = digest.clone();
                Ok(())
            }
            [] => Err(Error::usage(format!(
                "bundle {} holds no lock for {}; it holds {}",
                self.path.display(),
                match choice {
                    LockChoice::Major(m) => format!("PostgreSQL {m}"),
                    LockChoice::Digest(p) => format!("digest {p}"),
                    LockChoice::Only => "this install".into(),
                },
                list()
            ))),
            _ => Err(Error::usage(format!(
                "bundle {} holds several locks: {}",
                self.path.display(),
                list()
            ))
            .hint("pick one with --major N or --lock DIGEST")),
        }
    }

    /// Every artifact of every lock, each once.
    pub fn artifacts(&self) -> Vec<crate::lock::Pinned> {
        let mut out: Vec<crate::lock::Pinned> = Vec::new();
        for (lock, _) in &self.locks {
            for p in lock.artifacts() {
                if !out.iter().any(|o| o.digest == p.digest) {
                    out.push(p.clone());
                }
            }
        }
        out
    }

    /// Every blob of every lock, each once.
    fn all_blobs(&self) -> Vec<Blob> {
        let mut out: Vec<Blob> = Vec::new();
        for (lock, _) in &self.locks {
            for b in lock.blobs() {
                if !out.iter().any(|o| o.digest == b.digest) {
                    out.push(b);
                }
            }
        }
        out
    }

    /// Checks every blob of the locks and of what travels beside them:
    /// present, right size, right digest. Fails on the first bad one,
    /// naming it.
    pub fn verify(&self, reporter: &dyn crate::progress::Reporter) -> Result<usize> {
        let mut blobs = self.all_blobs();
        for c in self.companions()? {
            for b in std::iter::once(c.manifest).chain(c.blobs) {
                if !blobs.iter().any(|x| x.digest == b.digest) {
                    blobs.push(b);
                }
            }
        }
        for blob in &blobs {
            self.verify_blob(blob, reporter)?;
        }
        self.verify_manifests()?;
        Ok(blobs.len())
    }

    /// The manifests that travel beside the locked ones (see
    /// [`crate::companions`]), in the order they are published, each with
    /// the blobs it needs as its own verified bytes list them. A bundle
    /// of an older pgoci has only its signatures here.
    pub fn companions(&self) -> Result<Vec<Companion>> {
        let bad = |why: String| {
            Error::integrity(format!("bundle {}: {why}", self.path.display()))
                .hint("export the bundle again")
        };
        let mut out = Vec::new();
        for d in &self.index.manifests {
            let role = d.annotations.get("io.pgoci.role").map(String::as_str);
            let (role, subject) = match role {
                // A signature the lock records, found beside its image at
                // export (an older pgoci carried only its payloads, and
                // did not publish it).
                Some("signature") if d.annotations.contains_key(REPOSITORY) => {
                    (Role::Referrer, d.annotations.get("io.pgoci.signs"))
                }
                Some(r) => match Role::parse(r) {
                    Some(role) => (role, d.annotations.get(REFERS)),
                    None => continue,
                },
                None => continue,
            };
            let name = d.annotations.get(REF_NAME);
            let repository = match (d.annotations.get(REPOSITORY), name) {
                (Some(r), _) => r.clone(),
                (None, Some(n)) => match n.rsplit_once(':') {
                    Some((r, _)) => r.to_string(),
                    None => return Err(bad(format!("{} names no repository", d.digest))),
                },
                (None, None) => return Err(bad(format!("{} names no repository", d.digest))),
            };
            let tag = match name {
                Some(n) => Some(
                    n.strip_prefix(&format!("{repository}:"))
                        .filter(|t| !t.is_empty() && !t.contains(['/', ':', '@']))
                        .ok_or_else(|| {
                            bad(format!("{} is named {n:?}, not {repository}:TAG", d.digest))
                        })?
                        .to_string(),
                ),
                None => None,
            };
            let subject = subject
                .map(|s| {
                    s.parse::<Digest>()
                        .map_err(|_| bad(format!("{} refers to {s:?}, not a digest", d.digest)))
                })
                .transpose()?;
            let manifest = Blob {
                digest: d.digest.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
            };
            let bytes = self.read_small(&manifest).map_err(|e| bad(e.message))?;
            let parsed = crate::companions::parse(&bytes, &format!("manifest {}", d.digest))?;
            let companion = Companion {
                repository,
                tag,
                role,
                subject,
                artifact_type: d.artifact_type.clone().or(parsed.artifact_type),
                blobs: Vec::new(),
                manifest,
            };
            out.push(Companion {
                blobs: if companion.is_index() {
                    Vec::new()
                } else {
                    parsed.blobs
                },
                ..companion
            });
        }
        Ok(out)
    }

    /// Checks that every manifest blob of the lock is an image manifest
    /// listing the lock's config and layers (its hash alone is not enough).
    pub fn verify_manifests(&self) -> Result<()> {
        for pinned in self.artifacts() {
            self.verify_manifest(&pinned)?;
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

    fn verify_blob(&self, blob: &Blob, reporter: &dyn crate::progress::Reporter) -> Result<()> {
        BlobSource::verify(self, blob, reporter).map_err(|e| {
            Error::integrity(format!("bundle {}: {}", self.path.display(), e.message))
                .hint("export the bundle again from a good cache")
        })
    }

    /// Total size of the blobs of every lock, each counted once.
    pub fn blob_bytes(&self) -> u64 {
        self.all_blobs().iter().map(|b| b.size).sum()
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
    tar_entries(&fs::File::open(path)?)
}

/// Maps each regular file of a tar to its data offset and size (a later
/// entry of the same name wins, as extracting would have it).
pub fn tar_entries(file: &fs::File) -> std::io::Result<HashMap<String, (u64, u64)>> {
    let total = file.metadata()?.len();
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
        let (offset, size) = (entry.raw_file_position(), entry.size());
        if offset.checked_add(size).is_none_or(|end| end > total) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the tar is cut short in {name}"),
            ));
        }
        entries.insert(name, (offset, size));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_valid_tags() {
        assert_eq!(
            alias_of("127.0.0.1:5000/pgoci/postgresql:17").as_deref(),
            Some("postgresql-17")
        );
        assert_eq!(
            alias_of("ghcr.io/cloudnative-pg/pgvector:0.8.1-17-trixie").as_deref(),
            Some("pgvector-0.8.1-17-trixie")
        );
        // A digest reference has no tag to shorten.
        let d = Digest::of_bytes(b"m");
        assert_eq!(alias_of(&format!("reg.example/a/b@{d}")), None);
    }
}
