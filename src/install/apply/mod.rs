//! The applier: carries out a [`Plan`] step by step inside a
//! [`Transaction`], so a step that fails (or a server that does not come
//! up) puts back the previous `current`, config, service files and state,
//! and restarts the previous server. Each step checks whether its result
//! is already there, so a run killed midway completes when run again.

use super::plan::{Plan, Step};
use super::transaction::Transaction;
use super::InstallReport;
use crate::error::{Error, Result};
use crate::progress::{Event, Reporter};
use std::time::Instant;

/// What an apply finds wrong with its plan or the host as it goes.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("no instance named {instance}")]
    NoInstance {
        instance: crate::names::InstanceName,
    },
    /// A planner bug: a step this kind of plan never holds.
    #[error("{} {plan} plan holds a {step} step", if plan.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" })]
    UnexpectedStep {
        plan: &'static str,
        step: &'static str,
    },
    #[error("plan unpacks {digest}, not in the lock")]
    NotInLock { digest: crate::digest::Digest },
    #[error("cannot find pgoci's own executable: {0}")]
    OwnExecutable(#[source] std::io::Error),
}

impl crate::error::Classify for ApplyError {
    fn kind(&self) -> crate::error::Kind {
        use crate::error::Kind;
        match self {
            ApplyError::NoInstance { .. } => Kind::Usage,
            ApplyError::UnexpectedStep { .. } | ApplyError::NotInLock { .. } => Kind::Internal,
            ApplyError::OwnExecutable(_) => Kind::Host,
        }
    }
}

mod compose;
mod files;
mod gc;
mod install;
mod lifecycle;
mod verify;

pub use compose::{compose_generation, GenerationInput};
pub(crate) use files::{write_config, write_service_files};
pub use gc::{gc, plan_gc};
pub use install::{check_collation, check_libraries, install};
pub use lifecycle::{rollback, uninstall};
pub use verify::verify;

/// Runs steps, reporting each and collecting those that changed something.
struct Runner<'a> {
    reporter: &'a dyn Reporter,
    done: Vec<Step>,
}

impl Runner<'_> {
    fn run<T>(&mut self, step: &Step, f: impl FnOnce() -> Result<(T, bool)>) -> Result<T> {
        let span = tracing::info_span!("step", kind = step.kind());
        let _entered = span.enter();
        // Progress knows sentences, not the plan's types.
        self.reporter.event(&Event::StepStarted {
            kind: step.kind(),
            plan: &step.describe(false),
        });
        let started = Instant::now();
        let (value, changed) = f()?;
        let done = step.describe(true);
        self.reporter.event(&Event::StepFinished {
            kind: step.kind(),
            done: &done,
            changed,
            elapsed: started.elapsed(),
        });
        tracing::debug!(
            changed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "{done}"
        );
        if changed {
            self.done.push(step.clone());
        }
        Ok(value)
    }
}

/// Rolls back, saying in the error what became of the host; every undo
/// that failed (and every directory kept because it holds someone else's
/// files) follows as a warning with its path. The kind, so the exit code,
/// stays the first error's.
fn undo(tx: Transaction, mut err: Error) -> Error {
    let undone = tx.rollback();
    let n = undone.failures.len();
    let failed = format!(
        "{n} change{} of this run could not be undone (see the warnings)",
        if n == 1 { "" } else { "s" }
    );
    err.message = match (&undone.restarted, n) {
        (Some(gen), 0) => format!(
            "{}; every change of this run was undone (back on generation {gen}, running again)",
            err.message
        ),
        (None, 0) => format!("{}; every change of this run was undone", err.message),
        (Some(gen), _) => format!(
            "{}; back on generation {gen}, running again, but {failed}",
            err.message
        ),
        (None, _) => format!("{}; undoing the run also failed: {failed}", err.message),
    };
    err.warnings.extend(undone.warnings());
    err
}

fn report(plan: &Plan, done: Vec<Step>) -> InstallReport {
    InstallReport {
        changed: !done.is_empty(),
        instance: plan.instance.clone(),
        actions: done,
        warnings: plan.warnings.clone(),
        libraries: None,
        data: Vec::new(),
        extension_updates: Vec::new(),
    }
}

/// What a lifecycle command (rollback, uninstall, gc) did.
#[derive(Debug, Clone)]
pub struct LifecycleReport {
    pub changed: bool,
    pub actions: Vec<Step>,
    /// What was done for the data (reindex, collation versions).
    pub data: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use crate::install::layout::HostLayout;
    use std::path::Path;

    #[test]
    fn an_undo_that_fails_keeps_the_kind_and_names_each_path_in_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut tx = Transaction::new(&HostLayout::new(d, Path::new("/p")));
        tx.write_file(&d.join("made"), b"x", 0o644).unwrap();
        tx.create_dir(&d.join("dir")).unwrap();
        // Someone else's: a directory where the file was, a file in the
        // directory this run made.
        std::fs::remove_file(d.join("made")).unwrap();
        std::fs::create_dir(d.join("made")).unwrap();
        std::fs::write(d.join("made/theirs"), "").unwrap();
        std::fs::write(d.join("dir/theirs"), "").unwrap();
        let err = undo(tx, Error::service("the server did not start"));
        assert_eq!(err.kind, Kind::Service, "the exit code stays the error's");
        assert_eq!(
            err.message,
            "the server did not start; undoing the run also failed: 1 change of this run could not be undone (see the warnings)"
        );
        assert_eq!(err.warnings.len(), 2, "{:?}", err.warnings);
        assert!(err.warnings[0].contains(&d.join("made").display().to_string()));
        assert!(err.warnings[1].contains(&d.join("dir").display().to_string()));
        assert!(d.join("made/theirs").exists() && d.join("dir/theirs").exists());
    }
}
