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
//! Settings and the TOML file are described in `xdprec_capture::config`.

use std::path::PathBuf;

use anyhow::Context;
use xdprec_capture::config::{CaptureConfig, FileConfig, FlagValues};
use xdprec_capture::import::import_pcap;
use xdprec_capture::live::{run_live, stop_on_signals};
use xdprec_capture::sink::SegmentSink;
use xdprec_capture::stats::Field;

#[derive(clap::Args)]
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
    /// Rx and fill ring entries per queue, a power of two (default 32768).
    #[arg(long = "ring-size", value_name = "N")]
    pub ring_size: Option<u32>,
    /// Descriptors taken from the rx ring at once (default 256).
    #[arg(long = "batch-size", value_name = "N")]
    pub batch_size: Option<usize>,
    /// UMEM frame size, 2048 or 4096 (default 4096).
    #[arg(long = "frame-size", value_name = "BYTES")]
    pub frame_size: Option<u32>,
}

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
        xdp_mode: args.xdp_mode.clone(),
        sip_ports: args.sip_ports.clone(),
        rtp_ports: args.rtp_ports.clone(),
        segment_mb: args.segment_mb,
        seal_secs: args.seal_secs,
        ring_size: args.ring_size,
        frame_size: args.frame_size,
        batch_size: args.batch_size,
    };
    let mut cfg = CaptureConfig::from_sources(&flags, file.as_ref())?;
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
    let summary = run_live(&cfg, &stop, |qp| SegmentSink::for_plan(&cfg, qp))?;
    println!(
        "captured {} frames ({} bytes): sip {} rtp {} rtcp {} frag {} other {}; written {} \
         (reassembled {}); dropped: ring full {} fill empty {} invalid {} disk full {} \
         write errors {}",
        summary.total(Field::RxPackets),
        summary.total(Field::RxBytes),
        summary.total(Field::ClassSip),
        summary.total(Field::ClassRtp),
        summary.total(Field::ClassRtcp),
        summary.total(Field::ClassFrag),
        summary.total(Field::ClassOther),
        summary.total(Field::Written),
        summary.total(Field::Reassembled),
        summary.total(Field::XskRingFull),
        summary.total(Field::XskFillEmpty),
        summary.total(Field::XskInvalidDescs),
        summary.total(Field::DiskFull),
        summary.total(Field::WriteErrors),
    );
    Ok(())
}

fn import(cfg: &CaptureConfig, pcap: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.store)
        .with_context(|| format!("creating store {}", cfg.store.display()))?;
    // Imports write as queue 0 of a pseudo-interface named after nothing on the host.
    let sink = SegmentSink::open(cfg, "pcap", 0).map_err(anyhow::Error::msg)?;
    let (summary, _sink) = import_pcap(pcap, sink, cfg.probe_config(), cfg.reasm)?;
    println!("{}: {}", pcap.display(), summary.line());
    Ok(())
}
