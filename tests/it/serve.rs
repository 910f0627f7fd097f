//! `pgoci serve`: a bundle served read-only as a registry, straight from
//! the layout. skopeo, oras, curl and pgoci itself pull from it (a site
//! profile naming its address resolves the origin's digests and installs);
//! pushes are refused; requests never leave the layout; TLS and basic auth;
//! SIGTERM lets a download in flight finish and exits 0.

use crate::support::*;
use pgoci::digest::Digest;
use pgoci::lock::Lock;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A `pgoci -v serve` started by a test, stopped (by its PID) at the end.
struct Served {
    child: Child,
    /// `127.0.0.1:PORT`, as it printed.
    addr: String,
    log: PathBuf,
}

impl Served {
    fn start(bundle: &Path, log: &Path, extra: &[&str]) -> Served {
        let child = Command::new(env!("CARGO_BIN_EXE_pgoci"))
            .env_remove("PGOCI_PROFILE")
            .env_remove("PGOCI_LOG")
            .args(["-v", "serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .arg(bundle)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut served = Served {
            child,
            addr: String::new(),
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = served.log_text();
            if let Some(line) = text.lines().find(|l| l.starts_with("serving ")) {
                let url = line.split("://").nth(1).unwrap();
                served.addr = url.split_once('/').unwrap().0.to_string();
                return served;
            }
            if let Some(status) = served.child.try_wait().unwrap() {
                panic!("pgoci serve exited ({status}) before serving:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "pgoci serve did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM, then waits (at most 60 s) for it to exit.
    fn terminate(&mut self) -> ExitStatus {
        self.signal(rustix::process::Signal::TERM)
    }

    fn signal(&mut self, signal: rustix::process::Signal) -> ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pgoci serve did not stop on {signal:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A response as curl saw it.
struct Got {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// curl, the path sent as given (`..` included); headers and body apart.
fn curl(args: &[&str]) -> Got {
    let out = Command::new("curl")
        .args(["-s", "--path-as-is", "-m", "60", "-D", "/dev/stderr"])
        .args(args)
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stderr).into_owned();
    let status = headers
        .lines()
        .rev()
        .find(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Got {
        status,
        headers,
        body: out.stdout,
    }
}

/// `repo:tag` (or `repo@digest`) of a locked reference, without its registry.
fn repo_ref(reference: &str) -> &str {
    reference.split_once('/').unwrap().1
}

/// The repository of a locked reference, without registry and tag.
fn repo_of(reference: &str) -> &str {
    let r = repo_ref(reference);
    r.split_once('@')
        .map(|(r, _)| r)
        .or_else(|| r.rsplit_once(':').map(|(r, _)| r))
        .unwrap_or(r)
}

/// What a locked reference's tag names in the bundle: the index when
/// one travels, else the platform manifest.
fn tagged_digest(p: &pgoci::lock::Pinned) -> Digest {
    p.index.clone().unwrap_or_else(|| p.digest.clone())
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Resolves 15 + pg_cron against `registry` and exports it to `bundle`.
fn export(profile: &Path, registry: &str, d: &Path, bundle: &Path) -> PathBuf {
    let cache = d.join("cache");
    let lock = d.join("15.lock");
    pgoci(profile, registry, &cache)
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&lock)
        .assert()
        .success();
    pgoci(profile, registry, &cache)
        .args(["bundle", "export", "--lock"])
        .arg(&lock)
        .arg("-o")
        .arg(bundle)
        .assert()
        .success();
    lock
}

/// The bed's profile with the served address in place of the registry.
fn site_profile(d: &Path, addr: &str) -> PathBuf {
    let bed = bed();
    let site = d.join("site.yaml");
    let text = std::fs::read_to_string(&bed.profile)
        .unwrap()
        .replace(&bed.registry, addr);
    std::fs::write(&site, text).unwrap();
    site
}

fn blob_digests(lock: &Path) -> Vec<String> {
    Lock::read(lock)
        .unwrap()
        .blobs()
        .into_iter()
        .map(|b| b.digest.to_string())
        .collect()
}

#[test]
fn a_served_tar_bundle_is_a_registry_for_skopeo_curl_and_pgoci() {
    let bed = bed();
    let dir = scratch();
    let d = dir.path();
    let bundle = d.join("site.tar");
    let lock = export(&bed.profile, &bed.registry, d, &bundle);
    let tar_before = Digest::of_file(&bundle).unwrap();
    let mut served = Served::start(&bundle, &d.join("serve.log"), &[]);
    let addr = served.addr.clone();
    let locked = Lock::read(&lock).unwrap();

    // skopeo: every locked reference, by tag, is what the bundle holds.
    for p in locked.artifacts() {
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{addr}/{}", repo_ref(&p.reference)),
        ]);
        assert_eq!(Digest::of_bytes(&raw), tagged_digest(p), "{}", p.reference);
        // And by digest, GET and HEAD, with the digest and stored type.
        for head in [false, true] {
            let url = served.url(&format!(
                "/v2/{}/manifests/{}",
                repo_of(&p.reference),
                p.digest
            ));
            let got = match head {
                // curl -I writes the headers to stdout too.
                true => curl(&["-I", "-o", "/dev/null", &url]),
                false => curl(&[&url]),
            };
            assert_eq!(got.status, 200, "{}", got.headers);
            assert_eq!(
                got.header("docker-content-digest"),
                Some(p.digest.to_string())
            );
            assert_eq!(got.header("content-type"), Some(p.media_type.clone()));
            assert_eq!(got.header("content-length"), Some(p.size.to_string()));
            assert_eq!(
                got.header("docker-distribution-api-version").as_deref(),
                Some("registry/2.0")
            );
            if !head {
                assert_eq!(Digest::of_bytes(&got.body), p.digest);
            }
        }
    }
    // skopeo copies the server image out: the same manifest, the same layers.
    let server = &locked.server.pinned;
    let copy = d.join("copy");
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!(
            "docker://{addr}/{}@{}",
            repo_of(&server.reference),
            server.digest
        ),
        &format!("oci:{}:copied", copy.display()),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(copy.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], server.digest.to_string());
    for layer in &server.layers {
        let (digest, _) =
            Digest::of_file(&copy.join("blobs/sha256").join(layer.digest.hex())).unwrap();
        assert_eq!(digest, layer.digest);
    }

    // pgoci: a profile naming the server resolves the origin's digests, and
    // installs from it (nothing else is asked: the profile names only it).
    let site = site_profile(d, &addr);
    let site_lock = d.join("site.lock");
    pgoci(&site, &addr, &d.join("cache-site"))
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(&site_lock)
        .assert()
        .success();
    assert_eq!(blob_digests(&lock), blob_digests(&site_lock));
    let port = free_port();
    let root = d.join("root");
    let out = pgoci(&site, &addr, &d.join("cache-site"))
        .args([
            "--json",
            "install",
            "--yes",
            "--service",
            "none",
            "--instance",
            "served",
            "--port",
            &port.to_string(),
            "--lock",
        ])
        .arg(&site_lock)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    assert_success(&out);
    let _servers = Servers::of(&root, "served");
    psql(
        &root.join("run/pgoci/served"),
        port,
        "CREATE EXTENSION pg_cron",
    )
    .unwrap();

    // A push to it is refused.
    let out = pgoci(&bed.profile, &addr, &d.join("cache-push"))
        .args(["bundle", "push", "--to", &format!("{addr}/copy")])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("405"), "{stderr}");
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let got = curl(&[
            "-X",
            method,
            &served.url(&format!(
                "/v2/{}/manifests/{}",
                repo_of(&server.reference),
                server.digest
            )),
        ]);
        assert_eq!(got.status, 405, "{method}");
        assert!(got.text().contains("UNSUPPORTED"), "{}", got.text());
    }

    // Ranges of a blob: the right bytes, or 416.
    let layer = server.layers.iter().max_by_key(|l| l.size).unwrap();
    let blob_url = served.url(&format!(
        "/v2/{}/blobs/{}",
        repo_of(&server.reference),
        layer.digest
    ));
    let whole = curl(&[&blob_url]);
    assert_eq!(whole.status, 200);
    assert_eq!(Digest::of_bytes(&whole.body), layer.digest);
    assert_eq!(whole.header("accept-ranges").as_deref(), Some("bytes"));
    let len = whole.body.len();
    let part = curl(&["-H", "Range: bytes=100-1099", &blob_url]);
    assert_eq!(part.status, 206, "{}", part.headers);
    assert_eq!(part.body, whole.body[100..1100]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 100-1099/{len}"))
    );
    let tail = curl(&["-H", "Range: bytes=-10", &blob_url]);
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, whole.body[len - 10..]);
    for bad in [format!("bytes={len}-"), "bytes=9-3".to_string()] {
        let got = curl(&["-H", &format!("Range: {bad}"), &blob_url]);
        assert_eq!(got.status, 416, "{bad}");
        assert_eq!(got.header("content-range"), Some(format!("bytes */{len}")));
    }

    // Tags, and what is not there.
    let cron = &locked.extensions[0].pinned;
    let tags = curl(&[&served.url(&format!("/v2/{}/tags/list", repo_of(&cron.reference)))]);
    assert_eq!(tags.status, 200);
    let tags: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
    let tag = repo_ref(&cron.reference).rsplit_once(':').unwrap().1;
    assert!(
        tags["tags"].as_array().unwrap().iter().any(|t| t == tag),
        "{tags}"
    );
    let passwd = Digest::of_file(Path::new("/etc/passwd")).unwrap().0;
    let repo = repo_of(&server.reference);
    for (path, status, code) in [
        ("/v2/../../etc/passwd".to_string(), 404, "NOT_FOUND"),
        (
            "/v2/../../../etc/passwd/manifests/latest".to_string(),
            400,
            "NAME_INVALID",
        ),
        (
            "/v2/%2e%2e/%2e%2e/etc/blobs/sha256:00".to_string(),
            400,
            "NAME_INVALID",
        ),
        (
            format!("/v2/{repo}/blobs/sha256:../../../../etc/passwd"),
            404,
            "NOT_FOUND",
        ),
        (
            format!("/v2/{repo}/blobs/..%2f..%2fpgoci.lock"),
            400,
            "DIGEST_INVALID",
        ),
        (format!("/v2/{repo}/blobs/{passwd}"), 404, "BLOB_UNKNOWN"),
        (
            format!("/v2/{repo}/blobs/sha256:abc"),
            400,
            "DIGEST_INVALID",
        ),
        (
            format!("/v2/{repo}/blobs/sha512:{}", "0".repeat(128)),
            400,
            "DIGEST_INVALID",
        ),
        (
            format!("/v2/{repo}/manifests/sha256:{}", "X".repeat(64)),
            400,
            "DIGEST_INVALID",
        ),
        (
            format!("/v2/{repo}/manifests/no-such-tag"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/{repo}/manifests/..%2f..%2fpgoci.lock"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        ("/v2/no/such/tags/list".to_string(), 404, "NAME_UNKNOWN"),
        // A blob of another repository is not this one's.
        (
            format!("/v2/{repo}/blobs/{}", cron.layers[0].digest),
            404,
            "BLOB_UNKNOWN",
        ),
        ("/etc/passwd".to_string(), 404, "NOT_FOUND"),
    ] {
        let got = curl(&[&served.url(&path)]);
        assert_eq!(got.status, status, "{path}: {}", got.text());
        assert!(!got.text().contains("root:"), "{path}");
        let body: serde_json::Value = serde_json::from_slice(&got.body)
            .unwrap_or_else(|e| panic!("{path}: {e}: {}", got.text()));
        assert_eq!(body["errors"][0]["code"], code, "{path}: {body}");
    }

    // SIGTERM with a download in flight: it finishes, then exit 0.
    let rate = (layer.size / 2).max(1024).to_string();
    let slow = d.join("slow.blob");
    let mut download = Command::new("curl")
        .args(["-s", "-f", "--limit-rate", &rate, "-o"])
        .arg(&slow)
        .arg(&blob_url)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let status = served.terminate();
    assert!(download.wait().unwrap().success());
    assert_eq!(Digest::of_file(&slow).unwrap().0, layer.digest);
    let log = served.log_text();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("SIGTERM: stopping"), "{log}");
    assert!(
        log.contains("waiting for 1 connection(s) to finish"),
        "{log}"
    );
    assert!(log.contains("stopped serving"), "{log}");
    // One line per request at -v.
    assert!(
        log.lines().any(|l| l.contains(&format!(
            "GET /v2/{}/tags/list 200",
            repo_of(&cron.reference)
        ))),
        "{log}"
    );
    // Served in place: the tar is as it was, and nothing was written beside it.
    assert_eq!(Digest::of_file(&bundle).unwrap(), tar_before);
}

#[test]
fn a_directory_bundle_serves_its_own_blobs_and_nothing_else() {
    let bed = bed();
    let dir = scratch();
    let d = dir.path();
    let bundle = d.join("layout");
    let lock = export(&bed.profile, &bed.registry, d, &bundle);
    let locked = Lock::read(&lock).unwrap();
    let cron = &locked.extensions[0].pinned;
    let repo = repo_of(&cron.reference).to_string();
    let blobs = bundle.join("blobs/sha256");
    // A file in the layout that no manifest lists is not served.
    let stray = Digest::of_bytes(b"not listed anywhere");
    std::fs::write(blobs.join(stray.hex()), b"not listed anywhere").unwrap();
    let mut served = Served::start(&bundle, &d.join("serve.log"), &[]);
    let got = curl(&[&served.url(&format!("/v2/{repo}/blobs/{stray}"))]);
    assert_eq!(got.status, 404);
    // A layer swapped for a symlink after the start is not followed.
    let secret = d.join("secret");
    std::fs::write(&secret, b"root:outside the layout").unwrap();
    let layer = &cron.layers[0];
    std::fs::remove_file(blobs.join(layer.digest.hex())).unwrap();
    std::os::unix::fs::symlink(&secret, blobs.join(layer.digest.hex())).unwrap();
    let got = curl(&[&served.url(&format!("/v2/{repo}/blobs/{}", layer.digest))]);
    assert_eq!(got.status, 404, "{}", got.text());
    assert!(!got.text().contains("outside"));
    // The config is still served, from the directory.
    let got = curl(&[&served.url(&format!("/v2/{repo}/blobs/{}", cron.config.digest))]);
    assert_eq!(got.status, 200);
    assert_eq!(Digest::of_bytes(&got.body), cron.config.digest);
    // Ctrl-C stops it as SIGTERM does.
    assert_eq!(served.signal(rustix::process::Signal::INT).code(), Some(0));
    assert!(served.log_text().contains("SIGINT: stopping"));
    // Opened with the symlink in place: refused (exit 5), naming it.
    let out = assert_cmd::Command::cargo_bin("pgoci")
        .unwrap()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg(&bundle)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("symlink"), "{stderr}");
}

#[test]
fn tls_and_basic_auth() {
    let bed = bed();
    let dir = scratch();
    let d = dir.path();
    let bundle = d.join("site.tar");
    let lock = export(&bed.profile, &bed.registry, d, &bundle);
    // A CA and a certificate for 127.0.0.1, as tests/bed/bed.sh makes them.
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=serve CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
    ]);
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    let creds = d.join("creds");
    std::fs::write(&creds, "# the site's pullers\nsite:pw-for-the-site\n").unwrap();
    let ca = d.join("ca.pem");
    let mut served = Served::start(
        &bundle,
        &d.join("serve.log"),
        &[
            "--tls-cert",
            d.join("cert.pem").to_str().unwrap(),
            "--tls-key",
            d.join("key.pem").to_str().unwrap(),
            "--creds-file",
            creds.to_str().unwrap(),
        ],
    );
    let addr = served.addr.clone();
    assert!(served.log_text().contains(&format!("https://{addr}/v2/")));
    let base = format!("https://{addr}/v2/");
    let cacert = ca.to_str().unwrap();
    let got = curl(&["--cacert", cacert, &base]);
    assert_eq!(got.status, 401);
    assert_eq!(
        got.header("www-authenticate").as_deref(),
        Some(r#"Basic realm="pgoci""#)
    );
    assert!(got.text().contains("UNAUTHORIZED"));
    assert_eq!(
        curl(&["--cacert", cacert, "-u", "site:wrong", &base]).status,
        401
    );
    assert_eq!(
        curl(&["--cacert", cacert, "-u", "site:pw-for-the-site", &base]).status,
        200
    );
    // Plain HTTP on the TLS port gets no answer.
    assert_ne!(
        curl(&["-u", "site:pw-for-the-site", &format!("http://{addr}/v2/")]).status,
        200
    );

    // pgoci through a CA file and credentials; without them it is refused.
    let site = site_profile(d, &addr);
    let pgoci_tls = |cache: &str| {
        let mut cmd = assert_cmd::Command::cargo_bin("pgoci").unwrap();
        cmd.env_remove("PGOCI_PROFILE")
            .env_remove("PGOCI_REGISTRY_USER")
            .env_remove("PGOCI_REGISTRY_PASSWORD")
            .env("REGISTRY_AUTH_FILE", d.join("no-auth.json"))
            .env("HOME", d)
            .env("PGOCI_CACHE_DIR", d.join(cache))
            .arg("--profile")
            .arg(&site)
            .arg("--ca-file")
            .arg(&ca);
        cmd
    };
    let site_lock = d.join("site.lock");
    pgoci_tls("cache-tls")
        .args([
            "--creds",
            "site:pw-for-the-site",
            "resolve",
            "--major",
            "15",
        ])
        .args(["--ext", "pg_cron", "-o"])
        .arg(&site_lock)
        .assert()
        .success();
    assert_eq!(blob_digests(&lock), blob_digests(&site_lock));
    pgoci_tls("cache-anonymous")
        .args(["resolve", "--major", "15", "--ext", "pg_cron", "-o"])
        .arg(d.join("refused.lock"))
        .assert()
        .code(4);
    // skopeo with the CA in a cert dir and the credentials.
    let certs = d.join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let cron = &Lock::read(&lock).unwrap().extensions[0].pinned;
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--creds",
        "site:pw-for-the-site",
        "--cert-dir",
        certs.to_str().unwrap(),
        &format!("docker://{addr}/{}", repo_ref(&cron.reference)),
    ]);
    assert_eq!(Digest::of_bytes(&raw), tagged_digest(cron));
    let log = served.log_text();
    assert!(!log.contains("pw-for-the-site"), "{log}");
    assert_eq!(served.terminate().code(), Some(0));
}

/// Runs trixie's oras (fetched once by the bed), its config inside `home`.
fn oras(home: &Path, args: &[&str]) -> Vec<u8> {
    let bin = bed_sh(&["oras"]).trim().to_string();
    let out = Command::new(bin)
        .args(args)
        .env("HOME", home)
        .env("DOCKER_CONFIG", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn oras_fetches_manifests_and_discovers_referrers_of_a_served_bundle() {
    // Signed, with an SBOM oras attached as an OCI 1.1 referrer of pg_cron.
    let a = crate::republish::Attached::start("serve-attached");
    let dir = scratch();
    let d = dir.path();
    let bundle = d.join("attached.tar");
    let lock = export(&a.profile, &a.registry, d, &bundle);
    a.stop();
    let served = Served::start(&bundle, &d.join("serve.log"), &[]);
    let addr = served.addr.clone();
    let home = d.join("oras-home");
    std::fs::create_dir(&home).unwrap();
    let cron = Lock::read(&lock).unwrap().extensions[0].pinned.clone();
    let fetched = oras(
        &home,
        &[
            "manifest",
            "fetch",
            "--plain-http",
            &format!("{addr}/{}", repo_ref(&cron.reference)),
        ],
    );
    assert_eq!(Digest::of_bytes(&fetched), tagged_digest(&cron));

    // The SBOM the bundle carries beside pg_cron, found through the
    // referrers API.
    let index: serde_json::Value = serde_json::from_slice(&pgoci_index(&bundle)).unwrap();
    let sbom = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == "application/spdx+json")
        .expect("the bundle carries the SBOM")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let repo = repo_of(&cron.reference);
    let found = oras(
        &home,
        &[
            "discover",
            "--plain-http",
            "--format",
            "json",
            &format!("{addr}/{repo}@{}", cron.digest),
        ],
    );
    let found = String::from_utf8_lossy(&found);
    assert!(
        found.contains(&sbom) && found.contains("application/spdx+json"),
        "{found}"
    );
    let referrers = |query: &str| {
        let got = curl(&[&served.url(&format!("/v2/{repo}/referrers/{}{query}", cron.digest))]);
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(
            got.header("content-type").as_deref(),
            Some("application/vnd.oci.image.index.v1+json")
        );
        let doc: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        (got, doc)
    };
    let (got, doc) = referrers("?artifactType=application%2Fspdx%2Bjson");
    assert_eq!(
        got.header("oci-filters-applied").as_deref(),
        Some("artifactType")
    );
    assert_eq!(doc["manifests"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["manifests"][0]["digest"], sbom);
    let (_, doc) = referrers("?artifactType=application%2Fx-none");
    assert!(doc["manifests"].as_array().unwrap().is_empty(), "{doc}");
    // cosign's attestation travels under its tag.
    let tags = curl(&[&served.url(&format!("/v2/{repo}/tags/list"))]);
    let att = format!("sha256-{}.att", tagged_digest(&cron).hex());
    assert!(tags.text().contains(&att), "{}", tags.text());
    // Tags page with n and last.
    let page = curl(&[&served.url(&format!("/v2/{repo}/tags/list?n=1"))]);
    let doc: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
    assert_eq!(doc["tags"].as_array().unwrap().len(), 1);
    let link = page.header("link").expect("a next link");
    assert!(link.contains("rel=\"next\""), "{link}");
}

/// `index.json` of a `.tar` bundle.
fn pgoci_index(bundle: &Path) -> Vec<u8> {
    let mut archive = tar::Archive::new(std::fs::File::open(bundle).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("index.json") {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut out).unwrap();
            return out;
        }
    }
    panic!("no index.json in {}", bundle.display());
}
