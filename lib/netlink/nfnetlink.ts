// nfnetlink (NETLINK_NETFILTER): the transport for conntrack and for what
// the nft CLI cannot do cheaply or at all: read the rules of one chain
// without loading the table's sets, and delete a table only if it is empty
// (NLM_F_NONREC), atomically. Writes stay rendered text for `nft -f`
// (lib/firewall/nft.ts), golden-tested; a script of element changes only is
// sent as the batch nft would send (lib/firewall/nft-elements.ts).
//
// Kernel notes, written down once:
// - A batch (NFNL_MSG_BATCH_BEGIN .. END, one datagram) is one transaction:
//   every message with NLM_F_ACK gets an ack or an error, and one error aborts
//   all of it.
// - NFT_MSG_DELTABLE with NLM_F_NONREC fails with EBUSY while the table still
//   holds a chain, set or object; NFT_MSG_DELSET with NLM_F_NONREC fails with
//   EBUSY while the set holds an element. Objects deleted earlier in the same
//   batch no longer count.
// - A GETRULE dump filtered by table and chain returns that chain's rules
//   only (nothing, not an error, when the chain does not exist).
import type { NetlinkSocket } from 'netlink/dist/netlink';
import type { Netns } from '../netns';
import { NetlinkError, kernelError, toNetlinkError } from './errors';
import { NLM_F } from './wire';

const NETLINK_NETFILTER = 12;
const NLMSG_ERROR = 2;
const NFNL_MSG_BATCH_BEGIN = 16;
const NFNL_MSG_BATCH_END = 17;
const REQUEST_TIMEOUT_MS = 10_000;
const DUMP_RETRIES = 5;
/** NLM_F_NONREC (same bit as NLM_F_REPLACE, meaning differs by request type). */
export const NLM_F_NONREC = 0x100;

export const NFNL_SUBSYS = { CTNETLINK: 1, NFTABLES: 10 } as const;
/** nfgen_family values. */
export const NFPROTO = { INET: 1, IPV4: 2, BRIDGE: 7, IPV6: 10 } as const;

export interface NfMessage {
  type: number;
  flags: number;
  seq: number;
  /** Payload after the nlmsghdr: nfgenmsg (4 bytes) + attributes. */
  data: Buffer;
}

/** One message of a batch: nftables message type, family, encoded attributes. */
export interface BatchOp {
  msg: number;
  family: number;
  attrs: Buffer;
  flags?: number;
}

function nfgenmsg(family: number, resId = 0): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt8(family, 0);
  b.writeUInt16BE(resId, 2);
  return b;
}

function nlmsg(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const pad = ((payload.length + 3) & ~3) - payload.length;
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + payload.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq >>> 0, 8);
  return Buffer.concat([h, payload, Buffer.alloc(pad)]);
}

/**
 * An nftables batch as one datagram: BATCH_BEGIN (sequence `first`), each op with NLM_F_ACK (so each gets an
 * answer: 0 or its errno), BATCH_END. `seqs`: each op's sequence number.
 */
export function encodeBatch(ops: readonly BatchOp[], first: number): { request: Buffer; seqs: number[] } {
  const seqs = ops.map((_, i) => (first + 1 + i) >>> 0);
  const parts = [nlmsg(NFNL_MSG_BATCH_BEGIN, NLM_F.REQUEST, first >>> 0, nfgenmsg(0, NFNL_SUBSYS.NFTABLES))];
  ops.forEach((op, i) => {
    const type = (NFNL_SUBSYS.NFTABLES << 8) | op.msg;
    parts.push(nlmsg(type, NLM_F.REQUEST | NLM_F.ACK | (op.flags ?? 0), seqs[i], Buffer.concat([nfgenmsg(op.family), op.attrs])));
  });
  parts.push(nlmsg(NFNL_MSG_BATCH_END, NLM_F.REQUEST, (first + 1 + ops.length) >>> 0, nfgenmsg(0, NFNL_SUBSYS.NFTABLES)));
  return { request: Buffer.concat(parts), seqs };
}

/** The errno (positive; 0: done) of each NLMSG_ERROR in a buffer of raw netlink replies, by sequence number. */
export function ackErrnos(replies: Buffer): Map<number, number> {
  const got = new Map<number, number>();
  for (let off = 0; off + 16 <= replies.length;) {
    const len = replies.readUInt32LE(off);
    if (len < 16 || off + len > replies.length) break;
    if (replies.readUInt16LE(off + 4) === NLMSG_ERROR && len >= 20) got.set(replies.readUInt32LE(off + 8), -replies.readInt32LE(off + 16));
    off += (len + 3) & ~3;
  }
  return got;
}

/** Open an nfnetlink socket in `netns` (or in the current namespace). */
export function openNfnl(netns?: Netns): Nfnl {
  // Loaded on first use: verbs that never touch netfilter (VERSION, a portmap ADD without mappings) do not pay for it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy (start-up)
  const { createNetlink } = require('netlink/dist/netlink') as typeof import('netlink/dist/netlink');
  const make = () => createNetlink(NETLINK_NETFILTER);
  return new Nfnl(netns ? netns.run(make) : make());
}

/** Open, use, close. */
export async function withNfnl<T>(netns: Netns | undefined, fn: (nfnl: Nfnl) => Promise<T>): Promise<T> {
  const nfnl = openNfnl(netns);
  try {
    return await fn(nfnl);
  } finally {
    nfnl.close();
  }
}

export class Nfnl {
  private closed = false;
  private dumpQueue: Promise<unknown> = Promise.resolve();

  constructor(private readonly sock: NetlinkSocket) {}

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }

  /** One request; resolves with the reply messages (acks and errors removed), throws NetlinkError on an error. */
  async request(subsys: number, msg: number, family: number, attrs: Buffer, flags: number, what: string): Promise<NfMessage[]> {
    if (this.closed) throw new NetlinkError('EBADF', `${what}: the netlink socket is closed`);
    let reply: NfMessage[];
    try {
      [reply] = (await this.sock.request((subsys << 8) | msg, Buffer.concat([nfgenmsg(family), attrs]), { flags, checkError: false, timeout: REQUEST_TIMEOUT_MS })) as unknown as [NfMessage[]];
    } catch (err) {
      throw toNetlinkError(err, what);
    }
    for (const m of reply) {
      if (m.type !== NLMSG_ERROR) continue;
      const errno = m.data.readInt32LE(0);
      if (errno !== 0) throw kernelError(errno, what);
    }
    return reply.filter((m) => m.type !== NLMSG_ERROR);
  }

  /** A dump, one at a time per socket, retried when a concurrent change interrupted it. */
  dump(subsys: number, msg: number, family: number, attrs: Buffer, what: string): Promise<NfMessage[]> {
    const run = this.dumpQueue.then(() => this.dumpRetried(subsys, msg, family, attrs, what));
    this.dumpQueue = run.catch(() => undefined);
    return run;
  }

  // (A method, not a closure made per dump: the snapshot carries its bytecode.)
  private async dumpRetried(subsys: number, msg: number, family: number, attrs: Buffer, what: string): Promise<NfMessage[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        const msgs = await this.request(subsys, msg, family, attrs, NLM_F.DUMP, what);
        if (!msgs.some((m) => m.flags & NLM_F.DUMP_INTR)) return msgs;
        if (attempt >= DUMP_RETRIES) throw new NetlinkError('EINTR', `${what}: dump kept being interrupted by concurrent changes`);
      } catch (err) {
        if (!(err instanceof NetlinkError && err.code === 'EINTR') || attempt >= DUMP_RETRIES) throw err;
      }
    }
  }

  /**
   * One nftables transaction. Resolves with each message's errno (0 = done);
   * when any is non-zero the kernel applied none of them.
   */
  batch(ops: readonly BatchOp[], what: string): Promise<number[]> {
    if (this.closed) return Promise.reject(new NetlinkError('EBADF', `${what}: the netlink socket is closed`));
    const first = this.sock.generateSeq();
    const { request, seqs } = encodeBatch(ops, first);
    // Keep the sequence generator ahead of what we used.
    this.sock.seq = (first + ops.length + 2) >>> 0;
    return new Promise((resolve, reject) => {
      const got = new Map<number, number>();
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.sock.off('message', onMessage);
        if (err) reject(err);
        else resolve(seqs.map((s) => got.get(s)!));
      };
      const onMessage = (msgs: NfMessage[] | NfMessage): void => {
        for (const m of Array.isArray(msgs) ? msgs : [msgs]) {
          if (m.type === NLMSG_ERROR && seqs.includes(m.seq)) got.set(m.seq, -m.data.readInt32LE(0));
        }
        if (seqs.every((s) => got.has(s))) done();
      };
      const timer = setTimeout(() => done(new NetlinkError('ETIMEDOUT', `${what}: no answer from the kernel`)), REQUEST_TIMEOUT_MS);
      this.sock.on('message', onMessage);
      this.sock.socket.send(request, {}, (err?: Error) => {
        if (err) done(toNetlinkError(err, what));
      });
    });
  }
}
