import { runPlugin } from '../../lib/cni/skel';
import { portmapPlugin } from './plugin';

runPlugin(portmapPlugin);
