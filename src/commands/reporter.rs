//! The human progress reporter: one plain line per finished blob and per
//! step, on stderr.

use pgoci::digest::Digest;
use pgoci::progress::Reporter;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Lines {
    sizes: Mutex<HashMap<Digest, u64>>,
}

impl Reporter for Lines {
    fn blob_started(&self, digest: &Digest, size: u64) {
        self.sizes
            .lock()
            .expect("poisoned")
            .insert(digest.clone(), size);
    }

    fn blob_done(&self, digest: &Digest) {
        let size = self
            .sizes
            .lock()
            .expect("poisoned")
            .get(digest)
            .copied()
            .unwrap_or(0);
        eprintln!("fetched {} ({})", digest, super::output::human_bytes(size));
    }

    fn step(&self, message: &str) {
        eprintln!("{message}");
    }
}
