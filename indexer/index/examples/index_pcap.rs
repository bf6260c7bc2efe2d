//! Indexes pcap files into an index database: `cargo run --example index_pcap DB FILE...`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(db) = args.get(1) else {
        eprintln!("usage: index_pcap DB FILE...");
        std::process::exit(2);
    };
    let mut ix = xdprec_index::Indexer::open(db.as_ref(), Default::default()).expect("open index");
    for f in &args[2..] {
        match xdprec_index::source::index_pcap(&mut ix, f.as_ref(), "pcap") {
            Ok(n) => println!("{f}: {n} frames; counters {:?}", ix.session_counters()),
            Err(e) => eprintln!("{f}: {e}"),
        }
    }
}
