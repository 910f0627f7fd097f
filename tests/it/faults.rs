//! Faults a real registry will not produce on demand, injected by a small
//! proxy in front of it (tests/bed/faulty_proxy.py): cut connections are
//! resumed with Range requests, 5xx/429 are retried with a bound, bad bytes
//! are never kept; and two pgoci processes share one cache safely.

use crate::support::*;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct Proxy {
    child: Child,
    addr: String,
    log: PathBuf,
    profile: PathBuf,
}

impl Proxy {
    fn start(dir: &Path, mode: &[&str]) -> Self {
        let bed = bed();
        let log = dir.join("proxy.log");
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/faulty_proxy.py"))
            .arg(&bed.registry)
            .arg(&log)
            .args(mode)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT=")
            .expect("proxy prints PORT=")
            .to_string();
        let addr = format!("127.0.0.1:{port}");
        let profile = dir.join("proxied.yaml");
        let text = std::fs::read_to_string(&bed.profile).unwrap();
        std::fs::write(&profile, text.replace(&bed.registry, &addr)).unwrap();
        Proxy {
            child,
            addr,
            log,
            profile,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pgoci(&self, cache: &Path) -> assert_cmd::Command {
        pgoci(&self.profile, &self.addr, cache)
    }

    /// `pgoci pull --lock LOCK` through the proxy, with extra flags.
    fn pull(&self, cache: &Path, lock: &Path, extra: &[&str]) -> std::process::Output {
        self.pgoci(cache)
            .arg("pull")
            .args(extra)
            .arg("--lock")
            .arg(lock)
            .output()
            .unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PG 15 + pg_cron lock, resolved straight from the registry, whose
/// references then go through the proxy (so the pull meets the faults).
fn proxied_lock(dir: &Path, proxy: &Proxy) -> PathBuf {
    let bed = bed();
    let lock = dir.join("pg15.lock");
    pgoci(&bed.profile, &bed.registry, &dir.join("resolve-cache"))
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&lock)
        .assert()
        .success();
    let text = std::fs::read_to_string(&lock)
        .unwrap()
        .replace(&bed.registry, &proxy.addr);
    std::fs::write(&lock, text).unwrap();
    lock
}

fn cached_blobs_are_correct(cache: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(cache.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        let hex = p.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(
            pgoci::digest::Digest::of_bytes(&std::fs::read(&p).unwrap()).hex(),
            hex
        );
        n += 1;
    }
    n
}

#[test]
fn a_cut_download_resumes_with_a_range_request() {
    let dir = scratch();
    let proxy = Proxy::start(dir.path(), &["cut", "1000000"]);
    let lock = proxied_lock(dir.path(), &proxy);
    let cache = dir.path().join("cache");
    let out = proxy.pull(&cache, &lock, &[]);
    assert_success(&out);
    let log = proxy.log();
    assert!(log.contains("cut after 1000000"), "{log}");
    assert!(
        log.contains("range=bytes=1000000-"),
        "the resume asks for the rest: {log}"
    );
    assert_eq!(cached_blobs_are_correct(&cache), 6);
}

/// A pull pings its registry (`GET /v2/`, the auth handshake) once,
/// however many manifests, blobs and referrers it asks for from however
/// many repositories: the answer is kept for the run (issue 22 item 6).
#[test]
fn a_pull_pings_its_registry_once() {
    let dir = scratch();
    // `status 500 0`: no request fails; the proxy only logs them all.
    let proxy = Proxy::start(dir.path(), &["status", "500", "0"]);
    let lock = proxied_lock(dir.path(), &proxy);
    let cache = dir.path().join("cache");
    let out = proxy.pull(&cache, &lock, &[]);
    assert_success(&out);
    let log = proxy.log();
    let fetches = log
        .lines()
        .filter(|l| l.contains("/blobs/sha256:") || l.contains("/manifests/sha256:"))
        .count();
    assert!(
        fetches >= 6,
        "two images' manifests, configs, layers: {log}"
    );
    let pings = log.lines().filter(|l| l.starts_with("GET /v2/ ")).count();
    assert_eq!(pings, 1, "one ping for {fetches} fetches: {log}");
    assert_eq!(cached_blobs_are_correct(&cache), 6);
}

#[test]
fn server_errors_and_429_are_retried_then_succeed() {
    for code in ["500", "429"] {
        let dir = scratch();
        let proxy = Proxy::start(dir.path(), &["status", code, "2"]);
        let lock = proxied_lock(dir.path(), &proxy);
        let cache = dir.path().join("cache");
        let out = proxy.pull(&cache, &lock, &["--jobs", "1"]);
        assert!(
            out.status.success(),
            "{code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(proxy.log().matches(&format!("-> {code}")).count(), 2);
        assert_eq!(cached_blobs_are_correct(&cache), 6);
    }
}

#[test]
fn retries_are_bounded_and_end_in_exit_4() {
    let dir = scratch();
    let proxy = Proxy::start(dir.path(), &["always", "503"]);
    let lock = proxied_lock(dir.path(), &proxy);
    let cache = dir.path().join("cache");
    let started = std::time::Instant::now();
    let out = proxy.pull(&cache, &lock, &["--jobs", "1"]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gave up after 5 attempts"), "{err}");
    assert!(err.contains("503"), "{err}");
    // Bounded: 5 attempts of the first blob that failed, then stop.
    assert_eq!(proxy.log().matches("-> 503").count(), 5, "{}", proxy.log());
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn bytes_that_do_not_match_are_never_kept() {
    let dir = scratch();
    let proxy = Proxy::start(dir.path(), &["corrupt"]);
    let lock = proxied_lock(dir.path(), &proxy);
    let cache = dir.path().join("cache");
    let out = proxy.pull(&cache, &lock, &[]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only the manifests (fetched through the manifest endpoint, intact) may be cached.
    let text = std::fs::read_to_string(&lock).unwrap();
    for e in std::fs::read_dir(cache.join("blobs/sha256")).unwrap() {
        let hex = e.unwrap().file_name().to_string_lossy().to_string();
        let line = text.lines().position(|l| l.contains(&hex)).unwrap();
        let before = text.lines().nth(line - 1).unwrap_or("");
        assert!(
            before.contains("reference:"),
            "a non-manifest blob {hex} was kept"
        );
    }
    let partials: Vec<_> = std::fs::read_dir(cache.join("tmp"))
        .unwrap()
        .flatten()
        .filter(|e| std::fs::metadata(e.path()).unwrap().len() > 0)
        .collect();
    assert!(
        partials.is_empty(),
        "no bad bytes stay as partial files either"
    );
}

#[test]
fn two_pulls_of_overlapping_locks_share_one_cache() {
    let bed = bed();
    let dir = scratch();
    let cache = dir.path().join("cache");
    let spawn = |major: &str, ext: &str| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("pgoci"))
            .env("PGOCI_CACHE_DIR", &cache)
            .args([
                "--profile",
                bed.profile.to_str().unwrap(),
                "--insecure-registry",
                &bed.registry,
            ])
            .args(["pull", "--jobs", "2", "--major", major, "--ext", ext])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Both locks hold the same 18.3 server layer; the extensions differ.
    let a = spawn("18", "pg_trgm");
    let b = spawn("18", "pg_stat_statements,pg_trgm");
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_success(&out);
    }
    assert_eq!(cached_blobs_are_correct(&cache), 9);
}

#[test]
fn a_partial_blob_left_by_an_earlier_run_is_resumed() {
    let dir = scratch();
    let proxy = Proxy::start(dir.path(), &["status", "500", "0"]); // a logging pass-through
    let lock = proxied_lock(dir.path(), &proxy);
    // A whole copy to cut from, then half of the biggest layer as a leftover partial.
    let full = dir.path().join("full");
    let out = proxy.pull(&full, &lock, &[]);
    assert_success(&out);
    let biggest = std::fs::read_dir(full.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let bytes = std::fs::read(&biggest).unwrap();
    let half = bytes.len() / 2;
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(cache.join("tmp")).unwrap();
    let hex = biggest.file_name().unwrap().to_str().unwrap();
    std::fs::write(
        cache.join("tmp").join(format!("{hex}.partial")),
        &bytes[..half],
    )
    .unwrap();
    let out = proxy.pull(&cache, &lock, &[]);
    assert_success(&out);
    assert!(
        proxy.log().contains(&format!("range=bytes={half}-")),
        "{}",
        proxy.log()
    );
    assert_eq!(cached_blobs_are_correct(&cache), 6);
}
