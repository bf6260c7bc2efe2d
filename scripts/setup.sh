#!/usr/bin/env bash
# Installs everything a fresh Debian (bookworm) machine needs to build, run and test xdprec.
# Idempotent: when everything is already there it prints one line and exits.
#
# What and why:
#   clang-19, llvm-19      compile the XDP program (xdp-probe/bpf) to BPF
#   clang, llvm, libclang  xsk-rs builds libxdp (its configure looks for `clang`) and runs bindgen
#   libbpf-dev             bpf/bpf_helpers.h for the XDP program
#   libelf-dev, zlib1g-dev, m4, make, gcc, pkg-config   libxdp/libbpf build of xsk-rs
#   iproute2, ethtool      network namespaces, veth pairs, tc mirred for the tests
#   tcpdump, tcpreplay, tshark   the end-to-end tests and benchmarks compare against them
#   hyperfine              side-by-side timing in scripts/bench-*.sh
set -euo pipefail

packages=(
  clang-19 llvm-19 clang llvm libclang-dev libbpf-dev libelf-dev zlib1g-dev m4 make gcc pkg-config
  iproute2 ethtool tcpdump tcpreplay tshark procps util-linux hyperfine
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: must run as root (it installs Debian packages)." >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer once, quietly.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup.sh: cargo not found; install the Rust toolchain (rustup) first." >&2
  exit 1
fi

# bpffs is needed where pins are shared between processes (hot standby).
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
fi

echo "setup.sh: all dependencies present"
