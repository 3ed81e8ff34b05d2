#!/bin/bash
# Writes scripts/release/hot-functions.txt: the functions that the common calls of the release compile from
# source (VERSION, loopback ADD/CHECK/DEL, bridge ADD/CHECK/DEL at the 2nd container of a bridge, STATUS of
# bridge and portmap), which scripts/build.js then compiles into the startup snapshot
# (docs/benchmarks/startup.md). Builds a profiling release (nothing compiled ahead, V8's function events logged)
# into a temporary directory and runs each call once in throwaway namespaces. Root; about a minute.
#   bash scripts/release/profile-hot-functions.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/hot-functions-XXXXXX)
tag=hotfn$$
cleanup() { for n in h c1 c2 c3; do ip netns del "$tag-$n" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
node "$root/scripts/build.js" --out "$work/bin" --keep-stage "$work/stage" --no-hot-functions \
  --exec-flag --log-function-events --exec-flag --log-source-code --exec-flag "--logfile=$work/events.log" --exec-flag --no-logfile-per-isolate >/dev/null
bin=$work/bin
for n in h c1 c2 c3; do ip netns add "$tag-$n"; ip -n "$tag-$n" link set lo up; done
br="{\"cniVersion\":\"1.0.0\",\"name\":\"${tag}br\",\"type\":\"bridge\",\"bridge\":\"${tag}b\",\"isGateway\":true,\"ipMasq\":true,\"stateDir\":\"$work/bridge\",\"ipam\":{\"type\":\"host-local\",\"subnet\":\"10.188.0.0/24\",\"dataDir\":\"$work/ipam\"}}"
lo="{\"cniVersion\":\"1.0.0\",\"name\":\"${tag}lo\",\"type\":\"loopback\"}"
n=0
# call NAME INPUT ENV... PROGRAM: one invocation, its event log kept as $work/NAME.log
call() {
  local name=$1 input=$2; shift 2
  rm -f "$work/events.log"
  printf '%s' "$input" | "$@" >"$work/out" 2>"$work/err" || { cat "$work/out" "$work/err"; exit 1; }
  mv "$work/events.log" "$work/case-$name.log"
}
in_host() { ip netns exec "$tag-h" env -u NODE_EXTRA_CA_CERTS CNI_PATH="$bin" "$@"; }
ctr() { echo "CNI_CONTAINERID=$tag$1 CNI_NETNS=/run/netns/$tag-$2 CNI_IFNAME=$3"; }
call version "" env -u NODE_EXTRA_CA_CERTS CNI_COMMAND=VERSION "$bin/bridge"
# shellcheck disable=SC2046
{
  call lo-add "$lo" in_host $(ctr l c3 lo) CNI_COMMAND=ADD "$bin/loopback"
  prev=$(cat "$work/out")
  call lo-check "${lo%\}},\"prevResult\":$prev}" in_host $(ctr l c3 lo) CNI_COMMAND=CHECK "$bin/loopback"
  call lo-del "$lo" in_host $(ctr l c3 lo) CNI_COMMAND=DEL "$bin/loopback"
  call br-first "$br" in_host $(ctr 1 c1 eth0) CNI_COMMAND=ADD "$bin/bridge"
  call br-add "$br" in_host $(ctr 2 c2 eth0) CNI_COMMAND=ADD "$bin/bridge"
  prev=$(cat "$work/out")
  call br-check "${br%\}},\"prevResult\":$prev}" in_host $(ctr 2 c2 eth0) CNI_COMMAND=CHECK "$bin/bridge"
  call br-del "$br" in_host $(ctr 2 c2 eth0) CNI_COMMAND=DEL "$bin/bridge"
  status=${br/\"1.0.0\"/\"1.1.0\"}
  call status-bridge "$status" in_host CNI_COMMAND=STATUS "$bin/bridge"
  call status-portmap "{\"cniVersion\":\"1.1.0\",\"name\":\"${tag}br\",\"type\":\"portmap\",\"capabilities\":{\"portMappings\":true}}" in_host CNI_COMMAND=STATUS "$bin/portmap"
  call br-last "$br" in_host $(ctr 1 c1 eth0) CNI_COMMAND=DEL "$bin/bridge"
}
rm "$work/case-br-first.log" "$work/case-br-last.log"
node - "$work" "$root/scripts/release/hot-functions.txt" <<'JS'
const fs = require('fs'), path = require('path');
const [work, out] = process.argv.slice(2);
// The same hash as scripts/release/runtime.js fnv1a.
const fnv1a = (t) => { let h = 0x811c9dc5; for (let i = 0; i < t.length; i++) h = Math.imul(h ^ t.charCodeAt(i), 0x01000193) >>> 0; return h.toString(16).padStart(8, '0'); };
// V8's log escapes commas, backslashes, line breaks and what is not printable ASCII.
const unescape = (t) => t.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|n|\\)/g, (_, e) => (e === 'n' ? '\n' : e === '\\' ? '\\' : String.fromCharCode(parseInt(e.slice(1), 16))));
const lines = new Set();
for (const f of fs.readdirSync(work).filter((n) => /^case-.*\.log$/.test(n))) {
  const events = fs.readFileSync(path.join(work, f), 'utf8').split('\n').map((l) => l.split(','));
  // Our script: the one the release's dispatch() is in; every other one is Node's.
  const own = events.find((e) => e[0] === 'function' && e[1] === 'interpreter' && e[7] === 'dispatch')?.[2];
  if (!own) throw new Error(`${f}: dispatch() was not compiled: is this a profiling build?`);
  const sources = new Map(events.filter((e) => e[0] === 'script-source').map((e) => [e[1], unescape(e.slice(3).join(','))]));
  for (const e of events) {
    if (e[0] !== 'function' || e[1] !== 'interpreter' || e.length !== 8 || !sources.has(e[2])) continue;
    const text = sources.get(e[2]).slice(Number(e[3]), Number(e[4]));
    lines.add(`${e[2] === own ? 'ours' : 'node'} ${text.length} ${fnv1a(text)} ${unescape(e[7])}`);
  }
}
const sorted = [...lines].sort();
fs.writeFileSync(out, `# Made by scripts/release/profile-hot-functions.sh (${new Date().toISOString().slice(0, 10)}); read by scripts/build.js.\n${sorted.join('\n')}\n`);
console.log(`${sorted.length} functions (${sorted.filter((l) => l.startsWith('ours')).length} ours) -> ${path.relative(process.cwd(), out)}`);
JS
