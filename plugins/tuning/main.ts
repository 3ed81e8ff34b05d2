import { runPlugin } from '../../lib/cni/skel';
import { HOST_KERNEL } from '../../lib/kernel';
import { makeTuningPlugin } from './plugin';

runPlugin(makeTuningPlugin(HOST_KERNEL));
