import { runPlugin } from '../../lib/cni/skel';
import { HOST_KERNEL } from '../../lib/kernel';
import { makeLoopbackPlugin } from './plugin';

runPlugin(makeLoopbackPlugin(HOST_KERNEL));
