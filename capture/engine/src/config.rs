//! Capture configuration: command-line values, an optional TOML file, validation.
//!
//! Precedence: a flag wins over the file, the file over the defaults. Everything is checked
//! before anything starts (no probe loaded, no socket bound): a bad port, an empty or inverted
//! RTP range, an unknown interface, a queue the device lacks or a core that does not exist is
//! a [`ConfigError`] naming the offending value.
//!
//! TOML file (every key optional, unknown keys are an error):
//!
//! ```toml
//! iface = ["eth1", "eth2"]
//! store = "/var/lib/xdprec/store"
//! recorder = "rec-a"
//! queues = "0-3"            # or a list [0, 1, 2, 3]
//! cores = "2,3,4,5"
//! housekeeping_cores = "0"  # control, sealer and spare threads (default: any core)
//! rt_priority = 0           # 1-99: capture threads SCHED_FIFO at this priority; 0: off
//! xdp_mode = "auto"         # auto | native | skb
//! sip_ports = [5060, 5080]
//! rtp_ports = "10000-20000"
//! segment_mb = 256
//! seal_secs = 60
//! ring_size = 32768
//! frame_size = 4096
//! batch_size = 256
//! idle_us = 100             # empty ring: sleep this long; 0: block in poll() instead
//! spare_segments = 2        # segment files kept beside the active one and reused (1-4)
//! spool = "disk"            # disk | ram: where those files live (ram: a tmpfs on STORE/spool)
//! streams_max = 65536
//! compress_sealed = false
//! reasm_datagrams_max = 256
//! reasm_frags_max = 64
//! reasm_bytes_max = 8388608
//! reasm_timeout_ms = 5000
//! dedup_window_ms = 50      # 0: no deduplication (see xdprec_capture::dedup)
//! dedup_entries = 1048576   # shared table, 8 bytes an entry
//! bpffs = "/sys/fs/bpf"     # where --ha / --standby pin the probe (see xdprec_capture::ha)
//! run_dir = "/run/xdprec"   # lock files of --ha / --standby
//! heartbeat_timeout_ms = 1000
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use xdprec_classify::abi::SIP_PORTS_MAX;
use xdprec_classify::ProbeConfig;

/// Error in the capture configuration. Each names the value and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("{what}: {message}")]
    Invalid { what: &'static str, message: String },
    #[error("interface `{0}` does not exist (see `ip link`)")]
    UnknownIface(String),
    #[error(
        "interface `{iface}` has {count} rx queue(s) (0..={last}); queue {queue} does not exist"
    )]
    NoSuchQueue {
        iface: String,
        queue: u32,
        count: u32,
        last: u32,
    },
    #[error("core {core} does not exist or is not allowed for this process (allowed: {allowed})")]
    NoSuchCore { core: usize, allowed: String },
}

fn invalid(what: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        what,
        message: message.into(),
    }
}

/// How the probe is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum XdpModeSel {
    #[default]
    Auto,
    Native,
    Skb,
}

/// The value of `what` named `s`: each choice is its names (the first one is listed in the
/// error, the others are accepted aliases) and its value.
fn one_of<T: Copy>(
    what: &'static str,
    s: &str,
    choices: &[(&[&str], T)],
) -> Result<T, ConfigError> {
    if let Some((_, v)) = choices.iter().find(|(names, _)| names.contains(&s)) {
        return Ok(*v);
    }
    let listed: Vec<&str> = choices
        .iter()
        .filter_map(|(names, _)| names.first().copied())
        .collect();
    Err(invalid(
        what,
        format!("`{s}` is not one of {}", listed.join(", ")),
    ))
}

impl std::str::FromStr for XdpModeSel {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        one_of(
            "--xdp-mode",
            s,
            &[
                (&["auto"], XdpModeSel::Auto),
                (&["native", "driver"], XdpModeSel::Native),
                (&["skb", "generic"], XdpModeSel::Skb),
            ],
        )
    }
}

/// Where the writers keep their active and spare segment files (sealed segments always go to
/// `STORE/segments/`). See `xdprec_segment::format`, "Store layout".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Spool {
    /// In `STORE/segments/`, beside the sealed ones: unsealed data reaches the disk by the
    /// kernel's writeback (30 s) or the seal.
    #[default]
    Disk,
    /// In `STORE/spool/`, a tmpfs (mounted by the capture when it is not one): no writeback
    /// of the reused files, so less disk traffic and no write faults on the capture core;
    /// unsealed data survives `kill -9` but not a power loss.
    Ram,
}

impl std::str::FromStr for Spool {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        one_of(
            "--spool",
            s,
            &[(&["disk"], Spool::Disk), (&["ram"], Spool::Ram)],
        )
    }
}

impl XdpModeSel {
    pub fn as_str(self) -> &'static str {
        match self {
            XdpModeSel::Auto => "auto",
            XdpModeSel::Native => "native",
            XdpModeSel::Skb => "skb",
        }
    }
}

/// Limits of IP fragment reassembly (per capture thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasmLimits {
    /// Datagrams being reassembled at once.
    pub datagrams_max: usize,
    /// Fragments of one datagram.
    pub frags_max: usize,
    /// Fragment payload bytes held over all datagrams in flight.
    pub bytes_max: usize,
    /// A datagram not complete after this long is dropped (counted).
    pub timeout_ns: u64,
}

impl Default for ReasmLimits {
    fn default() -> Self {
        ReasmLimits {
            datagrams_max: 256,
            frags_max: 64,
            bytes_max: 8 << 20,
            timeout_ns: 5_000_000_000,
        }
    }
}

/// The complete, validated-on-demand capture configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureConfig {
    pub ifaces: Vec<String>,
    pub store: PathBuf,
    pub recorder: String,
    /// `None`: every rx queue of each device.
    pub queues: Option<Vec<u32>>,
    /// `None`: spread over the allowed cores.
    pub cores: Option<Vec<usize>>,
    /// Cores of the threads that are not capture threads (control, segment sealers and spare
    /// makers); `None`: any allowed core. Sealing takes some of a core at high rates: on a
    /// capture core it takes that from the capture thread.
    pub housekeeping_cores: Option<Vec<usize>>,
    /// SCHED_FIFO priority of the capture threads (1..=99); 0: the normal scheduler. A
    /// capture thread woken with a full ring must run at once; under the fair scheduler a
    /// sealer or spare thread on the same core kept it waiting up to 35 ms here. Real-time
    /// threads are limited to 95 % of a core by the kernel (sched_rt_runtime_us).
    pub rt_priority: u8,
    pub xdp_mode: XdpModeSel,
    pub sip_ports: Vec<u16>,
    pub rtp_port_lo: u16,
    pub rtp_port_hi: u16,
    pub segment_bytes_max: u64,
    pub seal_after_ns: u64,
    /// Entries of the rx ring and of the fill ring (a power of two); 0: `UMEM_AUTO_BYTES` of
    /// frames (see [`CaptureConfig::with_umem_settled`]). NOTES.md: 4096 lost packets under
    /// vCPU stalls, 32768 did not; stalls of 25-40 ms were seen later, longer than 32768
    /// frames last at 1.5 Mpps (22 ms), hence 2 KiB frames wherever the MTU allows.
    pub ring_size: u32,
    /// UMEM frame size, 2048 or 4096; 0: from the interfaces' MTU.
    pub frame_size: u32,
    /// Descriptors taken from the rx ring at once.
    pub batch_size: usize,
    /// How long a capture thread sleeps when its rx ring is empty; 0: block in `poll()`.
    /// A thread blocked in poll() is woken by the kernel on each flush of the ring, and the
    /// wake-up (an IPI) is paid on the core that receives: 12 % of the receive core at
    /// 1 Mpps here. A thread that sleeps a fixed short time is never woken by the kernel.
    /// 100 µs at 1.5 Mpps is 150 frames of a 32768-frame ring.
    pub idle_ns: u64,
    /// Segment files the writer keeps beside the active one and reuses (1..=4).
    pub spare_segments: u32,
    /// Where those files live.
    pub spool: Spool,
    pub streams_max: u32,
    pub compress_sealed: bool,
    pub reasm: ReasmLimits,
    /// Deduplication window; 0 disables deduplication.
    pub dedup_window_ns: u64,
    /// Entries of the shared deduplication table (a power of two).
    pub dedup_entries: u32,
    /// Hot-standby role (`crate::ha`).
    pub ha: HaRole,
    /// Root of the BPF file system the probe is pinned under (`BPFFS/xdprec/IFACE/`).
    pub bpffs: PathBuf,
    /// Directory of the active/standby lock files.
    pub run_dir: PathBuf,
    /// A standby takes over from an active whose heartbeat is older than this; 0: only when
    /// the active process is gone.
    pub heartbeat_timeout_ns: u64,
}

/// Role in a hot-standby pair on one appliance (`crate::ha`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HaRole {
    /// Plain capture: nothing pinned; the probe goes with the process.
    #[default]
    Off,
    /// Active that a standby can take over from (`--ha`): probe pinned, lock held, heartbeat.
    Active,
    /// Standby (`--standby`): waits for the active to die, then takes its queues over.
    Standby,
}

/// UMEM bytes per queue when the ring size is left to the capture: 128 MiB.
pub const UMEM_AUTO_BYTES: u64 = 128 << 20;

/// Bytes the kernel keeps in front of each frame of a UMEM chunk in copy mode
/// (`XDP_PACKET_HEADROOM`); the socket drops longer frames (`xsk_rx_dropped`).
const XDP_HEADROOM_BYTES: u32 = 256;

/// Whether an Ethernet frame of an interface with this MTU (plus its header and two VLAN
/// tags) fits a UMEM frame of `frame_size` bytes.
pub fn frame_fits(mtu: u32, frame_size: u32) -> bool {
    mtu.saturating_add(14 + 8) <= frame_size.saturating_sub(XDP_HEADROOM_BYTES)
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            ifaces: Vec::new(),
            store: PathBuf::new(),
            recorder: default_recorder(),
            queues: None,
            cores: None,
            housekeeping_cores: None,
            rt_priority: 0,
            xdp_mode: XdpModeSel::Auto,
            sip_ports: vec![5060],
            rtp_port_lo: 1024,
            rtp_port_hi: 65535,
            segment_bytes_max: 256 << 20,
            seal_after_ns: 60_000_000_000,
            ring_size: 0,
            frame_size: 0,
            batch_size: 256,
            idle_ns: 100_000,
            spare_segments: 2,
            spool: Spool::Disk,
            streams_max: 65536,
            compress_sealed: false,
            reasm: ReasmLimits::default(),
            dedup_window_ns: 50_000_000,
            dedup_entries: 1 << 20,
            ha: HaRole::Off,
            bpffs: PathBuf::from("/sys/fs/bpf"),
            run_dir: PathBuf::from("/run/xdprec"),
            heartbeat_timeout_ns: 1_000_000_000,
        }
    }
}

/// The host name (`/proc/sys/kernel/hostname`), or "xdprec".
pub fn default_recorder() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "xdprec".to_string())
}

/// The TOML file, as read. Every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub iface: Option<OneOrMany>,
    pub store: Option<PathBuf>,
    pub recorder: Option<String>,
    pub queues: Option<ListOrString>,
    pub cores: Option<ListOrString>,
    pub housekeeping_cores: Option<ListOrString>,
    pub rt_priority: Option<u8>,
    pub xdp_mode: Option<String>,
    pub sip_ports: Option<ListOrString>,
    pub rtp_ports: Option<String>,
    pub segment_mb: Option<u64>,
    pub seal_secs: Option<u64>,
    pub ring_size: Option<u32>,
    pub frame_size: Option<u32>,
    pub batch_size: Option<usize>,
    pub idle_us: Option<u64>,
    pub spare_segments: Option<u32>,
    pub spool: Option<String>,
    pub streams_max: Option<u32>,
    pub compress_sealed: Option<bool>,
    pub reasm_datagrams_max: Option<usize>,
    pub reasm_frags_max: Option<usize>,
    pub reasm_bytes_max: Option<usize>,
    pub reasm_timeout_ms: Option<u64>,
    pub dedup_window_ms: Option<u64>,
    pub dedup_entries: Option<u32>,
    pub bpffs: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub heartbeat_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ListOrString {
    List(Vec<u64>),
    Text(String),
}

impl ListOrString {
    fn to_u64s(&self, what: &'static str) -> Result<Vec<u64>, ConfigError> {
        match self {
            ListOrString::List(v) => Ok(v.clone()),
            ListOrString::Text(s) => parse_list(s, what),
        }
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

/// Command-line values; `None` / empty means "not given".
#[derive(Clone, Debug, Default)]
pub struct FlagValues {
    pub ifaces: Vec<String>,
    pub store: Option<PathBuf>,
    pub recorder: Option<String>,
    pub queues: Option<String>,
    pub cores: Option<String>,
    pub housekeeping_cores: Option<String>,
    pub rt_priority: Option<u8>,
    pub xdp_mode: Option<String>,
    pub sip_ports: Option<String>,
    pub rtp_ports: Option<String>,
    pub segment_mb: Option<u64>,
    pub seal_secs: Option<u64>,
    pub ring_size: Option<u32>,
    pub frame_size: Option<u32>,
    pub batch_size: Option<usize>,
    pub idle_us: Option<u64>,
    pub spare_segments: Option<u32>,
    pub spool: Option<String>,
    pub dedup_window_ms: Option<u64>,
    pub dedup_entries: Option<u32>,
    pub ha: HaRole,
    pub bpffs: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub heartbeat_timeout_ms: Option<u64>,
}

impl FlagValues {
    /// The flags given, as a file would give them (the settings without a flag stay unset).
    fn as_file(&self) -> FileConfig {
        let text = |v: &Option<String>| v.clone().map(ListOrString::Text);
        FileConfig {
            iface: (!self.ifaces.is_empty()).then(|| OneOrMany::Many(self.ifaces.clone())),
            store: self.store.clone(),
            recorder: self.recorder.clone(),
            queues: text(&self.queues),
            cores: text(&self.cores),
            housekeeping_cores: text(&self.housekeeping_cores),
            rt_priority: self.rt_priority,
            xdp_mode: self.xdp_mode.clone(),
            sip_ports: text(&self.sip_ports),
            rtp_ports: self.rtp_ports.clone(),
            segment_mb: self.segment_mb,
            seal_secs: self.seal_secs,
            ring_size: self.ring_size,
            frame_size: self.frame_size,
            batch_size: self.batch_size,
            idle_us: self.idle_us,
            spare_segments: self.spare_segments,
            spool: self.spool.clone(),
            dedup_window_ms: self.dedup_window_ms,
            dedup_entries: self.dedup_entries,
            bpffs: self.bpffs.clone(),
            run_dir: self.run_dir.clone(),
            heartbeat_timeout_ms: self.heartbeat_timeout_ms,
            ..FileConfig::default()
        }
    }
}

fn to_cores(v: Vec<u64>) -> Vec<usize> {
    v.into_iter().map(|x| x as usize).collect()
}

fn to_u32s(v: Vec<u64>, what: &'static str) -> Result<Vec<u32>, ConfigError> {
    v.into_iter()
        .map(|x| u32::try_from(x).map_err(|_| invalid(what, format!("{x} is out of range"))))
        .collect()
}

fn to_ports(v: Vec<u64>, what: &'static str) -> Result<Vec<u16>, ConfigError> {
    v.into_iter()
        .map(|x| match u16::try_from(x) {
            Ok(0) => Err(invalid(what, "port 0 is not a valid port")),
            Ok(p) => Ok(p),
            Err(_) => Err(invalid(what, format!("{x} is not a port (1..=65535)"))),
        })
        .collect()
}

impl CaptureConfig {
    /// Merges flags over the file over the defaults, then checks the values that do not need
    /// the system ([`CaptureConfig::validate`]).
    pub fn from_sources(
        flags: &FlagValues,
        file: Option<&FileConfig>,
    ) -> Result<CaptureConfig, ConfigError> {
        let mut c = CaptureConfig::default();
        if let Some(f) = file {
            c.apply(f, false)?;
        }
        // The flags go through the same path as the file, so that a setting is applied
        // (and its unit converted) in one place.
        c.apply(&flags.as_file(), true)?;
        c.ha = flags.ha;
        c.validate()?;
        Ok(c)
    }

    /// Applies every setting `f` has. `flag`: name settings as command-line flags in errors.
    fn apply(&mut self, f: &FileConfig, flag: bool) -> Result<(), ConfigError> {
        let name = |key: &'static str, opt: &'static str| if flag { opt } else { key };
        let c = self;
        if let Some(i) = &f.iface {
            c.ifaces = match i {
                OneOrMany::One(s) => vec![s.clone()],
                OneOrMany::Many(v) => v.clone(),
            };
        }
        if let Some(s) = &f.store {
            c.store = s.clone();
        }
        if let Some(r) = &f.recorder {
            c.recorder = r.clone();
        }
        if let Some(q) = &f.queues {
            let what = name("queues", "--queues");
            c.queues = Some(to_u32s(q.to_u64s(what)?, what)?);
        }
        if let Some(q) = &f.cores {
            c.cores = Some(to_cores(q.to_u64s(name("cores", "--cores"))?));
        }
        if let Some(q) = &f.housekeeping_cores {
            let what = name("housekeeping_cores", "--housekeeping-cores");
            c.housekeeping_cores = Some(to_cores(q.to_u64s(what)?));
        }
        if let Some(v) = f.rt_priority {
            c.rt_priority = v;
        }
        if let Some(m) = &f.xdp_mode {
            c.xdp_mode = m.parse()?;
        }
        if let Some(p) = &f.sip_ports {
            let what = name("sip_ports", "--sip-ports");
            c.sip_ports = to_ports(p.to_u64s(what)?, what)?;
        }
        if let Some(r) = &f.rtp_ports {
            (c.rtp_port_lo, c.rtp_port_hi) = parse_port_range(r, name("rtp_ports", "--rtp-ports"))?;
        }
        if let Some(v) = f.segment_mb {
            c.segment_bytes_max = v.saturating_mul(1 << 20);
        }
        if let Some(v) = f.seal_secs {
            c.seal_after_ns = v.saturating_mul(1_000_000_000);
        }
        if let Some(v) = f.ring_size {
            c.ring_size = v;
        }
        if let Some(v) = f.frame_size {
            c.frame_size = v;
        }
        if let Some(v) = f.batch_size {
            c.batch_size = v;
        }
        if let Some(v) = f.idle_us {
            c.idle_ns = v.saturating_mul(1000);
        }
        if let Some(v) = f.spare_segments {
            c.spare_segments = v;
        }
        if let Some(v) = &f.spool {
            c.spool = v.parse()?;
        }
        if let Some(v) = f.streams_max {
            c.streams_max = v;
        }
        if let Some(v) = f.compress_sealed {
            c.compress_sealed = v;
        }
        if let Some(v) = f.reasm_datagrams_max {
            c.reasm.datagrams_max = v;
        }
        if let Some(v) = f.reasm_frags_max {
            c.reasm.frags_max = v;
        }
        if let Some(v) = f.reasm_bytes_max {
            c.reasm.bytes_max = v;
        }
        if let Some(v) = f.reasm_timeout_ms {
            c.reasm.timeout_ns = v.saturating_mul(1_000_000);
        }
        if let Some(v) = f.dedup_window_ms {
            c.dedup_window_ns = v.saturating_mul(1_000_000);
        }
        if let Some(v) = f.dedup_entries {
            c.dedup_entries = v;
        }
        if let Some(v) = &f.bpffs {
            c.bpffs = v.clone();
        }
        if let Some(v) = &f.run_dir {
            c.run_dir = v.clone();
        }
        if let Some(v) = f.heartbeat_timeout_ms {
            c.heartbeat_timeout_ns = v.saturating_mul(1_000_000);
        }
        Ok(())
    }

    /// Checks what can be checked without the system.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.store.as_os_str().is_empty() {
            return Err(invalid("--store", "a store directory is required"));
        }
        if self.recorder.is_empty()
            || self.recorder.len() > 63
            || !self
                .recorder
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            || self.recorder.starts_with('.')
        {
            return Err(invalid(
                "--recorder",
                format!(
                    "`{}` must be 1..=63 characters of A-Z a-z 0-9 . _ - (not starting with .)",
                    self.recorder
                ),
            ));
        }
        if self.sip_ports.is_empty() || self.sip_ports.len() > SIP_PORTS_MAX {
            return Err(invalid(
                "--sip-ports",
                format!("give 1..={SIP_PORTS_MAX} ports"),
            ));
        }
        if self.sip_ports.contains(&0) {
            return Err(invalid("--sip-ports", "port 0 is not a valid port"));
        }
        if self.rtp_port_lo == 0 || self.rtp_port_lo > self.rtp_port_hi {
            return Err(invalid(
                "--rtp-ports",
                format!(
                    "{}-{} is not a range LO-HI with 1 <= LO <= HI",
                    self.rtp_port_lo, self.rtp_port_hi
                ),
            ));
        }
        if self.ring_size != 0
            && (!self.ring_size.is_power_of_two() || !(64..=1 << 20).contains(&self.ring_size))
        {
            return Err(invalid(
                "--ring-size",
                format!("{} must be a power of two in 64..=1048576", self.ring_size),
            ));
        }
        if ![0, 2048, 4096].contains(&self.frame_size) {
            return Err(invalid(
                "--frame-size",
                format!("{} must be 2048 or 4096", self.frame_size),
            ));
        }
        if self.batch_size == 0 || self.batch_size > 4096 {
            return Err(invalid("batch_size", "must be in 1..=4096"));
        }
        if self.idle_ns > 10_000_000 {
            return Err(invalid(
                "idle_us",
                "must be at most 10000 (10 ms: longer sleeps risk a full ring)",
            ));
        }
        if self.rt_priority > 99 {
            return Err(invalid("rt_priority", "must be in 0..=99 (0: off)"));
        }
        if !(1..=4).contains(&self.spare_segments) {
            return Err(invalid("spare_segments", "must be in 1..=4"));
        }
        if self.segment_bytes_max < (1 << 20) {
            return Err(invalid("--segment-mb", "must be at least 1"));
        }
        if self.seal_after_ns == 0 {
            return Err(invalid("--seal-secs", "must be at least 1"));
        }
        if self.streams_max == 0 {
            return Err(invalid("streams_max", "must be at least 1"));
        }
        let r = &self.reasm;
        if r.datagrams_max == 0 || r.datagrams_max > 65536 {
            return Err(invalid("reasm_datagrams_max", "must be in 1..=65536"));
        }
        if r.frags_max == 0 || r.frags_max > 1024 {
            return Err(invalid("reasm_frags_max", "must be in 1..=1024"));
        }
        if r.bytes_max < 65536 || r.bytes_max > 1 << 30 {
            return Err(invalid("reasm_bytes_max", "must be in 65536..=1073741824"));
        }
        if r.timeout_ns == 0 {
            return Err(invalid("reasm_timeout_ms", "must be at least 1"));
        }
        if self.dedup_window_ns > 10_000_000_000 {
            return Err(invalid(
                "--dedup-window-ms",
                "must be at most 10000 (0 turns deduplication off)",
            ));
        }
        if !self.dedup_entries.is_power_of_two() || !(1024..=1 << 28).contains(&self.dedup_entries)
        {
            return Err(invalid(
                "--dedup-entries",
                format!(
                    "{} must be a power of two in 1024..=268435456",
                    self.dedup_entries
                ),
            ));
        }
        for i in &self.ifaces {
            if i.is_empty() || i.len() > 15 || i.contains('/') || i.starts_with('.') {
                return Err(invalid(
                    "--iface",
                    format!("`{i}` is not an interface name"),
                ));
            }
        }
        let mut seen = self.ifaces.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.ifaces.len() {
            return Err(invalid("--iface", "an interface is given twice"));
        }
        Ok(())
    }

    /// These settings with the automatic UMEM sizes (0) settled: frames of 2 KiB when the
    /// largest MTU of the captured interfaces (`mtu_max`; `None`: unknown) fits one with two
    /// VLAN tags (MTU <= 1770), else 4 KiB; a ring of `UMEM_AUTO_BYTES` of frames (65536 or
    /// 32768 frames: 44 or 22 ms at 1.5 Mpps).
    pub fn with_umem_settled(&self, mtu_max: Option<u32>) -> CaptureConfig {
        let mut c = self.clone();
        if c.frame_size == 0 {
            c.frame_size = match mtu_max {
                Some(m) if frame_fits(m, 2048) => 2048,
                _ => 4096,
            };
        }
        if c.ring_size == 0 {
            c.ring_size = (UMEM_AUTO_BYTES / u64::from(c.frame_size)) as u32;
        }
        c
    }

    /// The shared deduplication table these settings ask for (`None`: deduplication off).
    pub fn dedup_table(&self) -> Option<std::sync::Arc<crate::dedup::DedupTable>> {
        (self.dedup_window_ns > 0).then(|| {
            std::sync::Arc::new(crate::dedup::DedupTable::new(
                self.dedup_entries as usize,
                self.dedup_window_ns,
            ))
        })
    }

    /// The probe configuration these settings ask for.
    pub fn probe_config(&self) -> ProbeConfig {
        let mut p = ProbeConfig {
            sip_ports: [0; SIP_PORTS_MAX],
            ..Default::default()
        };
        for (i, port) in self.sip_ports.iter().take(SIP_PORTS_MAX).enumerate() {
            p.sip_ports[i] = *port;
        }
        p.sip_port_count = self.sip_ports.len().min(SIP_PORTS_MAX) as u16;
        p.rtp_port_lo = self.rtp_port_lo;
        p.rtp_port_hi = self.rtp_port_hi;
        p
    }

    /// Resolves interfaces, queues and cores against the system: one [`QueuePlan`] per
    /// capture thread. Fails on an unknown interface, a queue beyond the device's, a core
    /// that does not exist.
    pub fn plan(&self) -> Result<Vec<QueuePlan>, ConfigError> {
        if self.ifaces.is_empty() {
            return Err(invalid(
                "--iface",
                "give at least one interface (or --pcap)",
            ));
        }
        let allowed = allowed_cores();
        for (what, list) in [
            ("--cores", &self.cores),
            ("--housekeeping-cores", &self.housekeeping_cores),
        ] {
            let Some(cores) = list else { continue };
            if cores.is_empty() {
                return Err(invalid(what, "the list is empty"));
            }
            for c in cores {
                if !allowed.contains(c) {
                    return Err(ConfigError::NoSuchCore {
                        core: *c,
                        allowed: format_list(&allowed),
                    });
                }
            }
        }
        let mut plan = Vec::new();
        for iface in &self.ifaces {
            let count = rx_queue_count(iface)?;
            let queues: Vec<u32> = match &self.queues {
                Some(q) => q.clone(),
                None => (0..count).collect(),
            };
            if queues.is_empty() {
                return Err(invalid("--queues", "the list is empty"));
            }
            for q in queues {
                if q >= count {
                    return Err(ConfigError::NoSuchQueue {
                        iface: iface.clone(),
                        queue: q,
                        count,
                        last: count.saturating_sub(1),
                    });
                }
                plan.push(QueuePlan {
                    iface: iface.clone(),
                    queue: q,
                    core: None,
                });
            }
        }
        let pool: Vec<usize> = match &self.cores {
            Some(c) => c.clone(),
            None => allowed,
        };
        if !pool.is_empty() {
            for (i, p) in plan.iter_mut().enumerate() {
                p.core = Some(pool[i % pool.len()]);
            }
        }
        Ok(plan)
    }
}

/// One capture thread: an interface queue and the core it is pinned to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuePlan {
    pub iface: String,
    pub queue: u32,
    /// `None` when the process may not learn its cores (then threads are not pinned).
    pub core: Option<usize>,
}

/// Cores this process may run on.
pub fn allowed_cores() -> Vec<usize> {
    let mut v: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    v.sort_unstable();
    v
}

/// Number of rx queues of `iface` (from sysfs). Unknown interface: an error.
pub fn rx_queue_count(iface: &str) -> Result<u32, ConfigError> {
    if iface.is_empty() || iface.contains('/') || iface.starts_with('.') {
        return Err(ConfigError::UnknownIface(iface.to_string()));
    }
    let dir = Path::new("/sys/class/net").join(iface);
    if !dir.exists() {
        return Err(ConfigError::UnknownIface(iface.to_string()));
    }
    let n = std::fs::read_dir(dir.join("queues"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1);
    Ok(n.max(1))
}

fn format_list(v: &[usize]) -> String {
    let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    s.join(",")
}

/// Parses "0,1,4-6" into [0, 1, 4, 5, 6]. At most 4096 values.
pub fn parse_list(s: &str, what: &'static str) -> Result<Vec<u64>, ConfigError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(invalid(what, format!("`{s}` has an empty item")));
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (parse_num(a, what)?, parse_num(b, what)?),
            None => {
                let v = parse_num(part, what)?;
                (v, v)
            }
        };
        if lo > hi {
            return Err(invalid(what, format!("range `{part}` has LO > HI")));
        }
        if hi - lo >= 4096 || out.len() as u64 + (hi - lo) >= 4096 {
            return Err(invalid(what, format!("`{s}` has too many values")));
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

fn parse_num(s: &str, what: &'static str) -> Result<u64, ConfigError> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| invalid(what, format!("`{s}` is not a number")))
}

/// Parses "LO-HI" (ports, 1 <= LO <= HI <= 65535).
pub fn parse_port_range(s: &str, what: &'static str) -> Result<(u16, u16), ConfigError> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| invalid(what, format!("`{s}` is not LO-HI")))?;
    let lo = to_ports(vec![parse_num(a, what)?], what)?[0];
    let hi = to_ports(vec![parse_num(b, what)?], what)?[0];
    if lo > hi {
        return Err(invalid(what, format!("`{s}`: LO is greater than HI")));
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> FlagValues {
        FlagValues {
            store: Some("/tmp/x".into()),
            recorder: Some("r1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn lists_and_ranges_parse() {
        assert_eq!(parse_list("0,1,4-6", "x").unwrap(), vec![0, 1, 4, 5, 6]);
        assert!(parse_list("3-1", "x").is_err());
        assert!(parse_list("1,,2", "x").is_err());
        assert!(parse_list("a", "x").is_err());
        assert_eq!(
            parse_port_range("10000-20000", "x").unwrap(),
            (10000, 20000)
        );
        assert!(parse_port_range("0-10", "x").is_err());
        assert!(parse_port_range("20-10", "x").is_err());
        assert!(parse_port_range("10-70000", "x").is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let mut f = flags();
        f.sip_ports = Some("0".into());
        assert!(CaptureConfig::from_sources(&f, None).is_err());
        let mut f = flags();
        f.rtp_ports = Some("2000-1000".into());
        assert!(CaptureConfig::from_sources(&f, None).is_err());
        let mut f = flags();
        f.ring_size = Some(1000);
        assert!(CaptureConfig::from_sources(&f, None).is_err());
        let mut f = flags();
        f.xdp_mode = Some("turbo".into());
        assert!(CaptureConfig::from_sources(&f, None).is_err());
        let mut f = flags();
        f.spool = Some("nvram".into());
        let e = CaptureConfig::from_sources(&f, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--spool") && e.contains("disk, ram"), "{e}");
        f.spool = Some("ram".into());
        assert_eq!(
            CaptureConfig::from_sources(&f, None).unwrap().spool,
            Spool::Ram
        );
        let mut f = flags();
        f.recorder = Some("../etc".into());
        assert!(CaptureConfig::from_sources(&f, None).is_err());
        let mut f = flags();
        f.dedup_entries = Some(1000);
        assert!(CaptureConfig::from_sources(&f, None).is_err());
        let mut f = flags();
        f.dedup_window_ms = Some(20_000);
        assert!(CaptureConfig::from_sources(&f, None).is_err());
        let mut f = flags();
        f.dedup_window_ms = Some(0);
        assert!(CaptureConfig::from_sources(&f, None)
            .unwrap()
            .dedup_table()
            .is_none());
    }

    #[test]
    fn umem_sizes_follow_the_mtu_unless_given() {
        // (ring, frame) settled for --ring-size, --frame-size and the largest MTU.
        let settled = |ring: Option<u32>, frame: Option<u32>, mtu: Option<u32>| {
            let mut f = flags();
            f.ring_size = ring;
            f.frame_size = frame;
            let c = CaptureConfig::from_sources(&f, None).unwrap();
            let s = c.with_umem_settled(mtu);
            (s.ring_size, s.frame_size)
        };
        assert_eq!(settled(None, None, Some(1500)), (65536, 2048));
        assert_eq!(settled(None, None, Some(1770)), (65536, 2048));
        assert_eq!(settled(None, None, Some(1771)), (32768, 4096));
        assert_eq!(settled(None, None, None), (32768, 4096));
        assert_eq!(settled(Some(0), Some(0), Some(1500)), (65536, 2048));
        assert_eq!(settled(Some(8192), None, Some(9000)), (8192, 4096));
        // As asked, even where the MTU does not fit (the capture warns).
        assert_eq!(settled(None, Some(2048), Some(9000)), (65536, 2048));
        assert!(frame_fits(3000, 4096) && !frame_fits(9000, 4096) && !frame_fits(1771, 2048));
        let mut f = flags();
        f.frame_size = Some(1024);
        assert!(CaptureConfig::from_sources(&f, None).is_err());
    }

    #[test]
    fn flags_win_over_file() {
        let file: FileConfig = toml::from_str(
            "iface = \"lo\"\nsip_ports = [5070]\nrtp_ports = \"2000-3000\"\nring_size = 4096\n",
        )
        .unwrap();
        let mut f = flags();
        f.sip_ports = Some("5060,5080".into());
        let c = CaptureConfig::from_sources(&f, Some(&file)).unwrap();
        assert_eq!(c.sip_ports, vec![5060, 5080]);
        assert_eq!((c.rtp_port_lo, c.rtp_port_hi), (2000, 3000));
        assert_eq!(c.ring_size, 4096);
        assert_eq!(c.ifaces, vec!["lo".to_string()]);
        let p = c.probe_config();
        assert_eq!(p.sip_ports(), &[5060, 5080]);
        assert_eq!(p.rtp_port_lo, 2000);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("ifcae = \"x\"").is_err());
    }

    #[test]
    fn plan_checks_the_system() {
        let mut c = CaptureConfig::from_sources(&flags(), None).unwrap();
        c.ifaces = vec!["nonexistent0".into()];
        assert!(matches!(c.plan(), Err(ConfigError::UnknownIface(_))));
        c.ifaces = vec!["lo".into()];
        let plan = c.plan().unwrap();
        assert!(!plan.is_empty());
        c.queues = Some(vec![4000]);
        assert!(matches!(c.plan(), Err(ConfigError::NoSuchQueue { .. })));
        c.queues = None;
        c.cores = Some(vec![100_000]);
        assert!(matches!(c.plan(), Err(ConfigError::NoSuchCore { .. })));
        c.cores = None;
        c.housekeeping_cores = Some(vec![100_000]);
        assert!(matches!(c.plan(), Err(ConfigError::NoSuchCore { .. })));
        c.housekeeping_cores = Some(vec![]);
        assert!(matches!(c.plan(), Err(ConfigError::Invalid { .. })));
        c.housekeeping_cores = Some(vec![allowed_cores()[0]]);
        assert!(c.plan().is_ok());
    }

    #[test]
    fn scheduling_settings_are_checked_and_file_and_flags_combine() {
        let c = CaptureConfig::from_sources(&flags(), None).unwrap();
        assert_eq!(
            (c.idle_ns, c.spare_segments, c.rt_priority),
            (100_000, 2, 0)
        );
        let mut f = flags();
        f.idle_us = Some(20_000);
        assert!(CaptureConfig::from_sources(&f, None).is_err());
        let mut f = flags();
        f.spare_segments = Some(0);
        assert!(CaptureConfig::from_sources(&f, None).is_err());
        f.spare_segments = Some(5);
        assert!(CaptureConfig::from_sources(&f, None).is_err());
        let mut f = flags();
        f.rt_priority = Some(100);
        assert!(CaptureConfig::from_sources(&f, None).is_err());
        let file: FileConfig = toml::from_str(
            "idle_us = 0\nspare_segments = 4\nrt_priority = 10\nhousekeeping_cores = \"0\"\n",
        )
        .unwrap();
        let mut f = flags();
        f.rt_priority = Some(20);
        let c = CaptureConfig::from_sources(&f, Some(&file)).unwrap();
        assert_eq!((c.idle_ns, c.spare_segments, c.rt_priority), (0, 4, 20));
        assert_eq!(c.housekeeping_cores, Some(vec![0]));
    }
}
