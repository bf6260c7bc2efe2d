//! xdprec-probe: the XDP program (`bpf/probe.c`, built by `build.rs` and embedded) and its
//! aya loader.
//!
//! [`Probe::load`] writes the [`ProbeConfig`] into the `xdprec_config` map, then loads the
//! program (the verifier runs here); [`Probe::attach`] attaches it to one or more
//! interfaces; capture threads hand their AF_XDP sockets over with
//! [`Probe::register_socket`]. The program, its maps, its counters and its rules are
//! documented in `bpf/xdprec_abi.h` and README.md.
//!
//! Hot standby: [`Probe::load_pinned`] pins the maps under a directory of a BPF file system
//! ([`pin_dir`]: `BPFFS/xdprec/IFACE/`, one file per map, named as the map) and
//! [`Probe::attach`] then pins the bpf_link as `link`, so the program stays attached when the
//! process dies (kill -9 included) and keeps steering: frames for an emptied XSKMAP slot are
//! passed and counted `no_socket`. Another process opens the maps with [`PinnedProbe::open`]
//! (register its sockets, read the counters, read/write `xdprec_heartbeat`: u64 wall-clock
//! ns of the active's last sign of life). Dropping a pinned [`Probe`] removes the pins and so
//! detaches, unless [`Probe::keep_pins`]; [`remove_pins`] clears a crashed run's pins;
//! [`ensure_bpffs`] mounts a bpffs where there is none.
#![deny(unsafe_code)]

mod sys;

use std::fmt;
use std::io;
use std::str::FromStr;

use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray, PerCpuValues, XskMap};
use aya::programs::links::{FdLink, PinnedLink};
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

    #[error("pinning in the BPF file system: {op} {path}: {message}")]
    Pin {
        op: &'static str,
        path: PathBuf,
        message: String,
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
    /// Links pinned in bpffs ([`Probe::load_pinned`]): they outlive the process.
    pinned: Vec<(String, AttachedMode, PinnedLink)>,
    pin_dir: Option<PathBuf>,
    /// Leave the pins (and so the attachment) in place when dropped.
    keep_pins: bool,
    config: Array<MapData, [u8; CONFIG_SIZE]>,
    stats: PerCpuArray<MapData, u64>,
    xsks: XskMap<MapData>,
    tcp_sip: HashMap<MapData, [u8; FLOW_KEY_SIZE], u64>,
    heartbeat: Array<MapData, u64>,
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
        Self::load_inner(config, None)
    }

    /// [`Probe::load`], pinning the maps under `dir` (an existing, empty directory on a BPF
    /// file system: see [`pin_dir`]) and, on [`Probe::attach`], the link as `dir/link`, so
    /// the program keeps steering after this process dies and a standby can open the maps
    /// ([`PinnedProbe`]). Dropping the probe removes the pins (and so detaches) unless
    /// [`Probe::keep_pins`] was called.
    pub fn load_pinned(config: &ProbeConfig, dir: &Path) -> Result<Probe, ProbeError> {
        Self::load_inner(config, Some(dir))
    }

    fn load_inner(config: &ProbeConfig, pin: Option<&Path>) -> Result<Probe, ProbeError> {
        if config.abi_version != abi::ABI_VERSION {
            log::warn!(
                "probe config has ABI version {} but the program expects {}: it will pass every frame unclassified",
                config.abi_version,
                abi::ABI_VERSION
            );
        }
        let mut ebpf = EbpfLoader::new().load(PROBE_OBJECT).map_err(load_error)?;
        let mut take = |name: &'static str| -> Result<aya::maps::Map, ProbeError> {
            let m = take_map(&mut ebpf, name)?;
            if let Some(dir) = pin {
                let path = dir.join(name);
                m.pin(&path).map_err(|e| ProbeError::Pin {
                    op: "bpf(BPF_OBJ_PIN)",
                    path,
                    message: e.to_string(),
                })?;
            }
            Ok(m)
        };

        let mut config_map: Array<MapData, [u8; CONFIG_SIZE]> =
            Array::try_from(take(abi::MAP_CONFIG)?)
                .map_err(|e| map_error(abi::MAP_CONFIG, "opening", e))?;
        config_map
            .set(0, config.to_bytes(), 0)
            .map_err(|e| map_error(abi::MAP_CONFIG, "bpf(BPF_MAP_UPDATE_ELEM)", e))?;
        let stats = PerCpuArray::try_from(take(abi::MAP_STATS)?)
            .map_err(|e| map_error(abi::MAP_STATS, "opening", e))?;
        let xsks = XskMap::try_from(take(abi::MAP_XSKS)?)
            .map_err(|e| map_error(abi::MAP_XSKS, "opening", e))?;
        let tcp_sip = HashMap::try_from(take(abi::MAP_TCP_SIP)?)
            .map_err(|e| map_error(abi::MAP_TCP_SIP, "opening", e))?;
        let heartbeat = Array::try_from(take(abi::MAP_HEARTBEAT)?)
            .map_err(|e| map_error(abi::MAP_HEARTBEAT, "opening", e))?;

        let prog = program(&mut ebpf)?;
        prog.load().map_err(prog_load_error)?;

        Ok(Probe {
            attachments: Vec::new(),
            pinned: Vec::new(),
            pin_dir: pin.map(Path::to_path_buf),
            keep_pins: false,
            config: config_map,
            stats,
            xsks,
            tcp_sip,
            heartbeat,
            ebpf,
        })
    }

    /// Leaves the pinned link and maps in place when the probe is dropped: the program stays
    /// attached (frames to an empty XSKMAP slot are passed, counted `no_socket`) until a
    /// standby takes over or [`remove_pins`] runs.
    pub fn keep_pins(&mut self) {
        self.keep_pins = true;
    }

    /// Writes `ns` into `xdprec_heartbeat` (an active's sign of life for a standby).
    pub fn set_heartbeat(&mut self, ns: u64) -> Result<(), ProbeError> {
        self.heartbeat
            .set(0, ns, 0)
            .map_err(|e| map_error(abi::MAP_HEARTBEAT, "bpf(BPF_MAP_UPDATE_ELEM)", e))
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
        let link = match prog.attach_to_if_index(ifindex, aya_mode) {
            Ok(link) => link,
            Err(e) => return Err(attach_error(iface, mode, e)),
        };
        let Some(dir) = self.pin_dir.clone() else {
            self.attachments.push((iface.to_string(), mode, link));
            return Ok(mode);
        };
        let path = dir.join(PIN_LINK);
        let pin_err = |op, message: String| ProbeError::Pin {
            op,
            path: path.clone(),
            message,
        };
        // Only a bpf_link (kernel >= 5.9) can be pinned; a netlink attachment could not
        // outlive the process in a way a standby can see.
        let owned = prog
            .take_link(link)
            .map_err(|e| pin_err("take_link", e.to_string()))?;
        let fd = FdLink::try_from(owned).map_err(|e| {
            pin_err(
                "bpf_link",
                format!("{e}: the kernel attached XDP without a bpf_link"),
            )
        })?;
        let pinned = fd
            .pin(&path)
            .map_err(|e| pin_err("bpf(BPF_OBJ_PIN)", e.to_string()))?;
        self.pinned.push((iface.to_string(), mode, pinned));
        Ok(mode)
    }

    /// Interfaces this probe is attached to, with their modes.
    pub fn attachments(&self) -> impl Iterator<Item = (&str, AttachedMode)> {
        self.attachments
            .iter()
            .map(|(i, m, _)| (i.as_str(), *m))
            .chain(self.pinned.iter().map(|(i, m, _)| (i.as_str(), *m)))
    }

    /// Puts the AF_XDP socket `fd` (bound to `queue`) into `xdprec_xsks[queue]`.
    pub fn register_socket(
        &mut self,
        queue: u32,
        fd: std::os::fd::RawFd,
    ) -> Result<(), ProbeError> {
        xsk_set(&mut self.xsks, queue, fd)
    }

    /// Empties `xdprec_xsks[queue]`; frames of that queue are then passed (NO_SOCKET).
    /// Removing an empty slot is not an error.
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), ProbeError> {
        xsk_unset(&mut self.xsks, queue)
    }

    /// Counters summed over CPUs.
    pub fn counters(&self) -> Result<Counters, ProbeError> {
        sum_counters(&self.stats)
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
        let pinned = std::mem::take(&mut self.pinned);
        if let Some(dir) = &self.pin_dir {
            if self.keep_pins {
                if !pinned.is_empty() {
                    log::info!(
                        "xdprec_probe stays attached (pinned under {}) for a standby",
                        dir.display()
                    );
                }
            } else {
                for (iface, mode, link) in pinned {
                    // Unpinning drops the last reference once our fd closes: detached.
                    match link.unpin() {
                        Ok(fd) => {
                            drop(fd);
                            log::info!("xdprec_probe detached from {iface} ({mode} mode)");
                        }
                        Err(e) => log::warn!("unpinning the probe link of {iface}: {e}"),
                    }
                }
                if let Err(e) = remove_pins(dir) {
                    log::warn!("{e}");
                }
            }
        }
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

fn xsk_set(
    xsks: &mut XskMap<MapData>,
    queue: u32,
    fd: std::os::fd::RawFd,
) -> Result<(), ProbeError> {
    check_queue(queue)?;
    xsks.set(queue, fd, 0).map_err(|e| {
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

fn xsk_unset(xsks: &mut XskMap<MapData>, queue: u32) -> Result<(), ProbeError> {
    check_queue(queue)?;
    match xsks.unset(queue) {
        Ok(()) => Ok(()),
        Err(MapError::SyscallError(s)) if s.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(map_error(abi::MAP_XSKS, "bpf(BPF_MAP_DELETE_ELEM)", e)),
    }
}

fn sum_counters(stats: &PerCpuArray<MapData, u64>) -> Result<Counters, ProbeError> {
    let mut sum = [0u64; COUNTER_MAX as usize];
    for (i, slot) in sum.iter_mut().enumerate() {
        let values = stats
            .get(&(i as u32), 0)
            .map_err(|e| map_error(abi::MAP_STATS, "bpf(BPF_MAP_LOOKUP_ELEM)", e))?;
        *slot = values.iter().fold(0u64, |a, v| a.wrapping_add(*v));
    }
    Ok(sum)
}

/// File name of the pinned link inside a pin directory.
pub const PIN_LINK: &str = "link";

/// Maps pinned by [`Probe::load_pinned`], by file name.
pub const PINNED_MAPS: [&str; 5] = [
    abi::MAP_CONFIG,
    abi::MAP_STATS,
    abi::MAP_XSKS,
    abi::MAP_TCP_SIP,
    abi::MAP_HEARTBEAT,
];

/// The pin directory of `iface`: `BPFFS/xdprec/IFACE` (the interface name is checked: no
/// `/`, not `.` or `..`, at most 15 bytes).
pub fn pin_dir(bpffs: &Path, iface: &str) -> Result<PathBuf, ProbeError> {
    if iface.is_empty() || iface.len() > 15 || iface.contains('/') || iface.starts_with('.') {
        return Err(ProbeError::NoSuchInterface {
            iface: iface.to_string(),
            call: "pin directory name",
        });
    }
    Ok(bpffs.join("xdprec").join(iface))
}

/// Makes sure `root` is a BPF file system, mounting one there when it is not (creating the
/// directory if needed).
pub fn ensure_bpffs(root: &Path) -> Result<(), ProbeError> {
    let err = |op, e: io::Error| ProbeError::Pin {
        op,
        path: root.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(root).map_err(|e| err("mkdir", e))?;
    if sys::is_bpffs(root).map_err(|e| err("statfs", e))? {
        return Ok(());
    }
    sys::mount_bpffs(root).map_err(|e| err("mount -t bpf", e))?;
    log::info!("mounted a BPF file system on {}", root.display());
    Ok(())
}

/// True when `dir` holds a pinned probe link (the program is attached through it).
pub fn pinned_link_exists(dir: &Path) -> bool {
    PinnedLink::from_pin(dir.join(PIN_LINK)).is_ok()
}

/// Removes a pin directory: the link (which detaches the program once no process holds it)
/// and the maps. Returns whether a link was there. Missing files are not an error.
pub fn remove_pins(dir: &Path) -> Result<bool, ProbeError> {
    let err = |op, path: PathBuf, e: io::Error| ProbeError::Pin {
        op,
        path,
        message: e.to_string(),
    };
    let link_path = dir.join(PIN_LINK);
    let mut had_link = false;
    if let Ok(l) = PinnedLink::from_pin(&link_path) {
        had_link = true;
        l.unpin().map_err(|e| err("unlink", link_path.clone(), e))?;
    } else if link_path.exists() {
        std::fs::remove_file(&link_path).map_err(|e| err("unlink", link_path.clone(), e))?;
    }
    for m in PINNED_MAPS {
        let p = dir.join(m);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("unlink", p, e)),
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("rmdir", dir.to_path_buf(), e)),
    }
    Ok(had_link)
}

/// The maps of a probe another process pinned ([`Probe::load_pinned`]): what a standby
/// needs to put its sockets in, read the counters and watch the heartbeat. The program and
/// its attachment belong to the pinned link, not to this handle.
pub struct PinnedProbe {
    dir: PathBuf,
    stats: PerCpuArray<MapData, u64>,
    xsks: XskMap<MapData>,
    heartbeat: Array<MapData, u64>,
    remove_on_drop: bool,
}

impl fmt::Debug for PinnedProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedProbe")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl PinnedProbe {
    /// Opens the maps pinned under `dir`.
    pub fn open(dir: &Path) -> Result<PinnedProbe, ProbeError> {
        fn open_map(dir: &Path, name: &'static str) -> Result<aya::maps::Map, ProbeError> {
            let path = dir.join(name);
            let data = MapData::from_pin(&path).map_err(|e| ProbeError::Pin {
                op: "bpf(BPF_OBJ_GET)",
                path: path.clone(),
                message: format!("{e}: is the active capture running with --ha?"),
            })?;
            aya::maps::Map::from_map_data(data).map_err(|e| map_error(name, "opening", e))
        }
        let stats = PerCpuArray::try_from(open_map(dir, abi::MAP_STATS)?)
            .map_err(|e| map_error(abi::MAP_STATS, "opening", e))?;
        let xsks = XskMap::try_from(open_map(dir, abi::MAP_XSKS)?)
            .map_err(|e| map_error(abi::MAP_XSKS, "opening", e))?;
        let heartbeat = Array::try_from(open_map(dir, abi::MAP_HEARTBEAT)?)
            .map_err(|e| map_error(abi::MAP_HEARTBEAT, "opening", e))?;
        Ok(PinnedProbe {
            dir: dir.to_path_buf(),
            stats,
            xsks,
            heartbeat,
            remove_on_drop: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes the pins (detaching the program) when dropped: set by a standby that took
    /// over and now stops with no standby behind it.
    pub fn set_remove_on_drop(&mut self, yes: bool) {
        self.remove_on_drop = yes;
    }

    /// See [`Probe::register_socket`].
    pub fn register_socket(
        &mut self,
        queue: u32,
        fd: std::os::fd::RawFd,
    ) -> Result<(), ProbeError> {
        xsk_set(&mut self.xsks, queue, fd)
    }

    /// See [`Probe::unregister_socket`].
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), ProbeError> {
        xsk_unset(&mut self.xsks, queue)
    }

    /// Counters summed over CPUs.
    pub fn counters(&self) -> Result<Counters, ProbeError> {
        sum_counters(&self.stats)
    }

    /// The last heartbeat the active wrote (0: none yet).
    pub fn heartbeat(&self) -> Result<u64, ProbeError> {
        self.heartbeat
            .get(&0, 0)
            .map_err(|e| map_error(abi::MAP_HEARTBEAT, "bpf(BPF_MAP_LOOKUP_ELEM)", e))
    }

    /// Writes the heartbeat (a standby that took over is the active now).
    pub fn set_heartbeat(&mut self, ns: u64) -> Result<(), ProbeError> {
        self.heartbeat
            .set(0, ns, 0)
            .map_err(|e| map_error(abi::MAP_HEARTBEAT, "bpf(BPF_MAP_UPDATE_ELEM)", e))
    }
}

impl Drop for PinnedProbe {
    fn drop(&mut self) {
        if self.remove_on_drop {
            match remove_pins(&self.dir) {
                Ok(_) => log::info!(
                    "xdprec_probe unpinned and detached ({})",
                    self.dir.display()
                ),
                Err(e) => log::warn!("{e}"),
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
