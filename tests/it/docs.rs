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

#[test]
fn a_reader_that_went_away_is_a_clean_exit() {
    // A pipe whose reading end is closed before pgoci starts: every write
    // fails with EPIPE, deterministically (`pgoci completions bash | head -0`).
    let (read_end, write_end) = rustix::pipe::pipe().unwrap();
    drop(read_end);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgoci"))
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::from(write_end))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0) | Some(141)),
        "status {:?}: {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
}
