//! Registries that want bearer tokens (the `WWW-Authenticate: Bearer
//! realm=...,service=...,scope=...` flow of ghcr.io, Docker Hub, quay.io and
//! Harbor): a real docker-registry with token auth and our own token
//! service (tests/bed/token_server.py). Anonymous clients still fetch a
//! (pull-only) token; credentials get pull and push; tokens are fetched
//! once per repository and replaced when the registry says they ran out;
//! every refusal is one line naming the registry and the credential source.

use crate::support::*;
use std::io::BufRead;
use std::path::{Path, PathBuf};

const USER: &str = "pgoci";
const PASSWORD: &str = "pgoci-secret-pw";

/// A token registry seeded with the shared bed's fixtures (`bed.sh
/// token-registry`); stopped, with its token service, when dropped.
struct TokenRegistry {
    state_dir: PathBuf,
    registry: String,
    profile: PathBuf,
}

impl TokenRegistry {
    fn start(name: &str, args: &[&str]) -> Self {
        let bed = bed();
        let state_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bed-{name}"));
        let mut all = vec![
            "token-registry",
            state_dir.to_str().unwrap(),
            "--from",
            bed.state_dir.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let out = bed_sh(&all);
        let registry = out
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("REGISTRY="))
            .expect("bed.sh prints REGISTRY=")
            .trim()
            .to_string();
        TokenRegistry {
            profile: state_dir.join("profile.yaml"),
            state_dir,
            registry,
        }
    }

    /// The token service's requests so far, one line each:
    /// `user=<name|-> scope=<scope> -> <answer>`.
    fn token_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.state_dir.join("token.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Tokens granted to `user` (`-`: anonymous) for exactly `scope`.
    fn granted(&self, user: &str, scope: &str) -> usize {
        let want = format!("user={user} scope={scope} -> 200");
        self.token_log()
            .iter()
            .filter(|l| l.starts_with(&want))
            .count()
    }

    fn clear_token_log(&self) {
        std::fs::write(self.state_dir.join("token.log"), "").unwrap();
    }

    /// pgoci against this registry: plain HTTP, no credentials from the
    /// environment or a docker config unless a test adds them.
    fn pgoci(&self, profile: &Path, cache: &Path) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("pgoci").unwrap();
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", cache)
            .env("PGOCI_CACHE_DIR", cache)
            .arg("--profile")
            .arg(profile)
            .arg("--insecure-registry")
            .arg(&self.registry);
        cmd
    }
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/bed.sh"))
            .args(["down", self.state_dir.to_str().unwrap()])
            .output();
    }
}

const RESOLVE: [&str; 6] = ["resolve", "--major", "15", "--ext", "pg_cron", "-o"];
const SERVER_PULL: &str = "repository:pgoci/postgresql-debian:pull";
const CRON_PULL: &str = "repository:pgoci/pg_cron:pull";

fn digests(lock: &Path) -> Vec<String> {
    pgoci::lock::Lock::read(lock)
        .unwrap()
        .blobs()
        .into_iter()
        .map(|b| b.digest.to_string())
        .collect()
}

/// The same lock from the shared (open) registry, for digest comparisons.
fn reference_lock(dir: &Path) -> PathBuf {
    let bed = bed();
    let lock = dir.join("reference.lock");
    pgoci(&bed.profile, &bed.registry, &dir.join("reference-cache"))
        .args(RESOLVE)
        .arg(&lock)
        .assert()
        .success();
    lock
}

/// A refusal: exit 4, exactly one `error:` line (a `hint:` may follow),
/// naming the registry and the credential source, with no JSON body and
/// no secret in sight. Returns the error line.
#[track_caller]
fn assert_one_line_refusal(out: &std::process::Output, registry: &str, source: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("error:") || l.starts_with("hint:")),
        "nothing but the error and its hint: {err}"
    );
    let line = errors[0].to_string();
    assert!(line.contains(registry), "names the registry: {line}");
    assert!(line.contains(source), "names the credential source: {line}");
    assert!(
        !err.contains('{') && !err.contains("errors"),
        "no raw body: {err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    line
}

#[test]
fn anonymous_clients_fetch_a_pull_token_once_per_repository() {
    // GHCR-style: even anonymous pulls need a token.
    let reg = TokenRegistry::start("token-anon-ok", &["anon-ok"]);
    let dir = scratch();
    let d = dir.path();
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!(
            "http://{}/v2/pgoci/pg_cron/tags/list",
            reg.registry
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "401",
        "no token, no pull"
    );

    let lock = d.join("anon.lock");
    reg.pgoci(&reg.profile, &d.join("cache"))
        .args(RESOLVE)
        .arg(&lock)
        .assert()
        .success();
    assert_eq!(digests(&lock), digests(&reference_lock(d)));
    // One token per repository for the whole resolve, however many requests.
    assert_eq!(reg.granted("-", SERVER_PULL), 1, "{:?}", reg.token_log());
    assert_eq!(reg.granted("-", CRON_PULL), 1, "{:?}", reg.token_log());

    reg.clear_token_log();
    let out = reg
        .pgoci(&reg.profile, &d.join("cache"))
        .args(["--json", "pull", "--lock"])
        .arg(&lock)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(json(&out)["fetched"], 6, "{}", json(&out));
    // Six downloads (some at once), still one token per repository.
    assert_eq!(reg.granted("-", SERVER_PULL), 1, "{:?}", reg.token_log());
    assert_eq!(reg.granted("-", CRON_PULL), 1, "{:?}", reg.token_log());
    assert_eq!(reg.token_log().len(), 2, "{:?}", reg.token_log());
}

#[test]
fn a_registry_denying_anonymous_tokens_says_so_in_one_line_and_takes_credentials() {
    let reg = TokenRegistry::start("token-anon-denied", &["anon-denied"]);
    let dir = scratch();
    let d = dir.path();

    let out = reg
        .pgoci(&reg.profile, &d.join("cache"))
        .args(RESOLVE)
        .arg(d.join("anon.lock"))
        .output()
        .unwrap();
    assert_one_line_refusal(&out, &reg.registry, "no credentials");
    assert!(!d.join("anon.lock").exists());
    assert!(
        reg.token_log()
            .iter()
            .any(|l| l.contains("anonymous denied")),
        "{:?}",
        reg.token_log()
    );

    // A wrong password: the token service refuses; the line names --creds.
    let out = reg
        .pgoci(&reg.profile, &d.join("cache"))
        .arg("--creds")
        .arg(format!("{USER}:not-{PASSWORD}"))
        .args(RESOLVE)
        .arg("-")
        .output()
        .unwrap();
    let line = assert_one_line_refusal(&out, &reg.registry, "--creds");
    assert!(!line.contains("not-"), "{line}");

    // The right credentials, from --creds and from the environment.
    let lock = d.join("creds.lock");
    reg.pgoci(&reg.profile, &d.join("cache"))
        .arg("--creds")
        .arg(format!("{USER}:{PASSWORD}"))
        .args(RESOLVE)
        .arg(&lock)
        .assert()
        .success();
    assert_eq!(digests(&lock), digests(&reference_lock(d)));
    let out = reg
        .pgoci(&reg.profile, &d.join("cache"))
        .env("PGOCI_REGISTRY_USER", USER)
        .env("PGOCI_REGISTRY_PASSWORD", PASSWORD)
        .args(["--json", "pull", "--lock"])
        .arg(&lock)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(json(&out)["fetched"], 6, "{}", json(&out));
    assert!(reg.granted(USER, SERVER_PULL) >= 2, "{:?}", reg.token_log());
}

#[test]
fn bundle_push_needs_a_push_token_and_the_pushed_copy_resolves_to_the_same_digests() {
    let reg = TokenRegistry::start("token-push", &["anon-ok"]);
    let bed = bed();
    let dir = scratch();
    let d = dir.path();
    let lock = reference_lock(d);
    let bundle = d.join("carry.tar");
    pgoci(&bed.profile, &bed.registry, &d.join("reference-cache"))
        .args(["bundle", "export", "--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(&bundle)
        .assert()
        .success();
    let site = format!("{}/site", reg.registry);

    // Anonymous: the token service grants pull only, the registry refuses the upload.
    let out = reg
        .pgoci(&bed.profile, &d.join("cache"))
        .args(["bundle", "push", "--to", &site])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_one_line_refusal(&out, &reg.registry, "no credentials");
    assert!(
        reg.token_log()
            .iter()
            .any(|l| l.starts_with("user=- scope=repository:site/pgoci/")
                && l.contains(":pull,push -> 200")
                && !l.ends_with(",push")),
        "asked for push, got pull only: {:?}",
        reg.token_log()
    );

    // With credentials: pushed, with one push token per repository, which
    // also serves the checks for blobs already there.
    reg.clear_token_log();
    let out = reg
        .pgoci(&bed.profile, &d.join("cache"))
        .arg("--creds")
        .arg(format!("{USER}:{PASSWORD}"))
        .args(["--json", "bundle", "push", "--to", &site])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(json(&out)["artifacts"].as_array().unwrap().len(), 2);
    assert_eq!(
        reg.granted(USER, "repository:site/pgoci/pg_cron:pull,push"),
        1,
        "one push token for the repository: {:?}",
        reg.token_log()
    );
    assert!(
        reg.token_log()
            .iter()
            .any(|l| l.ends_with("-> 200 site/pgoci/pg_cron:pull,push")),
        "{:?}",
        reg.token_log()
    );
    assert_eq!(reg.token_log().len(), 2, "{:?}", reg.token_log());

    // Resolve back from the pushed copy (anonymously: pulls are open).
    let profile = d.join("site.yaml");
    let text = std::fs::read_to_string(&bed.profile)
        .unwrap()
        .replace(&bed.registry, &site);
    std::fs::write(&profile, text).unwrap();
    let back = d.join("back.lock");
    reg.pgoci(&profile, &d.join("cache-back"))
        .args(RESOLVE)
        .arg(&back)
        .assert()
        .success();
    assert_eq!(digests(&back), digests(&lock));
}

/// A proxy log line of a manifest or blob request refused with 401 (not
/// the `GET /v2/` that finds the token service).
fn refused_content(line: &str) -> bool {
    (line.contains("/manifests/") || line.contains("/blobs/")) && line.contains("-> 401")
}

/// The test bed's delaying proxy (tests/bed/faulty_proxy.py `slow`).
struct SlowProxy {
    child: std::process::Child,
    addr: String,
}

impl SlowProxy {
    fn start(upstream: &str, log: &Path, millis: u32) -> Self {
        let mut child = std::process::Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/faulty_proxy.py"))
            .arg(upstream)
            .arg(log)
            .args(["slow", &millis.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT=")
            .expect("PORT=")
            .to_string();
        SlowProxy {
            child,
            addr: format!("127.0.0.1:{port}"),
        }
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_token_that_runs_out_during_a_pull_is_replaced() {
    // Tokens the registry refuses within 2 s of their issue, with a
    // lifetime the client cannot read (as ghcr.io's opaque tokens): only
    // the registry's 401 tells. A slow link (each answer 1.5 s late, one
    // request at a time) keeps each repository busy for three answers,
    // 4.5 s; the request that follows a refusal reaches the registry at
    // once with the new token, well within its lifetime.
    let reg = TokenRegistry::start(
        "token-expiry",
        &["anon-denied", "--expiry", "2", "--opaque-expiry"],
    );
    let dir = scratch();
    let d = dir.path();
    let creds = format!("{USER}:{PASSWORD}");
    let lock = d.join("direct.lock");
    reg.pgoci(&reg.profile, &d.join("cache"))
        .arg("--creds")
        .arg(&creds)
        .args(RESOLVE)
        .arg(&lock)
        .assert()
        .success();
    let proxy = SlowProxy::start(&reg.registry, &d.join("proxy.log"), 1500);
    let proxied = d.join("proxied.lock");
    let text = std::fs::read_to_string(&lock)
        .unwrap()
        .replace(&reg.registry, &proxy.addr);
    std::fs::write(&proxied, text).unwrap();

    reg.clear_token_log();
    let started = std::time::Instant::now();
    let mut cmd = assert_cmd::Command::cargo_bin("pgoci").unwrap();
    let out = cmd
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", d)
        .env("PGOCI_CACHE_DIR", d.join("cache"))
        .arg("--profile")
        .arg(&reg.profile)
        .arg("--insecure-registry")
        .arg(&proxy.addr)
        .arg("--creds")
        .arg(&creds)
        .args(["--json", "pull", "--jobs", "1", "--lock"])
        .arg(&proxied)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(json(&out)["fetched"], 6, "{}", json(&out));
    assert!(
        started.elapsed().as_secs() >= 4,
        "the pull outlived a token"
    );
    // The first token of the server's repository ran out mid-pull: a second one.
    assert!(reg.granted(USER, SERVER_PULL) >= 2, "{:?}", reg.token_log());
    assert!(reg.granted(USER, CRON_PULL) >= 2, "{:?}", reg.token_log());
    let proxy_log = std::fs::read_to_string(d.join("proxy.log")).unwrap();
    assert!(
        proxy_log.lines().any(refused_content),
        "the registry refused an expired token: {proxy_log}"
    );
}

#[test]
fn a_token_whose_expiry_the_client_can_read_is_renewed_before_it_runs_out() {
    // The same slow pull, with tokens whose `exp` says 2 s: the client asks
    // for a new one once that time is up (whole seconds: within 3 s), before
    // the registry would refuse it (it allows 60 s of clock skew).
    let reg = TokenRegistry::start("token-exp", &["anon-ok", "--expiry", "2"]);
    let dir = scratch();
    let d = dir.path();
    let lock = d.join("direct.lock");
    reg.pgoci(&reg.profile, &d.join("cache"))
        .args(RESOLVE)
        .arg(&lock)
        .assert()
        .success();
    let proxy = SlowProxy::start(&reg.registry, &d.join("proxy.log"), 1500);
    let proxied = d.join("proxied.lock");
    let text = std::fs::read_to_string(&lock)
        .unwrap()
        .replace(&reg.registry, &proxy.addr);
    std::fs::write(&proxied, text).unwrap();

    reg.clear_token_log();
    let mut cmd = assert_cmd::Command::cargo_bin("pgoci").unwrap();
    let out = cmd
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", d)
        .env("PGOCI_CACHE_DIR", d.join("cache"))
        .arg("--profile")
        .arg(&reg.profile)
        .arg("--insecure-registry")
        .arg(&proxy.addr)
        .args(["--json", "pull", "--jobs", "1", "--lock"])
        .arg(&proxied)
        .output()
        .unwrap();
    assert_success(&out);
    assert_eq!(json(&out)["fetched"], 6, "{}", json(&out));
    assert!(reg.granted("-", SERVER_PULL) >= 2, "{:?}", reg.token_log());
    assert!(reg.granted("-", CRON_PULL) >= 2, "{:?}", reg.token_log());
    let proxy_log = std::fs::read_to_string(d.join("proxy.log")).unwrap();
    assert!(
        !proxy_log.lines().any(refused_content),
        "renewed in time, never refused: {proxy_log}"
    );
}
