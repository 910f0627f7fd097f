//! pgoci puts PostgreSQL and its extensions on hosts that run no
//! containers, using OCI registries as the distribution channel.
//!
//! The chain, one module per step: a [`profile`] maps a major and extension
//! names to image references; [`resolve`] asks the [`registry`] for digests
//! and writes a [`lock`]; [`fetch`] pulls every blob of the lock into the
//! [`cache`], verified by [`digest`] as it streams; [`bundle`] writes the
//! lock and its blobs as a portable OCI image layout; [`install`] unpacks
//! artifacts ([`unpack`]) into a store, composes a generation, initialises
//! the data directory, writes `pgoci.conf` and a systemd unit, and starts the
//! server. [`blobs`] abstracts where verified bytes come from (cache or
//! bundle); [`progress`] is how the library reports without printing.

pub mod blobs;
pub mod bundle;
pub mod cache;
pub mod companions;
pub mod digest;
pub mod elf;
pub mod error;
pub mod failpoint;
pub mod fetch;
pub mod fsutil;
pub mod host;
pub mod install;
pub mod limits;
pub mod lock;
pub mod names;
pub mod platform;
pub mod profile;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod render;
pub mod resolve;
pub mod rootfs;
pub mod signature;
pub mod unpack;

pub use error::{Error, Kind, Result};
