//! Parses glibc's `/etc/ld.so.cache`: soname → library paths, as ldconfig
//! wrote them. The current format starts with `glibc-ld.so.cache1.1`;
//! older ldconfig wrote an `ld.so-1.7.0` table first and the new one
//! after it, and only the new one is read then.

use super::error::{CacheDamage, ElfError};
use crate::{Error, Result};

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// magic + version, nlibs, len_strings, flags + padding, extension
/// offset, three unused words.
const NEW_HEADER: usize = 20 + 4 + 4 + 4 + 4 + 12;
/// flags, key, value, osversion (all 32-bit), hwcap (64-bit).
const NEW_ENTRY: usize = 24;
const OLD_HEADER: usize = 16;
const OLD_ENTRY: usize = 12;
/// The cache of a full distribution has a few thousand entries.
const MAX_ENTRIES: usize = 1 << 20;

/// `FLAG_ELF_LIBC6 | FLAG_X8664_LIB64`: a 64-bit x86 glibc library.
pub const FLAGS_X86_64: i32 = 0x0303;
/// `FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64`.
pub const FLAGS_AARCH64: i32 = 0x0a03;

/// One cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub soname: String,
    /// Absolute path as seen inside the root the cache belongs to.
    pub path: String,
    pub flags: i32,
}

/// A parsed cache, entries in file order (ldconfig sorts them so that the
/// first match is the one ld.so takes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdCache {
    pub entries: Vec<Entry>,
}

impl LdCache {
    /// Paths for `soname` whose entry has exactly `flags`, first first.
    pub fn lookup<'a>(&'a self, soname: &'a str, flags: i32) -> impl Iterator<Item = &'a str> {
        self.entries
            .iter()
            .filter(move |e| e.soname == soname && e.flags == flags)
            .map(|e| e.path.as_str())
    }
}

fn bad(damage: CacheDamage) -> Error {
    ElfError::LdCache(damage).into()
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32> {
    let b = bytes
        .get(
            at..at
                .checked_add(4)
                .ok_or_else(|| bad(CacheDamage::OffsetOverflow))?,
        )
        .ok_or_else(|| bad(CacheDamage::Truncated))?;
    Ok(u32::from_ne_bytes(b.try_into().expect("four bytes")))
}

/// A NUL-terminated string at `at` in `bytes`.
fn cstr_at(bytes: &[u8], at: usize) -> Result<String> {
    let tail = bytes
        .get(at..)
        .ok_or_else(|| bad(CacheDamage::StringPastEnd))?;
    let len = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| bad(CacheDamage::Unterminated))?;
    Ok(String::from_utf8_lossy(&tail[..len]).into_owned())
}

/// Parses the bytes of an `ld.so.cache`.
pub fn parse(bytes: &[u8]) -> Result<LdCache> {
    let mut start = 0usize;
    if bytes.starts_with(OLD_MAGIC) {
        let n = u32_at(bytes, OLD_MAGIC.len() + 1)? as usize;
        if n > MAX_ENTRIES {
            return Err(bad(CacheDamage::TooManyOld { count: n }));
        }
        // The new table follows the old one, aligned like its header
        // (which holds 64-bit fields).
        start = (OLD_HEADER + n * OLD_ENTRY).next_multiple_of(8);
        if !bytes.get(start..).is_some_and(|b| b.starts_with(NEW_MAGIC)) {
            return Err(bad(CacheDamage::OldOnly));
        }
    } else if !bytes.starts_with(NEW_MAGIC) {
        return Err(bad(CacheDamage::UnknownFormat));
    }
    let table = &bytes[start..];
    let n = u32_at(table, 20)? as usize;
    if n > MAX_ENTRIES {
        return Err(bad(CacheDamage::TooMany { count: n }));
    }
    let end = NEW_HEADER + n * NEW_ENTRY;
    if end > table.len() {
        return Err(bad(CacheDamage::TablePastEnd));
    }
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let at = NEW_HEADER + i * NEW_ENTRY;
        let flags = u32_at(table, at)? as i32;
        // Offsets count from the start of the new-format header.
        let key = u32_at(table, at + 4)? as usize;
        let value = u32_at(table, at + 8)? as usize;
        entries.push(Entry {
            soname: cstr_at(table, key)?,
            path: cstr_at(table, value)?,
            flags,
        });
    }
    Ok(LdCache { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real() -> Vec<u8> {
        std::fs::read("/etc/ld.so.cache").expect("this machine has an ld.so.cache")
    }

    #[test]
    fn parses_this_machines_cache() {
        let cache = parse(&real()).unwrap();
        assert!(cache.entries.len() > 10, "{}", cache.entries.len());
        let libc: Vec<_> = cache.lookup("libc.so.6", FLAGS_X86_64).collect();
        assert!(!libc.is_empty(), "libc.so.6 not in the cache");
        assert!(libc[0].ends_with("/libc.so.6") && libc[0].starts_with('/'));
        let ssl: Vec<_> = cache.lookup("libssl.so.3", FLAGS_X86_64).collect();
        assert_eq!(ssl.len(), 1, "{ssl:?}");
        assert!(std::path::Path::new(ssl[0]).exists());
        // Every entry's path names its soname's directory entry.
        for e in &cache.entries {
            assert!(e.path.ends_with(&format!("/{}", e.soname)), "{e:?}");
        }
        assert_eq!(cache.lookup("libc.so.6", FLAGS_AARCH64).count(), 0);
    }

    #[test]
    fn tolerates_the_old_prefix() {
        let new = real();
        // An old table with two entries, then the new table aligned to 8.
        let mut old = OLD_MAGIC.to_vec();
        old.push(0);
        old.extend(2u32.to_ne_bytes());
        old.extend([0u8; 2 * OLD_ENTRY]);
        while old.len() % 8 != 0 {
            old.push(0);
        }
        old.extend(&new);
        assert_eq!(parse(&old).unwrap(), parse(&new).unwrap());
        // The old format alone is refused with a hint to rebuild.
        let err = parse(&old[..OLD_HEADER + 2 * OLD_ENTRY]).unwrap_err();
        assert_eq!(err.kind, crate::Kind::Integrity);
        assert!(matches!(
            err.typed::<ElfError>(),
            Some(ElfError::LdCache(CacheDamage::OldOnly))
        ));
        assert!(err.hint.as_deref().unwrap().contains("predates glibc 2.2"));
    }

    #[test]
    fn damaged_caches_are_integrity_errors() {
        let real = real();
        for len in [0, 5, 20, 30, NEW_HEADER, NEW_HEADER + 10, real.len() / 2] {
            let err = parse(&real[..len]).unwrap_err();
            assert_eq!(err.kind, crate::Kind::Integrity, "{len}: {err}");
        }
        let mut huge = real.clone();
        huge[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse(&huge).is_err());
        let mut wild = real.clone();
        wild[NEW_HEADER + 4..NEW_HEADER + 8].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse(&wild).is_err());
    }
}
