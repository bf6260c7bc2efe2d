//! Per-core counters and the stats files that publish them.
//!
//! Data path: each capture thread owns one [`CoreStats`] (cache-line aligned, so no two
//! threads share a line) and is its only writer. It counts in plain locals and stores them into
//! the atomics once per batch (relaxed stores, no read-modify-write, no lock).
//!
//! Publication: a control thread copies every [`CoreStats`] once a second into a stats file,
//! `STORE/stats/<recorder>-<iface>-q<queue>.stats`, a 4096-byte file mapped shared. Readers
//! (`xdprec stat`) map it read-only.
//!
//! ## Stats file layout (version 1, little-endian, all offsets in bytes)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `XDPRSTAT` |
//! | 8 | 4 | version (1) |
//! | 12 | 4 | number of value slots in use ([`FIELD_COUNT`]) |
//! | 16 | 8 | `seq`: seqlock generation, odd while the writer is updating |
//! | 24 | 4 | rx queue |
//! | 28 | 4 | core the thread is pinned to (`u32::MAX`: not pinned) |
//! | 32 | 16 | interface name, NUL padded |
//! | 48 | 64 | recorder name, NUL padded |
//! | 112 | 8 | pid of the capture process |
//! | 120 | 8 | reserved |
//! | 128 | 8 × [`SLOTS`] | values, `u64` each: slot `i` is [`Field`] `i` for `i` < [`PROBE_BASE`]; slot [`PROBE_BASE`] + `c` is probe counter `c` (`xdprec_classify::Counter`, summed over CPUs, for the whole interface: every queue's file of one interface shows the same probe values) |
//!
//! Seqlock: the writer stores `seq + 1` (odd), a release fence, the values, then `seq + 2`
//! (even) with release ordering. A reader loads `seq` (acquire), skips if odd, copies the
//! values, an acquire fence, and loads `seq` again: equal means an untorn snapshot.
//! Counters are totals since the capture started (rates are differences of snapshots); gauges
//! (`active_streams`, `ring_fill`, `p99_write_ns`, `max_write_ns`, `max_loop_gap_ns`) are
//! values over the last second. `run_delay_ns`, `involuntary_switches` and `steal_ns` are not
//! the capture thread's: the control thread reads them from procfs when it publishes (the
//! thread's own slots for them stay 0).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use memmap2::{Mmap, MmapMut};

use crate::sys;

macro_rules! fields {
    ($($name:ident = $idx:literal, $label:literal, $doc:literal;)*) => {
        /// Value slots of [`CoreStats`] and of the stats file.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Field { $(#[doc = $doc] $name = $idx,)* }

        impl Field {
            pub const ALL: &'static [Field] = &[$(Field::$name,)*];
            /// Stable snake_case name (JSON key).
            pub const fn label(self) -> &'static str {
                match self { $(Field::$name => $label,)* }
            }
        }
    };
}

fields! {
    UpdateNs = 0, "update_ns", "Wall clock (ns since 1970) of the snapshot.";
    RxPackets = 1, "rx_packets", "Frames taken from the rx ring (or read from the pcap).";
    RxBytes = 2, "rx_bytes", "Their bytes.";
    Written = 3, "written", "Records appended (original frames and reassembled datagrams).";
    WrittenBytes = 4, "written_bytes", "Frame bytes of those records.";
    ClassSip = 5, "class_sip", "Frames classified SIP.";
    ClassRtp = 6, "class_rtp", "Frames classified RTP.";
    ClassRtcp = 7, "class_rtcp", "Frames classified RTCP.";
    ClassFrag = 8, "class_frag", "IP fragments of UDP datagrams.";
    ClassOther = 9, "class_other", "Frames the classifier calls OTHER: not recorded (the probe should not have sent them).";
    Reassembled = 10, "reassembled", "Datagrams reassembled (and written as a synthetic record).";
    ReasmDropTable = 11, "reasm_drop_table", "Fragments dropped: datagram table full.";
    ReasmDropFrags = 12, "reasm_drop_frags", "Datagrams dropped: more fragments than allowed.";
    ReasmDropBytes = 13, "reasm_drop_bytes", "Datagrams dropped: byte budget exhausted.";
    ReasmTimeout = 14, "reasm_timeout", "Datagrams dropped: not complete within the timeout.";
    ReasmBad = 15, "reasm_bad", "Datagrams dropped: overlap, oversize or malformed fragment.";
    ReasmNotCaptured = 16, "reasm_not_captured", "Reassembled datagrams that are not SIP/RTP/RTCP (fragments kept, no synthetic record).";
    DiskFull = 17, "disk_full", "Records not written: no space left in the store.";
    WriteErrors = 18, "write_errors", "Records not written: other write errors.";
    Seals = 19, "seals", "Segments sealed.";
    ActiveStreams = 20, "active_streams", "Streams in the writer's table (gauge).";
    XskRxDropped = 21, "xsk_rx_dropped", "XDP_STATISTICS rx_dropped: every frame the socket dropped (fill-ring-empty ones included; also frames too big for a UMEM frame).";
    XskRingFull = 22, "drops_ring_full", "XDP_STATISTICS rx_ring_full: rx ring full, frame dropped.";
    XskFillEmpty = 23, "drops_fill_empty", "XDP_STATISTICS rx_fill_ring_empty_descs: no free frame, frame dropped. A consumer too slow shows here first: the UMEM has as many frames as the fill ring, so a full rx ring leaves the fill ring empty.";
    XskInvalidDescs = 24, "invalid_descs", "XDP_STATISTICS rx_invalid_descs.";
    RingFill = 25, "ring_fill", "Most rx ring entries waiting at a batch start in the last second (gauge).";
    RingSize = 26, "ring_size", "Entries of the rx ring.";
    P99WriteNs = 27, "p99_write_ns", "99th percentile of the per-batch write time in the last second (gauge).";
    MaxWriteNs = 28, "max_write_ns", "Largest per-batch write time in the last second (gauge).";
    Batches = 29, "batches", "Non-empty batches processed.";
    Polls = 30, "polls", "Idle waits (sleeps of --idle-us, or poll() calls with --idle-us 0) while the ring was empty.";
    FillWakeups = 31, "fill_wakeups", "Fill ring wake-ups (needs_wakeup set).";
    Truncated = 32, "truncated", "Frames longer than a record can hold (should stay 0).";
    SynthErrors = 33, "synth_errors", "Reassembled datagrams that could not be framed.";
    SegmentsOpened = 34, "segments_opened", "Segments opened.";
    DupDropped = 35, "dup_dropped", "Frames not stored: a copy of a packet stored within the dedup window (`xdprec_capture::dedup`).";
    DedupEvicted = 36, "dedup_evicted", "Live dedup entries overwritten because the table was full: each may let one later copy through (raise --dedup-entries).";
    SpareMisses = 37, "spare_misses", "Rotations that found no spare segment ready and made one on the capture thread (a stall of up to hundreds of ms: loss follows at high rates).";
    SealQueueWaits = 38, "seal_queue_waits", "Rotations that waited because the sealer had 8 segments queued (the disk is slower than the capture).";
    SealsInPlace = 39, "seals_in_place", "Segments sealed in their own file because the copy into a sealed file failed (disk full?): that file leaves the spare pool until a new one can be made.";
    SealMaxMs = 40, "seal_max_ms", "Longest seal so far (a full segment handed to the sealer until its file is a spare again), ms; rotations find no spare once it nears --spare-segments fill times of a segment.";
    MaxLoopGapNs = 41, "max_loop_gap_ns", "Longest time between two looks of the capture thread at its rx ring in the last second (gauge; waits in poll() for an empty ring excluded). Frames are lost once it passes the ring's time (ring_size / packet rate); run_delay_ns, steal_ns and involuntary_switches say where such a stall came from.";
    RunDelayNs = 42, "run_delay_ns", "Time the capture thread was ready to run but waited for its core (another task on it), ns (/proc/PID/task/TID/schedstat; read by the control thread once a second).";
    InvoluntarySwitches = 43, "involuntary_switches", "Times the capture thread was preempted (/proc/PID/task/TID/status nonvoluntary_ctxt_switches).";
    StealNs = 44, "steal_ns", "Time the hypervisor gave the capture thread's core to someone else (/proc/stat steal of the pinned core, 10 ms resolution; 0 when the thread is not pinned).";
}

/// Engine value slots in use.
pub const FIELD_COUNT: usize = 45;
/// First slot of the probe counters.
pub const PROBE_BASE: usize = 64;
/// Value slots in the file.
pub const SLOTS: usize = 128;
/// Size of a stats file.
pub const FILE_BYTES: usize = 4096;
pub const MAGIC: &[u8; 8] = b"XDPRSTAT";
pub const VERSION: u32 = 1;
const HEADER_BYTES: usize = 128;

const _: () = assert!(FIELD_COUNT == Field::StealNs as usize + 1);
const _: () = assert!(FIELD_COUNT <= PROBE_BASE);
const _: () = assert!(PROBE_BASE + xdprec_classify::abi::COUNTER_MAX as usize <= SLOTS);
const _: () = assert!(HEADER_BYTES + SLOTS * 8 <= FILE_BYTES);

/// One capture thread's counters. Written by that thread only.
#[repr(C, align(128))]
pub struct CoreStats {
    v: [AtomicU64; FIELD_COUNT],
    /// The thread's kernel task id (0 until it has started), for [`SchedSample::read`].
    tid: AtomicU64,
}

impl Default for CoreStats {
    fn default() -> Self {
        CoreStats {
            v: std::array::from_fn(|_| AtomicU64::new(0)),
            tid: AtomicU64::new(0),
        }
    }
}

impl CoreStats {
    /// Called by the owning thread once, at its start.
    pub fn set_tid_of_current_thread(&self) {
        self.tid
            .store(current_tid().unwrap_or(0), Ordering::Relaxed);
    }

    pub fn tid(&self) -> Option<u64> {
        Some(self.tid.load(Ordering::Relaxed)).filter(|t| *t != 0)
    }

    /// Publishes the owner's local counters (single writer: plain relaxed stores).
    #[inline]
    pub fn publish(&self, local: &Counters) {
        for (a, v) in self.v.iter().zip(local.v.iter()) {
            a.store(*v, Ordering::Relaxed);
        }
    }

    pub fn get(&self, f: Field) -> u64 {
        self.v[f as usize].load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> [u64; FIELD_COUNT] {
        std::array::from_fn(|i| self.v[i].load(Ordering::Relaxed))
    }
}

/// The local (non-atomic) counters a thread updates per packet.
#[derive(Clone, Debug)]
pub struct Counters {
    pub v: [u64; FIELD_COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            v: [0; FIELD_COUNT],
        }
    }
}

impl Counters {
    #[inline]
    pub fn add(&mut self, f: Field, n: u64) {
        let s = &mut self.v[f as usize];
        *s = s.wrapping_add(n);
    }
    #[inline]
    pub fn set(&mut self, f: Field, n: u64) {
        self.v[f as usize] = n;
    }
    #[inline]
    pub fn get(&self, f: Field) -> u64 {
        self.v[f as usize]
    }
}

/// Error opening or reading a stats file.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("stats file {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("stats file {path} is not a version-{VERSION} xdprec stats file")]
    Format { path: PathBuf },
    #[error("stats file {path}: no consistent snapshot (writer busy)")]
    Torn { path: PathBuf },
}

/// Identity of a stats file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsIdentity {
    pub recorder: String,
    pub iface: String,
    pub queue: u32,
    pub core: Option<u32>,
}

/// The path of the stats file of one queue.
pub fn stats_path(store: &Path, id: &StatsIdentity) -> PathBuf {
    store
        .join("stats")
        .join(format!("{}-{}-q{}.stats", id.recorder, id.iface, id.queue))
}

/// The writer side: one mapped stats file.
pub struct StatsFile {
    map: MmapMut,
    path: PathBuf,
}

fn put_name(dst: &mut [u8], s: &str) {
    let n = s.len().min(dst.len() - 1);
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

impl StatsFile {
    /// Creates (or truncates) and maps the stats file of `id`.
    pub fn create(store: &Path, id: &StatsIdentity) -> Result<StatsFile, StatsError> {
        let path = stats_path(store, id);
        let io = |op, source| StatsError::Io {
            path: path.clone(),
            op,
            source,
        };
        std::fs::create_dir_all(store.join("stats")).map_err(|e| io("mkdir", e))?;
        // A new file renamed into place: a reader still mapping a predecessor's file keeps
        // that inode (truncating it under the reader's mapping would fault the reader).
        let tmp = path.with_extension("stats.tmp");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io("open", e))?;
        file.set_len(FILE_BYTES as u64)
            .map_err(|e| io("ftruncate", e))?;
        let mut map = sys::map_mut(&file).map_err(|e| io("mmap", e))?;
        let h = &mut map[..HEADER_BYTES];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(FIELD_COUNT as u32).to_le_bytes());
        h[24..28].copy_from_slice(&id.queue.to_le_bytes());
        h[28..32].copy_from_slice(&id.core.unwrap_or(u32::MAX).to_le_bytes());
        put_name(&mut h[32..48], &id.iface);
        put_name(&mut h[48..112], &id.recorder);
        h[112..120].copy_from_slice(&(std::process::id() as u64).to_le_bytes());
        std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))?;
        Ok(StatsFile { map, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one snapshot under the seqlock.
    pub fn write(&mut self, values: &[u64; FIELD_COUNT], probe: &[u64]) {
        let slots = sys::atomic_u64s(&self.map[16..HEADER_BYTES + SLOTS * 8]);
        let (seq, rest) = slots.split_at(1);
        let vals = &rest[(HEADER_BYTES - 24) / 8..];
        let s = seq[0].load(Ordering::Relaxed);
        seq[0].store(s.wrapping_add(1) | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (i, v) in values.iter().enumerate() {
            vals[i].store(*v, Ordering::Relaxed);
        }
        for (i, v) in probe.iter().enumerate().take(SLOTS - PROBE_BASE) {
            vals[PROBE_BASE + i].store(*v, Ordering::Relaxed);
        }
        seq[0].store((s | 1).wrapping_add(1), Ordering::Release);
    }

    pub fn flush(&self) {
        let _ = self.map.flush_async();
    }
}

/// One snapshot read from a stats file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub id: StatsIdentity,
    pub pid: u64,
    pub seq: u64,
    pub values: [u64; SLOTS],
}

impl Snapshot {
    pub fn get(&self, f: Field) -> u64 {
        self.values[f as usize]
    }
    pub fn probe(&self, c: xdprec_classify::Counter) -> u64 {
        self.values[PROBE_BASE + c as usize]
    }
}

fn get_name(b: &[u8]) -> String {
    let n = b.iter().position(|&x| x == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..n]).into_owned()
}

/// Reader side: a stats file mapped read-only.
pub struct StatsReader {
    map: Mmap,
    path: PathBuf,
    ino: u64,
}

impl StatsReader {
    pub fn open(path: &Path) -> Result<StatsReader, StatsError> {
        let file = std::fs::File::open(path).map_err(|source| StatsError::Io {
            path: path.to_path_buf(),
            op: "open",
            source,
        })?;
        let meta = file.metadata().map_err(|source| StatsError::Io {
            path: path.to_path_buf(),
            op: "fstat",
            source,
        })?;
        let len = meta.len();
        if len < FILE_BYTES as u64 {
            return Err(StatsError::Format {
                path: path.to_path_buf(),
            });
        }
        let map = sys::map_ro(&file).map_err(|source| StatsError::Io {
            path: path.to_path_buf(),
            op: "mmap",
            source,
        })?;
        if &map[0..8] != MAGIC || map[8..12] != VERSION.to_le_bytes() {
            return Err(StatsError::Format {
                path: path.to_path_buf(),
            });
        }
        Ok(StatsReader {
            map,
            path: path.to_path_buf(),
            ino: std::os::unix::fs::MetadataExt::ino(&meta),
        })
    }

    /// True when the path now names another file (a restarted capture made a new one).
    pub fn is_stale(&self) -> bool {
        std::fs::metadata(&self.path)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m) != self.ino)
            .unwrap_or(true)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An untorn snapshot (retries a bounded number of times while the writer is busy).
    pub fn read(&self) -> Result<Snapshot, StatsError> {
        let h = &self.map[..HEADER_BYTES];
        let id = StatsIdentity {
            queue: u32::from_le_bytes([h[24], h[25], h[26], h[27]]),
            core: match u32::from_le_bytes([h[28], h[29], h[30], h[31]]) {
                u32::MAX => None,
                c => Some(c),
            },
            iface: get_name(&h[32..48]),
            recorder: get_name(&h[48..112]),
        };
        let mut pid = [0u8; 8];
        pid.copy_from_slice(&h[112..120]);
        let slots = sys::atomic_u64s(&self.map[16..HEADER_BYTES + SLOTS * 8]);
        let seq = &slots[0];
        let vals = &slots[(HEADER_BYTES - 16) / 8..];
        for _ in 0..10_000 {
            let s1 = seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let values: [u64; SLOTS] = std::array::from_fn(|i| vals[i].load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == s1 {
                return Ok(Snapshot {
                    id,
                    pid: u64::from_le_bytes(pid),
                    seq: s1,
                    values,
                });
            }
        }
        Err(StatsError::Torn {
            path: self.path.clone(),
        })
    }
}

/// The kernel task id of the calling thread (from the `/proc/thread-self` link, which reads
/// `PID/task/TID`).
pub fn current_tid() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Where a capture thread's time went, sampled from procfs by the control thread (never by
/// the capture thread: these are file reads). All values are totals since boot or since the
/// thread started; the stats file carries them as counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedSample {
    /// Time runnable but waiting for a core ([`Field::RunDelayNs`]).
    pub run_delay_ns: u64,
    /// Preemptions ([`Field::InvoluntarySwitches`]).
    pub involuntary_switches: u64,
    /// Hypervisor steal of the thread's core ([`Field::StealNs`]).
    pub steal_ns: u64,
}

/// `/proc/stat` counts in USER_HZ ticks, which the kernel fixes at 100 a second for user
/// space on every architecture xdprec runs on (x86-64, arm64).
const USER_HZ_NS: u64 = 10_000_000;

impl SchedSample {
    /// Samples thread `tid` of this process and `core` (None: steal stays 0). Fields whose
    /// file cannot be read stay 0.
    pub fn read(tid: u64, core: Option<u32>) -> SchedSample {
        let task = format!("/proc/self/task/{tid}");
        let text = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        SchedSample {
            run_delay_ns: parse_schedstat_run_delay(&text(&format!("{task}/schedstat")))
                .unwrap_or(0),
            involuntary_switches: proc_field(
                &text(&format!("{task}/status")),
                "nonvoluntary_ctxt_switches",
            )
            .unwrap_or(0),
            steal_ns: core
                .and_then(|c| parse_cpu_steal_ticks(&text("/proc/stat"), c))
                .map_or(0, |t| t.saturating_mul(USER_HZ_NS)),
        }
    }

    /// Writes the sample into a snapshot's slots.
    pub fn store(&self, v: &mut [u64; FIELD_COUNT]) {
        v[Field::RunDelayNs as usize] = self.run_delay_ns;
        v[Field::InvoluntarySwitches as usize] = self.involuntary_switches;
        v[Field::StealNs as usize] = self.steal_ns;
    }
}

/// `/proc/PID/task/TID/schedstat`: "run_ns wait_ns timeslices"; the second is the time spent
/// runnable on a run queue.
fn parse_schedstat_run_delay(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// The number of a "Name:  value [unit]" line, the format of `/proc/PID/status` and
/// `/proc/meminfo`.
pub(crate) fn proc_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.split_whitespace().next()?.parse().ok())?
    })
}

/// The steal column (the 8th value) of the `cpuN` line of `/proc/stat`.
fn parse_cpu_steal_ticks(text: &str, core: u32) -> Option<u64> {
    let label = format!("cpu{core}");
    let line = text
        .lines()
        .find(|l| l.split_ascii_whitespace().next() == Some(label.as_str()))?;
    line.split_ascii_whitespace().nth(8)?.parse().ok()
}

/// Stats files in `STORE/stats`, sorted.
pub fn list_stats_files(store: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(store.join("stats"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "stats") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let dir = std::env::temp_dir().join(format!("xdprec-stats-{}", std::process::id()));
        let id = StatsIdentity {
            recorder: "rec".into(),
            iface: "eth0".into(),
            queue: 3,
            core: Some(1),
        };
        let mut f = StatsFile::create(&dir, &id).unwrap();
        let mut vals = [0u64; FIELD_COUNT];
        vals[Field::RxPackets as usize] = 42;
        vals[Field::P99WriteNs as usize] = 7;
        let probe = [5u64; 34];
        f.write(&vals, &probe);
        let r = StatsReader::open(f.path()).unwrap();
        let s = r.read().unwrap();
        assert_eq!(s.id, id);
        assert_eq!(s.get(Field::RxPackets), 42);
        assert_eq!(s.get(Field::P99WriteNs), 7);
        assert_eq!(s.probe(xdprec_classify::Counter::Redirected), 5);
        assert_eq!(s.seq % 2, 0);
        vals[Field::RxPackets as usize] = 43;
        f.write(&vals, &probe);
        let s2 = r.read().unwrap();
        assert_eq!(s2.get(Field::RxPackets), 43);
        assert!(s2.seq > s.seq);
        assert_eq!(list_stats_files(&dir).len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sched_fields_are_parsed_from_procfs_text() {
        assert_eq!(
            parse_schedstat_run_delay("936555 1450000 17\n"),
            Some(1_450_000)
        );
        assert_eq!(parse_schedstat_run_delay("936555\n"), None);
        let status =
            "Name:\txdprec\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(proc_field(status, "nonvoluntary_ctxt_switches"), Some(7));
        assert_eq!(proc_field(status, "voluntary_ctxt_switches"), Some(12));
        assert_eq!(proc_field(status, "Threads"), None);
        let meminfo =
            "MemTotal:       24576000 kB\nHugePages_Free:      128\nHugepagesize:       2048 kB\n";
        assert_eq!(proc_field(meminfo, "HugePages_Free"), Some(128));
        assert_eq!(proc_field(meminfo, "Hugepagesize"), Some(2048));
        assert_eq!(proc_field(meminfo, "HugePages"), None);
        let stat = "cpu  2548460 61053 1520373 3554347 146814 0 478885 12833 0 0\n\
                    cpu0 1060913 30175 792060 1808322 16050 0 468048 6276 0 0\n\
                    cpu1 1487546 30878 728313 1746025 130764 0 10836 6556 0 0\n\
                    cpu10 1 2 3 4 5 6 7 99 0 0\n";
        assert_eq!(parse_cpu_steal_ticks(stat, 0), Some(6276));
        assert_eq!(parse_cpu_steal_ticks(stat, 1), Some(6556));
        assert_eq!(parse_cpu_steal_ticks(stat, 10), Some(99));
        assert_eq!(parse_cpu_steal_ticks(stat, 2), None);
        assert_eq!(parse_cpu_steal_ticks("cpu3 1 2\n", 3), None);
    }

    #[test]
    fn a_thread_samples_itself() {
        let c = CoreStats::default();
        assert_eq!(c.tid(), None);
        c.set_tid_of_current_thread();
        let tid = c.tid().expect("this thread's task id");
        assert!(std::path::Path::new(&format!("/proc/self/task/{tid}")).is_dir());
        // Values may be 0 here (an idle test machine); that they are read into the right
        // slots, and that an unknown task reads as nothing, is what is checked.
        let s = SchedSample::read(tid, Some(0));
        let mut v = [0u64; FIELD_COUNT];
        s.store(&mut v);
        assert_eq!(v[Field::RunDelayNs as usize], s.run_delay_ns);
        assert_eq!(v[Field::StealNs as usize], s.steal_ns);
        assert_eq!(SchedSample::read(u64::MAX, None), SchedSample::default());
    }

    #[test]
    fn core_stats_fill_a_cache_line_of_their_own() {
        assert_eq!(std::mem::align_of::<CoreStats>(), 128);
        let c = CoreStats::default();
        let mut l = Counters::default();
        l.add(Field::Written, 3);
        c.publish(&l);
        assert_eq!(c.get(Field::Written), 3);
    }
}
