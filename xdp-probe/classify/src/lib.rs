//! xdprec-classify: the probe ABI (Rust side) and a user-space classifier that applies the same
//! rules as the XDP program (`xdp-probe/bpf/probe.c`), for offline import (`xdprec capture
//! --pcap`) and for the differential test that keeps the two in agreement.
//!
//! The rules are written down once, in `xdp-probe/bpf/xdprec_abi.h`.
#![deny(unsafe_code)]

pub mod abi;

pub use abi::{Class, Counter, FlowKey, ProbeConfig};
