//! xdprec-export: a call back as a file.
//!
//! - [`wav`]: G.711 u-law/A-law RTP to 16-bit PCM WAV, one channel per direction, lost packets
//!   as silence.
//! - the G.711 decoder is `xdprec_sip::g711`, shared with the replay tools' encoder.
//!
//! Output files are written to a temporary name beside the target and renamed when complete,
//! so a reader never sees half a file. Paths come from the command line, never from network
//! strings (a Call-ID is never part of a file name).
#![deny(unsafe_code)]

pub mod merge;
pub mod pcap;
pub mod wav;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no G.711 audio in this stream (payload type {payload_type:?}); only PCMU (0) and PCMA (8) can be written as WAV — export the call as pcap instead")]
    UnsupportedCodec { payload_type: Option<u8> },
    #[error("segment {path}: {message}")]
    Segment { path: PathBuf, message: String },
    #[error("segment {path} has no valid record at offset {offset}: the index and the store disagree (was the store changed after indexing?)")]
    MissingRecord { path: PathBuf, offset: u64 },
    #[error("segment {path} was recycled for a later segment while being read (sealed meanwhile); run the export again")]
    Recycled { path: PathBuf },
    #[error("the export would hold more than {frames_max} frames; narrow it (a time range with --since/--until)")]
    TooLarge { frames_max: usize },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `path` through a temporary file in the same directory, renamed on success.
pub fn write_atomically<F>(path: &Path, fill: F) -> Result<(), ExportError>
where
    F: FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
{
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
