//! Disk full: a small tmpfs the test mounts and fills (privileged).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use xdprec_segment::{list_segments, AppendError, SegmentWriter, StreamKey};
use xdprec_testkit::{require_privileges, sh};

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = xdprec_testkit::run(&["umount", "-l", self.0.to_str().unwrap()]);
    }
}

/// Writes zeros into `path` until the filesystem refuses; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    let mut n = 0u64;
    for _ in 0..100_000 {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
    let _ = f.sync_all();
    n
}

#[test]
fn disk_full_is_counted_and_writing_resumes_after_space_is_freed() {
    if !require_privileges("segment_disk_full") {
        return;
    }
    let dir = TempDir::new("dfull");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    sh(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=2m",
        "xseg-test",
        mnt.to_str().unwrap(),
    ]);
    let _m = Mount(mnt.clone());
    let keys: Vec<StreamKey> = (0..4).map(|n| key(n, None)).collect();
    let mut w = SegmentWriter::open(cfg(&mnt, "df", 256 * 1024)).unwrap();
    let mut ok = Vec::new();
    let mut now = 1_000_000_000u64;
    let mut i = 0u64;
    // A few segments first.
    while w.stats().rotations_full < 2 {
        let m = meta(i, &keys);
        w.append(&m, &frame(i), now).unwrap();
        ok.push(i);
        i += 1;
        now += 1000;
    }
    w.flush_sealer();
    let filler = mnt.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0);
    // Go on appending: the active segment (preallocated) still takes records; then the disk
    // full drops begin. Nothing panics.
    let (mut full, mut other) = (0u64, 0u64);
    for _ in 0..200_000 {
        let m = meta(i, &keys);
        match w.append(&m, &frame(i), now) {
            Ok(_) => ok.push(i),
            Err(AppendError::DiskFull) => full += 1,
            Err(e) => {
                other += 1;
                eprintln!("{e}");
            }
        }
        i += 1;
        now += 1000;
        if i.is_multiple_of(1000) {
            let _ = w.tick(now);
        }
        if full >= 5000 {
            break;
        }
    }
    assert_eq!(other, 0);
    assert!(
        full >= 5000,
        "no disk full drops? ok={} stats={:?}",
        ok.len(),
        w.stats()
    );
    assert_eq!(w.stats().disk_full_drops, full);
    assert!(
        w.stats()
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("No space left"),
        "{:?}",
        w.stats().last_error
    );
    // Written data is intact and complete so far.
    w.flush_sealer();
    let got: Vec<u64> = read_store(&mnt).iter().map(|x| x.1).collect();
    assert_eq!(got, ok);
    // Free the space: within a second (of capture time) writing resumes.
    std::fs::remove_file(&filler).unwrap();
    now += 2_000_000_000;
    w.tick(now).unwrap();
    for _ in 0..3000 {
        let m = meta(i, &keys);
        w.append(&m, &frame(i), now).unwrap();
        ok.push(i);
        i += 1;
        now += 1000;
    }
    w.seal().unwrap();
    let st = w.stats().clone();
    drop(w);
    eprintln!("{st:?}");
    assert_eq!(st.disk_full_drops, full);
    // With no room for a sealed copy, segments were sealed in their own files.
    assert!(st.seals_in_place > 0, "{st:?}");
    assert_eq!(st.records, ok.len() as u64);
    let segs = list_segments(&mnt).unwrap();
    assert!(segs.iter().all(|s| s.sealed));
    let got: Vec<u64> = read_store(&mnt).iter().map(|x| x.1).collect();
    assert_eq!(got, ok);
}
