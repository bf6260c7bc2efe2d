use std::sync::atomic::AtomicBool;
use xdprec_replay::*;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let iface = &a[1];
    let mut sender: Box<dyn Sender> = if a[2] == "live" {
        Box::new(LiveSender::open(iface, xdprec_probe::REPLAY_TX_OBJECT).unwrap())
    } else {
        Box::new(PacketSender::open(iface).unwrap())
    };
    let n: u64 = a[3].parse().unwrap();
    let mut cfg = SynthConfig::new(2000);
    cfg.cps = Some(100_000.0);
    cfg.generations = None;
    let mut src = Synth::new(cfg).unwrap();
    let stop = AtomicBool::new(false);
    let s = run(
        &mut src,
        sender.as_mut(),
        Pace::TopSpeed,
        Limits {
            duration_ns: Some(10_000_000_000),
            frames_max: Some(n),
        },
        &MonotonicClock::new(),
        &stop,
        &mut |p| eprintln!("{:.0} pps", p.interval_pps()),
    )
    .unwrap();
    eprintln!("{s:?} pps {:.0}", s.pps());
}
