import { runPlugin } from '../../lib/cni/skel';
import { loopbackPlugin } from './plugin';

runPlugin(loopbackPlugin);
