import { runPlugin } from '../../lib/cni/skel';
import { HOST_KERNEL } from '../../lib/kernel';
import { makeBandwidthPlugin } from './plugin';

runPlugin(makeBandwidthPlugin(HOST_KERNEL));
