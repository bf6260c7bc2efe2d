//! Hot standby on one appliance: a second `xdprec capture --standby` process waits beside the
//! active one (`--ha`) and takes its NIC queues over the moment the active dies.
//!
//! ## How
//!
//! - **The probe outlives the active.** An active with `--ha` loads the probe with its maps
//!   pinned under `BPFFS/xdprec/IFACE/` (`xdprec_config`, `xdprec_stats`, `xdprec_xsks`,
//!   `xdprec_tcp_sip`, `xdprec_heartbeat`) and pins its bpf_link there as `link`. When the
//!   active dies, the kernel closes its AF_XDP sockets (which removes them from the XSKMAP) but
//!   the pinned link keeps the program attached: frames of captured classes are passed to the
//!   kernel and counted `no_socket` by the probe until the standby's sockets are in the map.
//!   `BPFFS` (`--bpffs`, default `/sys/fs/bpf`) is mounted when it is not a BPF file system.
//!   `ip netns exec` remounts /sys, so two processes started by two `ip netns exec` do not
//!   share `/sys/fs/bpf`: give both a `--bpffs` outside /sys (the tests mount their own).
//! - **Detection.** The active holds an exclusive flock on `RUN_DIR/IFACE.active.lock`
//!   (`--run-dir`, default `/run/xdprec`) and writes its pid into it. The standby blocks in
//!   flock on the same file in a thread: the kernel releases the lock the instant the active
//!   process dies, kill -9 included, and the standby wakes at once. A standby holds
//!   `RUN_DIR/IFACE.standby.lock` so the active can tell that one is waiting, and only one can.
//! - **Hung active.** The active writes its wall clock into `xdprec_heartbeat` every 10 ms. A
//!   standby that sees it older than `--heartbeat-timeout-ms` (default 1000; 0: never) while
//!   the lock is still held cannot simply bind: an AF_XDP socket cannot bind a (device,
//!   queue) another socket holds (EBUSY), and a hung process still holds them. So it SIGKILLs
//!   the pid written in the lock file (only if `/proc/PID/comm` starts with `xdprec`), logs
//!   that as an error, and takes over when the kernel has released the lock.
//! - **Takeover.** The standby opened its segment writers before waiting; it then binds one
//!   AF_XDP socket per queue (retrying on EBUSY for up to 5 s: the lock can be released a
//!   moment before the dead process's sockets are closed), puts each into the pinned XSKMAP,
//!   releases its standby lock and from then on is the active: it writes the heartbeat, and a
//!   new standby can wait behind it. Its UMEMs (mapped and registered), segment writers and
//!   the pinned maps are prepared while it waits, so a waiting standby holds as much memory
//!   as an active. The log line `took over ... in N ms` gives the time from the lock to the
//!   last socket in the map. Measured here (veth, debug build, 2 shared vCPUs): 16-25 ms,
//!   most of it the kernel freeing the dead socket's queue (deferred work, ~15 ms: the bind
//!   is retried with the prepared UMEM every 200 µs meanwhile).
//! - **Segments.** A standby started with `--recorder NAME` records as `NAME.sb`, or as
//!   `NAME` when the active it waits behind is itself a `NAME.sb` that took over (a crashed
//!   active restarted as standby): the active lock file holds "PID RECORDER". So the two
//!   never share segment names, queue-writer locks or stats files, in the same or another
//!   store; their segments are ordinary segments, read together by every reader of the store.
//! - **Clean exit** (SIGINT/SIGTERM) of an `--ha` active: when a standby is waiting (its lock
//!   is held), the probe stays attached and pinned and the standby takes over as after a
//!   crash (the gap then is the drain plus the takeover); otherwise the pins are removed and
//!   the probe detached. A standby stopped before a takeover changes nothing.
//! - **Stale pins.** An `--ha` active that gets the active lock is the only capture on the
//!   interface: pins it finds are a crashed run's; it removes them (detaching that program),
//!   says so, and starts afresh. A plain capture (no `--ha`) ignores pins but fails on an
//!   attached program as before.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::CaptureConfig;
use crate::sys;

/// Errors of the active/standby coordination.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another capture is active on {iface} (pid {pid}, lock {path}): stop it, or start this one with --standby")]
    ActiveHeld {
        iface: String,
        pid: String,
        path: PathBuf,
    },
    #[error("a standby already waits on {iface} (lock {path}): only one standby per interface")]
    StandbyHeld { iface: String, path: PathBuf },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HaError + 'a {
    move |source| HaError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// `RUN_DIR/IFACE.active.lock` or `.standby.lock`.
pub fn lock_path(run_dir: &Path, iface: &str, standby: bool) -> PathBuf {
    run_dir.join(format!(
        "{iface}.{}.lock",
        if standby { "standby" } else { "active" }
    ))
}

/// `NAME.sb`: the other name of a hot-standby pair.
pub fn standby_recorder(recorder: &str) -> String {
    let mut r: String = recorder.chars().take(60).collect();
    r.push_str(".sb");
    r
}

/// The recorder name a standby with `--recorder NAME` writes as: `NAME.sb`, unless the
/// current active (named in the active lock of the first interface) already writes as
/// `NAME.sb` (it is a standby that took over), then `NAME`. So a crashed active restarted as
/// standby never collides with the one that replaced it.
pub fn standby_recorder_for(cfg: &CaptureConfig) -> String {
    let sb = standby_recorder(&cfg.recorder);
    let active = cfg
        .ifaces
        .first()
        .and_then(|i| read_lock(&lock_path(&cfg.run_dir, i, false)))
        .map(|(_, r)| r);
    if active.as_deref() == Some(sb.as_str()) {
        cfg.recorder.clone()
    } else {
        sb
    }
}

fn open_lock(path: &Path) -> Result<File, HaError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io("mkdir", d))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("open", path))
}

/// Writes "PID RECORDER" into a held lock file.
pub fn write_pid(file: &mut File, path: &Path, recorder: &str) -> Result<(), HaError> {
    file.set_len(0).map_err(io("ftruncate", path))?;
    file.seek(SeekFrom::Start(0)).map_err(io("lseek", path))?;
    writeln!(file, "{} {recorder}", std::process::id()).map_err(io("write", path))
}

/// The pid and recorder written in a lock file.
pub fn read_lock(path: &Path) -> Option<(i32, String)> {
    let mut s = String::new();
    File::open(path)
        .ok()?
        .take(256)
        .read_to_string(&mut s)
        .ok()?;
    let mut it = s.split_whitespace();
    let pid = it.next()?.parse().ok().filter(|p: &i32| *p > 0)?;
    Some((pid, it.next().unwrap_or_default().to_string()))
}

/// The pid written in a lock file.
pub fn read_pid(path: &Path) -> Option<i32> {
    read_lock(path).map(|(p, _)| p)
}

/// Takes the active lock of every interface without waiting.
pub fn take_active_locks(cfg: &CaptureConfig) -> Result<Vec<File>, HaError> {
    let mut out = Vec::new();
    for iface in &cfg.ifaces {
        let path = lock_path(&cfg.run_dir, iface, false);
        let mut f = open_lock(&path)?;
        if !sys::flock(&f, false).map_err(io("flock", &path))? {
            return Err(HaError::ActiveHeld {
                iface: iface.clone(),
                pid: read_pid(&path).map_or("unknown".into(), |p| p.to_string()),
                path,
            });
        }
        write_pid(&mut f, &path, &cfg.recorder)?;
        out.push(f);
    }
    Ok(out)
}

/// Takes the standby lock of every interface without waiting.
pub fn take_standby_locks(cfg: &CaptureConfig) -> Result<Vec<File>, HaError> {
    let mut out = Vec::new();
    for iface in &cfg.ifaces {
        let path = lock_path(&cfg.run_dir, iface, true);
        let f = open_lock(&path)?;
        if !sys::flock(&f, false).map_err(io("flock", &path))? {
            return Err(HaError::StandbyHeld {
                iface: iface.clone(),
                path,
            });
        }
        out.push(f);
    }
    Ok(out)
}

/// True when a standby waits on any of the interfaces (its lock is held).
pub fn standby_waiting(cfg: &CaptureConfig) -> bool {
    cfg.ifaces.iter().any(|iface| {
        let path = lock_path(&cfg.run_dir, iface, true);
        match OpenOptions::new().read(true).write(true).open(&path) {
            // Taking it tells nobody is there; it is released when `f` closes.
            Ok(f) => !sys::flock(&f, false).unwrap_or(true),
            Err(_) => false,
        }
    })
}

/// How a standby's wait ended.
pub enum WaitOutcome {
    /// The active is gone: its locks are ours now (pid written), taken at `at`.
    TookOver { locks: Vec<File>, at: Instant },
    /// The stop flag was set first.
    Stopped,
}

/// Blocks until the active capture of every interface is gone (or `stop`). `heartbeat`
/// returns the active's last heartbeat (ns, 0: unknown); it is polled every 10 ms and a stale
/// one makes the standby SIGKILL a hung active (module docs).
pub fn wait_for_takeover(
    cfg: &CaptureConfig,
    stop: &AtomicBool,
    mut heartbeat: impl FnMut() -> u64,
) -> Result<WaitOutcome, HaError> {
    let mut paths = Vec::new();
    let mut files = Vec::new();
    for iface in &cfg.ifaces {
        let p = lock_path(&cfg.run_dir, iface, false);
        files.push(open_lock(&p)?);
        paths.push(p);
    }
    let (tx, rx) = mpsc::channel::<Result<Vec<File>, String>>();
    let thread_paths = paths.clone();
    // Blocks in flock; if we stop first the thread stays blocked until the process exits.
    std::thread::Builder::new()
        .name("xdprec-standby".into())
        .spawn(move || {
            for (f, p) in files.iter().zip(&thread_paths) {
                if let Err(e) = sys::flock(f, true) {
                    let _ = tx.send(Err(format!("flock {}: {e}", p.display())));
                    return;
                }
            }
            let _ = tx.send(Ok(files));
        })
        .map_err(io("spawn standby thread", &cfg.run_dir))?;
    let mut killed: Option<i32> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(WaitOutcome::Stopped);
        }
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(Ok(mut locks)) => {
                let at = Instant::now();
                for (f, p) in locks.iter_mut().zip(&paths) {
                    write_pid(f, p, &cfg.recorder)?;
                }
                return Ok(WaitOutcome::TookOver { locks, at });
            }
            Ok(Err(message)) => {
                return Err(HaError::Io {
                    op: "flock",
                    path: cfg.run_dir.clone(),
                    source: std::io::Error::other(message),
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(HaError::Io {
                    op: "flock",
                    path: cfg.run_dir.clone(),
                    source: std::io::Error::other("standby thread ended"),
                })
            }
        }
        if cfg.heartbeat_timeout_ns == 0 {
            continue;
        }
        let hb = heartbeat();
        let now = crate::live::wall_ns();
        if hb == 0 || now.saturating_sub(hb) <= cfg.heartbeat_timeout_ns {
            continue;
        }
        let Some(pid) = read_pid(&paths[0]) else {
            continue;
        };
        if killed == Some(pid) || pid == std::process::id() as i32 {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.starts_with("xdprec") {
            continue;
        }
        log::error!(
            "active capture (pid {pid}) is hung: heartbeat {} ms old (limit {} ms); killing it \
             so its queues can be bound",
            now.saturating_sub(hb) / 1_000_000,
            cfg.heartbeat_timeout_ns / 1_000_000
        );
        if let Err(e) = sys::kill9(pid) {
            log::error!("kill -9 {pid}: {e}");
        }
        killed = Some(pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_exclude_and_are_released_on_close() {
        let dir = std::env::temp_dir().join(format!("xdprec-ha-{}", std::process::id()));
        let cfg = CaptureConfig {
            ifaces: vec!["ifx0".into()],
            run_dir: dir.clone(),
            store: dir.join("store"),
            ..Default::default()
        };
        let a = take_active_locks(&cfg).unwrap();
        assert_eq!(
            read_pid(&lock_path(&dir, "ifx0", false)),
            Some(std::process::id() as i32)
        );
        assert!(matches!(
            take_active_locks(&cfg),
            Err(HaError::ActiveHeld { .. })
        ));
        assert!(!standby_waiting(&cfg));
        let s = take_standby_locks(&cfg).unwrap();
        assert!(standby_waiting(&cfg));
        assert!(matches!(
            take_standby_locks(&cfg),
            Err(HaError::StandbyHeld { .. })
        ));
        let stop = AtomicBool::new(false);
        let dropper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(a);
        });
        match wait_for_takeover(&cfg, &stop, || 0).unwrap() {
            WaitOutcome::TookOver { locks, .. } => assert_eq!(locks.len(), 1),
            WaitOutcome::Stopped => panic!("stopped"),
        }
        dropper.join().unwrap();
        drop(s);
        assert!(!standby_waiting(&cfg));
        assert_eq!(standby_recorder("rec-a"), "rec-a.sb");
        // The active lock names the active's recorder: a standby picks the other name.
        let mut c2 = cfg.clone();
        c2.recorder = "rec".into();
        let mut locks = take_active_locks(&c2).unwrap();
        assert_eq!(standby_recorder_for(&c2), "rec.sb");
        write_pid(&mut locks[0], &lock_path(&dir, "ifx0", false), "rec.sb").unwrap();
        assert_eq!(standby_recorder_for(&c2), "rec");
        drop(locks);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
