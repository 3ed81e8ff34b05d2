#!/usr/bin/env bash
# The main job, shown to a person in one run: every Docker networking mode of
# the project, wired by our plugins through cnictl the way a container runtime
# would, then torn down.
#
# Everything happens inside throwaway network namespaces: "<p>-host" plays the
# machine (its bridges, nftables tables and sysctls), "<p>-host2" a second
# machine for the overlay, "<p>-outside" the LAN switch with a server on it,
# the rest are containers. Nothing on the real host changes, and nothing of
# the demo is left when it ends (also when it fails or is interrupted).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ "$(id -u)" = 0 ] || { echo "the demo configures network namespaces: run it as root" >&2; exit 1; }
[ -x dist/bin/cnictl ] && [ -x dist/bin/bridge ] && [ -x dist/bin/portmap ] || npm run build
START=$(date +%s.%N)

P=demo$$
HOST=$P-host HOST2=$P-host2 OUTSIDE=$P-outside
WEB=$P-web CLIENT=$P-client NONE=$P-none APP=$P-app DB=$P-db VAULT=$P-vault WORKER=$P-worker MV=$P-mv OV1=$P-ov1 OV2=$P-ov2
CONTAINERS="$WEB $CLIENT $NONE $APP $DB $VAULT $WORKER $MV $OV1 $OV2"
WORK=$(mktemp -d /tmp/$P.XXXX)
export CNI_PATH=$ROOT/dist/bin CNI_CACHE_DIR=$WORK/cache
BIN=$ROOT/dist/bin
FAILOVER=$ROOT/scripts/tcp-failover.js
NODE=$(command -v node)
PIDS=()

step() { printf '\n\033[1m== %s\033[0m  (%s s)\n' "$*" "$(elapsed)"; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$START" "$(date +%s.%N)"; }
say() { printf '   %s\n' "$*"; }
run() { printf '   $ %s%s\n' "${CNI_IFNAME:+CNI_IFNAME=$CNI_IFNAME }" "$*"; "$@" 2>&1 | sed 's/^/     /'; }
in_host() { ip netns exec "$HOST" "$@"; }
# cnictl on a machine: its own NETCONFPATH (the overlay's IPAM dir differs per machine).
cnictl() { NETCONFPATH=$WORK/net.d ip netns exec "$HOST" "$BIN/cnictl" "$@"; }
cnictl2() { NETCONFPATH=$WORK/net2.d ip netns exec "$HOST2" "$BIN/cnictl" "$@"; }
# Runs a cnictl add and prints only the addresses and routes of its result.
run_quiet() {
  printf '   $ %s%s\n' "${CNI_IFNAME:+CNI_IFNAME=$CNI_IFNAME }" "$*"
  "$@" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("     ips:", [i["address"] for i in r.get("ips", [])], " routes:", [x["dst"] + " metric " + str(x.get("priority", "-")) for x in r.get("routes", [])], " dns:", r.get("dns", {}).get("nameservers", []))'
}
ip_of() { ip -n "$1" -4 -o addr show "${2:-eth0}" | awk '{print $4}' | cut -d/ -f1; }
fails() { if "$@" >/dev/null 2>&1; then echo "   !! unexpectedly answered: $*"; exit 1; fi; }
bg() { "$@" & PIDS+=($!); }

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  for ns in $CONTAINERS; do
    [ -e "/run/netns/$ns" ] || continue
    for net in docker0 backend none backend-internal lan; do
      for ifn in eth0 eth1; do CNI_IFNAME=$ifn cnictl del "$net" "/run/netns/$ns" >/dev/null 2>&1; done
    done
    cnictl del overlay "/run/netns/$ns" >/dev/null 2>&1; cnictl2 del overlay "/run/netns/$ns" >/dev/null 2>&1
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "/etc/netns/$APP"
  for ns in "$OUTSIDE" "$HOST" "$HOST2"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null; done
  for ns in "$OUTSIDE" "$HOST" "$HOST2"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "1. Two machines and their LAN"
say "\"$HOST\" is the machine; \"$HOST2\" a second one (for the overlay); \"$OUTSIDE\" the LAN switch with a server, 10.250.0.2."
for ns in "$HOST" "$HOST2" "$OUTSIDE"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$OUTSIDE" link add lan type bridge; ip -n "$OUTSIDE" link set lan up
ip -n "$OUTSIDE" addr add 10.250.0.2/24 dev lan
ip -n "$OUTSIDE" addr add 10.20.0.1/24 dev lan   # the gateway of the macvlan LAN (10.20.0.0/24)
for m in "$HOST:10.250.0.1" "$HOST2:10.250.0.3"; do
  ns=${m%%:*} addr=${m#*:}
  ip -n "$OUTSIDE" link add "p${addr##*.}" type veth peer name lan0 netns "$ns"
  ip -n "$OUTSIDE" link set "p${addr##*.}" master lan up
  ip -n "$ns" addr add "$addr/24" dev lan0; ip -n "$ns" link set lan0 up
  ip -n "$ns" route add default via 10.250.0.2
done

step "2. Network configs (what /etc/cni/net.d holds), from conf-examples/"
mkdir -p "$WORK/net.d" "$WORK/net2.d" "$WORK/dns"; chmod 755 "$WORK" "$WORK/dns"
# The example configs, their state (IPAM reservations, records, DNS) in the demo's temp dir.
adapt() { # adapt <example> <net.d dir> <ipam dir>
  python3 - "$WORK" "conf-examples/$1.conflist" "$3" > "$2/$1.conflist" <<'PY'
import json, sys
work, path, ipam = sys.argv[1], sys.argv[2], sys.argv[3]
conf = json.load(open(path))
for p in conf["plugins"]:
    p.setdefault("ipam", {}) if p["type"] == "vxlan-overlay" else None
    if "ipam" in p: p["ipam"]["dataDir"] = ipam
    if p["type"] == "bridge": p["stateDir"] = work + "/bridge"
    if "nameResolution" in p: p["nameResolution"]["runDir"] = work + "/dns"
    if p["type"] == "portmap": p["dataDir"] = work + "/portmap"
    if p["type"] == "macvlan": p["master"] = "lan0"; p["dataDir"] = work + "/macvlan"
    if p["type"] == "vxlan-overlay": p["store"]["dir"] = work + "/store"; p["runDir"] = work + "/run"
print(json.dumps(conf, indent=2))
PY
}
for f in 10-docker0 20-none 30-user-defined 31-user-defined-internal 40-macvlan 50-overlay-file; do adapt $f "$WORK/net.d" "$WORK/ipam"; done
adapt 50-overlay-file "$WORK/net2.d" "$WORK/ipam2"
run ls "$WORK/net.d"
say "docker0: bridge + masquerade + portmap; backend: a user-defined bridge (isolation, names); backend-internal: --internal;"
say "lan: macvlan on the LAN interface; overlay: vxlan-overlay across machines, subnets leased in a shared directory."

step "3. Default bridge (Docker's docker0) with a published port (docker run -p 8080:80)"
for ns in "$WEB" "$CLIENT"; do run "$BIN/cnictl" netns add "$ns"; done
say "cnictl runs the conflist like containerd would: bridge, then portmap, with the portMappings capability."
CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}' run cnictl add docker0 "/run/netns/$WEB"
say "(a second container; its result, compacted:)"
run_quiet cnictl add docker0 "/run/netns/$CLIENT"
WEB_IP=$(ip_of "$WEB")
run ip -n "$WEB" route
say "On the host: the bridge with the gateway address, and the veth ends plugged into it:"
run ip -n "$HOST" -br addr show cni-docker0
run ip -n "$HOST" -br link show master cni-docker0

step "4. Traffic"
mkdir -p "$WORK/www"; echo "hello from the web container ($WEB_IP)" > "$WORK/www/index.html"
bg ip netns exec "$WEB" busybox httpd -f -p 80 -h "$WORK/www"
mkdir -p "$WORK/outside/cgi-bin"
printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "outside machine: you came from $REMOTE_ADDR"\n' > "$WORK/outside/cgi-bin/whoami"
chmod +x "$WORK/outside/cgi-bin/whoami"
bg ip netns exec "$OUTSIDE" busybox httpd -f -p 80 -h "$WORK/outside"
bg ip netns exec "$OUTSIDE" "$NODE" "$FAILOVER" server 7000 >/dev/null
sleep 0.3
say "container to container, across the bridge:"
run ip netns exec "$CLIENT" ping -c 1 -W 1 "$WEB_IP"
say "the LAN fetches the published port on the host's address (DNAT by portmap):"
run ip netns exec "$OUTSIDE" busybox wget -qO- http://10.250.0.1:8080/
say "a container reaches the LAN, which sees the host's address, not 10.17.x (masquerade):"
run ip netns exec "$CLIENT" busybox wget -qO- http://10.250.0.2/cgi-bin/whoami

step "5. none mode (docker run --network none): only lo"
run "$BIN/cnictl" netns add "$NONE"
run cnictl add none "/run/netns/$NONE"
run ip -n "$NONE" -br addr

step "6. A user-defined network: its own bridge and subnet, isolation, names"
run "$BIN/cnictl" netns add "$APP"
run "$BIN/cnictl" netns add "$DB"
say "the runtime passes each container's names with the aliases capability; --ip with the ips capability:"
CAP_ARGS='{"aliases":["db"],"ips":["10.18.0.42/24"]}' run_quiet cnictl add backend "/run/netns/$DB"
CAP_ARGS='{"aliases":["app"]}' run_quiet cnictl add backend "/run/netns/$APP"
say "app finds db by name (the DNS server is the network's gateway, as the result's dns says):"
mkdir -p "/etc/netns/$APP"; printf 'nameserver 10.18.0.1\nsearch backend.internal\n' > "/etc/netns/$APP/resolv.conf"
run ip netns exec "$APP" ping -c 1 -W 1 db
say "the web container on docker0 is another network: isolated, no answer:"
fails ip netns exec "$APP" ping -c 1 -W 1 "$WEB_IP"; say "ping $WEB_IP: dropped by the isolation rule"
say "but its published port answers every network through the host's address (as in Docker):"
run ip netns exec "$APP" busybox wget -qO- http://10.18.0.1:8080/

step "7. docker network connect / disconnect: one container on two networks"
say "client (on docker0, eth0) joins backend as eth1: two default routes, each with its own metric; the first attached wins:"
CNI_IFNAME=eth1 run_quiet cnictl add backend "/run/netns/$CLIENT"
run ip -n "$CLIENT" route show default
say "a transfer to the LAN runs (reconnecting when it stalls) and prints which network it goes out of:"
ip netns exec "$CLIENT" "$NODE" "$FAILOVER" client 10.250.0.2 7000 > "$WORK/transfer.log" & PIDS+=($!); TRANSFER=$!
for _ in $(seq 50); do grep -q '"up"' "$WORK/transfer.log" && break; sleep 0.05; done
say "$(grep -m1 '"up"' "$WORK/transfer.log" | python3 -c 'import json,sys; e=json.load(sys.stdin); print("transfer up, from", e["local"], "(docker0)")')"
say "docker network disconnect docker0 client: one DEL, and nothing else"
T0=$(date +%s%3N)
run cnictl del docker0 "/run/netns/$CLIENT"
for _ in $(seq 100); do [ "$(grep -c '"up"' "$WORK/transfer.log")" -ge 2 ] && break; sleep 0.02; done
kill "$TRANSFER" 2>/dev/null; wait "$TRANSFER" 2>/dev/null || true
python3 - "$WORK/transfer.log" "$T0" <<'PY' | sed 's/^/   /'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]
t0 = int(sys.argv[2])
ups = [e for e in ev if "up" in e]
if len(ups) < 2: sys.exit("the transfer did not come back")
print(f"transfer back up from {ups[-1]['local']} (backend), {ups[-1]['t'] - t0} ms after the disconnect began")
PY
run ip -n "$CLIENT" route show default

step "8. An internal network (docker network create --internal)"
run "$BIN/cnictl" netns add "$VAULT"
run "$BIN/cnictl" netns add "$WORKER"
CAP_ARGS='{"aliases":["vault"]}' run_quiet cnictl add backend-internal "/run/netns/$VAULT"
CAP_ARGS='{"aliases":["worker"]}' run_quiet cnictl add backend-internal "/run/netns/$WORKER"
say "no default route; the network's containers and names work:"
run ip -n "$WORKER" route
run ip netns exec "$WORKER" busybox nslookup vault 10.19.0.1
run ip netns exec "$WORKER" ping -c 1 -W 1 "$(ip_of "$VAULT")"
say "nothing goes out, even with a default route added by hand:"
ip -n "$WORKER" route add default via 10.19.0.1
fails ip netns exec "$WORKER" ping -c 1 -W 1 10.250.0.2; say "ping 10.250.0.2: dropped (nothing forwarded in or out of the network)"
say "and -p is refused, saying why:"
run "$BIN/cnictl" netns add "$P-pub"; CONTAINERS="$CONTAINERS $P-pub"
CAP_ARGS='{"portMappings":[{"hostPort":8443,"containerPort":443,"protocol":"tcp"}]}' run cnictl add backend-internal "/run/netns/$P-pub" || true

step "9. macvlan in bridge mode: a container with its own MAC and address on the LAN"
run "$BIN/cnictl" netns add "$MV"
run_quiet cnictl add lan "/run/netns/$MV"
run ip netns exec "$MV" ping -c 1 -W 1 10.20.0.1
say "the LAN sees the container's own MAC, not the host's:"
run ip -n "$OUTSIDE" neigh show "$(ip_of "$MV")"
run ip -n "$MV" -br link show eth0

step "10. An overlay across the two machines (vxlan-overlay, subnets leased in a shared directory)"
for h in "$HOST:10.250.0.1" "$HOST2:10.250.0.3"; do
  ns=${h%%:*}
  bg ip netns exec "$ns" "$BIN/vxlan-overlay" agent --conf "$WORK/net.d/50-overlay-file.conflist" --underlay-ip "${h#*:}" --heartbeat-ms 200 2>>"$WORK/agents.log"
done
say "one agent per machine (vxlan-overlay agent --conf ...); ADD answers 'try again later' until its agent is ready:"
for _ in $(seq 100); do [ "$(ls "$WORK/run/overlay" 2>/dev/null | grep -c '^agent-')" -ge 2 ] && break; sleep 0.05; done
run "$BIN/cnictl" netns add "$OV1"
run "$BIN/cnictl" netns add "$OV2"
# Like a kubelet: retry while the answer is code 11 (the agent is not ready yet), for at most 10 s.
retry() { for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; "$@"; }
retry cnictl add overlay "/run/netns/$OV1"
retry cnictl2 add overlay "/run/netns/$OV2"
say "ov1 on $HOST got $(ip_of "$OV1"), ov2 on $HOST2 got $(ip_of "$OV2"): each machine leased its own /24 of 10.244.0.0/16"
run ip netns exec "$OV1" ping -c 1 -W 2 "$(ip_of "$OV2")"
run ip -n "$HOST" route show dev ovx1

step "11. Teardown (DEL of every attachment, in reverse plugin order, like a runtime)"
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=()
run cnictl del docker0 "/run/netns/$WEB"
CNI_IFNAME=eth1 run cnictl del backend "/run/netns/$CLIENT"
run cnictl del none "/run/netns/$NONE"
for ns in "$APP" "$DB"; do run cnictl del backend "/run/netns/$ns"; done
for ns in "$VAULT" "$WORKER" "$P-pub"; do run cnictl del backend-internal "/run/netns/$ns"; done
run cnictl del lan "/run/netns/$MV"
run cnictl del overlay "/run/netns/$OV1"
run cnictl2 del overlay "/run/netns/$OV2"
say "after DEL: no veth on the bridges, no reservation, no rule of ours (only the bridges stay, as with the reference):"
run ip -n "$HOST" -br link show type veth
run ls "$WORK/ipam/docker0" "$WORK/ipam/backend"
run in_host nft list tables
fails timeout 3 ip netns exec "$OUTSIDE" busybox wget -qO- http://10.250.0.1:8080/; say "http://10.250.0.1:8080/ no longer answers."
for ns in $CONTAINERS; do "$BIN/cnictl" netns del "$ns"; done
cleanup; trap - EXIT
step "Done: every namespace, link, nft table, process and file of the demo is gone."
left=$(ip netns list | grep -c "^$P-" || true); say "namespaces of this demo left: $left"
say "$(elapsed) s in all"
