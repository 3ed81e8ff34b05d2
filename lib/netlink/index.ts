// The one facade over rtnetlink (DESIGN.md "The kernel facade").
//   const rtnl = openRtnl(netns); try { await rtnl.setLinkUp('lo') } finally { rtnl.close() }
export { openRtnl, withRtnl, NodeNetlinkRtnl, decodeLink } from './rtnl';
export type { Rtnl, OpenRtnl } from './rtnl-api';
export { NetlinkError, isExists, isNotFound, isTransient, errnoName } from './errors';
export * from './types';
export {
  buildVethRequest, buildBridgeRequest, buildMacvlanRequest, buildVxlanRequest, buildVlanRequest,
  buildSetLinkRequest, buildBridgePortFlagsRequest, buildAddressRequest, buildRouteRequest,
  buildNeighbourRequest, buildFdbRequest, buildBridgeVlanRequest, buildIfbRequest, checkIfname, MACVLAN_MODES,
} from './requests';
export {
  buildTbfRequest, buildIngressQdiscRequest, buildRedirectFilterRequest, buildDeleteQdiscRequest, buildGetQdiscRequest, decodeQdisc,
  TC_H, TBF_HANDLE, INGRESS_HANDLE, type Qdisc, type TbfParams,
} from './tc';
export { parseCidr, ipFamily, ipToBytes, bytesToIp, macToBytes, bytesToMac, normalizeMac } from './addr';
export { RT_SCOPE, RT_TABLE, RTNH_F, IFF_UP, IFF_LOOPBACK, IFF_PROMISC, IFF_ALLMULTI, IFA_F, NUD, NTF } from './wire';
export { pschedTicksPerUsec } from './psched';
export { vethPeer, type VethEnds } from './peer';
