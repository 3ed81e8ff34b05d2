// dist/bin/host-local: the host-local IPAM library (ipam.ts) as a plugin run
// by the skel, for runtimes and for the reference interface plugins.

import type { Plugin } from '../../lib/cni/plugin';
import { HOST_LOCAL_ARGS, makeHostLocalIpam } from './ipam';
import type { OpenStore } from './store-types';

export function makeHostLocal(openStore?: OpenStore): Plugin {
  return {
    name: 'host-local',
    description: 'host-local IPAM: addresses from ranges, one file per address under dataDir (compatible with the reference plugin)',
    knownArgs: HOST_LOCAL_ARGS,
    ignoresNetns: true, // IPAM never enters the container
    ...makeHostLocalIpam(openStore),
  };
}

export const hostLocal: Plugin = makeHostLocal();
