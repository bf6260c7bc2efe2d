//! The redirect path end to end: a real AF_XDP socket in `xdprec_xsks`, frames injected with
//! BPF_PROG_RUN live frames, which the kernel delivers as if received on queue 0 of the
//! loopback device. Classified frames must arrive in the socket byte for byte and count
//! REDIRECTED; OTHER and socket-less frames must not arrive.
//!
//! Only one AF_XDP socket can be bound to a queue, and other tests on this machine may use
//! `lo` queue 0 of the main namespace, so the work runs in a fresh network namespace: the
//! outer test re-executes this test binary under `ip netns exec`.

use std::time::Duration;

use xdprec_classify::abi::{Counter, COUNTER_MAX};
use xdprec_classify::ProbeConfig;
use xdprec_probe::{Counters, Probe};
use xdprec_testkit::Netns;

/// An AF_XDP socket on `lo` queue 0 (copy mode), with its own small UMEM. The only unsafe
/// code of this test crate.
mod lo_socket {
    #![allow(unsafe_code)]

    use std::num::NonZeroU32;
    use std::os::fd::{AsRawFd, RawFd};
    use std::time::{Duration, Instant};

    use xsk_rs::config::{FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
    use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

    const FRAMES: u32 = 64;

    pub struct LoSocket {
        // Field order is drop order: the rings before the UMEM they point into.
        rx: RxQueue,
        _fq: FillQueue,
        _tx: TxQueue,
        _cq: CompQueue,
        descs: Vec<FrameDesc>,
        umem: Umem,
    }

    impl LoSocket {
        pub fn open() -> Result<LoSocket, String> {
            let size = QueueSize::new(FRAMES).map_err(|e| e.to_string())?;
            let umem_cfg = UmemConfig::builder()
                .frame_size(FrameSize::new(2048).map_err(|e| e.to_string())?)
                .fill_queue_size(size)
                .comp_queue_size(size)
                .build()
                .map_err(|e| e.to_string())?;
            let frames = NonZeroU32::new(FRAMES).ok_or("0 frames")?;
            let (umem, descs) = Umem::new(umem_cfg, frames, false).map_err(|e| e.to_string())?;
            let cfg = SocketConfig::builder()
                .rx_queue_size(size)
                .tx_queue_size(size)
                // The probe is the XDP program; libxdp must not load its own.
                .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                .build();
            let lo: Interface = "lo".parse().map_err(|_| "interface name")?;
            // SAFETY: the UMEM is used by this one socket only (the hazard xsk-rs documents is
            // a UMEM shared between sockets).
            let (tx, rx, fq_cq) = unsafe { xsk_rs::Socket::new(cfg, &umem, &lo, 0) }
                .map_err(|e| format!("AF_XDP socket on lo queue 0: {e}"))?;
            let (mut fq, cq) = fq_cq.ok_or("no fill ring")?;
            // SAFETY: the descriptors are this UMEM's frames and none is in a ring yet.
            let filled = unsafe { fq.produce(&descs) };
            if filled != descs.len() {
                return Err(format!("fill ring took {filled} of {} frames", descs.len()));
            }
            Ok(LoSocket {
                rx,
                _fq: fq,
                _tx: tx,
                _cq: cq,
                descs,
                umem,
            })
        }

        pub fn fd(&self) -> RawFd {
            self.rx.fd().as_raw_fd()
        }

        /// Frames received within `timeout` (at most the UMEM's 64, never returned to the
        /// fill ring: a test receives fewer than that).
        pub fn receive(&mut self, timeout: Duration) -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            let deadline = Instant::now() + timeout;
            while out.len() < self.descs.len() && Instant::now() < deadline {
                let _ = self.rx.poll(10);
                let room = self.descs.len() - out.len();
                // SAFETY: `descs` are descriptors of this UMEM held in user space; consume
                // overwrites the first n with descriptors the kernel hands back.
                let n = unsafe { self.rx.consume(&mut self.descs[..room]) };
                for d in &self.descs[..n] {
                    // SAFETY: the descriptor came from this socket's rx ring: it points into
                    // this UMEM and the kernel does not write the frame again (never refilled).
                    out.push(unsafe { self.umem.data(d) }.contents().to_vec());
                }
            }
            out
        }
    }
}

fn sip_frame() -> Vec<u8> {
    let payload = b"INVITE sip:bob@203.0.113.2 SIP/2.0\r\nCall-ID: redirect-1\r\n\r\n";
    let mut udp = Vec::new();
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&5060u16.to_be_bytes());
    udp.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    ip_frame(&udp)
}

fn dns_frame() -> Vec<u8> {
    ip_frame(&[0x9c, 0x40, 0, 53, 0, 12, 0, 0, 0x12, 0x34, 1, 0])
}

fn ip_frame(udp: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(20 + udp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 1, 0, 0, 64, 17, 0, 0, 198, 51, 100, 1, 198, 51, 100, 2]);
    f.extend_from_slice(udp);
    f
}

fn delta(probe: &Probe, before: &Counters) -> Counters {
    let now = probe.counters().expect("counters");
    let mut d = [0u64; COUNTER_MAX as usize];
    for i in 0..d.len() {
        d[i] = now[i] - before[i];
    }
    d
}

#[test]
fn redirect_reaches_a_real_socket() {
    if !xdprec_testkit::require_privileges("redirect_reaches_a_real_socket") {
        return;
    }
    let ns = Netns::new();
    let exe = std::env::current_exe().expect("test binary path");
    let out = ns
        .command(exe.to_str().expect("utf-8 path"))
        .args([
            "--exact",
            "redirect_inside_netns",
            "--ignored",
            "--nocapture",
        ])
        .env("XDPREC_REDIRECT_INNER", "1")
        .output()
        .expect("ip netns exec");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inner test failed:\n{text}");
    assert!(text.contains("1 passed"), "inner test did not run:\n{text}");
}

#[test]
#[ignore = "run by redirect_reaches_a_real_socket inside its own network namespace"]
fn redirect_inside_netns() {
    if std::env::var_os("XDPREC_REDIRECT_INNER").is_none() {
        eprintln!("redirect_inside_netns only runs inside redirect_reaches_a_real_socket");
        return;
    }
    let mut probe = Probe::load(&ProbeConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut sock = lo_socket::LoSocket::open().unwrap_or_else(|e| panic!("{e}"));
    probe
        .register_socket(0, sock.fd())
        .unwrap_or_else(|e| panic!("{e}"));

    let sip = sip_frame();
    let before = probe.counters().unwrap();
    probe
        .test_run_live(&sip, 10)
        .unwrap_or_else(|e| panic!("{e}"));
    let got = sock.receive(Duration::from_secs(2));
    let d = delta(&probe, &before);
    assert_eq!(d[Counter::ClassSipUdp as usize], 10);
    assert_eq!(d[Counter::Redirected as usize], 10);
    assert_eq!(
        d[Counter::NoSocket as usize] + d[Counter::RedirectFailed as usize],
        0
    );
    assert_eq!(got.len(), 10, "frames in the socket");
    assert!(got.iter().all(|f| *f == sip), "a frame arrived changed");

    // OTHER is passed to the stack, not to the socket.
    let before = probe.counters().unwrap();
    probe.test_run_live(&dns_frame(), 3).unwrap();
    let d = delta(&probe, &before);
    assert_eq!(
        (d[Counter::ClassOther as usize], d[Counter::Passed as usize]),
        (3, 3)
    );
    assert_eq!(sock.receive(Duration::from_millis(200)).len(), 0);

    // Without the socket, captured frames are passed and counted NO_SOCKET.
    probe.unregister_socket(0).unwrap();
    let before = probe.counters().unwrap();
    probe.test_run_live(&sip, 2).unwrap();
    let d = delta(&probe, &before);
    assert_eq!(
        (
            d[Counter::NoSocket as usize],
            d[Counter::Redirected as usize]
        ),
        (2, 0)
    );
    assert_eq!(sock.receive(Duration::from_millis(200)).len(), 0);
}
