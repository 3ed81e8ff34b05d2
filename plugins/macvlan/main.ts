import { runPlugin } from '../../lib/cni/skel';
import { macvlanPlugin } from './plugin';

runPlugin(macvlanPlugin);
