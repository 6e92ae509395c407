//! The tree side of sync: what a directory tree holds ([`manifest`]), how the serving side finds
//! out cheaply that nothing changed ([`scan`], [`exclude`]), and how the pulling side makes a new
//! generation visible atomically ([`store`]).
//!
//! Paths inside a tree are always relative, `/`-separated UTF-8 strings checked by [`path`]:
//! no `..`, no `.`, no empty component, no absolute path, bounded length. Everything that
//! reaches the filesystem on the pulling side has passed that check first.
pub mod exclude;
pub mod manifest;
pub mod path;
pub(crate) mod recycle;
pub mod scan;
pub mod store;
pub mod watch;

use std::path::PathBuf;

/// What went wrong in the tree layer, with the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A filesystem call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing (e.g. "read directory").
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A relative path failed the safety check (`..`, absolute, empty component, too long).
    #[error("unsafe path {path:?}: {reason}")]
    UnsafePath {
        /// The offending path as received.
        path: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A manifest is not well formed (unsorted, duplicate, missing parent, oversize, ...).
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// A stored manifest could not be decoded.
    #[error("stored manifest {path}: {reason}")]
    StoredManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The generation store's layout is not what we created (e.g. `current` is not a symlink).
    #[error("generation store {path}: {reason}")]
    Layout {
        /// The path concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another puller holds the store's lock.
    #[error("generation store {0} is locked by another process")]
    Locked(PathBuf),
}

impl TreeError {
    /// Wraps an I/O error with the operation and path it happened on.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TreeError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
