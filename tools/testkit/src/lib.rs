//! xdprec-testkit: what the integration tests share.
//!
//! - [`require_privileges`]: privileged tests run by default; without root (or without the
//!   kernel features they need) they skip with a loud message, except under `CI=true`, where a
//!   privileged test that cannot run fails. A green CI that skipped the kernel path is a defect.
//! - [`Netns`] and [`Veth`]: network namespaces and veth pairs with unique names, removed on
//!   drop, so a failing test cleans up after itself (the guard runs during unwinding).
//! - [`corpus_dir`]: the public captures in `../shared/corpus` (never copied into the repo).
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// True under CI (`CI=true`), where a test that cannot run must fail instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Checks that this process may use the kernel path (root: BPF, netns, veth, AF_XDP).
/// Returns true when the test should go on. Returns false after printing a loud SKIP when it
/// cannot run; under `CI=true` it panics instead, so CI fails.
pub fn require_privileges(test: &str) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root (effective uid 0)".to_string());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        missing.push("BTF (/sys/kernel/btf/vmlinux)".to_string());
    }
    if which("ip").is_none() {
        missing.push("iproute2 (`ip`)".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "privileged test `{test}` cannot run: missing {}. Run as root after scripts/setup.sh.",
        missing.join(", ")
    );
    if in_ci() {
        panic!("{msg} Under CI=true this is a failure, not a skip.");
    }
    eprintln!("\n!!!!!!!!!! SKIPPED: {msg} !!!!!!!!!!\n");
    false
}

/// Like [`require_privileges`] for a tool the test needs (tcpreplay, tshark, tcpdump...).
pub fn require_tool(test: &str, tool: &str) -> bool {
    if which(tool).is_some() {
        return true;
    }
    let msg = format!("test `{test}` needs `{tool}`; run scripts/setup.sh");
    if in_ci() {
        panic!("{msg}. Under CI=true this is a failure, not a skip.");
    }
    eprintln!("\n!!!!!!!!!! SKIPPED: {msg} !!!!!!!!!!\n");
    false
}

/// Finds an executable on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The workspace root (this crate lives in tools/testkit).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// `../shared/corpus` beside the checkout, or `$XDPREC_CORPUS`. `None` (with a loud message)
/// when absent; under CI a missing corpus is a failure.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("XDPREC_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/corpus"));
    if dir.join("MANIFEST.md").is_file() {
        return Some(dir);
    }
    let msg = format!("corpus not found at {}", dir.display());
    if in_ci() {
        panic!("{msg}; CI must have ../shared beside the checkout");
    }
    eprintln!("\n!!!!!!!!!! SKIPPED: {msg} !!!!!!!!!!\n");
    None
}

/// Every capture file in the corpus (pcap, pcapng and rtpproxy's .rtp), sorted.
pub fn corpus_captures(dir: &Path) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let is_capture = name.ends_with(".pcap")
                    || name.ends_with(".pcapng")
                    || name.ends_with(".cap")
                    || name.ends_with(".rtp");
                if is_capture && !name.ends_with(".tshark.txt") {
                    out.push(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, at most 15 bytes (an interface name's limit).
/// `prefix` should be short (<= 4 bytes).
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 100_000;
    let mut s = format!("{prefix}{pid}x{n}");
    s.truncate(15);
    s
}

/// Runs a command; on failure returns a message with its stderr.
pub fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command and panics with its stderr when it fails (test set-up).
pub fn sh(args: &[&str]) -> String {
    run(args).unwrap_or_else(|e| panic!("{e}"))
}

/// A network namespace with a unique name, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let name = unique_name("xdpr");
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command inside the namespace, panicking on failure.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// A `Command` that runs inside the namespace (for long-running children).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Default for Netns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Killing processes left in the namespace first lets the delete succeed.
        if let Ok(pids) = run(&["ip", "netns", "pids", &self.name]) {
            for pid in pids.split_whitespace() {
                let _ = run(&["kill", "-9", pid]);
            }
        }
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// A veth pair. End `a` stays where it is created (the test's current namespace unless moved);
/// both ends can be moved into namespaces. Deleted on drop (deleting one end removes both).
pub struct Veth {
    pub a: String,
    pub b: String,
    a_ns: Option<String>,
}

impl Veth {
    /// Creates a veth pair with `queues` rx/tx queues on each end, both ends up, MTU 1500.
    pub fn new(queues: u32) -> Veth {
        let a = unique_name("xva");
        let b = unique_name("xvb");
        let q = queues.max(1).to_string();
        sh(&[
            "ip",
            "link",
            "add",
            &a,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ]);
        Veth { a, b, a_ns: None }
    }

    /// Moves end `a` into `ns`.
    pub fn move_a(&mut self, ns: &Netns) {
        sh(&["ip", "link", "set", &self.a, "netns", ns.name()]);
        self.a_ns = Some(ns.name().to_string());
    }

    /// Moves end `b` into `ns`.
    pub fn move_b(&mut self, ns: &Netns) {
        sh(&["ip", "link", "set", &self.b, "netns", ns.name()]);
    }
}

/// A veth pair with both ends in a fresh namespace, up, with IPv6 disabled on both ends so
/// that no autoconfiguration chatter crosses the pair: only the test's own frames do.
pub fn quiet_pair(queues: u32) -> (Netns, Veth) {
    let ns = Netns::new();
    let mut v = Veth::new(queues);
    v.move_a(&ns);
    v.move_b(&ns);
    for d in [&v.a, &v.b] {
        ns.exec(&[
            "sysctl",
            "-qw",
            &format!("net.ipv6.conf.{d}.disable_ipv6=1"),
        ]);
        ns.exec(&["ip", "link", "set", d, "up"]);
    }
    (ns, v)
}

/// An interface counter (`/sys/class/net/DEV/statistics/NAME`) read inside `ns` (a thread of
/// the test process sees its own namespace's /sys, not the device's).
pub fn link_counter(ns: &Netns, dev: &str, name: &str) -> u64 {
    ns.exec(&["cat", &format!("/sys/class/net/{dev}/statistics/{name}")])
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{dev} {name}: {e}"))
}

impl Drop for Veth {
    fn drop(&mut self) {
        match &self.a_ns {
            Some(ns) => {
                let _ = run(&["ip", "-n", ns, "link", "del", &self.a]);
            }
            None => {
                let _ = run(&["ip", "link", "del", &self.a]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_fit_an_interface_name() {
        let a = unique_name("xva");
        let b = unique_name("xva");
        assert_ne!(a, b);
        assert!(a.len() <= 15);
    }
}
