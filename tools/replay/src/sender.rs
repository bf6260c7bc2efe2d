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

/// The kernel's limit on `batch_size` of a live-frames run (`TEST_XDP_MAX_BATCH`).
const LIVE_KERNEL_BATCH_MAX: u32 = 256;

impl LiveSender {
    /// Loads `object` (an ELF with the XDP program [`LIVE_PROGRAM`] that returns `XDP_TX`)
    /// and checks it with one non-live run (which sends nothing).
    pub fn open(iface: &str, object: &[u8]) -> Result<LiveSender, Error> {
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
            .program_mut(LIVE_PROGRAM)
            .ok_or_else(|| live_err(format!("the BPF object has no program `{LIVE_PROGRAM}`")))?
            .try_into()
            .map_err(|e| live_err(format!("`{LIVE_PROGRAM}` is not an XDP program: {e}")))?;
        prog.load().map_err(|e| {
            live_err(format!(
                "loading `{LIVE_PROGRAM}` (needs root/CAP_BPF): {e}"
            ))
        })?;
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
