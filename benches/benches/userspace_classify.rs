//! The user-space classifier (`xdprec_classify::Classifier::classify`, what `xdprec capture
//! --pcap` runs per frame) on the same frames as `probe_classify` (their classes are checked by the
//! unit tests of `xdprec_benches::frames`). Throughput: frames.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use xdprec_benches::frames;
use xdprec_classify::{Classifier, ProbeConfig};

fn classify(c: &mut Criterion) {
    let mut classifier = Classifier::new(ProbeConfig::default());
    let mut g = c.benchmark_group("userspace_classify");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in frames::classification_set() {
        g.bench_function(name, |b| {
            b.iter(|| classifier.classify(black_box(&frame)).class)
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
    targets = classify
}
criterion_main!(benches);
