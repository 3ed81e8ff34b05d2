// Traffic control and IFB through the facade (lib/netlink/tc.ts), against the
// real kernel in a throwaway namespace; `tc` reads back what we made.
import { Netns } from '../../lib/netns';
import { openRtnl, Rtnl, TC_H } from '../../lib/netlink';
import { Sandbox } from '../helpers/sandbox';

const sb = new Sandbox('cftc');
let nsName: string;
let ns: Netns;
let rtnl: Rtnl;

beforeAll(() => {
  nsName = sb.netns('h');
  ns = Netns.open(sb.nsPath(nsName));
  rtnl = openRtnl(ns);
  const r = sb.inNs(nsName, 'ip', ['link', 'add', 'cfa', 'type', 'veth', 'peer', 'name', 'cfb']);
  if (r.status !== 0) throw new Error(r.stderr);
});

afterAll(() => {
  rtnl?.close();
  ns?.close();
  sb.cleanup();
});

const tc = (...args: string[]): string => sb.inNs(nsName, 'tc', args).stdout;

describe('tc', () => {
  it('a device with only its built-in default qdisc reports none (like a device without qdiscs)', async () => {
    expect(await rtnl.getQdisc('cfa', TC_H.ROOT)).toBeUndefined();
    expect(await rtnl.getQdisc('cfa', TC_H.INGRESS)).toBeUndefined();
  });

  it('replaces the root with a tbf, reads it back, replaces it again, deletes it', async () => {
    await rtnl.replaceRootTbf('cfa', { rate: 1_000_000, limit: 35_000, buffer: 156_250 });
    expect(tc('qdisc', 'show', 'dev', 'cfa')).toMatch(/qdisc tbf 1: root .*rate 8Mbit burst 10000b lat 25/);
    expect(await rtnl.getQdisc('cfa', TC_H.ROOT)).toMatchObject({ kind: 'tbf', handle: 0x10000, tbf: { rate: 1_000_000, limit: 35_000, buffer: 156_250 } });
    await rtnl.replaceRootTbf('cfa', { rate: 6_000_000_000, limit: 200_000, buffer: 1000 }); // > 32 bits of bytes/s
    expect((await rtnl.getQdisc('cfa', TC_H.ROOT))?.tbf?.rate).toBe(6_000_000_000);
    await rtnl.deleteQdisc('cfa', TC_H.ROOT);
    expect(await rtnl.getQdisc('cfa', TC_H.ROOT)).toBeUndefined();
    expect(tc('qdisc', 'show', 'dev', 'cfa')).not.toMatch(/tbf/);
  });

  it('creates an IFB with an alias, redirects a device\'s ingress to it, and cleans up', async () => {
    const ifb = await rtnl.createIfb({ name: 'cfifb0', mtu: 1400, txqlen: 0, alias: 'cni-bandwidth test owner' });
    expect(ifb).toMatchObject({ kind: 'ifb', mtu: 1400, alias: 'cni-bandwidth test owner' });
    await rtnl.addIngressQdisc('cfa');
    await expect(rtnl.addIngressQdisc('cfa')).rejects.toMatchObject({ code: 'EEXIST' });
    await rtnl.addIngressRedirect('cfa', 'cfifb0');
    expect(tc('filter', 'show', 'dev', 'cfa', 'ingress')).toMatch(/u32 .*\n(.|\n)*match 00000000\/00000000 at 0(.|\n)*mirred \(Egress Redirect to device cfifb0\) stolen/);
    expect((await rtnl.getQdisc('cfa', TC_H.INGRESS))?.kind).toBe('ingress');
    await rtnl.deleteQdisc('cfa', TC_H.INGRESS);
    expect(await rtnl.getQdisc('cfa', TC_H.INGRESS)).toBeUndefined();
    await rtnl.deleteLink('cfifb0');
    expect(await rtnl.getLink('cfifb0')).toBeUndefined();
  });
});
