//! Segment files: the on-disk format, writer, reader, recovery, stream directory.
//!
//! - [`format`](mod@format): the file format and the store layout, written down (read this first).
//! - [`SegmentWriter`]: one per capture thread. Appends records into a preallocated, mapped
//!   file; rotates when full or after `seal_after_ns`; a background sealer thread writes the
//!   stream directory, renames the file to its final name, and optionally compresses it.
//!   On open it recovers what a killed predecessor left behind.
//! - [`SegmentReader`]: reads sealed (`.xseg`), compressed (`.xseg.zst`) and open files;
//!   one stream's records in O(that stream), RTP in sequence order.
//! - [`list_segments`], [`compress_segment`].
#![deny(unsafe_code)]

pub mod format;

mod error;
mod reader;
mod scan;
mod sys;
mod writer;

use std::net::IpAddr;
use std::path::PathBuf;

pub use error::{AppendError, SegmentError};
pub use format::{sanitize_name, SegmentHeader};
pub use reader::{
    compress_segment, list_segments, segments_dir, spool_dir, DirectorySource, SegmentInfo,
    SegmentReader, DECOMPRESSED_MAX_BYTES,
};
pub use writer::{SegmentWriter, WriterStats};
pub use xdprec_classify::Class;

/// Synthetic record: a UDP datagram reassembled from IP fragments (the fragments themselves
/// are recorded too); export skips these.
pub const RECORD_FLAG_REASSEMBLED: u8 = 1;

/// What groups packets into a stream: the UDP/TCP 5-tuple, and the SSRC for RTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ssrc: Option<u32>,
}

/// RTP header fields of a packet the caller already parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpMeta {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub payload_type: u8,
}

/// Everything about a frame besides its bytes.
#[derive(Clone, Copy, Debug)]
pub struct RecordMeta<'a> {
    pub ts_ns: u64,
    pub wire_len: u32,
    pub class: Class,
    /// `RECORD_FLAG_*`; only bits 0..5 are stored (bits 6, 7 belong to the format).
    pub flags: u8,
    /// `None`: not tracked (stream id 0).
    pub key: Option<&'a StreamKey>,
    pub rtp: Option<RtpMeta>,
}

/// Where an append went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub segment_seq: u64,
    /// Byte offset of the record in the segment file.
    pub offset: u64,
    /// 0 = untracked.
    pub stream_id: u32,
}

/// Writer configuration.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// The store directory; segments go to `<dir>/segments/`.
    pub dir: PathBuf,
    /// Sanitized before use in a file name.
    pub recorder: String,
    /// Sanitized before use in a file name.
    pub iface: String,
    pub queue: u32,
    /// Preallocated size of each segment file (rounded up to 4 KiB).
    pub segment_bytes_max: u64,
    /// A segment with records is sealed this long after its first record.
    pub seal_after_ns: u64,
    /// Streams tracked per segment; beyond, records are written with stream id 0 (counted).
    pub streams_max: u32,
    /// Compress sealed segments with zstd on the sealer thread.
    pub compress_sealed: bool,
    /// Segment files beside the active one (1..=4): ready for the next rotation, or being
    /// sealed by copy. The writer keeps `spares + 1` files mapped and reuses them.
    pub spares: u32,
    /// Keep the active and spare files in `<dir>/spool/` instead of `<dir>/segments/`; sealed
    /// segments still go to `segments/` (copied). Meant for a tmpfs mounted there: the kernel
    /// then never writes back the reused files (see `format`, "Store layout"). The writer does
    /// not mount anything; any directory works.
    pub spool: bool,
}

impl WriterConfig {
    pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 256 << 20;
    pub const SEAL_AFTER_NS_DEFAULT: u64 = 60_000_000_000;
    pub const STREAMS_MAX_DEFAULT: u32 = 65536;
    /// One spare: the sealer copies a segment and returns its file (0.1-0.3 s for 256 MiB
    /// here) sooner than the next one fills at any rate one core records (0.7 s at 1.5 Mpps).
    pub const SPARES_DEFAULT: u32 = 1;

    /// A configuration with the defaults.
    pub fn new(dir: impl Into<PathBuf>, recorder: &str, iface: &str, queue: u32) -> Self {
        WriterConfig {
            dir: dir.into(),
            recorder: recorder.to_string(),
            iface: iface.to_string(),
            queue,
            segment_bytes_max: Self::SEGMENT_BYTES_MAX_DEFAULT,
            seal_after_ns: Self::SEAL_AFTER_NS_DEFAULT,
            streams_max: Self::STREAMS_MAX_DEFAULT,
            compress_sealed: false,
            spares: Self::SPARES_DEFAULT,
            spool: false,
        }
    }
}

/// RTP fields stored with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRtp {
    pub seq: u16,
    pub timestamp: u32,
}

/// One packet record read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Byte offset in the segment file (for [`SegmentReader::record_at`]).
    pub offset: u64,
    pub ts_ns: u64,
    pub wire_len: u32,
    pub class: Class,
    /// Caller flags (`RECORD_FLAG_*`).
    pub flags: u8,
    pub stream_id: u32,
    pub frame: &'a [u8],
    /// Present when the writer was given [`RtpMeta`].
    pub rtp: Option<RecordRtp>,
}

/// RTP statistics of a stream (from the records of one segment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RtpStreamStats {
    pub ssrc: u32,
    /// Lowest sequence number seen.
    pub first_seq: u16,
    /// Highest extended sequence number, counting cycles from `first_seq` (cycle 0).
    pub last_ext_seq: u32,
    /// Expected (`last_ext_seq - first_seq + 1`) minus distinct numbers received.
    pub lost: u64,
    /// Packets whose number was already received.
    pub duplicates: u64,
    /// Packets that arrived after a higher number (duplicates excluded).
    pub reordered: u64,
    /// RTP timestamp of the lowest and highest sequence number.
    pub first_ts: u32,
    pub last_ts: u32,
}

/// A stream of one segment: the directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: u32,
    pub key: StreamKey,
    /// Class of the first packet.
    pub class: Class,
    pub first_ns: u64,
    pub last_ns: u64,
    pub packets: u64,
    /// Sum of wire lengths.
    pub bytes: u64,
    pub rtp: Option<RtpStreamStats>,
}
