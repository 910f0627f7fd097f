//! Reads one ELF file's dynamic-linking facts: what it needs, where it
//! asks to be searched for, its interpreter and its symbol versions.
//! What ld.so reads is read the way it reads it — the program headers,
//! `PT_INTERP`, the dynamic segment, its string table and version tables
//! through the `PT_LOAD` mapping — and only that (a 100 MB `libLLVM` costs
//! a few small reads). The files come from images and are read as root,
//! so the reader is strict: every header field, table and string is
//! bounds-checked against the file's size with overflow-free arithmetic,
//! every table walk is bounded, and a file that ld.so or the kernel would
//! refuse (a table past the end, `e_phnum` 65535, a string table outside
//! the loaded bytes) is an integrity error naming what is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::{Damage, ElfError};
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
        self.is_64 && self.little_endian && self.e_machine == object::elf::EM_X86_64
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
    if len < 4 || file.read_exact(&mut magic).is_err() || magic != ELFMAG {
        return Ok(None);
    }
    if len > MAX_FILE_SIZE {
        return Err(too_big(path, len));
    }
    parse(&FileSource { file, len })
        .map(Some)
        .map_err(|e| damaged(path, e))
}

/// [`inspect`] on bytes already in memory.
pub fn inspect_bytes(data: &[u8]) -> Result<Option<ElfInfo>> {
    if data.len() < 4 || data[..4] != ELFMAG {
        return Ok(None);
    }
    if data.len() as u64 > MAX_FILE_SIZE {
        return Err(too_big(Path::new("<memory>"), data.len() as u64));
    }
    parse(data)
        .map(Some)
        .map_err(|e| damaged(Path::new("<memory>"), e))
}

fn too_big(path: &Path, len: u64) -> Error {
    ElfError::TooBig {
        path: path.to_path_buf(),
        len,
    }
    .into()
}

fn damaged(path: &Path, damage: Damage) -> Error {
    ElfError::Damaged {
        path: path.to_path_buf(),
        damage,
    }
    .into()
}

const ELFMAG: [u8; 4] = *b"\x7fELF";
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const SHT_NULL: u32 = 0;
const SHT_NOBITS: u32 = 8;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;
const DT_VERNEED: u64 = 0x6fff_fffe;
const DT_VERNEEDNUM: u64 = 0x6fff_ffff;
const VER_FLG_BASE: u64 = 1;
const VER_FLG_WEAK: u64 = 2;
/// The kernel loads at most 64 KiB of program headers (binfmt_elf), and
/// neither it nor ld.so knows `PN_XNUM`.
const MAX_PHDR_BYTES: u64 = 65536;
/// `e_shnum` is 16 bits; only the `SHN_XINDEX` escape goes beyond.
const MAX_SECTIONS: u64 = 1 << 16;
/// `PATH_MAX`: no interpreter, name or search path is longer.
const MAX_STRING: u64 = 4096;
/// No single read of the reader is bigger (the section header table at most).
const MAX_READ: u64 = 8 << 20;

/// Where the reader's bytes come from: a file read piecewise (a 100 MB
/// `libLLVM` costs a few small reads) or a buffer. Every read is of a
/// range checked first to lie inside `len`, with overflow-free arithmetic.
trait Source {
    fn len(&self) -> u64;
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl Source for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let from = usize::try_from(offset).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let part = from
            .checked_add(buf.len())
            .and_then(|end| self.get(from..end))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(part);
        Ok(())
    }
}

struct FileSource {
    file: File,
    /// The size when opened: a file growing meanwhile is read as it was.
    len: u64,
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }
}

/// A `PT_LOAD` segment: how ld.so maps addresses to file bytes.
#[derive(Clone, Copy)]
struct Load {
    vaddr: u64,
    offset: u64,
    filesz: u64,
}

/// A bounds-checked view of one ELF file, of its class and byte order.
struct Reader<'s, S: Source + ?Sized> {
    src: &'s S,
    is_64: bool,
    little: bool,
    loads: Vec<Load>,
}

impl<S: Source + ?Sized> Reader<'_, S> {
    /// `len` bytes at `offset`, or why they are not in the file.
    fn bytes(&self, offset: u64, len: u64, what: &str) -> std::result::Result<Vec<u8>, Damage> {
        let what = || what.to_string();
        let end = offset.checked_add(len).ok_or_else(|| Damage::Overflow {
            what: what(),
            offset,
        })?;
        if end > self.src.len() {
            return Err(Damage::PastEnd {
                what: what(),
                offset,
                len,
                file_len: self.src.len(),
            });
        }
        if len > MAX_READ {
            return Err(Damage::TooLarge { what: what(), len });
        }
        let mut buf = vec![0u8; len as usize];
        self.src
            .read_at(offset, &mut buf)
            .map_err(|source| Damage::Read {
                what: what(),
                source,
            })?;
        Ok(buf)
    }

    /// An unsigned field of `size` bytes at `at` in `b` (always inside:
    /// every buffer is read at the size of the record it holds).
    fn uint(&self, b: &[u8], at: usize, size: usize) -> u64 {
        let mut v = 0u64;
        for i in 0..size {
            let byte = u64::from(b.get(at + i).copied().unwrap_or(0));
            v |= if self.little {
                byte << (8 * i)
            } else {
                byte << (8 * (size - 1 - i))
            };
        }
        v
    }

    /// A class-sized word (`Elf64_Addr`/`Off`/`Xword` or their 32-bit kin).
    fn word(&self, b: &[u8], at64: usize, at32: usize) -> u64 {
        if self.is_64 {
            self.uint(b, at64, 8)
        } else {
            self.uint(b, at32, 4)
        }
    }

    /// The file offset of `len` bytes at virtual address `addr`, which must
    /// lie in the file part of one `PT_LOAD` segment, as ld.so maps it.
    fn map(&self, addr: u64, len: u64, what: &str) -> std::result::Result<u64, Damage> {
        self.loads
            .iter()
            .find_map(|l| {
                let rel = addr.checked_sub(l.vaddr)?;
                (rel.checked_add(len)? <= l.filesz).then(|| l.offset + rel)
            })
            .ok_or_else(|| Damage::Unmapped {
                what: what.to_string(),
                addr,
                len,
            })
    }

    /// A NUL-terminated string at `at` in a string table of `size` bytes
    /// at file offset `table`.
    fn string(
        &self,
        table: u64,
        size: u64,
        at: u64,
        what: &str,
    ) -> std::result::Result<String, Damage> {
        let what = || what.to_string();
        if at >= size {
            return Err(Damage::StringOffset {
                what: what(),
                at,
                size,
            });
        }
        let room = (size - at).min(MAX_STRING + 1);
        let b = self.bytes(table + at, room, &what())?;
        match b.iter().position(|&c| c == 0) {
            Some(n) => Ok(String::from_utf8_lossy(&b[..n]).into_owned()),
            None if room > MAX_STRING => Err(Damage::StringTooLong {
                what: what(),
                max: MAX_STRING,
            }),
            None => Err(Damage::StringUnterminated { what: what() }),
        }
    }
}

fn parse<S: Source + ?Sized>(src: &S) -> std::result::Result<ElfInfo, Damage> {
    let len = src.len();
    let mut r = Reader {
        src,
        is_64: true,
        little: true,
        loads: Vec::new(),
    };
    let ident = r.bytes(0, 16, "the ELF identification")?;
    r.is_64 = match ident[4] {
        2 => true,
        1 => false,
        value => {
            return Err(Damage::UnknownIdent {
                field: "class",
                value,
            })
        }
    };
    r.little = match ident[5] {
        1 => true,
        2 => false,
        value => {
            return Err(Damage::UnknownIdent {
                field: "byte order",
                value,
            })
        }
    };
    if ident[6] != 1 {
        return Err(Damage::UnknownIdent {
            field: "version",
            value: ident[6],
        });
    }
    let eh = r.bytes(0, if r.is_64 { 64 } else { 52 }, "the ELF header")?;
    let e_type = r.uint(&eh, 16, 2);
    let machine = Machine {
        is_64: r.is_64,
        little_endian: r.little,
        e_machine: r.uint(&eh, 18, 2) as u16,
    };
    let phoff = r.word(&eh, 32, 28);
    let shoff = r.word(&eh, 40, 32);
    let (at_ph, at_sh) = if r.is_64 { (54, 58) } else { (42, 46) };
    let phentsize = r.uint(&eh, at_ph, 2);
    let phnum = r.uint(&eh, at_ph + 2, 2);
    let shentsize = r.uint(&eh, at_sh, 2);
    let shnum = r.uint(&eh, at_sh + 2, 2);
    let shstrndx = r.uint(&eh, at_sh + 4, 2);
    let (ph_size, sh_size, dyn_size) = if r.is_64 { (56, 64, 16) } else { (32, 40, 8) };

    // Section headers: ld.so ignores them, but a table past the end is a
    // cut or forged file, and every section's bytes must be in the file.
    if shoff != 0 || shnum != 0 {
        if shoff == 0 {
            return Err(Damage::NoSectionTable { shnum });
        }
        if shentsize != sh_size {
            return Err(Damage::EntrySize {
                field: "e_shentsize",
                got: shentsize,
                want: sh_size,
            });
        }
        let first = r.bytes(shoff, sh_size, "section header 0 (e_shoff)")?;
        // SHN_XINDEX escapes: the real count and index live in section 0.
        let count = match shnum {
            0 => r.word(&first, 32, 20),
            n => n,
        };
        if count > MAX_SECTIONS {
            return Err(Damage::Count {
                what: "sections",
                count,
            });
        }
        let table = r.bytes(
            shoff,
            count * sh_size,
            &format!("the section header table ({count} × {sh_size} bytes, e_shoff/e_shnum)"),
        )?;
        let strndx = match shstrndx {
            0xffff => r.uint(&first, if r.is_64 { 40 } else { 24 }, 4),
            n => n,
        };
        if strndx != 0 && strndx >= count {
            return Err(Damage::BadShstrndx {
                index: strndx,
                count,
            });
        }
        for i in 0..count as usize {
            let s = table.get(i * sh_size as usize..).unwrap_or_default();
            let kind = r.uint(s, 4, 4) as u32;
            if kind == SHT_NULL || kind == SHT_NOBITS {
                continue;
            }
            let offset = r.word(s, 24, 16);
            let size = r.word(s, 32, 20);
            if offset.checked_add(size).is_none_or(|end| end > len) {
                return Err(Damage::SectionPastEnd {
                    index: i,
                    size,
                    offset,
                    file_len: len,
                });
            }
        }
    }

    // Program headers: what the kernel and ld.so read.
    let loadable = e_type == 2 || e_type == 3; // ET_EXEC, ET_DYN
    if phnum == 0 {
        if loadable {
            return Err(Damage::NoProgramHeaders);
        }
    } else if phentsize != ph_size {
        return Err(Damage::EntrySize {
            field: "e_phentsize",
            got: phentsize,
            want: ph_size,
        });
    }
    if phnum * ph_size > MAX_PHDR_BYTES {
        return Err(Damage::TooManyProgramHeaders {
            phnum,
            max: MAX_PHDR_BYTES / ph_size,
        });
    }
    // No table, no offset to check (a relocatable object's e_phoff is 0).
    let ph = match phnum {
        0 => Vec::new(),
        _ => r.bytes(
            phoff,
            phnum * ph_size,
            &format!("the program header table ({phnum} × {ph_size} bytes, e_phoff/e_phnum)"),
        )?,
    };
    let mut interp_at = None;
    let mut dynamic_at = None;
    for i in 0..phnum as usize {
        let p = ph.get(i * ph_size as usize..).unwrap_or_default();
        let kind = r.uint(p, 0, 4) as u32;
        let offset = r.word(p, 8, 4);
        let vaddr = r.word(p, 16, 8);
        let filesz = r.word(p, 32, 16);
        let memsz = r.word(p, 40, 20);
        if !matches!(kind, PT_LOAD | PT_DYNAMIC | PT_INTERP) {
            continue;
        }
        if offset.checked_add(filesz).is_none_or(|end| end > len) {
            return Err(Damage::SegmentPastEnd {
                index: i,
                kind,
                size: filesz,
                offset,
                file_len: len,
            });
        }
        match kind {
            PT_LOAD => {
                if filesz > memsz || vaddr.checked_add(memsz).is_none() {
                    return Err(Damage::BadLoad {
                        index: i,
                        filesz,
                        memsz,
                        vaddr,
                    });
                }
                r.loads.push(Load {
                    vaddr,
                    offset,
                    filesz,
                });
            }
            PT_DYNAMIC => {
                dynamic_at = dynamic_at.or(Some((offset, filesz)));
            }
            _ => {
                interp_at = interp_at.or(Some((offset, filesz)));
            }
        }
    }

    let interpreter = match interp_at {
        None => None,
        Some((offset, size)) => {
            if size > MAX_STRING {
                return Err(Damage::InterpTooLong { size });
            }
            let b = r.bytes(offset, size, "PT_INTERP")?;
            match b.iter().position(|&c| c == 0) {
                Some(n) if n > 0 => Some(String::from_utf8_lossy(&b[..n]).into_owned()),
                _ => return Err(Damage::BadInterp),
            }
        }
    };

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
    let Some((dyn_off, dyn_len)) = dynamic_at else {
        return Ok(info); // statically linked: needs nothing
    };
    let count = dyn_len / dyn_size;
    if count > MAX_DYNAMIC_ENTRIES as u64 {
        return Err(Damage::Count {
            what: "dynamic entries",
            count,
        });
    }
    let table = r.bytes(
        dyn_off,
        count * dyn_size,
        "the dynamic section (PT_DYNAMIC)",
    )?;
    let (mut strtab, mut strsz) = (None, None);
    let (mut verneed, mut verneednum, mut verdef, mut verdefnum) = (None, None, None, None);
    let mut strings: Vec<(u64, u64)> = Vec::new();
    for i in 0..count as usize {
        let d = table.get(i * dyn_size as usize..).unwrap_or_default();
        let tag = r.word(d, 0, 0);
        let val = r.word(d, 8, 4);
        match tag {
            DT_NULL => break,
            DT_NEEDED | DT_SONAME | DT_RPATH | DT_RUNPATH => {
                if strings.len() >= MAX_NEEDED {
                    return Err(Damage::TooMany {
                        what: "DT_NEEDED entries",
                    });
                }
                strings.push((tag, val));
            }
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            DT_VERNEED => verneed = Some(val),
            DT_VERNEEDNUM => verneednum = Some(val),
            DT_VERDEF => verdef = Some(val),
            DT_VERDEFNUM => verdefnum = Some(val),
            _ => {}
        }
    }
    let needs_strings = !strings.is_empty() || verneed.is_some() || verdef.is_some();
    let (str_off, str_size) = match (strtab, strsz) {
        (Some(addr), Some(size)) => (
            r.map(addr, size, "the string table (DT_STRTAB, DT_STRSZ)")?,
            size,
        ),
        _ if needs_strings => return Err(Damage::NoStringTable),
        _ => (0, 0),
    };
    let string = |at: u64, what: &str| r.string(str_off, str_size, at, what);
    for (tag, val) in strings {
        match tag {
            DT_NEEDED => info.needed.push(string(val, "a DT_NEEDED name")?),
            DT_SONAME => info.soname = Some(string(val, "DT_SONAME")?),
            DT_RPATH => info
                .rpath
                .extend(string(val, "DT_RPATH")?.split(':').map(str::to_string)),
            _ => info
                .runpath
                .extend(string(val, "DT_RUNPATH")?.split(':').map(str::to_string)),
        }
    }

    // Symbol versions: every walk is bounded by its count and by
    // MAX_VERSIONS in all, so `vn_next`/`vna_next` cycles end.
    let mut seen = 0usize;
    let mut bump = || {
        seen += 1;
        if seen > MAX_VERSIONS {
            Err(Damage::TooMany {
                what: "symbol versions",
            })
        } else {
            Ok(())
        }
    };
    if let Some(addr) = verneed {
        let num = verneednum.ok_or(Damage::MissingTag {
            tag: "DT_VERNEED",
            needs: "DT_VERNEEDNUM",
        })?;
        let mut at = r.map(addr, 16, "the version needs (DT_VERNEED)")?;
        for _ in 0..num {
            bump()?;
            let vn = r.bytes(at, 16, "a version need (Elf_Verneed)")?;
            let cnt = r.uint(&vn, 2, 2);
            let file = string(r.uint(&vn, 4, 4), "a version need's file name")?;
            let set = info.required_versions.entry(file).or_default();
            let mut aux = at
                .checked_add(r.uint(&vn, 8, 4))
                .ok_or(Damage::LinkOverflow { field: "vn_aux" })?;
            for _ in 0..cnt {
                bump()?;
                let a = r.bytes(aux, 16, "a version need entry (Elf_Vernaux)")?;
                if r.uint(&a, 4, 2) & VER_FLG_WEAK == 0 {
                    set.insert(string(r.uint(&a, 8, 4), "a required version name")?);
                }
                match r.uint(&a, 12, 4) {
                    0 => break,
                    next => {
                        aux = aux
                            .checked_add(next)
                            .ok_or(Damage::LinkOverflow { field: "vna_next" })?
                    }
                }
            }
            match r.uint(&vn, 12, 4) {
                0 => break,
                next => {
                    at = at
                        .checked_add(next)
                        .ok_or(Damage::LinkOverflow { field: "vn_next" })?
                }
            }
        }
    }
    if let Some(addr) = verdef {
        let num = verdefnum.ok_or(Damage::MissingTag {
            tag: "DT_VERDEF",
            needs: "DT_VERDEFNUM",
        })?;
        let mut at = r.map(addr, 20, "the version definitions (DT_VERDEF)")?;
        for _ in 0..num {
            bump()?;
            let vd = r.bytes(at, 20, "a version definition (Elf_Verdef)")?;
            // The first aux names the version; later ones are its parents.
            if r.uint(&vd, 2, 2) & VER_FLG_BASE == 0 && r.uint(&vd, 6, 2) > 0 {
                let aux = at
                    .checked_add(r.uint(&vd, 12, 4))
                    .ok_or(Damage::LinkOverflow { field: "vd_aux" })?;
                let a = r.bytes(aux, 8, "a version definition name (Elf_Verdaux)")?;
                info.defined_versions
                    .insert(string(r.uint(&a, 0, 4), "a defined version name")?);
            }
            match r.uint(&vd, 16, 4) {
                0 => break,
                next => {
                    at = at
                        .checked_add(next)
                        .ok_or(Damage::LinkOverflow { field: "vd_next" })?
                }
            }
        }
    }
    Ok(info)
}

#[cfg(test)]
mod strict_tests;
#[cfg(test)]
mod tests;
