// rtnetlink on the wire: constants, fixed headers and attribute (TLV)
// encoding. Pure, no I/O. We encode requests ourselves instead of through
// node-netlink's formatters because those cannot set NLA_F_NESTED, which the
// bridge needs on IFLA_PROTINFO, and leave IFLA_LINKINFO as an opaque Buffer.
// Host byte order (netlink is host-endian); x86/arm64 are little-endian.

export const RTM = {
  NEWLINK: 16, DELLINK: 17, GETLINK: 18, SETLINK: 19,
  NEWADDR: 20, DELADDR: 21, GETADDR: 22,
  NEWROUTE: 24, DELROUTE: 25, GETROUTE: 26,
  NEWNEIGH: 28, DELNEIGH: 29, GETNEIGH: 30,
} as const;

export const NLM_F = {
  REQUEST: 0x1, MULTI: 0x2, ACK: 0x4, ECHO: 0x8, DUMP_INTR: 0x10,
  REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400, APPEND: 0x800, DUMP: 0x300,
} as const;

export const AF = { UNSPEC: 0, INET: 2, BRIDGE: 7, INET6: 10 } as const;

export const IFF_UP = 0x1;
export const IFF_LOOPBACK = 0x8;
export const IFF_PROMISC = 0x100;
export const IFF_ALLMULTI = 0x200;
export const IFF_RUNNING = 0x40;
export const IF_OPER_UP = 6;

export const IFLA = {
  ADDRESS: 1, BROADCAST: 2, IFNAME: 3, MTU: 4, LINK: 5, MASTER: 10, PROTINFO: 12, TXQLEN: 13,
  OPERSTATE: 16, LINKINFO: 18, NET_NS_PID: 19, IFALIAS: 20, AF_SPEC: 26, NET_NS_FD: 28, EXT_MASK: 29, LINK_NETNSID: 37,
} as const;
export const IFLA_INFO = { KIND: 1, DATA: 2, SLAVE_KIND: 4, SLAVE_DATA: 5 } as const;
export const VETH_INFO_PEER = 1;
export const IFLA_BR = { VLAN_FILTERING: 7 } as const;
export const IFLA_BRPORT = { MODE: 4, LEARNING: 8, ISOLATED: 33 } as const;
/** Inside IFLA_AF_SPEC of an AF_BRIDGE message. */
export const IFLA_BRIDGE = { FLAGS: 0, VLAN_INFO: 2 } as const;
export const BRIDGE_FLAGS_MASTER = 1;
export const BRIDGE_VLAN_INFO = { PVID: 0x2, UNTAGGED: 0x4, RANGE_BEGIN: 0x8, RANGE_END: 0x10 } as const;
/** IFLA_EXT_MASK: ask a link dump for each port's VLANs. */
export const RTEXT_FILTER_BRVLAN = 0x2;
export const IFLA_MACVLAN = { MODE: 1, BC_QUEUE_LEN: 7 } as const;
export const IFLA_VLAN = { ID: 1, PROTOCOL: 5 } as const;
export const IFLA_VXLAN = { ID: 1, LINK: 3, LOCAL: 4, LEARNING: 7, PORT: 15, LOCAL6: 17 } as const;
export const ETH_P_8021Q = 0x8100;

export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4, FLAGS: 8 } as const;
export const IFA_F = { SECONDARY: 0x01, NODAD: 0x02, PERMANENT: 0x80, NOPREFIXROUTE: 0x200 } as const;

export const RTA = { DST: 1, SRC: 2, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, METRICS: 8, TABLE: 15 } as const;
export const RTAX_MTU = 2;
export const RTAX_ADVMSS = 8;
export const RT_TABLE = { UNSPEC: 0, MAIN: 254, LOCAL: 255 } as const;
export const RT_SCOPE = { UNIVERSE: 0, SITE: 200, LINK: 253, HOST: 254, NOWHERE: 255 } as const;
export const RTPROT_BOOT = 3;
export const RTN_UNICAST = 1;
/** rtm_flags / rtnh_flags. */
export const RTNH_F = { ONLINK: 0x4 } as const;

export const NDA = { DST: 1, LLADDR: 2, MASTER: 9 } as const;
export const NUD = { REACHABLE: 0x02, STALE: 0x04, NOARP: 0x40, PERMANENT: 0x80 } as const;
export const NTF = { SELF: 0x02, MASTER: 0x04 } as const;

export const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

/** One attribute to encode: a payload, or nested children (NLA_F_NESTED set when `nested`). */
export type Attr =
  | { type: number; data: Buffer }
  | { type: number; children: Attr[]; nested?: boolean };

const align4 = (n: number): number => (n + 3) & ~3;

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const payload = 'data' in a ? a.data : encodeAttrs(a.children);
    const type = 'children' in a && a.nested ? a.type | NLA_F_NESTED : a.type;
    const hdr = Buffer.alloc(4);
    hdr.writeUInt16LE(4 + payload.length, 0);
    hdr.writeUInt16LE(type, 2);
    parts.push(hdr, payload, Buffer.alloc(align4(payload.length) - payload.length));
  }
  return Buffer.concat(parts);
}

export interface RawAttr {
  type: number;
  nested: boolean;
  data: Buffer;
}

export function decodeAttrs(buf: Buffer): RawAttr[] {
  const out: RawAttr[] = [];
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    const t = buf.readUInt16LE(off + 2);
    if (len < 4 || off + len > buf.length) break;
    out.push({ type: t & NLA_TYPE_MASK, nested: (t & NLA_F_NESTED) !== 0, data: buf.subarray(off + 4, off + len) });
    off += align4(len);
  }
  return out;
}

/** Attributes by type (last one wins), handy for decoding. */
export function attrMap(buf: Buffer): Map<number, Buffer> {
  return new Map(decodeAttrs(buf).map((a) => [a.type, a.data]));
}

export const u8 = (v: number): Buffer => Buffer.from([v & 0xff]);
export const u16 = (v: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; };
export const u16be = (v: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(v); return b; };
export const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; };
export const s32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b; };
export const str = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]);
export const readStr = (b: Buffer): string => { const z = b.indexOf(0); return b.subarray(0, z < 0 ? b.length : z).toString('utf8'); };

// ---- fixed headers -------------------------------------------------------

export interface IfInfoMsg { family?: number; type?: number; index?: number; flags?: number; change?: number }
export const IFINFOMSG_LEN = 16;
export function ifinfomsg(m: IfInfoMsg): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(m.family ?? AF.UNSPEC, 0);
  b.writeUInt16LE(m.type ?? 0, 2);
  b.writeInt32LE(m.index ?? 0, 4);
  b.writeUInt32LE((m.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((m.change ?? 0) >>> 0, 12);
  return b;
}
export function parseIfinfomsg(b: Buffer): Required<IfInfoMsg> {
  return { family: b.readUInt8(0), type: b.readUInt16LE(2), index: b.readInt32LE(4), flags: b.readUInt32LE(8), change: b.readUInt32LE(12) };
}

export interface IfAddrMsg { family: number; prefixlen: number; flags?: number; scope?: number; index: number }
export const IFADDRMSG_LEN = 8;
export function ifaddrmsg(m: IfAddrMsg): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeUInt8(m.prefixlen, 1);
  b.writeUInt8((m.flags ?? 0) & 0xff, 2);
  b.writeUInt8(m.scope ?? 0, 3);
  b.writeUInt32LE(m.index, 4);
  return b;
}
export function parseIfaddrmsg(b: Buffer): Required<IfAddrMsg> {
  return { family: b.readUInt8(0), prefixlen: b.readUInt8(1), flags: b.readUInt8(2), scope: b.readUInt8(3), index: b.readUInt32LE(4) };
}

export interface RtMsg { family: number; dstLen: number; srcLen?: number; tos?: number; table: number; protocol: number; scope: number; type: number; flags?: number }
export const RTMSG_LEN = 12;
export function rtmsg(m: RtMsg): Buffer {
  const b = Buffer.alloc(RTMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeUInt8(m.dstLen, 1);
  b.writeUInt8(m.srcLen ?? 0, 2);
  b.writeUInt8(m.tos ?? 0, 3);
  b.writeUInt8(m.table > 255 ? RT_TABLE.UNSPEC : m.table, 4); // big ids go in RTA_TABLE
  b.writeUInt8(m.protocol, 5);
  b.writeUInt8(m.scope, 6);
  b.writeUInt8(m.type, 7);
  b.writeUInt32LE(m.flags ?? 0, 8);
  return b;
}
export function parseRtmsg(b: Buffer): Required<RtMsg> {
  return { family: b.readUInt8(0), dstLen: b.readUInt8(1), srcLen: b.readUInt8(2), tos: b.readUInt8(3), table: b.readUInt8(4), protocol: b.readUInt8(5), scope: b.readUInt8(6), type: b.readUInt8(7), flags: b.readUInt32LE(8) };
}

export interface NdMsg { family: number; index: number; state: number; flags: number; type?: number }
export const NDMSG_LEN = 12;
export function ndmsg(m: NdMsg): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(m.family, 0);
  b.writeInt32LE(m.index, 4);
  b.writeUInt16LE(m.state, 8);
  b.writeUInt8(m.flags, 10);
  b.writeUInt8(m.type ?? 0, 11);
  return b;
}
export function parseNdmsg(b: Buffer): Required<NdMsg> {
  return { family: b.readUInt8(0), index: b.readInt32LE(4), state: b.readUInt16LE(8), flags: b.readUInt8(10), type: b.readUInt8(11) };
}

/** A request ready to send: message type, NLM_F_* flags (REQUEST|ACK added by the sender), payload. */
export interface NlRequest {
  type: number;
  flags: number;
  data: Buffer;
}

/** Split a payload into its fixed header and decoded attributes. */
export function splitPayload(data: Buffer, headerLen: number): { header: Buffer; attrs: Map<number, Buffer> } {
  return { header: data.subarray(0, headerLen), attrs: attrMap(data.subarray(headerLen)) };
}
