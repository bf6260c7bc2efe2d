//! AF_XDP transmit sender ([`AfXdpSender`], `--sender afxdp`), on xsk-rs.
//!
//! One socket on one queue of the interface (queue 0 by default), TX only: no XDP program is
//! loaded (`XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD`; an AF_XDP socket transmits without one). The
//! UMEM holds [`UMEM_FRAMES`] frames of [`FRAME_SIZE`] bytes, all owned by the sender at the
//! start (a stack of free descriptors). A `send` call:
//!
//! 1. reaps the completion ring: frames the kernel has sent go back on the free stack;
//! 2. copies up to [`AFXDP_BATCH_MAX`] frames into free UMEM frames and submits their
//!    descriptors on the TX ring in one go (no allocation per packet);
//! 3. kicks the kernel with `sendto` while the ring asks for it (`XDP_USE_NEED_WAKEUP`). In
//!    copy mode (veth, drivers without AF_XDP zero-copy) the kernel transmits only inside
//!    that `sendto`, at most 32 frames per call, so the sender kicks until its ring is drained
//!    or [`KICKS_MAX`] calls have been made.
//!
//! No free frame or no room on the TX ring after a kick and a reap is "busy" (`consumed == 0`),
//! as for the other senders. Frames longer than the interface's MTU + 18 (Ethernet header and
//! one VLAN tag) or a UMEM frame's data area (3840 bytes), see [`frame_bytes_max`], or empty,
//! are counted as errors and skipped. The bind lets the kernel choose
//! the mode: zero-copy where the driver supports it, copy otherwise (veth supports copy mode
//! only); [`AfXdpSender::zero_copy`] tells which it got.
//!
//! This is the crate's second (and last) module with `unsafe`: the UMEM and ring calls of
//! xsk-rs are `unsafe` because a descriptor must belong to this UMEM and be in no ring while
//! user space touches its frame; the free stack is what guarantees both.
//!
//! [`frame_bytes_max`]: AfXdpSender::frame_bytes_max
#![allow(unsafe_code)]

use crate::sender::{Frame, SendResult, Sender};
use crate::Error;
use std::io::Write;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

/// Frames handed to the sender per call.
pub const AFXDP_BATCH_MAX: usize = 64;
/// UMEM frames (= completion ring entries, so every frame in flight fits on it).
pub const UMEM_FRAMES: u32 = 4096;
/// Bytes of one UMEM frame (256 of them are the kernel's XDP headroom).
pub const FRAME_SIZE: u32 = 4096;
/// TX ring entries.
pub const TX_RING_ENTRIES: u32 = 2048;
/// `sendto` kicks per `send` call at most (copy mode sends at most 32 frames per kick).
pub const KICKS_MAX: u32 = 8;
/// Consecutive failed kicks after which the sender gives up (the interface is gone or down).
const KICK_FAILURES_MAX: u64 = 64;
/// How long [`Sender::finish`] waits for the kernel to send what is still on the ring.
const DRAIN_NS: u64 = 2_000_000_000;

/// What the AF_XDP sender counted besides sent packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AfXdpCounters {
    /// Frames skipped because they were empty or longer than the MTU or a UMEM frame allows.
    pub too_long: u64,
    /// `send` calls answered "busy" (no free frame or TX ring full after a kick).
    pub busy: u64,
    /// `sendto` wake-ups made.
    pub kicks: u64,
    /// `sendto` wake-ups that failed with an error other than "try again".
    pub kick_errors: u64,
    /// Frames still on the TX ring when [`Sender::finish`] gave up waiting (not sent).
    pub unfinished: u64,
}

/// AF_XDP TX-only sender on one queue of one interface.
pub struct AfXdpSender {
    iface: String,
    queue: u32,
    // Field order is drop order: the socket's rings before the UMEM they point into.
    tx: TxQueue,
    _rx: RxQueue,
    _fq: FillQueue,
    cq: CompQueue,
    /// Frames in user space (in no ring). Capacity [`UMEM_FRAMES`]; never grows.
    free: Vec<FrameDesc>,
    /// Descriptors of the batch being submitted. Capacity [`AFXDP_BATCH_MAX`].
    batch: Vec<FrameDesc>,
    /// Scratch for the completion ring. Length [`AFXDP_BATCH_MAX`] * 4.
    comp: Vec<FrameDesc>,
    umem: Umem,
    frame_bytes_max: usize,
    zero_copy: bool,
    kick_failures_in_a_row: u64,
    counters: AfXdpCounters,
}

impl AfXdpSender {
    /// Opens a TX-only AF_XDP socket on queue 0 of `iface`.
    pub fn open(iface: &str) -> Result<AfXdpSender, Error> {
        Self::open_queue(iface, 0)
    }

    /// Opens a TX-only AF_XDP socket on `queue` of `iface` (needs root or CAP_NET_RAW +
    /// CAP_BPF; the queue must exist and have no other AF_XDP socket).
    pub fn open_queue(iface: &str, queue: u32) -> Result<AfXdpSender, Error> {
        let err = |what: String| Error::AfXdp {
            iface: iface.to_string(),
            queue,
            what,
        };
        let qs = |n: u32| QueueSize::new(n).map_err(|e| err(format!("ring size {n}: {e}")));
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| err(e.to_string()))?)
            // The fill ring is required by the kernel but unused: nothing is received.
            .fill_queue_size(qs(64)?)
            .comp_queue_size(qs(UMEM_FRAMES)?)
            .build()
            .map_err(|e| err(e.to_string()))?;
        let frames =
            std::num::NonZeroU32::new(UMEM_FRAMES).ok_or_else(|| err("0 frames".into()))?;
        let (umem, descs) = Umem::new(umem_cfg, frames, false)
            .map_err(|e| err(format!("UMEM of {UMEM_FRAMES} x {FRAME_SIZE} bytes: {e}")))?;
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(qs(64)?)
            .tx_queue_size(qs(TX_RING_ENTRIES)?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        let name: Interface = iface
            .parse()
            .map_err(|_| err("not a valid interface name".into()))?;
        // SAFETY: the UMEM is this socket's alone (not shared), so the hazard xsk-rs documents
        // for shared UMEMs does not apply; libxdp loads no program (INHIBIT_PROG_LOAD).
        let (tx, rx, fq_cq) = unsafe { xsk_rs::Socket::new(sock_cfg, &umem, &name, queue) }
            .map_err(|e| {
                let cause = std::error::Error::source(&e)
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                err(format!(
                    "xsk_socket__create: {e}{cause} (needs root; does the queue exist, and is \
                     no other AF_XDP socket bound to it?)"
                ))
            })?;
        let (fq, cq) = fq_cq.ok_or_else(|| err("no fill/completion ring returned".into()))?;
        let mut free = Vec::with_capacity(descs.len());
        free.extend_from_slice(&descs);
        let frame_bytes_max = match free.last_mut() {
            // SAFETY: a fresh descriptor of this UMEM, in no ring; the view is dropped at once.
            Some(d) => unsafe { umem.data_mut(d) }.cursor().buf_len(),
            None => return Err(err("the UMEM has no frames".into())),
        };
        // The kernel does not check the MTU for AF_XDP frames; a veth or a NIC drops longer
        // ones later, counted only on the interface. Refuse them here, as AF_PACKET does
        // (EMSGSIZE), allowing one VLAN tag.
        let frame_bytes_max = match iface_mtu(iface) {
            Some(mtu) => frame_bytes_max.min(mtu + 14 + 4),
            None => frame_bytes_max,
        };
        let zero_copy = xdp_options_zero_copy(&tx);
        Ok(AfXdpSender {
            iface: iface.to_string(),
            queue,
            tx,
            _rx: rx,
            _fq: fq,
            cq,
            free,
            batch: Vec::with_capacity(AFXDP_BATCH_MAX),
            comp: vec![FrameDesc::default(); AFXDP_BATCH_MAX * 4],
            umem,
            frame_bytes_max,
            zero_copy,
            kick_failures_in_a_row: 0,
            counters: AfXdpCounters::default(),
        })
    }

    /// Longest frame the sender takes (bytes).
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Whether the kernel bound the socket in zero-copy mode (false: copy mode).
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The sender's counters.
    pub fn counters(&self) -> AfXdpCounters {
        self.counters
    }

    /// The kernel's `XDP_STATISTICS` for this socket: (tx_invalid_descs, tx_ring_empty_descs).
    pub fn kernel_statistics(&self) -> std::io::Result<(u64, u64)> {
        let s = self.tx.fd().xdp_statistics()?;
        Ok((s.tx_invalid_descs(), s.tx_ring_empty_descs()))
    }

    /// Frames submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        UMEM_FRAMES as usize - self.free.len()
    }

    /// Moves completed frames back to the free stack.
    fn reap(&mut self) {
        loop {
            let room = (self.free.capacity() - self.free.len()).min(self.comp.len());
            if room == 0 {
                return;
            }
            // SAFETY: the completion ring only holds frames of this UMEM that were on the TX
            // ring; `consume` overwrites the scratch descriptors with them.
            let n = unsafe { self.cq.consume(&mut self.comp[..room]) };
            // Within capacity: `free` plus the frames in flight are exactly UMEM_FRAMES.
            self.free.extend_from_slice(&self.comp[..n]);
            if n < room {
                return;
            }
        }
    }

    /// Wakes the kernel (copy mode: makes it transmit) while the ring asks for it and frames
    /// are waiting on it, at most [`KICKS_MAX`] times.
    fn kick(&mut self) -> Result<(), Error> {
        for _ in 0..KICKS_MAX {
            if !self.tx.needs_wakeup() || self.tx.nb_free_exact() >= TX_RING_ENTRIES {
                return Ok(());
            }
            self.counters.kicks += 1;
            match self.tx.wakeup() {
                Ok(()) => self.kick_failures_in_a_row = 0,
                Err(e) => {
                    self.counters.kick_errors += 1;
                    self.kick_failures_in_a_row += 1;
                    if self.kick_failures_in_a_row >= KICK_FAILURES_MAX {
                        return Err(Error::AfXdp {
                            iface: self.iface.clone(),
                            queue: self.queue,
                            what: format!("sendto (TX wake-up; is the interface up?): {e}"),
                        });
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Frames the next batch can take.
    fn room(&mut self, want: usize) -> usize {
        let ring = self.tx.nb_free(AFXDP_BATCH_MAX as u32) as usize;
        want.min(AFXDP_BATCH_MAX).min(self.free.len()).min(ring)
    }
}

/// The MTU of `iface` in this thread's network namespace (ioctl SIOCGIFMTU; sysfs would show
/// the namespace it was mounted in), or `None`.
fn iface_mtu(iface: &str) -> Option<usize> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let name = iface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return None;
    }
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `ifreq` is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, &b) in req.ifr_name.iter_mut().zip(name) {
        *d = b as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name (zeroed, name shorter than
    // IFNAMSIZ) that outlives the call; SIOCGIFMTU writes only `ifr_ifru.ifru_mtu`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if r < 0 {
        return None;
    }
    // SAFETY: SIOCGIFMTU succeeded, so the union holds the MTU.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    usize::try_from(mtu).ok()
}

/// Whether the socket runs in zero-copy mode (getsockopt XDP_OPTIONS).
fn xdp_options_zero_copy(tx: &TxQueue) -> bool {
    use std::os::fd::AsRawFd;
    const SOL_XDP: libc::c_int = 283;
    const XDP_OPTIONS: libc::c_int = 8;
    const XDP_OPTIONS_ZEROCOPY: u32 = 1;
    let mut opts: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `opts` and `len` are valid for writes of the sizes given and outlive the call;
    // the fd is the socket's, open for the lifetime of `tx`.
    let r = unsafe {
        libc::getsockopt(
            tx.fd().as_raw_fd(),
            SOL_XDP,
            XDP_OPTIONS,
            (&mut opts as *mut u32).cast(),
            &mut len,
        )
    };
    r == 0 && opts & XDP_OPTIONS_ZEROCOPY != 0
}

impl Sender for AfXdpSender {
    fn name(&self) -> &'static str {
        "afxdp"
    }

    fn batch_max(&self) -> usize {
        AFXDP_BATCH_MAX
    }

    fn send(&mut self, frames: &[Frame<'_>]) -> Result<SendResult, Error> {
        self.reap();
        let mut room = self.room(frames.len());
        if room == 0 && !frames.is_empty() {
            // Ring full or all frames in flight: let the kernel move, then look again.
            self.kick()?;
            self.reap();
            room = self.room(frames.len());
            if room == 0 {
                self.counters.busy += 1;
                return Ok(SendResult::default());
            }
        }
        let mut r = SendResult::default();
        self.batch.clear();
        for f in &frames[..room] {
            r.consumed += 1;
            if f.data.is_empty() || f.data.len() > self.frame_bytes_max {
                r.errors += 1;
                self.counters.too_long += 1;
                continue;
            }
            // `room` <= free frames, and each iteration takes at most one.
            let Some(mut d) = self.free.pop() else {
                r.consumed -= 1;
                break;
            };
            {
                // SAFETY: `d` came off the free stack: a frame of this UMEM in no ring, which
                // neither the kernel nor other code touches until it is submitted below.
                let mut data = unsafe { self.umem.data_mut(&mut d) };
                let mut c = data.cursor();
                c.set_pos(0);
                // Cannot fail: the length was checked against the frame's data area.
                if c.write_all(f.data).is_err() {
                    r.errors += 1;
                    self.counters.too_long += 1;
                    self.free.push(d);
                    continue;
                }
            }
            self.batch.push(d);
            r.sent += 1;
            r.bytes += f.data.len() as u64;
        }
        if !self.batch.is_empty() {
            // SAFETY: the batch holds frames of this UMEM taken off the free stack (in no
            // ring); once on the TX ring they are not touched until the completion ring
            // returns them.
            let n = unsafe { self.tx.produce(&self.batch) };
            if n != self.batch.len() {
                // All or nothing, and room was checked: should not happen. Keep the frames and
                // offer the whole batch again.
                self.free.extend_from_slice(&self.batch);
                self.batch.clear();
                self.counters.busy += 1;
                return Ok(SendResult::default());
            }
            self.batch.clear();
        }
        self.kick()?;
        Ok(r)
    }

    fn finish(&mut self) -> Result<(), Error> {
        let t0 = std::time::Instant::now();
        while self.in_flight() > 0 && (t0.elapsed().as_nanos() as u64) < DRAIN_NS {
            self.kick()?;
            self.reap();
            if self.in_flight() > 0 {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
        self.counters.unfinished = self.in_flight() as u64;
        Ok(())
    }
}
