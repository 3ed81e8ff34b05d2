// The element changes of an ADD or DEL (`add|create|delete element inet T S
// { ADDRESS [comment "..."] [: jump CHAIN] }`, lib/firewall/masquerade.ts)
// as one nfnetlink batch, without libnftables: no library to open and
// relocate, no context, no parser and no cache (libnftables dumps the tables,
// chains, sets and objects of the ruleset before every transaction). The
// messages are the ones nft 1.0.6 sends for these lines (test/unit/nft-elements.test.ts
// holds them byte for byte), so the kernel does the same thing and answers
// with the same errno; the result reads like nft's (NftError: missing,
// exists). A script with any other line goes to libnftables unchanged.

import { addrToBytes, parseIP } from '../ip';
import { NFPROTO, ackErrnos, encodeBatch, type BatchOp } from '../netlink/nfnetlink';
import { NLM_F, encodeAttrs, str, type Attr } from '../netlink/wire';

export interface ElementOp {
  verb: 'add' | 'create' | 'delete';
  table: string;
  set: string;
  key: Buffer;
  comment?: string;
  jump?: string;
  /** The script line, for the error text. */
  line: string;
}

const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NFTA_SET_ELEM_LIST = { TABLE: 1, SET: 2, ELEMENTS: 3 } as const;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM = { KEY: 1, DATA: 2, USERDATA: 6 } as const;
const NFTA_DATA = { VALUE: 1, VERDICT: 2 } as const;
const NFTA_VERDICT = { CODE: 1, CHAIN: 2 } as const;
const NFT_JUMP = -3;
/** NFTNL_UDATA_SET_ELEM_COMMENT: the comment in an element's user data. */
const UDATA_ELEM_COMMENT = 0;
/** nft refuses longer comments (NFT_USERDATA_MAXLEN is larger, but nft's own limit is what users know). */
const MAX_COMMENT = 128;

const NAME = '[A-Za-z_][A-Za-z0-9_.-]*';
const ELEMENT_LINE = new RegExp(`^(add|create|delete) element inet (${NAME}) (${NAME}) \\{ ([0-9A-Fa-f.:]+)(?: comment "([^"\\\\]*)")?(?: : jump (${NAME}))? \\}$`);

/** The element operations of a script made only of such lines, or undefined (then libnftables runs it). */
export function parseElementScript(script: string): ElementOp[] | undefined {
  const ops: ElementOp[] = [];
  for (const line of script.split('\n')) {
    if (line === '') continue;
    const m = ELEMENT_LINE.exec(line);
    if (!m) return undefined;
    const [, verb, table, set, address, comment, jump] = m;
    const ip = parseIP(address);
    if (!ip) return undefined;
    if (verb === 'delete' && (comment !== undefined || jump !== undefined)) return undefined;
    if (comment !== undefined && Buffer.byteLength(comment) > MAX_COMMENT) return undefined;
    ops.push({ verb: verb as ElementOp['verb'], table, set, key: addrToBytes(ip), comment, jump, line });
  }
  return ops.length > 0 ? ops : undefined;
}

function be32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n, 0);
  return b;
}

/** The comment as nft stores it: one user-data record, the text with its NUL. */
function commentUdata(comment: string): Buffer {
  const text = str(comment);
  return Buffer.concat([Buffer.from([UDATA_ELEM_COMMENT, text.length]), text]);
}

/** One NEWSETELEM / DELSETELEM message, as nft 1.0.6 words it. */
export function elementMessage(op: ElementOp): BatchOp {
  const element: Attr[] = [{ type: NFTA_SET_ELEM.KEY, nested: true, children: [{ type: NFTA_DATA.VALUE, data: op.key }] }];
  if (op.jump !== undefined) {
    const verdict: Attr[] = [{ type: NFTA_VERDICT.CODE, data: be32(NFT_JUMP) }, { type: NFTA_VERDICT.CHAIN, data: str(op.jump) }];
    element.push({ type: NFTA_SET_ELEM.DATA, nested: true, children: [{ type: NFTA_DATA.VERDICT, nested: true, children: verdict }] });
  }
  if (op.comment !== undefined) element.push({ type: NFTA_SET_ELEM.USERDATA, data: commentUdata(op.comment) });
  const attrs = encodeAttrs([
    { type: NFTA_SET_ELEM_LIST.TABLE, data: str(op.table) },
    { type: NFTA_SET_ELEM_LIST.SET, data: str(op.set) },
    { type: NFTA_SET_ELEM_LIST.ELEMENTS, nested: true, children: [{ type: NFTA_LIST_ELEM, nested: true, children: element }] },
  ]);
  if (op.verb === 'delete') return { msg: NFT_MSG_DELSETELEM, family: NFPROTO.INET, attrs };
  return { msg: NFT_MSG_NEWSETELEM, family: NFPROTO.INET, attrs, flags: NLM_F.CREATE | (op.verb === 'create' ? NLM_F.EXCL : 0) };
}

/** nft's words for the errnos the callers tell apart (NftError.missing / exists / busy). */
const ERRNO_TEXT: Record<number, string> = { 1: 'Operation not permitted', 2: 'No such file or directory', 16: 'Device or resource busy', 17: 'File exists', 22: 'Invalid argument' };

/** The answers of one transaction as nft would report them: status 0, or 1 and one error per refused line. */
export function elementResult(ops: readonly ElementOp[], errnos: ReadonlyArray<number | undefined>): { status: number; stdout: string; stderr: string } {
  const refused = ops.flatMap((op, i) => {
    const e = errnos[i];
    if (e === 0) return [];
    const why = e === undefined ? 'no answer from the kernel' : ERRNO_TEXT[e] ?? `errno ${e}`;
    return [`Error: Could not process rule: ${why}\n${op.line}\n`];
  });
  return refused.length === 0 ? { status: 0, stdout: '', stderr: '' } : { status: 1, stdout: '', stderr: refused.join('') };
}

/**
 * Run the operations as one transaction (all or nothing) in the calling thread's namespace, through `transact`
 * (native/cni_native.c nfnlTransact: send one datagram, read until `acks` answers).
 */
export function runElementOps(ops: readonly ElementOp[], transact: (request: Buffer, acks: number) => Buffer): { status: number; stdout: string; stderr: string } {
  const BATCH_BEGIN_SEQ = 1; // (a fresh socket of our own: any numbering will do)
  const { request, seqs } = encodeBatch(ops.map(elementMessage), BATCH_BEGIN_SEQ);
  const got = ackErrnos(transact(request, ops.length));
  const refusedWhole = got.get(BATCH_BEGIN_SEQ);
  if (refusedWhole) return elementResult(ops, ops.map(() => refusedWhole));
  return elementResult(ops, seqs.map((s) => got.get(s)));
}
