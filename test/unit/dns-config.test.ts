// Pure parts of container-name DNS: config parsing, names, renderers.
import { CniError } from '../../lib/cni/errors';
import { containerNames, defaultDomain, parseNameResolution, validDnsName } from '../../lib/dns/config';
import { dnsmasqOption, hostsFileName, mergeResultDns, renderDnsmasqConf, renderHostsFile } from '../../lib/dns/render';
import { renderDnsGuardAdd, renderDnsGuardDel } from '../../lib/firewall/isolation-dns';
import { parseBridgeConfig } from '../../plugins/bridge/config';

function code7(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(7);
    return (err as Error).message;
  }
  throw new Error('expected a CniError');
}

describe('parseNameResolution', () => {
  it.each([undefined, null, false])('%p is off', (v) => expect(parseNameResolution(v, 'n')).toBeUndefined());

  it('true gives every default', () => {
    expect(parseNameResolution(true, 'My_Net')).toEqual({
      domain: 'my-net.cni.internal', upstream: [], resolvConf: '/etc/resolv.conf', runDir: '/run/node-cni/dnsname',
    });
  });

  it('an object overrides', () => {
    const c = parseNameResolution({ domain: 'corp.test.', upstream: ['10.0.0.2', 'fd00::2', '10.0.0.3#5353'], runDir: '/run/x', resolvConf: '/r' }, 'n');
    expect(c).toMatchObject({ domain: 'corp.test', upstream: ['10.0.0.2', 'fd00::2', '10.0.0.3#5353'], runDir: '/run/x', resolvConf: '/r' });
  });

  it.each([
    ['a string', 'yes', '"nameResolution" must be true'],
    ['a bad domain', { domain: 'a b' }, 'nameResolution.domain'],
    ['a bad upstream', { upstream: ['dns.example'] }, '"dns.example" is not an IP address'],
    ['a bad port', { upstream: ['10.0.0.1#0'] }, 'is not an IP address'],
    ['upstream not a list', { upstream: '10.0.0.1' }, 'must be a list'],
    ['a relative runDir', { runDir: 'run' }, 'absolute path'],
    // Issue #12 item 1: values that reach dnsmasq.conf (dnsmasq runs them as root).
    ['the evil.sh dhcp-script injection', { resolvConf: '/etc/resolv.conf\ndhcp-range=10.251.8.50,10.251.8.60\nleasefile-ro\ndhcp-script=/tmp/x/evil.sh' }, 'control character'],
    ['conf-file=/etc/shadow through resolvConf', { resolvConf: '/x\nconf-file=/etc/shadow' }, 'control character'],
    ['a newline in runDir', { runDir: '/run/x\nconf-file=/etc/shadow' }, 'control character'],
    ['a carriage return', { runDir: '/run/x\rdhcp-script=/tmp/e' }, 'control character'],
    ['a space (dnsmasq folds whitespace)', { resolvConf: '/etc/resolv.conf #x' }, 'dnsmasq.conf'],
    ['a comma (dnsmasq splits arguments)', { runDir: '/run/a,b' }, 'dnsmasq.conf'],
    ['a quote', { runDir: '/run/a"b' }, 'dnsmasq.conf'],
    ['a runDir outside the state places', { runDir: '/etc/cron.d' }, 'not below one of'],
    ['a runDir that is not normalized', { runDir: '/run/../etc' }, 'not normalized'],
    ['a resolvConf in /proc', { resolvConf: '/proc/self/environ' }, 'no configuration file'],
    ['a resolvConf device', { resolvConf: '/dev/zero' }, 'no configuration file'],
    ['a program to run', { dnsmasq: '/tmp/x/evil.sh' }, 'never names a program'],
    ['a program that is not a string', { dnsmasq: 5 }, 'never names a program'],
  ])('refuses %s', (_what, v, msg) => expect(code7(() => parseNameResolution(v, 'n'))).toContain(msg));

  it('still takes the old "dnsmasq" key when it names a system location (and ignores it)', () => {
    expect(parseNameResolution({ dnsmasq: '/usr/sbin/dnsmasq' }, 'n')).not.toHaveProperty('dnsmasq');
  });
});

describe('names', () => {
  it.each([['web', true], ['web-1.svc', true], ['a_b', true], ['-x', false], ['a b', false], ['a#b', false], ['', false], ['x'.repeat(64), false], ['a..b', false]])(
    'validDnsName(%p) = %p', (n, ok) => expect(validDnsName(n)).toBe(ok));

  it('defaultDomain keeps a DNS label of the network name', () => {
    expect(defaultDomain('podman')).toBe('podman.cni.internal');
    expect(defaultDomain('a.b_c')).toBe('a-b-c.cni.internal');
  });

  it('takes the podman aliases map for this network, then K8S_POD_NAME, without duplicates', () => {
    expect(containerNames({ network: 'n1', aliases: { n1: ['web', 'api'], n2: ['other'] }, podName: 'WEB' })).toEqual(['web', 'api']);
    expect(containerNames({ network: 'n1', aliases: ['a', 'b'], podName: 'pod' })).toEqual(['a', 'b', 'pod']);
    expect(containerNames({ network: 'n1', aliases: { n2: ['x'] } })).toEqual([]);
    expect(containerNames({ network: 'n1' })).toEqual([]);
  });

  it.each([
    [{ aliases: ['ok', 'not ok'] }, 'runtimeConfig.aliases[1]: "not ok"'],
    [{ aliases: { n1: 'web' } }, 'must be a list of names'],
    [{ aliases: 5 }, 'must be a map'],
    [{ podName: 'a;b' }, 'K8S_POD_NAME'],
  ])('refuses %p', (o, msg) => expect(code7(() => containerNames({ network: 'n1', ...o }))).toContain(msg));
});

describe('renderers', () => {
  it('dnsmasq conf binds only the gateways and reads the host resolv.conf by default', () => {
    const conf = renderDnsmasqConf({ network: 'n', listen: ['10.1.0.1', 'fd00::1'], domain: 'n.cni.internal', hostsDir: '/r/n/hosts.d', pidFile: '/r/n/p', upstream: [], resolvConf: '/etc/resolv.conf' });
    expect(conf.split('\n')).toEqual(expect.arrayContaining([
      'bind-interfaces', 'listen-address=10.1.0.1', 'listen-address=fd00::1', 'no-hosts', 'hostsdir=/r/n/hosts.d',
      'local=/n.cni.internal/', 'domain-needed', 'resolv-file=/etc/resolv.conf', 'pid-file=/r/n/p',
    ]));
    expect(conf).not.toMatch(/^interface=|^no-resolv/m);
  });

  it('explicit upstream replaces resolv.conf', () => {
    const conf = renderDnsmasqConf({ network: 'n', listen: ['10.1.0.1'], domain: 'd', hostsDir: '/h', pidFile: '/p', upstream: ['10.0.0.2#5353'], resolvConf: '/etc/resolv.conf' });
    expect(conf).toContain('no-resolv\nserver=10.0.0.2#5353\n');
    expect(conf).not.toContain('resolv-file');
  });

  it('hosts file: one line per address, empty without names', () => {
    expect(renderHostsFile(['10.1.0.5', 'fd00::5'], ['web', 'api'])).toBe('10.1.0.5 web api\nfd00::5 web api\n');
    expect(renderHostsFile(['10.1.0.5'], [])).toBe('');
    expect(renderHostsFile(['10.1.0.5'], ['web'], { network: 'n', containerId: 'abc', ifname: 'eth0' })).toBe('# ["n","abc","eth0"]\n10.1.0.5 web\n');
  });

  it('hosts file names never collide and fit any container ID', () => {
    const a = hostsFileName({ network: 'n', containerId: 'a', ifname: 'e.x' });
    const b = hostsFileName({ network: 'n', containerId: 'a.e', ifname: 'x' });
    expect(a).not.toBe(b);
    expect(hostsFileName({ network: 'n', containerId: 'c'.repeat(1000), ifname: 'eth0' }).length).toBeLessThan(64);
    expect(hostsFileName({ network: 'n', containerId: 'abc', ifname: 'eth0' })).not.toMatch(/^\./); // dnsmasq skips dotfiles
  });

  it.each([
    ['an address with a newline', ['10.1.0.5\nconf-file=/etc/shadow'], ['web']],
    ['a name with a space', ['10.1.0.5'], ['web evil']],
  ])('hosts file refuses %s', (_what, addrs, names) => expect(() => renderHostsFile(addrs, names)).toThrow(/not an IP address|not a DNS name/));

  it.each([
    ['a newline', 'x\nconf-file=/etc/shadow'], ['a carriage return', 'x\rdhcp-script=/e'], ['a space', '/a b'], ['a tab', '/a\tb'],
    ['a quote', '/a"b'], ['a backslash', '/a\\b'], ['a comma', '/a,b'], ['nothing', ''], ['non-ASCII', '/caf\u00e9'],
  ])('one option line: a value with %s is refused', (_what, v) => {
    expect(() => dnsmasqOption('resolv-file', v)).toThrow(/dnsmasq.conf/);
  });

  it('one option line: plain values pass unchanged', () => {
    expect(dnsmasqOption('bind-interfaces')).toBe('bind-interfaces');
    expect(dnsmasqOption('server', '10.0.0.2#5353')).toBe('server=10.0.0.2#5353');
    expect(dnsmasqOption('resolv-file', '/run/systemd/resolve/resolv.conf')).toBe('resolv-file=/run/systemd/resolve/resolv.conf');
  });

  it('the rendered conf has exactly one option per line, whatever reaches it', () => {
    expect(() => renderDnsmasqConf({ network: 'n', listen: ['10.1.0.1'], domain: 'd', hostsDir: '/h', pidFile: '/p', upstream: [], resolvConf: '/etc/resolv.conf\ndhcp-script=/tmp/x/evil.sh' })).toThrow(/dnsmasq.conf/);
    expect(() => renderDnsmasqConf({ network: 'n', listen: ['10.1.0.1\nconf-file=/etc/shadow'], domain: 'd', hostsDir: '/h', pidFile: '/p', upstream: [], resolvConf: '/r' })).toThrow(/not an IP address/);
  });

  it('result dns puts the gateway and domain first and keeps the rest', () => {
    expect(mergeResultDns(undefined, ['10.1.0.1'], 'n.cni.internal')).toEqual({ nameservers: ['10.1.0.1'], search: ['n.cni.internal'] });
    expect(mergeResultDns({ nameservers: ['8.8.8.8', '10.1.0.1'], search: ['corp'], options: ['ndots:2'] }, ['10.1.0.1'], 'd'))
      .toEqual({ nameservers: ['10.1.0.1', '8.8.8.8'], search: ['d', 'corp'], options: ['ndots:2'] });
  });

  it('guard: one set element pair per gateway, one fixed rule per family', () => {
    const add = renderDnsGuardAdd({ bridge: 'cni1', addresses: ['10.1.0.1', 'fd00::1'] }, 't');
    expect(add).toContain('add element inet t dns4 { 10.1.0.1 }\nadd element inet t served4 { 10.1.0.1 . "cni1" }');
    expect(add).toContain('add element inet t served6 { fd00::1 . "cni1" }');
    expect(add).toContain('th dport 53 ip daddr @dns4 ip daddr . iifname != @served4 drop');
    expect(renderDnsGuardDel({ bridge: 'cni1', addresses: ['10.1.0.1'] }, 't')).toEqual([
      'delete element inet t served4 { 10.1.0.1 . "cni1" }', 'delete element inet t dns4 { 10.1.0.1 }',
    ]);
  });
});

describe('bridge config wiring', () => {
  const base = { cniVersion: '1.1.0', name: 'n', type: 'bridge', ipam: { type: 'host-local' } };
  it('is off by default, reference configs unchanged', () => {
    const c = parseBridgeConfig(base);
    expect(c.isolation).toBe(false);
    expect(c.nameResolution).toBeUndefined();
  });
  it('needs a gateway and IPAM', () => {
    expect(code7(() => parseBridgeConfig({ ...base, nameResolution: true }))).toContain('isGateway');
    expect(code7(() => parseBridgeConfig({ ...base, ipam: undefined, isGateway: true, nameResolution: true }))).toContain('needs IPAM');
    expect(parseBridgeConfig({ ...base, isGateway: true, nameResolution: true, isolation: true })).toMatchObject({ isolation: true, nameResolution: { domain: 'n.cni.internal' } });
  });
  it('isolation must be a boolean', () => expect(code7(() => parseBridgeConfig({ ...base, isolation: 'yes' }))).toContain('"isolation"'));
});
