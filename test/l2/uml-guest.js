// Boots user-mode-linux (Debian's `user-mode-linux`: a Linux 6.1 kernel run
// as an ordinary process) with the host's / as its read-only root, and runs
// one node program inside it as root; test/l2/uml-init.sh is its PID 1. That
// kernel has what this machine's lacks (802.1q, bridge VLAN filtering,
// dummy, bonding, ipvlan) but no nftables ip/inet tables: L2 work only.
// Used by the l2 tier's jest runner (./runner.ts) and by
// scripts/bench/macvlan-trunk-uml.js. Plain JS so both can load it; types in
// uml-guest.d.ts.
//
// Results come back through one writable host directory (hostfs), removed
// afterwards: the program reads its arguments from `args.json` and writes
// what it likes there (the tier's reporter: `<n>-0-start.json` and
// `<n>-1-result.json` per test file); init writes `booted`, `exit-code`, and
// the program's output to `main.log`. UML's pid/socket dir goes there too.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

/**
 * Loaded by the guest's init, in this order (ipv6 is a module there, and the
 * bridge needs it). nf_tables: so that nft answers; a lookup in the ip/inet
 * families, which that kernel lacks, finds nothing.
 */
const GUEST_MODULES = ['ipv6', 'veth', 'bridge', '8021q', 'macvlan', 'ipvlan', 'dummy', 'bonding', 'vxlan', 'nf_tables'];
const TAIL_LINES = 40;

/** The user-mode-linux kernel: NODE_CNI_UML, else where Debian installs it. */
function findUml() {
  const candidates = process.env.NODE_CNI_UML ? [process.env.NODE_CNI_UML] : ['/usr/bin/linux.uml', '/usr/bin/linux'];
  return candidates.find((p) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function tail(text, lines = TAIL_LINES) {
  return text.split('\n').filter((l) => l.trim()).slice(-lines).join('\n');
}

function readIfExists(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Kernel command-line words cannot carry spaces or quotes. */
function cmdlineSafe(what, value) {
  if (!/^[\w./+,:@-]+$/.test(value)) throw new Error(`user-mode-linux: ${what} "${value}" cannot go on a kernel command line (only letters, digits and ./+,:@-_)`);
  return value;
}

function guestCommandLine(o) {
  const root = cmdlineSafe('the checkout path', o.root);
  return [
    `mem=${o.memMb}M`, 'rootfstype=hostfs', 'rootflags=/', 'ro', 'quiet',
    'con=null', 'con0=null,fd:1', 'ssl=null',
    `uml_dir=${cmdlineSafe('the results directory', o.out)}`, `umid=${path.basename(o.out)}`,
    `L2_OUT=${o.out}`, `L2_ROOT=${root}`, `L2_NODE=${cmdlineSafe('the node path', o.node)}`,
    `L2_MAIN=${cmdlineSafe('the program', o.main)}`, `L2_MODULES=${GUEST_MODULES.join(',')}`,
    `L2_TIMEOUT_S=${Math.ceil(o.timeoutMs / 1000)}`,
    'init=/bin/sh', '--', path.join(root, 'test', 'l2', 'uml-init.sh'),
  ];
}

/**
 * Boot the guest and run `main` there with `args`; `onFile(name, text)` sees
 * each new file of the results directory matching `watch`, in name order, as
 * it appears. Resolves when the guest is gone.
 */
async function runInGuest(o) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'l2uml-'));
  const started = Date.now();
  let consoleText = '';
  let timedOut = false;
  const seen = new Set();
  const poll = () => {
    if (!o.watch) return;
    const names = fs.readdirSync(out).filter((n) => o.watch.test(n) && !seen.has(n)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    for (const n of names) {
      seen.add(n);
      o.onFile(n, fs.readFileSync(path.join(out, n), 'utf8'));
    }
  };
  try {
    fs.writeFileSync(path.join(out, 'args.json'), JSON.stringify(o.args));
    const args = guestCommandLine({ out, root: o.root, node: o.node ?? process.execPath, main: o.main, memMb: o.memMb ?? 1536, timeoutMs: o.timeoutMs });
    const code = await new Promise((resolve) => {
      // Its own process group: a timeout kills the kernel and its helper processes together.
      const child = spawn(o.kernel, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { PATH: process.env.PATH || '/usr/bin:/bin', TMPDIR: os.tmpdir() } });
      // Not past this process (the guest also stops its program at the timeout, in case we are killed).
      const killGuest = () => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ } };
      // On a signal: stop the guest, then let the signal do what it would have done.
      const onSignal = (sig) => { killGuest(); fs.rmSync(out, { recursive: true, force: true }); process.kill(process.pid, sig); };
      process.once('exit', killGuest);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const keep = (b) => { consoleText = tail(consoleText + b.toString(), 200); };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      const timer = setInterval(poll, 300);
      // A little later than the guest's own timeout, so it can still report.
      const deadline = setTimeout(() => { timedOut = true; killGuest(); }, o.timeoutMs + 15_000);
      const done = (c) => {
        clearInterval(timer);
        clearTimeout(deadline);
        process.removeListener('exit', killGuest);
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
        resolve(c);
      };
      child.on('error', (err) => { consoleText += `\n${err.message}`; done(null); });
      child.on('exit', done);
    });
    poll();
    if (code !== 0 && code !== null) consoleText += `\n(user-mode-linux exited with ${code})`;
    const exit = readIfExists(path.join(out, 'exit-code'));
    return {
      booted: fs.existsSync(path.join(out, 'booted')),
      exitCode: exit === undefined ? undefined : parseInt(exit, 10),
      timedOut,
      consoleTail: tail(consoleText),
      logTail: tail(readIfExists(path.join(out, 'main.log')) || ''),
      files: Object.fromEntries((o.keep || []).map((n) => [n, readIfExists(path.join(out, n))])),
      wallMs: Date.now() - started,
    };
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

module.exports = { GUEST_MODULES, findUml, guestCommandLine, runInGuest };
