#!/usr/bin/env bash
# The main job, shown to a person in one run: namespaces wired by our plugins
# through cnictl, the way a container runtime would, then torn down.
#
# Everything happens inside throwaway network namespaces: "demo-host" plays the
# machine (its bridge, nftables tables and sysctls), "demo-outside" another
# machine on its LAN, the rest are containers. Nothing on the real host changes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ "$(id -u)" = 0 ] || { echo "the demo configures network namespaces: run it as root" >&2; exit 1; }
[ -x dist/bin/cnictl ] && [ -x dist/bin/bridge ] && [ -x dist/bin/portmap ] || npm run build

P=demo$$
HOST=$P-host OUTSIDE=$P-outside WEB=$P-web CLIENT=$P-client NONE=$P-none APP=$P-app DB=$P-db
WORK=$(mktemp -d /tmp/$P.XXXX)
export NETCONFPATH=$WORK/net.d CNI_PATH=$ROOT/dist/bin CNI_CACHE_DIR=$WORK/cache
BIN=$ROOT/dist/bin
HTTPD_PID=

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
run() { printf '   $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/     /'; }
in_host() { ip netns exec "$HOST" "$@"; }
cnictl() { in_host "$BIN/cnictl" "$@"; }
# Runs a cnictl add and prints only the addresses of its result.
run_quiet() {
  printf '   $ %s\n' "$*"
  "$@" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("     ips:", [i["address"] for i in r.get("ips", [])], " dns:", r.get("dns", {}))'
}

cleanup() {
  set +e
  [ -n "$HTTPD_PID" ] && kill "$HTTPD_PID" 2>/dev/null
  for ns in "$WEB" "$CLIENT" "$APP" "$DB" "$NONE"; do
    [ -e "/run/netns/$ns" ] || continue
    for net in docker0 backend none; do cnictl del "$net" "/run/netns/$ns" >/dev/null 2>&1; done
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "/etc/netns/$APP"
  ip netns pids "$OUTSIDE" 2>/dev/null | xargs -r kill 2>/dev/null
  ip netns del "$OUTSIDE" 2>/dev/null
  ip netns del "$HOST" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

step "1. A machine and its LAN"
say "\"$HOST\" plays the host; \"$OUTSIDE\" is another machine on the LAN (10.250.0.0/24)."
ip netns add "$HOST"; ip netns add "$OUTSIDE"
ip -n "$HOST" link set lo up; ip -n "$OUTSIDE" link set lo up
ip -n "$HOST" link add lan0 type veth peer name lan0 netns "$OUTSIDE"
ip -n "$HOST" addr add 10.250.0.1/24 dev lan0; ip -n "$HOST" link set lan0 up
ip -n "$OUTSIDE" addr add 10.250.0.2/24 dev lan0; ip -n "$OUTSIDE" link set lan0 up

step "2. Network configs (what /etc/cni/net.d holds)"
mkdir -p "$NETCONFPATH"
# The example configs, with their state (IPAM reservations, per-attachment records) in the demo's temp dir.
for f in 10-docker0 30-user-defined; do
  python3 - "$WORK" conf-examples/$f.conflist > "$NETCONFPATH/$f.conflist" <<'PY'
import json, sys
work, path = sys.argv[1], sys.argv[2]
conf = json.load(open(path))
for p in conf["plugins"]:
    if "ipam" in p: p["ipam"]["dataDir"] = work + "/ipam"
    if p["type"] == "bridge": p["stateDir"] = work + "/bridge"
    if p["type"] == "portmap": p["dataDir"] = work + "/portmap"
print(json.dumps(conf, indent=2))
PY
done
cp conf-examples/20-none.conflist "$NETCONFPATH/"
run ls "$NETCONFPATH"
say "docker0 = bridge (cni-docker0, 10.17.0.0/16, gateway + masquerade) + portmap; backend = a user-defined bridge; none = loopback only."

step "3. Default bridge (Docker's docker0) with a published port (docker run -p 8080:80)"
for ns in "$WEB" "$CLIENT"; do run "$BIN/cnictl" netns add "$ns"; done
say "cnictl runs the conflist like containerd would: bridge, then portmap, with the portMappings capability."
CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}' run cnictl add docker0 "/run/netns/$WEB"
say "(a second container; its result, compacted:)"
run_quiet cnictl add docker0 "/run/netns/$CLIENT"
WEB_IP=$(ip -n "$WEB" -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
say "Inside the web container:"
run ip -n "$WEB" addr show eth0
run ip -n "$WEB" route
say "On the host: the bridge with the gateway address, and the veth ends plugged into it:"
run ip -n "$HOST" -br addr show cni-docker0
run ip -n "$HOST" -br link show master cni-docker0

step "4. Traffic"
mkdir -p "$WORK/www"; echo "hello from the web container ($WEB_IP)" > "$WORK/www/index.html"
ip netns exec "$WEB" busybox httpd -f -p 80 -h "$WORK/www" & HTTPD_PID=$!
sleep 0.3
say "container to container, across the bridge:"
run ip netns exec "$CLIENT" ping -c 2 -W 1 "$WEB_IP"
say "another machine fetches the published port on the host's LAN address (DNAT by portmap):"
run ip netns exec "$OUTSIDE" busybox wget -qO- http://10.250.0.1:8080/
say "a container reaches the outside machine, which sees the host's LAN address, not 10.17.x (masquerade):"
mkdir -p "$WORK/outside/cgi-bin"
printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "outside machine: you came from $REMOTE_ADDR"\n' > "$WORK/outside/cgi-bin/whoami"
chmod +x "$WORK/outside/cgi-bin/whoami"
ip netns exec "$OUTSIDE" busybox httpd -p 80 -h "$WORK/outside"
run ip netns exec "$CLIENT" busybox wget -qO- http://10.250.0.2/cgi-bin/whoami
say "the nftables state, in our own tables (one map element per published port):"
run in_host nft list tables

step "5. none mode (docker run --network none): only lo"
run "$BIN/cnictl" netns add "$NONE"
run cnictl add none "/run/netns/$NONE"
run ip -n "$NONE" -br addr

step "6. A user-defined network: its own bridge and subnet, isolation, and names"
say "backend has \"isolation\": true (as docker0 here) and \"nameResolution\": a dnsmasq on its gateway answers for its containers' names."
run "$BIN/cnictl" netns add "$APP"
run "$BIN/cnictl" netns add "$DB"
say "the runtime passes each container's names with the aliases capability:"
CAP_ARGS='{"aliases":["db"]}' run_quiet cnictl add backend "/run/netns/$DB"
CAP_ARGS='{"aliases":["app"]}' run_quiet cnictl add backend "/run/netns/$APP"
run ip -n "$APP" -br addr show eth0
say "app finds db by name (the DNS server is the network's gateway, as the result's dns says):"
run ip netns exec "$APP" busybox nslookup db 10.18.0.1
say "a runtime writes the result's dns into the container's resolv.conf; ip netns exec reads /etc/netns/<ns>/resolv.conf:"
mkdir -p "/etc/netns/$APP"; printf 'nameserver 10.18.0.1\nsearch backend.internal\n' > "/etc/netns/$APP/resolv.conf"
run ip netns exec "$APP" ping -c 1 -W 1 db
say "but the web container on docker0 is another network: isolated, the ping is dropped:"
if ip netns exec "$APP" ping -c 1 -W 1 "$WEB_IP" >/dev/null 2>&1; then echo "   !! backend reached docker0"; exit 1; else say "ping $WEB_IP: no answer (dropped by the isolation rule)"; fi
say "while the outside world is still reachable (masqueraded):"
run ip netns exec "$APP" busybox wget -qO- http://10.250.0.2/cgi-bin/whoami

step "7. Teardown (DEL in reverse plugin order, like a runtime)"
kill "$HTTPD_PID" 2>/dev/null; wait "$HTTPD_PID" 2>/dev/null || true; HTTPD_PID=
run cnictl del docker0 "/run/netns/$WEB"
run cnictl del docker0 "/run/netns/$CLIENT"
run cnictl del none "/run/netns/$NONE"
run cnictl del backend "/run/netns/$APP"
run cnictl del backend "/run/netns/$DB"
say "after DEL: no veth on the bridge, no reservation left, the published port is gone:"
run ip -n "$HOST" -br link show master cni-docker0
run ls "$WORK/ipam/docker0"
if timeout 3 ip netns exec "$OUTSIDE" busybox wget -qO- http://10.250.0.1:8080/ >/dev/null 2>&1; then
  echo "   !! the port still answers"; exit 1
else
  say "http://10.250.0.1:8080/ no longer answers."
fi
for ns in "$WEB" "$CLIENT" "$NONE" "$APP" "$DB"; do "$BIN/cnictl" netns del "$ns"; done
cleanup; trap - EXIT
step "Done: every namespace, link, nft table and file of the demo is gone."
left=$(ip netns list | grep -c "^$P-" || true); say "namespaces of this demo left: $left"
