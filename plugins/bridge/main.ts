import { runPlugin } from '../../lib/cni/skel';
import { IN_PROCESS_IPAM } from '../../ipam';
import { HOST_KERNEL } from '../../lib/kernel';
import { makeBridgePlugin } from './plugin';

runPlugin(makeBridgePlugin(IN_PROCESS_IPAM, HOST_KERNEL));
