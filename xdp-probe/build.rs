//! Compiles every `bpf/*.c` into `$OUT_DIR/<name>.o` with clang's BPF target.
//!
//! The compiler is `$XDPREC_CLANG` (default `clang-19`). Debian's clang needs the multiarch
//! include directory (`/usr/include/x86_64-linux-gnu`) for `asm/types.h`; it is derived from
//! the target architecture.

use std::path::{Path, PathBuf};
use std::process::Command;

fn multiarch(arch: &str) -> String {
    let triple = match arch {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "x86" => "i386-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "loongarch64" => "loongarch64-linux-gnu",
        other => return format!("{other}-linux-gnu"),
    };
    triple.to_string()
}

fn main() {
    println!("cargo:rerun-if-changed=bpf");
    println!("cargo:rerun-if-env-changed=XDPREC_CLANG");

    let clang = std::env::var("XDPREC_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_string());
    let include = format!("-I/usr/include/{}", multiarch(&arch));

    let mut sources: Vec<PathBuf> = std::fs::read_dir("bpf")
        .expect("xdp-probe/bpf is missing")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    sources.sort();

    for src in &sources {
        let stem = src
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("bpf/*.c name");
        let obj = out_dir.join(format!("{stem}.o"));
        compile(&clang, &include, src, &obj);
    }
}

fn compile(clang: &str, include: &str, src: &Path, obj: &Path) {
    let result = Command::new(clang)
        .args([
            "-O2", "-g", "-target", "bpf", "-Wall", "-Werror", include, "-Ibpf", "-c",
        ])
        .arg(src)
        .arg("-o")
        .arg(obj)
        .output();
    let out = match result {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "{clang} not found: run scripts/setup.sh or set XDPREC_CLANG to a clang with the BPF target"
            );
        }
        Err(e) => panic!("running {clang} on {} failed: {e}", src.display()),
    };
    if !out.status.success() {
        panic!(
            "{clang} failed to compile {} ({}):\n{}",
            src.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
