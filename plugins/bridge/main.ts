import { runPlugin } from '../../lib/cni/skel';
import { IN_PROCESS_IPAM } from '../../ipam';
import { makeBridgePlugin } from './plugin';

runPlugin(makeBridgePlugin(IN_PROCESS_IPAM));
