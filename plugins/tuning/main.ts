import { runPlugin } from '../../lib/cni/skel';
import { tuningPlugin } from './plugin';

runPlugin(tuningPlugin);
