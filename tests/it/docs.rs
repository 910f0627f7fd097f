//! Man pages and completions come from the clap definitions; the committed
//! pages must match what the binary generates now.

use std::path::Path;

#[test]
fn committed_man_pages_are_current() {
    let dir = tempfile::tempdir().unwrap();
    assert_cmd::Command::cargo_bin("pgoci")
        .unwrap()
        .arg("generate-man")
        .arg(dir.path())
        .assert()
        .success();
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut fresh: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fresh.sort();
    let mut old: Vec<String> = std::fs::read_dir(&committed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    old.sort();
    let hint = "man pages are stale: run `cargo run -- generate-man man` and commit";
    assert_eq!(fresh, old, "{hint}");
    for name in &fresh {
        assert_eq!(
            std::fs::read(dir.path().join(name)).unwrap(),
            std::fs::read(committed.join(name)).unwrap(),
            "{name}: {hint}"
        );
    }
    assert!(fresh.contains(&"pgoci-bundle-push.1".to_string()));
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef pgoci"),
        ("fish", "complete -c pgoci"),
    ] {
        let out = assert_cmd::Command::cargo_bin("pgoci")
            .unwrap()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}");
        assert!(
            text.contains("install") && text.contains("rollback"),
            "{shell}"
        );
    }
}
