// The IPAM types our interface plugins run in-process instead of exec'ing
// them from CNI_PATH (saves a fork+exec of Node per call): the same code as
// that type's own executable. Each plugin's main.ts passes this table in.

import type { InProcessIpam } from '../lib/cni/ipam';
import { hostLocalIpam } from './host-local';

export const IN_PROCESS_IPAM: InProcessIpam = { 'host-local': hostLocalIpam };
