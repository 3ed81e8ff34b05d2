import { runPlugin } from '../../lib/cni/skel';
import { HOST_KERNEL } from '../../lib/kernel';
import { makeFirewallPlugin } from './plugin';

runPlugin(makeFirewallPlugin(HOST_KERNEL));
