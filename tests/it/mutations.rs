//! A bounded mutation fuzz that runs in CI (the `cargo fuzz` target in
//! `fuzz/` needs a nightly toolchain): thousands of deterministic
//! mutations of a good lock, profile, bundle index and layer are fed to
//! the real parsers and the unpacker. None may panic or answer with an
//! internal error (exit 1), and nothing may be written outside the
//! unpack root.

use pgoci::digest::Digest;
use pgoci::lock::{Blob, Lock};
use pgoci::Kind;
use std::path::Path;

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that break parsers: quotes, newlines, path tricks, huge numbers.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"'",
    b"\"",
    b"\\",
    b"../",
    b"/",
    b"\0",
    b"%",
    b"$",
    b":",
    b"- ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"99999999999999999999",
    b"-1",
    b"sha256:",
    b"\xff\xfe",
    b"..",
    b".wh.",
];

/// One mutation of `input`: flip, delete, duplicate, insert a token, or cut.
fn mutate(input: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        if out.is_empty() {
            out.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
            continue;
        }
        let at = rng.below(out.len());
        match rng.below(5) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            2 => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, token.iter().copied());
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// A real lock (the test bed's PostgreSQL 15 + pg_cron) with an
/// extension environment and library path added.
const SAMPLE_LOCK: &str = include_str!("../data/sample.lock");

fn sample_lock() -> String {
    SAMPLE_LOCK.to_string()
}

fn sample_profile() -> &'static str {
    "name: t\ndescription: x\nplatforms: [linux/amd64]\nserver:\n  majors: [15, 17]\n  image: \"r/pg:{major}\"\n  layout: {15: rootfs, 17: tree}\n  paths:\n    15: {bin: /usr/lib/postgresql/15/bin, lib: /usr/lib/postgresql/15/lib, share: /usr/share/postgresql/15}\nextensions:\n  pg_cron:\n    image: \"r/pg_cron:{version}-{major}\"\n    versions: [1.6.4]\n    majors: [15, 17]\n    preload: pg_cron\n    settings: {cron.database_name: postgres}\n    env: {X: \"${image_root}/x\"}\n    ld_library_path: [system]\n"
}

/// Parsers answer every mutation with a value or a typed error.
fn never_internal(kind: Option<Kind>, what: &str, input: &[u8]) {
    assert_ne!(
        kind,
        Some(Kind::Internal),
        "{what} gave an internal error for {:?}",
        String::from_utf8_lossy(input)
    );
}

#[test]
fn mutated_locks_and_profiles_are_parsed_or_refused_never_a_bug() {
    let lock = sample_lock();
    Lock::parse(&lock, "sample").expect("the sample lock parses");
    pgoci::profile::Profile::parse(sample_profile(), "sample").expect("the sample profile parses");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let rounds = 4000;
    for _ in 0..rounds {
        let bad = mutate(lock.as_bytes(), &mut rng);
        let text = String::from_utf8_lossy(&bad);
        never_internal(
            Lock::parse(&text, "mutant").err().map(|e| e.kind),
            "lock",
            &bad,
        );
        let bad = mutate(sample_profile().as_bytes(), &mut rng);
        let text = String::from_utf8_lossy(&bad);
        let got = pgoci::profile::Profile::parse(&text, "mutant");
        never_internal(got.err().map(|e| e.kind), "profile", &bad);
    }
}

/// A gzip tar layer of a few entries, as a blob.
fn sample_layer() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in [
        ("bin", tar::EntryType::Directory, "", &b""[..]),
        ("bin/postgres", tar::EntryType::Regular, "", &b"ELF?"[..]),
        ("lib", tar::EntryType::Symlink, "bin", &b""[..]),
        ("bin/.wh.old", tar::EntryType::Regular, "", &b""[..]),
        ("share/x", tar::EntryType::Link, "bin/postgres", &b""[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        tar.append_data(&mut h, name, data).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    gz.finish().unwrap()
}

#[test]
fn mutated_layers_unpack_or_are_refused_and_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "keep").unwrap();
    // Mutate the tar inside, then compress: the digest matches, so every
    // mutant reaches the unpacker itself.
    let good = sample_layer();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&good[..]), &mut raw).unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let rounds = 1500;
    for i in 0..rounds {
        let bad = mutate(&raw, &mut rng);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bad).unwrap();
        let blob_bytes = gz.finish().unwrap();
        let blob = Blob {
            digest: Digest::of_bytes(&blob_bytes),
            size: blob_bytes.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        };
        let root = dir.path().join(format!("root{}", i % 8));
        let _ = std::fs::remove_dir_all(&root);
        let got = pgoci::unpack::apply_layer(
            &blob_bytes[..],
            &blob,
            &root,
            &pgoci::unpack::keep_all,
            &mut pgoci::unpack::Budget::default(),
        );
        never_internal(got.err().map(|e| e.kind), "unpack", &bad);
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            1,
            "mutant {i} wrote outside its root"
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("secret")).unwrap(),
            "keep"
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().all(|e| {
                let n = e.unwrap().file_name();
                n == "outside" || n.to_string_lossy().starts_with("root")
            }),
            "mutant {i} wrote beside its root"
        );
    }
    let _ = Path::new("");
}
