// What cnictl tells the release about itself, apart from its code: the release
// answers `cnictl --version` from it without compiling cnictl's on-demand bundle.
import { SUPPORTED_VERSIONS } from '../../lib/cni/version';
import type { MainInfo } from '../../lib/util/main';

// cnictl runs conflists of every version the plugins speak.
export const info: MainInfo = { cniVersions: SUPPORTED_VERSIONS };
