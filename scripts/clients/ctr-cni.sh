#!/usr/bin/env bash
# Runs `ctr` so that `ctr run --cni` uses OUR plugins and conf dir, without touching the host.
#   ctr-cni.sh <netns-name|-> <cni-conf-dir> <cni-bin-dir> ctr <args...>
# containerd 1.6's `ctr run --cni` hardcodes /etc/cni/net.d and /opt/cni/bin (gocni.WithDefaultConf)
# and runs the plugins itself, in its own network namespace. So: a private mount namespace in which
# those two paths are bind mounts of ours (a tmpfs over /opt supplies the missing mount point), and,
# unless the first argument is "-", the network namespace /run/netns/<netns-name> as the "host".
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: ctr-cni.sh <netns|-> <conf-dir> <bin-dir> ctr <args...>" >&2; exit 2; }
netns=$1 conf=$2 bin=$3; shift 3
exec unshare --mount --propagation private -- bash -c '
  set -e
  conf=$1 bin=$2 netns=$3; shift 3
  mount -t tmpfs -o size=1m,mode=0755 cni-opt /opt
  mkdir -p /opt/cni/bin /etc/cni/net.d
  mount --bind "$bin" /opt/cni/bin
  mount --bind "$conf" /etc/cni/net.d
  if [ "$netns" = - ]; then exec "$@"; fi
  exec nsenter --net="/run/netns/$netns" "$@"
' ctr-cni "$conf" "$bin" "$netns" "$@"
