// Trunk mode without a kernel: the 802.1q request the plugin would send, the
// keep/delete decision, and the records DEL/GC/rollback act on (a fake Rtnl
// stands in for the kernel; the records and the flock are real, in a temp dir).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CniError } from '../../lib/cni/errors';
import { NetlinkError, decodeLink, type Link, type Rtnl } from '../../lib/netlink';
import { buildMacvlanRequest } from '../../lib/netlink/requests';
import { IFINFOMSG_LEN, IFLA, IFLA_INFO, IFLA_VLAN, NLM_F, RTM, attrMap, readStr } from '../../lib/netlink/wire';
import { attachSubInterface, isVlanUnsupported, releaseSubInterfaces } from '../../plugins/macvlan/link';
import {
  decideSubInterface, parseUserRecordName, planSubInterface, staleUserRecords, subInterfaceName, subInterfaceRequest, userRecordName,
} from '../../plugins/macvlan/trunk';
import { TrunkState } from '../../plugins/macvlan/trunk-state';

describe('the 802.1q sub-interface request', () => {
  it('is RTM_NEWLINK "<master>.<vlan>" of kind vlan on the master, with the master MTU', () => {
    const spec = planSubInterface({ name: 'eth0', index: 7, mtu: 9000 }, 100);
    expect(spec).toEqual({ name: 'eth0.100', parentIndex: 7, vlanId: 100, mtu: 9000 });
    const req = subInterfaceRequest(spec);
    expect(req.type).toBe(RTM.NEWLINK);
    expect(req.flags).toBe(NLM_F.CREATE | NLM_F.EXCL);
    const a = attrMap(req.data.subarray(IFINFOMSG_LEN));
    expect(readStr(a.get(IFLA.IFNAME)!)).toBe('eth0.100');
    expect(a.get(IFLA.MTU)!.readUInt32LE(0)).toBe(9000);
    expect(a.get(IFLA.LINK)!.readUInt32LE(0)).toBe(7);
    const info = attrMap(a.get(IFLA.LINKINFO)!);
    expect(readStr(info.get(IFLA_INFO.KIND)!)).toBe('vlan');
    const data = attrMap(info.get(IFLA_INFO.DATA)!);
    expect(data.get(IFLA_VLAN.ID)!.readUInt16LE(0)).toBe(100);
    expect(data.get(IFLA_VLAN.PROTOCOL)!.readUInt16BE(0)).toBe(0x8100); // network byte order
  });

  it('refuses a name longer than 15 bytes with code 7', () => {
    expect(subInterfaceName('enp0s31f6', 4094)).toBe('enp0s31f6.4094');
    let thrown: unknown;
    try { subInterfaceName('enp0s31f6abc', 4094); } catch (e) { thrown = e; }
    expect(thrown).toBeInstanceOf(CniError);
    expect((thrown as CniError).code).toBe(7);
    expect((thrown as CniError).message).toMatch(/"enp0s31f6abc\.4094" is longer than 15 bytes/);
  });
});

describe('decideSubInterface', () => {
  const ours = { ifindex: 12, master: 'eth0', vlan: 10 };
  const link = { index: 12, kind: 'vlan' };
  it.each<[string, Parameters<typeof decideSubInterface>[0], string]>([
    ['ours, unused → delete', { link, marker: ours, users: 0 }, 'delete'],
    ['ours, still used → keep', { link, marker: ours, users: 1 }, 'keep'],
    ['ours, a host macvlan on it → keep', { link, marker: ours, users: 0, hostChildren: 1 }, 'keep'],
    ['not ours (user-made), still used → keep', { link, users: 1 }, 'keep'],
    ['not ours (user-made), unused → forget our records, never the link', { link, users: 0 }, 'forget'],
    ['gone, we had made it → forget', { marker: ours, users: 0 }, 'forget'],
    ['gone, never ours, unused → forget', { users: 0 }, 'forget'],
    ['gone, never ours, still recorded users → keep', { users: 1 }, 'keep'],
    ['re-created by someone else (other ifindex) → forget', { link: { index: 40, kind: 'vlan' }, marker: ours, users: 0 }, 'forget'],
    ['replaced by another kind → forget', { link: { index: 12, kind: 'bridge' }, marker: ours, users: 0 }, 'forget'],
  ])('%s', (_what, state, action) => {
    expect(decideSubInterface(state).action).toBe(action);
  });
});

describe('user records', () => {
  it('round-trips and finds this network\'s stale records only', () => {
    const r = userRecordName({ network: 'n1', containerId: 'c1', ifname: 'eth0' });
    expect(parseUserRecordName(r)).toEqual({ network: 'n1', containerId: 'c1', ifname: 'eth0' });
    const records = ['n1:a:eth0', 'n1:b:eth0', 'n1:b:net1', 'n2:a:eth0'];
    expect(staleUserRecords(records, 'n1', [{ containerID: 'b', ifname: 'eth0' }])).toEqual(['n1:a:eth0', 'n1:b:net1']);
    expect(staleUserRecords(records, 'n1', [])).toEqual(['n1:a:eth0', 'n1:b:eth0', 'n1:b:net1']);
  });
});

/** A kernel stand-in: links by name, createVlan/deleteLink recorded. */
class FakeRtnl {
  links = new Map<string, Link>();
  deleted: string[] = [];
  created: string[] = [];
  nextIndex = 100;
  vlanError?: Error;

  add(name: string, kind?: string, extra: Partial<Link> = {}): Link {
    const l: Link = { index: this.nextIndex++, name, kind, mac: '02:00:00:00:00:00', mtu: 1500, up: false, operUp: false, flags: 0, ...extra };
    this.links.set(name, l);
    return l;
  }
  private byRef(ref: number | string): Link | undefined {
    return typeof ref === 'string' ? this.links.get(ref) : [...this.links.values()].find((l) => l.index === ref);
  }
  async getLink(ref: number | string) { return this.byRef(ref); }
  async requireLink(ref: number | string) {
    const l = this.byRef(ref);
    if (!l) throw new NetlinkError('ENODEV', `link ${ref} not found`);
    return l;
  }
  async listLinks() { return [...this.links.values()]; }
  async createVlan(o: { name: string; mtu?: number }) {
    if (this.vlanError) throw this.vlanError;
    this.created.push(o.name);
    return this.add(o.name, 'vlan', { mtu: o.mtu ?? 1500 });
  }
  async setLinkUp(ref: number) { this.byRef(ref)!.up = true; }
  async deleteLink(ref: number) {
    const l = this.byRef(ref);
    if (!l) throw new NetlinkError('ENODEV', 'gone');
    this.links.delete(l.name);
    this.deleted.push(l.name);
  }
}

describe('attach and release of the sub-interface (records on disk, fake kernel)', () => {
  let dir: string;
  let fake: FakeRtnl;
  let state: TrunkState;
  let master: Link;
  const rtnl = () => fake as unknown as Rtnl;
  const only = (user: string) => (_s: string, users: string[]) => users.filter((u) => u === user);

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mvtrunk-'));
    fake = new FakeRtnl();
    state = new TrunkState(dir);
    master = fake.add('eth0', undefined, { mtu: 9000 });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates the sub-interface once (master MTU, up), and deletes it with its last user', async () => {
    const a = await attachSubInterface({ rtnl: rtnl(), state, master, vlan: 10, user: 'n1:a:eth0' });
    const b = await attachSubInterface({ rtnl: rtnl(), state, master, vlan: 10, user: 'n2:b:eth0' });
    expect(a.index).toBe(b.index);
    expect(fake.created).toEqual(['eth0.10']);
    expect(a).toMatchObject({ name: 'eth0.10', mtu: 9000, up: true });
    expect(state.users('eth0.10')).toEqual(['n1:a:eth0', 'n2:b:eth0']);

    expect(await releaseSubInterfaces({ rtnl: rtnl(), state, staleUsers: only('n1:a:eth0') })).toEqual([]);
    expect(fake.deleted).toEqual([]); // n2:b still uses it
    expect(await releaseSubInterfaces({ rtnl: rtnl(), state, staleUsers: only('n1:a:eth0') })).toEqual([]); // DEL twice
    expect(fake.deleted).toEqual([]);
    await releaseSubInterfaces({ rtnl: rtnl(), state, staleUsers: only('n2:b:eth0') });
    expect(fake.deleted).toEqual(['eth0.10']);
    expect(state.subInterfaces()).toEqual([]);
  });

  it('never deletes a sub-interface it did not create', async () => {
    fake.add('eth0.20', 'vlan');
    await attachSubInterface({ rtnl: rtnl(), state, master, vlan: 20, user: 'n1:a:eth0' });
    expect(fake.created).toEqual([]);
    await releaseSubInterfaces({ rtnl: rtnl(), state, staleUsers: only('n1:a:eth0') });
    expect(fake.deleted).toEqual([]);
    expect(fake.links.has('eth0.20')).toBe(true);
  });

  it('keeps two VLANs of one master apart', async () => {
    await attachSubInterface({ rtnl: rtnl(), state, master, vlan: 10, user: 'n1:a:eth0' });
    await attachSubInterface({ rtnl: rtnl(), state, master, vlan: 20, user: 'n2:b:eth0' });
    await releaseSubInterfaces({ rtnl: rtnl(), state, staleUsers: only('n1:a:eth0') });
    expect(fake.deleted).toEqual(['eth0.10']);
    expect(fake.links.has('eth0.20')).toBe(true);
  });

  it('keeps it while a host-namespace macvlan sits on it, even with no records', async () => {
    const sub = await attachSubInterface({ rtnl: rtnl(), state, master, vlan: 10, user: 'n1:a:eth0' });
    fake.add('mvhost', 'macvlan', { peerIndex: sub.index });
    await releaseSubInterfaces({ rtnl: rtnl(), state, staleUsers: only('n1:a:eth0') });
    expect(fake.deleted).toEqual([]);
  });

  it('forgets its records when the sub-interface vanished, without touching a namesake', async () => {
    await attachSubInterface({ rtnl: rtnl(), state, master, vlan: 10, user: 'n1:a:eth0' });
    fake.links.delete('eth0.10');
    fake.add('eth0.10', 'vlan'); // someone re-created it: another ifindex
    await releaseSubInterfaces({ rtnl: rtnl(), state, staleUsers: only('n1:a:eth0') });
    expect(fake.deleted).toEqual([]);
    expect(state.subInterfaces()).toEqual([]);
  });

  it('GC drops this network\'s invalid attachments only, then deletes what became unused', async () => {
    await attachSubInterface({ rtnl: rtnl(), state, master, vlan: 10, user: 'n1:a:eth0' });
    await attachSubInterface({ rtnl: rtnl(), state, master, vlan: 10, user: 'n1:b:eth0' });
    await attachSubInterface({ rtnl: rtnl(), state, master, vlan: 30, user: 'n1:c:eth0' });
    await attachSubInterface({ rtnl: rtnl(), state, master, vlan: 30, user: 'n2:z:eth0' });
    const gc = (_s: string, users: string[]) => staleUserRecords(users, 'n1', [{ containerID: 'b', ifname: 'eth0' }]);
    expect(await releaseSubInterfaces({ rtnl: rtnl(), state, staleUsers: gc })).toEqual([]);
    expect(state.users('eth0.10')).toEqual(['n1:b:eth0']);
    expect(state.users('eth0.30')).toEqual(['n2:z:eth0']);
    expect(fake.deleted).toEqual([]);
    const gcAll = (_s: string, users: string[]) => staleUserRecords(users, 'n1', []);
    await releaseSubInterfaces({ rtnl: rtnl(), state, staleUsers: gcAll });
    expect(fake.deleted).toEqual(['eth0.10']);
    expect(fake.links.has('eth0.30')).toBe(true);
  });

  it('explains a kernel without 802.1q and records nothing', async () => {
    fake.vlanError = new NetlinkError('EOPNOTSUPP', 'creating vlan "eth0.10" (id 10) on link #100: EOPNOTSUPP (not supported by this kernel)');
    await expect(attachSubInterface({ rtnl: rtnl(), state, master, vlan: 10, user: 'n1:a:eth0' })).rejects.toThrow(/the kernel has no 802\.1q \(8021q\) support/);
    expect(state.users('eth0.10')).toEqual([]);
  });

  it('recognises "no 802.1q" errors', () => {
    expect(isVlanUnsupported(new NetlinkError('EOPNOTSUPP', 'x'))).toBe(true);
    expect(isVlanUnsupported(new Error('Error: Unknown device type.'))).toBe(true);
    expect(isVlanUnsupported(new NetlinkError('EEXIST', 'x'))).toBe(false);
  });
});

describe('the facade reads a macvlan back (decodeLink)', () => {
  it('keeps the mode and the raw parent index, even when it equals the link\'s own index', () => {
    const req = buildMacvlanRequest({ name: 'eth0', parentIndex: 2, mode: 'private' });
    req.data.writeInt32LE(2, 4); // ifi_index 2: the parent has the same index in its namespace
    const link = decodeLink(req.data);
    expect(link).toMatchObject({ name: 'eth0', kind: 'macvlan', macvlanMode: 'private', linkIndex: 2 });
    expect(link.peerIndex).toBeUndefined(); // peerIndex drops it without IFLA_LINK_NETNSID
  });

  it.each(['private', 'vepa', 'bridge', 'passthru', 'source'] as const)('names mode %s', (mode) => {
    expect(decodeLink(buildMacvlanRequest({ name: 'm0', parentIndex: 9, mode }).data).macvlanMode).toBe(mode);
  });
});
