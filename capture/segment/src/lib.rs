//! Segment files: the on-disk format, writer, reader, recovery, stream directory
#![deny(unsafe_code)]
