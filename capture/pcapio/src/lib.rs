//! pcap and pcapng reading and pcap writing.
#![deny(unsafe_code)]
