import { CniError } from '../../lib/cni/errors';
import type { NetConf, Result } from '../../lib/cni/types';
import { claimKeys, parsePortmapConfig } from '../../plugins/portmap/config';
import { containerAddresses, planEntries } from '../../plugins/portmap/plan';

const base = (extra: Record<string, unknown> = {}, mappings?: unknown): NetConf => ({
  cniVersion: '1.0.0',
  name: 'net1',
  type: 'portmap',
  ...(mappings !== undefined ? { runtimeConfig: { portMappings: mappings } } : {}),
  ...extra,
});

function configError(conf: NetConf): CniError {
  try {
    parsePortmapConfig(conf);
  } catch (err) {
    return err as CniError;
  }
  throw new Error('expected a config error');
}

describe('parsePortmapConfig', () => {
  it('defaults like the reference: snat on, masqAll off, no conditions, /var/lib/cni/portmap', () => {
    const c = parsePortmapConfig(base());
    expect(c).toMatchObject({ network: 'net1', mappings: [], snat: true, masqAll: false, conditionsV4: [], conditionsV6: [], dataDir: '/var/lib/cni/portmap' });
  });

  it('parses mappings, defaulting the protocol to tcp and normalizing hostIP', () => {
    const c = parsePortmapConfig(base({}, [
      { hostPort: 8080, containerPort: 80 },
      { hostPort: 53, containerPort: 53, protocol: 'UDP', hostIP: '' },
      { hostPort: 9000, containerPort: 9, protocol: 'sctp', hostIP: 'FD00::0001' },
      { hostPort: 8443, containerPort: 443, protocol: 'tcp', hostIP: '192.0.2.10' },
    ]));
    expect(c.mappings).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp', hostIP: undefined },
      { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: undefined },
      { hostPort: 9000, containerPort: 9, protocol: 'sctp', hostIP: 'fd00::1' },
      { hostPort: 8443, containerPort: 443, protocol: 'tcp', hostIP: '192.0.2.10' },
    ]);
  });

  it('reads mappings with Go-style keys as containerd sends them (go-cni structs have no json tags), like encoding/json', () => {
    const c = parsePortmapConfig(base({}, [
      { HostPort: 18080, ContainerPort: 80, Protocol: 'tcp', HostIP: '' },
      { hostport: 5353, containerport: 53, protocol: 'UDP', hostip: '127.0.0.1' },
    ]));
    expect(c.mappings).toEqual([
      { hostPort: 18080, containerPort: 80, protocol: 'tcp', hostIP: undefined },
      { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
    ]);
    expect(() => parsePortmapConfig(base({}, [{ HostPort: 0, ContainerPort: 80 }]))).toThrow(/portMappings\[0\]\.hostPort must be an integer 1-65535, got 0/);
  });

  it('accepts the reference fields unchanged (nft conditions as one expression or as tokens)', () => {
    const c = parsePortmapConfig(base({ snat: false, masqAll: true, backend: 'nftables', markMasqBit: 13, conditionsV4: ['ip saddr 10.0.0.0/8'], conditionsV6: ['iifname', '!=', '"eth9"'], dataDir: '/tmp/x' }));
    expect(c).toMatchObject({ snat: false, masqAll: true, conditionsV4: ['ip saddr 10.0.0.0/8'], conditionsV6: ['iifname', '!=', '"eth9"'], dataDir: '/tmp/x' });
    expect(() => parsePortmapConfig(base({ externalSetMarkChain: 'KUBE-MARK-MASQ' }))).not.toThrow();
    expect(() => parsePortmapConfig(base({ backend: 'iptables', externalSetMarkChain: 'CNI-HOSTPORT-SETMARK' }))).not.toThrow();
  });

  it('takes backend "iptables" (the reference default) as well as "nftables": the same nftables rules', () => {
    const maps = [{ hostPort: 8080, containerPort: 80 }];
    const ipt = parsePortmapConfig(base({ backend: 'iptables', markMasqBit: 13 }, maps));
    const nft = parsePortmapConfig(base({ backend: 'nftables' }, maps));
    expect(ipt).toEqual(nft);
  });

  it.each([
    ['the cni.dev example', ['!', '-d', '192.0.2.0/24'], 4, ['ip daddr != 192.0.2.0/24']],
    ['its IPv6 twin', ['!', '-d', 'fc00::/7'], 6, ['ip6 daddr != fc00::/7']],
    ['one entry of several words', ['! -s 10.0.0.0/255.0.0.0'], 4, ['ip saddr != 10.0.0.0/8']],
    ['host bits, address lists', ['-s', '10.1.2.3/16,192.0.2.7'], 4, ['ip saddr { 10.1.0.0/16, 192.0.2.7 }']],
    ['interfaces, wildcard', ['-i', 'eth0', '!', '-i', 'docker+'], 4, ['iifname "eth0"', 'iifname != "docker*"']],
    ['addrtype', ['-m', 'addrtype', '!', '--src-type', 'LOCAL', '--dst-type', 'LOCAL,BROADCAST'], 4, ['fib saddr type != local', 'fib daddr type { local, broadcast }']],
    ['iprange', ['-m', 'iprange', '--src-range', 'fd00::1-fd00::9'], 6, ['ip6 saddr fd00::1-fd00::9']],
    ['a comment', ['-m', 'comment', '--comment', 'keep out', '-d', '198.51.100.1'], 4, ['ip daddr 198.51.100.1']],
  ])('translates iptables conditions: %s', (_n, tokens, family, want) => {
    const c = parsePortmapConfig(base({ [family === 4 ? 'conditionsV4' : 'conditionsV6']: tokens }));
    expect(family === 4 ? c.conditionsV4 : c.conditionsV6).toEqual(want);
  });

  it.each([
    ['unknown backend', { backend: 'pf' }, /backend must be "iptables" or "nftables"/],
    ['an iptables match with no translation', { conditionsV4: ['-m', 'conntrack', '--ctstate', 'NEW'] }, /conditionsV4: the iptables condition "-m conntrack" has no nftables translation.*nft syntax instead/],
    ['an iptables target', { conditionsV4: ['-j', 'DROP'] }, /"-j" has no nftables translation/],
    ['-p (the rule has its own)', { conditionsV6: ['-p', 'tcp'] }, /"-p" has no nftables translation/],
    ['a v6 address in conditionsV4', { conditionsV4: ['-s', 'fd00::1'] }, /"fd00::1" is not an IPv4 address/],
    ['a host name', { conditionsV4: ['-d', 'example.com'] }, /host names are not resolved/],
    ['a truncated condition', { conditionsV4: ['!', '-s'] }, /ends where the address of -s was expected/],
    ['nft syntax with backend iptables', { backend: 'iptables', conditionsV4: ['ip', 'saddr', '10.0.0.0/8'] }, /iptables backend was requested but conditionsV4 is written in nftables syntax/],
    ['iptables syntax with backend nftables', { backend: 'nftables', conditionsV6: ['-s', 'fd00::/8'] }, /nftables backend was requested but conditionsV6 is written in iptables syntax/],
    ['externalSetMarkChain with backend nftables', { backend: 'nftables', externalSetMarkChain: 'KUBE-MARK-MASQ' }, /externalSetMarkChain is an iptables-only option/],
    ['externalSetMarkChain not a chain name', { externalSetMarkChain: 'A B' }, /must be an iptables chain name/],
    ['smuggled commands', { conditionsV4: ['ip saddr 1.2.3.4; flush ruleset'] }, /single nft match expression/],
    ['markMasqBit out of range', { markMasqBit: 32 }, /markMasqBit must be an integer 0-31/],
    ['markMasqBit with externalSetMarkChain', { markMasqBit: 1, externalSetMarkChain: 'X' }, /cannot both be set/],
    ['snat not boolean', { snat: 'yes' }, /snat must be a boolean/],
    ['relative dataDir', { dataDir: 'rel' }, /"dataDir" "rel" is not an absolute path/],
  ])('refuses %s with code 7', (_n, extra, msg) => {
    const err = configError(base(extra));
    expect(err.code).toBe(7);
    expect(err.message).toMatch(msg);
  });

  it.each([
    [[{ hostPort: 0, containerPort: 80 }], /portMappings\[0\]\.hostPort must be an integer 1-65535, got 0/],
    [[{ hostPort: 80, containerPort: 70000 }], /containerPort must be an integer 1-65535, got 70000/],
    [[{ hostPort: 80, containerPort: 80, protocol: 'icmp' }], /protocol must be one of tcp, udp, sctp, got "icmp"/],
    [[{ hostPort: 80, containerPort: 80, hostIP: 'localhost' }], /hostIP is not an IP address: "localhost"/],
    [[{ hostPort: 80, containerPort: 80 }, { hostPort: 80, containerPort: 81 }], /portMappings\[1\] publishes tcp port 80 a second time \(overlaps portMappings\[0\]\)/],
    [[{ hostPort: 80, containerPort: 80 }, { hostPort: 80, containerPort: 81, hostIP: '0.0.0.0' }], /a second time/],
    [{ hostPort: 80 }, /portMappings must be a list/],
  ])('refuses bad mappings %j', (mappings, msg) => {
    const err = configError(base({}, mappings));
    expect(err.code).toBe(7);
    expect(err.message).toMatch(msg);
  });

  it('allows the same port on different protocols, and on two specific addresses', () => {
    expect(() => parsePortmapConfig(base({}, [
      { hostPort: 80, containerPort: 80, protocol: 'tcp' },
      { hostPort: 80, containerPort: 80, protocol: 'udp' },
      { hostPort: 81, containerPort: 80, hostIP: '192.0.2.1' },
      { hostPort: 81, containerPort: 80, hostIP: '192.0.2.2' },
    ]))).not.toThrow();
  });

  it('claim keys: no hostIP claims both families, 0.0.0.0 only IPv4, :: only IPv6', () => {
    expect(claimKeys({ hostPort: 1, containerPort: 1, protocol: 'tcp' })).toEqual(['4 0.0.0.0 tcp 1', '6 :: tcp 1']);
    expect(claimKeys({ hostPort: 1, containerPort: 1, protocol: 'tcp', hostIP: '0.0.0.0' })).toEqual(['4 0.0.0.0 tcp 1']);
    expect(claimKeys({ hostPort: 1, containerPort: 1, protocol: 'udp', hostIP: '::' })).toEqual(['6 :: udp 1']);
  });
});

describe('container addresses and entries', () => {
  const prev: Result = {
    cniVersion: '1.0.0',
    interfaces: [{ name: 'cni0' }, { name: 'veth1' }, { name: 'eth0', sandbox: '/run/netns/x' }, { name: 'eth1', sandbox: '/run/netns/x' }],
    ips: [
      { address: '10.99.0.1/24', interface: 0 },
      { address: '10.1.0.9/24', interface: 3 },
      { address: '10.88.0.5/16', interface: 2 },
      { address: '10.88.0.6/16', interface: 2 },
      { address: 'FD00::5/64', interface: 2 },
      { address: '172.16.0.1/16' },
    ],
  };

  it('takes the first IPv4 and IPv6 of the sandbox interface CNI_IFNAME', () => {
    expect(containerAddresses(prev, 'eth0')).toEqual({ v4: '10.88.0.5', v6: 'fd00::5' });
    expect(containerAddresses(prev, 'eth1')).toEqual({ v4: '10.1.0.9' });
    expect(containerAddresses(prev, 'cni0')).toEqual({ v4: '172.16.0.1' }); // host side skipped; an address without an index counts
  });

  it('an address without an interface index counts, as in the reference (0.1.0/0.2.0 results name no interfaces)', () => {
    expect(containerAddresses({ cniVersion: '0.2.0', ips: [{ address: '10.88.9.5/24', gateway: '10.88.9.1' }] }, 'eth0')).toEqual({ v4: '10.88.9.5' });
  });

  it('plans one entry per mapping and family the container has', () => {
    const entries = planEntries([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: '0.0.0.0' },
      { hostPort: 8443, containerPort: 443, protocol: 'tcp', hostIP: 'fd00::1' },
    ], { v4: '10.88.0.5', v6: 'fd00::5' }, 'eth0');
    expect(entries).toEqual([
      { family: 4, hostIP: undefined, protocol: 'tcp', hostPort: 8080, containerIP: '10.88.0.5', containerPort: 80 },
      { family: 6, hostIP: undefined, protocol: 'tcp', hostPort: 8080, containerIP: 'fd00::5', containerPort: 80 },
      { family: 4, hostIP: undefined, protocol: 'udp', hostPort: 53, containerIP: '10.88.0.5', containerPort: 53 },
      { family: 6, hostIP: 'fd00::1', protocol: 'tcp', hostPort: 8443, containerIP: 'fd00::5', containerPort: 443 },
    ]);
    // An IPv6-only mapping for an IPv4-only container publishes nothing.
    expect(planEntries([{ hostPort: 1, containerPort: 1, protocol: 'tcp', hostIP: '::' }], { v4: '10.0.0.1' }, 'eth0')).toEqual([]);
  });

  it('refuses mappings when prevResult has no address on CNI_IFNAME', () => {
    expect(() => planEntries([{ hostPort: 1, containerPort: 1, protocol: 'tcp' }], {}, 'eth0')).toThrow(/no IP address on the container interface "eth0"/);
  });
});
