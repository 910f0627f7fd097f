//! Any text as a profile (pgoci's own format or a CloudNativePG image
//! catalog): refused with an exit code of the spec, never an internal
//! error or a panic; an accepted profile answers every question resolve
//! asks of it for every major it names without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pgoci::profile::Profile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let profile = match Profile::parse(text, "fuzz.yaml") {
        Ok(p) => p,
        Err(e) => {
            assert_ne!(e.kind, pgoci::Kind::Internal, "{}", e.message);
            return;
        }
    };
    let mut majors = profile.server.majors.clone();
    majors.extend(profile.extensions.values().flat_map(|e| e.majors.clone()));
    for major in majors {
        let _ = profile.server_layout(major);
        let _ = profile.server_paths(major);
        for (name, spec) in profile.extensions_for(major) {
            let _ = (name.as_str(), spec.versions(major), spec.env(major));
            let _ = (spec.ld_library_path(major), spec.bin_path(major));
        }
    }
});
