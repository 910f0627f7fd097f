use super::*;

const LIBSSL: &str = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

fn le16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn le32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn le64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The file offset of the dynamic entry with `tag` in a 64-bit LE file.
fn dyn_entry(b: &[u8], tag: u64) -> usize {
    let phoff = get64(b, 32) as usize;
    let phnum = u16::from_le_bytes([b[56], b[57]]) as usize;
    for i in 0..phnum {
        let p = phoff + i * 56;
        if u32::from_le_bytes(b[p..p + 4].try_into().unwrap()) == PT_DYNAMIC {
            let off = get64(b, p + 8) as usize;
            let size = get64(b, p + 32) as usize;
            for e in (off..off + size).step_by(16) {
                if get64(b, e) == tag {
                    return e;
                }
            }
        }
    }
    panic!("no dynamic entry {tag:#x}");
}

fn refused(b: &[u8], why: &str) {
    let err = inspect_bytes(b).unwrap_err();
    assert_eq!(err.kind, crate::Kind::Integrity, "{err}");
    assert!(err.message.contains(why), "{why}: {}", err.message);
}

/// Each forged header field ld.so or the kernel would trip on is named.
#[test]
fn forged_fields_are_refused_by_name() {
    let real = std::fs::read(LIBSSL).unwrap();
    let mut b = real.clone();
    le16(&mut b, 56, 0xffff); // e_phnum = PN_XNUM
    refused(&b, "e_phnum 65535");
    let mut b = real.clone();
    le64(&mut b, 32, real.len() as u64 - 8); // e_phoff near the end
    refused(&b, "program header table");
    let mut b = real.clone();
    le64(&mut b, 32, u64::MAX - 8); // e_phoff overflowing
    refused(&b, "overflows");
    let mut b = real.clone();
    le16(&mut b, 54, 40); // e_phentsize
    refused(&b, "e_phentsize 40");
    let mut b = real.clone();
    le64(&mut b, 40, real.len() as u64); // e_shoff at the end
    refused(&b, "section header");
    let mut b = real.clone();
    le16(&mut b, 62, 0xfff0); // e_shstrndx
    refused(&b, "e_shstrndx");
    // The string table moved past the end of the file (and of every
    // PT_LOAD), and grown past it.
    let mut b = real.clone();
    let e = dyn_entry(&b, DT_STRTAB);
    le64(&mut b, e + 8, 1 << 40);
    refused(&b, "string table");
    let mut b = real.clone();
    let e = dyn_entry(&b, DT_STRSZ);
    le64(&mut b, e + 8, real.len() as u64 * 4);
    refused(&b, "string table");
    // A DT_NEEDED offset past the table.
    let mut b = real.clone();
    let strsz = get64(&b, dyn_entry(&b, DT_STRSZ) + 8);
    let e = dyn_entry(&b, DT_NEEDED);
    le64(&mut b, e + 8, strsz + 5);
    refused(&b, "DT_NEEDED");
    // Version counts without tables, tables past the end.
    let mut b = real.clone();
    let e = dyn_entry(&b, DT_VERNEED);
    le64(&mut b, e + 8, 1 << 40);
    refused(&b, "DT_VERNEED");
    let mut b = real.clone();
    let e = dyn_entry(&b, DT_VERDEFNUM);
    le64(&mut b, e, 0x6000_0000); // an unknown tag: DT_VERDEF alone
    refused(&b, "DT_VERDEF without DT_VERDEFNUM");
    // No program headers: an object file needs nothing, whatever its
    // e_phoff; a shared library cannot be loaded.
    let mut b = real.clone();
    le16(&mut b, 56, 0);
    le64(&mut b, 32, u64::MAX);
    refused(&b, "e_phnum 0");
    le16(&mut b, 16, 1); // ET_REL
    let info = inspect_bytes(&b).unwrap().unwrap();
    assert!(info.needed.is_empty() && info.interpreter.is_none());
    // Truncated: every cut of the headers is refused, none panics.
    for len in [16, 40, 63, 64, 100, 1000] {
        assert!(inspect_bytes(&real[..len]).is_err(), "{len}");
    }
}

/// The damage is a variant with the forged numbers in it, below an
/// error naming the file; a failed read keeps the kernel's error.
#[test]
fn damage_is_typed() {
    let real = std::fs::read(LIBSSL).unwrap();
    let mut b = real.clone();
    le16(&mut b, 56, 0xffff); // e_phnum = PN_XNUM
    let err = inspect_bytes(&b).unwrap_err();
    assert!(
        matches!(
            err.typed::<ElfError>(),
            Some(ElfError::Damaged {
                damage: Damage::TooManyProgramHeaders {
                    phnum: 0xffff,
                    max: 1170
                },
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.hint.is_some());
    let mut b = real.clone();
    le16(&mut b, 54, 40); // e_phentsize
    let err = inspect_bytes(&b).unwrap_err();
    assert!(
        matches!(
            err.typed::<ElfError>(),
            Some(ElfError::Damaged {
                damage: Damage::EntrySize {
                    field: "e_phentsize",
                    got: 40,
                    want: 56
                },
                ..
            })
        ),
        "{err:?}"
    );
    let err = inspect_bytes(&real[..100]).unwrap_err();
    assert!(
        matches!(
            err.typed::<ElfError>(),
            Some(ElfError::Damaged { path, damage: Damage::PastEnd { file_len: 100, .. } }) if path == Path::new("<memory>")
        ),
        "{err:?}"
    );
    assert_eq!(err.causes().count(), 1, "{err:?}");
}

/// Offsets are relative and unsigned, so a version walk can only run
/// forward: a count of 2^32 - 1 needs, 65535 entries each, chained by
/// `vna_next` 16 through whatever follows, ends within the caps (or
/// at the end of the file), quickly.
#[test]
fn version_walks_are_bounded() {
    let mut b = std::fs::read(LIBSSL).unwrap();
    let num = dyn_entry(&b, DT_VERNEEDNUM);
    le64(&mut b, num + 8, u32::MAX as u64);
    let addr = get64(&b, dyn_entry(&b, DT_VERNEED) + 8);
    // libssl's first PT_LOAD maps offset == vaddr.
    let at = addr as usize;
    le16(&mut b, at + 2, 0xffff); // vn_cnt
    let aux = at + u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
    let t = std::time::Instant::now();
    for next in [u32::MAX, 0x10, 0] {
        le32(&mut b, aux + 12, next);
        le32(&mut b, at + 12, next);
        match inspect_bytes(&b) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind, crate::Kind::Integrity, "{e}"),
        }
    }
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}

/// The fuzz seeds made by `fuzz/make-seeds.py`: a 64-bit little- and a
/// 32-bit big-endian object with every field the reader looks at.
#[test]
fn the_synthetic_seeds_read_fully() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/elf");
    for (name, is_64, little) in [("tiny64le.so", true, true), ("tiny32be.so", false, false)] {
        let info = inspect(&corpus.join(name)).unwrap().unwrap();
        assert_eq!(
            (info.machine.is_64, info.machine.little_endian),
            (is_64, little)
        );
        assert_eq!(info.needed, ["libc.so.6"]);
        assert_eq!(info.soname.as_deref(), Some("libseed.so.1"));
        assert_eq!(info.runpath, ["$ORIGIN/../lib", "/opt/x"]);
        assert_eq!(info.rpath, ["/old/rpath"]);
        assert_eq!(
            info.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert!(info.required_versions["libc.so.6"].contains("GLIBC_2.34"));
        assert_eq!(
            info.defined_versions,
            BTreeSet::from(["SEED_1.0".to_string()])
        );
    }
    for name in ["ld.so.cache", "ld.so.cache-old"] {
        let cache = crate::elf::ldcache::parse(&std::fs::read(corpus.join(name)).unwrap()).unwrap();
        let libc: Vec<_> = cache
            .lookup("libc.so.6", crate::elf::ldcache::FLAGS_X86_64)
            .collect();
        assert_eq!(libc, ["/lib/x86_64-linux-gnu/libc.so.6"], "{name}");
    }
}

/// No false alarm: every ELF file of the host's library directories and
/// PostgreSQL (if installed) reads, from a file and from memory alike.
#[test]
fn every_real_file_here_reads() {
    let mut checked = 0;
    for dir in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/bin",
        "/usr/lib/postgresql/15/bin",
        "/usr/lib/postgresql/15/lib",
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if !e.file_type().unwrap().is_file() {
                continue;
            }
            match inspect(&p) {
                Ok(Some(info)) => {
                    checked += 1;
                    if checked % 16 == 0 {
                        let bytes = std::fs::read(&p).unwrap();
                        assert_eq!(inspect_bytes(&bytes).unwrap().as_ref(), Some(&info));
                    }
                }
                Ok(None) => {}
                Err(err) => panic!("{}: {err}", p.display()),
            }
        }
    }
    assert!(checked > 100, "{checked}");
    // More trees to scan, recursively (unpacked images of other
    // releases): `PGOCI_ELF_SCAN=/a:/b cargo test every_real_file`.
    let extra = std::env::var("PGOCI_ELF_SCAN").unwrap_or_default();
    let mut pending: Vec<PathBuf> = std::env::split_paths(&extra)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    let mut scanned = 0;
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                pending.push(e.path());
            } else if t.is_file() {
                match inspect(&e.path()) {
                    Ok(Some(_)) => scanned += 1,
                    Ok(None) => {}
                    Err(err) => panic!("{err}"),
                }
            }
        }
    }
    if !extra.is_empty() {
        eprintln!("{scanned} ELF files read under {extra}");
    }
}
