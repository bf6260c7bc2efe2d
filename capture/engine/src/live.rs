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
//! Data path per thread: `consume` up to `batch_size` descriptors, process each frame in place
//! in the UMEM (classify, append: one copy, into the segment mapping), return the frames to
//! the fill ring in one `produce`, wake the kernel only when it asks (`XDP_USE_NEED_WAKEUP`).
//! An empty ring costs one `poll` with a 100 ms timeout. All frames of a batch carry the
//! batch's wall-clock time. Once a second the thread reads `XDP_STATISTICS`, ages reassembly,
//! ticks the writer and computes the p99 batch write time.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xdprec_classify::Classifier;
use xdprec_probe::{Probe, ProbeError, XdpMode};

use crate::config::{CaptureConfig, ConfigError, QueuePlan, XdpModeSel};
use crate::pipeline::{Pipeline, ProbeClassifier, RecordSink};
use crate::stats::{CoreStats, Counters, Field, StatsError, StatsFile, StatsIdentity};
use crate::sys::{XskError, XskQueue};

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
    #[error(transparent)]
    Stats(#[from] StatsError),
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
}

fn probe_mode(m: XdpModeSel) -> XdpMode {
    match m {
        XdpModeSel::Auto => XdpMode::Auto,
        XdpModeSel::Native => XdpMode::Native,
        XdpModeSel::Skb => XdpMode::Skb,
    }
}

/// Runs a live capture until `stop` is set. `make_sink` opens the writer of one queue.
pub fn run_live<S, F>(
    cfg: &CaptureConfig,
    stop: &AtomicBool,
    mut make_sink: F,
) -> Result<LiveSummary, CaptureError>
where
    S: RecordSink + Send + 'static,
    F: FnMut(&QueuePlan) -> Result<S, String>,
{
    let plan = cfg.plan()?;
    std::fs::create_dir_all(&cfg.store).map_err(|source| CaptureError::Store {
        path: cfg.store.clone(),
        op: "mkdir",
        source,
    })?;
    let probe_cfg = cfg.probe_config();
    let mut probes: Vec<(String, Probe)> = Vec::new();
    for iface in &cfg.ifaces {
        let p = Probe::load(&probe_cfg).map_err(|source| CaptureError::Probe {
            iface: iface.clone(),
            source,
        })?;
        probes.push((iface.clone(), p));
    }
    let drain = Arc::new(AtomicBool::new(false));
    let mut workers: Vec<Worker> = Vec::new();
    let mut start_err = None;
    for qp in &plan {
        match start_worker(cfg, qp, &probe_cfg, &mut probes, &mut make_sink, &drain) {
            Ok(w) => workers.push(w),
            Err(e) => {
                start_err = Some(e);
                break;
            }
        }
    }
    if start_err.is_none() {
        for (iface, p) in probes.iter_mut() {
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
    let mut run_err = start_err;
    if run_err.is_none() {
        log::info!(
            "{} capture thread(s) running; store {}; stop with SIGINT or SIGTERM",
            workers.len(),
            cfg.store.display()
        );
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
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
    match run_err {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

fn thread_name(p: &QueuePlan) -> String {
    format!("{} q{}", p.iface, p.queue)
}

fn publish_all(workers: &mut [Worker], probes: &[(String, Probe)]) {
    let now = wall_ns();
    for (iface, p) in probes {
        let counters = p.counters().unwrap_or_else(|e| {
            log::warn!("probe counters of {iface}: {e}");
            [0; xdprec_classify::abi::COUNTER_MAX as usize]
        });
        for w in workers.iter_mut().filter(|w| &w.plan.iface == iface) {
            let mut v = w.stats.snapshot();
            v[Field::UpdateNs as usize] = now;
            w.file.write(&v, &counters);
        }
    }
}

fn start_worker<S, F>(
    cfg: &CaptureConfig,
    qp: &QueuePlan,
    probe_cfg: &xdprec_classify::ProbeConfig,
    probes: &mut [(String, Probe)],
    make_sink: &mut F,
    drain: &Arc<AtomicBool>,
) -> Result<Worker, CaptureError>
where
    S: RecordSink + Send + 'static,
    F: FnMut(&QueuePlan) -> Result<S, String>,
{
    let mut xsk = XskQueue::open(&qp.iface, qp.queue, cfg.ring_size, cfg.frame_size)?;
    let sink = make_sink(qp).map_err(|message| CaptureError::Sink {
        iface: qp.iface.clone(),
        queue: qp.queue,
        message,
    })?;
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
    let classifier = ProbeClassifier::new(Classifier::new(*probe_cfg));
    let limits = cfg.reasm;
    let batch = cfg.batch_size;
    let name = thread_name(qp);
    let core = qp.core;
    let ring = u64::from(xsk.ring_size());
    let handle = std::thread::Builder::new()
        .name(format!("xdprec-{}-q{}", qp.iface, qp.queue))
        .spawn(move || {
            if let Some(c) = core {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
                    log::warn!("{name}: could not pin to core {c}");
                }
            }
            let mut pipe = Pipeline::new(classifier, sink, limits, name.clone());
            pipe.set_counter(Field::RingSize, ring);
            let r = capture_loop(&mut xsk, &mut pipe, &thread_stats, &drain, batch);
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
) -> Result<(), String>
where
    C: crate::pipeline::FrameClassifier,
    S: RecordSink,
{
    // After the drain flag, at most this many more frames are taken (the socket is already out
    // of the XSKMAP, so only what is in the ring remains).
    let mut drain_budget = u64::from(xsk.ring_size()) * 2;
    loop {
        let draining = drain.load(Ordering::Relaxed);
        let waiting = xsk.rx_waiting();
        pipe.note_ring_fill(u64::from(waiting));
        let started = Instant::now();
        let now = wall_ns();
        let n = xsk
            .recv_batch(batch, |frame| {
                pipe.process(frame, frame.len() as u32, now, now);
            })
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
            xsk.poll(100).map_err(|e| format!("poll: {e}"))?;
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
