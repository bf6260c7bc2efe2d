//! Errors of the segment subsystem.

use std::io;
use std::path::PathBuf;

/// Failures that name the operation and the file.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a valid segment file: {what}", path.display())]
    Format { path: PathBuf, what: String },
    #[error("invalid segment writer configuration: {0}")]
    Config(String),
    #[error(
        "{}: another writer holds this recorder/interface/queue (two capture processes on one store?)",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error("{}: decompressed segment exceeds the limit of {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error(
        "{}: the stream directory does not fit in the file and it cannot be extended: {source}",
        path.display()
    )]
    NoRoom {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SegmentError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        SegmentError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the underlying cause is ENOSPC (or EDQUOT).
    pub fn is_disk_full(&self) -> bool {
        let src = match self {
            SegmentError::Io { source, .. } | SegmentError::NoRoom { source, .. } => source,
            _ => return false,
        };
        is_disk_full(src)
    }
}

pub(crate) fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
}

/// Why one append did not store its record. Counted in `WriterStats`; the caller goes on.
/// Carries no heap data: building it costs nothing on the data path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("no segment to write to: the disk is full (counted in disk_full_drops)")]
    DiskFull,
    #[error(
        "frame of {cap_len} bytes does not fit in a record (max {max}; counted in too_large_drops)"
    )]
    TooLarge { cap_len: usize, max: usize },
    #[error("no segment to write to: creating one failed (see WriterStats::last_error)")]
    Unavailable,
}
