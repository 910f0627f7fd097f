//! Extension updates on an upgrade: the plan lists each database ×
//! extension whose installed version differs from the new files' default,
//! refuses (exit 6, before the switch) when no chain of update scripts
//! reaches it, and runs `ALTER EXTENSION … UPDATE` with
//! `--update-extensions` — on real PostgreSQL 17 with hstore's own scripts.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// hstore 1.8-17 copies with another control file: `-nopath` (default
/// 9.9: no script reaches it) and `-repack` (default 1.8, a new digest).
fn control_variants() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let bed = bed();
        for (suffix, version) in [("nopath", "9.9"), ("repack", "1.8")] {
            let out = std::process::Command::new("python3")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bed/ext_control.py"))
                .args([
                    &bed.registry,
                    "pgoci/hstore",
                    "1.8-17",
                    suffix,
                    "hstore",
                    version,
                ])
                .output()
                .unwrap();
            assert_success(&out);
        }
    });
}

/// The bed profile with hstore's tag suffixed, resolved to a lock.
fn lock_with_hstore(dir: &Path, cache: &Path, suffix: Option<&str>) -> PathBuf {
    let bed = bed();
    let text = std::fs::read_to_string(&bed.profile).unwrap();
    let name = suffix.unwrap_or("plain");
    let profile = dir.join(format!("hstore-{name}.yaml"));
    let tag = match suffix {
        Some(s) => format!("hstore:{{version}}-{{major}}-{s}\""),
        None => "hstore:{version}-{major}\"".to_string(),
    };
    std::fs::write(&profile, text.replace("hstore:{version}-{major}\"", &tag)).unwrap();
    let lock = dir.join(format!("{name}.lock"));
    pgoci(&profile, &bed.registry, cache)
        .args(["resolve", "--major", "17", "--ext", "hstore", "-o"])
        .arg(&lock)
        .assert()
        .success();
    lock
}

#[test]
fn updates_are_planned_refused_without_a_path_and_applied_when_asked() {
    control_variants();
    let bed = bed();
    let dir = scratch();
    let root = dir.path().join("root");
    let cache = dir.path().join("cache");
    let port = free_port();
    let _servers = Servers::of(&root, "xu");
    let socket = root.join("run/pgoci/xu");
    let run = |args: &[&str], lock: &Path| {
        let mut cmd = pgoci(&bed.profile, &bed.registry, &cache);
        cmd.arg("--json")
            .arg("--root")
            .arg(&root)
            .args(args)
            .arg(lock);
        cmd.output().unwrap()
    };
    let original = lock_with_hstore(dir.path(), &cache, None);
    let out = run(
        &[
            "install",
            "--yes",
            "--instance",
            "xu",
            "--port",
            &port.to_string(),
            "--lock",
        ],
        &original,
    );
    assert_success(&out);
    // An older version from hstore's own scripts: 1.4, then 1.5 … 1.8 by update.
    psql(&socket, port, "CREATE EXTENSION hstore VERSION '1.4'").unwrap();
    let installed = || {
        psql(
            &socket,
            port,
            "SELECT extversion FROM pg_extension WHERE extname = 'hstore'",
        )
        .unwrap()
    };
    let current = || {
        let st: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join("opt/pgoci/instances/xu/state.json")).unwrap(),
        )
        .unwrap();
        st["current"].as_str().unwrap().to_string()
    };
    let before = current();

    // No update path: refused before the switch, nothing changed.
    let nopath = lock_with_hstore(dir.path(), &cache, Some("nopath"));
    let out = run(&["upgrade", "--yes", "--instance", "xu", "--lock"], &nopath);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let err = json(&out);
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no update path")
            && message.contains("hstore 1.4 → 9.9 (database postgres)"),
        "{message}"
    );
    assert_eq!(current(), before, "the switch did not happen");
    assert_eq!(installed(), "1.4");
    assert!(
        !std::fs::read_dir(root.join("opt/pgoci/instances/xu/generations"))
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with("2-")),
        "the refused generation was removed again"
    );

    // A path exists: listed, not applied without --update-extensions.
    let repack = lock_with_hstore(dir.path(), &cache, Some("repack"));
    let out = run(&["upgrade", "--yes", "--instance", "xu", "--lock"], &repack);
    assert_success(&out);
    let doc = json(&out);
    let updates = doc["extension_updates"].as_array().expect("listed");
    assert_eq!(updates.len(), 1, "{doc}");
    assert_eq!(updates[0]["name"], "hstore");
    assert_eq!(updates[0]["installed"], "1.4");
    assert_eq!(updates[0]["target"], "1.8");
    assert_eq!(
        updates[0]["update_path"],
        serde_json::json!(["1.4", "1.5", "1.6", "1.7", "1.8"])
    );
    assert_eq!(
        installed(),
        "1.4",
        "not applied without --update-extensions"
    );

    // --update-extensions runs ALTER EXTENSION … UPDATE after the switch.
    let out = run(
        &[
            "upgrade",
            "--yes",
            "--instance",
            "xu",
            "--update-extensions",
            "--lock",
        ],
        &original,
    );
    assert_success(&out);
    assert_eq!(installed(), "1.8");
    assert_eq!(
        psql(&socket, port, "SELECT ('k=>v'::hstore) -> 'k'").unwrap(),
        "v"
    );
}
