#!/bin/sh
# PID 1 of the user-mode-linux guest (booted by test/l2/uml-guest.js). The
# host's / is the guest's root, read-only (hostfs); /tmp and /run are the
# guest's own tmpfs, so nothing here touches the host's namespaces or state.
# The only writable host directory is L2_OUT, where the results go (and a checkout under /tmp or /run is mounted
# again, read-only). The
# kernel hands unknown command-line words to init as environment: L2_OUT,
# L2_ROOT (the checkout), L2_NODE (node), L2_MAIN (the program), L2_MODULES.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8 NODE_CNI_L2_INSIDE=1

halt() {
  sync
  poweroff -f >/dev/null 2>&1
  echo o >/proc/sysrq-trigger
  sleep 60
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p "$L2_OUT"
if ! mount -t hostfs -o "$L2_OUT" hostfs "$L2_OUT"; then
  echo "l2-init: cannot mount the results directory $L2_OUT from the host"
  halt
fi
echo "$(uname -r)" >"$L2_OUT/booted"

# The kernel's modules are in the package, not under /lib/modules: point modprobe there.
mkdir -p /tmp/modroot/lib && ln -s /usr/lib/uml/modules /tmp/modroot/lib/modules
for m in $(echo "$L2_MODULES" | tr , " "); do
  modprobe -d /tmp/modroot "$m" || echo "l2-init: cannot load module $m" | tee -a "$L2_OUT/init.log"
done
ip link set lo up

# A checkout under /tmp or /run (CI may clone there) is hidden by the guest's own tmpfs: mount it from the host,
# read-only, at the same path.
if [ ! -d "$L2_ROOT" ]; then
  mkdir -p "$L2_ROOT"
  mount -r -t hostfs -o "$L2_ROOT" hostfs "$L2_ROOT" || echo "l2-init: cannot mount the checkout $L2_ROOT from the host" | tee -a "$L2_OUT/init.log"
fi
cd "$L2_ROOT" || halt
timeout -k 5 "$L2_TIMEOUT_S" "$L2_NODE" "$L2_MAIN" >"$L2_OUT/main.log" 2>&1
echo $? >"$L2_OUT/exit-code.tmp" && mv "$L2_OUT/exit-code.tmp" "$L2_OUT/exit-code"
halt
