//! Rust side of the probe ABI. The C side, and the documentation of every field and rule, is
//! `xdp-probe/bpf/xdprec_abi.h`: change both together and bump [`ABI_VERSION`].

/// Must equal `XDPREC_ABI_VERSION`.
pub const ABI_VERSION: u32 = 1;
pub const SIP_PORTS_MAX: usize = 16;
pub const QUEUES_MAX: u32 = 256;
pub const TCP_FLOWS_MAX: u32 = 65536;
pub const VLAN_MAX: usize = 2;
pub const IPV6_EXT_MAX: usize = 4;
pub const VXLAN_PORT: u16 = 4789;
pub const GTPU_PORT: u16 = 2152;
/// `XDPREC_GTPU_EXT_MAX`: GTP-U extension headers followed at most.
pub const GTPU_EXT_MAX: usize = 4;

/// Map names, as in the ABI header.
pub const MAP_CONFIG: &str = "xdprec_config";
pub const MAP_STATS: &str = "xdprec_stats";
pub const MAP_XSKS: &str = "xdprec_xsks";
pub const MAP_TCP_SIP: &str = "xdprec_tcp_sip";
pub const MAP_HEARTBEAT: &str = "xdprec_heartbeat";
pub const PROGRAM_NAME: &str = "xdprec_probe";

/// `enum xdprec_class`. Also the class byte of every segment record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    Other,
    Sip,
    Rtp,
    Rtcp,
    Frag,
    Unknown(u8),
}

impl Class {
    pub const fn to_u8(self) -> u8 {
        match self {
            Class::Other => 0,
            Class::Sip => 1,
            Class::Rtp => 2,
            Class::Rtcp => 3,
            Class::Frag => 4,
            Class::Unknown(x) => x,
        }
    }

    pub const fn from_u8(x: u8) -> Self {
        match x {
            0 => Class::Other,
            1 => Class::Sip,
            2 => Class::Rtp,
            3 => Class::Rtcp,
            4 => Class::Frag,
            x => Class::Unknown(x),
        }
    }

    /// Classes that the probe steers to capture.
    pub const fn is_captured(self) -> bool {
        matches!(self, Class::Sip | Class::Rtp | Class::Rtcp | Class::Frag)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Class::Other => "other",
            Class::Sip => "sip",
            Class::Rtp => "rtp",
            Class::Rtcp => "rtcp",
            Class::Frag => "frag",
            Class::Unknown(_) => "unknown",
        }
    }
}

macro_rules! counters {
    ($($name:ident = $idx:literal, $label:literal;)*) => {
        /// `enum xdprec_counter`: indexes into the per-CPU `xdprec_stats` array.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum Counter { $($name = $idx,)* }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$name,)*];
            /// Stable snake_case name, used in stats output and JSON.
            pub const fn label(self) -> &'static str {
                match self { $(Counter::$name => $label,)* }
            }
        }
    };
}

counters! {
    RxPackets = 0, "rx_packets";
    RxBytes = 1, "rx_bytes";
    ClassSipUdp = 2, "class_sip_udp";
    ClassSipTcp = 3, "class_sip_tcp";
    ClassRtp = 4, "class_rtp";
    ClassRtcp = 5, "class_rtcp";
    ClassFrag = 6, "class_frag";
    ClassOther = 7, "class_other";
    SipByContent = 8, "sip_by_content";
    TcpFlowHit = 9, "tcp_flow_hit";
    TunnelGre = 10, "tunnel_gre";
    TunnelErspan = 11, "tunnel_erspan";
    TunnelVxlan = 12, "tunnel_vxlan";
    TunnelGtpu = 13, "tunnel_gtpu";
    TunnelIpip = 14, "tunnel_ipip";
    Vlan = 15, "vlan";
    Ipv4 = 16, "ipv4";
    Ipv6 = 17, "ipv6";
    Redirected = 18, "redirected";
    Passed = 19, "passed";
    Dropped = 20, "dropped";
    RedirectFailed = 21, "redirect_failed";
    NoSocket = 22, "no_socket";
    ParseError = 23, "parse_error";
    TruncEth = 24, "trunc_eth";
    TruncVlan = 25, "trunc_vlan";
    TruncIpv4 = 26, "trunc_ipv4";
    TruncIpv6 = 27, "trunc_ipv6";
    TruncIpv6Ext = 28, "trunc_ipv6_ext";
    TruncUdp = 29, "trunc_udp";
    TruncTcp = 30, "trunc_tcp";
    TruncTunnel = 31, "trunc_tunnel";
    Ipv6ExtLimit = 32, "ipv6_ext_limit";
    TcpFlowFull = 33, "tcp_flow_full";
    AbiMismatch = 34, "abi_mismatch";
    GtpuExtLimit = 35, "gtpu_ext_limit";
}

/// `XDPREC_CNT_MAX`.
pub const COUNTER_MAX: u32 = 36;

/// `struct xdprec_config`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    pub abi_version: u32,
    pub sip_ports: [u16; SIP_PORTS_MAX],
    pub sip_port_count: u16,
    pub rtp_port_lo: u16,
    pub rtp_port_hi: u16,
    pub drop_other: u8,
    pub sip_by_content: u8,
    pub capture_frags: u8,
    pub _pad: [u8; 3],
}

/// `struct xdprec_flow_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub addr_a: [u8; 16],
    pub addr_b: [u8; 16],
    /// Network byte order, as in the packet.
    pub port_a: u16,
    pub port_b: u16,
    pub _pad: u32,
}

pub const CONFIG_SIZE: usize = 48;
pub const FLOW_KEY_SIZE: usize = 40;

const _: () = assert!(core::mem::size_of::<ProbeConfig>() == CONFIG_SIZE);
const _: () = assert!(core::mem::size_of::<FlowKey>() == FLOW_KEY_SIZE);
const _: () = assert!(Counter::GtpuExtLimit as u32 + 1 == COUNTER_MAX);

impl Default for ProbeConfig {
    fn default() -> Self {
        let mut sip_ports = [0u16; SIP_PORTS_MAX];
        sip_ports[0] = 5060;
        ProbeConfig {
            abi_version: ABI_VERSION,
            sip_ports,
            sip_port_count: 1,
            rtp_port_lo: 1024,
            rtp_port_hi: 65535,
            drop_other: 0,
            sip_by_content: 1,
            capture_frags: 1,
            _pad: [0; 3],
        }
    }
}

impl ProbeConfig {
    /// The SIP ports in use.
    pub fn sip_ports(&self) -> &[u16] {
        let n = usize::from(self.sip_port_count).min(SIP_PORTS_MAX);
        &self.sip_ports[..n]
    }

    pub fn is_sip_port(&self, port: u16) -> bool {
        self.sip_ports().contains(&port)
    }

    pub fn in_rtp_range(&self, port: u16) -> bool {
        port >= self.rtp_port_lo && port <= self.rtp_port_hi
    }

    /// Bytes as the C struct lays them out (little-endian host, as BPF on x86_64 and arm64).
    pub fn to_bytes(&self) -> [u8; CONFIG_SIZE] {
        let mut b = [0u8; CONFIG_SIZE];
        b[0..4].copy_from_slice(&self.abi_version.to_ne_bytes());
        for (i, p) in self.sip_ports.iter().enumerate() {
            b[4 + 2 * i..6 + 2 * i].copy_from_slice(&p.to_ne_bytes());
        }
        b[36..38].copy_from_slice(&self.sip_port_count.to_ne_bytes());
        b[38..40].copy_from_slice(&self.rtp_port_lo.to_ne_bytes());
        b[40..42].copy_from_slice(&self.rtp_port_hi.to_ne_bytes());
        b[42] = self.drop_other;
        b[43] = self.sip_by_content;
        b[44] = self.capture_frags;
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_round_trips() {
        for x in 0..=255u8 {
            assert_eq!(Class::from_u8(x).to_u8(), x);
        }
    }

    #[test]
    fn counters_are_dense_and_ordered() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as u32, i as u32, "{}", c.label());
        }
        assert_eq!(Counter::ALL.len() as u32, COUNTER_MAX);
    }

    #[test]
    fn config_bytes_follow_c_layout() {
        let c = ProbeConfig::default();
        let b = c.to_bytes();
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), ABI_VERSION);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 5060);
        assert_eq!(core::mem::offset_of!(ProbeConfig, sip_port_count), 36);
        assert_eq!(core::mem::offset_of!(ProbeConfig, rtp_port_lo), 38);
        assert_eq!(core::mem::offset_of!(ProbeConfig, drop_other), 42);
        assert_eq!(core::mem::offset_of!(ProbeConfig, capture_frags), 44);
        assert_eq!(u16::from_ne_bytes([b[40], b[41]]), 65535);
    }
}
