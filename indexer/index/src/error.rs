//! Errors of the indexer.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("index database query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("index state is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("segment {path}: {msg}")]
    Segment { path: PathBuf, msg: String },
    #[error("store {path}: {msg}")]
    Store { path: PathBuf, msg: String },
}

pub type Result<T, E = IndexError> = std::result::Result<T, E>;
