import { runPlugin } from '../../lib/cni/skel';
import { bandwidthPlugin } from './plugin';

runPlugin(bandwidthPlugin);
