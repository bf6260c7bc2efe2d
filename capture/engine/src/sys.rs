//! The crate's only unsafe code: AF_XDP rings (xsk-rs), shared file mappings, atomics over
//! mapped memory.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicU64;

use memmap2::{Mmap, MmapMut};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use crate::pipeline::CHUNK;

/// Frames ahead of the one being processed whose bytes are prefetched. The kernel copied each
/// frame into the UMEM on the receiving core, so the capture core's first touch of it misses
/// its caches; with the loads issued early they overlap the work on earlier frames (the CRC
/// over the frame was 14 % of the capture thread's time without this). One chunk ahead (and
/// the batch's first chunk before any work): each frame's lines are asked for a whole chunk
/// of work before the classifier and the CRC read them. Against 6 frames ahead, the capture
/// thread's CPU time at 1.75 Mpps fell ~7 % (medians of six alternating 10 s runs each:
/// 336 vs 363 ns a frame); 2 chunks ahead was no better.
const PREFETCH_AHEAD: usize = CHUNK;

/// Asks the CPU to bring the first 256 bytes of `frame` (a G.711 RTP frame is 214) into L1.
#[inline(always)]
fn prefetch_frame(frame: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = frame.as_ptr();
        for line in (0..frame.len().min(256)).step_by(64) {
            // SAFETY: a prefetch is a hint that never faults, and `p + line` stays inside
            // `frame` (line < frame.len()).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.add(line).cast::<i8>()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = frame;
}

/// Makes the calling thread SCHED_FIFO at `priority` (1..=99).
pub fn set_fifo(priority: u8) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: libc::c_int::from(priority),
    };
    // SAFETY: `param` is a valid sched_param for the duration of the call; pid 0 is the
    // calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Restricts the calling thread (and the threads it creates later) to `cores`.
pub fn pin_current_thread(cores: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data that CPU_ZERO/CPU_SET initialise; sched_setaffinity
    // reads exactly size_of::<cpu_set_t>() bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for &c in cores {
            if c >= libc::CPU_SETSIZE as usize {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            }
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Maps `file` shared, read-write.
pub fn map_mut(file: &File) -> io::Result<MmapMut> {
    // SAFETY: the stats file is written only by this process through this mapping (it is
    // truncated on create); other processes map it read-only and read it through atomics.
    unsafe { MmapMut::map_mut(file) }
}

/// Maps `file` read-only.
pub fn map_ro(file: &File) -> io::Result<Mmap> {
    // SAFETY: the mapping is only read through atomic loads (see `atomic_u64s`), so a
    // concurrent writer in another process cannot cause a data race in the Rust sense.
    unsafe { Mmap::map(file) }
}

/// Views a mapped, 8-byte aligned region as atomics.
pub fn atomic_u64s(bytes: &[u8]) -> &[AtomicU64] {
    let ptr = bytes.as_ptr();
    assert!(
        (ptr as usize).is_multiple_of(std::mem::align_of::<AtomicU64>()),
        "stats mapping must be 8-byte aligned"
    );
    // SAFETY: the pointer is aligned (checked above) and the length is rounded down to whole
    // u64s within `bytes`; AtomicU64 has the size of u64 and interior mutability, and the
    // region lives in a shared file mapping that is only accessed through atomics (the
    // writer's stores through its own `&[AtomicU64]` view), so no `&[u8]` read races with a
    // store. For the read-only mapping only loads are issued.
    unsafe { std::slice::from_raw_parts(ptr as *const AtomicU64, bytes.len() / 8) }
}

/// Error opening an AF_XDP socket.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("{iface} queue {queue}: UMEM of {frames} frames x {frame_size} bytes: {message}")]
    Umem {
        iface: String,
        queue: u32,
        frames: u32,
        frame_size: u32,
        message: String,
    },
    #[error("{iface} queue {queue}: AF_XDP socket (xsk_socket__create): {message}")]
    Socket {
        iface: String,
        queue: u32,
        message: String,
    },
    #[error("{iface} queue {queue}: another AF_XDP socket is bound to this queue (bind: EBUSY): is another capture running on it?")]
    Busy { iface: String, queue: u32 },
    #[error("{0}")]
    Config(String),
}

/// A UMEM (frames mapped and registered with the kernel) not yet bound to a queue.
pub struct XskUmem {
    umem: Umem,
    descs: Vec<FrameDesc>,
    ring_size: u32,
}

// SAFETY: as for XskQueue: used by one thread at a time; the raw pointers point into mmaps
// that are valid on any thread.
unsafe impl Send for XskUmem {}

impl XskUmem {
    /// `ring_size` frames of `frame_size` bytes, fill ring of `ring_size` entries.
    pub fn new(
        iface: &str,
        queue: u32,
        ring_size: u32,
        frame_size: u32,
    ) -> Result<XskUmem, XskError> {
        let cfg = |e: String| XskError::Config(e);
        let qs = QueueSize::new(ring_size).map_err(|e| cfg(e.to_string()))?;
        let small = QueueSize::new(64).map_err(|e| cfg(e.to_string()))?;
        let fs = FrameSize::new(frame_size).map_err(|e| cfg(e.to_string()))?;
        let umem_cfg = UmemConfig::builder()
            .frame_size(fs)
            .fill_queue_size(qs)
            .comp_queue_size(small)
            .build()
            .map_err(|e| cfg(e.to_string()))?;
        let frames =
            std::num::NonZeroU32::new(ring_size).ok_or_else(|| cfg("ring size 0".into()))?;
        let bytes = u64::from(ring_size) * u64::from(frame_size);
        let huge = huge_pages_free_bytes() >= bytes;
        let made = Umem::new(umem_cfg, frames, huge);
        let (umem, descs) = match made {
            Err(e) if huge => {
                log::info!("{iface} q{queue}: UMEM on huge pages failed ({e}); 4 KiB pages");
                Umem::new(umem_cfg, frames, false)
            }
            other => other,
        }
        .map_err(|e| XskError::Umem {
            iface: iface.to_string(),
            queue,
            frames: ring_size,
            frame_size,
            message: e.to_string(),
        })?;
        if huge {
            log::info!("{iface} q{queue}: UMEM ({} MiB) on huge pages", bytes >> 20);
        } else {
            log::info!(
                "{iface} q{queue}: UMEM ({} MiB) on 4 KiB pages; reserve {} more 2 MiB huge pages \
                 (sysctl vm.nr_hugepages) to save a TLB miss per frame",
                bytes >> 20,
                bytes.div_ceil(2 << 20)
            );
        }
        Ok(XskUmem {
            umem,
            descs,
            ring_size,
        })
    }
}

/// Free bytes in the huge page pool (`HugePages_Free` x `Hugepagesize` of /proc/meminfo).
/// Each 4 KiB UMEM frame is a page of its own, so without huge pages the capture thread's
/// first touch of every frame also misses the TLB (the prefetch of a frame stalled on the
/// page walk: 12 % of the thread's time at 1.2 Mpps).
fn huge_pages_free_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return 0;
    };
    let field = |name| crate::stats::proc_field(&text, name).unwrap_or(0);
    field("HugePages_Free") * field("Hugepagesize") * 1024
}

/// One AF_XDP socket bound to one rx queue, with its own UMEM.
///
/// The UMEM has exactly as many frames as the fill ring has entries, so a frame handed back
/// always finds room in the fill ring: the ring is kept full except for the frames being
/// processed in the current batch.
pub struct XskQueue {
    // Field order is drop order: queues before the UMEM they point into.
    rx: RxQueue,
    fq: FillQueue,
    _tx: TxQueue,
    _cq: CompQueue,
    batch: Vec<FrameDesc>,
    /// Frames the fill ring refused (never expected; kept rather than lost).
    pending: Vec<FrameDesc>,
    umem: Umem,
    ring_size: u32,
}

// SAFETY: the rings and the UMEM are used by one thread at a time (the capture thread the
// queue is moved into); xsk-rs types hold raw pointers into mmaps that are valid on any thread.
unsafe impl Send for XskQueue {}

impl XskQueue {
    /// Opens a socket on `iface`/`queue` with `ring_size`-entry rx and fill rings, without
    /// loading libxdp's XDP program (the probe is ours).
    pub fn open(
        iface: &str,
        queue: u32,
        ring_size: u32,
        frame_size: u32,
    ) -> Result<XskQueue, XskError> {
        Self::bind(
            XskUmem::new(iface, queue, ring_size, frame_size)?,
            iface,
            queue,
        )
    }

    /// Binds a socket on `iface`/`queue` over a UMEM created (and registered) beforehand: a
    /// standby prepares its UMEMs while it waits. On an error the UMEM is consumed; a caller
    /// that retries makes a new one.
    pub fn bind(u: XskUmem, iface: &str, queue: u32) -> Result<XskQueue, XskError> {
        Self::bind_retry(u, iface, queue, std::time::Duration::ZERO)
    }

    /// [`XskQueue::bind`], retrying with the same UMEM every 200 µs while the queue is still
    /// held (EBUSY), for up to `busy_wait`. A closed socket frees its queue in deferred kernel
    /// work (about 15 ms measured here), so a standby binding right after the active died
    /// sees EBUSY first. libxdp undoes a failed bind so that the UMEM can be bound again
    /// (measured with xsk-rs 0.11 / libxdp 1.6: the retry binds and receives).
    pub fn bind_retry(
        u: XskUmem,
        iface: &str,
        queue: u32,
        busy_wait: std::time::Duration,
    ) -> Result<XskQueue, XskError> {
        let deadline = std::time::Instant::now() + busy_wait;
        let cfg = |e: String| XskError::Config(e);
        let XskUmem {
            umem,
            descs,
            ring_size,
        } = u;
        let qs = QueueSize::new(ring_size).map_err(|e| cfg(e.to_string()))?;
        let small = QueueSize::new(64).map_err(|e| cfg(e.to_string()))?;
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(qs)
            .tx_queue_size(small)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        let name: Interface = iface.parse().map_err(|_| XskError::Socket {
            iface: iface.to_string(),
            queue,
            message: "bad interface name".into(),
        })?;
        let (tx, rx, fq_cq) = loop {
            // SAFETY: the UMEM is not shared with another socket, so the double-free hazard
            // documented by xsk-rs (shared UMEM without INHIBIT_PROG_LOAD) does not apply; we
            // set INHIBIT_PROG_LOAD anyway. A failed attempt leaves no socket on the UMEM.
            let r = unsafe { xsk_rs::Socket::new(sock_cfg, &umem, &name, queue) }.map_err(|e| {
                let errno = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<io::Error>())
                    .and_then(io::Error::raw_os_error);
                if errno == Some(libc::EBUSY) {
                    return XskError::Busy {
                        iface: iface.to_string(),
                        queue,
                    };
                }
                XskError::Socket {
                    iface: iface.to_string(),
                    queue,
                    message: format!("{e} {}", e.source_text()),
                }
            });
            match r {
                Err(XskError::Busy { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                r => break r?,
            }
        };
        let (mut fq, cq) = fq_cq.ok_or_else(|| XskError::Socket {
            iface: iface.to_string(),
            queue,
            message: "no fill/completion ring returned".into(),
        })?;
        // SAFETY: the descriptors are this UMEM's frames, none handed to the kernel yet.
        let filled = unsafe { fq.produce(&descs) };
        if filled != descs.len() {
            return Err(XskError::Socket {
                iface: iface.to_string(),
                queue,
                message: format!("fill ring took {filled} of {} frames", descs.len()),
            });
        }
        let batch = descs;
        Ok(XskQueue {
            rx,
            fq,
            _tx: tx,
            _cq: cq,
            pending: Vec::with_capacity(batch.len()),
            batch,
            umem,
            ring_size,
        })
    }

    pub fn raw_fd(&self) -> i32 {
        self.rx.fd().as_raw_fd()
    }

    pub fn ring_size(&self) -> u32 {
        self.ring_size
    }

    /// Entries waiting in the rx ring.
    pub fn rx_waiting(&mut self) -> u32 {
        self.rx.nb_avail_exact()
    }

    /// Waits up to `timeout_ms` for the rx ring to have entries.
    pub fn poll(&mut self, timeout_ms: i32) -> io::Result<bool> {
        self.rx.poll(timeout_ms)
    }

    /// Takes up to `max` frames from the rx ring, calls `f` on each, hands the frames back to
    /// the fill ring (waking the kernel if it asks). Returns the number of frames.
    pub fn recv_batch(&mut self, max: usize, mut f: impl FnMut(&[&[u8]])) -> io::Result<usize> {
        let max = max.min(self.batch.len());
        // SAFETY: `batch` holds descriptors of this UMEM that are in user space (not in any
        // ring); consume overwrites them with descriptors the kernel handed back.
        let n = unsafe { self.rx.consume(&mut self.batch[..max]) };
        if n == 0 {
            return Ok(0);
        }
        let mut frames: [&[u8]; CHUNK] = [&[]; CHUNK];
        for d in &self.batch[..n.min(PREFETCH_AHEAD)] {
            // SAFETY: as below, for a descriptor of this batch.
            let data = unsafe { self.umem.data(d) };
            prefetch_frame(data.contents());
        }
        for (c, descs) in self.batch[..n].chunks(CHUNK).enumerate() {
            let base = c * CHUNK;
            for (i, (slot, d)) in frames.iter_mut().zip(descs).enumerate() {
                if let Some(ahead) = self.batch[..n].get(base + i + PREFETCH_AHEAD) {
                    // SAFETY: as below, for a descriptor of this batch.
                    let data = unsafe { self.umem.data(ahead) };
                    prefetch_frame(data.contents());
                }
                // SAFETY: the descriptor came from this socket's rx ring, so it points into
                // this UMEM and the kernel no longer writes the frame until we return it to
                // the fill ring below, after `f` (which cannot keep the slices) returned.
                *slot = unsafe { self.umem.data(d) }.contents();
            }
            f(&frames[..descs.len()]);
        }
        if !self.pending.is_empty() {
            // SAFETY: frames of this UMEM that are in user space.
            let k = unsafe { self.fq.produce(&self.pending) };
            if k == self.pending.len() {
                self.pending.clear();
            }
        }
        // SAFETY: these frames were consumed above and are no longer used.
        let k = unsafe { self.fq.produce(&self.batch[..n]) };
        if k != n && self.pending.len() + n <= self.pending.capacity() {
            self.pending.extend_from_slice(&self.batch[..n]);
        }
        if self.fq.needs_wakeup() {
            let _ = self.fq.wakeup(self.rx.fd_mut(), 0);
        }
        Ok(n)
    }

    /// Wakes the kernel if the fill ring asks for it (used while idle).
    pub fn wakeup_if_needed(&mut self) -> bool {
        if self.fq.needs_wakeup() {
            let _ = self.fq.wakeup(self.rx.fd_mut(), 0);
            return true;
        }
        false
    }

    /// getsockopt(XDP_STATISTICS): (rx_dropped, rx_invalid_descs, rx_ring_full,
    /// rx_fill_ring_empty_descs).
    pub fn statistics(&self) -> io::Result<[u64; 4]> {
        let s = self.rx.fd().xdp_statistics()?;
        Ok([
            s.rx_dropped(),
            s.rx_invalid_descs(),
            s.rx_ring_full(),
            s.rx_fill_ring_empty_descs(),
        ])
    }
}

trait SourceText {
    fn source_text(&self) -> String;
}

impl<E: std::error::Error> SourceText for E {
    fn source_text(&self) -> String {
        self.source().map(|s| format!("({s})")).unwrap_or_default()
    }
}

/// flock(2) on `file`: `exclusive` lock, blocking or not. Ok(false): would block.
pub fn flock(file: &File, blocking: bool) -> io::Result<bool> {
    let op = libc::LOCK_EX | if blocking { 0 } else { libc::LOCK_NB };
    loop {
        // SAFETY: the fd is valid for the lifetime of `file`; flock has no memory arguments.
        let r = unsafe { libc::flock(file.as_raw_fd(), op) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !blocking => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// kill(2) `pid` with SIGKILL.
pub fn kill9(pid: i32) -> io::Result<()> {
    // SAFETY: kill has no memory arguments; a wrong pid is an error, not UB.
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `TMPFS_MAGIC` from `linux/magic.h`.
const TMPFS_MAGIC: i64 = 0x0102_1994;

fn c_path(path: &std::path::Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt as _;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Whether `path` is on a tmpfs, and that file system's size in bytes (statfs(2)).
pub fn tmpfs_size(path: &std::path::Path) -> io::Result<Option<u64>> {
    let c = c_path(path)?;
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and outlives the call; `st` is a valid out pointer.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    let is_tmpfs = st.f_type as i64 == TMPFS_MAGIC;
    #[allow(clippy::unnecessary_cast)]
    Ok(is_tmpfs.then(|| (st.f_blocks as u64).saturating_mul(st.f_bsize as u64)))
}

/// mount(2) a tmpfs of `size_bytes` on `path` (which must exist), mode 0750, no devices, no
/// set-uid, no exec.
pub fn mount_tmpfs(path: &std::path::Path, size_bytes: u64) -> io::Result<()> {
    let target = c_path(path)?;
    let data = std::ffi::CString::new(format!("size={size_bytes},mode=0750"))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mount options"))?;
    let fstype = c"tmpfs";
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: all strings are NUL-terminated and outlive the call; tmpfs reads `data` as a
    // NUL-terminated option string.
    let r = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// umount(2) the file system on `path`.
pub fn unmount(path: &std::path::Path) -> io::Result<()> {
    let target = c_path(path)?;
    // SAFETY: `target` is NUL-terminated and outlives the call.
    if unsafe { libc::umount(target.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
