import { parseCniArgs, requestedIps, requestedMac, argsCniLabels } from '../../../lib/cni/args';
import type { Invocation, NetConf } from '../../../lib/cni/types';

describe('parseCniArgs (Go types.LoadArgs rules)', () => {
  it.each([
    ['', [], {}],
    [undefined, [], {}],
    ['IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=id;K8S_POD_UID=u', [], { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'ns', K8S_POD_NAME: 'p', K8S_POD_INFRA_CONTAINER_ID: 'id', K8S_POD_UID: 'u' }],
    ['IP=10.0.0.5;MAC=02:00:00:00:00:01', ['IP', 'MAC'], { IP: '10.0.0.5', MAC: '02:00:00:00:00:01' }],
    ['FOO=bar;IgnoreUnknown=true', [], { IgnoreUnknown: 'true' }],
    ['IgnoreUnknown=TRUE;FOO=bar', [], { IgnoreUnknown: 'TRUE' }],
    ['IP=1.1.1.1;IP=2.2.2.2', ['IP'], { IP: '2.2.2.2' }],
    ['K8S_POD_NAME=', [], { K8S_POD_NAME: '' }],
  ] as const)('%j with known %j → %j', (raw, known, want) => {
    expect(parseCniArgs(raw, known)).toEqual(want);
  });
  it.each([
    ['FOO=bar', /unknown args \[FOO=bar\]/],
    ['ip=1.2.3.4', /unknown args/], // keys are case-sensitive
    ['ignoreunknown=1;FOO=1', /unknown args/],
    ['IgnoreUnknown=0;FOO=1', /unknown args/],
    ['IgnoreUnknown=false;FOO=1', /unknown args/],
    ['K8S_POD_NAME=a;', /invalid pair ""/],
    ['X=a=b', /invalid pair "X=a=b"/],
    ['justakey', /invalid pair/],
    ['IgnoreUnknown=yes', /not a boolean/],
  ])('%j → code 4 (%s)', (raw, msg) => {
    expect(() => parseCniArgs(raw)).toThrow(expect.objectContaining({ code: 4, message: expect.stringMatching(msg) }));
  });
});

function inv(conf: Partial<NetConf>, args?: string): Invocation {
  return { env: { command: 'ADD', path: [], args }, conf: { cniVersion: '1.1.0', name: 'n', type: 't', ...conf } as NetConf, raw: Buffer.from('{}') };
}

describe('precedence runtimeConfig > args.cni > CNI_ARGS', () => {
  it.each([
    [{ runtimeConfig: { mac: 'rc' }, args: { cni: { mac: 'ac' } } }, 'MAC=env', 'rc'],
    [{ args: { cni: { mac: 'ac' } } }, 'MAC=env', 'ac'],
    [{}, 'MAC=env', 'env'],
    [{}, undefined, undefined],
  ])('mac: %j + %j → %j', (conf, args, want) => {
    expect(requestedMac(inv(conf, args))).toBe(want);
  });
  it.each([
    [{ runtimeConfig: { ips: ['10.0.0.9/24'] }, args: { cni: { ips: ['10.0.0.8/24'] } } }, 'IP=10.0.0.7', ['10.0.0.9/24']],
    [{ args: { cni: { ips: ['10.0.0.8/24'] } } }, 'IP=10.0.0.7', ['10.0.0.8/24']],
    [{}, 'IP=10.0.0.7,fd00::7', ['10.0.0.7', 'fd00::7']],
    [{}, undefined, undefined],
  ])('ips: %j + %j → %j', (conf, args, want) => {
    expect(requestedIps(inv(conf, args))).toEqual(want);
  });
  it('malformed args.cni values are code 7', () => {
    expect(() => requestedIps(inv({ args: { cni: { ips: '10.0.0.1' } } }))).toThrow(expect.objectContaining({ code: 7 }));
    expect(() => argsCniLabels({ cniVersion: '1.1.0', name: 'n', type: 't', args: { cni: { labels: [{ key: 1 }] } } })).toThrow(expect.objectContaining({ code: 7 }));
  });
  it('labels', () => {
    expect(argsCniLabels({ cniVersion: '1.1.0', name: 'n', type: 't', args: { cni: { labels: [{ key: 'a', value: 'b' }] } } })).toEqual([{ key: 'a', value: 'b' }]);
  });
});
