//! Crash points for the atomicity tests: when `PGOCI_CRASH_AT` names a
//! point, the process aborts there with no cleanup at all, as `kill -9`
//! would. Compiled in only with the `failpoints` feature (the test suite
//! enables it); a release build has none.

/// Aborts the process if `PGOCI_CRASH_AT` equals `point`.
#[cfg(feature = "failpoints")]
pub fn hit(point: &str) {
    if std::env::var("PGOCI_CRASH_AT").is_ok_and(|p| p == point) {
        eprintln!("pgoci: crashing at {point} (PGOCI_CRASH_AT)");
        std::process::abort();
    }
}

/// Without the `failpoints` feature, crash points cost nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_point: &str) {}
