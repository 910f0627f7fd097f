//! Installing a lock onto the host (docs/host-layout.md), and the rest of an
//! instance's life, as plan-then-apply:
//!
//! - [`facts`] looks at the host, read-only;
//! - [`plan`] turns a lock, the options and those facts into typed
//!   [`plan::Step`]s (pure: `--check`, the confirmation and `--json` print
//!   it; needs no root);
//! - [`apply`] carries the steps out inside a [`transaction`] that puts
//!   the host back if anything fails;
//! - [`store`] holds each artifact unpacked once, [`generation`] composes
//!   a server with its extensions ([`loader`] points it at the image's
//!   own dynamic loader when it needs the image's glibc), [`config`] renders `pgoci.conf`,
//!   [`service`] runs the server (systemd or pg_ctl), [`postgres`] runs
//!   PostgreSQL's own tools, [`users`] the service user, [`state`] what
//!   pgoci recorded, [`manifest`] file digests, [`layout`] where things live.

pub mod apply;
pub mod cluster;
pub mod collation;
pub mod config;
pub mod datacare;
pub mod exclusive;
pub mod extensions;
pub mod facts;
pub mod generation;
pub mod layout;
pub mod libraries;
pub mod licenses;
pub mod link;
pub mod loader;
pub mod locale;
pub mod major;
pub mod manifest;
pub mod plan;
pub mod postgres;
pub mod preflight;
pub mod privilege;
pub mod runtime;
pub mod scratch;
pub mod service;
pub mod state;
pub mod store;
pub mod transaction;
pub mod users;

use crate::names::InstanceName;
use layout::HostLayout;
use plan::{InstanceSummary, Step};
use postgres::InitdbSettings;
use service::ServiceKind;
use state::InstanceState;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub use facts::{other_instances, suggested_port};

/// How to install: what the command line (or the recorded instance, for
/// an upgrade) decides.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub layout: HostLayout,
    pub instance: InstanceName,
    pub port: Option<u16>,
    /// Host view (placed under the root).
    pub data_dir: Option<PathBuf>,
    pub user: String,
    /// `None`: the instance's own, or the host's default.
    pub service: Option<ServiceKind>,
    pub no_start: bool,
    pub settings: BTreeMap<crate::names::ConfigParam, String>,
    pub initdb: InitdbSettings,
    /// Where the server's shared libraries may come from.
    pub libraries: libraries::LibraryMode,
    /// What to do when a new generation changes the data's collation library.
    pub collation: Option<collation::Choice>,
    /// Run `ALTER EXTENSION … UPDATE` after the switch.
    pub update_extensions: bool,
}

impl InstallOptions {
    /// Defaults for a new instance.
    pub fn new(layout: HostLayout, instance: &InstanceName) -> Self {
        InstallOptions {
            layout,
            instance: instance.clone(),
            port: None,
            data_dir: None,
            user: "postgres".into(),
            service: None,
            no_start: false,
            settings: BTreeMap::new(),
            initdb: InitdbSettings::default(),
            libraries: libraries::LibraryMode::default(),
            collation: None,
            update_extensions: false,
        }
    }

    /// The options an upgrade keeps: everything the instance recorded.
    pub fn for_upgrade(layout: HostLayout, state: &InstanceState) -> Self {
        InstallOptions {
            port: Some(state.port),
            user: state.user.clone(),
            service: Some(state.service),
            settings: state.settings.clone(),
            ..Self::new(layout, &state.instance)
        }
    }
}

/// What an install did (or, with `--check`, would do).
#[derive(Debug, Clone)]
pub struct InstallReport {
    pub changed: bool,
    pub instance: InstanceSummary,
    pub actions: Vec<Step>,
    pub warnings: Vec<String>,
    /// The library check of a new generation, when one was composed.
    pub libraries: Option<libraries::LibraryReport>,
    /// What was done for the data after the switch (reindex, collation
    /// versions, extension updates), one line each.
    pub data: Vec<String>,
    /// Extensions whose new files' default differs from the installed
    /// version (updated with `--update-extensions`, else listed).
    pub extension_updates: Vec<extensions::Update>,
}
