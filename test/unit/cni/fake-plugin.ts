// An in-memory Plugin for skel tests: records every invocation it receives.
import type { GcInvocation, Plugin } from '../../../lib/cni/plugin';
import type { Invocation, Result } from '../../../lib/cni/types';

export interface FakePlugin extends Plugin {
  calls: Array<{ verb: string; inv: Invocation | GcInvocation }>;
}

export function fakePlugin(opts: { result?: Result; fail?: Error; knownArgs?: string[]; ignoresNetns?: boolean } = {}): FakePlugin {
  const calls: FakePlugin['calls'] = [];
  const record = (verb: string) => async (inv: Invocation) => {
    calls.push({ verb, inv });
    if (opts.fail) throw opts.fail;
  };
  return {
    name: 'fake',
    description: 'records invocations',
    knownArgs: opts.knownArgs ?? [],
    // The skel tests name made-up namespaces; the netns check has its own tests.
    ignoresNetns: opts.ignoresNetns ?? true,
    calls,
    async add(inv) {
      calls.push({ verb: 'ADD', inv });
      if (opts.fail) throw opts.fail;
      return opts.result ?? { cniVersion: '1.1.0', interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1500, sandbox: inv.env.netns }], ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 0 }], routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', table: 100 }] };
    },
    del: record('DEL'),
    check: record('CHECK'),
    gc: record('GC') as Plugin['gc'],
    status: record('STATUS'),
  };
}
