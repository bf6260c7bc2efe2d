//! The crate's only unsafe code: memory maps and a few file syscalls.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use memmap2::{Mmap, MmapMut, MmapOptions};

/// Maps `len` bytes of `file` read-write, shared. `populate`: fault the pages in now
/// (MAP_POPULATE). On a shared mapping that maps them read-only, so a writer still takes a
/// write fault per page: use [`populate_write`] for mappings that will be written.
pub(crate) fn map_mut(file: &File, len: u64, populate: bool) -> io::Result<MmapMut> {
    let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the file is one this process created (a spare or an `.open` segment it holds the
    // queue lock for), preallocated to at least `len` bytes, and no other writer maps it: the
    // lock file guarantees one writer per (recorder, iface, queue). The file is never truncated
    // while mapped (sealing punches a hole instead), so accesses cannot fault with SIGBUS.
    unsafe {
        let mut o = MmapOptions::new();
        o.len(len);
        if populate {
            o.populate();
        }
        o.map_mut(file)
    }
}

/// Bytes a sealer or spare thread hands to one syscall that works through page cache pages
/// (populate, msync, fadvise). The kernel here is built without preemption
/// (`CONFIG_PREEMPT_NONE`): a thread inside one such call over 256 MiB kept a capture thread
/// that shared its core waiting 35 ms for the CPU (a 22 ms ring overflowed). Between two
/// calls the thread passes through user space, where it is preempted.
pub(crate) const SYSCALL_CHUNK_BYTES: usize = 2 << 20;

/// `[0, len)` in pieces of `chunk` bytes (the last may be shorter): (offset, length).
pub(crate) fn pieces(len: usize, chunk: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..len)
        .step_by(chunk.max(1))
        .map(move |off| (off, chunk.min(len - off)))
}

/// `MADV_POPULATE_WRITE` (Linux 5.14); the libc crate may not name it.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// Faults every page of `map` in writable (page cache, blocks, page table entries), so that
/// the capture thread that fills the mapping later takes no page fault at all: a write fault
/// on a shared file mapping (`page_mkwrite`) can wait for the journal or for writeback.
/// Uses `madvise(MADV_POPULATE_WRITE)`; on kernels without it (EINVAL) writes one byte per
/// page back to itself. Returns whether madvise did it.
pub(crate) fn populate_write(map: &mut MmapMut) -> io::Result<bool> {
    if map.is_empty() {
        return Ok(true);
    }
    let mut rc = 0;
    for (off, len) in pieces(map.len(), SYSCALL_CHUNK_BYTES) {
        // SAFETY: `[off, off + len)` lies inside the live mapping `map` owns (off is a multiple
        // of the chunk size, hence page aligned); MADV_POPULATE_WRITE only faults pages in (it
        // never changes their contents), and the `&mut` borrow keeps the mapping alive and
        // unmoved for the call.
        rc = unsafe {
            libc::madvise(
                map.as_mut_ptr().add(off).cast::<libc::c_void>(),
                len,
                MADV_POPULATE_WRITE,
            )
        };
        if rc != 0 {
            break;
        }
    }
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(e);
    }
    // SAFETY: sysconf has no memory arguments.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|&p| p > 0)
        .unwrap_or(4096);
    let base = map.as_mut_ptr();
    for off in (0..map.len()).step_by(page) {
        // SAFETY: `off < map.len()`, so the pointer is inside the mapping we borrow mutably;
        // volatile so that the store of the same value is not optimized away.
        unsafe {
            let p = base.add(off);
            std::ptr::write_volatile(p, std::ptr::read_volatile(p));
        }
    }
    Ok(false)
}

/// Maps the whole file read-only.
pub(crate) fn map_ro(file: &File) -> io::Result<Mmap> {
    // SAFETY: a writer may append to an `.open` file while we read it. Appends only store into
    // bytes after the last valid record, and every record is checked (length and CRC) before it
    // is used, so a concurrent store yields at worst a record that fails its check. Segment
    // files are never truncated (sealing punches a hole), so the mapping cannot go past EOF.
    unsafe { Mmap::map(file) }
}

/// A file offset or length as the syscalls take it.
fn off_t(x: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(x).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Allocates blocks for `[0, len)` so that later writes (through a mapping) cannot hit ENOSPC.
pub(crate) fn preallocate(file: &File, len: u64) -> io::Result<()> {
    let len = off_t(len)?;
    // SAFETY: plain syscall on a valid fd; no memory is passed.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Deallocates `[off, off + len)` keeping the file size (reads there return zeros).
pub(crate) fn punch_hole(file: &File, off: u64, len: u64) -> io::Result<()> {
    let (off, len) = (off_t(off)?, off_t(len)?);
    // SAFETY: plain syscall on a valid fd; no memory is passed.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drops the clean page cache pages of `file` (POSIX_FADV_DONTNEED): a sealed copy that had
/// to be written through the page cache. A no-op on tmpfs.
pub(crate) fn drop_cache(file: &File) -> io::Result<()> {
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // Dropping clean pages is cheap per byte: larger pieces.
    for (off, chunk) in pieces(len, SYSCALL_CHUNK_BYTES * 4) {
        let (o, l) = (off_t(off as u64)?, off_t(chunk as u64)?);
        // SAFETY: plain syscall on a valid fd; no memory is passed.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), o, l, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

/// Creates `path` (it must not exist) for writing with `O_DIRECT`; where the file system
/// refuses `O_DIRECT` (EINVAL), without it. Returns the file and whether it is direct. Writes
/// to a direct file must be 4 KiB-aligned in memory, offset and length.
pub(crate) fn create_direct(path: &Path) -> io::Result<(File, bool)> {
    let open = |flags| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(flags)
            .open(path)
    };
    match open(libc::O_DIRECT) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // create_new: a failed open with O_CREAT may still have created the file.
            let _ = std::fs::remove_file(path);
            open(0).map(|f| (f, false))
        }
        Err(e) => Err(e),
    }
}

/// Takes an exclusive `flock` without waiting; `Ok(false)` when another process holds it.
/// The kernel releases it when the process dies, even on SIGKILL.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: plain syscall on a valid fd.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(e)
}

/// How much nicer than the capture thread the sealer and spare threads run.
const HELPER_NICE_DELTA: libc::c_int = 10;

/// Makes the calling thread (a sealer or spare thread) 10 nice levels nicer than it was
/// (at most 19). They share cores with capture threads on small machines; at equal weight a
/// seal's scan or a spare's page population took CPU the capture thread needed to keep its
/// ring from overflowing. Ten levels is a CFS weight ratio of about 9:1, not starvation.
/// Best effort: a failure leaves the priority as it was.
pub(crate) fn lower_thread_priority() {
    // SAFETY: gettid, getpriority and setpriority have no memory arguments; on Linux,
    // PRIO_PROCESS with a thread id affects that thread only.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, (now + HELPER_NICE_DELTA).min(19));
    }
}

/// Asks the CPU to bring the cache line of `r` into L1 (a hint; never faults).
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing into the program; `r` is a valid
    // reference anyway.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
