//! Replaying captures: file order, looping with a forward timeline, any link type.

use std::sync::atomic::AtomicBool;
use xdprec_replay::pace::FakeClock;
use xdprec_replay::sender::RecordingSender;
use xdprec_replay::source::FRAME_BYTES_MAX;
use xdprec_replay::{run, FrameSource, Limits, Pace, PcapSender, PcapSource, Synth, SynthConfig};

fn replay(src: &mut dyn FrameSource, pace: Pace) -> (RecordingSender, xdprec_replay::Summary) {
    let mut snd = RecordingSender::default();
    let stop = AtomicBool::new(false);
    let s = run(
        src,
        &mut snd,
        pace,
        Limits::default(),
        &FakeClock::new(),
        &stop,
        &mut |_| {},
    )
    .unwrap();
    (snd, s)
}

fn three_calls() -> Synth {
    let mut c = SynthConfig::new(3);
    c.call_ns = 1_000_000_000;
    c.start_unix_ns = 1_700_000_000_000_000_000;
    Synth::new(c).unwrap()
}

#[test]
fn looped_capture_repeats_in_order_with_a_forward_timeline() {
    let dir = std::env::temp_dir().join(format!("xdprec-replay-src-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("in.pcap");
    let (orig, _) = replay(&mut three_calls(), Pace::TopSpeed);
    let mut w = PcapSender::create(&path).unwrap();
    let stop = AtomicBool::new(false);
    let clock = FakeClock::new();
    run(
        &mut three_calls(),
        &mut w,
        Pace::TopSpeed,
        Limits::default(),
        &clock,
        &stop,
        &mut |_| {},
    )
    .unwrap();
    drop(w);

    let n = orig.frames.len();
    let mut src = PcapSource::open(&path, Some(3)).unwrap();
    let (got, s) = replay(&mut src, Pace::TopSpeed);
    assert_eq!(s.packets as usize, 3 * n);
    for (i, (ts, f)) in got.frames.iter().enumerate() {
        assert_eq!(f, &orig.frames[i % n].1, "frame {i}");
        if i > 0 {
            assert!(*ts >= got.frames[i - 1].0, "timeline goes back at {i}");
        }
    }
    // Pass 2 starts 1 ms after pass 1 ended.
    assert_eq!(got.frames[n].0, got.frames[n - 1].0 + 1_000_000);

    // Following the capture's own gaps, a run lasts as long as the capture.
    let span = orig.frames[n - 1].0 - orig.frames[0].0;
    let mut src = PcapSource::open(&path, Some(1)).unwrap();
    let (_, s) = replay(&mut src, Pace::Timeline);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        s.elapsed_ns >= span && s.elapsed_ns < span + 1_000_000,
        "{} vs {span}",
        s.elapsed_ns
    );
}

#[test]
fn every_corpus_capture_replays_without_error() {
    let Some(dir) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let mut out = vec![0u8; FRAME_BYTES_MAX];
    let (mut files, mut frames) = (0, 0u64);
    for path in xdprec_testkit::corpus_captures(&dir) {
        let Ok(mut src) = PcapSource::open(&path, Some(1)) else {
            continue; // not a pcap/pcapng (rtpproxy .rtp files)
        };
        files += 1;
        let mut n = 0u64;
        loop {
            match src.next_frame(&mut out) {
                Ok(Some(m)) => {
                    assert!(m.len >= 14, "{}: runt frame", path.display());
                    n += 1;
                }
                Ok(None) => break,
                Err(_) => break, // a truncated capture ends the replay
            }
            assert!(n < 10_000_000);
        }
        frames += n;
    }
    assert!(files > 50, "{files} captures opened");
    assert!(frames > 1000, "{frames} frames");
}
