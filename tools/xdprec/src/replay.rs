//! `xdprec replay`: send a capture, or N synthetic concurrent calls, into an interface.
//!
//! Contract command line (driven by outside checks; keep it):
//! `xdprec replay --iface IF (--pcap FILE | --synth N) [--pps N | --mbps N | --topspeed]
//!  [--loop N] [--duration S] [--write-pcap OUT]`
//!
//! Extras: `--sender auto|live|live-ring|afxdp|packet`, `--ring-frames N`, `--kernel-batch N`, `--vlan ID`, `--call-secs S`, `--cps R`,
//! `--repeat K` (live sender: K copies of each frame), `--count N` (stop after N frames),
//! `--seed N`. `--iface` may be left out when `--write-pcap` is given (write only).
//!
//! Timing: with `--pps` or `--mbps` the frames go at that rate (token bucket, batches of about
//! 1 ms of traffic); with `--topspeed` as fast as the sender goes; with neither (the default)
//! they follow their own timeline: a capture's inter-packet gaps, or real time for synthetic
//! calls (N calls are about 100·N packets/s). Writing only (no `--iface`) runs at top speed.
//!
//! Bounds: `--duration S` (wall clock) and `--loop N` end every run. `--loop` is the number of
//! passes over a capture (default 1; 0 = forever, needs `--duration`), or the number of calls
//! each synthetic slot makes (default 1 without `--duration`, unbounded with it). When writing
//! only, `--duration` bounds the synthetic timeline instead. Ctrl-C (SIGINT) or SIGTERM stops
//! cleanly with a summary; a second one exits at once.
//!
//! Senders: `live` = BPF_PROG_RUN live frames of `xdprec_replay_tx` (XDP_TX) with
//! ingress_ifindex = the interface (needs a driver with ndo_xdp_xmit; on veth the peer needs
//! an XDP program or GRO on, else frames vanish without a counter); one system call per frame,
//! or per K identical copies with `--repeat K`. `packet` = AF_PACKET sendmmsg (any interface).
//! `live-ring` = BPF_PROG_RUN live frames of `xdprec_replay_ring`: up to 65536 frames of the
//! source (at most 256 bytes each: RTP, RTCP, short SIP) are preloaded as templates and each
//! system call sends `--repeat K` DISTINCT frames cycling through them (RTP sequence numbers
//! and timestamps move on in every pass; SIP/RTCP templates repeat, so a capture's
//! `--dedup-window-ms` must be 0 or shorter than one pass, n / rate). The program paces the
//! packets of a call itself (spinning on the clock), so `--pps` gives an even stream; K
//! defaults to half a second of traffic because a call costs ~28 ms besides its packets.
//! Needs `--pps`, `--mbps` or `--topspeed`; not with `--write-pcap`; `--count` is rounded up
//! to whole calls. Measured here: 2.2 Mpps of distinct 214-byte frames into a GRO peer.
//! `afxdp` = an AF_XDP socket on queue 0, TX only (no XDP program; zero-copy where the driver
//! has it, copy mode on veth; longer frames than the MTU are errors). `auto` picks `live` when
//! `--repeat` > 1, else `afxdp` (fastest for distinct frames: see scripts/bench-replay.sh), or
//! `packet` where the AF_XDP socket cannot be opened, and logs which it chose and why.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use xdprec_replay::sender::iface_driver;
use xdprec_replay::{
    stop_on_signals, FrameSource, IfaceCounters, Limits, LiveSender, MonotonicClock, Pace,
    PacketSender, PcapSender, PcapSource, RingSender, Sender, SenderKind, Summary, Synth,
    SynthConfig, Tee, Ticks,
};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["pcap", "synth"])))]
#[command(group(clap::ArgGroup::new("rate").args(["pps", "mbps", "topspeed"])))]
pub struct Args {
    /// Interface to send into (optional with --write-pcap: then write only).
    #[arg(long, value_name = "IF", required_unless_present = "write_pcap")]
    pub iface: Option<String>,
    /// Replay this pcap/pcapng file (any link type), in file order.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Generate N concurrent synthetic calls (SIP + G.711 RTP + RTCP).
    #[arg(long, value_name = "N")]
    pub synth: Option<u32>,
    /// Packets per second.
    #[arg(long, value_name = "N")]
    pub pps: Option<u64>,
    /// Megabits per second of frame data.
    #[arg(long, value_name = "N")]
    pub mbps: Option<f64>,
    /// As fast as the sender goes.
    #[arg(long)]
    pub topspeed: bool,
    /// Passes over the capture (0 = forever), or calls per synthetic slot.
    #[arg(long = "loop", value_name = "N")]
    pub loops: Option<u64>,
    /// Stop after S seconds.
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Also (or, without --iface, only) write the traffic to this pcap.
    #[arg(long, value_name = "OUT")]
    pub write_pcap: Option<PathBuf>,
    /// How to send.
    #[arg(long, value_name = "KIND", default_value = "auto", value_parser = parse_sender)]
    pub sender: SenderKind,
    /// 802.1Q VLAN tag on synthetic frames.
    #[arg(long, value_name = "ID")]
    pub vlan: Option<u16>,
    /// Length of each synthetic call, INVITE to BYE.
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub call_secs: f64,
    /// Synthetic calls started per second while ramping up (default: N / call-secs).
    #[arg(long, value_name = "R")]
    pub cps: Option<f64>,
    /// Live sender: send every frame K times per system call (identical copies; load tests).
    /// live-ring: packets per system call (default: about 50 ms of traffic at the asked rate).
    #[arg(long, value_name = "K")]
    pub repeat: Option<u32>,
    /// live-ring: frames of the source preloaded as templates (at most 65536; frames over
    /// 256 bytes, i.e. most SIP, are skipped).
    #[arg(long = "ring-frames", value_name = "N", default_value_t = 65536)]
    pub ring_frames: usize,
    /// live-ring: frames per inner kernel batch of a run (1-256; 64: a veth peer's 256-frame
    /// ring then does not overflow).
    #[arg(long = "kernel-batch", value_name = "N", default_value_t = 64)]
    pub kernel_batch: u32,
    /// Stop after N frames (tests, exact counts).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Varies Call-IDs, tags and SSRCs between runs (default: from the clock).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// The packet rate a pace asks for (bit rates assume 214-byte G.711 frames); `None`: top speed.
fn pace_pps(pace: Pace) -> Option<u64> {
    match pace {
        Pace::Pps(r) => Some(r),
        Pace::BitsPerSec(b) => Some((b / (214 * 8)).max(1)),
        Pace::TopSpeed | Pace::Timeline => None,
    }
}

/// Packets per live-ring system call when `--repeat` is not given: half a second of traffic
/// at the asked rate (a call costs about 28 ms besides its packets on this kind of machine,
/// see benches/results/capture.md; the program paces the packets of a run itself), 1 Mi at
/// top speed.
fn ring_repeat(pace: Pace) -> u32 {
    pace_pps(pace)
        .map_or(1 << 20, |r| r / 2)
        .clamp(256, 1 << 22) as u32
}

fn ring_sender(
    args: &Args,
    iface: &str,
    pace: Pace,
    source: &mut dyn FrameSource,
) -> anyhow::Result<(Box<dyn Sender>, u32)> {
    if pace == Pace::Timeline {
        bail!("--sender live-ring needs --pps, --mbps or --topspeed (it cannot follow a timeline)");
    }
    let k = args.repeat.unwrap_or_else(|| ring_repeat(pace));
    let s = RingSender::open(
        iface,
        xdprec_probe::REPLAY_TX_OBJECT,
        source,
        args.ring_frames,
    )?
    .with_repeat(k)
    .with_kernel_batch(args.kernel_batch)
    .with_pace_pps(pace_pps(pace).unwrap_or(0));
    log::info!(
        "sender: live-ring (BPF_PROG_RUN live frames of {} distinct templates, {} RTP, cycled; \
         {} packets per call, kernel batch {}; {} source frames over 256 bytes skipped; \
         XDP_TX out of {iface}, a veth peer needs XDP or GRO on)",
        s.templates(),
        s.rtp_templates,
        k,
        args.kernel_batch.clamp(1, 256),
        s.skipped_long
    );
    if s.unpatched_rtp > 0 {
        log::warn!(
            "live-ring: {} RTP templates are repeated unpatched (too many streams)",
            s.unpatched_rtp
        );
    }
    Ok((Box::new(s), k))
}

fn parse_sender(s: &str) -> Result<SenderKind, String> {
    match s {
        "auto" => Ok(SenderKind::Auto),
        "live" => Ok(SenderKind::Live),
        "afxdp" => Ok(SenderKind::AfXdp),
        "packet" => Ok(SenderKind::Packet),
        "live-ring" => Ok(SenderKind::LiveRing),
        _ => Err(format!(
            "`{s}`: give auto, live, live-ring, afxdp or packet"
        )),
    }
}

fn open_sender(kind: SenderKind, iface: &str, repeat: u32) -> anyhow::Result<Box<dyn Sender>> {
    let live =
        || LiveSender::open(iface, xdprec_probe::REPLAY_TX_OBJECT).map(|s| s.with_repeat(repeat));
    if repeat > 1 && matches!(kind, SenderKind::Packet | SenderKind::AfXdp) {
        bail!("--repeat needs the live sender (--sender live or auto)");
    }
    Ok(match kind {
        SenderKind::Live => {
            let s = live()?;
            log::info!(
                "sender: live (BPF_PROG_RUN live frames, XDP_TX out of {iface}, repeat {repeat})"
            );
            Box::new(s)
        }
        SenderKind::Packet => {
            let s = PacketSender::open(iface)?;
            log::info!(
                "sender: packet (AF_PACKET sendmmsg on {iface}, qdisc bypass {})",
                if s.qdisc_bypass { "on" } else { "off" }
            );
            Box::new(s)
        }
        SenderKind::LiveRing => unreachable!("live-ring is opened by ring_sender"),
        SenderKind::AfXdp => {
            let s = xdprec_replay::AfXdpSender::open(iface)?;
            log::info!(
                "sender: afxdp (AF_XDP TX on {iface} queue 0, {} mode, frames up to {} bytes)",
                if s.zero_copy() { "zero-copy" } else { "copy" },
                s.frame_bytes_max()
            );
            Box::new(s)
        }
        SenderKind::Auto => {
            // Live frames are fast only with repeat (one system call per distinct frame costs
            // about 14 µs here, AF_PACKET under 1 µs), and silently lose frames where the
            // driver cannot transmit XDP frames: take them only when asked to repeat.
            let driver = iface_driver(iface);
            if repeat > 1 {
                let s = live()?;
                log::info!(
                    "sender: live (auto: --repeat {repeat}; BPF_PROG_RUN live frames, XDP_TX \
                     out of {iface}, driver {}; a veth peer needs XDP or GRO on)",
                    driver.as_deref().unwrap_or("unknown")
                );
                return Ok(Box::new(s));
            }
            // Distinct frames: AF_XDP is the fast path (on veth copy mode 1.2-1.6 Mpps against
            // AF_PACKET's 0.8-0.9 in one run here; zero-copy on real NICs). It needs queue 0
            // free of other AF_XDP sockets; otherwise AF_PACKET, which works everywhere.
            match xdprec_replay::AfXdpSender::open(iface) {
                Ok(s) => {
                    log::info!(
                        "sender: afxdp (auto: distinct frames; AF_XDP TX on {iface} queue 0, {} \
                         mode, driver {})",
                        if s.zero_copy() { "zero-copy" } else { "copy" },
                        driver.as_deref().unwrap_or("unknown")
                    );
                    return Ok(Box::new(s));
                }
                Err(e) => log::info!("auto: AF_XDP not available ({e}); using AF_PACKET"),
            }
            let s = PacketSender::open(iface)?;
            log::info!(
                "sender: packet (auto: distinct frames; AF_PACKET sendmmsg on {iface}, driver {}, \
                 qdisc bypass {})",
                driver.as_deref().unwrap_or("unknown"),
                if s.qdisc_bypass { "on" } else { "off" }
            );
            Box::new(s)
        }
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let write_only = args.iface.is_none();
    if write_only && (args.pps.is_some() || args.mbps.is_some()) {
        log::info!("writing only: --pps/--mbps ignored, the file keeps the traffic's timestamps");
    }
    let pace = if write_only {
        Pace::TopSpeed
    } else if let Some(p) = args.pps {
        if p == 0 {
            bail!("--pps 0: give a positive rate");
        }
        Pace::Pps(p)
    } else if let Some(m) = args.mbps {
        if !(m.is_finite() && m > 0.0) {
            bail!("--mbps {m}: give a positive rate");
        }
        Pace::BitsPerSec((m * 1e6) as u64)
    } else if args.topspeed {
        Pace::TopSpeed
    } else {
        Pace::Timeline
    };
    let duration_ns = match args.duration {
        Some(d) if !(d.is_finite() && d > 0.0) => bail!("--duration {d}: give positive seconds"),
        Some(d) => Some((d * 1e9) as u64),
        None => None,
    };
    let now_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);

    let mut source: Box<dyn FrameSource> = if let Some(path) = &args.pcap {
        let passes = match args.loops {
            Some(0) if duration_ns.is_none() || write_only => {
                bail!("--loop 0 (forever) needs --duration and an --iface to send to")
            }
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(1),
        };
        Box::new(PcapSource::open(path, passes)?)
    } else {
        let n = args.synth.unwrap_or(0);
        if !(args.call_secs.is_finite() && args.call_secs > 0.0) {
            bail!("--call-secs {}: give positive seconds", args.call_secs);
        }
        let mut cfg = SynthConfig::new(n);
        cfg.call_ns = (args.call_secs * 1e9) as u64;
        cfg.cps = args.cps;
        cfg.vlan = args.vlan;
        cfg.generations = match (args.loops, duration_ns) {
            (Some(0), None) => bail!("--loop 0 (forever) needs --duration"),
            (Some(0), Some(_)) => None,
            (Some(g), _) => Some(g),
            (None, Some(_)) => None,
            (None, None) => Some(1),
        };
        if write_only {
            cfg.duration_ns = duration_ns;
        }
        cfg.start_unix_ns = now_unix_ns;
        cfg.seed = args.seed.unwrap_or(now_unix_ns);
        Box::new(Synth::new(cfg)?)
    };

    let mut count = args.count;
    let mut sender: Box<dyn Sender> = match (&args.iface, &args.write_pcap) {
        (Some(iface), None) if args.sender == SenderKind::LiveRing => {
            let (s, k) = ring_sender(&args, iface, pace, source.as_mut())?;
            // The templates are in the kernel; the runner's source only paces the calls.
            source = Box::new(Ticks);
            count = count.map(|c| c.div_ceil(u64::from(k)));
            s
        }
        (_, Some(_)) if args.sender == SenderKind::LiveRing => {
            bail!(
                "--sender live-ring sends templates from the kernel: --write-pcap is not supported"
            )
        }
        (None, Some(out)) => {
            log::info!("sender: none (writing {} only)", out.display());
            Box::new(PcapSender::create(out)?)
        }
        (Some(iface), out) => {
            let primary = open_sender(args.sender, iface, args.repeat.unwrap_or(1))?;
            match out {
                Some(out) => Box::new(Tee {
                    primary,
                    pcap: PcapSender::create(out)?,
                }),
                None => primary,
            }
        }
        (None, None) => bail!("give --iface IF, --write-pcap OUT, or both"),
    };

    let before = args.iface.as_deref().and_then(IfaceCounters::read);
    let stop = stop_on_signals().context("installing the SIGINT/SIGTERM handler")?;
    let limits = Limits {
        duration_ns: if write_only { None } else { duration_ns },
        frames_max: count,
    };
    let clock = MonotonicClock::new();
    let s = xdprec_replay::run(
        source.as_mut(),
        sender.as_mut(),
        pace,
        limits,
        &clock,
        stop,
        &mut |p: &Summary| {
            eprintln!(
                "replay: {:6.1} s  {:>10.0} pkt/s  {:>9.1} Mbit/s  total {} pkts  errors {}",
                p.elapsed_ns as f64 / 1e9,
                p.interval_pps(),
                p.interval_mbps(),
                p.packets,
                p.errors
            );
        },
    )?;
    let after = args.iface.as_deref().and_then(IfaceCounters::read);
    eprintln!(
        "replay: done ({:?}) sender {}: {} packets, {} bytes in {:.3} s = {:.0} pkt/s, {:.1} Mbit/s; \
         errors {}, busy retries {}, input packets skipped {}",
        s.end.unwrap_or(xdprec_replay::EndReason::SourceEnd),
        s.sender,
        s.packets,
        s.bytes,
        s.elapsed_ns as f64 / 1e9,
        s.pps(),
        s.mbps(),
        s.errors,
        s.busy,
        s.skipped
    );
    if let (Some(b), Some(a), Some(iface)) = (before, after, args.iface.as_deref()) {
        eprintln!(
            "replay: {iface} counters: tx_packets +{}, tx_dropped +{}, tx_errors +{}",
            a.tx_packets.saturating_sub(b.tx_packets),
            a.tx_dropped.saturating_sub(b.tx_dropped),
            a.tx_errors.saturating_sub(b.tx_errors)
        );
    }
    Ok(())
}
