// Traffic control on the wire (pure): the qdiscs and the one filter the
// bandwidth plugin needs, as `tc` would send them, and the decoding of a
// qdisc the kernel reports. No I/O; the Rtnl methods send these.
//
//   tc qdisc replace dev D root handle 1: tbf rate R burst B latency 25ms   buildTbfRequest
//   tc qdisc add dev D handle ffff: ingress                                  buildIngressQdiscRequest
//   tc filter add dev D parent ffff: protocol all prio 1 u32 match u32 0 0 \
//      action mirred egress redirect dev IFB                                  buildRedirectFilterRequest

import { NetlinkError } from './errors';
import { Attr, NLM_F, NlRequest, attrMap, decodeAttrs, encodeAttrs, readStr, str, u32 } from './wire';

export const RTM_TC = { NEWQDISC: 36, DELQDISC: 37, GETQDISC: 38, NEWTFILTER: 44 } as const;
export const TC_H = { ROOT: 0xffffffff, INGRESS: 0xfffffff1 } as const;
/** The handles the bandwidth plugin uses: 1: for the tbf, ffff: for ingress. */
export const TBF_HANDLE = 0x00010000;
export const INGRESS_HANDLE = 0xffff0000;

const TCMSG_LEN = 20;
const TCA = { KIND: 1, OPTIONS: 2 } as const;
const TCA_TBF = { PARMS: 1, RATE64: 4 } as const;
const TCA_U32 = { CLASSID: 1, SEL: 5, ACT: 7 } as const;
const TCA_ACT = { KIND: 1, OPTIONS: 2 } as const;
const TCA_MIRRED_PARMS = 2;
const TC_ACT_STOLEN = 4;
const TCA_EGRESS_REDIR = 1;
const TC_U32_TERMINAL = 1;
const TC_LINKLAYER_ETHERNET = 1;
const ETH_P_ALL = 0x0003;
const U32_MAX = 0xffffffff;

export interface TcMsg {
  ifindex: number;
  handle: number;
  parent: number;
  info: number;
}

function tcmsg(m: TcMsg): Buffer {
  const b = Buffer.alloc(TCMSG_LEN);
  b.writeUInt8(0, 0); // AF_UNSPEC
  b.writeInt32LE(m.ifindex, 4);
  b.writeUInt32LE(m.handle >>> 0, 8);
  b.writeUInt32LE(m.parent >>> 0, 12);
  b.writeUInt32LE(m.info >>> 0, 16);
  return b;
}

export function parseTcmsg(b: Buffer): TcMsg {
  return { ifindex: b.readInt32LE(4), handle: b.readUInt32LE(8), parent: b.readUInt32LE(12), info: b.readUInt32LE(16) };
}

/** A token bucket as the kernel holds it: rate in bytes/s, limit in bytes, buffer in scheduler ticks. */
export interface TbfParams {
  rate: number;
  limit: number;
  buffer: number;
}

function u64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}

/** struct tc_ratespec (12 bytes): cell_log, linklayer, overhead, cell_align, mpu, rate. */
function ratespec(rateBytes: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(TC_LINKLAYER_ETHERNET, 1); // with a link layer the kernel needs no rate table
  b.writeUInt32LE(Math.min(rateBytes, U32_MAX), 8);
  return b;
}

function checkTbf(p: TbfParams): void {
  for (const [k, v] of Object.entries(p)) {
    if (!Number.isSafeInteger(v) || v < 0 || (k !== 'rate' && v > U32_MAX)) throw new NetlinkError('ERANGE', `tbf ${k} ${v} is out of range`);
  }
  if (p.rate === 0) throw new NetlinkError('EINVAL', 'tbf rate must be positive');
}

/** Root tbf, created or replacing what is there (`tc qdisc replace ... root handle 1: tbf`). */
export function buildTbfRequest(ifindex: number, p: TbfParams): NlRequest {
  checkTbf(p);
  // struct tc_tbf_qopt: rate, peakrate (unused), limit, buffer, mtu.
  const qopt = Buffer.concat([ratespec(p.rate), Buffer.alloc(12), u32(p.limit), u32(p.buffer), u32(0)]);
  const opts: Attr[] = [{ type: TCA_TBF.PARMS, data: qopt }];
  if (p.rate > U32_MAX) opts.push({ type: TCA_TBF.RATE64, data: u64(p.rate) });
  const attrs = encodeAttrs([{ type: TCA.KIND, data: str('tbf') }, { type: TCA.OPTIONS, children: opts }]);
  return { type: RTM_TC.NEWQDISC, flags: NLM_F.CREATE | NLM_F.REPLACE, data: Buffer.concat([tcmsg({ ifindex, handle: TBF_HANDLE, parent: TC_H.ROOT, info: 0 }), attrs]) };
}

/** The ingress qdisc (`tc qdisc add dev D handle ffff: ingress`); EEXIST if there is one. */
export function buildIngressQdiscRequest(ifindex: number): NlRequest {
  const attrs = encodeAttrs([{ type: TCA.KIND, data: str('ingress') }]);
  return { type: RTM_TC.NEWQDISC, flags: NLM_F.CREATE | NLM_F.EXCL, data: Buffer.concat([tcmsg({ ifindex, handle: INGRESS_HANDLE, parent: TC_H.INGRESS, info: 0 }), attrs]) };
}

/** Delete the qdisc at `parent` (TC_H.ROOT or TC_H.INGRESS); the device falls back to its default. */
export function buildDeleteQdiscRequest(ifindex: number, parent: number): NlRequest {
  return { type: RTM_TC.DELQDISC, flags: 0, data: tcmsg({ ifindex, handle: 0, parent, info: 0 }) };
}

/**
 * Get the one qdisc at `parent` of a device (no dump: O(1) whatever the number of devices).
 * The kernel answers a qdisc get as a notification: only NLM_F_ECHO sends it back to us.
 */
export function buildGetQdiscRequest(ifindex: number, parent: number): NlRequest {
  return { type: RTM_TC.GETQDISC, flags: NLM_F.ECHO, data: tcmsg({ ifindex, handle: 0, parent, info: 0 }) };
}

/**
 * On the ingress qdisc of `ifindex`: every packet (u32, one match-all key,
 * protocol all, prio 1) is redirected to the egress of `target` (mirred).
 */
export function buildRedirectFilterRequest(ifindex: number, target: number): NlRequest {
  const sel = Buffer.alloc(16 + 16); // struct tc_u32_sel + one struct tc_u32_key (mask 0, val 0: matches everything)
  sel.writeUInt8(TC_U32_TERMINAL, 0);
  sel.writeUInt8(1, 2); // nkeys
  const mirred = Buffer.alloc(28); // struct tc_mirred: tc_gen (index, capab, action, refcnt, bindcnt), eaction, ifindex
  mirred.writeInt32LE(TC_ACT_STOLEN, 8);
  mirred.writeInt32LE(TCA_EGRESS_REDIR, 20);
  mirred.writeUInt32LE(target, 24);
  const action: Attr = { type: 1, children: [
    { type: TCA_ACT.KIND, data: str('mirred') },
    { type: TCA_ACT.OPTIONS, children: [{ type: TCA_MIRRED_PARMS, data: mirred }] },
  ] };
  const attrs = encodeAttrs([
    { type: TCA.KIND, data: str('u32') },
    { type: TCA.OPTIONS, children: [
      { type: TCA_U32.CLASSID, data: u32(0x00010001) },
      { type: TCA_U32.SEL, data: sel },
      { type: TCA_U32.ACT, children: [action] },
    ] },
  ]);
  const protocolBe = ((ETH_P_ALL & 0xff) << 8) | (ETH_P_ALL >> 8);
  const info = ((1 << 16) | protocolBe) >>> 0; // prio 1, protocol in network byte order
  return { type: RTM_TC.NEWTFILTER, flags: NLM_F.CREATE | NLM_F.EXCL, data: Buffer.concat([tcmsg({ ifindex, handle: 0, parent: INGRESS_HANDLE, info }), attrs]) };
}

export interface Qdisc {
  ifindex: number;
  handle: number;
  parent: number;
  kind: string;
  /** For a tbf. */
  tbf?: TbfParams;
}

export function decodeQdisc(data: Buffer): Qdisc {
  const hdr = parseTcmsg(data);
  const a = attrMap(data.subarray(TCMSG_LEN));
  const q: Qdisc = { ifindex: hdr.ifindex, handle: hdr.handle, parent: hdr.parent, kind: a.has(TCA.KIND) ? readStr(a.get(TCA.KIND)!) : '' };
  const opts = a.get(TCA.OPTIONS);
  if (q.kind === 'tbf' && opts) {
    const o = new Map(decodeAttrs(opts).map((x) => [x.type, x.data]));
    const parms = o.get(TCA_TBF.PARMS);
    if (parms && parms.length >= 36) {
      const rate64 = o.get(TCA_TBF.RATE64);
      q.tbf = {
        rate: rate64 && rate64.length >= 8 ? Number(rate64.readBigUInt64LE(0)) : parms.readUInt32LE(8),
        limit: parms.readUInt32LE(24),
        buffer: parms.readUInt32LE(28),
      };
    }
  }
  return q;
}
