//! Reads one ELF file's dynamic-linking facts: what it needs, where it
//! asks to be searched for, its interpreter and its symbol versions.
//! Only the headers and the few sections involved are read (through
//! `object`'s read cache), so a 100 MB `libLLVM` costs a few reads.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::read::ReadRef;
use object::{Endianness, ReadCache};

use crate::error::IoContext;
use crate::{Error, Result};

/// No shared object we handle is near this; a bigger "ELF" is hostile.
const MAX_FILE_SIZE: u64 = 4 << 30;
/// Caps on table sizes, far above anything real (libc has ~60 versions).
const MAX_DYNAMIC_ENTRIES: usize = 1 << 16;
const MAX_NEEDED: usize = 4096;
const MAX_VERSIONS: usize = 1 << 16;

/// Class and machine of an ELF file; ld.so only loads matching objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Machine {
    pub is_64: bool,
    pub little_endian: bool,
    /// `e_machine` (62 = x86-64, 183 = aarch64).
    pub e_machine: u16,
}

impl Machine {
    pub fn is_x86_64(&self) -> bool {
        self.is_64 && self.little_endian && self.e_machine == elf::EM_X86_64
    }
}

/// What the dynamic loader reads from one ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub machine: Machine,
    /// `DT_NEEDED`, in file order (ld.so's load order).
    pub needed: Vec<String>,
    pub soname: Option<String>,
    /// `DT_RPATH` entries as written (`$ORIGIN` not expanded).
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` entries as written.
    pub runpath: Vec<String>,
    /// `PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`.
    pub interpreter: Option<String>,
    /// `.gnu.version_r`: library file name → versions required from it
    /// (weak requirements are left out: ld.so does not insist on them).
    pub required_versions: BTreeMap<String, BTreeSet<String>>,
    /// `.gnu.version_d`: the versions this object defines (its own
    /// base name entry excluded).
    pub defined_versions: BTreeSet<String>,
}

impl ElfInfo {
    /// `DT_RPATH` as directories, `$ORIGIN` replaced by `origin` (the
    /// directory holding the file, as a path inside its root).
    pub fn rpath_dirs(&self, origin: &Path) -> Vec<PathBuf> {
        expand_dirs(&self.rpath, origin)
    }

    /// `DT_RUNPATH` as directories, `$ORIGIN` replaced by `origin`.
    pub fn runpath_dirs(&self, origin: &Path) -> Vec<PathBuf> {
        expand_dirs(&self.runpath, origin)
    }

    /// The highest `GLIBC_x.y` this object requires.
    pub fn glibc_required(&self) -> Option<super::GlibcVersion> {
        super::GlibcVersion::max_of(self.required_versions.values().flatten())
    }
}

/// Expands `$ORIGIN`/`${ORIGIN}`; entries with other dynamic string tokens
/// (`$LIB`, `$PLATFORM`) or relative paths are dropped, as ld.so's answer
/// for them depends on the running system, not on the files.
pub(crate) fn expand_dirs(entries: &[String], origin: &Path) -> Vec<PathBuf> {
    let origin = origin.to_string_lossy();
    entries
        .iter()
        .filter(|e| !e.is_empty())
        .map(|e| e.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin))
        .filter(|e| !e.contains('$') && e.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// Reads `path`: `Ok(None)` when it is not an ELF file at all (a script,
/// a text file), an integrity error when it claims to be ELF but is
/// damaged or absurd.
pub fn inspect(path: &Path) -> Result<Option<ElfInfo>> {
    let mut file = File::open(path).with_path(path, "open")?;
    let len = file.metadata().with_path(path, "stat")?.len();
    let mut magic = [0u8; 4];
    if len < 4 || file.read_exact(&mut magic).is_err() || magic != elf::ELFMAG {
        return Ok(None);
    }
    if len > MAX_FILE_SIZE {
        return Err(too_big(path, len));
    }
    let cache = ReadCache::new(file);
    parse(&cache).map(Some).map_err(|e| damaged(path, &e))
}

/// [`inspect`] on bytes already in memory.
pub fn inspect_bytes(data: &[u8]) -> Result<Option<ElfInfo>> {
    if data.len() < 4 || data[..4] != elf::ELFMAG {
        return Ok(None);
    }
    if data.len() as u64 > MAX_FILE_SIZE {
        return Err(too_big(Path::new("<memory>"), data.len() as u64));
    }
    parse(data)
        .map(Some)
        .map_err(|e| damaged(Path::new("<memory>"), &e))
}

fn too_big(path: &Path, len: u64) -> Error {
    Error::integrity(format!(
        "{} is an ELF file of {len} bytes, too big to be a real program or library",
        path.display()
    ))
}

fn damaged(path: &Path, why: &str) -> Error {
    Error::integrity(format!("{} is a damaged ELF file: {why}", path.display()))
        .hint("re-pull the artifact (the blob or the unpacked store entry is corrupt)")
}

fn parse<'data, R: ReadRef<'data>>(data: R) -> std::result::Result<ElfInfo, String> {
    let ident = data
        .read_bytes_at(0, 16)
        .map_err(|()| "truncated header".to_string())?;
    // ident[4] is EI_CLASS.
    match ident[4] {
        elf::ELFCLASS64 => parse_as::<elf::FileHeader64<Endianness>, R>(data),
        elf::ELFCLASS32 => parse_as::<elf::FileHeader32<Endianness>, R>(data),
        other => Err(format!("unknown ELF class {other}")),
    }
}

fn utf8(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_as<'data, Elf, R>(data: R) -> std::result::Result<ElfInfo, String>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let e = |err: object::read::Error| err.to_string();
    let header = Elf::parse(data).map_err(e)?;
    let endian = header.endian().map_err(e)?;
    let machine = Machine {
        is_64: header.is_type_64(),
        little_endian: endian == Endianness::Little,
        e_machine: header.e_machine(endian),
    };

    let mut interpreter = None;
    for ph in header.program_headers(endian, data).map_err(e)? {
        if let Some(interp) = ph.interpreter(endian, data).map_err(e)? {
            interpreter = Some(utf8(interp));
        }
    }

    let mut info = ElfInfo {
        machine,
        needed: Vec::new(),
        soname: None,
        rpath: Vec::new(),
        runpath: Vec::new(),
        interpreter,
        required_versions: BTreeMap::new(),
        defined_versions: BTreeSet::new(),
    };

    let sections = header.sections(endian, data).map_err(e)?;
    if let Some((dynamic, link)) = sections.dynamic(endian, data).map_err(e)? {
        if dynamic.len() > MAX_DYNAMIC_ENTRIES {
            return Err(format!("{} dynamic entries", dynamic.len()));
        }
        let strings = sections.strings(endian, data, link).map_err(e)?;
        for d in dynamic {
            let tag: u64 = d.d_tag(endian).into();
            if tag == u64::from(elf::DT_NULL) {
                break;
            }
            let wanted = [
                elf::DT_NEEDED,
                elf::DT_SONAME,
                elf::DT_RPATH,
                elf::DT_RUNPATH,
            ];
            if !wanted.iter().any(|&t| u64::from(t) == tag) {
                continue;
            }
            let val: u64 = d.d_val(endian).into();
            let offset = u32::try_from(val).map_err(|_| "dynamic string offset out of range")?;
            let s = utf8(
                strings
                    .get(offset)
                    .map_err(|()| "dynamic string offset out of range".to_string())?,
            );
            match tag as u32 {
                elf::DT_NEEDED => {
                    if info.needed.len() >= MAX_NEEDED {
                        return Err("too many DT_NEEDED entries".into());
                    }
                    info.needed.push(s);
                }
                elf::DT_SONAME => info.soname = Some(s),
                elf::DT_RPATH => info.rpath.extend(s.split(':').map(str::to_string)),
                _ => info.runpath.extend(s.split(':').map(str::to_string)),
            }
        }
    }

    let mut count = 0usize;
    let mut bump = || {
        count += 1;
        if count > MAX_VERSIONS {
            Err("too many symbol versions".to_string())
        } else {
            Ok(())
        }
    };
    if let Some((mut needs, link)) = sections.gnu_verneed(endian, data).map_err(e)? {
        let strings = sections.strings(endian, data, link).map_err(e)?;
        while let Some((need, mut auxes)) = needs.next().map_err(e)? {
            bump()?;
            let file = utf8(need.file(endian, strings).map_err(e)?);
            let set = info.required_versions.entry(file).or_default();
            while let Some(aux) = auxes.next().map_err(e)? {
                bump()?;
                if aux.vna_flags.get(endian) & elf::VER_FLG_WEAK != 0 {
                    continue;
                }
                set.insert(utf8(aux.name(endian, strings).map_err(e)?));
            }
        }
    }
    if let Some((mut defs, link)) = sections.gnu_verdef(endian, data).map_err(e)? {
        let strings = sections.strings(endian, data, link).map_err(e)?;
        while let Some((def, mut auxes)) = defs.next().map_err(e)? {
            bump()?;
            // The first aux names the version; later ones are its parents.
            let first = auxes.next().map_err(e)?;
            if def.vd_flags.get(endian) & elf::VER_FLG_BASE != 0 {
                continue;
            }
            if let Some(aux) = first {
                info.defined_versions
                    .insert(utf8(aux.name(endian, strings).map_err(e)?));
            }
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LS: &str = "/usr/bin/ls";
    const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
    const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

    #[test]
    fn reads_ls() {
        let info = inspect(Path::new(LS)).unwrap().expect("ls is ELF");
        assert!(info.machine.is_x86_64());
        assert!(info.needed.contains(&"libc.so.6".to_string()), "{info:?}");
        assert_eq!(
            info.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        let libc = &info.required_versions["libc.so.6"];
        assert!(libc.iter().all(|v| v.starts_with("GLIBC_")), "{libc:?}");
        assert!(info.glibc_required().unwrap() >= crate::elf::GlibcVersion(2, 3, 0));
        assert!(info.soname.is_none());
    }

    #[test]
    fn reads_libssl_and_libc() {
        let ssl = inspect(Path::new(LIBSSL)).unwrap().unwrap();
        assert_eq!(ssl.soname.as_deref(), Some("libssl.so.3"));
        assert!(ssl.needed.contains(&"libcrypto.so.3".to_string()));
        assert!(ssl.required_versions["libcrypto.so.3"].contains("OPENSSL_3.0.0"));
        assert!(ssl.defined_versions.contains("OPENSSL_3.0.0"), "{ssl:?}");
        assert!(!ssl.defined_versions.contains("libssl.so.3"));
        assert!(ssl.interpreter.is_none());

        let libc = inspect(Path::new(LIBC)).unwrap().unwrap();
        assert_eq!(libc.soname.as_deref(), Some("libc.so.6"));
        assert!(libc.defined_versions.contains("GLIBC_2.2.5"));
        assert!(libc.defined_versions.contains("GLIBC_2.34"));
    }

    #[test]
    fn non_elf_is_none_not_error() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(inspect(&script).unwrap(), None);
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(inspect(&empty).unwrap(), None);
        assert_eq!(inspect_bytes(b"\x7fEL").unwrap(), None);
        // A missing file is a host error, not "not ELF".
        assert!(inspect(&dir.path().join("nope")).is_err());
    }

    #[test]
    fn origin_expands_and_tokens_drop() {
        let mut info = inspect(Path::new(LS)).unwrap().unwrap();
        info.runpath = vec![
            "$ORIGIN/../lib".into(),
            "${ORIGIN}".into(),
            "/opt/$LIB".into(),
            "relative".into(),
            String::new(),
        ];
        assert_eq!(
            info.runpath_dirs(Path::new("/usr/lib/postgresql/15/bin")),
            vec![
                PathBuf::from("/usr/lib/postgresql/15/bin/../lib"),
                PathBuf::from("/usr/lib/postgresql/15/bin")
            ]
        );
    }

    /// Truncated and garbled copies of a real library never panic, and a
    /// claimed-ELF failure is an integrity error.
    #[test]
    fn hostile_copies_never_panic() {
        let real = std::fs::read(LIBSSL).unwrap();
        assert!(inspect_bytes(&real).unwrap().is_some());
        let mut lens: Vec<usize> = (0..64).collect();
        lens.extend((1..200).map(|i| real.len() * i / 200));
        for len in lens {
            match inspect_bytes(&real[..len]) {
                Ok(None) => assert!(len < 4),
                Ok(Some(_)) => {}
                Err(err) => assert_eq!(err.kind, crate::Kind::Integrity, "{err}"),
            }
        }
        // Deterministic garbling: flip bytes across the headers and tables.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut refused = 0;
        for round in 0..400 {
            let mut copy = real.clone();
            for _ in 0..(1 + round % 16) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Aim half of the flips at the first 4 KiB where headers live.
                let span = if seed & 1 == 0 {
                    4096.min(copy.len())
                } else {
                    copy.len()
                };
                let at = 4 + (seed >> 8) as usize % (span - 4);
                copy[at] = (seed >> 32) as u8;
            }
            match inspect_bytes(&copy) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("magic kept, must be ELF"),
                Err(err) => {
                    assert_eq!(err.kind, crate::Kind::Integrity);
                    refused += 1;
                }
            }
        }
        assert!(refused > 0, "garbled headers must be noticed sometimes");
        // The same through files, which are read piecewise.
        let dir = tempfile::tempdir().unwrap();
        for (i, len) in [16, 64, 1000, real.len() / 3, real.len() - 1]
            .into_iter()
            .enumerate()
        {
            let path = dir.path().join(format!("cut{i}"));
            std::fs::write(&path, &real[..len]).unwrap();
            if let Err(err) = inspect(&path) {
                assert_eq!(err.kind, crate::Kind::Integrity, "{err}");
                assert!(err.message.contains(&*path.to_string_lossy()), "{err}");
            }
        }
        assert!(inspect(&dir.path().join("cut0")).is_err());
        // Absurd section count in a header: refused, not allocated.
        let mut copy = real.clone();
        copy[0x3c] = 0xff; // e_shnum low byte
        copy[0x3d] = 0xff;
        assert!(inspect_bytes(&copy).is_err());
    }
}
