//! A person at a terminal: the real binary driven through a pseudo-terminal
//! (prompts, plan, confirmation), and what a pipe sees instead.

use crate::support::*;
use expectrl::{Eof, Session};
use std::path::Path;
use std::time::Duration;

const DOWN: &str = "\x1b[B";
const UP: &str = "\x1b[A";

/// Spawns pgoci on a pty, with the bed's profile and a cache.
fn session(root: &Path, cache: &Path) -> Session {
    let bed = bed();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("pgoci"));
    cmd.env("PGOCI_CACHE_DIR", cache)
        .env("TERM", "xterm")
        .env("PGOCI_PROFILE", &bed.profile)
        .args(["--insecure-registry", &bed.registry, "install", "--root"])
        .arg(root);
    let mut s = Session::spawn(cmd).expect("spawn on a pty");
    s.set_expect_timeout(Some(Duration::from_secs(120)));
    s
}

/// Waits for `needle`, appending what was seen to the transcript.
fn expect(s: &mut Session, transcript: &mut Vec<u8>, needle: &str) {
    let found = s.expect(needle).unwrap_or_else(|e| {
        panic!(
            "waiting for {needle:?}: {e}\n--- so far ---\n{}",
            String::from_utf8_lossy(transcript)
        )
    });
    transcript.extend_from_slice(found.as_bytes()); // what came before, and the match
}

#[test]
fn interactive_install_asks_shows_the_plan_and_installs() {
    let dir = scratch();
    let root = dir.path().join("root");
    let port = free_port();
    let mut t = Vec::new();
    let mut s = session(&root, &dir.path().join("cache"));
    expect(&mut s, &mut t, "PostgreSQL major");
    s.send(UP).unwrap(); // from the default (18) to 17
    s.send("\r").unwrap();
    expect(&mut s, &mut t, "Extensions");
    s.send(" ").unwrap(); // hstore, the only one built for 17
    s.send("\r").unwrap();
    expect(&mut s, &mut t, "Instance name");
    s.send("\r").unwrap(); // default pg17
    expect(&mut s, &mut t, "no collation version to track");
    s.send(DOWN).unwrap(); // from libc to builtin C.UTF-8
    s.send("\r").unwrap();
    expect(&mut s, &mut t, "Port");
    s.send(format!("{port}\r")).unwrap();
    expect(&mut s, &mut t, "Data directory");
    s.send("\r").unwrap();
    expect(&mut s, &mut t, "Go ahead?");
    s.send("y").unwrap();
    expect(&mut s, &mut t, "ready");
    let rest = s.expect(Eof).unwrap();
    t.extend_from_slice(rest.before());
    let transcript = String::from_utf8_lossy(&t).to_string();
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("interactive-install.txt"),
        &transcript,
    )
    .unwrap();
    assert!(
        transcript.contains("Plan for instance pg17"),
        "{transcript}"
    );
    assert!(transcript.contains("download up to"), "{transcript}");
    assert!(transcript.contains("extension hstore"), "{transcript}");

    let _servers = Servers::of(&root, "pg17");
    let socket = root.join("run/pgoci/pg17");
    psql(&socket, port, "CREATE EXTENSION hstore").unwrap();
    let provider = "SELECT datlocprovider FROM pg_database WHERE datname = 'postgres'";
    assert_eq!(psql(&socket, port, provider).unwrap(), "b");
}

#[test]
fn answering_no_changes_nothing() {
    let dir = scratch();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut t = Vec::new();
    let mut s = session(&root, &dir.path().join("cache"));
    expect(&mut s, &mut t, "PostgreSQL major");
    s.send(DOWN).unwrap(); // wraps around to 15
    s.send("\r").unwrap();
    expect(&mut s, &mut t, "Extensions");
    s.send("\r").unwrap();
    expect(&mut s, &mut t, "Instance name");
    s.send("\r").unwrap();
    expect(&mut s, &mut t, "Locale provider");
    s.send("\r").unwrap(); // libc, the default
    expect(&mut s, &mut t, "Port");
    s.send("\r").unwrap();
    expect(&mut s, &mut t, "Data directory");
    s.send("\r").unwrap();
    expect(&mut s, &mut t, "Go ahead?");
    s.send("n").unwrap();
    expect(&mut s, &mut t, "nothing changed");
    s.expect(Eof).unwrap();
    assert!(tree(&root).is_empty(), "{:?}", tree(&root));
}

#[test]
fn a_pipe_gets_plain_progress_lines_on_stderr_and_nothing_on_stdout() {
    let bed = bed();
    let dir = scratch();
    let out = pgoci(&bed.profile, &bed.registry, &dir.path().join("cache"))
        .args(["pull", "--major", "15", "--ext", "pg_cron"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "stdout is for data only");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("pulling 6 blob(s), "), "{err}");
    let fetched = lines
        .iter()
        .filter(|l| l.starts_with("fetched sha256:") && l.ends_with("verified)"))
        .count();
    assert_eq!(fetched, 6, "{err}");
    assert!(
        !err.contains('\x1b'),
        "no terminal escapes in a pipe: {err:?}"
    );
    assert!(
        lines.last().unwrap().starts_with("pulled 6 blob(s)"),
        "{err}"
    );
}
