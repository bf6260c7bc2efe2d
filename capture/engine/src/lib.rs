//! Capture: AF_XDP rings, pinned per-queue threads, pcap import, per-core stats.
//!
//! - [`config`]: settings from flags and a TOML file, checked before anything starts.
//! - [`pipeline`]: classify → stream key (+ RTP meta) → segment append, with IP fragment
//!   reassembly ([`reasm`]); one per thread, shared by live capture and pcap import
//!   ([`import`]). [`sink`] binds it to the segment writer.
//! - [`live`]: the probe, one AF_XDP socket ([`XskQueue`]) and one pinned thread per NIC
//!   queue, the control thread, shutdown on SIGINT/SIGTERM.
//! - [`stats`]: per-core counters and the mmap'd stats files `xdprec stat` reads (layout
//!   documented there).
//! - [`dedup`]: duplicate packets within one recorder (both directions of a SPAN, the same
//!   traffic on two NICs or queues) are stored once and counted `dup_dropped`: a shared,
//!   fixed-size, lock-free table of `AtomicU64` (fingerprint of the inner IP packet without
//!   TTL/hop limit and IPv4 checksum, plus a time bucket), `--dedup-window-ms` (50; 0 = off),
//!   `--dedup-entries` (1<<20 = 8 MiB). False-positive bound, behaviour when full
//!   (`dedup_evicted`) and the window rule are documented there.
//! - [`ha`]: hot standby on one appliance (`--ha` / `--standby`): the active pins the probe
//!   (link and maps) in bpffs and holds a flock'd lock file plus a 10 ms heartbeat in
//!   `xdprec_heartbeat`; the standby, with UMEMs, writers and pinned maps prepared, wakes
//!   from flock the instant the active dies (kill -9 included), binds its own sockets into
//!   the still-attached probe and records on under its own recorder name. Measured takeover
//!   (death to sockets in the XSKMAP) 9-25 ms on veth; frames in between are passed and
//!   counted `no_socket` by the probe. Hung actives, clean exits, stale pins: see there.
//!
//! ## Loss accounting
//!
//! Every frame is counted where it is lost: the probe's counters (per class and verdict, incl.
//! `no_socket`, `redirect_failed`), the socket's `XDP_STATISTICS` (`rx_ring_full`,
//! `rx_fill_ring_empty_descs`, `rx_invalid_descs`, `rx_dropped`), then in the pipeline
//! `written` / `class_other` / `dup_dropped` / `disk_full` / `write_errors`, and for
//! reassembly its drops by cause. All are in the stats file of the queue. During a standby
//! takeover the probe counts the frames it found no socket for (`no_socket`).
//!
//! ## Memory (per capture thread, i.e. per NIC queue; defaults in brackets)
//!
//! | what | bound |
//! |---|---|
//! | UMEM | `ring_size` x `frame_size` [128 MiB: 65536 x 2048 where the MTU allows, else 32768 x 4096] |
//! | rx + fill rings | `ring_size` x (16 + 8) bytes [768 KiB]; tx/completion rings 64 entries each |
//! | descriptor batch | `ring_size` x 24 bytes [768 KiB] |
//! | reassembly | `reasm_datagrams_max` x (64 KiB + 8 x `reasm_frags_max`) + 64 KiB [256 slots: ~16.1 MiB at worst, grown on use] |
//! | classifier TCP-SIP flow table | `xdprec_classify::abi::TCP_FLOWS_MAX` entries, as the probe's map |
//! | segment writer | 104 bytes x `streams_max` [6.5 MiB] allocated once + (`spare_segments` + 1) files of `segment_bytes_max` mapped for good [3 x 256 MiB; page cache, or tmpfs with `--spool ram`], each with its notes: `segment_bytes_max` / 8 + 88 bytes x `streams_max` [37.5 MiB] (see `xdprec_segment` writer) |
//! | write-time histogram, counters, stats file | < 64 KiB |
//! | dedup table (per process, shared by all threads) | `dedup_entries` x 8 bytes [8 MiB] |
//!
//! Per stream the engine itself keeps nothing: stream state lives in the segment writer's
//! table (88 bytes a stream + 16 of hash slots, at most `streams_max`; beyond, records are
//! written untracked and counted). In total: about 1 GiB per queue with the defaults (128 MiB
//! UMEM, 3 x (256 + 37.5) MiB of segment files and notes, 8 MiB dedup, 6.5 MiB stream table,
//! ~40 MiB of the sealer's buffers); nothing grows with traffic after warm-up, and nothing is
//! allocated per packet.
#![deny(unsafe_code)]

pub mod config;
pub mod dedup;
pub mod ha;
pub mod import;
pub mod live;
pub mod pipeline;
pub mod reasm;
pub mod sink;
pub mod stats;
mod sys;

pub use config::{
    CaptureConfig, ConfigError, FlagValues, HaRole, QueuePlan, ReasmLimits, Spool, XdpModeSel,
};
pub use dedup::{DedupTable, DedupVerdict};
pub use pipeline::{
    FrameClassifier, KeyParts, Pipeline, ProbeClassifier, Rec, RecordSink, RtpParts, SinkGauges,
    SinkResult, Verdict,
};
pub use stats::{CoreStats, Counters, Field, Snapshot, StatsFile, StatsIdentity, StatsReader};
pub use sys::{XskError, XskQueue, XskUmem};
