//! The segment writer (one per capture thread), its sealer thread and its spare thread.
//!
//! Data path ([`SegmentWriter::append`]): a stream table lookup (keyed aHash, open
//! addressing, preallocated; the capture pipeline prefetches the slot a few packets ahead
//! with [`SegmentWriter::prefetch_stream`]), one `memcpy` into the mapping and a CRC computed
//! over the source. No allocation, no lock, no syscall, no logging; counters are plain
//! fields of the writer.
//!
//! Rotation (full, or `seal_after_ns` after the first record): the writer hands the full
//! segment to the sealer thread and activates a spare that the spare thread preallocated,
//! mapped and faulted in writable (`MADV_POPULATE_WRITE`) ahead of time, so the capture thread
//! takes no page fault (write seq and time into its header, one `rename`). The capture thread
//! never maps, unmaps or syncs during a rotation: the sealer unmaps and syncs the old segment.
//!
//! Why three threads. A seal waits for the disk (msync and fsync of a whole segment): a spare
//! made after it on the same thread came too late at high rates, and the capture thread had to
//! make one itself (`spare_misses`), a stall of hundreds of ms. So the spare thread keeps
//! `spares` segments ready, and [`SegmentWriter::open`] returns only once they are (before
//! the first packet). Only a rotation that finds none ready makes one on the capture thread.
//!
//! Page recycling. The sealer hands each synced segment to the spare thread, which drops its
//! page cache (`POSIX_FADV_DONTNEED`) just before it populates the next spare, so the spare
//! reuses those pages; when a seal is under way it waits up to `RECYCLE_WAIT` for it. Where
//! the host backs guest memory lazily and takes freed memory back (this project's VMs), a
//! page that was free for a while costs ten times more to fault in (0.7-0.95 s for 256 MiB
//! against 0.05-0.07 s), and without recycling the spare thread took most of a core at
//! 1.5 Mpps. Sealed segments therefore do not stay in the page cache.
//!
//! Sharing a core. Helper threads run 10 nice levels below the capture thread, and every
//! syscall of theirs that walks page cache pages (populate, msync, fadvise) covers at most
//! `sys::SYSCALL_CHUNK_BYTES`: this kernel has no preemption, and one populate of 256 MiB kept
//! a capture thread on the same core waiting 35 ms, past what its ring holds.
//!
//! Early writeback. Between seals the sealer starts writeback (`sync_file_range`, without
//! waiting) of what the writer has filled of the active segment, `WRITEBACK_LAG_BYTES` behind
//! it, so that the seal's fsync finds little left and the seal, and with it the recycling of
//! the segment's pages, comes sooner. Measured on this project's 2-vCPU VM at 1.5 Mpps, 12
//! runs each, alternating: spare misses 18 -> 9, runs without loss 4 -> 7
//! (benches/results/capture.md, round 6).
//!
//! The sealer scans the records once (without CRC checks for its own records, whose end it
//! knows), groups them by stream (counting sort), writes the directory after the last record,
//! `msync`s the written part, deallocates the unused tail, renames `.open` to the sealed name
//! and, if configured, compresses. Crash recovery runs the very same sealing, with CRC checks,
//! on whatever `.open` file a killed writer left.
//!
//! Memory: per stream 72 bytes of live state + 16 bytes of table slots (two slots per stream:
//! load factor <= 1/2), i.e. 88 bytes * `streams_max` allocated once at open (5.5 MiB for the
//! default 65536). Mappings of `segment_bytes_max`: the active one, the first spare, `spares`
//! ready ones and the segments the sealer still syncs, so about (2 + `spares`) x
//! `segment_bytes_max` of page cache per writer at full rate (1 GiB with the defaults; on
//! tmpfs, memory). The sealer needs 32 bytes per record transiently.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memmap2::MmapMut;

use crate::error::{AppendError, SegmentError};
use crate::format::{
    self, activate_header, dir_len, encode_key, open_name, parse_name, prefix, read_header,
    record_len, sanitize_name, sealed_name, spare_name, write_header, write_record, write_seal,
    NameKind, RecordFields, SegmentHeader, CALLER_FLAGS_MASK, CAPACITY_ALIGN, CAPACITY_MAX,
    CAPACITY_MIN, DEF_RECORD_LEN, FLAG_RTP, FLAG_STREAM_DEF, FRAME_MAX, HEADER_LEN, KEY_LEN,
    STREAMS_MAX,
};
use crate::reader::{compress_segment, segments_dir};
use crate::scan::{encode_dir, scan, scan_opt};
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
    /// Early writebacks that failed (that segment's seal then writes it all).
    pub writeback_errors: u64,
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
}

/// What every thread needs to create and seal segments.
#[derive(Clone)]
struct Ctx {
    seg_dir: PathBuf,
    prefix: String,
    recorder: String,
    iface: String,
    queue: u32,
    capacity: u64,
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
    writeback_errors: AtomicU64,
    /// Spare file names: `spare_name(prefix, token)`, unique per writer.
    tokens: AtomicU64,
    /// Seal jobs handed to the sealer and not finished yet.
    seals_pending: AtomicU64,
    /// Spares the spare thread has made and the writer not taken yet.
    spares_ready: AtomicU64,
    /// How far the writer has filled the active segment (published every
    /// `PUBLISH_POS_BYTES`), for the sealer's early writeback.
    active_pos: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn error(&self, e: &SegmentError) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(e.to_string());
        }
    }
}

enum Job {
    /// The writer activated segment `seq`: write it back as it fills ([`EarlyWriteback`]).
    Active(u64, File),
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

/// Creates and maps a preallocated spare with a header (seq and time filled at activation).
fn create_spare(ctx: &Ctx, shared: &Shared) -> Result<Active, SegmentError> {
    let token = shared.tokens.fetch_add(1, Ordering::Relaxed);
    let path = ctx.seg_dir.join(spare_name(&ctx.prefix, token));
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
    let mut map = match mapped {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
    };
    let h = SegmentHeader {
        recorder: ctx.recorder.clone(),
        iface: ctx.iface.clone(),
        queue: ctx.queue,
        seq: 0,
        created_ns: 0,
        capacity: ctx.capacity,
        sealed: false,
        sealed_ns: 0,
        records_end: 0,
        dir_offset: 0,
        dir_len: 0,
        dir_crc: 0,
        packet_records: 0,
    };
    write_header(&mut map, &h);
    Ok(Active {
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
    })
}

/// Outcome of sealing one file.
pub(crate) struct Sealed {
    pub path: PathBuf,
    pub packets: u64,
    /// The sealed file, synced (`None` when it was removed for having no packet).
    pub file: Option<File>,
}

/// Seals a mapped segment file: scan, directory after the last record, seal header, msync,
/// deallocate the tail, fsync, rename to the sealed name, fsync the directory. A file with no
/// packet record is removed instead (`packets == 0` in the result). Used by the sealer thread,
/// `SegmentWriter::seal` and crash recovery alike.
fn seal_file(
    file: File,
    mut map: MmapMut,
    path: &Path,
    seg_dir: &Path,
    hole_punch_errors: &AtomicU64,
    own_end: Option<u64>,
) -> Result<Sealed, SegmentError> {
    let file_len = map.len() as u64;
    let mut h = read_header(&map, file_len).map_err(|what| SegmentError::Format {
        path: path.into(),
        what,
    })?;
    let s = match own_end {
        Some(end) => {
            let s = scan_opt(&map, HEADER_LEN as u64, end, false);
            // Our own records end exactly there; anything else and the CRCs decide.
            if s.end == end {
                s
            } else {
                scan(&map, HEADER_LEN as u64, file_len)
            }
        }
        None => scan(&map, HEADER_LEN as u64, file_len),
    };
    if s.packets == 0 {
        drop(map);
        drop(file);
        fs::remove_file(path).map_err(|e| SegmentError::io("remove empty segment", path, e))?;
        return Ok(Sealed {
            path: path.into(),
            packets: 0,
            file: None,
        });
    }
    let dlen = s.dir.encoded_len();
    let dir_end = s.end + dlen;
    if dir_end > file_len {
        // Only for files a writer of another configuration left: ours always keep room.
        drop(map);
        let new_len = dir_end.div_ceil(CAPACITY_ALIGN) * CAPACITY_ALIGN;
        sys::preallocate(&file, new_len).map_err(|e| SegmentError::NoRoom {
            path: path.into(),
            source: e,
        })?;
        map = sys::map_mut(&file, new_len, false).map_err(|e| SegmentError::io("mmap", path, e))?;
    }
    let (start, end) = (s.end as usize, dir_end as usize);
    encode_dir(&s.dir, &mut map[start..end]);
    // Whatever a torn record left between the directory and the next page: zeros.
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
    write_seal(&mut map, &h);
    let mapped_len = map.len() as u64;
    // In pieces: see `sys::SYSCALL_CHUNK_BYTES`. Only the pages up to the directory's end were
    // written; the rest of the mapping is clean and is punched out below.
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

    let pfx = prefix(&h.recorder, &h.iface, h.queue);
    let dst = seg_dir.join(sealed_name(&pfx, h.seq, h.created_ns));
    fs::rename(path, &dst).map_err(|e| SegmentError::io("rename", path, e))?;
    sync_dir(seg_dir)?;
    Ok(Sealed {
        path: dst,
        packets: s.packets,
        file: Some(file),
    })
}

fn seal_active(a: Active, ctx: &Ctx, shared: &Shared) -> Result<Sealed, SegmentError> {
    let Active {
        file,
        map,
        path,
        pos,
        own,
        ..
    } = a;
    let own_end = own.then_some(pos);
    let r = seal_file(
        file,
        map,
        &path,
        &ctx.seg_dir,
        &shared.hole_punch_errors,
        own_end,
    );
    match &r {
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
    r
}

fn sealer_main(
    ctx: Ctx,
    shared: Arc<Shared>,
    jobs: Receiver<Job>,
    recycle: SyncSender<Option<File>>,
) {
    sys::lower_thread_priority();
    let mut wb = EarlyWriteback::default();
    loop {
        let job = match jobs.recv_timeout(WRITEBACK_POLL) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                wb.step(&shared);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match job {
            Job::Active(seq, file) => wb.start(seq, file),
            Job::Seal(a) => {
                wb.sealing(a.seq);
                let sealed = seal_active(a, &ctx, &shared);
                shared.seals_pending.fetch_sub(1, Ordering::Relaxed);
                // Its pages are freed by the spare thread right before it populates the next
                // spare, which then reuses them (see `spare_main`). Sent even when there is
                // no file, so that a spare thread waiting for one stops waiting.
                let file = sealed.ok().and_then(|s| s.file);
                if let Err(TrySendError::Full(f) | TrySendError::Disconnected(f)) =
                    recycle.try_send(file)
                {
                    if let Some(f) = f {
                        let _ = sys::drop_cache(&f);
                    }
                }
            }
            Job::Barrier(done) => {
                let _ = done.send(());
            }
            Job::Stop => break,
        }
    }
}

/// How often the sealer looks at the active segment to start its writeback.
const WRITEBACK_POLL: Duration = Duration::from_millis(20);
/// The writer publishes its position in the active segment every this many bytes.
const PUBLISH_POS_BYTES: u64 = 1 << 20;
/// Writeback starts in pieces of at least this much, and stays this far behind the writer.
const WRITEBACK_STEP_BYTES: u64 = 8 << 20;
const WRITEBACK_LAG_BYTES: u64 = 4 << 20;

/// Starts writeback (`sync_file_range`, not waiting) of the part of the active segment the
/// writer has left behind, so that its seal's fsync finds little to do and the seal, and the
/// recycling of its pages into the next spare, come sooner.
#[derive(Default)]
struct EarlyWriteback {
    /// The active segment (sequence number and file), as the writer last announced it.
    file: Option<(u64, File)>,
    done: u64,
}

impl EarlyWriteback {
    fn start(&mut self, seq: u64, file: File) {
        self.file = Some((seq, file));
        self.done = 0;
    }

    /// Segment `seq` is being sealed: nothing more to write back early.
    fn sealing(&mut self, seq: u64) {
        if self.file.as_ref().is_some_and(|f| f.0 == seq) {
            self.file = None;
        }
    }

    fn step(&mut self, shared: &Shared) {
        let Some((_, f)) = &self.file else { return };
        let pos = shared.active_pos.load(Ordering::Relaxed);
        let end = pos.saturating_sub(WRITEBACK_LAG_BYTES) & !((2 << 20) - 1);
        if end < self.done + WRITEBACK_STEP_BYTES {
            return;
        }
        for (off, len) in sys::pieces((end - self.done) as usize, sys::SYSCALL_CHUNK_BYTES) {
            if sys::start_writeback(f, self.done + off as u64, len as u64).is_err() {
                shared.writeback_errors.fetch_add(1, Ordering::Relaxed);
                self.file = None;
                return;
            }
        }
        self.done = end;
    }
}

/// How long `open` waits for the spare thread's spares.
const FIRST_SPARE_WAIT: Duration = Duration::from_secs(5);

/// How long the spare thread waits for a segment being sealed to free its pages.
const RECYCLE_WAIT: Duration = Duration::from_millis(1000);

/// After a failed spare (disk full), the spare thread tries again this much later.
const SPARE_RETRY: Duration = Duration::from_secs(1);

/// Keeps `spares` spares ready: the channel holds `spares - 1` and the thread blocks in `send`
/// with one more. Ends when the writer drops the receiver or sets `stop`.
///
/// Before it populates a spare it drops the page cache of the segments the sealer has synced
/// since (`recycle`), so that the spare reuses those pages. Pages that were free for a while
/// cost far more to fault in where the host backs guest memory lazily and takes free memory
/// back (this project's VMs report free pages to the host at once): measured here, 0.7-0.95 s
/// to populate 256 MiB of such pages against 0.05-0.07 s for pages freed just before.
fn spare_main(
    ctx: Ctx,
    shared: Arc<Shared>,
    spares: SyncSender<Active>,
    recycle: Receiver<Option<File>>,
    stop: Arc<AtomicBool>,
) {
    sys::lower_thread_priority();
    while !stop.load(Ordering::Relaxed) {
        let mut dropped = false;
        while let Ok(f) = recycle.try_recv() {
            if let Some(f) = f {
                dropped |= sys::drop_cache(&f).is_ok();
            }
        }
        // Nothing to recycle yet but a seal under way: wait for its pages rather than fault
        // in fresh memory (ten times slower here). The spares already made cover the wait
        // (2 spares of 256 MiB: 1.4 s at 1.5 Mpps).
        let until = Instant::now() + RECYCLE_WAIT;
        while !dropped
            && shared.seals_pending.load(Ordering::Relaxed) > 0
            && !stop.load(Ordering::Relaxed)
            && Instant::now() < until
        {
            // In short waits, so that a writer being dropped is not kept waiting.
            match recycle.recv_timeout(Duration::from_millis(50)) {
                Ok(Some(f)) => dropped = sys::drop_cache(&f).is_ok(),
                Ok(None) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let r = create_spare(&ctx, &shared);
        match r {
            Ok(a) => {
                shared.spares_ready.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = spares.send(a) {
                    // The writer is gone: do not leak a preallocated file.
                    let _ = fs::remove_file(&e.0.path);
                    return;
                }
            }
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
    packets: u64,
    bytes: u64,
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

    fn insert(&mut self, slot: usize, tag: u32, key: &StreamKey) -> u32 {
        let id = self.entries.len() as u32 + 1;
        self.entries.push(LiveStream {
            key: *key,
            slot: slot as u32,
            packets: 0,
            bytes: 0,
        });
        self.slots[slot] = (u64::from(tag) << 32) | u64::from(id);
        id
    }

    fn clear(&mut self) {
        for e in &self.entries {
            self.slots[e.slot as usize] = 0;
        }
        self.entries.clear();
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
    /// Last `active_pos` published.
    published_pos: u64,
    _lock: File,
}

/// Most spares a writer keeps ready.
pub const SPARES_MAX: u32 = 4;

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
        let ctx = Ctx {
            seg_dir: seg_dir.clone(),
            prefix: pfx,
            recorder,
            iface,
            queue: cfg.queue,
            capacity,
            compress: cfg.compress_sealed,
        };
        let shared = Arc::new(Shared::default());
        let mut stats = WriterStats::default();
        let next_seq = recover(&ctx, &shared, &mut stats)?;

        // The first segment, preallocated now so the first packet does not wait for it. A full
        // disk is not fatal: capture runs, drops are counted, the spare thread retries.
        let first = create_spare(&ctx, &shared);
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(8);
        let (recycle_tx, recycle_rx) = mpsc::sync_channel::<Option<File>>(8);
        let thread = {
            let (ctx, shared) = (ctx.clone(), shared.clone());
            std::thread::Builder::new()
                .name(format!("xseg-seal-q{}", cfg.queue))
                .spawn(move || sealer_main(ctx, shared, jobs_rx, recycle_tx))
                .map_err(|e| SegmentError::io("spawn sealer thread for", &seg_dir, e))?
        };
        let spare_stop = Arc::new(AtomicBool::new(false));
        let (spare_tx, spare_rx) = mpsc::sync_channel::<Active>(cfg.spares as usize - 1);
        let spare_thread = {
            let (ctx, shared, stop) = (ctx.clone(), shared.clone(), spare_stop.clone());
            std::thread::Builder::new()
                .name(format!("xseg-spare-q{}", cfg.queue))
                .spawn(move || spare_main(ctx, shared, spare_tx, recycle_rx, stop))
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
            spares: Some(spare_rx),
            spare_thread: Some(spare_thread),
            spare_stop,
            published_pos: 0,
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

    /// Largest frame that fits in a record of an empty segment of this writer.
    pub fn frame_len_max(&self) -> usize {
        let room = self.ctx.capacity - HEADER_LEN as u64 - DEF_RECORD_LEN as u64 - dir_len(1, 1);
        (room as usize - format::RECORD_HEADER_LEN).min(FRAME_MAX) & !(format::RECORD_ALIGN - 1)
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
    fn send(&mut self, job: Job) -> Result<(), Job> {
        let Some(tx) = &self.jobs else {
            return Err(job);
        };
        let seal = matches!(job, Job::Seal(_));
        let r = match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => {
                self.stats.seal_queue_waits += 1;
                tx.send(job).map_err(|e| e.0)
            }
            Err(TrySendError::Disconnected(job)) => Err(job),
        };
        if seal && r.is_ok() {
            self.shared.seals_pending.fetch_add(1, Ordering::Relaxed);
        }
        r
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
        let open = self.ctx.seg_dir.join(open_name(&self.ctx.prefix, seq));
        if let Err(e) = fs::rename(&a.path, &open) {
            let _ = fs::remove_file(&a.path);
            self.retry_after_ns = now_ns.saturating_add(RETRY_NS);
            return Err(self.count_no_segment(Some(SegmentError::io("rename", &a.path, e))));
        }
        self.next_seq += 1;
        a.path = open;
        a.seq = seq;
        a.created_ns = now_ns;
        self.shared.active_pos.store(a.pos, Ordering::Relaxed);
        self.published_pos = a.pos;
        // Without waiting: when the sealer's queue is full this segment is not written back
        // early (its seal writes it all).
        if let (Some(tx), Ok(f)) = (&self.jobs, a.file.try_clone()) {
            let _ = tx.try_send(Job::Active(seq, f));
        }
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
        let Some(a) = self.active.take() else { return };
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
        let id = self.table.insert(slot, tag, key);
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
        write_record(&mut a.map[p..p + len], &f, frame);
        a.pos += len as u64;
        if a.pos >= self.published_pos + PUBLISH_POS_BYTES {
            self.published_pos = a.pos;
            self.shared.active_pos.store(a.pos, Ordering::Relaxed);
        }
        a.packets += 1;
        if stream_id != 0 {
            a.tracked += 1;
            if let Some(s) = self.table.entries.get_mut(stream_id as usize - 1) {
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
        st.writeback_errors = s.writeback_errors.load(Ordering::Relaxed);
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
        let _ = self.seal();
        if self.send(Job::Stop).is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        self.jobs = None;
        // Spares are never handed out again: remove their files. Dropping the receiver ends
        // the spare thread's blocked `send` (it removes that file itself).
        self.spare_stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.spare.take() {
            let _ = fs::remove_file(&a.path);
        }
        if let Some(rx) = self.spares.take() {
            while let Ok(a) = rx.try_recv() {
                let _ = fs::remove_file(&a.path);
            }
        }
        if let Some(t) = self.spare_thread.take() {
            let _ = t.join();
        }
    }
}

/// Recovery at open: seals every `.open` file of this writer, removes spares and leftovers of
/// an interrupted compression. Returns the next sequence number.
fn recover(ctx: &Ctx, shared: &Shared, stats: &mut WriterStats) -> Result<u64, SegmentError> {
    let rd = fs::read_dir(&ctx.seg_dir)
        .map_err(|e| SegmentError::io("read directory", &ctx.seg_dir, e))?;
    let mut names = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| SegmentError::io("read directory", &ctx.seg_dir, e))?;
        if let Some(n) = ent.file_name().to_str() {
            names.push(n.to_string());
        }
    }
    names.sort();
    let mut next_seq = 0u64;
    let ours = |p: &format::ParsedName| {
        p.recorder == ctx.recorder && p.iface == ctx.iface && p.queue == ctx.queue
    };
    for name in &names {
        let path = ctx.seg_dir.join(name);
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
            NameKind::Sealed => {
                // A crash between the rename of the `.zst` and the removal of the original.
                if names.binary_search(&format!("{name}.zst")).is_ok() {
                    let _ = fs::remove_file(&path);
                }
            }
            NameKind::Compressed => {}
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
    fn early_writeback_follows_the_writer() {
        let dir = std::env::temp_dir().join(format!("xdprec-wb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("seg");
        let f = File::create(&path).unwrap();
        f.set_len(64 << 20).unwrap();
        let shared = Shared::default();
        let mut wb = EarlyWriteback::default();
        shared.active_pos.store(21 << 20, Ordering::Relaxed);
        wb.step(&shared);
        assert_eq!(wb.done, 0, "no active segment yet");
        wb.start(7, f.try_clone().unwrap());
        wb.step(&shared);
        // 4 MiB behind the writer, on a 2 MiB boundary.
        assert_eq!(wb.done, 16 << 20);
        shared.active_pos.store(27 << 20, Ordering::Relaxed);
        wb.step(&shared);
        assert_eq!(wb.done, 16 << 20, "less than a step further: waits");
        shared.active_pos.store(29 << 20, Ordering::Relaxed);
        wb.step(&shared);
        assert_eq!(wb.done, 24 << 20);
        // Sealing another segment changes nothing; sealing this one ends it.
        wb.sealing(6);
        assert!(wb.file.is_some());
        wb.sealing(7);
        shared.active_pos.store(40 << 20, Ordering::Relaxed);
        wb.step(&shared);
        assert_eq!(wb.done, 24 << 20);
        // A new active segment starts from its beginning.
        wb.start(8, f.try_clone().unwrap());
        shared.active_pos.store(1 << 20, Ordering::Relaxed);
        wb.step(&shared);
        assert_eq!(wb.done, 0);
        assert_eq!(shared.writeback_errors.load(Ordering::Relaxed), 0);
        drop(f);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stream_table_is_bounded_and_clears() {
        let mut t = StreamTable::new(1000);
        assert_eq!(t.slots.len(), 2048);
        for round in 0..3 {
            for n in 0..1000 {
                match t.lookup(&k(n + round)) {
                    (Lookup::Vacant(slot), tag) => {
                        assert_eq!(t.insert(slot, tag, &k(n + round)), n + 1)
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

    #[test]
    fn writer_moves_to_a_capture_thread() {
        fn send<T: Send>() {}
        send::<SegmentWriter>();
        send::<crate::SegmentReader>();
    }

    #[test]
    fn memory_per_stream() {
        // Documented in the module doc: 72 bytes live + 2 slots of 8 bytes.
        assert!(
            std::mem::size_of::<LiveStream>() <= 72,
            "{}",
            std::mem::size_of::<LiveStream>()
        );
    }
}
