//! The segment file format and the store layout. This module owns both: change them here.
//!
//! # Store layout
//!
//! A store is a directory (`WriterConfig::dir`). Segments live in `<store>/segments/`, flat.
//! Every name is built from sanitized config strings and numbers only, never from packet data.
//! `recorder` and `iface` are sanitized by [`sanitize_name`]: bytes outside `[A-Za-z0-9._-]`
//! become `_`, a leading `.` becomes `_`, empty becomes `_`, at most [`NAME_LEN_MAX`] bytes.
//! `+` cannot occur in a sanitized name, so it separates the fields unambiguously:
//!
//! | file | meaning |
//! |---|---|
//! | `R+I+qQ+SEQ.xseg.open` | the segment being written (at most one per `R+I+qQ`) |
//! | `R+I+qQ+SEQ+CREATED.xseg` | a sealed segment |
//! | `R+I+qQ+SEQ+CREATED.xseg.zst` | a sealed segment, zstd-compressed (the whole file prefix up to the end of the directory) |
//! | `R+I+qQ+TOKEN.xseg.spare` | a preallocated, mapped file waiting to become the next segment: new, or recycled from a segment that was sealed by copy (its old bytes lie after the end mark at 256); not a segment, readers ignore it |
//! | `*.tmp` | compression, or a seal's copy, in progress (removed by recovery) |
//! | `R+I+qQ.lock` | `flock`ed by the one writer of that queue |
//!
//! `SEQ` is a zero-padded 10-digit decimal sequence number per `R+I+qQ`, increasing by one per
//! segment; `CREATED` is the 20-digit creation time in ns since the Unix epoch. Readers see only
//! sealed segments and the one `.open` file being written. A segment becomes sealed by an atomic
//! rename to its final name after the directory is written and flushed: normally of a copy
//! (`<final name>.tmp`, written with `O_DIRECT` from the `.open` file), after which the `.open`
//! file is renamed to a `.spare` and recycled; in place (the `.open` file itself) when the copy
//! fails (disk full), at shutdown and in crash recovery. So for a moment a segment may exist
//! both sealed and `.open`: readers take the sealed one. A reader that holds an `.open` file
//! while it is recycled sees its header's `seq` change (`SegmentReader::is_current`).
//!
//! The spool. A writer configured with `spool` keeps its `.open` and `.spare` files in
//! `<store>/spool/` instead (same names), and its seals copy them into `<store>/segments/`.
//! `xdprec capture --spool ram` mounts a tmpfs there: a recycled file's pages then live in
//! memory only and the kernel never writes them back (on a disk the reused files stay dirty, so
//! every `dirty_expire_centisecs` the kernel writes them out, which is disk bandwidth and CPU
//! spent for nothing, and write-protects their pages, so the capture thread faults on them
//! again). A file in the spool survives `kill -9` (tmpfs lives until unmounted), not a power
//! loss: unsealed data reaches the disk at the seal (segment full, or `seal_after_ns`). Readers
//! list both directories; a segment that is in both (being moved) is read from `segments/`. A
//! segment sealed in place in the spool (its copy failed: disk full) stays readable there and
//! is moved to `segments/` by the writer's recovery at its next start.
//!
//! # File layout
//!
//! All integers are little-endian. A segment file is preallocated to its capacity
//! (`posix_fallocate`), so writes through the mapping never meet ENOSPC.
//!
//! ```text
//! 0                 file header (HEADER_LEN = 256 bytes)
//! 256               records, each 8-byte aligned, back to back
//! records_end       stream directory (sealed segments only), right after the last record
//! dir_end           zeros up to the capacity; the tail is deallocated (a hole) at seal, so the
//!                   logical size stays the capacity (readers that mapped the open file never
//!                   fault) while the disk use is the used size
//! ```
//!
//! ## File header (256 bytes)
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `XDPRSEG\0` |
//! | 8 | 2 | format version (1) |
//! | 10 | 2 | header length (256) |
//! | 12 | 2 | record header length (32) |
//! | 14 | 2 | directory entry length (128) |
//! | 16 | 8 | capacity: the preallocated file size in bytes |
//! | 24 | 8 | created_ns: `now_ns` of the first append, ns since the Unix epoch (0 while a spare) |
//! | 32 | 8 | seq |
//! | 40 | 4 | queue |
//! | 44 | 4 | reserved (0) |
//! | 48 | 32 | recorder, sanitized, NUL-padded |
//! | 80 | 32 | interface, sanitized, NUL-padded |
//! | 112 | 4 | crc32c of bytes 0..112 |
//! | 116 | 4 | reserved (0) |
//! | 120 | 4 | seal magic `SEAL` (0 while open) |
//! | 124 | 4 | crc32c of the directory bytes |
//! | 128 | 8 | sealed_ns (wall clock at seal) |
//! | 136 | 8 | records_end |
//! | 144 | 8 | dir_offset (= records_end) |
//! | 152 | 8 | dir_len |
//! | 160 | 8 | packet records |
//! | 168 | 4 | crc32c of bytes 120..168 |
//! | 172 | 84 | reserved (0) |
//!
//! The seal part (120..172) is written last, after the directory. A reader that finds it
//! missing or invalid treats the file as unsealed and rebuilds the directory by scanning.
//!
//! ## Record (32-byte header + frame, padded to a multiple of 8)
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 4 | crc32c of bytes 4 .. 32 + cap_len (header rest and frame) |
//! | 4 | 4 | cap_len: captured length (frame bytes stored, at most [`FRAME_MAX`]) |
//! | 8 | 8 | ts_ns: capture time, ns since the Unix epoch |
//! | 16 | 4 | wire_len: length on the wire |
//! | 20 | 4 | stream_id (0 = untracked: no key, or the stream table was full) |
//! | 24 | 1 | class ([`xdprec_classify::Class`] as u8) |
//! | 25 | 1 | flags: bits 0..5 caller flags (`RECORD_FLAG_*`); bit 6 RTP fields valid; bit 7 stream definition |
//! | 26 | 2 | RTP sequence number (when bit 6) |
//! | 28 | 4 | RTP timestamp (when bit 6) |
//! | 32 | cap_len | frame bytes |
//!
//! The writer fills the frame and header fields first and the CRC last. A reader stops at the
//! first record whose length does not fit or whose CRC does not match: a torn write (crash in
//! the middle of a record) or the zeros after the last record end the segment there.
//!
//! **End mark.** Segment files are recycled (the writer reuses the file of a sealed segment,
//! see `writer.rs`), so the bytes after the last record may be an older segment's records with
//! valid CRCs. Before it writes a record, the writer therefore puts an *end mark* right after
//! where that record will end: 8 bytes, CRC 0 and cap_len `u32::MAX` (a length that cannot
//! fit, so every reader stops there). A record becomes valid only with its CRC, written last;
//! by then the mark after it is in place, so at any moment (a `kill -9` included) the valid
//! records are exactly this segment's. The directory of a sealed segment overwrites the last
//! mark.
//!
//! A *stream definition* record (flag bit 7) is written before the first packet of each stream
//! of the segment: its `stream_id` is the new id (ids are 1, 2, 3... in order of appearance),
//! its class the class of that first packet, its frame the 44-byte stream key:
//!
//! | off | size | key field |
//! |---|---|---|
//! | 0 | 1 | IP protocol (17 UDP, 6 TCP) |
//! | 1 | 1 | bit 0 src is IPv6, bit 1 dst is IPv6, bit 2 SSRC present |
//! | 2 | 2 | src port |
//! | 4 | 2 | dst port |
//! | 6 | 2 | reserved (0) |
//! | 8 | 4 | SSRC |
//! | 12 | 16 | src address (IPv4: first 4 bytes, rest 0) |
//! | 28 | 16 | dst address |
//!
//! So the file alone (with no directory) says which packet belongs to which stream: sealing
//! and crash recovery are the same scan.
//!
//! ## Stream directory (at dir_offset, dir_len bytes)
//!
//! ```text
//! 0    magic `XSEGDIR\0`
//! 8    u32 stream count N
//! 12   u32 entry length (128)
//! 16   u64 offset count M (records of tracked streams)
//! 24   u64 untracked packet records
//! 32   N entries of 128 bytes, sorted by stream id (streams with at least one packet)
//! ..   M u32: record offset / 8, grouped per stream; per stream in arrival order, except that
//!      RTP records are sorted by extended sequence number (arrival order among equals)
//! ```
//!
//! | off | size | entry field |
//! |---|---|---|
//! | 0 | 4 | stream id |
//! | 4 | 44 | stream key (as above) |
//! | 48 | 8 | first_ns |
//! | 56 | 8 | last_ns |
//! | 64 | 8 | packets |
//! | 72 | 8 | bytes (sum of wire lengths) |
//! | 80 | 4 | list start (index into the offsets) |
//! | 84 | 4 | list length |
//! | 88 | 1 | class (of the first packet) |
//! | 89 | 1 | bit 0: RTP statistics valid |
//! | 90 | 2 | RTP first (lowest) sequence number |
//! | 92 | 4 | RTP last extended sequence number (the first one's cycle is 0) |
//! | 96 | 8 | RTP lost (expected - distinct received) |
//! | 104 | 8 | RTP duplicates |
//! | 112 | 8 | RTP reordered (arrived after a higher sequence number, not duplicates) |
//! | 120 | 4 | RTP timestamp of the lowest sequence number |
//! | 124 | 4 | RTP timestamp of the highest sequence number |
//!
//! The writer reserves room for the directory as it appends (32 + 128 per stream + 4 per
//! tracked record), so the directory always fits in the preallocated file: sealing and
//! recovery never need disk space.
//!
//! Sizes: a record costs 32 bytes + the frame rounded up to 8 (a 214-byte G.711 frame: 248
//! bytes, plus 4 bytes of directory); a stream costs an 80-byte definition record and a
//! 128-byte directory entry.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::StreamKey;

pub const MAGIC: [u8; 8] = *b"XDPRSEG\0";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 256;
pub const RECORD_HEADER_LEN: usize = 32;
pub const RECORD_ALIGN: usize = 8;
pub const KEY_LEN: usize = 44;
pub const DIR_MAGIC: [u8; 8] = *b"XSEGDIR\0";
pub const DIR_HEADER_LEN: usize = 32;
pub const DIR_ENTRY_LEN: usize = 128;
pub const SEAL_MAGIC: u32 = u32::from_le_bytes(*b"SEAL");
/// Longest frame a record may hold (a reassembled 64 KiB datagram plus headers fits).
pub const FRAME_MAX: usize = 256 * 1024;
/// Longest sanitized recorder or interface name.
pub const NAME_LEN_MAX: usize = 32;
/// Smallest and largest segment capacity (offsets are stored as u32 / 8).
pub const CAPACITY_MIN: u64 = 64 * 1024;
pub const CAPACITY_MAX: u64 = 16 << 30;
/// Capacities are rounded up to this.
pub const CAPACITY_ALIGN: u64 = 4096;
/// Most stream ids a segment can define (the stream table limit is checked against it).
pub const STREAMS_MAX: u32 = 1 << 24;

/// Flag bits owned by the format (not caller flags).
pub const FLAG_RTP: u8 = 1 << 6;
pub const FLAG_STREAM_DEF: u8 = 1 << 7;
pub const CALLER_FLAGS_MASK: u8 = 0x3f;

/// Size of a record holding `cap_len` frame bytes.
pub const fn record_len(cap_len: usize) -> usize {
    (RECORD_HEADER_LEN + cap_len + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

/// Size of a stream definition record.
pub const DEF_RECORD_LEN: usize = record_len(KEY_LEN);

/// Directory bytes for `streams` streams and `tracked` records of tracked streams.
pub const fn dir_len(streams: u64, tracked: u64) -> u64 {
    DIR_HEADER_LEN as u64 + streams * DIR_ENTRY_LEN as u64 + tracked * 4
}

pub(crate) fn rd_u16(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_le_bytes(a)
}
pub(crate) fn rd_u32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}
pub(crate) fn rd_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}
pub(crate) fn wr_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn wr_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
pub(crate) fn wr_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// Maps a config string to a name safe in a file name (see the module doc).
pub fn sanitize_name(s: &str) -> String {
    let mut out = String::with_capacity(NAME_LEN_MAX);
    for (i, c) in s.chars().enumerate() {
        if out.len() >= NAME_LEN_MAX {
            break;
        }
        let ok = c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-';
        out.push(if !ok || (i == 0 && c == '.') { '_' } else { c });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// True when `s` is already a sanitized name.
pub fn is_sanitized(s: &str) -> bool {
    sanitize_name(s) == s
}

impl SegmentHeader {
    /// A header without the seal part.
    pub(crate) fn unsealed(
        recorder: String,
        iface: String,
        queue: u32,
        seq: u64,
        created_ns: u64,
        capacity: u64,
    ) -> Self {
        SegmentHeader {
            recorder,
            iface,
            queue,
            seq,
            created_ns,
            capacity,
            sealed: false,
            sealed_ns: 0,
            records_end: 0,
            dir_offset: 0,
            dir_len: 0,
            dir_crc: 0,
            packet_records: 0,
        }
    }
}

/// The decoded file header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub recorder: String,
    pub iface: String,
    pub queue: u32,
    pub seq: u64,
    pub created_ns: u64,
    /// Preallocated file size in bytes.
    pub capacity: u64,
    /// The seal part is present and valid: the directory below is authoritative.
    pub sealed: bool,
    pub sealed_ns: u64,
    /// Valid when sealed.
    pub records_end: u64,
    pub dir_offset: u64,
    pub dir_len: u64,
    pub dir_crc: u32,
    /// Packet records (stream definitions excluded); valid when sealed.
    pub packet_records: u64,
}

fn put_name(b: &mut [u8], off: usize, name: &str) {
    let dst = &mut b[off..off + NAME_LEN_MAX];
    dst.fill(0);
    let n = name.len().min(NAME_LEN_MAX);
    dst[..n].copy_from_slice(&name.as_bytes()[..n]);
}

fn get_name(b: &[u8], off: usize) -> Option<String> {
    let raw = &b[off..off + NAME_LEN_MAX];
    let n = raw.iter().position(|&c| c == 0).unwrap_or(NAME_LEN_MAX);
    let s = std::str::from_utf8(&raw[..n]).ok()?;
    // Names in files we did not write could be anything: accept only what we would write.
    if s.is_empty() || !is_sanitized(s) {
        return None;
    }
    Some(s.to_string())
}

/// Writes the static part of a header (the seal part is left zero).
pub(crate) fn write_header(b: &mut [u8], h: &SegmentHeader) {
    let b = &mut b[..HEADER_LEN];
    b.fill(0);
    b[0..8].copy_from_slice(&MAGIC);
    wr_u16(b, 8, VERSION);
    wr_u16(b, 10, HEADER_LEN as u16);
    wr_u16(b, 12, RECORD_HEADER_LEN as u16);
    wr_u16(b, 14, DIR_ENTRY_LEN as u16);
    wr_u64(b, 16, h.capacity);
    wr_u64(b, 24, h.created_ns);
    wr_u64(b, 32, h.seq);
    wr_u32(b, 40, h.queue);
    put_name(b, 48, &h.recorder);
    put_name(b, 80, &h.iface);
    let crc = crc32c::crc32c(&b[0..112]);
    wr_u32(b, 112, crc);
}

/// Rewrites seq and created_ns of a spare being activated.
pub(crate) fn activate_header(b: &mut [u8], seq: u64, created_ns: u64) {
    wr_u64(b, 24, created_ns);
    wr_u64(b, 32, seq);
    let crc = crc32c::crc32c(&b[0..112]);
    wr_u32(b, 112, crc);
}

/// Writes the seal part of the header.
pub(crate) fn write_seal(b: &mut [u8], h: &SegmentHeader) {
    wr_u32(b, 120, SEAL_MAGIC);
    wr_u32(b, 124, h.dir_crc);
    wr_u64(b, 128, h.sealed_ns);
    wr_u64(b, 136, h.records_end);
    wr_u64(b, 144, h.dir_offset);
    wr_u64(b, 152, h.dir_len);
    wr_u64(b, 160, h.packet_records);
    let crc = crc32c::crc32c(&b[120..168]);
    wr_u32(b, 168, crc);
}

/// Decodes a header; `Err` says what is wrong. `file_len` bounds the seal part's offsets.
pub(crate) fn read_header(b: &[u8], file_len: u64) -> Result<SegmentHeader, String> {
    if b.len() < HEADER_LEN {
        return Err(format!("shorter than the {HEADER_LEN}-byte header"));
    }
    if b[0..8] != MAGIC {
        return Err("bad magic (not a segment file)".into());
    }
    if crc32c::crc32c(&b[0..112]) != rd_u32(b, 112) {
        return Err("header checksum mismatch".into());
    }
    let version = rd_u16(b, 8);
    if version != VERSION {
        return Err(format!(
            "format version {version}, this build reads {VERSION}"
        ));
    }
    if rd_u16(b, 10) as usize != HEADER_LEN
        || rd_u16(b, 12) as usize != RECORD_HEADER_LEN
        || rd_u16(b, 14) as usize != DIR_ENTRY_LEN
    {
        return Err("unexpected header, record or directory entry length".into());
    }
    let recorder = get_name(b, 48).ok_or("invalid recorder name")?;
    let iface = get_name(b, 80).ok_or("invalid interface name")?;
    let mut h = SegmentHeader::unsealed(
        recorder,
        iface,
        rd_u32(b, 40),
        rd_u64(b, 32),
        rd_u64(b, 24),
        rd_u64(b, 16),
    );
    if rd_u32(b, 120) == SEAL_MAGIC && crc32c::crc32c(&b[120..168]) == rd_u32(b, 168) {
        let records_end = rd_u64(b, 136);
        let dir_offset = rd_u64(b, 144);
        let dir_len = rd_u64(b, 152);
        let ok = records_end >= HEADER_LEN as u64
            && records_end & (RECORD_ALIGN as u64 - 1) == 0
            && dir_offset == records_end
            && dir_len >= DIR_HEADER_LEN as u64
            && dir_offset
                .checked_add(dir_len)
                .is_some_and(|e| e <= file_len);
        if ok {
            h.sealed = true;
            h.dir_crc = rd_u32(b, 124);
            h.sealed_ns = rd_u64(b, 128);
            h.records_end = records_end;
            h.dir_offset = dir_offset;
            h.dir_len = dir_len;
            h.packet_records = rd_u64(b, 160);
        }
    }
    Ok(h)
}

/// A record as stored (validated).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawRecord<'a> {
    pub offset: u64,
    /// Offset of the next record.
    pub next: u64,
    pub ts_ns: u64,
    pub wire_len: u32,
    pub stream_id: u32,
    pub class: u8,
    pub flags: u8,
    pub rtp_seq: u16,
    pub rtp_ts: u32,
    pub frame: &'a [u8],
}

impl RawRecord<'_> {
    pub fn is_def(&self) -> bool {
        self.flags & FLAG_STREAM_DEF != 0
    }
    pub fn has_rtp(&self) -> bool {
        self.flags & FLAG_RTP != 0
    }
}

/// Validates and decodes the record at `off`, which must end by `end` (`end <= data.len()`).
pub(crate) fn parse_record(data: &[u8], off: u64, end: u64) -> Option<RawRecord<'_>> {
    parse_record_opt(data, off, end, true)
}

/// [`parse_record`], with the CRC check only when `verify`. Without it, only for records this
/// process wrote itself and whose end it knows (sealing its own segment): the bounds checks
/// stay, so a wrong length can still not read out of `data`.
pub(crate) fn parse_record_opt(
    data: &[u8],
    off: u64,
    end: u64,
    verify: bool,
) -> Option<RawRecord<'_>> {
    let end = end.min(data.len() as u64);
    if off & (RECORD_ALIGN as u64 - 1) != 0 || off < HEADER_LEN as u64 {
        return None;
    }
    let hdr_end = off.checked_add(RECORD_HEADER_LEN as u64)?;
    if hdr_end > end {
        return None;
    }
    let o = off as usize;
    let cap_len = rd_u32(data, o + 4) as usize;
    if cap_len > FRAME_MAX {
        return None;
    }
    let rec_end = o + RECORD_HEADER_LEN + cap_len;
    if rec_end as u64 > end {
        return None;
    }
    if verify && crc32c::crc32c(&data[o + 4..rec_end]) != rd_u32(data, o) {
        return None;
    }
    Some(RawRecord {
        offset: off,
        next: off + record_len(cap_len) as u64,
        ts_ns: rd_u64(data, o + 8),
        wire_len: rd_u32(data, o + 16),
        stream_id: rd_u32(data, o + 20),
        class: data[o + 24],
        flags: data[o + 25],
        rtp_seq: rd_u16(data, o + 26),
        rtp_ts: rd_u32(data, o + 28),
        frame: &data[o + RECORD_HEADER_LEN..rec_end],
    })
}

/// Fields of a record to write (frame apart).
pub(crate) struct RecordFields {
    pub ts_ns: u64,
    pub wire_len: u32,
    pub stream_id: u32,
    pub class: u8,
    pub flags: u8,
    pub rtp_seq: u16,
    pub rtp_ts: u32,
}

/// Writes a record into `dst` (exactly `record_len(frame.len())` bytes, zeroed beforehand):
/// frame and fields first, the CRC last, so that a torn write never validates.
///
/// Length of an end mark (see the module doc).
pub(crate) const END_MARK_LEN: usize = 8;

/// Writes an end mark at the start of `b`: a record header with CRC 0 and cap_len `u32::MAX`,
/// which no reader takes for a record (see the module doc).
pub(crate) fn write_end_mark(b: &mut [u8]) {
    wr_u32(b, 0, 0);
    wr_u32(b, 4, u32::MAX);
}

/// The CRC is computed over the header built on the stack and over the source frame, not
/// read back from `dst`: `dst` is a freshly mapped page the copy has just written, and reading
/// it back waited for those stores (a third of the capture thread's time went there).
pub(crate) fn write_record(dst: &mut [u8], f: &RecordFields, frame: &[u8]) {
    let end = RECORD_HEADER_LEN + frame.len();
    let mut hdr = [0u8; RECORD_HEADER_LEN];
    wr_u32(&mut hdr, 4, frame.len() as u32);
    wr_u64(&mut hdr, 8, f.ts_ns);
    wr_u32(&mut hdr, 16, f.wire_len);
    wr_u32(&mut hdr, 20, f.stream_id);
    hdr[24] = f.class;
    hdr[25] = f.flags;
    wr_u16(&mut hdr, 26, f.rtp_seq);
    wr_u32(&mut hdr, 28, f.rtp_ts);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&hdr[4..]), frame);
    dst[RECORD_HEADER_LEN..end].copy_from_slice(frame);
    dst[4..RECORD_HEADER_LEN].copy_from_slice(&hdr[4..]);
    wr_u32(dst, 0, crc);
}

fn put_addr(b: &mut [u8], off: usize, a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => {
            b[off..off + 4].copy_from_slice(&v4.octets());
            b[off + 4..off + 16].fill(0);
            false
        }
        IpAddr::V6(v6) => {
            b[off..off + 16].copy_from_slice(&v6.octets());
            true
        }
    }
}

fn get_addr(b: &[u8], off: usize, v6: bool) -> IpAddr {
    if v6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[off..off + 16]);
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        IpAddr::V4(Ipv4Addr::new(b[off], b[off + 1], b[off + 2], b[off + 3]))
    }
}

/// Encodes a stream key into `b[..KEY_LEN]`.
pub(crate) fn encode_key(b: &mut [u8], k: &StreamKey) {
    let b = &mut b[..KEY_LEN];
    b[0] = k.proto;
    let mut fl = 0u8;
    if put_addr(b, 12, &k.src) {
        fl |= 1;
    }
    if put_addr(b, 28, &k.dst) {
        fl |= 2;
    }
    if k.ssrc.is_some() {
        fl |= 4;
    }
    b[1] = fl;
    wr_u16(b, 2, k.src_port);
    wr_u16(b, 4, k.dst_port);
    wr_u16(b, 6, 0);
    wr_u32(b, 8, k.ssrc.unwrap_or(0));
}

pub(crate) fn decode_key(b: &[u8]) -> Option<StreamKey> {
    if b.len() < KEY_LEN || b[1] & !7 != 0 {
        return None;
    }
    let fl = b[1];
    Some(StreamKey {
        proto: b[0],
        src: get_addr(b, 12, fl & 1 != 0),
        dst: get_addr(b, 28, fl & 2 != 0),
        src_port: rd_u16(b, 2),
        dst_port: rd_u16(b, 4),
        ssrc: (fl & 4 != 0).then(|| rd_u32(b, 8)),
    })
}

/// File names (see the module doc). The prefix `R+I+qQ` of one writer.
pub(crate) fn prefix(recorder: &str, iface: &str, queue: u32) -> String {
    format!("{recorder}+{iface}+q{queue}")
}

pub(crate) fn open_name(prefix: &str, seq: u64) -> String {
    format!("{prefix}+{seq:010}.xseg.open")
}

pub(crate) fn sealed_name(prefix: &str, seq: u64, created_ns: u64) -> String {
    format!("{prefix}+{seq:010}+{created_ns:020}.xseg")
}

pub(crate) fn spare_name(prefix: &str, token: u64) -> String {
    format!("{prefix}+{token:010}.xseg.spare")
}

pub(crate) fn lock_name(prefix: &str) -> String {
    format!("{prefix}.lock")
}

/// What a segment file name says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ParsedName {
    pub recorder: String,
    pub iface: String,
    pub queue: u32,
    pub seq: u64,
    pub created_ns: Option<u64>,
    pub kind: NameKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameKind {
    Open,
    Sealed,
    Compressed,
    Spare,
}

fn digits(s: &str, n: usize) -> Option<u64> {
    if s.len() != n || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The segments among `names` that exist sealed (plain or compressed), as
/// (recorder, interface, queue, seq): an `.open` file of the same segment is then a copy's
/// source that was not yet recycled (see "Store layout").
pub(crate) fn sealed_segments(names: &[String]) -> HashSet<(String, String, u32, u64)> {
    names
        .iter()
        .filter_map(|n| parse_name(n))
        .filter(|p| matches!(p.kind, NameKind::Sealed | NameKind::Compressed))
        .map(|p| (p.recorder, p.iface, p.queue, p.seq))
        .collect()
}

impl ParsedName {
    /// (recorder, interface, queue, seq).
    pub(crate) fn segment_id(&self) -> (String, String, u32, u64) {
        (
            self.recorder.clone(),
            self.iface.clone(),
            self.queue,
            self.seq,
        )
    }
}

/// Parses a file name of the store; `None` for anything else (foreign, temporary, lock).
pub(crate) fn parse_name(name: &str) -> Option<ParsedName> {
    let (stem, kind) = if let Some(s) = name.strip_suffix(".xseg.open") {
        (s, NameKind::Open)
    } else if let Some(s) = name.strip_suffix(".xseg.spare") {
        (s, NameKind::Spare)
    } else if let Some(s) = name.strip_suffix(".xseg.zst") {
        (s, NameKind::Compressed)
    } else if let Some(s) = name.strip_suffix(".xseg") {
        (s, NameKind::Sealed)
    } else {
        return None;
    };
    let parts: Vec<&str> = stem.split('+').collect();
    let sealed = matches!(kind, NameKind::Sealed | NameKind::Compressed);
    let want = if sealed { 5 } else { 4 };
    if parts.len() != want {
        return None;
    }
    let (recorder, iface) = (parts[0], parts[1]);
    if recorder.is_empty() || !is_sanitized(recorder) || iface.is_empty() || !is_sanitized(iface) {
        return None;
    }
    let q = parts[2].strip_prefix('q')?;
    if q.is_empty() || q.len() > 10 || !q.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let queue: u32 = q.parse().ok()?;
    let seq = digits(parts[3], 10)?;
    let created_ns = if sealed {
        Some(digits(parts[4], 20)?)
    } else {
        None
    };
    Some(ParsedName {
        recorder: recorder.to_string(),
        iface: iface.to_string(),
        queue,
        seq,
        created_ns,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_safe_names_and_maps_the_rest() {
        assert_eq!(sanitize_name("rec-1.a_b"), "rec-1.a_b");
        assert_eq!(sanitize_name("../../etc/passwd"), "_._.._etc_passwd");
        assert_eq!(sanitize_name(""), "_");
        assert_eq!(sanitize_name("a+b c/d\0é"), "a_b_c_d__");
        assert_eq!(sanitize_name(&"x".repeat(100)).len(), NAME_LEN_MAX);
        assert!(!sanitize_name("..").starts_with('.'));
        assert!(!sanitize_name("a+b").contains('+'));
    }

    #[test]
    fn names_round_trip_and_foreign_names_are_refused() {
        let p = prefix("r1", "eth0.100", 3);
        let n = parse_name(&sealed_name(&p, 42, 1_700_000_000_000_000_000)).unwrap();
        assert_eq!(
            (n.recorder.as_str(), n.iface.as_str(), n.queue, n.seq),
            ("r1", "eth0.100", 3, 42)
        );
        assert_eq!(n.created_ns, Some(1_700_000_000_000_000_000));
        assert_eq!(parse_name(&open_name(&p, 7)).unwrap().kind, NameKind::Open);
        assert_eq!(
            parse_name(&spare_name(&p, 7)).unwrap().kind,
            NameKind::Spare
        );
        for bad in [
            "foo.xseg",
            "a+b+q1+12.xseg",
            "a+b+q1+0000000001.xseg",
            "a/b+c+q1+0000000001.xseg.open",
            "r+i+q1+0000000001.xseg.zst.tmp",
            "r+i+q1.lock",
            "r+i+qx+0000000001.xseg.open",
        ] {
            assert!(parse_name(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn key_round_trip_v4_v6_and_ssrc() {
        let keys = [
            StreamKey {
                proto: 17,
                src: "198.51.100.1".parse().unwrap(),
                dst: "203.0.113.9".parse().unwrap(),
                src_port: 5060,
                dst_port: 5061,
                ssrc: None,
            },
            StreamKey {
                proto: 6,
                src: "2001:db8::1".parse().unwrap(),
                dst: "198.51.100.2".parse().unwrap(),
                src_port: 1,
                dst_port: 65535,
                ssrc: Some(0xdeadbeef),
            },
        ];
        for k in keys {
            let mut b = [0u8; KEY_LEN];
            encode_key(&mut b, &k);
            assert_eq!(decode_key(&b), Some(k));
        }
    }

    #[test]
    fn header_round_trip_and_corruption_detected() {
        let mut b = vec![0u8; HEADER_LEN];
        let mut h = SegmentHeader::unsealed("r".into(), "eth0".into(), 2, 9, 5, 1 << 20);
        write_header(&mut b, &h);
        assert_eq!(read_header(&b, 1 << 20).unwrap(), h);
        h.sealed = true;
        h.records_end = 4096;
        h.dir_offset = 4096;
        h.dir_len = 64;
        h.sealed_ns = 77;
        write_seal(&mut b, &h);
        assert_eq!(read_header(&b, 1 << 20).unwrap(), h);
        b[130] ^= 1;
        assert!(!read_header(&b, 1 << 20).unwrap().sealed);
        b[20] ^= 1;
        assert!(read_header(&b, 1 << 20).is_err());
    }

    #[test]
    fn zeros_are_not_a_record_and_a_flipped_bit_is_caught() {
        let data = vec![0u8; 4096];
        assert!(parse_record(&data, HEADER_LEN as u64, 4096).is_none());
        let mut data = vec![0u8; 4096];
        let f = RecordFields {
            ts_ns: 1,
            wire_len: 60,
            stream_id: 0,
            class: 1,
            flags: 0,
            rtp_seq: 0,
            rtp_ts: 0,
        };
        let len = record_len(50);
        write_record(&mut data[HEADER_LEN..HEADER_LEN + len], &f, &[7u8; 50]);
        let r = parse_record(&data, HEADER_LEN as u64, 4096).unwrap();
        assert_eq!((r.frame.len(), r.next), (50, (HEADER_LEN + len) as u64));
        for i in 0..RECORD_HEADER_LEN + 50 {
            let mut d = data.clone();
            d[HEADER_LEN + i] ^= 0x10;
            assert!(
                parse_record(&d, HEADER_LEN as u64, 4096).is_none(),
                "flip at {i}"
            );
        }
        // A record that would run past the end is refused.
        assert!(parse_record(&data, HEADER_LEN as u64, (HEADER_LEN + 60) as u64).is_none());
    }
}
