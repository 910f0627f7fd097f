//! Small facts about the machine any floor may ask: free space on a file
//! system, where a program is on `PATH`, the running glibc. A leaf: it
//! imports nothing of pgoci's.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The host's glibc version, as `getconf` reports it.
pub fn glibc_version() -> Option<String> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
}

/// Free bytes on the file system holding `path` (or its nearest existing
/// parent), as an unprivileged user may use them.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let mut p = path.to_path_buf();
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    fs4::available_space(&p).ok()
}

/// The first executable file named `program` on `PATH` (a file without an
/// execute bit is skipped, as the shell skips it).
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_wants_the_execute_bit_and_free_bytes_walks_up() {
        assert!(which("sh").is_some());
        assert!(which("surely-no-such-program-here").is_none());
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(&dir.path().join("a/b/c")).is_some_and(|b| b > 0));
    }
}
