// Which network of a container answers a host port it publishes on several
// (plugins/portmap/publications.ts): the lowest default-route metric of the
// port's family, then the earliest attached; and what changes hands.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { PortmapEntry, PortmapNetwork } from '../../lib/firewall/portmap';
import { answering, claimKey, handovers, nextOrder, type Publication } from '../../plugins/portmap/publications';
import { containerDir, otherPublications, withContainer, writeRecord } from '../../plugins/portmap/store';

const entry = (family: 4 | 6, containerIP: string, hostPort = 8080): PortmapEntry => ({ family, protocol: 'tcp', hostPort, containerIP, containerPort: 80 });
const pub = (network: string, order: number, metrics: Publication['metrics'], entries: PortmapEntry[]): Publication => ({ network, ifname: `eth${order}`, order, metrics, entries });

const A = pub('A', 1, { 4: 1000000, 6: 1000000 }, [entry(4, '10.1.0.2'), entry(6, 'fd00:1::2')]);
const B = pub('B', 2, { 4: 1000001, 6: 1000001 }, [entry(4, '10.2.0.2'), entry(6, 'fd00:2::2')]);
const Bhigh = pub('B', 2, { 4: 999000 }, [entry(4, '10.2.0.2'), entry(6, 'fd00:2::2')]);
const C = pub('C', 3, {}, [entry(4, '10.3.0.2'), entry(4, '10.3.0.2', 9090)]);

describe('portmap publications', () => {
  it('the first attached answers among equal metrics; a lower metric (higher gwPriority) wins, per family', () => {
    const k4 = claimKey(entry(4, 'x'));
    const k6 = claimKey(entry(6, 'x'));
    expect(answering([A, B]).get(k4)?.network).toBe('A');
    expect(answering([B, A]).get(k4)?.network).toBe('A');
    const m = answering([A, Bhigh]);
    expect([m.get(k4)?.network, m.get(k6)?.network]).toEqual(['B', 'A']);
  });

  it('an attachment without a default route answers only when no other publishes the port', () => {
    const m = answering([C, B]);
    expect(m.get(claimKey(entry(4, 'x')))?.network).toBe('B');
    expect(m.get(claimKey(entry(4, 'x', 9090)))?.network).toBe('C');
  });

  it('hands the ports of a leaving network to the next, and gives up ports no one else publishes', () => {
    const h = handovers([A, B, C], [B, C]);
    expect(h.map((x) => [x.key, x.from?.network, x.to?.network])).toEqual([
      ['4 * tcp 8080', 'A', 'B'],
      ['6 * tcp 8080', 'A', 'B'],
    ]);
    expect(handovers([C], []).map((x) => [x.key, x.from?.network, x.to])).toEqual([['4 * tcp 8080', 'C', undefined], ['4 * tcp 9090', 'C', undefined]]);
    // Joining: only the ports the newcomer answers change hands.
    expect(handovers([A], [A, B])).toEqual([]);
    expect(handovers([A], [A, Bhigh]).map((x) => [x.key, x.from?.network, x.to?.network])).toEqual([['4 * tcp 8080', 'A', 'B']]);
  });

  it('numbers publications in attach order', () => {
    expect(nextOrder([])).toBe(1);
    expect(nextOrder([A, C])).toBe(4);
  });
});

describe("a container's publications on disk (plugins/portmap/store.ts)", () => {
  const LONG_ID = 'c'.repeat(1000);
  const net: PortmapNetwork = { network: 'x' } as unknown as PortmapNetwork;
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mnpub-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a 1000-character container ID: each network sees the others, the directory goes with the last', async () => {
    for (const [network, ifname] of [['A', 'eth0'], ['B', 'eth1']]) {
      writeRecord(dir, { network, containerID: LONG_ID, ifname, entries: [entry(4, '10.1.0.2')] }, { order: ifname === 'eth0' ? 1 : 2, metrics: {}, net });
      await withContainer(dir, LONG_ID, async (c) => c.add(network, ifname));
    }
    expect(otherPublications(dir, LONG_ID, 'A', 'eth0').map((r) => r.network)).toEqual(['B']);
    expect(otherPublications(dir, LONG_ID, 'B', 'eth1').map((r) => r.network)).toEqual(['A']);
    expect(otherPublications(dir, 'c'.repeat(999), 'A', 'eth0')).toEqual([]);
    await withContainer(dir, LONG_ID, async (c) => c.remove('A', 'eth0'));
    expect(fs.existsSync(containerDir(dir, LONG_ID))).toBe(true);
    await withContainer(dir, LONG_ID, async (c) => c.remove('B', 'eth1'));
    expect(fs.existsSync(containerDir(dir, LONG_ID))).toBe(false);
  });
});
