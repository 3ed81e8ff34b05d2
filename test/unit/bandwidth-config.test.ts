import type { NetConf } from '../../lib/cni/types';
import { buildRedirectFilterRequest, buildTbfRequest, decodeQdisc } from '../../lib/netlink';
import { parseBandwidthConfig } from '../../plugins/bandwidth/config';
import { ifbAlias, ifbName, isAliasOf, isStaleAlias, referenceIfbName, resultWithIfb, tbfFor } from '../../plugins/bandwidth/plan';

const base = (extra: Record<string, unknown> = {}): NetConf => ({ cniVersion: '1.1.0', name: 'bw', type: 'bandwidth', ...extra });

describe('parseBandwidthConfig', () => {
  it('no limits anywhere: nothing to shape', () => {
    expect(parseBandwidthConfig(base())).toMatchObject({ ingress: undefined, egress: undefined });
  });
  it('top-level limits', () => {
    expect(parseBandwidthConfig(base({ ingressRate: 1e6, ingressBurst: 1e5 }))).toMatchObject({ ingress: { rate: 1e6, burst: 1e5 }, egress: undefined });
  });
  it('the bandwidth capability when the config has none of the four keys; any top-level key wins (reference)', () => {
    const rc = { runtimeConfig: { bandwidth: { egressRate: 2e6, egressBurst: 2e5 } } };
    expect(parseBandwidthConfig(base(rc))).toMatchObject({ ingress: undefined, egress: { rate: 2e6, burst: 2e5 } });
    expect(parseBandwidthConfig(base({ ...rc, ingressRate: 0 }))).toMatchObject({ ingress: undefined, egress: undefined });
  });
  it('reads the capability with the Go-style keys containerd sends ({"IngressRate", ...})', () => {
    const rc = { runtimeConfig: { bandwidth: { IngressRate: 1e6, IngressBurst: 2e6, EgressRate: 0, EgressBurst: 0 } } };
    expect(parseBandwidthConfig(base(rc))).toMatchObject({ ingress: { rate: 1e6, burst: 2e6 }, egress: undefined });
  });
  it.each([
    [{ ingressRate: 1000 }, /ingressRate is set, so ingressBurst must be set too/],
    [{ egressBurst: 1000 }, /egressBurst is set, so egressRate must be set too/],
    [{ ingressRate: 7, ingressBurst: 100 }, /at least 8/],
    [{ ingressRate: 1e6, ingressBurst: 8 * 0xffffffff }, /cannot be more than 4GB/],
    [{ ingressRate: 1.5, ingressBurst: 1 }, /non-negative integer/],
    [{ runtimeConfig: { bandwidth: [] } }, /runtimeConfig.bandwidth must be an object/],
    [{ runtimeConfig: { bandwidth: { egressRate: -1, egressBurst: 1 } } }, /runtimeConfig.bandwidth.egressRate must be a non-negative integer/],
  ])('refuses %j with code 7', (extra, msg) => {
    expect(() => parseBandwidthConfig(base(extra))).toThrow(expect.objectContaining({ code: 7, message: expect.stringMatching(msg) }));
  });
});

describe('plan', () => {
  it('token bucket like the reference: bytes, 25 ms of queue plus the burst, the burst as ticks', () => {
    // 8 Mbit/s, 80 kbit burst: 1 MB/s, 10 KB; 10 ms of burst = 156250 ticks of 64 ns.
    expect(tbfFor({ rate: 8_000_000, burst: 80_000 }, 15.625)).toEqual({ rate: 1_000_000, limit: 35_000, buffer: 156_250 });
    // kubelet's default burst (MaxInt32 bits) at 1 Mbit/s: the buffer is capped at 32 bits of ticks.
    expect(tbfFor({ rate: 1_000_000, burst: 2147483647 }, 15.625)).toEqual({ rate: 125_000, limit: 125_000 * 0.025 + 268435455, buffer: 0xffffffff });
  });
  it('one IFB name per attachment, 15 bytes; the alias identifies its owner', () => {
    const a = { network: 'net', containerID: 'abc', ifname: 'eth0' };
    expect(ifbName(a)).toMatch(/^bwp[0-9a-f]{12}$/);
    expect(ifbName({ ...a, ifname: 'eth1' })).not.toBe(ifbName(a));
    expect(ifbName({ network: 'ne', containerID: 'tabc', ifname: 'eth0' })).not.toBe(ifbName(a)); // the reference's concatenation would collide
    expect(referenceIfbName(a)).toMatch(/^bwp[0-9a-f]{12}$/);
    expect(isAliasOf(ifbAlias(a), a)).toBe(true);
    expect(isAliasOf(ifbAlias(a), { ...a, containerID: 'abd' })).toBe(false);
    expect(isAliasOf(undefined, a)).toBe(false);
    expect(Buffer.byteLength(ifbAlias({ ...a, network: 'n'.repeat(300) }))).toBeLessThanOrEqual(255);
    expect(isStaleAlias(ifbAlias(a), 'net', [])).toBe(true);
    expect(isStaleAlias(ifbAlias(a), 'net', [{ containerID: 'abc', ifname: 'eth0' }])).toBe(false);
    expect(isStaleAlias(ifbAlias(a), 'other', [])).toBe(false);
    expect(isStaleAlias('something else', 'net', [])).toBe(false);
  });
  it('appends the IFB to the result as a host interface', () => {
    const prev = { cniVersion: '1.1.0', interfaces: [{ name: 'br0' }] };
    expect(resultWithIfb(prev, { name: 'bwp1', mac: 'aa:bb:cc:dd:ee:ff' }).interfaces).toEqual([{ name: 'br0' }, { name: 'bwp1', mac: 'aa:bb:cc:dd:ee:ff' }]);
    expect(resultWithIfb(prev, undefined)).toBe(prev);
  });
});

describe('tc requests', () => {
  it('a tbf decodes back to what was asked (64-bit rates through TCA_TBF_RATE64)', () => {
    for (const p of [{ rate: 1_000_000, limit: 35_000, buffer: 156_250 }, { rate: 6_000_000_000, limit: 1, buffer: 2 }]) {
      const req = buildTbfRequest(7, p);
      expect(decodeQdisc(req.data)).toEqual({ ifindex: 7, handle: 0x10000, parent: 0xffffffff, kind: 'tbf', tbf: p });
      expect(req.flags & 0x100).toBe(0x100); // NLM_F_REPLACE
    }
    expect(() => buildTbfRequest(1, { rate: 0, limit: 1, buffer: 1 })).toThrow(/positive/);
    expect(() => buildTbfRequest(1, { rate: 1, limit: 2 ** 32, buffer: 1 })).toThrow(/out of range/);
  });
  it('the redirect filter: parent ffff:, prio 1, protocol all (network order), u32 + mirred to the target', () => {
    const req = buildRedirectFilterRequest(3, 9);
    expect(req.type).toBe(44);
    expect(req.data.readUInt32LE(12)).toBe(0xffff0000);
    expect(req.data.readUInt32LE(16)).toBe(0x00010300);
    const text = req.data.toString('latin1');
    expect(text).toContain('u32\0');
    expect(text).toContain('mirred\0');
    const tail = req.data.subarray(req.data.length - 8);
    expect([tail.readInt32LE(0), tail.readUInt32LE(4)]).toEqual([1, 9]); // TCA_EGRESS_REDIR to ifindex 9
  });
});
