#!/usr/bin/env node
// ADD and DEL latency of dist/bin/macvlan vs the reference /usr/lib/cni/macvlan
// (both with host-local IPAM: ours in-process, the reference exec'd), in a
// throwaway host namespace. Usage: node scripts/bench/macvlan.js [rounds=20]
'use strict';
// This machine exports NODE_EXTRA_CA_CERTS; runtimes do not pass it to plugins: no measured process gets it.
delete process.env.NODE_EXTRA_CA_CERTS;
const { execFileSync, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const rounds = Number(process.argv[2] || 20);
const tag = `mvb${crypto.randomBytes(2).toString('hex')}`;
const host = `${tag}-h`;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
const sh = (...a) => execFileSync('ip', a, { stdio: ['ignore', 'pipe', 'pipe'] });
const containers = [];

function run(bin, cmd, conf, id, ns) {
  const env = { PATH: process.env.PATH, CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: ns, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
  const t0 = process.hrtime.bigint();
  const r = spawnSync('ip', ['netns', 'exec', host, bin], { input: JSON.stringify(conf), env, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${bin} ${cmd} ${id}: ${r.stdout} ${r.stderr}`);
  return ms;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  sh('netns', 'add', host);
  sh('-n', host, 'link', 'add', 'm0', 'type', 'veth', 'peer', 'name', 'm0p');
  sh('-n', host, 'link', 'set', 'm0', 'up');
  for (let i = 0; i < rounds; i++) { const c = `${tag}-c${i}`; sh('netns', 'add', c); containers.push(c); }
  const impls = [['node-cni macvlan', path.join(__dirname, '..', '..', 'dist', 'bin', 'macvlan')], ['reference macvlan 1.1.1', '/usr/lib/cni/macvlan']];
  for (const [label, bin] of impls) {
    const conf = { cniVersion: '1.0.0', name: `${tag}net`, type: 'macvlan', master: 'm0', dataDir: path.join(tmp, 'data'), ipam: { type: 'host-local', subnet: '10.99.0.0/16', dataDir: path.join(tmp, 'ipam') } };
    const adds = []; const dels = [];
    containers.forEach((c, i) => adds.push(run(bin, 'ADD', conf, `c${i}`, `/run/netns/${c}`)));
    containers.forEach((c, i) => dels.push(run(bin, 'DEL', conf, `c${i}`, `/run/netns/${c}`)));
    console.log(`${label.padEnd(24)} ADD median ${median(adds).toFixed(1)} ms  DEL median ${median(dels).toFixed(1)} ms  (${rounds} containers)`);
  }
} finally {
  for (const c of containers) spawnSync('ip', ['netns', 'del', c]);
  spawnSync('ip', ['netns', 'del', host]);
  fs.rmSync(tmp, { recursive: true, force: true });
}
