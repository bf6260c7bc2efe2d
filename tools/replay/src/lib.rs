//! Replay generator.
#![deny(unsafe_code)]
