//! No service manager: pgoci starts the server with `pg_ctl` as the
//! service user and stops it the same way. Writes no files at all.

use super::{ServiceKind, ServiceManager, ServiceSpec};
use crate::error::Result;
use crate::install::postgres;
use crate::names::InstanceName;
use std::path::PathBuf;

/// Runs servers with `pg_ctl`.
pub struct PgCtl;

impl ServiceManager for PgCtl {
    fn kind(&self) -> ServiceKind {
        ServiceKind::None
    }

    fn render(&self, _spec: &ServiceSpec) -> Result<Vec<(PathBuf, String)>> {
        Ok(Vec::new())
    }

    fn files(&self, _instance: &InstanceName) -> Vec<PathBuf> {
        Vec::new()
    }

    fn start(&self, spec: &ServiceSpec) -> Result<()> {
        if self.is_active(spec) {
            return Ok(());
        }
        postgres::start(
            &spec.bin,
            &spec.data_dir,
            &spec.log_file,
            &spec.account,
            &spec.env,
        )
    }

    fn stop(&self, spec: &ServiceSpec) -> Result<bool> {
        if !self.is_active(spec) {
            return Ok(false);
        }
        postgres::stop(&spec.bin, &spec.data_dir, &spec.account)?;
        Ok(true)
    }

    fn restart(&self, spec: &ServiceSpec) -> Result<()> {
        self.stop(spec)?;
        self.start(spec)
    }

    fn is_active(&self, spec: &ServiceSpec) -> bool {
        postgres::is_running(&spec.bin, &spec.data_dir, &spec.account)
    }
}
