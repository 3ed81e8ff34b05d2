import { runPlugin } from '../../lib/cni/skel';
import { bridgePlugin } from './plugin';

runPlugin(bridgePlugin);
