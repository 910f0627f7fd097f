//! Any text as a `pgoci.lock`: parsing either refuses it with an exit code
//! of the spec (never an internal error, never a panic) or gives a lock
//! that survives its own round trip — what pgoci writes it reads back to
//! the same lock digest, so a bundle's recorded digest stays checkable.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pgoci::lock::Lock;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lock = match Lock::parse(text, "fuzz.lock") {
        Ok(lock) => lock,
        Err(e) => {
            assert_ne!(e.kind, pgoci::Kind::Internal, "{}", e.message);
            return;
        }
    };
    let written = lock.to_yaml().expect("a parsed lock serialises");
    let again = Lock::parse(&written, "written.lock").expect("pgoci reads what it writes");
    assert_eq!(
        lock.digest().unwrap(),
        again.digest().unwrap(),
        "the lock digest changed across a round trip"
    );
    let _ = (lock.blobs(), lock.download_size(), lock.major());
});
