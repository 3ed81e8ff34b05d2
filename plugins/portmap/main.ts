import { runPlugin } from '../../lib/cni/skel';
import { HOST_KERNEL } from '../../lib/kernel';
import { makePortmapPlugin } from './plugin';

runPlugin(makePortmapPlugin(HOST_KERNEL));
