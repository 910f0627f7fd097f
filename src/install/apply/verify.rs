//! `status --verify`: a generation's files against their recorded digests.

use crate::error::Result;
use crate::install::layout::HostLayout;
use crate::install::state::InstanceState;

/// Re-hashes the current generation of an instance.
pub fn verify(layout: &HostLayout, st: &InstanceState) -> Result<crate::install::manifest::Drift> {
    crate::install::manifest::verify_generation(&layout.generation(&st.instance, &st.current))
}
