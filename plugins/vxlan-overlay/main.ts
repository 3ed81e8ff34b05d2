// One executable, two roles: with CNI_COMMAND it is the CNI plugin; without
// it, `vxlan-overlay agent|leave ...` runs the host agent. The agent code (and
// the etcd client) is required only on that path, so CNI calls stay lean.
import { runPlugin } from '../../lib/cni/skel';
import { SUPPORTED_VERSIONS } from '../../lib/cni/version';
import { IN_PROCESS_IPAM } from '../../ipam';
import { HOST_KERNEL } from '../../lib/kernel';
import { startMain } from '../../lib/util/main';
import { isAgentVerb } from './agent/options';
import { makeOverlayPlugin } from './plugin';

const overlayPlugin = makeOverlayPlugin(IN_PROCESS_IPAM, HOST_KERNEL);

startMain(() => {
  if (process.env.CNI_COMMAND === undefined && isAgentVerb(process.argv[2])) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy: the agent is not loaded by plugin verbs
    (require('./agent/cli') as typeof import('./agent/cli')).main(process.argv.slice(2));
  } else {
    runPlugin(overlayPlugin);
  }
}, { cniVersions: overlayPlugin.supportedVersions ?? SUPPORTED_VERSIONS });
