//! Points an executable at another dynamic loader and library directory,
//! the way patchelf does: a new `PT_INTERP` string and a `DT_RPATH`, with
//! the sections that no longer fit moved to a new `PT_LOAD` segment (the
//! `object-rewrite` crate does the layout). Used for `--libraries image`:
//! a server from a newer release runs on its own glibc and loader, while
//! programs it starts (`archive_command`'s `/bin/cp`) keep the host's.
//!
//! `DT_RPATH`, not `DT_RUNPATH`: ld.so searches an executable's RPATH for
//! the needs of every library it loads and every module it `dlopen`s
//! (unless that object has a RUNPATH of its own), so the whole closure
//! comes from the generation before the host's `ld.so.cache` is asked.
//! A RUNPATH would serve the executable's own `DT_NEEDED` only.
//!
//! The input is bytes of an untrusted image: every failure is an error,
//! never a panic, and the result is written to a new file only.

use crate::error::{Classify, Kind};
use std::path::{Path, PathBuf};

/// What to change in one executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// The absolute path of the loader the kernel is to start.
    pub interpreter: PathBuf,
    /// Directories searched first, after the file's own RPATH/RUNPATH
    /// entries (an `$ORIGIN/../lib` keeps working).
    pub library_dirs: Vec<PathBuf>,
}

/// Why a file could not be patched.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// object-rewrite cannot read, change or write the file.
    #[error("{path}: not an ELF file the patcher can rewrite: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: object_rewrite::Error,
    },
    /// The rewritten file's `PT_INTERP` does not span the new string.
    #[error("{0}: not an ELF file the patcher can rewrite: the new PT_INTERP segment does not hold the new interpreter")]
    InterpSegment(PathBuf),
    #[error("{0}: has no interpreter (not a dynamically linked executable)")]
    NoInterpreter(PathBuf),
    #[error("{0}: a path with a ':' or a NUL byte cannot go into an interpreter or RPATH")]
    BadPath(PathBuf),
}

impl Classify for PatchError {
    fn kind(&self) -> Kind {
        // The executables come from the image: a file that cannot be
        // patched is a bad artifact.
        Kind::Integrity
    }
}

fn path_bytes(p: &Path) -> Result<Vec<u8>, PatchError> {
    use std::os::unix::ffi::OsStrExt;
    let b = p.as_os_str().as_bytes();
    if !p.is_absolute() || b.contains(&0) || b.contains(&b':') {
        return Err(PatchError::BadPath(p.to_path_buf()));
    }
    Ok(b.to_vec())
}

/// Whether `data` is a dynamically linked executable (has `PT_INTERP`).
pub fn has_interpreter(data: &[u8]) -> bool {
    object_rewrite::Rewriter::read(data)
        .ok()
        .is_some_and(|r| r.elf_interpreter().is_some_and(|i| !i.is_empty()))
}

/// Returns the patched bytes of the executable `data` (read from `name`,
/// for messages).
pub fn patch_bytes(name: &Path, data: &[u8], patch: &Patch) -> Result<Vec<u8>, PatchError> {
    let bad = |source| PatchError::Unreadable {
        path: name.to_path_buf(),
        source,
    };
    let interpreter = path_bytes(&patch.interpreter)?;
    let dirs: Vec<Vec<u8>> = patch
        .library_dirs
        .iter()
        .map(|d| path_bytes(d))
        .collect::<Result<_, _>>()?;
    let mut rw = object_rewrite::Rewriter::read(data).map_err(bad)?;
    if rw.elf_interpreter().is_none_or(|i| i.is_empty()) {
        return Err(PatchError::NoInterpreter(name.to_path_buf()));
    }
    rw.elf_set_interpreter(interpreter).map_err(bad)?;
    if !dirs.is_empty() {
        rw.elf_add_runpath(&dirs).map_err(bad)?;
        rw.elf_use_rpath().map_err(bad)?;
    }
    let mut out = Vec::with_capacity(data.len() + 4096);
    rw.write(&mut out).map_err(bad)?;
    let mut wanted = path_bytes(&patch.interpreter)?;
    wanted.push(0);
    fit_interp_segment(&mut out, &wanted)
        .ok_or_else(|| PatchError::InterpSegment(name.to_path_buf()))?;
    Ok(out)
}

/// Makes `PT_INTERP` span the whole new interpreter string.
///
/// object-rewrite 0.1 grows `.interp` in place when the sections after it
/// can move instead (Debian trixie's binaries have notes before `.interp`,
/// so that is what happens there) but leaves the `PT_INTERP` header at the
/// old size: the kernel then finds an unterminated string and refuses the
/// file (`ENOEXEC`). Checks that the bytes at the segment's offset are the
/// new string before it writes the sizes; `None` when they are not.
fn fit_interp_segment(out: &mut [u8], wanted: &[u8]) -> Option<()> {
    const PT_INTERP: u32 = 3;
    let u16_at = |b: &[u8], o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |b: &[u8], o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |b: &[u8], o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    // ELF64, little-endian: the only kind the closure code accepts for patching.
    if out.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(out, 0x20)?).ok()?;
    let phentsize = usize::from(u16_at(out, 0x36)?);
    let phnum = usize::from(u16_at(out, 0x38)?);
    if phentsize < 0x38 {
        return None;
    }
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(out, ph)? != PT_INTERP {
            continue;
        }
        let offset = usize::try_from(u64_at(out, ph + 8)?).ok()?;
        if out.get(offset..offset.checked_add(wanted.len())?)? != wanted {
            return None;
        }
        let size = (wanted.len() as u64).to_le_bytes();
        out.get_mut(ph + 0x20..ph + 0x28)?.copy_from_slice(&size);
        out.get_mut(ph + 0x28..ph + 0x30)?.copy_from_slice(&size);
        return Some(());
    }
    None
}

/// The file name of a loader (`ld-linux-x86-64.so.2`) from its path.
pub fn loader_file_name(path: &Path) -> Option<&std::ffi::OsStr> {
    path.file_name()
        .filter(|n| n.to_str().is_some_and(|s| s.starts_with("ld-")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dynamically linked executable of this machine (the test binary
    /// itself is static under +crt-static).
    fn some_executable() -> Vec<u8> {
        for p in ["/usr/bin/env", "/bin/ls", "/usr/bin/true"] {
            if let Ok(b) = std::fs::read(p) {
                if has_interpreter(&b) {
                    return b;
                }
            }
        }
        panic!("no dynamically linked executable found on this host");
    }

    #[test]
    fn patched_executable_names_the_new_loader_and_rpath() {
        let data = some_executable();
        let patch = Patch {
            interpreter:
                "/opt/pgoci/generations/main-17-0123456789ab/lib/pgoci-deps/ld-linux-x86-64.so.2"
                    .into(),
            library_dirs: vec!["/opt/pgoci/generations/main-17-0123456789ab/lib/pgoci-deps".into()],
        };
        let out = patch_bytes(Path::new("env"), &data, &patch).unwrap();
        let info = crate::elf::inspect_bytes(&out).unwrap().expect("still ELF");
        assert_eq!(info.interpreter.as_deref(), patch.interpreter.to_str());
        assert!(
            info.rpath
                .iter()
                .any(|p| p == "/opt/pgoci/generations/main-17-0123456789ab/lib/pgoci-deps"),
            "{:?}",
            info.rpath
        );
        assert!(info.runpath.is_empty(), "{:?}", info.runpath);
        // The needs are untouched.
        let before = crate::elf::inspect_bytes(&data).unwrap().unwrap();
        assert_eq!(before.needed, info.needed);
    }

    /// An ELF64 header, one `PT_INTERP` header claiming `old` bytes, and
    /// the string `text` at offset 0x100: the layout object-rewrite leaves
    /// when it grew `.interp` in place (trixie's binaries).
    fn grown_in_place(text: &[u8], old: u64) -> Vec<u8> {
        let mut b = vec![0u8; 0x200];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        b[0x40..0x44].copy_from_slice(&3u32.to_le_bytes());
        b[0x48..0x50].copy_from_slice(&0x100u64.to_le_bytes());
        b[0x60..0x68].copy_from_slice(&old.to_le_bytes());
        b[0x68..0x70].copy_from_slice(&old.to_le_bytes());
        b[0x100..0x100 + text.len()].copy_from_slice(text);
        b
    }

    #[test]
    fn interp_segment_grows_to_the_new_string() {
        let wanted = b"/opt/pgoci/x/lib/pgoci-deps/ld-linux-x86-64.so.2\0";
        let mut b = grown_in_place(wanted, 0x1c);
        fit_interp_segment(&mut b, wanted).unwrap();
        let size = (wanted.len() as u64).to_le_bytes();
        assert_eq!(&b[0x60..0x68], &size);
        assert_eq!(&b[0x68..0x70], &size);
        // Other bytes than the ones written are never blessed.
        let mut other = grown_in_place(b"/lib64/ld-linux-x86-64.so.2\0", 0x1c);
        assert!(fit_interp_segment(&mut other, wanted).is_none());
        assert!(fit_interp_segment(&mut b[..0x50].to_vec(), wanted).is_none());
    }

    #[test]
    fn hostile_inputs_are_errors() {
        let patch = Patch {
            interpreter: "/x/ld.so".into(),
            library_dirs: vec![],
        };
        assert!(patch_bytes(Path::new("junk"), b"\x7fELF junk", &patch).is_err());
        assert!(patch_bytes(Path::new("empty"), b"", &patch).is_err());
        let data = some_executable();
        for bad in ["relative/ld.so", "/a:b/ld.so", "/a\0b"] {
            let p = Patch {
                interpreter: bad.into(),
                library_dirs: vec![],
            };
            assert!(matches!(
                patch_bytes(Path::new("env"), &data, &p),
                Err(PatchError::BadPath(_))
            ));
        }
        // Truncated executables never panic.
        for cut in [64, 200, 1000, data.len() / 2] {
            let _ = patch_bytes(Path::new("cut"), &data[..cut], &patch);
        }
    }
}
