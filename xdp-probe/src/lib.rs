//! xdprec-probe: the XDP program (`bpf/probe.c`, built by `build.rs` and embedded) and its
//! aya loader.
//!
//! [`Probe::load`] writes the [`ProbeConfig`] into the `xdprec_config` map, then loads the
//! program (the verifier runs here); [`Probe::attach`] attaches it to one or more
//! interfaces; capture threads hand their AF_XDP sockets over with
//! [`Probe::register_socket`]. The program, its maps, its counters and its rules are
//! documented in `bpf/xdprec_abi.h` and README.md.
#![deny(unsafe_code)]

mod sys;

use std::fmt;
use std::io;
use std::str::FromStr;

use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray, PerCpuValues, XskMap};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfError, EbpfLoader};
use xdprec_classify::abi::{self, CONFIG_SIZE, COUNTER_MAX, FLOW_KEY_SIZE, QUEUES_MAX};
use xdprec_classify::ProbeConfig;

/// The classification program (`xdprec_probe`), compiled from `bpf/probe.c`.
pub const PROBE_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/probe.o"));

/// `xdprec_replay_tx`: returns XDP_TX for every frame (a BPF_PROG_RUN live-frames sender).
pub const REPLAY_TX_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/replay_tx.o"));

/// Name of the program in [`REPLAY_TX_OBJECT`].
pub const REPLAY_TX_PROGRAM_NAME: &str = "xdprec_replay_tx";

/// XDP return codes (`enum xdp_action`), as [`Probe::test_run`] returns them.
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Per-CPU counters, indexed by [`abi::Counter`].
pub type Counters = [u64; COUNTER_MAX as usize];

/// How to attach the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to SKB mode when the driver refuses.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode: works on every interface, slower.
    Skb,
}

impl FromStr for XdpMode {
    type Err = ProbeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(XdpMode::Auto),
            "native" => Ok(XdpMode::Native),
            "skb" => Ok(XdpMode::Skb),
            other => Err(ProbeError::UnknownMode {
                given: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Skb => "skb",
        })
    }
}

/// The mode an attachment ended up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Skb,
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Skb => "skb",
        })
    }
}

/// Errors of the loader. Each message names the failing call and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no network interface named `{iface}` ({call} failed): check the name with `ip link` (and the network namespace)")]
    NoSuchInterface { iface: String, call: &'static str },

    #[error("{call} was refused ({source}): run as root, or give the process CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON")]
    Permission {
        call: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("the kernel cannot create the XSKMAP `xdprec_xsks` (bpf(BPF_MAP_CREATE): {source}): it has no AF_XDP support; use a kernel built with CONFIG_XDP_SOCKETS=y")]
    NoAfXdp {
        #[source]
        source: io::Error,
    },

    #[error("the BPF verifier rejected xdprec_probe (bpf(BPF_PROG_LOAD): {source}); the end of its log:\n{log_tail}")]
    Verifier {
        #[source]
        source: io::Error,
        log_tail: String,
    },

    #[error("loading the XDP object failed ({call}): {source}")]
    Load {
        call: &'static str,
        #[source]
        source: Box<EbpfError>,
    },

    #[error("attaching XDP to {iface} failed with ERANGE ({call}): its MTU ({mtu}) is too large for a single-buffer XDP program; lower the MTU to {mtu_max} or less (`ip link set dev {iface} mtu {mtu_max}`; on veth set both ends), or use --xdp-mode skb")]
    MtuTooLarge {
        iface: String,
        call: &'static str,
        mtu: String,
        mtu_max: u32,
    },

    #[error("another XDP program is already attached to {iface} ({call}: {source}): detach it first (`ip link set dev {iface} xdp off`)")]
    AttachBusy {
        iface: String,
        call: &'static str,
        #[source]
        source: io::Error,
    },

    #[error(
        "{mode} XDP is not supported on {iface} ({call}: {source}): use --xdp-mode skb or auto"
    )]
    ModeUnsupported {
        iface: String,
        mode: AttachedMode,
        call: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("attaching XDP to {iface} in {mode} mode failed: {source}")]
    Attach {
        iface: String,
        mode: AttachedMode,
        #[source]
        source: Box<ProgramError>,
    },

    #[error("unknown XDP mode `{given}`: use auto, native or skb")]
    UnknownMode { given: String },

    #[error("queue {queue} is out of range: xdprec_xsks has {max} slots (XDPREC_QUEUES_MAX); use fewer queues")]
    QueueOutOfRange { queue: u32, max: u32 },

    #[error("putting the socket of queue {queue} into xdprec_xsks failed (bpf(BPF_MAP_UPDATE_ELEM): {source}): the fd must be an AF_XDP socket, bound to that queue")]
    RegisterSocket {
        queue: u32,
        #[source]
        source: Box<MapError>,
    },

    #[error("rx queue {queue} does not exist on interface index {ifindex} (BPF_PROG_TEST_RUN: EINVAL): use a queue the device has (queue 0 needs no device)")]
    NoSuchQueue { queue: u32, ifindex: u32 },

    #[error("{op} on map `{map}` failed: {source}")]
    Map {
        map: &'static str,
        op: &'static str,
        #[source]
        source: Box<MapError>,
    },

    #[error("BPF_PROG_TEST_RUN of xdprec_probe failed: {source} ({reason})")]
    TestRun {
        reason: String,
        #[source]
        source: Box<ProgramError>,
    },

    #[error("reading {path} failed ({source}): is the interface in this network namespace?")]
    Sysfs {
        path: String,
        #[source]
        source: io::Error,
    },

    #[error("the embedded object has no {what} `{name}`: the build is inconsistent; rebuild xdprec-probe")]
    Missing {
        what: &'static str,
        name: &'static str,
    },
}

/// The kernel's internal ENOTSUPP, which some XDP paths return to user space.
const ENOTSUPP: i32 = 524;

fn errno_of(e: &ProgramError) -> Option<(&'static str, i32)> {
    match e {
        ProgramError::SyscallError(s) => s.io_error.raw_os_error().map(|n| (s.call, n)),
        ProgramError::LoadError { io_error, .. } => {
            io_error.raw_os_error().map(|n| ("bpf(BPF_PROG_LOAD)", n))
        }
        ProgramError::XdpError(aya::programs::xdp::XdpError::NetlinkError(n)) => n
            .raw_os_error()
            .map(|n| ("netlink(RTM_SETLINK IFLA_XDP)", n)),
        ProgramError::MapError(MapError::SyscallError(s)) => {
            s.io_error.raw_os_error().map(|n| (s.call, n))
        }
        _ => None,
    }
}

fn map_error(map: &'static str, op: &'static str, e: MapError) -> ProbeError {
    let errno = match &e {
        MapError::SyscallError(s) => s.io_error.raw_os_error().map(|n| (s.call, n)),
        _ => None,
    };
    if let Some((call, libc::EPERM)) = errno {
        return ProbeError::Permission {
            call,
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
    }
    ProbeError::Map {
        map,
        op,
        source: Box::new(e),
    }
}

/// Last lines of a verifier log: the reason is at the end, the full log can be megabytes.
fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn load_error(e: EbpfError) -> ProbeError {
    match e {
        EbpfError::MapError(MapError::CreateError { name, io_error }) => {
            match io_error.raw_os_error() {
                Some(libc::EPERM) => ProbeError::Permission {
                    call: "bpf(BPF_MAP_CREATE)",
                    source: io_error,
                },
                Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) if name == abi::MAP_XSKS => {
                    ProbeError::NoAfXdp { source: io_error }
                }
                _ => ProbeError::Load {
                    call: "bpf(BPF_MAP_CREATE)",
                    source: Box::new(EbpfError::MapError(MapError::CreateError {
                        name,
                        io_error,
                    })),
                },
            }
        }
        EbpfError::BtfError(aya::BtfError::LoadError { io_error, .. })
            if io_error.raw_os_error() == Some(libc::EPERM) =>
        {
            ProbeError::Permission {
                call: "bpf(BPF_BTF_LOAD)",
                source: io_error,
            }
        }
        other => ProbeError::Load {
            call: "bpf(2)",
            source: Box::new(other),
        },
    }
}

fn prog_load_error(e: ProgramError) -> ProbeError {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            if io_error.raw_os_error() == Some(libc::EPERM) {
                return ProbeError::Permission {
                    call: "bpf(BPF_PROG_LOAD)",
                    source: io_error,
                };
            }
            ProbeError::Verifier {
                source: io_error,
                log_tail: log_tail(&verifier_log.to_string(), 40),
            }
        }
        other => ProbeError::Load {
            call: "bpf(BPF_PROG_LOAD)",
            source: Box::new(EbpfError::ProgramError(other)),
        },
    }
}

/// The largest MTU a single-buffer XDP program accepts on a driver that keeps one frame per
/// page (veth and most NIC drivers): a 4 KiB page less XDP_PACKET_HEADROOM (256), the
/// aligned `skb_shared_info` (320 on 64-bit) and the Ethernet header (14).
fn xdp_mtu_max() -> u32 {
    4096 - 256 - 320 - 14
}

/// Loaded program and its maps. Dropping it detaches every attachment and unloads.
pub struct Probe {
    // Field order is drop order: links go first (Drop), then maps, then the object.
    attachments: Vec<(String, AttachedMode, XdpLinkId)>,
    config: Array<MapData, [u8; CONFIG_SIZE]>,
    stats: PerCpuArray<MapData, u64>,
    xsks: XskMap<MapData>,
    tcp_sip: HashMap<MapData, [u8; FLOW_KEY_SIZE], u64>,
    ebpf: Ebpf,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field(
                "attachments",
                &self
                    .attachments
                    .iter()
                    .map(|(i, m, _)| (i, m))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Probe {
    /// Loads the embedded program, writes `config` into `xdprec_config` and runs the
    /// verifier. Nothing is attached yet.
    pub fn load(config: &ProbeConfig) -> Result<Probe, ProbeError> {
        if config.abi_version != abi::ABI_VERSION {
            log::warn!(
                "probe config has ABI version {} but the program expects {}: it will pass every frame unclassified",
                config.abi_version,
                abi::ABI_VERSION
            );
        }
        let mut ebpf = EbpfLoader::new().load(PROBE_OBJECT).map_err(load_error)?;

        let mut config_map: Array<MapData, [u8; CONFIG_SIZE]> =
            Array::try_from(take_map(&mut ebpf, abi::MAP_CONFIG)?)
                .map_err(|e| map_error(abi::MAP_CONFIG, "opening", e))?;
        config_map
            .set(0, config.to_bytes(), 0)
            .map_err(|e| map_error(abi::MAP_CONFIG, "bpf(BPF_MAP_UPDATE_ELEM)", e))?;
        let stats = PerCpuArray::try_from(take_map(&mut ebpf, abi::MAP_STATS)?)
            .map_err(|e| map_error(abi::MAP_STATS, "opening", e))?;
        let xsks = XskMap::try_from(take_map(&mut ebpf, abi::MAP_XSKS)?)
            .map_err(|e| map_error(abi::MAP_XSKS, "opening", e))?;
        let tcp_sip = HashMap::try_from(take_map(&mut ebpf, abi::MAP_TCP_SIP)?)
            .map_err(|e| map_error(abi::MAP_TCP_SIP, "opening", e))?;

        let prog = program(&mut ebpf)?;
        prog.load().map_err(prog_load_error)?;

        Ok(Probe {
            attachments: Vec::new(),
            config: config_map,
            stats,
            xsks,
            tcp_sip,
            ebpf,
        })
    }

    /// Replaces the configuration. The program reads it on every frame, so this takes
    /// effect at once, also while attached.
    pub fn set_config(&mut self, config: &ProbeConfig) -> Result<(), ProbeError> {
        self.config
            .set(0, config.to_bytes(), 0)
            .map_err(|e| map_error(abi::MAP_CONFIG, "bpf(BPF_MAP_UPDATE_ELEM)", e))
    }

    /// Attaches to `iface`. `Auto` tries native mode and falls back to SKB mode (with a
    /// warning that says why). May be called for several interfaces.
    pub fn attach(&mut self, iface: &str, mode: XdpMode) -> Result<AttachedMode, ProbeError> {
        let ifindex = interface_index(iface)?;
        let attached = match mode {
            XdpMode::Native => self.attach_one(iface, ifindex, AttachedMode::Native)?,
            XdpMode::Skb => self.attach_one(iface, ifindex, AttachedMode::Skb)?,
            XdpMode::Auto => match self.attach_one(iface, ifindex, AttachedMode::Native) {
                Ok(m) => m,
                Err(
                    e @ (ProbeError::Permission { .. }
                    | ProbeError::AttachBusy { .. }
                    | ProbeError::NoSuchInterface { .. }),
                ) => return Err(e),
                Err(e) => {
                    log::warn!(
                        "native XDP on {iface} failed, falling back to SKB (generic) mode, which costs more CPU per frame: {e}"
                    );
                    self.attach_one(iface, ifindex, AttachedMode::Skb)?
                }
            },
        };
        log::info!("xdprec_probe attached to {iface} (ifindex {ifindex}) in {attached} mode");
        Ok(attached)
    }

    fn attach_one(
        &mut self,
        iface: &str,
        ifindex: u32,
        mode: AttachedMode,
    ) -> Result<AttachedMode, ProbeError> {
        let aya_mode = match mode {
            AttachedMode::Native => aya::programs::XdpMode::Driver,
            AttachedMode::Skb => aya::programs::XdpMode::Skb,
        };
        let prog = program(&mut self.ebpf)?;
        match prog.attach_to_if_index(ifindex, aya_mode) {
            Ok(link) => {
                self.attachments.push((iface.to_string(), mode, link));
                Ok(mode)
            }
            Err(e) => Err(attach_error(iface, mode, e)),
        }
    }

    /// Interfaces this probe is attached to, with their modes.
    pub fn attachments(&self) -> impl Iterator<Item = (&str, AttachedMode)> {
        self.attachments.iter().map(|(i, m, _)| (i.as_str(), *m))
    }

    /// Puts the AF_XDP socket `fd` (bound to `queue`) into `xdprec_xsks[queue]`.
    pub fn register_socket(
        &mut self,
        queue: u32,
        fd: std::os::fd::RawFd,
    ) -> Result<(), ProbeError> {
        check_queue(queue)?;
        self.xsks.set(queue, fd, 0).map_err(|e| {
            if let MapError::SyscallError(s) = &e {
                if s.io_error.raw_os_error() == Some(libc::EPERM) {
                    return ProbeError::Permission {
                        call: "bpf(BPF_MAP_UPDATE_ELEM)",
                        source: io::Error::from_raw_os_error(libc::EPERM),
                    };
                }
            }
            ProbeError::RegisterSocket {
                queue,
                source: Box::new(e),
            }
        })
    }

    /// Empties `xdprec_xsks[queue]`; frames of that queue are then passed (NO_SOCKET).
    /// Removing an empty slot is not an error.
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), ProbeError> {
        check_queue(queue)?;
        match self.xsks.unset(queue) {
            Ok(()) => Ok(()),
            Err(MapError::SyscallError(s)) if s.io_error.raw_os_error() == Some(libc::ENOENT) => {
                Ok(())
            }
            Err(e) => Err(map_error(abi::MAP_XSKS, "bpf(BPF_MAP_DELETE_ELEM)", e)),
        }
    }

    /// Counters summed over CPUs.
    pub fn counters(&self) -> Result<Counters, ProbeError> {
        let mut sum = [0u64; COUNTER_MAX as usize];
        for (i, slot) in sum.iter_mut().enumerate() {
            let values = self.counter_values(i as u32)?;
            *slot = values.iter().fold(0u64, |a, v| a.wrapping_add(*v));
        }
        Ok(sum)
    }

    /// Counters of each possible CPU.
    pub fn counters_per_cpu(&self) -> Result<Vec<Counters>, ProbeError> {
        let mut per_cpu: Vec<Counters> = Vec::new();
        for i in 0..COUNTER_MAX {
            let values = self.counter_values(i)?;
            if per_cpu.len() < values.len() {
                per_cpu.resize(values.len(), [0u64; COUNTER_MAX as usize]);
            }
            for (cpu, v) in values.iter().enumerate() {
                per_cpu[cpu][i as usize] = *v;
            }
        }
        Ok(per_cpu)
    }

    fn counter_values(&self, index: u32) -> Result<PerCpuValues<u64>, ProbeError> {
        self.stats
            .get(&index, 0)
            .map_err(|e| map_error(abi::MAP_STATS, "bpf(BPF_MAP_LOOKUP_ELEM)", e))
    }

    /// Sets every counter of every CPU to 0. Frames counted while this runs may be lost
    /// from the totals: take deltas of [`Probe::counters`] instead where that matters.
    pub fn reset_counters(&mut self) -> Result<(), ProbeError> {
        let cpus = aya::util::nr_cpus().map_err(|(path, source)| ProbeError::Sysfs {
            path: path.to_string(),
            source,
        })?;
        for i in 0..COUNTER_MAX {
            let zeros = PerCpuValues::try_from(vec![0u64; cpus])
                .map_err(|e| map_error(abi::MAP_STATS, "building zeros", MapError::IoError(e)))?;
            self.stats
                .set(i, zeros, 0)
                .map_err(|e| map_error(abi::MAP_STATS, "bpf(BPF_MAP_UPDATE_ELEM)", e))?;
        }
        Ok(())
    }

    /// Number of TCP flows in `xdprec_tcp_sip`.
    pub fn tcp_flow_count(&self) -> Result<usize, ProbeError> {
        let mut n = 0usize;
        for key in self.tcp_sip.keys().take(abi::TCP_FLOWS_MAX as usize) {
            key.map_err(|e| map_error(abi::MAP_TCP_SIP, "bpf(BPF_MAP_GET_NEXT_KEY)", e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Forgets every TCP flow learnt as SIP.
    pub fn clear_tcp_flows(&mut self) -> Result<(), ProbeError> {
        // Collect first: deleting while iterating restarts the kernel's walk. The map holds
        // at most TCP_FLOWS_MAX keys of 40 bytes.
        let mut keys = Vec::new();
        for key in self.tcp_sip.keys().take(abi::TCP_FLOWS_MAX as usize) {
            keys.push(
                key.map_err(|e| map_error(abi::MAP_TCP_SIP, "bpf(BPF_MAP_GET_NEXT_KEY)", e))?,
            );
        }
        for key in &keys {
            match self.tcp_sip.remove(key) {
                Ok(()) => {}
                // The program or the LRU removed it meanwhile.
                Err(MapError::SyscallError(s))
                    if s.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(map_error(abi::MAP_TCP_SIP, "bpf(BPF_MAP_DELETE_ELEM)", e)),
            }
        }
        Ok(())
    }

    /// Runs the program once on `frame` with BPF_PROG_RUN, as if received on `rx_queue` of
    /// no particular device (queue 0 only; see [`Probe::test_run_on`]). Returns the XDP
    /// action; counters and maps change as for a real frame.
    pub fn test_run(&mut self, frame: &[u8], rx_queue: u32) -> Result<u32, ProbeError> {
        self.test_run_on(frame, 0, rx_queue)
    }

    /// [`Probe::test_run`] as if received on `rx_queue` of interface `ifindex` (0: none;
    /// the kernel then only accepts queue 0).
    ///
    /// The kernel refuses frames shorter than an Ethernet header (EINVAL).
    pub fn test_run_on(
        &mut self,
        frame: &[u8],
        ifindex: u32,
        rx_queue: u32,
    ) -> Result<u32, ProbeError> {
        let ctx = xdp_md(0, frame.len(), ifindex, rx_queue);
        let opts = TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat: 1,
            ..TestRunOptions::default()
        };
        let prog = program(&mut self.ebpf)?;
        match prog.test_run(opts) {
            Ok(r) => Ok(r.return_value),
            Err(e) => Err(match errno_of(&e) {
                Some((_, libc::EINVAL)) if rx_queue != 0 => ProbeError::NoSuchQueue {
                    queue: rx_queue,
                    ifindex,
                },
                Some((call, libc::EPERM)) => ProbeError::Permission {
                    call,
                    source: io::Error::from_raw_os_error(libc::EPERM),
                },
                Some((_, errno)) => ProbeError::TestRun {
                    reason: io::Error::from_raw_os_error(errno).to_string(),
                    source: Box::new(e),
                },
                None => ProbeError::TestRun {
                    reason: "no errno".to_string(),
                    source: Box::new(e),
                },
            }),
        }
    }

    /// Runs the program `repeat` times on `frame` (queue 0, no device) and returns the last
    /// XDP action and the kernel's average time per run (for benchmarks; counters move
    /// `repeat` times).
    pub fn test_run_timed(
        &mut self,
        frame: &[u8],
        repeat: u32,
    ) -> Result<(u32, std::time::Duration), ProbeError> {
        let ctx = xdp_md(0, frame.len(), 0, 0);
        let opts = TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat: repeat.max(1),
            ..TestRunOptions::default()
        };
        let prog = program(&mut self.ebpf)?;
        prog.test_run(opts)
            .map(|r| (r.return_value, r.duration))
            .map_err(|e| ProbeError::TestRun {
                reason: errno_of(&e).map_or_else(
                    || "no errno".to_string(),
                    |(_, n)| io::Error::from_raw_os_error(n).to_string(),
                ),
                source: Box::new(e),
            })
    }

    /// Runs the program `repeat` times on `frame` with BPF_PROG_RUN live frames
    /// (`BPF_F_TEST_XDP_LIVE_FRAMES`): the kernel carries out each verdict, as for a frame
    /// received on queue 0 of the loopback device of the calling thread's network namespace
    /// (a redirect reaches the AF_XDP socket bound there, a pass enters the stack).
    pub fn test_run_live(&mut self, frame: &[u8], repeat: u32) -> Result<(), ProbeError> {
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(0),
            ..TestRunOptions::default()
        };
        let prog = program(&mut self.ebpf)?;
        prog.test_run(opts)
            .map(|_| ())
            .map_err(|e| match errno_of(&e) {
                Some((call, libc::EPERM)) => ProbeError::Permission {
                    call,
                    source: io::Error::from_raw_os_error(libc::EPERM),
                },
                errno => ProbeError::TestRun {
                    reason: errno.map_or_else(
                        || "no errno".to_string(),
                        |(_, n)| io::Error::from_raw_os_error(n).to_string(),
                    ),
                    source: Box::new(e),
                },
            })
    }

    /// Instructions the verifier processed, and the size of the loaded program in
    /// instructions (after the kernel's rewrites), where the kernel reports them.
    pub fn program_size(&mut self) -> Result<(Option<u32>, Option<u32>), ProbeError> {
        let prog = program(&mut self.ebpf)?;
        let info = prog.info().map_err(|e| ProbeError::Load {
            call: "bpf(BPF_OBJ_GET_INFO_BY_FD)",
            source: Box::new(EbpfError::ProgramError(e)),
        })?;
        Ok((
            info.verified_instruction_count(),
            info.size_translated().map(|b| b / 8),
        ))
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let attachments = std::mem::take(&mut self.attachments);
        if attachments.is_empty() {
            return;
        }
        if let Ok(prog) = program(&mut self.ebpf) {
            for (iface, mode, link) in attachments {
                match prog.detach(link) {
                    Ok(()) => log::info!("xdprec_probe detached from {iface} ({mode} mode)"),
                    // The interface may be gone already, which detaches the program too.
                    Err(e) => log::warn!("detaching xdprec_probe from {iface} failed: {e}"),
                }
            }
        }
    }
}

/// `struct xdp_md` for BPF_PROG_RUN: data_end must be the buffer length, or the program
/// sees an empty frame; data is where the frame starts (after the metadata).
fn xdp_md(data: usize, data_end: usize, ifindex: u32, rx_queue: u32) -> [u8; 24] {
    let fields = [data as u32, data_end as u32, 0, ifindex, rx_queue, 0];
    let mut b = [0u8; 24];
    for (chunk, v) in b.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    b
}

fn check_queue(queue: u32) -> Result<(), ProbeError> {
    if queue >= QUEUES_MAX {
        return Err(ProbeError::QueueOutOfRange {
            queue,
            max: QUEUES_MAX,
        });
    }
    Ok(())
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, ProbeError> {
    ebpf.take_map(name)
        .ok_or(ProbeError::Missing { what: "map", name })
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, ProbeError> {
    let missing = ProbeError::Missing {
        what: "XDP program",
        name: abi::PROGRAM_NAME,
    };
    match ebpf.program_mut(abi::PROGRAM_NAME) {
        Some(p) => p.try_into().map_err(|_| missing),
        None => Err(missing),
    }
}

fn attach_error(iface: &str, mode: AttachedMode, e: ProgramError) -> ProbeError {
    let Some((call, errno)) = errno_of(&e) else {
        return ProbeError::Attach {
            iface: iface.to_string(),
            mode,
            source: Box::new(e),
        };
    };
    let source = io::Error::from_raw_os_error(errno);
    match errno {
        libc::EPERM | libc::EACCES => ProbeError::Permission { call, source },
        libc::ERANGE => ProbeError::MtuTooLarge {
            iface: iface.to_string(),
            call,
            mtu: std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".to_string()),
            mtu_max: xdp_mtu_max(),
        },
        libc::EBUSY | libc::EEXIST => ProbeError::AttachBusy {
            iface: iface.to_string(),
            call,
            source,
        },
        libc::EOPNOTSUPP | ENOTSUPP => ProbeError::ModeUnsupported {
            iface: iface.to_string(),
            mode,
            call,
            source,
        },
        libc::ENODEV => ProbeError::NoSuchInterface {
            iface: iface.to_string(),
            call,
        },
        _ => ProbeError::Attach {
            iface: iface.to_string(),
            mode,
            source: Box::new(e),
        },
    }
}

/// Index of `iface` in the calling thread's network namespace.
pub fn interface_index(iface: &str) -> Result<u32, ProbeError> {
    sys::if_nametoindex(iface).map_err(|_| ProbeError::NoSuchInterface {
        iface: iface.to_string(),
        call: "if_nametoindex",
    })
}

/// Number of receive queues of `iface` (`/sys/class/net/IF/queues/rx-*`).
pub fn interface_rx_queues(iface: &str) -> Result<u32, ProbeError> {
    // A name with '/' or ".." would make this a path outside the interface directory.
    if iface.is_empty() || iface.contains('/') || iface == "." || iface == ".." {
        return Err(ProbeError::NoSuchInterface {
            iface: iface.to_string(),
            call: "opendir(/sys/class/net)",
        });
    }
    let path = format!("/sys/class/net/{iface}/queues");
    let dir = std::fs::read_dir(&path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            ProbeError::NoSuchInterface {
                iface: iface.to_string(),
                call: "opendir(/sys/class/net/IF/queues)",
            }
        } else {
            ProbeError::Sysfs {
                path: path.clone(),
                source,
            }
        }
    })?;
    let mut n = 0u32;
    for entry in dir {
        let entry = entry.map_err(|source| ProbeError::Sysfs {
            path: path.clone(),
            source,
        })?;
        if entry.file_name().to_string_lossy().starts_with("rx-") {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for m in [XdpMode::Auto, XdpMode::Native, XdpMode::Skb] {
            assert_eq!(m.to_string().parse::<XdpMode>().unwrap(), m);
        }
        let e = "driver".parse::<XdpMode>().unwrap_err();
        assert!(e.to_string().contains("auto, native or skb"), "{e}");
    }

    #[test]
    fn xdp_md_has_frame_length_as_data_end() {
        let b = xdp_md(0, 60, 1, 3);
        assert_eq!(u32::from_ne_bytes(b[4..8].try_into().unwrap()), 60);
        assert_eq!(u32::from_ne_bytes(b[12..16].try_into().unwrap()), 1);
        assert_eq!(u32::from_ne_bytes(b[16..20].try_into().unwrap()), 3);
    }

    #[test]
    fn log_tail_keeps_the_end() {
        assert_eq!(log_tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(log_tail("", 5), "");
    }

    #[test]
    fn objects_are_embedded_elf() {
        assert_eq!(&PROBE_OBJECT[..4], b"\x7fELF");
        assert_eq!(&REPLAY_TX_OBJECT[..4], b"\x7fELF");
    }

    #[test]
    fn bad_interface_names_are_refused() {
        assert!(matches!(
            interface_rx_queues("../x"),
            Err(ProbeError::NoSuchInterface { .. })
        ));
        assert!(matches!(
            interface_index("no-such-if-xyz"),
            Err(ProbeError::NoSuchInterface { .. })
        ));
    }
}
