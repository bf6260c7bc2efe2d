//! `xdprec capture`: record SIP/RTP/RTCP from interfaces through AF_XDP, or import a pcap.
//!
//! Contract command lines (driven by outside checks; keep them):
//! - `xdprec capture --iface IF [--iface IF2] --store DIR [--recorder NAME] [--queues 0,1]
//!   [--cores 1-3] [--xdp-mode auto|native|skb] [--sip-ports 5060,5080] [--rtp-ports LO-HI]
//!   [--config FILE.toml] [--segment-mb N] [--seal-secs N] [--ring-size N]`: runs until SIGINT
//!   or SIGTERM, then drains, seals and exits 0.
//! - `xdprec capture --pcap FILE --store DIR [--recorder NAME]`: offline import (no
//!   privileges), prints counts per class.
//!
//! - `xdprec capture --ha --iface IF ...`: an active that a standby can take over from;
//!   `xdprec capture --standby --iface IF --store DIR ...` beside it waits, and when the active
//!   dies (kill -9 included) binds its own sockets into the still-attached probe and records
//!   on as recorder `NAME.sb` (see `xdprec_capture::ha`).
//!
//! Duplicates (the same IP packet seen twice within `--dedup-window-ms`, e.g. both directions
//! of a SPAN or two NICs) are stored once and counted `dup_dropped` (`xdprec_capture::dedup`).
//!
//! Settings and the TOML file are described in `xdprec_capture::config`.

use std::path::PathBuf;

use anyhow::Context;
use xdprec_capture::config::{CaptureConfig, FileConfig, FlagValues, HaRole};
use xdprec_capture::ha::standby_recorder_for;
use xdprec_capture::import::import_pcap_dedup;
use xdprec_capture::live::{run_live, stop_on_signals};
use xdprec_capture::sink::SegmentSink;
use xdprec_capture::stats::Field;

#[derive(clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct Args {
    /// Interface to capture on (repeat for several NICs).
    #[arg(long = "iface", value_name = "IF")]
    pub iface: Vec<String>,
    /// Import this pcap/pcapng file instead of capturing live.
    #[arg(long, value_name = "FILE", conflicts_with = "iface")]
    pub pcap: Option<PathBuf>,
    /// Store directory (segments/, stats/).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Recorder name written into every segment (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub recorder: Option<String>,
    /// Rx queues to capture, e.g. 0,1 or 0-3 (default: all of each device).
    #[arg(long, value_name = "LIST")]
    pub queues: Option<String>,
    /// Cores to pin capture threads to, e.g. 0,1 or 1-3 (default: spread over all).
    #[arg(long, value_name = "LIST")]
    pub cores: Option<String>,
    /// Cores for everything else (control thread, segment sealers, spare makers), e.g. 0
    /// (default: any core). Keep them off the capture cores at high rates.
    #[arg(long = "housekeeping-cores", value_name = "LIST")]
    pub housekeeping_cores: Option<String>,
    /// Run capture threads SCHED_FIFO at this priority, 1-99 (default 0: normal scheduling).
    /// Keeps sealing and other work on the same core from delaying them.
    #[arg(long = "rt-priority", value_name = "PRIO")]
    pub rt_priority: Option<u8>,
    /// How to attach the probe: auto, native or skb.
    #[arg(long = "xdp-mode", value_name = "MODE")]
    pub xdp_mode: Option<String>,
    /// SIP ports, e.g. 5060,5080 (default 5060).
    #[arg(long = "sip-ports", value_name = "LIST")]
    pub sip_ports: Option<String>,
    /// RTP/RTCP port range LO-HI (default 1024-65535).
    #[arg(long = "rtp-ports", value_name = "LO-HI")]
    pub rtp_ports: Option<String>,
    /// TOML file with the same settings (flags win).
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Segment file size in MiB (default 256).
    #[arg(long = "segment-mb", value_name = "MB")]
    pub segment_mb: Option<u64>,
    /// Seal a segment this many seconds after its first record (default 60).
    #[arg(long = "seal-secs", value_name = "S")]
    pub seal_secs: Option<u64>,
    /// Rx and fill ring entries per queue, a power of two (default: 128 MiB of frames, i.e.
    /// 65536 with 2 KiB frames, 32768 with 4 KiB ones; 0: the same).
    #[arg(long = "ring-size", value_name = "N")]
    pub ring_size: Option<u32>,
    /// Descriptors taken from the rx ring at once (default 256).
    #[arg(long = "batch-size", value_name = "N")]
    pub batch_size: Option<usize>,
    /// Microseconds a capture thread sleeps when its ring is empty (default 100; 0: block in
    /// poll(), which makes the kernel wake the thread, at a cost to the receiving core).
    #[arg(long = "idle-us", value_name = "US")]
    pub idle_us: Option<u64>,
    /// Segment files kept beside the active one and reused after each seal, 1-4 (default 2;
    /// each costs --segment-mb of memory, resident for good).
    #[arg(long = "spare-segments", value_name = "N")]
    pub spare_segments: Option<u32>,
    /// Where the active and spare segment files live: disk (STORE/segments/, default) or ram
    /// (STORE/spool/, a tmpfs the capture mounts there if it is not one, sized for
    /// --spare-segments + 11 segments a queue, only the files in use taking memory; under `ip
    /// netns exec` mount it yourself first). ram: the kernel never writes the reused files back
    /// (less disk traffic, no page faults on the capture core); unsealed data survives a crash
    /// or kill -9 but not a power loss (it reaches the disk at the seal).
    #[arg(long, value_name = "disk|ram")]
    pub spool: Option<String>,
    /// UMEM frame size, 2048 or 4096 (default: 2048 when every interface's MTU is at most
    /// 1770, else 4096; 0: the same).
    #[arg(long = "frame-size", value_name = "BYTES")]
    pub frame_size: Option<u32>,
    /// Copies of one IP packet (TTL and IPv4 checksum ignored) less than this many ms apart
    /// are stored once and counted dup_dropped (default 50; 0: off).
    #[arg(long = "dedup-window-ms", value_name = "MS")]
    pub dedup_window_ms: Option<u64>,
    /// Entries of the shared dedup table, a power of two, 8 bytes each (default 1048576).
    #[arg(long = "dedup-entries", value_name = "N")]
    pub dedup_entries: Option<u32>,
    /// Active of a hot-standby pair: pin the probe in bpffs, hold RUN_DIR/IF.active.lock,
    /// write a heartbeat every 10 ms, so that a `--standby` can take over.
    #[arg(long, conflicts_with_all = ["standby", "pcap"])]
    pub ha: bool,
    /// Wait beside an `--ha` active on the same interfaces; when it dies, take its queues over
    /// and record as recorder NAME.sb (NAME if the active is itself a NAME.sb).
    #[arg(long, conflicts_with = "pcap")]
    pub standby: bool,
    /// BPF file system the probe is pinned under (BPFFS/xdprec/IF/); mounted if it is not one
    /// (default /sys/fs/bpf).
    #[arg(long, value_name = "DIR")]
    pub bpffs: Option<PathBuf>,
    /// Directory of the active/standby lock files (default /run/xdprec).
    #[arg(long = "run-dir", value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// A standby kills (SIGKILL) and replaces an active whose heartbeat is older than this
    /// (default 1000; 0: only take over when the active process is gone).
    #[arg(long = "heartbeat-timeout-ms", value_name = "MS")]
    pub heartbeat_timeout_ms: Option<u64>,
}

const AFTER_HELP: &str = "\
Deduplication: a frame whose inner IP packet (addresses, IP id/flow label, L4 header and
payload; not the TTL/hop limit or the IPv4 header checksum) was already seen less than
--dedup-window-ms ago, by any capture thread of this process, is not stored and is counted
dup_dropped (see `xdprec stat`). The shared table is fixed-size and lock-free; when it is full
the oldest entries are overwritten (counted dedup_evicted) and a late copy is stored again.
False drops: at most about 1.4e-14 per packet (48-bit tags, 4 slots looked at).

Hot standby on one appliance:
  xdprec capture --ha      --iface eth1 --store /data/a --recorder rec1
  xdprec capture --standby --iface eth1 --store /data/a --recorder rec1
The active pins its probe (link and maps) under BPFFS/xdprec/IF/, so the probe keeps steering
when the active dies (frames are passed and counted no_socket until the standby's sockets are
in). The standby waits in flock on RUN_DIR/IF.active.lock, which the kernel releases the
instant the active dies (kill -9 included), then binds its own AF_XDP sockets and records as
recorder NAME.sb, or NAME when the active is itself a NAME.sb that took over (its own
segments, read together with the active's). It prepares UMEMs, writers and the pinned maps
while it waits: measured takeover 16-25 ms from the death to its sockets in the probe. A heartbeat older than
--heartbeat-timeout-ms makes the standby SIGKILL a hung active (a queue bound by a live
socket cannot be bound again). On a clean exit (SIGINT) the active leaves the probe attached
when a standby waits, and removes it otherwise. An --ha active clears stale pins of a crashed
run at start. Under `ip netns exec` (which remounts /sys) give both --bpffs DIR outside /sys.";

pub fn run(args: Args) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(p) => Some(FileConfig::load(p)?),
        None => None,
    };
    let flags = FlagValues {
        ifaces: args.iface.clone(),
        store: args.store.clone(),
        recorder: args.recorder.clone(),
        queues: args.queues.clone(),
        cores: args.cores.clone(),
        housekeeping_cores: args.housekeeping_cores.clone(),
        rt_priority: args.rt_priority,
        xdp_mode: args.xdp_mode.clone(),
        sip_ports: args.sip_ports.clone(),
        rtp_ports: args.rtp_ports.clone(),
        segment_mb: args.segment_mb,
        seal_secs: args.seal_secs,
        ring_size: args.ring_size,
        frame_size: args.frame_size,
        batch_size: args.batch_size,
        idle_us: args.idle_us,
        spare_segments: args.spare_segments,
        spool: args.spool.clone(),
        dedup_window_ms: args.dedup_window_ms,
        dedup_entries: args.dedup_entries,
        ha: if args.standby {
            HaRole::Standby
        } else if args.ha {
            HaRole::Active
        } else {
            HaRole::Off
        },
        bpffs: args.bpffs.clone(),
        run_dir: args.run_dir.clone(),
        heartbeat_timeout_ms: args.heartbeat_timeout_ms,
    };
    let mut cfg = CaptureConfig::from_sources(&flags, file.as_ref())?;
    if cfg.ha == HaRole::Standby {
        cfg.recorder = standby_recorder_for(&cfg);
        cfg.validate()?;
    }
    if let Some(pcap) = &args.pcap {
        // The file's interfaces do not apply to an import.
        cfg.ifaces.clear();
        return import(&cfg, pcap);
    }
    // Checked here too, so a bad interface, queue or core fails before anything starts.
    let plan = cfg.plan()?;
    for p in &plan {
        log::info!(
            "{} queue {} -> core {}",
            p.iface,
            p.queue,
            p.core.map_or("any".to_string(), |c| c.to_string())
        );
    }
    let stop = stop_on_signals().context("installing SIGINT/SIGTERM handlers")?;
    std::fs::create_dir_all(&cfg.store)
        .with_context(|| format!("creating store {}", cfg.store.display()))?;
    let mounted = SegmentSink::prepare_spool(&cfg, plan.len()).map_err(anyhow::Error::msg)?;
    let summary = run_live(&cfg, &stop, |qp| SegmentSink::for_plan(&cfg, qp))?;
    SegmentSink::release_spool(&cfg, mounted);
    println!(
        "captured {} frames ({} bytes): sip {} rtp {} rtcp {} frag {} other {}; written {} \
         (reassembled {}); duplicates {}; dropped: ring full {} fill empty {} invalid {} \
         disk full {} write errors {}; spare misses {}",
        summary.total(Field::RxPackets),
        summary.total(Field::RxBytes),
        summary.total(Field::ClassSip),
        summary.total(Field::ClassRtp),
        summary.total(Field::ClassRtcp),
        summary.total(Field::ClassFrag),
        summary.total(Field::ClassOther),
        summary.total(Field::Written),
        summary.total(Field::Reassembled),
        summary.total(Field::DupDropped),
        summary.total(Field::XskRingFull),
        summary.total(Field::XskFillEmpty),
        summary.total(Field::XskInvalidDescs),
        summary.total(Field::DiskFull),
        summary.total(Field::WriteErrors),
        summary.total(Field::SpareMisses),
    );
    Ok(())
}

fn import(cfg: &CaptureConfig, pcap: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.store)
        .with_context(|| format!("creating store {}", cfg.store.display()))?;
    let mounted = SegmentSink::prepare_spool(cfg, 1).map_err(anyhow::Error::msg)?;
    // Imports write as queue 0 of a pseudo-interface named after nothing on the host.
    let sink = SegmentSink::open(cfg, "pcap", 0).map_err(anyhow::Error::msg)?;
    let (summary, sink) =
        import_pcap_dedup(pcap, sink, cfg.probe_config(), cfg.reasm, cfg.dedup_table())?;
    drop(sink);
    SegmentSink::release_spool(cfg, mounted);
    println!("{}: {}", pcap.display(), summary.line());
    Ok(())
}
