#!/usr/bin/env node
// The scale benchmark's hand on etcd (scripts/bench/overlay.js runs it inside
// the namespace etcd listens in): simulated hosts' records in, out, counted.
// One JSON command per stdin line, one JSON answer per stdout line; times are
// process.hrtime (CLOCK_MONOTONIC, comparable with the parent's).
//   {"op":"txn","puts":[[k,v],...],"dels":[k,...]}  -> {"t0":ns,"t1":ns}  one transaction
//   {"op":"bulk","puts":[[k,v],...]}                 -> {"ms":n}          in transactions of 100 puts
//   {"op":"count","prefix":p}                        -> {"keys":n,"bytes":n}
//   {"op":"delprefix","prefix":p}                    -> {"deleted":n}
'use strict';
const readline = require('readline');
const { Etcd3 } = require('etcd3');

const client = new Etcd3({ hosts: [process.argv[2]] });
const now = () => process.hrtime.bigint().toString();

/** One transaction without conditions: every put and delete at one revision. */
function txn(puts = [], dels = []) {
  const success = [
    ...puts.map(([k, v]) => ({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } })),
    ...dels.map((k) => ({ request_delete_range: { key: Buffer.from(k) } })),
  ];
  return client.kv.txn({ compare: [], success, failure: [] });
}

async function handle(cmd) {
  switch (cmd.op) {
    case 'txn': {
      const t0 = now();
      await txn(cmd.puts, cmd.dels);
      return { t0, t1: now() };
    }
    case 'bulk': {
      const started = Date.now();
      for (let i = 0; i < cmd.puts.length; i += 100) await txn(cmd.puts.slice(i, i + 100));
      return { ms: Date.now() - started };
    }
    case 'count': {
      const kvs = await client.getAll().prefix(cmd.prefix).exec();
      return { keys: kvs.kvs.length, bytes: kvs.kvs.reduce((n, kv) => n + kv.key.length + kv.value.length, 0) };
    }
    case 'delprefix':
      return { deleted: Number((await client.delete().prefix(cmd.prefix).exec()).deleted) };
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    try {
      process.stdout.write(`${JSON.stringify({ ok: true, ...(await handle(JSON.parse(line))) })}\n`);
    } catch (err) {
      process.stdout.write(`${JSON.stringify({ ok: false, error: String(err && err.message ? err.message : err) })}\n`);
    }
  });
});
rl.on('close', () => chain.then(() => client.close()).then(() => process.exit(0)));
