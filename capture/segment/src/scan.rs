//! The one scan that turns records into a stream directory. Sealing, crash recovery and
//! readers of unsealed files all use it, so they cannot disagree. A writer's sealer builds
//! the same directory from what the writer noted while it wrote ([`dir_from_notes`]: the
//! stream table's totals and 12 bytes a record), through the same per-record step and the same
//! assembly, without reading the segment back: that read (a cache miss per record, spread
//! over 256 MiB) was 30 % of the capture core's time at 1.5 Mpps.
//!
//! Memory: 32 bytes per record of a tracked stream (16 in arrival order, 16 grouped by
//! stream), 4 for its offset, plus about 200 bytes per stream. For a 256 MiB segment of
//! 248-byte records that is about 40 MiB, on the sealer thread, not on the capture thread. The
//! sealer keeps these buffers from one seal to the next ([`ScanBufs`]): allocated afresh, they
//! were ~9,000 page faults per seal, and fresh memory is slow on this project's VMs.

use xdprec_classify::Class;

use crate::format::{
    decode_key, dir_len, encode_key, parse_record, parse_record_opt, rd_u16, rd_u32, rd_u64,
    wr_u16, wr_u32, wr_u64, DIR_ENTRY_LEN, DIR_HEADER_LEN, DIR_MAGIC, KEY_LEN, RECORD_ALIGN,
    STREAMS_MAX,
};
use crate::{RtpStreamStats, StreamEntry, StreamKey};

/// A stream directory in memory.
#[derive(Clone, Debug, Default)]
pub(crate) struct Directory {
    /// Streams with at least one packet, sorted by id.
    pub streams: Vec<StreamEntry>,
    /// Per entry of `streams`: (start, len) into the offset list.
    pub lists: Vec<(u32, u32)>,
    /// Record offsets / 8, grouped per stream.
    pub offsets: Vec<u32>,
    pub untracked: u64,
}

impl Directory {
    pub fn encoded_len(&self) -> u64 {
        dir_len(self.streams.len() as u64, self.offsets.len() as u64)
    }
}

pub(crate) struct Scanned {
    /// Offset just past the last valid record.
    pub end: u64,
    pub packets: u64,
    pub dir: Directory,
}

struct Build {
    key: StreamKey,
    class: Class,
    first_ns: u64,
    last_ns: u64,
    packets: u64,
    bytes: u64,
    rtp_seen: bool,
    max_ext: i64,
}

/// What a writer notes of each packet record it writes (see [`dir_from_notes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Note {
    /// Record offset / 8.
    pub off8: u32,
    /// 0: untracked.
    pub stream: u32,
    pub rtp_seq: u16,
    pub rtp: bool,
}

/// What a writer's stream table knows of one stream when its segment ends: exactly what a
/// scan would add up from the stream's records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamSum {
    pub key: StreamKey,
    /// Of the stream's definition record.
    pub class: u8,
    pub first_ns: u64,
    pub last_ns: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// Sort entry: (stream, sort key, record offset / 8). `key` = sort value << 2 | rtp << 1 | late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ent {
    key: u64,
    stream: u32,
    off8: u32,
}

/// The first extended sequence number: a multiple of 65536 far from 0, so that packets that
/// arrive late from before the first one stay positive.
const EXT_BASE: i64 = 1 << 32;

/// Buffers of a scan, kept by a caller that scans again and again (the sealer), so that each
/// scan reuses the memory of the last. Their size follows the largest segment scanned.
#[derive(Default)]
pub(crate) struct ScanBufs {
    builds: Vec<Build>,
    ents: Vec<Ent>,
    grouped: Vec<Ent>,
    next: Vec<usize>,
    dir: Directory,
}

impl ScanBufs {
    /// Takes back the vectors of a directory that a scan with these buffers returned.
    pub fn give_back(&mut self, dir: Directory) {
        self.dir = dir;
    }
}

/// Scans records from `start` until the first invalid one or `end`.
pub(crate) fn scan(data: &[u8], start: u64, end: u64) -> Scanned {
    scan_with(data, start, end, true, &mut ScanBufs::default())
}

/// [`scan`] with buffers to reuse; hand the result's directory back with
/// [`ScanBufs::give_back`] when done with it. `verify = false` skips the record CRCs (see
/// `parse_record_opt`): a writer sealing the segment it wrote itself, up to the end it knows
/// (the CRC pass over the whole segment was a fifth of the sealer's time).
pub(crate) fn scan_with(
    data: &[u8],
    start: u64,
    end: u64,
    verify: bool,
    bufs: &mut ScanBufs,
) -> Scanned {
    let builds = &mut bufs.builds;
    let ents = &mut bufs.ents;
    builds.clear();
    ents.clear();
    let mut packets = 0u64;
    let mut untracked = 0u64;
    let mut off = start;
    while let Some(r) = parse_record_opt(data, off, end, verify) {
        off = r.next;
        if r.is_def() {
            // Ids are dense and in order; anything else is not ours and is ignored.
            if r.stream_id as usize == builds.len() + 1 && builds.len() < STREAMS_MAX as usize {
                if let Some(key) = decode_key(r.frame) {
                    builds.push(Build {
                        key,
                        class: Class::from_u8(r.class),
                        first_ns: 0,
                        last_ns: 0,
                        packets: 0,
                        bytes: 0,
                        rtp_seen: false,
                        max_ext: 0,
                    });
                }
            }
            continue;
        }
        packets += 1;
        let sid = r.stream_id as usize;
        if sid == 0 || sid > builds.len() {
            untracked += 1;
            continue;
        }
        let b = &mut builds[sid - 1];
        if b.packets == 0 {
            b.first_ns = r.ts_ns;
            b.last_ns = r.ts_ns;
        }
        b.first_ns = b.first_ns.min(r.ts_ns);
        b.last_ns = b.last_ns.max(r.ts_ns);
        b.packets += 1;
        b.bytes += u64::from(r.wire_len);
        ents.push(Ent {
            key: sort_key(b, r.has_rtp().then_some(r.rtp_seq)),
            stream: sid as u32,
            off8: (r.offset / RECORD_ALIGN as u64) as u32,
        });
    }
    Scanned {
        end: off,
        packets,
        dir: assemble(data, end, untracked, bufs),
    }
}

/// The directory of a segment a writer wrote up to `end`, from its notes: `streams` in id
/// order (the stream table, ids 1..), `notes` one per packet record in the order written.
/// Gives exactly what [`scan_with`] gives for the same records (tested).
pub(crate) fn dir_from_notes(
    data: &[u8],
    end: u64,
    streams: impl Iterator<Item = StreamSum>,
    notes: &[Note],
    bufs: &mut ScanBufs,
) -> Directory {
    bufs.builds.clear();
    bufs.ents.clear();
    bufs.builds.extend(streams.map(|s| Build {
        key: s.key,
        class: Class::from_u8(s.class),
        first_ns: s.first_ns,
        last_ns: s.last_ns,
        packets: s.packets,
        bytes: s.bytes,
        rtp_seen: false,
        max_ext: 0,
    }));
    let mut untracked = 0u64;
    for n in notes {
        let b = (n.stream as usize)
            .checked_sub(1)
            .and_then(|i| bufs.builds.get_mut(i));
        let Some(b) = b else {
            untracked += 1;
            continue;
        };
        bufs.ents.push(Ent {
            key: sort_key(b, n.rtp.then_some(n.rtp_seq)),
            stream: n.stream,
            off8: n.off8,
        });
    }
    assemble(data, end, untracked, bufs)
}

/// A record's sort value in its stream: RTP by extended sequence number, others where they
/// arrived relative to RTP. `key` = sort value << 2 | rtp << 1 | late (see [`Ent`]).
fn sort_key(b: &mut Build, rtp_seq: Option<u16>) -> u64 {
    if let Some(seq) = rtp_seq {
        let (ext, late) = if !b.rtp_seen {
            b.rtp_seen = true;
            b.max_ext = EXT_BASE + i64::from(seq);
            (b.max_ext, false)
        } else {
            // RFC 3550 A.1 style: the distance to the highest number seen, as a signed 16-bit.
            let d = i64::from(seq.wrapping_sub(b.max_ext as u16) as i16);
            let e = b.max_ext + d;
            if e > b.max_ext {
                b.max_ext = e;
                (e, false)
            } else {
                (e, true)
            }
        };
        ((ext as u64) << 2) | 2 | u64::from(late)
    } else if b.rtp_seen {
        // A non-RTP record in an RTP stream stays where it arrived relative to RTP.
        (b.max_ext as u64) << 2
    } else {
        0
    }
}

/// Groups the entries of `bufs` by stream and builds the directory (RTP statistics, offset
/// lists): the part of a seal after the per-record step.
fn assemble(data: &[u8], end: u64, untracked: u64, bufs: &mut ScanBufs) -> Directory {
    let builds = &bufs.builds;
    group_by_stream(&mut bufs.ents, builds, &mut bufs.next, &mut bufs.grouped);
    let ents = &bufs.grouped;

    let mut dir = std::mem::take(&mut bufs.dir);
    dir.streams.clear();
    dir.lists.clear();
    dir.offsets.clear();
    dir.untracked = untracked;
    dir.offsets.reserve(ents.len());
    let mut i = 0;
    while i < ents.len() {
        let sid = ents[i].stream;
        let start = dir.offsets.len();
        let mut rtp = RtpAcc::default();
        while i < ents.len() && ents[i].stream == sid {
            let e = ents[i];
            dir.offsets.push(e.off8);
            if e.key & 2 != 0 {
                rtp.add((e.key >> 2) as i64, e.key & 1 != 0, e.off8);
            }
            i += 1;
        }
        let b = &builds[sid as usize - 1];
        let rtp_stats = rtp.finish(data, end, b.key.ssrc.unwrap_or(0));
        dir.streams.push(StreamEntry {
            id: sid,
            key: b.key,
            class: b.class,
            first_ns: b.first_ns,
            last_ns: b.last_ns,
            packets: b.packets,
            bytes: b.bytes,
            rtp: rtp_stats,
        });
        dir.lists
            .push((start as u32, (dir.offsets.len() - start) as u32));
    }
    dir
}

/// Streams per bucket of the first pass of [`group_by_stream`] are chosen so that there are
/// at most `1 << GROUP_FANOUT_BITS` buckets: few enough write positions for the caches and the
/// TLB to hold them all.
const GROUP_FANOUT_BITS: u32 = 8;

/// Orders `ents` by (stream, sort value, arrival) into `out`: a counting sort by stream (ids
/// are dense, `builds[id - 1].packets` entries each; stable, so arrival order stays), then a
/// stable sort by sort value inside each stream. Arrival order is nearly sequence order, which
/// the stable sort (run-adaptive) handles in about linear time. One comparison sort over the
/// whole segment cost the sealer ~100 ms per 256 MiB segment, a third of its CPU at 1 Mpps.
///
/// The counting sort runs in two stable passes (ents -> out by bucket of streams, out -> ents
/// by stream, then the vectors are swapped): with 30,000 interleaved streams one pass scatters
/// each entry to its own 4 KiB page, and those stores (TLB and cache misses) took half of
/// `assemble`'s samples in a profile at 1.75 Mpps. Each pass writes to at most 256 places at a
/// time, the second within its bucket's slice of the output. Measured: `assemble` 13.1 ->
/// 11.1 % of the capture core's samples; the sealer's CPU time did not move beyond noise.
/// `ents` is left unspecified.
fn group_by_stream(
    ents: &mut Vec<Ent>,
    builds: &[Build],
    next: &mut Vec<usize>,
    out: &mut Vec<Ent>,
) {
    next.clear();
    let mut at = 0usize;
    for b in builds {
        next.push(at);
        at += b.packets as usize;
    }
    debug_assert_eq!(at, ents.len());
    let fill = Ent {
        key: 0,
        stream: 0,
        off8: 0,
    };
    // Bucket of stream id `s`: (s - 1) >> shift, fewer than 1 << GROUP_FANOUT_BITS of them;
    // a bucket's entries start where its first stream's do.
    let shift = (usize::BITS - builds.len().leading_zeros()).saturating_sub(GROUP_FANOUT_BITS);
    let mut bucket_at = [0usize; 1 << GROUP_FANOUT_BITS];
    for (b, slot) in bucket_at.iter_mut().enumerate() {
        *slot = next.get(b << shift).copied().unwrap_or(at);
    }
    // Every entry's stream has a build, and builds count exactly its entries; an entry that
    // broke this (stream 0 or unknown) would be left out, never written out of place.
    out.clear();
    out.resize(ents.len(), fill);
    for &e in ents.iter() {
        let s = (e.stream as usize).wrapping_sub(1);
        if s < builds.len() {
            if let Some(slot) = bucket_at.get_mut(s >> shift) {
                if let Some(o) = out.get_mut(*slot) {
                    *o = e;
                    *slot += 1;
                }
            }
        }
    }
    ents.clear();
    ents.resize(out.len(), fill);
    for &e in out.iter() {
        if let Some(slot) = next.get_mut((e.stream as usize).wrapping_sub(1)) {
            if let Some(o) = ents.get_mut(*slot) {
                *o = e;
                *slot += 1;
            }
        }
    }
    std::mem::swap(ents, out);
    let mut start = 0usize;
    for b in builds {
        let end = start + b.packets as usize;
        if let Some(group) = out.get_mut(start..end) {
            if !group.is_sorted_by_key(|e| e.key >> 2) {
                group.sort_by_key(|e| e.key >> 2);
            }
        }
        start = end;
    }
}

#[derive(Default)]
struct RtpAcc {
    n: u64,
    unique: u64,
    dups: u64,
    reordered: u64,
    prev: Option<i64>,
    min: (i64, u32),
    max: (i64, u32),
}

impl RtpAcc {
    /// Called in sorted order (extended number, then arrival).
    fn add(&mut self, ext: i64, late: bool, off8: u32) {
        if self.n == 0 {
            self.min = (ext, off8);
            self.max = (ext, off8);
        }
        self.n += 1;
        if self.prev == Some(ext) {
            // Same number as the previous (earlier-arrived) one: a copy.
            self.dups += 1;
        } else {
            self.unique += 1;
            if late {
                self.reordered += 1;
            }
            if ext > self.max.0 {
                self.max = (ext, off8);
            }
        }
        self.prev = Some(ext);
    }

    fn finish(&self, data: &[u8], end: u64, ssrc: u32) -> Option<RtpStreamStats> {
        if self.n == 0 {
            return None;
        }
        let ts = |off8: u32| {
            parse_record(data, u64::from(off8) * RECORD_ALIGN as u64, end).map_or(0, |r| r.rtp_ts)
        };
        let span = (self.max.0 - self.min.0) as u64;
        let first_seq = self.min.0 as u16;
        Some(RtpStreamStats {
            ssrc,
            first_seq,
            last_ext_seq: u32::try_from(u64::from(first_seq) + span).unwrap_or(u32::MAX),
            lost: (span + 1).saturating_sub(self.unique),
            duplicates: self.dups,
            reordered: self.reordered,
            first_ts: ts(self.min.1),
            last_ts: ts(self.max.1),
        })
    }
}

/// Writes `dir` into `out` (exactly `dir.encoded_len()` bytes).
pub(crate) fn encode_dir(dir: &Directory, out: &mut [u8]) {
    out[0..8].copy_from_slice(&DIR_MAGIC);
    wr_u32(out, 8, dir.streams.len() as u32);
    wr_u32(out, 12, DIR_ENTRY_LEN as u32);
    wr_u64(out, 16, dir.offsets.len() as u64);
    wr_u64(out, 24, dir.untracked);
    for (i, (s, &(start, len))) in dir.streams.iter().zip(&dir.lists).enumerate() {
        let e =
            &mut out[DIR_HEADER_LEN + i * DIR_ENTRY_LEN..DIR_HEADER_LEN + (i + 1) * DIR_ENTRY_LEN];
        e.fill(0);
        wr_u32(e, 0, s.id);
        encode_key(&mut e[4..4 + KEY_LEN], &s.key);
        wr_u64(e, 48, s.first_ns);
        wr_u64(e, 56, s.last_ns);
        wr_u64(e, 64, s.packets);
        wr_u64(e, 72, s.bytes);
        wr_u32(e, 80, start);
        wr_u32(e, 84, len);
        e[88] = s.class.to_u8();
        if let Some(r) = &s.rtp {
            e[89] = 1;
            wr_u16(e, 90, r.first_seq);
            wr_u32(e, 92, r.last_ext_seq);
            wr_u64(e, 96, r.lost);
            wr_u64(e, 104, r.duplicates);
            wr_u64(e, 112, r.reordered);
            wr_u32(e, 120, r.first_ts);
            wr_u32(e, 124, r.last_ts);
        }
    }
    let off_base = DIR_HEADER_LEN + dir.streams.len() * DIR_ENTRY_LEN;
    for (i, o) in dir.offsets.iter().enumerate() {
        wr_u32(out, off_base + i * 4, *o);
    }
}

/// A decoded directory whose offset list stays in the file: `offsets_at` is where it starts.
pub(crate) struct DecodedDir {
    pub streams: Vec<StreamEntry>,
    pub lists: Vec<(u32, u32)>,
    pub offsets_at: usize,
    pub offsets_count: usize,
}

/// Decodes and checks the directory `data[off..off + len]` (CRC already checked by the caller).
pub(crate) fn decode_dir(data: &[u8], off: usize, len: usize) -> Result<DecodedDir, String> {
    let d = data
        .get(off..off.checked_add(len).ok_or("directory offset overflows")?)
        .ok_or("directory past the end of the file")?;
    if d.len() < DIR_HEADER_LEN || d[0..8] != DIR_MAGIC {
        return Err("bad directory magic".into());
    }
    let n = rd_u32(d, 8) as usize;
    if rd_u32(d, 12) as usize != DIR_ENTRY_LEN {
        return Err("unexpected directory entry length".into());
    }
    let m = rd_u64(d, 16);
    // Counts come from the file: compute in u128 so that no value can overflow.
    let want = DIR_HEADER_LEN as u128 + n as u128 * DIR_ENTRY_LEN as u128 + u128::from(m) * 4;
    if want != len as u128 {
        return Err("directory length does not match its counts".into());
    }
    let m = m as usize;
    let mut streams = Vec::with_capacity(n);
    let mut lists = Vec::with_capacity(n);
    let mut prev_id = 0u32;
    for i in 0..n {
        let e = &d[DIR_HEADER_LEN + i * DIR_ENTRY_LEN..DIR_HEADER_LEN + (i + 1) * DIR_ENTRY_LEN];
        let id = rd_u32(e, 0);
        if id <= prev_id {
            return Err("stream ids not increasing".into());
        }
        prev_id = id;
        let key = decode_key(&e[4..4 + KEY_LEN]).ok_or("invalid stream key")?;
        let (start, cnt) = (rd_u32(e, 80), rd_u32(e, 84));
        if u64::from(start) + u64::from(cnt) > m as u64 {
            return Err("stream record list out of bounds".into());
        }
        let rtp = (e[89] & 1 != 0).then(|| RtpStreamStats {
            ssrc: key.ssrc.unwrap_or(0),
            first_seq: rd_u16(e, 90),
            last_ext_seq: rd_u32(e, 92),
            lost: rd_u64(e, 96),
            duplicates: rd_u64(e, 104),
            reordered: rd_u64(e, 112),
            first_ts: rd_u32(e, 120),
            last_ts: rd_u32(e, 124),
        });
        streams.push(StreamEntry {
            id,
            key,
            class: Class::from_u8(e[88]),
            first_ns: rd_u64(e, 48),
            last_ns: rd_u64(e, 56),
            packets: rd_u64(e, 64),
            bytes: rd_u64(e, 72),
            rtp,
        });
        lists.push((start, cnt));
    }
    Ok(DecodedDir {
        streams,
        lists,
        offsets_at: off + DIR_HEADER_LEN + n * DIR_ENTRY_LEN,
        offsets_count: m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{
        record_len, write_record, RecordFields, FLAG_RTP, FLAG_STREAM_DEF, HEADER_LEN,
    };

    /// A segment image: `streams` RTP streams, `per` packets each, interleaved, some reordered.
    fn image(streams: u32, per: u16) -> Vec<u8> {
        let mut b = vec![0u8; 1 << 20];
        let mut at = HEADER_LEN;
        let mut put = |b: &mut Vec<u8>, f: RecordFields, frame: &[u8]| {
            let n = record_len(frame.len());
            write_record(&mut b[at..at + n], &f, frame);
            at += n;
        };
        for id in 1..=streams {
            let key = StreamKey {
                proto: 17,
                src: std::net::Ipv4Addr::new(198, 51, 100, id as u8).into(),
                dst: std::net::Ipv4Addr::new(203, 0, 113, 1).into(),
                src_port: 4000 + id as u16,
                dst_port: 5004,
                ssrc: Some(id),
            };
            let mut kb = [0u8; KEY_LEN];
            encode_key(&mut kb, &key);
            let f = RecordFields {
                ts_ns: 1,
                wire_len: 0,
                stream_id: id,
                class: 2,
                flags: FLAG_STREAM_DEF,
                rtp_seq: 0,
                rtp_ts: 0,
            };
            put(&mut b, f, &kb);
        }
        for i in 0..per {
            for id in 1..=streams {
                // Every 7th pair swapped: reordering for the sort to undo.
                let seq = if i % 7 == 3 {
                    i + 1
                } else if i % 7 == 4 {
                    i - 1
                } else {
                    i
                };
                let f = RecordFields {
                    ts_ns: 10 + u64::from(i),
                    wire_len: 60,
                    stream_id: id,
                    class: 2,
                    flags: FLAG_RTP,
                    rtp_seq: seq.wrapping_add(id as u16 * 1000),
                    rtp_ts: u32::from(seq) * 160,
                };
                put(&mut b, f, &[id as u8; 40]);
            }
        }
        b
    }

    fn encoded(s: &Scanned) -> (u64, u64, Vec<u8>) {
        let mut out = vec![0u8; s.dir.encoded_len() as usize];
        encode_dir(&s.dir, &mut out);
        (s.end, s.packets, out)
    }

    #[test]
    fn grouping_by_stream_is_a_stable_sort_by_stream_then_sequence() {
        // Stream counts below, at and above one bucket per stream (256), interleaved as a
        // live segment's are, with sort values out of order inside streams.
        for streams in [1u32, 7, 256, 257, 3000, 65536] {
            let mut ents = Vec::new();
            let mut builds = Vec::new();
            let mut x = 12345u64;
            for round in 0..5u64 {
                for s in 1..=streams {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    if (x >> 60) < 3 && round > 0 {
                        continue; // streams of different lengths
                    }
                    let seq = if (x >> 40) & 7 == 0 { round / 2 } else { round };
                    ents.push(Ent {
                        key: (seq << 2) | 2,
                        stream: s,
                        off8: ents.len() as u32,
                    });
                }
            }
            let mut count = vec![0u64; streams as usize + 1];
            for e in &ents {
                count[e.stream as usize] += 1;
            }
            for s in 1..=streams {
                builds.push(Build {
                    key: StreamKey {
                        proto: 17,
                        src: std::net::Ipv4Addr::new(198, 51, 100, 1).into(),
                        dst: std::net::Ipv4Addr::new(203, 0, 113, 1).into(),
                        src_port: 5004,
                        dst_port: 5004,
                        ssrc: Some(s),
                    },
                    class: Class::Rtp,
                    first_ns: 0,
                    last_ns: 0,
                    packets: count[s as usize],
                    bytes: 0,
                    rtp_seen: true,
                    max_ext: 0,
                });
            }
            let mut want = ents.clone();
            want.sort_by_key(|e| (e.stream, e.key >> 2));
            let (mut next, mut out) = (Vec::new(), Vec::new());
            group_by_stream(&mut ents, &builds, &mut next, &mut out);
            assert_eq!(out, want, "{streams} streams");
        }
    }

    #[test]
    fn reused_buffers_give_the_same_directory_as_fresh_ones() {
        let (a, b) = (image(5, 300), image(2, 1000));
        let mut bufs = ScanBufs::default();
        for data in [&a, &b, &a, &b] {
            let fresh = scan(data, HEADER_LEN as u64, data.len() as u64);
            let reused = scan_with(data, HEADER_LEN as u64, data.len() as u64, true, &mut bufs);
            assert_eq!(encoded(&reused), encoded(&fresh));
            assert!(fresh.packets > 0 && fresh.dir.streams.iter().all(|s| s.rtp.is_some()));
            bufs.give_back(reused.dir);
        }
    }

    #[test]
    fn hostile_directory_counts_are_refused_without_overflow() {
        let mut d = vec![0u8; 64];
        d[0..8].copy_from_slice(&DIR_MAGIC);
        wr_u32(&mut d, 12, DIR_ENTRY_LEN as u32);
        for (n, m) in [(u32::MAX, u64::MAX), (0, u64::MAX / 4 + 1), (1, 0), (0, 9)] {
            wr_u32(&mut d, 8, n);
            wr_u64(&mut d, 16, m);
            assert!(decode_dir(&d, 0, 64).is_err(), "n={n} m={m}");
        }
        // Consistent counts decode; an out-of-range list is refused.
        wr_u32(&mut d, 8, 0);
        wr_u64(&mut d, 16, 8);
        assert!(decode_dir(&d, 0, 64).is_ok());
        assert!(decode_dir(&d, 8, 64).is_err());
    }
}
