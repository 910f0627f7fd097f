//! pgoci puts PostgreSQL and its extensions on hosts that run no
//! containers, using OCI registries as the distribution channel.
//!
//! The chain, one module per step: a [`profile`] maps a major and extension
//! names to image references; [`resolve`] asks the [`registry`] for digests
//! (and [`signature`] for who signed them) and writes a [`lock`]; [`fetch`]
//! pulls every blob of the lock into the [`cache`], verified by [`digest`]
//! as it streams; [`bundle`] writes the lock, its blobs and what travels
//! beside the images ([`companions`]: indexes, signatures, SBOMs) as a
//! portable OCI image layout, which [`publish`] pushes to a site registry;
//! [`install`] unpacks artifacts ([`unpack`], confined by [`rootfs`]) into
//! a store, checks their libraries by reading ELF files ([`elf`]), composes
//! a generation, initialises the data directory, writes `pgoci.conf` and a
//! systemd unit, and starts the server. [`blobs`] abstracts where verified
//! bytes come from (cache or bundle); [`progress`] is how the library
//! reports without printing.
//!
//! The trust boundary: every string from a lock, profile, bundle or flag
//! becomes a type of [`names`] before use, documents are read with the caps
//! of [`limits`], and values reach config files and units only through
//! [`render`]'s quoting.
//!
//! [`oci`] holds the image-spec documents (layouts, manifests, indexes) as
//! oci-spec's types, with pgoci's digests.
//!
//! [`serve`] answers the pull side of the OCI distribution spec from a
//! bundle, read-only, for the hosts of a site; [`doctor`] asks whether an
//! install would work on this host.

pub mod blobs;
pub mod bundle;
pub mod cache;
pub mod companions;
pub mod digest;
pub mod doctor;
pub mod elf;
pub mod error;
pub mod failpoint;
pub mod fetch;
pub mod fsutil;
pub mod install;
pub mod limits;
pub mod lock;
pub mod names;
pub mod oci;
pub mod platform;
pub mod profile;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod render;
pub mod resolve;
pub mod rootfs;
pub mod serve;
pub mod signature;
pub mod suggest;
pub mod system;
pub mod unpack;

pub use error::{Error, Kind, Result};
