//! `xdprec capture --pcap` → `xdprec index` → `xdprec calls --json`: the contract fields.

mod common;

use std::path::Path;
use std::process::Command;

use common::{import, store_calls as calls, tmpdir, xdprec, Tmp, BIN};

#[test]
fn calls_json_from_a_captured_store() {
    let Some(corpus) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let t = Tmp(tmpdir("calls"));
    let store = t.0.join("store");
    let pcap = corpus.join("sample-captures/sip-rtp-g711.pcap");
    let s = store.to_str().unwrap();
    import(&pcap, &store, "rec1");
    xdprec(&["index", "--store", s]);
    assert!(store.join("index.sqlite").is_file());

    let all = calls(&store, &[]);
    assert_eq!(all.len(), 2, "{all:?}");
    let c = &all[0];
    assert_eq!(c["call_id"], "1-1966@10.0.2.20");
    assert_eq!(c["from"], "sip:sipp@10.0.2.20:5060");
    assert_eq!(c["to"], "sip:test@10.0.2.15:5060");
    assert_eq!(c["start"], "2016-11-26T14:52:59.666393000Z");
    assert_eq!(c["answer"], "2016-11-26T14:52:59.670743000Z");
    assert_eq!(c["end"], "2016-11-26T14:53:08.170086000Z");
    assert_eq!(c["state"], "answered");
    assert_eq!(c["recorder"], "rec1");
    assert_eq!(c["role"], "primary");
    assert_eq!(c["sip_messages"], 6);
    let st = c["streams"].as_array().unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0]["src"], "10.0.2.15:27942");
    assert_eq!(st[0]["dst"], "10.0.2.20:6000");
    assert_eq!(st[0]["ssrc"], 0x343D_A99Bu32);
    assert_eq!(st[0]["payload_type"], 0);
    assert_eq!(st[0]["codec"], "PCMU");
    assert_eq!(st[0]["packets"], 425);
    assert_eq!(st[0]["lost"], 0);
    assert!(st[0]["jitter_ms"].as_f64().unwrap() < 1.0);
    // The second call has no BYE in the capture: end unknown.
    assert_eq!(all[1]["call_id"], "1-1968@10.0.2.20");
    assert!(all[1]["end"].is_null());
    assert_eq!(all[1]["streams"][0]["codec"], "PCMA");
    assert_eq!(all[1]["streams"][0]["packets"], 414);

    // Filters.
    assert_eq!(calls(&store, &["--number", "test"]).len(), 2);
    assert_eq!(calls(&store, &["--number", "nobody"]).len(), 0);
    assert_eq!(calls(&store, &["--call-id", "1-1968@10.0.2.20"]).len(), 1);
    assert_eq!(calls(&store, &["--since", "2016-11-26T14:53:00Z"]).len(), 1);
    assert_eq!(calls(&store, &["--until", "1480171980"]).len(), 1);

    // Indexing again changes nothing; the table for people lists both calls.
    xdprec(&["index", "--store", s]);
    assert_eq!(calls(&store, &[]), all);
    let (table, _) = xdprec(&["calls", "--store", s]);
    assert!(
        table.contains("1-1966@10.0.2.20") && table.contains("2 calls"),
        "{table}"
    );
}

/// An INVITE too big for one IP packet arrives as three IPv4 fragments: the capture engine
/// reassembles it into a synthetic record, the indexer reads the call and its SDP from that.
#[test]
fn fragmented_invite_from_a_store() {
    use etherparse::{IpFragOffset, IpNumber, Ipv4Header, PacketBuilder};
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use std::time::Duration;
    let t = Tmp(tmpdir("frag"));
    let (a, b) = ([198, 51, 100, 1], [198, 51, 100, 2]);
    let sdp = "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 8\r\n";
    let pad = "x".repeat(3000);
    let msg = |start: &str, tag: &str, body: &str| {
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bK1\r\nFrom: <sip:1001@example.com>;tag=f\r\n\
             To: <sip:2002@example.com>{tag}\r\nCall-ID: frag@198.51.100.1\r\nCSeq: 1 INVITE\r\nX-Pad: {pad}\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let udp = |src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, payload: &[u8]| {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64)
            .udp(sp, dp)
            .write(&mut out, payload)
            .unwrap();
        out
    };
    let mut frames: Vec<Vec<u8>> = Vec::new();
    // The INVITE, cut into fragments of 1480 bytes of IP payload.
    let whole = udp(
        a,
        b,
        5060,
        5060,
        msg("INVITE sip:2002@example.com SIP/2.0", "", sdp).as_bytes(),
    );
    let ip_payload = &whole[34..];
    for (i, chunk) in ip_payload.chunks(1480).enumerate() {
        let mut h = Ipv4Header::new(chunk.len() as u16, 64, IpNumber::UDP, a, b).unwrap();
        h.identification = 77;
        h.more_fragments = (i + 1) * 1480 < ip_payload.len();
        h.fragment_offset = IpFragOffset::try_new((i * 1480 / 8) as u16).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut f = whole[..14].to_vec();
        h.write(&mut f).unwrap();
        f.extend_from_slice(chunk);
        frames.push(f);
    }
    assert_eq!(frames.len(), 3);
    let ok = msg(
        "SIP/2.0 200 OK",
        ";tag=t",
        &sdp.replace("198.51.100.1", "198.51.100.2")
            .replace("5000", "4000"),
    );
    frames.push(udp(b, a, 5060, 5060, ok.as_bytes()));
    for i in 0..50u16 {
        let mut r = vec![0x80, 8];
        r.extend_from_slice(&i.to_be_bytes());
        r.extend_from_slice(&(i as u32 * 160).to_be_bytes());
        r.extend_from_slice(&0xF00Du32.to_be_bytes());
        r.extend_from_slice(&[0xd5; 160]);
        frames.push(udp(b, a, 4000, 5000, &r));
    }
    let pcap = t.0.join("frag.pcap");
    let mut w =
        PcapWriter::with_header(std::fs::File::create(&pcap).unwrap(), PcapHeader::default())
            .unwrap();
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_secs(1_700_000_000) + Duration::from_millis(i as u64 * 20);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .unwrap();
    }
    drop(w);
    let store = t.0.join("store");
    let s = store.to_str().unwrap();
    xdprec(&["capture", "--pcap", pcap.to_str().unwrap(), "--store", s]);
    xdprec(&["index", "--store", s]);
    let c = calls(&store, &[]);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0]["call_id"], "frag@198.51.100.1");
    assert_eq!(c[0]["state"], "answered");
    assert_eq!(c[0]["sip_messages"], 2);
    assert_eq!(c[0]["streams"][0]["packets"], 50);
    assert_eq!(c[0]["streams"][0]["codec"], "PCMA");
}

/// `xdprec index` killed with SIGKILL at various moments and started again ends with the same
/// calls as one uninterrupted run into another database.
#[test]
fn index_killed_and_restarted_ends_the_same() {
    let Some(corpus) = xdprec_testkit::corpus_dir() else {
        return;
    };
    let t = Tmp(tmpdir("kill"));
    let store = t.0.join("store");
    let s = store.to_str().unwrap();
    for f in [
        "sample-captures/sip-rtp-g711.pcap",
        "sample-captures/sip-rtp-l16.pcap",
    ] {
        let p = corpus.join(f);
        xdprec(&[
            "capture",
            "--pcap",
            p.to_str().unwrap(),
            "--store",
            s,
            "--seal-secs",
            "2",
        ]);
    }
    let reference = t.0.join("ref.sqlite");
    xdprec(&["index", "--store", s, "--db", reference.to_str().unwrap()]);
    let db = t.0.join("killed.sqlite");
    let mut finished = false;
    let mut kills = 0;
    for delay_ms in [1u64, 3, 8, 15, 30, 60, 120, 250, 500, 1000, 2000, 4000] {
        let mut child = Command::new(BIN)
            .args(["index", "--store", s, "--db", db.to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        if child.wait().unwrap().success() {
            finished = true;
            break;
        }
        kills += 1;
    }
    eprintln!("index killed {kills} times before a run finished");
    if !finished {
        xdprec(&["index", "--store", s, "--db", db.to_str().unwrap()]);
    }
    let list = |d: &Path| {
        let (out, _) = xdprec(&["calls", "--db", d.to_str().unwrap(), "--json", "--all"]);
        out.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["id"] = serde_json::Value::Null;
                v
            })
            .collect::<Vec<_>>()
    };
    let want = list(&reference);
    assert_eq!(want.len(), 6);
    assert_eq!(list(&db), want);
}
