//! Keeping the standby's configuration and voice data current.
//!
//! Planned modules: `delta` (streaming signature / delta / patch, the rsync algorithm), `tree`
//! (manifests, generations, atomic apply) and `transfer` (authenticated framed transport).
#![warn(missing_docs)]

pub mod codec;
pub mod delta;
pub mod syncset;
pub mod transfer;
pub mod tree;
