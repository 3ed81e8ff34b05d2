// `cnictl add|check|del NETWORK NETNS`, `gc NETWORK`, `status NETWORK`:
// run a network list like cnitool does (same environment variables), with a
// libcni-compatible result cache. `rm NETWORK` removes a network entirely
// (./remove.ts).
import * as crypto from 'crypto';
import * as path from 'path';
import type { Argv } from 'yargs';
import { CniError, ErrorCode } from '../../lib/cni/errors';
import { ChainRunner, loadNetwork, RuntimeConf } from '../../lib/cni/conflist';
import { DEFAULT_CACHE_DIR } from '../../lib/cni/cache';
import { splitCniPath } from '../../lib/cni/env';
import { convertResult } from '../../lib/cni/version';
import { removeNetwork } from './remove';
import { isObject } from '../../lib/util/is-object';

export const ENV_HELP = [
  'Environment (as cnitool):',
  '  NETCONFPATH   directory of .conf/.conflist/.json files (default /etc/cni/net.d)',
  '  CNI_PATH      plugin directories, ":"-separated',
  '  CNI_IFNAME    interface name in the container (default eth0)',
  '  CNI_ARGS      K=V;K2=V2 passed to every plugin',
  '  CAP_ARGS      JSON object of capability arguments (portMappings, ips, mac...)',
  '  CNI_CONTAINERID  container ID (default: derived from the netns path, like cnitool)',
  `  CNI_CACHE_DIR result cache (default ${DEFAULT_CACHE_DIR}; results in <dir>/results)`,
].join('\n');

function runner(): ChainRunner {
  return new ChainRunner({ cniPath: splitCniPath(process.env.CNI_PATH), cacheDir: process.env.CNI_CACHE_DIR || DEFAULT_CACHE_DIR });
}

function confDir(): string {
  return process.env.NETCONFPATH || '/etc/cni/net.d';
}

/** A name without "/" is a named namespace under /run/netns. */
export function netnsPath(arg: string): string {
  return arg.includes('/') ? path.resolve(arg) : path.join('/run/netns', arg);
}

/** cnitool derives the container ID from the netns path: "cnitool-" + 20 hex of sha512. */
export function containerIdFor(nsPath: string): string {
  return `cnitool-${crypto.createHash('sha512').update(nsPath).digest('hex').slice(0, 20)}`;
}

function capArgs(): Record<string, unknown> | undefined {
  const raw = process.env.CAP_ARGS;
  if (!raw) return undefined;
  try {
    const v = JSON.parse(raw) as unknown;
    if (isObject(v)) return v;
  } catch { /* fall through */ }
  throw new CniError(ErrorCode.InvalidConfig, 'CAP_ARGS must be a JSON object', `got ${raw}`);
}

function runtimeConf(netnsArg: string): RuntimeConf {
  const nsPath = netnsPath(netnsArg);
  return {
    containerId: process.env.CNI_CONTAINERID || containerIdFor(nsPath),
    netns: nsPath,
    ifname: process.env.CNI_IFNAME || 'eth0',
    args: process.env.CNI_ARGS || undefined,
    capabilityArgs: capArgs(),
  };
}

export function networkCommands(y: Argv): Argv {
  const attach = (sub: Argv) =>
    sub
      .positional('network', { type: 'string', demandOption: true, describe: 'network name (the "name" in a config file)' })
      .positional('netns', { type: 'string', demandOption: true, describe: 'netns path, or a name in /run/netns' })
      .epilogue(ENV_HELP);
  const network = (sub: Argv) => sub.positional('network', { type: 'string', demandOption: true, describe: 'network name' }).epilogue(ENV_HELP);
  return y
    .command('add <network> <netns>', 'ADD the container in NETNS to NETWORK and print the result', attach, async (a) => {
      const list = loadNetwork(confDir(), a.network as string);
      const result = await runner().add(list, runtimeConf(a.netns as string));
      process.stdout.write(`${JSON.stringify(convertResult(result, list.cniVersion), null, 2)}\n`);
    })
    .command('check <network> <netns>', 'CHECK the attachment against the cached ADD result', attach, async (a) => {
      await runner().check(loadNetwork(confDir(), a.network as string), runtimeConf(a.netns as string));
    })
    .command('del <network> <netns>', 'DEL the attachment (plugins in reverse order) and drop the cached result', attach, async (a) => {
      await runner().del(loadNetwork(confDir(), a.network as string), runtimeConf(a.netns as string));
    })
    .command('gc <network>', 'GC the network: every attachment still in the cache counts as valid', network, async (a) => {
      const r = runner();
      const list = loadNetwork(confDir(), a.network as string);
      await r.gc(list, r.cachedAttachments(list.name));
    })
    .command('rm <network>', 'remove NETWORK entirely once no container uses it: GC with no valid attachment (every rule, set, record, lock and DNS daemon of it), then its bridge; refuses while the cache has an attachment of it or its bridge has a port', network, async (a) => {
      const list = loadNetwork(confDir(), a.network as string);
      const { bridgesDeleted } = await removeNetwork(runner(), list);
      process.stdout.write(`network "${list.name}" removed${bridgesDeleted.length ? ` (bridge ${bridgesDeleted.map((b) => `"${b}"`).join(', ')} deleted)` : ''}\n`);
    })
    .command('status <network>', 'ask every plugin of NETWORK whether it can serve ADD (cniVersion >= 1.1.0)', network, async (a) => {
      await runner().status(loadNetwork(confDir(), a.network as string));
      process.stdout.write(`network "${a.network}" is ready\n`);
    });
}
