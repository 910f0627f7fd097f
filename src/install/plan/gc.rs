//! The gc planner: what no generation and no kept lock needs.

use super::Step;
use crate::digest::Digest;
use std::collections::BTreeMap;

/// What gc found to remove, with sizes.
pub fn gc(unused_store: BTreeMap<String, u64>, unused_blobs: BTreeMap<Digest, u64>) -> Vec<Step> {
    let mut steps: Vec<Step> = unused_store
        .into_iter()
        .map(|(entry, bytes)| Step::RemoveStoreEntry { entry, bytes })
        .collect();
    steps.extend(
        unused_blobs
            .into_iter()
            .map(|(digest, bytes)| Step::RemoveCacheBlob { digest, bytes }),
    );
    steps
}
