// Conntrack entries over ctnetlink: delete every entry of one family and
// protocol whose original destination port is in a set, with one dump of
// the table and one delete per matching entry, whatever the number of ports
// (`conntrack -D` per port walks the whole table once per port).
import { isNotFound } from './errors';
import { NFNL_SUBSYS, type Nfnl } from './nfnetlink';
import { AF, attrMap, encodeAttrs, u8 } from './wire';

const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const CTA = { TUPLE_ORIG: 1, ZONE: 18, FILTER: 25 } as const;
const CTA_TUPLE = { IP: 1, PROTO: 2 } as const;
const CTA_PROTO = { NUM: 1, DST_PORT: 3 } as const;
const CTA_FILTER_ORIG_FLAGS = 1;
/** CTA_FILTER_FLAG(CTA_PROTO_NUM): the kernel (5.8+) filters the dump by protocol; older ones ignore it. */
const CTA_FILTER_F_PROTO_NUM = 1 << 3;

export const IPPROTO = { TCP: 6, UDP: 17, SCTP: 132 } as const;

export interface ConntrackMatch {
  family: 4 | 6;
  protocol: number;
  /** Original-direction destination ports to match. */
  dstPorts: ReadonlySet<number>;
}

function dumpFilter(protocol: number): Buffer {
  return encodeAttrs([
    { type: CTA.TUPLE_ORIG, nested: true, children: [{ type: CTA_TUPLE.PROTO, nested: true, children: [{ type: CTA_PROTO.NUM, data: u8(protocol) }] }] },
    { type: CTA.FILTER, nested: true, children: [{ type: CTA_FILTER_ORIG_FLAGS, data: u32le(CTA_FILTER_F_PROTO_NUM) }] },
  ]);
}

function u32le(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

/** The delete request of a dumped entry: its original tuple (and zone) exactly as the kernel sent them. */
function matchingEntry(data: Buffer, m: ConntrackMatch): Buffer | undefined {
  const attrs = attrMap(data.subarray(4));
  const orig = attrs.get(CTA.TUPLE_ORIG);
  if (!orig) return undefined;
  const proto = attrMap(orig).get(CTA_TUPLE.PROTO);
  if (!proto) return undefined;
  const p = attrMap(proto);
  const num = p.get(CTA_PROTO.NUM);
  const port = p.get(CTA_PROTO.DST_PORT);
  if (!num || !port || num.readUInt8(0) !== m.protocol || !m.dstPorts.has(port.readUInt16BE(0))) return undefined;
  const zone = attrs.get(CTA.ZONE);
  return encodeAttrs([{ type: CTA.TUPLE_ORIG, nested: true, children: decodeChildren(orig) }, ...(zone ? [{ type: CTA.ZONE, data: zone }] : [])]);
}

function decodeChildren(buf: Buffer): Array<{ type: number; data: Buffer }> {
  // Re-encode the tuple's attributes as they came (nested ones keep their bytes).
  const out: Array<{ type: number; data: Buffer }> = [];
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    out.push({ type: buf.readUInt16LE(off + 2), data: buf.subarray(off + 4, off + len) });
    off += (len + 3) & ~3;
  }
  return out;
}

/**
 * Delete the entries that match. Returns how many were deleted; an entry
 * that vanished between the dump and its delete counts as done.
 */
export async function deleteConntrackEntries(nfnl: Nfnl, m: ConntrackMatch): Promise<number> {
  if (m.dstPorts.size === 0) return 0;
  const family = m.family === 4 ? AF.INET : AF.INET6;
  const what = `listing IPv${m.family} conntrack entries`;
  const entries = await nfnl.dump(NFNL_SUBSYS.CTNETLINK, IPCTNL_MSG_CT_GET, family, dumpFilter(m.protocol), what);
  let deleted = 0;
  for (const e of entries) {
    const req = matchingEntry(e.data, m);
    if (!req) continue;
    try {
      await nfnl.request(NFNL_SUBSYS.CTNETLINK, IPCTNL_MSG_CT_DELETE, family, req, 0, 'deleting a conntrack entry');
      deleted++;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  return deleted;
}
