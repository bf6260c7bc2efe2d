//! pcap export: frames named by the index (segment file + record offset, or segment file +
//! stream id) read back from segments and written in time order, byte-identical, with their
//! original timestamps and wire lengths.
//!
//! Synthetic records (a UDP datagram reassembled from IP fragments, flag
//! `RECORD_FLAG_REASSEMBLED`) are never exported: in their place go the original fragments,
//! found in the same segment by source, destination and IP identification within
//! [`FRAGMENT_WINDOW_NS`] before the datagram completed.

use crate::ExportError;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::{Path, PathBuf};
use xdprec_classify::{Class, Classifier, ProbeConfig};
use xdprec_pcapio::PcapWriter;
use xdprec_segment::{list_segments, SegmentReader, RECORD_FLAG_REASSEMBLED};

/// How far back from a reassembled datagram its fragments are looked for (the capture's
/// reassembly timeout is shorter).
pub const FRAGMENT_WINDOW_NS: u64 = 30_000_000_000;

/// Frames a single export may hold in memory (a call); a larger call is refused with a
/// message rather than exhausting memory.
pub const CALL_FRAMES_MAX: usize = 4_000_000;

/// A record named by the index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FrameRef {
    /// One record (a SIP message).
    Record { segment: PathBuf, offset: u64 },
    /// Every record of one stream of one segment (RTP, RTCP).
    Stream { segment: PathBuf, stream_id: u32 },
}

/// A frame read back, owned.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Frame {
    pub ts_ns: u64,
    pub wire_len: u32,
    pub data: Vec<u8>,
    /// The recorder (segment header) that holds it.
    pub recorder: String,
}

/// Opens each segment once.
#[derive(Default)]
struct Readers {
    open: BTreeMap<PathBuf, SegmentReader>,
}

impl Readers {
    fn get(&mut self, path: &Path) -> Result<&SegmentReader, ExportError> {
        if !self.open.contains_key(path) {
            let r = SegmentReader::open(path).map_err(|e| ExportError::Segment {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            self.open.insert(path.to_path_buf(), r);
        }
        Ok(&self.open[path])
    }
}

/// Fails when an `.open` segment read through `readers` was recycled meanwhile: what was read
/// from it may be a later segment's (see `SegmentReader::is_current`).
fn check_current<'a>(
    mut readers: impl Iterator<Item = &'a SegmentReader>,
) -> Result<(), ExportError> {
    match readers.find(|r| !r.is_current()) {
        Some(r) => Err(ExportError::Recycled {
            path: r.path().to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Reads the frames `refs` name, with fragments in place of reassembled datagrams, sorted by
/// time (ties keep the segment order), duplicates (the same record named twice) removed.
pub fn collect(refs: &[FrameRef]) -> Result<Vec<Frame>, ExportError> {
    let mut readers = Readers::default();
    // (segment, offset) of every record to export: a set, so a record named twice goes once.
    let mut chosen: BTreeSet<(PathBuf, u64)> = BTreeSet::new();
    for r in refs {
        match r {
            FrameRef::Record { segment, offset } => {
                let reader = readers.get(segment)?;
                let Some(rec) = reader.record_at(*offset) else {
                    return Err(ExportError::MissingRecord {
                        path: segment.clone(),
                        offset: *offset,
                    });
                };
                if rec.flags & RECORD_FLAG_REASSEMBLED != 0 {
                    for off in fragments_of(reader, rec.ts_ns, rec.frame) {
                        chosen.insert((segment.clone(), off));
                    }
                } else {
                    chosen.insert((segment.clone(), *offset));
                }
            }
            FrameRef::Stream { segment, stream_id } => {
                let reader = readers.get(segment)?;
                for rec in reader.stream_records(*stream_id) {
                    if rec.flags & RECORD_FLAG_REASSEMBLED == 0 {
                        chosen.insert((segment.clone(), rec.offset));
                    }
                }
            }
        }
        if chosen.len() > CALL_FRAMES_MAX {
            return Err(ExportError::TooLarge {
                frames_max: CALL_FRAMES_MAX,
            });
        }
    }
    let mut frames = Vec::with_capacity(chosen.len());
    for (path, off) in chosen {
        let reader = readers.get(&path)?;
        if let Some(rec) = reader.record_at(off) {
            frames.push(Frame {
                ts_ns: rec.ts_ns,
                wire_len: rec.wire_len,
                data: rec.frame.to_vec(),
                recorder: reader.header().recorder.clone(),
            });
        }
    }
    check_current(readers.open.values())?;
    frames.sort_by_key(|f| f.ts_ns);
    Ok(frames)
}

/// Offsets of the FRAG records in `reader` that belong to the datagram reassembled into
/// `synthetic` (same source, destination and identification; at most FRAGMENT_WINDOW_NS
/// earlier).
fn fragments_of(reader: &SegmentReader, ts_ns: u64, synthetic: &[u8]) -> Vec<u64> {
    let mut classifier = Classifier::new(ProbeConfig::default());
    let Some(want) = ip_ident(synthetic) else {
        return Vec::new();
    };
    let lo = ts_ns.saturating_sub(FRAGMENT_WINDOW_NS);
    let mut out = Vec::new();
    let frag_streams: Vec<u32> = reader
        .streams()
        .iter()
        .filter(|s| s.class == Class::Frag && s.key.src == want.0 && s.key.dst == want.1)
        .map(|s| s.id)
        .collect();
    let candidates: Box<dyn Iterator<Item = _>> = if frag_streams.is_empty() {
        // Untracked fragments (stream table full): fall back to a scan of this segment.
        Box::new(
            reader
                .records()
                .filter(|r| r.class == Class::Frag && r.stream_id == 0),
        )
    } else {
        Box::new(
            frag_streams
                .into_iter()
                .flat_map(|id| reader.stream_records(id)),
        )
    };
    for rec in candidates {
        if rec.ts_ns < lo || rec.ts_ns > ts_ns {
            continue;
        }
        let c = classifier.classify(rec.frame);
        if let Some(f) = c.frag {
            if f.src == want.0 && f.dst == want.1 && want.2.is_none_or(|id| id == f.id) {
                out.push(rec.offset);
            }
        }
    }
    out
}

/// (src, dst, IP identification) of the synthetic datagram. The reassembler keeps the
/// fragments' identification in a synthetic IPv4 header; an IPv6 datagram has none (it lived in
/// the fragment header), so for IPv6 `None` is returned and every fragment between the same
/// addresses in the window matches.
fn ip_ident(frame: &[u8]) -> Option<(std::net::IpAddr, std::net::IpAddr, Option<u32>)> {
    let mut classifier = Classifier::new(ProbeConfig::default());
    let c = classifier.classify(frame);
    let t = c.tuple?;
    let ip = frame.get(c.l3_offset?..)?;
    let id = match ip.first()? >> 4 {
        4 if ip.len() >= 20 => Some(u32::from(u16::from_be_bytes([ip[4], ip[5]]))),
        _ => None,
    };
    Some((t.src, t.dst, id))
}

/// Writes `frames` (already in time order) as a nanosecond pcap, atomically.
pub fn write_pcap(path: &Path, frames: &[Frame]) -> Result<(), ExportError> {
    let snaplen = frames
        .iter()
        .map(|f| f.data.len() as u32)
        .max()
        .unwrap_or(0)
        .max(65535);
    crate::write_atomically(path, |w| {
        let mut pw = PcapWriter::new(w, snaplen)?;
        for f in frames {
            pw.write_packet(f.ts_ns, f.wire_len, &f.data)?;
        }
        pw.flush()
    })
}

/// Summary of a range export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeReport {
    pub segments: u64,
    pub frames: u64,
    pub bytes: u64,
}

/// `export --all`: every recorded frame of every store whose time is in [since, until], in time
/// order, merged across segments with a heap (memory: one cursor per segment, not the frames).
pub fn export_range(
    stores: &[PathBuf],
    since_ns: Option<u64>,
    until_ns: Option<u64>,
    out: &Path,
    mut progress: impl FnMut(u64),
) -> Result<RangeReport, ExportError> {
    let lo = since_ns.unwrap_or(0);
    let hi = until_ns.unwrap_or(u64::MAX);
    let mut readers = Vec::new();
    for store in stores {
        let segs = list_segments(store).map_err(|e| ExportError::Segment {
            path: store.clone(),
            message: e.to_string(),
        })?;
        for info in segs {
            let r = SegmentReader::open(&info.path).map_err(|e| ExportError::Segment {
                path: info.path.clone(),
                message: e.to_string(),
            })?;
            readers.push(r);
        }
    }
    let mut report = RangeReport {
        segments: readers.len() as u64,
        ..Default::default()
    };
    crate::write_atomically(out, |w| {
        let mut pw = PcapWriter::new(w, 262_144)?;
        let mut iters: Vec<_> = readers
            .iter()
            .map(|r| {
                r.records().filter(move |rec| {
                    rec.flags & RECORD_FLAG_REASSEMBLED == 0 && rec.ts_ns >= lo && rec.ts_ns <= hi
                })
            })
            .collect();
        // Heap of (time, segment index, record offset); each segment is read in file order,
        // which is arrival order for one capture thread.
        let mut heap = BinaryHeap::new();
        let mut heads: Vec<Option<xdprec_segment::Record<'_>>> = Vec::with_capacity(iters.len());
        for (i, it) in iters.iter_mut().enumerate() {
            let head = it.next();
            if let Some(r) = &head {
                heap.push(Reverse((r.ts_ns, i, r.offset)));
            }
            heads.push(head);
        }
        while let Some(Reverse((_, i, _))) = heap.pop() {
            if let Some(rec) = heads[i].take() {
                pw.write_packet(rec.ts_ns, rec.wire_len, rec.frame)?;
                report.frames += 1;
                report.bytes += rec.frame.len() as u64;
                if report.frames.is_multiple_of(100_000) {
                    progress(report.frames);
                }
            }
            heads[i] = iters[i].next();
            if let Some(r) = &heads[i] {
                heap.push(Reverse((r.ts_ns, i, r.offset)));
            }
        }
        pw.flush()?;
        // Refused (the file is not kept) when an `.open` segment was recycled while read.
        check_current(readers.iter()).map_err(|e| std::io::Error::other(e.to_string()))
    })?;
    Ok(report)
}
