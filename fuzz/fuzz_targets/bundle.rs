//! Any bytes as a bundle `.tar` (an OCI image layout with `index.json` and
//! `pgoci.lock`): opening, checking the manifests and verifying every blob
//! either succeed or refuse with an exit code of the spec — never an
//! internal error, a panic or an allocation the input's declared sizes ask
//! for.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pgoci::bundle::Bundle;
use pgoci::progress::Silent;

fn not_internal(e: pgoci::Error) {
    assert_ne!(e.kind, pgoci::Kind::Internal, "{}", e.message);
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.tar");
    std::fs::write(&path, data).unwrap();
    let bundle = match Bundle::open(&path) {
        Ok(b) => b,
        Err(e) => return not_internal(e),
    };
    if let Err(e) = bundle.verify_manifests() {
        return not_internal(e);
    }
    if let Err(e) = bundle.verify(&Silent) {
        not_internal(e);
    }
    let _ = bundle.artifacts();
});
