//! Reads what an ELF file needs from the dynamic loader — without running
//! it (no `ldd`): its `DT_NEEDED` libraries, search paths, interpreter and
//! the symbol versions it requires — and walks the shared-library closure
//! of a set of files against one or more roots (the host's `/`, or an
//! unpacked image's root file system), the way `ld.so` searches.
//!
//! Steps, one submodule each: [`inspect`] reads one file, [`ldcache`] parses
//! a root's `/etc/ld.so.cache`, [`root`] resolves paths confined to a root,
//! [`closure`] walks the needs, [`policy`] decides, per library, whether
//! the host or the image provides it (`--libraries auto|host|image`), and [`patch`] points an executable at
//! the image's own loader and library directory when the image's glibc
//! is needed. A damaged file or cache is an [`ElfError`] naming, as a
//! [`Damage`] or [`CacheDamage`] variant, the structure that is wrong.
//!
//! ```no_run
//! use pgoci::elf::{self, Root};
//! use std::path::PathBuf;
//!
//! let files = [PathBuf::from("/usr/bin/ls")];
//! let host = elf::closure(&files, &[Root::host()]);
//! let image = elf::closure(&files, &[Root::image("/tmp/image-root")]);
//! for problem in &host.problems {
//!     eprintln!("{problem}");
//! }
//! let plan = elf::policy::plan(elf::policy::Mode::Auto, &host, &image);
//! println!("glibc needed {:?}, host has {:?}, image loader needed: {}",
//!          host.glibc_required, host.glibc_available, plan.image_loader.is_some());
//! ```

pub mod closure;
mod error;
pub mod inspect;
pub mod ldcache;
pub mod patch;
pub mod policy;
pub mod root;

pub use closure::{closure, closure_confined, Closure, Found, Library, Need, Needer, Problem};
pub use error::{CacheDamage, Damage, ElfError};
pub use inspect::{inspect, inspect_bytes, ElfInfo, Machine};
pub use root::{Root, RootKind};

use std::fmt;

/// A `GLIBC_x.y[.z]` version, comparable numerically (2.4 < 2.34).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GlibcVersion(pub u32, pub u32, pub u32);

impl GlibcVersion {
    /// Parses a symbol-version name such as `GLIBC_2.34`; `None` for
    /// anything else (`GLIBC_PRIVATE`, `OPENSSL_3.0.0`).
    pub fn from_symbol_version(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("GLIBC_")?;
        let mut parts = rest.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = match parts.next() {
            None => 0,
            Some(p) => p?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(GlibcVersion(major, minor, patch))
    }

    /// The highest glibc version among symbol-version names.
    pub fn max_of<'a>(names: impl IntoIterator<Item = &'a String>) -> Option<Self> {
        names
            .into_iter()
            .filter_map(|n| Self::from_symbol_version(n))
            .max()
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.2 == 0 {
            write!(f, "{}.{}", self.0, self.1)
        } else {
            write!(f, "{}.{}.{}", self.0, self.1, self.2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_compare_numerically() {
        let v = |s| GlibcVersion::from_symbol_version(s).unwrap();
        assert!(v("GLIBC_2.4") < v("GLIBC_2.34"));
        assert!(v("GLIBC_2.3.4") > v("GLIBC_2.3"));
        assert_eq!(v("GLIBC_2.38").to_string(), "2.38");
        assert_eq!(GlibcVersion::from_symbol_version("GLIBC_PRIVATE"), None);
        assert_eq!(GlibcVersion::from_symbol_version("OPENSSL_3.0.0"), None);
        let names = [
            "GLIBC_2.2.5".to_string(),
            "GLIBC_2.34".into(),
            "GLIBC_PRIVATE".into(),
        ];
        assert_eq!(GlibcVersion::max_of(&names), Some(GlibcVersion(2, 34, 0)));
    }
}
