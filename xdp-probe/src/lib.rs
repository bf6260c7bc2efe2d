//! XDP probe: the C program, embedded, and its aya loader
#![deny(unsafe_code)]
