//! The XDP program itself, run by the kernel through BPF_PROG_RUN on the frames of
//! `xdprec_benches::frames::classification_set` (SIP, RTP, VXLAN, OTHER).
//!
//! Two measurements per frame:
//! - `kernel/<frame>`: the kernel's own average time per run for a `repeat` count equal to
//!   criterion's iteration count (one BPF_PROG_RUN with `repeat = iters`): the per-packet cost
//!   of the program, without the syscall.
//! - `syscall/<frame>`: one BPF_PROG_RUN with `repeat = 1` per iteration, timed in user space:
//!   dominated by the syscall and the kernel's test-run setup, an upper bound.
//!
//! Needs root (CAP_BPF): when the program cannot be loaded the group is skipped with a
//! message (a benchmark is not a test).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use xdprec_benches::frames;
use xdprec_classify::ProbeConfig;
use xdprec_probe::{Probe, XDP_PASS};

/// BPF_PROG_RUN's `repeat` is a u32; larger counts are split into several runs.
const REPEAT_CHUNK: u64 = 1 << 24;

fn probe(c: &mut Criterion) {
    let mut probe = match Probe::load(&ProbeConfig::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!();
            eprintln!("**********************************************************************");
            eprintln!("probe_classify SKIPPED: the XDP program could not be loaded: {e}");
            eprintln!("(run as root, or with CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON)");
            eprintln!("**********************************************************************");
            eprintln!();
            return;
        }
    };
    let set = frames::classification_set();
    // Without an AF_XDP socket registered every frame is passed: the verdict path is the
    // same for all classes, the classification work is what differs.
    for (name, frame) in &set {
        match probe.test_run(frame, 0) {
            Ok(XDP_PASS) => {}
            Ok(other) => eprintln!("probe_classify: {name} gave XDP action {other}, not PASS"),
            Err(e) => {
                eprintln!("probe_classify SKIPPED: BPF_PROG_RUN failed on {name}: {e}");
                return;
            }
        }
    }

    let mut g = c.benchmark_group("probe_classify");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in &set {
        g.bench_function(format!("kernel/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters.max(1);
                while left > 0 {
                    let n = left.min(REPEAT_CHUNK);
                    match probe.test_run_timed(frame, n as u32) {
                        Ok((_, avg)) => total += avg * n as u32,
                        Err(e) => panic!("BPF_PROG_RUN failed: {e}"),
                    }
                    left -= n;
                }
                total
            })
        });
    }
    for (name, frame) in &set {
        g.bench_function(format!("syscall/{name}"), |b| {
            b.iter(|| probe.test_run(frame, 0).expect("BPF_PROG_RUN"))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = probe
}
criterion_main!(benches);
