#!/usr/bin/env node
// A TCP transfer that survives the network it runs over: `server PORT` echoes
// what it gets and first tells each client the address it came from;
// `client HOST PORT` streams to it, and when the echo stalls (its network
// went away) connects again at once. The client prints one JSON line per
// event: {"t": ms since epoch, "up": "<address the server saw>"} when a
// connection carries data (with "local": the client's own address, i.e. which
// of its networks it went out of), {"t", "down": "<why>"} when one stops.
// `probe HOST PORT [MS]` connects once and prints the address the server
// saw (exit 1 if there is no answer within MS, default 2000).
// `probes HOST PORT EVERY_MS` makes a new connection every EVERY_MS and prints
// {"t", "ok": "<client address>"} for each that got the server's line within
// 200 ms, {"t", "fail": "<why>"} for the others (new connections, not one
// stream: how soon a disconnected network's traffic finds the next one).
// Used by test/e2e/multinet*.test.ts, scripts/bench/multinet.js and scripts/demo.sh.
'use strict';
const net = require('net');

const STALL_MS = Number(process.env.STALL_MS || 300);
const [, , mode, a, b] = process.argv;

function server(port) {
  net.createServer((s) => {
    s.on('error', () => {});
    const addr = (a) => String(a).replace(/^::ffff:/, '');
    // TELL_LOCAL=1: "<client> to <the server address it reached>" (which network of a multi-homed server answered).
    s.write(`${addr(s.remoteAddress)}${process.env.TELL_LOCAL ? ` to ${addr(s.localAddress)}` : ''}\n`);
    s.pipe(s);
  }).listen(port, () => console.log(JSON.stringify({ t: Date.now(), listening: port })));
}

function client(host, port) {
  const emit = (o) => console.log(JSON.stringify({ t: Date.now(), ...o }));
  const chunk = Buffer.alloc(1024, 'x');
  const connect = () => {
    let seen = '';
    let last = Date.now();
    let done = false;
    const s = net.connect({ host, port });
    const stop = (why) => {
      if (done) return;
      done = true;
      clearInterval(tick);
      s.destroy();
      emit({ down: why });
      setTimeout(connect, 20);
    };
    const tick = setInterval(() => {
      if (Date.now() - last > STALL_MS) stop('stalled');
      else if (s.writable && seen.includes('\n')) s.write(chunk);
    }, 10);
    s.on('data', (d) => {
      last = Date.now();
      if (!seen.includes('\n')) {
        seen += d.toString('latin1');
        const nl = seen.indexOf('\n');
        if (nl >= 0) emit({ up: seen.slice(0, nl), local: String(s.localAddress).replace(/^::ffff:/, '') });
      }
    });
    s.on('error', (e) => stop(e.code || e.message));
    s.on('close', () => stop('closed'));
  };
  connect();
}

function probe(host, port, ms) {
  const s = net.connect({ host, port });
  const fail = (why) => {
    console.error(`no answer from ${host}:${port}: ${why}`);
    process.exit(1);
  };
  const timer = setTimeout(() => fail('timed out'), ms);
  let seen = '';
  s.on('data', (d) => {
    seen += d.toString('latin1');
    const nl = seen.indexOf('\n');
    if (nl < 0) return;
    clearTimeout(timer);
    console.log(seen.slice(0, nl));
    s.destroy();
    process.exit(0);
  });
  s.on('error', (e) => fail(e.code || e.message));
}

function probes(host, port, every) {
  const once = () => {
    const t = Date.now();
    const s = net.connect({ host, port });
    let seen = '';
    let over = false;
    const done = (o) => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      s.destroy();
      console.log(JSON.stringify({ t, ...o }));
    };
    const timer = setTimeout(() => done({ fail: 'timed out' }), 200);
    s.on('data', (d) => {
      seen += d.toString('latin1');
      if (seen.includes('\n')) done({ ok: String(s.localAddress).replace(/^::ffff:/, '') });
    });
    s.on('error', (e) => done({ fail: e.code || e.message }));
  };
  setInterval(once, every);
}

if (mode === 'server') server(Number(a));
else if (mode === 'probes') probes(a, Number(b), Number(process.argv[5] || 10));
else if (mode === 'probe') probe(a, Number(b), Number(process.argv[5] || 2000));
else if (mode === 'client') client(a, Number(b));
else {
  console.error('usage: tcp-failover.js server PORT | client HOST PORT | probe HOST PORT [MS] | probes HOST PORT EVERY_MS');
  process.exit(2);
}
