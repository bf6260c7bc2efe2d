//! The crate's only `unsafe`: AF_PACKET sockets and `sendmmsg`, interface indexes, the
//! SIGINT/SIGTERM handler, and (submodule [`afxdp`]) the AF_XDP transmit sender.
#![allow(unsafe_code)]

pub mod afxdp;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Index of the interface `name` in this network namespace (`if_nametoindex`).
pub fn if_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i)
}

/// A raw AF_PACKET socket bound to one interface, for sending whole Ethernet frames.
pub struct PacketSocket {
    fd: OwnedFd,
    iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

// SAFETY: the iovec/mmsghdr arrays hold raw pointers only during `send_batch`, which fills
// them from its arguments and clears nothing else; between calls they are dead data.
unsafe impl Send for PacketSocket {}

impl PacketSocket {
    /// Opens the socket (protocol 0: it receives nothing), asks for a large send buffer and,
    /// where the kernel allows, for bypassing the qdisc (`PACKET_QDISC_BYPASS`), then binds it
    /// to `ifindex`. `batch_max` sizes the `sendmmsg` arrays.
    pub fn open(ifindex: u32, batch_max: usize) -> io::Result<(PacketSocket, bool)> {
        // SAFETY: plain system call with constant arguments.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sndbuf: libc::c_int = 4 << 20;
        if setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, sndbuf).is_err() {
            let _ = setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, sndbuf);
        }
        let bypass = setsockopt_int(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1).is_ok();
        // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = 0;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let batch_max = batch_max.max(1);
        // SAFETY: all-zero iovec and mmsghdr values are valid (null pointers, zero lengths).
        let iov = vec![unsafe { std::mem::zeroed::<libc::iovec>() }; batch_max];
        // SAFETY: as above.
        let msgs = vec![unsafe { std::mem::zeroed::<libc::mmsghdr>() }; batch_max];
        Ok((PacketSocket { fd, iov, msgs }, bypass))
    }

    /// Sends up to `batch_max` frames with one `sendmmsg`; returns how many the kernel took
    /// (from the front). An error means the first frame was not sent.
    pub fn send_batch<'a>(&mut self, frames: impl Iterator<Item = &'a [u8]>) -> io::Result<usize> {
        let mut n = 0;
        for (f, (iov, msg)) in frames.zip(self.iov.iter_mut().zip(self.msgs.iter_mut())) {
            iov.iov_base = f.as_ptr() as *mut libc::c_void;
            iov.iov_len = f.len();
            msg.msg_hdr.msg_name = std::ptr::null_mut();
            msg.msg_hdr.msg_namelen = 0;
            msg.msg_hdr.msg_iov = iov as *mut libc::iovec;
            msg.msg_hdr.msg_iovlen = 1;
            msg.msg_hdr.msg_control = std::ptr::null_mut();
            msg.msg_hdr.msg_controllen = 0;
            msg.msg_hdr.msg_flags = 0;
            msg.msg_len = 0;
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: `msgs[..n]` point at `iov[..n]`, which point at the caller's frames; all
        // of them live until the call returns, and the kernel only reads them.
        let rc = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                n as libc::c_uint,
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc as usize)
    }
}

fn setsockopt_int(fd: &OwnedFd, level: i32, name: i32, v: libc::c_int) -> io::Result<()> {
    // SAFETY: `v` is a c_int that lives across the call; its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // A second signal while stopping ends the process at once (`_exit` is async-signal-safe).
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: `_exit` is async-signal-safe and never returns.
        unsafe { libc::_exit(130) };
    }
}

/// Sets the returned flag on SIGINT and SIGTERM (a second signal exits at once).
pub fn stop_on_signals() -> io::Result<&'static AtomicBool> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: an all-zero sigaction is valid; the handler only touches an atomic and
        // calls `_exit`, both async-signal-safe.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(&STOP)
}

/// Moves the calling THREAD into the network namespace `/var/run/netns/NAME` (as made by
/// `ip netns add`). Sockets, interface names and BPF test runs of that thread then belong to
/// the namespace; other threads stay where they were.
pub fn enter_netns(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let f = std::fs::File::open(std::path::Path::new("/var/run/netns").join(name))?;
    // SAFETY: `f` is an open namespace file for the duration of the call.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
