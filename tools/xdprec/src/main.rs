//! The `xdprec` command.
#![deny(unsafe_code)]

fn main() {}
