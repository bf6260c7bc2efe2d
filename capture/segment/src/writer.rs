//! The segment writer (one per capture thread), its sealer thread and its spare thread.
//!
//! Data path ([`SegmentWriter::append`]): a stream table lookup (keyed aHash, open
//! addressing, preallocated; the capture pipeline prefetches the slot a few packets ahead
//! with [`SegmentWriter::prefetch_stream`]), an end mark after the record (see `format`), one
//! `memcpy` into the mapping and a CRC computed over the source. No allocation, no lock, no
//! syscall, no logging; counters are plain fields of the writer.
//!
//! Rotation (full, or `seal_after_ns` after the first record): the writer hands the full
//! segment to the sealer thread and activates a spare: a preallocated file, mapped, its pages
//! faulted in writable (`MADV_POPULATE_WRITE`), so the capture thread takes no page fault
//! (write seq and time into its header, one `rename`). The capture thread never maps, unmaps
//! or syncs during a rotation.
//!
//! Sealing by copy, and recycled files. The sealer writes the directory after the last
//! record (in the mapping), then copies the used part of the file into a new file with
//! `O_DIRECT`, fsyncs and renames it to the sealed name; the old `.open` file becomes a spare
//! again (renamed, fresh header, pages re-faulted writable) and goes back to the writer's
//! pool. So a writer keeps a fixed set of `spares + 1` files, mapped and resident, and at
//! steady state no page of segment data is ever allocated, zeroed, written back from the page
//! cache or freed. Why: where the host backs guest memory lazily and takes freed memory back
//! at once (this project's VMs: `page_reporting` with `min_free_ms` 0), fresh page cache faulted
//! in at 0.3-0.5 GB/s, so making a 256 MiB spare took 0.05-0.95 s of the capture core and
//! decided whether spares came in time at 1.5 Mpps (benches/results/capture.md, rounds 2-6,
//! when each sealed segment's pages were dropped and new files populated). A copy by
//! `O_DIRECT` costs little CPU (the device reads the mapping). The disk sees the copy, plus
//! what the kernel writes back of the recycled files' dirty pages (a file that stays dirty,
//! every `dirty_expire_centisecs`, 30 s by default).
//! Older records stay in a recycled file after the current ones: the end mark (see `format`)
//! keeps every reader from taking them for this segment's.
//!
//! When the copy fails (disk full: it needs new space), the segment is sealed in place as
//! before (directory in the file, tail deallocated, rename; `seals_in_place`) and its file
//! leaves the pool; the spare thread makes a new one when there is room. `seal` (shutdown) and
//! crash recovery also seal in place. A rotation that finds no spare in the pool makes one on
//! the capture thread (`spare_misses`, a stall of up to hundreds of ms); the pool shrinks back
//! to `spares + 1` files as they return.
//!
//! Sharing a core. Helper threads run 10 nice levels below the capture thread, and every
//! syscall of theirs that walks page cache pages (populate, msync, fadvise) covers at most
//! `sys::SYSCALL_CHUNK_BYTES`: this kernel has no preemption, and one populate of 256 MiB kept
//! a capture thread on the same core waiting 35 ms, past what its ring holds.
//!
//! Sealing from notes. The sealer does not read the segment back: while it writes, the writer
//! notes 12 bytes per packet record (offset, stream, RTP sequence number) and its stream table
//! keeps each stream's totals (packets, bytes, first and last time); at the rotation both go
//! with the file to the sealer, which builds the directory from them with the scan's own
//! per-record step and assembly (`scan::dir_from_notes`; a test checks that the two agree).
//! Reading 256 MiB back cost a cache miss per record, 30 % of the capture core at 1.5 Mpps
//! when the sealer shares it. A segment of frames so short that its notes ran out (shorter
//! than 60 bytes on average, see `NOTE_RECORD_BYTES_MIN`) is scanned instead, without CRC
//! checks (the writer knows where its records end). Crash recovery runs the scan, with CRC
//! checks, on whatever `.open` file a killed writer left, and seals it in place.
//!
//! Memory: per stream 88 bytes of live state + 16 bytes of table slots (two slots per stream:
//! load factor <= 1/2), i.e. 104 bytes * `streams_max` allocated once at open (6.5 MiB for the
//! default 65536). Files of `segment_bytes_max`, mapped and resident from open on, whatever the
//! rate: `spares + 1` (the active one and the spares, ready or being sealed), plus one per
//! rotation that found none ready until it returns: 768 MiB per writer with the defaults (2
//! spares). Each file's notes: `segment_bytes_max / 96 * 12` bytes (32 MiB for 256 MiB) and
//! 88 bytes * `streams_max` (5.5 MiB), allocated and faulted in with the file and kept with it.
//! The sealer needs about 32 bytes per record more, kept from seal to seal.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memmap2::MmapMut;

use crate::error::{AppendError, SegmentError};
use crate::format::{
    self, activate_header, dir_len, encode_key, open_name, parse_name, prefix, read_header,
    record_len, sanitize_name, sealed_name, spare_name, write_end_mark, write_header, write_record,
    write_seal, NameKind, RecordFields, SegmentHeader, CALLER_FLAGS_MASK, CAPACITY_ALIGN,
    CAPACITY_MAX, CAPACITY_MIN, DEF_RECORD_LEN, END_MARK_LEN, FLAG_RTP, FLAG_STREAM_DEF, FRAME_MAX,
    HEADER_LEN, KEY_LEN, STREAMS_MAX,
};
use crate::reader::{compress_segment, segments_dir, spool_dir, store_files};
use crate::scan::{dir_from_notes, encode_dir, scan_with, Note, ScanBufs, Scanned, StreamSum};
use crate::sys;
use crate::{Appended, RecordMeta, StreamKey, WriterConfig};

/// Counters of one writer. Data-path counters are exact; the sealer's are copied in by
/// [`SegmentWriter::tick`] and at each rotation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Packet records written.
    pub records: u64,
    /// Frame bytes written.
    pub bytes: u64,
    /// Bytes of records written (headers, padding and stream definitions included).
    pub record_bytes: u64,
    pub segments_opened: u64,
    pub rotations_full: u64,
    pub rotations_time: u64,
    /// Segments sealed (by the sealer, by `seal`, and by recovery).
    pub seals: u64,
    pub seal_errors: u64,
    /// Unsealed segments found at open and sealed.
    pub recovered: u64,
    /// Packet records found in them.
    pub recovered_records: u64,
    /// Unsealed segments that could not be recovered (left in place, see `last_error`).
    pub recover_errors: u64,
    /// Appends refused because no segment could be created: disk full.
    pub disk_full_drops: u64,
    /// Appends refused: the frame does not fit in a record or a segment.
    pub too_large_drops: u64,
    /// Appends refused because no segment could be created for another reason.
    pub unavailable_drops: u64,
    /// Records written untracked (stream id 0) because the stream table was full.
    pub stream_table_full: u64,
    /// Records written untracked because they had no stream key.
    pub untracked_records: u64,
    /// Streams in the active segment.
    pub active_streams: u64,
    /// Bytes used in the active segment (header and records).
    pub segment_fill_bytes: u64,
    /// Rotations that found no spare ready and created one on the capture thread.
    pub spare_misses: u64,
    /// Spares the spare thread could not create.
    pub spare_errors: u64,
    pub compressed: u64,
    pub compress_errors: u64,
    /// Tail deallocations that failed (the file keeps its full size on disk).
    pub hole_punch_errors: u64,
    /// Segment files reused for a later segment after a seal by copy.
    pub recycled: u64,
    /// Segments sealed in place (not copied) because their copy failed, e.g. disk full; their
    /// file is not recycled.
    pub seals_in_place: u64,
    /// The longest a segment handed to the sealer took to come back as a spare (or to be
    /// sealed in place), ns. Rotations find no spare when this exceeds about `spares`
    /// segment fill times.
    pub seal_max_ns: u64,
    /// Rotations that waited because the sealer queue was full.
    pub seal_queue_waits: u64,
    /// The last error outside the data path, for a person to read.
    pub last_error: Option<String>,
}

/// A mapped segment file (a spare, or the active segment).
pub(crate) struct Active {
    file: File,
    map: MmapMut,
    path: PathBuf,
    seq: u64,
    capacity: u64,
    created_ns: u64,
    pos: u64,
    packets: u64,
    tracked: u64,
    streams: u64,
    /// `pos` is where this process's own records end (false: a file found at recovery).
    own: bool,
    /// What the writer noted of this segment for its sealer; goes round with the file.
    book: Book,
}

/// A writer's notes on one segment, so that the sealer need not read it back
/// ([`dir_from_notes`]): 12 bytes a packet record, and the stream table's totals (moved in
/// at the segment's end, swapped with the table's empty vector). Both vectors are allocated
/// and faulted in once, with the file, and kept from segment to segment: the capture thread
/// never allocates or faults for them.
#[derive(Default)]
pub(crate) struct Book {
    notes: Vec<Note>,
    streams: Vec<LiveStream>,
    /// A record found `notes` full (frames shorter than [`NOTE_RECORD_BYTES_MIN`] allow):
    /// this segment is sealed by a scan, as before notes.
    overflow: bool,
}

/// Notes are kept for records of at least this many bytes on average: a record of the
/// shortest Ethernet frame (60 bytes; 96 with its header). 12 bytes of notes per 96 of
/// segment: 32 MiB for a 256 MiB file.
const NOTE_RECORD_BYTES_MIN: u64 = 96;

impl Book {
    /// Vectors for a file of `capacity` bytes and a table of `streams_max`, faulted in now.
    fn new(capacity: u64, streams_max: u32) -> Book {
        // Written element by element (not a zeroed allocation, whose pages would fault in
        // later, on the capture thread).
        let n = (capacity / NOTE_RECORD_BYTES_MIN) as usize;
        let mut notes = Vec::with_capacity(n);
        notes.resize(n, Note::default());
        notes.clear();
        let mut streams = Vec::with_capacity(streams_max as usize);
        streams.resize(streams_max as usize, LiveStream::EMPTY);
        streams.clear();
        Book {
            notes,
            streams,
            overflow: false,
        }
    }

    fn clear(&mut self) {
        self.notes.clear();
        self.streams.clear();
        self.overflow = false;
    }
}

/// What every thread needs to create and seal segments.
#[derive(Clone)]
struct Ctx {
    /// Where sealed segments go (`<store>/segments`); the queue lock lives here too.
    seg_dir: PathBuf,
    /// `<store>/spool`: where the active and spare files live when `spooled`.
    spool_dir: PathBuf,
    spooled: bool,
    prefix: String,
    recorder: String,
    iface: String,
    queue: u32,
    capacity: u64,
    /// The stream table's size (for the notes of a new file).
    streams_max: u32,
    compress: bool,
}

#[derive(Default)]
struct Shared {
    seals: AtomicU64,
    seal_errors: AtomicU64,
    compressed: AtomicU64,
    compress_errors: AtomicU64,
    spare_errors: AtomicU64,
    hole_punch_errors: AtomicU64,
    recycled: AtomicU64,
    seals_in_place: AtomicU64,
    seal_max_ns: AtomicU64,
    /// Spare file names: `spare_name(prefix, token)`, unique per writer.
    tokens: AtomicU64,
    /// Spares in the pool (made or recycled) that the writer has not taken yet.
    spares_ready: AtomicU64,
    /// Segment files of this writer made by `create_spare` and not yet removed or sealed in
    /// place: the active one, the spares, the ones being sealed.
    slots_live: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Ctx {
    /// Where this writer's active and spare files live.
    fn work_dir(&self) -> &Path {
        if self.spooled {
            &self.spool_dir
        } else {
            &self.seg_dir
        }
    }
}

impl Shared {
    fn error(&self, e: &SegmentError) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(e.to_string());
        }
    }
}

enum Job {
    Seal(Active),
    Barrier(SyncSender<()>),
    Stop,
}

fn now_wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn sync_dir(dir: &Path) -> Result<(), SegmentError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SegmentError::io("fsync directory", dir, e))
}

/// The header of a spare (seq and time are filled at activation).
fn spare_header(ctx: &Ctx) -> SegmentHeader {
    SegmentHeader::unsealed(
        ctx.recorder.clone(),
        ctx.iface.clone(),
        ctx.queue,
        0,
        0,
        ctx.capacity,
    )
}

/// Creates and maps a preallocated spare with a header (seq and time filled at activation).
fn create_spare(ctx: &Ctx, shared: &Shared) -> Result<Active, SegmentError> {
    let token = shared.tokens.fetch_add(1, Ordering::Relaxed);
    let path = ctx.work_dir().join(spare_name(&ctx.prefix, token));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| SegmentError::io("create", &path, e))?;
    // Not MAP_POPULATE: on a shared mapping it maps pages read-only and the capture thread
    // would still take a write fault per page. `populate_write` faults them in writable here.
    let mapped = sys::preallocate(&file, ctx.capacity)
        .map_err(|e| SegmentError::io("posix_fallocate", &path, e))
        .and_then(|()| {
            sys::map_mut(&file, ctx.capacity, false).map_err(|e| SegmentError::io("mmap", &path, e))
        })
        .map(|mut m| {
            // Best effort: an unpopulated spare still works, its pages just fault in later.
            let _ = sys::populate_write(&mut m);
            m
        });
    let map = match mapped {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
    };
    shared.slots_live.fetch_add(1, Ordering::Relaxed);
    let book = Book::new(ctx.capacity, ctx.streams_max);
    Ok(Active::spare(file, map, path, ctx, book))
}

impl Active {
    /// A spare of this writer in `file`, mapped as `map` (new, or recycled): a spare header,
    /// an end mark where the first record goes, nothing written yet.
    fn spare(file: File, mut map: MmapMut, path: PathBuf, ctx: &Ctx, mut book: Book) -> Active {
        book.clear();
        write_header(&mut map, &spare_header(ctx));
        write_end_mark(&mut map[HEADER_LEN..HEADER_LEN + END_MARK_LEN]);
        Active {
            file,
            map,
            path,
            seq: 0,
            capacity: ctx.capacity,
            created_ns: 0,
            pos: HEADER_LEN as u64,
            packets: 0,
            tracked: 0,
            streams: 0,
            own: true,
            book,
        }
    }
}

/// Outcome of sealing one file.
pub(crate) struct Sealed {
    pub path: PathBuf,
    pub packets: u64,
}

/// A segment whose directory and seal header are written into its mapping, ready to be made
/// durable (in place or by copy).
struct Finished {
    header: SegmentHeader,
    /// End of the directory rounded up to a page (the bytes between are zeros).
    page_end: usize,
    packets: u64,
}

/// Scans a mapped segment, writes the directory after the last record, zeros the rest of that
/// page and writes the seal part of the header: everything a seal does in the mapping. `None`
/// when the segment holds no packet record. `own_end`: where this process's own records end
/// (no CRC checks needed up to there); `book`: the writer's notes on them, if complete (no
/// scan then).
fn finish_in_map(
    file: &File,
    map: &mut MmapMut,
    path: &Path,
    own_end: Option<u64>,
    book: Option<&Book>,
    bufs: &mut ScanBufs,
) -> Result<Option<Finished>, SegmentError> {
    let file_len = map.len() as u64;
    let mut h = read_header(map, file_len).map_err(|what| SegmentError::Format {
        path: path.into(),
        what,
    })?;
    let s = match (own_end, book) {
        (Some(end), Some(b)) if !b.overflow => Scanned {
            end,
            packets: b.notes.len() as u64,
            dir: dir_from_notes(
                map,
                end,
                b.streams.iter().map(LiveStream::sum),
                &b.notes,
                bufs,
            ),
        },
        (Some(end), _) => {
            let s = scan_with(map, HEADER_LEN as u64, end, false, bufs);
            // Our own records end exactly there; anything else and the CRCs decide.
            if s.end == end {
                s
            } else {
                bufs.give_back(s.dir);
                scan_with(map, HEADER_LEN as u64, file_len, true, bufs)
            }
        }
        (None, _) => scan_with(map, HEADER_LEN as u64, file_len, true, bufs),
    };
    if s.packets == 0 {
        bufs.give_back(s.dir);
        return Ok(None);
    }
    let dlen = s.dir.encoded_len();
    let dir_end = s.end + dlen;
    if dir_end > file_len {
        // Only for files a writer of another configuration left: ours always keep room.
        let new_len = dir_end.div_ceil(CAPACITY_ALIGN) * CAPACITY_ALIGN;
        sys::preallocate(file, new_len).map_err(|e| SegmentError::NoRoom {
            path: path.into(),
            source: e,
        })?;
        *map = sys::map_mut(file, new_len, false).map_err(|e| SegmentError::io("mmap", path, e))?;
    }
    let (start, end) = (s.end as usize, dir_end as usize);
    encode_dir(&s.dir, &mut map[start..end]);
    bufs.give_back(s.dir);
    // Whatever a torn record (or, in a recycled file, an older segment) left between the
    // directory and the next page: zeros.
    let page_end =
        (dir_end.div_ceil(CAPACITY_ALIGN) * CAPACITY_ALIGN).min(map.len() as u64) as usize;
    map[end..page_end].fill(0);
    h.sealed = true;
    h.sealed_ns = now_wall_ns();
    h.records_end = s.end;
    h.dir_offset = s.end;
    h.dir_len = dlen;
    h.dir_crc = crc32c::crc32c(&map[start..end]);
    h.packet_records = s.packets;
    write_seal(map, &h);
    Ok(Some(Finished {
        header: h,
        page_end,
        packets: s.packets,
    }))
}

fn final_path(seg_dir: &Path, h: &SegmentHeader) -> PathBuf {
    let pfx = prefix(&h.recorder, &h.iface, h.queue);
    seg_dir.join(sealed_name(&pfx, h.seq, h.created_ns))
}

/// Seals a finished segment in place: msync, deallocate the tail, fsync, rename to the sealed
/// name in the file's own directory (`segments/`, or `spool/` for a spooled writer), fsync
/// that directory.
fn seal_in_place(
    file: File,
    map: MmapMut,
    path: &Path,
    fin: &Finished,
    hole_punch_errors: &AtomicU64,
) -> Result<Sealed, SegmentError> {
    let mapped_len = map.len() as u64;
    let page_end = fin.page_end;
    // In pieces: see `sys::SYSCALL_CHUNK_BYTES`. Only the pages up to the directory's end were
    // written; the rest is punched out below (in a recycled file it holds older bytes).
    for (off, len) in sys::pieces(page_end, sys::SYSCALL_CHUNK_BYTES) {
        map.flush_range(off, len)
            .map_err(|e| SegmentError::io("msync", path, e))?;
    }
    drop(map);
    if mapped_len > page_end as u64
        && sys::punch_hole(&file, page_end as u64, mapped_len - page_end as u64).is_err()
    {
        hole_punch_errors.fetch_add(1, Ordering::Relaxed);
    }
    file.sync_all()
        .map_err(|e| SegmentError::io("fsync", path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let dst = final_path(dir, &fin.header);
    fs::rename(path, &dst).map_err(|e| SegmentError::io("rename", path, e))?;
    sync_dir(dir)?;
    Ok(Sealed {
        path: dst,
        packets: fin.packets,
    })
}

/// Seals a finished segment by copying it into a new file (`<sealed name>.tmp`, its first
/// `page_end` bytes, the logical size the capacity as for every sealed file), fsync, rename,
/// fsync the directory. The mapping stays as it is, to be recycled.
///
/// Why a copy: a segment file whose pages stay in memory can be reused without faulting in a
/// single fresh page, and on this project's VMs fresh memory is what made rotations late (see
/// the module doc). `O_DIRECT` writes straight from the mapping: no second copy in the page
/// cache, and little CPU on the core the capture thread shares.
fn seal_by_copy(map: &MmapMut, seg_dir: &Path, fin: &Finished) -> Result<Sealed, SegmentError> {
    let dst = final_path(seg_dir, &fin.header);
    let mut tmp = dst.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let copy = || -> Result<(), SegmentError> {
        let (out, direct) =
            sys::create_direct(&tmp).map_err(|e| SegmentError::io("create", &tmp, e))?;
        out.set_len(map.len() as u64)
            .map_err(|e| SegmentError::io("ftruncate", &tmp, e))?;
        for (off, len) in sys::pieces(fin.page_end, COPY_PIECE_BYTES) {
            out.write_all_at(&map[off..off + len], off as u64)
                .map_err(|e| SegmentError::io("write", &tmp, e))?;
        }
        out.sync_all()
            .map_err(|e| SegmentError::io("fsync", &tmp, e))?;
        if !direct {
            // Written through the page cache (a file system without O_DIRECT): do not keep it.
            let _ = sys::drop_cache(&out);
        }
        fs::rename(&tmp, &dst).map_err(|e| SegmentError::io("rename", &tmp, e))?;
        sync_dir(seg_dir)
    };
    match copy() {
        Ok(()) => Ok(Sealed {
            path: dst,
            packets: fin.packets,
        }),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// A seal by copy failed with `e` (disk full, say): reports it and seals the segment in its
/// own file instead (`seals_in_place`).
fn seal_in_place_after(
    e: SegmentError,
    file: File,
    map: MmapMut,
    path: &Path,
    fin: &Finished,
    shared: &Shared,
) -> Result<Sealed, SegmentError> {
    shared.error(&e);
    shared.seals_in_place.fetch_add(1, Ordering::Relaxed);
    seal_in_place(file, map, path, fin, &shared.hole_punch_errors)
}

/// A seal's copy is written in pieces of this size (one `pwrite` each).
const COPY_PIECE_BYTES: usize = 8 << 20;

/// Seals a mapped segment file that will not be reused: in place, or, for a file in the spool,
/// by copy into `segments/` (then the spool file is removed; in place in the spool when the
/// copy fails). A file with no packet record is removed instead (`packets == 0` in the
/// result). Used by `SegmentWriter::seal` and crash recovery.
fn seal_file(
    file: File,
    mut map: MmapMut,
    path: &Path,
    ctx: &Ctx,
    shared: &Shared,
    own_end: Option<u64>,
) -> Result<Sealed, SegmentError> {
    match finish_in_map(
        &file,
        &mut map,
        path,
        own_end,
        None,
        &mut ScanBufs::default(),
    )? {
        Some(fin) if path.parent() == Some(ctx.spool_dir.as_path()) => {
            match seal_by_copy(&map, &ctx.seg_dir, &fin) {
                Ok(s) => {
                    drop(map);
                    drop(file);
                    if let Err(e) = fs::remove_file(path) {
                        // Readers prefer the sealed copy; recovery removes it at the next start.
                        shared.error(&SegmentError::io("remove spooled segment", path, e));
                    }
                    Ok(s)
                }
                Err(e) => seal_in_place_after(e, file, map, path, &fin, shared),
            }
        }
        Some(fin) => seal_in_place(file, map, path, &fin, &shared.hole_punch_errors),
        None => {
            drop(map);
            drop(file);
            fs::remove_file(path).map_err(|e| SegmentError::io("remove empty segment", path, e))?;
            Ok(Sealed {
                path: path.into(),
                packets: 0,
            })
        }
    }
}

/// Counts a seal (and compresses the sealed file when configured) or its failure.
fn count_seal(r: &Result<Sealed, SegmentError>, ctx: &Ctx, shared: &Shared) {
    match r {
        Ok(s) if s.packets > 0 => {
            shared.seals.fetch_add(1, Ordering::Relaxed);
            if ctx.compress {
                match compress_segment(&s.path) {
                    Ok(_) => {
                        shared.compressed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        shared.compress_errors.fetch_add(1, Ordering::Relaxed);
                        shared.error(&e);
                    }
                }
            }
        }
        Ok(_) => {}
        Err(e) => {
            shared.seal_errors.fetch_add(1, Ordering::Relaxed);
            shared.error(e);
        }
    }
}

/// Seals a segment whose file is not reused (see [`seal_file`]). For `SegmentWriter::seal`, a
/// sealer that is gone, and recovery.
fn seal_active(a: Active, ctx: &Ctx, shared: &Shared) -> Result<Sealed, SegmentError> {
    let Active {
        file,
        map,
        path,
        pos,
        own,
        ..
    } = a;
    if own {
        shared.slots_live.fetch_sub(1, Ordering::Relaxed);
    }
    let own_end = own.then_some(pos);
    let r = seal_file(file, map, &path, ctx, shared, own_end);
    count_seal(&r, ctx, shared);
    r
}

/// The sealer's way: seals a segment of this writer by copy and returns its file, emptied, to
/// be the next spare; when the copy fails (disk full, say), seals it in place as before and
/// returns `None` (the spare thread makes a new file when there is room).
fn seal_and_recycle(
    mut a: Active,
    ctx: &Ctx,
    shared: &Shared,
    bufs: &mut ScanBufs,
) -> Option<Active> {
    let fin = match finish_in_map(
        &a.file,
        &mut a.map,
        &a.path,
        Some(a.pos),
        Some(&a.book),
        bufs,
    ) {
        Ok(Some(fin)) => fin,
        // No packet (a time rotation never starts an empty segment; a shutdown race can):
        // nothing to keep, the file is reused as it is.
        Ok(None) => return recycle(a, ctx, shared),
        Err(e) => {
            // Left as it is, `.open`, for recovery at the next start; no longer a spare.
            shared.slots_live.fetch_sub(1, Ordering::Relaxed);
            let r = Err(e);
            count_seal(&r, ctx, shared);
            return None;
        }
    };
    let r = seal_by_copy(&a.map, &ctx.seg_dir, &fin);
    match r {
        Ok(s) => {
            count_seal(&Ok(s), ctx, shared);
            recycle(a, ctx, shared)
        }
        Err(e) => {
            shared.slots_live.fetch_sub(1, Ordering::Relaxed);
            let Active {
                file, map, path, ..
            } = a;
            let r = seal_in_place_after(e, file, map, &path, &fin, shared);
            count_seal(&r, ctx, shared);
            None
        }
    }
}

/// Turns a sealed-by-copy (or empty) `.open` file back into a spare: renamed to a new spare
/// name first (readers stop seeing it), then a fresh header and an end mark at the first
/// record, then its pages faulted in writable again (those the kernel wrote back meanwhile
/// were write-protected). `None` when it cannot be (the file is removed).
fn recycle(a: Active, ctx: &Ctx, shared: &Shared) -> Option<Active> {
    let token = shared.tokens.fetch_add(1, Ordering::Relaxed);
    let path = ctx.work_dir().join(spare_name(&ctx.prefix, token));
    if let Err(e) = fs::rename(&a.path, &path) {
        shared.error(&SegmentError::io("rename", &a.path, e));
        discard(a, shared);
        return None;
    }
    let mut a = Active::spare(a.file, a.map, path, ctx, a.book);
    let _ = sys::populate_write(&mut a.map);
    shared.recycled.fetch_add(1, Ordering::Relaxed);
    Some(a)
}

/// Removes a spare's file for good.
fn discard(a: Active, shared: &Shared) {
    let _ = fs::remove_file(&a.path);
    shared.slots_live.fetch_sub(1, Ordering::Relaxed);
}

/// Offers a spare to the writer; removes it when the pool already holds enough.
fn offer(a: Active, pool: &SyncSender<Active>, shared: &Shared, target: u64) {
    // Count first: the writer decrements when it takes one.
    if shared.slots_live.load(Ordering::Relaxed) > target {
        // Made by a rotation that found no spare: back to the planned number of files.
        discard(a, shared);
        return;
    }
    shared.spares_ready.fetch_add(1, Ordering::Relaxed);
    if let Err(TrySendError::Full(a) | TrySendError::Disconnected(a)) = pool.try_send(a) {
        shared.spares_ready.fetch_sub(1, Ordering::Relaxed);
        discard(a, shared);
    }
}

fn sealer_main(
    ctx: Ctx,
    shared: Arc<Shared>,
    jobs: Receiver<Job>,
    pool: SyncSender<Active>,
    wake_spare: SyncSender<()>,
    target: u64,
) {
    sys::lower_thread_priority();
    let mut bufs = ScanBufs::default();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Seal(a) => {
                let t0 = Instant::now();
                match seal_and_recycle(a, &ctx, &shared, &mut bufs) {
                    Some(a) => offer(a, &pool, &shared, target),
                    // One file fewer: the spare thread makes another when it can.
                    None => {
                        let _ = wake_spare.try_send(());
                    }
                }
                let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                shared.seal_max_ns.fetch_max(ns, Ordering::Relaxed);
            }
            Job::Barrier(done) => {
                let _ = done.send(());
            }
            Job::Stop => break,
        }
    }
}

/// How long `open` waits for the spare thread's spares.
const FIRST_SPARE_WAIT: Duration = Duration::from_secs(5);

/// After a failed spare (disk full), the spare thread tries again this much later.
const SPARE_RETRY: Duration = Duration::from_secs(1);

/// Makes segment files until the writer has `target` of them (the active one, the spares,
/// the ones being sealed): at open, and after a seal in place or a failed recycling took one
/// away. Files normally come back from the sealer ([`recycle`]), so in steady state this
/// thread sleeps. Ends when `stop` is set.
fn spare_main(
    ctx: Ctx,
    shared: Arc<Shared>,
    pool: SyncSender<Active>,
    wake: Receiver<()>,
    stop: Arc<AtomicBool>,
    target: u64,
) {
    sys::lower_thread_priority();
    while !stop.load(Ordering::Relaxed) {
        if shared.slots_live.load(Ordering::Relaxed) >= target {
            // In short waits, so that a writer being dropped is not kept waiting.
            let _ = wake.recv_timeout(Duration::from_millis(50));
            continue;
        }
        match create_spare(&ctx, &shared) {
            Ok(a) => offer(a, &pool, &shared, target),
            Err(e) => {
                shared.spare_errors.fetch_add(1, Ordering::Relaxed);
                shared.error(&e);
                let until = Instant::now() + SPARE_RETRY;
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// Stream table lookup result.
enum Lookup {
    Found(u32),
    Vacant(usize),
    Full,
}

/// Live state of one stream of the active segment.
#[derive(Clone, Copy)]
struct LiveStream {
    key: StreamKey,
    slot: u32,
    /// Of the stream's first packet (its definition record's).
    class: u8,
    packets: u64,
    bytes: u64,
    first_ns: u64,
    last_ns: u64,
}

impl LiveStream {
    const EMPTY: LiveStream = LiveStream {
        key: StreamKey {
            proto: 0,
            src: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            dst: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            src_port: 0,
            dst_port: 0,
            ssrc: None,
        },
        slot: 0,
        class: 0,
        packets: 0,
        bytes: 0,
        first_ns: 0,
        last_ns: 0,
    };

    fn sum(&self) -> StreamSum {
        StreamSum {
            key: self.key,
            class: self.class,
            first_ns: self.first_ns,
            last_ns: self.last_ns,
            packets: self.packets,
            bytes: self.bytes,
        }
    }
}

/// Bounded open-addressing table: key -> stream id (its index in `entries` + 1).
struct StreamTable {
    /// `hash32 << 32 | id`; 0 = empty.
    slots: Vec<u64>,
    mask: usize,
    entries: Vec<LiveStream>,
    max: usize,
    // Keyed with random keys: packet data picks the keys, so a fixed hash could be flooded.
    // aHash, not std's SipHash-1-3: the lookup is on every packet, and SipHash over the
    // key's fields was 7 % of the capture thread's time at 1 Mpps.
    hasher: ahash::RandomState,
}

impl StreamTable {
    fn new(max: u32) -> Self {
        let n = (max as usize * 2).max(16).next_power_of_two();
        StreamTable {
            slots: vec![0; n],
            mask: n - 1,
            entries: Vec::with_capacity(max as usize),
            max: max as usize,
            hasher: ahash::RandomState::new(),
        }
    }

    fn lookup(&self, key: &StreamKey) -> (Lookup, u32) {
        let h = self.hasher.hash_one(key);
        let tag = (h >> 32) as u32;
        let mut i = h as usize & self.mask;
        // Load factor <= 1/2: an empty slot is always found.
        loop {
            let s = self.slots[i];
            if s == 0 {
                if self.entries.len() >= self.max {
                    return (Lookup::Full, tag);
                }
                return (Lookup::Vacant(i), tag);
            }
            if (s >> 32) as u32 == tag {
                let id = s as u32;
                if self.entries[id as usize - 1].key == *key {
                    return (Lookup::Found(id), tag);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    fn insert(&mut self, slot: usize, tag: u32, key: &StreamKey, class: u8) -> u32 {
        let id = self.entries.len() as u32 + 1;
        self.entries.push(LiveStream {
            key: *key,
            slot: slot as u32,
            class,
            ..LiveStream::EMPTY
        });
        self.slots[slot] = (u64::from(tag) << 32) | u64::from(id);
        id
    }

    fn clear(&mut self) {
        self.clear_slots();
        self.entries.clear();
    }

    /// Empties the hash slots; `entries` stay as they are (to be moved out).
    fn clear_slots(&mut self) {
        for e in &self.entries {
            self.slots[e.slot as usize] = 0;
        }
    }
}

/// Appends records of one capture thread. See the module doc.
pub struct SegmentWriter {
    ctx: Ctx,
    streams_max: u32,
    seal_after_ns: u64,
    active: Option<Active>,
    /// A spare taken from the spare thread (or made here) and not yet active.
    spare: Option<Active>,
    next_seq: u64,
    retry_after_ns: u64,
    /// The last failure to get a segment was ENOSPC.
    fail_disk_full: bool,
    table: StreamTable,
    stats: WriterStats,
    shared: Arc<Shared>,
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    spares: Option<Receiver<Active>>,
    spare_thread: Option<JoinHandle<()>>,
    spare_stop: Arc<AtomicBool>,
    _lock: File,
}

/// Most spares a writer keeps ready.
pub const SPARES_MAX: u32 = 4;

/// Seal jobs queued to the sealer before a rotation waits (`seal_queue_waits`).
const SEAL_QUEUE_LEN: usize = 8;

/// The spare pool's channel: more than the files that can exist at once (the active one, the
/// seal queue, the one being sealed, the spares, the held one), so no send ever waits.
const POOL_LEN: usize = SEAL_QUEUE_LEN + SPARES_MAX as usize + 4;

/// Puts an end mark at `at` (where the record about to be written ends), before that record
/// gets its CRC: see `format` ("End mark"). The fence keeps the compiler (and weaker CPUs than
/// x86) from moving the record's stores before the mark's.
#[inline]
fn put_end_mark(map: &mut MmapMut, at: usize) {
    if let Some(b) = map.get_mut(at..at + END_MARK_LEN) {
        write_end_mark(b);
    }
    fence(Ordering::Release);
}

/// Retry creating a segment at most this often after a failure.
const RETRY_NS: u64 = 1_000_000_000;

impl SegmentWriter {
    /// Opens the writer of (recorder, iface, queue): takes the queue lock, recovers any
    /// unsealed segment a previous writer left, and preallocates the first segment.
    pub fn open(cfg: WriterConfig) -> Result<SegmentWriter, SegmentError> {
        let capacity = cfg.segment_bytes_max.div_ceil(CAPACITY_ALIGN) * CAPACITY_ALIGN;
        if !(CAPACITY_MIN..=CAPACITY_MAX).contains(&capacity) {
            return Err(SegmentError::Config(format!(
                "segment_bytes_max {} is outside {CAPACITY_MIN}..={CAPACITY_MAX}",
                cfg.segment_bytes_max
            )));
        }
        if cfg.streams_max > STREAMS_MAX {
            return Err(SegmentError::Config(format!(
                "streams_max {} exceeds {STREAMS_MAX}",
                cfg.streams_max
            )));
        }
        if !(1..=SPARES_MAX).contains(&cfg.spares) {
            return Err(SegmentError::Config(format!(
                "spares {} is outside 1..={SPARES_MAX}",
                cfg.spares
            )));
        }
        if cfg.seal_after_ns == 0 {
            return Err(SegmentError::Config(
                "seal_after_ns must be positive".into(),
            ));
        }
        let seg_dir = segments_dir(&cfg.dir);
        fs::create_dir_all(&seg_dir)
            .map_err(|e| SegmentError::io("create directory", &seg_dir, e))?;
        let recorder = sanitize_name(&cfg.recorder);
        let iface = sanitize_name(&cfg.iface);
        let pfx = prefix(&recorder, &iface, cfg.queue);
        let lock_path = seg_dir.join(format::lock_name(&pfx));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| SegmentError::io("open lock file", &lock_path, e))?;
        if !sys::try_lock_exclusive(&lock).map_err(|e| SegmentError::io("flock", &lock_path, e))? {
            return Err(SegmentError::Locked { path: lock_path });
        }
        let spool_dir = spool_dir(&cfg.dir);
        if cfg.spool {
            fs::create_dir_all(&spool_dir)
                .map_err(|e| SegmentError::io("create directory", &spool_dir, e))?;
        }
        let ctx = Ctx {
            seg_dir: seg_dir.clone(),
            spool_dir,
            spooled: cfg.spool,
            prefix: pfx,
            recorder,
            iface,
            queue: cfg.queue,
            capacity,
            streams_max: cfg.streams_max,
            compress: cfg.compress_sealed,
        };
        let shared = Arc::new(Shared::default());
        let mut stats = WriterStats::default();
        let next_seq = recover(&ctx, &shared, &mut stats)?;

        // The first segment, preallocated now so the first packet does not wait for it. A full
        // disk is not fatal: capture runs, drops are counted, the spare thread retries.
        let first = create_spare(&ctx, &shared);
        // Segment files in all: the active one and `spares` more (ready, or being sealed).
        let target = u64::from(cfg.spares) + 1;
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(SEAL_QUEUE_LEN);
        // Room for every file that can come back at once, so that neither thread ever waits.
        let (pool_tx, pool_rx) = mpsc::sync_channel::<Active>(POOL_LEN);
        let (wake_tx, wake_rx) = mpsc::sync_channel::<()>(1);
        let thread = {
            let (ctx, shared, pool) = (ctx.clone(), shared.clone(), pool_tx.clone());
            std::thread::Builder::new()
                .name(format!("xseg-seal-q{}", cfg.queue))
                .spawn(move || sealer_main(ctx, shared, jobs_rx, pool, wake_tx, target))
                .map_err(|e| SegmentError::io("spawn sealer thread for", &seg_dir, e))?
        };
        let spare_stop = Arc::new(AtomicBool::new(false));
        let spare_thread = {
            let (ctx, shared, stop) = (ctx.clone(), shared.clone(), spare_stop.clone());
            std::thread::Builder::new()
                .name(format!("xseg-spare-q{}", cfg.queue))
                .spawn(move || spare_main(ctx, shared, pool_tx, wake_rx, stop, target))
                .map_err(|e| SegmentError::io("spawn spare thread for", &seg_dir, e))?
        };
        let mut w = SegmentWriter {
            ctx,
            streams_max: cfg.streams_max,
            seal_after_ns: cfg.seal_after_ns,
            active: None,
            spare: None,
            next_seq,
            retry_after_ns: 0,
            fail_disk_full: false,
            table: StreamTable::new(cfg.streams_max),
            stats,
            shared,
            jobs: Some(jobs_tx),
            thread: Some(thread),
            spares: Some(pool_rx),
            spare_thread: Some(spare_thread),
            spare_stop,
            _lock: lock,
        };
        match first {
            Ok(a) => {
                w.spare = Some(a);
                // And the spare thread's spares, before any packet: populating them takes up
                // to 0.95 s each where memory is fresh, and at full rate rotations come every
                // 0.7 s (256 MiB at 1.5 Mpps); made during the first seconds of traffic they
                // took the CPU the capture thread needed. A full disk was just reported by
                // `first`: no wait then.
                let until = Instant::now() + FIRST_SPARE_WAIT;
                while w.shared.spares_ready.load(Ordering::Relaxed) < u64::from(cfg.spares)
                    && w.shared.spare_errors.load(Ordering::Relaxed) == 0
                    && Instant::now() < until
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Err(e) => w.stats.last_error = Some(e.to_string()),
        }
        w.refresh_stats();
        Ok(w)
    }

    /// The most segment files a writer with `spares` can hold at once: the active one, the
    /// seal queue, the one being sealed, the spares ready and the one held for the next
    /// rotation (rotations that find no spare make more only while the seal queue has room).
    pub fn files_max(spares: u32) -> u64 {
        u64::from(spares) + SEAL_QUEUE_LEN as u64 + 3
    }

    /// Largest frame that fits in a record of an empty segment of this writer.
    pub fn frame_len_max(&self) -> usize {
        let room = self.ctx.capacity - HEADER_LEN as u64 - DEF_RECORD_LEN as u64 - dir_len(1, 1);
        (room as usize - format::RECORD_HEADER_LEN).min(FRAME_MAX) & !(format::RECORD_ALIGN - 1)
    }

    /// Spares ready in the pool now (the one held for the first rotation included).
    pub fn spares_ready(&self) -> u64 {
        self.shared.spares_ready.load(Ordering::Relaxed) + u64::from(self.spare.is_some())
    }

    /// Streams tracked per segment.
    pub fn streams_max(&self) -> u32 {
        self.streams_max
    }

    /// Segment capacity in bytes (after rounding).
    pub fn capacity(&self) -> u64 {
        self.ctx.capacity
    }

    /// Sequence number of the active segment, if one is active.
    pub fn active_seq(&self) -> Option<u64> {
        self.active.as_ref().map(|a| a.seq)
    }

    /// Path of the active (`.open`) segment, if one is active.
    pub fn active_path(&self) -> Option<&Path> {
        self.active.as_ref().map(|a| a.path.as_path())
    }

    /// The segments directory of this writer.
    pub fn segments_dir(&self) -> &Path {
        &self.ctx.seg_dir
    }

    /// A spare the spare thread has ready, without waiting.
    fn ready_spare(&mut self) -> Option<Active> {
        let a = self.spares.as_ref()?.try_recv().ok()?;
        self.shared.spares_ready.fetch_sub(1, Ordering::Relaxed);
        Some(a)
    }

    /// Sends a job to the sealer; `Err(job)` when the sealer is gone.
    // The job comes back as it went (a few hundred bytes, once per segment): no box needed.
    #[allow(clippy::result_large_err)]
    fn send(&mut self, job: Job) -> Result<(), Job> {
        let Some(tx) = &self.jobs else {
            return Err(job);
        };
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => {
                self.stats.seal_queue_waits += 1;
                tx.send(job).map_err(|e| e.0)
            }
            Err(TrySendError::Disconnected(job)) => Err(job),
        }
    }

    /// Takes a spare: the one held, one the spare thread made, or a new one made here.
    fn take_spare(&mut self) -> Result<Active, SegmentError> {
        if let Some(a) = self.spare.take().or_else(|| self.ready_spare()) {
            return Ok(a);
        }
        self.stats.spare_misses += 1;
        create_spare(&self.ctx, &self.shared)
    }

    /// Makes a segment active; counts and returns the reason when it cannot.
    fn activate(&mut self, now_ns: u64) -> Result<(), AppendError> {
        if now_ns < self.retry_after_ns {
            return Err(self.count_no_segment(None));
        }
        let mut a = match self.take_spare() {
            Ok(a) => a,
            Err(e) => {
                self.retry_after_ns = now_ns.saturating_add(RETRY_NS);
                return Err(self.count_no_segment(Some(e)));
            }
        };
        let seq = self.next_seq;
        activate_header(&mut a.map, seq, now_ns);
        let open = self.ctx.work_dir().join(open_name(&self.ctx.prefix, seq));
        if let Err(e) = fs::rename(&a.path, &open) {
            let e = SegmentError::io("rename", &a.path, e);
            discard(a, &self.shared);
            self.retry_after_ns = now_ns.saturating_add(RETRY_NS);
            return Err(self.count_no_segment(Some(e)));
        }
        self.next_seq += 1;
        a.path = open;
        a.seq = seq;
        a.created_ns = now_ns;
        self.table.clear();
        self.stats.segments_opened += 1;
        self.stats.active_streams = 0;
        self.stats.segment_fill_bytes = a.pos;
        self.active = Some(a);
        Ok(())
    }

    fn count_no_segment(&mut self, e: Option<SegmentError>) -> AppendError {
        if let Some(e) = e {
            self.fail_disk_full = e.is_disk_full();
            self.stats.last_error = Some(e.to_string());
        }
        if self.fail_disk_full {
            self.stats.disk_full_drops += 1;
            AppendError::DiskFull
        } else {
            self.stats.unavailable_drops += 1;
            AppendError::Unavailable
        }
    }

    /// Hands the active segment to the sealer (or seals it here when the sealer is gone).
    fn retire_active(&mut self) {
        let Some(mut a) = self.active.take() else {
            return;
        };
        // The segment's stream totals go with it to the sealer; the table gets the empty
        // vector the file brought (allocated with it).
        self.table.clear_slots();
        std::mem::swap(&mut self.table.entries, &mut a.book.streams);
        self.table.entries.clear();
        self.stats.active_streams = 0;
        self.stats.segment_fill_bytes = 0;
        if let Err(Job::Seal(a)) = self.send(Job::Seal(a)) {
            let _ = seal_active(a, &self.ctx, &self.shared);
        }
    }

    fn rotate(&mut self, now_ns: u64) -> Result<(), AppendError> {
        self.retire_active();
        self.refresh_stats();
        self.activate(now_ns)
    }

    /// Appends one record. Rotates when the segment is full or old. Errors are counted in
    /// [`WriterStats`]; the caller goes on with the next packet.
    pub fn append(
        &mut self,
        meta: &RecordMeta,
        frame: &[u8],
        now_ns: u64,
    ) -> Result<Appended, AppendError> {
        let cap_len = frame.len();
        if cap_len > self.frame_len_max() {
            self.stats.too_large_drops += 1;
            return Err(AppendError::TooLarge {
                cap_len,
                max: self.frame_len_max(),
            });
        }
        match &self.active {
            None => self.activate(now_ns)?,
            Some(a)
                if a.packets > 0 && now_ns.saturating_sub(a.created_ns) >= self.seal_after_ns =>
            {
                self.stats.rotations_time += 1;
                self.rotate(now_ns)?;
            }
            Some(_) => {}
        }
        let rec = record_len(cap_len) as u64;
        // Twice at most: a fresh segment always has room (frame_len_max).
        for _ in 0..2 {
            let Some(a) = &self.active else { break };
            let (lookup, tag) = match meta.key {
                Some(k) => {
                    let (l, t) = self.table.lookup(k);
                    (Some(l), t)
                }
                None => (None, 0),
            };
            let new_stream = matches!(lookup, Some(Lookup::Vacant(_)));
            let tracked = matches!(lookup, Some(Lookup::Found(_) | Lookup::Vacant(_)));
            let need = rec + if new_stream { DEF_RECORD_LEN as u64 } else { 0 };
            let dir_after = dir_len(
                a.streams + u64::from(new_stream),
                a.tracked + u64::from(tracked),
            );
            if a.pos + need + dir_after > a.capacity {
                self.stats.rotations_full += 1;
                self.rotate(now_ns)?;
                continue;
            }
            let stream_id = match (lookup, meta.key) {
                (Some(Lookup::Found(id)), _) => id,
                (Some(Lookup::Vacant(slot)), Some(key)) => {
                    self.new_stream(slot, tag, key, meta, now_ns)
                }
                (Some(Lookup::Full), _) => {
                    self.stats.stream_table_full += 1;
                    0
                }
                _ => {
                    self.stats.untracked_records += 1;
                    0
                }
            };
            return self.write_packet(meta, frame, stream_id);
        }
        self.stats.too_large_drops += 1;
        Err(AppendError::TooLarge {
            cap_len,
            max: self.frame_len_max(),
        })
    }

    fn new_stream(
        &mut self,
        slot: usize,
        tag: u32,
        key: &StreamKey,
        meta: &RecordMeta,
        now_ns: u64,
    ) -> u32 {
        let id = self.table.insert(slot, tag, key, meta.class.to_u8());
        let Some(a) = self.active.as_mut() else {
            return 0;
        };
        let mut kb = [0u8; KEY_LEN];
        encode_key(&mut kb, key);
        let f = RecordFields {
            ts_ns: if meta.ts_ns != 0 { meta.ts_ns } else { now_ns },
            wire_len: 0,
            stream_id: id,
            class: meta.class.to_u8(),
            flags: FLAG_STREAM_DEF,
            rtp_seq: 0,
            rtp_ts: 0,
        };
        let p = a.pos as usize;
        put_end_mark(&mut a.map, p + DEF_RECORD_LEN);
        write_record(&mut a.map[p..p + DEF_RECORD_LEN], &f, &kb);
        a.pos += DEF_RECORD_LEN as u64;
        a.streams += 1;
        self.stats.record_bytes += DEF_RECORD_LEN as u64;
        self.stats.active_streams = a.streams;
        id
    }

    fn write_packet(
        &mut self,
        meta: &RecordMeta,
        frame: &[u8],
        stream_id: u32,
    ) -> Result<Appended, AppendError> {
        // `append` made sure there is an active segment with room.
        let Some(a) = self.active.as_mut() else {
            self.stats.unavailable_drops += 1;
            return Err(AppendError::Unavailable);
        };
        let len = record_len(frame.len());
        let mut flags = meta.flags & CALLER_FLAGS_MASK;
        let (mut rtp_seq, mut rtp_ts) = (0, 0);
        if let Some(r) = meta.rtp {
            flags |= FLAG_RTP;
            rtp_seq = r.seq;
            rtp_ts = r.timestamp;
        }
        let f = RecordFields {
            ts_ns: meta.ts_ns,
            wire_len: meta.wire_len,
            stream_id,
            class: meta.class.to_u8(),
            flags,
            rtp_seq,
            rtp_ts,
        };
        let offset = a.pos;
        let p = offset as usize;
        put_end_mark(&mut a.map, p + len);
        write_record(&mut a.map[p..p + len], &f, frame);
        a.pos += len as u64;
        a.packets += 1;
        if a.book.notes.len() < a.book.notes.capacity() {
            a.book.notes.push(Note {
                off8: (offset / format::RECORD_ALIGN as u64) as u32,
                stream: stream_id,
                rtp_seq,
                rtp: meta.rtp.is_some(),
            });
        } else {
            a.book.overflow = true;
        }
        if stream_id != 0 {
            a.tracked += 1;
            if let Some(s) = self.table.entries.get_mut(stream_id as usize - 1) {
                if s.packets == 0 {
                    (s.first_ns, s.last_ns) = (meta.ts_ns, meta.ts_ns);
                }
                s.first_ns = s.first_ns.min(meta.ts_ns);
                s.last_ns = s.last_ns.max(meta.ts_ns);
                s.packets += 1;
                s.bytes += u64::from(meta.wire_len);
            }
        }
        self.stats.records += 1;
        self.stats.bytes += frame.len() as u64;
        self.stats.record_bytes += len as u64;
        self.stats.segment_fill_bytes = a.pos;
        Ok(Appended {
            segment_seq: a.seq,
            offset,
            stream_id,
        })
    }

    /// Starts loading the stream table slot of `key` into the cache (a hint: an append of
    /// this stream follows soon; see the capture pipeline's `process_chunk`).
    #[inline]
    pub fn prefetch_stream(&self, key: &StreamKey) {
        let h = self.table.hasher.hash_one(key);
        if let Some(slot) = self.table.slots.get(h as usize & self.table.mask) {
            sys::prefetch(slot);
        }
    }

    /// Live packet and byte counts of a stream of the active segment.
    pub fn stream_live(&self, stream_id: u32) -> Option<(StreamKey, u64, u64)> {
        let e = self
            .table
            .entries
            .get((stream_id as usize).checked_sub(1)?)?;
        Some((e.key, e.packets, e.bytes))
    }

    /// Time-based seal, and (at most once a second) a new segment after a failure.
    pub fn tick(&mut self, now_ns: u64) -> Result<(), SegmentError> {
        if let Some(a) = &self.active {
            if a.packets > 0 && now_ns.saturating_sub(a.created_ns) >= self.seal_after_ns {
                self.stats.rotations_time += 1;
                self.retire_active();
            }
        }
        // With no segment active (after a failure, e.g. disk full): take a spare as soon as the
        // spare thread has one, so the next packet does not wait.
        if self.active.is_none() && self.spare.is_none() {
            if let Some(a) = self.ready_spare() {
                self.spare = Some(a);
                self.retry_after_ns = 0;
            } else if now_ns >= self.retry_after_ns {
                // Nothing is being written: making one here stalls nobody, and resumes
                // capture within a second of space coming back.
                match create_spare(&self.ctx, &self.shared) {
                    Ok(a) => {
                        self.spare = Some(a);
                        self.retry_after_ns = 0;
                    }
                    Err(e) => {
                        self.retry_after_ns = now_ns.saturating_add(RETRY_NS);
                        self.fail_disk_full = e.is_disk_full();
                        self.stats.last_error = Some(e.to_string());
                        self.refresh_stats();
                        return Err(e);
                    }
                }
            }
        }
        self.refresh_stats();
        Ok(())
    }

    /// Waits until the sealer thread has finished every segment handed to it so far.
    pub fn flush_sealer(&mut self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.send(Job::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
        self.refresh_stats();
    }

    /// Seals the active segment here and waits until the sealer has finished all it was given.
    pub fn seal(&mut self) -> Result<(), SegmentError> {
        let mut result = Ok(());
        if let Some(a) = self.active.take() {
            self.stats.active_streams = 0;
            self.stats.segment_fill_bytes = 0;
            if let Err(e) = seal_active(a, &self.ctx, &self.shared) {
                result = Err(e);
            }
        }
        self.flush_sealer();
        result
    }

    fn refresh_stats(&mut self) {
        let s = &self.shared;
        let st = &mut self.stats;
        st.seals = s.seals.load(Ordering::Relaxed);
        st.seal_errors = s.seal_errors.load(Ordering::Relaxed);
        st.compressed = s.compressed.load(Ordering::Relaxed);
        st.compress_errors = s.compress_errors.load(Ordering::Relaxed);
        st.spare_errors = s.spare_errors.load(Ordering::Relaxed);
        st.hole_punch_errors = s.hole_punch_errors.load(Ordering::Relaxed);
        st.recycled = s.recycled.load(Ordering::Relaxed);
        st.seals_in_place = s.seals_in_place.load(Ordering::Relaxed);
        st.seal_max_ns = s.seal_max_ns.load(Ordering::Relaxed);
        if let Ok(mut g) = s.last_error.lock() {
            if let Some(e) = g.take() {
                st.last_error = Some(e);
            }
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        // First: sealing the active segment in place takes a file from the pool, and the spare
        // thread would make a new one (256 MiB) for nobody.
        self.spare_stop.store(true, Ordering::Relaxed);
        let _ = self.seal();
        if self.send(Job::Stop).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        self.jobs = None;
        // Spares are never handed out again: remove their files, once the spare thread (which
        // waits in steps of 50 ms) has ended and cannot add one.
        if let Some(t) = self.spare_thread.take() {
            let _ = t.join();
        }
        if let Some(a) = self.spare.take() {
            discard(a, &self.shared);
        }
        if let Some(rx) = self.spares.take() {
            while let Ok(a) = rx.try_recv() {
                discard(a, &self.shared);
            }
        }
    }
}

/// Recovery at open: seals every `.open` file of this writer (in `segments/` and in `spool/`,
/// whichever mode the last writer ran in), removes spares and leftovers of an interrupted
/// copy or compression, and moves segments sealed in place in the spool (their copy had
/// failed) into `segments/`. Returns the next sequence number.
fn recover(ctx: &Ctx, shared: &Shared, stats: &mut WriterStats) -> Result<u64, SegmentError> {
    // (`open` made `segments/`; the spool may not exist.)
    let names = store_files(&ctx.seg_dir, &ctx.spool_dir)?;
    let all: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
    let sealed = format::sealed_segments(&all);
    let mut next_seq = 0u64;
    let ours = |p: &format::ParsedName| {
        p.recorder == ctx.recorder && p.iface == ctx.iface && p.queue == ctx.queue
    };
    for (name, dir) in &names {
        let path = dir.join(name);
        if let Some(base) = name.strip_suffix(".tmp") {
            if parse_name(base).is_some_and(|p| ours(&p)) {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        let Some(p) = parse_name(name) else { continue };
        if !ours(&p) {
            continue;
        }
        match p.kind {
            NameKind::Spare => {
                let _ = fs::remove_file(&path);
                continue;
            }
            NameKind::Sealed | NameKind::Compressed
                if *dir == ctx.spool_dir && all.binary_search(&format!("{name}.zst")).is_err() =>
            {
                if let Err(e) = move_sealed(&path, &ctx.seg_dir) {
                    // It stays readable where it is (readers list the spool too).
                    stats.last_error = Some(e.to_string());
                }
            }
            NameKind::Sealed => {
                // A crash between the rename of the `.zst` and the removal of the original.
                if all.binary_search(&format!("{name}.zst")).is_ok() {
                    let _ = fs::remove_file(&path);
                }
            }
            NameKind::Compressed => {}
            // Killed after a seal by copy, before the `.open` file was recycled: the sealed
            // file has it all.
            NameKind::Open if sealed.contains(&p.segment_id()) => {
                let _ = fs::remove_file(&path);
            }
            NameKind::Open => match recover_one(&path, ctx, shared) {
                Ok(s) if s.packets > 0 => {
                    stats.recovered += 1;
                    stats.recovered_records += s.packets;
                }
                // Removed (a kill between its activation and its first record): its number
                // was never used for data, so the next segment takes it and numbers stay
                // contiguous.
                Ok(_) => continue,
                Err(e) => {
                    stats.recover_errors += 1;
                    stats.last_error = Some(e.to_string());
                }
            },
        }
        next_seq = next_seq.max(p.seq + 1);
    }
    Ok(next_seq)
}

/// Moves a sealed segment from the spool into `dir`: copy to `<name>.tmp`, fsync, rename,
/// fsync the directory, then remove the original (a crash before that leaves both; the next
/// recovery copies again).
fn move_sealed(src: &Path, dir: &Path) -> Result<(), SegmentError> {
    let name = src.file_name().unwrap_or_default();
    let dst = dir.join(name);
    let mut tmp = dst.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let copy = || -> Result<(), SegmentError> {
        fs::copy(src, &tmp).map_err(|e| SegmentError::io("copy", src, e))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| SegmentError::io("fsync", &tmp, e))?;
        fs::rename(&tmp, &dst).map_err(|e| SegmentError::io("rename", &tmp, e))?;
        sync_dir(dir)?;
        fs::remove_file(src).map_err(|e| SegmentError::io("remove", src, e))
    };
    copy().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

fn recover_one(path: &Path, ctx: &Ctx, shared: &Shared) -> Result<Sealed, SegmentError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| SegmentError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| SegmentError::io("stat", path, e))?
        .len();
    if len < HEADER_LEN as u64 {
        return Err(SegmentError::Format {
            path: path.into(),
            what: "shorter than a header".into(),
        });
    }
    let map = sys::map_mut(&file, len, false).map_err(|e| SegmentError::io("mmap", path, e))?;
    let ctx = Ctx {
        compress: ctx.compress,
        ..ctx.clone()
    };
    let a = Active {
        file,
        map,
        path: path.into(),
        seq: 0,
        capacity: len,
        created_ns: 0,
        pos: 0,
        packets: 0,
        tracked: 0,
        streams: 0,
        own: false,
        book: Book::default(),
    };
    seal_active(a, &ctx, shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u32) -> StreamKey {
        StreamKey {
            proto: 17,
            src: std::net::Ipv4Addr::new(198, 51, 100, (n % 250) as u8).into(),
            dst: std::net::Ipv4Addr::new(203, 0, 113, 1).into(),
            src_port: (n / 250) as u16,
            dst_port: 5060,
            ssrc: Some(n),
        }
    }

    #[test]
    fn stream_table_is_bounded_and_clears() {
        let mut t = StreamTable::new(1000);
        assert_eq!(t.slots.len(), 2048);
        for round in 0..3 {
            for n in 0..1000 {
                match t.lookup(&k(n + round)) {
                    (Lookup::Vacant(slot), tag) => {
                        assert_eq!(t.insert(slot, tag, &k(n + round), 2), n + 1)
                    }
                    _ => panic!("stream {n} should be new"),
                }
            }
            for n in 0..1000 {
                assert!(matches!(t.lookup(&k(n + round)).0, Lookup::Found(id) if id == n + 1));
            }
            assert!(matches!(t.lookup(&k(5000)).0, Lookup::Full));
            assert_eq!(t.entries.capacity(), 1000, "no growth on the data path");
            t.clear();
            assert!(t.slots.iter().all(|&s| s == 0));
        }
    }

    /// A writer in a fresh directory under the system's temp dir (removed by the caller).
    use crate::{Class, RtpMeta};

    fn test_writer(tag: &str, capacity: u64, streams_max: u32) -> (PathBuf, SegmentWriter) {
        let dir = std::env::temp_dir().join(format!("xseg-w-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut cfg = WriterConfig::new(&dir, "r", "eth0", 0);
        cfg.segment_bytes_max = capacity;
        cfg.streams_max = streams_max;
        (dir.clone(), SegmentWriter::open(cfg).unwrap())
    }

    fn encoded(d: &crate::scan::Directory) -> Vec<u8> {
        let mut out = vec![0u8; d.encoded_len() as usize];
        encode_dir(d, &mut out);
        out
    }

    #[test]
    fn notes_give_the_directory_a_scan_gives() {
        let (dir, mut w) = test_writer("notes", 8 << 20, 48);
        let keys: Vec<StreamKey> = (0..60).map(k).collect();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut seqs = [0u16; 60];
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 60) as usize;
            // RTP in streams 0..40 (some duplicated, reordered, wrapping; some records in
            // them without RTP), none in the others; 60 streams for a table of 48 (the rest
            // untracked), and records with no key.
            seqs[n] = seqs[n].wrapping_add(match x % 11 {
                0 => 0,
                1 => 65530,
                2 => 3,
                _ => 1,
            });
            let rtp = (n < 40 && !x.is_multiple_of(13)).then_some(RtpMeta {
                ssrc: n as u32,
                seq: seqs[n].wrapping_add((n as u16).wrapping_mul(4000)),
                timestamp: i as u32 * 160,
                payload_type: 0,
            });
            let meta = RecordMeta {
                ts_ns: 1_000 + i * 20 - (x % 50),
                wire_len: 200 + (x % 7) as u32,
                class: if rtp.is_some() {
                    Class::Rtp
                } else {
                    Class::Sip
                },
                flags: 0,
                key: (!x.is_multiple_of(17)).then_some(&keys[n]),
                rtp,
            };
            w.append(&meta, &[n as u8; 100], 1).unwrap();
        }
        let a = w.active.as_ref().unwrap();
        assert_eq!(w.stats.segments_opened, 1, "all in one segment");
        assert!(!a.book.overflow);
        let scanned = scan_with(
            &a.map,
            HEADER_LEN as u64,
            a.pos,
            true,
            &mut ScanBufs::default(),
        );
        assert_eq!((scanned.end, scanned.packets), (a.pos, 20_000));
        assert!(scanned.dir.untracked > 1000 && scanned.dir.streams.len() == 48);
        let streams = w.table.entries.iter().map(LiveStream::sum);
        let mut bufs = ScanBufs::default();
        let noted = dir_from_notes(&a.map, a.pos, streams, &a.book.notes, &mut bufs);
        assert_eq!(a.book.notes.len(), 20_000);
        assert_eq!(encoded(&noted), encoded(&scanned.dir));
        drop(w);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_segment_of_short_frames_outgrows_its_notes_and_is_scanned() {
        let (dir, mut w) = test_writer("short", 1 << 20, 16);
        let key = k(1);
        let meta = RecordMeta {
            ts_ns: 5,
            wire_len: 60,
            class: Class::Rtcp,
            flags: 0,
            key: Some(&key),
            rtp: None,
        };
        // 40-byte records, 1 MiB: more records than the notes hold (capacity / 96).
        let mut n = 0u64;
        while w.stats.segments_opened < 2 {
            w.append(&meta, &[7u8; 8], 1).unwrap();
            n += 1;
        }
        let first = n - 1;
        assert!(first > (1 << 20) / NOTE_RECORD_BYTES_MIN);
        w.seal().unwrap();
        let segs = crate::list_segments(&dir).unwrap();
        let r = crate::SegmentReader::open(&segs[0].path).unwrap();
        assert_eq!(r.streams().iter().map(|s| s.packets).sum::<u64>(), first);
        drop(w);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn writer_moves_to_a_capture_thread() {
        fn send<T: Send>() {}
        send::<SegmentWriter>();
        send::<crate::SegmentReader>();
    }

    #[test]
    fn memory_per_stream() {
        // Documented in the module doc: 88 bytes live + 2 slots of 8 bytes.
        assert!(
            std::mem::size_of::<LiveStream>() <= 88,
            "{}",
            std::mem::size_of::<LiveStream>()
        );
    }
}
