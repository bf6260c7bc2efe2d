//! Senders: where frames go.
//!
//! - [`LiveSender`]: `BPF_PROG_RUN` with `BPF_F_TEST_XDP_LIVE_FRAMES` of an XDP program that
//!   returns `XDP_TX`, with `ingress_ifindex` = the interface. The kernel turns `XDP_TX` of a
//!   live-frames run into a redirect to that interface's `ndo_xdp_xmit`: on a veth end the
//!   frame leaves towards the peer. The program need not be attached. Kernel requirements: the
//!   driver must implement `ndo_xdp_xmit`, and a veth peer must run NAPI (an XDP program
//!   attached to the peer, as a capture has, or GRO enabled on it: `ethtool -K PEER gro on`);
//!   otherwise the kernel drops the frames silently: the syscall succeeds and no counter on
//!   either end moves (measured on 6.18). A live-frames run sends `repeat` copies of ONE
//!   frame, and replayed traffic has no two frames alike, so every frame is one system call
//!   with `repeat` = 1: about 55-75 kpps here, far below AF_PACKET. [`LiveSender::with_repeat`]
//!   sends each frame K times per call (identical copies, for load tests). Measured on this
//!   machine (6.18, veth): a call with repeat > 1 costs about 30 ms plus the packets, so only
//!   large K pays: K = 4096 gave 0.13 Mpps, K = 65536 0.85 Mpps (NOTES.md: up to 2.7 Mpps);
//!   the peer's XDP ring then overflows now and then (tx_dropped of the interface counts it).
//! - [`RingSender`]: live frames of DISTINCT frames: the program `xdprec_replay_ring` sends the
//!   next of up to 65536 preloaded templates on each run, so a call with repeat K sends K
//!   different frames, paced by the program itself. Measured here (6.18, veth, 214-byte RTP
//!   frames, kernel batch 64): 2.2 Mpps into a GRO peer with no tx_dropped; a call costs about
//!   28 ms besides its packets (with repeat 4096: 0.15 Mpps), hence calls of ~0.5 s of traffic.
//!   The kernel batch of 256 overflows the veth peer's 256-frame ring now and then
//!   (tx_dropped); 64 does not.
//! - [`PacketSender`]: an AF_PACKET raw socket with `sendmmsg` batches (qdisc bypassed where
//!   allowed); works on any interface.
//! - [`PcapSender`]: writes the frames to a pcap file (timestamps of the traffic's timeline).
//! - [`Tee`]: sends with one sender and writes what it took to a pcap.

use crate::sys::{if_index, PacketSocket};
use crate::Error;
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp};
use aya::Ebpf;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One frame handed to a sender.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub ts_ns: u64,
    pub wire_len: u32,
    pub data: &'a [u8],
}

/// What a send call did with the frames it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendResult {
    /// Frames used up from the front (sent or failed for good); the rest are offered again.
    pub consumed: usize,
    /// Packets that left (a frame sent with `repeat` K counts K).
    pub sent: usize,
    /// Bytes of those packets.
    pub bytes: u64,
    /// Of those, refused by the kernel for good (counted, not retried).
    pub errors: usize,
}

/// A way to put frames on an interface (or into a file).
pub trait Sender {
    /// A short name for logs: `live`, `packet`, `pcap`.
    fn name(&self) -> &'static str;
    /// The most frames one `send` takes.
    fn batch_max(&self) -> usize;
    /// Packets each frame becomes (live frames `repeat`); pacing counts packets.
    fn repeat(&self) -> u32 {
        1
    }
    /// Sends frames in order. `consumed == 0` means "busy, try again shortly".
    fn send(&mut self, frames: &[Frame<'_>]) -> Result<SendResult, Error>;
    /// Flushes what is buffered (files).
    fn finish(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// The sender choices of `--sender`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderKind {
    Auto,
    Live,
    /// Live frames of distinct preloaded templates ([`RingSender`]).
    LiveRing,
    AfXdp,
    Packet,
}

/// Interface counters from sysfs (this network namespace's view).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceCounters {
    pub tx_packets: u64,
    pub tx_dropped: u64,
    pub tx_errors: u64,
}

impl IfaceCounters {
    /// Reads `/sys/class/net/IF/statistics/*`; `None` when the interface has no such files.
    pub fn read(iface: &str) -> Option<IfaceCounters> {
        if iface.contains('/') || iface.starts_with('.') {
            return None;
        }
        let dir = Path::new("/sys/class/net").join(iface).join("statistics");
        let get = |f: &str| -> Option<u64> {
            std::fs::read_to_string(dir.join(f))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        Some(IfaceCounters {
            tx_packets: get("tx_packets")?,
            tx_dropped: get("tx_dropped")?,
            tx_errors: get("tx_errors")?,
        })
    }
}

/// The network driver of `iface` (`/sys/class/net/IF/device/driver`, or `veth` for veth,
/// which has no device), or `None`.
pub fn iface_driver(iface: &str) -> Option<String> {
    if iface.contains('/') || iface.starts_with('.') {
        return None;
    }
    let base = Path::new("/sys/class/net").join(iface);
    if let Ok(link) = std::fs::read_link(base.join("device/driver")) {
        return link.file_name().map(|n| n.to_string_lossy().into_owned());
    }
    // Virtual devices: `ethtool -i` would say; uevent has DEVTYPE for some. veth shows an
    // iflink (its peer) different from its own ifindex.
    let read = |f: &str| std::fs::read_to_string(base.join(f)).ok();
    let uevent = read("uevent").unwrap_or_default();
    if let Some(t) = uevent.lines().find_map(|l| l.strip_prefix("DEVTYPE=")) {
        return Some(t.to_string());
    }
    let (ifindex, iflink) = (read("ifindex")?, read("iflink")?);
    if ifindex.trim() != iflink.trim() && read("type")?.trim() == "1" {
        return Some("veth".into());
    }
    None
}

/// Frames per `sendmmsg`.
pub const PACKET_BATCH_MAX: usize = 64;
/// Frames handed to the live sender per call (each is its own system call).
pub const LIVE_BATCH_MAX: usize = 64;

/// AF_PACKET sender (`sendmmsg`).
pub struct PacketSender {
    iface: String,
    sock: PacketSocket,
    /// Whether `PACKET_QDISC_BYPASS` took.
    pub qdisc_bypass: bool,
}

impl PacketSender {
    pub fn open(iface: &str) -> Result<PacketSender, Error> {
        let ifindex = if_index(iface).map_err(|source| Error::Interface {
            iface: iface.to_string(),
            source,
        })?;
        let (sock, qdisc_bypass) =
            PacketSocket::open(ifindex, PACKET_BATCH_MAX).map_err(|source| Error::Packet {
                iface: iface.to_string(),
                op: "socket/bind (needs CAP_NET_RAW)",
                source,
            })?;
        Ok(PacketSender {
            iface: iface.to_string(),
            sock,
            qdisc_bypass,
        })
    }
}

impl Sender for PacketSender {
    fn name(&self) -> &'static str {
        "packet"
    }

    fn batch_max(&self) -> usize {
        PACKET_BATCH_MAX
    }

    fn send(&mut self, frames: &[Frame<'_>]) -> Result<SendResult, Error> {
        let n = frames.len().min(PACKET_BATCH_MAX);
        match self.sock.send_batch(frames[..n].iter().map(|f| f.data)) {
            Ok(sent) => Ok(SendResult {
                consumed: sent,
                sent,
                bytes: frames[..sent].iter().map(|f| f.data.len() as u64).sum(),
                errors: 0,
            }),
            Err(e) => match e.raw_os_error() {
                // The device queue or socket buffer is full: try again.
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    Ok(SendResult::default())
                }
                // This frame cannot go (longer than the MTU, malformed): skip it, count it.
                Some(libc::EMSGSIZE) | Some(libc::EINVAL) => Ok(SendResult {
                    consumed: 1,
                    errors: 1,
                    ..SendResult::default()
                }),
                _ => Err(Error::Packet {
                    iface: self.iface.clone(),
                    op: "sendmmsg (is the interface up?)",
                    source: e,
                }),
            },
        }
    }
}

/// The program name `REPLAY_TX_OBJECT` must contain.
pub const LIVE_PROGRAM: &str = "xdprec_replay_tx";
const XDP_TX: u32 = 3;
/// Consecutive failures after which the live sender gives up (it is clearly not working).
const LIVE_FAILURES_MAX: u64 = 64;

/// `BPF_PROG_RUN` live-frames sender.
pub struct LiveSender {
    iface: String,
    ebpf: Ebpf,
    /// `struct xdp_md` (6 × u32, native endian): data, data_end, data_meta, ingress_ifindex,
    /// rx_queue_index, egress_ifindex.
    ctx: [u32; 6],
    repeat: u32,
    failures_in_a_row: u64,
}

/// The interface index of `iface` and `object` loaded with its XDP program `program` loaded
/// into the kernel (not attached): what both live-frames senders start from.
fn load_live_program(iface: &str, object: &[u8], program: &str) -> Result<(Ebpf, u32), Error> {
    let ifindex = if_index(iface).map_err(|source| Error::Interface {
        iface: iface.to_string(),
        source,
    })?;
    let live_err = |what: String| Error::Live {
        iface: iface.to_string(),
        what,
    };
    let mut ebpf =
        Ebpf::load(object).map_err(|e| live_err(format!("loading the BPF object: {e}")))?;
    let prog: &mut Xdp = ebpf
        .program_mut(program)
        .ok_or_else(|| live_err(format!("the BPF object has no program `{program}`")))?
        .try_into()
        .map_err(|e| live_err(format!("`{program}` is not an XDP program: {e}")))?;
    prog.load()
        .map_err(|e| live_err(format!("loading `{program}` (needs root/CAP_BPF): {e}")))?;
    Ok((ebpf, ifindex))
}

/// The kernel's limit on `batch_size` of a live-frames run (`TEST_XDP_MAX_BATCH`).
const LIVE_KERNEL_BATCH_MAX: u32 = 256;

impl LiveSender {
    /// Loads `object` (an ELF with the XDP program [`LIVE_PROGRAM`] that returns `XDP_TX`)
    /// and checks it with one non-live run (which sends nothing).
    pub fn open(iface: &str, object: &[u8]) -> Result<LiveSender, Error> {
        let (ebpf, ifindex) = load_live_program(iface, object, LIVE_PROGRAM)?;
        let live_err = |what: String| Error::Live {
            iface: iface.to_string(),
            what,
        };
        let mut s = LiveSender {
            iface: iface.to_string(),
            ebpf,
            ctx: [0, 0, 0, ifindex, 0, 0],
            repeat: 1,
            failures_in_a_row: 0,
        };
        // A dry run (no live flag: nothing leaves) proves the program and the context work.
        let probe = [0u8; 64];
        let r = s.run(&probe, false)?;
        if r != XDP_TX {
            return Err(live_err(format!(
                "`{LIVE_PROGRAM}` returned {r}, not XDP_TX (3)"
            )));
        }
        Ok(s)
    }

    /// Sends every frame `k` times in a row with one system call (identical copies: for load
    /// tests; replayed calls then show duplicated RTP). This is where live frames are fast:
    /// the per-call set-up is paid once for `k` packets.
    pub fn with_repeat(mut self, k: u32) -> LiveSender {
        self.repeat = k.max(1);
        self
    }

    fn run(&mut self, frame: &[u8], live: bool) -> Result<u32, Error> {
        let mut ctx = self.ctx;
        ctx[1] = frame.len() as u32;
        let mut ctx_bytes = [0u8; 24];
        for (dst, v) in ctx_bytes.chunks_exact_mut(4).zip(ctx) {
            dst.copy_from_slice(&v.to_ne_bytes());
        }
        let prog: &Xdp = self
            .ebpf
            .program(LIVE_PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| Error::Live {
                iface: self.iface.clone(),
                what: "program vanished".into(),
            })?;
        let (attrs, repeat) = if live {
            let batch = self.repeat.min(LIVE_KERNEL_BATCH_MAX);
            (TestRunAttrs::new().xdp_live_frames(batch), self.repeat)
        } else {
            (TestRunAttrs::new(), 1)
        };
        let opts = TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx_bytes),
            repeat,
            attrs,
            ..TestRunOptions::new()
        };
        prog.test_run(opts)
            .map(|r| r.return_value)
            .map_err(|e| Error::Live {
                iface: self.iface.clone(),
                what: format!("BPF_PROG_TEST_RUN: {e}"),
            })
    }
}

impl Sender for LiveSender {
    fn name(&self) -> &'static str {
        "live"
    }

    fn batch_max(&self) -> usize {
        // With repeat one call takes tens of ms: hand over one frame at a time so that
        // --duration and Ctrl-C are checked between calls.
        if self.repeat > 1 {
            1
        } else {
            LIVE_BATCH_MAX
        }
    }

    fn repeat(&self) -> u32 {
        self.repeat
    }

    fn send(&mut self, frames: &[Frame<'_>]) -> Result<SendResult, Error> {
        let mut r = SendResult::default();
        for f in frames.iter().take(LIVE_BATCH_MAX) {
            match self.run(f.data, true) {
                Ok(_) => {
                    r.sent += self.repeat as usize;
                    r.bytes += f.data.len() as u64 * u64::from(self.repeat);
                    self.failures_in_a_row = 0;
                }
                Err(e) => {
                    r.errors += 1;
                    self.failures_in_a_row += 1;
                    if self.failures_in_a_row >= LIVE_FAILURES_MAX {
                        return Err(e);
                    }
                }
            }
            r.consumed += 1;
        }
        Ok(r)
    }
}

/// The program of `REPLAY_TX_OBJECT` that sends distinct frames from preloaded templates.
pub const RING_PROGRAM: &str = "xdprec_replay_ring";
const RING_FRAMES_MAP: &str = "xdprec_replay_frames";
const RING_STATE_MAP: &str = "xdprec_replay_state";
/// Longest template (bytes); longer frames of the source are skipped.
pub const RING_FRAME_BYTES: usize = 256;
/// Templates the program's map holds.
pub const RING_FRAMES_MAX: usize = 65536;
/// One template in the map: 16 bytes of meta (see `xdp-probe/bpf/replay_tx.c`) + the frame.
const RING_ENTRY_BYTES: usize = 16 + RING_FRAME_BYTES;
/// RTP streams tracked while loading templates (for the per-cycle sequence step).
const RING_STREAMS_MAX: usize = 1 << 20;

/// Where the RTP header of an Ethernet frame starts, for frames that look like RTP over
/// UDP/IPv4 (optionally one VLAN tag): version 2, not RTCP (PT 72-76 with the marker bit),
/// not the SIP port, 12+ bytes of UDP payload.
fn rtp_offset(f: &[u8]) -> Option<usize> {
    let mut off = 12;
    let mut et = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
    if et == 0x8100 {
        off += 4;
        et = u16::from_be_bytes([*f.get(off)?, *f.get(off + 1)?]);
    }
    off += 2;
    if et != 0x0800 || f.get(off)? >> 4 != 4 || *f.get(off + 9)? != 17 {
        return None;
    }
    let ihl = usize::from(f[off] & 0x0f) * 4;
    let udp = off + ihl;
    let sport = u16::from_be_bytes([*f.get(udp)?, *f.get(udp + 1)?]);
    let dport = u16::from_be_bytes([*f.get(udp + 2)?, *f.get(udp + 3)?]);
    let rtp = udp + 8;
    if sport == 5060 || dport == 5060 || f.len() < rtp + 12 {
        return None;
    }
    let pt = f[rtp + 1] & 0x7f;
    if f[rtp] >> 6 != 2 || (72..=76).contains(&pt) {
        return None;
    }
    Some(rtp)
}

/// `BPF_PROG_RUN` live-frames sender of DISTINCT frames: up to [`RING_FRAMES_MAX`] frames of
/// a source are preloaded as templates into a BPF array; each run of
/// [`RING_PROGRAM`] sends the next template, so one system call with repeat K sends K
/// different frames (cycling through the templates). In later passes over the templates the
/// RTP sequence numbers and timestamps move on by what each stream advanced in one pass, so
/// RTP streams continue instead of repeating; SIP and RTCP templates repeat as they are.
/// A pass of n templates at R pps lasts n/R seconds (65536 at 1.5 Mpps: 44 ms): a capture's
/// duplicate detection must be off, or its window shorter than that, or the repeated SIP and
/// RTCP frames are counted as duplicates.
///
/// Each [`Sender::send`] call is one system call of `repeat` packets, whatever the frames
/// handed to it (the runner's source only paces the calls); bytes are counted from the
/// templates actually sent.
pub struct RingSender {
    iface: String,
    ebpf: Ebpf,
    ctx: [u32; 6],
    repeat: u32,
    batch: u32,
    /// Length of each template, for byte counts.
    lens: Vec<u16>,
    /// Mirror of the program's counter.
    next: u64,
    /// In-kernel pacing: the asked rate (0: none) and the rate the program paces a run at,
    /// raised to make up for the fixed cost of each call.
    pace_pps: u64,
    run_pps: f64,
    /// Smoothed fixed cost of a call, ns (what a call took beyond its paced packets).
    call_overhead_ns: f64,
    /// Source frames skipped: longer than [`RING_FRAME_BYTES`].
    pub skipped_long: u64,
    /// Templates that are RTP (patched per pass).
    pub rtp_templates: u64,
    /// RTP templates beyond [`RING_STREAMS_MAX`] streams: sent as they are in every pass.
    pub unpatched_rtp: u64,
    failures_in_a_row: u64,
}

impl RingSender {
    /// Loads the program from `object`, takes up to `frames_max` (at most [`RING_FRAMES_MAX`])
    /// frames of at most [`RING_FRAME_BYTES`] bytes from `source` as templates (longer ones are
    /// skipped and counted), and checks the program with one non-live run.
    pub fn open(
        iface: &str,
        object: &[u8],
        source: &mut dyn crate::FrameSource,
        frames_max: usize,
    ) -> Result<RingSender, Error> {
        use aya::maps::Array;
        let (mut ebpf, ifindex) = load_live_program(iface, object, RING_PROGRAM)?;
        let live_err = |what: String| Error::Live {
            iface: iface.to_string(),
            what,
        };

        // Read the templates, then work out each RTP stream's advance over one pass.
        let frames_max = frames_max.clamp(1, RING_FRAMES_MAX);
        let mut buf = vec![0u8; crate::source::FRAME_BYTES_MAX];
        let mut entries: Vec<[u8; RING_ENTRY_BYTES]> = Vec::new();
        let mut lens = Vec::new();
        let mut skipped_long = 0u64;
        // SSRC -> (packets, first ts, last ts); bounded.
        let mut streams: std::collections::HashMap<u32, (u32, u32, u32)> =
            std::collections::HashMap::new();
        let mut unpatched_rtp = 0u64;
        while entries.len() < frames_max {
            let Some(m) = source.next_frame(&mut buf)? else {
                break;
            };
            let f = &buf[..m.len.min(buf.len())];
            if f.len() > RING_FRAME_BYTES || f.len() < 14 {
                skipped_long += 1;
                if skipped_long > 16 * RING_FRAMES_MAX as u64 {
                    break; // a source of nothing but long frames
                }
                continue;
            }
            let mut e = [0u8; RING_ENTRY_BYTES];
            e[0..2].copy_from_slice(&(f.len() as u16).to_ne_bytes());
            if let Some(r) = rtp_offset(f) {
                let seq = u16::from_be_bytes([f[r + 2], f[r + 3]]);
                let ts = u32::from_be_bytes([f[r + 4], f[r + 5], f[r + 6], f[r + 7]]);
                let ssrc = u32::from_be_bytes([f[r + 8], f[r + 9], f[r + 10], f[r + 11]]);
                if streams.len() < RING_STREAMS_MAX || streams.contains_key(&ssrc) {
                    let s = streams.entry(ssrc).or_insert((0, ts, ts));
                    s.0 += 1;
                    s.2 = ts;
                    e[2..4].copy_from_slice(&(r as u16).to_ne_bytes());
                    e[4..6].copy_from_slice(&seq.to_ne_bytes());
                    e[8..12].copy_from_slice(&ts.to_ne_bytes());
                    e[12..16].copy_from_slice(&ssrc.to_ne_bytes()); // steps filled in below
                } else {
                    unpatched_rtp += 1;
                }
            }
            e[16..16 + f.len()].copy_from_slice(f);
            lens.push(f.len() as u16);
            entries.push(e);
        }
        if entries.is_empty() {
            return Err(live_err(format!(
                "the source has no frame of at most {RING_FRAME_BYTES} bytes to load"
            )));
        }
        let mut rtp_templates = 0;
        for e in &mut entries {
            if u16::from_ne_bytes([e[2], e[3]]) == 0 {
                continue;
            }
            rtp_templates += 1;
            let ssrc = u32::from_ne_bytes([e[12], e[13], e[14], e[15]]);
            let (count, first, last) = streams.get(&ssrc).copied().unwrap_or((1, 0, 0));
            let span = last.wrapping_sub(first);
            let ts_step = if count > 1 {
                span.wrapping_add(span / (count - 1))
            } else {
                160
            };
            e[6..8].copy_from_slice(&(count as u16).to_ne_bytes());
            e[12..16].copy_from_slice(&ts_step.to_ne_bytes());
        }
        {
            let mut map: Array<_, [u8; RING_ENTRY_BYTES]> =
                Array::try_from(ebpf.map_mut(RING_FRAMES_MAP).ok_or_else(|| {
                    live_err(format!("the BPF object has no map `{RING_FRAMES_MAP}`"))
                })?)
                .map_err(|e| live_err(format!("map `{RING_FRAMES_MAP}`: {e}")))?;
            for (i, e) in entries.iter().enumerate() {
                map.set(i as u32, e, 0)
                    .map_err(|e| live_err(format!("filling `{RING_FRAMES_MAP}`: {e}")))?;
            }
        }
        let mut s = RingSender {
            iface: iface.to_string(),
            ebpf,
            ctx: [0, RING_FRAME_BYTES as u32, 0, ifindex, 0, 0],
            repeat: 1,
            batch: LIVE_KERNEL_BATCH_MAX,
            lens,
            next: 0,
            pace_pps: 0,
            run_pps: 0.0,
            call_overhead_ns: 0.0,
            skipped_long,
            rtp_templates,
            unpatched_rtp,
            failures_in_a_row: 0,
        };
        s.set_state(0)?;
        // A dry run (no live flag: nothing leaves) proves the program, maps and context work.
        let r = s.run(false)?;
        if r != XDP_TX {
            return Err(live_err(format!(
                "`{RING_PROGRAM}` returned {r}, not XDP_TX (3)"
            )));
        }
        s.set_state(0)?;
        Ok(s)
    }

    /// Packets per system call (default 1).
    pub fn with_repeat(mut self, k: u32) -> RingSender {
        self.repeat = k.max(1);
        self
    }

    /// Frames the kernel handles per inner batch of a run (1..=256, default 256): the veth
    /// peer's XDP ring holds 256 frames, so smaller batches can lose less at its end.
    pub fn with_kernel_batch(mut self, b: u32) -> RingSender {
        self.batch = b.clamp(1, LIVE_KERNEL_BATCH_MAX);
        self
    }

    /// Paces the packets of each run in the kernel at about `pps` (0: off, a run is a burst).
    /// The rate inside a run is raised by what the calls' fixed cost (measured, smoothed)
    /// takes away, so that a run of `repeat` packets lasts about `repeat / pps` in all.
    pub fn with_pace_pps(mut self, pps: u64) -> RingSender {
        self.pace_pps = pps;
        self.run_pps = pps as f64;
        self
    }

    /// Templates loaded.
    pub fn templates(&self) -> usize {
        self.lens.len()
    }

    /// Packets sent so far according to the program's own counter (for checks).
    pub fn program_counter(&self) -> Result<u64, Error> {
        Ok(self.state()?[0])
    }

    fn state_map(&self) -> Result<aya::maps::Array<&aya::maps::MapData, [u64; 5]>, Error> {
        let m = self.ebpf.map(RING_STATE_MAP).ok_or_else(|| Error::Live {
            iface: self.iface.clone(),
            what: format!("the BPF object has no map `{RING_STATE_MAP}`"),
        })?;
        aya::maps::Array::try_from(m).map_err(|e| Error::Live {
            iface: self.iface.clone(),
            what: format!("map `{RING_STATE_MAP}`: {e}"),
        })
    }

    fn state(&self) -> Result<[u64; 5], Error> {
        self.state_map()?.get(&0, 0).map_err(|e| Error::Live {
            iface: self.iface.clone(),
            what: format!("reading `{RING_STATE_MAP}`: {e}"),
        })
    }

    fn set_state(&mut self, next: u64) -> Result<(), Error> {
        let n = self.lens.len() as u64;
        let iface = self.iface.clone();
        let m = self
            .ebpf
            .map_mut(RING_STATE_MAP)
            .ok_or_else(|| Error::Live {
                iface: iface.clone(),
                what: format!("the BPF object has no map `{RING_STATE_MAP}`"),
            })?;
        let mut a: aya::maps::Array<_, [u64; 5]> =
            aya::maps::Array::try_from(m).map_err(|e| Error::Live {
                iface: iface.clone(),
                what: format!("map `{RING_STATE_MAP}`: {e}"),
            })?;
        let ivl_ps = if self.run_pps > 0.0 {
            (1e12 / self.run_pps) as u64
        } else {
            0
        };
        a.set(0, [next, n, ivl_ps, 0, 0], 0)
            .map_err(|e| Error::Live {
                iface,
                what: format!("writing `{RING_STATE_MAP}`: {e}"),
            })?;
        self.next = next;
        Ok(())
    }

    fn run(&mut self, live: bool) -> Result<u32, Error> {
        let mut ctx_bytes = [0u8; 24];
        for (dst, v) in ctx_bytes.chunks_exact_mut(4).zip(self.ctx) {
            dst.copy_from_slice(&v.to_ne_bytes());
        }
        let frame = [0u8; RING_FRAME_BYTES];
        let prog: &Xdp = self
            .ebpf
            .program(RING_PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| Error::Live {
                iface: self.iface.clone(),
                what: "program vanished".into(),
            })?;
        let (attrs, repeat) = if live {
            let batch = self.repeat.min(self.batch);
            (TestRunAttrs::new().xdp_live_frames(batch), self.repeat)
        } else {
            (TestRunAttrs::new(), 1)
        };
        let opts = TestRunOptions {
            data_in: Some(&frame),
            ctx_in: Some(&ctx_bytes),
            repeat,
            attrs,
            ..TestRunOptions::new()
        };
        prog.test_run(opts)
            .map(|r| r.return_value)
            .map_err(|e| Error::Live {
                iface: self.iface.clone(),
                what: format!("BPF_PROG_TEST_RUN: {e}"),
            })
    }

    fn bytes_of(&self, from: u64, k: u64) -> u64 {
        cyclic_bytes(&self.lens, from, k)
    }
}

/// Bytes of the `k` frames from position `from` on of `lens`, cycled.
fn cyclic_bytes(lens: &[u16], from: u64, k: u64) -> u64 {
    let n = lens.len() as u64;
    if n == 0 {
        return 0;
    }
    let full = lens.iter().map(|&l| u64::from(l)).sum::<u64>() * (k / n);
    let start = (from % n) as usize;
    let part: u64 = (0..(k % n) as usize)
        .map(|j| u64::from(lens[(start + j) % lens.len()]))
        .sum();
    full + part
}

#[cfg(test)]
mod ring_tests {
    use super::*;
    use crate::{FrameSource, Synth, SynthConfig};

    #[test]
    fn cyclic_bytes_wrap_and_repeat() {
        let lens = [10u16, 20, 30];
        assert_eq!(cyclic_bytes(&lens, 0, 0), 0);
        assert_eq!(cyclic_bytes(&lens, 2, 2), 30 + 10);
        assert_eq!(cyclic_bytes(&lens, 1, 7), 2 * 60 + 20);
        assert_eq!(cyclic_bytes(&[], 5, 5), 0);
    }

    #[test]
    fn rtp_offset_finds_rtp_only() {
        let mut cfg = SynthConfig::new(20);
        cfg.cps = Some(100_000.0);
        cfg.call_ns = 6_000_000_000;
        cfg.generations = Some(1);
        let mut src = Synth::new(cfg).unwrap();
        let mut buf = vec![0u8; crate::source::FRAME_BYTES_MAX];
        let (mut rtp, mut other) = (0, 0);
        while let Some(m) = src.next_frame(&mut buf).unwrap() {
            let f = &buf[..m.len];
            let udp_payload = &f[42..];
            let is_sip = udp_payload.starts_with(b"INVITE")
                || udp_payload.starts_with(b"SIP/2.0")
                || udp_payload.starts_with(b"ACK")
                || udp_payload.starts_with(b"BYE");
            let is_rtcp = (200..=204).contains(&udp_payload[1]);
            match rtp_offset(f) {
                Some(off) => {
                    assert_eq!(off, 42);
                    assert!(!is_sip && !is_rtcp);
                    assert_eq!(f.len(), 214);
                    rtp += 1;
                }
                None => {
                    assert!(is_sip || is_rtcp, "{:02x?}", &f[..60]);
                    other += 1;
                }
            }
        }
        assert!(rtp > 20 * 2 * 200, "{rtp}");
        assert!(other > 20 * 5, "{other}");
        // Truncated and non-IPv4 frames are not RTP.
        assert_eq!(rtp_offset(&[0u8; 10]), None);
        assert_eq!(rtp_offset(&[0u8; 100]), None);
    }
}

impl Sender for RingSender {
    fn name(&self) -> &'static str {
        "live-ring"
    }

    fn batch_max(&self) -> usize {
        1
    }

    fn repeat(&self) -> u32 {
        self.repeat
    }

    fn send(&mut self, frames: &[Frame<'_>]) -> Result<SendResult, Error> {
        if frames.is_empty() {
            return Ok(SendResult::default());
        }
        let mut r = SendResult {
            consumed: 1,
            ..SendResult::default()
        };
        if self.pace_pps > 0 {
            // Resets the run's t0 and sets this run's interval.
            self.set_state(self.next)?;
        }
        let t0 = std::time::Instant::now();
        match self.run(true) {
            Ok(_) => {
                let k = u64::from(self.repeat);
                if self.pace_pps > 0 {
                    let took = t0.elapsed().as_nanos() as f64;
                    let paced = k as f64 * 1e9 / self.run_pps;
                    let o = (took - paced).max(0.0);
                    self.call_overhead_ns = if self.call_overhead_ns == 0.0 {
                        o
                    } else {
                        0.7 * self.call_overhead_ns + 0.3 * o
                    };
                    // A run of k packets should take k / pace in all, overhead included.
                    let budget = k as f64 * 1e9 / self.pace_pps as f64 - self.call_overhead_ns;
                    let want = if budget > 0.0 {
                        k as f64 * 1e9 / budget
                    } else {
                        f64::INFINITY
                    };
                    self.run_pps = want.clamp(self.pace_pps as f64, 4.0 * self.pace_pps as f64);
                }
                r.sent = self.repeat as usize;
                r.bytes = self.bytes_of(self.next, k);
                self.next += k;
                self.failures_in_a_row = 0;
            }
            Err(e) => {
                // A failed run may have sent part of the packets: resynchronise the mirror.
                if let Ok(st) = self.state() {
                    self.next = st[0];
                }
                r.errors = 1;
                self.failures_in_a_row += 1;
                if self.failures_in_a_row >= LIVE_FAILURES_MAX {
                    return Err(e);
                }
            }
        }
        Ok(r)
    }
}

/// Writes frames to a pcap file (nanosecond, Ethernet).
pub struct PcapSender {
    path: PathBuf,
    w: Option<xdprec_pcapio::PcapWriter<io::BufWriter<std::fs::File>>>,
}

impl PcapSender {
    pub fn create(path: &Path) -> Result<PcapSender, Error> {
        let werr = |source| Error::Write {
            path: path.to_path_buf(),
            source,
        };
        let f = std::fs::File::create(path).map_err(werr)?;
        let w = xdprec_pcapio::PcapWriter::new(io::BufWriter::with_capacity(1 << 20, f), 65535)
            .map_err(werr)?;
        Ok(PcapSender {
            path: path.to_path_buf(),
            w: Some(w),
        })
    }

    fn write(&mut self, frames: &[Frame<'_>]) -> Result<(), Error> {
        let Some(w) = self.w.as_mut() else {
            return Ok(());
        };
        for f in frames {
            w.write_packet(f.ts_ns, f.wire_len, f.data)
                .map_err(|source| Error::Write {
                    path: self.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

impl Sender for PcapSender {
    fn name(&self) -> &'static str {
        "pcap"
    }

    fn batch_max(&self) -> usize {
        256
    }

    fn send(&mut self, frames: &[Frame<'_>]) -> Result<SendResult, Error> {
        self.write(frames)?;
        Ok(SendResult {
            consumed: frames.len(),
            sent: frames.len(),
            bytes: frames.iter().map(|f| f.data.len() as u64).sum(),
            errors: 0,
        })
    }

    fn finish(&mut self) -> Result<(), Error> {
        if let Some(w) = self.w.take() {
            let mut inner = w.finish().map_err(|source| Error::Write {
                path: self.path.clone(),
                source,
            })?;
            inner.flush().map_err(|source| Error::Write {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Sends with `primary` and writes the frames it sent to a pcap as well.
pub struct Tee {
    pub primary: Box<dyn Sender>,
    pub pcap: PcapSender,
}

impl Sender for Tee {
    fn name(&self) -> &'static str {
        self.primary.name()
    }

    fn batch_max(&self) -> usize {
        self.primary.batch_max()
    }

    fn repeat(&self) -> u32 {
        self.primary.repeat()
    }

    fn send(&mut self, frames: &[Frame<'_>]) -> Result<SendResult, Error> {
        let r = self.primary.send(frames)?;
        self.pcap.write(&frames[..r.consumed.min(frames.len())])?;
        Ok(r)
    }

    fn finish(&mut self) -> Result<(), Error> {
        self.primary.finish()?;
        self.pcap.finish()
    }
}

/// Frames that a test sender records (for runner tests).
#[derive(Default)]
pub struct RecordingSender {
    pub frames: Vec<(u64, Vec<u8>)>,
    /// Every `busy_every`-th call reports busy (consumed 0).
    pub busy_every: u64,
    pub calls: u64,
}

impl Sender for RecordingSender {
    fn name(&self) -> &'static str {
        "recording"
    }

    fn batch_max(&self) -> usize {
        64
    }

    fn send(&mut self, frames: &[Frame<'_>]) -> Result<SendResult, Error> {
        self.calls += 1;
        if self.calls.checked_rem(self.busy_every) == Some(0) {
            return Ok(SendResult::default());
        }
        for f in frames {
            self.frames.push((f.ts_ns, f.data.to_vec()));
        }
        Ok(SendResult {
            consumed: frames.len(),
            sent: frames.len(),
            bytes: frames.iter().map(|f| f.data.len() as u64).sum(),
            errors: 0,
        })
    }
}
