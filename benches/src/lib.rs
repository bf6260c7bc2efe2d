//! Shared inputs of the benchmarks in `benches/benches/` (results: `benches/RESULTS.md`,
//! all of them at once: `scripts/bench-all.sh`).
//!
//! Frames are built by hand (no dependency) and addressed from the documentation ranges
//! (198.51.100.0/24, 203.0.113.0/24). The unit tests in [`frames`] and [`sip`] check that each
//! input is what its name says (class, length, parse result), so a benchmark never measures
//! an error path by mistake.
#![deny(unsafe_code)]

pub mod frames;
pub mod sip;

/// The size of a G.711 20 ms RTP frame: Ethernet 14 + IPv4 20 + UDP 8 + RTP 12 + 160.
pub const RTP_FRAME_BYTES: usize = 214;

/// A fresh, empty directory under /tmp for one benchmark run, removed on drop.
pub struct TempDir {
    path: std::path::PathBuf,
}

impl TempDir {
    /// Creates `/tmp/xdprec-bench-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> std::io::Result<TempDir> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("xdprec-bench-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
