//! Live capture: the probe, one AF_XDP socket and one pinned thread per NIC queue, and a
//! control thread that publishes the stats files once a second.
//!
//! Order of start-up: everything is checked ([`CaptureConfig::plan`]) before anything is
//! created; then per interface the probe is loaded, per queue a socket is bound and its fd put
//! into the probe's XSKMAP slot, the writer opened (recovering a killed predecessor's segment),
//! and only then the probe attached, so no steered frame finds an empty slot.
//!
//! Shutdown (the `stop` flag, set by SIGINT/SIGTERM): the sockets are removed from the
//! XSKMAP first (new frames are passed to the kernel, counted `no_socket` by the probe), then
//! each thread drains its rx ring, seals its segment and exits; the last snapshot is
//! published and the probe detached.
//!
//! Hot standby (`--ha` / `--standby`): see [`crate::ha`]. An `--ha` active loads the probe
//! pinned and writes its heartbeat every 10 ms from the control thread.
//!
//! Data path per thread: `consume` up to `batch_size` descriptors, process each frame in place
//! in the UMEM (classify, append: one copy, into the segment mapping), return the frames to
//! the fill ring in one `produce`, wake the kernel only when it asks (`XDP_USE_NEED_WAKEUP`).
//! An empty ring costs a sleep of `idle_us` (default 100 µs), or with `idle_us = 0` one `poll`
//! with a 100 ms timeout (see [`CaptureConfig::idle_ns`] for why sleeping is the default). All frames of a batch carry the
//! batch's wall-clock time. Once a second the thread reads `XDP_STATISTICS`, ages reassembly,
//! ticks the writer and computes the p99 batch write time.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xdprec_classify::Classifier;
use xdprec_probe::{PinnedProbe, Probe, ProbeError, XdpMode};

use crate::config::{CaptureConfig, ConfigError, HaRole, QueuePlan, XdpModeSel};
use crate::dedup::DedupTable;
use crate::ha::{self, HaError};
use crate::pipeline::{Pipeline, ProbeClassifier, RecordSink};
use crate::stats::{CoreStats, Counters, Field, SchedSample, StatsError, StatsFile, StatsIdentity};
use crate::sys::{XskError, XskQueue, XskUmem};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("probe on {iface}: {source}")]
    Probe { iface: String, source: ProbeError },
    #[error(transparent)]
    Xsk(#[from] XskError),
    #[error("store {path}: {op}: {source}")]
    Store {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("segment writer for {iface} queue {queue}: {message}")]
    Sink {
        iface: String,
        queue: u32,
        message: String,
    },
    #[error("sched_setaffinity to housekeeping cores {cores}: {source}")]
    Affinity {
        cores: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Stats(#[from] StatsError),
    #[error(transparent)]
    Ha(#[from] HaError),
    #[error("capture thread {name}: {message}")]
    Thread { name: String, message: String },
}

/// Wall clock in ns since 1970.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64)
        .unwrap_or(0)
}

/// What a live capture did, summed over threads.
#[derive(Clone, Debug, Default)]
pub struct LiveSummary {
    pub per_queue: Vec<(QueuePlan, Counters)>,
}

impl LiveSummary {
    pub fn total(&self, f: Field) -> u64 {
        self.per_queue.iter().map(|(_, c)| c.get(f)).sum()
    }
}

struct Worker {
    plan: QueuePlan,
    stats: Arc<CoreStats>,
    file: StatsFile,
    handle: Option<JoinHandle<Result<Counters, String>>>,
    /// The procfs sample and the drop total of the previous publication (for the stall log).
    prev_sched: Option<SchedSample>,
    prev_drops: u64,
}

/// A capture thread away from its ring this long within one second is logged, with where the
/// time went. 10 ms is a quarter of the default ring at 1.5 Mpps: worth knowing before it
/// grows into loss.
const STALL_LOG_NS: u64 = 10_000_000;

fn probe_mode(m: XdpModeSel) -> XdpMode {
    match m {
        XdpModeSel::Auto => XdpMode::Auto,
        XdpModeSel::Native => XdpMode::Native,
        XdpModeSel::Skb => XdpMode::Skb,
    }
}

/// The probe of one interface: loaded by this process, or pinned by a predecessor that
/// this standby took over from. One per interface, never moved on the data path: the size
/// difference does not matter.
#[allow(clippy::large_enum_variant)]
enum ProbeHandle {
    Own(Probe),
    Pinned(PinnedProbe),
}

impl ProbeHandle {
    fn register_socket(&mut self, queue: u32, fd: i32) -> Result<(), ProbeError> {
        match self {
            ProbeHandle::Own(p) => p.register_socket(queue, fd),
            ProbeHandle::Pinned(p) => p.register_socket(queue, fd),
        }
    }
    fn unregister_socket(&mut self, queue: u32) -> Result<(), ProbeError> {
        match self {
            ProbeHandle::Own(p) => p.unregister_socket(queue),
            ProbeHandle::Pinned(p) => p.unregister_socket(queue),
        }
    }
    fn counters(&self) -> Result<xdprec_probe::Counters, ProbeError> {
        match self {
            ProbeHandle::Own(p) => p.counters(),
            ProbeHandle::Pinned(p) => p.counters(),
        }
    }
    fn set_heartbeat(&mut self, ns: u64) -> Result<(), ProbeError> {
        match self {
            ProbeHandle::Own(p) => p.set_heartbeat(ns),
            ProbeHandle::Pinned(p) => p.set_heartbeat(ns),
        }
    }
    /// Leave the pinned probe attached (`keep`) or remove it when dropped.
    fn keep_pins(&mut self, keep: bool) {
        match self {
            ProbeHandle::Own(p) => {
                if keep {
                    p.keep_pins()
                }
            }
            ProbeHandle::Pinned(p) => p.set_remove_on_drop(!keep),
        }
    }
}

fn probe_err(iface: &str) -> impl FnOnce(ProbeError) -> CaptureError + '_ {
    move |source| CaptureError::Probe {
        iface: iface.to_string(),
        source,
    }
}

/// Loads the probe of `iface`; pinned (after clearing a crashed run's pins) for `--ha`.
fn load_probe(
    cfg: &CaptureConfig,
    iface: &str,
    probe_cfg: &xdprec_classify::ProbeConfig,
) -> Result<Probe, CaptureError> {
    if cfg.ha == HaRole::Off {
        return Probe::load(probe_cfg).map_err(probe_err(iface));
    }
    xdprec_probe::ensure_bpffs(&cfg.bpffs).map_err(probe_err(iface))?;
    let dir = xdprec_probe::pin_dir(&cfg.bpffs, iface).map_err(probe_err(iface))?;
    if dir.exists() {
        // We hold the active lock: nobody else captures on this interface.
        let had_link = xdprec_probe::remove_pins(&dir).map_err(probe_err(iface))?;
        log::warn!(
            "{iface}: removed stale probe pins of a crashed capture in {}{}",
            dir.display(),
            if had_link {
                " (its program was still attached: detached)"
            } else {
                ""
            }
        );
    }
    std::fs::create_dir_all(&dir).map_err(|source| CaptureError::Store {
        path: dir.clone(),
        op: "mkdir (pin directory)",
        source,
    })?;
    Probe::load_pinned(probe_cfg, &dir).map_err(probe_err(iface))
}

/// Opens the socket of a queue; after a takeover, retries while the dead predecessor's
/// socket still holds the queue (EBUSY), up to `busy_wait`.
fn open_xsk(
    cfg: &CaptureConfig,
    qp: &QueuePlan,
    busy_wait: Duration,
) -> Result<XskQueue, CaptureError> {
    let started = Instant::now();
    let deadline = started + busy_wait;
    let mut busy = 0u32;
    loop {
        let t = Instant::now();
        match XskQueue::open(&qp.iface, qp.queue, cfg.ring_size, cfg.frame_size) {
            Err(XskError::Busy { .. }) if Instant::now() < deadline => {
                busy += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            r => {
                if !busy_wait.is_zero() {
                    log::info!(
                        "{} q{}: socket bound after {:.1} ms ({busy} EBUSY retries; last open {:.1} ms)",
                        qp.iface,
                        qp.queue,
                        started.elapsed().as_secs_f64() * 1e3,
                        t.elapsed().as_secs_f64() * 1e3
                    );
                }
                return Ok(r?);
            }
        }
    }
}

/// MTU of an interface (of this network namespace), from sysfs. `iface` is a validated
/// interface name (no '/', no leading '.').
fn read_mtu(iface: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `cfg` with its automatic UMEM sizes settled from the interfaces' MTU; logs the sizes, and
/// warns when frames of some interface do not fit (the socket would drop them, counted
/// `xsk_rx_dropped`).
fn settle_umem(cfg: &CaptureConfig) -> CaptureConfig {
    let mtus: Vec<(String, Option<u32>)> = cfg
        .ifaces
        .iter()
        .map(|i| (i.clone(), read_mtu(i)))
        .collect();
    let mtu_max = mtus
        .iter()
        .map(|m| m.1)
        .collect::<Option<Vec<u32>>>()
        .and_then(|v| v.into_iter().max());
    let c = cfg.with_umem_settled(mtu_max);
    log::info!(
        "UMEM per queue: {} frames of {} bytes ({} MiB){}",
        c.ring_size,
        c.frame_size,
        (u64::from(c.ring_size) * u64::from(c.frame_size)) >> 20,
        if cfg.frame_size == 0 {
            match mtu_max {
                Some(m) => format!("; frame size from the largest MTU, {m}"),
                None => "; MTU unknown: 4 KiB frames".to_string(),
            }
        } else {
            String::new()
        }
    );
    for (iface, mtu) in &mtus {
        if let Some(m) = mtu {
            if !crate::config::frame_fits(*m, c.frame_size) {
                log::warn!(
                    "{iface}: MTU {m} does not fit frames of {} bytes: longer frames are \
                     dropped by the socket (xsk_rx_dropped); use --frame-size 4096",
                    c.frame_size
                );
            }
        }
    }
    c
}

/// Runs a live capture until `stop` is set. `make_sink` opens the writer of one queue.
///
/// With `cfg.ha` = [`HaRole::Standby`] it first waits for the active capture to go away
/// (returning an empty summary if `stop` comes first), then takes its queues over
/// ([`crate::ha`]).
pub fn run_live<S, F>(
    cfg: &CaptureConfig,
    stop: &AtomicBool,
    mut make_sink: F,
) -> Result<LiveSummary, CaptureError>
where
    S: RecordSink + Send + 'static,
    F: FnMut(&QueuePlan) -> Result<S, String>,
{
    let settled = settle_umem(cfg);
    let cfg = &settled;
    let plan = cfg.plan()?;
    if let Some(cores) = &cfg.housekeeping_cores {
        // Before any thread is made: the control thread and every writer's sealer and spare
        // threads inherit this; capture threads pin themselves to their own core.
        crate::sys::pin_current_thread(cores).map_err(|source| CaptureError::Affinity {
            cores: format!("{cores:?}"),
            source,
        })?;
        log::info!("housekeeping threads on core(s) {cores:?}");
    }
    std::fs::create_dir_all(&cfg.store).map_err(|source| CaptureError::Store {
        path: cfg.store.clone(),
        op: "mkdir",
        source,
    })?;
    let probe_cfg = cfg.probe_config();
    let dedup = cfg.dedup_table();
    if let Some(t) = &dedup {
        log::info!(
            "deduplication: {} ms window, {} entries ({} MiB)",
            t.window_ns() / 1_000_000,
            t.entries(),
            t.bytes() >> 20
        );
    }
    // Held until the very end: released when this process is gone or done.
    let mut active_locks = Vec::new();
    let mut pre_sinks: Vec<Option<S>> = Vec::new();
    let mut pre_umems: Vec<Option<XskUmem>> = Vec::new();
    let mut probes: Vec<(String, ProbeHandle)> = Vec::new();
    let mut took_over_at = None;
    match cfg.ha {
        HaRole::Off => {}
        HaRole::Active => active_locks = ha::take_active_locks(cfg)?,
        HaRole::Standby => {
            let standby_locks = ha::take_standby_locks(cfg)?;
            for qp in &plan {
                pre_sinks.push(Some(make_sink(qp).map_err(|message| {
                    CaptureError::Sink {
                        iface: qp.iface.clone(),
                        queue: qp.queue,
                        message,
                    }
                })?));
                pre_umems.push(Some(XskUmem::new(
                    &qp.iface,
                    qp.queue,
                    cfg.ring_size,
                    cfg.frame_size,
                )?));
            }
            xdprec_probe::ensure_bpffs(&cfg.bpffs).map_err(probe_err(&cfg.ifaces[0]))?;
            let mut dirs = Vec::new();
            for iface in &cfg.ifaces {
                dirs.push(xdprec_probe::pin_dir(&cfg.bpffs, iface).map_err(probe_err(iface))?);
            }
            let watch_dir = dirs[0].clone();
            // Opened while waiting (retried until the active has pinned them), so the
            // takeover does not pay for it.
            let mut pinned: Vec<Option<PinnedProbe>> = cfg.ifaces.iter().map(|_| None).collect();
            let mut next_open = Instant::now();
            log::info!(
                "standby: waiting for the active capture on {} to stop (locks in {}, probe pins in {})",
                cfg.ifaces.join(","),
                cfg.run_dir.display(),
                watch_dir.display()
            );
            let outcome = ha::wait_for_takeover(cfg, stop, || {
                if pinned.iter().any(Option::is_none) && Instant::now() >= next_open {
                    next_open = Instant::now() + Duration::from_millis(500);
                    for (p, d) in pinned.iter_mut().zip(&dirs) {
                        if p.is_none() {
                            *p = PinnedProbe::open(d).ok();
                        }
                    }
                }
                pinned[0]
                    .as_ref()
                    .and_then(|w| w.heartbeat().ok())
                    .unwrap_or(0)
            })?;
            match outcome {
                ha::WaitOutcome::Stopped => {
                    log::info!("standby stopped before any takeover");
                    for s in pre_sinks.iter_mut().filter_map(Option::take) {
                        drop(s);
                    }
                    return Ok(LiveSummary::default());
                }
                ha::WaitOutcome::TookOver { locks, at } => {
                    active_locks = locks;
                    took_over_at = Some(at);
                    log::warn!("standby: the active capture is gone; taking over");
                }
            }
            for ((iface, dir), pre) in cfg.ifaces.iter().zip(&dirs).zip(pinned) {
                if xdprec_probe::pinned_link_exists(dir) {
                    let p = match pre {
                        Some(p) => p,
                        None => PinnedProbe::open(dir).map_err(probe_err(iface))?,
                    };
                    probes.push((iface.clone(), ProbeHandle::Pinned(p)));
                } else {
                    log::warn!(
                        "{iface}: no pinned probe in {}: loading and attaching a new one",
                        dir.display()
                    );
                }
            }
            // A later standby may wait behind us from now on.
            drop(standby_locks);
        }
    }
    for iface in &cfg.ifaces {
        if probes.iter().any(|(i, _)| i == iface) {
            continue;
        }
        let p = load_probe(cfg, iface, &probe_cfg)?;
        probes.push((iface.clone(), ProbeHandle::Own(p)));
    }
    let drain = Arc::new(AtomicBool::new(false));
    let busy_wait = if took_over_at.is_some() {
        Duration::from_secs(5)
    } else {
        Duration::ZERO
    };
    if let Some(at) = took_over_at {
        log::info!(
            "takeover: probes opened {:.1} ms after the lock",
            at.elapsed().as_secs_f64() * 1e3
        );
    }
    let mut workers: Vec<Worker> = Vec::new();
    let mut start_err = None;
    for (i, qp) in plan.iter().enumerate() {
        let pre = pre_sinks.get_mut(i).and_then(Option::take);
        let xsk = match pre_umems.get_mut(i).and_then(Option::take) {
            Some(u) => {
                let t = Instant::now();
                let r = XskQueue::bind_retry(u, &qp.iface, qp.queue, busy_wait);
                log::info!(
                    "{} q{}: socket bound in {:.1} ms (prepared UMEM)",
                    qp.iface,
                    qp.queue,
                    t.elapsed().as_secs_f64() * 1e3
                );
                r.map_err(CaptureError::from)
            }
            None => open_xsk(cfg, qp, busy_wait),
        };
        let r = xsk.and_then(|xsk| {
            let sink = match pre {
                Some(s) => s,
                None => make_sink(qp).map_err(|message| CaptureError::Sink {
                    iface: qp.iface.clone(),
                    queue: qp.queue,
                    message,
                })?,
            };
            start_worker(cfg, qp, xsk, sink, &probe_cfg, &mut probes, &drain, &dedup)
        });
        match r {
            Ok(w) => workers.push(w),
            Err(e) => {
                start_err = Some(e);
                break;
            }
        }
    }
    if let (Some(at), None) = (took_over_at, &start_err) {
        let ms = at.elapsed().as_secs_f64() * 1e3;
        log::warn!(
            "standby took over {} queue(s) on {} in {ms:.1} ms (lock released -> last socket in the XSKMAP)",
            workers.len(),
            cfg.ifaces.join(",")
        );
    }
    if start_err.is_none() {
        for (iface, p) in probes.iter_mut() {
            let ProbeHandle::Own(p) = p else { continue };
            match p.attach(iface, probe_mode(cfg.xdp_mode)) {
                Ok(m) => log::info!("capturing on {iface} ({m} mode)"),
                Err(source) => {
                    start_err = Some(CaptureError::Probe {
                        iface: iface.clone(),
                        source,
                    });
                    break;
                }
            }
        }
    }
    let pinned_mode = cfg.ha != HaRole::Off;
    let mut run_err = start_err;
    if run_err.is_none() {
        log::info!(
            "{} capture thread(s) running; store {}; stop with SIGINT or SIGTERM",
            workers.len(),
            cfg.store.display()
        );
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if pinned_mode {
                let now = wall_ns();
                for (iface, p) in probes.iter_mut() {
                    if let Err(e) = p.set_heartbeat(now) {
                        log::warn!("heartbeat of {iface}: {e}");
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
            if Instant::now() >= next {
                next += Duration::from_secs(1);
                publish_all(&mut workers, &probes);
            }
            if let Some(w) = workers
                .iter()
                .find(|w| w.handle.as_ref().is_some_and(|h| h.is_finished()))
            {
                run_err = Some(CaptureError::Thread {
                    name: thread_name(&w.plan),
                    message: "exited early".into(),
                });
                break;
            }
        }
        log::info!("stopping: draining rings and sealing segments");
    }
    if pinned_mode {
        let keep = ha::standby_waiting(cfg);
        if keep {
            log::info!("a standby is waiting: leaving the probe attached for it");
        }
        for (_, p) in probes.iter_mut() {
            p.keep_pins(keep);
        }
    }
    // Shutdown: no new frames to the sockets, then drain, seal, join.
    for (iface, p) in probes.iter_mut() {
        for w in workers.iter().filter(|w| &w.plan.iface == iface) {
            if let Err(e) = p.unregister_socket(w.plan.queue) {
                log::warn!("{iface} queue {}: {e}", w.plan.queue);
            }
        }
    }
    drain.store(true, Ordering::Relaxed);
    let mut summary = LiveSummary::default();
    for w in workers.iter_mut() {
        let Some(h) = w.handle.take() else { continue };
        match h.join() {
            Ok(Ok(c)) => summary.per_queue.push((w.plan.clone(), c)),
            Ok(Err(message)) => {
                log::error!("{}: {message}", thread_name(&w.plan));
                run_err.get_or_insert(CaptureError::Thread {
                    name: thread_name(&w.plan),
                    message,
                });
            }
            Err(_) => {
                run_err.get_or_insert(CaptureError::Thread {
                    name: thread_name(&w.plan),
                    message: "panicked".into(),
                });
            }
        }
    }
    publish_all(&mut workers, &probes);
    for w in &workers {
        w.file.flush();
    }
    drop(probes);
    drop(active_locks);
    match run_err {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

fn thread_name(p: &QueuePlan) -> String {
    format!("{} q{}", p.iface, p.queue)
}

fn publish_all(workers: &mut [Worker], probes: &[(String, ProbeHandle)]) {
    let now = wall_ns();
    for (iface, p) in probes {
        let counters = p.counters().unwrap_or_else(|e| {
            log::warn!("probe counters of {iface}: {e}");
            [0; xdprec_classify::abi::COUNTER_MAX as usize]
        });
        for w in workers.iter_mut().filter(|w| &w.plan.iface == iface) {
            let mut v = w.stats.snapshot();
            v[Field::UpdateNs as usize] = now;
            if let Some(tid) = w.stats.tid() {
                let s = SchedSample::read(tid, w.plan.core.map(|c| c as u32));
                s.store(&mut v);
                log_stall(w, &v, &s);
                w.prev_sched = Some(s);
            }
            w.file.write(&v, &counters);
        }
    }
}

/// One line when the capture thread was away from its ring for [`STALL_LOG_NS`] or more in
/// the last second: how long, frames lost meanwhile, and the share of other tasks on its core
/// (run delay), of the hypervisor (steal) and of preemptions, so an operator can tell a busy
/// core from a busy host.
fn log_stall(w: &mut Worker, v: &[u64; crate::stats::FIELD_COUNT], s: &SchedSample) {
    let drops = v[Field::XskRingFull as usize] + v[Field::XskFillEmpty as usize];
    let lost = drops.saturating_sub(w.prev_drops);
    w.prev_drops = drops;
    let gap_ns = v[Field::MaxLoopGapNs as usize];
    // The first sample has nothing to be compared with (its totals run since boot).
    let Some(p) = w.prev_sched.as_ref().filter(|_| gap_ns >= STALL_LOG_NS) else {
        return;
    };
    log::warn!(
        "{}: capture thread away from its ring for {} ms; in the last second: {} frame(s) \
         dropped by the socket, waited {} ms for its core, hypervisor steal {} ms, {} preemption(s)",
        thread_name(&w.plan),
        gap_ns / 1_000_000,
        lost,
        s.run_delay_ns.saturating_sub(p.run_delay_ns) / 1_000_000,
        s.steal_ns.saturating_sub(p.steal_ns) / 1_000_000,
        s.involuntary_switches
            .saturating_sub(p.involuntary_switches),
    );
}

#[allow(clippy::too_many_arguments)]
fn start_worker<S>(
    cfg: &CaptureConfig,
    qp: &QueuePlan,
    mut xsk: XskQueue,
    sink: S,
    probe_cfg: &xdprec_classify::ProbeConfig,
    probes: &mut [(String, ProbeHandle)],
    drain: &Arc<AtomicBool>,
    dedup: &Option<Arc<DedupTable>>,
) -> Result<Worker, CaptureError>
where
    S: RecordSink + Send + 'static,
{
    let probe = probes
        .iter_mut()
        .find(|(i, _)| i == &qp.iface)
        .map(|(_, p)| p)
        .ok_or_else(|| CaptureError::Thread {
            name: thread_name(qp),
            message: "no probe for this interface".into(),
        })?;
    probe
        .register_socket(qp.queue, xsk.raw_fd())
        .map_err(|source| CaptureError::Probe {
            iface: qp.iface.clone(),
            source,
        })?;
    let id = StatsIdentity {
        recorder: cfg.recorder.clone(),
        iface: qp.iface.clone(),
        queue: qp.queue,
        core: qp.core.map(|c| c as u32),
    };
    let file = StatsFile::create(&cfg.store, &id)?;
    let stats = Arc::new(CoreStats::default());
    let thread_stats = Arc::clone(&stats);
    let drain = Arc::clone(drain);
    let dedup = dedup.clone();
    let classifier = ProbeClassifier::new(Classifier::new(*probe_cfg));
    let limits = cfg.reasm;
    let batch = cfg.batch_size;
    let idle = Duration::from_nanos(cfg.idle_ns);
    let rt_priority = cfg.rt_priority;
    let name = thread_name(qp);
    let core = qp.core;
    let ring = u64::from(xsk.ring_size());
    let handle = std::thread::Builder::new()
        .name(format!("xdprec-{}-q{}", qp.iface, qp.queue))
        .spawn(move || {
            thread_stats.set_tid_of_current_thread();
            if let Some(c) = core {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                    log::warn!("{name}: could not pin to core {c}");
                }
            }
            if rt_priority > 0 {
                match crate::sys::set_fifo(rt_priority) {
                    Ok(()) => log::info!("{name}: SCHED_FIFO priority {rt_priority}"),
                    Err(e) => log::warn!(
                        "{name}: SCHED_FIFO priority {rt_priority}: {e} (needs CAP_SYS_NICE); \
                         running with normal scheduling"
                    ),
                }
            }
            let mut pipe = Pipeline::new(classifier, sink, limits, name.clone()).with_dedup(dedup);
            pipe.set_counter(Field::RingSize, ring);
            let r = capture_loop(&mut xsk, &mut pipe, &thread_stats, &drain, batch, idle);
            let sealed = pipe.finish();
            read_xsk_stats(&xsk, &mut pipe);
            pipe.publish(&thread_stats);
            r?;
            if let Err(e) = sealed {
                // Not fatal: the open segment stays readable and the next start recovers it.
                log::error!("{name}: sealing at shutdown failed: {e}");
            }
            let (c, _) = pipe.into_parts();
            Ok(c)
        })
        .map_err(|e| CaptureError::Thread {
            name: thread_name(qp),
            message: format!("spawn: {e}"),
        })?;
    Ok(Worker {
        plan: qp.clone(),
        stats,
        file,
        handle: Some(handle),
        prev_sched: None,
        prev_drops: 0,
    })
}

fn read_xsk_stats<C, S>(xsk: &XskQueue, pipe: &mut Pipeline<C, S>)
where
    C: crate::pipeline::FrameClassifier,
    S: RecordSink,
{
    if let Ok([dropped, invalid, ring_full, fill_empty]) = xsk.statistics() {
        pipe.set_counter(Field::XskRxDropped, dropped);
        pipe.set_counter(Field::XskInvalidDescs, invalid);
        pipe.set_counter(Field::XskRingFull, ring_full);
        pipe.set_counter(Field::XskFillEmpty, fill_empty);
    }
}

fn capture_loop<C, S>(
    xsk: &mut XskQueue,
    pipe: &mut Pipeline<C, S>,
    stats: &CoreStats,
    drain: &AtomicBool,
    batch: usize,
    idle: Duration,
) -> Result<(), String>
where
    C: crate::pipeline::FrameClassifier,
    S: RecordSink,
{
    // After the drain flag, at most this many more frames are taken (the socket is already out
    // of the XSKMAP, so only what is in the ring remains).
    let mut drain_budget = u64::from(xsk.ring_size()) * 2;
    let mut last_look = Instant::now();
    loop {
        let draining = drain.load(Ordering::Relaxed);
        let waiting = xsk.rx_waiting();
        pipe.note_ring_fill(u64::from(waiting));
        let started = Instant::now();
        pipe.note_loop_gap(started.saturating_duration_since(last_look));
        last_look = started;
        let now = wall_ns();
        let n = xsk
            .recv_batch(batch, |frames| pipe.process_chunk(frames, now, now))
            .map_err(|e| format!("rx ring: {e}"))?;
        if n > 0 {
            pipe.note_batch(started);
            if draining {
                drain_budget = drain_budget.saturating_sub(n as u64);
                if drain_budget == 0 {
                    return Ok(());
                }
            }
        } else {
            if draining {
                return Ok(());
            }
            if xsk.wakeup_if_needed() {
                pipe.counters.add(Field::FillWakeups, 1);
            }
            pipe.counters.add(Field::Polls, 1);
            if idle.is_zero() {
                xsk.poll(100).map_err(|e| format!("poll: {e}"))?;
                // Waiting for frames is not a stall: count from the wake-up.
                last_look = Instant::now();
            } else {
                std::thread::sleep(idle);
            }
        }
        if pipe.housekeeping(now, now) {
            read_xsk_stats(xsk, pipe);
        }
        pipe.publish(stats);
    }
}

/// A flag set by SIGINT or SIGTERM (the signal handler only stores to it).
pub fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    Ok(stop)
}
