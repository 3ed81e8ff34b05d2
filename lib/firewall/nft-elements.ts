// The element changes of an ADD or DEL as one nfnetlink batch, without
// libnftables: no library to open and relocate, no context, no parser and no
// cache (libnftables dumps the tables, chains, sets and objects of the ruleset
// before every transaction). Lines of the shapes the project writes:
//   add|create|delete element inet T S { ELEMENT, ... }
//   ELEMENT = KEY [comment "..."] [: DATA]
//   KEY     = ADDRESS | ADDRESS . PROTO . PORT | PROTO . PORT | ADDRESS . ADDRESS
//   DATA    = jump CHAIN | 0xMARK | ADDRESS . PORT
// (lib/firewall/masquerade.ts, forward.ts, portmap.ts). The messages are the
// ones nft 1.0.6 sends for these lines (test/unit/nft-elements.test.ts holds
// them byte for byte), so the kernel does the same thing and answers with
// the same errno; the result reads like nft's (NftError: missing, exists). A
// script with any other line goes to libnftables unchanged.

import { addrToBytes, parseIP } from '../ip';
import { NFPROTO, ackErrnos, encodeBatch, type BatchOp } from '../netlink/nfnetlink';
import { NLM_F, encodeAttrs, str, type Attr } from '../netlink/wire';

/** One element of a line: its key as the set stores it, and what it maps to. */
export interface Element {
  key: Buffer;
  comment?: string;
  /** A map's data (a mark, an address and port), as the map stores it. */
  data?: Buffer;
  /** A verdict map's jump target. */
  jump?: string;
}

/** One line of the script: one message to the kernel. */
export interface ElementLine {
  verb: 'add' | 'create' | 'delete';
  table: string;
  set: string;
  elements: Element[];
  /** The script line, for the error text. */
  line: string;
}

const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NFTA_SET_ELEM_LIST = { TABLE: 1, SET: 2, ELEMENTS: 3 } as const;
const NFTA_SET_ELEM = { KEY: 1, DATA: 2, USERDATA: 6 } as const;
const NFTA_DATA = { VALUE: 1, VERDICT: 2 } as const;
const NFTA_VERDICT = { CODE: 1, CHAIN: 2 } as const;
const NFT_JUMP = -3;
/** NFTNL_UDATA_SET_ELEM_COMMENT: the comment in an element's user data. */
const UDATA_ELEM_COMMENT = 0;
/** nft refuses longer comments (NFT_USERDATA_MAXLEN is larger, but nft's own limit is what users know). */
const MAX_COMMENT = 128;
/** The inet_proto names the project writes. */
const PROTO = new Map([['tcp', 6], ['udp', 17], ['sctp', 132]]);
/** Whether this machine stores integers low byte first (a mark is stored in host byte order). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

const NAME = '[A-Za-z_][A-Za-z0-9_.-]*';
const LINE = new RegExp(`^(add|create|delete) element inet (${NAME}) (${NAME}) \\{ (.+) \\}$`);
const FIELD = '[0-9A-Fa-f.:]+|tcp|udp|sctp';
const FIELDS = `(?:${FIELD})(?: \\. (?:${FIELD}))*`;
/** One element and what follows it (", " or the end), matched where the last one ended. */
const ELEMENT = new RegExp(`(${FIELDS})(?: comment "([^"\\\\]*)")?(?: : (jump ${NAME}|0x[0-9a-f]{1,8}|${FIELDS}))?(?:, |$)`, 'y');

type Field = { kind: 'addr'; family: 4 | 6; bytes: Buffer } | { kind: 'proto' | 'port'; bytes: Buffer };

function parseField(text: string): Field | undefined {
  const proto = PROTO.get(text);
  if (proto !== undefined) return { kind: 'proto', bytes: Buffer.from([proto]) };
  if (/^\d{1,5}$/.test(text)) {
    const port = Number(text);
    if (port > 65535 || String(port) !== text) return undefined;
    return { kind: 'port', bytes: Buffer.from([port >> 8, port & 0xff]) };
  }
  const ip = parseIP(text);
  return ip ? { kind: 'addr', family: ip.family, bytes: addrToBytes(ip) } : undefined;
}

/** A concatenation as the kernel stores it: each field padded to 32 bits (nft: NFT_REG32_SIZE). */
function concat(fields: readonly Field[]): Buffer {
  return Buffer.concat(fields.map((f) => Buffer.concat([f.bytes, Buffer.alloc((4 - (f.bytes.length % 4)) % 4)])));
}

/** A key of one of the shapes above, or undefined. */
function parseKey(text: string): Buffer | undefined {
  const fields = text.split(' . ').map(parseField);
  if (fields.some((f) => f === undefined)) return undefined;
  const shape = (fields as Field[]).map((f) => f.kind).join(' ');
  if (shape === 'addr') return fields[0]!.bytes;
  if (shape === 'addr addr' && (fields[0] as { family: number }).family !== (fields[1] as { family: number }).family) return undefined;
  return ['addr proto port', 'proto port', 'addr addr'].includes(shape) ? concat(fields as Field[]) : undefined;
}

/** A mark as the kernel stores it: 32 bits in host byte order (nft's mark type is host-endian). */
function markBytes(hex: string): Buffer {
  const b = Buffer.alloc(4);
  if (LITTLE_ENDIAN) b.writeUInt32LE(parseInt(hex, 16) >>> 0);
  else b.writeUInt32BE(parseInt(hex, 16) >>> 0);
  return b;
}

function parseElement(key: string, comment: string | undefined, data: string | undefined): Element | undefined {
  const k = parseKey(key);
  if (!k) return undefined;
  if (comment !== undefined && Buffer.byteLength(comment) > MAX_COMMENT) return undefined;
  const e: Element = { key: k, comment };
  if (data === undefined) return e;
  if (data.startsWith('jump ')) return { ...e, jump: data.slice(5) };
  if (data.startsWith('0x')) return { ...e, data: markBytes(data.slice(2)) };
  const fields = data.split(' . ').map(parseField);
  if (fields.length !== 2 || fields[0]?.kind !== 'addr' || fields[1]?.kind !== 'port') return undefined;
  return { ...e, data: concat(fields as Field[]) };
}

function parseLine(line: string): ElementLine | undefined {
  const m = LINE.exec(line);
  if (!m) return undefined;
  const [, verb, table, set, list] = m;
  const elements: Element[] = [];
  ELEMENT.lastIndex = 0;
  while (ELEMENT.lastIndex < list.length) {
    const at = ELEMENT.lastIndex;
    const e = ELEMENT.exec(list);
    if (!e || e[0].length === 0 || ELEMENT.lastIndex === at) return undefined;
    const element = parseElement(e[1], e[2], e[3]);
    if (!element) return undefined;
    // A delete names keys only.
    if (verb === 'delete' && (e[2] !== undefined || e[3] !== undefined)) return undefined;
    elements.push(element);
  }
  return { verb: verb as ElementLine['verb'], table, set, elements, line };
}

/** The lines of a script made only of such lines, or undefined (then libnftables runs it). */
export function parseElementScript(script: string): ElementLine[] | undefined {
  const lines: ElementLine[] = [];
  for (const text of script.split('\n')) {
    if (text === '') continue;
    const line = parseLine(text);
    if (!line) return undefined;
    lines.push(line);
  }
  return lines.length > 0 ? lines : undefined;
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

/** One element's attributes, in nft 1.0.6's order: key, data, user data. */
function elementAttrs(e: Element): Attr[] {
  const attrs: Attr[] = [{ type: NFTA_SET_ELEM.KEY, nested: true, children: [{ type: NFTA_DATA.VALUE, data: e.key }] }];
  if (e.jump !== undefined) {
    const verdict: Attr[] = [{ type: NFTA_VERDICT.CODE, data: be32(NFT_JUMP) }, { type: NFTA_VERDICT.CHAIN, data: str(e.jump) }];
    attrs.push({ type: NFTA_SET_ELEM.DATA, nested: true, children: [{ type: NFTA_DATA.VERDICT, nested: true, children: verdict }] });
  } else if (e.data !== undefined) {
    attrs.push({ type: NFTA_SET_ELEM.DATA, nested: true, children: [{ type: NFTA_DATA.VALUE, data: e.data }] });
  }
  if (e.comment !== undefined) attrs.push({ type: NFTA_SET_ELEM.USERDATA, data: commentUdata(e.comment) });
  return attrs;
}

/**
 * One NEWSETELEM / DELSETELEM message per line, as nft 1.0.6 words it (the
 * list's items numbered from 1), less the set id it adds to NEWSETELEM: the
 * kernel reads that only when no set has the name, for a set made earlier in
 * the same batch, which these scripts never do.
 */
export function elementMessage(line: ElementLine): BatchOp {
  const attrs = encodeAttrs([
    { type: NFTA_SET_ELEM_LIST.TABLE, data: str(line.table) },
    { type: NFTA_SET_ELEM_LIST.SET, data: str(line.set) },
    { type: NFTA_SET_ELEM_LIST.ELEMENTS, nested: true, children: line.elements.map((e, i) => ({ type: i + 1, nested: true, children: elementAttrs(e) })) },
  ]);
  if (line.verb === 'delete') return { msg: NFT_MSG_DELSETELEM, family: NFPROTO.INET, attrs };
  return { msg: NFT_MSG_NEWSETELEM, family: NFPROTO.INET, attrs, flags: NLM_F.CREATE | (line.verb === 'create' ? NLM_F.EXCL : 0) };
}

/** nft's words for the errnos the callers tell apart (NftError.missing / exists / busy). */
const ERRNO_TEXT: Record<number, string> = { 1: 'Operation not permitted', 2: 'No such file or directory', 16: 'Device or resource busy', 17: 'File exists', 22: 'Invalid argument' };

/** The answers of one transaction as nft would report them: status 0, or 1 and one error per refused line. */
export function elementResult(ops: readonly ElementLine[], errnos: ReadonlyArray<number | undefined>): { status: number; stdout: string; stderr: string } {
  const refused = ops.flatMap((op, i) => {
    const e = errnos[i];
    if (e === 0) return [];
    const why = e === undefined ? 'no answer from the kernel' : ERRNO_TEXT[e] ?? `errno ${e}`;
    return [`Error: Could not process rule: ${why}\n${op.line}\n`];
  });
  return refused.length === 0 ? { status: 0, stdout: '', stderr: '' } : { status: 1, stdout: '', stderr: refused.join('') };
}

/**
 * At most this many elements in one message: an element is at most ~470 bytes (a 32-byte key, a verdict with a
 * 255-byte chain name, a 128-byte comment) and a message's attributes at most 64 KiB. nft splits long lines too.
 */
const ELEMENTS_PER_MESSAGE = 128;
/**
 * A larger batch goes to libnftables, which sizes its socket's send buffer for it: a netlink datagram must fit the
 * sender's buffer (208 KiB by default). Only publishing a few hundred ports at once comes near it.
 */
const MAX_BATCH_BYTES = 128 * 1024;
const BATCH_BEGIN_SEQ = 1; // (a fresh socket of our own: any numbering will do)

/** The lines as one batch of messages, each message knowing its line; undefined when too large for one datagram. */
export interface ElementBatch {
  lines: readonly ElementLine[];
  request: Buffer;
  seqs: number[];
  lineOf: number[];
}

export function elementBatch(lines: readonly ElementLine[]): ElementBatch | undefined {
  const messages: BatchOp[] = [];
  const lineOf: number[] = [];
  lines.forEach((line, i) => {
    for (let at = 0; at < line.elements.length; at += ELEMENTS_PER_MESSAGE) {
      messages.push(elementMessage({ ...line, elements: line.elements.slice(at, at + ELEMENTS_PER_MESSAGE) }));
      lineOf.push(i);
    }
  });
  const { request, seqs } = encodeBatch(messages, BATCH_BEGIN_SEQ);
  return request.length <= MAX_BATCH_BYTES ? { lines, request, seqs, lineOf } : undefined;
}

/**
 * Run the batch as one transaction (all or nothing) in the calling thread's namespace, through `transact`
 * (native/cni_native.c nfnlTransact: send one datagram, read until `acks` answers). A line fails with the first
 * refusal among its messages.
 */
export function runElementBatch(batch: ElementBatch, transact: (request: Buffer, acks: number) => Buffer): { status: number; stdout: string; stderr: string } {
  const got = ackErrnos(transact(batch.request, batch.seqs.length));
  const refusedWhole = got.get(BATCH_BEGIN_SEQ);
  const errnos: Array<number | undefined> = batch.lines.map(() => 0);
  batch.seqs.forEach((seq, m) => {
    const line = batch.lineOf[m];
    if (errnos[line] === 0) errnos[line] = refusedWhole || got.get(seq);
  });
  return elementResult(batch.lines, errnos);
}
