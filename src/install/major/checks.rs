//! The checks a major upgrade makes before anything changes that are its
//! own: the method for the file system, space, the new cluster's initdb
//! settings from the old one's.

use super::*;

/// The method: as asked where the file system allows it; else clone
/// where the file system reflinks, copy where not.
pub(super) fn choose_method(
    asked: Option<Method>,
    old_data: &Path,
    parent: &Path,
) -> Result<Method> {
    let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).with_path(p, "stat");
    let same_fs = dev(old_data)? == dev(parent)?;
    match asked {
        Some(m @ (Method::Link | Method::Clone)) if !same_fs => {
            Err(MajorUpgradeError::MethodNeedsSameFs {
                method: m,
                old_data: old_data.to_path_buf(),
                parent: parent.to_path_buf(),
            }
            .into())
        }
        Some(Method::Clone) if !can_reflink(parent) => Err(MajorUpgradeError::NoReflink {
            parent: parent.to_path_buf(),
        }
        .into()),
        Some(m) => Ok(m),
        None if same_fs && can_reflink(parent) => Ok(Method::Clone),
        None => Ok(Method::Copy),
    }
}

/// Whether `dir`'s file system makes reflinks (`FICLONE` between two
/// scratch files, removed after).
pub(super) fn can_reflink(dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    const FICLONE: libc::c_ulong = 0x4004_9409;
    let a = dir.join(format!(".pgoci-reflink-a-{}", std::process::id()));
    let b = dir.join(format!(".pgoci-reflink-b-{}", std::process::id()));
    let ok = (|| -> std::io::Result<bool> {
        fs::write(&a, [0u8; 4096])?;
        let src = fs::File::open(&a)?;
        let dst = fs::File::create(&b)?;
        // SAFETY: both descriptors are open for the call's duration.
        let rc = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) };
        Ok(rc == 0)
    })()
    .unwrap_or(false);
    let _ = fs::remove_file(&a);
    let _ = fs::remove_file(&b);
    ok
}

/// Bytes of the regular files under `dir`.
pub(super) fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

pub(super) fn human(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

pub(super) fn jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The port pg_upgrade runs the new cluster on (its socket is private to
/// the instance's socket directory, so only the instance's own port must
/// be avoided).
pub(super) fn pg_upgrade_port(instance_port: u16) -> u16 {
    if instance_port == 50432 {
        50433
    } else {
        50432
    }
}

/// The new cluster's initdb settings: the old cluster's options.
pub(super) fn initdb_settings(o: &ClusterOptions, to: u32) -> Result<InitdbSettings> {
    let locale = |what: &str, v: &str| {
        LocaleName::parse(v).map_err(|source| MajorUpgradeError::CannotCarryOver {
            what: what.to_string(),
            value: v.to_string(),
            source,
        })
    };
    let provider = match o.provider.as_str() {
        "i" => LocaleProvider::Icu,
        "b" => LocaleProvider::Builtin,
        _ => LocaleProvider::Libc,
    };
    let provider_locale = o
        .provider_locale
        .as_deref()
        .map(|l| locale("provider locale", l))
        .transpose()?;
    let settings = InitdbSettings {
        locale: locale("lc_collate", &o.lc_collate)?,
        lc_collate: None,
        lc_ctype: (o.lc_ctype != o.lc_collate)
            .then(|| locale("lc_ctype", &o.lc_ctype))
            .transpose()?,
        encoding: o.encoding.clone(),
        provider,
        icu_locale: (provider == LocaleProvider::Icu)
            .then(|| provider_locale.clone())
            .flatten(),
        builtin_locale: (provider == LocaleProvider::Builtin)
            .then_some(provider_locale)
            .flatten(),
        data_checksums: o.data_checksums,
        wal_segsize_mb: o.wal_segsize_mb,
        ..InitdbSettings::default()
    };
    // Refused here, before any change, if the new major's initdb lacks one.
    settings.args(to)?;
    Ok(settings)
}
