// The pure attachment plan of the vxlan-overlay plugin: families from the
// agent's state, then addresses, routes and masquerade entries per family.
import { overlayFamilies, planAttachment } from '../../plugins/vxlan-overlay/plan';

const v4 = { subnet: '10.244.3.0/24', cidr: '10.244.0.0/16' };
const dual = { ...v4, subnet6: 'fd00:10:244:3::/64', cidr6: 'fd00:10:244::/56' };

describe('overlay attachment plan', () => {
  it('IPv4 network: one family, routes to the cluster and the default, masquerade leaving the cluster', () => {
    const fams = overlayFamilies(v4);
    expect(fams.map((f) => [f.family, f.gateway.cidr])).toEqual([[4, '10.244.3.1/24']]);
    expect(planAttachment(fams, ['10.244.3.5/24'], { isDefaultGateway: true, ipMasq: true })).toEqual({
      ips: [{ address: '10.244.3.5/24', gateway: '10.244.3.1' }],
      routes: [{ dst: '10.244.0.0/16', gw: '10.244.3.1' }, { dst: '0.0.0.0/0', gw: '10.244.3.1' }],
      masq: [{ address: '10.244.3.5', subnet: '10.244.0.0/16' }],
    });
  });

  it('dual-stack: both families, each with its gateway, cluster route, default route and masquerade chain', () => {
    const fams = overlayFamilies(dual);
    expect(fams.map((f) => [f.family, f.gateway.cidr])).toEqual([[4, '10.244.3.1/24'], [6, 'fd00:10:244:3::1/64']]);
    expect(planAttachment(fams, ['10.244.3.5/24', 'fd00:10:244:3::5/64'], { isDefaultGateway: true, ipMasq: true })).toEqual({
      ips: [{ address: '10.244.3.5/24', gateway: '10.244.3.1' }, { address: 'fd00:10:244:3::5/64', gateway: 'fd00:10:244:3::1' }],
      routes: [
        { dst: '10.244.0.0/16', gw: '10.244.3.1' }, { dst: 'fd00:10:244::/56', gw: 'fd00:10:244:3::1' },
        { dst: '0.0.0.0/0', gw: '10.244.3.1' }, { dst: '::/0', gw: 'fd00:10:244:3::1' },
      ],
      masq: [{ address: '10.244.3.5', subnet: '10.244.0.0/16' }, { address: 'fd00:10:244:3::5', subnet: 'fd00:10:244::/56' }],
    });
  });

  it('no default route and no masquerade when the config says so', () => {
    const p = planAttachment(overlayFamilies(dual), ['10.244.3.5/24', 'fd00:10:244:3::5/64'], { isDefaultGateway: false, ipMasq: false });
    expect(p.routes.map((r) => r.dst)).toEqual(['10.244.0.0/16', 'fd00:10:244::/56']);
    expect(p.masq).toEqual([]);
  });

  it.each([
    [[], /no address/],
    [['10.244.3.5/24'], /for 10\.244\.3\.0\/24 and fd00:10:244:3::\/64/],
    [['10.244.3.5/24', '10.244.3.6/24'], /10\.244\.3\.5\/24, 10\.244\.3\.6\/24/],
  ])('refuses IPAM results that are not one address per family: %j', (addrs, msg) => {
    expect(() => planAttachment(overlayFamilies(dual), addrs, { isDefaultGateway: true, ipMasq: true })).toThrow(msg);
  });
});
