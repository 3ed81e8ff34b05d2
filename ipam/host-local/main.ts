import { runPlugin } from '../../lib/cni/skel';
import { hostLocal } from './plugin';

runPlugin(hostLocal);
