#!/usr/bin/env bash
# Installs everything the build, tests, demo and benchmarks need on a fresh
# Debian machine of this kind (as root), then builds dist/bin. Idempotent.
# user-mode-linux + kmod (modprobe for its modules) + tcpdump: the l2 tier
# (test/l2), which needs a kernel with 802.1q and bridge VLAN filtering.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(iproute2 nftables iptables conntrack containernetworking-plugins etcd-server etcd-client
      busybox-static iperf3 hyperfine procps iputils-ping netcat-openbsd dnsmasq-base podman containerd runc uidmap curl strace
      user-mode-linux kmod tcpdump)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# etcd-server's package may start a system etcd; our tests run their own.
command -v systemctl >/dev/null 2>&1 && systemctl disable --now etcd >/dev/null 2>&1 || true
npm ci --no-audit --no-fund
npm run build
