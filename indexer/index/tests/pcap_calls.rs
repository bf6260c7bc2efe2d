//! Calls from corpus captures read directly from pcap (no store needed).

use xdprec_index::query::{list_calls, Filter};
use xdprec_index::{source::index_pcap, Config, Indexer};

fn index(rel: &str) -> (tempdir::Dir, Indexer) {
    let dir = tempdir::Dir::new(rel);
    let mut ix = Indexer::open(&dir.0.join("index.sqlite"), Config::default()).unwrap();
    index_pcap(
        &mut ix,
        &xdprec_testkit::corpus_dir().expect("corpus").join(rel),
        "r1",
    )
    .unwrap();
    (dir, ix)
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(format!(
                "xdprec-index-{}-{}",
                tag.replace('/', "_"),
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn g711_two_calls() {
    let (_d, ix) = index("sample-captures/sip-rtp-g711.pcap");
    let calls = list_calls(ix.conn(), &Filter::default()).unwrap();
    for c in &calls {
        println!("{}", serde_json::to_string(c).unwrap());
    }
    assert_eq!(calls.len(), 2);
}
