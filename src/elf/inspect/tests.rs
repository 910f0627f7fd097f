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
