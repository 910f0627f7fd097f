//! The unit pgoci writes, run by a real systemd: booted as PID 1 of a
//! private PID + mount namespace (tests/bed/systemd-ns.sh), where host paths
//! are tmpfs and the host's own units are masked. pgoci runs inside it
//! without --root, detects systemd and hands the server over to it.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Systemd {
    pid: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/systemd-ns.sh")
}

impl Systemd {
    fn boot(log: &Path) -> Self {
        // The target dir (the binary, the bundle) may lie under /tmp,
        // which is tmpfs inside: keep it visible.
        let target = Path::new(env!("CARGO_BIN_EXE_pgoci"))
            .ancestors()
            .nth(3)
            .expect("the binary lies in <target>/<triple>/<profile>/");
        let out = Command::new(script())
            .arg("boot")
            .arg(log)
            .arg(target)
            .output()
            .unwrap();
        assert_success(&out);
        Systemd {
            pid: String::from_utf8(out.stdout).unwrap().trim().to_string(),
        }
    }

    /// Runs a command inside the namespace.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(script())
            .args(["run", &self.pid])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn text(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["halt", &self.pid]).status();
    }
}

#[test]
fn systemd_runs_the_hardened_unit_pgoci_writes() {
    let bed = bed();
    // Not under /tmp: the namespace has its own /tmp.
    let dir = tempfile::Builder::new()
        .prefix("systemd-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let bundle = dir.path().join("pg18.tar");
    pgoci(&bed.profile, &bed.registry, &dir.path().join("cache"))
        .args([
            "bundle", "export", "--major", "18", "--ext", "pg_trgm", "-o",
        ])
        .arg(&bundle)
        .assert()
        .success();
    let sd = Systemd::boot(&dir.path().join("systemd.log"));
    let pgoci_bin = assert_cmd::cargo::cargo_bin("pgoci");
    let bin = pgoci_bin.to_str().unwrap();
    let port = free_port().to_string();
    let install = [
        bin,
        "--json",
        "install",
        "--yes",
        "--instance",
        "sd",
        "--port",
        &port,
        "--bundle",
        bundle.to_str().unwrap(),
    ];
    let out = sd.run(&install);
    assert_success(&out);
    let doc = json(&out);
    assert_eq!(
        doc["instance"]["service"], "systemd",
        "systemd is detected: {doc}"
    );
    assert!(
        doc["actions"].to_string().contains("pgoci-sd.service"),
        "{doc}"
    );

    assert_eq!(
        sd.text(&["systemctl", "is-active", "pgoci-sd.service"]),
        "active"
    );
    let props = sd.text(&[
        "systemctl",
        "show",
        "pgoci-sd.service",
        "-p",
        "NoNewPrivileges",
        "-p",
        "ProtectSystem",
        "-p",
        "PrivateTmp",
        "-p",
        "PrivateDevices",
        "-p",
        "ProtectHome",
        "-p",
        "User",
    ]);
    for want in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectHome=yes",
        "User=postgres",
    ] {
        assert!(props.lines().any(|l| l == want), "{want} in {props}");
    }
    let main_pid = sd.text(&[
        "systemctl",
        "show",
        "pgoci-sd.service",
        "-p",
        "MainPID",
        "--value",
    ]);
    let status = sd.text(&["cat", &format!("/proc/{main_pid}/status")]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
        "{status}"
    );
    let cmdline = sd.text(&["cat", &format!("/proc/{main_pid}/cmdline")]);
    assert!(
        cmdline.contains("/opt/pgoci/instances/sd/generations/"),
        "runs the generation's postgres: {cmdline}"
    );

    let sql = |q: &str| {
        sd.text(&[
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-X",
            "-tA",
            "-h",
            "/run/pgoci/sd",
            "-p",
            &port,
            "-d",
            "postgres",
            "-c",
            q,
        ])
    };
    sql("CREATE EXTENSION pg_trgm");
    assert_eq!(sql("SELECT similarity('abc', 'abc')"), "1");

    // The collation gate where the service starts: the data was last used
    // with another glibc (as after a host OS upgrade under the instance),
    // so the unit's ExecStartPre refuses to start the server until
    // `pgoci collation` resolves it.
    assert_success(&sd.run(&["systemctl", "stop", "pgoci-sd.service"]));
    let state = "/opt/pgoci/instances/sd/state.json";
    assert_success(&sd.run(&[
        "python3",
        "-c",
        "import json,sys; p=sys.argv[1]; d=json.load(open(p)); d['collation']['glibc']='2.31'; json.dump(d, open(p,'w'))",
        state,
    ]));
    assert_ne!(
        sd.run(&["systemctl", "start", "pgoci-sd.service"])
            .status
            .code(),
        Some(0),
        "the gate lets a server start on a changed C library"
    );
    assert_ne!(
        sd.run(&["systemctl", "is-active", "pgoci-sd.service"])
            .status
            .code(),
        Some(0)
    );
    let refused = sd.run(&[bin, "--json", "collation", "--instance", "sd", "--yes"]);
    assert_eq!(refused.status.code(), Some(6), "{refused:?}");
    let text = String::from_utf8_lossy(&refused.stdout);
    assert!(
        text.contains("2.31") && text.contains("database postgres"),
        "{text}"
    );
    let accepted = sd.run(&[
        bin,
        "--json",
        "collation",
        "--instance",
        "sd",
        "--collation-change",
        "accept",
        "--yes",
    ]);
    assert_success(&accepted);
    let started = sd.run(&["systemctl", "start", "pgoci-sd.service"]);
    if !started.status.success() {
        let journal = sd.run(&[
            "journalctl",
            "-u",
            "pgoci-sd.service",
            "--no-pager",
            "-n",
            "30",
        ]);
        panic!(
            "{}\n{}\n{}",
            String::from_utf8_lossy(&accepted.stdout),
            String::from_utf8_lossy(&journal.stdout),
            sd.text(&["cat", state])
        );
    }
    assert_eq!(
        sd.text(&["systemctl", "is-active", "pgoci-sd.service"]),
        "active"
    );

    // A restart that fails is undone to the service's state before: the
    // unit enabled and the server running, on the old settings.
    let mut bad_settings = install.to_vec();
    bad_settings.extend(["--set", "shared_buffers=lots"]);
    let out = sd.run(&bad_settings);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let active = sd.run(&["systemctl", "is-active", "pgoci-sd.service"]);
    assert!(
        active.status.success(),
        "running again: {}\nis-active: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&active.stdout),
        sd.text(&[
            "journalctl",
            "-u",
            "pgoci-sd.service",
            "--no-pager",
            "-n",
            "40"
        ])
    );
    assert_eq!(
        sd.text(&["systemctl", "is-enabled", "pgoci-sd.service"]),
        "enabled"
    );
    assert_eq!(sql("SELECT similarity('abc', 'abc')"), "1");
    assert!(!sd
        .text(&["cat", "/var/lib/pgoci/sd/data/pgoci.conf"])
        .contains("lots"));
    // A first install that fails leaves no unit, no enablement, no instance.
    let bad_port = free_port().to_string();
    let mut bad = install.to_vec();
    bad[5] = "bad";
    bad[7] = &bad_port;
    bad.extend(["--set", "shared_buffers=lots"]);
    let out = sd.run(&bad);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_ne!(
        sd.run(&["systemctl", "is-enabled", "pgoci-bad.service"])
            .status
            .code(),
        Some(0),
        "disabled again"
    );
    for gone in [
        "/etc/systemd/system/pgoci-bad.service",
        "/etc/systemd/system/multi-user.target.wants/pgoci-bad.service",
        "/opt/pgoci/instances/bad",
        "/var/lib/pgoci/bad",
    ] {
        assert!(
            !sd.run(&["test", "-e", gone]).status.success(),
            "{gone} left behind"
        );
    }

    // Idempotent under systemd too; then uninstall stops and removes the unit.
    let again = json(&sd.run(&install));
    assert_eq!(again["changed"], false, "{again}");
    let out = sd.run(&[
        bin,
        "--json",
        "uninstall",
        "--yes",
        "--instance",
        "sd",
        "--purge",
    ]);
    assert_success(&out);
    assert_ne!(
        sd.run(&["systemctl", "is-active", "pgoci-sd.service"])
            .status
            .code(),
        Some(0)
    );
    assert!(!sd
        .run(&["test", "-e", "/etc/systemd/system/pgoci-sd.service"])
        .status
        .success());
}
