//! Integration tests: the real `pgoci` binary against the real test bed
//! (a loopback OCI registry with fixtures built from real PostgreSQL).

mod support;

mod airgap;
mod bad_input;
mod bundles;
mod docs;
mod edges;
mod end_to_end;
mod extension_updates;
mod faults;
mod hostile_elf;
mod hostile_inputs;
mod hostile_layers;
mod install_edges;
mod json;
// Kills a run at a crash point: only in a `--features failpoints` build.
#[cfg(feature = "failpoints")]
mod layer_store;
mod lifecycle;
mod locales;
mod mutations;
mod registries;
mod republish;
mod resolve;
mod serve;
mod signatures;
mod systemd;
mod terminal;
mod token_auth;
mod variants;
