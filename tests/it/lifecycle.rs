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
            .contains("switched back"),
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
fn killed_installs_and_upgrades_complete_when_run_again() {
    let bed = bed();
    let dir = scratch();
    let p184 = profile_with_18(dir.path(), "18.4");
    for (n, point) in [
        "after-unpack",
        "after-compose",
        "before-switch",
        "after-switch",
    ]
    .iter()
    .enumerate()
    {
        let i = Instance::new(dir.path().join(format!("root{n}")), dir.path(), "crash");
        let port = i.port.to_string();
        let _servers = Servers::of(&i.root, "crash");
        let install = [
            "install",
            "--yes",
            "--major",
            "18",
            "--ext",
            "pg_trgm",
            "--instance",
            "crash",
            "--port",
            &port,
        ];
        // Killed install, then a re-run completes it.
        let out = i
            .pgoci(&bed.profile)
            .env("PGOCI_CRASH_AT", point)
            .args(install)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), None, "{point}: killed by a signal");
        let (code, doc) = i.run(&bed.profile, &install);
        assert_eq!(code, Some(0), "{point}: {doc}");
        assert_eq!(i.sql("SELECT 1"), "1");
        i.sql("CREATE EXTENSION pg_trgm");
        // Killed upgrade, then a re-run completes it and the server moved over.
        let upgrade = [
            "upgrade",
            "--yes",
            "--instance",
            "crash",
            "--ext",
            "pg_trgm",
        ];
        let out = i
            .pgoci(&p184)
            .env("PGOCI_CRASH_AT", point)
            .args(upgrade)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), None, "{point}: killed by a signal");
        let (code, doc) = i.run(&p184, &upgrade);
        assert_eq!(code, Some(0), "{point}: {doc}");
        assert!(i.sql("SELECT version()").contains("18.4"), "{point}");
        let (_, again) = i.run(&p184, &upgrade);
        assert_eq!(again["changed"], false, "{point}: {again}");
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
        assert!(leftovers.is_empty(), "{point}: {leftovers:?}");
        let (code, _) = i.run(
            &bed.profile,
            &["uninstall", "--yes", "--instance", "crash", "--purge"],
        );
        assert_eq!(code, Some(0));
        assert!(
            !i.data().exists(),
            "--purge removes a data dir pgoci created"
        );
    }
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

#[test]
fn killed_rollback_uninstall_and_gc_complete_when_run_again() {
    let bed = bed();
    let dir = scratch();
    let p184 = profile_with_18(dir.path(), "18.4");
    let i = Instance::new(dir.path().join("root"), dir.path(), "k");
    let _servers = Servers::of(&i.root, "k");
    let args = install_args(&i);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, doc) = i.run(&bed.profile, &args);
    assert_eq!(code, Some(0), "{doc}");
    let upgrade = ["upgrade", "--yes", "--instance", "k", "--ext", "pg_trgm"];
    let (code, doc) = i.run(&p184, &upgrade);
    assert_eq!(code, Some(0), "{doc}");
    assert!(i.sql("SELECT version()").contains("18.4"));

    // A rollback killed after its switch: the re-run finishes it.
    let rollback = ["rollback", "--yes", "--instance", "k"];
    let killed = |profile: &Path, point: &str, args: &[&str]| {
        let out = i
            .pgoci(profile)
            .env("PGOCI_CRASH_AT", point)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            None,
            "{point}: killed by a signal (built without --features failpoints?) {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    killed(&bed.profile, "after-switch", &rollback);
    let (code, doc) = i.run(&bed.profile, &rollback);
    assert_eq!(code, Some(0), "{doc}");
    assert!(i.sql("SELECT version()").contains("18.3"), "rolled back");
    let (code, doc) = i.run(&bed.profile, &["status", "--verify"]);
    assert_eq!(code, Some(0), "{doc}");

    // An uninstall killed after the stop, and one killed after the purge:
    // each re-run finishes, and the data is gone only once asked for.
    let uninstall = ["uninstall", "--yes", "--purge", "--instance", "k"];
    killed(&bed.profile, "uninstall-after-stop", &uninstall);
    assert!(i.data().join("PG_VERSION").exists());
    killed(&bed.profile, "uninstall-after-purge", &uninstall);
    assert!(!i.data().exists());
    let (code, doc) = i.run(&bed.profile, &uninstall);
    assert_eq!((code, &doc["changed"]), (Some(0), &true.into()), "{doc}");
    assert!(!i.root.join("opt/pgoci/instances/k").exists());

    // A gc killed after moving its first store entry aside: the re-run
    // frees the rest and no half entry is left that looks whole.
    killed(&bed.profile, "gc-after-rename", &["gc", "--yes"]);
    let (code, doc) = i.run(&bed.profile, &["gc", "--yes"]);
    assert_eq!(code, Some(0), "{doc}");
    let store: Vec<_> = std::fs::read_dir(i.root.join("opt/pgoci/store"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(store.is_empty(), "store after gc: {store:?}");
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
