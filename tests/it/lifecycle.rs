//! An instance's life on PostgreSQL 18: extensions outside the server tree
//! through extension_control_path, upgrade with data kept, a failed upgrade
//! switched back, rollback, verify, gc, uninstall; and crash-safety.

use crate::support::*;
use std::path::{Path, PathBuf};

/// A copy of the bed profile whose 18 points at another tag.
fn profile_with_18(dir: &Path, tag: &str) -> PathBuf {
    let bed = bed();
    let text = std::fs::read_to_string(&bed.profile).unwrap();
    let path = dir.join(format!("profile-{tag}.yaml"));
    std::fs::write(
        &path,
        text.replace("postgresql:18\"", &format!("postgresql:{tag}\"")),
    )
    .unwrap();
    path
}

struct Instance {
    root: PathBuf,
    cache: PathBuf,
    name: String,
    port: u16,
}

impl Instance {
    /// An instance under `root`, with the cache in `dir/cache` and a free port.
    fn new(root: PathBuf, dir: &Path, name: &str) -> Self {
        Instance {
            root,
            cache: dir.join("cache"),
            name: name.into(),
            port: free_port(),
        }
    }

    fn pgoci(&self, profile: &Path) -> assert_cmd::Command {
        let mut cmd = pgoci(profile, &bed().registry, &self.cache);
        cmd.arg("--json").arg("--root").arg(&self.root);
        cmd
    }
    fn socket(&self) -> PathBuf {
        self.root.join("run/pgoci").join(&self.name)
    }
    fn data(&self) -> PathBuf {
        self.root
            .join("var/lib/pgoci")
            .join(&self.name)
            .join("data")
    }
    fn sql(&self, q: &str) -> String {
        psql(&self.socket(), self.port, q).unwrap_or_else(|e| panic!("{q}: {e}"))
    }
    fn run(&self, profile: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let out = self.pgoci(profile).args(args).output().unwrap();
        (out.status.code(), json(&out))
    }
}

/// Upgrade of instance `main` to whatever 18 the profile names, same extensions.
const UPGRADE_MAIN: [&str; 6] = [
    "upgrade",
    "--yes",
    "--instance",
    "main",
    "--ext",
    "pg_stat_statements,pg_trgm",
];

#[test]
fn pg18_lifecycle_upgrade_failed_upgrade_rollback_verify_gc_uninstall() {
    let bed = bed();
    let dir = scratch();
    let i = Instance::new(dir.path().join("root"), dir.path(), "main");
    let port = i.port.to_string();
    let _servers = Servers::of(&i.root, "main");
    let install = [
        "install",
        "--yes",
        "--major",
        "18",
        "--ext",
        "pg_stat_statements,pg_trgm",
        "--instance",
        "main",
        "--port",
        &port,
    ];
    let (code, doc) = i.run(&bed.profile, &install);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["instance"]["version"], "18.3");

    // Extensions stay in the generation's extensions/ and are found through the settings.
    let gen = std::fs::canonicalize(i.root.join("opt/pgoci/instances/main/current")).unwrap();
    assert!(gen
        .join("extensions/pg_trgm/share/extension/pg_trgm.control")
        .is_file());
    assert!(!gen
        .join("share/postgresql/extension/pg_trgm.control")
        .exists());
    let conf = std::fs::read_to_string(i.data().join("pgoci.conf")).unwrap();
    assert!(conf.contains(&format!(
        "extension_control_path = '$system:{g}/extensions/pg_stat_statements/share:{g}/extensions/pg_trgm/share'",
        g = gen.display()
    )), "{conf}");
    assert!(
        conf.contains("shared_preload_libraries = 'pg_stat_statements'"),
        "{conf}"
    );
    i.sql("CREATE EXTENSION pg_stat_statements");
    i.sql("CREATE EXTENSION pg_trgm");
    assert_eq!(i.sql("SELECT similarity('word', 'word')"), "1");
    assert!(
        i.sql("SELECT count(*) FROM pg_stat_statements")
            .parse::<u64>()
            .unwrap()
            > 0
    );
    i.sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before upgrade')");

    // Idempotent: the same install again changes nothing.
    let (_, again) = i.run(&bed.profile, &install);
    assert_eq!(again["changed"], false, "{again}");

    // Upgrade to 18.4 with the same extensions: data survives.
    let p184 = profile_with_18(dir.path(), "18.4");
    let (code, doc) = i.run(&p184, &UPGRADE_MAIN);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["instance"]["version"], "18.4");
    assert!(i.sql("SELECT version()").contains("18.4"));
    assert_eq!(i.sql("SELECT v FROM kept"), "before upgrade");
    let (_, again) = i.run(&p184, &UPGRADE_MAIN);
    assert_eq!(again["changed"], false, "{again}");

    // A server that does not come up is switched back: exit 7, 18.4 serving again.
    let broken = profile_with_18(dir.path(), "18-broken");
    let (code, doc) = i.run(&broken, &UPGRADE_MAIN);
    assert_eq!(code, Some(7), "{doc}");
    assert_eq!(doc["error"]["kind"], "service");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("back on generation"),
        "{doc}"
    );
    assert!(i.sql("SELECT version()").contains("18.4"));
    assert_eq!(i.sql("SELECT v FROM kept"), "before upgrade");

    // A major change is refused with a pointer to pg_upgrade.
    let lock17 = dir.path().join("17.lock");
    pgoci(&bed.profile, &bed.registry, &i.cache)
        .args(["resolve", "--major", "17", "-o"])
        .arg(&lock17)
        .assert()
        .success();
    let (code, doc) = i.run(
        &bed.profile,
        &[
            "upgrade",
            "--yes",
            "--instance",
            "main",
            "--lock",
            lock17.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(6), "{doc}");
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("pg_upgrade"));

    // rollback --check: the plan (back to 18.3's generation), host unchanged.
    let before = crate::json::host_hash(&i.root);
    let (code, doc) = i.run(&bed.profile, &["rollback", "--check", "--instance", "main"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(
        (&doc["check"], &doc["changed"]),
        (&true.into(), &true.into()),
        "{doc}"
    );
    assert!(doc["actions"].to_string().contains("switch"), "{doc}");
    assert_eq!(
        crate::json::host_hash(&i.root),
        before,
        "rollback --check wrote"
    );
    assert!(i.sql("SELECT version()").contains("18.4"));

    // Rollback to 18.3.
    let (code, doc) = i.run(&bed.profile, &["rollback", "--yes", "--instance", "main"]);
    assert_eq!(code, Some(0), "{doc}");
    assert!(i.sql("SELECT version()").contains("18.3"));
    assert_eq!(i.sql("SELECT v FROM kept"), "before upgrade");

    // status --verify: clean, then drift is reported (exit 5) naming the file.
    let (code, doc) = i.run(&bed.profile, &["status", "--verify"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(
        doc["instances"][0]["verify"]["modified"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let gen = std::fs::canonicalize(i.root.join("opt/pgoci/instances/main/current")).unwrap();
    let victim = gen.join("extensions/pg_trgm/share/extension/pg_trgm.control");
    let text = std::fs::read_to_string(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap(); // a new inode: the store stays intact
    std::fs::write(&victim, format!("{text}# tampered\n")).unwrap();
    let (code, doc) = i.run(&bed.profile, &["status", "--verify"]);
    assert_eq!(code, Some(5), "{doc}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pg_trgm.control"),
        "{doc}"
    );

    // Uninstall keeps the data; gc then frees the store and cache.
    let (code, doc) = i.run(&bed.profile, &["uninstall", "--instance", "main"]);
    assert_eq!(code, Some(0), "{doc}");
    assert!(
        i.data().join("PG_VERSION").is_file(),
        "data is kept without --purge"
    );
    assert!(!i.root.join("opt/pgoci/instances/main").exists());
    assert!(!i
        .root
        .join("etc/systemd/system/pgoci-main.service")
        .exists());
    let (code, doc) = i.run(&bed.profile, &["gc", "--yes"]);
    assert_eq!(code, Some(0), "{doc}");
    assert!(doc["bytes_freed"].as_u64().unwrap() > 10_000_000, "{doc}");
    assert!(doc["store_entries"].as_u64().unwrap() >= 3, "{doc}");
    let (_, doc) = i.run(&bed.profile, &["gc"]);
    assert_eq!(doc["changed"], false, "gc twice: nothing left to free");
}

#[test]
fn extension_system_libraries_and_environment_reach_the_server() {
    let bed = bed();
    let dir = scratch();
    // pg_cron for 15 plus a layer with system/ libraries, and a profile that
    // declares them and an environment variable rooted in the image.
    let env = std::fs::read_to_string(bed.state_dir.join("env")).unwrap();
    let lock_tag = env
        .lines()
        .find_map(|l| l.strip_prefix("PG_CRON_VERSION="))
        .unwrap()
        .to_string();
    let out = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/syslib.py"))
        .args([&bed.registry, "pgoci/pg_cron", &format!("{lock_tag}-15")])
        .output()
        .unwrap();
    assert_success(&out);
    let profile = dir.path().join("syslib.yaml");
    let text = std::fs::read_to_string(&bed.profile)
        .unwrap()
        .replace("pg_cron:{version}-{major}\"", "pg_cron:{version}-{major}-syslib\"")
        .replace(
            "    preload: pg_cron\n",
            "    preload: pg_cron\n    ld_library_path: [system]\n    env: {PGOCI_TEST_DATA: \"${image_root}/share/extension\"}\n",
        );
    std::fs::write(&profile, text).unwrap();
    let i = Instance::new(dir.path().join("root"), dir.path(), "sys");
    let _servers = Servers::of(&i.root, "sys");
    let (code, doc) = i.run(
        &profile,
        &[
            "install",
            "--yes",
            "--major",
            "15",
            "--ext",
            "pg_cron",
            "--instance",
            "sys",
            "--port",
            &i.port.to_string(),
        ],
    );
    assert_eq!(code, Some(0), "{doc}");
    i.sql("CREATE EXTENSION pg_cron");

    let gen = std::fs::canonicalize(i.root.join("opt/pgoci/instances/sys/current")).unwrap();
    let deps = gen.join("lib/pgoci-deps");
    assert!(deps.join("libpgocitest.so.1").is_file());
    assert_eq!(
        std::fs::read_link(deps.join("libpgocitest.so")).unwrap(),
        Path::new("libpgocitest.so.1")
    );
    let data_var = format!(
        "PGOCI_TEST_DATA={}/extensions/pg_cron/share/extension",
        gen.display()
    );
    assert!(Path::new(data_var.split_once('=').unwrap().1)
        .join("pg_cron.control")
        .is_file());
    // With --service none nothing is written under /etc/systemd.
    assert!(!i.root.join("etc/systemd").exists());
    // The unit a systemd host would get carries both, quoted.
    let (code, doc) = i.run(
        &profile,
        &[
            "install",
            "--yes",
            "--major",
            "15",
            "--ext",
            "pg_cron",
            "--instance",
            "sysd",
            "--service",
            "systemd",
            "--no-start",
            "--port",
            &free_port().to_string(),
        ],
    );
    assert_eq!(code, Some(0), "{doc}");
    let gen_sd = std::fs::canonicalize(i.root.join("opt/pgoci/instances/sysd/current")).unwrap();
    let unit =
        std::fs::read_to_string(i.root.join("etc/systemd/system/pgoci-sysd.service")).unwrap();
    assert!(
        unit.contains(&format!(
            "Environment=\"LD_LIBRARY_PATH={}\"\n",
            gen_sd.join("lib/pgoci-deps").display()
        )),
        "{unit}"
    );
    let data_var_sd = data_var.replace(&gen.display().to_string(), &gen_sd.display().to_string());
    assert!(
        unit.contains(&format!("Environment=\"{data_var_sd}\"\n")),
        "{unit}"
    );
    // The running postmaster got both.
    let pid = std::fs::read_to_string(i.data().join("postmaster.pid")).unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", pid.lines().next().unwrap())).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ
            .split('\0')
            .any(|e| e == format!("LD_LIBRARY_PATH={}", deps.display())),
        "{environ}"
    );
    assert!(environ.split('\0').any(|e| e == data_var), "{environ}");
}

/// The install command line of an instance from the shared registry.
fn install_args(i: &Instance) -> Vec<String> {
    [
        "install",
        "--yes",
        "--major",
        "18",
        "--ext",
        "pg_trgm",
        "--instance",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([i.name.clone(), "--port".into(), i.port.to_string()])
    .collect()
}

// Crash points exist only in a build with `--features failpoints`
// (scripts/test.sh builds it); plain `cargo test` leaves the table out.
#[cfg(feature = "failpoints")]
mod crash_table {
    use super::*;

    /// Every crash point of every lifecycle command, as `PGOCI_CRASH_AT`
    /// names them (src/failpoint.rs). The major upgrade's own table, which
    /// needs two majors and pg_upgrade, is tests/upgrade.sh.
    const CRASH_TABLE: [(&str, &[&str]); 5] = [
        (
            "install",
            &[
                "after-layers",
                "after-unpack",
                "after-compose",
                "after-initdb",
                "before-switch",
                "after-switch",
            ],
        ),
        (
            "upgrade",
            &[
                "after-layers",
                "after-unpack",
                "after-compose",
                "before-switch",
                "after-switch",
            ],
        ),
        ("rollback", &["after-switch"]),
        (
            "uninstall",
            &[
                "uninstall-after-stop",
                "uninstall-after-purge",
                "uninstall-after-remove",
            ],
        ),
        ("gc", &["gc-after-rename"]),
    ];

    /// The test table's rows, and the query whose result must never change.
    const TABLE_ROWS: &str =
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g";
    const CHECKSUM: &str = "SELECT md5(string_agg(id::text || ':' || v, ',' ORDER BY id)) FROM t";

    /// An instance as the kill left it: what its state records (current
    /// generation and generations), and the test table's checksum read from
    /// its server — the running one, or else the recorded one started by hand
    /// (it must start), `None` without data or table.
    #[derive(Debug, PartialEq)]
    struct Seen {
        state: Option<(String, Vec<String>)>,
        checksum: Option<String>,
    }

    impl Instance {
        fn seen(&self, dir: &Path, what: &str) -> Seen {
            let path = self
                .root
                .join("opt/pgoci/instances")
                .join(&self.name)
                .join("state.json");
            let Ok(text) = std::fs::read_to_string(&path) else {
                return Seen {
                    state: None,
                    checksum: None,
                };
            };
            let st: serde_json::Value = serde_json::from_str(&text).unwrap();
            let current = st["current"].as_str().unwrap().to_string();
            let gens = st["generations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["name"].as_str().unwrap().to_string())
                .collect();
            let state = Some((current.clone(), gens));
            if !self.data().join("PG_VERSION").exists() {
                return Seen {
                    state,
                    checksum: None,
                };
            }
            let query = |socket: &Path, port: u16| -> Option<String> {
                match psql(socket, port, "SELECT to_regclass('public.t') IS NOT NULL").as_deref() {
                    Ok("t") => Some(psql(socket, port, CHECKSUM).unwrap()),
                    Ok(_) => None,
                    Err(e) => panic!("{what}: the server answers no query: {e}"),
                }
            };
            if psql(&self.socket(), self.port, "SELECT 1").is_ok() {
                return Seen {
                    state,
                    checksum: query(&self.socket(), self.port),
                };
            }
            // Not running: the server the state names must start on the data.
            let gen = st["generations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["name"] == current.as_str())
                .unwrap();
            let bin = self
                .root
                .join("opt/pgoci/instances")
                .join(&self.name)
                .join("generations")
                .join(&current)
                .join(gen["dirs"]["bin"].as_str().unwrap());
            let sock = dir.join(format!("sock-{}", self.port));
            std::fs::create_dir_all(&sock).unwrap();
            std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                .unwrap();
            let pg_ctl = |args: &[&str]| {
                std::process::Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(bin.join("pg_ctl"))
                    .args(args)
                    .arg("-D")
                    .arg(self.data())
                    .output()
                    .unwrap()
            };
            let options = format!(
                "-p {} -k {} -c listen_addresses=''",
                self.port,
                sock.display()
            );
            let log = sock.join("log");
            let out = pg_ctl(&["start", "-w", "-l", log.to_str().unwrap(), "-o", &options]);
            assert!(
                out.status.success(),
                "{what}: the server of generation {current} does not start: {}{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            let checksum = query(&sock, self.port);
            assert_success(&pg_ctl(&["stop", "-w", "-m", "fast"]));
            Seen { state, checksum }
        }
    }

    /// One cell of the table: `args` killed at `point`, then run again. The
    /// instance the kill left is the one before or the one after, its server
    /// starts, the table is intact, and the re-run converges.
    fn crash_cell(i: &Instance, dir: &Path, profile: &Path, args: &[&str], point: &str) {
        let what = format!("{} killed at {point}", args[0]);
        let before = i.seen(dir, &format!("{what}, before"));
        let out = i
            .pgoci(profile)
            .env("PGOCI_CRASH_AT", point)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
        out.status.code(),
        None,
        "{what}: killed by a signal (built without --features failpoints, or the point is not reached?) {}",
        String::from_utf8_lossy(&out.stderr)
    );
        let killed = i.seen(dir, &what);
        let (code, doc) = i.run(profile, args);
        assert_eq!(code, Some(0), "{what}, run again: {doc}");
        let after = i.seen(dir, &format!("{what}, run again"));
        eprintln!("{what}:\n  before {before:?}\n  killed {killed:?}\n  after  {after:?}");
        assert!(
        killed.state == before.state || killed.state == after.state,
        "{what}: neither before nor after:\nbefore {before:?}\nkilled {killed:?}\nafter  {after:?}"
    );
        let purged = args.contains(&"--purge");
        if let Some(sum) = &before.checksum {
            // --purge drops the data (as asked) only once the server stopped.
            if !(purged && killed.checksum.is_none()) {
                assert_eq!(killed.checksum.as_ref(), Some(sum), "{what}: data changed");
            }
            if !purged {
                assert_eq!(after.checksum.as_ref(), Some(sum), "{what}, run again");
            }
        }
        // Converged: a third run has nothing left to do (a rollback would go
        // on to another generation, an uninstall has no instance left).
        if !matches!(args[0], "rollback" | "uninstall") {
            let (code, doc) = i.run(profile, args);
            assert_eq!(
                (code, &doc["changed"]),
                (Some(0), &false.into()),
                "{what}, a third run: {doc}"
            );
        }
        // No temp dirs are left behind.
        let leftovers: Vec<_> = tree(&i.root)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .collect();
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
    }

    #[test]
    fn every_command_killed_at_every_step_leaves_the_instance_before_or_after() {
        let bed = bed();
        let dir = scratch();
        let p184 = profile_with_18(dir.path(), "18.4");
        let points = |command: &str| CRASH_TABLE.iter().find(|r| r.0 == command).unwrap().1;
        let mut covered = Vec::new();
        // One root per install crash point; on each, the upgrade crash point
        // of the same row, then one of the other commands.
        for (n, point) in points("install").iter().enumerate() {
            let i = Instance::new(dir.path().join(format!("root{n}")), dir.path(), "crash");
            let _servers = Servers::of(&i.root, "crash");
            let install = install_args(&i);
            let install: Vec<&str> = install.iter().map(String::as_str).collect();
            crash_cell(&i, dir.path(), &bed.profile, &install, point);
            covered.push(("install", *point));
            assert!(i.sql("SELECT version()").contains("18.3"));
            i.sql("CREATE EXTENSION pg_trgm");
            i.sql(TABLE_ROWS);

            let upgrade = [
                "upgrade",
                "--yes",
                "--instance",
                "crash",
                "--ext",
                "pg_trgm",
            ];
            if let Some(point) = points("upgrade").get(n) {
                crash_cell(&i, dir.path(), &p184, &upgrade, point);
                covered.push(("upgrade", *point));
                assert!(i.sql("SELECT version()").contains("18.4"), "{point}");
            }
            match n {
                0 => {
                    let rollback = ["rollback", "--yes", "--instance", "crash"];
                    for point in points("rollback") {
                        crash_cell(&i, dir.path(), &bed.profile, &rollback, point);
                        covered.push(("rollback", *point));
                        assert!(i.sql("SELECT version()").contains("18.3"), "rolled back");
                    }
                    let (code, doc) = i.run(&bed.profile, &["status", "--verify"]);
                    assert_eq!(code, Some(0), "{doc}");
                }
                1 | 2 | 4 => {
                    let point = points("uninstall")[n.min(3) - 1];
                    let uninstall = ["uninstall", "--yes", "--purge", "--instance", "crash"];
                    crash_cell(&i, dir.path(), &bed.profile, &uninstall, point);
                    covered.push(("uninstall", point));
                    assert!(!i.data().exists(), "--purge removes a data dir pgoci made");
                    assert!(!i.root.join("opt/pgoci/instances/crash").exists());
                }
                3 => {
                    // Garbage beside a running instance: the store entry of an
                    // extension only an uninstalled instance used.
                    let g = Instance::new(i.root.clone(), dir.path(), "g");
                    let _g_server = Servers::of(&g.root, "g");
                    let port = g.port.to_string();
                    let (code, doc) = g.run(
                        &bed.profile,
                        &[
                            "install",
                            "--yes",
                            "--major",
                            "18",
                            "--ext",
                            "pg_stat_statements",
                            "--instance",
                            "g",
                            "--port",
                            &port,
                        ],
                    );
                    assert_eq!(code, Some(0), "{doc}");
                    let (code, doc) = g.run(
                        &bed.profile,
                        &["uninstall", "--yes", "--purge", "--instance", "g"],
                    );
                    assert_eq!(code, Some(0), "{doc}");
                    for point in points("gc") {
                        crash_cell(&i, dir.path(), &bed.profile, &["gc", "--yes"], point);
                        covered.push(("gc", *point));
                    }
                    assert!(i.sql("SELECT version()").contains("18.4"));
                    let (code, doc) = i.run(&bed.profile, &["status", "--verify"]);
                    assert_eq!(code, Some(0), "gc kept what the instance uses: {doc}");
                }
                _ => {}
            }
        }
        let mut every: Vec<(&str, &str)> = CRASH_TABLE
            .iter()
            .flat_map(|(c, ps)| ps.iter().map(move |p| (*c, *p)))
            .collect();
        every.sort();
        covered.sort();
        assert_eq!(covered, every, "every command at every crash point");
    }
}

#[test]
fn installs_sharing_artifacts_and_gc_run_side_by_side() {
    let bed = bed();
    let dir = scratch();
    let root = dir.path().join("root");
    let instances: Vec<Instance> = ["a", "b", "c"]
        .iter()
        .map(|n| Instance::new(root.clone(), dir.path(), n))
        .collect();
    let _servers: Vec<Servers> = instances
        .iter()
        .map(|i| Servers::of(&root, &i.name))
        .collect();
    // Two installs of the same artifacts at once, and a gc racing a third.
    let spawn = |i: &Instance, args: &[String]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pgoci"))
            .env_remove("PGOCI_PROFILE")
            .env("PGOCI_CACHE_DIR", &i.cache)
            .arg("--profile")
            .arg(&bed.profile)
            .arg("--insecure-registry")
            .arg(&bed.registry)
            .arg("--json")
            .arg("--root")
            .arg(&i.root)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(&instances[0], &install_args(&instances[0]));
    let b = spawn(&instances[1], &install_args(&instances[1]));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", json(&out));
    }
    let c = spawn(&instances[2], &install_args(&instances[2]));
    let gc = spawn(&instances[2], &["gc".into(), "--yes".into()]);
    for child in [c, gc] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", json(&out));
    }
    for i in &instances {
        assert_eq!(i.sql("SELECT 1"), "1", "instance {}", i.name);
    }
    let (code, doc) = instances[0].run(&bed.profile, &["status", "--verify"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(doc["instances"].as_array().unwrap().len(), 3);
}
