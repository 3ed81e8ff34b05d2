// macvlan trunk mode (Docker's `parent: eth0.10`) on a kernel with 802.1q:
// `"master": "eth0", "vlan": 10` makes eth0.10 when it is missing, removes it
// with its last user, never removes one someone else made. Real traffic: pings
// between containers, and tcpdump -e on the other end of eth0 (the "wire")
// for the 802.1q tags.
import * as fs from 'fs';
import * as path from 'path';
import { ensureBuilt } from '../helpers/build';
import { addrOf, L2Env, leftovers } from './env';

const SUBNET = '10.70.0.0/24';
const ROUTER = '10.70.0.254'; // on the wire, in VLAN 10 only

let env: L2Env;
beforeAll(() => ensureBuilt('macvlan'), 180_000);
beforeEach(() => {
  env = new L2Env();
  // The wire side: a router in VLAN 10 and nothing in VLAN 20.
  env.ip(env.wire, 'link', 'add', 'link', 'wire0', 'name', 'wire0.10', 'type', 'vlan', 'id', '10');
  env.ip(env.wire, 'addr', 'add', `${ROUTER}/24`, 'dev', 'wire0.10');
  env.ip(env.wire, 'link', 'set', 'wire0.10', 'up');
});
afterEach(() => env.sb.cleanup());

/** One network per VLAN, all in one subnet (separate ranges): only the VLAN keeps them apart. */
function conf(vlan: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: '1.1.0', name: `l2mv${vlan}`, type: 'macvlan', master: 'eth0', vlan, dataDir: env.state,
    ipam: { type: 'host-local', dataDir: env.ipamDir, ranges: [[{ subnet: SUBNET, rangeStart: `10.70.0.${vlan}`, rangeEnd: `10.70.0.${vlan + 9}` }]] },
    ...extra,
  };
}

/** The record names of a sub-interface's users (each file, named by its attachment key, holds one). */
function trunkUsers(subif: string): string[] {
  const dir = path.join(env.state, 'trunk', subif, 'users');
  return fs.existsSync(dir) ? fs.readdirSync(dir).map((n) => fs.readFileSync(path.join(dir, n), 'utf8')) : [];
}

it('creates eth0.10; VLAN 10 containers reach each other and the wire tagged 10; VLAN 20 reaches none of them; the last DEL (or GC) removes what it made', async () => {
  const [a, b, c] = [env.container('a'), env.container('b'), env.container('c')];
  const ra = env.add('macvlan', conf(10), 'ca', a);
  const rb = env.add('macvlan', conf(10), 'cb', b);
  const rc = env.add('macvlan', conf(20), 'cc', c);
  expect(env.links(env.host)).toEqual(['eth0', 'eth0.10', 'eth0.20', 'lo']);
  expect(env.ip(env.host, '-d', 'link', 'show', 'eth0.10')).toMatch(/eth0\.10@eth0: .*state UP[\s\S]*vlan protocol 802\.1Q id 10 /);
  expect(env.ip(a, '-d', 'link', 'show', 'eth0')).toMatch(/eth0@if\d+: [\s\S]*macvlan mode bridge/);

  expect(env.ping(a, addrOf(rb))).toBe(true);
  const tagged = await env.capture(env.wire, 'wire0', 'vlan and icmp', () => expect(env.ping(a, ROUTER)).toBe(true));
  expect(tagged.find((l) => l.includes(`${addrOf(ra)} > ${ROUTER}: ICMP echo request`))).toMatch(/ethertype 802\.1Q \(0x8100\), length \d+: vlan 10, p 0, ethertype IPv4/);
  expect(tagged.find((l) => l.includes(`${ROUTER} > ${addrOf(ra)}: ICMP echo reply`))).toMatch(/vlan 10, p 0/);

  // Same subnet, other VLAN: its ARP goes out tagged 20, where nobody is.
  expect(env.ping(c, addrOf(ra))).toBe(false);
  const other = await env.capture(env.wire, 'wire0', 'vlan and arp', () => expect(env.ping(c, ROUTER)).toBe(false));
  expect(other.find((l) => l.includes(`who-has ${ROUTER} tell ${addrOf(rc)}`))).toMatch(/vlan 20, p 0, ethertype ARP/);
  expect(other.filter((l) => l.includes(addrOf(rc))).every((l) => /vlan 20, p 0/.test(l))).toBe(true);

  env.ok('macvlan', 'CHECK', { ...conf(10), prevResult: ra }, { id: 'ca', netns: env.sb.nsPath(a) });
  env.ok('macvlan', 'DEL', conf(10), { id: 'ca', netns: env.sb.nsPath(a) });
  expect(env.links(env.host)).toContain('eth0.10'); // b still on it
  expect(env.ping(b, ROUTER)).toBe(true);
  env.ok('macvlan', 'DEL', conf(10), { id: 'cb', netns: env.sb.nsPath(b) });
  expect(env.links(env.host)).toEqual(['eth0', 'eth0.20', 'lo']);
  // GC: the runtime no longer knows cc; its sub-interface goes (and the macvlan on it), DEL afterwards still succeeds.
  env.ok('macvlan', 'GC', { ...conf(20), 'cni.dev/valid-attachments': [] });
  expect(env.links(env.host)).toEqual(['eth0', 'lo']);
  env.ok('macvlan', 'DEL', conf(20), { id: 'cc', netns: env.sb.nsPath(c) });
  env.ok('macvlan', 'DEL', conf(20), { id: 'cc', netns: env.sb.nsPath(c) }); // twice
  expect(env.links(env.host)).toEqual(['eth0', 'lo']);
  expect([a, b, c].map((ns) => env.links(ns))).toEqual([['lo'], ['lo'], ['lo']]);
  expect(leftovers(env.state)).toEqual([]); // no record, marker or lock left
});

it('uses a sub-interface the user made and never deletes it', () => {
  env.ip(env.host, 'link', 'add', 'link', 'eth0', 'name', 'eth0.10', 'type', 'vlan', 'id', '10');
  env.ip(env.host, 'link', 'set', 'eth0.10', 'up');
  const before = env.ip(env.host, '-o', 'link', 'show', 'eth0.10').split(':')[0];
  const a = env.container('a');
  env.add('macvlan', conf(10), 'ca', a);
  expect(env.ping(a, ROUTER)).toBe(true);
  env.ok('macvlan', 'DEL', conf(10), { id: 'ca', netns: env.sb.nsPath(a) });
  expect(env.ip(env.host, '-o', 'link', 'show', 'eth0.10').split(':')[0]).toBe(before); // the same link, still there
  env.ok('macvlan', 'GC', { ...conf(10), 'cni.dev/valid-attachments': [] });
  expect(env.links(env.host)).toEqual(['eth0', 'eth0.10', 'lo']);
  expect(leftovers(env.state)).toEqual([]);
});

it('two concurrent ADDs on a new VLAN create it once; both DELs remove it', async () => {
  const [a, b] = [env.container('a'), env.container('b')];
  const [ra, rb] = await Promise.all([
    env.runAsync('macvlan', 'ADD', conf(10), { id: 'ca', netns: env.sb.nsPath(a) }),
    env.runAsync('macvlan', 'ADD', conf(10), { id: 'cb', netns: env.sb.nsPath(b) }),
  ]);
  expect([ra.status, rb.status, ra.stderr + rb.stderr]).toEqual([0, 0, expect.any(String)]);
  // One of them created it, and it is recorded as ours, with both users.
  expect(JSON.parse(fs.readFileSync(path.join(env.state, 'trunk', 'eth0.10', 'created'), 'utf8'))).toMatchObject({ master: 'eth0', vlan: 10 });
  expect(trunkUsers('eth0.10').sort()).toEqual(['l2mv10:ca:eth0', 'l2mv10:cb:eth0']);
  expect(env.ping(a, addrOf(rb.json))).toBe(true);
  const [da, db] = await Promise.all([
    env.runAsync('macvlan', 'DEL', conf(10), { id: 'ca', netns: env.sb.nsPath(a) }),
    env.runAsync('macvlan', 'DEL', conf(10), { id: 'cb', netns: env.sb.nsPath(b) }),
  ]);
  expect([da.status, db.status]).toEqual([0, 0]);
  expect(env.links(env.host)).toEqual(['eth0', 'lo']);
  expect(leftovers(env.state)).toEqual([]);
});
