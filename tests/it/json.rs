//! The JSON contract for machines: every command prints exactly one
//! document with `command` and `changed`; `--check` changes nothing (a
//! hash of the host tree proves it); snapshots pin the documents' shape,
//! with digests, paths and ports redacted.

use crate::support::*;
use serde_json::Value;
use std::path::Path;

/// Replaces what differs between runs with stable placeholders.
fn redact(v: &mut Value, dir: &Path, registry: &str) {
    match v {
        Value::String(s) => {
            let mut out = s
                .replace(&dir.display().to_string(), "<dir>")
                .replace(registry, "<registry>");
            while let Some(i) = out.find("sha256:") {
                let end = (i + 7 + 64).min(out.len());
                if out[i + 7..end].chars().all(|c| c.is_ascii_hexdigit()) && end - i == 71 {
                    out.replace_range(i..end, "<digest>");
                } else {
                    break;
                }
            }
            // Generation names: <n>-<12 hex of the lock digest>.
            if let Some((n, hex)) = out
                .rsplit_once('/')
                .map(|(_, t)| t)
                .unwrap_or(&out)
                .split_once('-')
            {
                if n.chars().all(|c| c.is_ascii_digit())
                    && hex.len() == 12
                    && hex.chars().all(|c| c.is_ascii_hexdigit())
                {
                    out = out.replace(hex, "<lock12>");
                }
            }
            *s = out;
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact(x, dir, registry)),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if ["port", "size", "bytes_fetched", "bytes_freed"].contains(&k.as_str())
                    && x.is_number()
                {
                    *x = Value::String(format!("<{k}>"));
                } else if k == "libraries" && x.is_object() {
                    // The host's own library paths: the library check is
                    // tested on its own; here only its presence counts.
                    *x = Value::String("<libraries>".into());
                } else if k == "actions" {
                    // Lines for people: their number and order is the contract, not their text.
                    if let Value::Array(a) = x {
                        *x = Value::String(format!("<{} actions>", a.len()));
                    }
                } else {
                    redact(x, dir, registry);
                }
            }
        }
        _ => {}
    }
}

/// Compares with `tests/snapshots/<name>.json` (UPDATE_SNAPSHOTS=1 rewrites it).
fn snapshot(name: &str, mut doc: Value, dir: &Path) {
    redact(&mut doc, dir, &bed().registry);
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}: run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(
        text, want,
        "snapshot {name} differs (UPDATE_SNAPSHOTS=1 to accept)"
    );
}

/// A hash of every file under `root` except a running server's data files.
pub fn host_hash(root: &Path) -> String {
    let mut h = pgoci::digest::Hasher::default();
    for p in tree(root) {
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let in_data = rel.contains("/data/") && !rel.ends_with(".conf");
        if in_data || rel.starts_with("var/log") {
            continue;
        }
        h.update(rel.as_bytes());
        if let Ok(meta) = std::fs::symlink_metadata(&p) {
            if meta.is_file() {
                h.update(&std::fs::read(&p).unwrap());
            } else if meta.file_type().is_symlink() {
                h.update(
                    std::fs::read_link(&p)
                        .unwrap()
                        .as_os_str()
                        .as_encoded_bytes(),
                );
            }
        }
    }
    h.finish().to_string()
}

#[test]
fn every_command_prints_one_document_and_check_changes_nothing() {
    let bed = bed();
    let dir = scratch();
    let d = dir.path();
    let root = d.join("root");
    std::fs::create_dir(&root).unwrap();
    let port = free_port().to_string();
    let run = |args: &[&str]| -> Value {
        let out = pgoci(&bed.profile, &bed.registry, &d.join("cache"))
            .arg("--json")
            .arg("--root")
            .arg(&root)
            .args(args)
            .output()
            .unwrap();
        let doc = json(&out); // exactly one document, or this fails
        assert!(doc["command"].is_string(), "{doc}");
        assert!(
            doc.get("error").is_some() || doc["changed"].is_boolean(),
            "{doc}"
        );
        doc
    };
    let lock = d.join("x.lock");
    let lock_s = lock.to_str().unwrap();
    let bundle = d.join("b");
    let bundle_s = bundle.to_str().unwrap();
    snapshot("catalog", run(&["catalog"]), d);
    snapshot(
        "resolve",
        run(&["resolve", "--major", "18", "--ext", "pg_trgm", "-o", lock_s]),
        d,
    );
    snapshot("pull", run(&["pull", "--lock", lock_s]), d);
    snapshot(
        "bundle-export",
        run(&["bundle", "export", "--lock", lock_s, "-o", bundle_s]),
        d,
    );
    snapshot("bundle-verify", run(&["bundle", "verify", bundle_s]), d);
    snapshot("bundle-inspect", run(&["bundle", "inspect", bundle_s]), d);

    // --check on an empty host: a plan, nothing written.
    let before = host_hash(&root);
    let install = ["install", "--yes", "--instance", "j", "--port", &port];
    let check = run(&[&install[..], &["--check", "--bundle", bundle_s]].concat());
    assert_eq!(check["changed"], true);
    assert_eq!(check["check"], true);
    assert_eq!(host_hash(&root), before, "--check wrote to the host");
    // From a bundle, --check reads the artifacts' libraries as install
    // would: whose loader runs the server and where each need is found.
    let libs = &check["libraries"];
    assert!(
        ["host", "image"].contains(&libs["loader"].as_str().unwrap_or("")),
        "{check}"
    );
    assert!(libs["files_checked"].as_u64().unwrap_or(0) > 0, "{check}");
    assert!(!libs["rows"].as_array().unwrap().is_empty(), "{check}");
    snapshot("install-check", check.clone(), d);

    let doc = run(&[&install[..], &["--bundle", bundle_s]].concat());
    let _servers = Servers::of(&root, "j");
    assert_eq!(doc["changed"], true);
    // The plan --check printed is what the install then did, step by step.
    let kinds = |d: &Value| -> Vec<Value> {
        d["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].clone())
            .collect()
    };
    assert_eq!(kinds(&check), kinds(&doc), "{check}\n{doc}");
    snapshot("install", doc, d);
    let again = run(&[&install[..], &["--bundle", bundle_s]].concat());
    assert_eq!(again["changed"], false);
    snapshot("install-again", again, d);

    // A second instance of the same bundle: every artifact is in the store
    // already, and --check reads the new generation's libraries from there.
    let before = host_hash(&root);
    let port_k = free_port().to_string();
    let other = run(&[
        "install",
        "--yes",
        "--instance",
        "k",
        "--port",
        &port_k,
        "--check",
        "--bundle",
        bundle_s,
    ]);
    let kinds_k: Vec<&str> = other["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .collect();
    assert!(
        kinds_k.contains(&"compose") && !kinds_k.contains(&"unpack"),
        "{other}"
    );
    assert!(
        ["host", "image"].contains(&other["libraries"]["loader"].as_str().unwrap_or("")),
        "{other}"
    );
    assert_eq!(host_hash(&root), before, "--check wrote to the host");

    // --check of an upgrade: would change, changes nothing.
    let before = host_hash(&root);
    let doc = run(&[
        "upgrade",
        "--check",
        "--instance",
        "j",
        "--ext",
        "pg_trgm,pg_stat_statements",
    ]);
    assert_eq!(doc["changed"], true, "{doc}");
    assert_eq!(
        host_hash(&root),
        before,
        "upgrade --check wrote to the host"
    );

    snapshot("status", run(&["status"]), d);
    let err = run(&["resolve", "--major", "99", "-o", "-"]);
    snapshot("error-resolve", err, d);
    // --check of uninstall and gc: a plan, nothing changed; --purge
    // without --yes and without a terminal is refused, nothing changed.
    let before = host_hash(&root);
    let doc = run(&["uninstall", "--check", "--instance", "j", "--purge"]);
    assert_eq!(
        (&doc["changed"], &doc["check"]),
        (&true.into(), &true.into()),
        "{doc}"
    );
    let doc = run(&["gc", "--check"]);
    assert_eq!(doc["check"], true, "{doc}");
    let doc = run(&["uninstall", "--instance", "j", "--purge"]);
    assert_eq!(doc["error"]["kind"], "usage", "{doc}");
    assert_eq!(
        host_hash(&root),
        before,
        "uninstall/gc --check wrote to the host"
    );
    let doc = run(&["uninstall", "--yes", "--instance", "j", "--purge"]);
    assert_eq!(doc["changed"], true);
    snapshot("uninstall", doc, d);
    let gc = run(&["gc", "--yes"]);
    assert_eq!(gc["changed"], true);
    snapshot("gc", gc, d);
}
