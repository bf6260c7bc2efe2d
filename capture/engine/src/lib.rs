//! Capture: AF_XDP rings, pinned per-queue threads, pcap import, per-core stats
#![deny(unsafe_code)]
