//! Crash points for the atomicity tests: when `PGOCI_CRASH_AT` names a
//! point, the process aborts there with no cleanup at all, as `kill -9`
//! would. Unset (always, outside tests), a point costs one env lookup.

/// Aborts the process if `PGOCI_CRASH_AT` equals `point`.
pub fn hit(point: &str) {
    if std::env::var("PGOCI_CRASH_AT").is_ok_and(|p| p == point) {
        eprintln!("pgoci: crashing at {point} (PGOCI_CRASH_AT)");
        std::process::abort();
    }
}
