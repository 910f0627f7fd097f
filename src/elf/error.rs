//! What can be wrong with an ELF file or an `ld.so.cache` read from an
//! image: each names the structure that is out of bounds or absurd, in
//! the terms of the ELF specification, so a forged field is found by name.

use crate::error::{Classify, Kind};
use std::io;
use std::path::PathBuf;

/// Why an ELF file or a root's `ld.so.cache` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Claims to be ELF, but is bigger than any real program or library.
    #[error("{path} is an ELF file of {len} bytes, too big to be a real program or library")]
    TooBig { path: PathBuf, len: u64 },
    /// Claims to be ELF, but ld.so or the kernel would refuse it.
    #[error("{path} is a damaged ELF file: {damage}")]
    Damaged {
        path: PathBuf,
        #[source]
        damage: Damage,
    },
    /// A root's `ld.so.cache` cannot be parsed.
    #[error("ld.so.cache is damaged: {0}")]
    LdCache(#[source] CacheDamage),
}

impl Classify for ElfError {
    fn kind(&self) -> Kind {
        Kind::Integrity
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            ElfError::TooBig { .. } => return None,
            ElfError::Damaged { .. } => "re-pull the artifact (the blob or the unpacked store entry is corrupt), or rebuild the image: this file would not load".into(),
            ElfError::LdCache(CacheDamage::OldOnly) => {
                "this cache predates glibc 2.2; run ldconfig in that root".into()
            }
            ElfError::LdCache(_) => "run ldconfig in that root to rebuild it".into(),
        })
    }
}

/// What is wrong inside a damaged ELF file. `what` names the structure
/// read (`the dynamic section (PT_DYNAMIC)`, `a DT_NEEDED name`).
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error("unknown ELF {field} {value}")]
    UnknownIdent { field: &'static str, value: u8 },
    /// `e_shentsize` or `e_phentsize` not the size of the class's record.
    #[error("{field} {got}, not {want}")]
    EntrySize {
        field: &'static str,
        got: u64,
        want: u64,
    },
    #[error("e_shnum {shnum} with no section header table (e_shoff 0)")]
    NoSectionTable { shnum: u64 },
    #[error("e_shstrndx {index} is not one of the {count} sections")]
    BadShstrndx { index: u64, count: u64 },
    #[error("section {index} ({size} bytes at offset {offset:#x}) runs past the end of the file ({file_len} bytes)")]
    SectionPastEnd {
        index: usize,
        size: u64,
        offset: u64,
        file_len: u64,
    },
    #[error("a program or shared library without program headers (e_phnum 0)")]
    NoProgramHeaders,
    #[error("e_phnum {phnum}: more program headers than the kernel or ld.so load (at most {max})")]
    TooManyProgramHeaders { phnum: u64, max: u64 },
    #[error("program header {index} (type {kind}) has {size} bytes at offset {offset:#x}, past the end of the file ({file_len} bytes)")]
    SegmentPastEnd {
        index: usize,
        kind: u32,
        size: u64,
        offset: u64,
        file_len: u64,
    },
    #[error("program header {index}: a PT_LOAD of {filesz} file bytes in {memsz} bytes of memory at {vaddr:#x}")]
    BadLoad {
        index: usize,
        filesz: u64,
        memsz: u64,
        vaddr: u64,
    },
    #[error("PT_INTERP is {size} bytes")]
    InterpTooLong { size: u64 },
    #[error("PT_INTERP is empty or not NUL-terminated")]
    BadInterp,
    #[error("a dynamic section naming strings without DT_STRTAB and DT_STRSZ")]
    NoStringTable,
    /// A table given by address without its count (`DT_VERNEED` without
    /// `DT_VERNEEDNUM`).
    #[error("{tag} without {needs}")]
    MissingTag {
        tag: &'static str,
        needs: &'static str,
    },
    /// More sections or dynamic entries than any real object has.
    #[error("{count} {what}")]
    Count { what: &'static str, count: u64 },
    /// A walk (needed names, symbol versions) past its cap.
    #[error("too many {what}")]
    TooMany { what: &'static str },
    /// A relative link of a version table (`vn_next`) overflows.
    #[error("{field} overflows")]
    LinkOverflow { field: &'static str },
    #[error("{what} at offset {offset:#x} overflows")]
    Overflow { what: String, offset: u64 },
    #[error("{what} ({len} bytes at offset {offset:#x}) runs past the end of the file ({file_len} bytes)")]
    PastEnd {
        what: String,
        offset: u64,
        len: u64,
        file_len: u64,
    },
    #[error("{what} is {len} bytes, more than any real object has")]
    TooLarge { what: String, len: u64 },
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: io::Error,
    },
    /// An address in no `PT_LOAD` segment's file bytes.
    #[error("{what} at address {addr:#x} ({len} bytes) is in no loaded part of the file")]
    Unmapped { what: String, addr: u64, len: u64 },
    #[error("{what}: string offset {at:#x} is past the string table ({size} bytes)")]
    StringOffset { what: String, at: u64, size: u64 },
    #[error("{what} is longer than {max} bytes")]
    StringTooLong { what: String, max: u64 },
    #[error("{what} runs past the end of the string table")]
    StringUnterminated { what: String },
}

/// What is wrong with an `ld.so.cache`.
#[derive(Debug, thiserror::Error)]
pub enum CacheDamage {
    #[error("offset overflow")]
    OffsetOverflow,
    #[error("truncated")]
    Truncated,
    #[error("string offset past the end")]
    StringPastEnd,
    #[error("unterminated string")]
    Unterminated,
    #[error("{count} old-format entries")]
    TooManyOld { count: usize },
    /// Only the libc5 table, none for glibc 2.x.
    #[error("old format without the glibc 2.x table")]
    OldOnly,
    #[error("unknown format (no glibc-ld.so.cache1.1 magic)")]
    UnknownFormat,
    #[error("{count} entries")]
    TooMany { count: usize },
    #[error("entry table runs past the end")]
    TablePastEnd,
}
