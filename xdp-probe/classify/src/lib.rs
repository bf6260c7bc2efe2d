//! xdprec-classify: the probe ABI (Rust side) and a user-space classifier that applies the same
//! rules as the XDP program (`xdp-probe/bpf/probe.c`), for offline import (`xdprec capture
//! --pcap`) and for the differential test that keeps the two in agreement
//! (`xdp-probe/tests/differential.rs`).
//!
//! The rules are written down once, in `xdp-probe/bpf/xdprec_abi.h`; [`classify`] says why the
//! parser is hand-written and which conventions it shares with the BPF program.
//!
//! ```
//! use xdprec_classify::{Class, Classifier, ProbeConfig};
//! let mut c = Classifier::new(ProbeConfig::default());
//! let r = c.classify(&[0u8; 10]); // shorter than an Ethernet header
//! assert_eq!(r.class, Class::Other);
//! assert_eq!(r.error, Some(xdprec_classify::Counter::TruncEth));
//! ```
#![deny(unsafe_code)]

pub mod abi;
pub mod classify;
mod flows;

pub use abi::{Class, Counter, FlowKey, ProbeConfig};
pub use classify::{
    flow_key, looks_like_sip, rtp_header, Classification, Classifier, FiveTuple, Frag,
    RtpHeaderInfo, Tunnel,
};
