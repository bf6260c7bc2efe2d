//! SIP, SDP, RTP and RTCP wire views and parsers
#![deny(unsafe_code)]
