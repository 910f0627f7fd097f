//! The test bed as the tests see it: one loopback registry with the
//! fixtures pushed (started once per test run by `tests/bed/bed.sh`), temp
//! roots for installs, and helpers to run pgoci and psql.

use assert_cmd::Command;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The shared registry and its profile.
pub struct Bed {
    pub state_dir: PathBuf,
    pub registry: String,
    pub profile: PathBuf,
}

fn bed_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/bed.sh")
}

/// Runs bed.sh with arguments, returning stdout; panics with its stderr.
pub fn bed_sh(args: &[&str]) -> String {
    let out = std::process::Command::new("bash")
        .arg(bed_script())
        .args(args)
        .output()
        .expect("run bed.sh");
    assert!(
        out.status.success(),
        "bed.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn registry_from(stdout: &str) -> String {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("REGISTRY="))
        .expect("bed.sh prints REGISTRY=")
        .trim()
        .to_string()
}

/// The shared bed, prepared and started on first use.
pub fn bed() -> &'static Bed {
    static BED: OnceLock<Bed> = OnceLock::new();
    BED.get_or_init(|| {
        let state_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bed-shared");
        bed_sh(&["prepare"]);
        let registry = registry_from(&bed_sh(&["up", state_dir.to_str().unwrap()]));
        Bed {
            profile: state_dir.join("profile.yaml"),
            state_dir,
            registry,
        }
    })
}

/// A second registry serving a copy of the shared one's content, which a
/// test may stop (to prove it works offline) without disturbing others.
pub struct OwnRegistry {
    pub state_dir: PathBuf,
    pub registry: String,
    pub profile: PathBuf,
}

impl OwnRegistry {
    /// A plain-HTTP copy of the shared registry.
    pub fn clone_of(bed: &Bed, name: &str) -> Self {
        Self::start("clone", bed, name)
    }

    /// A copy that speaks TLS (CA in `ca_file()`) and wants basic auth
    /// (`pgoci` / `pgoci-secret-pw`).
    pub fn secure_of(bed: &Bed, name: &str) -> Self {
        Self::start("secure", bed, name)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.state_dir.join("ca.pem")
    }

    fn start(how: &str, bed: &Bed, name: &str) -> Self {
        let state_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bed-{name}"));
        let registry = registry_from(&bed_sh(&[
            how,
            bed.state_dir.to_str().unwrap(),
            state_dir.to_str().unwrap(),
        ]));
        OwnRegistry {
            profile: state_dir.join("profile.yaml"),
            state_dir,
            registry,
        }
    }

    pub fn stop(&self) {
        bed_sh(&["down", self.state_dir.to_str().unwrap()]);
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(bed_script())
            .args(["down", self.state_dir.to_str().unwrap()])
            .output();
    }
}

/// A scratch directory the service user can traverse (installs need that).
pub fn scratch() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pgoci-it-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `pgoci` with the bed's profile, a given cache, and plain HTTP for the registry.
pub fn pgoci(profile: &Path, registry: &str, cache: &Path) -> Command {
    let mut cmd = Command::cargo_bin("pgoci").unwrap();
    cmd.env_remove("PGOCI_PROFILE")
        .env("PGOCI_CACHE_DIR", cache)
        .arg("--profile")
        .arg(profile)
        .arg("--insecure-registry")
        .arg(registry);
    cmd
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs SQL through the host's psql as the postgres user, over the socket.
pub fn psql(socket_dir: &Path, port: u16, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            "psql",
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .arg("-h")
        .arg(socket_dir)
        .arg("-p")
        .arg(port.to_string())
        .args(["-d", "postgres", "-c", sql])
        .output()
        .expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// Parses a `--json` stdout.
pub fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Stops every server started under an install root (test cleanup).
pub struct Servers(pub Vec<(PathBuf, PathBuf)>); // (bin dir, data dir)

impl Servers {
    /// The server of `instance` installed under the root `root`.
    pub fn of(root: &Path, instance: &str) -> Self {
        Servers(vec![instance_server(root, instance)])
    }
}

/// (bin dir, data dir) of an instance under an install root, default layout.
pub fn instance_server(root: &Path, instance: &str) -> (PathBuf, PathBuf) {
    (
        root.join("opt/pgoci/instances")
            .join(instance)
            .join("current/bin"),
        root.join("var/lib/pgoci").join(instance).join("data"),
    )
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (bin, data) in &self.0 {
            let _ = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin.join("pg_ctl"))
                .args(["stop", "-m", "immediate", "-D"])
                .arg(data)
                .output();
        }
    }
}

/// Every entry under a directory, recursively (to check nothing was written).
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(tree(&e.path()));
            }
        }
    }
    out.sort();
    out
}

/// A command's stderr, as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails the test with the command's stderr unless it succeeded.
#[track_caller]
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real bundle (the bed's PostgreSQL 15 + pg_cron) in `dir/bundle`
/// and its lock.
pub fn real_bundle(dir: &Path) -> (PathBuf, pgoci::lock::Lock) {
    let bed = bed();
    let bundle = dir.join("bundle");
    pgoci(&bed.profile, &bed.registry, &dir.join("cache"))
        .args([
            "bundle", "export", "--major", "15", "--ext", "pg_cron", "-o",
        ])
        .arg(&bundle)
        .assert()
        .success();
    let lock = pgoci::bundle::Bundle::open(&bundle).unwrap().lock;
    (bundle, lock)
}

/// `install --yes --instance NAME --port PORT --root ROOT --bundle BUNDLE`
/// with `cmd` (pgoci and its global flags), run to its output.
pub fn install_from_bundle(
    mut cmd: Command,
    instance: &str,
    port: u16,
    root: &Path,
    bundle: &Path,
) -> std::process::Output {
    cmd.args(["install", "--yes", "--instance", instance, "--port"])
        .arg(port.to_string())
        .arg("--root")
        .arg(root)
        .arg("--bundle")
        .arg(bundle)
        .output()
        .unwrap()
}

/// An install of `lock` from `bundle` onto `root` that starts nothing
/// (instance `h`, no service), with `extra` flags: how the hostile-input
/// tests offer their forged bundles.
pub fn install_hostile(
    dir: &Path,
    bundle: &Path,
    lock: &Path,
    root: &Path,
    extra: &[&str],
) -> std::process::Output {
    let bed = bed();
    pgoci(&bed.profile, &bed.registry, &dir.join("cache"))
        .args(["install", "--yes", "--no-start", "--service", "none"])
        .args(["--instance", "h", "--port", &free_port().to_string()])
        .args(extra)
        .arg("--bundle")
        .arg(bundle)
        .arg("--lock")
        .arg(lock)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap()
}

/// Adds `bytes` as a last layer of the server (`ext: false`) or of the
/// first extension (pg_cron in [`real_bundle`]): the blob goes into the
/// bundle's layout, the changed lock to `dir/<name>.lock`, which is returned.
pub fn lock_with_layer(
    dir: &Path,
    bundle: &Path,
    lock: &pgoci::lock::Lock,
    ext: bool,
    name: &str,
    bytes: &[u8],
) -> PathBuf {
    let digest = pgoci::digest::Digest::of_bytes(bytes);
    std::fs::write(bundle.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
    let mut lock = lock.clone();
    let pinned = match ext {
        true => &mut lock.extensions[0].pinned,
        false => &mut lock.server.pinned,
    };
    pinned.layers.push(pgoci::lock::Blob {
        digest,
        size: bytes.len() as u64,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
    });
    let path = dir.join(format!("{name}.lock"));
    std::fs::write(&path, lock.to_yaml().unwrap()).unwrap();
    path
}
