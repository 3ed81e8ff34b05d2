// One contract, two backends: the embedded file store and a real etcd behave
// the same for everything the overlay agent relies on (revisions, CAS, leases,
// watch + compaction) and for the overlay schema on top (sticky subnets,
// concurrent claims, CIDR full, host records that vanish with their lease).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { EtcdStore } from '../../plugins/vxlan-overlay/store/etcd-store';
import { FileStore } from '../../plugins/vxlan-overlay/store/file-store';
import { HostChange, HostRecord, OverlayStore, OverlayStoreError } from '../../plugins/vxlan-overlay/store/overlay';
import { createIfAbsent, KvStore, LeaseNotFoundError, WatchEvent, WatchHandle } from '../../plugins/vxlan-overlay/store/types';
import { EtcdServer, startEtcd } from '../helpers/etcd';

interface Backend {
  name: string;
  setup(): Promise<void>;
  /** A new client on the same store (another agent, or the same one after a restart). */
  client(): KvStore;
  teardown(): Promise<void>;
}

function fileBackend(): Backend {
  let dir = '';
  return {
    name: 'file',
    async setup() { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cni-test-ovstore-')); },
    client: () => new FileStore({ dir, pollMs: 100 }),
    async teardown() { if (dir) fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

function etcdBackend(): Backend {
  let server: EtcdServer | undefined;
  return {
    name: 'etcd',
    async setup() { server = await startEtcd(); },
    client: () => new EtcdStore({ endpoints: [server!.endpoint] }),
    async teardown() { await server?.stop(); },
  };
}

/** Collects watch events; waitFor resolves once a predicate over everything seen holds. */
class Recorder {
  events: WatchEvent[] = [];
  compacted = false;
  errors: Error[] = [];
  private waiters: Array<() => void> = [];
  readonly listener = {
    onEvents: (evs: WatchEvent[]) => { this.events.push(...evs); this.wake(); },
    onCompacted: () => { this.compacted = true; this.wake(); },
    onError: (err: Error) => { this.errors.push(err); this.wake(); },
  };
  private wake(): void { for (const w of this.waiters.splice(0)) w(); }
  async waitFor(what: string, pred: () => boolean, timeoutMs = 8000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (this.errors.length > 0) throw this.errors[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(this.events)} compacted=${this.compacted}`);
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, Math.min(left, 200)); });
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each([fileBackend(), etcdBackend()])('overlay store contract: $name backend', (backend) => {
  let kv: KvStore;
  const extra: KvStore[] = [];
  const watches: WatchHandle[] = [];
  let n = 0;
  let p = '';
  const another = (): KvStore => { const c = backend.client(); extra.push(c); return c; };
  const watch = (store: KvStore, prefix: string, from: number, rec: Recorder) => { watches.push(store.watch(prefix, from, rec.listener)); };

  beforeAll(async () => { await backend.setup(); kv = backend.client(); }, 30000);
  afterAll(async () => {
    await kv?.close();
    await backend.teardown();
  });
  beforeEach(() => { p = `/t/${backend.name}/${++n}/`; });
  afterEach(async () => {
    for (const w of watches.splice(0)) w.cancel();
    for (const c of extra.splice(0)) await c.close();
  });

  it('puts, gets, lists in key order and deletes single keys and prefixes', async () => {
    await kv.put(`${p}b`, '2');
    await kv.put(`${p}a`, '1');
    await kv.put(`${p}sub/c`, '3');
    await kv.put(`/t/${backend.name}/other`, 'x');
    expect((await kv.get(`${p}a`))?.value).toBe('1');
    expect(await kv.get(`${p}missing`)).toBeUndefined();
    const listed = await kv.list(p);
    expect(listed.kvs.map((k) => [k.key, k.value])).toEqual([[`${p}a`, '1'], [`${p}b`, '2'], [`${p}sub/c`, '3']]);
    expect(listed.revision).toBeGreaterThanOrEqual(Math.max(...listed.kvs.map((k) => k.modRevision)));
    expect(await kv.delete(`${p}a`)).toBe(1);
    expect(await kv.delete(`${p}a`)).toBe(0);
    expect(await kv.delete(p, { prefix: true })).toBe(2);
    expect((await kv.list(p)).kvs).toEqual([]);
    expect((await kv.get(`/t/${backend.name}/other`))?.value).toBe('x');
  });

  it('bumps the revision on every write; createRevision stays until the key is deleted', async () => {
    const r1 = await kv.put(`${p}k`, 'v1');
    const r2 = await kv.put(`${p}k`, 'v2');
    expect(r2).toBeGreaterThan(r1);
    const kv2 = await kv.get(`${p}k`);
    expect(kv2).toMatchObject({ value: 'v2', createRevision: r1, modRevision: r2 });
    await kv.delete(`${p}k`);
    const r3 = await kv.put(`${p}k`, 'v3');
    expect(r3).toBeGreaterThan(r2 + 1);
    expect(await kv.get(`${p}k`)).toMatchObject({ createRevision: r3, modRevision: r3 });
    // A second client sees the same revisions.
    expect(await another().get(`${p}k`)).toMatchObject({ value: 'v3', createRevision: r3 });
  });

  it('txn: create-if-absent loses against an existing key; modRevision guards an update', async () => {
    expect(await createIfAbsent(kv, `${p}owner`, 'a')).toBe(true);
    expect(await createIfAbsent(another(), `${p}owner`, 'b')).toBe(false);
    expect((await kv.get(`${p}owner`))?.value).toBe('a');

    const cur = (await kv.get(`${p}owner`))!;
    const stale = await kv.txn({
      compare: [{ key: `${p}owner`, target: 'modRevision', equals: cur.modRevision - 1 }],
      success: [{ type: 'put', key: `${p}owner`, value: 'stale' }],
      failure: [{ type: 'put', key: `${p}lost`, value: 'yes' }],
    });
    expect(stale.succeeded).toBe(false);
    expect((await kv.get(`${p}owner`))?.value).toBe('a');
    expect((await kv.get(`${p}lost`))?.value).toBe('yes');

    const fresh = await kv.txn({
      compare: [{ key: `${p}owner`, target: 'modRevision', equals: cur.modRevision }, { key: `${p}owner`, target: 'value', equals: 'a' }],
      success: [{ type: 'put', key: `${p}owner`, value: 'c' }, { type: 'put', key: `${p}also`, value: 'c' }],
    });
    expect(fresh.succeeded).toBe(true);
    const [owner, also] = [await kv.get(`${p}owner`), await kv.get(`${p}also`)];
    expect(owner?.value).toBe('c');
    expect(owner?.modRevision).toBe(also?.modRevision); // one txn, one revision
  });

  it('a lease that is not kept alive expires and deletes its keys with delete events; a kept one stays', async () => {
    const dying = await kv.grantLease(2);
    const kept = await kv.grantLease(2);
    await kv.put(`${p}dying`, 'd', { lease: dying });
    const rev = await kv.put(`${p}kept`, 'k', { lease: kept });
    expect((await kv.get(`${p}dying`))?.lease).toBe(dying);
    const rec = new Recorder();
    watch(another(), p, rev + 1, rec);
    let keeping = true;
    const loop = (async () => { while (keeping) { await kv.keepAlive(kept); await sleep(500); } })();
    try {
      await rec.waitFor('the delete event of the expired key', () => rec.events.some((e) => e.type === 'delete' && e.key === `${p}dying`));
      await sleep(1000); // longer than half the TTL after expiry: the kept lease would be gone too without keepalives
      expect(await kv.get(`${p}dying`)).toBeUndefined();
      expect((await kv.get(`${p}kept`))?.value).toBe('k');
    } finally {
      keeping = false;
      await loop;
    }
    await expect(kv.keepAlive(dying)).rejects.toBeInstanceOf(LeaseNotFoundError);
    await expect(kv.put(`${p}late`, 'x', { lease: dying })).rejects.toBeInstanceOf(LeaseNotFoundError);
    expect(rec.events.filter((e) => e.key === `${p}kept`)).toEqual([]);
    await kv.revokeLease(kept);
  });

  it('revoking a lease deletes all its keys in one revision; a second revoke is a no-op', async () => {
    const lease = await kv.grantLease(30);
    await kv.put(`${p}a`, '1', { lease });
    await kv.put(`${p}b`, '2', { lease });
    const rev = await kv.put(`${p}free`, '3');
    const rec = new Recorder();
    watch(kv, p, rev + 1, rec);
    expect(await kv.revokeLease(lease)).toBe(true);
    expect(await kv.revokeLease(lease)).toBe(false);
    expect((await kv.list(p)).kvs.map((k) => k.key)).toEqual([`${p}free`]);
    await rec.waitFor('two delete events', () => rec.events.length >= 2);
    expect(rec.events.map((e) => [e.type, e.key])).toEqual([['delete', `${p}a`], ['delete', `${p}b`]]);
    expect(rec.events[0].modRevision).toBe(rec.events[1].modRevision);
  });

  it('watch from a revision replays later history in order, then delivers live events', async () => {
    const start = await kv.put(`${p}k1`, 'before');
    await kv.put(`${p}k2`, 'v2');
    await kv.delete(`${p}k1`);
    await kv.txn({ compare: [], success: [{ type: 'put', key: `${p}k3`, value: 'a' }, { type: 'put', key: `${p}k4`, value: 'b' }] });
    await kv.put('/t/elsewhere', 'not under the prefix');
    const rec = new Recorder();
    watch(another(), p, start + 1, rec);
    await rec.waitFor('the replayed history', () => rec.events.length >= 4);
    await kv.put(`${p}k5`, 'live');
    await rec.waitFor('the live event', () => rec.events.length >= 5);
    expect(rec.events.map((e) => [e.type, e.key.slice(p.length), e.value])).toEqual([
      ['put', 'k2', 'v2'], ['delete', 'k1', ''], ['put', 'k3', 'a'], ['put', 'k4', 'b'], ['put', 'k5', 'live'],
    ]);
    const revs = rec.events.map((e) => e.modRevision);
    expect(revs[0]).toBe(start + 1);
    expect(revs[1]).toBeGreaterThan(revs[0]);
    expect(revs[3]).toBe(revs[2]);
    expect(revs[4]).toBeGreaterThan(revs[3]);
  });

  it('a watch from before a compaction says compacted; a watch from after it works', async () => {
    const old = await kv.put(`${p}a`, '1');
    await kv.put(`${p}a`, '2');
    const now = await kv.put(`${p}a`, '3');
    await kv.compact(now);
    const stale = new Recorder();
    watch(another(), p, old + 1, stale);
    await stale.waitFor('the compacted signal', () => stale.compacted);
    expect(stale.events).toEqual([]);
    const fresh = new Recorder();
    watch(kv, p, now, fresh);
    await fresh.waitFor('the event at the compaction revision', () => fresh.events.length >= 1);
    expect(fresh.compacted).toBe(false);
    expect(fresh.events[0]).toMatchObject({ type: 'put', value: '3', modRevision: now });
  });

  describe('overlay schema', () => {
    const network = () => `net${n}`;
    const record = (hostID: string, subnet: string): HostRecord =>
      ({ hostID, underlayIP: '192.0.2.1', vtepMAC: '02:00:00:00:00:01', vni: 42, port: 4789, mtu: 1450, subnet });

    it('creates the network config once and refuses a conflicting one, naming the field', async () => {
      const ov = new OverlayStore(kv, network());
      expect(await ov.ensureNetworkConfig({ cidr: '10.244.0.0/16', vni: 42 })).toEqual({ cidr: '10.244.0.0/16', subnetLength: 24, vni: 42, port: 4789 });
      await expect(new OverlayStore(another(), network()).ensureNetworkConfig({ cidr: '10.244.0.0/16', vni: 42 })).resolves.toMatchObject({ vni: 42 });
      const err = await new OverlayStore(another(), network()).ensureNetworkConfig({ cidr: '10.245.0.0/16', vni: 42 }).catch((e) => e);
      expect(err).toBeInstanceOf(OverlayStoreError);
      expect(err.reason).toBe('config-conflict');
      expect(err.message).toMatch(/cidr is 10\.244\.0\.0\/16 in the store, 10\.245\.0\.0\/16 in this config/);
    });

    it('keeps a host subnet across a restart, and frees it on release', async () => {
      await new OverlayStore(kv, network()).ensureNetworkConfig({ cidr: '10.50.0.0/16', vni: 7 });
      const first = another();
      const a = await new OverlayStore(first, network()).claimSubnet('host-a');
      expect(a).toEqual({ subnet: '10.50.0.0/24', created: true });
      const b = await new OverlayStore(kv, network()).claimSubnet('host-b');
      expect(b.subnet).toBe('10.50.1.0/24');
      await first.close();
      const restarted = new OverlayStore(another(), network());
      expect(await restarted.claimSubnet('host-a')).toEqual({ subnet: '10.50.0.0/24', created: false });
      expect(await restarted.releaseSubnet('host-a')).toEqual(['10.50.0.0/24']);
      expect(await restarted.releaseSubnet('host-a')).toEqual([]);
      expect(await new OverlayStore(kv, network()).claimSubnet('host-c')).toEqual({ subnet: '10.50.0.0/24', created: true });
    });

    it('dual-stack: the IPv6 subnet is paired with the IPv4 one; an IPv4 network becomes dual-stack in place', async () => {
      const v4 = new OverlayStore(kv, network());
      await v4.ensureNetworkConfig({ cidr: '10.90.0.0/16', vni: 11 });
      expect(await v4.claimSubnet('old')).toEqual({ subnet: '10.90.0.0/24', created: true });
      // A host with the IPv6 CIDR upgrades the config (one txn); later claims, also the old host's, carry the pair.
      const dual = new OverlayStore(another(), network());
      expect(await dual.ensureNetworkConfig({ cidr: '10.90.0.0/16', vni: 11, ipv6Cidr: 'fd00:90:0::/56' }))
        .toEqual({ cidr: '10.90.0.0/16', subnetLength: 24, vni: 11, port: 4789, ipv6Cidr: 'fd00:90::/56', ipv6SubnetLength: 64 });
      expect(await dual.claimSubnet('new')).toEqual({ subnet: '10.90.1.0/24', subnet6: 'fd00:90:0:1::/64', created: true });
      expect(await dual.claimSubnet('old')).toEqual({ subnet: '10.90.0.0/24', subnet6: 'fd00:90::/64', created: false });
      // A config without IPv6 joins the dual-stack network as it is; another IPv6 CIDR is a conflict.
      expect(await v4.ensureNetworkConfig({ cidr: '10.90.0.0/16', vni: 11 })).toMatchObject({ ipv6Cidr: 'fd00:90::/56' });
      const err = await v4.ensureNetworkConfig({ cidr: '10.90.0.0/16', vni: 11, ipv6Cidr: 'fd00:91::/56' }).catch((e) => e);
      expect(err).toMatchObject({ reason: 'config-conflict' });
      expect(err.message).toMatch(/ipv6Cidr is fd00:90::\/56 in the store, fd00:91::\/56 in this config/);
      // Releasing the IPv4 subnet releases the pair: the next host gets both.
      expect(await dual.releaseSubnet('old')).toEqual(['10.90.0.0/24']);
      expect(await v4.claimSubnet('third')).toEqual({ subnet: '10.90.0.0/24', subnet6: 'fd00:90::/64', created: true });
    });

    it('says clearly when the cluster CIDR is full', async () => {
      const ov = new OverlayStore(kv, network());
      await ov.ensureNetworkConfig({ cidr: '10.60.0.0/23', subnetLength: 24, vni: 8 });
      await ov.claimSubnet('h1');
      await ov.claimSubnet('h2');
      const err = await ov.claimSubnet('h3').catch((e) => e);
      expect(err).toBeInstanceOf(OverlayStoreError);
      expect(err.reason).toBe('cidr-full');
      expect(err.message).toMatch(/no free \/24 subnet left in 10\.60\.0\.0\/23 for host "h3"/);
      expect(await ov.claimSubnet('h1')).toEqual({ subnet: '10.60.0.0/24', created: false });
    });

    it('two clients claiming at the same time never get the same subnet', async () => {
      await new OverlayStore(kv, network()).ensureNetworkConfig({ cidr: '10.70.0.0/24', subnetLength: 28, vni: 9 });
      const [x, y] = [new OverlayStore(another(), network()), new OverlayStore(another(), network())];
      const claims = await Promise.all(Array.from({ length: 14 }, (_, i) => (i % 2 ? x : y).claimSubnet(`host-${i}`)));
      const subnets = claims.map((c) => c.subnet);
      expect(new Set(subnets).size).toBe(14);
      const stored = await x.listSubnets();
      expect(stored.size).toBe(14);
      for (let i = 0; i < 14; i++) expect(stored.get(subnets[i])?.hostID).toBe(`host-${i}`);
    });

    it('a host that won two subnets in a race keeps the lowest and gives the other back', async () => {
      const ov = new OverlayStore(kv, network());
      await ov.ensureNetworkConfig({ cidr: '10.71.0.0/24', subnetLength: 28, vni: 9 });
      await kv.put(ov.subnetKey('10.71.0.32/28'), 'twin');
      await kv.put(ov.subnetKey('10.71.0.16/28'), 'twin');
      expect(await new OverlayStore(another(), network()).claimSubnet('twin')).toEqual({ subnet: '10.71.0.16/28', created: false });
      expect([...(await ov.listSubnets()).keys()]).toEqual(['10.71.0.16/28']);
    });

    it('publishes host records on a lease; watchers see them come and go; no record for a foreign subnet', async () => {
      const ov = new OverlayStore(kv, network());
      await ov.ensureNetworkConfig({ cidr: '10.80.0.0/16', vni: 10 });
      const { subnet } = await ov.claimSubnet('host-a');
      const { revision } = await ov.listHosts();
      const changes: HostChange[] = [];
      const rec = new Recorder();
      watches.push(new OverlayStore(another(), network()).watchHosts(revision + 1, {
        onChanges: (c) => { changes.push(...c); rec.listener.onEvents([]); },
        onCompacted: rec.listener.onCompacted,
        onError: rec.listener.onError,
      }));
      const lease = await kv.grantLease(30);
      await ov.publishHost(record('host-a', subnet), lease);
      const listed = await ov.listHosts();
      expect(listed.hosts).toEqual([record('host-a', subnet)]);
      const err = await ov.publishHost(record('host-b', subnet), lease).catch((e) => e);
      expect(err).toMatchObject({ reason: 'not-assigned' });
      await kv.revokeLease(lease); // SIGTERM: the record goes, the subnet stays
      await rec.waitFor('put and delete of host-a', () => changes.length >= 2);
      expect(changes.map((c) => [c.type, c.type === 'put' ? c.host.hostID : c.hostID])).toEqual([['put', 'host-a'], ['delete', 'host-a']]);
      expect((await ov.listHosts()).hosts).toEqual([]);
      expect(await ov.claimSubnet('host-a')).toEqual({ subnet, created: false });
    });
  });
});
