//! What a transaction refuses.

use crate::error::{Classify, Kind};
use std::path::PathBuf;

/// What a transaction refuses to replace or remove.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    #[error("{} is not a symlink: pgoci does not replace it", path.display())]
    NotASymlink { path: PathBuf },
    #[error("{} is not a directory: pgoci does not remove it", path.display())]
    NotADirectory { path: PathBuf },
    #[error("{} is not a regular file: pgoci does not replace it", path.display())]
    NotARegularFile { path: PathBuf },
    #[error("{} has no parent", path.display())]
    NoParent { path: PathBuf },
    #[error("{} has no parent to move it aside in", path.display())]
    NoParentForAside { path: PathBuf },
}

impl Classify for TransactionError {
    fn kind(&self) -> Kind {
        match self {
            TransactionError::NoParent { .. } | TransactionError::NoParentForAside { .. } => {
                Kind::Internal
            }
            _ => Kind::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            TransactionError::NotASymlink { .. } => {
                Some("move it away and run the same command again".into())
            }
            _ => None,
        }
    }
}
