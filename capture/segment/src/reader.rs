//! Reading segments: sealed, compressed, or the one being written.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::SegmentError;
use crate::format::{
    parse_name, parse_record, rd_u32, rd_u64, read_header, sealed_segments, NameKind, RawRecord,
    SegmentHeader, CALLER_FLAGS_MASK, FLAG_STREAM_DEF, HEADER_LEN, RECORD_ALIGN,
};
use crate::scan::{decode_dir, scan};
use crate::sys;
use crate::{Class, Record, RecordRtp, StreamEntry};

/// Default limit on the decompressed size of a `.xseg.zst` file (see [`SegmentReader::open_with_limit`]).
pub const DECOMPRESSED_MAX_BYTES: u64 = 4 << 30;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Where the segments of a store live.
pub fn segments_dir(store: &Path) -> PathBuf {
    store.join("segments")
}

/// Where a spooled writer keeps its active and spare files (see `format`, "Store layout").
pub fn spool_dir(store: &Path) -> PathBuf {
    store.join("spool")
}

/// The file names in a store's segments and spool directories (either may be missing), each
/// with its directory, sorted by name, then directory (`segments/` before `spool/`).
pub(crate) fn store_files(
    segments: &Path,
    spool: &Path,
) -> Result<Vec<(String, PathBuf)>, SegmentError> {
    let mut names = Vec::new();
    for dir in [segments, spool] {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SegmentError::io("read directory", dir, e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| SegmentError::io("read directory", dir, e))?;
            if let Some(n) = ent.file_name().to_str() {
                names.push((n.to_string(), dir.to_path_buf()));
            }
        }
    }
    names.sort();
    Ok(names)
}

enum Data {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

enum Offsets {
    /// The sealed directory's offset list, read in place.
    InData { at: usize, count: usize },
    /// Built by scanning an unsealed file.
    Owned(Vec<u32>),
}

/// Whence the stream directory of a reader came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectorySource {
    /// The sealed directory in the file.
    Sealed,
    /// A scan of the records (unsealed file, or a sealed one whose directory failed its checks).
    Scanned,
}

/// A segment opened for reading.
pub struct SegmentReader {
    path: PathBuf,
    data: Data,
    header: SegmentHeader,
    end: u64,
    streams: Vec<StreamEntry>,
    lists: Vec<(u32, u32)>,
    offsets: Offsets,
    untracked: u64,
    source: DirectorySource,
}

impl SegmentReader {
    /// Opens a sealed, compressed or open segment.
    pub fn open(path: &Path) -> Result<SegmentReader, SegmentError> {
        Self::open_with_limit(path, DECOMPRESSED_MAX_BYTES)
    }

    /// Like [`open`](Self::open); a compressed file larger than `limit` once decompressed is refused.
    pub fn open_with_limit(path: &Path, limit: u64) -> Result<SegmentReader, SegmentError> {
        let mut file = File::open(path).map_err(|e| SegmentError::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| SegmentError::io("stat", path, e))?
            .len();
        let fmt = |what: &str| SegmentError::Format {
            path: path.into(),
            what: what.into(),
        };
        if len < 4 {
            return Err(fmt("file too short"));
        }
        let mut magic = [0u8; 4];
        file.read_exact_at(&mut magic, 0)
            .map_err(|e| SegmentError::io("read", path, e))?;
        let data = if magic == ZSTD_MAGIC {
            let dec = zstd::stream::read::Decoder::new(&mut file)
                .map_err(|e| SegmentError::io("zstd init", path, e))?;
            let mut buf = Vec::new();
            dec.take(limit.saturating_add(1))
                .read_to_end(&mut buf)
                .map_err(|e| SegmentError::io("zstd decompress", path, e))?;
            if buf.len() as u64 > limit {
                return Err(SegmentError::TooLarge {
                    path: path.into(),
                    limit,
                });
            }
            Data::Owned(buf)
        } else {
            Data::Mapped(sys::map_ro(&file).map_err(|e| SegmentError::io("mmap", path, e))?)
        };
        let bytes: &[u8] = match &data {
            Data::Mapped(m) => m,
            Data::Owned(v) => v,
        };
        let header =
            read_header(bytes, bytes.len() as u64).map_err(|what| SegmentError::Format {
                path: path.into(),
                what,
            })?;
        let mut r = SegmentReader {
            path: path.into(),
            header,
            end: 0,
            streams: Vec::new(),
            lists: Vec::new(),
            offsets: Offsets::Owned(Vec::new()),
            untracked: 0,
            source: DirectorySource::Scanned,
            data,
        };
        if !r.load_sealed_dir() {
            let s = scan(r.bytes(), HEADER_LEN as u64, r.bytes().len() as u64);
            r.end = s.end;
            r.streams = s.dir.streams;
            r.lists = s.dir.lists;
            r.offsets = Offsets::Owned(s.dir.offsets);
            r.untracked = s.dir.untracked;
            r.source = DirectorySource::Scanned;
        }
        Ok(r)
    }

    fn load_sealed_dir(&mut self) -> bool {
        let h = &self.header;
        if !h.sealed {
            return false;
        }
        let (off, len, crc, records_end) = (
            h.dir_offset as usize,
            h.dir_len as usize,
            h.dir_crc,
            h.records_end,
        );
        let bytes = self.bytes();
        let Some(d) = bytes.get(off..off.saturating_add(len)) else {
            return false;
        };
        if crc32c::crc32c(d) != crc {
            return false;
        }
        let Ok(dd) = decode_dir(bytes, off, len) else {
            return false;
        };
        let untracked = crate::format::rd_u64(bytes, off + 24);
        self.end = records_end;
        self.streams = dd.streams;
        self.lists = dd.lists;
        self.offsets = Offsets::InData {
            at: dd.offsets_at,
            count: dd.offsets_count,
        };
        self.untracked = untracked;
        self.source = DirectorySource::Sealed;
        true
    }

    fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Mapped(m) => m,
            Data::Owned(v) => v,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// False once the `.open` file this reader mapped has been recycled for a later segment
    /// (sealed by copy; see the format's "Store layout"): records read from it since then may
    /// be that later segment's. Always true for sealed and compressed files. A reader of an
    /// `.open` file checks it after reading and discards what it read when it is false; the
    /// segment is then found sealed, with the same records at the same offsets.
    pub fn is_current(&self) -> bool {
        if self.header.sealed {
            return true;
        }
        let Data::Mapped(m) = &self.data else {
            return true;
        };
        rd_u64(m, 32) == self.header.seq && rd_u64(m, 24) == self.header.created_ns
    }

    /// Offset just past the last valid record.
    pub fn records_end(&self) -> u64 {
        self.end
    }

    pub fn directory_source(&self) -> DirectorySource {
        self.source
    }

    /// Packet records without a stream (no key, or the writer's stream table was full).
    pub fn untracked_records(&self) -> u64 {
        self.untracked
    }

    /// Packet records in file order; stops at the first torn or invalid record.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        let data = self.bytes();
        let end = self.end;
        let mut off = HEADER_LEN as u64;
        std::iter::from_fn(move || loop {
            let r = parse_record(data, off, end)?;
            off = r.next;
            if !r.is_def() {
                return Some(to_record(&r));
            }
        })
    }

    /// The packet record at `offset` (from [`Record::offset`] or `Appended::offset`), if valid.
    pub fn record_at(&self, offset: u64) -> Option<Record<'_>> {
        let r = parse_record(self.bytes(), offset, self.end)?;
        (!r.is_def()).then(|| to_record(&r))
    }

    /// The stream directory (for an unsealed file: built by scanning), sorted by id.
    pub fn streams(&self) -> &[StreamEntry] {
        &self.streams
    }

    /// The directory entry of a stream.
    pub fn stream(&self, stream_id: u32) -> Option<&StreamEntry> {
        let i = self
            .streams
            .binary_search_by_key(&stream_id, |s| s.id)
            .ok()?;
        Some(&self.streams[i])
    }

    /// The records of one stream in O(that stream): arrival order, RTP in extended sequence
    /// order (duplicates kept, next to their original). Invalid records are skipped.
    pub fn stream_records(&self, stream_id: u32) -> impl Iterator<Item = Record<'_>> {
        let (start, len) = self
            .streams
            .binary_search_by_key(&stream_id, |s| s.id)
            .map_or((0, 0), |i| self.lists[i]);
        (start as usize..start as usize + len as usize).filter_map(move |i| {
            let off8 = match &self.offsets {
                Offsets::InData { at, count } => {
                    if i >= *count {
                        return None;
                    }
                    rd_u32(self.bytes(), at + i * 4)
                }
                Offsets::Owned(v) => *v.get(i)?,
            };
            self.record_at(u64::from(off8) * RECORD_ALIGN as u64)
        })
    }
}

fn to_record<'a>(r: &RawRecord<'a>) -> Record<'a> {
    Record {
        offset: r.offset,
        ts_ns: r.ts_ns,
        wire_len: r.wire_len,
        class: Class::from_u8(r.class),
        flags: r.flags & CALLER_FLAGS_MASK,
        stream_id: r.stream_id,
        frame: r.frame,
        rtp: (r.has_rtp() && r.flags & FLAG_STREAM_DEF == 0).then_some(RecordRtp {
            seq: r.rtp_seq,
            timestamp: r.rtp_ts,
        }),
    }
}

/// A segment file of a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub sealed: bool,
    pub compressed: bool,
    pub recorder: String,
    pub iface: String,
    pub queue: u32,
    pub seq: u64,
    /// From the name (sealed) or the header (open).
    pub created_ns: u64,
}

/// The segments of a store (sealed, compressed and open), sorted by creation time, then
/// recorder, interface, queue, seq. Ignores files that are not segments (spares, temporary
/// files, locks, foreign files).
pub fn list_segments(store: &Path) -> Result<Vec<SegmentInfo>, SegmentError> {
    let mut names = store_files(&segments_dir(store), &spool_dir(store))?;
    // Of a segment that is in both (moved out of the spool, the original not yet removed),
    // the one in `segments/` (sorted first) is listed.
    names.dedup_by(|b, a| a.0 == b.0);
    let (names, dirs): (Vec<String>, Vec<PathBuf>) = names.into_iter().unzip();
    let sealed = sealed_segments(&names);
    let mut out = Vec::new();
    for (name, dir) in names.iter().zip(&dirs) {
        let Some(p) = parse_name(name) else { continue };
        let path = dir.join(name);
        let created_ns = match p.kind {
            NameKind::Spare => continue,
            // Sealed by copy, its `.open` source not yet recycled: the sealed one counts.
            NameKind::Open if sealed.contains(&p.segment_id()) => continue,
            // Both forms exist only between the rename of the `.zst` and the removal.
            NameKind::Sealed if names.binary_search(&format!("{name}.zst")).is_ok() => continue,
            NameKind::Sealed | NameKind::Compressed => p.created_ns.unwrap_or(0),
            NameKind::Open => {
                let mut b = [0u8; HEADER_LEN];
                let ok = File::open(&path)
                    .and_then(|f| f.read_exact_at(&mut b, 0))
                    .is_ok();
                match (ok, read_header(&b, u64::MAX)) {
                    (true, Ok(h)) => h.created_ns,
                    _ => 0,
                }
            }
        };
        out.push(SegmentInfo {
            path,
            sealed: p.kind != NameKind::Open,
            compressed: p.kind == NameKind::Compressed,
            recorder: p.recorder,
            iface: p.iface,
            queue: p.queue,
            seq: p.seq,
            created_ns,
        });
    }
    out.sort_by(|a, b| {
        (a.created_ns, &a.recorder, &a.iface, a.queue, a.seq).cmp(&(
            b.created_ns,
            &b.recorder,
            &b.iface,
            b.queue,
            b.seq,
        ))
    });
    Ok(out)
}

/// zstd level for sealed segments: fast, still about 2-4x on RTP-heavy captures.
const ZSTD_LEVEL: i32 = 3;

/// Compresses a sealed `.xseg` into `.xseg.zst` (the bytes up to the end of the directory)
/// via a temporary file, fsync and rename; then removes the original.
pub fn compress_segment(path: &Path) -> Result<PathBuf, SegmentError> {
    let file = File::open(path).map_err(|e| SegmentError::io("open", path, e))?;
    let map = sys::map_ro(&file).map_err(|e| SegmentError::io("mmap", path, e))?;
    let h = read_header(&map, map.len() as u64).map_err(|what| SegmentError::Format {
        path: path.into(),
        what,
    })?;
    if !h.sealed || !path.to_string_lossy().ends_with(".xseg") {
        return Err(SegmentError::Format {
            path: path.into(),
            what: "only sealed .xseg files are compressed".into(),
        });
    }
    let used = (h.dir_offset + h.dir_len) as usize;
    let mut dst = path.as_os_str().to_owned();
    dst.push(".zst");
    let dst = PathBuf::from(dst);
    let mut tmp = dst.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> Result<(), SegmentError> {
        let out = File::create(&tmp).map_err(|e| SegmentError::io("create", &tmp, e))?;
        let mut enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)
            .map_err(|e| SegmentError::io("zstd init", &tmp, e))?;
        enc.write_all(&map[..used])
            .map_err(|e| SegmentError::io("write", &tmp, e))?;
        let out = enc
            .finish()
            .map_err(|e| SegmentError::io("write", &tmp, e))?;
        out.sync_all()
            .map_err(|e| SegmentError::io("fsync", &tmp, e))?;
        fs::rename(&tmp, &dst).map_err(|e| SegmentError::io("rename", &tmp, e))
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(parent) = dst.parent() {
        let _ = File::open(parent).and_then(|d| d.sync_all());
    }
    drop(map);
    fs::remove_file(path).map_err(|e| SegmentError::io("remove", path, e))?;
    Ok(dst)
}
