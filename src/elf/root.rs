//! A root file system to look libraries up in — the host's `/` or an
//! unpacked image — and path resolution confined to it: symlinks are
//! followed by hand, absolute targets start again at the root and `..`
//! stops at it, so an image's `/lib -> /usr/lib` never reaches the host.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Whose file system a root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RootKind {
    Host,
    Image,
}

/// A root file system plus the extra directories searched in it before
/// `RUNPATH` (like `LD_LIBRARY_PATH`: an extension image's `system/`, a
/// profile's `ld_library_path`), as paths inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub path: PathBuf,
    pub kind: RootKind,
    pub library_path: Vec<PathBuf>,
}

/// ld.so's own limit on symlink hops is the kernel's (40).
const MAX_LINKS: usize = 40;

impl Root {
    pub fn host() -> Self {
        Root {
            path: PathBuf::from("/"),
            kind: RootKind::Host,
            library_path: Vec::new(),
        }
    }

    pub fn image(path: impl Into<PathBuf>) -> Self {
        Root {
            path: path.into(),
            kind: RootKind::Image,
            library_path: Vec::new(),
        }
    }

    pub fn with_library_path(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        self.library_path.extend(dirs);
        self
    }

    /// The host path of `inner` (a path inside this root) with every
    /// symlink resolved inside the root, or `None` when it does not exist,
    /// loops, or is not a regular file or directory.
    pub fn resolve(&self, inner: &Path) -> Option<Resolved> {
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, inner);
        let mut logical = PathBuf::from("/");
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                logical.pop();
                continue;
            }
            let next = logical.join(&name);
            let host = self.host_path(&next);
            let meta = std::fs::symlink_metadata(&host).ok()?;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                let target = std::fs::read_link(&host).ok()?;
                if target.is_absolute() {
                    logical = PathBuf::from("/");
                }
                push_components(&mut pending, &target);
            } else {
                logical = next;
            }
        }
        let host = self.host_path(&logical);
        let meta = std::fs::metadata(&host).ok()?;
        (meta.is_file() || meta.is_dir()).then_some(Resolved {
            inner: logical,
            host,
        })
    }

    /// `inner` joined under the root, without resolving anything.
    fn host_path(&self, inner: &Path) -> PathBuf {
        let rel = inner.strip_prefix("/").unwrap_or(inner);
        if rel.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        }
    }
}

/// Pushes the components of `path` so that popping yields them in order;
/// `.` and the root are dropped, `..` kept for the walker to clamp.
fn push_components(stack: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    stack.extend(parts.into_iter().rev());
}

/// A path resolved in a root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resolved {
    /// The final path inside the root, symlink-free.
    pub inner: PathBuf,
    /// The same file on this machine.
    pub host: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("usr/lib/x")).unwrap();
        std::fs::write(r.join("usr/lib/x/libz.so.1.2"), "z").unwrap();
        symlink("libz.so.1.2", r.join("usr/lib/x/libz.so.1")).unwrap();
        symlink("/usr/lib", r.join("lib")).unwrap(); // absolute: inside the root
        symlink("../../../../../../etc/passwd", r.join("usr/lib/x/escape")).unwrap();
        symlink("/etc/hostname", r.join("usr/lib/x/abs-escape")).unwrap();
        symlink("loop", r.join("usr/lib/x/loop")).unwrap();
        let root = Root::image(r);

        let got = root.resolve(Path::new("/lib/x/libz.so.1")).unwrap();
        assert_eq!(got.inner, Path::new("/usr/lib/x/libz.so.1.2"));
        assert_eq!(got.host, r.join("usr/lib/x/libz.so.1.2"));
        // `..` past the root clamps at it: /etc/passwd of the image, absent.
        assert_eq!(root.resolve(Path::new("/usr/lib/x/escape")), None);
        assert_eq!(root.resolve(Path::new("/usr/lib/x/abs-escape")), None);
        assert_eq!(root.resolve(Path::new("/../../etc/hostname")), None);
        assert_eq!(root.resolve(Path::new("/usr/lib/x/loop")), None);
        // Once the image has the file, the same links find the image's.
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/passwd"), "root").unwrap();
        assert_eq!(
            root.resolve(Path::new("/usr/lib/x/escape")).unwrap().host,
            r.join("etc/passwd")
        );
        // The host root resolves like the kernel.
        let host = Root::host().resolve(Path::new("/bin/sh")).unwrap();
        assert_eq!(host.host, std::fs::canonicalize("/bin/sh").unwrap());
    }
}
