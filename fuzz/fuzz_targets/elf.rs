//! Any bytes as an ELF file (what `install` reads, as root, from every
//! program and library of an image) and as an `ld.so.cache`: the reader
//! either refuses them with an integrity error (exit 5, never an internal
//! one) or returns what it read; it never panics, never reads past the
//! buffer (every read is bounds-checked, and `-Cdebug-assertions
//! -Coverflow-checks` turn any slip into a crash here) and always ends
//! (every table walk is bounded by counts and caps, so a `vn_next` cycle
//! cannot loop). The same bytes are read through a file too: the reader
//! takes files piecewise, and both ways must agree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pgoci::elf::{inspect, inspect_bytes, ldcache};

fuzz_target!(|data: &[u8]| {
    let in_memory = inspect_bytes(data);
    if let Err(e) = &in_memory {
        assert_eq!(e.kind, pgoci::Kind::Integrity, "{}", e.message);
    }
    if let Ok(Some(info)) = &in_memory {
        // What the closure does with what was read.
        let origin = std::path::Path::new("/usr/lib/postgresql/17/bin");
        let _ = (info.rpath_dirs(origin), info.runpath_dirs(origin));
        let _ = info.glibc_required();
    }
    // The file path of the reader (positioned reads) gives the same answer.
    if data.len() >= 4 && data[..4] == *b"\x7fELF" {
        // One scratch file per process, rewritten each run.
        static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
        let path = DIR
            .get_or_init(|| tempfile::tempdir().expect("temp dir"))
            .path()
            .join("f");
        std::fs::write(&path, data).expect("write");
        let from_file = inspect(&path);
        match (&in_memory, &from_file) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "file and memory readers disagree"),
            (Err(_), Err(e)) => assert_eq!(e.kind, pgoci::Kind::Integrity, "{}", e.message),
            _ => panic!("file and memory readers disagree: {in_memory:?} vs {from_file:?}"),
        }
    }
    match ldcache::parse(data) {
        Ok(cache) => {
            for e in cache.entries.iter().take(4) {
                let _ = cache.lookup(&e.soname, ldcache::FLAGS_X86_64).count();
            }
        }
        Err(e) => assert_eq!(e.kind, pgoci::Kind::Integrity, "{}", e.message),
    }
});
