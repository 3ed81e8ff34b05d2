import { runPlugin } from '../../lib/cni/skel';
import { firewallPlugin } from './plugin';

runPlugin(firewallPlugin);
