//! The whole chain: export a bundle, stop the registry, install PostgreSQL
//! 15 + pg_cron from the bundle, run SQL against it; install 17 + hstore
//! beside it; re-run for `changed: false`.

use crate::support::*;
use std::path::Path;

fn install(
    root: &Path,
    cache: &Path,
    source: &[&str],
    instance: &str,
    port: u16,
) -> serde_json::Value {
    let bed = bed();
    let out = pgoci(&bed.profile, &bed.registry, cache)
        .args(["--json", "install", "--yes", "--root"])
        .arg(root)
        .args(source)
        .args(["--instance", instance, "--port", &port.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install {instance} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)
}

#[test]
fn bundle_install_offline_then_a_second_major_beside_it() {
    let shared = bed();
    let own = OwnRegistry::clone_of(shared, "offline");
    let dir = scratch();
    let cache = dir.path().join("cache");
    let bundle = dir.path().join("pg15.tar");
    pgoci(&own.profile, &own.registry, &cache)
        .args([
            "bundle", "export", "--major", "15", "--ext", "pg_cron", "-o",
        ])
        .arg(&bundle)
        .assert()
        .success();
    own.stop();
    // Offline: the registry is down and the install uses a fresh cache.
    let root = dir.path().join("root");
    let empty_cache = dir.path().join("empty-cache");
    let port15 = free_port();
    let bundle_arg = ["--bundle", bundle.to_str().unwrap()];
    let doc = install(&root, &empty_cache, &bundle_arg, "pg15", port15);
    assert_eq!(doc["changed"], true);
    assert_eq!(doc["server"]["major"], 15);
    let socket15 = std::path::PathBuf::from(doc["instance"]["socket_dir"].as_str().unwrap());
    let data15 = std::path::PathBuf::from(doc["instance"]["data_dir"].as_str().unwrap());
    let gen15 = root.join("opt/pgoci/instances/pg15/current");
    let mut servers = Servers(vec![(gen15.join("bin"), data15.clone())]);

    assert!(psql(&socket15, port15, "SHOW shared_preload_libraries")
        .unwrap()
        .contains("pg_cron"));
    psql(&socket15, port15, "CREATE EXTENSION pg_cron").unwrap();
    assert_eq!(
        psql(
            &socket15,
            port15,
            "SELECT extname FROM pg_extension WHERE extname = 'pg_cron'"
        )
        .unwrap(),
        "pg_cron"
    );
    let conf = std::fs::read_to_string(data15.join("postgresql.conf")).unwrap();
    assert_eq!(conf.matches("include = 'pgoci.conf'").count(), 1);
    // --service none (the default under --root): no unit, nothing under /etc/systemd.
    assert!(
        !root.join("etc/systemd").exists(),
        "{:?}",
        tree(&root.join("etc"))
    );

    // The same install again: nothing to do.
    let again = install(&root, &empty_cache, &bundle_arg, "pg15", port15);
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["actions"].as_array().unwrap().len(), 0);
    let conf_again = std::fs::read_to_string(data15.join("postgresql.conf")).unwrap();
    assert_eq!(conf, conf_again);

    // PostgreSQL 17 + hstore as a second instance, from the shared registry.
    let port17 = free_port();
    let doc17 = install(
        &root,
        &cache,
        &["--major", "17", "--ext", "hstore"],
        "pg17",
        port17,
    );
    let socket17 = std::path::PathBuf::from(doc17["instance"]["socket_dir"].as_str().unwrap());
    let data17 = std::path::PathBuf::from(doc17["instance"]["data_dir"].as_str().unwrap());
    servers
        .0
        .push((root.join("opt/pgoci/instances/pg17/current/bin"), data17));
    psql(&socket17, port17, "CREATE EXTENSION hstore").unwrap();
    assert_eq!(
        psql(&socket17, port17, "SELECT 'a=>1'::hstore -> 'a'").unwrap(),
        "1"
    );
    assert!(psql(&socket17, port17, "SELECT version()")
        .unwrap()
        .contains("PostgreSQL 17"));
    // The first instance is still serving.
    assert!(psql(&socket15, port15, "SELECT version()")
        .unwrap()
        .contains("PostgreSQL 15"));

    // status sees both.
    let out = pgoci(&shared.profile, &shared.registry, &cache)
        .args(["--json", "status", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let status = json(&out);
    let names: Vec<&str> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pg15", "pg17"]);
    assert!(status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["running"] == true));
}
